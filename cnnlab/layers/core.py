"""Flatten, Dense (fully connected) and Dropout.

Flatten:  (d_1, ..., d_k) -> (prod d_i,)  (channels-first order, as PyTorch)
Dense:    out = x.reshape(N, D_in) @ w + b,  w (D_in, D_out), b (D_out,)
          (any input rank: it flattens, as cs231n's affine layer)
Dropout:  inverted dropout; ``rate`` is the DROP probability (Keras), keep p = 1 - rate:
          train: out = x * mask / p, mask ~ Bernoulli(p); test: identity.
"""

from __future__ import annotations

import numpy as np

from .. import functional as F
from . import _checks, _fused, initializers
from .base import Layer
from .serialization import register


@register
class Flatten(Layer):
    """(N, d_1, ..., d_k) -> (N, d_1 * ... * d_k)."""

    shape_check = "rank"

    def _output_shape(self, input_shape):
        return (int(np.prod(input_shape)),)

    def _forward(self, x, training, keep):
        out, cache = F.flatten_forward(x)
        return out, (cache if keep else None)

    def _backward(self, dout, cache):
        return F.flatten_backward(dout, cache)

    def flops(self, input_shape):
        return 0


@register
class Dense(Layer):
    """Fully connected: (D_in,) -> (units,) per sample, D_in = prod(input_shape).

    Parameters 'w' (D_in, units) and 'b' (units,): D_in * units + units, e.g. 400 -> 120
    has 48120. Optional fused activation ('relu', 'softmax', ...)."""

    def __init__(self, units, use_bias=True, activation=None, kernel_initializer="he", name=None):
        super().__init__(name)
        self.units = _checks.positive_int("Dense", units, "units")
        self.use_bias = _checks.boolean("Dense", use_bias, "use_bias")
        self.activation = _fused.check("Dense", activation)
        self.kernel_initializer = initializers.check("Dense", kernel_initializer)

    def _output_shape(self, input_shape):
        return (self.units,)

    def _build(self, input_shape, rng, dtype):
        d = int(np.prod(input_shape))
        self.params["w"] = initializers.draw(
            self.kernel_initializer, (d, self.units), d, self.units, rng, dtype
        )
        if self.use_bias:
            self.params["b"] = np.zeros(self.units, dtype=dtype)

    def _forward(self, x, training, keep):
        z, aff_cache = F.affine_forward(x, self.params["w"], self.params.get("b"))
        out, act_cache = _fused.apply(self.activation, z)
        return out, ((aff_cache, act_cache) if keep else None)

    def _backward(self, dout, cache):
        aff_cache, act_cache = cache
        dz = _fused.grad(self.activation, dout, act_cache)
        dx, dw, db = F.affine_backward(dz, aff_cache)
        self._set_grad("w", dw)
        if self.use_bias:
            self._set_grad("b", db)
        return dx

    def flops(self, input_shape):
        """2 * D_in * units (+ units for the activation)."""
        return 2 * int(np.prod(input_shape)) * self.units + (self.units if self.activation else 0)

    def get_config(self):
        return {
            "name": self.name,
            "units": self.units,
            "use_bias": self.use_bias,
            "activation": self.activation,
            "kernel_initializer": self.kernel_initializer,
        }


@register
class Dropout(Layer):
    """Inverted dropout with drop probability ``rate`` (keep p = 1 - rate).

    Its masks come from ``self.rng`` (a numpy Generator): seeded by ``seed`` when given,
    otherwise drawn from the model's generator at build time, so a seeded model is
    reproducible. Training loops may replace ``rng`` to make resumed runs repeat."""

    shape_check = "rank"

    def __init__(self, rate, seed=None, name=None):
        super().__init__(name)
        self.rate = _checks.real("Dropout", rate, "rate", low=0.0, high=1.0, high_open=True)
        self.seed = None if seed is None else _checks.nonneg_int("Dropout", seed, "seed")
        self.rng = None

    def _build(self, input_shape, rng, dtype):
        seed = self.seed if self.seed is not None else int(rng.integers(2**63))
        self.rng = np.random.default_rng(seed)

    def _forward(self, x, training, keep):
        mode = "train" if training else "test"
        out, cache = F.dropout_forward(x, {"p": 1.0 - self.rate, "mode": mode, "rng": self.rng})
        return out, (cache if keep else None)

    def _backward(self, dout, cache):
        return F.dropout_backward(dout, cache)

    def get_config(self):
        return {"name": self.name, "rate": self.rate, "seed": self.seed}
