"""Max and average pooling in 1, 2 and 3 dimensions, and global average pooling.

One N-d implementation each; the 1-D/2-D/3-D names fix the rank.

    max:  out[n, c, o] = max_t  xpad[n, c, o * stride + t]   (padding is -inf: never wins)
    avg:  out[n, c, o] = mean_t xpad[n, c, o * stride + t]   (padding is 0 and counted)

x (N, C, *S) -> (N, C, *O), O = floor((S + 2p - k) / stride) + 1. No parameters.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import kernels
from ._args import (
    as_float_array,
    as_tuple,
    check_cache,
    check_dout,
    check_ndim,
    check_spatial_rank,
    output_shape,
    resolve_padding,
)

_LAYOUT = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}


class MaxPoolCache(NamedTuple):
    """What :func:`maxpoolnd_backward` needs (``wins``: the winner masks)."""

    wins: object
    x_shape: tuple
    dtype: np.dtype
    kernel: tuple
    stride: tuple
    pads: tuple
    order: tuple
    out_shape: tuple


class AvgPoolCache(NamedTuple):
    """What :func:`avgpoolnd_backward` needs."""

    x_shape: tuple
    dtype: np.dtype
    kernel: tuple
    stride: tuple
    pads: tuple
    order: tuple
    out_shape: tuple


class GlobalAvgPoolCache(NamedTuple):
    """What :func:`global_avgpool_backward` needs."""

    x_shape: tuple


def _setup(x, pool_size, stride, padding, nsp):
    x = as_float_array(x, "x")
    if nsp < 1:
        check_spatial_rank(x, what="pooling")
    check_ndim(x, nsp + 2, "x", _LAYOUT[nsp])
    kernel = as_tuple(pool_size, nsp, "pool_size")
    stride = kernel if stride is None else as_tuple(stride, nsp, "stride")
    pads = resolve_padding(padding, kernel, stride, (1,) * nsp)
    for (lo, hi), k in zip(pads, kernel):
        if max(lo, hi) > k // 2:
            raise ValueError(
                f"pooling padding must be at most half the pool size (as in PyTorch), "
                f"got padding {(lo, hi)} for pool size {k}"
            )
    out_shape = output_shape(x.shape[2:], kernel, stride, pads, (1,) * nsp)
    return x, kernel, stride, pads, out_shape


def maxpoolnd_forward(x, pool_size, stride=None, padding=0, nsp=None, keep_cache=True):
    """Max pooling forward (stride None = pool_size). Returns ``out, cache``;
    ``keep_cache=False`` (inference) records no winner masks and returns ``out, None``."""
    nsp = np.ndim(x) - 2 if nsp is None else nsp
    x, kernel, stride, pads, out_shape = _setup(x, pool_size, stride, padding, nsp)
    out, arg = kernels.maxpool_forward(x, kernel, stride, pads, out_shape, with_arg=keep_cache)
    if not keep_cache:
        return out, None
    return out, MaxPoolCache(
        arg, x.shape, x.dtype, kernel, stride, pads, kernels.memory_order(x), out.shape
    )


def maxpoolnd_backward(dout, cache):
    """dx: each window's upstream gradient goes to its maximum (first one on ties)."""
    arg, shape, dtype, kernel, stride, pads, order, out_shape = check_cache(
        cache, MaxPoolCache, "maxpool"
    )
    return kernels.maxpool_backward(
        check_dout(dout, out_shape, dtype), arg, shape, kernel, stride, pads, order
    )


def avgpoolnd_forward(x, pool_size, stride=None, padding=0, nsp=None):
    """Average pooling forward (stride None = pool_size). Returns ``out, cache``."""
    nsp = np.ndim(x) - 2 if nsp is None else nsp
    x, kernel, stride, pads, out_shape = _setup(x, pool_size, stride, padding, nsp)
    out = kernels.avgpool_forward(x, kernel, stride, pads, out_shape)
    return out, AvgPoolCache(
        x.shape, x.dtype, kernel, stride, pads, kernels.memory_order(x), out.shape
    )


def avgpoolnd_backward(dout, cache):
    """dx: each window's upstream gradient spread evenly, dout / prod(pool_size)."""
    shape, dtype, kernel, stride, pads, order, out_shape = check_cache(
        cache, AvgPoolCache, "avgpool"
    )
    return kernels.avgpool_backward(
        check_dout(dout, out_shape, dtype), shape, kernel, stride, pads, order
    )


def _named(fn, nsp, doc):
    def op(x, pool_size, stride=None, padding=0, **options):
        return fn(x, pool_size, stride, padding, nsp=nsp, **options)

    op.__doc__ = doc
    return op


maxpool1d_forward = _named(
    maxpoolnd_forward, 1, "1-D max pooling: x (N, C, L) -> (N, C, L'). Returns out, cache."
)
maxpool2d_forward = _named(
    maxpoolnd_forward, 2, "2-D max pooling: x (N, C, H, W) -> (N, C, H', W'). Returns out, cache."
)
maxpool3d_forward = _named(
    maxpoolnd_forward, 3, "3-D max pooling: x (N, C, D, H, W) -> (N, C, D', H', W')."
)
avgpool1d_forward = _named(
    avgpoolnd_forward, 1, "1-D average pooling: x (N, C, L) -> (N, C, L'). Returns out, cache."
)
avgpool2d_forward = _named(
    avgpoolnd_forward, 2, "2-D average pooling: x (N, C, H, W) -> (N, C, H', W')."
)
avgpool3d_forward = _named(
    avgpoolnd_forward, 3, "3-D average pooling: x (N, C, D, H, W) -> (N, C, D', H', W')."
)
maxpool1d_backward = maxpool2d_backward = maxpool3d_backward = maxpoolnd_backward
avgpool1d_backward = avgpool2d_backward = avgpool3d_backward = avgpoolnd_backward


def global_avgpool_forward(x):
    """Global average pooling: x (N, C, *S) -> (N, C), out[n, c] = mean_s x[n, c, s]
    (7x7x1000 -> 1000)."""
    x = as_float_array(x, "x")
    if x.ndim < 3:
        raise ValueError(
            f"x must be (N, C, *spatial) with at least one spatial axis, got shape {x.shape}"
        )
    out = x.mean(axis=tuple(range(2, x.ndim)), dtype=x.dtype)
    return out, GlobalAvgPoolCache(x.shape)


def global_avgpool_backward(dout, cache):
    """dx[n, c, s] = dout[n, c] / prod(S)."""
    (shape,) = check_cache(cache, GlobalAvgPoolCache, "global_avgpool")
    dout = check_dout(dout, shape[:2])
    size = int(np.prod(shape[2:]))
    d = dout / np.asarray(size, dtype=dout.dtype)
    return np.broadcast_to(d.reshape(shape[:2] + (1,) * (len(shape) - 2)), shape).copy()
