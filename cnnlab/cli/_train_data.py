"""The data of ``cnnlab train``: a named data set (mnist, cifar10) or an image folder.

An image folder is a directory or ``.zip`` laid out as ``DIR/<class>/<image>`` (any image
size: every image is resized to the model's input), or ``DIR/{train,test}/<class>/<image>``
(then test/ is the test set), optionally inside one top-level folder. Private to the
command line (the ``_`` keeps it from being taken for a subcommand).
"""
from __future__ import annotations

import os
import zipfile

from .common import DATASETS, NUM_CLASSES, CLIError, load_dataset, random_subset, to_unit_float


def is_folder(data):
    """True when ``--data`` names an image folder rather than a built-in data set."""
    return data not in DATASETS


def check_data_arg(data, data_dir):
    """CLIError for a ``--data`` that is neither a data set name nor an existing folder/zip."""
    if not is_folder(data):
        return
    if not os.path.exists(data):
        raise CLIError(f"--data {data}: expected {' or '.join(DATASETS)}, or an image folder "
                       f"(a directory or .zip of DIR/<class>/<image> files); no such file or "
                       f"directory")
    if os.path.isfile(data) and not zipfile.is_zipfile(data):
        raise CLIError(f"--data {data}: a file, but not a .zip archive; expected a directory "
                       f"or a .zip of DIR/<class>/<image> files")
    if data_dir is not None:
        raise CLIError(f"--data-dir applies to {' and '.join(DATASETS)}; with --data {data} the "
                       f"folder itself is the data")


def _split_prefix(path):
    """'' or 'top/' when ``path`` holds train/ and test/ folders (at its root or in its single
    top-level folder), else None."""
    if os.path.isdir(path):
        for prefix in ("",) + tuple(sorted(
                e.name + "/" for e in os.scandir(path) if e.is_dir() and not e.name.startswith("."))):
            if all(os.path.isdir(os.path.join(path, prefix, s)) for s in ("train", "test")):
                if prefix == "" or len(os.listdir(path)) == 1:
                    return prefix
        return None
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError) as e:
        raise CLIError(f"--data {path}: cannot read the zip archive: {e}") from None
    tops = {n.split("/", 1)[0] for n in names if "/" in n and not n.startswith(("__MACOSX", "."))}
    candidates = [""] + ([tops.pop() + "/"] if len(tops) == 1 else [])
    for prefix in candidates:
        if all(any(n.startswith(f"{prefix}{s}/") for n in names) for s in ("train", "test")):
            return prefix
    return None


def _load_folder(path, subdir, input_shape, classes=None):
    from .. import data

    c, h, w = input_shape
    if c not in (1, 3):
        raise CLIError(f"--data {path}: the model takes {c}-channel images; image folders "
                       f"load as 1 (grayscale) or 3 (RGB) channels")
    try:
        x, y, names = data.load_image_folder(path, subdir=subdir, size=(h, w),
                                             mode="L" if c == 1 else "RGB", classes=classes,
                                             dtype="uint8")
    except (ValueError, OSError) as e:
        raise CLIError(f"--data {path}: {e}") from None
    return x, y, names


def load_train_test(data, data_dir, input_shape, limit, seed):
    """-> dict with x, y (train), xt, yt (test, or None), where, twhere (descriptions),
    classes (names) and num_classes. Images float32 in [0, 1]; only what ``limit`` keeps
    is converted from bytes."""
    if not is_folder(data):
        x, y, where = load_dataset(data, data_dir, "train", limit, seed)
        xt, yt, twhere = load_dataset(data, data_dir, "test", limit, seed)
        return dict(x=x, y=y, xt=xt, yt=yt, where=where, twhere=twhere, classes=None,
                    num_classes=NUM_CLASSES[data])
    prefix = _split_prefix(data)
    size = f"{input_shape[1]}x{input_shape[2]} {'grayscale' if input_shape[0] == 1 else 'RGB'}"
    subdir = None if prefix is None else prefix + "train"
    x, y, classes = _load_folder(data, subdir, input_shape)
    if len(classes) < 2:
        raise CLIError(f"--data {data}: found {len(classes)} class folder ({', '.join(classes)}); "
                       f"a classifier needs at least 2 (DIR/<class>/<image>)")
    where = f"image folder {data}" + ("" if prefix is None else f" ({prefix}train)")
    keep = random_subset(len(x), limit, seed)
    if keep is not None:
        where += f": a random {limit:,} of its {len(x):,} images"
        x, y = x[keep], y[keep]
    where += f", resized to {size}"
    xt = yt = None
    twhere = f"none ({data} has no train/ and test/ folders)"
    if prefix is not None:
        xt, yt, _ = _load_folder(data, prefix + "test", input_shape, classes)
        twhere = f"{data} ({prefix}test)"
        keep = random_subset(len(xt), limit, seed)
        if keep is not None:
            twhere += f": a random {limit:,} of its {len(xt):,} images"
            xt, yt = xt[keep], yt[keep]
        xt = to_unit_float(xt)
    return dict(x=to_unit_float(x), y=y, xt=xt, yt=yt, where=where, twhere=twhere,
                classes=classes, num_classes=len(classes))
