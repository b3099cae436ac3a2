"""Max and average pooling as prod(k) passes over strided slices of the input (no window
copy), in the input's memory layout, the images or channels split over the threads."""

from __future__ import annotations

import itertools

import numpy as np

from . import runtime
from .elementwise import all_finite, masked
from .layout import (
    along,
    copy_in_order,
    empty_in_order,
    memory_order,
    offset_slices,
    outer_axis,
    unpad,
)


def _pad_channels_first(x, pads, fill):
    if all(lo == 0 and hi == 0 for lo, hi in pads):
        return x
    shape = x.shape[:2] + tuple(s + lo + hi for s, (lo, hi) in zip(x.shape[2:], pads))
    xp = np.full(shape, fill, dtype=x.dtype)
    xp[
        (slice(None), slice(None))
        + tuple(slice(lo, lo + s) for s, (lo, _) in zip(x.shape[2:], pads))
    ] = x
    return xp


def _taps(kernel, stride, out_shape):
    """(tap index, slices of the padded input that tap t sees for every output)."""
    ones = (1,) * len(kernel)
    for t, offset in enumerate(itertools.product(*(range(k) for k in kernel))):
        yield t, (slice(None), slice(None)) + offset_slices(offset, stride, ones, out_shape)


def maxpool_forward(x, kernel, stride, pads, out_shape, with_arg=True):
    """out[n, c, o] = max over the window, as prod(k) np.maximum passes over strided
    slices (no window copy), the images split over threads; NaN propagates.

    ``wins`` (with_arg): bool (T, N, C, *out), wins[t] marks the windows whose winner is
    tap t -- the first maximum on ties and the last NaN, as in PyTorch. Kept as
    masks rather than an argmax index, the backward pass needs one multiply per tap
    instead of a compare and a multiply, and the forward three passes per tap, not five."""
    xp = _pad_channels_first(x, pads, -np.inf)
    taps = list(_taps(kernel, stride, out_shape))
    full_out = x.shape[:2] + tuple(out_shape)
    order = memory_order(x)
    out = empty_in_order(full_out, x.dtype, order)  # keep the input's layout (wins too, so
    wins = (
        empty_in_order((len(taps),) + full_out, np.bool_, (0,) + tuple(i + 1 for i in order))
        if with_arg
        else None
    )  # the backward's ops align)

    ax = outer_axis(x)

    def part(lo, hi):
        xs, o = along(xp, ax, lo, hi), along(out, ax, lo, hi)
        np.copyto(o, xs[taps[0][1]])
        for _, sl in taps[1:]:
            np.maximum(o, xs[sl], out=o)
        if not with_arg:
            return
        w = along(wins, ax + 1, lo, hi)
        found = np.equal(xs[taps[0][1]], o, out=w[0])  # some tap so far equals the max
        spares = (np.empty_like(found), np.empty_like(found))  # in its memory layout
        for t, sl in taps[1:]:
            eq = np.equal(xs[sl], o, out=w[t])
            if t == len(taps) - 1 and all_finite(o):
                np.greater(eq, found, out=w[t])  # eq and not found (no NaN: found is all set)
                return
            grown = np.bitwise_or(found, eq, out=spares[t % 2])
            np.bitwise_xor(grown, found, out=w[t])  # eq and not found
            found = grown
        if not all_finite(o):
            # a window holding NaN has no tap equal to its max (NaN); as in PyTorch, its
            # winner is its last NaN (rare: a few extra passes)
            taken = np.zeros_like(found)
            for t, sl in reversed(taps):
                last_nan = np.greater(np.isnan(xs[sl]), taken)
                w[t] |= last_nan
                taken |= last_nan

    runtime.parallel(part, runtime.partition(x.shape[ax], 2, x.size, runtime.NUMBERS_PER_PART))
    return out, wins


def maxpool_backward(dout, wins, x_shape, kernel, stride, pads, order=None):
    """Route each upstream gradient to its window's winner: one multiply by the winner
    mask of each tap (``wins`` from maxpool_forward)."""
    padded = x_shape[:2] + tuple(s + lo + hi for s, (lo, hi) in zip(x_shape[2:], pads))
    taps = list(_taps(kernel, stride, dout.shape[2:]))
    # disjoint windows: every cell is some window's tap at most once, so no adds, and
    # zeros only in the strips no window reaches (a 31-wide map under 2x2 windows: its
    # last row and column)
    disjoint = _is_disjoint(kernel, stride, pads)
    dxp = empty_in_order(padded, dout.dtype, order or tuple(range(len(padded))), zero=not disjoint)

    finite = all_finite(dout)
    if memory_order(dout) != memory_order(wins[0]):
        # e.g. the gradient coming back through Flatten is C-ordered while the pooled
        # activation was channels-last: one copy beats prod(k) passes with mixed strides
        # (measured 0.43 -> 0.1 ms on LeNet's second pool)
        dout = copy_in_order(dout, memory_order(wins[0]))

    ax = outer_axis(dxp)

    def part(lo, hi):
        d, w, dx = along(dout, ax, lo, hi), along(wins, ax + 1, lo, hi), along(dxp, ax, lo, hi)
        if disjoint:  # in the parts: the fill is the first touch of a fresh block's pages
            _zero_strips(dx, dout.shape[2:], kernel)
        for t, sl in taps:
            if disjoint:
                masked(d, w[t], out=dx[sl], finite=finite)
            else:
                dx[sl] += masked(d, w[t], finite=finite)

    runtime.parallel(part, runtime.partition(dout.shape[ax], 2, dxp.size, runtime.NUMBERS_PER_PART))
    return unpad(dxp, pads)


def _is_disjoint(kernel, stride, pads):
    """Windows that do not overlap and no padding: every cell in at most one window."""
    return tuple(kernel) == tuple(stride) and all(lo == 0 and hi == 0 for lo, hi in pads)


def _zero_strips(dx, out_shape, kernel):
    """Zero the cells of dx (N, C, *S) that no window of disjoint windows reaches (a
    31-wide map under 2x2 windows: its last row and column), sliced in memory order (a
    strided fill crawls: 16 ms for a (512,256,15,15) gradient)."""
    mem = memory_order(dx)
    view = dx.transpose(mem)
    for axis, (o, k) in enumerate(zip(out_shape, kernel), 2):
        if o * k < dx.shape[axis]:
            view[(slice(None),) * mem.index(axis) + (slice(o * k, None),)] = 0


def avgpool_forward(x, kernel, stride, pads, out_shape):
    """out = mean over the window (zeros of the padding counted, PyTorch's default),
    as prod(k) strided adds."""
    xp = _pad_channels_first(x, pads, 0.0)
    taps = list(_taps(kernel, stride, out_shape))
    out = xp[taps[0][1]].copy(order="K")  # keep the input's memory layout
    for _, sl in taps[1:]:
        out += xp[sl]
    out *= np.asarray(1.0 / len(taps), dtype=out.dtype)
    return out


def avgpool_backward(dout, x_shape, kernel, stride, pads, order=None):
    """Spread each upstream gradient evenly over its window: dx += dout / prod(k) per tap."""
    share = dout * np.asarray(1.0 / np.prod(kernel), dtype=dout.dtype)
    if _is_disjoint(kernel, stride, pads):  # each cell in at most one window: no adds
        dx = empty_in_order(x_shape, dout.dtype, order or tuple(range(len(x_shape))))
        _zero_strips(dx, dout.shape[2:], kernel)
        for _, sl in _taps(kernel, stride, dout.shape[2:]):
            dx[sl] = share
        return dx
    padded = x_shape[:2] + tuple(s + lo + hi for s, (lo, hi) in zip(x_shape[2:], pads))
    dxp = empty_in_order(padded, dout.dtype, order or tuple(range(len(padded))), zero=True)
    for _, sl in _taps(kernel, stride, dout.shape[2:]):
        dxp[sl] += share
    return unpad(dxp, pads)
