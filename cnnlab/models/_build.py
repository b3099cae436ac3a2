"""Helpers shared by the zoo: argument checks and the final ``cl.Sequential``."""
from __future__ import annotations

import numbers

import numpy as np


def check_shape(who, input_shape, rank=3):
    """``input_shape`` must be ``rank`` positive ints (channels first) -> tuple."""
    try:
        shape = tuple(input_shape)
    except TypeError:
        raise TypeError(f"{who}: input_shape must be a tuple (C, H, W), got {input_shape!r}") from None
    if len(shape) != rank or any(isinstance(v, bool) or not isinstance(v, numbers.Integral)
                                 or v < 1 for v in shape):
        raise ValueError(f"{who}: input_shape must be {rank} positive ints (C, H, W), "
                         f"got {input_shape!r}")
    return tuple(int(v) for v in shape)


def check_int(who, value, name, minimum=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{who}: {name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def finish(layers, input_shape, seed, name, build=True, dtype=np.float32):
    """The top-level trainable model (``cnnlab.Sequential``), built for ``input_shape``
    unless ``build`` is False (then no weight is allocated; see
    :func:`cnnlab.models.analyze` for parameter counts and shapes without building)."""
    from ..training import Sequential

    model = Sequential(layers, input_shape=input_shape if build else None, name=name,
                       seed=seed, dtype=dtype)
    model.zoo_input_shape = tuple(input_shape)
    return model
