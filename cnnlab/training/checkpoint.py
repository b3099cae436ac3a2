"""Checkpoint files: one ``.npz`` holding a whole model, optionally with its optimizer.

Layout (every entry a plain array; loads with ``np.load(path, allow_pickle=False)``)::

    format_version     int64 0-d array (FORMAT_VERSION)
    meta               uint8 array: UTF-8 JSON {'format': 'cnnlab-checkpoint', 'version',
                       'cnnlab_version', 'architecture' (cnnlab.layers.serialize(model)),
                       'input_shape', 'weights': [{'name', 'key', 'shape', 'dtype'}],
                       'optimizer': {'class', 'config', 'keys'} | null,
                       'epoch' (epochs completed) | null, 'train_seed' | null}
    weight.<i>         the i-th array of model.get_weights() (params and state)
    optimizer.<key>    optimizer.state_dict() entries (floats as 0-d arrays)

The training seed is all the random state a resume needs: fit derives each epoch's
shuffling (and dropout/augmentation generators) from (seed, epoch).

Writes are atomic: the file is written to a temporary file in the same directory,
flushed and fsynced, then moved over ``path`` with ``os.replace``; a failure at any point
leaves the previous file untouched. Loading checks everything (readable zip, CRCs, JSON,
version, known layer classes, every weight's name/shape/dtype, optimizer state) before a
model is returned; any problem raises :class:`CheckpointError`, never a half-loaded model.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from typing import NamedTuple

import numpy as np

from .. import optim as _optim
from .errors import CheckpointError

FORMAT = "cnnlab-checkpoint"
FORMAT_VERSION = 1


def atomic_savez(path, arrays):
    """``np.savez`` to ``path`` atomically (temp file in the same directory, fsync,
    ``os.replace``). The exact ``path`` is used (no '.npz' is appended)."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot save to {path!r}: directory {directory!r} does not "
                                f"exist")
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable (POSIX); harmless to skip elsewhere
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def _jsonable_shape(shape):
    return None if shape is None else [int(s) for s in shape]


def save_model(model, path, optimizer=None, epoch=None):
    """Write ``model`` (architecture + weights), and optionally ``optimizer`` (class,
    hyperparameters, state) and ``epoch`` (epochs completed), to one ``.npz`` at ``path``."""
    from ..layers import serialize

    if not getattr(model, "built", False):
        raise ValueError("cannot save an unbuilt model: give it an input_shape or fit it "
                         "first, so that its weights exist")
    if optimizer is not None and not isinstance(optimizer, _optim.Optimizer):
        raise TypeError(f"optimizer must be a cnnlab.optim.Optimizer or None, got "
                        f"{type(optimizer).__name__}")
    if epoch is not None and (isinstance(epoch, bool) or not hasattr(epoch, "__index__")
                              or int(epoch) < 0):
        raise TypeError(f"epoch must be a non-negative integer or None, got {epoch!r}")
    from .. import __version__

    arrays, entries = {}, []
    for i, (name, arr) in enumerate(model.get_weights().items()):
        arr = np.asarray(arr)
        key = f"weight.{i}"
        arrays[key] = arr
        entries.append({"name": name, "key": key, "shape": list(arr.shape),
                        "dtype": arr.dtype.str})
    opt_meta = None
    if optimizer is not None:
        sd = optimizer.state_dict()
        for k, v in sd.items():
            arrays["optimizer." + k] = np.asarray(v)
        opt_meta = {"class": type(optimizer).__name__, "config": optimizer.get_config(),
                    "keys": sorted(sd)}
    seed = getattr(model, "train_seed", None)
    meta = {"format": FORMAT, "version": FORMAT_VERSION, "cnnlab_version": __version__,
            "architecture": serialize(model),
            "input_shape": _jsonable_shape(getattr(model, "input_shape", None)),
            "weights": entries, "optimizer": opt_meta,
            "epoch": None if epoch is None else int(epoch),
            "train_seed": None if seed is None else int(seed)}
    try:
        text = json.dumps(meta, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"the model's configuration is not JSON-serializable: {e}") from None
    arrays["format_version"] = np.array(FORMAT_VERSION, dtype=np.int64)
    arrays["meta"] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    atomic_savez(path, arrays)


class Checkpoint(NamedTuple):
    """What :func:`load_checkpoint` returns: the model, the rebuilt optimizer (or None)
    and the number of epochs completed (or None). Resume with
    ``model.fit(..., optimizer=optimizer, initial_epoch=epoch, epochs=total)``."""
    model: object
    optimizer: object
    epoch: object


def _fail(path, what):
    raise CheckpointError(f"{path}: {what}")


def read_checkpoint(path):
    """Read and verify a checkpoint file without building anything.
    -> (meta dict, {weight name: array}, optimizer state dict or None)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no checkpoint at {path!r}")
    try:
        f = np.load(path, allow_pickle=False)
        if not isinstance(f, np.lib.npyio.NpzFile):
            _fail(path, "not a cnnlab checkpoint: it holds a single array (.npy), not an "
                        ".npz archive")
        with f:
            files = set(f.files)
            for key in ("format_version", "meta"):
                if key not in files:
                    _fail(path, f"not a cnnlab checkpoint: missing entry {key!r} "
                                f"(entries: {sorted(files)[:8]})")
            version = int(f["format_version"])
            if version != FORMAT_VERSION:
                _fail(path, f"checkpoint format version {version} is not supported (this "
                            f"cnnlab reads version {FORMAT_VERSION})")
            raw = f["meta"]
            if raw.dtype != np.uint8 or raw.ndim != 1:
                _fail(path, f"entry 'meta' must be a 1-D uint8 array, got {raw.dtype} "
                            f"{raw.shape}")
            try:
                meta = json.loads(raw.tobytes().decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                _fail(path, f"corrupt metadata (bad JSON): {e}")
            _check_meta(path, meta)
            weights = {}
            for w in meta["weights"]:
                if w["key"] not in files:
                    _fail(path, f"missing weight array {w['key']!r} for {w['name']!r}")
                arr = f[w["key"]]
                if list(arr.shape) != list(w["shape"]) or arr.dtype.str != w["dtype"]:
                    _fail(path, f"weight {w['name']!r} is {arr.dtype} {arr.shape} but the "
                                f"metadata says {w['dtype']} {tuple(w['shape'])}")
                weights[w["name"]] = arr
            opt_state = None
            if meta["optimizer"] is not None:
                opt_state = {}
                for k in meta["optimizer"]["keys"]:
                    if "optimizer." + k not in files:
                        _fail(path, f"missing optimizer entry {'optimizer.' + k!r}")
                    v = f["optimizer." + k]
                    opt_state[k] = float(v) if v.ndim == 0 else v
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: unreadable or corrupt checkpoint "
                              f"({type(e).__name__}: {e})") from e
    return meta, weights, opt_state


def _check_meta(path, meta):
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        _fail(path, f"not a cnnlab checkpoint: metadata 'format' is "
                    f"{meta.get('format') if isinstance(meta, dict) else meta!r}, expected "
                    f"{FORMAT!r}")
    for key, kind in (("architecture", dict), ("weights", list)):
        if not isinstance(meta.get(key), kind):
            _fail(path, f"corrupt metadata: {key!r} must be a {kind.__name__}, got "
                        f"{type(meta.get(key)).__name__}")
    for w in meta["weights"]:
        if not (isinstance(w, dict) and {"name", "key", "shape", "dtype"} <= set(w)):
            _fail(path, f"corrupt metadata: bad weight entry {w!r}")
    opt = meta.get("optimizer")
    if opt is not None and not (isinstance(opt, dict) and {"class", "config", "keys"} <= set(opt)):
        _fail(path, f"corrupt metadata: bad optimizer entry {opt!r}")
    meta.setdefault("optimizer", None)
    meta.setdefault("epoch", None)
    meta.setdefault("train_seed", None)


def _build_model(path, meta, model_cls):
    from ..layers import deserialize

    arch = meta["architecture"]
    try:
        if arch.get("class") in ("Model", "Sequential", model_cls.__name__):
            model = model_cls.from_config(arch["config"])
        else:
            model = model_cls([deserialize(arch)])
        if not model.built:
            if meta.get("input_shape") is None:
                _fail(path, "the architecture has no input shape, so the model cannot be "
                            "built")
            model.build(tuple(meta["input_shape"]))
    except CheckpointError:
        raise
    except Exception as e:  # unknown layer class, bad config: all reported the same way
        raise CheckpointError(f"{path}: cannot rebuild the architecture "
                              f"({type(e).__name__}: {e})") from e
    return model


def _restore_weights(path, model, weights):
    current = model.get_weights()
    missing = sorted(set(current) - set(weights))
    extra = sorted(set(weights) - set(current))
    if missing or extra:
        _fail(path, f"weights do not match the architecture: missing {missing[:6]}, "
                    f"unexpected {extra[:6]}")
    for name, arr in current.items():
        got = weights[name]
        if got.shape != arr.shape or got.dtype != arr.dtype:
            _fail(path, f"weight {name!r}: the architecture expects {arr.dtype} {arr.shape}, "
                        f"the file holds {got.dtype} {got.shape}")
    try:
        model.set_weights(weights)
    except Exception as e:
        raise CheckpointError(f"{path}: cannot set weights ({type(e).__name__}: {e})") from e


def _build_optimizer(path, meta, state):
    spec = meta["optimizer"]
    try:
        opt = _optim.get(spec["class"], **spec["config"])
        opt.load_state_dict(state)
    except Exception as e:
        raise CheckpointError(f"{path}: cannot restore the optimizer "
                              f"({type(e).__name__}: {e})") from e
    return opt


def _check_optimizer_fits(path, model, state):
    """The optimizer's per-array buffers must match the model's parameters one to one."""
    params = [(q, layer.params[key]) for q, layer, key in model.named_parameters()]
    n_state = int(state.get("n_params", -1))
    if n_state >= 0 and n_state != len(params):
        _fail(path, f"optimizer state is for {n_state} parameter arrays but the model has "
                    f"{len(params)}")
    for k, v in state.items():
        if not k.startswith("state."):
            continue
        name, p = params[int(k.split(".")[1])]
        if v.shape != p.shape or v.dtype != p.dtype:
            _fail(path, f"optimizer entry {k!r} is {v.dtype} {v.shape} but parameter "
                        f"{name!r} is {p.dtype} {p.shape}")


def load_checkpoint(path, model_cls=None):
    """Load a checkpoint written by ``Model.save``. -> ``Checkpoint(model, optimizer,
    epoch)``; ``model.train_seed`` is restored too, so ``model.fit(...,
    optimizer=optimizer, initial_epoch=epoch)`` continues exactly."""
    if model_cls is None:
        from .model import Model as model_cls
    meta, weights, opt_state = read_checkpoint(path)
    model = _build_model(path, meta, model_cls)
    _restore_weights(path, model, weights)
    optimizer = None
    if meta["optimizer"] is not None:
        optimizer = _build_optimizer(path, meta, opt_state)
        _check_optimizer_fits(path, model, opt_state)
    model.train_seed = meta["train_seed"]
    model.optimizer = optimizer
    return Checkpoint(model, optimizer, meta["epoch"])


def load_model(path):
    """Load the model saved at ``path`` (architecture and weights) -> ``Model``."""
    return load_checkpoint(path).model
