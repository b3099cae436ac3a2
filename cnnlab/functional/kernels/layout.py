"""Memory layouts: which order an array's axes have in memory, and the copies between them.

The public arrays are (N, C, *spatial), but the conv routes run in the layout that makes
their copies long (channels-last (N, *S, C), batch-last (C, *S, N)) and hand back
(N, C, *S) *views* of those buffers. The ops that follow keep or read that memory order,
and every gradient goes back in the memory order of the activation it belongs to
(:func:`copy_into`). Nothing outside ``cnnlab.functional`` needs to know: the ``F.*``
functions take and return (N, C, *S) arrays of any strides.
"""

from __future__ import annotations

import itertools

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import runtime


def memory_order(x):
    """The axes of ``x`` from the slowest-varying to the fastest in memory, e.g.
    (0, 2, 3, 1) for an (N, C, H, W) view of a channels-last buffer."""
    return tuple(sorted(range(x.ndim), key=lambda i: (-x.strides[i], i)))


def empty_in_order(shape, dtype, order, zero=False):
    """A new array of ``shape`` laid out in memory in axis ``order`` (see memory_order),
    so a gradient comes back in the layout of the activation it belongs to."""
    make = np.zeros if zero else np.empty
    buf = make(tuple(shape[i] for i in order), dtype=dtype)
    inverse = [0] * len(order)
    for pos, axis in enumerate(order):
        inverse[axis] = pos
    return buf.transpose(inverse)


# A copy between two memory orders (channels-last <-> batch-last, say) done by one
# NumPy assignment walks one side with strides of whole images or channels, a cache miss
# per number: 64x16x32x32 floats took 3.1 ms. Done in blocks of a few rows, each block's
# source and target stay in the cache: 0.78 ms. Also the ops that meet two layouts at
# once (a ReLU mask in one, its gradient in another) ran 15x slower than matched ones --
# hence every gradient is handed back in its activation's layout, through copy_into.
COPY_BLOCK = 1 << 17  # numbers per block


def copy_into(dst, src):
    """dst[...] = src, in cache-sized blocks along the axis outermost in both memory
    orders when they differ (see above); src may broadcast only if the orders agree."""
    if (
        dst.size < 2 * COPY_BLOCK
        or src.shape != dst.shape
        or memory_order(dst) == memory_order(src)
    ):
        np.copyto(dst, src)
        return dst
    rank_d, rank_s = memory_order(dst), memory_order(src)
    axis = min(range(dst.ndim), key=lambda a: (rank_d.index(a) + rank_s.index(a), a))
    step = max(1, dst.shape[axis] * COPY_BLOCK // dst.size)
    lead = (slice(None),) * axis

    def part(lo, hi):  # big copies over the threads too: 64x32x32x32 1.9 -> 1.1 ms
        for b in range(lo, hi, step):
            sl = lead + (slice(b, min(b + step, hi)),)
            np.copyto(dst[sl], src[sl])

    runtime.parallel(
        part, runtime.partition(dst.shape[axis], step, dst.size, runtime.NUMBERS_PER_PART)
    )
    return dst


def copy_in_order(a, order):
    return copy_into(empty_in_order(a.shape, a.dtype, order), a)


def in_order(a, order):
    """``a``, copied into memory order ``order`` unless it is in it already."""
    return a if memory_order(a) == order else copy_in_order(a, order)


def padded_copy(src, pads, axes, out_shape, fill=0.0):
    """A new array of ``out_shape`` holding ``src`` with ``pads`` (lo, hi) around its axes
    ``axes`` (those of ``out_shape``): only the border is filled, not the whole array
    first, and a large copy is split over the threads along axis 0 (measured, a
    64x64x16x16 activation into a padded channels-last buffer: 0.76 -> 0.3 ms)."""
    xp = np.empty(out_shape, dtype=src.dtype)
    for axis, (lo, hi) in zip(axes, pads):
        if lo:
            xp[(slice(None),) * axis + (slice(0, lo),)] = fill
        if hi:
            xp[(slice(None),) * axis + (slice(xp.shape[axis] - hi, None),)] = fill
    interior = [slice(None)] * xp.ndim
    for axis, (lo, hi) in zip(axes, pads):
        interior[axis] = slice(lo, xp.shape[axis] - hi)
    dst = xp[tuple(interior)]

    def part(lo, hi):
        copy_into(dst[lo:hi], src[lo:hi])

    runtime.parallel(part, runtime.partition(src.shape[0], 1, src.size, runtime.NUMBERS_PER_PART))
    return xp


def to_channels_last_padded(x, pads, fill=0.0):
    """(N, C, *S) -> padded channels-last copy (N, *(S + lo + hi), C), padding ``fill``.

    One allocation and one strided copy, whatever the layout of ``x``: if ``x`` is the
    transposed view of a channels-last buffer (what our convs return) the copy is a
    straight memcpy per row.
    """
    n, c = x.shape[:2]
    padded = tuple(s + lo + hi for s, (lo, hi) in zip(x.shape[2:], pads))
    return padded_copy(
        np.moveaxis(x, 1, -1), pads, range(1, 1 + len(pads)), (n,) + padded + (c,), fill
    )


def batch_last_padded(x, pads):
    """(N, C, *S) -> zero-padded batch-last copy (C, *(S + lo + hi), N)."""
    n, c = x.shape[:2]
    spatial = x.shape[2:]
    if all(lo == 0 and hi == 0 for lo, hi in pads) and np.moveaxis(x, 0, -1).flags.c_contiguous:
        return np.moveaxis(x, 0, -1)  # already batch-last (the output of a batch-last op)
    padded = tuple(s + lo + hi for s, (lo, hi) in zip(spatial, pads))
    return padded_copy(np.moveaxis(x, 0, -1), pads, range(1, 1 + len(pads)), (c,) + padded + (n,))


def channels_first_view(y):
    """(N, *S, C) -> (N, C, *S) as a view (no copy)."""
    return np.moveaxis(y, -1, 1)


def window_view(xp, kernel, stride, dilation, out_shape):
    """Zero-copy view of all receptive fields of a channels-last array.

    xp (N, *Sp, C) -> (N, *out, *kernel, C); element [n, o.., k.., c] is
    xp[n, o*stride + k*dilation, c] along each spatial axis.
    """
    sn = xp.strides[0]
    ss = xp.strides[1:-1]
    sc = xp.strides[-1]
    shape = (xp.shape[0],) + tuple(out_shape) + tuple(kernel) + (xp.shape[-1],)
    strides = (
        (sn,)
        + tuple(s * st for s, st in zip(ss, stride))
        + tuple(s * d for s, d in zip(ss, dilation))
        + (sc,)
    )
    return as_strided(xp, shape=shape, strides=strides, writeable=False)


def window_view_batch_last(xp, kernel, stride, dilation, out_shape):
    """Zero-copy view (*kernel, C, *out, N) of a batch-last (C, *Sp, N) array: element
    [t.., c, o.., n] is xp[c, o*stride + t*dilation, n] along each spatial axis."""
    sc, ss, sn = xp.strides[0], xp.strides[1:-1], xp.strides[-1]
    shape = tuple(kernel) + (xp.shape[0],) + tuple(out_shape) + (xp.shape[-1],)
    strides = (
        tuple(s * d for s, d in zip(ss, dilation))
        + (sc,)
        + tuple(s * st for s, st in zip(ss, stride))
        + (sn,)
    )
    return as_strided(xp, shape=shape, strides=strides, writeable=False)


def offset_slices(offset, stride, dilation, out_shape):
    """Slices of the padded input touched by kernel tap ``offset`` across all outputs."""
    return tuple(
        slice(k * d, k * d + (o - 1) * s + 1, s)
        for k, d, s, o in zip(offset, dilation, stride, out_shape)
    )


def taps_nd(kernel):
    return list(enumerate(itertools.product(*(range(k) for k in kernel))))


def images_innermost(x, pads):
    """x (N, C, *S) as (C, *S, N) without a copy when the images are innermost in memory
    already (the output of a batch-last or row-block op) and nothing is padded, else None."""
    if x.strides[0] == x.itemsize and x.shape[0] > 1 and all(lo == hi == 0 for lo, hi in pads):
        return np.moveaxis(x, 0, -1)
    return None


def unpad(dxp, pads):
    return dxp[
        (slice(None), slice(None))
        + tuple(slice(lo, s - hi) for s, (lo, hi) in zip(dxp.shape[2:], pads))
    ]


def from_batch_last_padded(dxp, pads, x_order):
    """(C, *Sp, N) padded batch-last -> (N, C, *S), cropped, in memory order ``x_order``
    (the layout of the conv's input, where the gradient flows next)."""
    n, c = dxp.shape[-1], dxp.shape[0]
    spatial = dxp.shape[1:-1]
    if x_order == memory_order(np.moveaxis(dxp, -1, 0)) and all(lo == hi == 0 for lo, hi in pads):
        return np.moveaxis(dxp, -1, 0)  # x was batch-last too: no copy
    interior = tuple(slice(lo, s - hi) for s, (lo, hi) in zip(spatial, pads))
    dx = empty_in_order(
        (n, c) + tuple(s - lo - hi for s, (lo, hi) in zip(spatial, pads)), dxp.dtype, x_order
    )
    return copy_into(dx, np.moveaxis(dxp[(slice(None),) + interior], -1, 0))


def outer_axis(a):
    """The axis (0 = images, 1 = channels) to split an op over threads (pooling, batch norm): the one
    outermost in memory, so each thread streams its own block. Splitting the images of a
    batch-last (C, *S, N) array instead interleaves the threads in every row: LeNet's
    first pool at batch 512 ran 1.9x slower on 2 threads than on 1. The same holds for the
    rows route's (H, C, W, N) output: its channels lie further out than its images."""
    order = memory_order(a)
    return 1 if order.index(1) < order.index(0) else 0


def along(a, axis, lo, hi):
    return a[(slice(None),) * axis + (slice(lo, hi),)]
