"""The airbench pieces: PatchWhitening (checked against the covariance it promises and
against torch's conv), label smoothing (against torch's cross_entropy), and cifar_airbench
(against the same net built in PyTorch, forward and backward)."""
import numpy as np
import pytest
import torch

import cnnlab as cl
import cnnlab.functional as F
import cnnlab.layers as L
import cnnlab.models as zoo
import cnnlab.reference as R


def correlated_images(n=64, seed=0):
    """Images whose neighbouring pixels and channels are strongly correlated, like photos."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n, 1, 12, 12))
    smooth = base + np.roll(base, 1, axis=2) + np.roll(base, 1, axis=3)
    return np.concatenate([smooth, 0.5 * smooth + 0.3 * rng.standard_normal(smooth.shape),
                           rng.standard_normal(smooth.shape) * 0.1], axis=1)


def patches(x, k=2):
    w = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))
    return w.transpose(0, 2, 3, 1, 4, 5).reshape(-1, x.shape[1] * k * k)


def test_patch_whitening_decorrelates_patches_to_unit_variance():
    x = correlated_images()
    layer = L.PatchWhitening(2, eps=1e-9)
    layer.build(x.shape[1:], dtype=np.float64)
    layer.adapt(x)
    out = layer.forward(x)  # bias 0
    assert out.shape == (64, 24, 11, 11)
    half = out[:, :12].transpose(0, 2, 3, 1).reshape(-1, 12)
    cov = np.cov(half, rowvar=False, bias=True)  # independent of the layer's own eigh
    np.testing.assert_allclose(cov, np.eye(12), atol=1e-6)
    np.testing.assert_allclose(out[:, 12:], -out[:, :12])
    # largest variance first: the first filter is the principal direction of the patches
    p = patches(x)
    var = np.var(p @ (layer.state["w"][:12].reshape(12, -1).T), axis=0)
    assert np.all(np.diff(var) <= 1e-9 * var.max() + 1e-12)


def test_patch_whitening_eps_damps_flat_directions():
    x = correlated_images()
    layer = L.PatchWhitening(2, eps=0.5).adapt(x)
    half = layer.forward(x)[:, :12].transpose(0, 2, 3, 1).reshape(-1, 12)
    lam = np.linalg.eigvalsh(np.cov(patches(x), rowvar=False, bias=True))[::-1]
    np.testing.assert_allclose(np.var(half, axis=0), lam / (lam + 0.5), rtol=1e-4)


def test_patch_whitening_matches_torch_conv_forward_and_backward():
    rng = np.random.default_rng(1)
    x = correlated_images(8).astype(np.float64)
    layer = L.PatchWhitening(2).adapt(x[:4])
    layer.params["b"][...] = rng.standard_normal(24)
    out = layer.forward(x, training=True)
    dout = rng.standard_normal(out.shape)
    dx = layer.backward(dout)
    xt = torch.tensor(x, requires_grad=True)
    bt = torch.tensor(layer.params["b"], requires_grad=True)
    yt = torch.nn.functional.conv2d(xt, torch.tensor(layer.state["w"]), bt)
    yt.backward(torch.tensor(dout))
    np.testing.assert_allclose(out, yt.detach().numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(layer.grads["b"], bt.grad.numpy(), rtol=1e-10)
    # the filters are state: no gradient, never seen by an optimizer
    assert [key for _, _, key in cl.Sequential([layer]).named_parameters()] == ["b"]


def test_patch_whitening_before_adapt_gives_plus_and_minus_patch_values():
    x = np.random.default_rng(2).random((2, 3, 5, 6))
    layer = L.PatchWhitening(2)
    layer.build((3, 5, 6), dtype=np.float64)
    out = layer.forward(x)
    raw = patches(x).reshape(2, 4, 5, 12).transpose(0, 3, 1, 2) / np.sqrt(1 + 5e-4)
    np.testing.assert_allclose(out[:, :12], raw, rtol=1e-12)
    np.testing.assert_allclose(out[:, 12:], -raw, rtol=1e-12)


def test_patch_whitening_saves_its_fitted_filters(tmp_path):
    x = correlated_images(16).astype(np.float32)
    model = cl.Sequential([L.PatchWhitening(2), L.ReLU(), L.Flatten(), L.Dense(3)],
                          input_shape=(3, 12, 12), seed=0)
    model.layers[0].adapt(x)
    model.save(tmp_path / "w.npz")
    again = cl.load_model(tmp_path / "w.npz")
    np.testing.assert_array_equal(again.layers[0].state["w"], model.layers[0].state["w"])
    np.testing.assert_array_equal(again.forward(x), model.forward(x))


def test_patch_whitening_refuses_bad_input_clearly():
    layer = L.PatchWhitening(2)
    with pytest.raises(ValueError, match=r"adapt: x must be a non-empty float array \(N, C, H, W\)"):
        layer.adapt(np.zeros((4, 3, 8, 8), dtype=np.uint8))
    with pytest.raises(ValueError, match="adapt: x must be"):
        layer.adapt(np.zeros((3, 8, 8)))
    with pytest.raises(ValueError, match="H >= 2 and W >= 2"):
        cl.Sequential([L.PatchWhitening(2)], input_shape=(3, 1, 8))
    with pytest.raises(ValueError, match="eps"):
        L.PatchWhitening(2, eps=0)
    bad = correlated_images(4)
    bad[1, 0, 3, 3] = np.nan
    with pytest.raises(ValueError, match="adapt: x holds NaN or inf"):
        L.PatchWhitening(2).adapt(bad)
    with pytest.raises(ValueError, match="chunk"):
        L.PatchWhitening(2).adapt(correlated_images(4), chunk=0)


@pytest.mark.parametrize("e", [0.0, 0.1, 0.2, 1.0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_label_smoothing_matches_torch_and_the_reference_loop(e, dtype):
    rng = np.random.default_rng(3)
    s = (rng.standard_normal((9, 6)) * 3).astype(dtype)
    y = rng.integers(0, 6, 9)
    loss, ds = F.softmax_loss(s, y, label_smoothing=e)
    st = torch.tensor(s.astype(np.float64), requires_grad=True)
    lt = torch.nn.functional.cross_entropy(st, torch.tensor(y), label_smoothing=e)
    lt.backward()
    tol = 1e-12 if dtype == np.float64 else 1e-6
    assert ds.dtype == dtype
    assert abs(loss - lt.item()) < tol * 10
    np.testing.assert_allclose(ds, st.grad.numpy(), atol=tol)
    loss_r, ds_r = R.softmax_loss(s.astype(np.float64), y, label_smoothing=e)
    assert abs(loss_r - lt.item()) < 1e-12
    np.testing.assert_allclose(ds_r, st.grad.numpy(), atol=1e-14)


def test_label_smoothing_out_of_range_is_refused():
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\]"):
            F.softmax_loss(np.zeros((2, 3)), [0, 1], label_smoothing=bad)
        with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\]"):
            R.softmax_loss(np.zeros((2, 3)), [0, 1], label_smoothing=bad)


def torch_airbench(model):
    """The same net in PyTorch, with the cnnlab model's weights."""
    tn = torch.nn
    layers = []
    for layer in model.layers:
        if isinstance(layer, L.PatchWhitening):
            m = tn.Conv2d(3, 24, 2)
            m.weight.data = torch.tensor(layer.state["w"])
            m.weight.requires_grad_(False)
            m.bias.data = torch.tensor(layer.params["b"])
        elif isinstance(layer, L.Conv2D):
            w = layer.params["w"]
            m = tn.Conv2d(w.shape[1], w.shape[0], 3, padding=1, bias=False)
            m.weight.data = torch.tensor(w)
        elif isinstance(layer, L.MaxPool2D):
            m = tn.MaxPool2d(layer.pool_size)
        elif isinstance(layer, L.BatchNorm):
            m = tn.BatchNorm2d(len(layer.params["gamma"]), eps=layer.eps,
                               momentum=layer.momentum)
            m.weight.data = torch.tensor(layer.params["gamma"])
            m.bias.data = torch.tensor(layer.params["beta"])
            m.running_mean.data = torch.tensor(layer.state["running_mean"])
            m.running_var.data = torch.tensor(layer.state["running_var"])
        elif isinstance(layer, L.ReLU):
            m = tn.ReLU()
        elif isinstance(layer, L.Flatten):
            m = tn.Flatten()
        elif isinstance(layer, L.Dense):
            w = layer.params["w"]
            m = tn.Linear(w.shape[0], w.shape[1], bias=False)
            m.weight.data = torch.tensor(w.T.copy())
        elif isinstance(layer, L.Rescaling):
            scale = layer.scale

            class Scale(tn.Module):
                def forward(self, t):
                    return t * scale
            m = Scale()
        else:  # pragma: no cover - a new layer in the net needs a mirror here
            raise AssertionError(type(layer))
        layers.append(m)
    return tn.Sequential(*layers).double()


def test_cifar_airbench_matches_pytorch_forward_and_backward():
    rng = np.random.default_rng(4)
    model = zoo.cifar_airbench(widths=(8, 16, 16), build=False)
    model.build((3, 32, 32), rng=0, dtype=np.float64)  # float64: no float32 cancellation
    x = correlated_images(6, seed=5)
    x = np.pad(x, ((0, 0), (0, 0), (10, 10), (10, 10)))[:, :, :32, :32]
    model.layers[0].adapt(x)
    for layer in model.layers:
        if isinstance(layer, L.BatchNorm):
            layer.params["gamma"][...] = rng.uniform(0.5, 1.5, layer.params["gamma"].shape)
            layer.state["running_var"][...] = rng.uniform(0.5, 2.0, layer.state["running_var"].shape)
    net = torch_airbench(model)
    xt = torch.tensor(x, dtype=torch.float64)
    net.eval()
    np.testing.assert_allclose(model.forward(x), net(xt).detach().numpy(), rtol=1e-10)
    net.train()
    y = rng.integers(0, 10, len(x))
    scores = model.forward(x, training=True)
    loss, d = F.softmax_loss(scores, y, label_smoothing=0.2)
    model.backward(d)
    lt = torch.nn.functional.cross_entropy(net(xt), torch.tensor(y), label_smoothing=0.2)
    lt.backward()
    assert abs(loss - lt.item()) < 1e-12
    trained = [p for p in net.parameters() if p.requires_grad]
    ours = [layer.grads[key] for _, layer, key in model.named_parameters()]
    assert len(ours) == len(trained)
    for g, p in zip(ours, trained):
        want = p.grad.numpy()
        want = want.T if g.ndim == 2 else want  # Dense keeps w as (in, out)
        np.testing.assert_allclose(g, want, rtol=1e-8, atol=1e-12)


def test_cifar_airbench_starts_from_identity_convs():
    model = zoo.cifar_airbench(widths=(8, 16, 16), seed=0)
    convs = [layer for layer in model.layers if type(layer) is L.Conv2D]
    assert len(convs) == 6
    for conv in convs:
        w = conv.params["w"]
        c = min(w.shape[:2])
        eye = np.zeros_like(w[:c])
        eye[np.arange(c), np.arange(c), 1, 1] = 1
        np.testing.assert_array_equal(w[:c], eye)
        if w.shape[0] > c:
            assert np.abs(w[c:]).sum() > 0  # the rest stay He-initialized
    assert model.output_shape == (10,)
    assert zoo.cifar_airbench(seed=0).count_params() == 1_972_504
    with pytest.raises(ValueError, match="at least 9"):
        zoo.cifar_airbench(input_shape=(3, 8, 8))


def test_patch_whitening_adapt_in_chunks_is_the_same_fit():
    x = correlated_images(20)
    one = L.PatchWhitening(2).adapt(x, chunk=1000).state["w"]
    many = L.PatchWhitening(2).adapt(x, chunk=3).state["w"]
    # eigenvectors are defined up to sign: compare each filter up to its sign
    signs = np.sign((one * many).reshape(24, -1).sum(axis=1))
    np.testing.assert_allclose(many * signs[:, None, None, None], one, rtol=1e-7, atol=1e-9)
