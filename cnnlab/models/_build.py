"""Helpers shared by the zoo: argument checks and the final ``cl.Sequential``."""
from __future__ import annotations

import numpy as np

from .. import checks


def check_shape(who, input_shape, rank=3):
    """``input_shape`` must be ``rank`` positive ints (channels first) -> tuple."""
    try:
        value = tuple(input_shape)
    except TypeError:
        raise TypeError(f"{who}: input_shape must be a tuple (C, H, W), got {input_shape!r}") from None
    with checks.owned_by(who):
        shape = checks.sample_shape(value)
    if len(shape) != rank:
        raise ValueError(f"{who}: input_shape must be {rank} positive ints (C, H, W), "
                         f"got {input_shape!r}")
    return shape


def check_int(who, value, name, minimum=1):
    """An int >= ``minimum`` -> int; errors start with the model's name ``who``."""
    with checks.owned_by(who):
        return checks.int_at_least(value, name, minimum)


def finish(layers, input_shape, seed, name, build=True, dtype=np.float32):
    """The top-level trainable model (``cnnlab.Sequential``), built for ``input_shape``
    unless ``build`` is False (then no weight is allocated; see
    :func:`cnnlab.models.analyze` for parameter counts and shapes without building)."""
    from ..training import Sequential

    model = Sequential(layers, input_shape=input_shape if build else None, name=name,
                       seed=seed, dtype=dtype)
    model.zoo_input_shape = tuple(input_shape)
    return model
