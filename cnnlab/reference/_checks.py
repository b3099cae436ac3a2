"""Argument handling for the reference ops.

A plain, separate copy of the library's rules (the reference must not lean on
``cnnlab.functional``, so that the two can check each other). Errors name the argument.
"""
from __future__ import annotations

import numbers

import numpy as np

PADDING_NAMES = ("valid", "same", "full")


def to_float(a, name):
    """Array of a floating dtype: float arrays keep theirs, ints/bools become float32."""
    a = np.asarray(a)
    if a.dtype.kind == "f":
        return a
    if a.dtype.kind in "biu":
        return a.astype(np.float32)
    raise TypeError(f"{name} must hold numbers, got dtype {a.dtype}")


def check_int(v, name, allow_zero=False):
    """A positive (or non-negative) Python int, else TypeError/ValueError naming ``name``."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(v).__name__} {v!r}")
    v = int(v)
    if v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'non-negative' if allow_zero else 'positive'}, got {v}")
    return v


def int_tuple(v, nsp, name, allow_zero=False):
    """An int or one int per spatial axis -> tuple of ``nsp`` ints."""
    if isinstance(v, (list, tuple)):
        if len(v) != nsp:
            raise ValueError(f"{name} must have {nsp} entries (one per spatial axis), got {v!r}")
        return tuple(check_int(e, name, allow_zero) for e in v)
    return (check_int(v, name, allow_zero),) * nsp


def check_ndim(a, ndim, name):
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {a.shape}")


def pad_pairs(padding, kernel, stride, dilation):
    """Padding spec -> [(lo, hi), ...] per spatial axis.

    int / per-axis ints: symmetric; per-axis (lo, hi) pairs: as given; 'valid': 0;
    'full': d(f-1) each side ("wide"); 'same' (stride 1 only): d(f-1) in total, the odd
    cell of an even kernel on the high side (as PyTorch does).
    """
    nsp = len(kernel)
    if isinstance(padding, str):
        if padding.lower() not in PADDING_NAMES:
            raise ValueError(f"padding must be an int, a tuple or one of {PADDING_NAMES}, got {padding!r}")
        name = padding.lower()
        if name == "valid":
            return [(0, 0)] * nsp
        if name == "full":
            return [(d * (f - 1), d * (f - 1)) for f, d in zip(kernel, dilation)]
        if any(s != 1 for s in stride):
            raise ValueError(f"padding='same' needs stride 1, got stride={tuple(stride)}")
        totals = [d * (f - 1) for f, d in zip(kernel, dilation)]
        return [(t // 2, t - t // 2) for t in totals]
    if isinstance(padding, (list, tuple)):
        if len(padding) != nsp:
            raise ValueError(f"padding must have {nsp} entries (one per spatial axis), got {padding!r}")
        pairs = []
        for p in padding:
            if isinstance(p, (list, tuple)):
                if len(p) != 2:
                    raise ValueError(f"a per-axis padding pair must be (lo, hi), got {p!r}")
                pairs.append((check_int(p[0], "padding", True), check_int(p[1], "padding", True)))
            else:
                p = check_int(p, "padding", True)
                pairs.append((p, p))
        return pairs
    p = check_int(padding, "padding", True)
    return [(p, p)] * nsp


def out_sizes(spatial, kernel, stride, pads, dilation):
    """Per axis: floor((n + lo + hi - d(f - 1) - 1) / s) + 1, i.e. the course's
    floor((n + 2p - f) / s) + 1 when d = 1 and lo = hi = p."""
    sizes = []
    for n, f, s, (lo, hi), d in zip(spatial, kernel, stride, pads, dilation):
        span = n + lo + hi - d * (f - 1) - 1
        if span < 0:
            raise ValueError(f"kernel size {f} (dilation {d}) is larger than the padded input "
                             f"{n} + {lo} + {hi}")
        sizes.append(span // s + 1)
    return tuple(sizes)


def zero_pad(x, pads, value=0.0):
    """Pad the spatial axes of (N, C, *S) with ``value`` (0 for conv/avg, -inf for max)."""
    return np.pad(x, [(0, 0), (0, 0)] + [tuple(p) for p in pads], constant_values=value)


def window(o, kernel, stride, dilation):
    """Slices of the padded input seen by output position ``o``: o*s + t*d, t < f."""
    return tuple(slice(i * s, i * s + d * (f - 1) + 1, d)
                 for i, f, s, d in zip(o, kernel, stride, dilation))


def crop(xpad, pads):
    """Undo :func:`zero_pad`."""
    return xpad[(slice(None), slice(None)) + tuple(
        slice(lo, n - hi) for n, (lo, hi) in zip(xpad.shape[2:], pads))]


def conv_output_size(n, f, padding=0, stride=1, dilation=1):
    """Output length along one axis: floor((n + 2p - d(f - 1) - 1) / s) + 1."""
    n = check_int(n, "n")
    f = check_int(f, "f")
    s = check_int(stride, "stride")
    d = check_int(dilation, "dilation")
    if isinstance(padding, tuple):
        pads = pad_pairs([padding], (f,), (s,), (d,))
    else:
        pads = pad_pairs(padding, (f,), (s,), (d,))
    return out_sizes((n,), (f,), (s,), pads, (d,))[0]
