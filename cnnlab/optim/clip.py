"""Gradient clipping by global norm (``torch.nn.utils.clip_grad_norm_``)."""
from __future__ import annotations

import math

import numpy as np

from ..checks import real_number


def clip_grad_norm(grads, max_norm, norm_type=2.0, eps=1e-6):
    """Scale ``grads`` in place so that their joint norm is at most ``max_norm``.

    The norm is taken over all arrays together, as if concatenated: ``norm_type=2`` gives
    sqrt(sum of squares), ``norm_type=inf`` the largest absolute entry. When the total
    exceeds ``max_norm`` every array is multiplied by ``max_norm / (total + eps)`` (the
    direction is kept). Returns the total norm *before* clipping, as a float; it may be
    inf or nan when a gradient is (check it to detect divergence).
    """
    grads = list(grads)
    max_norm = real_number(max_norm, "max_norm")  # inf allowed: no clipping
    if not max_norm >= 0:
        raise ValueError(f"max_norm must be >= 0, got {max_norm}")
    norm_type = float(norm_type)
    if not norm_type > 0:
        raise ValueError(f"norm_type must be > 0 (or inf), got {norm_type}")
    for i, g in enumerate(grads):
        if not isinstance(g, np.ndarray) or g.dtype.kind != "f":
            raise TypeError(f"grads[{i}] must be a floating ndarray (clipped in place), got "
                            f"{type(g).__name__} {getattr(g, 'dtype', '')}")
    if not grads:
        return 0.0
    if math.isinf(norm_type):
        total = max(float(np.max(np.abs(g))) if g.size else 0.0 for g in grads)
    elif norm_type == 2.0:
        total = math.sqrt(sum(float(np.vdot(g.ravel(), g.ravel()).real) for g in grads))
    else:
        s = sum(float(np.sum(np.abs(g).astype(np.float64) ** norm_type)) for g in grads)
        total = s ** (1.0 / norm_type)
    coef = max_norm / (total + eps)
    if coef < 1.0:
        for g in grads:
            g *= coef
    return total
