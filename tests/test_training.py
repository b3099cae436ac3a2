"""Model.fit / evaluate / predict, History, callbacks, divergence, and a real MNIST run."""
import time

import numpy as np
import pytest
from _train_helpers import blobs, mlp, mnist, mnist_convnet, small_convnet, weights_equal

import cnnlab as cl
import cnnlab.functional as F
from cnnlab.layers import Dense, Flatten, ReLU, Softmax
from cnnlab.optim import SGD, Adam, CosineAnnealing, OneCycle, StepLR
from cnnlab.training import (
    Callback, EarlyStopping, LambdaCallback, LearningRateScheduler, ModelCheckpoint,
    ReduceLROnPlateau, TrainingDivergedError,
)


@pytest.fixture(scope="module")
def data():
    x, y = blobs(300, seed=1)
    return x[:240], y[:240], x[240:], y[240:]


def test_sequential_is_model():
    assert cl.Sequential is cl.Model
    assert isinstance(mlp(), cl.layers.Sequential)


def test_fit_history_and_learning(data):
    x, y, xv, yv = data
    model = mlp()
    h = model.fit(x, y, epochs=4, batch_size=32, optimizer=Adam(1e-2),
                  validation_data=(xv, yv), verbose=0, seed=0)
    assert isinstance(h, cl.History) and h.epoch == [0, 1, 2, 3]
    assert set(h.history) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr"}
    assert all(len(v) == 4 for v in h.history.values())
    assert h.history["lr"] == [1e-2] * 4
    assert h.history["loss"][-1] < h.history["loss"][0]
    assert h.history["val_accuracy"][-1] >= 0.9
    ev = model.evaluate(xv, yv)
    assert ev["loss"] == pytest.approx(h.history["val_loss"][-1])
    assert ev["accuracy"] == pytest.approx(h.history["val_accuracy"][-1])
    assert model.optimizer.__class__ is Adam and model.train_seed == 0


def test_default_optimizer_is_adam_1e3(data):
    x, y, _, _ = data
    model = mlp()
    model.fit(x, y, epochs=1, verbose=0, seed=0)
    assert type(model.optimizer) is Adam and model.optimizer.lr == 1e-3
    first = model.optimizer
    model.fit(x, y, epochs=1, verbose=0, seed=0)
    assert model.optimizer is first  # a second fit continues with the same optimizer


def test_evaluate_and_predict_match_manual_computation(data):
    x, y, xv, yv = data
    model = mlp()
    model.fit(x, y, epochs=1, verbose=0, seed=0)
    scores = model.forward(xv, training=False)
    loss, _ = F.softmax_loss(scores, yv)
    ev = model.evaluate(xv, yv, batch_size=7)
    assert ev["loss"] == pytest.approx(loss, rel=1e-5)
    assert ev["accuracy"] == pytest.approx(np.mean(scores.argmax(1) == yv))
    assert model.evaluate(xv, yv, loss="svm")["loss"] == pytest.approx(F.svm_loss(scores, yv)[0],
                                                                        rel=1e-5)
    p = model.predict(xv, batch_size=7)
    assert p.shape == (60, 3) and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(1), 1, rtol=1e-5)
    np.testing.assert_allclose(p, F.softmax(scores), rtol=1e-5, atol=1e-7)
    # another batch size is another GEMM shape: BLAS may sum in another order (one ulp)
    np.testing.assert_allclose(p, model.predict(xv, batch_size=1000), rtol=1e-5, atol=1e-7)
    # the same shapes take the same path: bitwise
    np.testing.assert_array_equal(p, model.predict(xv, batch_size=7))
    np.testing.assert_array_equal(model.predict_classes(xv), p.argmax(1))
    # inference mode keeps no cache anywhere
    assert all(layer._cache is None for layer in model.layers)


def test_inference_mode_for_dropout_and_batchnorm(data):
    x, y, _, _ = data
    xs = np.repeat(np.repeat(x[:40], 2, axis=2), 2, axis=3)  # (1, 8, 8)
    model = small_convnet()
    model.fit(xs, y[:40], epochs=1, verbose=0, seed=0)
    state = {k: v for k, v in model.get_weights().items() if "running" in k}
    p1, p2 = model.predict(xs), model.predict(xs)
    np.testing.assert_array_equal(p1, p2)  # dropout off, running stats used and unchanged
    after = model.get_weights()
    assert all(np.array_equal(state[k], after[k]) for k in state)


def test_probability_output_model_trains_like_logits(data):
    """A model ending in Softmax trains exactly like the same model on logits, and
    predict returns its probabilities as they are (no second softmax)."""
    x, y, xv, yv = data
    a = cl.Sequential([Flatten(), Dense(16), ReLU(), Dense(3)], input_shape=(1, 4, 4), seed=3)
    b = cl.Sequential([Flatten(), Dense(16), ReLU(), Dense(3), Softmax()],
                      input_shape=(1, 4, 4), seed=3)
    c = cl.Sequential([Flatten(), Dense(16), ReLU(), Dense(3, activation="softmax")],
                      input_shape=(1, 4, 4), seed=3)
    for m in (a, b, c):
        m.fit(x, y, epochs=2, batch_size=16, optimizer=SGD(0.1), verbose=0, seed=0)
    wa = a.get_weights()
    for m in (b, c):
        for k, v in m.get_weights().items():
            np.testing.assert_allclose(v, wa[k], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(m.predict(xv), a.predict(xv), rtol=1e-4, atol=1e-6)
        assert m.evaluate(xv, yv)["loss"] == pytest.approx(a.evaluate(xv, yv)["loss"], rel=1e-4)


def test_svm_loss_trains(data):
    x, y, xv, yv = data
    model = mlp()
    h = model.fit(x, y, epochs=3, loss="svm", optimizer=SGD(0.05, momentum=0.9), verbose=0,
                  seed=0, validation_data=(xv, yv))
    assert h.history["loss"][-1] < h.history["loss"][0]
    assert h.history["val_accuracy"][-1] > 0.8


def test_bad_loss_name_is_clear(data):
    x, y, _, _ = data
    with pytest.raises(ValueError, match=r"loss must be 'softmax'.*'svm'.*got 'mse'"):
        mlp().fit(x, y, loss="mse", verbose=0)
    with pytest.raises(ValueError, match="loss must be"):
        mlp().evaluate(x, y, loss="nope")


@pytest.mark.parametrize("kwargs,exc,pattern", [
    (dict(y=np.zeros(5, np.int64)), ValueError, r"one label per sample of x: expected 240, got 5"),
    (dict(y=np.full(240, 3)), ValueError, r"labels must be in \[0, 2\].*got 3"),
    (dict(y=np.full(240, -1)), ValueError, r"got -1"),
    (dict(y=np.zeros((240, 3))), ValueError, r"one-hot"),
    (dict(y=np.full(240, 0.5)), TypeError, r"integer class labels"),
    (dict(x=np.zeros((240, 1, 4, 4), np.uint8)), TypeError, r"floating-point.*/ 255"),
    (dict(x=np.zeros((240, 1, 5, 5), np.float32)), ValueError, r"do not fit the model"),
    (dict(x=np.zeros(240, np.float32)), ValueError, r"\(N, C, H, W\)"),
    (dict(x=np.full((240, 1, 4, 4), np.nan, np.float32)), ValueError, r"NaN"),
    (dict(batch_size=0), ValueError, r"batch_size must be >= 1, got 0"),
    (dict(epochs=1.5), TypeError, r"epochs must be an integer"),
    (dict(verbose=3), ValueError, r"verbose must be 0"),
    (dict(optimizer="adamm"), TypeError, r"cnnlab.optim.Optimizer"),
    (dict(validation_data=np.zeros(3)), ValueError, r"tuple \(x_val, y_val\)"),
    (dict(validation_data=(np.zeros((4, 1, 4, 4), np.float32), np.zeros(3, np.int64))),
     ValueError, r"validation_data\[1\].*expected 4, got 3"),
    (dict(callbacks=[object()]), TypeError, r"callbacks\[0\]"),
    (dict(augment=3), TypeError, r"augment must be a callable"),
])
def test_fit_validates_arguments(data, kwargs, exc, pattern):
    x, y, _, _ = data
    args = {"x": x, "y": y, "verbose": 0, **kwargs}
    with pytest.raises(exc, match=pattern):
        mlp().fit(args.pop("x"), args.pop("y"), **args)


def test_model_must_output_class_scores():
    model = cl.Sequential([Dense(3)], input_shape=(1, 4, 4))
    model2 = cl.Sequential([ReLU()], input_shape=(1, 4, 4))
    x = np.zeros((2, 1, 4, 4), np.float32)
    model.predict(x)  # Dense flattens: fine
    with pytest.raises(ValueError, match=r"outputs \(1, 4, 4\).*Flatten"):
        model2.predict(x)


def test_unbuilt_model_builds_on_fit(data):
    x, y, _, _ = data
    model = cl.Sequential([Flatten(), Dense(3)], seed=0)
    assert not model.built
    model.fit(x, y, epochs=1, verbose=0, seed=0)
    assert model.built and model.input_shape == (1, 4, 4)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_nan_loss_stops_at_once_with_clear_message(data):
    x, y, _, _ = data
    model = mlp()
    seen = []
    cb = LambdaCallback(on_batch_end=lambda b, logs: seen.append(b))
    with pytest.raises(TrainingDivergedError) as info:
        model.fit(x, y, epochs=3, batch_size=32, optimizer=SGD(1e30), verbose=0, seed=0,
                  callbacks=[cb])
    err = info.value
    assert isinstance(err, FloatingPointError)
    msg = str(err)
    assert "epoch 1/3" in msg and f"batch {err.batch + 1}/8" in msg
    assert "lower learning rate" in msg and "1e+30" in msg
    assert err.epoch == 0 and err.batch >= 1 and not np.isfinite(err.loss)
    assert seen == list(range(err.batch))  # no update happened after the bad batch


def test_progress_output(data, capsys):
    x, y, xv, yv = data
    mlp().fit(x, y, epochs=2, verbose=0, seed=0, validation_data=(xv, yv))
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    mlp().fit(x, y, epochs=2, verbose=1, seed=0, validation_data=(xv, yv))
    err = capsys.readouterr().err
    assert "Epoch 1/2" in err and "Epoch 2/2" in err
    assert "img/s" in err and "loss=" in err and "val_accuracy=" in err
    mlp().fit(x, y, epochs=1, verbose=2, seed=0)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("Epoch 1/1: loss=")


def test_same_seed_same_result_and_shuffle_off(data):
    x, y, _, _ = data
    a, b, c = mlp(dropout=0.3), mlp(dropout=0.3), mlp(dropout=0.3)
    a.fit(x, y, epochs=2, verbose=0, seed=7)
    b.fit(x, y, epochs=2, verbose=0, seed=7)
    c.fit(x, y, epochs=2, verbose=0, seed=8)
    assert weights_equal(a, b) and not weights_equal(a, c)
    d, e = mlp(), mlp()
    d.fit(x, y, epochs=1, verbose=0, shuffle=False, seed=1)
    e.fit(x, y, epochs=1, verbose=0, shuffle=False, seed=2)
    assert weights_equal(d, e)


def test_augment_called_per_batch_with_rng(data):
    x, y, _, _ = data
    calls = []

    def flip(xb, rng):
        assert isinstance(rng, np.random.Generator)
        calls.append(xb.shape)
        return xb[..., ::-1]

    mlp().fit(x, y, epochs=1, batch_size=100, verbose=0, seed=0, augment=flip)
    assert calls == [(100, 1, 4, 4), (100, 1, 4, 4), (40, 1, 4, 4)]
    n = []
    mlp().fit(x, y, epochs=1, batch_size=100, verbose=0, seed=0,
              augment=lambda xb: n.append(1) or xb)
    assert len(n) == 3


def test_augment_with_cnnlab_data_transforms(data):
    """cnnlab.data's batch transforms take the generator as keyword ``rng``."""
    from cnnlab.data import random_crop, random_flip
    x, y, _, _ = data
    a, b = mlp(), mlp()
    a.fit(x, y, epochs=1, verbose=0, seed=0, augment=random_flip)
    b.fit(x, y, epochs=1, verbose=0, seed=0,
          augment=lambda xb, rng: random_crop(random_flip(xb, rng=rng), padding=1, rng=rng))
    c = mlp()
    c.fit(x, y, epochs=1, verbose=0, seed=0, augment=random_flip)
    assert weights_equal(a, c) and not weights_equal(a, b)


def test_initial_epoch_and_epochs_semantics(data):
    x, y, _, _ = data
    h = mlp().fit(x, y, epochs=3, initial_epoch=1, verbose=0, seed=0)
    assert h.epoch == [1, 2]
    assert len(mlp().fit(x, y, epochs=2, initial_epoch=2, verbose=0)) == 0


# ----- callbacks --------------------------------------------------------------------------
class Recorder(Callback):
    def __init__(self):
        self.events = []

    def on_train_begin(self, logs=None):
        self.events.append(("train_begin", self.params["steps"]))

    def on_epoch_begin(self, epoch, logs=None):
        self.events.append(("epoch_begin", epoch))

    def on_batch_begin(self, batch, logs=None):
        self.events.append(("batch_begin", batch))

    def on_batch_end(self, batch, logs=None):
        assert {"loss", "accuracy", "size", "lr"} <= set(logs)
        self.events.append(("batch_end", batch))

    def on_epoch_end(self, epoch, logs=None):
        self.events.append(("epoch_end", epoch, tuple(sorted(logs))))

    def on_train_end(self, logs=None):
        self.events.append(("train_end",))


def test_callback_hook_order(data):
    x, y, xv, yv = data
    rec = Recorder()
    model = mlp()
    model.fit(x[:70], y[:70], epochs=2, batch_size=32, verbose=0, seed=0, callbacks=[rec],
              validation_data=(xv, yv))
    keys = ("accuracy", "loss", "lr", "val_accuracy", "val_loss")
    epoch = lambda e: [("epoch_begin", e), ("batch_begin", 0), ("batch_end", 0),  # noqa: E731
                       ("batch_begin", 1), ("batch_end", 1), ("batch_begin", 2),
                       ("batch_end", 2), ("epoch_end", e, keys)]
    assert rec.events == [("train_begin", 3)] + epoch(0) + epoch(1) + [("train_end",)]
    assert rec.model is model


def metric_feed(values, key="score"):
    """A callback writing a scripted metric into the epoch logs (for the callbacks after it)."""
    return LambdaCallback(on_epoch_end=lambda e, logs: logs.__setitem__(key, values[e]))


def test_early_stopping_patience(data):
    x, y, xv, yv = data
    es = EarlyStopping(monitor="val_loss", patience=2)
    h = mlp().fit(x, y, epochs=20, optimizer=SGD(0.0), validation_data=(xv, yv), verbose=0,
                  seed=0, callbacks=[es])
    assert len(h) == 3 and es.stopped_epoch == 2 and es.best_epoch == 0


def test_early_stopping_restore_best_weights_and_min_delta(data):
    x, y, _, _ = data
    snapshots = []
    model = mlp()
    es = EarlyStopping(monitor="score", patience=2, restore_best_weights=True, min_delta=0.1)
    keep = LambdaCallback(on_epoch_end=lambda e, logs: snapshots.append(model.get_weights()))
    # epoch 2 improves by less than min_delta: not an improvement
    h = model.fit(x, y, epochs=10, verbose=0, seed=0,
                  callbacks=[metric_feed([3.0, 1.0, 0.95, 2.0, 0.0]), keep, es])
    assert len(h) == 4 and es.best_epoch == 1 and es.stopped_epoch == 3
    w = model.get_weights()
    assert all(np.array_equal(w[k], snapshots[1][k]) for k in w)
    assert h.history["score"] == [3.0, 1.0, 0.95, 2.0]


def test_early_stopping_mode_max_and_missing_monitor(data):
    x, y, _, _ = data
    es = EarlyStopping(monitor="val_accuracy", patience=0)
    assert es.mode == "max"
    with pytest.raises(ValueError, match=r"monitors 'val_loss'.*pass validation_data"):
        mlp().fit(x, y, epochs=2, verbose=0, callbacks=[EarlyStopping()])
    es = EarlyStopping(monitor="score", mode="max", patience=1)
    h = mlp().fit(x, y, epochs=10, verbose=0, seed=0,
                  callbacks=[metric_feed([1.0, 2.0, 1.5, 3.0]), es])
    assert len(h) == 3


def test_model_checkpoint(data, tmp_path):
    x, y, _, _ = data
    model = mlp()
    ck = ModelCheckpoint(str(tmp_path / "m-{epoch:02d}-{score:.1f}.npz"), monitor="score",
                         save_best_only=True)
    model.fit(x, y, epochs=4, verbose=0, seed=0,
              callbacks=[metric_feed([2.0, 1.0, 1.5, 0.5]), ck])
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["m-01-2.0.npz", "m-02-1.0.npz", "m-04-0.5.npz"]
    last = cl.training.load_checkpoint(tmp_path / "m-04-0.5.npz")
    assert last.epoch == 4 and type(last.optimizer) is Adam
    assert weights_equal(last.model, model)
    every = ModelCheckpoint(tmp_path / "last.npz", save_optimizer=False)
    model.fit(x, y, epochs=2, verbose=0, seed=0, callbacks=[every])
    ck2 = cl.training.load_checkpoint(tmp_path / "last.npz")
    assert ck2.optimizer is None and ck2.epoch == 2
    with pytest.raises(ValueError, match="cannot fill path"):
        model.fit(x, y, epochs=1, verbose=0,
                  callbacks=[ModelCheckpoint(tmp_path / "{nope}.npz")])


def test_learning_rate_scheduler_per_epoch(data):
    x, y, _, _ = data
    sched = StepLR(0.1, step_size=2, gamma=0.5)
    h = mlp().fit(x, y, epochs=5, optimizer=SGD(1.0), verbose=0, seed=0,
                  callbacks=[LearningRateScheduler(sched)])
    assert h.history["lr"] == [0.1, 0.1, 0.05, 0.05, 0.025]
    # Keras-style (epoch, lr) -> lr and resuming at initial_epoch
    h = mlp().fit(x, y, epochs=4, initial_epoch=2, optimizer=SGD(1.0), verbose=0,
                  callbacks=[LearningRateScheduler(lambda e, lr: lr * 0.5)])
    assert h.history["lr"] == [0.5, 0.25]
    h = mlp().fit(x, y, epochs=3, optimizer=SGD(1.0), verbose=0,
                  callbacks=[LearningRateScheduler(CosineAnnealing(0.2, 3))])
    assert h.history["lr"] == pytest.approx([CosineAnnealing(0.2, 3)(t) for t in range(3)])


def test_learning_rate_scheduler_per_step(data):
    x, y, _, _ = data
    lrs = []
    sched = OneCycle(0.5, total_steps=16)
    mlp().fit(x, y, epochs=2, batch_size=30, optimizer=SGD(1.0), verbose=0, seed=0,
              callbacks=[LearningRateScheduler(sched),
                         LambdaCallback(on_batch_end=lambda b, logs: lrs.append(logs["lr"]))])
    assert lrs == pytest.approx([sched(t) for t in range(16)])
    with pytest.raises(TypeError, match="callable"):
        LearningRateScheduler(0.1)


def test_reduce_lr_on_plateau_callback(data):
    x, y, _, _ = data
    cb = ReduceLROnPlateau(monitor="score", factor=0.5, patience=1)
    h = mlp().fit(x, y, epochs=6, optimizer=SGD(0.1), verbose=0, seed=0,
                  callbacks=[metric_feed([1.0, 1.0, 1.0, 0.5, 0.5, 0.5]), cb])
    assert h.history["lr"] == [0.1, 0.1, 0.1, 0.05, 0.05, 0.05]


# ----- a real run -------------------------------------------------------------------------
MNIST_MIN_ACCURACY = 0.95


def test_real_mnist_convnet_training(record_property):
    """Conv(8)-ReLU-Pool-Conv(16)-ReLU-Pool-Flatten-Dense(10) on the first 6,000 real MNIST
    training images, 5 epochs of Adam with cosine decay: >= 95 % on the first 2,000 test
    images, well under a minute (about 10 s on 2 idle cores)."""
    x, y = mnist("train", 6000)
    xt, yt = mnist("test", 2000)
    assert x.shape == (6000, 1, 28, 28) and xt.shape == (2000, 1, 28, 28)
    model = mnist_convnet(seed=0)
    epochs = 5
    t0, c0 = time.perf_counter(), time.process_time()
    h = model.fit(x, y, epochs=epochs, batch_size=32, optimizer=Adam(2e-3), verbose=0, seed=0,
                  callbacks=[LearningRateScheduler(CosineAnnealing(2e-3, epochs))])
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    result = model.evaluate(xt, yt)
    print(f"\nMNIST convnet: test accuracy {result['accuracy']:.4f} (loss {result['loss']:.4f}) "
          f"on 2,000 images after {epochs} epochs on 6,000 images in {seconds:.1f} s wall "
          f"({cpu:.1f} s CPU); train accuracy {h.history['accuracy'][-1]:.4f}")
    record_property("mnist_test_accuracy", result["accuracy"])
    record_property("mnist_train_seconds", round(seconds, 2))
    record_property("mnist_train_cpu_seconds", round(cpu, 2))
    assert result["accuracy"] >= MNIST_MIN_ACCURACY
    # the work itself takes well under a minute (CPU time, all threads); the wall-clock bound
    # is looser because other processes may share the cores
    assert cpu < 60 and seconds < 120
