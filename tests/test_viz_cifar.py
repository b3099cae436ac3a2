"""DeepDream in colour on the shipped CIFAR-10 ResNet: its ascent direction is the
gradient PyTorch computes for the same objective on the same weights, it raises the
objective at every octave, and the command line writes the pictures."""
import numpy as np
import pytest
import torch

import cnnlab.viz as V
from cnnlab.cli.main import main as cli_main
from cnnlab.viz.cifar_net import pretrained_cifar
from cnnlab.viz.gallery import dream_layers
from cnnlab.viz.mnist_net import pretrained_lenet

from _cifar_torch import copy_into_torch, torch_mirror


@pytest.fixture(scope="module")
def net():
    return pretrained_cifar()


def test_default_dream_layers():
    assert dream_layers(pretrained_cifar()) == ["relu_3", "residual_1"]
    assert dream_layers(pretrained_lenet()) == ["relu", "relu_1"]


def test_first_ascent_step_is_torch_s_gradient(net):
    """One step, no jitter, no high-pass, no clipping: the change is lr * g / mean|g| with
    g the gradient of 0.5 * mean(a^2) at 'residual_1' (torch: its Sequential up to the
    second residual block, after the same - 0.5 the net's Rescaling does)."""
    rng = np.random.default_rng(0)
    photo = (0.3 + 0.4 * rng.random((3, 24, 40))).astype(np.float32)   # far from 0 and 1
    lr = 1e-3
    r = V.deepdream(net, photo, "residual_1", octaves=1, steps=1, lr=lr, jitter=0,
                    highpass=0)
    tnet = copy_into_torch(net, torch_mirror((32, 64, 128, 256)))
    xt = (torch.from_numpy(photo.astype(np.float64))[None] - 0.5).requires_grad_()
    a = tnet.double()[:17](xt)          # cnnlab's links 1..17: conv2d ... residual_1
    (0.5 * (a ** 2).mean()).backward()
    g = xt.grad[0].numpy()
    want = lr * g / np.abs(g).mean()
    np.testing.assert_allclose(r["delta"], want, rtol=0, atol=2e-3 * np.abs(want).max())
    assert r["layer"] == "residual_1"
    assert r["objective"][0] == pytest.approx(0.5 * float((a.detach() ** 2).mean()), rel=1e-4)


def test_colour_dream_with_octaves_raises_the_objective(net):
    photo = V.sample_image("chelsea", size=(40, 60), mode="RGB")
    r = V.deepdream(net, photo, "residual_1", octaves=2, steps=4, lr=0.02)
    img = r["image"]
    assert img.shape == photo.shape and np.isfinite(img).all()
    assert img.min() >= 0 and img.max() <= 1
    objective = np.array(r["objective"]).reshape(2, 4)
    assert (objective[:, -1] > objective[:, 0]).all()        # each octave climbs
    # colour: the change differs between channels (a grey net adds the same to all three)
    assert np.abs(r["delta"] - r["delta"].mean(axis=0)).mean() > 1e-3


def test_cli_deepdream_uses_the_cifar_net(tmp_path, capsys):
    out = tmp_path / "dd"
    assert cli_main(["viz", "deepdream", "chelsea", "--max-side", "40", "--octaves", "2",
                     "--steps", "2", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "deepdream.png", "deepdream_relu_3.png", "deepdream_residual_1.png"]
    from PIL import Image
    with Image.open(out / "deepdream_residual_1.png") as im:
        assert im.mode == "RGB" and max(im.size) == 40
    assert cli_main(["viz", "deepdream", "chelsea", "--layer", "nope", "--out", str(out)]) == 2
    assert "no layer named 'nope'" in capsys.readouterr().err


def test_cam_default_layer_is_the_rectified_last_block():
    """conv - BN - ReLU nets: the CAM family's default layer is past the batch norm and
    the ReLU (the raw conv output is signed); a ResNet's is its last residual block."""
    import cnnlab.models as zoo
    x = np.random.default_rng(0).random((1, 3, 32, 32), dtype=np.float32)
    assert V.explain(pretrained_cifar(), x, "gradcam")["layer"] == "residual_1"
    assert V.explain(zoo.cifar_convnet(seed=0), x, "gradcam")["layer"] == "relu_2"


def test_gradcam_on_the_resnet_matches_torch(net):
    """Grad-CAM at the last residual block (Selvaraju et al.: weights = spatial mean of
    d score / d A, cam = ReLU(sum_k w_k A_k)), computed by torch autograd on the mirror."""
    photo = V.sample_image("chelsea", size=(32, 32), mode="RGB")[None]
    r = V.explain(net, photo, "gradcam")
    tnet = copy_into_torch(net, torch_mirror((32, 64, 128, 256))).double()
    a = tnet[:17](torch.from_numpy(photo.astype(np.float64)) - 0.5).detach().requires_grad_()
    scores = tnet[17:](a)
    t = int(scores.argmax())
    scores[0, t].backward()
    w = a.grad.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((w * a).sum(1))[0].detach().numpy()
    assert int(r["target"][0]) == t
    np.testing.assert_allclose(r["cam"][0], cam, rtol=1e-3, atol=1e-4 * cam.max())


def test_cli_explain_takes_the_cifar_net(tmp_path, capsys):
    out = tmp_path / "ex"
    assert cli_main(["viz", "explain", "cifar-resnet", "chelsea", "--method", "gradcam",
                     "layercam", "--out", str(out)]) == 0
    assert (out / "explanations.png").is_file()
    assert "explanations.png" in capsys.readouterr().out
