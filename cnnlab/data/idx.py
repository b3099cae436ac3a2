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


#: The largest IDX content ``read_idx`` accepts by default (header-declared bytes): 1 GiB,
#: twice EMNIST ByClass. Pass ``max_bytes`` to go beyond.
MAX_IDX_BYTES = 1 << 30
#: A gzipped IDX may inflate at most this many times its compressed size beyond its first
#: :data:`_FREE_BYTES` (real MNIST images deflate about 5:1; zeros 1000:1).
MAX_GZIP_RATIO = 100
_FREE_BYTES = 64 << 20
_CHUNK = 1 << 20


class _Gunzip:
    """Incremental gzip reader (multi-member too) that never inflates more than asked and
    refuses data inflating more than MAX_GZIP_RATIO times past the first _FREE_BYTES."""

    def __init__(self, f, name):
        self.f, self.name = f, name
        self.z = zlib.decompressobj(31)
        self.pending = b""      # compressed bytes read but not yet given to self.z
        self.in_member = False  # self.z has started a member and not finished it
        self.consumed = self.produced = 0

    def _error(self, e):
        return ValueError(f"{self.name}: corrupt or truncated gzip data ({e})")

    def read(self, n):
        out = []
        while n > 0:
            if self.z.unconsumed_tail:  # input left over from a capped call
                data = self.z.unconsumed_tail
            else:
                if not self.pending:
                    self.pending = self.f.read(_CHUNK)
                    self.consumed += len(self.pending)
                    if not self.pending:
                        if self.in_member:
                            raise self._error("the compressed stream ends early")
                        break
                data, self.pending = self.pending, b""
            try:
                chunk = self.z.decompress(data, min(n, _CHUNK))
            except zlib.error as e:
                raise self._error(e) from None
            self.in_member = True
            if self.z.eof:  # member done; another may follow (as after `cat a.gz b.gz`)
                self.pending = self.z.unused_data
                self.z = zlib.decompressobj(31)
                self.in_member = False
            out.append(chunk)
            n -= len(chunk)
            self.produced += len(chunk)
            if self.produced > _FREE_BYTES and self.produced > MAX_GZIP_RATIO * self.consumed:
                raise ValueError(
                    f"{self.name}: gzip data inflates more than {MAX_GZIP_RATIO}:1 "
                    f"({self.produced} bytes from {self.consumed}): refusing a likely "
                    f"decompression bomb")
        return b"".join(out)


def _parse_header(head: bytes, name: str):
    if len(head) < 4:
        raise ValueError(
            f"{name}: truncated IDX file: expected at least a 4-byte magic number, got {len(head)} bytes")
    magic = int.from_bytes(head[:4], "big")
    code, ndim = head[2], head[3]
    if head[0] != 0 or head[1] != 0 or code not in IDX_TYPES or ndim == 0:
        raise ValueError(
            f"{name}: bad IDX magic number: expected 0x0000TTDD with type code TT in "
            f"{{08, 09, 0B, 0C, 0D, 0E}} and DD >= 1 dimensions (e.g. 0x00000803 for MNIST images, "
            f"0x00000801 for labels), got 0x{magic:08X}")
    return magic, code, ndim


def _read_exact(read, n):
    parts, got = [], 0
    while got < n:
        b = read(n - got)
        if not b:
            break
        parts.append(b)
        got += len(b)
    return b"".join(parts)


def _read_idx(path: str | os.PathLike, max_bytes: int = MAX_IDX_BYTES) -> tuple[int, np.ndarray]:
    """-> (magic, array). The header is checked before any data is read; at most the
    declared size (plus one byte, to detect over-long files) is ever read or inflated."""
    path = Path(path)
    name = str(path)
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
        f.seek(0)
        if gz:
            read = _Gunzip(f, name).read
            total = None
        else:
            read = f.read
            total = os.fstat(f.fileno()).st_size
        head = _read_exact(read, 4)
        magic, code, ndim = _parse_header(head, name)
        header = 4 + 4 * ndim
        dims = _read_exact(read, 4 * ndim)
        if len(dims) < 4 * ndim:
            raise ValueError(
                f"{name}: truncated IDX header: expected {header} bytes for {ndim} dimensions, "
                f"got {4 + len(dims)} bytes")
        shape = tuple(int(d) for d in np.frombuffer(dims, ">u4"))
        dtype = IDX_TYPES[code]
        nbytes = dtype.itemsize
        for d in shape:
            nbytes *= d  # Python ints: no overflow
        expected = header + nbytes
        if nbytes > max_bytes:
            raise ValueError(
                f"{name}: the IDX header declares shape {shape} of {dtype.name} = {nbytes} bytes, "
                f"more than max_bytes={max_bytes}; pass a larger max_bytes if the file is genuine")
        if total is not None and total != expected:  # raw file: sizes known without reading
            what = "truncated IDX data" if total < expected else "IDX file longer than its header says"
            raise ValueError(
                f"{name}: {what}: header says shape {shape} of {dtype.name}, expected {expected} "
                f"bytes in total, got {total} bytes")
        out = np.empty(shape, dtype.newbyteorder("="))
        flat = out.reshape(-1).view(np.uint8)
        pos = 0
        while pos < nbytes:
            chunk = read(min(_CHUNK, nbytes - pos))
            if not chunk:
                break
            flat[pos:pos + len(chunk)] = np.frombuffer(chunk, np.uint8)
            pos += len(chunk)
        extra = read(1)
    if pos < nbytes or extra:
        what = "truncated IDX data" if pos < nbytes else "IDX file longer than its header says"
        got = f"got {header + pos} bytes" if pos < nbytes else "got more"
        raise ValueError(
            f"{name}: {what}: header says shape {shape} of {dtype.name}, expected {expected} bytes "
            f"in total, {got}")
    if dtype.byteorder == ">":  # numpy writes '=' when big-endian is native
        out.byteswap(inplace=True)  # the bytes are big-endian; the array is native
    return magic, out


def read_idx(path: str | os.PathLike, max_bytes: int = MAX_IDX_BYTES) -> np.ndarray:
    """Read any IDX file (raw or gzipped) into a native-byte-order numpy array.

    The shape and dtype come from the header (e.g. MNIST images: ``(N, 28, 28)`` uint8).
    The header is checked before the data is read, and no more than it declares is ever
    read or inflated: a file declaring more than ``max_bytes`` (default 1 GiB) of data, or
    gzip data inflating more than 100:1 past its first 64 MiB (a decompression bomb), is
    refused.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: bad magic number, truncated or over-long file, corrupt gzip, too large;
            the message names the file, what was expected and what was found.
    """
    return _read_idx(path, max_bytes)[1]


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
