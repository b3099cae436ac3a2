"""Containers against torch.nn with copied weights (float64): a whole Sequential convnet,
Inception-style Concat and ResNet-style Residual -- outputs, input gradient and every
parameter gradient. Plus naming, parameters, get/set_weights and serialization."""
import json

import numpy as np
import pytest
import torch
from conftest import torch_autograd
from torch import nn

import cnnlab.layers as L

TOL = dict(rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------ torch twins
class TMask(nn.Module):
    """Dropout with the mask our layer drew (None: identity, test mode)."""

    def __init__(self, mask):
        super().__init__()
        self.mask = mask

    def forward(self, x):
        return x if self.mask is None else x * self.mask


class TCat(nn.Module):
    def __init__(self, mods, dim):
        super().__init__()
        self.mods, self.dim = nn.ModuleList(mods), dim

    def forward(self, x):
        return torch.cat([m(x) for m in self.mods], self.dim)


class TRes(nn.Module):
    def __init__(self, body, shortcut):
        super().__init__()
        self.body, self.shortcut = body, shortcut

    def forward(self, x):
        return self.body(x) + (x if self.shortcut is None else self.shortcut(x))


_ACT = {None: None, "relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_MAX = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
_AVG = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}


def _t(a):
    return torch.tensor(np.array(a))


def to_torch(layer, prefix, table, input_shape, root=False):
    """Our built layer -> an equivalent float64 torch module with the same weights.
    ``table[qualified name] = (torch parameter, transform of its grad to our layout)``."""
    if isinstance(layer, L.Container):
        child_prefix = "" if root else f"{prefix}{layer.name}/"
        mods = [to_torch(c, child_prefix, table, s) for c, s in layer.child_input_shapes(input_shape)]
        if isinstance(layer, L.Sequential):
            return nn.Sequential(*mods)
        if isinstance(layer, L.Concat):
            return TCat(mods, layer.axis)
        return TRes(mods[0], mods[1] if len(mods) > 1 else None)
    q = f"{prefix}{layer.name}."
    if isinstance(layer, (L.Conv1D, L.Conv2D, L.Conv3D)):
        w = layer.params["w"]
        pad = [lo for lo, _ in layer._pads]
        assert all(lo == hi for lo, hi in layer._pads)
        m = _CONV[layer.nsp](w.shape[1], w.shape[0], w.shape[2:], stride=layer.stride, padding=pad,
                             dilation=layer.dilation, bias=layer.use_bias).double()
        m.weight.data = _t(w)
        table[q + "w"] = (m.weight, lambda g: g)
        if layer.use_bias:
            m.bias.data = _t(layer.params["b"])
            table[q + "b"] = (m.bias, lambda g: g)
        act = _ACT[layer.activation]
        return m if act is None else nn.Sequential(m, act())
    if isinstance(layer, L.Dense):
        w = layer.params["w"]
        m = nn.Linear(w.shape[0], w.shape[1], bias=layer.use_bias).double()
        m.weight.data = _t(w.T)
        table[q + "w"] = (m.weight, lambda g: g.T)
        if layer.use_bias:
            m.bias.data = _t(layer.params["b"])
            table[q + "b"] = (m.bias, lambda g: g)
        mods = ([nn.Flatten()] if len(input_shape) > 1 else []) + [m]
        if layer.activation:
            mods.append(_ACT[layer.activation]())
        return nn.Sequential(*mods)
    if isinstance(layer, L.BatchNorm):
        cls = nn.BatchNorm1d if len(input_shape) <= 2 else nn.BatchNorm2d
        m = cls(input_shape[0], eps=layer.eps, momentum=1 - layer.momentum).double()
        m.weight.data, m.bias.data = _t(layer.params["gamma"]), _t(layer.params["beta"])
        m.running_mean.data = _t(layer.state["running_mean"])
        m.running_var.data = _t(layer.state["running_var"])
        table[q + "gamma"] = (m.weight, lambda g: g)
        table[q + "beta"] = (m.bias, lambda g: g)
        return m
    if isinstance(layer, (L.MaxPool1D, L.MaxPool2D, L.MaxPool3D)):
        return _MAX[layer.nsp](layer.pool_size, layer._stride, [lo for lo, _ in layer._pads])
    if isinstance(layer, (L.AvgPool1D, L.AvgPool2D, L.AvgPool3D)):
        return _AVG[layer.nsp](layer.pool_size, layer._stride, [lo for lo, _ in layer._pads])
    if isinstance(layer, L.Dropout):
        cache = layer._cache
        mask = None if cache is None or cache[0][0] is None else _t(cache[0][0])
        return TMask(mask)
    simple = {L.ReLU: nn.ReLU(), L.Flatten: nn.Flatten(), L.Tanh: nn.Tanh(), L.Sigmoid: nn.Sigmoid(),
              L.GlobalAvgPool2D: nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())}
    return simple[type(layer)]


def compare_with_torch(model, x, training, cache=None):
    """Forward ours (to draw dropout masks), then torch; compare out, dx, every grad."""
    rng = np.random.default_rng(5)
    out = model.forward(x, training=training, cache=cache)
    table = {}
    tmodel = to_torch(model, "", table, model.input_shape, root=True)
    tmodel.train(training)
    # the torch twin must start from the running statistics our forward started from:
    # in test mode they did not change; in train mode torch only affects its copies
    dout = rng.standard_normal(out.shape)
    dx = model.backward(dout)
    tx = torch.tensor(x, requires_grad=True)
    tout = tmodel(tx)
    tout.backward(torch.tensor(dout))
    np.testing.assert_allclose(out, tout.detach().numpy(), **TOL)
    np.testing.assert_allclose(dx, tx.grad.numpy(), **TOL)
    names = [q for q, _, _ in model.named_parameters()]
    assert sorted(names) == sorted(table)
    for q, layer, key in model.named_parameters():
        tparam, transform = table[q]
        np.testing.assert_allclose(layer.grads[key], transform(tparam.grad.numpy()), **TOL, err_msg=q)
    return out


def convnet(seed=0):
    return L.Sequential([
        L.Conv2D(4, 3, padding=1), L.BatchNorm(), L.ReLU(), L.MaxPool2D(2),
        L.Conv2D(6, 3, stride=1, padding="valid"), L.ReLU(), L.AvgPool2D(2),
        L.Flatten(), L.Dense(10), L.ReLU(), L.Dropout(0.3), L.Dense(5),
    ], input_shape=(3, 10, 10), seed=seed, dtype=np.float64)


def test_sequential_matches_torch_train_mode():
    model = convnet()
    x = np.random.default_rng(0).standard_normal((4, 3, 10, 10))
    bn = model.layers[1]
    before = bn.state["running_mean"].copy()
    compare_with_torch(model, x, training=True)
    # running statistics moved as cs231n says (momentum weighs the old value)
    assert not np.allclose(bn.state["running_mean"], before)


def test_sequential_matches_torch_inference_with_cache():
    model = convnet()
    rng = np.random.default_rng(1)
    bn = model.layers[1]
    bn.state["running_mean"][...] = rng.standard_normal(4)
    bn.state["running_var"][...] = rng.uniform(0.5, 2, 4)
    bn.params["gamma"][...] = rng.uniform(0.5, 1.5, 4)
    x = rng.standard_normal((3, 3, 10, 10))
    out = compare_with_torch(model, x, training=False, cache=True)
    np.testing.assert_array_equal(out, model.forward(x))  # same numbers without a cache


def inception(dtype=np.float64):
    return L.Sequential([
        L.Conv2D(4, 3, padding=1, activation="relu"),
        L.Concat([
            L.Conv2D(3, 1),
            [L.Conv2D(2, 1, activation="relu"), L.Conv2D(5, 3, padding=1)],
            [L.MaxPool2D(3, stride=1, padding=1), L.Conv2D(2, 1)],
        ]),
        L.ReLU(), L.GlobalAvgPool2D(), L.Dense(3),
    ], input_shape=(2, 6, 6), seed=3, dtype=dtype)


def test_concat_matches_torch():
    model = inception()
    assert model.layers[1].output_shape == (10, 6, 6)
    x = np.random.default_rng(2).standard_normal((3, 2, 6, 6))
    compare_with_torch(model, x, training=True)


def test_residual_matches_torch_identity_and_projection():
    model = L.Sequential([
        L.Conv2D(4, 3, padding=1),
        L.Residual([L.Conv2D(4, 3, padding=1), L.BatchNorm(), L.ReLU(), L.Conv2D(4, 3, padding=1)]),
        L.ReLU(),
        L.Residual([L.Conv2D(6, 3, stride=2, padding=1, activation="relu"), L.Conv2D(6, 3, padding=1)],
                   shortcut=L.Conv2D(6, 1, stride=2)),
        L.ReLU(), L.Flatten(), L.Dense(2),
    ], input_shape=(2, 6, 6), seed=4, dtype=np.float64)
    x = np.random.default_rng(3).standard_normal((3, 2, 6, 6))
    compare_with_torch(model, x, training=True)
    compare_with_torch(model, x, training=False, cache=True)


def test_container_gradients_numerically():
    """Concat's split-and-sum and Residual's add, checked by centred differences too."""
    from test_layers import numerical_grad, rel_error

    for block in (L.Concat([L.Conv2D(2, 1), [L.Tanh(), L.Conv2D(3, 3, padding=1)]]),
                  L.Residual([L.Conv2D(2, 3, padding=1), L.Tanh()]),
                  L.Residual(L.Dense(3), shortcut=L.Dense(3))):
        shape = (3,) if isinstance(block, L.Residual) and block.shortcut else (2, 4, 4)
        model = L.Sequential([block], dtype=np.float64, seed=0)
        rng = np.random.default_rng(0)
        model.build(shape, rng, np.float64)
        x = rng.standard_normal((2,) + shape)
        out = model.forward(x, training=True)
        dout = rng.standard_normal(out.shape)
        dx = model.backward(dout)
        assert rel_error(dx, numerical_grad(lambda: model.forward(x), x, dout)) < 1e-7
        for q, layer, key in model.named_parameters():
            num = numerical_grad(lambda: model.forward(x), layer.params[key], dout)
            assert rel_error(layer.grads[key], num) < 1e-7, q


def test_container_shape_errors():
    with pytest.raises(ValueError, match="body's output shape"):
        L.Sequential([L.Residual([L.Conv2D(5, 3, padding=1)])], input_shape=(4, 6, 6))
    with pytest.raises(ValueError, match="agree except on axis 1"):
        L.Sequential([L.Concat([L.Conv2D(2, 3), L.Conv2D(2, 1)])], input_shape=(4, 6, 6))
    with pytest.raises(ValueError, match="non-empty"):
        L.Concat([])
    with pytest.raises(ValueError, match="axis"):
        L.Concat([L.ReLU()], axis=0)
    with pytest.raises(TypeError, match="body"):
        L.Residual("conv")


# ------------------------------------------------------------------ naming and parameters
def test_keras_style_names_and_qualified_parameter_names():
    model = inception()
    names = [layer.name for layer in model.layers]
    assert names == ["conv2d", "concat", "relu", "global_avg_pool2d", "dense"]
    branch_names = [b.name for b in model.layers[1].branches]
    assert branch_names == ["conv2d", "sequential", "sequential_1"]
    q = [name for name, _, _ in model.named_parameters()]
    assert q == ["conv2d.w", "conv2d.b", "concat/conv2d.w", "concat/conv2d.b",
                 "concat/sequential/conv2d.w", "concat/sequential/conv2d.b",
                 "concat/sequential/conv2d_1.w", "concat/sequential/conv2d_1.b",
                 "concat/sequential_1/conv2d.w", "concat/sequential_1/conv2d.b",
                 "dense.w", "dense.b"]
    name, layer, key = model.named_parameters()[4]
    assert layer is model.get_layer("concat/sequential/conv2d") and key == "w"
    assert layer.params["w"].shape == (2, 4, 1, 1)
    with pytest.raises(KeyError, match="no layer"):
        model.get_layer("nope")
    seq = L.Sequential([L.Dense(2), L.Dense(2, name="dense_1"), L.Dense(2)])
    assert [la.name for la in seq.layers] == ["dense", "dense_1", "dense_2"]
    with pytest.raises(ValueError, match="two children named 'x'"):
        L.Sequential([L.Dense(2, name="x"), L.Dense(2, name="x")])
    d = L.Dense(2)
    with pytest.raises(ValueError, match="appears twice"):
        L.Sequential([d, d])


def test_count_params_and_state():
    model = convnet()
    expected = (4 * 27 + 4) + 2 * 4 + (6 * 36 + 6) + (6 * 1 * 1 * 10 + 10) + (10 * 5 + 5)
    assert model.count_params() == expected
    assert model.count_state() == 8
    assert len(model.get_weights()) == len(model.named_parameters()) + 2


def test_get_set_weights_round_trip_all_or_nothing():
    a, b = convnet(seed=0), convnet(seed=1)
    x = np.random.default_rng(0).standard_normal((2, 3, 10, 10))
    weights = a.get_weights()
    assert "batch_norm.running_var" in weights and "conv2d.w" in weights
    ids = {q: id(layer.params[key]) for q, layer, key in b.named_parameters()}
    b.set_weights(weights)
    assert {q: id(layer.params[key]) for q, layer, key in b.named_parameters()} == ids  # in place
    np.testing.assert_array_equal(a.forward(x), b.forward(x))
    weights["conv2d.w"][...] = 0  # get_weights returned copies
    assert not np.all(a.layers[0].params["w"] == 0)

    c = convnet(seed=2)
    before = c.get_weights()
    bad = dict(weights)
    bad["dense_1.w"] = np.zeros((3, 3))
    with pytest.raises(ValueError, match=r"'dense_1.w' must have shape \(10, 5\), got \(3, 3\)"):
        c.set_weights(bad)
    assert all(np.array_equal(before[k], v) for k, v in c.get_weights().items())  # untouched
    missing = {k: v for k, v in weights.items() if k != "dense.b"}
    with pytest.raises(ValueError, match=r"missing \['dense.b'\]"):
        c.set_weights(missing)
    with pytest.raises(ValueError, match=r"unexpected \['extra.w'\]"):
        c.set_weights({**weights, "extra.w": np.zeros(1)})
    with pytest.raises(ValueError, match="dtype float64"):
        c.set_weights({k: v.astype(np.float32) for k, v in weights.items()})
    with pytest.raises(RuntimeError, match="not built"):
        L.Sequential([L.Dense(3)]).get_weights()


def test_add_builds_at_once_and_lazy_build_uses_seed():
    model = L.Sequential(input_shape=(3, 8, 8), seed=0)
    model.add(L.Conv2D(4, 3))
    assert model.layers[0].built and model.output_shape == (4, 6, 6)
    model.add(L.Flatten()).add(L.Dense(2))
    assert model.output_shape == (2,)
    with pytest.raises(ValueError):
        model.add(L.Conv2D(2, 3))  # cannot follow a Dense
    assert len(model) == 3

    def lazy():
        m = L.Sequential([L.Conv2D(2, 3), L.Flatten(), L.Dense(2)], seed=5)
        return m.forward(np.ones((1, 1, 5, 5), np.float32))

    np.testing.assert_array_equal(lazy(), lazy())


# ------------------------------------------------------------------ serialization
def every_layer_model():
    return L.Sequential([
        L.Conv2D(4, (3, 3), padding="same", activation="relu", name="stem"),
        L.BatchNorm(momentum=0.8),
        L.Residual([L.Conv2D(4, 3, padding=((1, 1), (1, 1))), L.LeakyReLU(0.2)]),
        L.Concat([L.MaxPool2D(3, stride=1, padding=1), [L.AvgPool2D(3, stride=1, padding=1),
                                                        L.Conv2D(2, 1, use_bias=False)]]),
        L.Sigmoid(), L.Tanh(), L.MaxPool2D(2), L.Flatten(), L.Dropout(0.25, seed=4),
        L.Dense(6, kernel_initializer="glorot"), L.Softmax(),
    ], input_shape=(2, 8, 8), seed=0)


def test_serialize_round_trip():
    model = every_layer_model()
    d = L.serialize(model)
    text = json.dumps(d)
    again = L.deserialize(json.loads(text))
    assert isinstance(again, L.Sequential) and again.built
    assert json.dumps(L.serialize(again)) == text
    assert [q for q, *_ in again.named_parameters()] == [q for q, *_ in model.named_parameters()]
    again.set_weights(model.get_weights())
    x = np.random.default_rng(0).standard_normal((2, 2, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(model.forward(x), again.forward(x))
    one_d = L.Sequential([L.Conv1D(3, 5, stride=2), L.MaxPool1D(2), L.AvgPool1D(1),
                          L.GlobalAvgPool1D()], seed=0)
    three_d = L.Sequential([L.Conv3D(2, 2), L.MaxPool3D(1), L.AvgPool3D(1), L.GlobalAvgPool3D()])
    for m in (one_d, three_d):
        assert L.serialize(L.deserialize(json.loads(json.dumps(L.serialize(m))))) == \
            json.loads(json.dumps(L.serialize(m)))
    assert d["config"]["layers"][0] == {"class": "Conv2D", "config": {
        "name": "stem", "filters": 4, "kernel_size": [3, 3], "stride": [1, 1], "padding": "same",
        "use_bias": True, "dilation": [1, 1], "activation": "relu", "kernel_initializer": "he"}}


def test_float32_end_to_end():
    """The default dtype stays float32 through every layer, forward and backward."""
    model = every_layer_model()
    x = np.random.default_rng(0).random((3, 2, 8, 8))  # float64 input is cast
    for training, cache in ((True, None), (False, True)):
        out = model.forward(x, training=training, cache=cache)
        dx = model.backward(np.ones_like(out))
        assert out.dtype == dx.dtype == np.float32
        assert all(layer.grads[key].dtype == np.float32 for _, layer, key in model.named_parameters())


def test_deserialize_errors():
    with pytest.raises(ValueError, match="unknown layer class 'Conv9D'"):
        L.deserialize({"class": "Conv9D", "config": {}})
    with pytest.raises(ValueError, match="'class' and 'config'"):
        L.deserialize({"config": {}})
    with pytest.raises(TypeError, match="Layer"):
        L.serialize("conv")


def _layer_by_layer(model, x, dout):
    h = x
    for layer in model.layers:
        h = layer.forward(h, training=True)
    d = dout
    for layer in reversed(model.layers):
        d = layer.backward(d)
    return h, d, {q: layer.grads[k].copy() for q, layer, k in model.named_parameters()}


def test_relu_then_max_pool_is_run_pool_first_with_identical_results():
    # an identity kernel makes the conv output the integer input: many exact ties and
    # all-negative windows, where a wrong swap would route gradients differently
    model = L.Sequential([L.Conv2D(2, 3, padding=1), L.ReLU(), L.MaxPool2D(2), L.Flatten(), L.Dense(3)],
                         input_shape=(2, 6, 6), seed=0, dtype=np.float64)
    w = model.layers[0].params["w"]
    w[...] = 0
    w[0, 0, 1, 1] = w[1, 1, 1, 1] = 1
    rng = np.random.default_rng(5)
    x = rng.integers(-2, 3, (4, 2, 6, 6)).astype(np.float64)
    dout = rng.standard_normal((4, 3))
    out = model.forward(x, training=True)
    assert model.execution_order() == [0, 2, 1, 3, 4]  # the swap happened
    assert model.fused_pairs() == [(model.layers[1], model.layers[2])]
    assert "relu runs after max_pool2d" in model.summary(print_fn=None).text
    dx = model.backward(dout)
    grads = {q: layer.grads[k].copy() for q, layer, k in model.named_parameters()}
    ref_out, ref_dx, ref_grads = _layer_by_layer(model, x, dout)
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(dx, ref_dx)
    for q in grads:
        np.testing.assert_array_equal(grads[q], ref_grads[q], err_msg=q)


def test_relu_then_max_pool_swap_is_exact_with_nan_and_inf():
    model = L.Sequential([L.ReLU(), L.MaxPool2D(2)], input_shape=(2, 4, 4), dtype=np.float64)
    x = np.random.default_rng(6).integers(-2, 3, (2, 2, 4, 4)).astype(np.float64)
    x[0, 0, 0, 1] = x[0, 0, 1, 0] = np.nan
    x[0, 1, 2, 2] = np.inf
    x[1, 0, 3, 3] = -np.inf
    x[1, 1, :2, :2] = -1.0  # an all-negative window
    dout = np.random.default_rng(7).standard_normal((2, 2, 2, 2))
    out = model.forward(x, training=True)
    assert model.execution_order() == [1, 0]
    dx = model.backward(dout)
    ref_out, ref_dx, _ = _layer_by_layer(model, x, dout)
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(dx, ref_dx)
    t_out, (t_dx,) = torch_autograd(lambda a: torch.nn.functional.max_pool2d(torch.relu(a), 2), (x,), dout)
    np.testing.assert_array_equal(out, t_out)
    np.testing.assert_array_equal(dx, t_dx)
