"""The signal-processing view of convolution, for single 1-D and 2-D arrays.

    correlate:  y[i] = sum_t w[t] x[i + t]            (what CNN layers compute)
    convolve:   y[i] = sum_t w[t] x[i - t] = correlate(x, rot180(w))   (true convolution)

``mode`` follows scipy.signal: 'valid' (M - F + 1), 'full' (M + F - 1), 'same' (M: the
part of 'full' that starts at (F - 1) // 2; equals np.convolve(x, w, 'same') when F <= M).
"""

from __future__ import annotations

import numpy as np

from ._args import as_float_array
from .conv import convnd_forward

_MODES = ("valid", "same", "full")


def _run(x, w, mode, nsp, flip, fname):
    x = as_float_array(x, "x")
    w = as_float_array(w, "w")
    if x.ndim != nsp or w.ndim != nsp:
        raise ValueError(f"{fname} takes {nsp}-D x and w, got shapes {x.shape} and {w.shape}")
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    if flip:
        w = w[(slice(None, None, -1),) * nsp]
    if mode == "valid":
        if any(f > n for f, n in zip(w.shape, x.shape)):
            raise ValueError(f"mode='valid' needs the kernel {w.shape} to fit in x {x.shape}")
        pads = 0
    else:
        pads = tuple(f - 1 for f in w.shape)  # 'full'; 'same' is its centred part
    out, _ = convnd_forward(x[None, None], w[None, None], None, 1, pads, 1, nsp=nsp)
    out = out[0, 0]
    if mode == "same":
        out = out[tuple(slice((f - 1) // 2, (f - 1) // 2 + n) for n, f in zip(x.shape, w.shape))]
    return np.ascontiguousarray(out)


def correlate1d(x, w, mode="valid"):
    """1-D cross-correlation of signal x (M,) with kernel w (F,)."""
    return _run(x, w, mode, 1, False, "correlate1d")


def convolve1d(x, w, mode="valid"):
    """1-D true convolution (kernel flipped), as np.convolve(x, w, mode)."""
    return _run(x, w, mode, 1, True, "convolve1d")


def correlate2d(x, w, mode="valid"):
    """2-D cross-correlation of image x (H, W) with kernel w (kh, kw)."""
    return _run(x, w, mode, 2, False, "correlate2d")


def convolve2d(x, w, mode="valid"):
    """2-D true convolution: correlate with rot180(w)."""
    return _run(x, w, mode, 2, True, "convolve2d")
