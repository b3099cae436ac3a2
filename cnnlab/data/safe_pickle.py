"""A restricted unpickler for the official CIFAR python batches.

The official ``cifar-10-batches-py`` files are pickled dicts holding only bytes/str/int/list
values and numpy arrays. ``pickle.load`` on them would run whatever callable the file names,
so cnnlab never uses it: :class:`RestrictedUnpickler` resolves exactly these globals and
refuses every other one with ``pickle.UnpicklingError``:

- ``numpy.core.multiarray._reconstruct`` / ``numpy._core.multiarray._reconstruct`` (how
  numpy arrays are pickled), accepted only as ``_reconstruct(numpy.ndarray, shape, b'b')``;
- ``numpy.ndarray`` (only as the argument above);
- ``numpy.dtype``, only for plain boolean/integer/float/bytes/str dtypes (no object dtype);
- ``_codecs.encode``, only as ``encode(str, 'latin1')``: this is how Python 3 writes ``bytes``
  at pickle protocol 2 (e.g. the ``b'data'`` keys of a batch re-saved with ``pickle.dump``).

Persistent ids are refused as well. Results are further checked by the callers
(:func:`cnnlab.data.cifar.read_cifar_python_batch`).
"""
from __future__ import annotations

import codecs
import io
import pickle

import numpy as np

__all__ = ["RestrictedUnpickler", "restricted_load", "restricted_loads"]

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct as _np_reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct as _np_reconstruct

_PLAIN_KINDS = frozenset("biufSU")


def _safe_reconstruct(subtype, shape, typecode):
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError(
            f"restricted unpickler: _reconstruct expected numpy.ndarray as subtype, got {subtype!r}")
    if typecode not in (b"b", "b"):
        raise pickle.UnpicklingError(
            f"restricted unpickler: _reconstruct expected typecode b'b', got {typecode!r}")
    return _np_reconstruct(np.ndarray, shape, b"b")


def _safe_dtype(spec, align=False, copy=False):
    if isinstance(spec, bytes):
        spec = spec.decode("ascii")
    if not isinstance(spec, str):
        raise pickle.UnpicklingError(
            f"restricted unpickler: numpy.dtype expected a type string like 'u1', got {spec!r}")
    try:
        dt = np.dtype(spec, align=bool(align), copy=bool(copy))
    except TypeError as e:
        raise pickle.UnpicklingError(f"restricted unpickler: bad numpy dtype {spec!r}: {e}") from None
    if dt.kind not in _PLAIN_KINDS or dt.fields is not None or dt.subdtype is not None:
        raise pickle.UnpicklingError(
            f"restricted unpickler: numpy dtype {spec!r} refused: expected a plain bool/int/float/"
            f"bytes/str dtype, got kind {dt.kind!r}")
    return dt


def _safe_encode(obj, encoding="utf-8", errors="strict"):
    if not isinstance(obj, str) or str(encoding).lower().replace("-", "") != "latin1" \
            or errors != "strict":
        raise pickle.UnpicklingError(
            f"restricted unpickler: _codecs.encode is allowed only as encode(str, 'latin1'), got "
            f"encode({type(obj).__name__}, {encoding!r}, {errors!r})")
    return codecs.encode(obj, "latin1")


class _Guarded:
    """A callable handed to the pickle machine that cannot be modified by it: no ``__dict__``
    (slots) and a ``__setstate__`` that refuses, so a BUILD opcode aimed at it fails instead of
    setting attributes."""

    __slots__ = ("_fn",)

    def __init__(self, fn):
        object.__setattr__(self, "_fn", fn)

    def __call__(self, *args):
        return self._fn(*args)

    def __setattr__(self, name, value):
        raise pickle.UnpicklingError("restricted unpickler: attribute assignment refused")

    def __setstate__(self, state):
        raise pickle.UnpicklingError("restricted unpickler: BUILD on an allowed callable refused")

    def __repr__(self):
        return f"<restricted {self._fn.__name__}>"


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _Guarded(_safe_reconstruct),
    ("numpy._core.multiarray", "_reconstruct"): _Guarded(_safe_reconstruct),
    ("numpy", "ndarray"): np.ndarray,  # a builtin type: immutable; only usable inside _reconstruct
    ("numpy", "dtype"): _Guarded(_safe_dtype),
    ("_codecs", "encode"): _Guarded(_safe_encode),
}


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only the numpy array-reconstruction globals listed in
    the module docstring and refuses everything else (``pickle.UnpicklingError``)."""

    def find_class(self, module, name):  # noqa: D102 - documented on the class
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"restricted unpickler: global '{module}.{name}' is not allowed (only numpy array "
                f"reconstruction is); refusing to load this pickle") from None

    def persistent_load(self, pid):  # noqa: D102
        raise pickle.UnpicklingError("restricted unpickler: persistent ids are not allowed")


def _check(obj, depth=0):
    """Walk the loaded object; accept only dict/list/tuple/bytes/str/int/float/bool/None and
    plain numpy arrays."""
    if depth > 32:
        raise pickle.UnpicklingError("restricted unpickler: structure nested too deeply")
    if obj is None or isinstance(obj, (bytes, str, int, float, bool)):
        return
    if isinstance(obj, np.ndarray):
        if type(obj) is not np.ndarray or obj.dtype.kind not in _PLAIN_KINDS or obj.dtype.hasobject:
            raise pickle.UnpicklingError(
                f"restricted unpickler: array of dtype {obj.dtype} refused: expected a plain array")
        return
    if isinstance(obj, dict) and type(obj) is dict:
        for k, v in obj.items():
            _check(k, depth + 1)
            _check(v, depth + 1)
        return
    if type(obj) in (list, tuple):
        for v in obj:
            _check(v, depth + 1)
        return
    raise pickle.UnpicklingError(
        f"restricted unpickler: unexpected object of type {type(obj).__name__} in the pickle")


def restricted_load(file, encoding: str = "bytes"):
    """Unpickle from a binary file object with :class:`RestrictedUnpickler` and check that the
    result contains only plain containers, scalars, strings and numeric numpy arrays.

    ``encoding='bytes'`` (default) loads Python 2 ``str`` as ``bytes``, as the official CIFAR
    files need. Raises ``pickle.UnpicklingError`` on anything else.
    """
    obj = RestrictedUnpickler(file, encoding=encoding).load()
    _check(obj)
    return obj


def restricted_loads(data: bytes, encoding: str = "bytes"):
    """:func:`restricted_load` from a bytes object."""
    return restricted_load(io.BytesIO(data), encoding=encoding)
