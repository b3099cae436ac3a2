"""Adam and AdamW: momentum plus RMSProp scaling, with bias correction."""
from __future__ import annotations

import math

import numpy as np

from ..checks import real_in
from .base import Optimizer


def _betas(betas):
    try:
        b1, b2 = betas
    except (TypeError, ValueError):
        raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}") from None
    return (real_in(b1, "betas[0]", 0.0, 1.0, high_open=True),
            real_in(b2, "betas[1]", 0.0, 1.0, high_open=True))


class Adam(Optimizer):
    """Adam with PyTorch's update rule (``torch.optim.Adam``, amsgrad off)::

        g = grad + weight_decay * p                  (L2 penalty folded into the gradient)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        p -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    cs231n's form (``mt = m / (1 - beta1**t); vt = v / (1 - beta2**t);
    x -= lr * mt / (sqrt(vt) + eps)``) is the same update, step count t starting at 1.
    """

    _decoupled = False

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(lr)
        self.betas = _betas(betas)
        self.eps = real_in(eps, "eps", 0.0)
        self.weight_decay = real_in(weight_decay, "weight_decay", 0.0)
        self._slots = ("exp_avg", "exp_avg_sq")

    def get_config(self):
        return {"lr": self._lr_config(), "betas": list(self.betas), "eps": self.eps,
                "weight_decay": self.weight_decay}

    def _update(self, p, g, slots, t):
        b1, b2 = self.betas
        if self.weight_decay:
            if self._decoupled:
                p *= 1.0 - self.lr * self.weight_decay
            else:
                g = g + self.weight_decay * p
        m, v = slots["exp_avg"], slots["exp_avg_sq"]
        m += (1.0 - b1) * (g - m)
        np.multiply(v, b2, out=v)
        v += (1.0 - b2) * (g * g)
        step_size = self.lr / (1.0 - b1 ** t)
        denom = np.sqrt(v)
        denom /= math.sqrt(1.0 - b2 ** t)
        denom += self.eps
        p -= step_size * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter; ``torch.optim.AdamW``)::

        p *= 1 - lr * weight_decay      (before the Adam step, which sees the raw gradient)

    Unlike ``Adam(weight_decay=...)``, the decay is not rescaled by the adaptive
    denominator, so every weight shrinks at the same rate.
    """

    _decoupled = True

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(lr, betas, eps, weight_decay)
