"""Training state stays sound (issue 12, section 4, fit side): non-finite weights are
caught at the end of every epoch, NaN validation data is refused, a diverging loss is
flagged, batch norm refuses an empty batch, predict beside fit in another thread leaves
training alone, and the two argument mix-ups name their argument."""
import threading

import numpy as np
import pytest
import torch
from _train_helpers import blobs, mlp, small_convnet, weights_equal

import cnnlab as cl
import cnnlab.functional as F
import cnnlab.layers as L
from cnnlab.optim import SGD, Adam
from cnnlab.training import ModelCheckpoint, TrainingDivergedError


@pytest.fixture(scope="module")
def data():
    return blobs(240, seed=5)


# ----------------------------------------------------------------- non-finite weights
def nan_grad_on_batch(bad_batch):
    """Softmax loss whose value stays finite but whose gradient is NaN on one batch
    (counted over the whole run): the weights turn NaN without the loss noticing."""
    calls = {"n": 0}

    def loss(scores, y):
        value, d = F.softmax_loss(scores, y)
        calls["n"] += 1
        if calls["n"] == bad_batch:
            d = np.full_like(d, np.nan)
        return value, d

    return loss


def test_nan_gradient_on_the_last_batch_is_caught_at_epoch_end(data, tmp_path):
    x, y = data
    model = mlp()
    ckpt = tmp_path / "ckpt-{epoch}.npz"
    # 240 / 40 = 6 batches per epoch: the 12th is the last batch of epoch 2
    with pytest.raises(TrainingDivergedError, match=r"after epoch 2/3") as info:
        model.fit(x, y, epochs=3, batch_size=40, optimizer=SGD(0.1), verbose=0, seed=0,
                  loss=nan_grad_on_batch(12), callbacks=[ModelCheckpoint(str(ckpt))])
    assert info.value.epoch == 1 and "dense.w" in str(info.value)
    # the error was warranted: the weights really are NaN (the independent check) ...
    assert any(not np.isfinite(w).all() for w in model.get_weights().values())
    # ... and the checkpoint callback never wrote them: only epoch 1's file exists
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-1.npz"]
    good = cl.load_model(tmp_path / "ckpt-1.npz")
    assert all(np.isfinite(w).all() for w in good.get_weights().values())


def test_finite_training_passes_the_check(data):
    x, y = data
    h = mlp().fit(x, y, epochs=2, batch_size=40, optimizer=SGD(0.1), verbose=0, seed=0,
                  loss=nan_grad_on_batch(10 ** 9))
    assert len(h) == 2


# ----------------------------------------------------------------- NaN validation data
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_validation_data_is_rejected_like_x(data, bad):
    x, y = data
    xv = x[:20].copy()
    xv[7, 0, 1, 2] = bad
    with pytest.raises(ValueError, match=r"validation_data\[0\] contains NaN or infinite"):
        mlp().fit(x, y, validation_data=(xv, y[:20]), verbose=0)
    xb = x.copy()
    xb[3, 0, 0, 0] = bad
    with pytest.raises(ValueError, match="x contains NaN or infinite"):
        mlp().fit(xb, y, verbose=0)


# ----------------------------------------------------------------- diverging loss
def test_a_loss_that_grows_by_orders_of_magnitude_warns_naming_lr():
    rng = np.random.default_rng(0)
    x = rng.random((256, 1, 12, 12)).astype(np.float32)
    y = rng.integers(0, 10, 256)
    model = cl.Sequential([L.Conv2D(8, 3), L.ReLU(), L.MaxPool2D(2), L.Flatten(), L.Dense(10)],
                          input_shape=(1, 12, 12), seed=0)
    with pytest.warns(RuntimeWarning, match=r"optimizer\.lr is 1e\+06") as rec:
        h = model.fit(x, y, epochs=2, optimizer=Adam(1e6), verbose=0, seed=0)
    assert len([w for w in rec if "training loss grew" in str(w.message)]) == 1  # once
    # independent check that the warning was deserved: the first epoch's mean loss is
    # orders of magnitude above cross-entropy's starting point, log(10) = 2.3
    assert h.history["loss"][0] > 1e3 * np.log(10)


def test_a_healthy_run_does_not_warn(data):
    import warnings

    x, y = data
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        mlp().fit(x, y, epochs=3, optimizer=Adam(1e-2), verbose=0, seed=0)


# ----------------------------------------------------------------- batch norm, empty batch
@pytest.mark.parametrize("shape, built", [((0, 3), (3,)), ((0, 3, 4, 4), (3, 4, 4))])
def test_batchnorm_refuses_an_empty_training_batch(shape, built):
    bn = L.BatchNorm()
    bn.build(built, 0)
    before = {k: v.copy() for k, v in bn.state.items()}
    with pytest.raises(ValueError, match="empty batch"):
        bn.forward(np.zeros(shape, np.float32), training=True)
    # the running statistics are untouched, as torch leaves its own on an empty batch
    tbn = torch.nn.BatchNorm2d(3) if len(shape) == 4 else torch.nn.BatchNorm1d(3)
    tbn(torch.zeros(shape))
    for k, v in bn.state.items():
        np.testing.assert_array_equal(v, before[k])
        np.testing.assert_array_equal(v, getattr(tbn, k).numpy())
    # inference on an empty batch is a well-defined empty result
    assert bn.forward(np.zeros(shape, np.float32)).shape == shape


# ----------------------------------------------------------------- predict beside fit
def test_predict_in_another_thread_does_not_break_fit():
    rng = np.random.default_rng(0)
    x = rng.random((600, 1, 12, 12)).astype(np.float32)
    y = rng.integers(0, 4, 600)

    def net():
        return cl.Sequential([L.Conv2D(6, 3, padding="same"), L.BatchNorm(), L.ReLU(),
                              L.MaxPool2D(2), L.Flatten(), L.Dropout(0.2), L.Dense(4)],
                             input_shape=(1, 12, 12), seed=0)

    model, reference = net(), net()
    reference.fit(x, y, epochs=3, batch_size=16, optimizer=SGD(0.05, momentum=0.9),
                  verbose=0, seed=1)
    errors, predictions, done = [], [0], threading.Event()

    def train():
        try:
            model.fit(x, y, epochs=3, batch_size=16, optimizer=SGD(0.05, momentum=0.9),
                      verbose=0, seed=1)
        except BaseException as e:  # reported below
            errors.append(e)
        finally:
            done.set()

    def infer():
        try:
            while not done.is_set():
                p = model.predict(x[:64], batch_size=16)
                assert p.shape == (64, 4) and np.isfinite(p).all()
                predictions[0] += 1
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=train), threading.Thread(target=infer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert predictions[0] > 3  # the two really overlapped
    # inference changed nothing that training uses: the same weights as alone (the
    # kernels may split work differently while two threads run, hence a tolerance)
    a, b = model.get_weights(), reference.get_weights()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=1e-5, err_msg=k)


def test_inference_leaves_a_pending_training_cache_alone():
    """The mechanism behind the test above, deterministically: a training forward, an
    inference forward in between, then the training backward still works and gives
    the gradient it would have given (checked against a run without the interruption)."""
    x = np.random.default_rng(1).standard_normal((8, 1, 8, 8)).astype(np.float32)
    a, b = small_convnet(), small_convnet()
    out_a = a.forward(x, training=True, cache=True)
    a.forward(x[:3], training=False)  # what predict does
    a.backward(np.ones_like(out_a))
    out_b = b.forward(x, training=True, cache=True)
    b.backward(np.ones_like(out_b))
    for (_, la, k), (_, lb, _) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(la.grads[k], lb.grads[k])


# ----------------------------------------------------------------- argument mix-ups
def test_initial_epoch_beyond_epochs_names_both(data):
    x, y = data
    with pytest.raises(ValueError, match=r"fit\(initial_epoch=5, epochs=2\).*pass epochs=7"):
        mlp().fit(x, y, initial_epoch=5, epochs=2, verbose=0)
    # resuming at epoch 5 for two more epochs, as the message says
    h = mlp().fit(x, y, initial_epoch=5, epochs=7, verbose=0, seed=0)
    assert h.epoch == [5, 6]


@pytest.mark.parametrize("augment, match", [
    (lambda xb, rng: xb[:-1], r"augment returned a batch of 39 samples .* for a batch of 40"),
    (lambda xb: np.concatenate([xb, xb]), r"augment returned a batch of 80 samples"),
    (lambda xb: list(xb), r"augment must return the batch as an array"),
])
def test_augment_with_the_wrong_batch_size_is_named(data, augment, match):
    x, y = data
    with pytest.raises((ValueError, TypeError), match=match):
        mlp().fit(x, y, batch_size=40, augment=augment, verbose=0)


def test_augment_keeping_the_batch_size_still_trains(data):
    x, y = data
    a, b = mlp(), mlp()
    a.fit(x, y, batch_size=40, augment=lambda xb: xb[:, :, ::-1], verbose=0, seed=0)
    b.fit(x[:, :, ::-1], y, batch_size=40, verbose=0, seed=0)
    assert weights_equal(a, b)
