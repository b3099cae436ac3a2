"""Experiment 3, batch normalization: training curves with and without it, the
weight-initialization sweep (batch norm makes the result nearly independent of the
weight scale), and the effect of the batch size on batch-normed training."""
from __future__ import annotations

import numpy as np

from ..models import fully_connected_net
from .common import make_optimizer
from .data import cifar10_for_course
from .solver import train


def _run(data, hidden_dims, normalization, weight_scale, lr, epochs, batch_size, seed):
    model = fully_connected_net(list(hidden_dims), input_dim=(3, 32, 32),
                                normalization=normalization, weight_scale=weight_scale, seed=seed)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        try:
            return train(model, data, make_optimizer("adam", lr), epochs, batch_size, seed=seed)
        except FloatingPointError:  # diverged: report it as NaN, as a point of the sweep
            nan = [float("nan")] * epochs
            return {"loss": [float("nan")], "train_acc": nan, "val_acc": nan, "diverged": True}


def batchnorm_curves(hidden_dims=(100,) * 5, num_train=1000, num_val=1000, epochs=10,
                     batch_size=50, weight_scale=2e-2, lr=1e-3, seed=0, path=None):
    """Adam on a 6-layer net with and without batch norm.
    -> {'runs': {'baseline': ..., 'batchnorm': ...}, 'setup'}."""
    data = cifar10_for_course(num_train, num_val, seed=seed, path=path)
    runs = {name: _run(data, hidden_dims, norm, weight_scale, lr, epochs, batch_size, seed)
            for name, norm in (("baseline", None), ("batchnorm", "batchnorm"))}
    return {"runs": runs, "setup": {"num_train": num_train, "num_val": num_val,
                                    "epochs": epochs, "layers": len(hidden_dims) + 1,
                                    "weight_scale": weight_scale, "adam lr": lr,
                                    "batch": batch_size, "seed": seed}}


#: The course's sweep: 20 weight scales from 1e-4 to 1, evenly spaced on a log axis.
WEIGHT_SCALES = tuple(float(w) for w in np.logspace(-4, 0, 20))


def weight_scale_sweep(weight_scales=WEIGHT_SCALES, hidden_dims=(50,) * 7,
                       num_train=1000, num_val=1000, epochs=10, batch_size=50, lr=1e-3,
                       seed=0, path=None):
    """For each weight scale, an 8-layer net with and without batch norm: best train and
    validation accuracy over the epochs and the final training loss (the course's three
    panels). -> {'weight_scales', 'baseline': {...}, 'batchnorm': {...}, 'setup'}; each
    holds lists 'best_train_acc', 'best_val_acc', 'final_loss' (NaN where it diverged)."""
    data = cifar10_for_course(num_train, num_val, seed=seed, path=path)
    out = {"weight_scales": [float(w) for w in weight_scales]}
    for name, norm in (("baseline", None), ("batchnorm", "batchnorm")):
        res = {"best_train_acc": [], "best_val_acc": [], "final_loss": []}
        for ws in weight_scales:
            r = _run(data, hidden_dims, norm, float(ws), lr, epochs, batch_size, seed)
            res["best_train_acc"].append(float(np.max(r["train_acc"])))
            res["best_val_acc"].append(float(np.max(r["val_acc"])))
            res["final_loss"].append(float(r["loss"][-1]))
        out[name] = res
    out["setup"] = {"num_train": num_train, "num_val": num_val, "epochs": epochs,
                    "layers": len(hidden_dims) + 1, "adam lr": lr, "batch": batch_size,
                    "seed": seed}
    return out


def batch_size_effect(batch_sizes=(5, 10, 50), hidden_dims=(100,) * 5, num_train=1000,
                      num_val=1000, epochs=10, weight_scale=2e-2, lr=1e-3, baseline_batch=10,
                      seed=0, path=None):
    """Batch-normed nets trained with each batch size, and a net without batch norm at
    ``baseline_batch``. -> {'runs': {'baseline_b10': ..., 'batchnorm_b5': ...}, 'setup'}."""
    data = cifar10_for_course(num_train, num_val, seed=seed, path=path)
    runs = {f"baseline_b{baseline_batch}": _run(data, hidden_dims, None, weight_scale, lr,
                                                epochs, baseline_batch, seed)}
    for b in batch_sizes:
        runs[f"batchnorm_b{b}"] = _run(data, hidden_dims, "batchnorm", weight_scale, lr,
                                       epochs, b, seed)
    return {"runs": runs, "setup": {"num_train": num_train, "num_val": num_val,
                                    "epochs": epochs, "layers": len(hidden_dims) + 1,
                                    "weight_scale": weight_scale, "adam lr": lr, "seed": seed}}
