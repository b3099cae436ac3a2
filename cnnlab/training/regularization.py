"""L2 weight decay on the weights only, as cs231n's ``reg``.

A model with a float attribute ``reg`` > 0 (the cs231n nets in :mod:`cnnlab.models`
set it) is trained on

    loss = data loss + 0.5 * reg * sum over weight arrays W of sum(W ** 2)

where the weight arrays are the parameters named 'w' (Dense and Conv kernels); biases
and batch-norm gamma/beta are not decayed. ``fit`` calls :func:`add_l2_penalty` after
each backward pass. (An optimizer's ``weight_decay`` instead decays every array.)
"""
from __future__ import annotations

import numpy as np

from .. import checks


def check_reg(who, reg):
    """``reg`` must be a finite real >= 0; -> float."""
    with checks.owned_by(who):
        return checks.real_in(reg, "reg (the L2 strength)", 0.0)


def weight_arrays(model):
    """[(qualified_name, layer)] of the decayed parameters (key 'w')."""
    return [(name, layer) for name, layer, key in model.named_parameters() if key == "w"]


def l2_penalty(model):
    """0.5 * model.reg * sum(w ** 2) over the weights (0.0 when the model has no reg)."""
    reg = float(getattr(model, "reg", 0.0) or 0.0)
    if not reg:
        return 0.0
    return 0.5 * reg * sum(float(np.vdot(layer.params["w"], layer.params["w"]))
                           for _, layer in weight_arrays(model))


def add_l2_penalty(model):
    """Add reg * w to the weight gradient of every trainable layer (after
    ``model.backward``) and return the penalty 0.5 * reg * sum(w ** 2) to add to the loss
    (a frozen layer's weights included: a constant)."""
    reg = float(getattr(model, "reg", 0.0) or 0.0)
    if not reg:
        return 0.0
    for _, layer in weight_arrays(model):
        if not layer.trainable:  # no gradient for a frozen layer (its backward may not run)
            continue
        w = layer.params["w"]
        layer.grads["w"] += w.dtype.type(reg) * w
    return l2_penalty(model)
