"""Elementwise activations. Each returns ``out, cache``; backward returns dx.

relu(x) = max(0, x)          leaky_relu(x) = x if x > 0 else alpha * x
sigmoid(x) = 1 / (1 + e^-x)  tanh(x)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._args import as_float_array, check_cache, check_dout, real_number
from . import kernels


class LeakyReluCache(NamedTuple):
    """What :func:`leaky_relu_backward` needs."""

    x: np.ndarray
    alpha: float


def relu_forward(x):
    """out = max(0, x); NaN stays NaN."""
    x = as_float_array(x, "x")
    out = kernels.relu(x)
    return out, out


def relu_backward(dout, cache):
    """dx = dout * [x > 0], and dout where x is NaN (as PyTorch). The cache is the output,
    which is > 0, 0 or NaN: out != 0 is that mask in one comparison."""
    out = check_cache(cache, np.ndarray, "relu")
    return kernels.relu_grad(check_dout(dout, out.shape, out.dtype), out)


def leaky_relu_forward(x, alpha=0.01):
    """out = x if x > 0 else alpha * x."""
    x = as_float_array(x, "x")
    alpha = real_number(alpha, "alpha")
    out = np.where(x > 0, x, x * np.asarray(alpha, dtype=x.dtype))
    return out, LeakyReluCache(x, alpha)


def leaky_relu_backward(dout, cache):
    """dx = dout if x > 0 else alpha * dout."""
    x, alpha = check_cache(cache, LeakyReluCache, "leaky_relu")
    dout = check_dout(dout, x.shape)
    return np.where(x > 0, dout, dout * np.asarray(alpha, dtype=x.dtype)).astype(
        x.dtype, copy=False
    )


def sigmoid_forward(x):
    """out = 1 / (1 + exp(-x)), computed without overflow for large |x|."""
    x = as_float_array(x, "x")
    e = np.exp(-np.abs(x))
    out = np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)
    return out, out


def sigmoid_backward(dout, cache):
    """dx = dout * s * (1 - s)."""
    s = check_cache(cache, np.ndarray, "sigmoid")
    return check_dout(dout, s.shape) * s * (1 - s)


def tanh_forward(x):
    """out = tanh(x)."""
    x = as_float_array(x, "x")
    out = np.tanh(x)
    return out, out


def tanh_backward(dout, cache):
    """dx = dout * (1 - tanh(x)^2)."""
    t = check_cache(cache, np.ndarray, "tanh")
    return check_dout(dout, t.shape) * (1 - t * t)
