"""Experiment 1, the sanity check: a small net must overfit 50 training images to 100 %
training accuracy within 20 epochs. A 3-layer net does so at the course's settings; a
5-layer net only for a narrow band of weight scales (the sweep shows it)."""
from __future__ import annotations

import numpy as np

from ..models import fully_connected_net
from .common import make_optimizer
from .data import cifar10_for_course
from .solver import train


def overfit_small(hidden_dims=(100, 100), num_train=50, num_val=1000, epochs=20,
                  batch_size=25, lr=1e-2, weight_scale=1e-2, seed=0, data=None, path=None):
    """Train a fully connected net (SGD) on ``num_train`` images. -> the solver's dict
    ('loss', 'train_acc', 'val_acc' per epoch) plus 'setup'."""
    data = data or cifar10_for_course(num_train, num_val, seed=seed, path=path)
    model = fully_connected_net(list(hidden_dims), input_dim=(3, 32, 32),
                                weight_scale=weight_scale, seed=seed)
    out = train(model, data, make_optimizer("sgd", lr), epochs, batch_size, seed=seed)
    out["setup"] = {"num_train": len(data["X_train"]), "num_val": len(data["X_val"]),
                    "epochs": epochs, "layers": len(hidden_dims) + 1,
                    "weight_scale": weight_scale, "sgd lr": lr, "batch": batch_size,
                    "seed": seed}
    return out


#: The sweep's weight scales: 13 from 1e-4 to 1, evenly spaced on a log axis.
WEIGHT_SCALES = tuple(float(w) for w in np.logspace(-4, 0, 13))


def weight_scale_sweep(weight_scales=WEIGHT_SCALES, depths=(3, 5),
                       num_train=50, epochs=20, batch_size=25, lr=1e-2, width=100, seed=0,
                       path=None):
    """Final training accuracy after ``epochs`` of SGD on ``num_train`` images, for nets of
    each depth (``depth - 1`` hidden layers of ``width``) and each weight scale.
    -> {'weight_scales', 'final_train_acc': {depth: [...]}, 'setup'}."""
    data = cifar10_for_course(num_train, 0, seed=seed, path=path)
    acc = {}
    for depth in depths:
        acc[depth] = []
        for ws in weight_scales:
            try:
                with np.errstate(over="ignore", invalid="ignore"):
                    r = overfit_small([width] * (depth - 1), epochs=epochs, batch_size=batch_size,
                                      lr=lr, weight_scale=float(ws), seed=seed, data=data)
                acc[depth].append(r["train_acc"][-1])
            except FloatingPointError:  # diverged: a weight scale too large
                acc[depth].append(float("nan"))
    return {"weight_scales": [float(w) for w in weight_scales], "final_train_acc": acc,
            "setup": {"num_train": num_train, "num_val": 0, "epochs": epochs, "sgd lr": lr,
                      "batch": batch_size, "width": width, "seed": seed}}
