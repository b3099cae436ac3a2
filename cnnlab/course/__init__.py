"""The experiments of cs231n's assignment 2, runnable: each function trains the course's
nets on CIFAR-10 and returns its numbers; :mod:`cnnlab.course.figures` draws them, and
``cnnlab course ...`` does both from the command line.

    from cnnlab import course
    r = course.overfit_small()                # 3-layer net, 50 images, 20 epochs -> 100 %
    s = course.weight_scale_sweep()           # final train accuracy vs weight scale, 3 / 5 layers
    u = course.compare_update_rules()         # SGD, momentum, RMSProp, Adam
    b = course.batchnorm_curves(); w = course.batchnorm_weight_sweep(); z = course.batch_size_effect()
    d = course.dropout_comparison()           # keep 1.0 vs 0.25 on 500 images
    c = course.overfit_convnet(); f = course.train_convnet()   # three-layer convnet
    course.figures.plot_update_rules(u)       # a matplotlib Figure with the setup in its title

Data: :func:`cifar10_for_course` (seeded subsets, pixels 0..255 minus the mean image, as
the course). ``budget_kwargs(name, 'ci')`` gives the small settings CI and the notebooks
use when CNNLAB_NOTEBOOK_BUDGET=ci.
"""
from . import figures
from .batchnorm import batch_size_effect, batchnorm_curves
from .batchnorm import weight_scale_sweep as batchnorm_weight_sweep
from .common import (
           QUICK,
           UPDATE_RULES,
           budget_kwargs,
           make_optimizer,
           notebook_budget,
           setup_text,
)
from .convnet import overfit_convnet, train_convnet
from .data import cifar10_for_course, load_cifar10_subset
from .dropout import dropout_comparison, generalization_gap
from .overfit import overfit_small, weight_scale_sweep
from .solver import accuracy, train
from .update_rules import LEARNING_RATES, compare_update_rules

__all__ = [
           "LEARNING_RATES",
           "QUICK",
           "UPDATE_RULES",
           "accuracy",
           "batch_size_effect",
           "batchnorm_curves",
           "batchnorm_weight_sweep",
           "budget_kwargs",
           "cifar10_for_course",
           "compare_update_rules",
           "dropout_comparison",
           "figures",
           "generalization_gap",
           "load_cifar10_subset",
           "make_optimizer",
           "notebook_budget",
           "overfit_convnet",
           "overfit_small",
           "setup_text",
           "train",
           "train_convnet",
           "weight_scale_sweep",
]
