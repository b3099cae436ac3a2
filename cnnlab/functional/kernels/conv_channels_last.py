"""Route 'channels_last': im2col on a channels-last copy, in cache-sized chunks of images.
The route for 12 or more input channels (every conv of a VGG or ResNet after the first).

The padded input is stored (N, *Sp, C), so a receptive field is prod(k) runs of C
contiguous numbers and im2col is one reshape-copy of a zero-copy window view::

    cols[(n, o), (t, c)] = xpad[n, o*stride + t*dilation, c]          (N*P, T*C)
    y = cols @ w2 + b,   w2[(t, c), k] = w[k, c, t]                    (N*P, K)

which is the output already in (N, *O, K) order: it is handed back as an (N, K, *O) view.
The images run in chunks whose columns fit in the cache (the copy and the GEMM reading it
then stay out of main memory), one part of the batch per thread.

Backward: dw2 = cols^T @ dout2 and db = the column sums of dout2 (columns kept from the
forward pass when a part fit in one chunk, else rebuilt chunk by chunk); dx by one of:

- strided with 16+ channels, or 64+ channels and at least as many filters: dcols =
  dout2 @ w2^T per chunk, scattered back (col2im, one strided add per tap) in
  channels-last. With runs of 64+ channels the adds stream well and this GEMM (T*C wide)
  beats the correlation's (C wide, over an im2col of the K-channel dout): measured dx
  13.0 -> 12.0 ms for 64 -> 128 channels, 6.0 -> 4.9 ms for 128 -> 256, but 18.4 -> 19.1
  ms for 32 -> 64;
- stride 1 otherwise (16+ channels): dx is itself a convolution, of dout with the kernel
  flipped in space and K <-> C swapped (:func:`dx_by_correlation` says so; the dispatcher
  in ``kernels.conv`` runs it through whichever route fits dout);
- fewer channels: col2im in batch-last order (``conv_batch_last.col2im``).
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import numpy as np

from . import conv_batch_last, runtime
from .gemm import column_sums
from .layout import (
    channels_first_view,
    from_batch_last_padded,
    in_order,
    memory_order,
    offset_slices,
    taps_nd,
    to_channels_last_padded,
    window_view,
)

NAME = "channels_last"
MIN_CHANNELS = 12
# Measured fwd+bwd, 64 images, channels-last against batch-last: 6 -> 16 channels 5x5 on
# 14x14 2.18 against 1.95 ms; 8 -> 32 3x3 on 32x32 20.9 against 12.4; 12 -> 32 5x5 even;
# 16 -> 32 5x5 6.7 against 11.1.

# Columns per chunk: measured 40 -> 22 ms for a 64x32x32x32 -> 64-filter 3x3 forward
# against one whole-batch column matrix, and no (N*P, T*C) matrix is kept for big convs.
CHUNK_BYTES = 4 << 20


class Cache(NamedTuple):
    """What :func:`backward` needs."""

    xp: np.ndarray  # the padded channels-last input (N, *Sp, C)
    w2: np.ndarray  # the weights as (T*C, K)
    bounds: list  # the image parts [0, b1, ..., N] the threads ran
    kept: Optional[list]  # per part, its columns (when each part fit in one chunk)
    x_shape: tuple
    x_order: tuple  # x's memory order, which dx is handed back in
    route: str = NAME


def applies(x, w, stride, pads, dilation, out_shape, forced=False):
    """12 or more input channels: runs of C numbers are long enough to copy well
    (``forced``: any convolution)."""
    return forced or x.shape[1] >= MIN_CHANNELS


def dx_by_correlation(w_shape, stride):
    """Whether dx is best computed as a convolution (see the module docstring)."""
    kdim, c = w_shape[:2]
    return c >= 16 and all(s == 1 for s in stride) and not (c >= 64 and kdim >= c)


def im2col_chunks(xp, lo, hi, kernel, stride, dilation, out_shape):
    """Yield (images, rows, cols) over chunks of images lo..hi of channels-last ``xp``: the
    image slice, the matching slice of (N*P)-row matrices, and cols (rows, T*C), one
    buffer reused from chunk to chunk."""
    c = xp.shape[-1]
    p = math.prod(out_shape)
    ntap = math.prod(kernel) * c
    nb = int(max(1, min(hi - lo, CHUNK_BYTES // max(1, p * ntap * xp.itemsize))))
    buf = np.empty((nb * p, ntap), dtype=xp.dtype)
    for i in range(lo, hi, nb):
        m = min(nb, hi - i)
        cols = buf[: m * p]
        np.copyto(
            cols.reshape((m,) + tuple(out_shape) + tuple(kernel) + (c,)),
            window_view(xp[i : i + m], kernel, stride, dilation, out_shape),
        )
        yield slice(i, i + m), slice(i * p, (i + m) * p), cols


def forward(x, w, b, stride, pads, dilation, out_shape, plan=True):
    """y (N, K, *O) as a view of an (N, *O, K) buffer, and the :class:`Cache`."""
    n = x.shape[0]
    kdim, c = w.shape[:2]
    kernel = w.shape[2:]
    ntap = math.prod(kernel) * c
    p = math.prod(out_shape)
    bounds = runtime.partition(n, 2, 2.0 * n * p * kdim * ntap, runtime.FLOPS_PER_PART)
    xp = to_channels_last_padded(x, pads)
    # (K, C, *k) -> (*k, C, K) so rows match the (tap, channel) order of the columns
    w2 = np.moveaxis(w.reshape(kdim, c, -1), 0, -1).transpose(1, 0, 2).reshape(ntap, kdim)
    y = np.empty((n * p, kdim), dtype=x.dtype)

    def part(lo, hi):
        chunks = 0
        for _, rows, cols in im2col_chunks(xp, lo, hi, kernel, stride, dilation, out_shape):
            np.matmul(cols, w2, out=y[rows])
            if b is not None:
                y[rows] += b  # while the chunk is still in cache
            chunks += 1
        # a part that fit in one chunk keeps its columns (<= CHUNK_BYTES), so the
        # backward pass need not rebuild them
        return cols if chunks == 1 else None

    kept = runtime.parallel(part, bounds)
    kept = None if any(k is None for k in kept) else kept
    y = y.reshape((n,) + tuple(out_shape) + (kdim,))
    return channels_first_view(y), Cache(xp, w2, bounds, kept, x.shape, memory_order(x))


def backward(dout, w, cache, stride, pads, dilation, need_dx=True):
    """(dx or None, dw, db) of :func:`forward`."""
    xp, w2, bounds, kept = cache.xp, cache.w2, cache.bounds, cache.kept
    kdim, c = w.shape[:2]
    kernel = w.shape[2:]
    nsp = len(kernel)
    out_shape = tuple(dout.shape[2:])
    p = math.prod(out_shape)
    strided = any(st != 1 for st in stride)
    d2 = np.moveaxis(dout, 1, -1).reshape(-1, kdim)  # free if dout is in our layout
    scatter = need_dx and c >= 16 and (strided or (c >= 64 and kdim >= c))
    dxp = np.zeros(xp.shape, dtype=xp.dtype) if scatter else None
    kept_at = dict(zip(bounds, kept)) if kept is not None else None

    def part(lo, hi):
        dw2 = np.zeros(w2.shape, dtype=w2.dtype)
        tmp = np.empty(w2.shape, dtype=w2.dtype)
        chunks = (
            [(slice(lo, hi), slice(lo * p, hi * p), kept_at[lo])]
            if kept_at is not None
            else im2col_chunks(xp, lo, hi, kernel, stride, dilation, out_shape)
        )
        for images, rows, cols in chunks:
            np.matmul(cols.T, d2[rows], out=tmp)
            dw2 += tmp
            if scatter:
                # a rebuilt chunk's buffer is free again: reuse it for dcols (never kept
                # columns: the cache must survive a second backward)
                dcols = np.matmul(d2[rows], w2.T, out=None if kept_at is not None else cols)
                dcols = dcols.reshape((-1,) + out_shape + (dcols.shape[-1],))
                dchunk = dxp[images]
                for t, offset in taps_nd(kernel):
                    dchunk[(slice(None),) + offset_slices(offset, stride, dilation, out_shape)] += (
                        dcols[..., t * c : (t + 1) * c]
                    )
        return dw2, column_sums(d2[lo * p : hi * p])

    dw2, db = (sum(r) for r in zip(*runtime.parallel(part, bounds)))
    dw = dw2.reshape(kernel + (c, kdim))
    dw = np.ascontiguousarray(dw.transpose((nsp + 1, nsp) + tuple(range(nsp))))
    if not need_dx:
        return None, dw, db
    spatial = xp.shape[1:-1]
    if scatter:
        interior = tuple(slice(lo, s - hi) for s, (lo, hi) in zip(spatial, pads))
        return in_order(channels_first_view(dxp[(slice(None),) + interior]), cache.x_order), dw, db
    d_kpn = d2.reshape(-1, p, kdim).transpose(2, 1, 0).reshape(kdim, -1)
    dxp = conv_batch_last.col2im(w2, d_kpn, kernel, c, out_shape, spatial, stride, dilation)
    return from_batch_last_padded(dxp, pads, cache.x_order), dw, db
