"""What a Keras / PyTorch user reaches for in the first hour (issue 12, section 2):
lazy subpackages, validation_split, optimizer names, metrics, DataLoaders and iterables
as x, schedules as lr, ``strides``, one-image predict, History.plot, EarlyStopping's
account, summary() in a REPL. Checked against PyTorch, hand computation, or runs that
reach the same numbers another way."""
import inspect
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from _train_helpers import blobs, mlp, small_convnet, weights_equal

import cnnlab as cl
import cnnlab.layers as L
from cnnlab.data import DataLoader
from cnnlab.optim import SGD, Adam, AdamW, OneCycle, RMSProp, StepLR
from cnnlab.training import Callback, EarlyStopping, LearningRateScheduler
from cnnlab.training.metrics import TopKAccuracy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def data():
    return blobs(240, classes=6, seed=3, sep=0.7)


def six_way(seed=0):
    return mlp(classes=6, seed=seed)


# ----------------------------------------------------------------- PEP 562 subpackages
def test_subpackages_are_attributes_and_import_cnnlab_stays_light():
    code = (
        "import sys\n"
        "import cnnlab as cl\n"
        "assert 'matplotlib' not in sys.modules, 'import cnnlab pulled in matplotlib'\n"
        "assert 'cnnlab.models' not in sys.modules and 'cnnlab.viz' not in sys.modules\n"
        "assert 'models' in dir(cl) and 'viz' in dir(cl)\n"
        "net = cl.models.lenet5(seed=0)\n"
        "assert net.count_params() == 61706, net.count_params()\n"
        "assert cl.viz.why_convolution is not None\n"
        "import cnnlab.models\n"
        "assert cl.models is cnnlab.models\n"
        "try:\n"
        "    cl.no_such_thing\n"
        "except AttributeError as e:\n"
        "    assert 'no_such_thing' in str(e)\n"
        "else:\n"
        "    raise SystemExit('no AttributeError')\n"
        "print('ok')\n")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


# ----------------------------------------------------------------- validation_split
def test_validation_split_holds_out_the_last_fraction_before_shuffling(data):
    x, y = data
    a, b = six_way(), six_way()
    ha = a.fit(x, y, epochs=2, batch_size=32, validation_split=0.25, verbose=0, seed=4)
    split = int(240 * (1 - 0.25))  # Keras: x[:split] trains, x[split:] validates
    assert split == 180
    hb = b.fit(x[:split], y[:split], epochs=2, batch_size=32, verbose=0, seed=4,
               validation_data=(x[split:], y[split:]))
    assert weights_equal(a, b)
    assert ha.history == hb.history and ha.params["samples"] == 180
    # the validation numbers are those of the held-out tail
    ev = a.evaluate(x[split:], y[split:])
    assert ha.history["val_loss"][-1] == pytest.approx(ev["loss"], rel=1e-6)


@pytest.mark.parametrize("kwargs, match", [
    (dict(validation_split=1.0), r"validation_split must be in \[0, 1\)"),
    (dict(validation_split=-0.1), r"validation_split must be in \[0, 1\)"),
    (dict(validation_split="a"), r"validation_split must be a number"),
    (dict(validation_split=0.999), r"leaves 0 for training and 240 for validation"),
])
def test_validation_split_errors(data, kwargs, match):
    x, y = data
    with pytest.raises((ValueError, TypeError), match=match):
        six_way().fit(x, y, verbose=0, **kwargs)


def test_validation_split_with_validation_data_or_a_loader_is_refused(data):
    x, y = data
    with pytest.raises(ValueError, match="not both"):
        six_way().fit(x, y, verbose=0, validation_split=0.2, validation_data=(x, y))
    with pytest.raises(ValueError, match="validation_split needs x as an array"):
        six_way().fit(DataLoader(x, y, 32), verbose=0, validation_split=0.2)


# ----------------------------------------------------------------- optimizer names
@pytest.mark.parametrize("name, cls, lr", [("sgd", SGD, 1e-2), ("adam", Adam, 1e-3),
                                           ("ADAMW", AdamW, 1e-3), ("rmsprop", RMSProp, 1e-2)])
def test_optimizer_names(data, name, cls, lr):
    x, y = data
    a, b = six_way(), six_way()
    a.fit(x, y, epochs=1, optimizer=name, verbose=0, seed=0)
    assert type(a.optimizer) is cls and a.optimizer.lr == lr
    b.fit(x, y, epochs=1, optimizer=cls(), verbose=0, seed=0)
    assert weights_equal(a, b)


def test_adamw_name_matches_torch_adamw():
    """fit(optimizer='adamw') steps like torch.optim.AdamW with its defaults
    (lr 1e-3, weight decay 1e-2) on a least-squares problem."""
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((5, 3))
    target = rng.standard_normal((5, 3))
    ours = cl.optim.resolve("adamw")
    p = w0.copy()
    tp = torch.tensor(w0, requires_grad=True)
    topt = torch.optim.AdamW([tp])
    for _ in range(20):
        ours.step([p], [2 * (p - target)])
        topt.zero_grad()
        ((tp - torch.tensor(target)) ** 2).sum().backward()
        topt.step()
    np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_unknown_optimizer_name(data):
    x, y = data
    with pytest.raises(TypeError, match=r"'adam', 'adamw', 'rmsprop', 'sgd'"):
        six_way().fit(x, y, optimizer="adagrad", verbose=0)


# ----------------------------------------------------------------- metrics
def torch_topk_accuracy(scores, y, k):
    top = torch.topk(torch.tensor(scores), k, dim=1).indices.numpy()
    return float(np.mean((top == y[:, None]).any(axis=1)))


def test_top_k_metric_matches_torch_topk():
    rng = np.random.default_rng(1)
    scores = rng.standard_normal((500, 10)).astype(np.float32)
    y = rng.integers(0, 10, 500)
    for k in (1, 3, 5, 10):
        got = TopKAccuracy(k).batch_sum(scores, y) / 500
        assert got == pytest.approx(torch_topk_accuracy(scores, y, k))


@pytest.mark.parametrize("spec, key, k", [("top5", "top5_accuracy", 5),
                                          ("top_k_accuracy", "top5_accuracy", 5),
                                          (TopKAccuracy(3), "top3_accuracy", 3),
                                          ("top_2", "top2_accuracy", 2)])
def test_metrics_in_history_bar_and_evaluate(data, spec, key, k, capsys):
    x, y = data
    xv, yv = x[200:], y[200:]
    model = six_way()
    # lr 0 and no shuffling: every batch sees the same weights, so the epoch's training
    # metric is the metric of the initial model on all of x
    scores = model.forward(x)
    h = model.fit(x, y, epochs=1, batch_size=50, optimizer=SGD(0.0), shuffle=False,
                  metrics=[spec], validation_data=(xv, yv), verbose=2, seed=0)
    assert h.history[key][0] == pytest.approx(torch_topk_accuracy(scores, y, k))
    assert h.history["accuracy"][0] == pytest.approx(torch_topk_accuracy(scores, y, 1))
    assert h.history["val_" + key][0] == pytest.approx(
        torch_topk_accuracy(scores[200:], yv, k))
    assert f"{key}=" in capsys.readouterr().err
    ev = model.evaluate(xv, yv, batch_size=7, metrics=[spec])
    assert set(ev) == {"loss", "accuracy", key}
    assert ev[key] == pytest.approx(torch_topk_accuracy(scores[200:], yv, k))


def test_metric_in_the_progress_bar(data, capsys):
    x, y = data
    six_way().fit(x, y, epochs=1, metrics=["top3"], verbose=1, seed=0)
    assert "top3_accuracy=" in capsys.readouterr().err


def test_unknown_metric(data):
    x, y = data
    with pytest.raises(ValueError, match="unknown metric 'f1'"):
        six_way().fit(x, y, metrics=["f1"], verbose=0)


# ----------------------------------------------------------------- DataLoader / iterables
def test_fit_on_a_dataloader_equals_fit_on_arrays(data):
    x, y = data
    a, b, c = six_way(), six_way(), six_way()
    ha = a.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0, seed=0)
    hb = b.fit(DataLoader(x, y, batch_size=16, shuffle=False), epochs=3, verbose=0, seed=0)
    batches = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 240, 16)]
    hc = c.fit(batches, epochs=3, verbose=0, seed=0)
    assert weights_equal(a, b) and weights_equal(a, c)
    assert ha.history == hb.history == hc.history
    assert hb.params["steps"] == 15


def test_evaluate_and_predict_on_iterables(data):
    x, y = data
    model = six_way()
    loader = DataLoader(x, y, batch_size=32, shuffle=False)
    ev, ev_ref = model.evaluate(loader), model.evaluate(x, y)
    assert ev["loss"] == pytest.approx(ev_ref["loss"], rel=1e-6)
    assert ev["accuracy"] == ev_ref["accuracy"]
    p = model.predict(x)
    np.testing.assert_allclose(model.predict(loader), p, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(model.predict(xb for xb, _ in loader), p, rtol=1e-5, atol=1e-7)


def test_shuffling_loader_trains_and_validates(data):
    x, y = data
    model = six_way()
    h = model.fit(DataLoader(x[:200], y[:200], 20, seed=1), epochs=2, verbose=0, seed=0,
                  validation_data=DataLoader(x[200:], y[200:], 20, shuffle=False))
    assert len(h.history["val_loss"]) == 2
    assert h.history["val_accuracy"][-1] == model.evaluate(x[200:], y[200:])["accuracy"]


def test_one_shot_generator_serves_one_epoch_and_is_refused_for_more(data):
    x, y = data

    def gen():
        for i in range(0, 240, 40):
            yield x[i:i + 40], y[i:i + 40]

    a, b = six_way(), six_way()
    a.fit(gen(), epochs=1, verbose=0, seed=0)
    b.fit(x, y, epochs=1, batch_size=40, shuffle=False, verbose=0, seed=0)
    assert weights_equal(a, b)
    with pytest.raises(ValueError, match="one-shot iterator.*2 epochs"):
        six_way().fit(gen(), epochs=2, verbose=0)


def test_bad_batches_in_a_stream_are_named(data):
    x, y = data
    with pytest.raises(ValueError, match="y must be None when x is a DataLoader"):
        six_way().fit(DataLoader(x, y, 32), y, verbose=0)
    bad = [(x[:10], y[:10]), (x[10:20, :, :2], y[10:20])]
    with pytest.raises(ValueError, match=r"x batch 2 samples must have shape \(1, 4, 4\)"):
        six_way().fit(bad, verbose=0)
    nan = x[:10].copy()
    nan[3, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="x batch 2 contains NaN"):
        six_way().fit([(x[:10], y[:10]), (nan, y[:10])], verbose=0)
    with pytest.raises(ValueError, match="must be a pair"):
        six_way().fit([(x[:10], y[:10], y[:10])], verbose=0)


# ----------------------------------------------------------------- schedules as lr
def test_epoch_schedule_as_lr_follows_torch_steplr(data):
    x, y = data
    model = six_way()
    h = model.fit(x, y, epochs=4, optimizer=SGD(lr=StepLR(0.1, 1, gamma=0.5)), verbose=0,
                  seed=0)
    tp = torch.zeros(1, requires_grad=True)
    topt = torch.optim.SGD([tp], lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(topt, step_size=1, gamma=0.5)
    expected = []
    for _ in range(4):
        expected.append(topt.param_groups[0]["lr"])
        topt.step()
        sched.step()
    np.testing.assert_allclose(h.history["lr"], expected, rtol=1e-12)
    # the same as driving the rate by the callback
    ref = six_way()
    ref.fit(x, y, epochs=4, optimizer=SGD(0.1), verbose=0, seed=0,
            callbacks=[LearningRateScheduler(StepLR(0.1, 1, gamma=0.5))])
    assert weights_equal(model, ref)


def test_step_schedule_as_lr_follows_torch_onecycle(data):
    x, y = data
    steps = 2 * 8  # 2 epochs of 240 / 32 -> 8 batches
    seen = []

    class Rates(Callback):
        def on_batch_end(self, batch, logs=None):
            seen.append(logs["lr"])

    model = six_way()
    model.fit(x, y, epochs=2, batch_size=32, verbose=0, seed=0, callbacks=[Rates()],
              optimizer=Adam(lr=OneCycle(0.05, steps)))
    tp = torch.zeros(1, requires_grad=True)
    topt = torch.optim.Adam([tp], lr=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(topt, max_lr=0.05, total_steps=steps,
                                                cycle_momentum=False)
    expected = []
    for _ in range(steps):
        expected.append(topt.param_groups[0]["lr"])
        topt.step()
        sched.step()
    np.testing.assert_allclose(seen, expected, rtol=1e-9)
    ref = six_way()
    ref.fit(x, y, epochs=2, batch_size=32, verbose=0, seed=0, optimizer=Adam(0.05),
            callbacks=[LearningRateScheduler(OneCycle(0.05, steps))])
    assert weights_equal(model, ref)


def test_scheduled_optimizer_config_round_trips():
    opt = Adam(lr=OneCycle(0.05, 100))
    again = cl.optim.get("Adam", **opt.get_config())
    assert repr(again.schedule) == repr(opt.schedule) and again.lr == opt.lr
    with pytest.raises(TypeError, match="LearningRateScheduler"):
        SGD(lr=lambda t: 0.1)


# ----------------------------------------------------------------- strides
def test_strides_keyword_beside_stride():
    x = np.random.default_rng(0).standard_normal((2, 3, 11, 11)).astype(np.float32)
    a = L.Conv2D(4, 3, strides=2)
    b = L.Conv2D(4, 3, stride=2)
    assert a.stride == b.stride == (2, 2) and a.get_config() == b.get_config() | {
        "name": a.name}
    a.build((3, 11, 11), 0)
    out = a.forward(x)
    ref = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(a.params["w"]),
                                     torch.tensor(a.params["b"]), stride=2)
    np.testing.assert_allclose(out, ref.numpy(), rtol=1e-5, atol=1e-5)
    p = L.MaxPool2D(3, strides=1)
    p.build((3, 11, 11))
    ref = torch.nn.functional.max_pool2d(torch.tensor(x), 3, stride=1)
    np.testing.assert_array_equal(p.forward(x), ref.numpy())
    assert L.MaxPool2D(2, stride=1, strides=(1, 1)).stride == (1, 1)  # same value twice: fine
    assert L.Conv1D(2, 3).stride == (1,) and L.MaxPool2D(2).stride is None  # defaults
    for make in (lambda: L.Conv2D(4, 3, stride=1, strides=2),
                 lambda: L.AvgPool2D(2, stride=2, strides=1)):
        with pytest.raises(ValueError, match="stride=.*strides=.*give one of them"):
            make()


# ----------------------------------------------------------------- predict on one image
def test_predict_on_one_image_suggests_a_batch():
    model = small_convnet()
    img = np.zeros((1, 8, 8), np.float32)
    with pytest.raises(ValueError, match=r"x\[None\]"):
        model.predict(img)
    assert model.predict(img[None]).shape == (1, 3)


# ----------------------------------------------------------------- History.plot and CLI
def test_history_plot_draws_every_metric_and_saves_atomically(data, tmp_path):
    from matplotlib.figure import Figure
    from PIL import Image

    x, y = data
    h = six_way().fit(x, y, epochs=3, validation_split=0.2, metrics=["top3"], verbose=0,
                      seed=0)
    path = tmp_path / "curves.png"
    fig = h.plot(path)
    assert isinstance(fig, Figure)
    axes = fig.get_axes()
    assert [ax.get_title() for ax in axes] == ["loss", "accuracy", "top3_accuracy"]
    for ax in axes:
        name = ax.get_title()
        lines = {ln.get_label(): ln for ln in ax.get_lines()}
        np.testing.assert_array_equal(lines["train"].get_ydata(), h.history[name])
        np.testing.assert_array_equal(lines["validation"].get_ydata(), h.history["val_" + name])
        np.testing.assert_array_equal(lines["train"].get_xdata(), [1, 2, 3])
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > im.size[1] > 100
    assert os.listdir(tmp_path) == ["curves.png"]  # no temporary file left behind
    assert h.plot() is not None  # no path: just the figure
    with pytest.raises(ValueError, match=r"\.png"):
        h.plot(tmp_path / "curves.jpg")


def test_cli_train_plot(tmp_path, capsys):
    from PIL import Image

    from cnnlab.cli.main import main

    png = tmp_path / "run.png"
    code = main(["train", "--epochs", "1", "--limit", "300", "--quiet", "--out",
                 str(tmp_path / "m.npz"), "--plot", str(png)])
    assert code == 0
    assert f"training curves: {png}" in capsys.readouterr().out
    with Image.open(png) as im:
        assert im.format == "PNG"
    assert main(["train", "--plot", str(tmp_path / "nowhere" / "x.png")]) == 2
    assert "--plot" in capsys.readouterr().err


# ----------------------------------------------------------------- EarlyStopping
class Scripted(Callback):
    """Overwrites the epoch's 'val_loss' with scripted values and snapshots the weights."""

    def __init__(self, values):
        self.values, self.snapshots = values, []

    def on_epoch_end(self, epoch, logs=None):
        logs["val_loss"] = self.values[epoch]
        self.snapshots.append(self.model.get_weights())


def test_early_stopping_says_when_and_why_and_restores_the_best_weights(data, capsys):
    x, y = data
    script = Scripted([3.0, 1.0, 2.0, 4.0, 0.5, 0.1])
    stop = EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True, verbose=1)
    model = six_way()
    h = model.fit(x, y, epochs=6, verbose=0, seed=0, callbacks=[script, stop])
    assert h.epoch == [0, 1, 2, 3]  # epochs 3 and 4 (1-based) did not beat 1.0
    assert stop.stopped_epoch == 3 and stop.best_epoch == 1 and stop.restored_epoch == 1
    assert "stopped after epoch 4" in stop.stop_reason
    assert "val_loss did not get lower for 2 epoch(s)" in stop.stop_reason
    assert "best 1 at epoch 2" in stop.stop_reason
    out = capsys.readouterr().out
    assert stop.stop_reason in out and "restored the weights of epoch 2" in out
    best = script.snapshots[1]
    now = model.get_weights()
    assert all(np.array_equal(now[k], best[k]) for k in best)
    assert not all(np.array_equal(script.snapshots[3][k], best[k]) for k in best)


def test_early_stopping_baseline_reason_and_no_stop(data):
    x, y = data
    stop = EarlyStopping(monitor="val_loss", patience=2, baseline=0.5)
    six_way().fit(x, y, epochs=5, verbose=0, seed=0,
                  callbacks=[Scripted([3.0, 1.0, 2.0, 4.0, 5.0]), stop])
    assert stop.stopped_epoch == 1 and "never got lower than the baseline 0.5" in stop.stop_reason
    calm = EarlyStopping(monitor="val_loss", patience=3)
    h = six_way().fit(x, y, epochs=3, verbose=0, seed=0,
                      callbacks=[Scripted([3.0, 2.0, 1.0]), calm])
    assert len(h) == 3 and calm.stopped_epoch is None and calm.stop_reason is None


# ----------------------------------------------------------------- summary in a REPL
def test_summary_shows_the_table_once_in_a_repl(capsys):
    model = small_convnet()
    # the REPL prints a statement's value with sys.displayhook (None: nothing)
    sys.displayhook(model.summary())
    out = capsys.readouterr().out
    assert out.count('Model: "') == 1 and "{'layer'" not in out
    rows = model.summary(print_fn=None)
    assert capsys.readouterr().out == ""
    assert repr(rows) == str(rows) == rows.text and rows[1]["layer"] == "conv2d"
    sys.displayhook(rows)
    out = capsys.readouterr().out
    assert out.count('Model: "') == 1 and "{'layer'" not in out


# ----------------------------------------------------------------- zoo docstrings
def test_every_zoo_model_documents_its_departures_from_the_paper():
    """Each architecture's docstring has a 'Departures from the paper' section naming
    layers, each departure with its reason ('because', 'so that', ...)."""
    for name, fn in inspect.getmembers(cl.models, inspect.isfunction):
        if name not in cl.models.available():
            continue
        doc = inspect.getdoc(fn) or ""
        assert "Departures from the paper" in doc, name
        section = doc.split("Departures from the paper", 1)[1]
        items = [ln for ln in section.splitlines() if ln.lstrip().startswith("- ")]
        assert items, f"{name}: no departures listed"


def test_a_scheduled_optimizer_survives_a_checkpoint_and_resumes_bitwise(data, tmp_path):
    x, y = data
    a = six_way()
    opt = SGD(lr=StepLR(0.1, 1, gamma=0.5), momentum=0.9)
    a.fit(x, y, epochs=2, optimizer=opt, verbose=0, seed=0)
    a.save(tmp_path / "s.npz", optimizer=a.optimizer, epoch=2)
    ck = cl.training.load_checkpoint(tmp_path / "s.npz")
    assert repr(ck.optimizer.schedule) == repr(opt.schedule)
    hb = ck.model.fit(x, y, epochs=4, initial_epoch=2, optimizer=ck.optimizer, verbose=0)
    ha = a.fit(x, y, epochs=4, initial_epoch=2, verbose=0)
    assert ha.history["lr"] == hb.history["lr"] == [0.025, 0.0125]  # 0.1 * 0.5**epoch
    assert weights_equal(a, ck.model)


def test_per_step_scheduler_callback_on_an_unsized_iterable_is_explained(data):
    x, y = data

    class Batches:  # re-iterable, but no len()
        def __iter__(self):
            return iter([(x[i:i + 40], y[i:i + 40]) for i in range(0, 240, 40)])

    with pytest.raises(ValueError, match="iterable without len"):
        six_way().fit(Batches(), epochs=2, verbose=0,
                      callbacks=[LearningRateScheduler(OneCycle(0.1, 12))])
    h = six_way().fit(Batches(), epochs=2, verbose=0, optimizer=SGD(lr=OneCycle(0.1, 12)))
    assert h.params["steps"] is None and len(h) == 2
