"""Max and average pooling with explicit loops, and global average pooling.

    max:  out[n, c, o] = max_t  xpad[n, c, o*s + t]   (padding -inf: a padded cell never wins)
    avg:  out[n, c, o] = mean_t xpad[n, c, o*s + t]   (padding 0, counted in the mean)

x (N, C, *S) -> (N, C, *O), O = floor((S + 2p - k) / s) + 1; stride None = pool size.
"""
from __future__ import annotations

import numpy as np

from ._checks import check_ndim, crop, int_tuple, out_sizes, pad_pairs, to_float, window, zero_pad


def _setup(x, pool_size, stride, padding, nsp):
    x = to_float(x, "x")
    nsp = x.ndim - 2 if nsp is None else nsp
    check_ndim(x, nsp + 2, "x")
    kernel = int_tuple(pool_size, nsp, "pool_size")
    stride = kernel if stride is None else int_tuple(stride, nsp, "stride")
    ones = (1,) * nsp
    pads = pad_pairs(padding, kernel, stride, ones)
    for (lo, hi), k in zip(pads, kernel):
        # PyTorch's rule; beyond it a window could hold padding only
        if max(lo, hi) > k // 2:
            raise ValueError(f"pooling padding must be at most half the pool size, got {(lo, hi)} for {k}")
    out_shape = out_sizes(x.shape[2:], kernel, stride, pads, ones)
    return x, kernel, stride, pads, out_shape


def maxpoolnd_forward(x, pool_size, stride=None, padding=0, nsp=None):
    """x (N, C, *S) -> ``out (N, C, *O), cache``; out = max over each window."""
    x, kernel, stride, pads, out_shape = _setup(x, pool_size, stride, padding, nsp)
    xpad = zero_pad(x, pads, -np.inf)
    ones = (1,) * len(kernel)
    out = np.zeros(x.shape[:2] + out_shape, dtype=x.dtype)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            for o in np.ndindex(*out_shape):
                out[(n, c) + o] = np.max(xpad[(n, c) + window(o, kernel, stride, ones)])
    return out, (xpad, kernel, stride, pads)


def maxpoolnd_backward(dout, cache):
    """dx: each window's dout goes to the position of its maximum (the first one, in
    row-major order, on ties -- np.argmax's rule and PyTorch's)."""
    xpad, kernel, stride, pads = cache
    ones = (1,) * len(kernel)
    dxpad = np.zeros_like(xpad)
    for n in range(dout.shape[0]):
        for c in range(dout.shape[1]):
            for o in np.ndindex(*dout.shape[2:]):
                win = window(o, kernel, stride, ones)
                t = np.unravel_index(np.argmax(xpad[(n, c) + win]), kernel)
                pos = tuple(sl.start + ti for sl, ti in zip(win, t))
                dxpad[(n, c) + pos] += dout[(n, c) + o]
    return crop(dxpad, pads)


def avgpoolnd_forward(x, pool_size, stride=None, padding=0, nsp=None):
    """x (N, C, *S) -> ``out (N, C, *O), cache``; out = sum(window) / prod(pool_size)."""
    x, kernel, stride, pads, out_shape = _setup(x, pool_size, stride, padding, nsp)
    xpad = zero_pad(x, pads, 0.0)
    ones = (1,) * len(kernel)
    size = int(np.prod(kernel))
    out = np.zeros(x.shape[:2] + out_shape, dtype=x.dtype)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            for o in np.ndindex(*out_shape):
                out[(n, c) + o] = np.sum(xpad[(n, c) + window(o, kernel, stride, ones)]) / size
    return out, (xpad.shape, x.dtype, kernel, stride, pads)


def avgpoolnd_backward(dout, cache):
    """dx: each window's dout shared equally, dout / prod(pool_size) to every cell."""
    padded_shape, dtype, kernel, stride, pads = cache
    ones = (1,) * len(kernel)
    size = int(np.prod(kernel))
    dxpad = np.zeros(padded_shape, dtype=dtype)
    for n in range(dout.shape[0]):
        for c in range(dout.shape[1]):
            for o in np.ndindex(*dout.shape[2:]):
                dxpad[(n, c) + window(o, kernel, stride, ones)] += dout[(n, c) + o] / size
    return crop(dxpad, pads)


def _named(fn, nsp, doc):
    def op(x, pool_size, stride=None, padding=0):
        return fn(x, pool_size, stride, padding, nsp=nsp)
    op.__doc__ = doc
    op.__name__ = fn.__name__.replace("nd", f"{nsp}d")
    return op


maxpool1d_forward = _named(maxpoolnd_forward, 1, "x (N, C, L) -> (N, C, L'), cache; max per window.")
maxpool2d_forward = _named(maxpoolnd_forward, 2, "x (N, C, H, W) -> (N, C, H', W'), cache; max per window.")
maxpool3d_forward = _named(maxpoolnd_forward, 3, "x (N, C, D, H, W) -> (N, C, D', H', W'), cache; max.")
avgpool1d_forward = _named(avgpoolnd_forward, 1, "x (N, C, L) -> (N, C, L'), cache; mean per window.")
avgpool2d_forward = _named(avgpoolnd_forward, 2, "x (N, C, H, W) -> (N, C, H', W'), cache; mean.")
avgpool3d_forward = _named(avgpoolnd_forward, 3, "x (N, C, D, H, W) -> (N, C, D', H', W'), cache; mean.")
maxpool1d_backward = maxpool2d_backward = maxpool3d_backward = maxpoolnd_backward
avgpool1d_backward = avgpool2d_backward = avgpool3d_backward = avgpoolnd_backward


def global_avgpool_forward(x):
    """x (N, C, *S) -> ``out (N, C), cache``; out[n, c] = mean of the map x[n, c]."""
    x = to_float(x, "x")
    if x.ndim < 3:
        raise ValueError(f"x must be (N, C, *spatial) with a spatial axis, got shape {x.shape}")
    out = np.zeros(x.shape[:2], dtype=x.dtype)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            out[n, c] = np.sum(x[n, c]) / x[n, c].size
    return out, x.shape


def global_avgpool_backward(dout, cache):
    """dout (N, C) -> dx (N, C, *S); dx[n, c, s] = dout[n, c] / prod(S)."""
    shape = cache
    dout = np.asarray(dout)
    dx = np.zeros(shape, dtype=dout.dtype)
    size = int(np.prod(shape[2:]))
    for n in range(shape[0]):
        for c in range(shape[1]):
            dx[n, c] = dout[n, c] / size
    return dx
