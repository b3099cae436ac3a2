"""Fully connected (affine) layer, one sample at a time.

x (N, d_1, ..., d_k), D = prod(d_i), w (D, M), b (M,) or None -> out (N, M):
    out[i] = flatten(x[i]) @ w + b
"""
from __future__ import annotations

import numpy as np

from ._checks import to_float


def affine_forward(x, w, b):
    """-> ``out (N, M), cache``; out[i, j] = sum_d x[i, d] w[d, j] + b[j]."""
    x, w = to_float(x, "x"), to_float(w, "w")
    if w.ndim != 2:
        raise ValueError(f"w must be 2-D (D, M), got shape {w.shape}")
    n = x.shape[0]
    x2 = x.reshape(n, -1)  # flatten each sample
    if x2.shape[1] != w.shape[0]:
        raise ValueError(f"x has D={x2.shape[1]} features per sample but w expects D={w.shape[0]}")
    if b is not None:
        b = to_float(b, "b")
        if b.shape != (w.shape[1],):
            raise ValueError(f"b must have shape ({w.shape[1]},), got {b.shape}")
    out = np.zeros((n, w.shape[1]), dtype=np.result_type(x, w))
    for i in range(n):
        out[i] = x2[i] @ w + (0 if b is None else b)
    return out, (x, w, b is not None)


def affine_backward(dout, cache):
    """-> (dx, dw, db): dx = dout @ w^T (in x's shape), dw = x^T @ dout, db = sum_i dout[i]."""
    x, w, has_b = cache
    x2 = x.reshape(x.shape[0], -1)
    dx = (dout @ w.T).reshape(x.shape)
    dw = np.zeros_like(w, dtype=dout.dtype)
    for i in range(x.shape[0]):
        dw += np.outer(x2[i], dout[i])  # each sample's contribution
    db = dout.sum(axis=0) if has_b else None
    return dx, dw, db
