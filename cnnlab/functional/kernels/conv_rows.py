"""Route 'rows': row blocks with a Toeplitz weight matrix. The route for small maps with
few channels under kernels of 5+ rows and up to 16 filters (LeNet-5's two convs).

Row blocks: a small map with few channels (LeNet's: 1 or 6 maps of 32x32 or 14x14,
5x5 kernels) is cheaper as a convolution over its other axes whose channels are
(C, rows of a block): each block of g output rows reads Hb = (g-1)*s + (kh-1)*d + 1
input rows, and the weights become one Toeplitz matrix in H, (g*K, T_r*C*Hb), shared
by all blocks: w2[(o, k), (t, c, y)] = w[k, c, i, t] where y = o*s + i*d, else 0.
So im2col copies T_r*C*Hb numbers per block instead of kh*T_r*C per output row, the
GEMM has g*K rows instead of K (OpenBLAS crawls at 6 or 16), and the backward scatter
is T_r adds per block instead of kh*T_r. The price: the GEMMs also multiply the
Toeplitz zeros, Hb/kh times the work; blocks are sized to keep that at most
MAX_INFLATION. Measured at batch 64, conv2d_forward / conv2d_backward, plain -> row
blocks: LeNet's second conv (2 blocks of 5 rows: an 80-row GEMM over 2 x 271 x 640
columns instead of 16 rows over 151 x 6400) fwd 0.65 -> 0.46 ms, bwd 1.10 -> 0.90 ms;
its first (7 blocks of 4 rows) fwd 0.58 -> 0.44 ms, dw alone 0.47 -> 0.58 ms (a wash in
a training step, a gain in inference and wherever dx is needed: bwd 1.41 -> 1.24 ms).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import conv_batch_last
from .elementwise import all_finite
from .layout import (
    batch_last_padded,
    empty_in_order,
    from_batch_last_padded,
    images_innermost,
    memory_order,
    offset_slices,
    taps_nd,
    unpad,
)

NAME = "rows"
MAX_INFLATION = 2.0
# With 32 filters the plain GEMM runs well enough that the doubled work loses: 3 -> 32
# channels 3x3 on 32x32 (blocks of 4 rows) went fwd 1.60 -> 1.52 ms but dw 2.58 -> 3.98.
MAX_FILTERS = 16
# A 3-row kernel saves too little of its (short) im2col: 3 -> 16 channels 3x3 on 32x32
# went fwd 1.29 -> 1.10 ms but dw 1.59 -> 2.19 ms and dx 1.78 -> 1.74; 1 -> 8 on 28x28
# fwd+bwd 1.24 -> 1.46 ms; while 3 -> 16 5x5 on 32x32 went fwd 3.31 -> 1.90, fwd+bwd
# 9.8 -> 7.6 ms.
MIN_KERNEL = 5


class Cache(NamedTuple):
    """What :func:`backward` needs."""

    cols: np.ndarray  # (B, T_r*C*Hb + 1, width): the block columns, a row of ones last
    w2: np.ndarray  # the Toeplitz weights (g*K, T_r*C*Hb + 1), the bias last
    g: int  # output rows per block
    xp_shape: tuple  # the padded batch-last input's shape (C, *Sp, N)
    x_shape: tuple
    x_order: tuple  # x's memory order, which dx is handed back in
    route: str = NAME


def applies(x, w, stride, pads, dilation, out_shape, forced=False):
    """The plan: output rows per block g (the most whose input rows stay within
    MAX_INFLATION kernel heights, dividing the output rows) -- or None when the route does
    not apply: fewer than 2 spatial axes, kernels under MIN_KERNEL rows, more than
    MAX_FILTERS filters, no such block, columns over KEEP_BYTES, or a non-finite x (the
    Toeplitz zeros times an inf or NaN would spread it over a whole block). ``forced``
    waives the kernel, filter and inflation limits (which are about speed)."""
    kdim, kernel = w.shape[0], w.shape[2:]
    if len(kernel) < 2 or (not forced and (kernel[0] < MIN_KERNEL or kdim > MAX_FILTERS)):
        return None
    kh, s0, d0, ho = kernel[0], stride[0], dilation[0], out_shape[0]
    blocks = [g for g in range(2, ho + 1) if ho % g == 0]
    fits = [g for g in blocks if (g - 1) * s0 + (kh - 1) * d0 + 1 <= MAX_INFLATION * kh]
    if forced and not fits:
        fits = blocks[:1]
    if not fits:
        return None
    g = fits[-1]
    hb = (g - 1) * s0 + (kh - 1) * d0 + 1
    size = (
        math.prod(kernel[1:]) * x.shape[1] * hb * (ho // g) * math.prod(out_shape[1:]) * x.shape[0]
    )
    if size * x.itemsize > conv_batch_last.KEEP_BYTES or not all_finite(x):
        return None
    return g


def dx_by_correlation(w_shape, stride):
    return False


def toeplitz(w, b, hb, g, s0, d0):
    """w (K, C, kh, *kr), b (K,) or None -> w2 (g*K, T_r*C*Hb + 1), rows (o, k), columns
    (tap over the other axes, c, y) and the bias: w2[(o, k), (t, c, y)] = w[k, c, i, t]
    where y = o*s0 + i*d0, else 0; w2[(o, k), -1] = b[k] (it meets a row of ones in the
    columns, so the GEMM adds the bias and the dw GEMM sums db)."""
    kdim, c, kh = w.shape[:3]
    kr = math.prod(w.shape[3:])
    ncol = kr * c * hb + 1
    m = np.zeros((g, kdim, ncol), dtype=w.dtype)
    so, sk, sq = m.strides
    band = np.ndarray(
        (g, kdim, kr, c, kh),
        dtype=m.dtype,
        buffer=m,  # a view of the band
        strides=(so + s0 * sq, sk, c * hb * sq, hb * sq, d0 * sq),
    )
    band[...] = np.moveaxis(w.reshape(kdim, c, kh, kr), 3, 1)
    if b is not None:
        m[:, :, -1] = b
    return m.reshape(g * kdim, ncol)


def untoeplitz(dm, w_shape, hb, g, s0, d0):
    """The gradient of :func:`toeplitz` from dm (T_r*C*Hb + 1, g*K), the transposed
    gradient of w2: dw[k, c, i, t] = sum_o dm[(t, c, o*s0 + i*d0), (o, k)]; db its last row."""
    kdim, c, kh = w_shape[:3]
    kr = math.prod(w_shape[3:])
    dm = np.ascontiguousarray(dm)
    band = np.ndarray(
        (kdim, c, kh, kr, g),
        dtype=dm.dtype,
        buffer=dm,
        strides=tuple(
            dm.itemsize * v
            for v in (1, hb * g * kdim, d0 * g * kdim, c * hb * g * kdim, kdim + s0 * g * kdim)
        ),
    )
    return band.sum(axis=-1).reshape(w_shape), dm[-1].reshape(g, kdim).sum(axis=0)


def block_windows(xp, g, kernel, stride, dilation, out_shape):
    """(B, *kr, C, Hb, *out_r, N) view of the padded (C, Hp, *Sr, N) ``xp`` (any
    strides): element [b, t, c, y, o, n] is xp[c, b*g*s0 + y, o*s_r + t*d_r, n]."""
    kh, s0, d0 = kernel[0], stride[0], dilation[0]
    hb = (g - 1) * s0 + (kh - 1) * d0 + 1
    sc, sy, sr, sn = xp.strides[0], xp.strides[1], xp.strides[2:-1], xp.strides[-1]
    shape = (
        (out_shape[0] // g,)
        + tuple(kernel[1:])
        + (xp.shape[0], hb)
        + tuple(out_shape[1:])
        + (xp.shape[-1],)
    )
    strides = (
        (g * s0 * sy,)
        + tuple(s * d for s, d in zip(sr, dilation[1:]))
        + (sc, sy)
        + tuple(s * st for s, st in zip(sr, stride[1:]))
        + (sn,)
    )
    if xp.flags.c_contiguous:
        return np.ndarray(shape, dtype=xp.dtype, buffer=xp, strides=strides)  # 10x quicker
    return as_strided(xp, shape=shape, strides=strides, writeable=False)


def forward(x, w, b, stride, pads, dilation, out_shape, plan):
    """y (N, K, *O) as a view of a (Ho, K, *O_r, N) buffer, and the :class:`Cache`;
    ``plan``: the block size g from :func:`applies`."""
    g = plan
    kdim, n = w.shape[0], x.shape[0]
    xp = images_innermost(x, pads)
    if xp is None:
        xp = batch_last_padded(x, pads)
    hb = (g - 1) * stride[0] + (w.shape[2] - 1) * dilation[0] + 1
    w2 = toeplitz(w, b, hb, g, stride[0], dilation[0])
    windows = block_windows(xp, g, w.shape[2:], stride, dilation, out_shape)
    nb, width = windows.shape[0], math.prod(out_shape[1:]) * n
    cols = np.empty((nb, w2.shape[1], width), dtype=x.dtype)
    np.copyto(cols[:, :-1].reshape(windows.shape), windows)
    cols[:, -1] = 1  # the bias row
    y = np.matmul(w2, cols)  # (B, g*K, width): rows (o, k) of each block
    y = y.reshape((out_shape[0], kdim) + tuple(out_shape[1:]) + (n,))
    view = np.moveaxis(np.moveaxis(y, 1, 0), -1, 0)  # (N, K, Ho, *out_r)
    return view, Cache(cols, w2, g, xp.shape, x.shape, memory_order(x))


def backward(dout, w, cache, stride, pads, dilation, need_dx=True):
    """(dx or None, dw, db) of :func:`forward`: dw from (sum over blocks of d @ cols^T)
    folded back from the Toeplitz band, db the sum of d, dx as (w2^T @ d) scattered back
    with one add per block and tap of the other axes."""
    cols, w2, g, xp_shape, x_order = cache.cols, cache.w2, cache.g, cache.xp_shape, cache.x_order
    kdim, c = w.shape[:2]
    kh, kernel_r = w.shape[2], w.shape[3:]
    out_shape = tuple(dout.shape[2:])
    hb = (g - 1) * stride[0] + (kh - 1) * dilation[0] + 1
    # (N, K, Ho, *out_r) -> (B, g*K, width), free when dout is in the forward's layout
    d = np.moveaxis(np.moveaxis(dout, 0, -1), 1, 0).reshape(cols.shape[0], g * kdim, -1)
    dm = np.matmul(cols, d.transpose(0, 2, 1)).sum(
        axis=0
    )  # (T_r*C*Hb + 1, g*K): 1.3x faster than d @ cols^T
    dw, db = untoeplitz(dm, w.shape, hb, g, stride[0], dilation[0])
    if not need_dx:
        return None, dw, db
    spatial = xp_shape[1:-1]
    if not all_finite(d):
        # an inf or NaN would spread over the Toeplitz zeros: the plain scatter keeps it
        # to its receptive field, as in PyTorch
        w2_rows = w.reshape(kdim, c, -1).transpose(2, 1, 0).reshape(-1, kdim)  # (T*C, K)
        d_kpn = np.moveaxis(dout, 0, -1).reshape(kdim, -1)
        dxp = conv_batch_last.col2im(
            w2_rows, d_kpn, w.shape[2:], c, out_shape, spatial, stride, dilation
        )
        return from_batch_last_padded(dxp, pads, x_order), dw, db
    r = np.matmul(w2[:, :-1].T, d)  # (B, T_r*C*Hb, width)
    r = r.reshape((r.shape[0],) + (len(taps_nd(kernel_r)), c, hb) + out_shape[1:] + (xp_shape[-1],))
    if x_order[-1] == 0:  # x had its images innermost: dx in x's layout, cropped without a copy
        full = empty_in_order((xp_shape[-1],) + tuple(xp_shape[:-1]), d.dtype, x_order, zero=True)
        dxp = np.moveaxis(full, 0, -1)
    else:
        full, dxp = None, np.zeros(xp_shape, dtype=d.dtype)
    step = g * stride[0]
    for blk in range(r.shape[0]):
        rows = slice(blk * step, blk * step + hb)
        for t, offset in taps_nd(kernel_r):
            dxp[
                (slice(None), rows) + offset_slices(offset, stride[1:], dilation[1:], out_shape[1:])
            ] += r[blk, t]
    if full is not None:
        return unpad(full, pads), dw, db
    return from_batch_last_padded(dxp, pads, x_order), dw, db
