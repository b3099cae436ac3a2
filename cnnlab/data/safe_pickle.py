"""A restricted unpickler for the official CIFAR python batches.

The official ``cifar-10-batches-py`` files are pickled dicts holding only bytes/str/int/list
values and numpy arrays. ``pickle.load`` on them would run whatever callable the file names,
so cnnlab never uses it. :class:`RestrictedUnpickler` lets through exactly the constructions
NumPy itself writes when it pickles a plain array, and refuses everything else with
``pickle.UnpicklingError``:

- protocols 0-4: ``_reconstruct(ndarray, (0,), b'b')`` (from ``numpy.core.multiarray`` or
  ``numpy._core.multiarray``), then BUILD with ``(1, shape, dtype, is_fortran, data)`` where
  ``data`` is a bytes payload of exactly ``prod(shape) * dtype.itemsize`` bytes. The array is
  made from that payload only: no call ever allocates what a shape merely declares, and
  ``numpy.ndarray`` itself is a marker that cannot be called;
- protocol 5: ``_frombuffer(payload, dtype, shape, order)`` (``numpy[._]core.numeric``) with
  an in-band payload of exactly the declared size;
- ``numpy.dtype(spec, align, copy)`` for plain boolean/integer/float/bytes/str dtypes (no
  object dtype, no fields), followed only by NumPy's own BUILD state for that dtype (byte
  order '<', '>', '|' or '=');
- ``_codecs.encode(str, 'latin1')`` and ``bytes()``: how Python 3 writes ``bytes`` (and
  ``b''``) at protocols 0-2 (e.g. the ``b'data'`` keys of a batch re-saved with
  ``pickle.dump``).

Persistent ids are refused as well. The loaded object is then walked once (shared objects
are visited once, so the walk is linear in the pickle's size; cycles and nesting deeper than
32 are refused) and only dict/list/tuple/bytes/str/int/float/bool/None and plain numeric
arrays are accepted. The callers check the content further
(:func:`cnnlab.data.cifar.read_cifar_python_batch`).
"""
from __future__ import annotations

import codecs
import io
import pickle

import numpy as np

__all__ = ["RestrictedUnpickler", "restricted_load", "restricted_loads"]

_PLAIN_KINDS = frozenset("biufSU")
_MAX_DEPTH = 32


def _refuse(what):
    raise pickle.UnpicklingError(f"restricted unpickler: {what}")


class _Inert:
    """Base of the objects the pickle machine gets to hold: no ``__dict__``, no attribute
    assignment; subclasses decide what a BUILD may do."""

    __slots__ = ()

    def __setattr__(self, name, value):
        _refuse("attribute assignment refused")

    def __setstate__(self, state):
        _refuse(f"BUILD on {self!r} refused")


class _NdarrayMarker(_Inert):
    """Stands for ``numpy.ndarray`` inside the pickle: not callable, only accepted as the
    first argument of ``_reconstruct``."""

    __slots__ = ()

    def __call__(self, *args):
        _refuse("numpy.ndarray may not be called directly (it would allocate whatever shape "
                "the file declares); only NumPy's own _reconstruct/_frombuffer are allowed")

    def __repr__(self):
        return "<numpy.ndarray marker>"


_NDARRAY = _NdarrayMarker()


class _Guarded(_Inert):
    """An allowed callable handed to the pickle machine, which cannot modify it."""

    __slots__ = ("_fn",)

    def __init__(self, fn):
        object.__setattr__(self, "_fn", fn)

    def __call__(self, *args):
        return self._fn(*args)

    def __setstate__(self, state):
        _refuse("BUILD on an allowed callable refused")

    def __repr__(self):
        return f"<restricted {self._fn.__name__}>"


class _PendingDtype(_Inert):
    """A plain numpy dtype; accepts one BUILD with NumPy's own state for it (which may only
    change the byte order)."""

    __slots__ = ("dtype", "_built")

    def __init__(self, dtype):
        object.__setattr__(self, "dtype", dtype)
        object.__setattr__(self, "_built", False)

    def __setstate__(self, state):
        canonical = self.dtype.__reduce__()[2]
        if self._built or not isinstance(state, tuple) or len(state) != len(canonical):
            _refuse(f"numpy dtype state {state!r} refused: expected NumPy's own state "
                    f"{canonical!r}")
        order = state[1].decode("ascii") if isinstance(state[1], bytes) else state[1]
        if state[0] != canonical[0] or tuple(state[2:]) != tuple(canonical[2:]) \
                or order not in ("<", ">", "|", "=") or (order == "|") != (canonical[1] == "|"):
            _refuse(f"numpy dtype state {state!r} refused: expected NumPy's own state "
                    f"{canonical!r} (the byte order may differ)")
        dt = self.dtype if order == "|" else self.dtype.newbyteorder(order)
        object.__setattr__(self, "dtype", dt)
        object.__setattr__(self, "_built", True)

    def __repr__(self):
        return f"<dtype {self.dtype}>"


def _shape(shape, who):
    if type(shape) is not tuple or not all(type(d) is int and d >= 0 for d in shape) \
            or len(shape) > 32:
        _refuse(f"{who}: shape must be a tuple of at most 32 non-negative ints, got {shape!r}")
    return shape


def _from_payload(payload, dtype, shape, fortran, who):
    """The array NumPy pickled: ``payload`` must hold exactly prod(shape) * itemsize bytes."""
    if not isinstance(dtype, _PendingDtype):
        _refuse(f"{who}: dtype must come from numpy.dtype, got {dtype!r}")
    if type(payload) not in (bytes, bytearray):
        _refuse(f"{who}: the array data must be a bytes payload, got {type(payload).__name__}")
    dt = dtype.dtype
    count = 1
    for d in _shape(shape, who):
        count *= d  # Python ints: no overflow
    if count * dt.itemsize != len(payload):
        _refuse(f"{who}: shape {shape} of {dt} needs {count * dt.itemsize} bytes, the payload "
                f"holds {len(payload)}")
    flat = np.frombuffer(payload, dt, count=count)
    return flat.reshape(shape, order="F" if fortran else "C").copy(order="K")


class _PendingArray(_Inert):
    """What ``_reconstruct`` returns: an empty slot that NumPy's BUILD fills exactly once."""

    __slots__ = ("array",)

    def __init__(self):
        object.__setattr__(self, "array", None)

    def __setstate__(self, state):
        who = "ndarray state"
        if self.array is not None or type(state) is not tuple or len(state) != 5 \
                or state[0] != 1 or type(state[0]) is not int:
            got = f"a {len(state)}-tuple" if type(state) is tuple else type(state).__name__
            _refuse(f"{who} refused: expected (1, shape, dtype, is_fortran, data), once, got "
                    f"{got}")
        _, shape, dtype, fortran, payload = state
        if fortran not in (0, 1) or type(fortran) not in (bool, int):
            _refuse(f"{who}: is_fortran must be a bool, got {fortran!r}")
        object.__setattr__(self, "array", _from_payload(payload, dtype, shape, bool(fortran), who))

    def __repr__(self):
        return "<ndarray being unpickled>"


def _safe_reconstruct(subtype, shape, typecode):
    if subtype is not _NDARRAY:
        _refuse(f"_reconstruct expected numpy.ndarray as subtype, got {subtype!r}")
    if shape != (0,) or type(shape) is not tuple or type(shape[0]) is not int:
        _refuse(f"_reconstruct expected the shape (0,) NumPy pickles, got {shape!r}")
    if typecode not in (b"b", "b"):
        _refuse(f"_reconstruct expected typecode b'b', got {typecode!r}")
    return _PendingArray()


def _safe_frombuffer(payload, dtype, shape, order):
    if order not in ("C", "F"):
        _refuse(f"_frombuffer: order must be 'C' or 'F', got {order!r}")
    return _from_payload(payload, dtype, shape, order == "F", "_frombuffer")


def _safe_dtype(spec, align=False, copy=False):
    if isinstance(spec, bytes):
        spec = spec.decode("ascii", "replace")
    if not isinstance(spec, str) or len(spec) > 16:
        _refuse(f"numpy.dtype expected a type string like 'u1', got {spec!r}")
    if align not in (0, 1) or copy not in (0, 1):
        _refuse(f"numpy.dtype expected align and copy flags, got {align!r}, {copy!r}")
    try:
        dt = np.dtype(spec)
    except TypeError as e:
        _refuse(f"bad numpy dtype {spec!r}: {e}")
    if dt.kind not in _PLAIN_KINDS or dt.fields is not None or dt.subdtype is not None:
        _refuse(f"numpy dtype {spec!r} refused: expected a plain bool/int/float/bytes/str "
                f"dtype, got kind {dt.kind!r}")
    return _PendingDtype(dt)


def _safe_encode(obj, encoding="utf-8", errors="strict"):
    if not isinstance(obj, str) or str(encoding).lower().replace("-", "") != "latin1" \
            or errors != "strict":
        _refuse(f"_codecs.encode is allowed only as encode(str, 'latin1'), got "
                f"encode({type(obj).__name__}, {encoding!r}, {errors!r})")
    return codecs.encode(obj, "latin1")


def _safe_bytes(*args):
    if args:
        _refuse(f"bytes() is allowed only without arguments (how protocols 0-2 write b''), "
                f"got {len(args)} argument(s)")
    return b""


_ALLOWED = {
    ("__builtin__", "bytes"): _Guarded(_safe_bytes),
    ("builtins", "bytes"): _Guarded(_safe_bytes),
    ("numpy.core.multiarray", "_reconstruct"): _Guarded(_safe_reconstruct),
    ("numpy._core.multiarray", "_reconstruct"): _Guarded(_safe_reconstruct),
    ("numpy.core.numeric", "_frombuffer"): _Guarded(_safe_frombuffer),
    ("numpy._core.numeric", "_frombuffer"): _Guarded(_safe_frombuffer),
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _Guarded(_safe_dtype),
    ("_codecs", "encode"): _Guarded(_safe_encode),
}


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only the numpy array-reconstruction globals listed in
    the module docstring and refuses everything else (``pickle.UnpicklingError``).

    ``load()`` may return internal placeholders for arrays; use :func:`restricted_load`,
    which replaces them and checks the whole result."""

    def find_class(self, module, name):  # noqa: D102 - documented on the class
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"restricted unpickler: global '{module}.{name}' is not allowed (only numpy array "
                f"reconstruction is); refusing to load this pickle") from None

    def persistent_load(self, pid):  # noqa: D102
        raise pickle.UnpicklingError("restricted unpickler: persistent ids are not allowed")


def _resolve(obj, memo, active, depth=0):
    """A copy of ``obj`` with array placeholders replaced by their arrays, accepting only
    dict/list/tuple/bytes/str/int/float/bool/None and plain arrays. ``memo`` (id -> result)
    makes each shared object cost one visit: linear in the pickle's size."""
    if obj is None or type(obj) in (bytes, str, int, float, bool):
        return obj
    key = id(obj)
    if key in memo:
        return memo[key]
    if key in active:
        _refuse("the structure refers to itself (a cycle)")
    if depth > _MAX_DEPTH:
        _refuse(f"structure nested more than {_MAX_DEPTH} levels deep")
    if isinstance(obj, _PendingArray):
        if obj.array is None:
            _refuse("an array without its data (no BUILD after _reconstruct)")
        out = obj.array
    elif type(obj) is np.ndarray:  # from _frombuffer: made by _from_payload, plain already
        out = obj
    elif type(obj) in (list, tuple, dict):
        active.add(key)
        if type(obj) is dict:
            for k in obj:
                if k is not None and type(k) not in (bytes, str, int, float, bool):
                    _refuse(f"dict keys must be strings, bytes or numbers, got {type(k).__name__}")
            out = {_resolve(k, memo, active, depth + 1): _resolve(v, memo, active, depth + 1)
                   for k, v in obj.items()}
        else:
            out = type(obj)(_resolve(v, memo, active, depth + 1) for v in obj)
        active.discard(key)
    else:
        _refuse(f"unexpected object of type {type(obj).__name__} in the pickle")
    memo[key] = out
    return out


def restricted_load(file, encoding: str = "bytes"):
    """Unpickle from a binary file object with :class:`RestrictedUnpickler` and check that the
    result contains only plain containers, scalars, strings and numeric numpy arrays.

    ``encoding='bytes'`` (default) loads Python 2 ``str`` as ``bytes``, as the official CIFAR
    files need. Raises ``pickle.UnpicklingError`` on anything else. Memory: the arrays come
    from payloads inside the file, so the result is at most about twice the file's size.
    """
    obj = RestrictedUnpickler(file, encoding=encoding).load()
    return _resolve(obj, {}, set())


def restricted_loads(data: bytes, encoding: str = "bytes"):
    """:func:`restricted_load` from a bytes object."""
    return restricted_load(io.BytesIO(data), encoding=encoding)
