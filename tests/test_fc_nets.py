"""cs231n's fully connected nets: loss and gradients against a reference written with the
functional ops (the course's fc_net.py, step by step), both checked with centred
differences in float64; reg decays the weights only, in ``loss`` and in ``fit``."""
import numpy as np
import pytest

import cnnlab as cl
import cnnlab.functional as F
import cnnlab.models as zoo
from cnnlab.gradcheck import eval_numerical_gradient, rel_error
from cnnlab.layers import BatchNorm, Dense, Dropout


def reference_loss(model, x, y, keep, mask_seeds):
    """The course's FullyConnectedNet.loss with the functional ops, reading the model's
    parameters: -> (loss, {qualified name: grad})."""
    dense = [l for l in model.layers if isinstance(l, Dense)]
    bns = [l for l in model.layers if isinstance(l, BatchNorm)]
    caches, h = [], x
    for i, d in enumerate(dense[:-1]):
        h, c_aff = F.affine_forward(h, d.params["w"], d.params["b"])
        c_bn = None
        if bns:
            g, b = bns[i].params["gamma"], bns[i].params["beta"]
            h, c_bn = F.batchnorm_forward(h, g, b, {"mode": "train"})
        h, c_relu = F.relu_forward(h)
        c_do = None
        if keep < 1:
            rng = np.random.default_rng(mask_seeds[i])
            h, c_do = F.dropout_forward(h, {"p": keep, "mode": "train", "rng": rng})
        caches.append((c_aff, c_bn, c_relu, c_do))
    scores, c_last = F.affine_forward(h, dense[-1].params["w"], dense[-1].params["b"])
    value, dh = F.softmax_loss(scores, y)
    value += 0.5 * model.reg * sum(np.sum(d.params["w"] ** 2) for d in dense)
    grads = {}
    dh, dw, db = F.affine_backward(dh, c_last)
    grads[dense[-1].name + ".w"] = dw + model.reg * dense[-1].params["w"]
    grads[dense[-1].name + ".b"] = db
    for i in reversed(range(len(dense) - 1)):
        c_aff, c_bn, c_relu, c_do = caches[i]
        if c_do is not None:
            dh = F.dropout_backward(dh, c_do)
        dh = F.relu_backward(dh, c_relu)
        if c_bn is not None:
            dh, dg, dbeta = F.batchnorm_backward(dh, c_bn)
            grads[bns[i].name + ".gamma"], grads[bns[i].name + ".beta"] = dg, dbeta
        dh, dw, db = F.affine_backward(dh, c_aff)
        grads[dense[i].name + ".w"] = dw + model.reg * dense[i].params["w"]
        grads[dense[i].name + ".b"] = db
    return value, grads


def scaled_error(num, ana):
    """max |num - ana| / max |ana|: cs231n's elementwise rel_error blows up on entries near
    0 (an entry of 1e-9 off by 1e-11 from the O(h^2) term gives 1e-2)."""
    return float(np.abs(num - ana).max() / np.abs(ana).max())


def _fix_masks(model, seeds):
    for layer, s in zip([l for l in model.layers if isinstance(l, Dropout)], seeds):
        layer.rng = np.random.default_rng(s)


@pytest.mark.parametrize("normalization,keep,reg", [
    (None, 1.0, 0.0), (None, 1.0, 3.14), ("batchnorm", 1.0, 0.7), (None, 0.5, 0.1),
    ("batchnorm", 0.75, 0.2)])
def test_fully_connected_net_matches_reference_and_numerical(normalization, keep, reg):
    rng = np.random.default_rng(0)
    n, d, hidden, c = 5, 12, [9, 7], 4
    x = rng.standard_normal((n, d))
    y = rng.integers(0, c, n)
    model = zoo.fully_connected_net(hidden, input_dim=d, num_classes=c, dropout_keep=keep,
                                    normalization=normalization, weight_scale=5e-2, reg=reg,
                                    seed=1, dtype=np.float64)
    for name, layer, key in model.named_parameters():  # move gamma/beta/b off 1 and 0
        layer.params[key] += 0.1 * rng.standard_normal(layer.params[key].shape)
    seeds = [11, 12]
    _fix_masks(model, seeds)
    value, grads = zoo.fc_nets.loss(model, x, y)
    ref_value, ref_grads = reference_loss(model, x, y, keep, seeds)
    assert value == pytest.approx(ref_value, rel=1e-12)
    assert sorted(grads) == sorted(ref_grads)
    for name in grads:  # the biases before a batch norm have gradient 0 (+- rounding)
        np.testing.assert_allclose(grads[name], ref_grads[name], rtol=1e-9, atol=1e-14,
                                   err_msg=name)

    def f(_):
        _fix_masks(model, seeds)  # the same dropout masks at every evaluation
        return zoo.fc_nets.loss(model, x, y)[0]

    for name, layer, key in model.named_parameters():
        num = eval_numerical_gradient(f, layer.params[key])
        if normalization and name in ("dense.b", "dense_1.b"):  # 0 before a batch norm
            assert np.abs(num).max() < 1e-8 and np.abs(grads[name]).max() < 1e-12
        else:
            assert scaled_error(num, grads[name]) < 1e-7, name


def test_two_layer_net_matches_reference_and_numerical():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 2, 5))  # any per-sample shape: the affine flattens it
    y = np.array([0, 4, 2])
    model = zoo.two_layer_net(input_dim=(2, 5), hidden_dim=6, num_classes=5,
                              weight_scale=0.3, reg=0.5, seed=2, dtype=np.float64)
    assert [type(l).__name__ for l in model.layers] == ["Dense", "ReLU", "Dense"]
    value, grads = zoo.fc_nets.loss(model, x, y)
    ref_value, ref_grads = reference_loss(model, x, y, 1.0, [])
    assert value == pytest.approx(ref_value, rel=1e-12)
    for name, layer, key in model.named_parameters():
        assert rel_error(grads[name], ref_grads[name]) < 1e-10
        num = eval_numerical_gradient(lambda _: zoo.fc_nets.loss(model, x, y)[0],
                                      layer.params[key])
        assert scaled_error(num, grads[name]) < 1e-7, name


def test_course_initialization_and_shapes():
    """Weights ~ N(0, weight_scale), biases 0; the course's layer order; test-mode scores."""
    model = zoo.fully_connected_net([400, 300], input_dim=(3, 32, 32), weight_scale=2e-2,
                                    normalization="batchnorm", dropout_keep=0.5, seed=0)
    names = [type(l).__name__ for l in model.layers]
    assert names == ["Dense", "BatchNorm", "ReLU", "Dropout"] * 2 + ["Dense"]
    w = model.layers[0].params["w"]
    assert w.shape == (3072, 400) and w.dtype == np.float32
    assert abs(w.std() - 2e-2) < 2e-2 * 0.02 and abs(w.mean()) < 1e-3
    assert not model.layers[0].params["b"].any()
    x = np.random.default_rng(0).random((4, 3, 32, 32), dtype=np.float32)
    assert zoo.fc_nets.loss(model, x).shape == (4, 10)
    assert zoo.two_layer_net().count_params() == 3072 * 100 + 100 + 100 * 10 + 10


def test_fit_adds_the_penalty_on_weights_only():
    """One SGD step of fit with reg equals one step by hand with the reference gradients;
    biases see no decay."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((8, 6))
    y = rng.integers(0, 3, 8)
    model = zoo.fully_connected_net([5], input_dim=6, num_classes=3, weight_scale=0.1,
                                    reg=2.0, seed=0, dtype=np.float64)
    _, ref = reference_loss(model, x, y, 1.0, [])
    before = {n: l.params[k].copy() for n, l, k in model.named_parameters()}
    hist = model.fit(x, y, epochs=1, batch_size=8, optimizer=cl.optim.SGD(0.1), verbose=0,
                     shuffle=False, seed=0)
    for n, l, k in model.named_parameters():
        np.testing.assert_allclose(l.params[k], before[n] - 0.1 * ref[n], rtol=1e-10,
                                   atol=1e-13)
    hidden = np.maximum(x @ before["dense.w"] + before["dense.b"], 0)
    data_loss = F.softmax_loss(hidden @ before["dense_1.w"] + before["dense_1.b"], y)[0]
    penalty = 0.5 * 2.0 * (np.sum(before["dense.w"] ** 2) + np.sum(before["dense_1.w"] ** 2))
    assert hist.history["loss"][0] == pytest.approx(data_loss + penalty, rel=1e-12)


@pytest.mark.parametrize("kw,match", [
    ({"hidden_dims": [10, 0]}, "hidden_dims"), ({"dropout_keep": 0.0}, "dropout_keep"),
    ({"dropout_keep": 1.5}, "dropout_keep"), ({"normalization": "layernorm"}, "normalization"),
    ({"weight_scale": -1.0}, "weight_scale"), ({"reg": -0.1}, "reg"),
    ({"reg": float("nan")}, "reg"), ({"num_classes": 1}, "num_classes"),
    ({"input_dim": 0}, "input_dim")])
def test_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        zoo.fully_connected_net(**kw)


def test_registry_builds_them():
    assert zoo.get("two_layer_net", num_classes=10, input_shape=(3, 32, 32), seed=0).reg == 0.0
    net = zoo.get("fully_connected_net", input_shape=(3, 32, 32), seed=0)
    assert net.count_params() == 3072 * 100 + 100 + 100 * 100 + 100 + 100 * 10 + 10
    with pytest.raises(ValueError, match="disagree"):
        zoo.two_layer_net(input_dim=100, input_shape=(3, 32, 32))
