"""The shipped CIFAR-10 ResNet (``cifar_resnet(pretrained=True)``): its hash is checked on
load, it computes what PyTorch computes with the same weights (the torch mirror it was
trained as, ``benchmarks/pretrain_cifar_torch.py``), and it classifies the first 1,000
official CIFAR-10 test images of ../shared/data with >= 88 % accuracy (the card: 90.01 %
on all 10,000)."""
import json
import os
import shutil

import numpy as np
import pytest
import torch

import cnnlab.models as zoo
from cnnlab.data import load_cifar10
from cnnlab.layers import Rescaling
from cnnlab.models import _pretrained

from _cifar_torch import copy_into_torch, torch_mirror

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CIFAR_ZIP = os.path.join(ROOT, "..", "shared", "data", "cifar10", "cifar10-jpeg.zip")
if os.environ.get("CNNLAB_REQUIRE_SHARED_DATA") and not os.path.isfile(CIFAR_ZIP):
    raise RuntimeError(f"CNNLAB_REQUIRE_SHARED_DATA is set but {CIFAR_ZIP} is missing")
needs_cifar = pytest.mark.skipif(not os.path.isfile(CIFAR_ZIP),
                                 reason="../shared/data/cifar10/cifar10-jpeg.zip not present")


@pytest.fixture(scope="module")
def net():
    return zoo.cifar_resnet(pretrained=True)


@pytest.fixture(scope="module")
def test_images():
    x, y = load_cifar10(CIFAR_ZIP, "test")
    return x[:1000], y[:1000]


def test_shipped_net_is_the_card_s_architecture(net):
    card = _pretrained.card("cifar_resnet")
    assert tuple(card["widths"]) == (32, 64, 128, 256)
    assert net.count_params() == card["parameters"] == 1_646_132
    assert isinstance(net.layers[0], Rescaling) and net.layers[0].offset == -0.5
    assert tuple(net.input_shape) == (3, 32, 32)
    for key in ("data", "recipe", "commands", "validation_accuracy", "test_accuracy", "date",
                "device", "trained_in"):
        assert card[key]
    with open(os.path.join(_pretrained.ASSETS, "cifar_resnet.md"), encoding="utf-8") as f:
        md = f.read()
    assert card["sha256"] in md and all(c in md for c in card["commands"])
    assert "PyTorch" in md
    weights = os.path.join(_pretrained.ASSETS, card["file"])
    assert _pretrained.sha256_file(weights) == card["sha256"]
    # float32 and no more than the weights: the package stays small
    assert os.path.getsize(weights) < 1.02 * 4 * card["parameters"] + 64_000
    assert all(v.dtype == np.float32 for v in net.get_weights().values())


def test_matches_torch_on_the_same_weights(net):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((6, 3, 32, 32), dtype=np.float32)   # pixels in [0, 1]
    tnet = copy_into_torch(net, torch_mirror((32, 64, 128, 256)))
    with torch.no_grad():
        want = tnet(torch.from_numpy(x) - 0.5).numpy()   # the torch run fed [0, 1] - 0.5
    got = net.forward(x)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    assert (got.argmax(1) == want.argmax(1)).all()


@needs_cifar
def test_accuracy_on_the_first_1000_test_images(net, test_images):
    x, y = test_images
    acc = float((net.predict(x).argmax(axis=1) == y).mean())
    assert acc >= 0.88, acc


@needs_cifar
def test_matches_torch_on_real_test_images(net, test_images):
    x = test_images[0][:8]
    tnet = copy_into_torch(net, torch_mirror((32, 64, 128, 256)))
    with torch.no_grad():
        want = tnet(torch.from_numpy(x) - 0.5).numpy()
    np.testing.assert_allclose(net.forward(x), want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_altered_weights_are_refused(tmp_path, monkeypatch):
    shutil.copytree(_pretrained.ASSETS, tmp_path / "pretrained")
    npz = tmp_path / "pretrained" / "cifar_resnet.npz"
    data = bytearray(npz.read_bytes())
    data[len(data) // 3] ^= 0x01          # one flipped bit
    npz.write_bytes(bytes(data))
    monkeypatch.setattr(_pretrained, "ASSETS", str(tmp_path / "pretrained"))
    with pytest.raises(_pretrained.PretrainedWeightsError, match="SHA-256"):
        zoo.cifar_resnet(pretrained=True)
    (tmp_path / "pretrained" / "cifar_resnet.json").write_text(json.dumps({"file": "x"}))
    with pytest.raises(_pretrained.PretrainedWeightsError, match="sha256"):
        zoo.cifar_resnet(pretrained=True)


def test_pretrained_needs_the_shipped_shape():
    with pytest.raises(ValueError, match=r"widths=\(32, 64, 128, 256\)"):
        zoo.cifar_resnet(widths=(16, 32, 64, 128), pretrained=True)
    with pytest.raises(ValueError, match="num_classes=10"):
        zoo.cifar_resnet(num_classes=100, pretrained=True)
    with pytest.raises(ValueError, match="input_shape"):
        zoo.cifar_resnet(input_shape=(3, 64, 64), pretrained=True)
    with pytest.raises(ValueError, match="build=True"):
        zoo.cifar_resnet(build=False, pretrained=True)
    # the shipped widths spelled out are fine; the untrained default keeps its widths
    assert zoo.cifar_resnet(widths=(32, 64, 128, 256), pretrained=True).count_params() == 1_646_132
    assert zoo.cifar_resnet(seed=0).count_params() == 412_964
