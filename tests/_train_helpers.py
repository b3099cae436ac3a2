"""Shared data and models for the training/persistence tests (not a test module)."""
import os

import numpy as np

import cnnlab as cl
from cnnlab.layers import BatchNorm, Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU

MNIST_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "mnist")


def mnist(split, limit):
    """(x (N, 1, 28, 28) float32 in [0, 1], y (N,) int64): the real MNIST files in
    ../shared/data/mnist; without them, the same first images from the subset bundled in
    the package."""
    from cnnlab.data import load_mnist
    return load_mnist(MNIST_DIR if os.path.isdir(MNIST_DIR) else None, split, limit=limit)


def blobs(n=240, classes=3, shape=(1, 4, 4), seed=0, sep=2.0):
    """A small separable problem: class means far apart, Gaussian noise."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((classes,) + shape) * sep
    y = rng.integers(0, classes, n)
    x = centers[y] + rng.standard_normal((n,) + shape)
    return x.astype(np.float32), y.astype(np.int64)


def mlp(classes=3, shape=(1, 4, 4), seed=0, dropout=0.0, **kw):
    layers = [Flatten(), Dense(16), ReLU()]
    if dropout:
        layers.append(Dropout(dropout))
    layers.append(Dense(classes))
    return cl.Sequential(layers, input_shape=shape, seed=seed, **kw)


def small_convnet(classes=3, shape=(1, 8, 8), seed=0):
    """Conv + batch norm + dropout: every kind of weight and randomness."""
    return cl.Sequential([Conv2D(4, 3, padding="same"), BatchNorm(), ReLU(), MaxPool2D(2),
                          Flatten(), Dropout(0.25), Dense(classes)],
                         input_shape=shape, seed=seed)


def mnist_convnet(seed=0):
    return cl.Sequential([Conv2D(8, 3, padding="same"), ReLU(), MaxPool2D(2),
                          Conv2D(16, 3, padding="same"), ReLU(), MaxPool2D(2),
                          Flatten(), Dense(10)], input_shape=(1, 28, 28), seed=seed)


def weights_equal(a, b):
    wa, wb = a.get_weights(), b.get_weights()
    return wa.keys() == wb.keys() and all(np.array_equal(wa[k], wb[k]) for k in wa)
