"""Detect, before training, ranks that disagree: different data, model or settings.

Every rank describes what it is about to train (array shapes and dtypes, checksums of the
labels and of a few samples, the model's parameter list, the optimizer, the fit settings)
as a small JSON-able dict; ``allgather`` gives all of them to every rank, so every rank
finds the same differences and raises the same error, before any gradient is exchanged.
"""
from __future__ import annotations

import json
import zlib

import numpy as np

from .state import param_arrays, state_arrays

#: Samples of x checksummed (spread evenly, first and last included): cheap for any N.
SAMPLES_CHECKED = 16


def data_signature(x, y=None):
    """{'shape', 'dtype', 'crc'} of x (a few samples) and y (all labels)."""
    n = x.shape[0]
    rows = np.unique(np.linspace(0, n - 1, min(n, SAMPLES_CHECKED)).astype(np.int64))
    sig = {"x_shape": list(x.shape), "x_dtype": str(x.dtype),
           "x_crc": zlib.crc32(np.ascontiguousarray(x[rows]).tobytes())}
    if y is not None:
        y = np.ascontiguousarray(y)
        sig.update(y_shape=list(y.shape), y_crc=zlib.crc32(y.astype(np.int64).tobytes()))
    return sig


def model_signature(model):
    """[name, shape, dtype] of every trainable and state array, in exchange order."""
    return [[q, list(a.shape), str(a.dtype)] for q, a in param_arrays(model) + state_arrays(model)]


def optimizer_signature(optimizer):
    return {"class": type(optimizer).__name__,
            "config": json.dumps(optimizer.get_config(), sort_keys=True, default=str)}


def _first_difference(a, b, path=""):
    """A readable 'where: a vs b' for the first place two JSON-able values differ."""
    if isinstance(a, dict) and isinstance(b, dict):  # keys in order: shapes before checksums
        for k in list(a) + [k for k in b if k not in a]:
            if a.get(k) != b.get(k):
                return _first_difference(a.get(k), b.get(k), f"{path}.{k}" if path else k)
    nested = isinstance(a, list) and any(isinstance(u, (list, dict)) for u in a)
    if nested and isinstance(b, list) and len(a) == len(b):
        for i, (u, v) in enumerate(zip(a, b)):
            if u != v:
                return _first_difference(u, v, f"{path}[{i}]")
    return f"{path} = {a!r} (rank 0: {b!r})"


def check_same(comm, signature, what="training"):
    """Raise ValueError on every rank when any rank's ``signature`` differs from rank 0's."""
    everyone = comm.allgather(json.loads(json.dumps(signature)))
    bad = [(r, _first_difference(sig, everyone[0])) for r, sig in enumerate(everyone)
           if sig != everyone[0]]
    if bad:
        lines = "; ".join(f"rank {r} differs in {diff}" for r, diff in bad[:4])
        raise ValueError(f"the ranks do not agree on what they are {what}: {lines}. Every "
                         f"rank must load the same data (same files, same split and seed), "
                         f"build the same model and call fit with the same arguments")
