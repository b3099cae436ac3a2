"""Sync batch norm: batch statistics over the whole global batch, every rank's share.

``cnnlab.layers.BatchNorm`` has a ``reducer`` attribute (None by default). When it is set,
the layer passes it to the batch-norm op as ``bn_param['reduce']``, and the op sums its
per-channel sums (forward: sum(x), sum((x - mu)^2) and the count; backward: sum(dout),
sum(dout * x_hat)) over the ranks before using them. With per-rank shares of one batch
the statistics, outputs and gradients are then those of one process on the whole batch
(up to summation order). Costs two small Allreduces (2C + 1 and 2C numbers) per layer
and step.
"""
from __future__ import annotations

import numpy as np

from .mpi import mpi
from .state import leaves


class SumOverRanks:
    """``reducer(a)``: the elementwise sum over all ranks of 1-D ``a`` (float64, new array).

    ``weight()`` scales this rank's contribution: 0 on a rank that has no sample in the
    current batch and runs a stand-in sample only to take part in the collectives."""

    def __init__(self, comm, weight=None):
        self.comm = comm
        self.weight = weight or (lambda: 1.0)

    def __call__(self, a):
        MPI = mpi()
        buf = np.array(a, dtype=np.float64).reshape(-1)
        w = self.weight()
        if w != 1.0:
            buf *= w
        self.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        return buf


def attach(model, reducer):
    """Set ``reducer`` on every layer that has one (BatchNorm). -> [(layer, previous)]
    for :func:`detach`."""
    saved = [(layer, layer.reducer) for layer in leaves(model) if hasattr(layer, "reducer")]
    for layer, _ in saved:
        layer.reducer = reducer
    return saved


def detach(saved):
    """Put back the reducers :func:`attach` replaced."""
    for layer, previous in saved:
        layer.reducer = previous
