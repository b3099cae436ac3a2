"""Convolution layers (cross-correlation, as the courses define it), 1-D / 2-D / 3-D.

    out[n, k, o] = b[k] + sum_{c, t} w[k, c, t] * xpad[n, c, o * stride + t * dilation]

Input (N, C, *S) -> output (N, filters, *O) with O = floor((S + p_lo + p_hi - d(f - 1) - 1)
/ stride) + 1 per axis. Parameters: 'w' (filters, C, *kernel_size), 'b' (filters,).
C is read from the input at build time. Optional fused activation (``activation='relu'``).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from .. import functional as F
from ..checks import output_shape
from . import _checks, _fused, initializers
from .base import Layer
from .serialization import register


class ConvND(Layer):
    """Base class of Conv1D / Conv2D / Conv3D: a subclass sets ``nsp`` (the number of
    spatial axes) and ``_layout`` (the per-sample layout, for messages)."""

    nsp: ClassVar[int | None] = None
    shape_check = "channels"
    _layout: ClassVar[str | None] = None

    def __init__(
        self,
        filters,
        kernel_size,
        stride=None,
        padding=0,
        use_bias=True,
        dilation=1,
        activation=None,
        kernel_initializer="he",
        name=None,
        strides=None,
    ):
        super().__init__(name)
        owner = type(self).__name__
        self.filters = _checks.positive_int(owner, filters, "filters")
        self.kernel_size = _checks.int_tuple(owner, kernel_size, self.nsp, "kernel_size")
        # ``strides``: Keras's name for ``stride`` (default 1)
        self.stride = _checks.stride_or_strides(owner, stride, strides, self.nsp) or (1,) * self.nsp
        self.dilation = _checks.int_tuple(owner, dilation, self.nsp, "dilation")
        self.padding, self._pads = _checks.padding(
            owner, padding, self.kernel_size, self.stride, self.dilation
        )
        self.use_bias = _checks.boolean(owner, use_bias, "use_bias")
        self.activation = _fused.check(owner, activation)
        self.kernel_initializer = initializers.check(owner, kernel_initializer)

    def _output_shape(self, input_shape):
        if len(input_shape) != self.nsp + 1:
            raise ValueError(
                f"{self._label()} expects samples of shape {self._layout} "
                f"({self.nsp + 1}-D), got {input_shape}"
            )
        spatial = output_shape(
            input_shape[1:], self.kernel_size, self.stride, self._pads, self.dilation
        )
        return (self.filters,) + spatial

    def _build(self, input_shape, rng, dtype):
        c, k = input_shape[0], int(np.prod(self.kernel_size))
        shape = (self.filters, c) + self.kernel_size
        self.params["w"] = initializers.draw(
            self.kernel_initializer, shape, c * k, self.filters * k, rng, dtype
        )
        if self.use_bias:
            self.params["b"] = np.zeros(self.filters, dtype=dtype)

    def _forward(self, x, training, keep):
        z, conv_cache = F.convnd_forward(
            x,
            self.params["w"],
            self.params.get("b"),
            self.stride,
            self._pads,
            self.dilation,
            nsp=self.nsp,
        )
        out, act_cache = _fused.apply(self.activation, z)
        return out, ((conv_cache, act_cache) if keep else None)

    def _backward(self, dout, cache):
        conv_cache, act_cache = cache
        dz = _fused.grad(self.activation, dout, act_cache)
        dx, dw, db = F.convnd_backward(dz, conv_cache, need_dx=self._need_dx)
        self._set_grad("w", dw)
        if self.use_bias:
            self._set_grad("b", db)
        return dx

    def flops(self, input_shape):
        """2 * K * C * prod(kernel) * prod(output spatial) (+ one per output for the activation)."""
        out = self.compute_output_shape(input_shape)
        macs = int(np.prod(out)) * input_shape[0] * int(np.prod(self.kernel_size))
        return 2 * macs + (int(np.prod(out)) if self.activation else 0)

    def get_config(self):
        return {
            "name": self.name,
            "filters": self.filters,
            "kernel_size": list(self.kernel_size),
            "stride": list(self.stride),
            "padding": _checks.jsonable(self.padding),
            "use_bias": self.use_bias,
            "dilation": list(self.dilation),
            "activation": self.activation,
            "kernel_initializer": self.kernel_initializer,
        }


_ConvND = ConvND  # the old private name, kept for code that imported it


@register
class Conv1D(ConvND):
    """1-D convolution: (C, L) -> (filters, L') per sample; w (filters, C, f)."""

    nsp, _layout = 1, "(C, L)"


@register
class Conv2D(ConvND):
    """2-D convolution: (C, H, W) -> (filters, H', W') per sample; w (filters, C, kh, kw).

    ``Conv2D(8, 5)`` on (3, 32, 32): 8 * (3*5*5) + 8 = 608 parameters, output (8, 28, 28).
    ``padding``: int, per-axis ints or (lo, hi) pairs, 'valid', 'same' (stride 1), 'full'."""

    nsp, _layout = 2, "(C, H, W)"


@register
class Conv3D(ConvND):
    """3-D convolution: (C, D, H, W) -> (filters, D', H', W'); w (filters, C, kd, kh, kw)."""

    nsp, _layout = 3, "(C, D, H, W)"
