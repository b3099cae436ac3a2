"""Faults: a rank that raises ends every rank, at once, with a non-zero exit status.

A collective (Allreduce) waits for every rank. If one rank raised and simply returned to
its caller, the others would wait in their next Allreduce forever; so an exception that
leaves ``fit(distributed=True)`` on a world of several processes prints the traceback with
the rank and calls ``MPI_Abort``, which ends every process of the job (``mpiexec`` exits
non-zero). A rank that dies outright (killed, crashed) is noticed by ``mpiexec`` itself,
which then ends the others. Checkpoints are written atomically by rank 0, so the last
complete one survives either way.
"""
from __future__ import annotations

import functools

from .mpi import abort_on_exception, size


def abort_on_error(fn):
    """Decorator for a function taking a keyword ``distributed``: when it is true and the
    world has more than one process, an exception aborts every rank (see the module
    docstring); otherwise exceptions propagate as usual."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if not kwargs.get("distributed"):
            return fn(*args, **kwargs)
        try:
            return fn(*args, **kwargs)
        except BaseException as exc:
            try:
                several = size() > 1
            except ImportError:  # no MPI at all: nobody to wait for us
                several = False
            if several:
                abort_on_exception(exc)
            from .fit import release_all  # a world of one: the caller may go on
            release_all()
            raise

    return wrapper
