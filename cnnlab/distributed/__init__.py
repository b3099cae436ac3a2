"""Data-parallel training over MPI (mpi4py), from one laptop to a cluster.

    mpiexec -n 4 python train.py          # train.py calls model.fit(..., distributed=True)
    mpiexec -n 4 cnnlab train --distributed

    import cnnlab.distributed as dist
    dist.rank(), dist.size(), dist.is_root()
    dist.evaluate(model, x, y)            # sharded over the ranks, the same result on each
    dist.predict(model, x)                # (N, classes) on every rank

Every rank runs the same script on the same data; ``fit(distributed=True)`` splits each
global batch over the ranks and sums the gradients with Allreduce (see
:mod:`cnnlab.distributed.fit` for the exact semantics, :mod:`.guard` for faults). mpi4py is
imported only when one of these functions runs (``pip install 'cnnlab[mpi]'``).
"""
from .buffers import FlatBuffers
from .fit import DataParallel
from .guard import abort_on_error
from .inference import evaluate, predict, shard
from .mpi import abort, is_root, rank, root_stream, size, world
from .state import broadcast_model, broadcast_optimizer

__all__ = ["rank", "size", "is_root", "world", "root_stream", "abort", "evaluate", "predict",
           "shard",
           "broadcast_model", "broadcast_optimizer", "FlatBuffers", "DataParallel",
           "abort_on_error"]
