"""Image-folder data sets (``root/<class_name>/<image files>``), from a directory or a ``.zip``,
with a cache of the decoded arrays.

Cache: ``<cache_dir()>/decoded/<name>-<hash>.npz`` where the hash covers the resolved source
path, its size and mtime (for a directory: every image's relative path, size and mtime) and the
decoding options. Written atomically (temp file + ``os.replace``), read with
``allow_pickle=False``, and its stored key is compared before use; a stale or corrupt cache
is rebuilt.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from ._paths import atomic_open, cache_dir
from .image import _WIDE_MODES, DECODE_ERRORS, _normalize_size, _wide_to_unit, check_pixels

__all__ = ["load_image_folder", "IMAGE_EXTENSIONS"]

#: File extensions treated as images (case-insensitive).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp")
_CACHE_VERSION = 1
#: An image file (or zip member) larger than this is refused before it is read.
MAX_IMAGE_FILE_BYTES = 128 << 20
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError,
               ValueError, NotImplementedError)


_ZIP_NAMES: dict = {}


def _zip_names(path: Path) -> list[str]:
    """Member file names of a zip; memoized per (path, size, mtime) since listing a 60k-member
    archive costs ~0.3 s."""
    st = Path(path).stat()
    memo_key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    names = _ZIP_NAMES.get(memo_key)
    if names is None:
        try:
            with zipfile.ZipFile(path) as zf:
                names = [i.filename for i in zf.infolist() if not i.is_dir()]
        except _ZIP_ERRORS as e:
            raise ValueError(f"{path}: corrupt or unreadable zip archive ({type(e).__name__}: "
                             f"{e})") from None
        _ZIP_NAMES.clear()  # keep only the latest archive's listing
        _ZIP_NAMES[memo_key] = names
    return names


def _skip(rel: str) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in rel.split("/"))


def _list_source(path: Path):
    """Return (is_zip, [relative posix names] or None, fingerprint) for a directory or zip. For a
    zip the names are listed lazily (None here): its size and mtime fingerprint it."""
    if path.is_file():
        if not zipfile.is_zipfile(path):
            raise ValueError(f"load_image_folder: {path} is a file but not a zip archive: expected "
                             f"a directory or a .zip")
        st = path.stat()
        return True, None, {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if not path.is_dir():
        raise FileNotFoundError(f"load_image_folder: {str(path)!r} does not exist: expected a "
                                f"directory or a .zip of root/<class>/<image> files")
    names, h = [], hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for fn in sorted(filenames):
            full = os.path.join(dirpath, fn)
            rel = Path(full).relative_to(path).as_posix()
            names.append(rel)
            st = os.stat(full)
            h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return False, names, {"listing_sha256": h.hexdigest()}


def _auto_root(names: list[str]) -> str:
    """Descend while the tree has a single top-level folder and no files at its top."""
    prefix = ""
    while True:
        rest = [n[len(prefix):] for n in names if n.startswith(prefix)]
        tops = {r.split("/", 1)[0] for r in rest}
        if len(tops) == 1 and all("/" in r for r in rest):
            candidate = prefix + tops.pop() + "/"
            # stop when the children of the single folder are class folders holding images
            if all(r.count("/") >= 2 for r in rest):
                prefix = candidate
                continue
        return prefix


def _select(names, subdir, classes, extensions):
    """Group the image names below ``subdir`` by class folder. Returns (prefix, classes, items)
    with items a list of (relative name, label)."""
    if subdir is None:
        prefix = _auto_root([n for n in names if not _skip(n)])
    else:
        prefix = subdir.strip("/").replace("\\", "/")
        prefix = prefix + "/" if prefix else ""
    by_class: dict[str, list[str]] = {}
    exts = tuple(e.lower() for e in extensions)
    for n in names:
        if not n.startswith(prefix):
            continue
        rel = n[len(prefix):]
        if "/" not in rel or _skip(rel) or not rel.lower().endswith(exts):
            continue
        by_class.setdefault(rel.split("/", 1)[0], []).append(n)
    if classes is None:
        classes = sorted(by_class)
    else:
        classes = [str(c) for c in classes]
        missing = [c for c in classes if c not in by_class]
        if missing:
            raise ValueError(
                f"load_image_folder: class folders not found under {prefix or '<root>'!r}: expected "
                f"{missing}, got {sorted(by_class)}")
    if not classes:
        raise ValueError(
            f"load_image_folder: no images found under {prefix or '<root>'!r}: expected "
            f"<class>/<file> with an extension in {list(exts)}")
    items = [(n, label) for label, c in enumerate(classes) for n in sorted(by_class[c])]
    return prefix, list(classes), items


def _decode(data: bytes, name: str, mode: str, size):
    im = Image.open(io.BytesIO(data))
    check_pixels(im)
    if im.format == "JPEG":  # let libjpeg convert colour / downscale by DCT
        im.draft(mode, (size[1], size[0]) if size else im.size)
    if im.mode in _WIDE_MODES:
        im = Image.fromarray((_wide_to_unit(im) * 255.0).round().astype(np.uint8))
    if im.mode != mode:
        im = im.convert(mode)
    if size and im.size != (size[1], size[0]):
        im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    a = np.asarray(im)
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def _too_big(where, declared):
    return ValueError(f"load_image_folder: {where} is {declared:,} bytes, more than "
                      f"MAX_IMAGE_FILE_BYTES ({MAX_IMAGE_FILE_BYTES:,}) for one image: refusing "
                      f"it (a zip bomb?); raise cnnlab.data.folder.MAX_IMAGE_FILE_BYTES if it "
                      f"is genuine")


def _reader(path: Path, zf):
    """name -> the file's bytes, its declared size checked before anything is read."""
    def read(name):
        where = f"{path}/{name}" if zf is None else f"{path}:{name}"
        try:
            if zf is None:
                size = os.path.getsize(path / name)
                if size > MAX_IMAGE_FILE_BYTES:
                    raise _too_big(where, size)
                return (path / name).read_bytes()
            info = zf.getinfo(name)
            if info.file_size > MAX_IMAGE_FILE_BYTES:
                raise _too_big(where, info.file_size)
            with zf.open(info) as f:  # zipfile stops at the declared size
                return f.read()
        except _ZIP_ERRORS as e:
            if isinstance(e, ValueError) and str(e).startswith("load_image_folder:"):
                raise
            raise ValueError(f"load_image_folder: cannot read {where} ({type(e).__name__}: "
                             f"{e})") from e
    return read


def _decode_all(path: Path, is_zip: bool, items, mode: str, size):
    n = len(items)
    try:
        zf = zipfile.ZipFile(path) if is_zip else None
    except _ZIP_ERRORS as e:
        raise ValueError(f"load_image_folder: {path}: corrupt or unreadable zip archive "
                         f"({type(e).__name__}: {e})") from None
    try:
        read = _reader(path, zf)
        out = None
        for k, (name, _) in enumerate(items):
            data = read(name)
            try:
                a = _decode(data, name, mode, size)
            except DECODE_ERRORS as e:  # what Pillow raises on bad files, bombs included
                raise ValueError(f"load_image_folder: cannot decode {path}/{name}: {e}") from e
            if out is None:
                out = np.empty((n,) + a.shape, np.uint8)
                first = name
            elif a.shape != out.shape[1:]:
                raise ValueError(
                    f"load_image_folder: {path}/{name}: expected (C, H, W) = {out.shape[1:]} like "
                    f"the first image {first}, got {a.shape}; pass size=(H, W) to resize")
            out[k] = a
        return out
    finally:
        if zf:
            zf.close()


def _cache_file(directory: Path, path: Path, key: str) -> Path:
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in path.stem)[:40]
    return directory / f"{stem}-{digest}.npz"


def _stored_rows(file: Path, member: str, keep):
    """Rows ``keep`` of the stored (uncompressed) ``.npy`` member of an ``.npz`` file, read
    one by one at their offsets (a memory map would let the kernel's read-ahead pull in
    most of the file); None when the member is compressed or not a plain C-ordered array."""
    with zipfile.ZipFile(file) as zf:
        info = zf.getinfo(member + ".npy")
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    with open(file, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)
        if len(local) != 30 or local[:4] != b"PK\x03\x04":
            raise ValueError("bad local file header")
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        f.seek(info.header_offset + 30 + name_len + extra_len)
        start = f.tell()
        major, _ = np.lib.format.read_magic(f)
        read_header = (np.lib.format.read_array_header_1_0 if major == 1
                       else np.lib.format.read_array_header_2_0)
        shape, fortran, dtype = read_header(f)
        offset = f.tell()
        row = int(np.prod(shape[1:])) * dtype.itemsize
        if fortran or dtype.hasobject or not shape or \
                offset - start + shape[0] * row != info.file_size:
            return None
        out = np.empty((len(keep),) + tuple(shape[1:]), dtype)
        flat = out.reshape(len(keep), -1).view(np.uint8)
        for j, i in enumerate(keep):
            if not 0 <= i < shape[0]:
                raise IndexError(f"row {i} of {shape[0]}")
            f.seek(offset + int(i) * row)
            if f.readinto(flat[j]) != row:
                raise ValueError("truncated cache file")
    return out


def _load_cache(file: Path, key: str, select=None):
    try:
        with np.load(file, allow_pickle=False) as z:
            if str(z["key"]) != key:
                return None
            y, classes = z["y"].astype(np.int64), [str(c) for c in z["classes"]]
            keep = None if select is None else select(len(y))
            if keep is None:
                return z["x"], y, classes
        x = _stored_rows(file, "x", keep)
        if x is None:
            with np.load(file, allow_pickle=False) as z:
                x = z["x"][keep]
        return x, y[keep], classes
    except FileNotFoundError:
        return None
    except Exception as e:  # corrupt/foreign file: rebuild it
        warnings.warn(f"cnnlab: ignoring unreadable cache file {file} ({e}); rebuilding it")
        return None


def _save_cache(file: Path, key: str, x, y, classes) -> None:
    try:
        with atomic_open(file) as f:
            np.savez(f, x=x, y=y, classes=np.asarray(classes, dtype=str), key=np.asarray(key))
    except OSError as e:
        warnings.warn(f"cnnlab: could not write cache file {file} ({e}); continuing without it")


def load_image_folder(path: str | os.PathLike, subdir: str | None = None,
                      size: int | tuple[int, int] | None = None, mode: str = "RGB",
                      classes=None, extensions=IMAGE_EXTENSIONS, dtype=np.float32,
                      cache: bool | str | os.PathLike = True, select=None):
    """Load an image-folder data set: ``<root>/<class_name>/<image>`` (any depth below the class
    folder), from a directory or a ``.zip`` archive.

    Args:
        path: directory or ``.zip`` file.
        subdir: the root inside ``path`` (e.g. ``'cifar10/train'``); None: ``path`` itself, or
            descend through single top-level folders (a zip holding ``photos/<class>/...``).
        size: ``(H, W)`` or an int (square) to resize every image to; None: all images must
            already have the same size.
        mode: ``'RGB'`` (3 channels) or ``'L'`` (1 channel, grayscale).
        classes: class folder names in label order; None: all folders, sorted by name.
            Given: only those folders are loaded, and each must exist.
        extensions: file endings counted as images (case-insensitive); hidden files and
            ``__MACOSX`` are skipped.
        dtype: float dtype (default float32, [0, 1]) or ``np.uint8``.
        cache: True: cache decoded uint8 arrays under ``cache_dir()/decoded`` (``$CNNLAB_CACHE``);
            a path: cache in that directory; False: decode every time.
        select: None (all images), or a callable ``select(n) -> indices`` (sorted ints, or
            None for all) called once the number of images n is known: only those images
            are read (decoded, or read from the cache's rows); a partial decode writes no
            cache.

    Returns:
        ``(images, labels, class_names)``: ``(N, C, H, W)``, ``(N,)`` int64, list of str. Images are
        grouped by class, files sorted by name within a class.
    """
    if mode not in ("RGB", "L"):
        raise ValueError(f"load_image_folder: mode must be 'RGB' or 'L', got {mode!r}")
    dtype = np.dtype(dtype)
    if dtype != np.uint8 and dtype.kind != "f":
        raise ValueError(f"load_image_folder: dtype must be uint8 or a float dtype, got {dtype}")
    size = _normalize_size(size, "load_image_folder")
    path = Path(path).expanduser().resolve()
    is_zip, names, fingerprint = _list_source(path)
    classes = None if classes is None else [str(c) for c in classes]

    result = None
    cache_file = key = None
    if cache:
        # keyed on the source's identity and the arguments as given, so that a hit needs no
        # listing of the archive
        cdir = cache_dir() / "decoded" if cache is True else Path(cache)
        key = json.dumps({"version": _CACHE_VERSION, "path": str(path), **fingerprint,
                          "subdir": subdir, "size": size, "mode": mode, "classes": classes,
                          "extensions": sorted(e.lower() for e in extensions)}, sort_keys=True)
        cache_file = _cache_file(cdir, path, key)
        result = _load_cache(cache_file, key, select)
    if result is None:
        if names is None:
            names = _zip_names(path)
        prefix, class_names, items = _select(names, subdir, classes, extensions)
        keep = None if select is None else select(len(items))
        if keep is not None:
            items = [items[int(i)] for i in keep]
        x = _decode_all(path, is_zip, items, mode, size)
        y = np.fromiter((label for _, label in items), np.int64, len(items))
        if cache_file is not None and keep is None:
            _save_cache(cache_file, key, x, y, class_names)
    else:
        x, y, class_names = result
    if dtype != np.uint8:
        x = x.astype(dtype)
        x /= dtype.type(255.0)
    return x, y, class_names
