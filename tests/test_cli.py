"""The ``cnnlab`` command line, run in-process through ``main(argv)``: summary, shape,
train -> evaluate -> predict on a tiny run, --help everywhere, and user mistakes giving
one line on stderr with exit status 2 (never a traceback)."""
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import cnnlab as cl
from cnnlab.cli import main as cli_main
from cnnlab.cli.main import main
from cnnlab.cli.common import load_dataset
from cnnlab.cli.shape import conv_shape
from cnnlab.data import load_mnist

SUBCOMMANDS = ("train", "evaluate", "predict", "summary", "shape")


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_user_error(capsys, *argv, match=None):
    code, out, err = run(capsys, *argv)
    assert code == 2, (code, out, err)
    # one message: 'cnnlab: error: ' then, when it is long, lines indented by two spaces
    lines = err.rstrip("\n").splitlines()
    assert all(line.startswith("  ") for line in lines[1:]), err
    assert lines[0].startswith("cnnlab: error: ") and "Traceback" not in err
    text = " ".join(line.strip() for line in lines)
    if match is not None:
        assert match in text, text
    return text


# ----------------------------------------------------------------------------- help, discovery

def test_help_everywhere(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "usage: cnnlab" in out
    for name in SUBCOMMANDS:
        assert name in out
        code, out_sub, _ = run(capsys, name, "--help")
        assert code == 0 and f"usage: cnnlab {name}" in out_sub


def test_subcommands_register_from_their_modules():
    names = [m.__name__.rsplit(".", 1)[1] for m in cli_main.command_modules()]
    assert names[:5] == list(SUBCOMMANDS)


def test_a_new_subcommand_module_needs_no_edit_of_main(monkeypatch, capsys):
    """What cnnlab/cli/viz.py will do: a module with register() joins the command line."""
    import pkgutil
    import types

    fake = types.ModuleType("cnnlab.cli.zz_hello")
    fake.ORDER = 99

    def register(sub):
        p = sub.add_parser("hello", help="say hello")
        p.set_defaults(func=lambda args: print("hello from a plug-in") or 0)

    fake.register = register
    real = pkgutil.iter_modules
    monkeypatch.setitem(sys.modules, "cnnlab.cli.zz_hello", fake)
    monkeypatch.setattr(pkgutil, "iter_modules", lambda path=None, prefix="": list(
        real(path, prefix)) + [pkgutil.ModuleInfo(None, "zz_hello", False)])
    code, out, _ = run(capsys, "hello")
    assert code == 0 and out.strip() == "hello from a plug-in"


def test_no_command_prints_help_and_exits_2(capsys):
    code, _, err = run(capsys)
    assert code == 2 and "usage: cnnlab" in err


def test_python_dash_m_cnnlab():
    r = subprocess.run([sys.executable, "-m", "cnnlab", "shape", "--n", "32", "--f", "5",
                        "--p", "2", "--k", "10", "--c", "3"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and "32x32x10" in r.stdout and "760" in r.stdout


# ----------------------------------------------------------------------------- shape

def test_shape_course_example(capsys):
    code, out, _ = run(capsys, "shape", "--n", "32", "--f", "5", "--p", "2", "--s", "1",
                       "--k", "10", "--c", "3")
    assert code == 0
    assert "output 32x32x10" in out and "parameters 760 " in out


@pytest.mark.parametrize("s, out, exact", [(1, 5, 5), (2, 3, 3), (3, 2, 7 / 3)])
def test_shape_strides_and_floor(capsys, s, out, exact):
    r = conv_shape(7, 3, 0, s)
    assert r["out"] == out and r["exact"] == pytest.approx(exact)
    code, text, _ = run(capsys, "shape", "--n", "7", "--f", "3", "--s", str(s))
    assert code == 0 and f"output {out}x{out}x1" in text
    assert ("does not fit evenly" in text) == (s == 3)


def test_shape_named_paddings_and_params(capsys):
    assert conv_shape(32, 3, "same", 1, 10, 3)["out"] == 32
    assert conv_shape(6, 3, "full")["out"] == 8
    assert conv_shape(6, 3, "valid")["out"] == 4
    assert conv_shape(32, 3, 0, 1, 10, 3)["params"] == 280
    code, out, _ = run(capsys, "shape", "--n", "6", "--f", "3", "--p", "full")
    assert code == 0 and "output 8x8x1" in out


# ----------------------------------------------------------------------------- summary

def test_summary_zoo_model(capsys):
    code, out, _ = run(capsys, "summary", "lenet5")
    assert code == 0 and "61,706" in out and "(16, 5, 5)" in out and "Memory estimate" in out


def test_summary_big_model_without_building(capsys):
    code, out, _ = run(capsys, "summary", "vgg16", "--no-build")
    assert code == 0 and "138,357,544" in out and "512x7x7" in out


def test_summary_input_shape_and_classes(capsys):
    code, out, _ = run(capsys, "summary", "cifar_convnet", "--input-shape", "3,64,64",
                       "--num-classes", "100")
    assert code == 0 and "(100,)" in out and "(128, 8, 8)" in out


def test_summary_list(capsys):
    code, out, _ = run(capsys, "summary", "--list")
    assert code == 0
    for name in ("lenet5", "alexnet", "vgg16", "googlenet", "cifar_convnet"):
        assert name in out


# ----------------------------------------------------------------------------- user errors

@pytest.mark.parametrize("argv, match", [
    (("summary", "resnet1000"), "unknown model 'resnet1000'"),
    (("summary", "lenet5", "--input-shape", "3,32"), "C,H,W"),
    (("summary", "lenet5", "--input-shape", "1,4,4"), "cannot build lenet5 for input 1x4x4"),
    (("summary", "missing_model.npz"), "model file not found"),
    (("shape", "--n", "-3", "--f", "3"), "--n"),
    (("shape", "--n", "5", "--f", "three"), "--f"),
    (("shape", "--f", "3"), "--n"),
    (("shape", "--n", "5", "--f", "2", "--p", "same"), "odd"),
    (("train", "--epochs", "zero"), "--epochs"),
    (("train", "--lr", "-1"), "--lr"),
    (("train", "--model", "nonet"), "unknown model 'nonet'"),
    (("train", "--data", "imagenet"), "--data"),
    (("train", "--data-dir", "/no/such/dir", "--epochs", "1"), "/no/such/dir"),
    (("train", "--out", "/no/such/dir/m.npz", "--epochs", "1"), "does not exist"),
    (("evaluate", "/no/such/model.npz"), "model file not found"),
    (("predict", "/no/such/model.npz", "x.png"), "model file not found"),
    (("frobnicate",), "invalid choice"),
])
def test_user_mistakes_give_one_line_and_exit_2(capsys, argv, match):
    assert_user_error(capsys, *argv, match=match)


def test_corrupt_model_file_is_a_user_error(capsys, tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file at all")
    assert_user_error(capsys, "evaluate", str(bad), match="cannot load model file")


# ----------------------------------------------------------------------------- train/evaluate/predict

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny real run: 2 epochs of LeNet-5 on 1,000 bundled MNIST images."""
    path = tmp_path_factory.mktemp("cli") / "lenet.npz"
    code = main(["train", "--epochs", "2", "--limit", "1000", "--optimizer", "adam", "--out",
                 str(path), "--quiet", "--seed", "0"])
    assert code == 0
    return path


def test_train_writes_a_checkpoint_and_reports(trained, capsys):
    model = cl.load_model(trained)
    assert model.count_params() == 61_706 and model.input_shape == (1, 28, 28)
    # a second tiny run, captured, to check the printout
    code, out, err = run(capsys, "train", "--epochs", "2", "--limit", "600", "--out",
                         str(trained.parent / "again.npz"), "--quiet", "--val-split", "0.2")
    assert code == 0
    assert "lenet5 (61,706 parameters)" in out and "120 images held out" in out
    assert "test accuracy" in out and "checkpoint" in out
    assert "Epoch 2/2" in err   # one line per epoch with --quiet


def test_evaluate(trained, capsys):
    code, out, _ = run(capsys, "evaluate", str(trained))
    assert code == 0 and "accuracy" in out and "2,000 images" in out
    acc = float(out.split("accuracy ")[1].split("%")[0]) / 100
    x, y = load_mnist(split="test")
    assert acc == pytest.approx(cl.load_model(trained).evaluate(x, y)["accuracy"], abs=1e-4)
    assert acc > 0.5
    code, out, _ = run(capsys, "evaluate", str(trained), "--limit", "300")
    assert code == 0 and "on 300 images" in out and "a random 300" in out


def test_limit_draws_a_random_subset_of_every_class():
    """Image folders come sorted by class: --limit must not take only the first classes."""
    x, y, where = load_dataset("mnist", None, "train", limit=500, seed=3)
    x2, y2, _ = load_dataset("mnist", None, "train", limit=500, seed=3)
    full_x, full_y = load_mnist()
    assert x.shape == (500, 1, 28, 28) and np.array_equal(y, y2) and np.array_equal(x, x2)
    assert not np.array_equal(y, full_y[:500]) and len(np.unique(y)) == 10
    assert "random 500" in where


def test_evaluate_wrong_data_for_model(trained, capsys, tmp_path):
    assert_user_error(capsys, "evaluate", str(trained), "--data", "cifar10", "--data-dir",
                      str(tmp_path))


def test_predict_png_digit(trained, capsys, tmp_path):
    x, y = load_mnist(split="test", dtype=np.uint8, limit=20)
    model = cl.load_model(trained)
    i = int(np.argmax(model.predict(x.astype(np.float32) / 255)[np.arange(20), y]))
    png, inv = tmp_path / "digit.png", tmp_path / "ink_on_paper.png"
    Image.fromarray(x[i, 0]).save(png)
    Image.fromarray(255 - x[i, 0]).save(inv)
    expected = model.predict(x[i:i + 1].astype(np.float32) / 255)[0]
    top = int(np.argmax(expected))

    code, out, _ = run(capsys, "predict", str(trained), str(png), "--top-k", "3")
    assert code == 0
    lines = out.strip().splitlines()
    assert len(lines) == 4 and lines[1].split()[:2] == ["1.", str(top)]
    assert f"{expected[top]:.2%}" in lines[1]

    code, out_inv, _ = run(capsys, "predict", str(trained), str(inv), "--invert")
    assert code == 0 and out_inv.strip().splitlines()[1] == lines[1]


def test_predict_resizes_rgb_images(trained, capsys, tmp_path):
    img = tmp_path / "big.jpg"
    Image.new("RGB", (100, 80), (200, 30, 30)).save(img)
    code, out, _ = run(capsys, "predict", str(trained), str(img), "--top-k", "10")
    assert code == 0 and len(out.strip().splitlines()) == 11


def test_predict_not_an_image(trained, capsys, tmp_path):
    txt = tmp_path / "notes.png"
    txt.write_text("hello")
    assert_user_error(capsys, "predict", str(trained), str(txt), match="not an image")
    assert_user_error(capsys, "predict", str(trained), str(tmp_path / "none.png"),
                      match="image not found")
