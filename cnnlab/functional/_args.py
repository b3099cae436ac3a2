"""The functional ops' own argument checks (arrays, caches, dout, memory) and the
output-size arithmetic; the generic checks (ints, reals, paddings, window sizes) are
:mod:`cnnlab.checks`, re-exported here under the names the ops use.

Errors name the argument, say what was expected and what came (scikit-learn style).
"""

from __future__ import annotations

import math
import os

import numpy as np

from ..checks import (
    PADDING_NAMES,
    nonneg_int,
    output_shape,
    positive_int,
    real_number,
    resolve_padding,
)
from ..checks import int_tuple as as_tuple

__all__ = [
    "PADDING_NAMES",
    "as_float_array",
    "as_tuple",
    "check_cache",
    "check_conv_memory",
    "check_conv_sizes",
    "check_dout",
    "check_ndim",
    "check_spatial_rank",
    "conv_output_size",
    "output_shape",
    "physical_memory",
    "real_number",
    "resolve_padding",
]


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
    n = positive_int(n, "n")
    f = positive_int(f, "f")
    s = positive_int(stride, "stride")
    d = positive_int(dilation, "dilation")
    if isinstance(padding, str):
        ((lo, hi),) = resolve_padding(padding, (f,), (s,), (d,))
    elif isinstance(padding, tuple):
        lo, hi = (nonneg_int(p, "padding") for p in padding)
    else:
        lo = hi = nonneg_int(padding, "padding")
    span = n + lo + hi - d * (f - 1) - 1
    if span < 0:
        raise ValueError(
            f"kernel size {f} (dilation {d}) is larger than the padded input "
            f"{n} + {lo} + {hi} = {n + lo + hi}"
        )
    return span // s + 1


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


# ----------------------------------------------------------------------------- section 5
# checks that keep the fast path fast: each looks at shapes, types and lengths only (O(1)
# in the data), never at the values, so NaN and inf pass through as in PyTorch


def check_spatial_rank(x, name="x", what="convnd_forward"):
    """x must be (N, C, *spatial) with at least one spatial axis."""
    if x.ndim < 3:
        raise ValueError(
            f"{what}: {name} must be (N, C, *spatial) with at least one spatial axis "
            f"(3-D or more), got shape {x.shape} ({x.ndim}-D); for one 1-D signal or 2-D "
            f"image use correlate1d / correlate2d, or add the axes: {name}[None, None]"
        )


def check_conv_sizes(x, w):
    """At least one channel, one filter, one kernel cell per axis (an empty batch N = 0
    is fine, as in PyTorch)."""
    if x.shape[1] == 0:
        raise ValueError(f"x must have at least one channel, got shape {x.shape} (C=0)")
    if w.shape[0] == 0:
        raise ValueError(f"w must have at least one filter, got shape {w.shape} (K=0)")
    if 0 in w.shape[2:]:
        raise ValueError(
            f"w must have a kernel of at least 1 cell per spatial axis, got shape {w.shape}"
        )


def _human_bytes(n):
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}" if unit != "bytes" else f"{int(n)} bytes"
        n /= 1024
    return f"{n:.1f} EiB"  # pragma: no cover


_MEMORY: list[int] = []


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
            cause = f"padding={padding} is too large: " if any(lo or hi for lo, hi in pads) else ""
            raise ValueError(
                f"{cause}the convolution's {what} {shape} would need {_human_bytes(need)}, "
                f"more than this machine's memory ({_human_bytes(limit)})"
            )


def check_cache(cache, kind, op):
    """``cache`` must be what ``<op>_forward`` returned: an instance of ``kind`` (a
    NamedTuple class, or np.ndarray for the elementwise ops)."""
    if not isinstance(cache, kind):
        got = type(cache).__name__
        if type(cache) is tuple:
            got = f"a plain tuple of {len(cache)}"
        raise TypeError(
            f"cache must be the cache returned by {op}_forward (the second value "
            f"of its result), got {got}"
        )
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
        raise ValueError(
            f"dout must have the shape of the forward output {shape}, got {dout.shape}"
        )
    if dtype is not None and dout.dtype != dtype:
        dout = dout.astype(dtype)
    return dout
