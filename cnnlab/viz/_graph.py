"""Running part of a model and back-propagating to its input: the plumbing of every
"looking inside" tool.

A model is seen as a chain of layers: its ``.layers``, with nested ``Sequential``
containers opened up (their names joined by '/': 'block/conv2d'); ``Concat`` and
``Residual`` blocks stay single links. Gradients use inference behaviour
(``forward(x, training=False, cache=True)`` then ``backward``), so dropout is off and batch
norm uses its running statistics.
"""
from __future__ import annotations

import numpy as np

from ..layers import Activation, BatchNorm, Conv1D, Conv2D, Conv3D, Layer, chain

CONV_TYPES = (Conv1D, Conv2D, Conv3D)


def layer_names(model):
    return [q for q, _ in chain(model)]


def resolve_layer(model, layer):
    """Index into ``chain(model)`` of ``layer``: a qualified name, a chain index (negative
    counts from the end) or the layer object itself. Raises a KeyError naming the layers."""
    links = chain(model)
    names = [q for q, _ in links]
    if isinstance(layer, Layer):
        for i, (_, obj) in enumerate(links):
            if obj is layer:
                return i
        raise KeyError(f"layer {layer!r} is not in the model; its layers: {names}")
    if isinstance(layer, (int, np.integer)) and not isinstance(layer, bool):
        i = int(layer)
        if not -len(links) <= i < len(links):
            raise KeyError(f"layer index {i} is out of range: the model has {len(links)} layers {names}")
        return i % len(links)
    if isinstance(layer, str):
        if layer in names:
            return names.index(layer)
        short = [i for i, q in enumerate(names) if q.rsplit("/", 1)[-1] == layer]
        if len(short) == 1:
            return short[0]
        raise KeyError(f"no layer named {layer!r}; the model's layers: {names}")
    raise TypeError(f"layer must be a name, an index or a Layer, got {type(layer).__name__}")


def as_batch(x, model=None):
    """One sample (C, H, W) or a batch (N, C, H, W) -> (batch float array, was_single).

    With ``model`` built, a single sample is recognized by its rank."""
    x = np.asarray(x)
    if x.dtype.kind not in "fiub":
        raise TypeError(f"x must hold numbers, got dtype {x.dtype}")
    rank = len(model.input_shape) if model is not None and getattr(model, "input_shape", None) else 3
    if x.ndim == rank:
        return x[None].astype(np.float32), True
    if x.ndim == rank + 1:
        return x.astype(np.float32), False
    raise ValueError(f"x must be one sample of {rank} dims (e.g. (C, H, W)) or a batch of them, "
                     f"got shape {x.shape}")


def model_dtype(model):
    return getattr(model, "dtype", None) or np.float32


def forward_through(links, x, cache):
    """Run ``x`` through the (name, layer) ``links`` in inference behaviour."""
    for _, layer in links:
        x = layer.forward(x, training=False, cache=cache)
    return x


def backward_through(links, dout):
    """Back-propagate ``dout`` through ``links`` (run forward with cache=True first)."""
    for _, layer in reversed(links):
        dout = layer.backward(dout)
    return dout


def activation(model, x, layer):
    """Output of ``layer`` for input batch ``x`` (inference, no caches kept)."""
    links = chain(model)
    i = resolve_layer(model, layer)
    return forward_through(links[:i + 1], x, cache=False)


def score_layer(model):
    """Index of the layer whose output are the class scores: the last one, or the one
    before a trailing Softmax layer (gradients of raw scores, not of probabilities)."""
    links = chain(model)
    i = len(links) - 1
    if type(links[i][1]).__name__ == "Softmax" and i > 0:
        i -= 1
    return i


def _has_conv(layer):
    if isinstance(layer, CONV_TYPES):
        return True
    return any(_has_conv(child) for child in getattr(layer, "layers", ()) or ()) or any(
        _has_conv(getattr(layer, part, None)) for part in ("body", "shortcut")
        if getattr(layer, part, None) is not None)


def last_conv_index(model):
    """Index of the last link holding a convolution (a conv layer, or a Residual / Concat
    block with convs inside: a ResNet's last block), moved past the batch norm and the
    activation right after it (conv - BN - ReLU: the CAM family wants the rectified maps,
    not the raw conv output)."""
    links = chain(model)
    idx = [i for i, (_, layer) in enumerate(links) if _has_conv(layer)]
    if not idx:
        raise ValueError(f"the model has no convolution layer; its layers: {layer_names(model)}")
    i = idx[-1]
    if i + 1 < len(links) and isinstance(links[i + 1][1], BatchNorm):
        i += 1
    if i + 1 < len(links) and isinstance(links[i + 1][1], Activation):
        i += 1
    return i


