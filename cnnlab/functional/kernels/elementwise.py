"""Elementwise helpers that are exact for every value, inf and NaN included."""

from __future__ import annotations

import numpy as np

from . import runtime
from .layout import empty_in_order, memory_order


def all_finite(a):
    """True when ``a`` holds no inf or NaN: its max and min are finite (NaN propagates
    through both). Two fast reductions: 2x quicker than one sum under np.errstate, and no
    overflow to guard against."""
    if a.size == 0:
        return True
    return bool(
        np.isfinite(np.maximum.reduce(a, axis=None))
        and np.isfinite(np.minimum.reduce(a, axis=None))
    )


def keep_where(a, mask, out=None):
    """``a`` where ``mask`` else +0, exactly for any values (inf and NaN included), with
    no finiteness check: the bits of ``a`` ANDed with 0 or all-ones. 1.7x faster than a
    checked multiply by the mask (LeNet's first ReLU backward: 40 -> 23 us). ``out``: an
    array of a's shape and dtype to write into."""
    ints = np.dtype(f"i{a.dtype.itemsize}")
    if out is not None and not np.may_share_memory(a, out):  # out holds the bits first
        bits = np.negative(mask.view(np.uint8), dtype=ints, out=out.view(ints))
        np.bitwise_and(a.view(ints), bits, out=bits)
        return out
    ones = np.negative(mask.view(np.uint8), dtype=ints)  # True -> -1, all bits set
    if out is None:
        return np.bitwise_and(a.view(ints), ones, out=ones).view(a.dtype)
    np.bitwise_and(a.view(ints), ones, out=out.view(ints))
    return out


def masked(a, mask, out=None, finite=None):
    """``a`` where ``mask`` else 0, i.e. np.where(mask, a, 0) -- as a multiplication by the
    boolean mask, which NumPy runs ~10x faster than np.where on float32. That is exact
    when ``a`` is finite (``finite``: known already, else checked here); an inf or NaN
    would turn masked-out places into NaN, so then np.where runs instead."""
    if finite is None:
        finite = all_finite(a)
    if finite:
        return np.multiply(a, mask, out=out)
    exact = np.where(mask, a, np.zeros((), dtype=a.dtype))
    if out is None:
        return exact
    out[...] = exact
    return out


def _flat(*arrays):
    """1-D views of arrays that are all contiguous in one memory order, else None: an
    elementwise op over them can then be cut into parts for the threads."""
    order = memory_order(arrays[0])
    views = []
    for a in arrays:
        t = a.transpose(order)
        if memory_order(a) != order or not t.flags.c_contiguous:
            return None
        views.append(t.reshape(-1))
    return views


def _split(*arrays):
    """(bounds, flat views) when the arrays are big enough to be worth several threads and
    lie contiguous in one memory order, else None (then one NumPy call does it all)."""
    bounds = runtime.partition(arrays[0].size, 1, arrays[0].size, runtime.NUMBERS_PER_PART)
    if len(bounds) <= 2:
        return None
    flat = _flat(*arrays)
    return None if flat is None else (bounds, flat)


def relu(x):
    """max(0, x) in x's memory layout (NaN stays NaN), the parts of a big x on the threads."""
    split = _split(x)
    if split is None:
        return np.maximum(x, 0)  # NumPy keeps x's memory layout
    bounds, (fx,) = split
    out = empty_in_order(x.shape, x.dtype, memory_order(x))
    (fo,) = _flat(out)
    runtime.parallel(lambda lo, hi: np.maximum(fx[lo:hi], 0, out=fo[lo:hi]), bounds)
    return out


def relu_grad(dout, out):
    """dout where out != 0 (out = relu's output: > 0, 0 or NaN), else +0 -- exact for any
    values (see keep_where), the parts of a big array on the threads."""
    split = _split(dout, out)
    if split is None:
        return keep_where(dout, out != 0)
    bounds, (fd, fo) = split
    dx = empty_in_order(dout.shape, dout.dtype, memory_order(dout))
    (fx,) = _flat(dx)
    runtime.parallel(lambda lo, hi: keep_where(fd[lo:hi], fo[lo:hi] != 0, out=fx[lo:hi]), bounds)
    return dx
