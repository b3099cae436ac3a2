"""Numerical gradient checking: centred differences and the relative error (cs231n).

    df/dx_i ~ (f(x + h e_i) - f(x - h e_i)) / (2h)      error O(h^2)

Use float64 inputs: with float32 the rounding error of f (~1e-7 |f|) divided by 2h
swamps the O(h^2) truncation error.

    >>> import numpy as np
    >>> x = np.array([1.0, -2.0])
    >>> g = eval_numerical_gradient(lambda v: float(np.sum(v ** 3)), x)
    >>> rel_error(g, 3 * x ** 2) < 1e-8
    True
"""
from __future__ import annotations

import numpy as np

__all__ = ["eval_numerical_gradient", "eval_numerical_gradient_array", "rel_error"]


def eval_numerical_gradient(f, x, h=1e-5):
    """Gradient of a scalar function: x any shape -> grad (x.shape).

    grad[i] = (f(x + h e_i) - f(x - h e_i)) / (2h). ``x`` is nudged in place (``f`` is
    called with it, and may also read it through a closure) and restored exactly.
    """
    grad = np.zeros_like(x)
    for i in np.ndindex(*x.shape):
        old = x[i]
        x[i] = old + h
        fplus = float(f(x))
        x[i] = old - h
        fminus = float(f(x))
        x[i] = old
        grad[i] = (fplus - fminus) / (2 * h)
    return grad


def eval_numerical_gradient_array(f, x, dout, h=1e-5):
    """Gradient of sum(f(x) * dout) for an array function f: x any shape -> (x.shape).

    grad[i] = sum((f(x + h e_i) - f(x - h e_i)) * dout) / (2h), i.e. the vector-Jacobian
    product a backward pass computes for upstream gradient ``dout`` (f(x).shape).
    """
    grad = np.zeros_like(x)
    for i in np.ndindex(*x.shape):
        old = x[i]
        x[i] = old + h
        pos = np.array(f(x), copy=True)  # copy: f may return a buffer it reuses
        x[i] = old - h
        neg = np.array(f(x), copy=True)
        x[i] = old
        grad[i] = np.sum((pos - neg) * dout) / (2 * h)
    return grad


def rel_error(a, b):
    """max |a - b| / max(1e-8, |a| + |b|), elementwise then the worst entry.

    Around 1e-7 or below is a correct gradient in float64; 1e-2 or above is a bug.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"rel_error needs equal shapes, got {a.shape} and {b.shape}")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))
