"""Route 'im2col': the textbook lowering of a convolution to one matrix product (cs231n's
``conv_forward_im2col``), in N dimensions. The baseline: the fast routes are measured
against it (``benchmarks/bench_ops.py --routes``) and tested against it (tests/test_conv_routes.py);
the automatic choice never takes it.

With T = prod(k) kernel taps and P = prod(O) output positions::

    cols[(c, t), (n, o)] = xpad[n, c, o*stride + t*dilation]         (C*T, N*P)
    out = w2 @ cols + b,   w2 = w.reshape(K, C*T)                      (K, N*P)

    dw = dout2 @ cols^T    db = dout2.sum(1)    dcols = w2^T @ dout2    (dout2: (K, N*P))
    dx = col2im(dcols): each tap t adds its (C, N, *O) slice of dcols back at
         xpad[:, :, o*stride + t*dilation], then the padding is cropped.

One thread, one whole-batch column matrix, the layout of the formulas: clear, and 1.5-4x
slower than the routes that reorder memory.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .layout import offset_slices, taps_nd, unpad

NAME = "im2col"


class Cache(NamedTuple):
    """What :func:`backward` needs."""

    cols: np.ndarray  # (C*T, N*P)
    xp_shape: tuple  # the padded input's shape (N, C, *Sp)
    x_shape: tuple
    route: str = NAME


def applies(x, w, stride, pads, dilation, out_shape, forced=False):
    """Any convolution."""
    return True


def dx_by_correlation(w_shape, stride):
    return False


def windows(xp, kernel, stride, dilation, out_shape):
    """Zero-copy view (C, *k, N, *O) of the padded xp (N, C, *Sp): element [c, t.., n, o..]
    is xp[n, c, o*stride + t*dilation] along each spatial axis."""
    sn, sc, ss = xp.strides[0], xp.strides[1], xp.strides[2:]
    shape = (xp.shape[1],) + tuple(kernel) + (xp.shape[0],) + tuple(out_shape)
    strides = (
        (sc,)
        + tuple(s * d for s, d in zip(ss, dilation))
        + (sn,)
        + tuple(s * st for s, st in zip(ss, stride))
    )
    return as_strided(xp, shape=shape, strides=strides, writeable=False)


def forward(x, w, b, stride, pads, dilation, out_shape, plan=True):
    """out (N, K, *O) and the :class:`Cache`."""
    n, kdim = x.shape[0], w.shape[0]
    xp = np.pad(x, ((0, 0), (0, 0)) + tuple(pads))
    cols = windows(xp, w.shape[2:], stride, dilation, out_shape).reshape(
        -1, n * math.prod(out_shape)
    )
    out = w.reshape(kdim, -1) @ cols
    if b is not None:
        out += b[:, None]
    out = np.ascontiguousarray(np.moveaxis(out.reshape((kdim, n) + tuple(out_shape)), 0, 1))
    return out, Cache(cols, xp.shape, x.shape)


def backward(dout, w, cache, stride, pads, dilation, need_dx=True):
    """(dx or None, dw, db) of :func:`forward`."""
    kdim, c = w.shape[:2]
    kernel = w.shape[2:]
    n, out_shape = dout.shape[0], tuple(dout.shape[2:])
    dout2 = np.moveaxis(dout, 1, 0).reshape(kdim, -1)  # (K, N*P)
    dw = (dout2 @ cache.cols.T).reshape(w.shape)
    db = dout2.sum(axis=1)
    if not need_dx:
        return None, dw, db
    dcols = (w.reshape(kdim, -1).T @ dout2).reshape((c,) + tuple(kernel) + (n,) + out_shape)
    dxp = np.zeros(cache.xp_shape, dtype=dout.dtype)
    for t, offset in taps_nd(kernel):
        tap = dcols[(slice(None),) + tuple(offset)]  # (C, N, *O)
        dxp[(slice(None), slice(None)) + offset_slices(offset, stride, dilation, out_shape)] += (
            np.moveaxis(tap, 0, 1)
        )
    return unpad(dxp, pads), dw, db
