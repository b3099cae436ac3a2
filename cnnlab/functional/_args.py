"""Argument checking and the output-size arithmetic shared by the functional ops.

Errors name the argument, say what was expected and what came (scikit-learn style).
"""
from __future__ import annotations

import math
import numbers
import os

import numpy as np

PADDING_NAMES = ("valid", "same", "full")


def conv_output_size(n, f, padding=0, stride=1, dilation=1):
    """Output length of a convolution or pooling along one axis.

        out = floor((n + 2p - d(f - 1) - 1) / s) + 1

    With d = 1 this is the course's floor((n + 2p - f) / s) + 1. ``padding`` may be an
    int, a (lo, hi) pair, or 'valid' / 'same' / 'full'.

    >>> conv_output_size(7, 3, stride=2)
    3
    >>> conv_output_size(32, 5, padding=2)
    32
    """
    n = _positive_int(n, "n", allow_zero=False)
    f = _positive_int(f, "f", allow_zero=False)
    s = _positive_int(stride, "stride", allow_zero=False)
    d = _positive_int(dilation, "dilation", allow_zero=False)
    if isinstance(padding, str):
        (lo, hi), = resolve_padding(padding, (f,), (s,), (d,))
    elif isinstance(padding, tuple):
        lo, hi = (_positive_int(p, "padding", allow_zero=True) for p in padding)
    else:
        lo = hi = _positive_int(padding, "padding", allow_zero=True)
    span = n + lo + hi - d * (f - 1) - 1
    if span < 0:
        raise ValueError(
            f"kernel size {f} (dilation {d}) is larger than the padded input "
            f"{n} + {lo} + {hi} = {n + lo + hi}")
    return span // s + 1


def _positive_int(v, name, allow_zero=False):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(v).__name__} {v!r}")
    v = int(v)
    if v < 0 or (v == 0 and not allow_zero):
        kind = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{name} must be {kind}, got {v}")
    return v


def as_tuple(v, nsp, name, allow_zero=False):
    """An int or a length-``nsp`` sequence of ints -> tuple of ``nsp`` ints."""
    if isinstance(v, (list, tuple)):
        if len(v) != nsp:
            raise ValueError(f"{name} must have {nsp} entries (one per spatial axis), got {len(v)}: {v!r}")
        return tuple(_positive_int(e, name, allow_zero) for e in v)
    return (_positive_int(v, name, allow_zero),) * nsp


def resolve_padding(padding, kernel, stride, dilation):
    """Padding spec -> per-axis (lo, hi) pairs.

    int or per-axis ints: symmetric; per-axis (lo, hi) pairs: as given;
    'valid': 0; 'full': d(f-1) each side; 'same' (stride 1 only): total d(f-1), the
    extra cell of an even kernel on the high side, as PyTorch pads.
    """
    nsp = len(kernel)
    if isinstance(padding, str):
        name = padding.lower()
        if name not in PADDING_NAMES:
            raise ValueError(f"padding must be an int, a tuple or one of {PADDING_NAMES}, got {padding!r}")
        if name == "valid":
            return ((0, 0),) * nsp
        if name == "full":
            return tuple((d * (f - 1), d * (f - 1)) for f, d in zip(kernel, dilation))
        if any(s != 1 for s in stride):
            raise ValueError(f"padding='same' needs stride 1 on every axis, got stride={tuple(stride)}")
        total = [d * (f - 1) for f, d in zip(kernel, dilation)]
        return tuple((t // 2, t - t // 2) for t in total)
    if isinstance(padding, (list, tuple)):
        if len(padding) != nsp:
            raise ValueError(f"padding must have {nsp} entries (one per spatial axis), got {len(padding)}: {padding!r}")
        out = []
        for p in padding:
            if isinstance(p, (list, tuple)):
                if len(p) != 2:
                    raise ValueError(f"a per-axis padding pair must be (lo, hi), got {p!r}")
                out.append(tuple(_positive_int(e, "padding", True) for e in p))
            else:
                q = _positive_int(p, "padding", True)
                out.append((q, q))
        return tuple(out)
    q = _positive_int(padding, "padding", True)
    return ((q, q),) * nsp


def as_float_array(a, name):
    """ndarray of a floating dtype (float arrays keep theirs; others become float32)."""
    if not isinstance(a, np.ndarray):
        try:
            a = np.asarray(a)
        except Exception as exc:  # pragma: no cover - numpy's own message is clear enough
            raise TypeError(f"{name} must be array-like, got {type(a).__name__}") from exc
    if a.dtype.kind == "f":
        return a
    if a.dtype.kind in "biu":
        return a.astype(np.float32)
    raise TypeError(f"{name} must hold numbers, got dtype {a.dtype}")


def check_ndim(a, ndim, name, layout):
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D {layout}, got shape {a.shape} ({a.ndim}-D)")


def output_shape(spatial, kernel, stride, pads, dilation, what="input"):
    """Per-axis output sizes; a clear error when the kernel does not fit."""
    out = []
    for axis, (n, f, s, (lo, hi), d) in enumerate(zip(spatial, kernel, stride, pads, dilation)):
        span = n + lo + hi - d * (f - 1) - 1
        if span < 0:
            raise ValueError(
                f"kernel size {f} (dilation {d}) on spatial axis {axis} is larger than the padded "
                f"{what}: {n} + padding {lo}+{hi} = {n + lo + hi}")
        out.append(span // s + 1)
    return tuple(out)


# ----------------------------------------------------------------------------- section 5
# checks that keep the fast path fast: each looks at shapes, types and lengths only (O(1)
# in the data), never at the values, so NaN and inf pass through as in PyTorch


def real_number(v, name):
    """A real scalar (int, float, numpy scalar or 0-d array; not bool, not a string) ->
    float. NaN and inf are allowed: they propagate as in PyTorch."""
    if isinstance(v, np.ndarray) and v.ndim == 0:
        v = v[()]
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(v).__name__} {v!r}")
    return float(v)


def check_spatial_rank(x, name="x", what="convnd_forward"):
    """x must be (N, C, *spatial) with at least one spatial axis."""
    if x.ndim < 3:
        raise ValueError(
            f"{what}: {name} must be (N, C, *spatial) with at least one spatial axis "
            f"(3-D or more), got shape {x.shape} ({x.ndim}-D); for one 1-D signal or 2-D "
            f"image use correlate1d / correlate2d, or add the axes: {name}[None, None]")


def check_conv_sizes(x, w):
    """At least one channel, one filter, one kernel cell per axis (an empty batch N = 0
    is fine, as in PyTorch)."""
    if x.shape[1] == 0:
        raise ValueError(f"x must have at least one channel, got shape {x.shape} (C=0)")
    if w.shape[0] == 0:
        raise ValueError(f"w must have at least one filter, got shape {w.shape} (K=0)")
    if 0 in w.shape[2:]:
        raise ValueError(f"w must have a kernel of at least 1 cell per spatial axis, got shape "
                         f"{w.shape}")


def _human_bytes(n):
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}" if unit != "bytes" else f"{int(n)} bytes"
        n /= 1024
    return f"{n:.1f} EiB"  # pragma: no cover


_MEMORY = []


def physical_memory():
    """Bytes of RAM of this machine (sysconf; 2**40 where unknown), read once."""
    if not _MEMORY:
        try:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (AttributeError, ValueError, OSError):
            total = 0
        _MEMORY.append(int(total) if total and total > 0 else 1 << 40)
    return _MEMORY[0]


def check_conv_memory(x_shape, k, pads, out_shape, itemsize):
    """Refuse, before any allocation, a convolution whose padded input or output would
    not fit in this machine's memory (padding=10**6 would ask numpy for terabytes)."""
    n, c = x_shape[:2]
    padded = (n, c) + tuple(s + lo + hi for s, (lo, hi) in zip(x_shape[2:], pads))
    output = (n, k) + tuple(out_shape)
    limit = physical_memory()
    for what, shape in (("padded input", padded), ("output", output)):
        need = math.prod(shape) * itemsize
        if need > limit:
            padding = tuple(pads)
            cause = (f"padding={padding} is too large: " if any(lo or hi for lo, hi in pads)
                     else "")
            raise ValueError(
                f"{cause}the convolution's {what} {shape} would need {_human_bytes(need)}, "
                f"more than this machine's memory ({_human_bytes(limit)})")


def check_cache(cache, kind, op):
    """``cache`` must be what ``<op>_forward`` returned: an instance of ``kind`` (a
    NamedTuple class, or np.ndarray for the elementwise ops)."""
    if not isinstance(cache, kind):
        got = type(cache).__name__
        if type(cache) is tuple:
            got = f"a plain tuple of {len(cache)}"
        raise TypeError(f"cache must be the cache returned by {op}_forward (the second value "
                        f"of its result), got {got}")
    return cache


def check_dout(dout, shape, dtype=None):
    """``dout`` must be an array of the forward output's shape -> ndarray (cast to
    ``dtype`` when given)."""
    if not isinstance(dout, np.ndarray):
        try:
            dout = np.asarray(dout)
        except Exception as exc:  # ragged lists and the like
            raise TypeError(f"dout must be an array, got {type(dout).__name__}") from exc
    if dout.dtype.kind not in "fiub":
        raise TypeError(f"dout must hold numbers, got dtype {dout.dtype}")
    shape = tuple(shape)
    if dout.shape != shape:
        raise ValueError(f"dout must have the shape of the forward output {shape}, got "
                         f"{dout.shape}")
    if dtype is not None and dout.dtype != dtype:
        dout = dout.astype(dtype)
    return dout
