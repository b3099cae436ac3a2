"""Batch normalization (fast and reference): cs231n's conventions checked against a direct
numpy formula, outputs and gradients against PyTorch, and the running-statistics
conversion between the two conventions made explicit."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

from conftest import torch_autograd

TOL = dict(rtol=1e-10, atol=1e-10)
EPS = 1e-5


def formula_bn(x, gamma, beta, rm, rv, momentum, eps=EPS):
    """cs231n's batchnorm written out directly, statistics over all axes but 1:
    out = gamma (x - mu) / sqrt(var + eps) + beta with the biased var, and
    running = momentum running + (1 - momentum) batch statistic."""
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mu = x.mean(axis=axes)
    var = ((x - mu.reshape(shape)) ** 2).mean(axis=axes)
    out = gamma.reshape(shape) * (x - mu.reshape(shape)) / np.sqrt(var.reshape(shape) + eps) + beta.reshape(shape)
    return out, momentum * rm + (1 - momentum) * mu, momentum * rv + (1 - momentum) * var


def forward_name(x):
    return "batchnorm_forward" if x.ndim == 2 else "spatial_batchnorm_forward"


SHAPES = [(8, 5), (3, 1), (4, 3, 5, 6), (2, 4, 3, 3, 2), (3, 2, 7)]  # 1-D, 2-D maps, volumes, signals


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("momentum", [0.9, 0.5])
def test_train_forward_and_running_stats_follow_cs231n(impl, shape, momentum, rng):
    c = shape[1]
    gamma, beta = rng.standard_normal(c), rng.standard_normal(c)
    param = {"mode": "train", "momentum": momentum}  # running stats created as zeros / ones
    rm, rv = np.zeros(c), np.ones(c)
    for step in range(3):
        x = rng.standard_normal(shape) * 2 + step
        out, _ = getattr(impl, forward_name(x))(x, gamma, beta, param)
        expected, rm, rv = formula_bn(x, gamma, beta, rm, rv, momentum)
        np.testing.assert_allclose(out, expected, **TOL)
        np.testing.assert_allclose(param["running_mean"], rm, **TOL)
        np.testing.assert_allclose(param["running_var"], rv, **TOL)
    # test mode: the running statistics, nothing updated
    x = rng.standard_normal(shape)
    before = param["running_mean"].copy(), param["running_var"].copy()
    param["mode"] = "test"
    out, _ = getattr(impl, forward_name(x))(x, gamma, beta, param)
    s = (1, -1) + (1,) * (x.ndim - 2)
    expected = gamma.reshape(s) * (x - rm.reshape(s)) / np.sqrt(rv.reshape(s) + EPS) + beta.reshape(s)
    np.testing.assert_allclose(out, expected, **TOL)
    np.testing.assert_array_equal(param["running_mean"], before[0])
    np.testing.assert_array_equal(param["running_var"], before[1])


@pytest.mark.parametrize("shape", SHAPES)
def test_forward_and_both_backward_forms_match_torch(impl, shape, rng):
    c = shape[1]
    x = rng.standard_normal(shape) * 3 + 1
    gamma, beta = rng.standard_normal(c), rng.standard_normal(c)
    out, cache = getattr(impl, forward_name(x))(x, gamma, beta, {"mode": "train", "eps": EPS})
    dout = rng.standard_normal(shape)
    t_out, (t_dx, t_dg, t_db) = torch_autograd(
        lambda tx, tg, tb: TF.batch_norm(tx, None, None, tg, tb, training=True, eps=EPS), [x, gamma, beta], dout)
    np.testing.assert_allclose(out, t_out, **TOL)
    if x.ndim == 2:
        backwards = [impl.batchnorm_backward, impl.batchnorm_backward_alt]
    else:
        backwards = [impl.spatial_batchnorm_backward]
    for backward in backwards:
        dx, dgamma, dbeta = backward(dout, cache)
        np.testing.assert_allclose(dx, t_dx, **TOL)
        np.testing.assert_allclose(dgamma, t_dg, **TOL)
        np.testing.assert_allclose(dbeta, t_db, **TOL)


def test_graph_and_closed_form_backward_agree(impl, rng):
    x = rng.standard_normal((10, 4)) * 5 - 2
    _, cache = impl.batchnorm_forward(x, rng.standard_normal(4), rng.standard_normal(4), {"mode": "train"})
    dout = rng.standard_normal(x.shape)
    for a, b in zip(impl.batchnorm_backward(dout, cache), impl.batchnorm_backward_alt(dout, cache)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", [(6, 3), (2, 3, 4, 5)])
def test_running_stats_conversion_to_torch(impl, shape, rng):
    """torch's running stats: running = (1 - m_t) running + m_t * stat with the UNBIASED
    var. With m_t = 1 - momentum the means agree, and the variance update differs exactly by
    the factor m / (m - 1) (m = values per channel) on the batch term."""
    c, momentum = shape[1], 0.9
    m = int(np.prod(shape)) // c
    x = rng.standard_normal(shape) * 2 + 0.5
    gamma, beta = rng.standard_normal(c), rng.standard_normal(c)
    rm0, rv0 = rng.standard_normal(c), rng.uniform(0.5, 2, c)
    param = {"mode": "train", "momentum": momentum, "running_mean": rm0.copy(), "running_var": rv0.copy()}
    out, _ = getattr(impl, forward_name(x))(x, gamma, beta, param)
    t_rm, t_rv = torch.tensor(rm0), torch.tensor(rv0)
    t_out = TF.batch_norm(torch.tensor(x), t_rm, t_rv, torch.tensor(gamma), torch.tensor(beta),
                          training=True, momentum=1 - momentum, eps=EPS)
    np.testing.assert_allclose(out, t_out.numpy(), **TOL)  # same normalization (biased var)
    np.testing.assert_allclose(param["running_mean"], t_rm.numpy(), **TOL)
    ours_batch_term = param["running_var"] - momentum * rv0
    torch_batch_term = t_rv.numpy() - momentum * rv0
    np.testing.assert_allclose(ours_batch_term * m / (m - 1), torch_batch_term, **TOL)
    assert not np.allclose(param["running_var"], t_rv.numpy())  # the conventions really differ


def test_test_mode_matches_torch_eval(impl, rng):
    x = rng.standard_normal((5, 3, 4, 4))
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    rm, rv = rng.standard_normal(3), rng.uniform(0.5, 2, 3)
    param = {"mode": "test", "running_mean": rm, "running_var": rv}
    out, cache = impl.spatial_batchnorm_forward(x, gamma, beta, param)
    t_out = TF.batch_norm(torch.tensor(x), torch.tensor(rm), torch.tensor(rv), torch.tensor(gamma),
                          torch.tensor(beta), training=False, eps=EPS)
    np.testing.assert_allclose(out, t_out.numpy(), **TOL)


def test_spatial_is_1d_batchnorm_on_the_nhw_by_c_reshape(impl, rng):
    x = rng.standard_normal((3, 4, 5, 2))
    gamma, beta = rng.standard_normal(4), rng.standard_normal(4)
    out, cache = impl.spatial_batchnorm_forward(x, gamma, beta, {"mode": "train"})
    rows = x.transpose(0, 2, 3, 1).reshape(-1, 4)
    out_rows, cache_rows = impl.batchnorm_forward(rows, gamma, beta, {"mode": "train"})
    np.testing.assert_allclose(out, out_rows.reshape(3, 5, 2, 4).transpose(0, 3, 1, 2), **TOL)
    dout = rng.standard_normal(x.shape)
    dx, dg, db = impl.spatial_batchnorm_backward(dout, cache)
    dx_r, dg_r, db_r = impl.batchnorm_backward(dout.transpose(0, 2, 3, 1).reshape(-1, 4), cache_rows)
    np.testing.assert_allclose(dx, dx_r.reshape(3, 5, 2, 4).transpose(0, 3, 1, 2), **TOL)
    np.testing.assert_allclose(dg, dg_r, **TOL)
    np.testing.assert_allclose(db, db_r, **TOL)


@pytest.mark.parametrize("shape", [(6, 4), (3, 4, 3, 3)])
def test_float32_stays_float32(impl, shape, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    g, b = np.ones(4, np.float32), np.zeros(4, np.float32)
    param = {"mode": "train"}
    out, cache = getattr(impl, forward_name(x))(x, g, b, param)
    assert out.dtype == np.float32 and param["running_mean"].dtype == np.float32
    backward = impl.batchnorm_backward if x.ndim == 2 else impl.spatial_batchnorm_backward
    assert all(a.dtype == np.float32 for a in backward(np.ones_like(out), cache))
    param["mode"] = "test"
    assert getattr(impl, forward_name(x))(x, g, b, param)[0].dtype == np.float32


def _in_layout(a, order):
    """a (N, C, *S) as a view of an array laid out in memory in ``order``."""
    mem = np.ascontiguousarray(a.transpose(order))
    return mem.transpose(np.argsort(order))


@pytest.mark.parametrize(
    "shape, order",
    [
        ((4, 3, 5, 6), (0, 1, 2, 3)),  # channels-first, small maps: one row per image
        ((2, 3, 40, 40), (0, 1, 2, 3)),  # channels-first, big maps: one row per map
        ((4, 3, 5, 6), (0, 2, 3, 1)),  # channels innermost: rows of pixels
        ((4, 3, 5, 6), (1, 2, 3, 0)),  # batch innermost: plain broadcasting
    ],
)
@pytest.mark.parametrize("offset", [0.5, 8.0, 3000.0])
def test_float32_in_every_layout_matches_float64_torch(shape, order, offset, rng):
    """The fast kernels see x as rows of whole channel runs, per memory layout, and take
    the moments from one read of x unless a channel's mean lies more than 16 standard
    deviations from zero (offset 3000: the one-pass variance would keep no digit of
    float32). Each case against PyTorch in float64."""
    import cnnlab.functional as F

    c = shape[1]
    x64 = rng.standard_normal(shape) + offset * rng.uniform(0.5, 1.0, (1, c) + (1,) * (len(shape) - 2))
    d64 = rng.standard_normal(shape)
    gamma, beta = rng.standard_normal(c), rng.standard_normal(c)
    x = _in_layout(x64.astype(np.float32), order)
    dout = _in_layout(d64.astype(np.float32), order)
    g32, b32 = gamma.astype(np.float32), beta.astype(np.float32)
    param = {"mode": "train"}
    out, cache = F.spatial_batchnorm_forward(x, g32, b32, param)
    dx, dg, db = F.spatial_batchnorm_backward(dout, cache)
    # torch sees the float32 numbers in float64: the same inputs, exact arithmetic
    t_out, (t_dx, t_dg, t_db) = torch_autograd(
        lambda tx, tg, tb: TF.batch_norm(tx, None, None, tg, tb, training=True, eps=EPS),
        [x.astype(np.float64), g32.astype(np.float64), b32.astype(np.float64)],
        dout.astype(np.float64),
    )
    assert out.dtype == dx.dtype == np.float32
    # float32 holds the mean to half a unit in the last place of x's magnitude (1.2e-4 at
    # 3000); x - mean carries that error, and no more: a one-pass variance at offset
    # 3000 would be off by ~0.5 and miss these bounds by a factor of ~1000
    tol = 2e-5 + float(np.spacing(np.abs(x).max()))
    np.testing.assert_allclose(out, t_out, rtol=0, atol=tol * np.abs(t_out).max())
    np.testing.assert_allclose(dx, t_dx, rtol=0, atol=tol * np.abs(t_dx).max())
    np.testing.assert_allclose(dg, t_dg, rtol=0, atol=tol * np.abs(t_dg).max())
    np.testing.assert_allclose(db, t_db, rtol=1e-5, atol=1e-4)
    mu = x.astype(np.float64).mean(axis=(0,) + tuple(range(2, x.ndim)))
    np.testing.assert_allclose(param["running_mean"], 0.1 * mu, rtol=1e-5)
