"""Route 'batch_last': im2col with the batch innermost (cuda-convnet's layout). The route
for gray and RGB images and other convs with few channels (under 12).

The padded input is stored (C, *Sp, N), and the transposed column matrix is filled one
tap at a time, each a copy of runs of Wo*N contiguous numbers::

    cols_t[(t, c), (o, n)] = xpad[c, o*stride + t*dilation, n]          (T*C, P*N)
    y = w2t @ cols_t + b,   w2t[k, (t, c)] = w[k, c, t]                   (K, P*N)

handed back as an (N, K, *O) view of the (K, *O, N) result. With few channels a
channels-last copy would move runs of only kw*C numbers (5 for LeNet's first layer).
The output rows run in chunks whose columns fit in the cache, one part per thread.

Backward: dw = dout_t @ cols_t^T (columns kept from the forward pass when small, else
rebuilt per chunk), db = the row sums of dout_t, and dx by :func:`col2im`: dcols_t =
w2t^T @ dout_t, scattered back with one strided add per tap.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import numpy as np

from . import runtime
from .gemm import column_sums, gemm_blocked, gemm_nt_blocked
from .layout import (
    batch_last_padded,
    from_batch_last_padded,
    memory_order,
    offset_slices,
    taps_nd,
    window_view_batch_last,
)

NAME = "batch_last"

# Batch-last im2col runs in chunks of output rows of about CHUNK_BYTES, so the copy
# and the GEMM reading it meet in the cache; the whole column matrix is kept for the
# backward pass only up to KEEP_BYTES. Measured, LeNet-5 inference on 512 images: the
# first conv (40 MB of columns) took 8.6 ms in one piece, 3.9 ms in 2 MB chunks; the
# second 7.8 -> 5.4 ms. (1 to 8 MB chunks measured alike within this VM's noise.)
CHUNK_BYTES = 2 << 20
KEEP_BYTES = 16 << 20


class Cache(NamedTuple):
    """What :func:`backward` needs."""

    cols_t: Optional[np.ndarray]  # the (T*C, P*N) columns when kept (<= KEEP_BYTES), else None
    w2t: np.ndarray  # the weights as (K, T*C)
    windows: np.ndarray  # the (*k, C, *O, N) window view of the padded input
    xp_shape: tuple  # the padded batch-last input's shape (C, *Sp, N)
    x_shape: tuple
    x_order: tuple  # x's memory order, which dx is handed back in
    route: str = NAME


def applies(x, w, stride, pads, dilation, out_shape, forced=False):
    """Any convolution (it is the route of last resort for few channels)."""
    return True


def dx_by_correlation(w_shape, stride):
    return False


def im2col(windows, kept, lo, hi, rebuild=True):
    """Yield (cols, c0, c1) over chunks of output rows lo..hi: the (T*C, columns) matrix
    of those rows and its column range in the full (T*C, P*N) matrix. ``kept``: the full
    matrix, to fill (forward) or read (backward, ``rebuild=False``); None: a chunk buffer
    reused from chunk to chunk."""
    n = windows.shape[-1]
    nsp = (windows.ndim - 2) // 2
    kernel, c, out = windows.shape[:nsp], windows.shape[nsp], windows.shape[nsp + 1 : -1]
    row = math.prod(out[1:]) * n  # columns per output row
    ntap = math.prod(kernel) * c
    step = max(1, min(hi - lo, CHUNK_BYTES // max(1, ntap * row * windows.itemsize)))
    if not rebuild:  # reading kept columns: one piece
        step = max(1, hi - lo)
    buf = None if kept is not None else np.empty((ntap, step * row), dtype=windows.dtype)
    for o0 in range(lo, hi, step):
        o1 = min(o0 + step, hi)
        c0, c1 = o0 * row, o1 * row
        cols = kept[:, c0:c1] if kept is not None else buf[:, : c1 - c0]
        if rebuild:
            dst = cols.view()
            dst.shape = tuple(kernel) + (c, o1 - o0) + tuple(out[1:]) + (n,)  # a view, never a copy
            np.copyto(dst, windows[(slice(None),) * (nsp + 1) + (slice(o0, o1),)])
        yield cols, c0, c1


def forward(x, w, b, stride, pads, dilation, out_shape, plan=True):
    """y (N, K, *O) as a view of a (K, *O, N) buffer, and the :class:`Cache`."""
    n = x.shape[0]
    kdim, c = w.shape[:2]
    kernel = w.shape[2:]
    ntap = math.prod(kernel) * c
    p = math.prod(out_shape)
    flops = 2.0 * n * p * kdim * ntap
    xp = batch_last_padded(x, pads)
    windows = window_view_batch_last(xp, kernel, stride, dilation, out_shape)
    # (K, C, *k) -> (K, T, C) so columns match the (tap, channel) rows of the columns
    w2t = np.ascontiguousarray(w.reshape(kdim, c, -1).transpose(0, 2, 1)).reshape(kdim, ntap)
    y = np.empty((kdim, p * n), dtype=x.dtype)
    # columns kept for the backward pass when they are small (a training step of LeNet:
    # 5 MB); big ones (inference on large batches) live one cache-sized chunk at a time
    cols_t = (
        np.empty((ntap, p * n), dtype=x.dtype) if ntap * p * n * x.itemsize <= KEEP_BYTES else None
    )

    def part(lo, hi):  # output rows lo..hi (the first output axis)
        for cols, c0, c1 in im2col(windows, cols_t, lo, hi):
            if kdim <= 16:  # measured: blocking helps the forward GEMM only here
                gemm_blocked(w2t, cols, y[:, c0:c1])
            else:
                np.matmul(w2t, cols, out=y[:, c0:c1])
            if b is not None:
                y[:, c0:c1] += b[:, None]  # while the chunk is still in cache

    runtime.parallel(part, runtime.partition(out_shape[0], 1, flops, runtime.FLOPS_PER_PART))
    y = y.reshape((kdim,) + tuple(out_shape) + (n,))
    return np.moveaxis(y, -1, 0), Cache(cols_t, w2t, windows, xp.shape, x.shape, memory_order(x))


def backward(dout, w, cache, stride, pads, dilation, need_dx=True):
    """(dx or None, dw, db) of :func:`forward`."""
    cols_t, w2t, windows = cache.cols_t, cache.w2t, cache.windows
    kdim, c = w.shape[:2]
    kernel = w.shape[2:]
    out_shape = tuple(dout.shape[2:])
    d_kpn = np.moveaxis(dout, 0, -1).reshape(kdim, -1)  # free if dout is in our layout

    def part(lo, hi):  # output rows lo..hi; columns kept or rebuilt chunk by chunk
        dw_p = 0
        for cols, c0, c1 in im2col(windows, cols_t, lo, hi, rebuild=cols_t is None):
            dw_p = dw_p + gemm_nt_blocked(d_kpn[:, c0:c1], cols)
        row = d_kpn.shape[1] // out_shape[0]
        return dw_p, column_sums(d_kpn[:, lo * row : hi * row].T)

    flops = 2.0 * d_kpn.size * w2t.shape[1]
    bounds = runtime.partition(out_shape[0], 1, flops, runtime.FLOPS_PER_PART)
    dw, db = (sum(r) for r in zip(*runtime.parallel(part, bounds)))
    dw = np.ascontiguousarray(dw.reshape((kdim, -1, c)).transpose(0, 2, 1)).reshape(w.shape)
    if not need_dx:
        return None, dw, db
    dxp = col2im(w2t.T, d_kpn, kernel, c, out_shape, cache.xp_shape[1:-1], stride, dilation)
    return from_batch_last_padded(dxp, pads, cache.x_order), dw, db


def _tap_index(offset, stride, dilation, out_shape):
    """Index of kernel tap ``offset`` across all outputs in a (C, *Sp, N) array."""
    return (slice(None),) + offset_slices(offset, stride, dilation, out_shape) + (slice(None),)


def col2im(w2_rows, d_kpn, kernel, c, out_shape, spatial, stride, dilation):
    """The padded batch-last dx (C, *Sp, N) from dcols^T = w2_rows (T*C, K) @ d_kpn
    (K, P*N), its columns ordered (out pixel, image): one add per tap, runs of Wo*N
    contiguous numbers on both sides; channels split over threads.

    Strided convs add into one buffer per phase (the cells y = r + s*q of each residue r
    along each axis, stored q-contiguous), interleaved into dx once at the end: added
    straight into dx, each tap would touch runs of only N numbers, s cells apart.
    Measured, AlexNet's first conv (11x11 stride 4, 16 images): dx 37 -> 33 ms (its 121
    adds alone, one thread: 20 -> 9 ms; the (T*C, P*N) GEMM before them is the rest)."""
    kdim = w2_rows.shape[1]
    n = d_kpn.shape[1] // math.prod(out_shape)
    taps = taps_nd(kernel)
    w3 = w2_rows.reshape(len(taps), c, kdim)
    strided = any(st != 1 for st in stride)
    if strided:
        q = tuple(-(-sp // st) for sp, st in zip(spatial, stride))  # cells per phase (at most)
        buf = np.zeros((c,) + tuple(stride) + q + (n,), dtype=w2_rows.dtype)
    else:
        buf = np.zeros((c,) + tuple(spatial) + (n,), dtype=w2_rows.dtype)

    def part(c0, c1):
        dcols_t = (w3[:, c0:c1].reshape(-1, kdim) @ d_kpn).reshape(
            (len(taps), c1 - c0) + out_shape + (n,)
        )
        sub = buf[c0:c1]
        for t, offset in taps:
            if strided:  # tap cell o*s + i*d = phase (i*d) % s, index o + (i*d) // s
                cell = [i * d for i, d in zip(offset, dilation)]
                sub[
                    (slice(None),)
                    + tuple(v % st for v, st in zip(cell, stride))
                    + tuple(
                        slice(v // st, v // st + o) for v, st, o in zip(cell, stride, out_shape)
                    )
                ] += dcols_t[t]
            else:
                sub[_tap_index(offset, stride, dilation, out_shape)] += dcols_t[t]

    runtime.parallel(
        part, runtime.partition(c, 1, 2.0 * w2_rows.size * d_kpn.shape[1], runtime.FLOPS_PER_PART)
    )
    if not strided:
        return buf
    # interleave: dx[c, r + s*q, n] = buf[c, r, q, n], one strided copy
    nsp = len(spatial)
    full = np.empty((c,) + tuple(qq * st for qq, st in zip(q, stride)) + (n,), dtype=buf.dtype)
    split = full.reshape((c,) + tuple(v for qq, st in zip(q, stride) for v in (qq, st)) + (n,))
    perm = (0,) + tuple(v for a in range(nsp) for v in (1 + nsp + a, 1 + a)) + (1 + 2 * nsp,)
    np.copyto(split, buf.transpose(perm))
    return full[(slice(None),) + tuple(slice(0, sp) for sp in spatial)]
