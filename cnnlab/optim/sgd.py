"""Stochastic gradient descent, optionally with (Nesterov) momentum and L2 weight decay."""
from __future__ import annotations

import numpy as np

from ..checks import real_in
from .base import Optimizer


class SGD(Optimizer):
    """SGD with PyTorch's update rule (``torch.optim.SGD``, dampening 0)::

        g = grad + weight_decay * p
        buf = momentum * buf + g                   (buf starts at 0, so buf_1 = g)
        p -= lr * (g + momentum * buf)  if nesterov else  lr * buf

    cs231n writes momentum as ``v = mu * v - lr * dx; x += v``, i.e. ``v = -lr * buf``:
    identical for a constant learning rate; when the learning rate changes, PyTorch's form
    applies the new rate to the whole buffer at once. cs231n's Nesterov
    (``x += -mu * v_prev + (1 + mu) * v``) likewise equals ``nesterov=True`` here.
    With ``momentum=0`` this is plain SGD, ``p -= lr * g``, and keeps no state.
    """

    def __init__(self, lr=1e-2, momentum=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(lr)
        self.momentum = real_in(momentum, "momentum", 0.0, 1.0, high_open=False)
        self.nesterov = bool(nesterov)
        self.weight_decay = real_in(weight_decay, "weight_decay", 0.0)
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0, got momentum=0")
        self._slots = ("momentum_buffer",) if self.momentum else ()

    def get_config(self):
        return {"lr": self._lr_config(), "momentum": self.momentum, "nesterov": self.nesterov,
                "weight_decay": self.weight_decay}

    def _update(self, p, g, slots, t):
        if self.weight_decay:
            g = g + self.weight_decay * p
        if self.momentum:
            buf = slots["momentum_buffer"]
            np.multiply(buf, self.momentum, out=buf)
            buf += g
            g = g + self.momentum * buf if self.nesterov else buf
        p -= self.lr * g
