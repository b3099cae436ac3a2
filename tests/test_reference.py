"""cnnlab.reference (loops) and cnnlab.functional (fast) agree on every op; every backward
of both matches centred-difference numerical gradients (cnnlab.gradcheck)."""
import ast
import pathlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cnnlab
import cnnlab.functional as F
import cnnlab.reference as R
from cnnlab.gradcheck import eval_numerical_gradient, eval_numerical_gradient_array, rel_error

TOL = dict(rtol=1e-11, atol=1e-11)
GRAD_TOL = 1e-7  # rel_error of float64 centred differences on a correct gradient


# ------------------------------------------------------------------ the gradcheck module


def test_gradcheck_is_exported():
    assert cnnlab.gradcheck.rel_error is rel_error


def test_numerical_gradient_of_a_scalar_function(rng):
    x = rng.standard_normal((3, 4))
    x0 = x.copy()
    num = eval_numerical_gradient(lambda v: np.sum(v ** 3) + np.sin(v).prod(), x)
    exact = 3 * x ** 2 + np.cos(x) * np.sin(x).prod() / np.sin(x)
    assert rel_error(num, exact) < 1e-8
    np.testing.assert_array_equal(x, x0)  # restored exactly


def test_numerical_gradient_array_is_the_vjp(rng):
    x, dout = rng.standard_normal((4, 2)), rng.standard_normal((2, 2))
    a = rng.standard_normal((2, 4))
    num = eval_numerical_gradient_array(lambda v: np.tanh(a @ v), x, dout)
    exact = a.T @ (dout * (1 - np.tanh(a @ x) ** 2))
    assert rel_error(num, exact) < 1e-8


def test_numerical_gradient_array_copies_a_reused_buffer(rng):
    buf = np.zeros(3)

    def f(v):  # returns the same array object every call
        buf[...] = 2 * v
        return buf

    x = rng.standard_normal(3)
    assert rel_error(eval_numerical_gradient_array(f, x, np.ones(3)), np.full(3, 2.0)) < 1e-9


def test_rel_error_definition():
    assert rel_error(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.0
    assert rel_error(np.array([1.0, 10.0]), np.array([3.0, 10.0])) == pytest.approx(0.5)  # |1-3|/(1+3)
    assert rel_error(np.zeros(2), np.array([0.0, 1e-9])) == pytest.approx(0.1)  # floor 1e-8
    with pytest.raises(ValueError, match="equal shapes"):
        rel_error(np.zeros(2), np.zeros(3))


# ------------------------------------------------------------------ reference stands alone


def test_reference_imports_only_numpy_and_itself():
    root = pathlib.Path(R.__file__).parent
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = ["." * node.level + (node.module or "")]
            else:
                continue
            for name in names:
                ok = name.startswith(".") and "functional" not in name or name.split(".")[0] in (
                    "numpy", "__future__", "numbers", "itertools")
                assert ok, f"{path.name} imports {name}"


def test_reference_has_every_functional_op():
    ops = lambda mod: sorted(n for n in mod.__all__ if callable(getattr(mod, n)))
    assert ops(F) == ops(R)


# ------------------------------------------------------------------ fast == reference


@st.composite
def conv_or_pool(draw):
    nsp = draw(st.integers(1, 3))
    op = draw(st.sampled_from(["conv", "maxpool", "avgpool"]))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(nsp))
    if op == "conv":
        form = draw(st.sampled_from(["ints", "pairs", "valid", "same", "full"]))
        dilation = tuple(draw(st.integers(1, 2)) for _ in range(nsp))
    else:
        form = draw(st.sampled_from(["ints", "valid", "same"]))
        dilation = (1,) * nsp
    stride = (1,) * nsp if form == "same" else tuple(draw(st.integers(1, 3)) for _ in range(nsp))
    if form == "ints":
        padding = tuple(draw(st.integers(0, k // 2 if op != "conv" else 2)) for k in kernel)
        pads = [(p, p) for p in padding]
    elif form == "pairs":
        padding = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(nsp))
        pads = list(padding)
    else:
        padding = form
        total = [d * (k - 1) for k, d in zip(kernel, dilation)]
        pads = {"valid": [(0, 0)] * nsp, "full": [(t, t) for t in total],
                "same": [(t // 2, t - t // 2) for t in total]}[form]
    need = [max(1, d * (k - 1) + 1 - lo - hi) for k, d, (lo, hi) in zip(kernel, dilation, pads)]
    spatial = tuple(draw(st.integers(n, n + (4 if nsp < 3 else 2))) for n in need)  # kernel fits
    c = draw(st.integers(1, 3))
    return op, (draw(st.integers(1, 2)), c) + spatial, kernel, stride, padding, dilation, draw(st.integers(0, 2 ** 31))


@settings(max_examples=200)
@given(conv_or_pool())
def test_fast_and_reference_agree_on_conv_and_pool(cfg):
    op, xs, kernel, stride, padding, dilation, seed = cfg
    rng = np.random.default_rng(seed)
    # integer-valued inputs half the time: ties in max pooling
    x = rng.standard_normal(xs) if seed % 2 else rng.integers(-2, 3, xs).astype(float)
    outs = []
    for mod in (F, R):
        if op == "conv":
            w = np.random.default_rng(seed + 1).standard_normal((2, xs[1]) + kernel)
            b = np.random.default_rng(seed + 2).standard_normal(2)
            out, cache = mod.convnd_forward(x, w, b, stride, padding, dilation)
            grads = mod.convnd_backward(np.random.default_rng(seed + 3).standard_normal(out.shape), cache)
        else:
            out, cache = getattr(mod, f"{op}nd_forward")(x, kernel, stride, padding)
            dout = np.random.default_rng(seed + 3).standard_normal(out.shape)
            grads = (getattr(mod, f"{op}nd_backward")(dout, cache),)
        outs.append((out,) + tuple(grads))
    for a, b in zip(*outs):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, **TOL)


def forward_all(mod, rng_seed):
    """Run every non-conv/pool op of ``mod`` on the same inputs; name -> list of arrays."""
    rng = np.random.default_rng(rng_seed)
    x = rng.standard_normal((4, 6))
    x4 = rng.standard_normal((3, 2, 4, 5))
    d = rng.standard_normal(x.shape)
    d4 = rng.standard_normal(x4.shape)
    y = rng.integers(0, 6, 4)
    res = {}
    for name in ["relu", "sigmoid", "tanh"]:
        out, cache = getattr(mod, f"{name}_forward")(x)
        res[name] = [out, getattr(mod, f"{name}_backward")(d, cache)]
    out, cache = mod.leaky_relu_forward(x, 0.2)
    res["leaky_relu"] = [out, mod.leaky_relu_backward(d, cache)]
    w, b = rng.standard_normal((40, 6)), rng.standard_normal(6)
    out, cache = mod.affine_forward(x4, w, b)
    res["affine"] = [out, *mod.affine_backward(rng.standard_normal(out.shape), cache)]
    param = {"mode": "train", "momentum": 0.8}
    out, cache = mod.batchnorm_forward(x, np.arange(1.0, 7.0), np.ones(6), param)
    res["batchnorm"] = [out, param["running_mean"], param["running_var"], *mod.batchnorm_backward(d, cache),
                        *mod.batchnorm_backward_alt(d, cache)]
    param = {"mode": "train"}
    out, cache = mod.spatial_batchnorm_forward(x4, np.array([1.0, 2.0]), np.array([0.0, -1.0]), param)
    res["spatial_batchnorm"] = [out, param["running_mean"], param["running_var"],
                                *mod.spatial_batchnorm_backward(d4, cache)]
    out, cache = mod.dropout_forward(x4, {"p": 0.7, "seed": 3})
    res["dropout"] = [out, mod.dropout_backward(d4, cache)]
    out, cache = mod.flatten_forward(x4)
    res["flatten"] = [out, mod.flatten_backward(rng.standard_normal(out.shape), cache)]
    out, cache = mod.global_avgpool_forward(x4)
    res["global_avgpool"] = [out, mod.global_avgpool_backward(x4[:, :, 0, 0], cache)]
    res["softmax"] = [mod.softmax(x), mod.softmax(x4, axis=1), mod.log_softmax(x), mod.log_softmax(x4, axis=2)]
    for name in ["softmax_loss", "svm_loss"]:
        loss, dscores = getattr(mod, name)(x * 2, y)
        res[name] = [np.array(loss), dscores]
    res["svm_delta"] = list(mod.svm_loss(x, y, delta=0.3))
    sig, ker = rng.standard_normal(9), rng.standard_normal(4)
    img, k2 = rng.standard_normal((5, 6)), rng.standard_normal((2, 3))
    for mode in ("valid", "same", "full"):
        res[f"signal_{mode}"] = [mod.correlate1d(sig, ker, mode), mod.convolve1d(sig, ker, mode),
                                 mod.correlate2d(img, k2, mode), mod.convolve2d(img, k2, mode)]
    return res


OTHER_OPS = ["relu", "sigmoid", "tanh", "leaky_relu", "affine", "batchnorm", "spatial_batchnorm", "dropout",
             "flatten", "global_avgpool", "softmax", "softmax_loss", "svm_loss", "svm_delta",
             "signal_valid", "signal_same", "signal_full"]


@pytest.fixture(scope="module")
def both_results():
    return forward_all(F, 5), forward_all(R, 5)


@pytest.mark.parametrize("name", OTHER_OPS)
def test_fast_and_reference_agree_on_the_other_ops(both_results, name):
    fast, ref = both_results
    assert len(fast[name]) == len(ref[name])
    for a, b in zip(fast[name], ref[name]):
        assert np.shape(a) == np.shape(b)
        np.testing.assert_allclose(a, b, **TOL)


# ------------------------------------------------------------------ numerical gradients


def check_numeric(fwd, bwd, arrays, rng, names):
    """fwd(*arrays) -> (out, cache); bwd(dout, cache) -> gradients aligned with ``arrays``.
    Each analytic gradient against eval_numerical_gradient_array of out = fwd(...)[0]."""
    out, cache = fwd(*arrays)
    dout = rng.standard_normal(out.shape)
    grads = bwd(dout, cache)
    assert len(grads) == len(arrays)
    for a, g, name in zip(arrays, grads, names):
        num = eval_numerical_gradient_array(lambda _: fwd(*arrays)[0], a, dout)
        err = rel_error(num, g)
        assert err < GRAD_TOL, f"d{name}: rel_error {err:.2e}"


CONV_GRAD_CASES = [
    ((2, 2, 7), (3, 2, 3), 2, 1, 1),
    ((1, 2, 6), (2, 2, 2), 1, "full", 2),
    ((2, 2, 5, 4), (2, 2, 3, 2), (2, 1), ((1, 0), (0, 2)), 1),
    ((1, 2, 5, 5), (2, 2, 2, 2), 1, "same", (1, 2)),
    ((1, 1, 3, 4, 3), (2, 1, 2, 3, 2), (1, 2, 1), (1, 0, 1), 1),
]


@pytest.mark.parametrize("xs, ws, stride, padding, dilation", CONV_GRAD_CASES)
def test_conv_gradients_numerically(impl, xs, ws, stride, padding, dilation, rng):
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    check_numeric(lambda x_, w_, b_: impl.convnd_forward(x_, w_, b_, stride, padding, dilation),
                  impl.convnd_backward, [x, w, b], rng, "x w b".split())


def distinct(rng, shape):
    """Values at least 0.1 apart: no ties within h of each other, so max is differentiable."""
    return rng.permutation(np.prod(shape)).reshape(shape) * 0.1 + rng.uniform(-0.01, 0.01, shape)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("xs, pool, stride, padding", [
    ((2, 2, 7), 3, 2, 1), ((1, 2, 5, 6), (2, 3), (1, 2), (1, 1)), ((1, 2, 6, 6), 2, None, 0),
    ((1, 1, 4, 3, 4), 2, 1, 1)])
def test_pool_gradients_numerically(impl, kind, xs, pool, stride, padding, rng):
    check_numeric(lambda x_: getattr(impl, f"{kind}poolnd_forward")(x_, pool, stride, padding),
                  lambda d, c: (getattr(impl, f"{kind}poolnd_backward")(d, c),), [distinct(rng, xs)], rng, ["x"])


def test_global_avgpool_gradient_numerically(impl, rng):
    check_numeric(impl.global_avgpool_forward, lambda d, c: (impl.global_avgpool_backward(d, c),),
                  [rng.standard_normal((2, 3, 2, 3))], rng, ["x"])


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "sigmoid", "tanh"])
def test_activation_gradients_numerically(impl, name, rng):
    x = rng.standard_normal((4, 5))
    x[np.abs(x) < 0.01] = 0.5  # keep away from the kink at 0
    check_numeric(getattr(impl, f"{name}_forward"), lambda d, c: (getattr(impl, f"{name}_backward")(d, c),),
                  [x], rng, ["x"])


def test_affine_gradients_numerically(impl, rng):
    x, w, b = rng.standard_normal((3, 2, 3)), rng.standard_normal((6, 4)), rng.standard_normal(4)
    check_numeric(impl.affine_forward, impl.affine_backward, [x, w, b], rng, "x w b".split())


@pytest.mark.parametrize("backward", ["batchnorm_backward", "batchnorm_backward_alt"])
def test_batchnorm_gradients_numerically(impl, backward, rng):
    x, gamma, beta = rng.standard_normal((5, 3)) * 2 + 1, rng.standard_normal(3), rng.standard_normal(3)
    check_numeric(lambda x_, g_, b_: impl.batchnorm_forward(x_, g_, b_, {"mode": "train"}),
                  getattr(impl, backward), [x, gamma, beta], rng, "x gamma beta".split())


def test_spatial_batchnorm_gradients_numerically(impl, rng):
    x, gamma, beta = rng.standard_normal((2, 3, 3, 2)), rng.standard_normal(3), rng.standard_normal(3)
    check_numeric(lambda x_, g_, b_: impl.spatial_batchnorm_forward(x_, g_, b_, {"mode": "train"}),
                  impl.spatial_batchnorm_backward, [x, gamma, beta], rng, "x gamma beta".split())


def test_dropout_gradient_numerically(impl, rng):
    # a fixed seed draws the same mask on every call, so out is linear in x
    check_numeric(lambda x_: impl.dropout_forward(x_, {"p": 0.6, "seed": 9}),
                  lambda d, c: (impl.dropout_backward(d, c),), [rng.standard_normal((4, 5))], rng, ["x"])


@pytest.mark.parametrize("loss", ["softmax_loss", "svm_loss"])
def test_loss_gradients_numerically(impl, loss, rng):
    scores, y = rng.standard_normal((6, 4)), rng.integers(0, 4, 6)
    if loss == "svm_loss":  # keep every margin away from its kink at 0
        m = scores - scores[np.arange(6), y][:, None] + 1
        scores[np.abs(m) < 0.05] += 0.2
    _, dscores = getattr(impl, loss)(scores, y)
    num = eval_numerical_gradient(lambda s: getattr(impl, loss)(s, y)[0], scores)
    assert rel_error(num, dscores) < GRAD_TOL
