"""Activations, softmax, affine, dropout and the two losses (fast and reference) against
PyTorch in float64: forward values and gradients."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

from conftest import torch_autograd

TOL = dict(rtol=1e-12, atol=1e-12)


def with_specials(rng, shape):
    """Random values plus exact zeros and large magnitudes (kinks and overflow territory)."""
    x = rng.standard_normal(shape) * 3
    x.flat[:6] = [0.0, -0.0, 800.0, -800.0, 40.0, -40.0]
    return x


ACTIVATIONS = {
    "relu": ((), TF.relu),
    "leaky_relu": ((), lambda t: TF.leaky_relu(t, 0.01)),
    "sigmoid": ((), torch.sigmoid),
    "tanh": ((), torch.tanh),
}


@pytest.mark.parametrize("name", list(ACTIVATIONS))
@pytest.mark.parametrize("shape", [(7,), (4, 5), (2, 3, 4, 5)])
def test_activation_matches_torch(impl, name, shape, rng):
    x = with_specials(rng, shape)
    # no overflow/NaN warnings from e^800 (underflow to 0 is harmless and allowed)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        out, cache = getattr(impl, f"{name}_forward")(x)
    dout = rng.standard_normal(shape)
    dx = getattr(impl, f"{name}_backward")(dout, cache)
    t_out, (t_dx,) = torch_autograd(ACTIVATIONS[name][1], [x], dout)
    np.testing.assert_allclose(out, t_out, **TOL)
    np.testing.assert_allclose(dx, t_dx, **TOL)


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.3, 1.5])
def test_leaky_relu_slope_matches_torch(impl, alpha, rng):
    x = with_specials(rng, (5, 6))
    out, cache = impl.leaky_relu_forward(x, alpha)
    dout = rng.standard_normal(x.shape)
    dx = impl.leaky_relu_backward(dout, cache)
    t_out, (t_dx,) = torch_autograd(lambda t: TF.leaky_relu(t, alpha), [x], dout)
    np.testing.assert_allclose(out, t_out, **TOL)
    np.testing.assert_allclose(dx, t_dx, **TOL)


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_float32_stays_float32(impl, name, rng):
    x = rng.standard_normal((3, 4)).astype(np.float32)
    out, cache = getattr(impl, f"{name}_forward")(x)
    dx = getattr(impl, f"{name}_backward")(np.ones_like(out), cache)
    assert out.dtype == dx.dtype == np.float32


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax_and_log_softmax_match_torch(impl, axis, rng):
    x = rng.standard_normal((4, 5, 3)) * 5
    x[0, 0, 0] = 1000.0  # no overflow: the max is subtracted first
    np.testing.assert_allclose(impl.softmax(x, axis=axis), torch.softmax(torch.tensor(x), dim=axis).numpy(), **TOL)
    np.testing.assert_allclose(impl.log_softmax(x, axis=axis),
                               torch.log_softmax(torch.tensor(x), dim=axis).numpy(), **TOL)


# ------------------------------------------------------------------------- affine


@pytest.mark.parametrize("xs, m", [((4, 6), 3), ((3, 2, 4), 5), ((2, 3, 4, 4), 7), ((1, 5), 1)])
@pytest.mark.parametrize("bias", [True, False])
def test_affine_matches_torch(impl, xs, m, bias, rng):
    x = rng.standard_normal(xs)
    d = int(np.prod(xs[1:]))
    w, b = rng.standard_normal((d, m)), (rng.standard_normal(m) if bias else None)
    out, cache = impl.affine_forward(x, w, b)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = impl.affine_backward(dout, cache)
    # torch.linear wants w as (M, D); flatten is part of the layer
    t_out, (t_dx, t_w, t_b) = torch_autograd(
        lambda tx, tw, tb: TF.linear(tx.reshape(xs[0], -1), tw.T, tb), [x, w, b], dout)
    np.testing.assert_allclose(out, t_out, **TOL)
    assert dx.shape == xs and dw.shape == (d, m)
    np.testing.assert_allclose(dx, t_dx, **TOL)
    np.testing.assert_allclose(dw, t_w, **TOL)
    if bias:
        np.testing.assert_allclose(db, t_b, **TOL)
    else:
        assert db is None


def test_affine_float32_stays_float32(impl, rng):
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in [(3, 2, 2), (4, 5), (5,)])
    out, cache = impl.affine_forward(x, w, b)
    grads = impl.affine_backward(np.ones_like(out), cache)
    assert out.dtype == np.float32 and all(g.dtype == np.float32 for g in grads)


# ------------------------------------------------------------------------- dropout


@pytest.mark.parametrize("p", [0.25, 0.5, 0.8])
def test_dropout_keeps_fraction_p_and_preserves_mean(impl, p):
    x = np.random.default_rng(3).uniform(1, 3, size=(200, 500))
    out, _ = impl.dropout_forward(x, {"p": p, "mode": "train", "seed": 7})
    kept = out != 0
    assert abs(kept.mean() - p) < 0.01  # 1e5 Bernoulli draws: std ~ 0.0016
    np.testing.assert_allclose(out[kept], x[kept] / p, rtol=1e-12)  # inverted: scaled at train time
    assert abs(out.mean() - x.mean()) < 0.02 * x.mean()


def test_dropout_test_mode_and_p1_are_identity(impl, rng):
    x = rng.standard_normal((4, 5))
    for param in ({"p": 0.3, "mode": "test"}, {"p": 1.0, "mode": "train", "seed": 1}):
        out, cache = impl.dropout_forward(x, param)
        np.testing.assert_array_equal(out, x)
        dout = rng.standard_normal(x.shape)
        np.testing.assert_array_equal(impl.dropout_backward(dout, cache), dout)


def test_dropout_seed_reproducible_and_rng_accepted(impl, rng):
    x = rng.standard_normal((20, 30))
    a, _ = impl.dropout_forward(x, {"p": 0.5, "seed": 11})
    b, _ = impl.dropout_forward(x, {"p": 0.5, "seed": 11})
    c, _ = impl.dropout_forward(x, {"p": 0.5, "seed": 12})
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    d, _ = impl.dropout_forward(x, {"p": 0.5, "rng": np.random.default_rng(11)})
    np.testing.assert_array_equal(a, d)


def test_dropout_backward_is_the_mask(impl, rng):
    x = rng.standard_normal((6, 7)) + 10  # no zeros in x: out / x recovers mask / p
    p = 0.6
    out, cache = impl.dropout_forward(x, {"p": p, "seed": 5})
    dout = rng.standard_normal(x.shape)
    dx = impl.dropout_backward(dout, cache)
    np.testing.assert_allclose(dx, dout * (out / x), rtol=1e-12)
    assert set(np.round(np.unique(out / x), 12)) <= {0.0, round(1 / p, 12)}


def test_dropout_float32_stays_float32(impl):
    x = np.ones((5, 5), dtype=np.float32)
    out, cache = impl.dropout_forward(x, {"p": 0.5, "seed": 0})
    assert out.dtype == impl.dropout_backward(out, cache).dtype == np.float32


# ------------------------------------------------------------------------- losses


@pytest.mark.parametrize("n, c", [(1, 2), (5, 3), (16, 10)])
def test_softmax_loss_matches_torch_cross_entropy(impl, n, c, rng):
    scores, y = rng.standard_normal((n, c)) * 4, rng.integers(0, c, n)
    loss, dscores = impl.softmax_loss(scores, y)
    t_loss, (t_d, _) = torch_autograd(lambda s, _y: TF.cross_entropy(s, torch.as_tensor(y)),
                                      [scores, None], 1.0)
    assert isinstance(loss, float)
    np.testing.assert_allclose(loss, t_loss, **TOL)
    np.testing.assert_allclose(dscores, t_d, **TOL)


def test_softmax_loss_is_stable_for_huge_scores(impl):
    scores = np.array([[1000.0, 0.0, -1000.0], [0.0, 2000.0, 0.0]])
    loss, d = impl.softmax_loss(scores, np.array([2, 1]))
    np.testing.assert_allclose(loss, 1000.0, rtol=1e-12)  # (2000 + 0) / 2
    assert np.all(np.isfinite(d))


@pytest.mark.parametrize("n, c, delta", [(1, 2, 1.0), (6, 4, 1.0), (16, 10, 1.0), (8, 5, 0.5)])
def test_svm_loss_matches_torch_multi_margin(impl, n, c, delta, rng):
    """torch's multi_margin_loss averages the hinge over the C classes as well as the batch;
    the course's SVM loss sums over classes: ours = C * torch's."""
    scores, y = rng.standard_normal((n, c)), rng.integers(0, c, n)
    loss, dscores = impl.svm_loss(scores, y, delta=delta)
    t_loss, (t_d, _) = torch_autograd(
        lambda s, _y: c * TF.multi_margin_loss(s, torch.as_tensor(y), margin=delta), [scores, None], 1.0)
    np.testing.assert_allclose(loss, t_loss, **TOL)
    np.testing.assert_allclose(dscores, t_d, **TOL)


def test_svm_loss_hand_example(impl):
    """cs231n's example: scores [13, -7, 11], correct class 0, delta 10 -> max(0, -20+10) +
    max(0, -2+10) = 8."""
    loss, d = impl.svm_loss(np.array([[13.0, -7.0, 11.0]]), np.array([0]), delta=10.0)
    assert loss == 8.0
    np.testing.assert_array_equal(d, [[-1.0, 0.0, 1.0]])


@pytest.mark.parametrize("loss_name", ["softmax_loss", "svm_loss"])
def test_loss_float32_gradient_stays_float32(impl, loss_name, rng):
    scores = rng.standard_normal((4, 3)).astype(np.float32)
    _, d = getattr(impl, loss_name)(scores, np.array([0, 1, 2, 1]))
    assert d.dtype == np.float32
    assert impl.softmax(scores).dtype == impl.log_softmax(scores).dtype == np.float32


def test_relu_gradient_at_nan_and_inf_matches_torch(impl):
    x = np.array([[np.nan, -np.inf, np.inf, -1.0, 0.0, -0.0, 2.0]])
    dout = np.array([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]])
    _, (t_dx,) = torch_autograd(torch.relu, (x,), dout)
    out, cache = impl.relu_forward(x)
    np.testing.assert_array_equal(impl.relu_backward(dout, cache), t_dx)
