"""CIFAR-10 the way cs231n's assignment 2 feeds it to its nets: a seeded random subset of
the training split for training and another, disjoint one for validation, pixels as
floats in 0..255 minus the mean image of the training subset.

From the JPEG zip (``shared/data/cifar10/cifar10-jpeg.zip``) only the chosen images are
decoded, so 50 or 500 images load in milliseconds; other layouts go through
:func:`cnnlab.data.load_cifar10` (whole split, cached) and are subsampled. Both routes
index the split in the same order (classes in label order, files sorted by name within
a class), so a seed picks the same images either way.
"""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from ..checks import nonneg_int
from ..data import CIFAR10_CLASSES, find_cifar10, load_cifar10

__all__ = ["cifar10_for_course", "load_cifar10_subset"]


_LISTING = {}


def _zip_members(zf, subdir):
    """Member names of the split folder ``subdir``, ordered as load_image_folder orders
    them: by class (label order), then by relative name. The latest listing is kept
    (listing 60,000 members costs ~1 s)."""
    st = Path(zf.filename).stat()
    key = (str(Path(zf.filename).resolve()), st.st_size, st.st_mtime_ns, subdir)
    if key not in _LISTING:
        _LISTING.clear()
        _LISTING[key] = _list_members(zf, subdir)
    return _LISTING[key]


def _list_members(zf, subdir):
    prefix = subdir.rstrip("/") + "/"
    by_class = {c: [] for c in CIFAR10_CLASSES}
    for name in zf.namelist():
        if not name.startswith(prefix) or name.endswith("/"):
            continue
        rel = name[len(prefix):]
        cls = rel.split("/", 1)[0]
        if cls in by_class and "/" in rel and not any(p.startswith(".") for p in rel.split("/")):
            by_class[cls].append(name)
    names, labels = [], []
    for label, cls in enumerate(CIFAR10_CLASSES):
        members = sorted(by_class[cls], key=lambda n: n[len(prefix):])
        names += members
        labels += [label] * len(members)
    return names, np.asarray(labels, dtype=np.int64)


def _decode(zf, name):
    from PIL import Image

    with Image.open(io.BytesIO(zf.read(name))) as im:
        a = np.asarray(im.convert("RGB"), dtype=np.uint8)
    if a.shape != (32, 32, 3):
        raise ValueError(f"{name}: expected a 32x32 RGB image, got shape {a.shape}")
    return a.transpose(2, 0, 1)


def load_cifar10_subset(counts, seed=0, path=None, split="train"):
    """Disjoint seeded random subsets of one CIFAR-10 split, as uint8 arrays.

    Args:
        counts: sizes of the subsets, e.g. (4000, 1000) for train and validation.
        seed: the random permutation of the split is ``default_rng([seed, 19])``; the
            subsets are its consecutive slices.
        path: anything :func:`cnnlab.data.find_cifar10` accepts (None: default places).

    Returns a list of ``(x, y)``: x (n, 3, 32, 32) uint8, y (n,) int64, one per count.
    """
    counts = [nonneg_int(c, "counts") for c in counts]
    found = find_cifar10(path, split)
    if found is None:  # load_cifar10 raises the library's full "not found" message
        load_cifar10(path, split)
    kind, loc, sub = found
    if kind == "zip":
        with zipfile.ZipFile(loc) as zf:
            names, y_all = _zip_members(zf, sub)
            order = _permutation(len(names), sum(counts), seed, loc)
            out, start = [], 0
            for c in counts:
                idx = np.sort(order[start:start + c])
                start += c
                x = np.stack([_decode(zf, names[i]) for i in idx]) if c else \
                    np.zeros((0, 3, 32, 32), np.uint8)
                out.append((x, y_all[idx]))
            return out
    x_all, y_all = load_cifar10(loc, split, dtype=np.uint8)
    order = _permutation(len(x_all), sum(counts), seed, loc)
    out, start = [], 0
    for c in counts:
        idx = np.sort(order[start:start + c])
        start += c
        out.append((x_all[idx], y_all[idx]))
    return out


def _permutation(n, needed, seed, where):
    if needed > n:
        raise ValueError(f"asked for {needed:,} CIFAR-10 images in all but {where} holds "
                         f"{n:,} in this split")
    return np.random.default_rng([int(seed), 19]).permutation(n)


def cifar10_for_course(num_train, num_val=1000, seed=0, path=None, dtype=np.float32):
    """The course's preprocessing: pixels 0..255 as floats minus the training subset's
    mean image. -> dict with X_train, y_train, X_val, y_val (images (N, 3, 32, 32)) and
    'mean' (3, 32, 32)."""
    (xt, yt), (xv, yv) = load_cifar10_subset((num_train, num_val), seed=seed, path=path)
    xt = xt.astype(dtype)
    xv = xv.astype(dtype)
    mean = xt.mean(axis=0) if len(xt) else np.zeros((3, 32, 32), dtype)
    return {"X_train": xt - mean, "y_train": yt, "X_val": xv - mean, "y_val": yv,
            "mean": mean}
