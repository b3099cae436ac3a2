"""Where ``fit`` / ``evaluate`` / ``predict`` take their batches from.

    ArrayData(x, y)      arrays (N, C, H, W) and (N,): batches cut by the loop, shuffled
                         per epoch from (seed, epoch) so runs are reproducible and resumable
    BatchStream(data)    a cnnlab.data.DataLoader or any iterable of (x_batch, y_batch)
                         (or of x batches, for predict): each epoch calls iter(data) again

A one-shot iterator (a generator) serves one pass only: ``fit`` refuses it for more
than one epoch, at once and with an explanation, rather than finding it empty later.
"""
from __future__ import annotations

import itertools

import numpy as np


def is_batch_stream(x):
    """True when ``x`` is an iterable of batches rather than an array of samples: a
    DataLoader, a generator, a list of (x_batch, y_batch) tuples..."""
    if isinstance(x, (np.ndarray, str, bytes)) or not hasattr(x, "__iter__"):
        return False
    if isinstance(x, (list, tuple)):
        # a list of (xb, yb) pairs (or of x batches) is a stream; nested lists of
        # numbers are an array
        first = x[0] if len(x) else None
        return isinstance(first, np.ndarray) or (
            isinstance(first, (tuple, list)) and len(first) > 0
            and isinstance(first[0], np.ndarray))
    return True


class ArrayData:
    """Samples in memory; ``batches(epoch, ...)`` yields (x_batch, y_batch) views."""

    stream = False

    def __init__(self, x, y):
        self.x, self.y = x, y
        self.n = x.shape[0]
        self.sample_shape = tuple(x.shape[1:])

    def steps(self, batch_size):
        return -(-self.n // batch_size)

    def batches(self, epoch, batch_size, seed=None, shuffle=False):
        order = (np.random.default_rng([seed, epoch]).permutation(self.n) if shuffle
                 else None)
        y = self.y
        for start in range(0, self.n, batch_size):
            if order is None:
                sl = slice(start, start + batch_size)
                yield self.x[sl], (None if y is None else y[sl])
            else:
                idx = order[start:start + batch_size]
                yield self.x[idx], (None if y is None else y[idx])


class BatchStream:
    """Batches from an iterable, checked one by one with ``check(item, b) -> (xb, yb)``.

    The first batch is read at construction (it tells the sample shape the model is
    built for) and served again as the first batch of the first pass."""

    stream = True

    def __init__(self, data, name, check_first):
        self.data, self.name = data, name
        it = iter(data)
        self.one_shot = it is data  # an iterator returns itself: a second pass finds it empty
        try:
            first = next(it)
        except StopIteration:
            raise ValueError(f"{name} yielded no batches") from None
        self._pending = (first, it)
        self.first = check_first(first)
        self.sample_shape = tuple(self.first[0].shape[1:])
        self.n = None

    def steps(self, batch_size=None):
        try:
            return len(self.data)
        except TypeError:
            return None

    def items(self, epoch=None):
        """The raw items of one pass."""
        if self._pending is not None:
            first, it = self._pending
            self._pending = None
            return itertools.chain([first], it)
        return iter(self.data)

    def require_passes(self, passes):
        if self.one_shot and passes > 1:
            raise ValueError(
                f"{self.name} is a one-shot iterator ({type(self.data).__name__}), so it can "
                f"serve one epoch only, but {passes} epochs were asked for. Pass something "
                f"that can be iterated again every epoch: a cnnlab.data.DataLoader, a list of "
                f"(x_batch, y_batch) tuples, or an object whose __iter__ starts a new pass "
                f"(e.g. a class wrapping your generator function)")


def split_pair(item, name, b, with_labels=True):
    """One item of a stream -> (xb, yb) (yb None when labels are not needed and absent)."""
    if isinstance(item, (tuple, list)):
        if len(item) == 2:
            return item[0], item[1]
        if len(item) == 1 and not with_labels:
            return item[0], None
        raise ValueError(f"{name}: batch {b + 1} must be a pair (x_batch, y_batch), got a "
                         f"{type(item).__name__} of {len(item)} items")
    if with_labels:
        raise ValueError(f"{name}: batch {b + 1} must be a pair (x_batch, y_batch), got "
                         f"{type(item).__name__}")
    return item, None
