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
           "OneCycle", "ReduceLROnPlateau", "OPTIMIZERS", "get"]
