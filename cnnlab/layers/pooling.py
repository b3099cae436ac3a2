"""Pooling layers (no parameters), per channel:

    MaxPool:  out[n, c, o] = max_t  xpad[n, c, o * stride + t]   (padding -inf, never wins)
    AvgPool:  out[n, c, o] = mean_t xpad[n, c, o * stride + t]   (padding 0, counted)
    GlobalAvgPool: (C, *S) -> (C,), out[n, c] = mean_s x[n, c, s]   (7x7x1000 -> 1000)

Window output size floor((S + 2p - pool) / stride) + 1; ``stride`` None = ``pool_size``.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar

import numpy as np

from .. import functional as F
from ..checks import output_shape
from . import _checks
from .base import Layer
from .serialization import register

_LAYOUT = {1: "(C, L)", 2: "(C, H, W)", 3: "(C, D, H, W)"}


class PoolND(Layer):
    """Base class of the window pooling layers (max and average, 1-D to 3-D): a
    subclass sets ``nsp`` (the number of spatial axes) and ``_fwd`` / ``_bwd``."""

    nsp: ClassVar[int | None] = None
    shape_check = "rank"
    _fwd: ClassVar[Callable[..., Any] | None] = None
    _bwd: ClassVar[Callable[..., Any] | None] = None

    def __init__(self, pool_size, stride=None, padding=0, name=None, strides=None):
        super().__init__(name)
        owner = type(self).__name__
        self.pool_size = _checks.int_tuple(owner, pool_size, self.nsp, "pool_size")
        # ``strides``: Keras's name for ``stride`` (default: pool_size)
        self.stride = _checks.stride_or_strides(owner, stride, strides, self.nsp)
        stride_eff = self.pool_size if self.stride is None else self.stride
        self.padding, self._pads = _checks.padding(
            owner, padding, self.pool_size, stride_eff, (1,) * self.nsp
        )
        for (lo, hi), k in zip(self._pads, self.pool_size):
            if max(lo, hi) > k // 2:
                raise ValueError(
                    f"{owner}: padding must be at most half of pool_size (as in "
                    f"PyTorch), got padding {(lo, hi)} for pool size {k}"
                )

    @property
    def _stride(self):
        return self.pool_size if self.stride is None else self.stride

    def _output_shape(self, input_shape):
        if len(input_shape) != self.nsp + 1:
            raise ValueError(
                f"{self._label()} expects samples of shape {_LAYOUT[self.nsp]} "
                f"({self.nsp + 1}-D), got {input_shape}"
            )
        spatial = output_shape(
            input_shape[1:], self.pool_size, self._stride, self._pads, (1,) * self.nsp
        )
        return (input_shape[0],) + spatial

    def _forward(self, x, training, keep):
        out, cache = type(self)._fwd(x, self.pool_size, self._stride, self._pads, nsp=self.nsp)
        return out, (cache if keep else None)

    def _backward(self, dout, cache):
        return type(self)._bwd(dout, cache)

    def flops(self, input_shape):
        """One comparison / addition per window element: prod(out) * prod(pool_size)."""
        return int(np.prod(self.compute_output_shape(input_shape))) * int(np.prod(self.pool_size))

    def get_config(self):
        return {
            "name": self.name,
            "pool_size": list(self.pool_size),
            "stride": None if self.stride is None else list(self.stride),
            "padding": _checks.jsonable(self.padding),
        }


_PoolND = PoolND  # the old private name, kept for code that imported it


class _MaxPool(PoolND):
    is_max_pool = True
    _fwd = staticmethod(F.maxpoolnd_forward)
    _bwd = staticmethod(F.maxpoolnd_backward)

    def _forward(self, x, training, keep):
        # inference (keep False) records none of the winner masks that only backward needs
        return F.maxpoolnd_forward(
            x, self.pool_size, self._stride, self._pads, nsp=self.nsp, keep_cache=keep
        )


class _AvgPool(PoolND):
    _fwd = staticmethod(F.avgpoolnd_forward)
    _bwd = staticmethod(F.avgpoolnd_backward)


@register
class MaxPool1D(_MaxPool):
    """1-D max pooling: (C, L) -> (C, L')."""

    nsp = 1


@register
class MaxPool2D(_MaxPool):
    """2-D max pooling: (C, H, W) -> (C, H', W'); ``MaxPool2D(2)`` halves H and W."""

    nsp = 2


@register
class MaxPool3D(_MaxPool):
    """3-D max pooling: (C, D, H, W) -> (C, D', H', W')."""

    nsp = 3


@register
class AvgPool1D(_AvgPool):
    """1-D average pooling: (C, L) -> (C, L')."""

    nsp = 1


@register
class AvgPool2D(_AvgPool):
    """2-D average pooling: (C, H, W) -> (C, H', W')."""

    nsp = 2


@register
class AvgPool3D(_AvgPool):
    """3-D average pooling: (C, D, H, W) -> (C, D', H', W')."""

    nsp = 3


class _GlobalAvgPool(Layer):
    nsp: ClassVar[int | None] = None
    shape_check = "rank"

    def _output_shape(self, input_shape):
        if len(input_shape) != self.nsp + 1:
            raise ValueError(
                f"{self._label()} expects samples of shape {_LAYOUT[self.nsp]} "
                f"({self.nsp + 1}-D), got {input_shape}"
            )
        return (input_shape[0],)

    def _forward(self, x, training, keep):
        out, shape = F.global_avgpool_forward(x)
        return out, (shape if keep else None)

    def _backward(self, dout, cache):
        return F.global_avgpool_backward(dout, cache)

    def flops(self, input_shape):
        """One addition per input element."""
        return int(np.prod(input_shape))


@register
class GlobalAvgPool1D(_GlobalAvgPool):
    """(C, L) -> (C,), the mean over L."""

    nsp = 1


@register
class GlobalAvgPool2D(_GlobalAvgPool):
    """(C, H, W) -> (C,), the mean over H and W (7x7x1000 -> 1000)."""

    nsp = 2


@register
class GlobalAvgPool3D(_GlobalAvgPool):
    """(C, D, H, W) -> (C,), the mean over D, H and W."""

    nsp = 3
