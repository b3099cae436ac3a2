"""Elementwise activations, written as their formulas. forward -> ``out, cache``;
backward(dout, cache) -> dx. Any shape in, the same shape out."""
from __future__ import annotations

import numpy as np

from ._checks import to_float


def relu_forward(x):
    """out = max(0, x) (NaN stays NaN)."""
    x = to_float(x, "x")
    return np.maximum(0, x).astype(x.dtype), x


def relu_backward(dout, cache):
    """dx = dout where x > 0, else 0 (the derivative at 0 taken as 0; a NaN x passes
    dout on, as in PyTorch, whose rule is 'zero where x <= 0')."""
    x = cache
    return np.where(x <= 0, 0, dout).astype(x.dtype)


def leaky_relu_forward(x, alpha=0.01):
    """out = x if x > 0 else alpha * x."""
    x = to_float(x, "x")
    return np.where(x > 0, x, alpha * x).astype(x.dtype), (x, alpha)


def leaky_relu_backward(dout, cache):
    """dx = dout if x > 0 else alpha * dout."""
    x, alpha = cache
    return np.where(x > 0, dout, alpha * dout).astype(x.dtype)


def sigmoid_forward(x):
    """out = 1 / (1 + e^-x) (e^-x overflowing to inf for very negative x gives 0, as it should)."""
    x = to_float(x, "x")
    with np.errstate(over="ignore"):
        out = 1 / (1 + np.exp(-x))
    return out.astype(x.dtype), out.astype(x.dtype)


def sigmoid_backward(dout, cache):
    """dx = dout * s * (1 - s), s = sigmoid(x)."""
    s = cache
    return dout * s * (1 - s)


def tanh_forward(x):
    """out = tanh(x) = (e^x - e^-x) / (e^x + e^-x)."""
    x = to_float(x, "x")
    out = np.tanh(x)
    return out, out


def tanh_backward(dout, cache):
    """dx = dout * (1 - tanh(x)^2)."""
    t = cache
    return dout * (1 - t ** 2)
