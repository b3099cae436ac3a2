"""The MPI world: mpi4py imported on first use (never at import of cnnlab), rank and size.

mpi4py initializes MPI when it is first imported; under ``mpiexec`` every process then
sees the same ``COMM_WORLD``. Run without ``mpiexec`` a process is a world of one
(rank 0, size 1), so the same script runs on a laptop and on a cluster.
"""
from __future__ import annotations

import os
import sys
import traceback

INSTALL_HINT = ("cnnlab.distributed needs mpi4py and an MPI library: pip install "
                "'cnnlab[mpi]' (mpi4py + Open MPI wheels), or on a cluster mpi4py built "
                "against the site's MPI (see the README, 'Training on a cluster')")

#: World sizes that MPI launchers put in the environment of every process they start
#: (Open MPI, MPICH/Intel MPI and Slurm's srun).
LAUNCHER_SIZE_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS")


def mpi():
    """The ``mpi4py.MPI`` module (initializes MPI on first call); ImportError with the
    install hint when mpi4py or its MPI library is missing."""
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError(f"{INSTALL_HINT} (import failed: {e})") from None
    return MPI


def world():
    """``MPI.COMM_WORLD``: every process started by the same ``mpiexec``."""
    return mpi().COMM_WORLD


def rank():
    """This process's index in the world, 0 .. size()-1 (0 outside ``mpiexec``)."""
    return world().Get_rank()


def size():
    """The number of processes in the world (1 outside ``mpiexec``)."""
    return world().Get_size()


def is_root():
    """True on rank 0: the rank that prints progress and writes checkpoints."""
    return rank() == 0


def root_stream(stream):
    """``stream`` on rank 0, a sink that drops everything on the other ranks (so that a
    script's report prints once)."""
    return stream if is_root() else _Sink()


class _Sink:
    """A text stream that drops what is written to it."""

    def write(self, text):
        return len(text)

    def flush(self):
        pass


def check_world():
    """Raise RuntimeError when a launcher started several processes but MPI sees a world
    of one: mpi4py built against another MPI than the ``mpiexec`` used (each process would
    silently train alone). Returns the world size."""
    n = size()
    for var in LAUNCHER_SIZE_VARS[:2]:  # srun may run one task with SLURM_NTASKS > 1
        value = os.environ.get(var, "")
        if n == 1 and value.isdigit() and int(value) > 1:
            raise RuntimeError(
                f"the launcher started {value} processes ({var}={value}) but MPI sees a world "
                f"of 1: mpi4py is built against a different MPI than the mpiexec that ran "
                f"this. Use the mpiexec of that MPI (python -c 'import mpi4py; "
                f"print(mpi4py.get_config())' shows which), or rebuild mpi4py against the "
                f"site's MPI (see the README, 'Training on a cluster')")
    return n


def abort(message, code=1):
    """Print ``message`` (prefixed with this rank) to stderr and end every process of the
    world with exit status ``code`` (``MPI_Abort``): no rank is left waiting in a
    collective for one that is gone. Does not return."""
    comm = world()
    sys.stderr.write(f"cnnlab.distributed: rank {comm.Get_rank()} of {comm.Get_size()}: "
                     f"{message}\n")
    sys.stderr.flush()
    sys.stdout.flush()
    comm.Abort(code)
    os._exit(code)  # Abort does not return; if an MPI ever did, still leave non-zero


def abort_on_exception(exc):
    """Abort the world after printing ``exc`` with its traceback (see :func:`abort`)."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    abort(f"{type(exc).__name__}: {exc}\n{text}"
          f"cnnlab.distributed: aborting every rank (MPI_Abort) so that none waits forever "
          f"for this one")
