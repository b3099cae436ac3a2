"""The runtime under the kernels: the thread pool that splits a batch over the cores,
BLAS held to one thread inside it, and the switch that keeps freed memory in the process.

Nothing here happens at import. Threads start when the first op big enough to split runs
(:func:`set_num_threads` bounds them; 1 means none are ever started); the allocator
switch is an explicit call, :func:`keep_freed_memory`, made by the CLI and the
benchmarks.
"""

from __future__ import annotations

import os
import sys
import threading

# Threads.
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


_workers: list = []
_pool_lock = threading.Lock()  # one parallel() at a time; a second caller runs inline


def _drop_workers():
    global _workers
    for wk in _workers:
        wk.stop()
    _workers = []


def _forget_workers_after_fork():
    global _workers, _pool_lock
    _workers, _pool_lock = [], threading.Lock()  # the threads did not survive the fork


_fork_hook = False


def _start_worker():
    """One more worker thread; the first also registers the fork hook (not at import)."""
    global _fork_hook
    if not _fork_hook and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_forget_workers_after_fork)
        _fork_hook = True
    _workers.append(_Worker(len(_workers) + 1))


def set_num_threads(n):
    """How many threads cnnlab's kernels split one op's batch over (convolutions, pooling,
    big copies): default the usable cores, or the environment variable
    ``CNNLAB_NUM_THREADS``. 1 runs everything in the calling thread and starts none.

    It does not set BLAS's own threads (a single GEMM outside the kernels, such as a
    Dense layer's, runs on whatever your BLAS is set to; ``threadpoolctl`` controls
    that); inside a split op, BLAS runs on one thread per part."""
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

            _blas_libs = [
                lc for lc in ThreadpoolController().lib_controllers if lc.user_api == "blas"
            ]
        except Exception:  # no threadpoolctl, or a BLAS it does not know: leave BLAS as it is
            _blas_libs = []
    return _blas_libs


# The least work worth a part of its own. Below it a second thread costs more than it
# saves: the parts' many short NumPy calls hand the GIL back and forth (a futex wake
# each, 5-50 us on a VM) and the memory-bound ones share one memory bus. Measured on
# 2 cores: LeNet-5's convs (15-30 MFLOP) and its 64x6x28x28 max pool (300k numbers) ran
# 10-30 % slower on 2 threads than on 1; a 2.4 GFLOP conv and a 2M-number pool ran
# 1.4x and 1.8x faster, and 1M-number arrays (two parts from 600k numbers on): a max
# pool 1.6x (1.16 -> 0.70 ms fwd), ReLU's backward 1.2x, a batch-norm scale-and-shift
# 1.35x. Plain sums over 1M numbers, which only stream memory, ran slower split (0.18 ->
# 0.22 ms): kernels.channels splits its reductions at twice this grain.
FLOPS_PER_PART = 50e6
NUMBERS_PER_PART = 300_000
GRAIN_SCALE = 1.0  # tests set it to 0 to split even tiny inputs


def partition(n, min_items=2, work=0.0, grain=0.0):
    """Bounds [0, b1, ..., n] splitting n items (images, taps, columns) into one contiguous
    part per thread, at least ``min_items`` each and, when ``grain`` is given, at least
    ``grain`` of the op's total ``work`` (FLOPs, or numbers moved) each."""
    parts = max(1, min(_threads, n // max(1, min_items)))
    if grain and GRAIN_SCALE:
        parts = max(1, min(parts, int(work // (grain * GRAIN_SCALE))))
    return [n * i // parts for i in range(parts + 1)]


def parallel(fn, bounds):
    """[fn(lo, hi) for each part of ``bounds``], the parts run on the worker threads (the
    first in the calling thread) with BLAS single-threaded; inline when there is one part,
    when called from inside a part, or while another thread's parallel() runs."""
    if len(bounds) <= 2 or getattr(_local, "busy", False) or not _pool_lock.acquire(blocking=False):
        return [fn(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])]
    try:
        while len(_workers) < len(bounds) - 2:
            _start_worker()
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


# Memory.
#
# A training step allocates and frees the same large arrays (im2col chunks, activations,
# gradients) every batch. glibc hands blocks above 128 KiB back to the OS on free, so
# every step page-faults them in again: measured 5.4 -> 2.9 ms for LeNet's first conv
# fwd+bwd and 50 -> 44 ms for a 64x32x32x32 one. Like PyTorch's caching allocator, keep
# freed memory in the process instead: every block comes from the heap (no mmap, which
# glibc would still use from 32 MiB on: cifar_airbench's batch-512 activations, up to 118
# MiB, then page-faulted in every step; its step in alternating runs: 2.28/2.16/2.11 ->
# 2.17/2.04/2.14 s without) and the heap is not trimmed. Peak memory is unchanged (freed
# blocks are reused; airbench's peak RSS 806 -> 790 MB). It changes the allocator of the
# whole process (a host program's too), so it is a call, not a default.

_kept = False


def keep_freed_memory():
    """Make glibc keep freed blocks in the process instead of returning them to the OS
    (``mallopt``: no mmap, no heap trimming), as PyTorch's caching allocator does: a
    training step then stops page-faulting its arrays in again (LeNet's first conv
    fwd+bwd measured 5.4 -> 2.9 ms). Affects the whole process and cannot be undone; the ``cnnlab`` CLI
    and the benchmarks call it. Returns whether it took effect (False off glibc, or
    when the environment sets ``CNNLAB_KEEP_FREED_MEMORY=0``)."""
    global _kept
    if _kept:
        return True
    if os.environ.get("CNNLAB_KEEP_FREED_MEMORY", "") == "0" or not sys.platform.startswith(
        "linux"
    ):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_max = -1, -4  # with mmap off, its threshold has no say
        _kept = bool(libc.mallopt(m_trim_threshold, 1 << 30) and libc.mallopt(m_mmap_max, 0))
    except (OSError, AttributeError):  # not glibc
        return False
    return _kept
