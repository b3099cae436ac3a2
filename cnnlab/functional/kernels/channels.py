"""Per-channel reductions and scale-and-shift, the passes of batch norm, fast in any layout.

Batch norm acts per channel on x (N, C, *S). NumPy is fast on it only when the inner
loops are long and the per-channel numbers lie along them. So x is seen as a 2-D array
whose rows hold whole runs of channels (:func:`channel_rows`), with each per-channel
vector spread once to the length of a row:

- channels innermost in memory ((N, *S, C), a channels-last conv's output, or (N, D)
  features): rows of m pixels, (P/m, m*C), the vector tiled m times;
- channels-first (C-contiguous) with small maps: one row per image, (N, C*S), each
  entry of the vector repeated S times;
- channels-first with maps of 1024+ pixels: one row per map, (N*C, S), the vector as a
  column, tiled N times.

Then a sum, a dot product or a scale-and-shift runs with long inner loops. The other
way round, a per-channel scalar broadcast over maps of 8x8 or 16x16, NumPy pays its
inner-loop overhead once per map: x * scale over 64x64x16x16 took 0.48 ms against 0.29.
Other layouts (batch-last) take plain broadcasting, per part of the outer axis.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import runtime
from .layout import along, empty_in_order, memory_order, outer_axis

# Rows per column sum in x's dtype (NumPy adds them one after the other); the sums of
# the blocks are added in float64.
SUM_BLOCK = 1024
# The numbers per block of a three-operand pass (channel_combine), its temporary reused.
COMBINE_BLOCK = 1 << 18
# Channels-first maps this big get one row each; smaller ones share an image's row.
MAP_ROW = 1024
# The least numbers worth a thread of their own in a sum or dot product: these only
# stream memory, so they split at twice the grain of the passes that compute
# (runtime.NUMBERS_PER_PART; measured in runtime's note).
SUM_NUMBERS_PER_PART = 600_000


class ChannelRows(NamedTuple):
    """A 2-D view of x (N, C, *S) with whole channel runs in each row.

    ``kind``: 'tiled' (channels innermost; a row is m pixels of C channels), 'repeated'
    (a row is one image, each channel's S numbers in a run) or 'column' (a row is one map
    of S numbers); ``reps``: m, S or N respectively."""

    view: np.ndarray
    kind: str
    reps: int
    channels: int


def channel_rows(x):
    """The :class:`ChannelRows` of x (N, C, *S), or None for other memory layouts."""
    c = x.shape[1]
    p = x.size // max(c, 1)
    v = np.moveaxis(x, 1, -1)
    if v.flags.c_contiguous:  # channels innermost (also any x with one pixel per image)
        m = 1
        while 2 * m * c <= 4096 and p % (2 * m) == 0:
            m *= 2
        return ChannelRows(v.reshape(p // m, m * c), "tiled", m, c)
    if x.flags.c_contiguous:
        n, s = x.shape[0], p // max(x.shape[0], 1)
        if s >= MAP_ROW:
            return ChannelRows(x.reshape(n * c, s), "column", n, c)
        return ChannelRows(x.reshape(n, c * s), "repeated", s, c)
    return None


def _same(ra, rb):
    return ra is not None and rb is not None and ra[1:] == rb[1:]


def _spread(r, v, dtype):
    """Per-channel v (C,) as an array broadcasting against r.view."""
    v = np.asarray(v, dtype=dtype)
    if r.kind == "tiled":
        return np.tile(v, r.reps)[None]
    if r.kind == "repeated":
        return np.repeat(v, r.reps)[None]
    return np.tile(v, r.reps)[:, None]


def _rows_of(a, lo, hi):
    """Rows lo..hi of a spread vector (a row vector is the same for every row)."""
    return a if a.shape[0] == 1 else a[lo:hi]


def _fold(r, partial):
    """(C,) float64 from per-column (tiled, repeated) or per-row (column) partial sums."""
    partial = np.asarray(partial, dtype=np.float64)
    if r.kind == "tiled":
        return partial.reshape(r.reps, -1).sum(axis=0)
    if r.kind == "repeated":
        return partial.reshape(-1, r.reps).sum(axis=1)
    return partial.reshape(r.reps, -1).sum(axis=0)


def _row_parts(r, grain=None):
    grain = SUM_NUMBERS_PER_PART if grain is None else grain
    return runtime.partition(len(r.view), 1, r.view.size, grain)


def _split(x):
    """The axis to split x (N, C, *S) over the threads (see layout.outer_axis) and the
    bounds of its parts."""
    axis = outer_axis(x)
    return axis, runtime.partition(x.shape[axis], 1, x.size, SUM_NUMBERS_PER_PART)


def _per_channel(parts, axis):
    """Per-part (C,) results summed, or (channels of a part) joined when split by channel."""
    return sum(parts) if axis == 0 else np.concatenate(parts)


def channel_sums(x):
    """x (N, C, *S) -> (C,) float64: the sum over every axis but the channels.

    No BLAS here (a matrix-vector product with ones would be 3x faster): BLAS's own
    threads, once woken, spin for a while, on the cores the next op's parts run on;
    measured, cifar_resnet's training step went from 181 to 310 ms."""
    r = channel_rows(x)
    if r is None:
        axes = (0,) + tuple(range(2, x.ndim))
        axis, bounds = _split(x)
        parts = runtime.parallel(
            lambda lo, hi: along(x, axis, lo, hi).sum(axis=axes, dtype=np.float64), bounds
        )
        return _per_channel(parts, axis)
    v = r.view
    if r.kind == "column":  # pairwise sums along each map
        return _fold(
            r, np.concatenate(runtime.parallel(lambda lo, hi: v[lo:hi].sum(axis=1), _row_parts(r)))
        )

    def part(lo, hi):  # column sums of SUM_BLOCK rows at a time, added in float64
        total = np.zeros(v.shape[1], dtype=np.float64)
        for i in range(lo, hi, SUM_BLOCK):
            total += v[i : min(i + SUM_BLOCK, hi)].sum(axis=0)
        return total

    return _fold(r, sum(runtime.parallel(part, _row_parts(r))))


def channel_dot(a, b):
    """a, b (N, C, *S) -> (C,) float64: the sum over every axis but the channels of a * b,
    without the product as a temporary."""
    ra, rb = channel_rows(a), channel_rows(b)
    if not _same(ra, rb):
        idx = "abcdefghij"[: a.ndim]
        axis, bounds = _split(a)
        parts = runtime.parallel(
            lambda lo, hi: np.einsum(
                f"{idx},{idx}->{idx[1]}", along(a, axis, lo, hi), along(b, axis, lo, hi)
            ).astype(np.float64),
            bounds,
        )
        return _per_channel(parts, axis)
    va, vb = ra.view, rb.view
    spec = "ij,ij->i" if ra.kind == "column" else "ij,ij->j"
    parts = runtime.parallel(
        lambda lo, hi: np.einsum(spec, va[lo:hi], vb[lo:hi]).astype(np.float64), _row_parts(ra)
    )
    # per-row partials (column kind) are joined, per-column partials summed
    return _fold(ra, np.concatenate(parts) if ra.kind == "column" else sum(parts))


def channel_affine(x, scale, shift=None, out=None):
    """x * scale[c] + shift[c] for x (N, C, *S), scale/shift (C,) or None (no scaling, no
    shift) -> a new array in x's memory layout, or ``out``; the parts of a big x run on
    the threads."""
    if out is None:
        out = empty_in_order(x.shape, x.dtype, memory_order(x))
    rx, ro = channel_rows(x), channel_rows(out)
    if _same(rx, ro):
        xv, ov = rx.view, ro.view
        s = None if scale is None else _spread(rx, scale, x.dtype)
        t = None if shift is None else _spread(rx, shift, x.dtype)

        def part(lo, hi):
            _affine(
                xv[lo:hi], *(None if a is None else _rows_of(a, lo, hi) for a in (s, t)), ov[lo:hi]
            )

        runtime.parallel(part, _row_parts(rx, runtime.NUMBERS_PER_PART))
        return out
    shape = (1, -1) + (1,) * (x.ndim - 2)
    s = None if scale is None else np.asarray(scale, x.dtype).reshape(shape)
    t = None if shift is None else np.asarray(shift, x.dtype).reshape(shape)
    axis = outer_axis(x)

    def part_nd(lo, hi):
        # the scale and shift of a part: sliced too when the parts are channels
        ss, ts = ((a if a is None or axis == 0 else along(a, 1, lo, hi)) for a in (s, t))
        _affine(along(x, axis, lo, hi), ss, ts, along(out, axis, lo, hi))

    runtime.parallel(part_nd, runtime.partition(x.shape[axis], 1, x.size, runtime.NUMBERS_PER_PART))
    return out


def _affine(x, s, t, out):
    if s is None:
        np.add(x, t, out=out)
        return
    np.multiply(x, s, out=out)
    if t is not None:
        np.add(out, t, out=out)


def channel_combine(a, sa, b, sb, shift, out=None):
    """a * sa[c] + b * sb[c] + shift[c] for a, b (N, C, *S) in one memory layout, the
    per-channel vectors (C,) -> a new array in a's layout, or ``out`` (which may be b).
    Batch norm's dx; one temporary of at most COMBINE_BLOCK numbers per thread."""
    if out is None:
        out = empty_in_order(a.shape, a.dtype, memory_order(a))
    ra, rb, ro = channel_rows(a), channel_rows(b), channel_rows(out)
    if not (_same(ra, rb) and _same(ra, ro)):
        shape = (1, -1) + (1,) * (a.ndim - 2)
        sa, sb, shift = (np.asarray(v, a.dtype).reshape(shape) for v in (sa, sb, shift))
        tmp = b * sb  # first: out may be b
        np.multiply(a, sa, out=out)
        out += tmp
        out += shift
        return out
    av, bv, ov = ra.view, rb.view, ro.view
    ca, cb, ct = (_spread(ra, v, a.dtype) for v in (sa, sb, shift))
    step = max(1, COMBINE_BLOCK // max(1, av.shape[1]))

    def part(lo, hi):
        buf = np.empty((min(step, hi - lo), av.shape[1]), dtype=a.dtype)
        for i in range(lo, hi, step):
            j = min(i + step, hi)
            o, tmp = ov[i:j], buf[: j - i]
            np.multiply(bv[i:j], _rows_of(cb, i, j), out=tmp)  # first: out may be b
            np.multiply(av[i:j], _rows_of(ca, i, j), out=o)
            np.add(o, tmp, out=o)
            np.add(o, _rows_of(ct, i, j), out=o)

    runtime.parallel(part, _row_parts(ra, runtime.NUMBERS_PER_PART))
    return out
