"""Random generator argument handling shared by batching and augmentation."""
from __future__ import annotations

import numpy as np


def as_rng(rng, who: str = "cnnlab.data") -> np.random.Generator:
    """None -> a fresh unseeded Generator; an int -> ``default_rng(int)``; a Generator -> itself."""
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(None if rng is None else int(rng))
    if isinstance(rng, np.random.Generator):
        return rng
    raise TypeError(f"{who}: rng must be None, an int seed or a numpy.random.Generator, "
                    f"got {type(rng).__name__}")
