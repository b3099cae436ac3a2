"""Inverted dropout: keep each unit with probability p and scale by 1/p at train time,
so test time is the identity.   out = x * mask / p,  mask ~ Bernoulli(p)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._args import as_float_array, check_cache, check_dout, real_number


class DropoutCache(NamedTuple):
    """What :func:`dropout_backward` needs: the scaled mask (None: identity), the mode."""

    mask: object
    mode: str
    x_shape: tuple


def dropout_forward(x, dropout_param):
    """dropout_param: 'p' keep probability in (0, 1], 'mode' 'train'|'test', optional
    'seed' (or 'rng', a numpy Generator). Returns ``out, cache``."""
    x = as_float_array(x, "x")
    if not isinstance(dropout_param, dict):
        raise TypeError(f"dropout_param must be a dict, got {type(dropout_param).__name__}")
    p = real_number(dropout_param.get("p", 0.5), "dropout_param['p']")
    if not (0 < p <= 1):
        raise ValueError(
            f"dropout_param['p'] is the keep probability and must be in (0, 1], got {p}"
        )
    mode = dropout_param.get("mode", "train")
    if mode not in ("train", "test"):
        raise ValueError(f"dropout_param['mode'] must be 'train' or 'test', got {mode!r}")
    if mode == "test" or p == 1:
        return x, DropoutCache(None, mode, x.shape)
    rng = dropout_param.get("rng")
    if rng is None:
        rng = np.random.default_rng(dropout_param.get("seed"))
    mask = (rng.random(x.shape, dtype=np.float32) < p).astype(x.dtype) / np.asarray(
        p, dtype=x.dtype
    )
    return x * mask, DropoutCache(mask, mode, x.shape)


def dropout_backward(dout, cache):
    """dx = dout * mask / p in train mode, dout in test mode."""
    mask, mode, shape = check_cache(cache, DropoutCache, "dropout")
    dout = check_dout(dout, shape)
    return dout if mask is None else dout * mask
