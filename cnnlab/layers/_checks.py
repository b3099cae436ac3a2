"""Constructor-argument checks for layers: :mod:`cnnlab.checks` with the layer class in
front of every message, plus the two specs only layers take (Keras's ``strides``
spelling, a padding spec kept for ``get_config``). E.g.

    Conv2D: filters must be positive, got 0
"""

from __future__ import annotations

from .. import checks
from ..checks import float_dtype
from ..checks import sample_shape as as_shape

__all__ = [
    "positive_int",
    "nonneg_int",
    "int_tuple",
    "stride_or_strides",
    "padding",
    "boolean",
    "real",
    "choice",
    "jsonable",
    "as_shape",
    "float_dtype",
]


def positive_int(owner, value, name):
    """A positive int (bools rejected)."""
    with checks.owned_by(owner):
        return checks.positive_int(value, name)


def nonneg_int(owner, value, name):
    """A non-negative int (bools rejected)."""
    with checks.owned_by(owner):
        return checks.nonneg_int(value, name)


def int_tuple(owner, value, nsp, name, allow_zero=False):
    """An int or ``nsp`` ints -> tuple of ``nsp`` ints."""
    with checks.owned_by(owner):
        return checks.int_tuple(value, nsp, name, allow_zero)


def stride_or_strides(owner, stride, strides, nsp):
    """Merge ``stride`` with Keras's spelling ``strides`` -> tuple of ``nsp`` ints, or None
    when neither is given. Both given and different is an error."""
    if strides is None:
        return None if stride is None else int_tuple(owner, stride, nsp, "stride")
    theirs = int_tuple(owner, strides, nsp, "strides")
    if stride is not None and int_tuple(owner, stride, nsp, "stride") != theirs:
        raise ValueError(
            f"{owner}: got stride={stride!r} and strides={strides!r}; they are the "
            f"same argument (strides is Keras's name): give one of them"
        )
    return theirs


def padding(owner, value, kernel, stride, dilation):
    """Check a padding spec; -> (normalized spec, per-axis (lo, hi) pairs).

    Spec: int, per-axis ints, per-axis (lo, hi) pairs, or 'valid' / 'same' / 'full'."""
    if isinstance(value, (list, tuple)):
        value = tuple(tuple(v) if isinstance(v, (list, tuple)) else v for v in value)
    elif isinstance(value, str):
        value = value.lower()
    with checks.owned_by(owner):
        pads = checks.resolve_padding(value, tuple(kernel), tuple(stride), tuple(dilation))
    return value, pads


def boolean(owner, value, name):
    """True or False."""
    with checks.owned_by(owner):
        return checks.boolean(value, name)


def real(owner, value, name, low=None, high=None, low_open=False, high_open=False):
    """A finite real number in [low, high] (ends open when asked)."""
    with checks.owned_by(owner):
        return checks.real_in(value, name, low, high, low_open, high_open)


def choice(owner, value, name, options):
    """One of ``options``."""
    with checks.owned_by(owner):
        return checks.choice(value, name, options)


def jsonable(value):
    """Tuples -> lists recursively (what ``json`` would give back)."""
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value
