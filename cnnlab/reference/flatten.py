"""Flatten as a loop over the positions of a sample, in C order (channels first):

    out[n, i] = x[n, c, h, w]   with i = (c * H + h) * W + w        (N, C, H, W) -> (N, C*H*W)
    dx[n, c, h, w] = dout[n, i]
"""
from __future__ import annotations

import itertools

import numpy as np


def flatten_forward(x):
    """x (N, *S) -> ``out`` (N, prod S), ``cache`` (the shape of x)."""
    x = np.asarray(x)
    if x.ndim < 1:
        raise ValueError("x must be (N, ...) with a batch axis, got a scalar")
    positions = list(itertools.product(*(range(s) for s in x.shape[1:])))
    out = np.empty((x.shape[0], len(positions)), dtype=x.dtype)
    for i, pos in enumerate(positions):
        out[:, i] = x[(slice(None),) + pos]
    return out, x.shape


def flatten_backward(dout, cache):
    """dout (N, prod S) -> dx (N, *S): every number back at its position."""
    shape = tuple(cache)
    dx = np.empty(shape, dtype=np.asarray(dout).dtype)
    for i, pos in enumerate(itertools.product(*(range(s) for s in shape[1:]))):
        dx[(slice(None),) + pos] = dout[:, i]
    return dx
