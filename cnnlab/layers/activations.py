"""Activation layers (no parameters), elementwise except Softmax:

ReLU: max(0, x)      LeakyReLU: x if x > 0 else alpha * x
Sigmoid: 1 / (1 + e^-x)      Tanh: tanh(x)
Softmax (over axis 1, the features / channels): s = exp(x) / sum exp(x);
    backward is the exact Jacobian-vector product dx = s * (dout - sum(dout * s)).
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar

from .. import functional as F
from . import _checks, _fused
from .base import Layer
from .serialization import register


class Activation(Layer):
    """Base class of the parameter-free activation layers: a subclass sets ``_fwd`` /
    ``_bwd`` to an elementwise ``F.*_forward`` / ``F.*_backward`` pair (or overrides
    ``_forward`` / ``_backward``). Shape in = shape out."""

    shape_check = "rank"
    _fwd: ClassVar[Callable[..., Any] | None] = None
    _bwd: ClassVar[Callable[..., Any] | None] = None

    def _forward(self, x, training, keep):
        out, cache = type(self)._fwd(x)
        return out, (cache if keep else None)

    def _backward(self, dout, cache):
        return type(self)._bwd(dout, cache)


_Activation = Activation  # the old private name, kept for code that imported it


@register
class ReLU(Activation):
    """out = max(0, x); dx = dout * [x > 0]."""

    default_name = "relu"
    commutes_with_max = True  # relu(max(a, b)) == max(relu(a), relu(b)): see Sequential.fused_pairs
    _fwd = staticmethod(F.relu_forward)
    _bwd = staticmethod(F.relu_backward)


@register
class Sigmoid(Activation):
    """out = 1 / (1 + exp(-x)); dx = dout * s * (1 - s)."""

    _fwd = staticmethod(F.sigmoid_forward)
    _bwd = staticmethod(F.sigmoid_backward)


@register
class Tanh(Activation):
    """out = tanh(x); dx = dout * (1 - out^2)."""

    _fwd = staticmethod(F.tanh_forward)
    _bwd = staticmethod(F.tanh_backward)


@register
class LeakyReLU(Activation):
    """out = x if x > 0 else alpha * x."""

    default_name = "leaky_relu"

    def __init__(self, alpha=0.01, name=None):
        super().__init__(name)
        self.alpha = _checks.real("LeakyReLU", alpha, "alpha", low=0.0)

    def _forward(self, x, training, keep):
        out, cache = F.leaky_relu_forward(x, self.alpha)
        return out, (cache if keep else None)

    def _backward(self, dout, cache):
        return F.leaky_relu_backward(dout, cache)

    def get_config(self):
        return {"name": self.name, "alpha": self.alpha}


@register
class Softmax(Activation):
    """Probabilities over axis 1 of (N, D) (or the channels of (N, C, *S)).
    Forward only for probability outputs: train with logits and the softmax loss."""

    def _forward(self, x, training, keep):
        out, cache = _fused.softmax_forward(x, axis=1)
        return out, (cache if keep else None)

    def _backward(self, dout, cache):
        return _fused.softmax_backward(dout, cache)

    def flops(self, input_shape):
        """exp, sum and divide: about 3 per element."""
        return 3 * super().flops(input_shape)
