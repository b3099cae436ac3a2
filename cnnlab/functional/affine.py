"""Fully connected (affine) layer: out = x.reshape(N, D) @ w + b.

x (N, d_1, ..., d_k) with D = prod(d_i), w (D, M), b (M,) -> out (N, M).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ._args import as_float_array, check_cache, check_dout


class AffineCache(NamedTuple):
    """What :func:`affine_backward` needs: x as (N, D), x's shape, w, whether b was given."""

    x2: np.ndarray
    x_shape: tuple
    w: np.ndarray
    has_bias: bool


def affine_forward(x, w, b):
    """Returns ``out, cache`` with out = x.reshape(N, D) @ w + b."""
    x = as_float_array(x, "x")
    w = as_float_array(w, "w")
    if x.ndim < 1:
        raise ValueError("x must have a batch axis, got a scalar")
    if w.ndim != 2:
        raise ValueError(f"w must be 2-D (D, M), got shape {w.shape}")
    d = math.prod(x.shape[1:])
    if d != w.shape[0]:
        raise ValueError(
            f"x has D={d} features per sample (shape {x.shape}) but w expects D={w.shape[0]} (shape {w.shape})"
        )
    x2 = x.reshape(x.shape[0], d)
    out = x2 @ w
    if b is not None:
        b = as_float_array(b, "b")
        if b.shape != (w.shape[1],):
            raise ValueError(f"b must have shape ({w.shape[1]},), got {b.shape}")
        out += b
    return out, AffineCache(x2, x.shape, w, b is not None)


def affine_backward(dout, cache):
    """-> (dx, dw, db): dx = dout @ w^T (in x's shape), dw = x^T @ dout, db = sum_n dout."""
    x2, shape, w, has_b = check_cache(cache, AffineCache, "affine")
    dout = check_dout(dout, (x2.shape[0], w.shape[1]))
    dx = (dout @ w.T).reshape(shape)
    dw = x2.T @ dout
    db = dout.sum(axis=0) if has_b else None
    return dx, dw, db
