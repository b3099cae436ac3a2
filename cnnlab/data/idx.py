"""Reading and writing IDX files (the format of MNIST, Fashion-MNIST, EMNIST), raw or gzipped.

An IDX file is a 4-byte magic number ``00 00 TT DD`` (``TT`` the element type, ``DD`` the
number of dimensions), ``DD`` big-endian uint32 sizes, then the elements in C order,
big-endian. Gzip is detected from the content (bytes ``1f 8b``), not the file name.
"""
from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from ._paths import atomic_open

__all__ = ["read_idx", "write_idx", "IDX_TYPES"]

#: IDX type code -> big-endian numpy dtype.
IDX_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dt.newbyteorder("="): code for code, dt in IDX_TYPES.items()}


def _read_bytes(path: Path) -> bytes:
    """Return the (decompressed) content of ``path``; corrupt gzip -> ValueError naming it."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as e:
            raise ValueError(f"{path}: corrupt or truncated gzip data ({e})") from None
    return raw


def _parse_idx(buf: bytes, name: str) -> tuple[int, np.ndarray]:
    """Parse IDX content ``buf``; return ``(magic, array)``. ``name`` is used in errors."""
    if len(buf) < 4:
        raise ValueError(
            f"{name}: truncated IDX file: expected at least a 4-byte magic number, got {len(buf)} bytes")
    magic = int.from_bytes(buf[:4], "big")
    code, ndim = buf[2], buf[3]
    if buf[0] != 0 or buf[1] != 0 or code not in IDX_TYPES or ndim == 0:
        raise ValueError(
            f"{name}: bad IDX magic number: expected 0x0000TTDD with type code TT in "
            f"{{08, 09, 0B, 0C, 0D, 0E}} and DD >= 1 dimensions (e.g. 0x00000803 for MNIST images, "
            f"0x00000801 for labels), got 0x{magic:08X}")
    header = 4 + 4 * ndim
    if len(buf) < header:
        raise ValueError(
            f"{name}: truncated IDX header: expected {header} bytes for {ndim} dimensions, "
            f"got {len(buf)} bytes")
    shape = tuple(int(d) for d in np.frombuffer(buf, ">u4", count=ndim, offset=4))
    dtype = IDX_TYPES[code]
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(buf) != expected:
        what = "truncated IDX data" if len(buf) < expected else "IDX file longer than its header says"
        raise ValueError(
            f"{name}: {what}: header says shape {shape} of {dtype.name}, expected {expected} bytes "
            f"in total, got {len(buf)} bytes")
    arr = np.frombuffer(buf, dtype, offset=header).reshape(shape)
    return magic, arr.astype(dtype.newbyteorder("="))  # always a writable native-order copy


def _read_idx(path: str | os.PathLike) -> tuple[int, np.ndarray]:
    path = Path(path)
    return _parse_idx(_read_bytes(path), str(path))


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read any IDX file (raw or gzipped) into a native-byte-order numpy array.

    The shape and dtype come from the header (e.g. MNIST images: ``(N, 28, 28)`` uint8).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: bad magic number, truncated or over-long file, corrupt gzip; the message
            names the file, what was expected and what was found.
    """
    return _read_idx(path)[1]


def write_idx(path: str | os.PathLike, array, compress: bool | None = None) -> Path:
    """Write ``array`` as an IDX file, atomically. Gzipped when ``compress`` is True, or when it is
    None and ``path`` ends with ``.gz`` (gzip header mtime 0, so output is reproducible).

    Supported dtypes: uint8, int8, int16, int32, float32, float64. Returns the path.
    """
    arr = np.asarray(array)
    code = _CODES.get(arr.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(
            f"write_idx: unsupported dtype: expected one of uint8, int8, int16, int32, float32, "
            f"float64, got {arr.dtype}")
    if not 1 <= arr.ndim <= 255:
        raise ValueError(f"write_idx: expected an array with 1 to 255 dimensions, got {arr.ndim}")
    path = Path(path)
    if compress is None:
        compress = path.suffix == ".gz"
    data = (bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, ">u4").tobytes()
            + np.ascontiguousarray(arr, IDX_TYPES[code]).tobytes())
    if compress:
        data = gzip.compress(data, compresslevel=9, mtime=0)
    with atomic_open(path) as f:
        f.write(data)
    return path
