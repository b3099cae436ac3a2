"""Pretrained weights shipped in the package (``cnnlab/assets/pretrained``).

Each net is three files: ``<name>.npz`` (a cnnlab checkpoint: plain arrays and JSON, no
pickle), ``<name>.json`` (the machine-readable model card: its ``sha256`` is checked on
every load) and ``<name>.md`` (the model card for people: data, recipe, the command that
reproduces it, accuracy, date).
"""
from __future__ import annotations

import hashlib
import json
import os

ASSETS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "assets", "pretrained")


class PretrainedWeightsError(ValueError):
    """Shipped weights are missing, altered or unreadable (a broken install)."""


def card(name):
    """The machine-readable model card of the shipped net ``name`` -> dict."""
    path = os.path.join(ASSETS, name + ".json")
    try:
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
    except FileNotFoundError:
        raise PretrainedWeightsError(f"no pretrained weights named {name!r}: {path} is "
                                     f"missing (a broken install?)") from None
    except (OSError, json.JSONDecodeError) as e:
        raise PretrainedWeightsError(f"unreadable model card {path}: {e}") from None
    if not isinstance(info, dict) or not isinstance(info.get("sha256"), str):
        raise PretrainedWeightsError(f"model card {path} has no 'sha256' string")
    return info


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def weights_path(name):
    """Path of the shipped ``<name>.npz`` after checking its SHA-256 against the card."""
    info = card(name)
    path = os.path.join(ASSETS, info.get("file", name + ".npz"))
    if not os.path.isfile(path):
        raise PretrainedWeightsError(f"pretrained weights file {path} is missing")
    digest = sha256_file(path)
    if digest != info["sha256"]:
        raise PretrainedWeightsError(f"pretrained weights {path} are altered or corrupt: "
                                     f"SHA-256 {digest}, the model card says {info['sha256']}")
    return path


def load_pretrained(name):
    """The shipped net ``name`` as a ``cnnlab.Sequential`` (hash checked, then loaded)."""
    from ..training import load_model  # models -> training, as in _build.finish

    return load_model(weights_path(name))
