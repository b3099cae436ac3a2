"""Inverted dropout: out = x * mask / p with mask ~ Bernoulli(p), p the KEEP probability;
test mode is the identity. Shapes: any, unchanged.

The mask is drawn as ``rng.random(x.shape, dtype=float32) < p`` with
``rng = dropout_param['rng']`` or ``np.random.default_rng(dropout_param['seed'])`` --
the library's convention, so a seed gives the same mask here and in cnnlab.functional.
"""
from __future__ import annotations

import numpy as np

from ._checks import to_float


def dropout_forward(x, dropout_param):
    """-> ``out, cache``; train: out = x * [u < p] / p, test: out = x."""
    x = to_float(x, "x")
    if not isinstance(dropout_param, dict):
        raise TypeError(f"dropout_param must be a dict, got {type(dropout_param).__name__}")
    p = dropout_param.get("p", 0.5)
    mode = dropout_param.get("mode", "train")
    if not 0 < p <= 1:
        raise ValueError(f"dropout_param['p'] is the keep probability and must be in (0, 1], got {p}")
    if mode not in ("train", "test"):
        raise ValueError(f"dropout_param['mode'] must be 'train' or 'test', got {mode!r}")
    if mode == "test" or p == 1:
        return x, None
    rng = dropout_param.get("rng")
    if rng is None:
        rng = np.random.default_rng(dropout_param.get("seed"))
    keep = rng.random(x.shape, dtype=np.float32) < p
    mask = keep.astype(x.dtype) / np.asarray(p, dtype=x.dtype)  # 1/p where kept, 0 elsewhere
    return x * mask, mask


def dropout_backward(dout, cache):
    """dx = dout * mask / p (train), dout (test)."""
    mask = cache
    return dout if mask is None else dout * mask
