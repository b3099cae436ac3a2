"""Evaluate and predict with the data split over the ranks, results combined.

Rank r takes the contiguous shard ``shard(n, r, size)`` of the samples, runs the model on
it in inference mode, and the ranks combine: ``evaluate`` sums (loss x count, correct,
count) with one Allreduce, ``predict`` gathers the probability rows (Allgatherv) so every
rank returns all N rows in the original order. Each rank keeps the model weights it has;
after ``fit(distributed=True)`` they are the same on every rank.
"""
from __future__ import annotations

import numpy as np

from .mpi import mpi, world


def shard(n, rank, size):
    """(start, stop) of rank's contiguous share of n items; shares differ by at most 1."""
    return (rank * n) // size, ((rank + 1) * n) // size


def evaluate(model, x, y, batch_size=256, loss="softmax", comm=None):
    """``model.evaluate`` over all ranks' shards -> {'loss', 'accuracy'} of the whole
    (x, y), the same on every rank. Call it on every rank with the same x and y."""
    comm = world() if comm is None else comm
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim < 1 or y.ndim != 1 or len(x) != len(y):
        raise ValueError(f"x and y must hold the same number of samples, got shapes "
                         f"{x.shape} and {y.shape}")
    if len(x) == 0:
        raise ValueError(f"x is empty: got shape {x.shape}")
    lo, hi = shard(len(x), comm.Get_rank(), comm.Get_size())
    totals = np.zeros(3)  # sum of losses, correct predictions, samples
    if hi > lo:
        res = model.evaluate(x[lo:hi], y[lo:hi], batch_size=batch_size, loss=loss)
        k = hi - lo
        totals[:] = res["loss"] * k, round(res["accuracy"] * k), k
    comm.Allreduce(mpi().IN_PLACE, totals, op=mpi().SUM)
    n = max(totals[2], 1.0)
    return {"loss": float(totals[0] / n), "accuracy": float(totals[1] / n)}


def predict(model, x, batch_size=256, comm=None):
    """``model.predict`` over all ranks' shards -> (N, num_classes) probabilities, in the
    order of x, on every rank."""
    comm = world() if comm is None else comm
    size, n = comm.Get_size(), len(x)
    if n == 0:
        raise ValueError(f"x is empty: got shape {np.shape(x)}")
    lo, hi = shard(n, comm.Get_rank(), size)
    mine = model.predict(x[lo:hi], batch_size=batch_size) if hi > lo else None
    # ranks with an empty shard still need the row width and dtype: take them from rank 0
    # (rank 0 always has a share when n >= size; with n < size it may be one of few)
    meta = comm.allgather(None if mine is None else (mine.shape[1], mine.dtype.str))
    width, dtype = next(m for m in meta if m is not None)
    if mine is None:
        mine = np.empty((0, width), dtype=np.dtype(dtype))
    counts = [(shard(n, r, size)[1] - shard(n, r, size)[0]) * width for r in range(size)]
    displs = [shard(n, r, size)[0] * width for r in range(size)]
    out = np.empty((n, width), dtype=mine.dtype)
    comm.Allgatherv(np.ascontiguousarray(mine), [out, (counts, displs)])
    return out
