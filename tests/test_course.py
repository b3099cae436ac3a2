"""The course experiments (cnnlab.course) at small budgets: the qualitative results the
course reports, on real CIFAR-10 images, and the data subsets they train on."""
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import cnnlab.data as D
from cnnlab import course
from cnnlab.cli.main import main as cli_main
from cnnlab.course.data import load_cifar10_subset

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CIFAR_ZIP = SHARED / "cifar10" / "cifar10-jpeg.zip"
if os.environ.get("CNNLAB_REQUIRE_SHARED_DATA") and not CIFAR_ZIP.is_file():
    raise RuntimeError(f"CNNLAB_REQUIRE_SHARED_DATA is set but {CIFAR_ZIP} is missing")
needs_cifar = pytest.mark.skipif(not CIFAR_ZIP.is_file(), reason="shared CIFAR zip not present")


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNLAB_CACHE", str(tmp_path / "cache"))


def _tiny_cifar(root):
    """A CIFAR-10 image folder with 3 random PNGs per class; returns the folder."""
    rng = np.random.default_rng(0)
    for cls in D.CIFAR10_CLASSES:
        d = root / "cifar10" / "train" / cls
        d.mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(d / f"{i:04d}.png")
    return root


def test_subset_from_zip_equals_subset_of_the_full_loader(tmp_path):
    """The zip route (decodes only the chosen images) picks the same images as
    load_cifar10 on the unpacked folder followed by the same seeded selection."""
    folder = _tiny_cifar(tmp_path / "folder")
    zpath = tmp_path / "tiny.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for p in sorted(folder.rglob("*.png")):
            zf.write(p, p.relative_to(folder).as_posix())
    from_zip = load_cifar10_subset((7, 5), seed=3, path=zpath)
    from_folder = load_cifar10_subset((7, 5), seed=3, path=folder)
    x_all, y_all = D.load_cifar10(folder, dtype=np.uint8)
    order = np.random.default_rng([3, 19]).permutation(30)
    for (xz, yz), (xf, yf), idx in zip(from_zip, from_folder, (order[:7], order[7:12])):
        idx = np.sort(idx)
        np.testing.assert_array_equal(xz, x_all[idx])  # PNG: lossless, so exactly equal
        np.testing.assert_array_equal(yz, y_all[idx])
        np.testing.assert_array_equal(xf, xz)
        np.testing.assert_array_equal(yf, yz)
    with pytest.raises(ValueError, match="asked for 31"):
        load_cifar10_subset((30, 1), path=zpath)


@needs_cifar
def test_course_data_is_seeded_disjoint_and_centred():
    a = course.cifar10_for_course(40, 30, seed=1, path=CIFAR_ZIP)
    b = course.cifar10_for_course(40, 30, seed=1, path=CIFAR_ZIP)
    c = course.cifar10_for_course(40, 30, seed=2, path=CIFAR_ZIP)
    np.testing.assert_array_equal(a["X_train"], b["X_train"])
    assert not np.array_equal(a["X_train"], c["X_train"])
    assert a["X_train"].shape == (40, 3, 32, 32) and a["X_train"].dtype == np.float32
    np.testing.assert_allclose(a["X_train"].mean(axis=0), 0, atol=1e-3)  # mean image removed
    raw = a["X_train"] + a["mean"]
    assert raw.min() >= 0 and raw.max() <= 255 and raw.max() > 200  # 0..255 pixels
    train = {r.tobytes() for r in a["X_train"]}
    assert not any(r.tobytes() in train for r in a["X_val"])


@needs_cifar
def test_three_layer_net_overfits_50_images_within_20_epochs():
    r = course.overfit_small(num_val=20, path=CIFAR_ZIP)
    assert r["setup"]["num_train"] == 50 and len(r["train_acc"]) == 20
    assert max(r["train_acc"]) == 1.0, r["train_acc"]
    assert r["val_acc"][-1] < 0.5  # memorized, not learned


@needs_cifar
def test_adaptive_rules_ahead_of_sgd_after_one_epoch():
    r = course.compare_update_rules(num_train=500, num_val=50, epochs=1, path=CIFAR_ZIP)
    first = {rule: run["train_acc"][0] for rule, run in r["runs"].items()}
    assert first["adam"] > first["sgd"] + 0.05, first
    assert first["rmsprop"] > first["sgd"] + 0.05, first
    assert len(r["runs"]["sgd"]["loss"]) == 5  # 500 images / batch 100, one per iteration


@needs_cifar
def test_batchnorm_trains_where_a_tiny_weight_scale_stalls_the_plain_net():
    """An 8-layer net with weights of std 1e-3 outputs ~0: its loss stays at ln 10 (the
    gradient vanishes); with batch norm the same net learns."""
    r = course.batchnorm_weight_sweep(weight_scales=(1e-3,), num_train=200, num_val=20,
                                      epochs=5, path=CIFAR_ZIP)
    assert abs(r["baseline"]["final_loss"][0] - np.log(10)) < 2e-3, r
    assert r["batchnorm"]["final_loss"][0] < np.log(10) - 0.1, r


@needs_cifar
def test_dropout_narrows_the_train_validation_gap():
    r = course.dropout_comparison(num_val=100, epochs=6, path=CIFAR_ZIP)
    gap = course.generalization_gap(r, last=3)
    assert gap[0.25] < gap[1.0] - 0.05, gap
    assert r["runs"][1.0]["train_acc"][-1] > r["runs"][0.25]["train_acc"][-1]


@needs_cifar
def test_cli_course_overfit_quick_writes_figure_and_numbers(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(course.QUICK, "weight_scale_sweep",
                        {"weight_scales": (1e-2,), "epochs": 3, "depths": (3,)})
    monkeypatch.setitem(course.QUICK, "overfit", {"num_val": 10, "epochs": 3})
    assert cli_main(["course", "overfit", "--quick", "--out", str(tmp_path / "o"),
                     "--data", str(CIFAR_ZIP)]) == 0
    png = tmp_path / "o" / "overfit.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import json
    numbers = json.loads((tmp_path / "o" / "overfit.json").read_text())
    assert len(numbers["overfit"]["train_acc"]) == 3
    assert "seed 0" in course.setup_text(numbers["overfit"]["setup"])


def test_cli_course_bad_arguments(tmp_path, capsys):
    assert cli_main(["course", "dropout", "--data", str(tmp_path / "nope")]) == 2
    assert "--data" in capsys.readouterr().err
    f = tmp_path / "file"
    f.write_text("x")
    assert cli_main(["course", "dropout", "--out", str(f)]) == 2
    assert cli_main(["course", "nonsense"]) == 2


def test_budget_and_optimizers():
    assert course.budget_kwargs("dropout", "full") == {}
    assert course.budget_kwargs("dropout", "ci")["epochs"] < 25
    with pytest.raises(ValueError, match="budget"):
        course.budget_kwargs("dropout", "huge")
    with pytest.raises(ValueError, match="update rule"):
        course.make_optimizer("lbfgs", 0.1)
    assert course.make_optimizer("sgd_momentum", 0.1).momentum == 0.9
