"""Minibatch iteration and train/validation splitting over in-memory arrays."""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

from ._rng import as_rng

__all__ = ["iterate_minibatches", "DataLoader", "train_val_split"]


def _check_xy(x, y, who):
    x = np.asarray(x)
    if x.ndim == 0:
        raise ValueError(f"{who}: x must have a sample axis, got a scalar")
    if y is not None:
        y = np.asarray(y)
        if len(y) != len(x):
            raise ValueError(f"{who}: x and y must have the same number of samples: "
                             f"expected len(y) == {len(x)}, got {len(y)}")
    return x, y


def _check_batch_size(batch_size, who):
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"{who}: batch_size must be a positive integer, got {batch_size!r}")
    return int(batch_size)


def iterate_minibatches(x, y, batch_size: int, shuffle: bool = True, rng=None,
                        drop_last: bool = False) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """Yield ``(x_batch, y_batch)`` over one epoch.

    Args:
        x: array with samples on axis 0; y: matching array, or None (then ``y_batch`` is None).
        batch_size: samples per batch; the last batch is smaller unless ``drop_last``.
        shuffle: visit samples in a random order (batches are then copies; unshuffled batches
            are views).
        rng: None, an int seed or a ``numpy.random.Generator``.
        drop_last: skip a final incomplete batch.
    """
    x, y = _check_xy(x, y, "iterate_minibatches")
    batch_size = _check_batch_size(batch_size, "iterate_minibatches")
    n = len(x)
    stop = n - n % batch_size if drop_last else n
    if shuffle:
        order = as_rng(rng, "iterate_minibatches").permutation(n)
        for i in range(0, stop, batch_size):
            idx = order[i:i + batch_size]
            yield x[idx], (None if y is None else y[idx])
    else:
        for i in range(0, stop, batch_size):
            yield x[i:i + batch_size], (None if y is None else y[i:i + batch_size])


class DataLoader:
    """Re-iterable minibatches with optional per-batch augmentation.

    ``for xb, yb in DataLoader(x, y, batch_size=128, transform=augment, seed=0): ...``

    Each ``iter()`` is one epoch, reshuffled from the loader's own generator, so a seeded loader
    gives a reproducible sequence of epochs. ``transform(x_batch, rng) -> x_batch`` is applied to
    every batch (e.g. ``lambda xb, rng: random_flip(random_crop(xb, padding=4, rng=rng), rng)``).
    ``len(loader)`` is the number of batches per epoch.
    """

    def __init__(self, x, y=None, batch_size: int = 32, shuffle: bool = True,
                 drop_last: bool = False,
                 transform: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
                 seed=None):
        self.x, self.y = _check_xy(x, y, "DataLoader")
        self.batch_size = _check_batch_size(batch_size, "DataLoader")
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        if transform is not None and not callable(transform):
            raise TypeError(f"DataLoader: transform must be callable(x_batch, rng), got "
                            f"{type(transform).__name__}")
        self.transform = transform
        self.rng = as_rng(seed, "DataLoader")

    def __len__(self) -> int:
        n = len(self.x)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        for xb, yb in iterate_minibatches(self.x, self.y, self.batch_size, shuffle=self.shuffle,
                                          rng=self.rng, drop_last=self.drop_last):
            if self.transform is not None:
                xb = self.transform(xb, self.rng)
            yield xb, yb


def train_val_split(x, y, val_fraction: float = 0.1, shuffle: bool = True, rng=None):
    """Split into ``(x_train, y_train, x_val, y_val)``; ``val_fraction`` in (0, 1) or an int
    count of validation samples. ``y`` may be None."""
    x, y = _check_xy(x, y, "train_val_split")
    n = len(x)
    if isinstance(val_fraction, (int, np.integer)) and not isinstance(val_fraction, bool):
        n_val = int(val_fraction)
    elif 0.0 < float(val_fraction) < 1.0:
        n_val = int(round(n * float(val_fraction)))
    else:
        raise ValueError(f"train_val_split: val_fraction must be in (0, 1) or an int count, "
                         f"got {val_fraction!r}")
    if not 0 <= n_val <= n:
        raise ValueError(f"train_val_split: expected 0 <= validation count <= {n}, got {n_val}")
    idx = as_rng(rng, "train_val_split").permutation(n) if shuffle else np.arange(n)
    tr, va = idx[: n - n_val], idx[n - n_val:]
    pick = (lambda a, i: None if a is None else a[i])
    return x[tr], pick(y, tr), x[va], pick(y, va)
