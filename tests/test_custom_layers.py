"""Custom layers (the README's own example, run as written), registration, custom_objects;
and the save side of persistence: unregistered layers and non-finite weights refused at
save time, leftover temporary files of killed saves removed."""
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from _train_helpers import blobs, mlp

import cnnlab as cl
import cnnlab.layers as L
from cnnlab.gradcheck import eval_numerical_gradient_array, rel_error
from cnnlab.layers import serialization
from cnnlab.training import CheckpointError

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def readme_example():
    """The first python block of the README's 'Writing your own layer' section."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    section = text.split("## Writing your own layer", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture
def example(tmp_path, monkeypatch):
    """Run the README example in a fresh directory; -> its namespace. The class it
    registers is unregistered afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(serialization, "_REGISTRY", dict(serialization._REGISTRY))
    ns = {"__name__": "readme_example"}
    exec(compile(readme_example(), "README.md", "exec"), ns)
    return ns


def test_readme_example_runs_and_round_trips(example, tmp_path):
    model, same = example["model"], example["same"]
    assert os.path.isfile(tmp_path / "scaled.npz")
    assert type(same.layers[1]) is example["Scale"] and same.layers[1].init == 0.5
    x = np.random.default_rng(0).random((5, 1, 28, 28), dtype=np.float32)
    np.testing.assert_array_equal(same.predict(x), model.predict(x))
    assert same.layers[1].get_config() == {"name": "scale", "init": 0.5}


def test_readme_example_gradients_match_numerical(example):
    """forward and backward of the example layer against centred differences (float64),
    for x, gamma and beta, on 4-D and 2-D inputs."""
    Scale = example["Scale"]
    rng = np.random.default_rng(1)
    for shape in [(3, 4, 5, 6), (7, 5)]:
        layer = Scale(init=0.5)
        layer.build(shape[1:], rng, np.float64)
        layer.params["gamma"][...] = rng.standard_normal(shape[1])
        layer.params["beta"][...] = rng.standard_normal(shape[1])
        x = rng.standard_normal(shape)
        dout = rng.standard_normal(shape)
        out = layer.forward(x, training=True)
        bshape = (1, -1) + (1,) * (len(shape) - 2)
        expected = x * layer.params["gamma"].reshape(bshape) + layer.params["beta"].reshape(bshape)
        np.testing.assert_allclose(out, expected, rtol=1e-12)
        dx = layer.backward(dout)

        def f(_):
            return layer.forward(x, training=False)
        num_dx = eval_numerical_gradient_array(f, x, dout)
        num_dg = eval_numerical_gradient_array(f, layer.params["gamma"], dout)
        num_db = eval_numerical_gradient_array(f, layer.params["beta"], dout)
        assert rel_error(dx, num_dx) < 1e-8
        assert rel_error(layer.grads["gamma"], num_dg) < 1e-8
        assert rel_error(layer.grads["beta"], num_db) < 1e-8


def test_readme_example_trains(example):
    """The example layer inside a model learns (its gradients reach the optimizer)."""
    Scale = example["Scale"]
    x, y = blobs(120, shape=(2, 4, 4), seed=3)
    model = cl.Sequential([Scale(0.1), L.Flatten(), L.Dense(3)], input_shape=(2, 4, 4), seed=0)
    before = model.layers[0].params["gamma"].copy()
    hist = model.fit(x, y, epochs=5, batch_size=30, optimizer=cl.optim.Adam(0.05), verbose=0, seed=0)
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    assert not np.array_equal(model.layers[0].params["gamma"], before)


# ----- registration and custom_objects ---------------------------------------------------------
class Doubler(L.Layer):
    """Not registered: out = 2x."""
    shape_check = "rank"

    def _forward(self, x, training, keep):
        return 2 * x, None

    def _backward(self, dout, cache):
        return 2 * dout


def test_unregistered_layer_fails_at_save_time(tmp_path):
    model = cl.Sequential([L.Flatten(), Doubler(), L.Dense(2)], input_shape=(1, 2, 2), seed=0)
    path = tmp_path / "m.npz"
    path.write_bytes(b"previous")
    with pytest.raises(ValueError, match=r"cannot save: layer 'model/doubler' \(test_custom_layers"
                                         r"\.Doubler\) is of a class that is not registered.*"
                                         r"@cnnlab\.layers\.register"):
        model.save(path)
    assert path.read_bytes() == b"previous"
    # nested inside a container too
    nested = cl.Sequential([L.Flatten(), L.Sequential([L.Dense(3), Doubler()])],
                           input_shape=(1, 2, 2), seed=0)
    with pytest.raises(ValueError, match=r"layer 'model/sequential/doubler'"):
        nested.save(tmp_path / "n.npz")


def test_custom_objects_and_scope(tmp_path, monkeypatch):
    monkeypatch.setattr(serialization, "_REGISTRY", dict(serialization._REGISTRY))
    model = cl.Sequential([L.Flatten(), Doubler(), L.Dense(2)], input_shape=(1, 2, 2), seed=0)
    path = tmp_path / "m.npz"
    with L.custom_object_scope({"Doubler": Doubler}):
        model.save(path)  # known in the scope: savable
    with pytest.raises(CheckpointError, match=r"unknown layer class 'Doubler'.*"
                                              r"custom_objects=\{'Doubler': Doubler\}"):
        cl.load_model(path)
    x = np.arange(8, dtype=np.float32).reshape(2, 1, 2, 2)
    for loaded in (cl.load_model(path, custom_objects={"Doubler": Doubler}),
                   cl.Model.load(path, custom_objects={"Doubler": Doubler})):
        assert type(loaded.layers[1]) is Doubler
        np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    with pytest.raises(TypeError, match="custom_objects must map class names"):
        cl.load_model(path, custom_objects={"Doubler": len})
    L.register(Doubler)  # registered: no custom_objects needed
    assert type(cl.load_model(path).layers[1]) is Doubler


def test_name_clash_with_a_registered_class(tmp_path):
    class Dense(L.Layer):  # shadows cnnlab's Dense by name
        pass
    model = cl.Sequential([L.Flatten(), Dense()], input_shape=(1, 2, 2), seed=0)
    with pytest.raises(ValueError, match=r"the name 'Dense' is registered for another class "
                                         r"\(cnnlab\.layers\.core\.Dense\).*rename your class"):
        model.save(tmp_path / "m.npz")


def test_config_that_cannot_rebuild_fails_at_save(tmp_path, monkeypatch):
    monkeypatch.setattr(serialization, "_REGISTRY", dict(serialization._REGISTRY))

    @L.register
    class Shift(L.Layer):  # forgot get_config: the constructor argument is lost
        shape_check = "rank"

        def __init__(self, amount, name=None):
            super().__init__(name)
            self.amount = amount

        def _forward(self, x, training, keep):
            return x + self.amount, None

    model = cl.Sequential([L.Flatten(), Shift(1.0)], input_shape=(1, 2, 2), seed=0)
    with pytest.raises(ValueError, match=r"cannot be rebuilt from its get_config\(\) "
                                         r"\{'name': 'shift'\}.*amount.*return every constructor"):
        model.save(tmp_path / "m.npz")
    with pytest.raises(TypeError, match="subclass of cnnlab.layers.Layer"):
        L.register(int)


# ----- non-finite weights are never saved ------------------------------------------------------
def test_non_finite_model_never_overwrites_a_good_file(tmp_path):
    x, y = blobs(60, shape=(1, 4, 4), seed=0)
    model = mlp()
    model.fit(x, y, epochs=1, batch_size=20, optimizer=cl.optim.Adam(1e-2), verbose=0, seed=0)
    path = tmp_path / "good.npz"
    model.save(path, optimizer=model.optimizer, epoch=1)
    good = path.read_bytes()
    for value in (np.nan, np.inf):
        model.layers[1].params["w"][0, 0] = value
        with pytest.raises(ValueError, match=r"refusing to save .*good\.npz.*: weight 'dense\.w' "
                                             r"holds 1 NaN/inf value\(s\) \(of 256\)"):
            model.save(path, optimizer=model.optimizer, epoch=2)
        assert path.read_bytes() == good
    model.layers[1].params["w"][0, 0] = 0.0
    model.optimizer._state[0]["exp_avg"][0, 0] = np.nan  # a NaN in the optimizer state
    with pytest.raises(ValueError, match=r"optimizer state 'state\.0\.exp_avg' holds 1 NaN"):
        model.save(path, optimizer=model.optimizer, epoch=2)
    assert path.read_bytes() == good
    assert sorted(os.listdir(tmp_path)) == ["good.npz"]  # nothing half-written either
    model.save(path)  # finite weights without the optimizer: fine
    assert cl.load_model(path).count_params() == model.count_params()


# ----- leftover temporary files ----------------------------------------------------------------
_SLOW_SAVE = """
import sys, time
import numpy as np
sys.path.insert(0, {root!r})
sys.path.insert(0, {tests!r})
from _train_helpers import mlp
real = np.savez
def slow(f, **arrays):
    f.write(b"PK" + bytes(4 << 20))  # 4 MB reach the disk, then the process is killed
    f.flush()
    print("writing", flush=True)
    time.sleep(60)
np.savez = slow
mlp().save({path!r})
"""


def test_next_save_removes_leftovers_of_a_killed_save(tmp_path):
    path = tmp_path / "model.npz"
    model = mlp()
    model.save(path)
    good = path.read_bytes()
    code = _SLOW_SAVE.format(root=ROOT, tests=os.path.dirname(__file__), path=str(path))
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "writing"
        p.send_signal(signal.SIGKILL)
    finally:
        p.wait(timeout=30)
    leftovers = [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
    assert len(leftovers) == 1 and f".{p.pid}." in leftovers[0]
    assert path.read_bytes() == good  # the kill lost nothing
    # a leftover of an older cnnlab (no pid in the name), one of a live process (this one:
    # a save in progress elsewhere) and an unrelated file
    (tmp_path / ".model.npz.ab12cd_9.tmp").write_bytes(b"old")
    live = tmp_path / f".model.npz.{os.getpid()}.zz99zz99.tmp"
    live.write_bytes(b"in progress")
    (tmp_path / ".model.npz.notes.tmp").write_bytes(b"mine")
    (tmp_path / ".other.npz.ab12cd_9.tmp").write_bytes(b"other file's")
    t = time.perf_counter()
    model.save(path)
    assert time.perf_counter() - t < 5
    assert sorted(os.listdir(tmp_path)) == sorted([
        "model.npz", live.name, ".model.npz.notes.tmp", ".other.npz.ab12cd_9.tmp"])
    assert cl.load_model(path).count_params() == model.count_params()
