"""Reading a ``.npz`` archive entry by entry, with every size checked before data is read.

``np.load`` trusts an entry's ``.npy`` header: a 3 MB file whose header declares a 3 GiB
array (deflated zeros) took 19 s and 3.1 GB before any check could run. :class:`SafeNpz`
instead

- refuses a file that is not a zip archive, duplicate entry names and non-``.npy`` entries;
- reads each entry's header alone, refuses object dtypes (pickles), and checks that the
  declared shape x itemsize is what the zip member really holds;
- lets the caller compare the declared shape and dtype with what it expects *before* any
  data is read (:meth:`SafeNpz.header`, :meth:`SafeNpz.read`);
- refuses deflated entries that would inflate more than :data:`MAX_RATIO` times in all
  (``np.savez`` stores entries uncompressed; real weights deflate about 1.1:1);
- reads the data into one preallocated array, and lets ``zipfile`` check its CRC.

Problems raise :class:`NpzError` (a ValueError) with a message that does not repeat the
path: callers add it.
"""
from __future__ import annotations

import os
import zipfile
import zlib

import numpy as np

#: Deflated entries may inflate to at most this many times their compressed size (plus
#: :data:`SLACK` bytes), in all.
MAX_RATIO = 20
SLACK = 1 << 20
_CHUNK = 1 << 20
_MAX_NDIM = 32
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")


class NpzError(ValueError):
    """The archive is not a readable .npz, or an entry is not what it declares."""


class SafeNpz:
    """``with SafeNpz(path) as z: z.names; z.header(name); z.read(name, shape, dtype)``.

    ``path``: a file that must exist (FileNotFoundError otherwise). Raises
    :class:`NpzError` if it is not a zip archive of ``.npy`` entries."""

    def __init__(self, path):
        path = os.fspath(path)
        self._file = open(path, "rb")
        try:
            self._open()
        except BaseException:
            self._file.close()
            raise

    def _open(self):
        head = self._file.read(8)
        if head.startswith(b"\x93NUMPY"):
            raise NpzError("it holds a single array (.npy), not an .npz archive")
        if head[:4] not in _ZIP_MAGICS:
            raise NpzError(f"not a zip archive (it starts with {head!r})")
        self._file.seek(0)
        try:
            self._zip = zipfile.ZipFile(self._file)
            infos = self._zip.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError) as e:
            raise NpzError(f"corrupt or truncated zip archive ({type(e).__name__}: {e})") from None
        self.entries = {}
        deflated = inflated = 0
        for info in infos:
            name = info.filename
            if not name.endswith(".npy") or info.is_dir():
                raise NpzError(f"unexpected entry {name!r}: an .npz holds only .npy entries")
            key = name[:-4]
            if key in self.entries:
                raise NpzError(f"duplicate entry {key!r}: the archive holds it twice")
            if info.compress_type == zipfile.ZIP_STORED:
                if info.compress_size != info.file_size:
                    raise NpzError(f"entry {key!r}: stored entry declares {info.file_size} "
                                   f"bytes but occupies {info.compress_size}")
            else:
                deflated += info.compress_size
                inflated += info.file_size
            self.entries[key] = info
        if inflated > SLACK + MAX_RATIO * deflated:
            raise NpzError(f"compressed entries would inflate {inflated} bytes from "
                           f"{deflated} ({inflated / max(deflated, 1):.0f}:1, more than "
                           f"{MAX_RATIO}:1): refusing a likely decompression bomb")

    @property
    def names(self):
        return list(self.entries)

    def close(self):
        try:
            self._zip.close()
        except AttributeError:
            pass
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __contains__(self, key):
        return key in self.entries

    # ------------------------------------------------------------------ headers
    def _read_header(self, f, key):
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise NpzError(f"entry {key!r}: unsupported .npy version {version}")
        except NpzError:
            raise
        except (ValueError, EOFError, OSError, zipfile.BadZipFile, zlib.error) as e:
            raise NpzError(f"entry {key!r}: bad .npy header ({e})") from None
        if dtype.hasobject or dtype.kind not in "biuf" or dtype.fields is not None \
                or dtype.subdtype is not None:
            raise NpzError(f"entry {key!r}: dtype {dtype} refused: expected a plain numeric "
                           f"array (object arrays would need a pickle)")
        if len(shape) > _MAX_NDIM:
            raise NpzError(f"entry {key!r}: {len(shape)} dimensions declared, at most "
                           f"{_MAX_NDIM} allowed")
        nbytes = dtype.itemsize
        for d in shape:
            nbytes *= int(d)  # Python ints: a declared 1e12 cannot overflow
        info = self.entries[key]
        if info.file_size != f.tell() + nbytes:
            raise NpzError(f"entry {key!r}: its header declares {dtype} {tuple(shape)} "
                           f"({nbytes} bytes of data) but the entry holds "
                           f"{info.file_size - f.tell()} bytes")
        return tuple(int(d) for d in shape), dtype, bool(fortran), nbytes

    def header(self, key):
        """``(shape, dtype)`` that entry ``key`` declares; reads the header only."""
        with self._member(key) as f:
            shape, dtype, _, _ = self._read_header(f, key)
        return shape, dtype

    def _member(self, key):
        if key not in self.entries:
            raise KeyError(key)
        try:
            return self._zip.open(self.entries[key])
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
            raise NpzError(f"entry {key!r}: unreadable ({type(e).__name__}: {e})") from None

    # ------------------------------------------------------------------ data
    def read(self, key, check=None):
        """Entry ``key`` as an array. ``check(shape, dtype)`` runs on the declared shape
        and dtype before any data is read (raise in it to refuse the entry)."""
        with self._member(key) as f:
            shape, dtype, fortran, nbytes = self._read_header(f, key)
            if check is not None:
                check(shape, dtype)
            out = np.empty(shape, dtype, order="F" if fortran else "C")
            flat = out.reshape(-1, order="A").view(np.uint8) if out.size else None
            pos = 0
            try:
                while pos < nbytes:
                    chunk = f.read(min(_CHUNK, nbytes - pos))
                    if not chunk:
                        break
                    flat[pos:pos + len(chunk)] = np.frombuffer(chunk, np.uint8)
                    pos += len(chunk)
                extra = f.read(1)  # reaching the end makes zipfile check the CRC
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
                raise NpzError(f"entry {key!r}: corrupt data ({type(e).__name__}: {e})") from None
            if pos < nbytes or extra:
                raise NpzError(f"entry {key!r}: truncated or over-long data ({pos} of {nbytes} "
                               f"bytes)")
        return out
