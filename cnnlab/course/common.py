"""Shared pieces of the course experiments: the four update rules by name, the setup
line every figure carries, and the CI budget."""
from __future__ import annotations

import os

from ..optim import SGD, Adam, RMSProp

#: cs231n's update rules with the course's hyperparameters (momentum 0.9, RMSProp
#: decay 0.99, Adam betas (0.9, 0.999), eps 1e-8).
UPDATE_RULES = ("sgd", "sgd_momentum", "rmsprop", "adam")


def make_optimizer(name, lr):
    """'sgd', 'sgd_momentum', 'rmsprop' or 'adam' with learning rate ``lr``."""
    if name == "sgd":
        return SGD(lr)
    if name == "sgd_momentum":
        return SGD(lr, momentum=0.9)
    if name == "rmsprop":
        return RMSProp(lr, alpha=0.99, eps=1e-8)
    if name == "adam":
        return Adam(lr, betas=(0.9, 0.999), eps=1e-8)
    raise ValueError(f"update rule must be one of {list(UPDATE_RULES)}, got {name!r}")


def setup_text(setup):
    """One line for a figure title: 'CIFAR-10 50 train / 1000 val, 20 epochs, ... seed 0'."""
    s = dict(setup)
    n_train, n_val = s.pop("num_train"), s.pop("num_val")
    parts = [f"CIFAR-10 {n_train} train" + (f" / {n_val} val" if n_val else "")]
    if "epochs" in s:
        e = s.pop("epochs")
        parts.append(f"{e} epoch" + ("" if e == 1 else "s"))
    parts += [f"{k.replace('_', ' ')} {v}" for k, v in s.items() if k != "seed"]
    parts.append(f"seed {setup['seed']}")
    return ", ".join(parts)


def notebook_budget():
    """'ci' when the environment variable CNNLAB_NOTEBOOK_BUDGET is 'ci' (notebooks then
    shrink every experiment so CI runs them in seconds), else 'full'."""
    value = os.environ.get("CNNLAB_NOTEBOOK_BUDGET", "full").strip().lower()
    if value not in ("ci", "full"):
        raise ValueError(f"CNNLAB_NOTEBOOK_BUDGET must be 'ci' or 'full', got {value!r}")
    return value


#: Keyword arguments that shrink each experiment for CI and ``--quick`` (seconds on two
#: shared cores); the full setups are the functions' defaults.
QUICK = {
    "overfit": {"num_val": 100},
    "weight_scale_sweep": {"weight_scales": (1e-3, 1e-2, 5e-2), "epochs": 10},
    "update_rules": {"num_train": 500, "num_val": 200, "epochs": 2},
    "batchnorm_curves": {"num_train": 200, "num_val": 200, "epochs": 3},
    "batchnorm_sweep": {"weight_scales": (1e-3, 1e-1), "num_train": 200, "num_val": 200,
                        "epochs": 2},
    "batch_size": {"batch_sizes": (10, 50), "num_train": 200, "num_val": 200, "epochs": 2},
    "dropout": {"num_train": 200, "num_val": 100, "epochs": 5},
    "convnet_overfit": {"num_train": 50, "num_val": 50, "epochs": 8, "batch_size": 25},
    "convnet_train": {"num_train": 200, "num_val": 100},
}


def budget_kwargs(experiment, budget=None):
    """The keyword arguments for ``experiment`` under ``budget`` ('ci' -> QUICK's, 'full'
    -> none; None: read CNNLAB_NOTEBOOK_BUDGET)."""
    budget = notebook_budget() if budget is None else budget
    if budget not in ("ci", "full"):
        raise ValueError(f"budget must be 'ci' or 'full', got {budget!r}")
    return dict(QUICK[experiment]) if budget == "ci" else {}
