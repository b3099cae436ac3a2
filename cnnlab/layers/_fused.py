"""Activations that conv/dense layers can apply themselves (``activation='relu'``), and
the softmax Jacobian-vector product shared with the Softmax layer.

Each entry: forward(x) -> (out, cache) and backward(dout, cache) -> dx.
    softmax over axis 1 (features / channels):  s = exp(x) / sum exp(x)
    backward (exact JVP):  dx = s * (dout - sum_j dout_j s_j)
"""

from __future__ import annotations

from .. import functional as F


def softmax_forward(x, axis=1):
    s = F.softmax(x, axis=axis).astype(x.dtype, copy=False)
    return s, (s, axis)


def softmax_backward(dout, cache):
    s, axis = cache
    return s * (dout - (dout * s).sum(axis=axis, keepdims=True))


ACTIVATIONS = {
    "relu": (F.relu_forward, F.relu_backward),
    "leaky_relu": (F.leaky_relu_forward, F.leaky_relu_backward),
    "sigmoid": (F.sigmoid_forward, F.sigmoid_backward),
    "tanh": (F.tanh_forward, F.tanh_backward),
    "softmax": (softmax_forward, softmax_backward),
}


def check(owner, value):
    """Validate an ``activation`` argument: None / 'linear' (none) or a name above."""
    if value is None or value == "linear":
        return None
    if isinstance(value, str) and value.lower() in ACTIVATIONS:
        return value.lower()
    raise ValueError(
        f"{owner}: activation must be None or one of {sorted(ACTIVATIONS)}, got {value!r}"
    )


def apply(name, z):
    """-> (out, cache); the identity when ``name`` is None."""
    if name is None:
        return z, None
    return ACTIVATIONS[name][0](z)


def grad(name, dout, cache):
    if name is None:
        return dout
    return ACTIVATIONS[name][1](dout, cache)
