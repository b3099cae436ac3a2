"""Convolution (cross-correlation, as the courses define it) with explicit loops.

One N-d loop implementation; the 1-D/2-D/3-D names fix the rank.

    out[n, k, o] = b[k] + sum_{c, t} w[k, c, t] * xpad[n, c, o*s + t*d]

x (N, C, *S), w (K, C, *f), b (K,) or None -> out (N, K, *O),
O = floor((S + p_lo + p_hi - d(f - 1) - 1) / s) + 1 per axis.
"""
from __future__ import annotations

import numpy as np

from ._checks import check_ndim, crop, int_tuple, out_sizes, pad_pairs, to_float, window, zero_pad


def convnd_forward(x, w, b=None, stride=1, padding=0, dilation=1, nsp=None):
    """x (N, C, *S), w (K, C, *f), b (K,) -> ``out (N, K, *O), cache``;
    out[n, k, o] = b[k] + sum(w[k] * receptive field of o)."""
    x, w = to_float(x, "x"), to_float(w, "w")
    nsp = x.ndim - 2 if nsp is None else nsp
    check_ndim(x, nsp + 2, "x")
    check_ndim(w, nsp + 2, "w")
    if w.shape[1] != x.shape[1]:
        raise ValueError(f"channel mismatch: x has C={x.shape[1]} channels, w expects C={w.shape[1]}")
    if b is not None:
        b = to_float(b, "b")
        if b.shape != (w.shape[0],):
            raise ValueError(f"b must have shape ({w.shape[0]},) (one bias per filter), got {b.shape}")
    dtype = np.result_type(x, w, *(() if b is None else (b,)))
    kernel = w.shape[2:]
    stride = int_tuple(stride, nsp, "stride")
    dilation = int_tuple(dilation, nsp, "dilation")
    pads = pad_pairs(padding, kernel, stride, dilation)
    out_shape = out_sizes(x.shape[2:], kernel, stride, pads, dilation)
    xpad = zero_pad(x.astype(dtype), pads)
    w = w.astype(dtype)
    n_batch, n_filters = x.shape[0], w.shape[0]
    out = np.zeros((n_batch, n_filters) + out_shape, dtype=dtype)
    for n in range(n_batch):
        for k in range(n_filters):
            for o in np.ndindex(*out_shape):
                field = xpad[(n, slice(None)) + window(o, kernel, stride, dilation)]  # (C, *f)
                out[(n, k) + o] = np.sum(field * w[k]) + (0 if b is None else b[k])
    return out, (xpad, w, b is not None, stride, pads, dilation)


def convnd_backward(dout, cache, need_dx=True):
    """dout (N, K, *O) -> (dx (N, C, *S), dw (K, C, *f), db (K,) or None):
    every output position sends dout*w[k] back to its field and dout*field to dw[k]."""
    xpad, w, has_bias, stride, pads, dilation = cache
    dout = np.asarray(dout, dtype=w.dtype)
    kernel = w.shape[2:]
    dxpad = np.zeros_like(xpad)
    dw = np.zeros_like(w)
    for n in range(dout.shape[0]):
        for k in range(dout.shape[1]):
            for o in np.ndindex(*dout.shape[2:]):
                g = dout[(n, k) + o]
                where = (n, slice(None)) + window(o, kernel, stride, dilation)
                dw[k] += g * xpad[where]
                dxpad[where] += g * w[k]
    db = dout.sum(axis=(0,) + tuple(range(2, dout.ndim))) if has_bias else None
    dx = crop(dxpad, pads) if need_dx else None
    return dx, dw, db


def conv1d_forward(x, w, b=None, stride=1, padding=0, dilation=1):
    """x (N, C, L), w (K, C, f), b (K,) -> (N, K, L'), cache."""
    return convnd_forward(x, w, b, stride, padding, dilation, nsp=1)


def conv2d_forward(x, w, b=None, stride=1, padding=0, dilation=1):
    """x (N, C, H, W), w (K, C, kh, kw), b (K,) -> (N, K, H', W'), cache."""
    return convnd_forward(x, w, b, stride, padding, dilation, nsp=2)


def conv3d_forward(x, w, b=None, stride=1, padding=0, dilation=1):
    """x (N, C, D, H, W), w (K, C, kd, kh, kw), b (K,) -> (N, K, D', H', W'), cache."""
    return convnd_forward(x, w, b, stride, padding, dilation, nsp=3)


conv1d_backward = conv2d_backward = conv3d_backward = convnd_backward
