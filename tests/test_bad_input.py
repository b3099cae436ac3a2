"""Bad arguments raise ValueError/TypeError whose message names the argument (fast and
reference alike); NaN and inf propagate through conv, relu and pooling, never cleaned."""
import numpy as np
import pytest

import cnnlab.functional as F
from cnnlab.reference import conv_output_size as ref_conv_output_size

X4 = np.zeros((2, 3, 6, 6))
W4 = np.zeros((4, 3, 3, 3))


CONV_CASES = [
    # (kwargs for conv2d_forward, exception, message pattern)
    (dict(x=np.zeros((3, 6, 6)), w=W4), ValueError, r"\bx must be 4-D"),
    (dict(x=X4, w=np.zeros((4, 3, 3))), ValueError, r"\bw must be 4-D"),
    (dict(x=X4, w=np.zeros((4, 2, 3, 3))), ValueError, r"channel mismatch.*C=3.*C=2"),
    (dict(x=X4, w=np.zeros((4, 3, 9, 3))), ValueError, r"kernel size 9.*larger than the padded"),
    (dict(x=X4, w=np.zeros((4, 3, 4, 4)), padding=0, dilation=2), ValueError, r"kernel size 4 \(dilation 2\)"),
    (dict(x=X4, w=W4, stride=0), ValueError, r"stride must be positive, got 0"),
    (dict(x=X4, w=W4, stride=(1, -2)), ValueError, r"stride must be positive, got -2"),
    (dict(x=X4, w=W4, stride=1.5), TypeError, r"stride must be an int"),
    (dict(x=X4, w=W4, stride=(1, 1, 1)), ValueError, r"stride must have 2 entries"),
    (dict(x=X4, w=W4, dilation=0), ValueError, r"dilation must be positive"),
    (dict(x=X4, w=W4, padding="wide"), ValueError, r"padding must be .*'valid', 'same', 'full'.*'wide'"),
    (dict(x=X4, w=W4, padding=-1), ValueError, r"padding must be non-negative"),
    (dict(x=X4, w=W4, padding=(1, 1, 1)), ValueError, r"padding must have 2 entries"),
    (dict(x=X4, w=W4, padding=((1, 2, 3), 0)), ValueError, r"padding pair must be \(lo, hi\)"),
    (dict(x=X4, w=W4, padding="same", stride=2), ValueError, r"padding='same' needs stride 1"),
    (dict(x=X4, w=W4, b=np.zeros(3)), ValueError, r"\bb must have shape \(4,\)"),
    (dict(x=X4, w=W4, b=np.zeros((4, 1))), ValueError, r"\bb must have shape \(4,\)"),
    (dict(x=np.array([["a"]]), w=W4), TypeError, r"\bx must hold numbers"),
]


@pytest.mark.parametrize("kwargs, exc, pattern", CONV_CASES)
def test_conv_bad_arguments(impl, kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        impl.conv2d_forward(**kwargs)


def test_conv_rank_is_fixed_by_the_named_function(impl):
    with pytest.raises(ValueError, match=r"\bx must be 3-D"):
        impl.conv1d_forward(X4, W4)
    with pytest.raises(ValueError, match=r"\bx must be 5-D"):
        impl.conv3d_forward(X4, W4)


POOL_CASES = [
    (dict(x=np.zeros((3, 6, 6)), pool_size=2), ValueError, r"\bx must be 4-D"),
    (dict(x=X4, pool_size=0), ValueError, r"pool_size must be positive"),
    (dict(x=X4, pool_size=2, stride=0), ValueError, r"stride must be positive"),
    (dict(x=X4, pool_size=2, padding=2), ValueError, r"padding must be at most half the pool size"),
    (dict(x=X4, pool_size=7), ValueError, r"kernel size 7.*larger than the padded"),
    (dict(x=X4, pool_size=2, padding="bogus"), ValueError, r"padding must be"),
    (dict(x=X4, pool_size=2, stride=2, padding="same"), ValueError, r"padding='same' needs stride 1"),
]


@pytest.mark.parametrize("op", ["maxpool2d_forward", "avgpool2d_forward"])
@pytest.mark.parametrize("kwargs, exc, pattern", POOL_CASES)
def test_pool_bad_arguments(impl, op, kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        getattr(impl, op)(**kwargs)


def test_global_avgpool_needs_a_spatial_axis(impl):
    with pytest.raises(ValueError, match=r"\bx must be \(N, C, \*spatial\)"):
        impl.global_avgpool_forward(np.zeros((2, 3)))


def test_affine_bad_arguments(impl):
    x = np.zeros((2, 3, 4))
    with pytest.raises(ValueError, match=r"D=12 .*\bw expects D=10"):
        impl.affine_forward(x, np.zeros((10, 5)), np.zeros(5))
    with pytest.raises(ValueError, match=r"\bw must be 2-D"):
        impl.affine_forward(x, np.zeros((12,)), np.zeros(5))
    with pytest.raises(ValueError, match=r"\bb must have shape \(5,\)"):
        impl.affine_forward(x, np.zeros((12, 5)), np.zeros(4))


def test_batchnorm_bad_arguments(impl):
    x = np.zeros((4, 3))
    with pytest.raises(ValueError, match=r"gamma and beta must have shape \(3,\)"):
        impl.batchnorm_forward(x, np.ones(4), np.zeros(3), {})
    with pytest.raises(ValueError, match=r"\bx must be 2-D \(N, D\)"):
        impl.batchnorm_forward(np.zeros((4, 3, 2, 2)), np.ones(3), np.zeros(3), {})
    with pytest.raises(ValueError, match=r"\bx must be \(N, C, H, W\)"):
        impl.spatial_batchnorm_forward(x, np.ones(3), np.zeros(3), {})
    with pytest.raises(ValueError, match=r"bn_param\['mode'\] must be 'train' or 'test'"):
        impl.batchnorm_forward(x, np.ones(3), np.zeros(3), {"mode": "eval"})
    with pytest.raises(TypeError, match=r"bn_param must be a dict"):
        impl.batchnorm_forward(x, np.ones(3), np.zeros(3), "train")


@pytest.mark.parametrize("param, exc, pattern", [
    ({"p": 0.0}, ValueError, r"dropout_param\['p'\] is the keep probability"),
    ({"p": 1.5}, ValueError, r"dropout_param\['p'\]"),
    ({"p": 0.5, "mode": "eval"}, ValueError, r"dropout_param\['mode'\]"),
    ([0.5], TypeError, r"dropout_param must be a dict"),
])
def test_dropout_bad_arguments(impl, param, exc, pattern):
    with pytest.raises(exc, match=pattern):
        impl.dropout_forward(np.ones((2, 2)), param)


@pytest.mark.parametrize("loss", ["softmax_loss", "svm_loss"])
@pytest.mark.parametrize("scores, y, exc, pattern", [
    (np.zeros((3, 4)), np.array([0, 4, 1]), ValueError, r"labels in y must be in \[0, 3\].*got 4"),
    (np.zeros((3, 4)), np.array([0, -1, 1]), ValueError, r"labels in y must be in \[0, 3\].*got -1"),
    (np.zeros((3, 4)), np.array([0, 1]), ValueError, r"\by must .*one label per row"),
    (np.zeros((3, 4)), np.zeros((3, 1), int), ValueError, r"\by must .*one label per row"),
    (np.zeros((3, 4)), np.array([0.5, 1.0, 2.0]), TypeError, r"\by must hold integer class labels"),
    (np.zeros(4), np.array([0]), ValueError, r"scores must be 2-D"),
])
def test_loss_bad_arguments(impl, loss, scores, y, exc, pattern):
    with pytest.raises(exc, match=pattern):
        getattr(impl, loss)(scores, y)


def test_signal_bad_arguments(impl):
    with pytest.raises(ValueError, match=r"mode must be one of"):
        impl.correlate1d(np.ones(5), np.ones(3), "wide")
    with pytest.raises(ValueError, match=r"mode='valid' needs the kernel"):
        impl.convolve1d(np.ones(3), np.ones(5))
    with pytest.raises(ValueError, match=r"correlate2d takes 2-D x and w"):
        impl.correlate2d(np.ones(5), np.ones(3))


@pytest.mark.parametrize("size_fn", [F.conv_output_size, ref_conv_output_size])
def test_conv_output_size_bad_arguments(size_fn):
    with pytest.raises(ValueError, match=r"\bn must be positive"):
        size_fn(0, 3)
    with pytest.raises(ValueError, match=r"stride must be positive"):
        size_fn(7, 3, stride=0)
    with pytest.raises(ValueError, match=r"kernel size 9"):
        size_fn(7, 9)
    with pytest.raises(ValueError, match=r"padding='same' needs stride 1"):
        size_fn(7, 3, padding="same", stride=2)
    with pytest.raises(TypeError, match=r"\bf must be an int"):
        size_fn(7, 3.0)


# ---------------------------------------------------------------- NaN / inf propagate


def receptive_hits(shape, bad, kernel, stride, padding):
    """Which outputs see the cell ``bad``: conv of its indicator with a kernel of ones."""
    ind = np.zeros(shape)
    ind[bad] = 1.0
    out, _ = F.conv2d_forward(ind, np.ones((1, shape[1]) + kernel), stride=stride, padding=padding)
    return out[:, 0] > 0


@pytest.mark.parametrize("k, positions", [(3, 9), (5, 20)])  # 5x5: the fast path's row blocks
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_propagate_through_conv(impl, value, k, positions, rng):
    x = rng.standard_normal((2, 2, 6, 5))
    bad = (1, 1, 2, 3)
    x[bad] = value
    w = rng.uniform(0.5, 1.5, (3, 2, k, k)) * rng.choice([-1, 1], (3, 2, k, k))  # no zero weights
    out, _ = impl.conv2d_forward(x, w, np.zeros(3), stride=1, padding=k // 2)
    hit = np.broadcast_to(receptive_hits(x.shape, bad, (k, k), 1, k // 2)[:, None], out.shape)
    assert hit.sum() == 3 * positions  # 3 filters
    np.testing.assert_array_equal(~np.isfinite(out), hit)
    if np.isnan(value):
        assert np.all(np.isnan(out[hit]))


@pytest.mark.filterwarnings("ignore:invalid value encountered")  # inf - inf in dw: NaN, as in torch
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_nan_and_inf_in_dout_stay_in_their_receptive_field(value, rng):
    """A conv on a small map runs as a Toeplitz GEMM over its other axes (a zero weight
    for every row out of the kernel's reach); an inf or NaN in dout must still reach
    only the dx cells of its receptive field, as in PyTorch."""
    import torch
    from conftest import torch_autograd
    x = rng.standard_normal((2, 2, 6, 5))
    w = rng.uniform(0.5, 1.5, (3, 2, 5, 5)) * rng.choice([-1, 1], (3, 2, 5, 5))
    b = np.zeros(3)
    out, cache = F.conv2d_forward(x, w, b, stride=1, padding=2)
    assert cache.kernel.route == "rows"  # the Toeplitz route ran
    dout = rng.standard_normal(out.shape)
    dout[1, 2, 2, 3] = value
    dx, dw, db = F.conv2d_backward(dout, cache)
    _, (t_dx, t_dw, t_db) = torch_autograd(
        lambda a, k, c: torch.nn.functional.conv2d(a, k, c, 1, 2), (x, w, b), dout)
    for ours, theirs in ((dx, t_dx), (dw, t_dw), (db, t_db)):
        np.testing.assert_array_equal(~np.isfinite(ours), ~np.isfinite(theirs))
        assert np.isfinite(ours).any()
    assert (~np.isfinite(dx)).sum() == 2 * 20  # both channels of the 5x4 cells it reached


def test_nan_and_inf_propagate_through_relu(impl):
    x = np.array([np.nan, np.inf, -np.inf, -1.0, 2.0])
    out, cache = impl.relu_forward(x)
    np.testing.assert_array_equal(out, [np.nan, np.inf, 0.0, 0.0, 2.0])  # assert_array_equal: NaN == NaN
    out, _ = impl.leaky_relu_forward(x, 0.1)
    np.testing.assert_array_equal(out, [np.nan, np.inf, -np.inf, -0.1, 2.0])


@pytest.mark.parametrize("value", [np.nan, np.inf])
@pytest.mark.parametrize("op", ["maxpool2d_forward", "avgpool2d_forward"])
def test_nan_and_inf_propagate_through_pooling(impl, op, value, rng):
    x = rng.standard_normal((1, 2, 6, 6))
    x[0, 1, 2, 3] = value
    out, _ = getattr(impl, op)(x, 3, 2, 1)  # overlapping windows: the cell is in several
    expected = np.zeros(out.shape, bool)
    expected[0, 1] = receptive_hits((1, 1, 6, 6), (0, 0, 2, 3), (3, 3), 2, 1)[0]
    assert expected.sum() == 2
    np.testing.assert_array_equal(~np.isfinite(out), expected)
    if np.isnan(value):
        assert np.all(np.isnan(out[expected]))
    else:
        assert np.all(out[expected] == np.inf)
