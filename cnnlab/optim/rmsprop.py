"""RMSProp: divide the gradient by a running root-mean-square of its recent magnitudes."""
from __future__ import annotations

import numpy as np

from ..checks import real_in
from .base import Optimizer


class RMSProp(Optimizer):
    """RMSProp with PyTorch's update rule (``torch.optim.RMSprop``)::

        g = grad + weight_decay * p
        sq = alpha * sq + (1 - alpha) * g**2
        avg = sqrt(sq - ga**2) + eps  if centered (ga = running mean of g) else sqrt(sq) + eps
        momentum > 0:  buf = momentum * buf + g / avg;  p -= lr * buf
        otherwise:     p -= lr * g / avg

    cs231n's form (``cache = decay_rate * cache + (1 - decay_rate) * dx**2;
    x -= lr * dx / (sqrt(cache) + eps)``) is the same with ``alpha = decay_rate``.
    """

    def __init__(self, lr=1e-2, alpha=0.99, eps=1e-8, momentum=0.0, weight_decay=0.0,
                 centered=False):
        super().__init__(lr)
        self.alpha = real_in(alpha, "alpha", 0.0, 1.0)
        self.eps = real_in(eps, "eps", 0.0)
        self.momentum = real_in(momentum, "momentum", 0.0, 1.0)
        self.weight_decay = real_in(weight_decay, "weight_decay", 0.0)
        self.centered = bool(centered)
        self._slots = (("square_avg",) + (("grad_avg",) if self.centered else ())
                       + (("momentum_buffer",) if self.momentum else ()))

    def get_config(self):
        return {"lr": self._lr_config(), "alpha": self.alpha, "eps": self.eps, "momentum": self.momentum,
                "weight_decay": self.weight_decay, "centered": self.centered}

    def _update(self, p, g, slots, t):
        if self.weight_decay:
            g = g + self.weight_decay * p
        sq = slots["square_avg"]
        np.multiply(sq, self.alpha, out=sq)
        sq += (1.0 - self.alpha) * (g * g)
        if self.centered:
            ga = slots["grad_avg"]
            ga += (1.0 - self.alpha) * (g - ga)
            avg = np.sqrt(sq - ga * ga)
        else:
            avg = np.sqrt(sq)
        avg += self.eps
        if self.momentum:
            buf = slots["momentum_buffer"]
            np.multiply(buf, self.momentum, out=buf)
            buf += g / avg
            p -= self.lr * buf
        else:
            p -= self.lr * (g / avg)
