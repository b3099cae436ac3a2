"""The cat experiments of the course notes ("visualizing a CNN with Keras, the cat
example"): a photo through UNTRAINED layers, to see what convolution, ReLU and pooling do
to an image before any learning.

- a conv layer with 3 random filters of 3x3, 10x10 and 15x15 (3 filters -> the 3 output
  maps are shown as the R, G, B channels of one image);
- the 3x3 conv followed by ReLU; the 3x3 conv followed by 2x2 and 5x5 max pooling;
- LeNet's conv/pool stages (conv 5x5 - ReLU - max pool 2 - conv 5x5 - ReLU - max pool 2)
  with 1 filter per conv (grey), 3 then 1, and 3 per conv (RGB).

Every output size follows floor((n + 2p - f) / s) + 1 and is written on its panel.
The photo is centred (its mean subtracted) before the first conv, as a network's inputs
are, so random filters respond with both signs and ReLU visibly keeps half of them.
Each displayed map is min-max scaled per channel (a picture, not a colour scale).
"""
from __future__ import annotations

import numpy as np

from .. import layers as L
from ..functional import conv_output_size
from ._plot import normalize, panel_grid, save_figure, to_hwc
from .images import read_image


def _run(layers, x, seed):
    net = L.Sequential(layers, input_shape=x.shape[1:], seed=seed)
    return net.forward(x, training=False)[0]


def _display(a):
    """(1 or 3, H, W) feature maps -> an image in [0, 1] (grey or RGB composite)."""
    return normalize(to_hwc(a), per_channel=True)


def _size(shape):
    return "x".join(str(s) for s in shape)


def _hwc_shape(a):
    return (a.shape[1], a.shape[2], a.shape[0])


def cat_experiments(image=None, seed=0):
    """Run the course's cat experiments. ``image``: (3, H, W) in [0, 1], a path, or None
    for the bundled chelsea.png; ``seed``: the random filters.

    Returns a list of stages, each a dict with 'key', 'label' (with sizes), 'maps' (the
    raw output (C, H, W)), 'display' ((H, W) or (H, W, 3) in [0, 1]) and 'expected_hw'
    (the size the formula predicts)."""
    if image is None or isinstance(image, (str, bytes)) or hasattr(image, "__fspath__"):
        image = read_image("chelsea" if image is None else image, mode="RGB")
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"cat_experiments takes an RGB image (3, H, W), got shape {image.shape}")
    h, w = image.shape[1:]
    x = (image - image.mean())[None]
    stages = [dict(key="original", label=f"original\n{h}x{w}x3", maps=image,
                   display=to_hwc(image), expected_hw=(h, w))]

    def add(key, title, layers, expected_hw, s):
        maps = _run(layers, x, s)
        if isinstance(layers[-1], L.ReLU):
            title += f" ({(maps == 0).mean():.0%} set to 0)"
        stages.append(dict(key=key, label=f"{title}\n{h}x{w}x3 -> {_size(_hwc_shape(maps))}",
                           maps=maps, display=_display(maps), expected_hw=expected_hw))

    for f in (3, 10, 15):
        n = (conv_output_size(h, f), conv_output_size(w, f))
        add(f"conv{f}", f"conv {f}x{f}, 3 random filters", [L.Conv2D(3, f)], n, seed)
    c3 = (conv_output_size(h, 3), conv_output_size(w, 3))
    add("relu", "conv 3x3 + ReLU", [L.Conv2D(3, 3), L.ReLU()], c3, seed)
    for p in (2, 5):
        n = tuple(conv_output_size(v, p, stride=p) for v in c3)
        add(f"pool{p}", f"conv 3x3 + max pool {p}x{p}", [L.Conv2D(3, 3), L.MaxPool2D(p)], n, seed)

    def lenet_hw(v):
        v = conv_output_size(conv_output_size(v, 5), 2, stride=2)
        return conv_output_size(conv_output_size(v, 5), 2, stride=2)

    n = (lenet_hw(h), lenet_hw(w))
    for k1, k2 in ((1, 1), (3, 1), (3, 3)):
        layers = [L.Conv2D(k1, 5), L.ReLU(), L.MaxPool2D(2), L.Conv2D(k2, 5), L.ReLU(), L.MaxPool2D(2)]
        add(f"lenet{k1}{k2}", f"LeNet conv/pool, {k1} then {k2} filter{'s' if k2 > 1 else ''}",
            layers, n, seed)
    return stages


def plot_cat_experiments(stages, path=None, title=None):
    """One figure with every stage (the original first); saved as PNG when ``path``."""
    panels = [(s["display"], s["label"]) for s in stages]
    fig = panel_grid(panels, ncols=5, panel_size=3.0, label_size=9, title=title or
                     "A cat through untrained CNN layers (random filters; 3 maps shown as R, G, B)")
    if path is not None:
        save_figure(fig, path)
    return fig
