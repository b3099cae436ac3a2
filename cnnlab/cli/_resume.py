"""What ``cnnlab train --resume`` needs beyond the checkpoint: the run's settings.

The checkpoint (``model.npz``) holds the model, the optimizer state, the epochs completed
and the training seed. The data, the limit, the validation split, the schedule and the
augmentation are settings of the command line, so ``train`` records them next to the
checkpoint, in ``model.npz.args.json`` (written atomically once, before the first epoch):

    {"format": "cnnlab-train-args", "version": 1, "settings": {"data": ..., "epochs": ...}}

``--resume model.npz`` reads them back, so the resumed epochs see exactly the data, batches,
learning rates and augmentation of an uninterrupted run, bit for bit. Private to the
command line (the ``_`` keeps it from being taken for a subcommand).
"""
from __future__ import annotations

import json
import os
import shlex

from ..data import atomic_open
from .common import CLIError

FORMAT = "cnnlab-train-args"
VERSION = 1

#: The settings a resumed run must share with the original one, in help order.
SETTINGS = ("data", "data_dir", "model", "epochs", "batch_size", "optimizer", "lr", "schedule",
            "val_split", "limit", "no_augment", "seed")
#: Settings that may change on resume: more epochs continue a finished run.
MAY_CHANGE = ("epochs",)
_MAX_BYTES = 1 << 16  # a settings file is a few hundred bytes; refuse anything big


def settings_path(checkpoint):
    """The settings file that belongs to ``checkpoint``."""
    return os.fspath(checkpoint) + ".args.json"


def option(name):
    """'batch_size' -> '--batch-size'."""
    return "--" + name.replace("_", "-")


def write_settings(checkpoint, settings):
    """Write the settings next to ``checkpoint``, atomically (temp file + os.replace)."""
    path = settings_path(checkpoint)
    text = json.dumps({"format": FORMAT, "version": VERSION,
                       "settings": {k: settings[k] for k in SETTINGS}}, indent=1)
    with atomic_open(path, "w") as f:
        f.write(text + "\n")


def read_settings(checkpoint):
    """The recorded settings of ``checkpoint``'s run, or None when it has no settings file
    (a checkpoint saved from Python). A damaged file is a CLIError naming it."""
    path = settings_path(checkpoint)
    if not os.path.exists(path):
        return None
    try:
        if os.path.getsize(path) > _MAX_BYTES:
            raise ValueError(f"larger than {_MAX_BYTES} bytes")
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError(f"'format' is not {FORMAT!r}")
        if doc.get("version") != VERSION:
            raise ValueError(f"version {doc.get('version')!r} is not {VERSION}")
        settings = doc.get("settings")
        if not isinstance(settings, dict) or set(settings) != set(SETTINGS):
            raise ValueError(f"expected the settings {', '.join(SETTINGS)}")
    except (OSError, ValueError, RecursionError) as e:
        raise CLIError(f"cannot resume from {checkpoint}: its settings file {path} is "
                       f"unreadable ({e}); delete it and give the original run's options "
                       f"together with --resume") from None
    return settings


def merge(recorded, given, checkpoint):
    """The settings of the resumed run: the recorded ones, where the command line repeats
    them or leaves them out. A conflicting option is a CLIError (it would not continue the
    same run); ``--epochs`` may grow."""
    merged = dict(recorded)
    for key in SETTINGS:
        value = given.get(key)
        if value is None or value == recorded[key]:
            continue
        if key in MAY_CHANGE:
            merged[key] = value
            continue
        raise CLIError(f"--resume {checkpoint} continues a run recorded with "
                       f"{option(key)} {_show(recorded[key])}, but {option(key)} "
                       f"{_show(value)} was given; leave {option(key)} out to resume, or "
                       f"start a new run with another --out")
    return merged


def _show(value):
    return "(not set)" if value is None else "(on)" if value is True else str(value)


def resume_command(checkpoint):
    """The shell command that resumes from ``checkpoint``."""
    return f"cnnlab train --resume {shlex.quote(os.fspath(checkpoint))}"
