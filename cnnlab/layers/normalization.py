"""Batch normalization, 1-D or spatial by the input's rank, cs231n's conventions.

    train: x_hat = (x - mu_B) / sqrt(var_B + eps),  out = gamma * x_hat + beta
           running = momentum * running + (1 - momentum) * batch statistic (biased var_B)
    test:  x_hat = (x - running_mean) / sqrt(running_var + eps)

Samples (D,) normalize per feature over the batch; samples (C, *S) per channel over the
batch and the spatial axes. Parameters 'gamma' (ones), 'beta' (zeros); state
'running_mean' (zeros), 'running_var' (ones), all of shape (D,) or (C,).
"""

from __future__ import annotations

import numpy as np

from .. import functional as F
from . import _checks
from .base import Layer
from .serialization import register


@register
class BatchNorm(Layer):
    """Batch normalization; ``momentum`` weighs the OLD running value (cs231n: 0.9)."""

    shape_check = "channels"
    #: None, or a function summing a 1-D array over processes (sync batch norm; set by
    #: cnnlab.distributed during fit(..., distributed=True, sync_batchnorm=True))
    reducer = None

    def __init__(self, momentum=0.9, eps=1e-5, name=None):
        super().__init__(name)
        self.momentum = _checks.real("BatchNorm", momentum, "momentum", low=0.0, high=1.0)
        self.eps = _checks.real("BatchNorm", eps, "eps", low=0.0, low_open=True)

    def _build(self, input_shape, rng, dtype):
        c = input_shape[0]
        self.params["gamma"] = np.ones(c, dtype=dtype)
        self.params["beta"] = np.zeros(c, dtype=dtype)
        self.state["running_mean"] = np.zeros(c, dtype=dtype)
        self.state["running_var"] = np.ones(c, dtype=dtype)

    def _forward(self, x, training, keep):
        if training and x.size == 0:
            # batch statistics of no numbers are 0/0: they would put NaN into the
            # running mean and variance for good
            raise ValueError(
                f"{self._label()}: cannot normalize an empty batch in training "
                f"mode (x has shape {x.shape}): its mean and variance are "
                f"undefined and would turn the running statistics into NaN"
            )
        bn_param = {
            "mode": "train" if training else "test",
            "momentum": self.momentum,
            "eps": self.eps,
            "running_mean": self.state["running_mean"],
            "running_var": self.state["running_var"],
        }
        if training and self.reducer is not None:
            bn_param["reduce"] = self.reducer
        fwd = F.batchnorm_forward if x.ndim == 2 else F.spatial_batchnorm_forward
        out, cache = fwd(x, self.params["gamma"], self.params["beta"], bn_param)
        if not keep:
            return out, None
        return out, (("train", cache) if training else ("test", x))

    def _backward(self, dout, cache):
        mode, c = cache
        if mode == "train":
            bwd = F.batchnorm_backward_alt if dout.ndim == 2 else F.spatial_batchnorm_backward
            dx, dgamma, dbeta = bwd(dout, c)
        else:
            # test mode is an affine map: out = gamma * (x - rm) * inv + beta
            x = c
            shape = (1, -1) + (1,) * (x.ndim - 2)
            axes = (0,) + tuple(range(2, x.ndim))
            inv = (1.0 / np.sqrt(self.state["running_var"] + self.eps)).reshape(shape)
            xhat = (x - self.state["running_mean"].reshape(shape)) * inv
            dx = dout * (self.params["gamma"].reshape(shape) * inv)
            dgamma = (dout * xhat).sum(axis=axes)
            dbeta = dout.sum(axis=axes)
        self._set_grad("gamma", dgamma)
        self._set_grad("beta", dbeta)
        return dx.astype(self.dtype, copy=False)

    def flops(self, input_shape):
        """About 4 per element (subtract, scale, multiply, add)."""
        return 4 * int(np.prod(input_shape))

    def get_config(self):
        return {"name": self.name, "momentum": self.momentum, "eps": self.eps}
