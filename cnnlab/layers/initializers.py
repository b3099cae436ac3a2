"""Weight initializers (zero-mean normal draws):

    'he'     std = sqrt(2 / fan_in)              (He et al., for ReLU nets; the default)
    'glorot' std = sqrt(2 / (fan_in + fan_out))  (Xavier)
    'lecun'  std = sqrt(1 / fan_in)
    a float  std = that number                   (cs231n's ``weight_scale``)

fan_in = C * prod(kernel) for a conv (K, C, *kernel), D_in for a dense (D_in, D_out);
fan_out = K * prod(kernel) or D_out. Biases start at zero.
"""

from __future__ import annotations

import numbers

import numpy as np

NAMES = ("he", "glorot", "lecun")


def check(owner, value):
    """Validate a ``kernel_initializer`` argument; -> the normalized value."""
    if isinstance(value, str):
        v = value.lower()
        v = {
            "he_normal": "he",
            "xavier": "glorot",
            "glorot_normal": "glorot",
            "lecun_normal": "lecun",
        }.get(v, v)
        if v not in NAMES:
            raise ValueError(
                f"{owner}: kernel_initializer must be one of {list(NAMES)} or a "
                f"positive float (the std), got {value!r}"
            )
        return v
    if (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and value > 0
        and np.isfinite(value)
    ):
        return float(value)
    raise ValueError(
        f"{owner}: kernel_initializer must be one of {list(NAMES)} or a positive "
        f"float (the std), got {value!r}"
    )


def std(init, fan_in, fan_out):
    if init == "he":
        return np.sqrt(2.0 / fan_in)
    if init == "glorot":
        return np.sqrt(2.0 / (fan_in + fan_out))
    if init == "lecun":
        return np.sqrt(1.0 / fan_in)
    return float(init)


def draw(init, shape, fan_in, fan_out, rng, dtype):
    """Normal(0, std(init)) array of ``shape`` and ``dtype`` from ``rng``."""
    return (rng.standard_normal(shape) * std(init, fan_in, fan_out)).astype(dtype)
