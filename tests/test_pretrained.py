"""The shipped LeNet-5: its hash is checked on load, and it reaches 99.2 % on the official
10,000 MNIST test images of ../shared/data (the 2,000 bundled test images otherwise)."""
import json
import os
import shutil

import numpy as np
import pytest

import cnnlab.models as zoo
from cnnlab.data import load_mnist
from cnnlab.models import _pretrained

SHARED_MNIST = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "mnist")
if os.environ.get("CNNLAB_REQUIRE_SHARED_DATA") and not os.path.isdir(SHARED_MNIST):
    raise RuntimeError(f"CNNLAB_REQUIRE_SHARED_DATA is set but {SHARED_MNIST} is missing")


def test_pretrained_lenet5_accuracy_on_official_test_set():
    model = zoo.lenet5(pretrained=True)
    assert model.count_params() == 61_706
    if os.path.isdir(SHARED_MNIST):
        x, y = load_mnist(SHARED_MNIST, "test")
        assert len(x) == 10_000
    else:  # outside CI without the shared data: the bundled official test subset
        x, y = load_mnist(None, "test")
    acc = float((model.predict(x).argmax(axis=1) == y).mean())
    assert acc >= 0.992, acc
    card = _pretrained.card("lenet5_mnist")
    if len(x) == 10_000:  # the card reports what this measures (same data, same weights)
        assert abs(acc - card["test_accuracy"]) < 2e-4


def test_card_matches_file_and_documents_the_recipe():
    card = _pretrained.card("lenet5_mnist")
    path = os.path.join(_pretrained.ASSETS, card["file"])
    assert _pretrained.sha256_file(path) == card["sha256"]
    for key in ("data", "recipe", "command", "test_accuracy", "date"):
        assert card[key]
    with open(os.path.join(_pretrained.ASSETS, "lenet5_mnist.md"), encoding="utf-8") as f:
        md = f.read()
    assert card["sha256"] in md and card["command"] in md


def test_altered_weights_are_refused(tmp_path, monkeypatch):
    shutil.copytree(_pretrained.ASSETS, tmp_path / "pretrained")
    npz = tmp_path / "pretrained" / "lenet5_mnist.npz"
    data = bytearray(npz.read_bytes())
    data[len(data) // 2] ^= 0x01          # one flipped bit
    npz.write_bytes(bytes(data))
    monkeypatch.setattr(_pretrained, "ASSETS", str(tmp_path / "pretrained"))
    with pytest.raises(_pretrained.PretrainedWeightsError, match="SHA-256"):
        zoo.lenet5(pretrained=True)


def test_missing_card_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(_pretrained, "ASSETS", str(tmp_path))
    with pytest.raises(_pretrained.PretrainedWeightsError, match="missing"):
        zoo.lenet5(pretrained=True)
    (tmp_path / "lenet5_mnist.json").write_text(json.dumps({"file": "x.npz"}))
    with pytest.raises(_pretrained.PretrainedWeightsError, match="sha256"):
        zoo.lenet5(pretrained=True)


def test_pretrained_needs_the_mnist_shape():
    with pytest.raises(ValueError, match="num_classes=10"):
        zoo.lenet5(num_classes=5, pretrained=True)
    with pytest.raises(ValueError, match="input_shape"):
        zoo.lenet5(input_shape=(3, 32, 32), pretrained=True)


def test_pretrained_is_a_normal_model():
    model = zoo.lenet5(pretrained=True)
    fresh = zoo.lenet5(seed=0)
    assert list(model.get_weights()) == list(fresh.get_weights())
    assert not np.allclose(model.get_weights()["conv2d.w"], fresh.get_weights()["conv2d.w"])
