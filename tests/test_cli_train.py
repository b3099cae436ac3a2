"""``cnnlab train`` beyond the basics (issue 12): image folders (``--data DIR``), ``--resume``
bit for bit against an uninterrupted run, what Ctrl-C says (in-process and with a real
SIGINT), ``--limit``/``--val-split`` errors, memory of ``--limit``, and one error format."""
import json
import os
import signal
import subprocess
import sys
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import cnnlab as cl
import cnnlab.models as zoo
from cnnlab.cli import _train_data
from cnnlab.cli.common import load_dataset
from cnnlab.cli.main import main
from cnnlab.training import ModelCheckpoint, load_checkpoint

REPO = Path(__file__).resolve().parents[1]


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def user_error(capsys, *argv):
    """Exit status 2 and one message: 'cnnlab: error: ' then continuation lines indented
    by two spaces, no traceback. -> the message joined into one line."""
    code, out, err = run(capsys, *argv)
    assert code == 2, (code, out, err)
    lines = err.rstrip("\n").splitlines()
    assert lines[0].startswith("cnnlab: error: ") and "Traceback" not in err, err
    assert all(line.startswith("  ") for line in lines[1:]), err
    # at most 100 columns, unless a single word (a long path) is longer
    assert all(len(line) <= 100 or " " not in line.strip() for line in lines), err
    return " ".join(line.strip() for line in lines)


# ----------------------------------------------------------------------------- resume

TINY = ("--limit", "200", "--epochs", "3", "--quiet", "--seed", "5", "--batch-size", "32")


def _weights_and_state(path):
    ckpt = load_checkpoint(path)
    return ckpt.model.get_weights(), ckpt.optimizer.state_dict(), ckpt.epoch


def _interrupt_after_save(monkeypatch, after_epochs):
    """Ctrl-C right after the checkpoint of epoch ``after_epochs`` (1-based) is written."""
    real = ModelCheckpoint.on_epoch_end

    def on_epoch_end(self, epoch, logs=None):
        real(self, epoch, logs)
        if epoch + 1 == after_epochs:
            raise KeyboardInterrupt

    monkeypatch.setattr(ModelCheckpoint, "on_epoch_end", on_epoch_end)


def test_resume_after_ctrl_c_is_bitwise_the_uninterrupted_run(tmp_path, capsys, monkeypatch):
    """LeNet-5 with the full MNIST recipe (SGD Nesterov, one-cycle per step, affine
    augmentation, validation split): 3 epochs in one go versus 1 epoch, Ctrl-C, and
    ``cnnlab train --resume``. Weights and optimizer state must be identical."""
    whole, part = tmp_path / "whole.npz", tmp_path / "part.npz"
    assert run(capsys, "train", *TINY, "--out", whole)[0] == 0

    with monkeypatch.context() as m:
        _interrupt_after_save(m, 1)
        code, out, err = run(capsys, "train", *TINY, "--out", part)
    assert code == 130
    text = " ".join(err.split())
    assert f"interrupted during epoch 2/3: {part} holds the model after epoch 1" in text
    assert f"cnnlab train --resume {part}" in err.splitlines()[-1]
    assert load_checkpoint(part).epoch == 1
    settings = json.loads(Path(str(part) + ".args.json").read_text())["settings"]
    assert settings["limit"] == 200 and settings["seed"] == 5 and settings["epochs"] == 3

    code, out, err = run(capsys, "train", "--resume", part)
    assert code == 0, err
    assert "holds epoch 1/3; continuing with epoch 2" in out
    assert "Epoch 1/3" not in err and "Epoch 2/3" in err and "Epoch 3/3" in err

    w1, s1, e1 = _weights_and_state(whole)
    w2, s2, e2 = _weights_and_state(part)
    assert e1 == e2 == 3
    assert w1.keys() == w2.keys() and s1.keys() == s2.keys()
    for k in w1:
        np.testing.assert_array_equal(w1[k], w2[k], err_msg=k)
    for k in s1:
        np.testing.assert_array_equal(s1[k], s2[k], err_msg=k)


def test_resume_errors_name_the_option(tmp_path, capsys):
    path = tmp_path / "m.npz"
    args = ("--limit", "120", "--epochs", "1", "--quiet", "--no-augment")
    assert run(capsys, "train", *args, "--out", path)[0] == 0
    assert "already holds all 1 epochs" in user_error(capsys, "train", "--resume", path)
    msg = user_error(capsys, "train", "--resume", path, "--epochs", "2", "--lr", "0.3")
    assert "--lr 0.05" in msg and "--lr 0.3" in msg
    msg = user_error(capsys, "train", "--resume", path, "--epochs", "2", "--data", "cifar10")
    assert "--data mnist" in msg
    # more epochs continue a finished run
    code, _, err = run(capsys, "train", "--resume", path, "--epochs", "2", "--quiet")
    assert code == 0 and load_checkpoint(path).epoch == 2, err

    Path(str(path) + ".args.json").write_text("{not json")
    assert "settings file" in user_error(capsys, "train", "--resume", path, "--epochs", "3")

    bare = tmp_path / "bare.npz"
    zoo.lenet5(seed=0).save(bare)
    assert "no optimizer state" in user_error(capsys, "train", "--resume", bare)

    # saved from Python with an optimizer and epoch: resumes with that optimizer
    from_python = tmp_path / "py.npz"
    model, opt = zoo.lenet5(seed=0), cl.optim.Adam(1e-3)
    x, y = cl.data.load_mnist(limit=64)
    model.fit(x, y, epochs=1, optimizer=opt, verbose=0, seed=3)
    model.save(from_python, optimizer=opt, epoch=1)
    code, out, err = run(capsys, "train", "--resume", from_python, "--epochs", "2", "--limit",
                         "100", "--quiet")
    assert code == 0, err
    assert "adam lr" in out and "seed 3" in out and load_checkpoint(from_python).epoch == 2
    assert "--optimizer adam" in user_error(capsys, "train", "--resume", from_python, "--epochs",
                                            "3", "--optimizer", "sgd")
    assert "not found" in user_error(capsys, "train", "--resume", tmp_path / "none.npz")


def test_ctrl_c_before_the_first_checkpoint(tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cl.Model, "fit", interrupted)
    code, _, err = run(capsys, "train", "--limit", "100", "--out", tmp_path / "m.npz")
    assert code == 130 and "before the first checkpoint" in err
    assert not (tmp_path / "m.npz").exists()


def test_a_real_sigint_says_which_epoch_the_file_holds(tmp_path):
    """The real thing: SIGINT to a training process once its first checkpoint exists."""
    out = tmp_path / "run.npz"
    env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="200")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cnnlab", "train", "--limit", "600", "--epochs", "200",
         "--quiet", "--no-augment", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
        preexec_fn=_default_sigint)
    try:
        deadline = time.monotonic() + 120
        while not out.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert out.exists(), proc.communicate()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    holds = load_checkpoint(out).epoch
    assert f"interrupted during epoch {holds + 1}/200: {out} holds the model after epoch " \
           f"{holds} " in " ".join(err.split())
    assert err.rstrip().splitlines()[-1] == f"  cnnlab train --resume {out}"
    assert "Traceback" not in err


# ----------------------------------------------------------------------------- image folders

CLASSES = {"cat": (200, 40, 40), "dog": (40, 40, 200), "owl": (40, 180, 40)}


def _make_folder(root, splits=("train", "test"), n=12, rng=None):
    """root/[split/]class/i.{png,jpg} of random sizes (18..70 px, some grayscale)."""
    rng = rng or np.random.default_rng(0)
    for split in splits:
        for cls, colour in CLASSES.items():
            d = root / split / cls if split else root / cls
            d.mkdir(parents=True)
            for i in range(n):
                h, w = rng.integers(18, 70, 2)
                a = np.clip(np.array(colour) + rng.normal(0, 30, (h, w, 3)), 0, 255)
                im = Image.fromarray(a.astype(np.uint8))
                if i % 5 == 4:
                    im = im.convert("L")
                im.save(d / f"{i:02d}.{'png' if i % 2 else 'jpg'}")
    return root


def test_image_folder_resized_to_the_model_input(tmp_path):
    root = _make_folder(tmp_path / "pets")
    d = _train_data.load_train_test(str(root), None, (1, 28, 28), None, 0)
    assert d["classes"] == ["cat", "dog", "owl"] and d["num_classes"] == 3
    assert d["x"].shape == (36, 1, 28, 28) and d["xt"].shape == (36, 1, 28, 28)
    assert d["x"].dtype == np.float32
    # against Pillow directly: the 6th dog, grayscale, bilinear to 28x28, / 255
    src = Image.open(root / "train" / "dog" / "05.png").convert("L")
    expected = np.asarray(src.resize((28, 28), Image.Resampling.BILINEAR), np.float32) / 255
    np.testing.assert_allclose(d["x"][12 + 5, 0], expected, atol=1 / 255 + 1e-6)
    np.testing.assert_array_equal(d["y"], np.repeat([0, 1, 2], 12))


def test_train_on_an_image_folder_and_its_zip(tmp_path, capsys):
    root = _make_folder(tmp_path / "pets")
    out = tmp_path / "pets.npz"
    code, text, err = run(capsys, "train", "--data", root, "--model", "cifar_convnet",
                          "--epochs", "2", "--quiet", "--out", out)
    assert code == 0, err
    assert "classes:    3 (cat, dog, owl)" in text and "resized to 32x32 RGB" in text
    assert "test accuracy" in text and "on 36 test images" in text
    model = cl.load_model(out)
    assert model.input_shape == (3, 32, 32) and model.output_shape == (3,)

    # the same folder as a .zip with one top-level folder, and a flat folder (no test set)
    archive = tmp_path / "pets.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted(root.rglob("*.*")):
            zf.write(f, "pets/" + f.relative_to(root).as_posix())
    code, text, err = run(capsys, "train", "--data", archive, "--model", "lenet5", "--epochs",
                          "1", "--quiet", "--out", tmp_path / "z.npz", "--limit", "30")
    assert code == 0, err
    assert "a random 30 of its 36 images" in text and "resized to 28x28 grayscale" in text
    flat = _make_folder(tmp_path / "flat", splits=("",), n=4)
    code, text, err = run(capsys, "train", "--data", flat, "--model", "lenet5", "--epochs", "1",
                          "--quiet", "--out", tmp_path / "f.npz", "--val-split", "0.25")
    assert code == 0, err
    assert "test:       none" in text and "test accuracy" not in text


def test_image_folder_mistakes(tmp_path, capsys):
    assert "--data" in user_error(capsys, "train", "--data", tmp_path / "nothing")
    one = tmp_path / "one" / "cat"
    one.mkdir(parents=True)
    Image.new("RGB", (9, 9)).save(one / "a.png")
    Image.new("RGB", (9, 9)).save(one / "b.png")
    assert "at least 2" in user_error(capsys, "train", "--data", tmp_path / "one")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert "not a .zip" in user_error(capsys, "train", "--data", text)
    root = _make_folder(tmp_path / "few", splits=("",), n=1)
    msg = user_error(capsys, "train", "--data", root, "--val-split", "0.1")
    assert "--val-split 0.1" in msg and "3 images" in msg
    assert "--data-dir" in user_error(capsys, "train", "--data", root, "--data-dir", tmp_path)


# ----------------------------------------------------------------------------- --limit

@pytest.mark.parametrize("argv, needs", [
    (("--limit", "5"), ("--limit 5", "--val-split 0.1", "--limit 6")),
    (("--limit", "1", "--val-split", "0.5"), ("--limit 1", "--val-split 0.5")),
    (("--limit", "3", "--val-split", "0.9"), ("--limit 3", "no training image")),
])
def test_limit_too_small_for_the_split_names_both_options(capsys, argv, needs):
    msg = user_error(capsys, "train", *argv, "--epochs", "1")
    for part in needs:
        assert part in msg, msg
    assert "validation_data" not in msg and "train_val_split" not in msg


def _write_cifar_bin(directory, per_batch, rng):
    d = directory / "cifar-10-batches-bin"
    d.mkdir(parents=True)
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        rec = rng.integers(0, 256, (per_batch, 3073), dtype=np.uint8)
        rec[:, 0] %= 10
        (d / name).write_bytes(rec.tobytes())
    return d


def test_limit_converts_only_the_images_it_keeps(tmp_path, rng):
    """5 x 400 synthetic CIFAR records: with --limit 100 the peak of allocations while
    loading stays near the uint8 bytes (6 MB), not the float32 copy of all (24 MB)."""
    _write_cifar_bin(tmp_path, 400, rng)
    full, y_full = cl.data.load_cifar10(tmp_path, "train")
    tracemalloc.start()
    try:
        x, y, where = load_dataset("cifar10", str(tmp_path), "train", limit=100, seed=1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    keep = np.sort(np.random.default_rng([1, 7]).permutation(2000)[:100])
    np.testing.assert_array_equal(x, full[keep])  # the same values as converting all
    np.testing.assert_array_equal(y, y_full[keep])
    assert x.dtype == np.float32 and "a random 100 of its 2,000" in where
    uint8_bytes, float_bytes = full.size, full.nbytes
    assert peak < uint8_bytes * 2.5 < float_bytes, (peak, uint8_bytes, float_bytes)


# ----------------------------------------------------------------------------- one error format

def test_argparse_errors_have_the_one_prefix(capsys):
    msg = user_error(capsys, "train", "--epochs", "zero")
    assert msg.startswith("cnnlab: error: argument --epochs:") and "cnnlab train:" not in msg


def test_internal_errors_have_the_same_prefix(capsys, monkeypatch):
    from cnnlab.cli import shape

    def boom(args):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(shape, "run", boom)
    code, _, err = run(capsys, "shape", "--n", "5", "--f", "3")
    assert code == 1
    assert err.startswith("cnnlab: error: internal error (a bug in cnnlab): RuntimeError: kaboom")


def test_corrupt_zip_is_a_user_error_naming_the_file(tmp_path, capsys):
    bad = tmp_path / "cifar.zip"
    bad.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    msg = user_error(capsys, "train", "--data", bad)
    assert str(bad) in msg


def test_long_messages_are_wrapped_at_word_boundaries(capsys, tmp_path):
    long_dir = tmp_path / ("x" * 60) / ("y" * 60)
    long_dir.mkdir(parents=True)
    msg = user_error(capsys, "train", "--data", "cifar10", "--data-dir", long_dir, "--epochs", "1")
    assert str(long_dir) in msg  # the path survives whole, on a line of its own if need be


def _default_sigint():
    """In the child: SIGINT back to its default. A shell starts background jobs with SIGINT
    ignored, and children inherit that; Python then installs no KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_train_fits_a_patch_whitening_to_the_training_images_only(tmp_path, capsys):
    """cifar_airbench's first layer is fitted (adapt) to the training split before the
    first step: its filters whiten the training patches, never the held-out ones."""
    root = _make_folder(tmp_path / "pets")
    out = tmp_path / "air.npz"
    code, _, err = run(capsys, "train", "--data", root, "--model", "cifar_airbench", "--epochs",
                       "1", "--quiet", "--out", out, "--val-split", "0.25", "--seed", "3")
    assert code == 0, err
    model = cl.load_model(out)
    fitted = model.layers[0]
    d = _train_data.load_train_test(str(root), None, (3, 32, 32), None, 3)
    xtr, _, _, _ = cl.data.train_val_split(d["x"], d["y"], 0.25, rng=3)
    want = cl.layers.PatchWhitening(2).adapt(xtr)
    np.testing.assert_allclose(fitted.state["w"], want.state["w"], rtol=1e-5, atol=1e-5)
