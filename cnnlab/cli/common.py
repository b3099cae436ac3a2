"""Shared pieces of the subcommands: the user-error type, argument parsers for numbers
and shapes, data loading by name, and class names."""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import textwrap
import time

import numpy as np

from .. import checks

DATASETS = ("mnist", "cifar10")
NUM_CLASSES = {"mnist": 10, "cifar10": 10}


class CLIError(Exception):
    """A user mistake: main prints ``cnnlab: error: <message>`` (wrapped) and exits 2."""


def wrap(text, prefix):
    """``prefix + text`` wrapped to the terminal (at most 100 columns), continuation lines
    indented by two spaces; words (paths, option names) are never split."""
    width = max(40, min(shutil.get_terminal_size((100, 24)).columns, 100))
    return textwrap.fill(" ".join(str(text).split()), width=width, initial_indent=prefix,
                         subsequent_indent="  ", break_long_words=False,
                         break_on_hyphens=False)


def message(text, kind="error", file=None):
    """Print ``cnnlab: <kind>: <text>`` (``cnnlab: <text>`` for kind None) wrapped on
    stderr: the one format of every error, warning and notice of the command line."""
    prefix = "cnnlab: " + (f"{kind}: " if kind else "")
    print(wrap(text, prefix), file=file or sys.stderr, flush=True)


# ----------------------------------------------------------------------------- argument types
# argparse types: parse the text, then the value check of cnnlab.checks; the message speaks
# of the text the user typed

def _parsed(text, parse, check, expected):
    try:
        return check(parse(text))
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None


def _int_at_least(text, low, what):
    return _parsed(text, int, lambda v: checks.int_at_least(v, "value", low),
                   f"a {what} integer")


def positive_int(text):
    """argparse type: an int >= 1."""
    return _int_at_least(text, 1, "positive")


def nonneg_int(text):
    """argparse type: an int >= 0."""
    return _int_at_least(text, 0, "non-negative")


def positive_float(text):
    """argparse type: a finite float > 0."""
    return _parsed(text, float, lambda v: checks.real_in(v, "value", 0.0, low_open=True),
                   "a positive number")


def fraction(text):
    """argparse type: a float in [0, 1)."""
    return _parsed(text, float, lambda v: checks.real_in(v, "value", 0.0, 1.0, high_open=True),
                   "a number in [0, 1)")


def _three_ints(text):
    return tuple(int(p) for p in text.replace("x", ",").replace("X", ",").split(","))


def shape3(text):
    """argparse type: 'C,H,W' (or 'CxHxW') -> a tuple of three positive ints."""
    shape = _parsed(text, _three_ints, checks.sample_shape,
                    "C,H,W (three positive integers, e.g. 3,32,32)")
    if len(shape) != 3:
        raise argparse.ArgumentTypeError(f"expected C,H,W (three positive integers, e.g. "
                                         f"3,32,32), got {text!r}")
    return shape


# ----------------------------------------------------------------------------- files and data

def existing_file(path, what="file"):
    """Raise CLIError unless ``path`` is an existing file."""
    if not os.path.exists(path):
        raise CLIError(f"{what} not found: {path}")
    if not os.path.isfile(path):
        raise CLIError(f"{what} is not a file: {path}")
    return path


def load_model_file(path):
    """``cnnlab.load_model`` (``cnnlab.interop.from_onnx`` for a .onnx file) with the
    failures turned into one-line CLIErrors."""
    from ..training import CheckpointError, load_model

    existing_file(path, "model file")
    if str(path).lower().endswith(".onnx"):
        from ..interop import from_onnx
        try:
            return from_onnx(path)
        except (ValueError, ImportError) as e:
            raise CLIError(f"cannot load model file {path}: {e}") from None
    try:
        return load_model(path)
    except CheckpointError as e:
        raise CLIError(f"cannot load model file {path}: {e}") from None


def to_unit_float(x):
    """uint8 images -> float32 in [0, 1] (the same arithmetic as the loaders' own)."""
    x = x.astype(np.float32)
    x /= np.float32(255.0)
    return x


def random_subset(n, limit, seed):
    """Sorted indices of a random ``limit`` of ``n`` items (drawn with ``seed``), or None
    when ``limit`` keeps everything."""
    if limit is None or limit >= n:
        return None
    return np.sort(np.random.default_rng([seed, 7]).permutation(n)[:limit])


def load_dataset(name, data_dir, split, limit=None, seed=0):
    """(x float32 (N, C, H, W) in [0, 1], y int64, description) for 'mnist' / 'cifar10'.

    mnist without ``data_dir`` is the subset bundled in the package (10,000 train / 2,000
    test images); cifar10 without it searches the default locations. ``limit``: keep a
    random subset of that many images (drawn with ``seed``, kept in file order), so that
    every class is represented even in class-sorted image folders. Only the kept images
    are read (CIFAR-10 from an image zip: decoded, or read row by row from the decode
    cache) and become float32; MNIST is small and read whole as bytes first.
    """
    from .. import data

    if data_dir is not None and not os.path.exists(data_dir):
        raise CLIError(f"data directory not found: {data_dir}")
    if name == "mnist":
        x, y = data.load_mnist(data_dir, split=split, dtype=np.uint8)
        where = "bundled MNIST subset" if data_dir is None else f"MNIST from {data_dir}"
    elif name == "cifar10":
        seen = {}

        def select(n):  # the loader reads only these images (decodes or cached rows)
            seen["n"] = n
            return random_subset(n, limit, seed)

        x, y = data.load_cifar10(data_dir, split=split, dtype=np.uint8, select=select)
        where = "CIFAR-10" + ("" if data_dir is None else f" from {data_dir}")
        where = f"{where}, {split} split"
        if len(x) < seen.get("n", len(x)):
            where += f": a random {limit:,} of its {seen['n']:,} images"
        return to_unit_float(x), y, where
    else:
        raise CLIError(f"unknown data set {name!r}; expected one of {', '.join(DATASETS)}")
    where = f"{where}, {split} split"
    keep = random_subset(len(x), limit, seed)
    if keep is not None:
        where += f": a random {limit:,} of its {len(x):,} images"
        x, y = x[keep], y[keep]
    return to_unit_float(x), y, where


def guess_dataset(input_shape):
    """'mnist' for 1-channel models, 'cifar10' for 3-channel ones."""
    return "mnist" if input_shape[0] == 1 else "cifar10"


def class_names(num_classes, channels):
    """Digits for 1-channel 10-class models, CIFAR-10 names for 3-channel ones, else
    indices as strings."""
    if num_classes == 10 and channels == 3:
        from ..data import CIFAR10_CLASSES
        return list(CIFAR10_CLASSES)
    return [str(i) for i in range(num_classes)]


def check_input_fits(model, x, what):
    """CLIError when the data's per-sample shape does not fit the model."""
    shape = tuple(x.shape[1:])
    if model.built and tuple(model.input_shape) != shape:
        try:
            out = model.check_input_shape(shape)
        except ValueError:
            out = None
        if out is None or tuple(out) != tuple(model.output_shape):
            raise CLIError(f"{what} has samples of shape {shape} but the model takes "
                           f"{tuple(model.input_shape)}; choose the matching --data")


def machine():
    """One line: date, host, CPU count, Python and NumPy versions."""
    return (f"{time.strftime('%Y-%m-%d %H:%M')} on {platform.node() or 'unknown host'} "
            f"({os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}, "
            f"NumPy {np.__version__})")
