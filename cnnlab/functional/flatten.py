"""Flatten: (N, d_1, ..., d_k) -> (N, d_1 * ... * d_k), channels-first order (as PyTorch).

    forward:  out = x.reshape(N, -1)      backward:  dx = dout.reshape(x.shape)

The gradient comes back in the memory layout of x (channels- or batch-last when a conv
made it), where the layers before work on it: mixed layouts cost them ~3x.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import kernels
from ._args import check_cache, check_dout


class FlattenCache(NamedTuple):
    """What :func:`flatten_backward` needs."""

    x_shape: tuple
    order: tuple  # x's memory order


def flatten_forward(x):
    """x (N, *S) -> out (N, prod S) (a copy unless x is C-contiguous), cache."""
    x = np.asarray(x)
    if x.ndim < 1:
        raise ValueError("x must be (N, ...) with a batch axis, got a scalar")
    # the size spelled out, not -1: reshape(0, -1) fails on an empty batch
    out = x.reshape(x.shape[0], int(np.prod(x.shape[1:])))
    return out, FlattenCache(x.shape, kernels.memory_order(x))


def flatten_backward(dout, cache):
    """dout (N, prod S) -> dx (N, *S) in x's memory layout."""
    shape, order = check_cache(cache, FlattenCache, "flatten")
    dout = check_dout(dout, (shape[0], int(np.prod(shape[1:]))))
    if order == tuple(range(len(shape))):
        return dout.reshape(shape)
    dx = kernels.empty_in_order(shape, dout.dtype, order)
    dx[...] = dout.reshape(shape)
    return dx
