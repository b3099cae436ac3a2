"""Constructor-argument checks for layers. Every error names the layer class, the
argument, what was expected and what came, e.g.

    Conv2D: filters must be a positive int, got 0
"""
from __future__ import annotations

import numbers

import numpy as np

from ..functional import _args


def _wrap(owner, fn, *args):
    try:
        return fn(*args)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{owner}: {exc}") from None


def positive_int(owner, value, name):
    """A positive int (bools rejected)."""
    return _wrap(owner, _args._positive_int, value, name, False)


def nonneg_int(owner, value, name):
    """A non-negative int (bools rejected)."""
    return _wrap(owner, _args._positive_int, value, name, True)


def int_tuple(owner, value, nsp, name, allow_zero=False):
    """An int or ``nsp`` ints -> tuple of ``nsp`` ints."""
    return _wrap(owner, _args.as_tuple, value, nsp, name, allow_zero)


def stride_or_strides(owner, stride, strides, nsp):
    """Merge ``stride`` with Keras's spelling ``strides`` -> tuple of ``nsp`` ints, or None
    when neither is given. Both given and different is an error."""
    if strides is None:
        return None if stride is None else int_tuple(owner, stride, nsp, "stride")
    theirs = int_tuple(owner, strides, nsp, "strides")
    if stride is not None and int_tuple(owner, stride, nsp, "stride") != theirs:
        raise ValueError(f"{owner}: got stride={stride!r} and strides={strides!r}; they are the "
                         f"same argument (strides is Keras's name): give one of them")
    return theirs


def padding(owner, value, kernel, stride, dilation):
    """Check a padding spec; -> (normalized spec, per-axis (lo, hi) pairs).

    Spec: int, per-axis ints, per-axis (lo, hi) pairs, or 'valid' / 'same' / 'full'."""
    if isinstance(value, (list, tuple)):
        value = tuple(tuple(v) if isinstance(v, (list, tuple)) else v for v in value)
    elif isinstance(value, str):
        value = value.lower()
    pads = _wrap(owner, _args.resolve_padding, value, tuple(kernel), tuple(stride), tuple(dilation))
    return value, pads


def boolean(owner, value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{owner}: {name} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def real(owner, value, name, low=None, high=None, low_open=False, high_open=False):
    """A real number in [low, high] (ends open when asked)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a number, got {type(value).__name__} {value!r}")
    v = float(value)
    bad = (not np.isfinite(v)
           or (low is not None and (v < low or (low_open and v == low)))
           or (high is not None and (v > high or (high_open and v == high))))
    if bad:
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        interval = f"{'(' if low_open else '['}{lo}, {hi}{')' if high_open else ']'}"
        raise ValueError(f"{owner}: {name} must be in {interval}, got {value!r}")
    return v


def choice(owner, value, name, options):
    if value not in options:
        raise ValueError(f"{owner}: {name} must be one of {list(options)}, got {value!r}")
    return value


def jsonable(value):
    """Tuples -> lists recursively (what ``json`` would give back)."""
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def as_shape(value, name="input_shape"):
    """A per-sample shape: a sequence of positive ints -> tuple."""
    if isinstance(value, (numbers.Integral,)) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, (list, tuple)) or len(value) == 0:
        raise TypeError(f"{name} must be a non-empty tuple of positive ints (per sample, channels "
                        f"first, e.g. (1, 28, 28)), got {value!r}")
    out = []
    for v in value:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"{name} must hold positive ints (per sample, channels first, "
                             f"e.g. (1, 28, 28)), got {tuple(value)!r}")
        out.append(int(v))
    return tuple(out)


def float_dtype(value, name="dtype"):
    try:
        dt = np.dtype(value)
    except TypeError as exc:
        raise TypeError(f"{name} must be a floating dtype such as np.float32, got {value!r}") from exc
    if dt.kind != "f":
        raise TypeError(f"{name} must be a floating dtype such as np.float32, got {dt}")
    return dt
