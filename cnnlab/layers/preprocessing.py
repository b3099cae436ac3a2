"""Input preprocessing inside the net, so that a shipped model takes plain images.

    Rescaling(scale=1.0, offset=-0.5)     # pixels in [0, 1] -> [-0.5, 0.5]

Keras's ``Rescaling`` (same arguments, same formula ``x * scale + offset``). It has no
parameters; its backward is ``dout * scale``. The arithmetic is one elementwise line, so
it lives here rather than as a ``functional`` op.
"""

from __future__ import annotations

import numpy as np

from . import _checks
from .base import Layer
from .serialization import register


@register
class Rescaling(Layer):
    """out = x * scale + offset (elementwise; any input shape)."""

    shape_check = "rank"

    def __init__(self, scale=1.0, offset=0.0, name=None):
        super().__init__(name)
        self.scale = _checks.real("Rescaling", scale, "scale")
        self.offset = _checks.real("Rescaling", offset, "offset")

    def _forward(self, x, training, keep):
        t = x.dtype.type  # the constants in x's dtype: float32 stays float32
        out = x * t(self.scale) if self.scale != 1.0 else x
        out = out + t(self.offset) if self.offset != 0.0 else out.copy()
        return out, None

    def _backward(self, dout, cache):
        return dout * dout.dtype.type(self.scale)

    def flops(self, input_shape):
        return 2 * int(np.prod(input_shape))

    def get_config(self):
        return {"name": self.name, "scale": self.scale, "offset": self.offset}
