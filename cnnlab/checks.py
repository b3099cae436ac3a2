"""Argument checks shared by every cnnlab package (``reference/`` keeps its own copy, so
that the loop versions stand alone).

Each check takes the value and the argument's name, returns the value normalized (an
``int``, a ``float``, a tuple) and otherwise raises an error that names the argument,
says what was expected and what came (scikit-learn style)::

    >>> positive_int(3, "filters")
    3
    >>> positive_int(0, "filters")
    Traceback (most recent call last):
    ...
    ValueError: filters must be positive, got 0

TypeError for a value of the wrong kind, ValueError for a value out of range. A caller
that wants its own name in front of the message (``Conv2D: filters must be ...``) wraps
the calls in :func:`owned_by`.

The checks look at types, shapes and lengths only (O(1) in the data of an array), so the
fast path stays fast. This module sits at the bottom of the import graph: it imports
numpy and the standard library only.
"""

from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Iterator, Sequence

import numpy as np

PADDING_NAMES = ("valid", "same", "full")


@contextlib.contextmanager
def owned_by(owner: str) -> Iterator[None]:
    """Within the block, a TypeError or ValueError gets ``'<owner>: '`` in front of its
    message (same class, no chained traceback)::

        with owned_by("Conv2D"):
            filters = positive_int(filters, "filters")   # Conv2D: filters must be ...
    """
    try:
        yield
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{owner}: {exc}") from None


# ----------------------------------------------------------------------------- integers


def _integer(value, name, minimum, wording):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    v = int(value)
    if v < minimum:
        raise ValueError(f"{name} must be {wording}, got {v}")
    return v


def positive_int(value, name: str) -> int:
    """An int >= 1 (bools refused; numpy ints accepted) -> int. Sizes: filters, units."""
    return _integer(value, name, 1, "positive")


def nonneg_int(value, name: str) -> int:
    """An int >= 0 -> int. Paddings, seeds."""
    return _integer(value, name, 0, "non-negative")


def int_at_least(value, name: str, minimum: int) -> int:
    """An int >= ``minimum`` -> int; the message says ``name must be >= minimum``.
    Counts: epochs, batch_size, num_classes."""
    return _integer(value, name, minimum, f">= {minimum}")


def int_tuple(value, nsp: int, name: str, allow_zero: bool = False) -> tuple[int, ...]:
    """An int, or a length-``nsp`` sequence of ints (one per spatial axis) -> tuple of
    ``nsp`` ints, each positive (non-negative when ``allow_zero``)."""
    one = nonneg_int if allow_zero else positive_int
    if isinstance(value, (list, tuple)):
        if len(value) != nsp:
            raise ValueError(
                f"{name} must have {nsp} entries (one per spatial axis), got "
                f"{len(value)}: {value!r}"
            )
        return tuple(one(e, name) for e in value)
    return (one(value, name),) * nsp


# ----------------------------------------------------------------------------- real numbers


def real_number(value, name: str) -> float:
    """A real scalar (int, float, numpy scalar or 0-d array; not bool, not a string) ->
    float. NaN and inf are allowed: in the ops they propagate as in PyTorch."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    return float(value)


def real_in(
    value,
    name: str,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """A finite real number in [low, high] (an end open when asked; None = unbounded) ->
    float. Hyperparameters: rates, momenta, epsilons (the optimizers check ``lr`` at each
    step: a Python float skips the type tests)."""
    if type(value) is not float:
        if isinstance(value, np.ndarray) and value.ndim == 0:
            value = value[()]
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    v = float(value)
    bad = (
        not math.isfinite(v)
        or (low is not None and (v < low or (low_open and v == low)))
        or (high is not None and (v > high or (high_open and v == high)))
    )
    if bad:
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        interval = f"{'(' if low_open else '['}{lo}, {hi}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return v


# ----------------------------------------------------------------------------- other kinds


def boolean(value, name: str) -> bool:
    """True or False (numpy bools too; not 0/1) -> bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def choice(value, name: str, options: Sequence):
    """One of ``options`` -> value."""
    if value not in options:
        raise ValueError(f"{name} must be one of {list(options)}, got {value!r}")
    return value


def sample_shape(value, name: str = "input_shape") -> tuple[int, ...]:
    """A per-sample shape: an int or a non-empty sequence of positive ints -> tuple."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, (list, tuple)) or len(value) == 0:
        raise TypeError(
            f"{name} must be a non-empty tuple of positive ints (per sample, channels "
            f"first, e.g. (1, 28, 28)), got {value!r}"
        )
    out = []
    for v in value:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(
                f"{name} must hold positive ints (per sample, channels first, "
                f"e.g. (1, 28, 28)), got {tuple(value)!r}"
            )
        out.append(int(v))
    return tuple(out)


def float_dtype(value, name: str = "dtype") -> np.dtype:
    """A floating numpy dtype (np.float32, 'float64', ...) -> np.dtype."""
    try:
        dt = np.dtype(value)
    except TypeError as exc:
        raise TypeError(
            f"{name} must be a floating dtype such as np.float32, got {value!r}"
        ) from exc
    if dt.kind != "f":
        raise TypeError(f"{name} must be a floating dtype such as np.float32, got {dt}")
    return dt


# ----------------------------------------------------------------------------- windows
# padding specs and output sizes of a sliding window (convolution, pooling): layers need
# them to infer shapes, the ops to check their arguments


def resolve_padding(
    padding, kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int]
) -> tuple[tuple[int, int], ...]:
    """Padding spec -> per-axis (lo, hi) pairs.

    int or per-axis ints: symmetric; per-axis (lo, hi) pairs: as given;
    'valid': 0; 'full': d(f-1) each side; 'same' (stride 1 only): total d(f-1), the
    extra cell of an even kernel on the high side, as PyTorch pads.
    """
    nsp = len(kernel)
    if isinstance(padding, str):
        name = padding.lower()
        if name not in PADDING_NAMES:
            raise ValueError(
                f"padding must be an int, a tuple or one of {PADDING_NAMES}, got {padding!r}"
            )
        if name == "valid":
            return ((0, 0),) * nsp
        if name == "full":
            return tuple((d * (f - 1), d * (f - 1)) for f, d in zip(kernel, dilation))
        if any(s != 1 for s in stride):
            raise ValueError(
                f"padding='same' needs stride 1 on every axis, got stride={tuple(stride)}"
            )
        total = [d * (f - 1) for f, d in zip(kernel, dilation)]
        return tuple((t // 2, t - t // 2) for t in total)
    if isinstance(padding, (list, tuple)):
        if len(padding) != nsp:
            raise ValueError(
                f"padding must have {nsp} entries (one per spatial axis), got {len(padding)}: {padding!r}"
            )
        out: list[tuple[int, int]] = []
        for p in padding:
            if isinstance(p, (list, tuple)):
                if len(p) != 2:
                    raise ValueError(f"a per-axis padding pair must be (lo, hi), got {p!r}")
                lo, hi = (nonneg_int(e, "padding") for e in p)
                out.append((lo, hi))
            else:
                q = nonneg_int(p, "padding")
                out.append((q, q))
        return tuple(out)
    q = nonneg_int(padding, "padding")
    return ((q, q),) * nsp


def output_shape(
    spatial: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    pads: Sequence[tuple[int, int]],
    dilation: Sequence[int],
    what: str = "input",
) -> tuple[int, ...]:
    """Per-axis output sizes floor((n + lo + hi - d(f - 1) - 1) / s) + 1; a clear error
    when the kernel does not fit in the padded ``what``."""
    out = []
    for axis, (n, f, s, (lo, hi), d) in enumerate(zip(spatial, kernel, stride, pads, dilation)):
        span = n + lo + hi - d * (f - 1) - 1
        if span < 0:
            raise ValueError(
                f"kernel size {f} (dilation {d}) on spatial axis {axis} is larger than the padded "
                f"{what}: {n} + padding {lo}+{hi} = {n + lo + hi}"
            )
        out.append(span // s + 1)
    return tuple(out)
