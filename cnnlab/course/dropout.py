"""Experiment 4, dropout as a regularizer: two-layer nets (500 hidden units) trained on
500 images with keep probability 1.0 and 0.25; dropout narrows the gap between training
and validation accuracy."""
from __future__ import annotations

from ..models import fully_connected_net
from .common import make_optimizer
from .data import cifar10_for_course
from .solver import train


def dropout_comparison(keeps=(1.0, 0.25), hidden_dims=(500,), num_train=500, num_val=1000,
                       epochs=25, batch_size=100, weight_scale=1e-2, lr=5e-4, seed=0,
                       path=None):
    """-> {'runs': {keep: solver dict}, 'setup'}."""
    data = cifar10_for_course(num_train, num_val, seed=seed, path=path)
    runs = {}
    for keep in keeps:
        model = fully_connected_net(list(hidden_dims), input_dim=(3, 32, 32),
                                    dropout_keep=keep, weight_scale=weight_scale, seed=seed)
        runs[keep] = train(model, data, make_optimizer("adam", lr), epochs, batch_size,
                           seed=seed)
    return {"runs": runs, "setup": {"num_train": num_train, "num_val": num_val,
                                    "epochs": epochs, "hidden": list(hidden_dims),
                                    "adam lr": lr, "batch": batch_size, "seed": seed}}


def generalization_gap(result, last=5):
    """Mean over the last ``last`` epochs of train_acc - val_acc, per keep probability."""
    return {k: sum(t - v for t, v in zip(r["train_acc"][-last:], r["val_acc"][-last:])) /
            len(r["train_acc"][-last:]) for k, r in result["runs"].items()}
