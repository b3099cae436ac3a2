"""Attribution methods (cnnlab.viz.explainers) against Captum on the same net and weights
ported to PyTorch, or against the published formula computed by PyTorch's autograd; and
the faithfulness metrics (cnnlab.viz.faithfulness) against a direct computation."""
import numpy as np
import pytest
import torch
from captum.attr import GuidedBackprop, IntegratedGradients, LayerGradCam, Saliency
from torch import nn

import cnnlab as cl
import cnnlab.layers as L
from cnnlab.viz import explainers as E
from cnnlab.viz import faithfulness as FA
from cnnlab.viz.attribution import gradcam, place_on_input, saliency
from cnnlab.viz._graph import chain


@pytest.fixture(scope="module")
def nets():
    """A small convnet in float64 and its torch twin (same weights, random biases)."""
    rng = np.random.default_rng(3)
    model = cl.Sequential([L.Conv2D(4, 3, padding=1), L.ReLU(), L.MaxPool2D(2),
                           L.Conv2D(6, 3, padding=1), L.ReLU(), L.Flatten(),
                           L.Dense(16), L.ReLU(), L.Dense(5)],
                          input_shape=(2, 8, 8), seed=0, dtype=np.float64)
    for layer in model.layers:
        if "b" in layer.params:
            layer.params["b"][...] = rng.normal(0, 0.1, layer.params["b"].shape)
    twin = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(96, 16), nn.ReLU(), nn.Linear(16, 5)).double()
    ours = [layer for layer in model.layers if layer.params]
    theirs = [m for m in twin if isinstance(m, (nn.Conv2d, nn.Linear))]
    for a, b in zip(ours, theirs):
        w = a.params["w"]
        b.weight.data = torch.tensor(w.T.copy() if w.ndim == 2 else w.copy())
        b.bias.data = torch.tensor(a.params["b"].copy())
    twin.eval()
    x = rng.normal(0, 1, (4, 2, 8, 8))
    return model, twin, x


def _t(a, grad=False):
    return torch.tensor(np.array(a), dtype=torch.float64, requires_grad=grad)


def test_the_twin_computes_the_same_scores(nets):
    model, twin, x = nets
    np.testing.assert_allclose(model.predict(x), torch.softmax(twin(_t(x)), 1).detach().numpy(),
                               rtol=1e-10)


def test_saliency_batch_equals_captum_and_the_single_sample_version(nets):
    model, twin, x = nets
    targets = np.array([0, 3, 1, 4])
    res = E.saliency_batch(model, x, targets)
    ref = Saliency(twin).attribute(_t(x, True), target=torch.tensor(targets), abs=False)
    np.testing.assert_allclose(res["gradient"], ref.detach().numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(res["map"], np.abs(ref.detach().numpy()).max(axis=1), rtol=1e-9)
    one = saliency(model, x[1], target=3)
    np.testing.assert_allclose(res["map"][1], one["map"], rtol=1e-6, atol=1e-9)
    # default target: the predicted class of each sample
    np.testing.assert_array_equal(E.saliency_batch(model, x)["target"], model.predict(x).argmax(1))


def test_smoothgrad_is_captum_saliency_averaged_over_the_same_noise(nets):
    model, twin, x = nets
    res = E.smoothgrad(model, x, target=2, samples=6, noise=0.2, seed=5)
    rng = np.random.default_rng(5)
    flat = x.reshape(len(x), -1)
    sigma = (0.2 * (flat.max(1) - flat.min(1))).reshape(-1, 1, 1, 1)
    sal = Saliency(twin)
    grads = [sal.attribute(_t(x + rng.standard_normal(x.shape) * sigma, True), target=2,
                           abs=False).detach().numpy() for _ in range(6)]
    np.testing.assert_allclose(res["gradient"], np.mean(grads, axis=0), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(res["map"], np.mean(np.abs(grads), axis=0).max(axis=1),
                               rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("method", ["gausslegendre", "riemann_trapezoid"])
def test_integrated_gradients_equal_captum(nets, method):
    model, twin, x = nets
    base = np.full_like(x, -0.5)
    res = E.integrated_gradients(model, x, target=[1, 1, 0, 2], baseline=base, steps=16,
                                 method=method)
    ig = IntegratedGradients(twin)
    ref, delta = ig.attribute(_t(x, True), baselines=_t(base), target=torch.tensor([1, 1, 0, 2]),
                              n_steps=16, method=method, return_convergence_delta=True)
    # Captum holds its step weights in float32 (torch.tensor(...).float()): ~1e-7 relative.
    # Its trapezoid steps are 1/n (weights summing to (n-1)/n); ours are the trapezoid
    # rule's 1/(n-1), so there the two differ by exactly that factor.
    scale = 15 / 16 if method == "riemann_trapezoid" else 1.0
    np.testing.assert_allclose(res["attribution"] * scale, ref.detach().numpy(), rtol=1e-5,
                               atol=1e-9)
    if method == "gausslegendre":
        np.testing.assert_allclose(res["delta"], delta.detach().numpy(), rtol=1e-4, atol=1e-7)


def test_integrated_gradients_complete_with_enough_steps(nets):
    model, _, x = nets
    coarse = E.integrated_gradients(model, x, steps=2)
    fine = E.integrated_gradients(model, x, steps=128)
    assert np.abs(fine["delta"]).max() < np.abs(coarse["delta"]).max()
    assert np.abs(fine["delta"]).max() < 1e-2 * np.abs(fine["attribution"]).sum(axis=(1, 2, 3)).max()


@pytest.mark.filterwarnings("ignore:Setting backward hooks:UserWarning")
def test_guided_backprop_equals_captum(nets):
    model, twin, x = nets
    res = E.guided_backprop(model, x, target=[4, 0, 2, 2])
    ref = GuidedBackprop(twin).attribute(_t(x, True), target=torch.tensor([4, 0, 2, 2]))
    np.testing.assert_allclose(res["gradient"], ref.detach().numpy(), rtol=1e-9, atol=1e-12)
    assert (res["gradient"] != E.saliency_batch(model, x, [4, 0, 2, 2])["gradient"]).any()


def test_guided_backprop_with_fused_relu_equals_the_plain_relu_net(nets):
    model, _, x = nets
    fused = cl.Sequential([L.Conv2D(4, 3, padding=1, activation="relu"), L.MaxPool2D(2),
                           L.Conv2D(6, 3, padding=1, activation="relu"), L.Flatten(),
                           L.Dense(16, activation="relu"), L.Dense(5)],
                          input_shape=(2, 8, 8), seed=0, dtype=np.float64)
    for a, b in zip([m for m in fused.layers if m.params], [m for m in model.layers if m.params]):
        for k in a.params:
            a.params[k][...] = b.params[k]
    np.testing.assert_allclose(E.guided_backprop(fused, x, 1)["gradient"],
                               E.guided_backprop(model, x, 1)["gradient"], rtol=1e-12)


def _torch_layer_grads(twin, x, targets):
    """Activations after the second conv's ReLU and d score / d them, by autograd."""
    a = twin[:5](_t(x))
    a.retain_grad()
    scores = twin[5:](a)
    scores[torch.arange(len(x)), torch.tensor(targets)].sum().backward()
    return a.detach().numpy(), a.grad.numpy()


def test_gradcam_equals_captum_layergradcam(nets):
    model, twin, x = nets
    res = E.gradcam_batch(model, x, target=[0, 1, 2, 3])
    assert res["layer"] == "relu_1"
    ref = LayerGradCam(twin, twin[4]).attribute(_t(x, True), target=torch.tensor([0, 1, 2, 3]),
                                               relu_attributions=True)
    np.testing.assert_allclose(res["cam"], ref.detach().numpy()[:, 0], rtol=1e-9, atol=1e-12)
    one = gradcam(model, x[2], target=2)
    np.testing.assert_allclose(res["map"][2], one["map"], rtol=1e-6, atol=1e-9)


def test_gradcam_plus_plus_and_layercam_follow_their_formulas(nets):
    model, twin, x = nets
    t = [3, 3, 1, 0]
    a, g = _torch_layer_grads(twin, x, t)
    # Grad-CAM++ (Chattopadhay et al. 2018, eq. 19 with the exponential score)
    alpha_num = g ** 2
    alpha_den = 2 * g ** 2 + a.sum(axis=(2, 3), keepdims=True) * g ** 3
    alpha = np.where(alpha_den != 0, alpha_num / np.where(alpha_den != 0, alpha_den, 1), 0)
    w = (alpha * np.maximum(g, 0)).sum(axis=(2, 3))
    ref = np.maximum((w[:, :, None, None] * a).sum(1), 0)
    res = E.gradcam_plus_plus(model, x, t)
    np.testing.assert_allclose(res["weights"], w, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(res["cam"], ref, rtol=1e-9, atol=1e-12)
    # LayerCAM (Jiang et al. 2021): elementwise positive gradients
    np.testing.assert_allclose(E.layercam(model, x, t)["cam"],
                               np.maximum((np.maximum(g, 0) * a).sum(1), 0), rtol=1e-9, atol=1e-12)


def test_scorecam_weights_are_the_masked_inputs_probabilities(nets):
    model, twin, x = nets
    res = E.scorecam(model, x, target=2, batch_size=5)
    a = twin[:5](_t(x)).detach().numpy()
    head = chain(model)[:5]
    for n in range(len(x)):
        for k in range(a.shape[1]):
            m = place_on_input(a[n, k], head, (8, 8))
            m = (m - m.min()) / (m.max() - m.min()) if m.max() > m.min() else np.zeros_like(m)
            p = torch.softmax(twin(_t(x[n:n + 1] * m)), 1)[0, 2].item()
            assert res["weights"][n, k] == pytest.approx(p, rel=1e-9, abs=1e-12)
    np.testing.assert_allclose(res["cam"], np.maximum(np.einsum("nk,nkij->nij", res["weights"], a),
                                                      0), rtol=1e-9)
    assert res["map"].shape == (4, 8, 8) and res["map"].max() <= 1


def test_explain_dispatch_and_errors(nets):
    model, _, x = nets
    np.testing.assert_allclose(E.explain(model, x, "gradcam-pp", target=1)["cam"],
                               E.gradcam_plus_plus(model, x, 1)["cam"])
    for name in E.METHODS:
        r = E.explain(model, x[0], name, **({"steps": 4} if name == "integrated_gradients" else {}))
        assert r["map"].shape == (1, 8, 8) and np.isfinite(r["map"]).all()
    with pytest.raises(ValueError, match="method must be one of"):
        E.explain(model, x, "lime")
    with pytest.raises(ValueError, match="takes no layer"):
        E.explain(model, x, "saliency", layer="conv2d")
    with pytest.raises(IndexError, match="out of range"):
        E.saliency_batch(model, x, 5)
    with pytest.raises(ValueError, match="one class index or 4"):
        E.saliency_batch(model, x, [1, 2])
    with pytest.raises(ValueError, match=r"shape \(2, 8, 8\)"):
        E.gradcam_batch(model, np.zeros((3, 8, 8)))
    with pytest.raises(ValueError, match="before the class scores"):
        E.gradcam_batch(model, x, layer=-1)


class _TRes(nn.Module):
    def __init__(self, body):
        super().__init__()
        self.body = body

    def forward(self, x):
        return self.body(x) + x


class _TCat(nn.Module):
    def __init__(self, *branches):
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x):
        return torch.cat([b(x) for b in self.branches], 1)


@pytest.mark.filterwarnings("ignore:Setting backward hooks:UserWarning")
def test_guided_backprop_reaches_relus_inside_residual_and_concat_blocks():
    """A ReLU-then-max-pool inside a block (which Sequential runs reordered), a residual
    and an Inception-like concat, against Captum on the torch twin."""
    rng = np.random.default_rng(7)
    model = cl.Sequential([
        L.Conv2D(4, 3, padding=1), L.ReLU(),
        L.Residual([L.Conv2D(4, 3, padding=1), L.ReLU(), L.MaxPool2D(3, stride=1, padding=1),
                    L.Conv2D(4, 3, padding=1)]),
        L.ReLU(),
        L.Concat([L.Conv2D(2, 1), [L.Conv2D(3, 3, padding=1), L.ReLU()]]),
        L.Flatten(), L.Dense(3)], input_shape=(1, 6, 6), seed=1, dtype=np.float64)
    convs = [layer for layer in model.layers[0:1]] + \
        [m for m in model.layers[2].body.layers if m.params] + \
        [model.layers[4].branches[0], model.layers[4].branches[1].layers[0]]
    for c in convs + [model.layers[-1]]:
        c.params["b"][...] = rng.normal(0, 0.2, c.params["b"].shape)
    tconv = [nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1),
             nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 2, 1), nn.Conv2d(4, 3, 3, padding=1)]
    for ours, theirs in zip(convs, tconv):
        theirs.weight.data = torch.tensor(ours.params["w"].copy())
        theirs.bias.data = torch.tensor(ours.params["b"].copy())
    lin = nn.Linear(180, 3)
    lin.weight.data = torch.tensor(model.layers[-1].params["w"].T.copy())
    lin.bias.data = torch.tensor(model.layers[-1].params["b"].copy())
    twin = nn.Sequential(tconv[0], nn.ReLU(),
                         _TRes(nn.Sequential(tconv[1], nn.ReLU(), nn.MaxPool2d(3, 1, 1), tconv[2])),
                         nn.ReLU(), _TCat(tconv[3], nn.Sequential(tconv[4], nn.ReLU())),
                         nn.Flatten(), lin).double().eval()
    x = rng.normal(0, 1, (3, 1, 6, 6))
    np.testing.assert_allclose(model.predict(x), torch.softmax(twin(_t(x)), 1).detach().numpy(),
                               rtol=1e-10)
    res = E.guided_backprop(model, x, target=[0, 1, 2])
    ref = GuidedBackprop(twin).attribute(_t(x, True), target=torch.tensor([0, 1, 2]))
    np.testing.assert_allclose(res["gradient"], ref.detach().numpy(), rtol=1e-9, atol=1e-12)
    # and the plain gradient through the same blocks still equals torch's
    np.testing.assert_allclose(E.saliency_batch(model, x, [0, 1, 2])["gradient"],
                               Saliency(twin).attribute(_t(x, True), target=torch.tensor([0, 1, 2]),
                                                        abs=False).detach().numpy(), rtol=1e-9,
                               atol=1e-12)


# ---------------------------------------------------------------------------- faithfulness
def test_deletion_insertion_curves_match_a_direct_computation(nets):
    model, twin, x = nets
    rng = np.random.default_rng(0)
    maps = rng.random((4, 8, 8))
    r = FA.deletion_insertion(model, x, maps, target=[0, 1, 2, 3], steps=4, insertion_substrate=0.25)
    probs = lambda z, t: torch.softmax(twin(_t(z)), 1)[0, t].item()  # noqa: E731
    for n, t in enumerate([0, 1, 2, 3]):
        order = np.argsort(-maps[n].ravel(), kind="stable")
        for s, count in enumerate([0, 16, 32, 48, 64]):
            keep = np.ones(64, bool)
            keep[order[:count]] = False
            keep = keep.reshape(8, 8)
            assert r["deletion"][n, s] == pytest.approx(probs(np.where(keep, x[n], 0)[None], t), rel=1e-9)
            assert r["insertion"][n, s] == pytest.approx(
                probs(np.where(keep, 0.25, x[n])[None], t), rel=1e-9)
        d = r["deletion"][n]
        assert r["deletion_auc"][n] == pytest.approx((d[:-1] + d[1:]).sum() / 8)
    y = np.array([probs(x[n:n + 1], t) for n, t in enumerate([0, 1, 2, 3])])
    unit = (maps - maps.min((1, 2), keepdims=True)) / np.ptp(maps, (1, 2), keepdims=True)
    o = np.array([probs(x[n:n + 1] * unit[n], t) for n, t in enumerate([0, 1, 2, 3])])
    assert r["average_drop"] == pytest.approx(np.mean(np.maximum(0, y - o) / y))
    assert r["increase_in_confidence"] == pytest.approx(np.mean(o > y))


def test_a_map_that_knows_the_evidence_beats_random_on_a_linear_model():
    """Score = w . x: deleting the pixels with the largest w*x first must drop the score
    fastest; the random map must lie between that map and its reverse."""
    rng = np.random.default_rng(1)
    model = cl.Sequential([L.Flatten(), L.Dense(2)], input_shape=(1, 6, 6), seed=0,
                          dtype=np.float64)
    model.layers[1].params["w"][:, 1] = 0
    x = np.abs(rng.normal(size=(3, 1, 6, 6)))
    contrib = (x[:, 0] * model.layers[1].params["w"][:, 0].reshape(6, 6))
    kw = dict(target=0, steps=12, insertion_substrate=0.0)
    good = FA.deletion_insertion(model, x, contrib, **kw)
    bad = FA.deletion_insertion(model, x, -contrib, **kw)
    rand = FA.deletion_insertion(model, x, FA.random_map((3, 6, 6)), **kw)
    assert (good["deletion_auc"] < rand["deletion_auc"]).all()
    assert (rand["deletion_auc"] < bad["deletion_auc"]).all()
    assert (good["insertion_auc"] > bad["insertion_auc"]).all()


def test_faithfulness_baselines_and_blur():
    c = FA.center_map((2, 5, 7))
    assert c.shape == (2, 5, 7) and np.unravel_index(c[0].argmax(), c[0].shape) == (2, 3)
    img = np.zeros((1, 1, 9, 9))
    img[0, 0, 4, 4] = 1
    b = FA.blur(img, 1.0)
    assert b.sum() == pytest.approx(1.0) and b[0, 0, 4, 4] < 1
    with pytest.raises(ValueError, match="maps must be"):
        FA.deletion_insertion(cl.Sequential([L.Flatten(), L.Dense(2)], input_shape=(1, 3, 3), seed=0),
                              np.zeros((1, 1, 3, 3)), np.zeros((1, 4, 4)))


def test_cli_explain_and_faithfulness_write_their_pictures(tmp_path, capsys):
    from cnnlab.cli.main import main
    from cnnlab.models import lenet5

    path = tmp_path / "lenet.npz"
    lenet5(seed=0).save(path)
    assert main(["viz", "explain", str(path), "mnist:0", "mnist:1", "--out", str(tmp_path),
                 "--method", "saliency", "gradcam-pp", "scorecam"]) == 0
    assert (tmp_path / "explanations.png").stat().st_size > 1000
    assert main(["viz", "layercam", str(path), "mnist:2", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "layercam.png").exists()
    assert main(["viz", "faithfulness", "--model", str(path), "--n", "3", "--steps", "4",
                 "--method", "saliency", "gradcam", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "deletion AUC" in out and "random" in out and "centre" in out
    assert (tmp_path / "faithfulness.png").exists()
