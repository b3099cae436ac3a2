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
leaves the previous file untouched, and the next save to ``path`` removes temporary files
that a killed save left. A model with NaN/inf weights, or with a layer class that is not
registered, is refused before anything is written.

Loading checks everything (readable zip, CRCs, JSON, version, known layer classes, every
weight's name/shape/dtype against the rebuilt architecture *before* its data is read,
optimizer state) before a model is returned; any problem raises :class:`CheckpointError`,
never a half-loaded model. Hostile files are bounded in time and memory (see
:mod:`cnnlab.training.safe_npz`).
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from typing import NamedTuple

import numpy as np

from .. import optim as _optim
from .errors import CheckpointError
from .safe_npz import NpzError, SafeNpz

FORMAT = "cnnlab-checkpoint"
FORMAT_VERSION = 1


def _tmp_pattern(base):
    """Temporary files of saves to ``base``: '.<base>.<pid>.<8 random>.tmp' (older cnnlab:
    no pid)."""
    return re.compile(re.escape("." + base + ".") + r"(?:(\d+)\.)?[a-z0-9_]{8}\.tmp")


def _alive(pid):
    if os.name != "posix":
        return True  # cannot tell: keep the file
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: a process of another user holds that pid
        return True
    return True


def remove_leftovers(path):
    """Delete the temporary files that killed saves to ``path`` left behind (their writer's
    process no longer exists); -> the names removed. ``atomic_savez`` calls it before each
    save, so a SIGKILL during a save costs disk space only until the next save."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    pattern = _tmp_pattern(os.path.basename(path))
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        m = pattern.fullmatch(name)
        if not m or (m.group(1) is not None and _alive(int(m.group(1)))):
            continue
        full = os.path.join(directory, name)
        try:
            if os.path.isfile(full) and not os.path.islink(full):
                os.unlink(full)
                removed.append(name)
        except OSError:
            pass  # gone already, or not ours to delete
    return removed


def atomic_savez(path, arrays):
    """``np.savez`` to ``path`` atomically (temp file in the same directory, fsync,
    ``os.replace``). The exact ``path`` is used (no '.npz' is appended). Temporary files
    left by earlier saves to ``path`` that were killed are removed first."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot save to {path!r}: directory {directory!r} does not "
                                f"exist")
    remove_leftovers(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.{os.getpid()}.",
                               suffix=".tmp", dir=directory)
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


def check_finite(path, arrays):
    """Raise ValueError if any float array of ``arrays`` ({name: array}) holds NaN or inf:
    a diverged model must never replace a good file."""
    for name, arr in arrays.items():
        arr = np.asarray(arr)
        if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
            bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
            raise ValueError(
                f"refusing to save {os.fspath(path)!r}: {name} holds {bad} NaN/inf value(s) "
                f"(of {arr.size}), so training has diverged; the file already there (if any) "
                f"is left untouched. Lower the learning rate, or reload the last good "
                f"checkpoint")


def _jsonable_shape(shape):
    return None if shape is None else [int(s) for s in shape]


def save_model(model, path, optimizer=None, epoch=None):
    """Write ``model`` (architecture + weights), and optionally ``optimizer`` (class,
    hyperparameters, state) and ``epoch`` (epochs completed), to one ``.npz`` at ``path``.

    Refused (ValueError, nothing written) when a layer's class is not registered (the file
    could not be loaded back; the message says how to register it) or when a weight or
    optimizer array holds NaN or inf."""
    from ..layers import serialize
    from ..layers import check_serializable

    if not getattr(model, "built", False):
        raise ValueError("cannot save an unbuilt model: give it an input_shape or fit it "
                         "first, so that its weights exist")
    if optimizer is not None and not isinstance(optimizer, _optim.Optimizer):
        raise TypeError(f"optimizer must be a cnnlab.optim.Optimizer or None, got "
                        f"{type(optimizer).__name__}")
    if epoch is not None and (isinstance(epoch, bool) or not hasattr(epoch, "__index__")
                              or int(epoch) < 0):
        raise TypeError(f"epoch must be a non-negative integer or None, got {epoch!r}")
    from ..version import __version__

    check_serializable(model)
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
    check_finite(path, {f"weight {e['name']!r}": arrays[e["key"]] for e in entries})
    check_finite(path, {f"optimizer state {k[len('optimizer.'):]!r}": v
                        for k, v in arrays.items() if k.startswith("optimizer.")})
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


#: The metadata entry (JSON) may be at most this long.
MAX_META_BYTES = 16 << 20
_WEIGHT_KINDS = "fiu"


def _open(path):
    """The archive at ``path`` as a :class:`SafeNpz`, or CheckpointError saying why not."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no checkpoint at {path!r}")
    if os.path.isdir(path):
        _fail(path, "not a cnnlab model file: it is a directory")
    try:
        return SafeNpz(path)
    except NpzError as e:
        _fail(path, f"not a cnnlab model file (unreadable or corrupt: {e}); a model file is "
                    f"the .npz archive that Model.save / ModelCheckpoint write")
    except OSError as e:
        _fail(path, f"cannot read the file ({type(e).__name__}: {e})")


def _read_meta(path, npz):
    """Check ``format_version`` and parse ``meta`` (both small, bounded) -> meta dict."""
    names = set(npz.names)
    for key in ("format_version", "meta"):
        if key not in names:
            _fail(path, f"not a cnnlab checkpoint: missing entry {key!r} "
                        f"(entries: {sorted(names)[:8]})")

    def small(limit, ndim):
        def check(shape, dtype):
            nbytes = dtype.itemsize * int(np.prod(shape, dtype=object))
            if len(shape) != ndim or nbytes > limit:
                _fail(path, f"entry must be a {ndim}-D array of at most {limit} bytes, its "
                            f"header declares {dtype} {shape}")
        return check

    version = npz.read("format_version", small(8, 0))
    if version.dtype.kind not in "iu" or int(version) != FORMAT_VERSION:
        _fail(path, f"checkpoint format version {version.item()} is not supported (this "
                    f"cnnlab reads version {FORMAT_VERSION})")
    raw = npz.read("meta", small(MAX_META_BYTES, 1))
    if raw.dtype != np.uint8:
        _fail(path, f"entry 'meta' must be a 1-D uint8 array, got {raw.dtype} {raw.shape}")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        _fail(path, f"corrupt metadata (bad JSON: {type(e).__name__}: {e})")
    _check_meta(path, meta)
    return meta


def _is_shape(v):
    return (isinstance(v, list) and len(v) <= 32
            and all(type(d) is int and 0 <= d < 2**62 for d in v))


def _check_entries(path, npz, meta):
    """Every weight / optimizer entry named by ``meta`` exists, and its .npy header
    declares what ``meta`` says (headers only: no data is read)."""
    seen = set()
    for w in meta["weights"]:
        if w["name"] in seen:
            _fail(path, f"corrupt metadata: weight {w['name']!r} is listed twice")
        seen.add(w["name"])
        if w["key"] not in npz:
            _fail(path, f"missing weight array {w['key']!r} for {w['name']!r}")
        shape, dtype = npz.header(w["key"])
        if list(shape) != list(w["shape"]) or dtype.str != w["dtype"]:
            _fail(path, f"weight {w['name']!r} is {dtype} {shape} but the metadata says "
                        f"{w['dtype']} {tuple(w['shape'])}")
    if meta["optimizer"] is not None:
        for k in meta["optimizer"]["keys"]:
            if "optimizer." + k not in npz:
                _fail(path, f"missing optimizer entry {'optimizer.' + k!r}")
            npz.header("optimizer." + k)


def _as_declared(path, what, shape, dtype):
    """A ``SafeNpz.read`` check: the entry must declare exactly ``shape`` and ``dtype``."""
    def check(got_shape, got_dtype):
        if tuple(got_shape) != tuple(shape) or got_dtype != dtype:
            _fail(path, f"{what}: expected {np.dtype(dtype)} {tuple(shape)}, the file "
                        f"declares {got_dtype} {tuple(got_shape)}")
    return check


def _read_optimizer(path, npz, meta, expected):
    """Optimizer entries -> state dict; ``expected(key)`` gives a ``SafeNpz.read`` check
    for an array entry, or None for a scalar (0-d only)."""
    state = {}
    for k in meta["optimizer"]["keys"]:
        check = expected(k)
        if check is None:
            def check(shape, dtype, k=k):
                if shape != () or dtype.kind not in "fiub":
                    _fail(path, f"optimizer entry {k!r} must be a number (0-d array) here, "
                                f"its header declares {dtype} {shape}")
        v = npz.read("optimizer." + k, check)
        state[k] = float(v) if v.ndim == 0 else v
    return state


def _guarded(path, fn, *args):
    """Run ``fn(*args)``, turning archive problems into CheckpointError."""
    try:
        return fn(*args)
    except CheckpointError:
        raise
    except (NpzError, KeyError, ValueError, TypeError, OverflowError) as e:
        raise CheckpointError(f"{path}: unreadable or corrupt checkpoint "
                              f"({type(e).__name__}: {e})") from e


def read_checkpoint(path):
    """Read and verify a checkpoint file without building anything.
    -> (meta dict, {weight name: array}, optimizer state dict or None).

    Every entry's header is checked against the metadata before its data is read, so the
    memory used is what the metadata declares and the file really holds."""
    path = os.fspath(path)
    with _open(path) as npz:
        def read():
            meta = _read_meta(path, npz)
            _check_entries(path, npz, meta)
            weights = {w["name"]: npz.read(w["key"], _as_declared(
                path, f"weight {w['name']!r}", w["shape"], np.dtype(w["dtype"])))
                for w in meta["weights"]}
            opt = None
            if meta["optimizer"] is not None:
                opt = _read_optimizer(path, npz, meta, lambda k: None if not k.startswith(
                    "state.") else (lambda shape, dtype: None))
            return meta, weights, opt
        return _guarded(path, read)


def _check_meta(path, meta):
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        _fail(path, f"not a cnnlab checkpoint: metadata 'format' is "
                    f"{meta.get('format') if isinstance(meta, dict) else type(meta).__name__!r}, "
                    f"expected {FORMAT!r}")
    for key, kind in (("architecture", dict), ("weights", list)):
        if not isinstance(meta.get(key), kind):
            _fail(path, f"corrupt metadata: {key!r} must be a {kind.__name__}, got "
                        f"{type(meta.get(key)).__name__}")
    for w in meta["weights"]:
        if not (isinstance(w, dict) and {"name", "key", "shape", "dtype"} <= set(w)
                and isinstance(w["name"], str) and isinstance(w["key"], str)
                and _is_shape(w["shape"]) and isinstance(w["dtype"], str)):
            _fail(path, f"corrupt metadata: bad weight entry {str(w)[:200]}")
        try:
            ok = np.dtype(w["dtype"]).kind in _WEIGHT_KINDS
        except TypeError:
            ok = False
        if not ok:
            _fail(path, f"corrupt metadata: weight {w['name']!r} has dtype {w['dtype']!r}, "
                        f"expected a numeric dtype like '<f4'")
    opt = meta.get("optimizer")
    if opt is not None and not (isinstance(opt, dict) and {"class", "config", "keys"} <= set(opt)
                                and isinstance(opt["keys"], list)
                                and all(isinstance(k, str) for k in opt["keys"])
                                and isinstance(opt["config"], dict)):
        _fail(path, f"corrupt metadata: bad optimizer entry {str(opt)[:200]}")
    meta.setdefault("optimizer", None)
    meta.setdefault("epoch", None)
    meta.setdefault("train_seed", None)
    for key in ("epoch", "train_seed"):
        v = meta[key]
        if v is not None and (type(v) is not int or v < 0):
            _fail(path, f"corrupt metadata: {key!r} must be a non-negative int or null, got "
                        f"{str(v)[:50]}")


def _build_model(path, meta, model_cls):
    from ..layers import deserialize

    arch = meta["architecture"]
    shape = meta.get("input_shape")
    if shape is not None and not _is_shape(shape):
        _fail(path, f"corrupt metadata: bad input_shape {str(shape)[:100]}")
    try:
        if arch.get("class") in ("Model", "Sequential", model_cls.__name__) \
                and isinstance(arch.get("config"), dict):
            model = model_cls.from_config(arch["config"])
        else:
            model = model_cls([deserialize(arch)])
        if not model.built:
            if shape is None:
                _fail(path, "the architecture has no input shape, so the model cannot be "
                            "built")
            model.build(tuple(shape))
    except CheckpointError:
        raise
    except Exception as e:  # unknown layer class, bad config, too deep: all reported alike
        raise CheckpointError(f"{path}: cannot rebuild the architecture "
                              f"({type(e).__name__}: {str(e)[:1000]})") from e
    return model


def _weight_plan(path, model, meta):
    """Compare the architecture's weights with the metadata (no data read yet).
    -> {name: (entry key, shape, dtype)} in the model's terms."""
    current = {k: (v.shape, v.dtype) for k, v in model.get_weights().items()}
    declared = {w["name"]: w for w in meta["weights"]}
    missing = sorted(set(current) - set(declared))
    extra = sorted(set(declared) - set(current))
    if missing or extra:
        _fail(path, f"weights do not match the architecture: missing {missing[:6]}, "
                    f"unexpected {extra[:6]}")
    for name, (shape, dtype) in current.items():
        w = declared[name]
        if tuple(w["shape"]) != shape or np.dtype(w["dtype"]) != dtype:
            _fail(path, f"weight {name!r}: the architecture expects {dtype} {shape}, "
                        f"the file holds {np.dtype(w['dtype'])} {tuple(w['shape'])}")
    return {name: (declared[name]["key"],) + current[name] for name in current}


def _state_entry_check(path, params):
    """For optimizer key 'state.<i>.<slot>': a check that the entry is shaped like
    parameter i (before its data is read); None for the scalars."""
    def expected(k):
        if not k.startswith("state."):
            return None
        index = k.split(".")[1]
        if not index.isdigit() or int(index) >= len(params):
            _fail(path, f"optimizer entry {k!r} does not name one of the model's "
                        f"{len(params)} parameter arrays")
        name, p = params[int(index)]

        def check(shape, dtype):
            if tuple(shape) != p.shape or dtype != p.dtype:
                _fail(path, f"optimizer entry {k!r} is {dtype} {tuple(shape)} but parameter "
                            f"{name!r} is {p.dtype} {p.shape}")
        return check
    return expected


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
    n_params = len(model.named_parameters())
    n_state = int(state.get("n_params", -1))
    if n_state >= 0 and n_state != n_params:
        _fail(path, f"optimizer state is for {n_state} parameter arrays but the model has "
                    f"{n_params}")


def load_checkpoint(path, model_cls=None, custom_objects=None):
    """Load a checkpoint written by ``Model.save``. -> ``Checkpoint(model, optimizer,
    epoch)``; ``model.train_seed`` is restored too, so ``model.fit(...,
    optimizer=optimizer, initial_epoch=epoch)`` continues exactly.

    ``custom_objects``: ``{class name: Layer subclass}`` for layers of your own that are
    not registered (see :func:`cnnlab.layers.custom_object_scope`).

    Safe on untrusted files: no pickle, no code named by the file; the architecture is
    rebuilt first and every entry's declared shape and dtype is compared with it before
    any data is read; sizes, duplicates, JSON and compression are bounded (see
    :mod:`cnnlab.training.safe_npz`). Any problem raises :class:`CheckpointError`."""
    from ..layers import custom_object_scope

    if model_cls is None:
        model_cls = _default_model_class()
    path = os.fspath(path)
    with custom_object_scope(custom_objects), _open(path) as npz:
        def load():
            meta = _read_meta(path, npz)
            _check_entries(path, npz, meta)
            model = _build_model(path, meta, model_cls)
            plan = _weight_plan(path, model, meta)
            weights = {name: npz.read(key, _as_declared(path, f"weight {name!r}", shape, dtype))
                       for name, (key, shape, dtype) in plan.items()}
            try:
                model.set_weights(weights)
            except Exception as e:
                raise CheckpointError(f"{path}: cannot set weights ({type(e).__name__}: "
                                      f"{e})") from e
            del weights
            optimizer = None
            if meta["optimizer"] is not None:
                params = [(q, layer.params[key]) for q, layer, key in model.named_parameters()]
                state = _read_optimizer(path, npz, meta, _state_entry_check(path, params))
                optimizer = _build_optimizer(path, meta, state)
                _check_optimizer_fits(path, model, state)
            model.train_seed = meta["train_seed"]
            model.optimizer = optimizer
            return Checkpoint(model, optimizer, meta["epoch"])
        return _guarded(path, load)


def _default_model_class():
    """``cnnlab.Sequential`` (``Model``), found by its registered name: model.py imports
    this module (``Model.save`` / ``Model.load``), so importing it here would be a circle."""
    from ..layers import get_registered

    return get_registered("Model")


def load_model(path, custom_objects=None):
    """Load the model saved at ``path`` (architecture and weights) -> ``Model``.

    ``custom_objects``: ``{'MyLayer': MyLayer}`` for your own layer classes that are not
    registered with :func:`cnnlab.layers.register` (as in Keras)."""
    return load_checkpoint(path, custom_objects=custom_objects).model
