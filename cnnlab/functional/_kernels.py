"""The hot loops of cnnlab, in one place.

Everything that touches every pixel of a batch lives here: zero-copy window views,
the GEMMs of convolution, the strided scatter-adds of the backward passes, and the
thread pool that splits a batch over the cores. The rest of ``cnnlab.functional``
validates arguments, keeps caches and calls these.

Layout. The public arrays are (N, C, *spatial), but convolutions run in the layout that
makes their copies long: channels-last (N, *S, C) for 12+ channels, batch-last
(C, *S, N) for gray/RGB inputs, and row blocks (Ho, K, *S_r, N) for small maps with
large kernels (see the conv section). Outputs are handed back as (N, C, *S) *views* of
those buffers, which costs nothing, and the ops that follow (activations, pooling, the
next conv) keep or read that memory order; gradients go back in the memory order of
the activation they belong to (copy_into).

No Python loop here runs over pixels; the loops are over the prod(kernel) taps of a
window (9 for 3x3), over cache-sized chunks of images, and over one part per thread.
"""
from __future__ import annotations

import itertools
import math
import os
import sys
import threading

import numpy as np
from numpy.lib.stride_tricks import as_strided

# --------------------------------------------------------------------------- threads
#
# NumPy runs every ufunc and copy on one core, and BLAS runs the many small GEMMs of a
# conv net badly on several (its threads spin-wait; measured: a LeNet-5 epoch is faster
# with BLAS on 1 thread than on 2). So the batch is the unit of parallelism: an op splits
# its images into one contiguous part per core and runs the parts in a thread pool --
# NumPy releases the GIL inside ufuncs, copies and BLAS calls -- with BLAS held to one
# thread per part meanwhile (through threadpoolctl). Results do not depend on the number
# of threads except for the order of the final sum of per-part weight gradients.


def _default_threads():
    env = os.environ.get("CNNLAB_NUM_THREADS", "").strip()
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


_threads = _default_threads()
_blas_libs = None
_local = threading.local()


class _Worker:
    """One persistent thread that runs a part when its ``go`` lock is released and
    releases ``done`` after. Two bare locks are the cheapest hand-over Python has:
    measured 9 us for an empty part here, against 75 us through a ThreadPoolExecutor
    (its queue and futures)."""

    def __init__(self, index):
        self.go, self.done = threading.Lock(), threading.Lock()
        self.go.acquire()
        self.done.acquire()
        self.task = self.result = self.error = None
        self.thread = threading.Thread(target=self._loop, name=f"cnnlab-{index}", daemon=True)
        self.thread.start()

    def _loop(self):
        _local.busy = True  # a parallel() call inside a part runs inline
        while True:
            self.go.acquire()
            task = self.task
            if task is None:  # shut down
                return
            try:
                self.result = task[0](task[1], task[2])
            except BaseException as e:  # handed to the caller
                self.error = e
            self.done.release()

    def start(self, fn, lo, hi):
        self.task, self.result, self.error = (fn, lo, hi), None, None
        self.go.release()

    def finish(self):
        self.done.acquire()
        self.task = None
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        return self.result

    def stop(self):
        self.task = None
        self.go.release()
        self.thread.join()


_workers = []
_pool_lock = threading.Lock()  # one parallel() at a time; a second caller runs inline


def _drop_workers():
    global _workers
    for wk in _workers:
        wk.stop()
    _workers = []


def _forget_workers_after_fork():
    global _workers, _pool_lock
    _workers, _pool_lock = [], threading.Lock()  # the threads did not survive the fork


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_workers_after_fork)


def set_num_threads(n):
    """Number of threads the kernels split a batch over (default: the usable cores, or
    the environment variable CNNLAB_NUM_THREADS). 1 runs everything in the caller."""
    global _threads
    n = int(n)
    if n < 1:
        raise ValueError(f"n must be a positive number of threads, got {n}")
    with _pool_lock:
        _drop_workers()
        _threads = n


def get_num_threads():
    """The number of threads the kernels use (see :func:`set_num_threads`)."""
    return _threads


def _blas():
    global _blas_libs
    if _blas_libs is None:
        try:
            from threadpoolctl import ThreadpoolController
            _blas_libs = [lc for lc in ThreadpoolController().lib_controllers if lc.user_api == "blas"]
        except Exception:  # no threadpoolctl, or a BLAS it does not know: leave BLAS as it is
            _blas_libs = []
    return _blas_libs


# The least work worth a part of its own. Below it a second thread costs more than it
# saves: the parts' many short NumPy calls hand the GIL back and forth (a futex wake
# each, 5-50 us on a VM) and the memory-bound ones share one memory bus. Measured on
# 2 cores: LeNet-5's convs (15-30 MFLOP) and its 64x6x28x28 max pool (300k numbers) ran
# 10-30 % slower on 2 threads than on 1; a 2.4 GFLOP conv and a 2M-number pool ran
# 1.4x and 1.8x faster. Tests set _GRAIN_SCALE to 0 to split even tiny inputs.
FLOPS_PER_PART = 50e6
NUMBERS_PER_PART = 600_000
_GRAIN_SCALE = 1.0


def partition(n, min_items=2, work=0.0, grain=0.0):
    """Bounds [0, b1, ..., n] splitting n items (images, taps, columns) into one contiguous
    part per thread, at least ``min_items`` each and, when ``grain`` is given, at least
    ``grain`` of the op's total ``work`` (FLOPs, or numbers moved) each."""
    parts = max(1, min(_threads, n // max(1, min_items)))
    if grain and _GRAIN_SCALE:
        parts = max(1, min(parts, int(work // (grain * _GRAIN_SCALE))))
    return [n * i // parts for i in range(parts + 1)]


def parallel(fn, bounds):
    """[fn(lo, hi) for each part of ``bounds``], the parts run on the worker threads (the
    first in the calling thread) with BLAS single-threaded; inline when there is one part,
    when called from inside a part, or while another thread's parallel() runs."""
    if len(bounds) <= 2 or getattr(_local, "busy", False) or not _pool_lock.acquire(blocking=False):
        return [fn(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])]
    try:
        while len(_workers) < len(bounds) - 2:
            _workers.append(_Worker(len(_workers) + 1))
        libs = _blas()
        saved = [lc.get_num_threads() for lc in libs]
        for lc in libs:
            lc.set_num_threads(1)
        started = []
        try:
            for wk, lo, hi in zip(_workers, bounds[1:-1], bounds[2:]):
                wk.start(fn, lo, hi)
                started.append(wk)
            _local.busy = True
            try:
                first = fn(bounds[0], bounds[1])
            finally:
                _local.busy = False
                rest, error = [], None
                for wk in started:  # wait for every part, even after an error
                    try:
                        rest.append(wk.finish())
                    except BaseException as e:
                        error = error or e
            if error is not None:
                raise error
            return [first] + rest
        finally:
            for lc, k in zip(libs, saved):
                lc.set_num_threads(k)
    finally:
        _pool_lock.release()


# --------------------------------------------------------------------------- memory
#
# A training step allocates and frees the same large arrays (im2col chunks, activations,
# gradients) every batch. glibc hands blocks above 128 KiB back to the OS on free, so
# every step page-faults them in again: measured 5.4 -> 2.9 ms for LeNet's first conv
# fwd+bwd and 50 -> 44 ms for a 64x32x32x32 one. Like PyTorch's caching allocator, keep
# freed memory in the process instead: blocks up to 32 MiB come from the heap and the
# heap is not trimmed. Peak memory is unchanged (freed blocks are reused). Opt out with
# CNNLAB_KEEP_FREED_MEMORY=0.


def _keep_freed_memory():
    if os.environ.get("CNNLAB_KEEP_FREED_MEMORY", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, 32 << 20) and libc.mallopt(m_trim_threshold, 1 << 30))
    except (OSError, AttributeError):  # not glibc
        return False


_keep_freed_memory()


# --------------------------------------------------------------------------- elementwise


def all_finite(a):
    """True when ``a`` holds no inf or NaN: its max and min are finite (NaN propagates
    through both). Two fast reductions: 2x quicker than one sum under np.errstate, and no
    overflow to guard against."""
    if a.size == 0:
        return True
    return bool(np.isfinite(np.maximum.reduce(a, axis=None)) and np.isfinite(np.minimum.reduce(a, axis=None)))


def keep_where(a, mask):
    """``a`` where ``mask`` else +0, exactly for any values (inf and NaN included), with
    no finiteness check: the bits of ``a`` ANDed with 0 or all-ones. 1.7x faster than a
    checked multiply by the mask (LeNet's first ReLU backward: 40 -> 23 us)."""
    ints = np.dtype(f"i{a.dtype.itemsize}")
    ones = np.negative(mask.view(np.uint8), dtype=ints)  # True -> -1, all bits set
    return np.bitwise_and(a.view(ints), ones, out=ones).view(a.dtype)


def masked(a, mask, out=None, finite=None):
    """``a`` where ``mask`` else 0, i.e. np.where(mask, a, 0) -- as a multiplication by the
    boolean mask, which NumPy runs ~10x faster than np.where on float32. That is exact
    when ``a`` is finite (``finite``: known already, else checked here); an inf or NaN
    would turn masked-out places into NaN, so then np.where runs instead."""
    if finite is None:
        finite = all_finite(a)
    if finite:
        return np.multiply(a, mask, out=out)
    exact = np.where(mask, a, np.zeros((), dtype=a.dtype))
    if out is None:
        return exact
    out[...] = exact
    return out


# --------------------------------------------------------------------------- per channel
#
# Batch norm's statistics and its scale-and-shift act per channel. When the channels are
# innermost in memory (a channels-last conv's output, or (N, D) features) NumPy would
# run them as one short inner loop per pixel (32 numbers for 32 channels): measured on
# 64x32x32x32, a mean took 1.1 ms and x * scale 1.9 ms. Seen as rows of m pixels
# (m * C numbers) against a scale tiled m times, the inner loops are long: 0.3 ms each.


def _channel_rows(x):
    """(rows of m pixels, m) for x (N, C, *S) whose channels are innermost in memory, else
    None: the (P/m, m*C) view, with m * C at most 4096."""
    v = np.moveaxis(x, 1, -1)
    if not v.flags.c_contiguous:
        return None
    c, m = x.shape[1], 1
    p = x.size // max(c, 1)
    while 2 * m * c <= 4096 and p % (2 * m) == 0:
        m *= 2
    return v.reshape(p // m, m * c), m


def channel_sums(x):
    """x (N, C, *S) -> (C,): the sum over every axis but the channels."""
    rows = _channel_rows(x)
    if rows is None:
        return x.sum(axis=(0,) + tuple(range(2, x.ndim)))
    v, m = rows
    return v.sum(axis=0).reshape(m, -1).sum(axis=0)


def channel_dot(a, b):
    """a, b (N, C, *S) -> (C,): sum over every axis but the channels of a * b, without
    the product as a temporary."""
    ra, rb = _channel_rows(a), _channel_rows(b)
    if ra is None or rb is None or ra[1] != rb[1]:
        idx = "abcdefghij"[:a.ndim]
        return np.einsum(f"{idx},{idx}->{idx[1]}", a, b)
    return np.einsum("ij,ij->j", ra[0], rb[0]).reshape(ra[1], -1).sum(axis=0)


def channel_affine(x, scale, shift=None, out=None):
    """x * scale[c] + shift[c] for x (N, C, *S), scale/shift (C,) or None (no scaling, no
    shift) -> a new array in x's memory layout, or ``out``."""
    if out is None:
        out = empty_in_order(x.shape, x.dtype, memory_order(x))
    rx, ro = _channel_rows(x), _channel_rows(out)
    if rx is not None and ro is not None and rx[1] == ro[1]:
        (x, m), out_v = rx, ro[0]
        spread = lambda a: np.tile(a.astype(x.dtype, copy=False), m)  # noqa: E731
    else:
        out_v = out
        spread = lambda a: a.reshape((1, -1) + (1,) * (x.ndim - 2)).astype(x.dtype, copy=False)  # noqa: E731
    if scale is None:
        np.add(x, spread(shift), out=out_v)
        return out
    np.multiply(x, spread(scale), out=out_v)
    if shift is not None:
        np.add(out_v, spread(shift), out=out_v)
    return out


# --------------------------------------------------------------------------- layout


def _padded_copy(src, pads, axes, out_shape, fill=0.0):
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

    parallel(part, partition(src.shape[0], 1, src.size, NUMBERS_PER_PART))
    return xp


def to_channels_last_padded(x, pads, fill=0.0):
    """(N, C, *S) -> padded channels-last copy (N, *(S + lo + hi), C), padding ``fill``.

    One allocation and one strided copy, whatever the layout of ``x``: if ``x`` is the
    transposed view of a channels-last buffer (what our convs return) the copy is a
    straight memcpy per row.
    """
    n, c = x.shape[:2]
    padded = tuple(s + lo + hi for s, (lo, hi) in zip(x.shape[2:], pads))
    return _padded_copy(np.moveaxis(x, 1, -1), pads, range(1, 1 + len(pads)), (n,) + padded + (c,), fill)


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
_COPY_BLOCK = 1 << 17  # numbers per block


def copy_into(dst, src):
    """dst[...] = src, in cache-sized blocks along the axis outermost in both memory
    orders when they differ (see above); src may broadcast only if the orders agree."""
    if dst.size < 2 * _COPY_BLOCK or src.shape != dst.shape or memory_order(dst) == memory_order(src):
        np.copyto(dst, src)
        return dst
    rank_d, rank_s = memory_order(dst), memory_order(src)
    axis = min(range(dst.ndim), key=lambda a: (rank_d.index(a) + rank_s.index(a), a))
    step = max(1, dst.shape[axis] * _COPY_BLOCK // dst.size)
    lead = (slice(None),) * axis

    def part(lo, hi):  # big copies over the threads too: 64x32x32x32 1.9 -> 1.1 ms
        for b in range(lo, hi, step):
            sl = lead + (slice(b, min(b + step, hi)),)
            np.copyto(dst[sl], src[sl])

    parallel(part, partition(dst.shape[axis], step, dst.size, NUMBERS_PER_PART))
    return dst


def _copy_in_order(a, order):
    return copy_into(empty_in_order(a.shape, a.dtype, order), a)


def in_order(a, order):
    """``a``, copied into memory order ``order`` unless it is in it already."""
    return a if memory_order(a) == order else _copy_in_order(a, order)


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
    strides = ((sn,) + tuple(s * st for s, st in zip(ss, stride))
               + tuple(s * d for s, d in zip(ss, dilation)) + (sc,))
    return as_strided(xp, shape=shape, strides=strides, writeable=False)


def _offset_slices(offset, stride, dilation, out_shape):
    """Slices of the padded input touched by kernel tap ``offset`` across all outputs."""
    return tuple(slice(k * d, k * d + (o - 1) * s + 1, s)
                 for k, d, s, o in zip(offset, dilation, stride, out_shape))


# --------------------------------------------------------------------------- conv
#
# Two layouts, chosen by the number of input channels (see _use_channels_last):
# - channels-last: the padded input is (N, *Sp, C); a receptive field is prod(k) runs
#   of C contiguous numbers, so im2col is one reshape-copy of a window view, and
#   cols (N*P, T*C) @ w2 (T*C, K) gives the output already in (N, *out, K) order. It runs
#   in cache-sized chunks of images (see _im2col_chunks).
# - batch-last (gray/RGB images, LeNet's 6 maps): the padded input is (C, *Sp, N), the batch
#   innermost (cuda-convnet's layout), and the transposed im2col matrix (T*C, P*N) is
#   filled one tap at a time, each a copy of runs of Wo*N contiguous numbers;
#   w2t (K, T*C) @ cols_t gives (K, *out, N). With few channels a channels-last copy
#   would move runs of only kw*C numbers (5 for LeNet's first layer), and a (C, N, *S)
#   one runs of Wo (28). Small maps under large kernels (LeNet's) take a variant of it,
#   row blocks (see _row_block).
# Every output is handed back as an (N, C, *S) view of its buffer, every gradient in its
# activation's memory order, and big ops run their images in parallel parts (see the
# threads section).

_WIDE = 12


def _use_channels_last(c, kernel, stride):
    """Channels-last from 12 input channels on, batch-last below. Measured fwd+bwd, 64
    images: 6 -> 16 channels 5x5 on 14x14 (LeNet's second conv) 2.18 ms channels-last
    against 1.95 batch-last; 8 -> 32 3x3 on 32x32 20.9 against 12.4; 12 -> 32 5x5 even;
    16 -> 32 5x5 6.7 against 11.1."""
    return c >= _WIDE


def _taps_nd(kernel):
    return list(enumerate(itertools.product(*(range(k) for k in kernel))))


def _batch_last_padded(x, pads):
    """(N, C, *S) -> zero-padded batch-last copy (C, *(S + lo + hi), N)."""
    n, c = x.shape[:2]
    spatial = x.shape[2:]
    if all(lo == 0 and hi == 0 for lo, hi in pads) and np.moveaxis(x, 0, -1).flags.c_contiguous:
        return np.moveaxis(x, 0, -1)  # already batch-last (the output of a batch-last op)
    padded = tuple(s + lo + hi for s, (lo, hi) in zip(spatial, pads))
    return _padded_copy(np.moveaxis(x, 0, -1), pads, range(1, 1 + len(pads)), (c,) + padded + (n,))


def _window_view_batch_last(xp, kernel, stride, dilation, out_shape):
    """Zero-copy view (*kernel, C, *out, N) of a batch-last (C, *Sp, N) array: element
    [t.., c, o.., n] is xp[c, o*stride + t*dilation, n] along each spatial axis."""
    sc, ss, sn = xp.strides[0], xp.strides[1:-1], xp.strides[-1]
    shape = tuple(kernel) + (xp.shape[0],) + tuple(out_shape) + (xp.shape[-1],)
    strides = (tuple(s * d for s, d in zip(ss, dilation)) + (sc,)
               + tuple(s * st for s, st in zip(ss, stride)) + (sn,))
    return as_strided(xp, shape=shape, strides=strides, writeable=False)


def _bl(offset, stride, dilation, out_shape):
    """Index of kernel tap ``offset`` across all outputs in a (C, *Sp, N) array."""
    return (slice(None),) + _offset_slices(offset, stride, dilation, out_shape) + (slice(None),)


# A GEMM whose small operand is tiny (6 filters x 25 taps, the weights of a conv on a
# gray or RGB image) against a very long one (every pixel of the batch) runs 1.5-3x
# faster in blocks of ~1k columns than in one call: OpenBLAS otherwise streams the long
# operand through its packing routine out of cache. The blocks go to one batched matmul
# (a stack of (.., 1024) views: NumPy loops over them in C). Measured, one thread:
# (6,25)@(25,50176) 0.43 -> 0.25 ms, its dw (6,50176)@(50176,25) 0.85 -> 0.26 ms,
# (32,27)@(27,65536) dw 2.5 -> 1.4 ms; with a larger small operand (16x150 and up)
# blocking gained nothing.
_GEMM_BLOCK = 1024


def _blocked(small):
    return small <= 1200


def _stacked(a):
    """a (rows, cols) as a stack of column blocks (blocks, rows, _GEMM_BLOCK) -- a view --
    and the leftover columns (rows, < _GEMM_BLOCK)."""
    nb = a.shape[1] // _GEMM_BLOCK
    mid = nb * _GEMM_BLOCK
    stack = a[:, :mid].reshape(a.shape[0], nb, _GEMM_BLOCK).transpose(1, 0, 2)
    return stack, a[:, mid:]


def _gemm_blocked(w, cols, out):
    """out = w @ cols, in column blocks when w is tiny."""
    if not _blocked(w.size):
        np.matmul(w, cols, out=out)
        return
    (cs, cr), (os_, or_) = _stacked(cols), _stacked(out)
    if len(cs):
        np.matmul(w, cs, out=os_)
    if cr.shape[1]:
        np.matmul(w, cr, out=or_)


def _column_sums(a):
    """a (M, K) -> (K,) sums over the rows, as a GEMV (ones @ a): 17x faster than
    a.sum(axis=0) for a (6400, 16) gradient. Called inside the parts of parallel(), where
    BLAS is single-threaded: a multi-threaded BLAS call outside them leaves OpenBLAS's
    threads spin-waiting for ~ms, and they then steal the core from the next parallel op
    (measured: a 64x64x16x16 -> 128 conv backward 29 -> 49 ms)."""
    return np.ones(a.shape[0], dtype=a.dtype) @ a


def _gemm_nt_blocked(a, b):
    """a @ b.T, summed over column blocks when both are short. Computed as the transpose
    of b @ a.T, which OpenBLAS runs 1.2-1.8x faster for these shapes (measured
    (16,6400)@(6400,150): 0.42 -> 0.24 ms)."""
    if not _blocked(a.shape[0] * b.shape[0]):
        return np.matmul(b, a.T).T
    (as_, ar), (bs, br) = _stacked(a), _stacked(b)
    out = np.matmul(bs, as_.transpose(0, 2, 1)).sum(axis=0) if len(bs) else 0
    if br.shape[1]:
        out = out + br @ ar.T
    return out.T


# Batch-last im2col runs in chunks of output rows of about _CHUNK_BYTES_BL, so the copy
# and the GEMM reading it meet in the cache; the whole column matrix is kept for the
# backward pass only up to _KEEP_BYTES. Measured, LeNet-5 inference on 512 images: the
# first conv (40 MB of columns) took 8.6 ms in one piece, 3.9 ms in 2 MB chunks; the
# second 7.8 -> 5.4 ms. (1 to 8 MB chunks measured alike within this VM's noise.)
_CHUNK_BYTES_BL = 2 << 20
_KEEP_BYTES = 16 << 20


def _im2col_batch_last(windows, kept, lo, hi, rebuild=True):
    """Yield (cols, c0, c1) over chunks of output rows lo..hi: the (T*C, columns) matrix
    of those rows and its column range in the full (T*C, P*N) matrix. ``kept``: the full
    matrix, to fill (forward) or read (backward, ``rebuild=False``); None: a chunk buffer
    reused from chunk to chunk."""
    n = windows.shape[-1]
    nsp = (windows.ndim - 2) // 2
    kernel, c, out = windows.shape[:nsp], windows.shape[nsp], windows.shape[nsp + 1:-1]
    row = math.prod(out[1:]) * n  # columns per output row
    ntap = math.prod(kernel) * c
    step = max(1, min(hi - lo, _CHUNK_BYTES_BL // max(1, ntap * row * windows.itemsize)))
    if not rebuild:  # reading kept columns: one piece
        step = max(1, hi - lo)
    buf = None if kept is not None else np.empty((ntap, step * row), dtype=windows.dtype)
    for o0 in range(lo, hi, step):
        o1 = min(o0 + step, hi)
        c0, c1 = o0 * row, o1 * row
        cols = kept[:, c0:c1] if kept is not None else buf[:, :c1 - c0]
        if rebuild:
            dst = cols.view()
            dst.shape = tuple(kernel) + (c, o1 - o0) + tuple(out[1:]) + (n,)  # a view, never a copy
            np.copyto(dst, windows[(slice(None),) * (nsp + 1) + (slice(o0, o1),)])
        yield cols, c0, c1


# im2col in chunks of whole images whose column matrix fits in the cache: the copy and
# the GEMM that reads it then stay out of main memory (measured: 40 -> 22 ms for a
# 64x32x32x32 -> 64-filter 3x3 forward), and no (N*P, T*C) matrix is kept for big convs.
_CHUNK_BYTES = 4 << 20


def _im2col_chunks(xp, lo, hi, kernel, stride, dilation, out_shape):
    """Yield (images, rows, cols) over chunks of images lo..hi of channels-last ``xp``: the
    image slice, the matching slice of (N*P)-row matrices, and cols (rows, T*C), one
    buffer reused from chunk to chunk."""
    c = xp.shape[-1]
    p = math.prod(out_shape)
    ntap = math.prod(kernel) * c
    nb = int(max(1, min(hi - lo, _CHUNK_BYTES // max(1, p * ntap * xp.itemsize))))
    buf = np.empty((nb * p, ntap), dtype=xp.dtype)
    for i in range(lo, hi, nb):
        m = min(nb, hi - i)
        cols = buf[:m * p]
        np.copyto(cols.reshape((m,) + tuple(out_shape) + tuple(kernel) + (c,)),
                  window_view(xp[i:i + m], kernel, stride, dilation, out_shape))
        yield slice(i, i + m), slice(i * p, (i + m) * p), cols


def conv_forward(x, w, b, stride, pads, dilation, out_shape):
    """N-d cross-correlation as GEMMs (see the layout note above).

    x (N, C, *S), w (K, C, *k), b (K,) or None -> y (N, K, *out) (a view), kernel cache.
    out[n, k, o] = b[k] + sum_{c, t} w[k, c, t] * xpad[n, c, o*stride + t*dilation]
    """
    n = x.shape[0]
    kdim, c = w.shape[:2]
    kernel = w.shape[2:]
    ntap = math.prod(kernel) * c
    p = math.prod(out_shape)
    flops = 2.0 * n * p * kdim * ntap
    bounds = partition(n, 2, flops, FLOPS_PER_PART)
    if _use_channels_last(c, kernel, stride):
        xp = to_channels_last_padded(x, pads)
        # (K, C, *k) -> (*k, C, K) so rows match the (tap, channel) order of the columns
        w2 = np.moveaxis(w.reshape(kdim, c, -1), 0, -1).transpose(1, 0, 2).reshape(ntap, kdim)
        y = np.empty((n * p, kdim), dtype=x.dtype)

        def part(lo, hi):
            chunks = 0
            for _, rows, cols in _im2col_chunks(xp, lo, hi, kernel, stride, dilation, out_shape):
                np.matmul(cols, w2, out=y[rows])
                if b is not None:
                    y[rows] += b  # while the chunk is still in cache
                chunks += 1
            # a part that fit in one chunk keeps its columns (<= _CHUNK_BYTES), so the
            # backward pass need not rebuild them
            return cols if chunks == 1 else None

        kept = parallel(part, bounds)
        kept = None if any(k is None for k in kept) else kept
        y = y.reshape((n,) + tuple(out_shape) + (kdim,))
        return channels_first_view(y), ("last", xp, w2, bounds, kept, memory_order(x))
    g = _row_block(x, kernel, stride, dilation, x.shape[2] + sum(pads[0]), out_shape, kdim)
    if g is not None:
        return _conv_forward_rows(x, w, b, g, stride, pads, dilation, out_shape)
    xp = _batch_last_padded(x, pads)
    windows = _window_view_batch_last(xp, kernel, stride, dilation, out_shape)
    # (K, C, *k) -> (K, T, C) so columns match the (tap, channel) rows of the columns
    w2t = np.ascontiguousarray(w.reshape(kdim, c, -1).transpose(0, 2, 1)).reshape(kdim, ntap)
    y = np.empty((kdim, p * n), dtype=x.dtype)
    # columns kept for the backward pass when they are small (a training step of LeNet:
    # 5 MB); big ones (inference on large batches) live one cache-sized chunk at a time
    cols_t = np.empty((ntap, p * n), dtype=x.dtype) if ntap * p * n * x.itemsize <= _KEEP_BYTES else None

    def part(lo, hi):  # output rows lo..hi (the first output axis)
        for cols, c0, c1 in _im2col_batch_last(windows, cols_t, lo, hi):
            if kdim <= 16:  # measured: blocking helps the forward GEMM only here
                _gemm_blocked(w2t, cols, y[:, c0:c1])
            else:
                np.matmul(w2t, cols, out=y[:, c0:c1])
            if b is not None:
                y[:, c0:c1] += b[:, None]  # while the chunk is still in cache

    parallel(part, partition(out_shape[0], 1, flops, FLOPS_PER_PART))
    y = y.reshape((kdim,) + tuple(out_shape) + (n,))
    return np.moveaxis(y, -1, 0), ("major", cols_t, w2t, windows, xp.shape, memory_order(x))


# Row blocks: a small map with few channels (LeNet's: 1 or 6 maps of 32x32 or 14x14,
# 5x5 kernels) is cheaper as a convolution over its other axes whose channels are
# (C, rows of a block): each block of g output rows reads Hb = (g-1)*s + (kh-1)*d + 1
# input rows, and the weights become one Toeplitz matrix in H, (g*K, T_r*C*Hb), shared
# by all blocks: w2[(o, k), (t, c, y)] = w[k, c, i, t] where y = o*s + i*d, else 0.
# So im2col copies T_r*C*Hb numbers per block instead of kh*T_r*C per output row, the
# GEMM has g*K rows instead of K (OpenBLAS crawls at 6 or 16), and the backward scatter
# is T_r adds per block instead of kh*T_r. The price: the GEMMs also multiply the
# Toeplitz zeros, Hb/kh times the work; blocks are sized to keep that at most
# _MAX_INFLATION. Measured at batch 64, conv2d_forward / conv2d_backward, plain -> row
# blocks: LeNet's second conv (2 blocks of 5 rows: an 80-row GEMM over 2 x 271 x 640
# columns instead of 16 rows over 151 x 6400) fwd 0.65 -> 0.46 ms, bwd 1.10 -> 0.90 ms;
# its first (7 blocks of 4 rows) fwd 0.58 -> 0.44 ms, dw alone 0.47 -> 0.58 ms (a wash in
# a training step, a gain in inference and wherever dx is needed: bwd 1.41 -> 1.24 ms).
_MAX_INFLATION = 2.0
# With 32 filters the plain GEMM runs well enough that the doubled work loses: 3 -> 32
# channels 3x3 on 32x32 (blocks of 4 rows) went fwd 1.60 -> 1.52 ms but dw 2.58 -> 3.98.
_ROWS_MAX_FILTERS = 16
# A 3-row kernel saves too little of its (short) im2col: 3 -> 16 channels 3x3 on 32x32
# went fwd 1.29 -> 1.10 ms but dw 1.59 -> 2.19 ms and dx 1.78 -> 1.74; 1 -> 8 on 28x28
# fwd+bwd 1.24 -> 1.46 ms; while 3 -> 16 5x5 on 32x32 went fwd 3.31 -> 1.90, fwd+bwd
# 9.8 -> 7.6 ms.
_ROWS_MIN_KERNEL = 5


def _row_block(x, kernel, stride, dilation, hp, out_shape, kdim):
    """Output rows per block for the row-block route (the most whose input rows stay within
    _MAX_INFLATION kernel heights, dividing the output rows), or None: fewer than 2 spatial
    axes, kernels under _ROWS_MIN_KERNEL rows, more than _ROWS_MAX_FILTERS filters,
    channels-last, no such block, columns over _KEEP_BYTES -- or a non-finite x,
    since the Toeplitz zeros times an inf or NaN would spread it over a whole block."""
    if (len(kernel) < 2 or kernel[0] < _ROWS_MIN_KERNEL or kdim > _ROWS_MAX_FILTERS
            or _use_channels_last(x.shape[1], kernel, stride)):
        return None
    kh, s0, d0, ho = kernel[0], stride[0], dilation[0], out_shape[0]
    fits = [g for g in range(2, ho + 1)
            if ho % g == 0 and (g - 1) * s0 + (kh - 1) * d0 + 1 <= _MAX_INFLATION * kh]
    if not fits:
        return None
    g = fits[-1]
    hb = (g - 1) * s0 + (kh - 1) * d0 + 1
    size = math.prod(kernel[1:]) * x.shape[1] * hb * (ho // g) * math.prod(out_shape[1:]) * x.shape[0]
    if size * x.itemsize > _KEEP_BYTES or not all_finite(x):
        return None
    return g


def _toeplitz(w, b, hb, g, s0, d0):
    """w (K, C, kh, *kr), b (K,) or None -> w2 (g*K, T_r*C*Hb + 1), rows (o, k), columns
    (tap over the other axes, c, y) and the bias: w2[(o, k), (t, c, y)] = w[k, c, i, t]
    where y = o*s0 + i*d0, else 0; w2[(o, k), -1] = b[k] (it meets a row of ones in the
    columns, so the GEMM adds the bias and the dw GEMM sums db)."""
    kdim, c, kh = w.shape[:3]
    kr = math.prod(w.shape[3:])
    ncol = kr * c * hb + 1
    m = np.zeros((g, kdim, ncol), dtype=w.dtype)
    so, sk, sq = m.strides
    band = np.ndarray((g, kdim, kr, c, kh), dtype=m.dtype, buffer=m,  # a view of the band
                      strides=(so + s0 * sq, sk, c * hb * sq, hb * sq, d0 * sq))
    band[...] = np.moveaxis(w.reshape(kdim, c, kh, kr), 3, 1)
    if b is not None:
        m[:, :, -1] = b
    return m.reshape(g * kdim, ncol)


def _untoeplitz(dm, w_shape, hb, g, s0, d0):
    """The gradient of :func:`_toeplitz` from dm (T_r*C*Hb + 1, g*K), the transposed
    gradient of w2: dw[k, c, i, t] = sum_o dm[(t, c, o*s0 + i*d0), (o, k)]; db its last row."""
    kdim, c, kh = w_shape[:3]
    kr = math.prod(w_shape[3:])
    dm = np.ascontiguousarray(dm)
    band = np.ndarray((kdim, c, kh, kr, g), dtype=dm.dtype, buffer=dm,
                      strides=tuple(dm.itemsize * v for v in
                                    (1, hb * g * kdim, d0 * g * kdim, c * hb * g * kdim, kdim + s0 * g * kdim)))
    return band.sum(axis=-1).reshape(w_shape), dm[-1].reshape(g, kdim).sum(axis=0)


def _block_windows(xp, g, kernel, stride, dilation, out_shape):
    """(B, *kr, C, Hb, *out_r, N) view of the padded (C, Hp, *Sr, N) ``xp`` (any
    strides): element [b, t, c, y, o, n] is xp[c, b*g*s0 + y, o*s_r + t*d_r, n]."""
    kh, s0, d0 = kernel[0], stride[0], dilation[0]
    hb = (g - 1) * s0 + (kh - 1) * d0 + 1
    sc, sy, sr, sn = xp.strides[0], xp.strides[1], xp.strides[2:-1], xp.strides[-1]
    shape = (out_shape[0] // g,) + tuple(kernel[1:]) + (xp.shape[0], hb) + tuple(out_shape[1:]) + (xp.shape[-1],)
    strides = ((g * s0 * sy,) + tuple(s * d for s, d in zip(sr, dilation[1:])) + (sc, sy)
               + tuple(s * st for s, st in zip(sr, stride[1:])) + (sn,))
    if xp.flags.c_contiguous:
        return np.ndarray(shape, dtype=xp.dtype, buffer=xp, strides=strides)  # 10x quicker
    return as_strided(xp, shape=shape, strides=strides, writeable=False)


def _images_innermost(x, pads):
    """x (N, C, *S) as (C, *S, N) without a copy when the images are innermost in memory
    already (the output of a batch-last or row-block op) and nothing is padded, else None."""
    if x.strides[0] == x.itemsize and x.shape[0] > 1 and all(lo == hi == 0 for lo, hi in pads):
        return np.moveaxis(x, 0, -1)
    return None


def _conv_forward_rows(x, w, b, g, stride, pads, dilation, out_shape):
    """The row-block route of conv_forward (see the note above): y (N, K, *out) as a view
    of a (Ho, K, *out_r, N) buffer."""
    kdim, n = w.shape[0], x.shape[0]
    xp = _images_innermost(x, pads)
    if xp is None:
        xp = _batch_last_padded(x, pads)
    hb = (g - 1) * stride[0] + (w.shape[2] - 1) * dilation[0] + 1
    w2 = _toeplitz(w, b, hb, g, stride[0], dilation[0])
    windows = _block_windows(xp, g, w.shape[2:], stride, dilation, out_shape)
    nb, width = windows.shape[0], math.prod(out_shape[1:]) * n
    cols = np.empty((nb, w2.shape[1], width), dtype=x.dtype)
    np.copyto(cols[:, :-1].reshape(windows.shape), windows)
    cols[:, -1] = 1  # the bias row
    y = np.matmul(w2, cols)  # (B, g*K, width): rows (o, k) of each block
    y = y.reshape((out_shape[0], kdim) + tuple(out_shape[1:]) + (n,))
    view = np.moveaxis(np.moveaxis(y, 1, 0), -1, 0)  # (N, K, Ho, *out_r)
    return view, ("rows", cols, w2, g, xp.shape, memory_order(x))


def _conv_backward_rows(dout, w, kcache, stride, pads, dilation, need_dx):
    """Gradients of :func:`_conv_forward_rows`: dw from (sum over blocks of d @ cols^T)
    folded back from the Toeplitz band, db the sum of d, dx as (w2^T @ d) scattered back
    with one add per block and tap of the other axes."""
    _, cols, w2, g, xp_shape, x_order = kcache
    kdim, c = w.shape[:2]
    kh, kernel_r = w.shape[2], w.shape[3:]
    out_shape = tuple(dout.shape[2:])
    hb = (g - 1) * stride[0] + (kh - 1) * dilation[0] + 1
    # (N, K, Ho, *out_r) -> (B, g*K, width), free when dout is in the forward's layout
    d = np.moveaxis(np.moveaxis(dout, 0, -1), 1, 0).reshape(cols.shape[0], g * kdim, -1)
    dm = np.matmul(cols, d.transpose(0, 2, 1)).sum(axis=0)  # (T_r*C*Hb + 1, g*K): 1.3x faster than d @ cols^T
    dw, db = _untoeplitz(dm, w.shape, hb, g, stride[0], dilation[0])
    if not need_dx:
        return None, dw, db
    spatial = xp_shape[1:-1]
    if not all_finite(d):
        # an inf or NaN would spread over the Toeplitz zeros: the plain scatter keeps it
        # to its receptive field, as in PyTorch
        w2_rows = w.reshape(kdim, c, -1).transpose(2, 1, 0).reshape(-1, kdim)  # (T*C, K)
        d_kpn = np.moveaxis(dout, 0, -1).reshape(kdim, -1)
        dxp = _col2im_batch_last(w2_rows, d_kpn, w.shape[2:], c, out_shape, spatial, stride, dilation)
        return _from_batch_last_padded(dxp, pads, x_order), dw, db
    r = np.matmul(w2[:, :-1].T, d)  # (B, T_r*C*Hb, width)
    r = r.reshape((r.shape[0],) + (len(_taps_nd(kernel_r)), c, hb) + out_shape[1:] + (xp_shape[-1],))
    if x_order[-1] == 0:  # x had its images innermost: dx in x's layout, cropped without a copy
        full = empty_in_order((xp_shape[-1],) + tuple(xp_shape[:-1]), d.dtype, x_order, zero=True)
        dxp = np.moveaxis(full, 0, -1)
    else:
        full, dxp = None, np.zeros(xp_shape, dtype=d.dtype)
    step = g * stride[0]
    for blk in range(r.shape[0]):
        rows = slice(blk * step, blk * step + hb)
        for t, offset in _taps_nd(kernel_r):
            dxp[(slice(None), rows) + _offset_slices(offset, stride[1:], dilation[1:], out_shape[1:])] += r[blk, t]
    if full is not None:
        return _unpad(full, pads), dw, db
    return _from_batch_last_padded(dxp, pads, x_order), dw, db


def conv_backward(dout, w, kcache, stride, pads, dilation, need_dx=True):
    """Gradients of :func:`conv_forward`: (dx, dw, db).

    dw = dout^T @ cols (GEMMs against the im2col columns, kept or rebuilt per chunk),
    db = the sum of dout (per part), and dx by one of three routes:
    - stride 1, 16 to 63 input channels, or more channels than filters: dx is itself a
      convolution, of dout with the kernel flipped in space and K <-> C swapped, run by
      :func:`conv_forward`;
    - strided with >= 16 channels, or >= 64 channels and at least as many filters:
      dcols = dout @ w2^T per chunk, scattered back (col2im, one strided add per tap) in
      channels-last. With runs of 64+ channels the adds stream well, and the GEMM (T*C
      wide) beats the correlation's (C wide, over an im2col of the K-channel dout):
      measured dx 13.0 -> 12.0 ms for 64 -> 128 channels, 6.0 -> 4.9 ms for 128 -> 256,
      but 18.4 -> 19.1 ms for 32 -> 64;
    - otherwise (few channels, where a GEMM only C wide or a channels-last scatter would
      crawl): col2im in batch-last order, see :func:`_col2im_batch_last`.
    """
    if kcache[0] == "rows":
        return _conv_backward_rows(dout, w, kcache, stride, pads, dilation, need_dx)
    layout, buf, w2, bounds = kcache[:4]
    kdim, c = w.shape[:2]
    kernel = w.shape[2:]
    nsp = len(kernel)
    out_shape = tuple(dout.shape[2:])
    p = math.prod(out_shape)
    strided = any(st != 1 for st in stride)
    if layout == "last":
        xp, kept = buf, kcache[4]  # the channels-last padded input; columns if kept
        d2 = np.moveaxis(dout, 1, -1).reshape(-1, kdim)  # free if dout is in our layout
        scatter_last = need_dx and c >= 16 and (strided or (c >= 64 and kdim >= c))
        dxp = np.zeros(xp.shape, dtype=xp.dtype) if scatter_last else None
        kept_at = dict(zip(bounds, kept)) if kept is not None else None

        def part(lo, hi):
            dw2 = np.zeros(w2.shape, dtype=w2.dtype)
            tmp = np.empty(w2.shape, dtype=w2.dtype)
            chunks = ([(slice(lo, hi), slice(lo * p, hi * p), kept_at[lo])] if kept_at is not None
                      else _im2col_chunks(xp, lo, hi, kernel, stride, dilation, out_shape))
            for images, rows, cols in chunks:
                np.matmul(cols.T, d2[rows], out=tmp)
                dw2 += tmp
                if scatter_last:
                    # a rebuilt chunk's buffer is free again: reuse it for dcols (never
                    # kept columns: the cache must survive a second backward)
                    dcols = np.matmul(d2[rows], w2.T, out=None if kept_at is not None else cols)
                    dcols = dcols.reshape((-1,) + out_shape + (dcols.shape[-1],))
                    dchunk = dxp[images]
                    for t, offset in _taps_nd(kernel):
                        dchunk[(slice(None),) + _offset_slices(offset, stride, dilation, out_shape)] += \
                            dcols[..., t * c:(t + 1) * c]
            return dw2, _column_sums(d2[lo * p:hi * p])

        dw2, db = (sum(r) for r in zip(*parallel(part, bounds)))
        dw = dw2.reshape(kernel + (c, kdim))
        dw = np.ascontiguousarray(dw.transpose((nsp + 1, nsp) + tuple(range(nsp))))
        spatial = xp.shape[1:-1]
        if scatter_last:
            interior = tuple(slice(lo, s - hi) for s, (lo, hi) in zip(spatial, pads))
            return in_order(channels_first_view(dxp[(slice(None),) + interior]), kcache[5]), dw, db
        w2_rows = w2  # (T*C, K)
    else:
        cols_t, windows, spatial = buf, kcache[3], kcache[4][1:-1]
        d_kpn = np.moveaxis(dout, 0, -1).reshape(kdim, -1)  # free if dout is in our layout

        def part(lo, hi):  # output rows lo..hi; columns kept or rebuilt chunk by chunk
            dw_p = 0
            for cols, c0, c1 in _im2col_batch_last(windows, cols_t, lo, hi, rebuild=cols_t is None):
                dw_p = dw_p + _gemm_nt_blocked(d_kpn[:, c0:c1], cols)
            row = d_kpn.shape[1] // out_shape[0]
            return dw_p, _column_sums(d_kpn[:, lo * row:hi * row].T)

        flops = 2.0 * d_kpn.size * w2.shape[1]
        dw, db = (sum(r) for r in zip(*parallel(part, partition(out_shape[0], 1, flops, FLOPS_PER_PART))))
        dw = np.ascontiguousarray(dw.reshape((kdim, -1, c)).transpose(0, 2, 1)).reshape(w.shape)
        w2_rows = w2.T
    if not need_dx:
        return None, dw, db
    if not strided and c >= 16:
        return in_order(_dx_by_full_correlation(dout, w, pads, dilation, spatial), kcache[5]), dw, db
    if layout == "last":
        d_kpn = d2.reshape(-1, p, kdim).transpose(2, 1, 0).reshape(kdim, -1)
    dxp = _col2im_batch_last(w2_rows, d_kpn, kernel, c, out_shape, spatial, stride, dilation)
    return _from_batch_last_padded(dxp, pads, kcache[5]), dw, db


def _col2im_batch_last(w2_rows, d_kpn, kernel, c, out_shape, spatial, stride, dilation):
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
    taps = _taps_nd(kernel)
    w3 = w2_rows.reshape(len(taps), c, kdim)
    strided = any(st != 1 for st in stride)
    if strided:
        q = tuple(-(-sp // st) for sp, st in zip(spatial, stride))  # cells per phase (at most)
        buf = np.zeros((c,) + tuple(stride) + q + (n,), dtype=w2_rows.dtype)
    else:
        buf = np.zeros((c,) + tuple(spatial) + (n,), dtype=w2_rows.dtype)

    def part(c0, c1):
        dcols_t = (w3[:, c0:c1].reshape(-1, kdim) @ d_kpn).reshape((len(taps), c1 - c0) + out_shape + (n,))
        sub = buf[c0:c1]
        for t, offset in taps:
            if strided:  # tap cell o*s + i*d = phase (i*d) % s, index o + (i*d) // s
                cell = [i * d for i, d in zip(offset, dilation)]
                sub[(slice(None),) + tuple(v % st for v, st in zip(cell, stride))
                    + tuple(slice(v // st, v // st + o) for v, st, o in zip(cell, stride, out_shape))] += dcols_t[t]
            else:
                sub[_bl(offset, stride, dilation, out_shape)] += dcols_t[t]

    parallel(part, partition(c, 1, 2.0 * w2_rows.size * d_kpn.shape[1], FLOPS_PER_PART))
    if not strided:
        return buf
    # interleave: dx[c, r + s*q, n] = buf[c, r, q, n], one strided copy
    nsp = len(spatial)
    full = np.empty((c,) + tuple(qq * st for qq, st in zip(q, stride)) + (n,), dtype=buf.dtype)
    split = full.reshape((c,) + tuple(v for qq, st in zip(q, stride) for v in (qq, st)) + (n,))
    perm = (0,) + tuple(v for a in range(nsp) for v in (1 + nsp + a, 1 + a)) + (1 + 2 * nsp,)
    np.copyto(split, buf.transpose(perm))
    return full[(slice(None),) + tuple(slice(0, sp) for sp in spatial)]


def _from_batch_last_padded(dxp, pads, x_order):
    """(C, *Sp, N) padded batch-last -> (N, C, *S), cropped, in memory order ``x_order``
    (the layout of the conv's input, where the gradient flows next)."""
    n, c = dxp.shape[-1], dxp.shape[0]
    spatial = dxp.shape[1:-1]
    if x_order == memory_order(np.moveaxis(dxp, -1, 0)) and all(lo == hi == 0 for lo, hi in pads):
        return np.moveaxis(dxp, -1, 0)  # x was batch-last too: no copy
    interior = tuple(slice(lo, s - hi) for s, (lo, hi) in zip(spatial, pads))
    dx = empty_in_order((n, c) + tuple(s - lo - hi for s, (lo, hi) in zip(spatial, pads)), dxp.dtype, x_order)
    return copy_into(dx, np.moveaxis(dxp[(slice(None),) + interior], -1, 0))


def _dx_by_full_correlation(dout, w, pads, dilation, padded_spatial):
    """dx of a stride-1 convolution as a convolution itself:

        dx = dout (padded by d(k-1) - p) correlated with w flipped in space, K <-> C,

    so it runs through the same chunked im2col + GEMM as the forward pass instead of a
    prod(k)-pass scatter (which is single-threaded memory traffic in NumPy)."""
    nsp = w.ndim - 2
    w_t = np.ascontiguousarray(np.swapaxes(w, 0, 1)[(slice(None), slice(None)) + (slice(None, None, -1),) * nsp])
    kernel = w.shape[2:]
    full = tuple(d * (k - 1) for k, d in zip(kernel, dilation))
    pads_t = tuple((f - lo, f - hi) for f, (lo, hi) in zip(full, pads))
    spatial = tuple(s - lo - hi for s, (lo, hi) in zip(padded_spatial, pads))
    if any(lo < 0 or hi < 0 for lo, hi in pads_t):  # padding wider than the kernel reach
        big = tuple((max(lo, 0), max(hi, 0)) for lo, hi in pads_t)
        dx, _ = conv_forward(dout, w_t, None, (1,) * nsp, big, dilation,
                             tuple(o + sum(b) - d * (k - 1) for o, b, k, d in zip(dout.shape[2:], big, kernel, dilation)))
        crop = tuple(slice(max(-lo, 0), max(-lo, 0) + s) for (lo, _), s in zip(pads_t, spatial))
        return dx[(slice(None), slice(None)) + crop]
    dx, _ = conv_forward(dout, w_t, None, (1,) * nsp, pads_t, dilation, spatial)
    return dx


# --------------------------------------------------------------------------- pooling


def _pad_channels_first(x, pads, fill):
    if all(lo == 0 and hi == 0 for lo, hi in pads):
        return x
    shape = x.shape[:2] + tuple(s + lo + hi for s, (lo, hi) in zip(x.shape[2:], pads))
    xp = np.full(shape, fill, dtype=x.dtype)
    xp[(slice(None), slice(None)) + tuple(slice(lo, lo + s) for s, (lo, _) in zip(x.shape[2:], pads))] = x
    return xp


def _taps(kernel, stride, out_shape):
    """(tap index, slices of the padded input that tap t sees for every output)."""
    ones = (1,) * len(kernel)
    for t, offset in enumerate(itertools.product(*(range(k) for k in kernel))):
        yield t, (slice(None), slice(None)) + _offset_slices(offset, stride, ones, out_shape)


def _outer_axis(a):
    """The axis (0 = images, 1 = channels) to split a pooling op over threads: the one
    outermost in memory, so each thread streams its own block. Splitting the images of a
    batch-last (C, *S, N) array instead interleaves the threads in every row: LeNet's
    first pool at batch 512 ran 1.9x slower on 2 threads than on 1."""
    return 1 if memory_order(a)[0] == 1 else 0


def _along(a, axis, lo, hi):
    return a[(slice(None),) * axis + (slice(lo, hi),)]


def _unpad(dxp, pads):
    return dxp[(slice(None), slice(None)) + tuple(
        slice(lo, s - hi) for s, (lo, hi) in zip(dxp.shape[2:], pads))]


def maxpool_forward(x, kernel, stride, pads, out_shape, with_arg=True):
    """out[n, c, o] = max over the window, as prod(k) np.maximum passes over strided
    slices (no window copy), the images split over threads; NaN propagates.

    ``wins`` (with_arg): bool (T, N, C, *out), wins[t] marks the windows whose winner is
    tap t -- the first maximum on ties and the last NaN, as in PyTorch. Kept as
    masks rather than an argmax index, the backward pass needs one multiply per tap
    instead of a compare and a multiply, and the forward three passes per tap, not five."""
    xp = _pad_channels_first(x, pads, -np.inf)
    taps = list(_taps(kernel, stride, out_shape))
    full_out = x.shape[:2] + tuple(out_shape)
    order = memory_order(x)
    out = empty_in_order(full_out, x.dtype, order)  # keep the input's layout (wins too, so
    wins = (empty_in_order((len(taps),) + full_out, np.bool_, (0,) + tuple(i + 1 for i in order))
            if with_arg else None)  # the backward's ops align)

    ax = _outer_axis(x)

    def part(lo, hi):
        xs, o = _along(xp, ax, lo, hi), _along(out, ax, lo, hi)
        np.copyto(o, xs[taps[0][1]])
        for _, sl in taps[1:]:
            np.maximum(o, xs[sl], out=o)
        if not with_arg:
            return
        w = _along(wins, ax + 1, lo, hi)
        found = np.equal(xs[taps[0][1]], o, out=w[0])  # some tap so far equals the max
        spares = (np.empty_like(found), np.empty_like(found))  # in its memory layout
        for t, sl in taps[1:]:
            eq = np.equal(xs[sl], o, out=w[t])
            if t == len(taps) - 1 and all_finite(o):
                np.greater(eq, found, out=w[t])  # eq and not found (no NaN: found is all set)
                return
            grown = np.bitwise_or(found, eq, out=spares[t % 2])
            np.bitwise_xor(grown, found, out=w[t])  # eq and not found
            found = grown
        if not all_finite(o):
            # a window holding NaN has no tap equal to its max (NaN); as in PyTorch, its
            # winner is its last NaN (rare: a few extra passes)
            taken = np.zeros_like(found)
            for t, sl in reversed(taps):
                last_nan = np.greater(np.isnan(xs[sl]), taken)
                w[t] |= last_nan
                taken |= last_nan

    parallel(part, partition(x.shape[ax], 2, x.size, NUMBERS_PER_PART))
    return out, wins


def maxpool_backward(dout, wins, x_shape, kernel, stride, pads, order=None):
    """Route each upstream gradient to its window's winner: one multiply by the winner
    mask of each tap (``wins`` from maxpool_forward)."""
    padded = x_shape[:2] + tuple(s + lo + hi for s, (lo, hi) in zip(x_shape[2:], pads))
    taps = list(_taps(kernel, stride, dout.shape[2:]))
    tiling = _is_tiling(x_shape[2:], kernel, stride, pads)
    # tiling: every cell is some window's tap exactly once, so no zeros and no adds
    dxp = empty_in_order(padded, dout.dtype, order or tuple(range(len(padded))), zero=not tiling)

    finite = all_finite(dout)
    if memory_order(dout) != memory_order(wins[0]):
        # e.g. the gradient coming back through Flatten is C-ordered while the pooled
        # activation was channels-last: one copy beats prod(k) passes with mixed strides
        # (measured 0.43 -> 0.1 ms on LeNet's second pool)
        dout = _copy_in_order(dout, memory_order(wins[0]))

    ax = _outer_axis(dxp)

    def part(lo, hi):
        d, w, dx = _along(dout, ax, lo, hi), _along(wins, ax + 1, lo, hi), _along(dxp, ax, lo, hi)
        for t, sl in taps:
            if tiling:
                masked(d, w[t], out=dx[sl], finite=finite)
            else:
                dx[sl] += masked(d, w[t], finite=finite)

    parallel(part, partition(dout.shape[ax], 2, dxp.size, NUMBERS_PER_PART))
    return _unpad(dxp, pads)


def _is_tiling(shape, kernel, stride, pads):
    """Non-overlapping windows that tile the input exactly: every cell in one window."""
    return (tuple(kernel) == tuple(stride) and all(lo == 0 and hi == 0 for lo, hi in pads)
            and all(s % k == 0 for s, k in zip(shape, kernel)))


def avgpool_forward(x, kernel, stride, pads, out_shape):
    """out = mean over the window (zeros of the padding counted, PyTorch's default),
    as prod(k) strided adds."""
    xp = _pad_channels_first(x, pads, 0.0)
    taps = list(_taps(kernel, stride, out_shape))
    out = xp[taps[0][1]].copy(order="K")  # keep the input's memory layout
    for _, sl in taps[1:]:
        out += xp[sl]
    out *= np.asarray(1.0 / len(taps), dtype=out.dtype)
    return out


def avgpool_backward(dout, x_shape, kernel, stride, pads, order=None):
    """Spread each upstream gradient evenly over its window: dx += dout / prod(k) per tap."""
    share = dout * np.asarray(1.0 / np.prod(kernel), dtype=dout.dtype)
    if _is_tiling(x_shape[2:], kernel, stride, pads):
        dx = empty_in_order(x_shape, dout.dtype, order or tuple(range(len(x_shape))))
        for _, sl in _taps(kernel, stride, dout.shape[2:]):
            dx[sl] = share
        return dx
    padded = x_shape[:2] + tuple(s + lo + hi for s, (lo, hi) in zip(x_shape[2:], pads))
    dxp = empty_in_order(padded, dout.dtype, order or tuple(range(len(padded))), zero=True)
    for _, sl in _taps(kernel, stride, dout.shape[2:]):
        dxp[sl] += share
    return _unpad(dxp, pads)
