"""Convolution (cross-correlation, as the courses define it) in 1, 2 and 3 dimensions.

One N-d implementation, :func:`convnd_forward` / :func:`convnd_backward`; the named
1-D/2-D/3-D functions are thin wrappers that fix the input rank.

    out[n, k, o] = b[k] + sum_{c, t} w[k, c, t] * xpad[n, c, o * stride + t * dilation]

Shapes: x (N, C, *S), w (K, C, *k), b (K,) or None -> out (N, K, *O) with
O = floor((S + p_lo + p_hi - d(k - 1) - 1) / stride) + 1 per axis.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import kernels
from ._args import (
    as_float_array,
    as_tuple,
    check_cache,
    check_conv_memory,
    check_conv_sizes,
    check_dout,
    check_ndim,
    check_spatial_rank,
    output_shape,
    resolve_padding,
)

_LAYOUT = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}
_WLAYOUT = {1: "(K, C, f)", 2: "(K, C, kh, kw)", 3: "(K, C, kd, kh, kw)"}


class ConvCache(NamedTuple):
    """What :func:`convnd_backward` needs; ``kernel`` (last) is the route's own cache,
    None for an empty batch."""

    w: np.ndarray
    has_bias: bool
    stride: tuple
    pads: tuple
    dilation: tuple
    x_shape: tuple
    out_shape: tuple
    kernel: object


def convnd_forward(x, w, b=None, stride=1, padding=0, dilation=1, nsp=None):
    """N-d convolution forward. Returns ``out, cache``.

    ``stride``/``dilation``: int or per-axis tuple; ``padding``: int, per-axis tuple,
    per-axis (lo, hi) pairs, or 'valid' / 'same' (stride 1) / 'full'.
    """
    x = as_float_array(x, "x")
    w = as_float_array(w, "w")
    if nsp is None:
        check_spatial_rank(x)
        nsp = x.ndim - 2
    check_ndim(x, nsp + 2, "x", _LAYOUT.get(nsp, f"(N, C, {nsp} spatial axes)"))
    check_ndim(w, nsp + 2, "w", _WLAYOUT.get(nsp, f"(K, C, {nsp} kernel axes)"))
    if w.shape[1] != x.shape[1]:
        raise ValueError(
            f"channel mismatch: x has C={x.shape[1]} channels (shape {x.shape}) but w expects "
            f"C={w.shape[1]} (shape {w.shape})"
        )
    check_conv_sizes(x, w)
    if b is not None:
        b = as_float_array(b, "b")
        if b.shape != (w.shape[0],):
            raise ValueError(
                f"b must have shape ({w.shape[0]},) (one bias per filter), got {b.shape}"
            )
    dtype = np.result_type(x.dtype, w.dtype, *(() if b is None else (b.dtype,)))
    x, w = x.astype(dtype, copy=False), w.astype(dtype, copy=False)
    if b is not None:
        b = b.astype(dtype, copy=False)
    kernel = w.shape[2:]
    stride = as_tuple(stride, nsp, "stride")
    dilation = as_tuple(dilation, nsp, "dilation")
    pads = resolve_padding(padding, kernel, stride, dilation)
    out_shape = output_shape(x.shape[2:], kernel, stride, pads, dilation)
    check_conv_memory(x.shape, w.shape[0], pads, out_shape, dtype.itemsize)
    if x.shape[0] == 0:  # an empty batch gives an empty output, as in PyTorch
        out, kcache = np.zeros((0, w.shape[0]) + out_shape, dtype), None
    else:
        out, kcache = kernels.conv_forward(x, w, b, stride, pads, dilation, out_shape)
    cache = ConvCache(w, b is not None, stride, pads, dilation, x.shape, out.shape, kcache)
    return out, cache


def convnd_backward(dout, cache, need_dx=True):
    """N-d convolution backward -> (dx, dw, db); db is None when there was no bias.

    dw[k, c, t] = sum_{n, o} dout[n, k, o] * xpad[n, c, o*s + t*d];  db[k] = sum dout[:, k]
    dx = the transposed convolution of dout with w (scattered back, padding cropped).
    """
    w, has_bias, stride, pads, dilation, x_shape, out_shape, kcache = check_cache(
        cache, ConvCache, "conv"
    )
    dout = check_dout(dout, out_shape, w.dtype)
    if kcache is None:  # empty batch: no gradient flows
        dx = np.zeros(x_shape, w.dtype) if need_dx else None
        dw, db = np.zeros_like(w), np.zeros(w.shape[0], w.dtype)
    else:
        dx, dw, db = kernels.conv_backward(dout, w, kcache, stride, pads, dilation, need_dx)
    return dx, dw, (db if has_bias else None)


def conv1d_forward(x, w, b=None, stride=1, padding=0, dilation=1):
    """1-D convolution: x (N, C, L), w (K, C, f), b (K,) or None -> (N, K, L_out)."""
    return convnd_forward(x, w, b, stride, padding, dilation, nsp=1)


def conv2d_forward(x, w, b=None, stride=1, padding=0, dilation=1):
    """2-D convolution: x (N, C, H, W), w (K, C, kh, kw), b (K,) or None -> (N, K, H', W')."""
    return convnd_forward(x, w, b, stride, padding, dilation, nsp=2)


def conv3d_forward(x, w, b=None, stride=1, padding=0, dilation=1):
    """3-D convolution: x (N, C, D, H, W), w (K, C, kd, kh, kw) -> (N, K, D', H', W')."""
    return convnd_forward(x, w, b, stride, padding, dilation, nsp=3)


conv1d_backward = conv2d_backward = conv3d_backward = convnd_backward
