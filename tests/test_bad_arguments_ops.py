"""Issue 12, section 5: the remaining bad arguments of cnnlab.functional get clear errors
(which argument, what was expected, what came), checked before any big allocation; empty
batches behave as in PyTorch; NaN/inf still propagate where PyTorch propagates them."""
import re
import resource
import time

import numpy as np
import pytest
import torch
from conftest import torch_autograd

import cnnlab.functional as F
from cnnlab import layers as L

X = np.random.default_rng(0).standard_normal((2, 3, 6, 6)).astype(np.float32)
W = np.random.default_rng(1).standard_normal((4, 3, 3, 3)).astype(np.float32)
B = np.zeros(4, np.float32)


# ----------------------------------------------------------------------------- empty batches

@pytest.mark.parametrize("c, k, stride, padding", [
    (3, 3, 1, 1),    # batch-last route
    (2, 5, 1, 2),    # row blocks (LeNet-like)
    (16, 3, 1, 1),   # channels-last
    (3, 3, 2, 0),    # strided
])
def test_conv_on_an_empty_batch_matches_torch(c, k, stride, padding, rng):
    x = np.zeros((0, c, 8, 8))
    w = rng.standard_normal((4, c, k, k))
    b = rng.standard_normal(4)
    out, cache = F.conv2d_forward(x, w, b, stride=stride, padding=padding)
    dout = np.zeros(out.shape)
    dx, dw, db = F.conv2d_backward(dout, cache)
    t_out, (t_dx, t_dw, t_db) = torch_autograd(
        lambda a, q, v: torch.nn.functional.conv2d(a, q, v, stride, padding), (x, w, b), dout)
    assert out.shape == t_out.shape and dx.shape == t_dx.shape
    np.testing.assert_array_equal(dw, t_dw)  # zeros: nothing flowed
    np.testing.assert_array_equal(db, t_db)
    assert dw.dtype == db.dtype == np.float64


def test_an_empty_batch_runs_through_a_model():
    model = L.Sequential([L.Conv2D(4, 3), L.ReLU(), L.MaxPool2D(2), L.Flatten(), L.Dense(3)],
                         input_shape=(3, 8, 8), seed=0)
    out = model.forward(np.zeros((0, 3, 8, 8), np.float32), training=True)
    assert out.shape == (0, 3)
    dx = model.backward(np.zeros((0, 3), np.float32))
    assert dx.shape == (0, 3, 8, 8)
    assert not model.layers[0].grads["w"].any()


# ----------------------------------------------------------------------------- conv sizes

@pytest.mark.parametrize("x, w, pattern", [
    (np.zeros((2, 0, 6, 6)), np.zeros((4, 0, 3, 3)), r"\bx must have at least one channel.*C=0"),
    (X, np.zeros((0, 3, 3, 3)), r"\bw must have at least one filter.*K=0"),
    (X, np.zeros((4, 3, 0, 3)), r"\bw must have a kernel of at least 1 cell"),
])
@pytest.mark.parametrize("op", ["conv2d_forward", "convnd_forward"])
def test_conv_zero_channels_filters_or_kernel(op, x, w, pattern):
    with pytest.raises(ValueError, match=pattern):
        getattr(F, op)(x, w)


@pytest.mark.parametrize("shape", [(3, 3), (5,), ()])
def test_convnd_forward_needs_a_spatial_axis(shape):
    with pytest.raises(ValueError, match=r"convnd_forward: x must be \(N, C, \*spatial\).*"
                                         + r"got shape " + re.escape(str(shape))):
        F.convnd_forward(np.zeros(shape), np.zeros(shape))


def test_pooling_nd_needs_a_spatial_axis():
    with pytest.raises(ValueError, match=r"x must be \(N, C, \*spatial\)"):
        F.maxpoolnd_forward(np.zeros((3, 3)), 2)


@pytest.mark.parametrize("padding", [10 ** 6, (10 ** 6, 10 ** 6), ((0, 10 ** 12), 0)])
def test_huge_padding_is_refused_before_allocating(padding):
    """Today numpy is asked for terabytes (or, under overcommit, the process is killed
    while zero-filling); the check is arithmetic on shapes, so it is instant."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"^padding=.* is too large: .* would need [\d.]+ [GTPE]iB, more than this machine.s memory"):
        F.conv2d_forward(X, W, B, padding=padding)
    assert time.perf_counter() - t0 < 1.0
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 50 * 1024  # peak RSS grew by less than 50 MiB


def test_big_but_feasible_padding_still_works():
    out, _ = F.conv2d_forward(np.ones((1, 1, 2, 2)), np.ones((1, 1, 1, 1)), padding=100)
    assert out.shape == (1, 1, 202, 202) and out.sum() == 4


# ----------------------------------------------------------------------------- backward: dout and cache

def _forwards():
    """name -> (forward result (out, cache), backward function)."""
    x2 = X.reshape(2, -1)
    return {
        "conv": (F.conv2d_forward(X, W, B, padding=1), F.conv2d_backward),
        "conv_rows": (F.conv2d_forward(X, np.ones((4, 3, 5, 5), np.float32), B, padding=2),
                      F.conv2d_backward),
        "maxpool": (F.maxpool2d_forward(X, 2), F.maxpool2d_backward),
        "avgpool": (F.avgpool2d_forward(X, 2), F.avgpool2d_backward),
        "global_avgpool": (F.global_avgpool_forward(X), F.global_avgpool_backward),
        "affine": (F.affine_forward(X, np.ones((108, 5), np.float32), np.zeros(5, np.float32)),
                   F.affine_backward),
        "relu": (F.relu_forward(X), F.relu_backward),
        "leaky_relu": (F.leaky_relu_forward(X, 0.1), F.leaky_relu_backward),
        "sigmoid": (F.sigmoid_forward(X), F.sigmoid_backward),
        "tanh": (F.tanh_forward(X), F.tanh_backward),
        "batchnorm": (F.batchnorm_forward(x2, np.ones(108), np.zeros(108), {}), F.batchnorm_backward),
        "batchnorm_alt": (F.batchnorm_forward(x2, np.ones(108), np.zeros(108), {}),
                          F.batchnorm_backward_alt),
        "spatial_batchnorm": (F.spatial_batchnorm_forward(X, np.ones(3), np.zeros(3), {}),
                              F.spatial_batchnorm_backward),
        "dropout_train": (F.dropout_forward(X, {"p": 0.5, "seed": 0}), F.dropout_backward),
        "dropout_test": (F.dropout_forward(X, {"p": 0.5, "mode": "test"}), F.dropout_backward),
    }


OPS = sorted(_forwards())


def _wrong_shapes(shape):
    yield shape[:-1] + (shape[-1] + 1,)      # one too many on the last axis
    yield (shape[0] + 1,) + shape[1:]         # another batch size
    yield shape[1:]                           # the batch axis missing
    yield (1,) + shape[1:]                    # broadcastable: still refused


@pytest.mark.parametrize("op", OPS)
def test_backward_names_dout_and_the_expected_shape(op):
    (out, cache), backward = _forwards()[op]
    for shape in _wrong_shapes(out.shape):
        pattern = (rf"dout must have the shape of the forward output "
                   rf"{re.escape(str(out.shape))}, got {re.escape(str(shape))}")
        with pytest.raises(ValueError, match=pattern):
            backward(np.ones(shape, np.float32), cache)
    backward(np.ones(out.shape, np.float32), cache)  # the right shape still works


@pytest.mark.parametrize("op", OPS)
def test_backward_refuses_what_is_not_its_cache(op):
    forwards = _forwards()
    (out, cache), backward = forwards[op]
    other = forwards["avgpool" if op != "avgpool" else "conv"][0][1]
    bad_caches = [None, (), (1, 2), other, "cache"]
    if isinstance(cache, tuple):
        bad_caches.append(tuple(cache))  # same content, but a plain tuple
    for bad in bad_caches:
        with pytest.raises(TypeError, match=r"cache must be the cache returned by \w+_forward"):
            backward(np.ones(out.shape, np.float32), bad)


# ----------------------------------------------------------------------------- scalars

@pytest.mark.parametrize("bad", ["0.1", None, [0.1], np.array([0.1, 0.2]), True])
def test_non_numeric_alpha_delta_p_eps(bad):
    with pytest.raises(TypeError, match=r"\balpha must be a real number"):
        F.leaky_relu_forward(X, alpha=bad)
    with pytest.raises(TypeError, match=r"\bdelta must be a real number"):
        F.svm_loss(np.zeros((2, 3)), np.array([0, 1]), delta=bad)
    with pytest.raises(TypeError, match=r"dropout_param\['p'\] must be a real number"):
        F.dropout_forward(X, {"p": bad})
    for key in ("eps", "momentum"):
        with pytest.raises(TypeError, match=rf"bn_param\['{key}'\] must be a real number"):
            F.spatial_batchnorm_forward(X, np.ones(3), np.zeros(3), {key: bad})


def test_numpy_scalars_are_numbers():
    out, _ = F.leaky_relu_forward(X, np.float32(0.1))
    ref, _ = F.leaky_relu_forward(X, 0.1)
    np.testing.assert_array_equal(out, ref)
    assert F.svm_loss(np.zeros((2, 3)), np.array([0, 1]), delta=np.array(2))[0] == 4.0


@pytest.mark.filterwarnings("ignore:invalid value encountered")  # 0 * inf, as in torch
@pytest.mark.parametrize("alpha", [np.nan, np.inf])
def test_non_finite_alpha_propagates_as_in_torch(alpha):
    x = np.array([-2.0, -0.0, 1.5, np.nan])
    out, cache = F.leaky_relu_forward(x, alpha)
    dout = np.ones_like(x)
    dx = F.leaky_relu_backward(dout, cache)
    t_out, (t_dx,) = torch_autograd(lambda a: torch.nn.functional.leaky_relu(a, alpha), (x,), dout)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(t_out))
    np.testing.assert_array_equal(out[~np.isnan(out)], t_out[~np.isnan(t_out)])
    np.testing.assert_array_equal(np.isnan(dx), np.isnan(t_dx))
