"""Turning fully connected layers into convolutions (OverFeat; Andrew Ng's "convolutional
implementation of sliding windows").

A Dense layer that reads a (C, h, w) volume is a convolution with K = units filters of
size h x w: filter k is column k of the weight matrix, reshaped to (C, h, w) in the same
channels-first order Flatten uses. The Dense layers after it read (units, 1, 1) volumes,
so each is a 1x1 convolution. The converted net computes exactly the same scores on the
original input size -- and on a LARGER input it returns a grid of scores, one per window,
equal to running the original net on every window at a step of the net's total stride
(the product of its conv/pool strides), while sharing the computation of the overlapping
windows. The course's example: 14x14 -> 16x16 gives 2x2 windows, 224 -> 384 a 6x6 grid
at stride 32; LeNet on 28x28 digits: a 44x44 input gives 5x5 scores at stride 4.
"""
from __future__ import annotations

import numpy as np

from ..layers import Conv2D, Dense, chain, deserialize, serialize
from ..training.convert import copy_arrays, split_head, to_fully_convolutional  # noqa: F401 (re-export)
from ._geometry import layer_geometry, receptive_field
from ._graph import forward_through


def total_stride(model):
    """The step, in input pixels, between neighbouring windows of the converted net:
    the product of the strides of the layers before the first Flatten/Dense."""
    features, _ = split_head(model)
    (sy, sx), _, _ = receptive_field(features)
    return sy, sx


def _paddings(model):
    """[(index in the feature links, (pad_lo per axis))] of the feature layers that pad."""
    out = []
    for i, (_, layer) in enumerate(split_head(model)[0]):
        pads = getattr(layer, "_pads", None)
        if pads and any(lo or hi for lo, hi in pads):
            if any(lo != hi for lo, hi in pads):
                raise ValueError(f"layer {layer.name!r} pads unevenly {pads}; not supported here")
            out.append((i, tuple(lo for lo, _ in pads)))
    return out


def _unpadded_copy(model, index):
    """A copy of ``model`` whose feature layer ``index`` (a conv, the only one that pads)
    has no padding, built for the input grown by that padding; same weights."""
    from ..training import Sequential as TrainableSequential

    links = chain(model)
    layers = [deserialize(serialize(layer)) for _, layer in links]
    first = layers[index]
    if not isinstance(first, Conv2D):
        raise ValueError(f"only a padding conv can be moved to the input, not {type(first).__name__}")
    config = first.get_config()
    config["padding"] = 0
    layers[index] = Conv2D.from_config(config)
    pads = [lo for lo, _ in links[index][1]._pads]
    c, h, w = model.input_shape
    copy = TrainableSequential(layers, input_shape=(c, h + 2 * pads[0], w + 2 * pads[1]),
                               dtype=model.dtype)
    for (_, old), new in zip(links, copy.layers):
        copy_arrays(old, new)
    return copy, tuple(pads)


def sliding_window_scores(model, x, stride=None, context=True, batch_size=256):
    """Run the ORIGINAL ``model`` on every window of its input size in ``x`` (N, C, H, W)
    at ``stride`` (default :func:`total_stride`). -> scores (N, classes, gh, gw).

    Padding decides what a window sees at its border. ``context=False``: each window is
    cropped and zero-padded by the model, as if it were a separate image. ``context=True``
    (what the fully convolutional net computes): the padding of a window is filled by the
    pixels around it in ``x`` (zeros only outside ``x``). The two agree for nets without
    padding (the course's examples). With ``context=True`` only the first conv may pad (as
    in LeNet-5 on 28x28 digits): it is evaluated as a copy of the net without that padding
    on (h + 2p) x (w + 2p) windows of the zero-padded ``x``."""
    x = np.asarray(x, dtype=model.dtype)
    if x.ndim == 3:
        x = x[None]
    c, h, w = model.input_shape
    if x.ndim != 4 or x.shape[1] != c or x.shape[2] < h or x.shape[3] < w:
        raise ValueError(f"x must be (N, {c}, H >= {h}, W >= {w}), got {x.shape}")
    sy, sx = total_stride(model) if stride is None else (int(stride), int(stride))
    gh, gw = (x.shape[2] - h) // sy + 1, (x.shape[3] - w) // sx + 1
    net, py, px = model, 0, 0
    pads = _paddings(model) if context else []
    if pads:
        before = split_head(model)[0][:pads[0][0]]
        if len(pads) > 1 or any(layer_geometry(layer) is not None for _, layer in before):
            raise ValueError("context=True needs a net whose only padding is in its first conv "
                             "layer; use context=False (zero-padded windows) for this net")
        net, (py, px) = _unpadded_copy(model, pads[0][0])
        x = np.pad(x, ((0, 0), (0, 0), (py, py), (px, px)))
    wh, ww = h + 2 * py, w + 2 * px
    crops = np.stack([x[:, :, i * sy:i * sy + wh, j * sx:j * sx + ww]
                      for i in range(gh) for j in range(gw)], axis=1)   # (N, gh*gw, C, wh, ww)
    flat = crops.reshape((-1, c, wh, ww))
    links = chain(net)
    out = np.concatenate([forward_through(links, flat[k:k + batch_size], cache=False)
                          for k in range(0, len(flat), batch_size)])
    return out.reshape(x.shape[0], gh, gw, -1).transpose(0, 3, 1, 2)


def conversion_table(model):
    """[(original layer, new layer, weights shape before -> after)] for the head."""
    fcn = to_fully_convolutional(model)
    new = {q.rsplit("/", 1)[-1]: layer for q, layer in chain(fcn)}
    rows = []
    for name, layer in split_head(model)[1]:
        if isinstance(layer, Dense):
            conv = new[f"{layer.name}_as_conv"]
            rows.append((f"{name}: Dense w {tuple(layer.params['w'].shape)}",
                         f"{conv.name}: Conv2D {conv.filters}@{conv.kernel_size[0]}x"
                         f"{conv.kernel_size[1]}, w {tuple(conv.params['w'].shape)}"))
    return rows
