"""Checkpoint files: round trip, atomic writes, corrupt/mismatched files, exact resume."""
import json
import os

import numpy as np
import pytest
from _train_helpers import blobs, mlp, small_convnet, weights_equal

import cnnlab as cl
from cnnlab.layers import Dense, Flatten
from cnnlab.optim import SGD, Adam, StepLR
from cnnlab.training import (
    CheckpointError, LearningRateScheduler, ModelCheckpoint, load_checkpoint, read_checkpoint,
)


@pytest.fixture(scope="module")
def data():
    x, y = blobs(200, shape=(1, 8, 8), seed=2)
    return x[:160], y[:160], x[160:], y[160:]


@pytest.fixture
def trained(data, tmp_path):
    """A trained conv/batch-norm/dropout model saved with its optimizer at epoch 2."""
    x, y, _, _ = data
    model = small_convnet()
    model.fit(x, y, epochs=2, batch_size=32, optimizer=Adam(1e-2), verbose=0, seed=5)
    path = tmp_path / "model.npz"
    model.save(path, optimizer=model.optimizer, epoch=2)
    return model, path


def rewrite(src, dst, change):
    """Copy checkpoint ``src`` to ``dst`` after ``change(entries, meta)`` edits it."""
    with np.load(src, allow_pickle=False) as f:
        entries = dict(f)
    meta = json.loads(entries["meta"].tobytes())
    if change(entries, meta) is not False:  # False: change wrote entries['meta'] itself
        entries["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(dst, **entries)
    return dst


# ----- round trip ---------------------------------------------------------------------------
def test_round_trip_identical_predictions(trained, data):
    model, path = trained
    _, _, xv, yv = data
    loaded = cl.load_model(path)
    assert type(loaded) is cl.Model
    assert weights_equal(loaded, model)
    assert [type(a) for a in loaded.layers] == [type(b) for b in model.layers]
    assert [a.name for a in loaded.layers] == [b.name for b in model.layers]
    assert cl.layers.serialize(loaded) == cl.layers.serialize(model)
    np.testing.assert_array_equal(loaded.predict(xv), model.predict(xv))
    assert loaded.evaluate(xv, yv) == model.evaluate(xv, yv)
    assert loaded.count_params() == model.count_params()
    assert type(cl.Model.load(path)) is cl.Model


def test_file_is_plain_npz_without_pickle(trained):
    model, path = trained
    with np.load(path, allow_pickle=False) as f:
        assert int(f["format_version"]) == cl.training.FORMAT_VERSION
        assert f["meta"].dtype == np.uint8
        meta = json.loads(f["meta"].tobytes().decode("utf-8"))
        assert all(f[k].dtype != object for k in f.files)
    assert meta["format"] == "cnnlab-checkpoint" and meta["epoch"] == 2
    assert meta["train_seed"] == 5 and meta["optimizer"]["class"] == "Adam"
    assert meta["architecture"]["class"] == "Model"
    names = [w["name"] for w in meta["weights"]]
    assert names == list(model.get_weights())
    assert any("running_mean" in n for n in names)  # state is saved, not only params


def test_optimizer_and_epoch_restored(trained):
    model, path = trained
    ck = load_checkpoint(path)
    model2, opt, epoch = ck
    assert epoch == 2 and model2.train_seed == 5 and model2.optimizer is opt
    assert opt.get_config() == model.optimizer.get_config() and opt.t == model.optimizer.t
    a, b = opt.state_dict(), model.optimizer.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_save_without_optimizer(data, tmp_path):
    model = mlp(shape=(1, 8, 8))
    model.save(tmp_path / "plain.npz")
    ck = load_checkpoint(tmp_path / "plain.npz")
    assert ck.optimizer is None and ck.epoch is None and weights_equal(ck.model, model)


def test_float64_model_round_trip(tmp_path):
    model = cl.Sequential([Flatten(), Dense(3)], input_shape=(2, 3), seed=1, dtype=np.float64)
    model.save(tmp_path / "f64.npz")
    loaded = cl.load_model(tmp_path / "f64.npz")
    assert loaded.dtype == np.float64 and weights_equal(loaded, model)


def test_save_errors(tmp_path):
    with pytest.raises(ValueError, match="unbuilt"):
        cl.Sequential([Dense(3)]).save(tmp_path / "x.npz")
    model = mlp()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        model.save(tmp_path / "no" / "such" / "dir.npz")
    with pytest.raises(TypeError, match="optimizer must be"):
        model.save(tmp_path / "x.npz", optimizer="adam")
    with pytest.raises(TypeError, match="epoch must be"):
        model.save(tmp_path / "x.npz", epoch=-1)


# ----- atomic writes ------------------------------------------------------------------------
def _crash_midway(monkeypatch):
    real = np.savez

    def savez(file, *args, **kwds):
        file.write(b"PK\x03\x04 half a zip ")  # some bytes reach the disk, then boom
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(np, "savez", savez)
    return real


def test_crash_mid_save_keeps_previous_file(trained, data, monkeypatch):
    model, path = trained
    _, _, xv, _ = data
    before = path.read_bytes()
    expected = model.predict(xv)
    model.layers[-1].params["w"] += 1.0  # the new save would differ
    _crash_midway(monkeypatch)
    with pytest.raises(OSError, match="simulated"):
        model.save(path, optimizer=model.optimizer, epoch=3)
    monkeypatch.undo()
    assert path.read_bytes() == before
    np.testing.assert_array_equal(cl.load_model(path).predict(xv), expected)
    assert os.listdir(path.parent) == [path.name]  # no temp file left behind


def test_crash_at_rename_keeps_previous_file(trained, monkeypatch):
    model, path = trained
    before = path.read_bytes()

    def replace(src, dst):
        raise OSError("power cut (simulated)")

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="power cut"):
        model.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before and os.listdir(path.parent) == [path.name]


def test_checkpoint_callback_crash_keeps_last_good(data, tmp_path, monkeypatch):
    x, y, _, _ = data
    model = mlp(shape=(1, 8, 8))
    path = tmp_path / "ck.npz"
    model.fit(x, y, epochs=1, verbose=0, seed=0, callbacks=[ModelCheckpoint(path)])
    good = path.read_bytes()
    _crash_midway(monkeypatch)
    with pytest.raises(OSError):
        model.fit(x, y, epochs=2, initial_epoch=1, verbose=0, callbacks=[ModelCheckpoint(path)])
    monkeypatch.undo()
    assert path.read_bytes() == good and load_checkpoint(path).epoch == 1


# ----- bad files ----------------------------------------------------------------------------
@pytest.mark.parametrize("keep", [0, 10, 100, 0.5, -30, -1])
def test_truncated_file(trained, keep):
    _, path = trained
    raw = path.read_bytes()
    n = keep if isinstance(keep, int) and keep >= 0 else (
        int(len(raw) * keep) if isinstance(keep, float) else len(raw) + keep)
    path.write_bytes(raw[:n])
    with pytest.raises(CheckpointError, match=str(path.name)):
        cl.load_model(path)


def test_corrupt_bytes(trained):
    _, path = trained
    raw = bytearray(path.read_bytes())
    with np.load(path) as f:
        w = f["weight.2"]
    at = bytes(raw).find(w.tobytes()[:32])  # inside a weight array: the CRC catches it
    assert at > 0
    raw[at + 5] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="corrupt"):
        cl.load_model(path)


def test_not_a_checkpoint(tmp_path):
    text = tmp_path / "notes.npz"
    text.write_text("hello, not a zip file")
    with pytest.raises(CheckpointError, match="unreadable or corrupt"):
        cl.load_model(text)
    npy = tmp_path / "arr.npy"
    np.save(npy, np.arange(3))
    with pytest.raises(CheckpointError, match="single array"):
        cl.load_model(npy)
    other = tmp_path / "other.npz"
    np.savez(other, a=np.arange(3))
    with pytest.raises(CheckpointError, match="missing entry 'format_version'"):
        cl.load_model(other)
    with pytest.raises(FileNotFoundError):
        cl.load_model(tmp_path / "missing.npz")
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, format_version=np.array(1), meta=np.array([{"a": 1}], dtype=object))
    with pytest.raises(CheckpointError):
        cl.load_model(pickled)


def _fewer_optimizer_arrays(entries, meta):
    """A consistent optimizer state for 3 arrays, loaded into a model with 6."""
    entries["optimizer.n_params"] = np.array(3.0)
    for i in range(3, 6):
        for slot in ("exp_avg", "exp_avg_sq"):
            del entries[f"optimizer.state.{i}.{slot}"]
            meta["optimizer"]["keys"].remove(f"state.{i}.{slot}")


def _bad_json(entries, meta):
    entries["meta"] = np.frombuffer(b"{not json", np.uint8)
    return False


@pytest.mark.parametrize("change,pattern", [
    (lambda e, m: m["architecture"]["config"]["layers"][0].__setitem__("class", "Conv9D"),
     r"unknown layer class 'Conv9D'"),
    (lambda e, m: m["architecture"]["config"]["layers"][-1]["config"].__setitem__("units", 4),
     r"weight 'dense.w'.*\(64, 4\).*\(64, 3\)"),
    (lambda e, m: e.pop("weight.1"), r"missing weight array 'weight.1'"),
    (lambda e, m: m["weights"].pop(), r"weights do not match the architecture: missing"),
    (lambda e, m: e.__setitem__("weight.0", e["weight.0"][:2]),
     r"the metadata says"),
    (lambda e, m: e.__setitem__("weight.0", e["weight.0"].astype(np.float64)),
     r"float64.*the metadata says"),
    (lambda e, m: e.__setitem__("format_version", np.array(99)), r"version 99"),
    (lambda e, m: m.__setitem__("format", "keras"), r"not a cnnlab checkpoint"),
    (lambda e, m: m.__setitem__("weights", {"a": 1}), r"'weights' must be a list"),
    (lambda e, m: m["architecture"]["config"].__setitem__("bogus", 1),
     r"cannot rebuild the architecture"),
    (lambda e, m: e.pop("optimizer.state.0.exp_avg"), r"missing optimizer entry"),
    (lambda e, m: m["optimizer"].__setitem__("class", "Nadam"), r"unknown optimizer 'Nadam'"),
    (lambda e, m: m["optimizer"]["config"].__setitem__("lr", -1), r"restore the optimizer"),
    (lambda e, m: e.__setitem__("optimizer.n_params", np.array(3.0)),
     r"restore the optimizer.*unexpected entries \['state.3.exp_avg'"),
    (_fewer_optimizer_arrays, r"optimizer state is for 3 parameter arrays but the model has 6"),
    (lambda e, m: e.__setitem__("optimizer.state.1.exp_avg", np.zeros(5, np.float32)),
     r"'state.1.exp_avg' is float32 \(5,\) but parameter 'conv2d.b' is float32 \(4,\)"),
    (_bad_json, r"bad JSON"),
])
def test_mismatched_or_corrupt_content(trained, tmp_path, change, pattern):
    _, path = trained
    bad = rewrite(path, tmp_path / "bad.npz", change)
    with pytest.raises(CheckpointError, match=pattern):
        load_checkpoint(bad)


def test_read_checkpoint_does_not_build(trained):
    model, path = trained
    meta, weights, opt_state = read_checkpoint(path)
    assert set(weights) == set(model.get_weights()) and opt_state["t"] == model.optimizer.t


# ----- exact resume -------------------------------------------------------------------------
def _fit(model, x, y, xv, yv, **kw):
    return model.fit(x, y, batch_size=24, validation_data=(xv, yv), verbose=0, **kw)


@pytest.mark.parametrize("make_opt", [lambda: Adam(1e-2), lambda: SGD(0.05, momentum=0.9,
                                                                     nesterov=True)])
def test_resume_equals_uninterrupted(data, tmp_path, make_opt):
    """2 epochs straight == 1 epoch, save (optimizer + epoch), load into a fresh model,
    1 more epoch. Dropout masks, shuffling, batch-norm statistics and the schedule all
    continue exactly: the weights are bitwise equal."""
    x, y, xv, yv = data
    sched = StepLR(0.05, step_size=1, gamma=0.5)
    full = small_convnet(seed=1)
    h_full = _fit(full, x, y, xv, yv, epochs=2, optimizer=make_opt(), seed=11,
                  callbacks=[LearningRateScheduler(sched)])

    first = small_convnet(seed=1)
    _fit(first, x, y, xv, yv, epochs=1, optimizer=make_opt(), seed=11,
         callbacks=[LearningRateScheduler(sched)])
    first.save(tmp_path / "e1.npz", optimizer=first.optimizer, epoch=1)
    del first

    model, opt, epoch = load_checkpoint(tmp_path / "e1.npz")
    h_rest = _fit(model, x, y, xv, yv, epochs=2, initial_epoch=epoch, optimizer=opt,
                  callbacks=[LearningRateScheduler(sched)])  # seed comes from the file
    assert model.train_seed == 11
    assert weights_equal(model, full)
    assert h_rest.history["loss"] == h_full.history["loss"][1:]
    assert h_rest.history["val_loss"] == h_full.history["val_loss"][1:]
    assert h_rest.history["lr"] == h_full.history["lr"][1:] == [0.025]


def test_resume_via_model_checkpoint_callback(data, tmp_path):
    x, y, xv, yv = data
    full = mlp(shape=(1, 8, 8), seed=4, dropout=0.2)
    _fit(full, x, y, xv, yv, epochs=3, optimizer=Adam(1e-2), seed=3)
    part = mlp(shape=(1, 8, 8), seed=4, dropout=0.2)
    _fit(part, x, y, xv, yv, epochs=3, optimizer=Adam(1e-2), seed=3,
         callbacks=[ModelCheckpoint(tmp_path / "ck-{epoch}.npz", save_best_only=False)])
    assert weights_equal(part, full)
    model, opt, epoch = load_checkpoint(tmp_path / "ck-2.npz")
    assert epoch == 2
    _fit(model, x, y, xv, yv, epochs=3, initial_epoch=epoch, optimizer=opt)
    assert weights_equal(model, full)
