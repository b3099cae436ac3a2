"""Experiment 5, cs231n's three-layer convnet (conv 32@7x7 - relu - 2x2 max pool -
affine 100 - relu - affine 10): it overfits 100 images, and one epoch on the training
set makes its first-layer filters smooth, coloured edge and blob detectors."""
from __future__ import annotations

from ..models import three_layer_convnet
from ..training.regularization import check_reg
from .common import make_optimizer
from .data import cifar10_for_course
from .solver import train


def _convnet(weight_scale, hidden_dim, reg, seed):
    model = three_layer_convnet(hidden_dim=hidden_dim, weight_scale=weight_scale, seed=seed)
    model.reg = check_reg("three_layer_convnet", reg)  # L2 on conv and affine weights
    return model


def overfit_convnet(num_train=100, num_val=1000, epochs=15, batch_size=50, weight_scale=1e-2,
                    lr=1e-3, hidden_dim=100, seed=0, path=None):
    """Adam on ``num_train`` images. -> solver dict + 'setup'."""
    data = cifar10_for_course(num_train, num_val, seed=seed, path=path)
    model = _convnet(weight_scale, hidden_dim, 0.0, seed)
    out = train(model, data, make_optimizer("adam", lr), epochs, batch_size, seed=seed)
    out["setup"] = {"num_train": num_train, "num_val": num_val, "epochs": epochs,
                    "weight_scale": weight_scale, "adam lr": lr, "batch": batch_size,
                    "seed": seed}
    return out


def train_convnet(num_train=49000, num_val=1000, epochs=1, batch_size=50, weight_scale=1e-3,
                  lr=1e-3, hidden_dim=500, reg=1e-3, seed=0, path=None):
    """The course's one epoch on the training set (hidden 500, reg 1e-3). -> solver dict
    + 'filters' (32, 3, 7, 7), the first-layer weights after training, + 'setup'."""
    data = cifar10_for_course(num_train, num_val, seed=seed, path=path)
    model = _convnet(weight_scale, hidden_dim, reg, seed)
    out = train(model, data, make_optimizer("adam", lr), epochs, batch_size, seed=seed)
    out["filters"] = model.layers[0].params["w"].copy()
    out["setup"] = {"num_train": num_train, "num_val": num_val, "epochs": epochs,
                    "hidden": hidden_dim, "reg": reg, "adam lr": lr, "batch": batch_size,
                    "seed": seed}
    return out
