"""A trained net for the viz tools when the user gives none: :func:`pretrained_lenet`,
the LeNet-5 shipped in the package (the default), or :func:`trained_lenet`, LeNet-5
(``cnnlab.models.lenet5``: conv 6@5x5 pad 2 - ReLU - pool 2 - conv 16@5x5 - ReLU - pool 2 -
dense 120 - 84 - 10) trained for a few seconds on the MNIST subset bundled with cnnlab.

With the defaults (8,000 images, 2 epochs, Adam 1e-3) it reaches about 95% accuracy on
the bundled test images in a few seconds on one CPU core (longer on a busy machine). The
result is cached per process and argument set, so ``cnnlab viz all`` trains once.
"""
from __future__ import annotations

import functools

import numpy as np


@functools.lru_cache(maxsize=4)
def _train(n_train, epochs, seed):
    from ..data import load_mnist
    from ..models import lenet5

    x, y = load_mnist(split="train", limit=n_train)
    model = lenet5(seed=seed)
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0, seed=seed)
    xt, yt = load_mnist(split="test")
    model.viz_test_accuracy = float(model.evaluate(xt, yt)["accuracy"])
    model.viz_description = f"LeNet-5 trained {epochs} epochs on {n_train:,} MNIST digits"
    return model


def trained_lenet(n_train=8000, epochs=2, seed=0):
    """LeNet-5 trained on the bundled MNIST subset (cached). Its test accuracy on the
    bundled 2,000 test images is in ``model.viz_test_accuracy``."""
    if not 1 <= int(n_train) <= 10000:
        raise ValueError(f"n_train must be in 1..10000 (the bundled subset), got {n_train}")
    return _train(int(n_train), int(epochs), int(seed))


@functools.lru_cache(maxsize=1)
def _pretrained():
    from ..data import load_mnist
    from ..models import lenet5

    model = lenet5(pretrained=True)
    xt, yt = load_mnist(split="test")
    model.viz_test_accuracy = float(model.evaluate(xt, yt)["accuracy"])
    model.viz_description = "the shipped LeNet-5 (trained on 24,000 MNIST digits)"
    return model


def pretrained_lenet():
    """``cnnlab.models.lenet5(pretrained=True)`` (cached; nothing is trained): the default
    net of the viz tools. ``model.viz_test_accuracy``: its accuracy on the 2,000 bundled
    test images."""
    return _pretrained()


def mnist_examples(n=10, split="test", one_per_class=True):
    """(x (n, 1, 28, 28), y (n,)) from the bundled MNIST subset; with ``one_per_class``
    the first example of each digit 0, 1, ... (n <= 10)."""
    from ..data import load_mnist

    x, y = load_mnist(split=split)
    if not one_per_class:
        return x[:n], y[:n]
    if not 1 <= n <= 10:
        raise ValueError(f"one example per class gives at most 10, got n={n}")
    idx = np.array([int(np.flatnonzero(y == c)[0]) for c in range(n)])
    return x[idx], y[idx]
