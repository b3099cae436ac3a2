"""CIFAR-10 from any of three layouts: the official python batches (``cifar-10-batches-py``,
read with a restricted unpickler), the official binary batches (``cifar-10-batches-bin``), or
an image folder / ``.zip`` of JPEG/PNG files (``[cifar10/]{train,test}/{class}/*.jpg``).
The official ``.tar.gz`` archives can be read directly as well.
"""
from __future__ import annotations

import io
import os
import pickle
import re
import tarfile
import zlib
from pathlib import Path

import numpy as np

from ._paths import data_dir
from .folder import load_image_folder, _zip_names
from .safe_pickle import restricted_load

__all__ = [
    "CIFAR10_CLASSES", "load_cifar10", "read_cifar_python_batch", "read_cifar_binary_batch",
    "find_cifar10",
]

#: Class names in the standard CIFAR-10 label order (0..9).
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
_PIXELS = 3 * 32 * 32
_RECORD = 1 + _PIXELS
_PY_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
_BIN_FILES = {s: [f + ".bin" for f in names] for s, names in _PY_FILES.items()}
_PY_DIR, _BIN_DIR = "cifar-10-batches-py", "cifar-10-batches-bin"
_ARCHIVES = ("cifar-10-python.tar.gz", "cifar-10-binary.tar.gz")
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"


def _get(d: dict, key: str):
    for k in (key.encode(), key):
        if k in d:
            return d[k]
    raise KeyError(key)


def _parse_python_batch(obj, name: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(obj, dict):
        raise ValueError(f"{name}: not a CIFAR python batch: expected a dict, got {type(obj).__name__}")
    try:
        data, labels = _get(obj, "data"), _get(obj, "labels")
    except KeyError as e:
        raise ValueError(
            f"{name}: not a CIFAR-10 python batch: expected keys b'data' and b'labels', got "
            f"{sorted(map(repr, obj))} (missing {e})") from None
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != _PIXELS:
        got = (f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray)
               else type(data).__name__)
        raise ValueError(f"{name}: b'data' must be a uint8 array of shape (N, {_PIXELS}), got {got}")
    if isinstance(labels, np.ndarray):
        labels = labels.tolist()
    if not isinstance(labels, (list, tuple)) or not all(type(v) is int for v in labels):
        raise ValueError(f"{name}: b'labels' must be a list of ints, got {type(labels).__name__}")
    y = np.asarray(labels, dtype=np.int64)
    if len(y) != len(data):
        raise ValueError(
            f"{name}: label/image count mismatch: {len(data)} images, expected as many labels, "
            f"got {len(y)}")
    if y.size and (y.min() < 0 or y.max() > 9):
        raise ValueError(f"{name}: labels must be in 0..9, got range {y.min()}..{y.max()}")
    return data.reshape(-1, 3, 32, 32), y


def read_cifar_python_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read one official CIFAR-10 python batch (e.g. ``data_batch_1``) with the restricted
    unpickler (never plain ``pickle.load``). Returns uint8 ``(N, 3, 32, 32)`` and int64 labels.

    Raises ``ValueError`` (naming the file) if the pickle is refused or the content is not a
    valid batch.
    """
    path = Path(path)
    with open(path, "rb") as f:
        return _python_batch_from_file(f, str(path))


def _python_batch_from_file(f, name: str):
    try:
        obj = restricted_load(f)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, UnicodeDecodeError, OverflowError) as e:
        raise ValueError(f"{name}: not a valid CIFAR python batch (refused or corrupt pickle): {e}") from e
    return _parse_python_batch(obj, name)


def _parse_binary(buf: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    if len(buf) == 0 or len(buf) % _RECORD:
        raise ValueError(
            f"{name}: not a CIFAR-10 binary batch: expected a size that is a positive multiple of "
            f"{_RECORD} bytes (1 label byte + {_PIXELS} pixel bytes per record), got {len(buf)} bytes"
            + (f" ({len(buf) // _RECORD} records + {len(buf) % _RECORD} bytes: truncated?)"
               if len(buf) % _RECORD else ""))
    rec = np.frombuffer(buf, np.uint8).reshape(-1, _RECORD)
    y = rec[:, 0].astype(np.int64)
    if y.max() > 9:
        bad = int(np.argmax(y > 9))
        raise ValueError(f"{name}: record {bad}: label byte must be 0..9, got {y[bad]}")
    return rec[:, 1:].reshape(-1, 3, 32, 32).copy(), y


def read_cifar_binary_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read one official CIFAR-10 binary batch (``data_batch_1.bin``...): records of 1 label
    byte + 3072 pixel bytes (R plane, G plane, B plane, row-major). Returns uint8
    ``(N, 3, 32, 32)`` and int64 labels. Bad sizes or labels -> ``ValueError`` naming the file."""
    path = Path(path)
    return _parse_binary(path.read_bytes(), str(path))


def _concat(parts):
    xs, ys = zip(*parts)
    return np.concatenate(xs), np.concatenate(ys)


def _load_batches_dir(d: Path, split: str, binary: bool):
    names = (_BIN_FILES if binary else _PY_FILES)[split]
    missing = [n for n in names if not (d / n).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{d}: incomplete CIFAR-10 {'binary' if binary else 'python'} batches for split "
            f"{split!r}: expected {', '.join(names)}, missing {', '.join(missing)}")
    reader = read_cifar_binary_batch if binary else read_cifar_python_batch
    return _concat([reader(d / n) for n in names])


#: A batch inside a tar archive larger than this is refused before it is read (the official
#: ones are 30 MiB).
MAX_BATCH_BYTES = 256 << 20


def _load_tar(path: Path, split: str):
    try:
        return _load_tar_members(path, split)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise ValueError(f"{path}: corrupt or unreadable tar archive ({type(e).__name__}: "
                         f"{e})") from None


def _load_tar_members(path: Path, split: str):
    with tarfile.open(path, "r:*") as tf:
        members = {m.name.lstrip("./"): m for m in tf.getmembers() if m.isfile()}
        for sub, binary in ((_PY_DIR, False), (_BIN_DIR, True)):
            names = (_BIN_FILES if binary else _PY_FILES)[split]
            if all(f"{sub}/{n}" in members for n in names):
                parts = []
                for n in names:
                    m = members[f"{sub}/{n}"]
                    label = f"{path}:{sub}/{n}"
                    if m.size > MAX_BATCH_BYTES:
                        raise ValueError(f"{label}: declares {m.size:,} bytes, more than a "
                                         f"CIFAR batch can be ({MAX_BATCH_BYTES:,})")
                    f = tf.extractfile(m)
                    if binary:
                        parts.append(_parse_binary(f.read(), label))
                    else:
                        parts.append(_python_batch_from_file(io.BytesIO(f.read()), label))
                return _concat(parts)
    raise ValueError(
        f"{path}: not a CIFAR-10 archive: expected members {_PY_DIR}/{_PY_FILES[split][0]}... or "
        f"{_BIN_DIR}/{_BIN_FILES[split][0]}..., found neither")


_SPLIT_RE = {s: re.compile(rf"^(?:(.*)/)?{s}/([^/]+)/[^/]+$") for s in ("train", "test")}


def _folder_subdir(names, split: str) -> str | None:
    """Find the directory ``<prefix>/<split>`` whose subfolders are the CIFAR-10 classes."""
    seen: dict[str, set] = {}
    for n in names:
        m = _SPLIT_RE[split].match(n)
        if m and m.group(2) in CIFAR10_CLASSES:
            seen.setdefault(m.group(1) or "", set()).add(m.group(2))
    full = sorted(p for p, cls in seen.items() if len(cls) == len(CIFAR10_CLASSES))
    if not full:
        return None
    return (full[0] + "/" if full[0] else "") + split


def _dir_names(root: Path, max_depth: int = 4):
    """Relative paths ('a/b/c') of files up to ``max_depth`` levels below ``root``: one example
    file per directory suffices for detecting the layout."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        if len(rel.parts) >= max_depth:
            dirnames[:] = []
        if filenames:
            out.append((rel / sorted(filenames)[0]).as_posix())
    return out


def find_cifar10(path: str | os.PathLike | None = None, split: str = "train"):
    """Detect which CIFAR-10 layout ``path`` holds. Returns ``(kind, location, subdir)`` with kind
    one of ``'python'``, ``'binary'``, ``'folder'``, ``'zip'``, ``'tar'`` (subdir: the folder of
    the split inside an image folder/zip), or None when nothing is found.

    Looked for, in this order: ``path`` itself as a batches dir, archive or image folder, then
    ``path/cifar-10-batches-py``, ``path/cifar-10-batches-bin``, image folders
    ``path/[cifar10/]{train,test}/{class}``, ``path/**/*.zip`` (one level) and the official tar.gz.
    With ``path=None`` the search runs in ``$CNNLAB_DATA`` (default ``~/.cache/cnnlab/datasets``)
    and then in ``shared/data`` next to a source checkout.
    """
    if path is None:
        roots = [data_dir()]
        repo_shared = Path(__file__).resolve().parents[2].parent / "shared" / "data"
        roots.append(repo_shared)
        for r in roots:
            found = find_cifar10(r, split) if r.is_dir() else None
            if found:
                return found
        return None
    p = Path(path)
    if p.is_file():
        if p.suffix.lower() == ".zip":
            sub = _folder_subdir(_zip_names(p), split)
            return ("zip", p, sub) if sub is not None else None
        if tarfile.is_tarfile(p):
            return ("tar", p, None)
        return None
    if not p.is_dir():
        return None
    for d in (p, p / _PY_DIR):
        if (d / _PY_FILES[split][0]).is_file() or (d / "batches.meta").is_file():
            return ("python", d, None)
    for d in (p, p / _BIN_DIR):
        if (d / _BIN_FILES[split][0]).is_file() or (d / "batches.meta.txt").is_file():
            return ("binary", d, None)
    sub = _folder_subdir(_dir_names(p), split)
    if sub is not None:
        return ("folder", p, sub)
    candidates = sorted(p.glob("*.zip")) + sorted(p.glob("*/*.zip"))
    for z in candidates:
        found = find_cifar10(z, split)
        if found:
            return found
    for a in _ARCHIVES:
        if (p / a).is_file():
            return ("tar", p / a, None)
    return None


def _not_found(path, split) -> FileNotFoundError:
    where = (f"in {str(path)!r}" if path is not None else
             f"in the default locations ({data_dir()} [$CNNLAB_DATA], shared/data next to the source)")
    return FileNotFoundError(
        f"load_cifar10: no CIFAR-10 {split!r} data found {where}: expected a cifar-10-batches-py "
        f"directory (official python batches), a cifar-10-batches-bin directory (binary batches), "
        f"an image folder or .zip laid out as [cifar10/]{{train,test}}/{{class}}/*.jpg, or the "
        f"official cifar-10-python.tar.gz. Get it with cnnlab.data.download_cifar10() (from "
        f"{CIFAR10_URL}, md5 c58f30108f718f92721af3b95e74349a) or download and extract it into "
        f"{data_dir()}")


def load_cifar10(path: str | os.PathLike | None = None, split: str = "train", dtype=np.float32,
                 cache: bool | str | os.PathLike = True,
                 select=None) -> tuple[np.ndarray, np.ndarray]:
    """Load CIFAR-10 from whichever supported layout ``path`` holds (see :func:`find_cifar10`).

    Args:
        path: a ``cifar-10-batches-py`` or ``cifar-10-batches-bin`` directory (or its parent),
            an image folder or ``.zip`` with ``[cifar10/]{train,test}/{class}/`` (e.g.
            ``shared/data/cifar10/cifar10-jpeg.zip``), a directory holding such a zip, or the
            official ``cifar-10-python.tar.gz``. None: search the default locations.
        split: ``'train'`` (50,000 images) or ``'test'`` (10,000).
        dtype: float dtype (default float32, pixels in [0, 1]) or ``np.uint8`` (0..255).
        cache: for image folders/zips only: cache decoded arrays (True: in ``cache_dir()``;
            a path: in that directory; False: no cache). See :func:`load_image_folder`.
        select: None, or ``select(n) -> sorted indices (or None)``: keep only those images.
            Image folders/zips then read only them (decode or cached rows); the batch
            formats are read whole and subset.

    Returns:
        ``(images, labels)``: ``(N, 3, 32, 32)`` and ``(N,)`` int64, labels in the standard order
        :data:`CIFAR10_CLASSES`. Image folders come grouped by class; shuffle when batching.
    """
    if split not in _PY_FILES:
        raise ValueError(f"load_cifar10: split must be 'train' or 'test', got {split!r}")
    dtype = np.dtype(dtype)
    if dtype != np.uint8 and dtype.kind != "f":
        raise ValueError(f"load_cifar10: dtype must be uint8 or a float dtype, got {dtype}")
    found = find_cifar10(path, split)
    if found is None:
        raise _not_found(path, split)
    kind, loc, sub = found
    if kind in ("python", "binary"):
        x, y = _load_batches_dir(loc, split, binary=(kind == "binary"))
    elif kind == "tar":
        x, y = _load_tar(loc, split)
    else:
        x, y, _ = load_image_folder(loc, subdir=sub, mode="RGB", classes=CIFAR10_CLASSES,
                                    dtype=np.uint8, cache=cache, select=select)
        select = None  # done: only the selected images were read
        if x.shape[1:] != (3, 32, 32):
            raise ValueError(f"{loc}/{sub}: expected 32x32 RGB images, got shape {x.shape[1:]}")
    keep = None if select is None else select(len(x))
    if keep is not None:
        x, y = x[keep], y[keep]
    if dtype != np.uint8:
        x = x.astype(dtype)
        x /= dtype.type(255.0)
    return x, y
