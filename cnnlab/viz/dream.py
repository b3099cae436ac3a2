"""DeepDream (Mordvintsev, Olah and Tyka, 2015): amplify in a photo whatever a layer
already sees there. Gradient ascent on the image itself to increase the layer's
activations (the mean of their squares: strong responses grow, wherever they are),
at several scales ("octaves", small to large) with random jitter.

Which net dreams decides what appears. cnnlab ships no ImageNet-trained net; the viz
tools dream with the shipped CIFAR-10 ResNet (``cnnlab.models.cifar_resnet(pretrained=
True)``, :mod:`cnnlab.viz.cifar_net`), in colour: its last ReLU adds eyes and fur
patterns, its last residual block whole small cat faces into the bundled cat photo --
CIFAR objects at the 32x32 scale they were learned at, so a photo shrunk to ~200 px
gets the largest ones. LeNet-5 trained on MNIST adds only pen strokes and stroke ends.
Any model whose layers up to ``layer`` are convolutional works (their output size
follows the photo's); give your own trained net to see its features. A one-channel net dreams on the photo's luminance and the change is added to
all three colour channels.
"""
from __future__ import annotations

import numpy as np

from ._geometry import receptive_field
from ._graph import backward_through, chain, forward_through, model_dtype, resolve_layer
from ._imageops import gaussian_blur, random_shift, resize_chw, roll
from ._plot import new_figure, save_figure, to_hwc

_LUMA = np.array([0.299, 0.587, 0.114])


def deepdream(model, image, layer, octaves=3, octave_scale=1.5, steps=10, lr=0.01, jitter=4,
              channels=None, highpass=4.0, seed=0):
    """Dream ``image`` (C, H, W) in [0, 1] with ``model`` at ``layer``.

    Args:
        octaves: number of scales; the smallest is the image shrunk by
            ``octave_scale ** (octaves - 1)``; the detail added at each scale is carried
            (upsampled) to the next.
        steps, lr: ascent steps per octave and step size (normalized gradient, so ``lr``
            is about the mean change of a pixel per step).
        jitter: random shift (pixels) before each step.
        channels: the layer's channels to amplify (default all).
        highpass: remove from each step its local average (Gaussian of this std in
            pixels; 0 switches it off), so the dream adds patterns instead of simply
            brightening the photo -- a digit net's strongest wish is "more ink everywhere".
        seed: the jitter.

    Returns a dict: 'image' (the dream, (C, H, W) in [0, 1], as the input's channels),
    'delta' (dream - input), 'objective' (per step), 'layer'.
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 3:
        raise ValueError(f"deepdream takes one image (C, H, W), got shape {image.shape}")
    links = chain(model)[:resolve_layer(model, layer) + 1]
    c_in = model.input_shape[0] if getattr(model, "input_shape", None) else image.shape[0]
    if c_in == image.shape[0]:
        base = image
    elif c_in == 1 and image.shape[0] == 3:
        base = np.tensordot(_LUMA, image, axes=1)[None]
    elif c_in == 3 and image.shape[0] == 1:
        base = np.repeat(image, 3, axis=0)
    else:
        raise ValueError(f"the model takes {c_in} channels; the image has {image.shape[0]}")
    if octaves < 1 or octave_scale <= 1 or steps < 1 or lr <= 0:
        raise ValueError("need octaves >= 1, octave_scale > 1, steps >= 1 and lr > 0")
    rng = np.random.default_rng(seed)
    dtype = model_dtype(model)
    h, w = base.shape[1:]
    sizes = [(max(8, int(round(h / octave_scale ** i))), max(8, int(round(w / octave_scale ** i))))
             for i in reversed(range(octaves))]
    detail = np.zeros((base.shape[0],) + sizes[0])
    history = []
    for size in sizes:
        detail = resize_chw(detail, size)
        x = resize_chw(base, size) + detail
        for _ in range(int(steps)):
            dy, dx = random_shift(rng, jitter)
            a = forward_through(links, roll(x, dy, dx)[None].astype(dtype), cache=True)
            sel = a if channels is None else a[:, list(channels)]
            history.append(float(0.5 * np.mean(sel.astype(np.float64) ** 2)))
            da = np.zeros_like(a)
            if channels is None:
                da[...] = a / a.size
            else:
                da[:, list(channels)] = sel / sel.size
            g = roll(backward_through(links, da)[0].astype(np.float64), -dy, -dx)
            if highpass > 0:
                g = g - gaussian_blur(g, highpass)
            x = np.clip(x + lr * g / (np.abs(g).mean() + 1e-12), 0.0, 1.0)
        detail = x - resize_chw(base, size)
    delta = detail
    if base.shape[0] == 1 and image.shape[0] == 3:
        delta = np.repeat(delta, 3, axis=0)
    dream = np.clip(image + delta, 0.0, 1.0)
    try:
        field = receptive_field(links)[2]
    except ValueError:
        field = None
    return {"image": dream.astype(np.float32), "delta": (dream - image).astype(np.float32),
            "objective": history, "layer": links[-1][0], "field": field}


def plot_deepdream(image, results, path=None, title=None):
    """The photo and one or more dreams side by side (``results``: list of
    :func:`deepdream` outputs, each labelled with its layer)."""
    def label(r):
        f = r.get("field")
        return f"dream at {r['layer']!r}" + (f" (sees {f[0]}x{f[1]} px)" if f else "")

    panels = [(image, "photo")] + [(r["image"], label(r)) for r in results]
    n = len(panels)
    h, w = np.asarray(image).shape[1:]
    pw = 4.2
    fig = new_figure(figsize=(pw * n, pw * h / w + 0.8))
    for i, (img, label) in enumerate(panels):
        ax = fig.add_subplot(1, n, i + 1)
        ax.imshow(np.clip(to_hwc(np.asarray(img)), 0, 1), cmap="gray", vmin=0, vmax=1)
        ax.set_title(label, fontsize=10)
        ax.axis("off")
    fig.suptitle(title or "DeepDream: the net amplifies what it sees in the photo", fontsize=11)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig
