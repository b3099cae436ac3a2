"""Fully connected -> convolution: the Dense head of a conv net as equivalent convolutions
(OverFeat; Andrew Ng's "convolutional implementation of sliding windows").

A Dense layer that reads a (C, h, w) volume is a convolution with K = units filters of
size h x w: filter k is column k of the weight matrix reshaped to (C, h, w), in the
channels-first order Flatten uses; the Dense layers after it read (units, 1, 1) volumes,
so each is a 1x1 convolution. On a larger input the converted net returns a grid of
scores, one per window at the net's total stride (see cnnlab.viz.fully_conv).
"""
from __future__ import annotations

import numpy as np

from ..layers import (
    Activation, BatchNorm, Conv2D, Dense, Dropout, Flatten, chain, deserialize, get_registered,
    serialize,
)

__all__ = ["to_fully_convolutional", "split_head", "copy_arrays"]


def copy_arrays(src, dst):
    """Copy layer ``src``'s params and state into the same-shaped arrays of ``dst``."""
    for key, arr in src.params.items():
        np.copyto(dst.params[key], arr)
    for key, arr in src.state.items():
        np.copyto(dst.state[key], arr)


def split_head(model):
    """``model``'s :func:`cnnlab.layers.chain` links split in two -> (feature links, head
    links): the head starts at the first Flatten or Dense layer. ValueError if there is none."""
    links = chain(model)
    for i, (_, layer) in enumerate(links):
        if isinstance(layer, (Flatten, Dense)):
            return links[:i], links[i:]
    raise ValueError("the model has no Flatten/Dense layer: it is already fully convolutional")


def to_fully_convolutional(model):
    """A new model (``cnnlab.Sequential``) computing the same function as ``model`` with
    its Dense layers as convolutions (Flatten dropped). Weights are copied; ``model`` is
    not changed. The first Dense after a (C, h, w) volume becomes ``Conv2D(units, (h, w))``,
    later ones ``Conv2D(units, 1)``; activations, dropout and batch norm after them are
    kept. The new model accepts inputs at least as large as the original (its output is
    then (N, classes, gh, gw); on the original size (N, classes, 1, 1)).

    Raises ValueError for layers in the head it cannot convert (e.g. a global average
    pooling before the Dense layers: that net is already size-independent)."""
    if not getattr(model, "built", False):
        raise ValueError("build the model first (give input_shape or run a forward pass)")
    if len(model.input_shape) != 3:
        raise ValueError(f"to_fully_convolutional works on image models (C, H, W); the model "
                         f"takes samples of shape {model.input_shape}")
    features, head = split_head(model)
    shape = model.input_shape
    new_layers, pairs = [], []
    for _, layer in features:
        clone = deserialize(serialize(layer))
        new_layers.append(clone)
        pairs.append((layer, clone, None))
        shape = layer.compute_output_shape(shape)
    if len(shape) != 3:
        raise ValueError(f"the Dense layers must read a (C, h, w) volume; the layers before them "
                         f"output shape {shape}")
    for name, layer in head:
        if isinstance(layer, Flatten):
            continue
        if isinstance(layer, Dense):
            c, h, w = shape
            conv = Conv2D(layer.units, (h, w), use_bias=layer.use_bias, activation=layer.activation,
                          name=f"{layer.name}_as_conv")
            kernel = layer.params["w"].T.reshape(layer.units, c, h, w)
            new_layers.append(conv)
            pairs.append((layer, conv, kernel))
            shape = (layer.units, 1, 1)
        elif isinstance(layer, (Activation, Dropout, BatchNorm)):
            clone = deserialize(serialize(layer))
            new_layers.append(clone)
            pairs.append((layer, clone, None))
        else:
            raise ValueError(f"cannot convert the {type(layer).__name__} layer {name!r} after the "
                             f"first Dense layer (only Dense, Flatten, activations, dropout and "
                             f"batch norm)")
    # cnnlab.Sequential by its registered name: model.py imports this module
    # (Model.to_fully_convolutional), so importing model.py here would be a circle
    model_cls = get_registered("Model")
    fcn = model_cls(new_layers, input_shape=model.input_shape,
                    name=f"{model.name}_fully_conv", dtype=model.dtype)
    for old, new, kernel in pairs:
        if kernel is None:
            copy_arrays(old, new)
        else:
            np.copyto(new.params["w"], kernel)
            if old.use_bias:
                np.copyto(new.params["b"], old.params["b"])
    return fcn


_copy_arrays, _split = copy_arrays, split_head  # the old private names
