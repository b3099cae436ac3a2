"""Experiment 2: SGD, SGD with momentum, RMSProp and Adam train the same 5-layer net
(same initial weights, same batches) on 4,000 CIFAR-10 images for 5 epochs."""
from __future__ import annotations

from ..models import fully_connected_net
from .common import UPDATE_RULES, make_optimizer
from .data import cifar10_for_course
from .solver import train

#: The course's learning rates for this comparison.
LEARNING_RATES = {"sgd": 5e-3, "sgd_momentum": 5e-3, "rmsprop": 1e-4, "adam": 1e-3}


def compare_update_rules(rules=UPDATE_RULES, hidden_dims=(100, 100, 100, 100), num_train=4000,
                         num_val=1000, epochs=5, batch_size=100, weight_scale=5e-2,
                         learning_rates=None, seed=0, path=None):
    """-> {'runs': {rule: solver dict ('loss' per iteration, 'train_acc'/'val_acc' per
    epoch)}, 'setup'}."""
    lrs = dict(LEARNING_RATES, **(learning_rates or {}))
    data = cifar10_for_course(num_train, num_val, seed=seed, path=path)
    runs = {}
    for rule in rules:
        model = fully_connected_net(list(hidden_dims), input_dim=(3, 32, 32),
                                    weight_scale=weight_scale, seed=seed)
        runs[rule] = train(model, data, make_optimizer(rule, lrs[rule]), epochs, batch_size,
                           seed=seed)
        runs[rule]["lr"] = lrs[rule]
    return {"runs": runs,
            "setup": {"num_train": num_train, "num_val": num_val, "epochs": epochs,
                      "layers": len(hidden_dims) + 1, "weight_scale": weight_scale,
                      "batch": batch_size, "seed": seed}}
