"""The signal-processing view: single 1-D / 2-D arrays, explicit sums.

    correlate: y[i] = sum_t w[t] x[i + t]    (what a CNN layer computes)
    convolve:  y[i] = sum_t w[t] x[i - t]    (true convolution = correlate with rot180(w))

Both are first computed in 'full' mode (every shift with any overlap, length M + F - 1,
x zero outside) and then cut: 'valid' keeps the M - F + 1 shifts where w fits inside x,
'same' the M values starting at (F - 1) // 2 (numpy's and scipy's choice).
"""
from __future__ import annotations

import itertools

import numpy as np

from ._checks import to_float

_MODES = ("valid", "same", "full")


def _args(x, w, mode, nsp, fname):
    x, w = to_float(x, "x"), to_float(w, "w")
    if x.ndim != nsp or w.ndim != nsp:
        raise ValueError(f"{fname} takes {nsp}-D x and w, got shapes {x.shape} and {w.shape}")
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    if mode == "valid" and any(f > m for f, m in zip(w.shape, x.shape)):
        raise ValueError(f"mode='valid' needs the kernel {w.shape} to fit in x {x.shape}")
    return x, w


def _full(x, w, sign):
    """Full-mode result: y[j] = sum_t w[t] x[j + sign * t - shift], x = 0 outside.

    sign=+1 (correlate): shift = F - 1, so j = 0 is the shift where only w's last tap
    touches x[0]; sign=-1 (convolve): shift = 0, y[j] = sum_t w[t] x[j - t].
    """
    out_shape = tuple(m + f - 1 for m, f in zip(x.shape, w.shape))
    y = np.zeros(out_shape, dtype=np.result_type(x, w))
    for j in np.ndindex(*out_shape):
        for t in itertools.product(*(range(f) for f in w.shape)):
            if sign > 0:
                i = tuple(jj + tt - (f - 1) for jj, tt, f in zip(j, t, w.shape))
            else:
                i = tuple(jj - tt for jj, tt in zip(j, t))
            if all(0 <= ii < m for ii, m in zip(i, x.shape)):
                y[j] += w[t] * x[i]
    return y


def _cut(full, x_shape, w_shape, mode):
    if mode == "full":
        return full
    if mode == "valid":
        return full[tuple(slice(f - 1, m) for m, f in zip(x_shape, w_shape))]
    return full[tuple(slice((f - 1) // 2, (f - 1) // 2 + m) for m, f in zip(x_shape, w_shape))]


def correlate1d(x, w, mode="valid"):
    """x (M,), w (F,) -> y; y[i] = sum_t w[t] x[i + t] (as np.correlate)."""
    x, w = _args(x, w, mode, 1, "correlate1d")
    return _cut(_full(x, w, +1), x.shape, w.shape, mode)


def convolve1d(x, w, mode="valid"):
    """x (M,), w (F,) -> y; y[i] = sum_t w[t] x[i - t] (as np.convolve)."""
    x, w = _args(x, w, mode, 1, "convolve1d")
    return _cut(_full(x, w, -1), x.shape, w.shape, mode)


def correlate2d(x, w, mode="valid"):
    """x (H, W), w (kh, kw) -> y; y[i, j] = sum_{a, b} w[a, b] x[i + a, j + b]."""
    x, w = _args(x, w, mode, 2, "correlate2d")
    return _cut(_full(x, w, +1), x.shape, w.shape, mode)


def convolve2d(x, w, mode="valid"):
    """x (H, W), w (kh, kw) -> y; y[i, j] = sum_{a, b} w[a, b] x[i - a, j - b]."""
    x, w = _args(x, w, mode, 2, "convolve2d")
    return _cut(_full(x, w, -1), x.shape, w.shape, mode)
