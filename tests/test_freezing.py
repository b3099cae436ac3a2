"""Frozen layers (``layer.trainable = False``): training with some layers frozen matches
PyTorch training the same net with ``requires_grad=False`` on those parameters, the
frozen arrays do not move at all, the backward pass skips the frozen layers at the input
end, and the flag survives saving and shows in ``summary()``."""

import numpy as np
import pytest
import torch

import cnnlab as cl
from cnnlab import Sequential
from cnnlab.layers import BatchNorm, Conv2D, Dense, Flatten, MaxPool2D, ReLU
from cnnlab.optim import SGD
from cnnlab.training import Callback


def net(seed=0):
    return Sequential(
        [Conv2D(4, 3, padding=1), BatchNorm(), ReLU(), MaxPool2D(2), Conv2D(6, 3), ReLU(),
         Flatten(), Dense(5)],
        input_shape=(2, 8, 8), seed=seed, dtype=np.float64)


def torch_twin(model):
    """The same net in PyTorch, float64, with the model's weights."""
    t = torch.nn.Sequential(
        torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.BatchNorm2d(4, eps=1e-5), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2), torch.nn.Conv2d(4, 6, 3), torch.nn.ReLU(), torch.nn.Flatten(),
        torch.nn.Linear(24, 5)).double()
    c0, bn, _, _, c1, _, _, d = model.layers
    with torch.no_grad():
        for conv, tc in ((c0, t[0]), (c1, t[4])):
            tc.weight.copy_(torch.from_numpy(conv.params["w"]))
            tc.bias.copy_(torch.from_numpy(conv.params["b"]))
        t[1].weight.copy_(torch.from_numpy(bn.params["gamma"]))
        t[1].bias.copy_(torch.from_numpy(bn.params["beta"]))
        t[7].weight.copy_(torch.from_numpy(d.params["w"].T))
        t[7].bias.copy_(torch.from_numpy(d.params["b"]))
    return t


TORCH_OF = {  # cnnlab (layer index, key) -> (torch module index, attribute, transposed)
    (0, "w"): (0, "weight", False), (0, "b"): (0, "bias", False),
    (1, "gamma"): (1, "weight", False), (1, "beta"): (1, "bias", False),
    (4, "w"): (4, "weight", False), (4, "b"): (4, "bias", False),
    (7, "w"): (7, "weight", True), (7, "b"): (7, "bias", False),
}


def assert_same_weights(model, t):
    for (i, key), (j, attr, transposed) in TORCH_OF.items():
        ours = model.layers[i].params[key]
        theirs = getattr(t[j], attr).detach().numpy()
        np.testing.assert_allclose(ours, theirs.T if transposed else theirs, rtol=1e-9,
                                   atol=1e-11, err_msg=f"layer {i} {key}")


@pytest.fixture
def data():
    rng = np.random.default_rng(3)
    return rng.standard_normal((48, 2, 8, 8)), rng.integers(0, 5, 48)


def train_torch(t, x, y, epochs, frozen_at):
    """SGD Nesterov momentum 0.9, weight decay 1e-3, batches of 16 in order; the modules
    of ``frozen_at[epoch]`` stop training from that epoch on."""
    opt = torch.optim.SGD(t.parameters(), lr=0.05, momentum=0.9, nesterov=True,
                          weight_decay=1e-3)
    t.train()
    for epoch in range(epochs):
        for j in frozen_at.get(epoch, ()):
            for p in t[j].parameters():
                p.requires_grad_(False)
        for b in range(0, len(x), 16):
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(
                t(torch.from_numpy(x[b:b + 16])), torch.from_numpy(y[b:b + 16]))
            loss.backward()
            opt.step()


class FreezeAt(Callback):
    def __init__(self, plan):
        self.plan = plan  # epoch -> layer indices

    def on_epoch_begin(self, epoch, logs=None):
        for i in self.plan.get(epoch, ()):
            self.model.layers[i].trainable = False


@pytest.mark.parametrize("frozen", [(0,), (1,), (4,), (0, 1)], ids=["conv", "bn", "mid", "prefix"])
def test_training_with_frozen_layers_matches_torch(data, frozen):
    x, y = data
    model = net()
    t = torch_twin(model)
    before = {i: {k: v.copy() for k, v in model.layers[i].params.items()} for i in frozen}
    for i in frozen:
        model.layers[i].trainable = False
    model.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0, seed=0,
              optimizer=SGD(0.05, momentum=0.9, nesterov=True, weight_decay=1e-3))
    train_torch(t, x, y, 2, {0: frozen})
    assert_same_weights(model, t)
    for i in frozen:  # not moved at all: no step, no weight decay
        for k, v in before[i].items():
            np.testing.assert_array_equal(model.layers[i].params[k], v)


def test_freezing_between_epochs_matches_torch(data):
    """A callback freezes the first conv after one epoch: its momentum stops with it (as
    PyTorch skips a parameter without a gradient), the rest trains on."""
    x, y = data
    model = net()
    t = torch_twin(model)
    model.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0, seed=0,
              optimizer=SGD(0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
              callbacks=[FreezeAt({1: (0,)})])
    train_torch(t, x, y, 3, {1: (0,)})
    assert_same_weights(model, t)


def test_backward_skips_the_frozen_layers_at_the_input_end(data):
    x, y = data
    model = net()
    model.layers[0].trainable = False
    model.layers[1].trainable = False
    calls = []
    for layer in model.layers:
        original = layer.backward

        def spy(dout, need_dx=True, _layer=layer, _original=original):
            calls.append((_layer.name, need_dx))
            return _original(dout, need_dx=need_dx)

        layer.backward = spy
    model.fit(x[:16], y[:16], epochs=1, batch_size=16, verbose=0, seed=0)
    # backward runs from the output down to the first trainable layer (the second conv),
    # which is asked for no input gradient; conv, batch norm, ReLU and pool below it never
    # run backward, and their caches are released
    assert [name for name, _ in calls] == ["dense", "flatten", "relu_1", "conv2d_1"]
    assert calls[-1] == ("conv2d_1", False)
    assert all(layer._cache is None for layer in model.layers)
    # and a trainable model is unchanged: every layer down to the first runs backward
    calls.clear()
    model.trainable = True
    model.fit(x[:16], y[:16], epochs=1, batch_size=16, verbose=0, seed=0)
    assert [name for name, _ in calls][-1] == "conv2d"
    assert calls[-1] == ("conv2d", False) and len(calls) == len(model.layers)


def test_trainable_on_a_container_sets_every_layer_inside():
    model = net()
    model.trainable = False
    assert not model.trainable
    assert all(not layer.trainable for layer in model.layers)
    assert model.trainable_parameters() == []
    assert model.count_frozen() == model.count_params()
    model.layers[4].trainable = True
    assert model.trainable  # any layer inside
    assert [q for q, _, _ in model.trainable_parameters()] == ["conv2d_1.w", "conv2d_1.b"]
    with pytest.raises(TypeError, match="trainable must be True or False, got 'no'"):
        model.layers[0].trainable = "no"


def test_frozen_flag_survives_save_and_load_and_shows_in_summary(tmp_path, data):
    x, _ = data
    model = net()
    model.layers[0].trainable = False
    path = tmp_path / "m.npz"
    model.save(str(path))
    back = cl.load_model(str(path))
    assert [layer.trainable for layer in back.layers] == [False] + [True] * 7
    np.testing.assert_array_equal(back.predict(x), model.predict(x))
    s = back.summary(print_fn=None)
    frozen = back.layers[0].count_params()
    assert s[1]["frozen"] == frozen and s.totals["frozen"] == frozen
    assert "conv2d (Conv2D, frozen)" in s.text
    assert (f"Params: {back.count_params() - frozen:,} trainable, {frozen:,} frozen "
            f"(trainable=False)") in s.text
    assert "frozen" not in net().summary(print_fn=None).text


def test_optimizer_leaves_an_array_with_no_gradient_alone():
    rng = np.random.default_rng(0)
    p = [rng.standard_normal(3), rng.standard_normal(4)]
    g = [rng.standard_normal(3), rng.standard_normal(4)]
    for opt in (SGD(0.1, momentum=0.9, weight_decay=0.1), cl.optim.Adam(0.1, weight_decay=0.1)):
        a, b = [v.copy() for v in p], [v.copy() for v in p]
        opt.step(a, g)
        state = {k: v.copy() for k, v in opt.state_dict().items() if k.startswith("state.0")}
        frozen = a[0].copy()
        opt.step(a, [None, g[1]])
        np.testing.assert_array_equal(a[0], frozen)
        for k, v in state.items():
            np.testing.assert_array_equal(opt.state_dict()[k], v)
        assert not np.array_equal(a[1], b[1])
