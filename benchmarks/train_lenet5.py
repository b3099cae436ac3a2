"""Train the shipped LeNet-5 (``cnnlab.models.lenet5(pretrained=True)``) and write its files.

    python benchmarks/train_lenet5.py            # from the repository root

Trains on the 24,000 MNIST training images of ../shared/data/mnist with the recipe of
``benchmarks/bench_accuracy.py --task lenet`` (the ``cnnlab train`` recipe), selects
nothing (the model shipped is the one at the end of training, and no hyperparameter was
chosen by looking at the test set), then evaluates the official 10,000 test images once
and writes, atomically:

    cnnlab/assets/pretrained/lenet5_mnist.npz    the checkpoint (cnnlab .npz, no pickle)
    cnnlab/assets/pretrained/lenet5_mnist.json   the machine-readable card (SHA-256 checked on load)
    cnnlab/assets/pretrained/lenet5_mnist.md     the model card for people

``--out DIR`` writes elsewhere (the tests never retrain; this is for reproducing).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

import cnnlab  # noqa: E402
import cnnlab.models as zoo  # noqa: E402
from cnnlab.cli._augment import random_affine  # noqa: E402
from cnnlab.data import atomic_open, load_mnist  # noqa: E402
from cnnlab.models._pretrained import sha256_file  # noqa: E402  (the digest load checks)
from cnnlab.optim import SGD, OneCycle  # noqa: E402
from cnnlab.training import LearningRateScheduler  # noqa: E402

SHARED_MNIST = os.path.normpath(os.path.join(ROOT, "..", "shared", "data", "mnist"))
OUT = os.path.join(ROOT, "cnnlab", "assets", "pretrained")
COMMAND = "python benchmarks/train_lenet5.py"


def write_text(path, text):
    """UTF-8 text, written atomically (cnnlab.data.atomic_open)."""
    with atomic_open(path, "wb") as f:
        f.write(text.encode("utf-8"))


def augment(xb, rng):
    return random_affine(xb, rng, 10.0, 0.1, 2.0)


def main(argv=None):
    cnnlab.keep_freed_memory()  # the allocator setting the CLI runs with
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=SHARED_MNIST)
    p.add_argument("--out", default=OUT)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)

    x, y = load_mnist(a.data_dir, "train")
    xt, yt = load_mnist(a.data_dir, "test")
    epochs, bs, lr = a.epochs, 64, 0.05
    recipe = (f"LeNet-5 (cnnlab.models.lenet5, seed {a.seed}) on the {len(x):,} MNIST training "
              f"images, pixels in [0, 1], {epochs} epochs, batch {bs}, SGD Nesterov momentum "
              f"0.9, weight decay 5e-4, one-cycle learning rate peaking at {lr:g} (25 % "
              f"warm-up, cosine down), random rotations +-10 deg / zooms +-10 % / shifts "
              f"+-2 px, training seed {a.seed}; no validation split and no selection: the "
              f"model shipped is the one after the last epoch")
    print(recipe, flush=True)
    model = zoo.lenet5(seed=a.seed)
    steps = -(-len(x) // bs)
    t0 = time.perf_counter()
    model.fit(x, y, epochs=epochs, batch_size=bs, seed=a.seed,
              optimizer=SGD(lr, momentum=0.9, nesterov=True, weight_decay=5e-4),
              callbacks=[LearningRateScheduler(OneCycle(lr, epochs * steps, pct_start=0.25))],
              augment=augment, verbose=2)
    seconds = time.perf_counter() - t0
    test = model.evaluate(xt, yt)
    print(f"test accuracy {test['accuracy']:.2%} on {len(xt):,} images, {seconds:.0f} s",
          flush=True)

    os.makedirs(a.out, exist_ok=True)
    npz = os.path.join(a.out, "lenet5_mnist.npz")
    model.save(npz)           # atomic (temp file + os.replace)
    digest = sha256_file(npz)
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    machine = (f"{platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
               f"NumPy {np.__version__}, shared with other processes")
    card = {"name": "lenet5_mnist", "file": "lenet5_mnist.npz", "sha256": digest,
            "architecture": "cnnlab.models.lenet5()", "input_shape": [1, 28, 28],
            "classes": [str(i) for i in range(10)],
            "input": "28x28 grey, white digit on black, pixels in [0, 1] (as MNIST)",
            "data": f"MNIST: {len(x):,} training images ({os.path.relpath(a.data_dir, ROOT)}); "
                    f"test: the official "
                    f"{len(xt):,} test images",
            "recipe": recipe, "command": COMMAND,
            "test_accuracy": round(float(test["accuracy"]), 4),
            "test_loss": round(float(test["loss"]), 4),
            "training_seconds": round(seconds, 1), "date": date, "machine": machine}
    write_text(os.path.join(a.out, "lenet5_mnist.json"), json.dumps(card, indent=2) + "\n")
    title = "# Model card: LeNet-5 on MNIST (`lenet5_mnist.npz`)"
    write_text(os.path.join(a.out, "lenet5_mnist.md"), f"""{title}

Loaded by `cnnlab.models.lenet5(pretrained=True)`; the default model of `cnnlab explore`.

- **Architecture**: `cnnlab.models.lenet5()`: conv 6@5x5 pad 2 - ReLU - max pool 2 - conv
  16@5x5 - ReLU - max pool 2 - dense 120 - ReLU - dense 84 - ReLU - dense 10 (61,706
  parameters). Outputs class scores; `predict` applies the softmax.
- **Input**: {card['input']}.
- **Data**: {card['data']}.
- **Recipe**: {recipe}.
- **Command** (from the repository root, ../shared/data beside it): `{COMMAND}`
- **Test accuracy**: {test['accuracy']:.2%} on the {len(xt):,} official MNIST test images
  (loss {test['loss']:.4f}), measured once, after training.
- **Training time**: {seconds:.0f} s on {machine}.
- **Date**: {date}
- **SHA-256** of `lenet5_mnist.npz`: `{digest}` (checked on every load; a mismatch raises).
- **Limits**: trained on centred, size-normalised digits (MNIST preprocessing: the digit
  fitted into 20x20 and centred by mass in 28x28); other inputs need the same treatment.
  Bitwise reproduction needs the same NumPy/BLAS build; another build gives the same
  accuracy to within a few hundredths of a percent.
""")
    print(f"wrote {npz} (sha256 {digest}) and its card", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
