"""MNIST (and any MNIST-format data set, e.g. Fashion-MNIST) from standard IDX files.

``load_mnist()`` with no path reads the subset bundled in the package (``cnnlab/assets/mnist``:
the first 10,000 training and first 2,000 test images of the official files), so it works
offline on a fresh machine. For the full data set call :func:`cnnlab.data.download_mnist` and
pass the directory it returns.
"""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import numpy as np

from .idx import _read_idx

__all__ = ["load_mnist", "bundled_mnist_dir", "MNIST_FILES"]

#: The standard file names, per split: (images, labels), without the ``.gz``.
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension


def bundled_mnist_dir() -> Path:
    """Directory of the MNIST subset shipped inside the package (see its README.md)."""
    return Path(str(resources.files("cnnlab") / "assets" / "mnist"))


def _candidates(stem: str) -> list[str]:
    # standard names, gz or raw, plus the 'train-images.idx3-ubyte' spelling of some mirrors
    alt = stem.replace("-idx", ".idx")
    return [stem + ".gz", stem, alt + ".gz", alt]


def _find(directory: Path, stem: str) -> Path | None:
    for sub in (directory, directory / "mnist", directory / "MNIST" / "raw"):
        for name in _candidates(stem):
            p = sub / name
            if p.is_file():
                return p
    return None


def load_mnist(path: str | os.PathLike | None = None, split: str = "train",
               dtype=np.float32, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Load MNIST images and labels from the standard IDX files in a directory.

    Args:
        path: directory holding ``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``,
            ``t10k-images-idx3-ubyte[.gz]``, ``t10k-labels-idx1-ubyte[.gz]`` (also looked for in
            ``path/mnist`` and torchvision's ``path/MNIST/raw``). None: the subset bundled in
            the package (10,000 train / 2,000 test images).
        split: ``'train'`` or ``'test'``.
        dtype: ``np.float32`` (default; any float dtype) scales pixels to [0, 1];
            ``np.uint8`` returns the raw bytes 0..255.
        limit: keep only the first ``limit`` samples.

    Returns:
        ``(images, labels)``: images ``(N, 1, H, W)`` (28x28 for MNIST), labels ``(N,)`` int64.
        ``N`` comes from the file headers, so shortened files work.

    Raises:
        FileNotFoundError: the files are not there (the message says how to get them).
        ValueError: bad split, bad magic numbers, truncated files, image/label count mismatch.
    """
    if split not in MNIST_FILES:
        raise ValueError(f"load_mnist: split must be 'train' or 'test', got {split!r}")
    dtype = np.dtype(dtype)
    if dtype != np.uint8 and dtype.kind != "f":
        raise ValueError(f"load_mnist: dtype must be uint8 or a float dtype, got {dtype}")
    if limit is not None and (int(limit) != limit or limit < 0):
        raise ValueError(f"load_mnist: limit must be a non-negative integer or None, got {limit!r}")
    directory = bundled_mnist_dir() if path is None else Path(path)
    if not directory.is_dir():
        raise FileNotFoundError(
            f"load_mnist: expected a directory with the MNIST IDX files, got {str(directory)!r} "
            f"({'a file' if directory.exists() else 'does not exist'}); "
            f"cnnlab.data.download_mnist() fetches them")
    stems = MNIST_FILES[split]
    files = [_find(directory, s) for s in stems]
    missing = [s for s, f in zip(stems, files) if f is None]
    if missing:
        raise FileNotFoundError(
            f"load_mnist: MNIST {split} files not found in {str(directory)!r}: expected "
            + ", ".join(f"{s}[.gz]" for s in missing)
            + ". Get them with cnnlab.data.download_mnist(dest) (e.g. from "
              "https://ossci-datasets.s3.amazonaws.com/mnist/) and pass path=dest")
    img_path, lab_path = files
    img_magic, images = _read_idx(img_path)
    if img_magic != _IMAGES_MAGIC:
        raise ValueError(
            f"{img_path}: not an MNIST image file: expected magic number 0x{_IMAGES_MAGIC:08X} "
            f"(2051: unsigned bytes, 3 dimensions), got 0x{img_magic:08X} ({img_magic})")
    lab_magic, labels = _read_idx(lab_path)
    if lab_magic != _LABELS_MAGIC:
        raise ValueError(
            f"{lab_path}: not an MNIST label file: expected magic number 0x{_LABELS_MAGIC:08X} "
            f"(2049: unsigned bytes, 1 dimension), got 0x{lab_magic:08X} ({lab_magic})")
    if len(images) != len(labels):
        raise ValueError(
            f"load_mnist: image/label count mismatch: {img_path} has {len(images)} images, "
            f"expected the same number of labels, got {len(labels)} in {lab_path}")
    if limit is not None:
        images, labels = images[: int(limit)], labels[: int(limit)]
    x = images[:, None, :, :]
    if dtype == np.uint8:
        x = np.ascontiguousarray(x)
    else:
        x = x.astype(dtype)
        x /= dtype.type(255.0)  # division keeps 255 -> exactly 1.0
    return x, labels.astype(np.int64)
