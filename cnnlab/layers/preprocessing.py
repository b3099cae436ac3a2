"""Input preprocessing inside the net, so that a shipped model takes plain images.

    Rescaling(scale=1.0, offset=-0.5)     # pixels in [0, 1] -> [-0.5, 0.5]
    PatchWhitening(kernel_size=2)         # then .adapt(training_images)

Keras's ``Rescaling`` (same arguments, same formula ``x * scale + offset``). It has no
parameters; its backward is ``dout * scale``. The arithmetic is one elementwise line, so
it lives here rather than as a ``functional`` op.

``PatchWhitening`` is PCA whitening (cs231n's data preprocessing notes) applied to every
k x k patch instead of to whole images: a convolution whose filters, fitted to the data by
``adapt`` as Keras's ``Normalization.adapt`` is, map each patch to decorrelated
unit-variance coordinates. Its filters are state (fitted, not trained); its bias trains.
Keller Jordan's airbench CIFAR-10 speed runs start with this layer.
"""

from __future__ import annotations

import numpy as np

from .. import functional as F
from . import _checks
from .base import Layer
from .serialization import register


@register
class Rescaling(Layer):
    """out = x * scale + offset (elementwise; any input shape)."""

    shape_check = "rank"

    def __init__(self, scale=1.0, offset=0.0, name=None):
        super().__init__(name)
        self.scale = _checks.real("Rescaling", scale, "scale")
        self.offset = _checks.real("Rescaling", offset, "offset")

    def _forward(self, x, training, keep):
        t = x.dtype.type  # the constants in x's dtype: float32 stays float32
        out = x * t(self.scale) if self.scale != 1.0 else x
        out = out + t(self.offset) if self.offset != 0.0 else out.copy()
        return out, None

    def _backward(self, dout, cache):
        return dout * dout.dtype.type(self.scale)

    def flops(self, input_shape):
        return 2 * int(np.prod(input_shape))

    def get_config(self):
        return {"name": self.name, "scale": self.scale, "offset": self.offset}


@register
class PatchWhitening(Layer):
    """A fixed k x k convolution (no padding, stride 1) that whitens image patches, plus a
    trainable bias::

        patches p (D = C*k*k numbers each), covariance  S = V diag(lam) V^T
        filters W = [V^T / sqrt(lam + eps);  -V^T / sqrt(lam + eps)]      (2D filters)
        out = W p + b

    Each patch's D principal coordinates, scaled to unit variance, come out twice, with
    both signs, so that a ReLU after the layer loses nothing. Before :meth:`adapt` the
    filters are the same construction with V = I and lam = 1: plus and minus the raw
    patch values. Input (N, C, H, W) -> (N, 2*C*k*k, H-k+1, W-k+1).

    ``eps`` keeps the directions of tiny variance (flat patches) from being amplified
    into noise. The filters are ``state`` (saved, never updated by an optimizer); the
    bias ``b`` is the layer's only parameter.
    """

    shape_check = "channels"

    def __init__(self, kernel_size=2, eps=5e-4, name=None):
        super().__init__(name)
        self.kernel_size = _checks.int_tuple("PatchWhitening", kernel_size, 2, "kernel_size")
        self.eps = _checks.real("PatchWhitening", eps, "eps", low=0.0, low_open=True)

    def _dims(self, input_shape):
        return input_shape[0] * self.kernel_size[0] * self.kernel_size[1]

    def _output_shape(self, input_shape):
        kh, kw = self.kernel_size
        if len(input_shape) != 3 or input_shape[1] < kh or input_shape[2] < kw:
            raise ValueError(
                f"{self._label()} expects samples (C, H, W) with H >= {kh} and "
                f"W >= {kw}, got {input_shape}"
            )
        return (2 * self._dims(input_shape), input_shape[1] - kh + 1, input_shape[2] - kw + 1)

    def _build(self, input_shape, rng, dtype):
        d = self._dims(input_shape)
        self.state["w"] = self._filters(np.eye(d), np.ones(d), input_shape[0], dtype)
        self.params["b"] = np.zeros(2 * d, dtype=dtype)

    def _filters(self, vecs, lam, c, dtype):
        """The 2D filters from eigenvectors ``vecs`` (columns) and eigenvalues ``lam``."""
        half = (vecs / np.sqrt(lam + self.eps)).T  # (D, D): row j = v_j / sqrt(lam_j + eps)
        w = np.concatenate([half, -half]).reshape((2 * len(lam), c) + self.kernel_size)
        return w.astype(dtype)

    def adapt(self, x, chunk=256):
        """Fit the filters to images ``x`` (N, C, H, W): the eigenvectors of the covariance
        of all their k x k patches. Builds the layer for x's sample shape if needed. The
        covariance is accumulated in float64 over ``chunk`` images at a time, so memory
        stays bounded however many images are given. Returns self."""
        x = np.asarray(x)
        if x.ndim != 4 or x.dtype.kind != "f" or len(x) == 0:
            raise ValueError(
                f"{self._label()}.adapt: x must be a non-empty float array (N, C, H, W), "
                f"got shape {x.shape} and dtype {x.dtype}"
            )
        chunk = _checks.positive_int(f"{self._label()}.adapt", chunk, "chunk")
        if not self.built:
            self.build(x.shape[1:], dtype=x.dtype)
        self.check_input_shape(x.shape[1:])
        kh, kw = self.kernel_size
        d = self._dims(x.shape[1:])
        total, outer, count = np.zeros(d), np.zeros((d, d)), 0
        for lo in range(0, len(x), chunk):
            part = x[lo : lo + chunk].astype(np.float64)
            windows = np.lib.stride_tricks.sliding_window_view(part, (kh, kw), axis=(2, 3))
            # (n, C, H', W', kh, kw) -> rows of (c, i, j) patch values, the filters' own order
            p = windows.transpose(0, 2, 3, 1, 4, 5).reshape(-1, d)
            total += p.sum(axis=0)
            outer += p.T @ p
            count += len(p)
        mean = total / count
        cov = outer / count - np.outer(mean, mean)
        if not np.all(np.isfinite(cov)):
            raise ValueError(f"{self._label()}.adapt: x holds NaN or inf values")
        lam, vecs = np.linalg.eigh(cov)
        lam, vecs = lam[::-1], vecs[:, ::-1]  # largest variance first
        self.state["w"] = self._filters(vecs, np.maximum(lam, 0.0), x.shape[1], self.dtype)
        return self

    def _forward(self, x, training, keep):
        out, cache = F.convnd_forward(x, self.state["w"], self.params["b"], 1, 0, 1, nsp=2)
        return out, (cache if keep else None)

    def _backward(self, dout, cache):
        dx, _, db = F.convnd_backward(dout, cache, need_dx=self._need_dx)
        self._set_grad("b", db)
        return dx

    def flops(self, input_shape):
        out = self.compute_output_shape(input_shape)
        return 2 * int(np.prod(out)) * self._dims(input_shape)

    def get_config(self):
        return {"name": self.name, "kernel_size": list(self.kernel_size), "eps": self.eps}
