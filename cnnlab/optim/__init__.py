"""Optimizers and learning-rate schedules. They see only ndarrays::

    opt = cnnlab.optim.Adam(lr=1e-3)
    opt.step(params, grads)            # lists of arrays, updated in place, state by position
    opt.lr = schedule(epoch)           # schedules are closed-form callables

Update rules follow PyTorch (``torch.optim``); each class's docstring shows where
cs231n's notation differs and why the two agree.
"""
from .adam import Adam, AdamW
from .base import Optimizer
from .clip import clip_grad_norm
from .rmsprop import RMSProp
from .schedules import (
    CosineAnnealing, ExponentialLR, LinearWarmup, MultiStepLR, OneCycle, ReduceLROnPlateau,
    Schedule, StepLR,
)
from .sgd import SGD

OPTIMIZERS = {cls.__name__: cls for cls in (SGD, RMSProp, Adam, AdamW)}
#: Keras-style short names accepted by ``Model.fit(optimizer='adam')``.
OPTIMIZER_NAMES = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSProp}


def resolve(optimizer):
    """An Optimizer as is, or a new one from its short name ('sgd', 'adam', 'adamw',
    'rmsprop', any case) with the class defaults: SGD lr 0.01 (Keras's; PyTorch's is
    1e-3), Adam and AdamW 1e-3 (AdamW weight decay 1e-2), RMSProp 1e-2 (PyTorch's)."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, str) and optimizer.lower() in OPTIMIZER_NAMES:
        return OPTIMIZER_NAMES[optimizer.lower()]()
    raise TypeError(f"optimizer must be a cnnlab.optim.Optimizer (SGD(...), Adam(...), ...) or "
                    f"one of the names {sorted(OPTIMIZER_NAMES)}, got {optimizer!r}")


def get(name, **config):
    """Build an optimizer from its class name and :meth:`Optimizer.get_config` kwargs
    (used when loading checkpoints)."""
    try:
        cls = OPTIMIZERS[name]
    except KeyError:
        raise ValueError(f"unknown optimizer {name!r}; expected one of "
                         f"{sorted(OPTIMIZERS)}") from None
    return cls(**config)


__all__ = ["Optimizer", "SGD", "RMSProp", "Adam", "AdamW", "clip_grad_norm", "Schedule",
           "StepLR", "MultiStepLR", "ExponentialLR", "LinearWarmup", "CosineAnnealing",
           "OneCycle", "ReduceLROnPlateau", "OPTIMIZERS", "OPTIMIZER_NAMES", "get", "resolve"]
