"""cs231n assignment 2's fully connected nets (``TwoLayerNet`` and ``FullyConnectedNet``),
built from the library's layers::

    two_layer_net:        affine - relu - affine                         (softmax in the loss)
    fully_connected_net:  {affine - [batch norm] - relu - [dropout]} x (L - 1) - affine

Weights start as Normal(0, weight_scale), biases at 0, batch norm's gamma at 1 and beta
at 0 (the course's initialization). ``reg`` is stored as ``model.reg``: ``fit`` and
:func:`loss` add 0.5 * reg * sum(W ** 2) over the weight matrices only (see
:mod:`cnnlab.training.regularization`). Inputs of any shape are flattened by the first
affine layer, as in the course (``input_dim=3*32*32`` takes (N, 3, 32, 32) images when
given as ``input_dim=(3, 32, 32)``, or (N, 3072) rows when given as 3072).

    net = fully_connected_net([100, 100], input_dim=(3, 32, 32), num_classes=10,
                              normalization='batchnorm', dropout_keep=0.5, reg=1e-3, seed=0)
    loss_value, grads = loss(net, x, y)      # cs231n's model.loss(X, y)
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import checks
from .. import functional as F
from ..layers import BatchNorm, Dense, Dropout, ReLU
from ..training.regularization import add_l2_penalty, check_reg
from ._build import check_int, check_shape, finish

__all__ = ["fully_connected_net", "loss", "two_layer_net"]


def _input_shape(who, input_dim, input_shape):
    """``input_dim`` (an int D or a per-sample shape) and the zoo's ``input_shape`` alias
    -> the per-sample shape the model is built for."""
    if input_shape is not None:
        shape = _as_shape(who, input_shape)
        if input_dim is not None and int(np.prod(_as_shape(who, input_dim))) != int(np.prod(shape)):
            raise ValueError(f"{who}: input_dim {input_dim!r} and input_shape {input_shape!r} "
                             f"disagree on the number of input features")
        return shape
    return _as_shape(who, input_dim)


def _as_shape(who, input_dim):
    if isinstance(input_dim, numbers.Integral) and not isinstance(input_dim, bool):
        return (check_int(who, input_dim, "input_dim"),)
    try:
        shape = tuple(input_dim)
    except TypeError:
        raise TypeError(f"{who}: input_dim must be an int (features per sample) or a shape "
                        f"tuple such as (3, 32, 32), got {input_dim!r}") from None
    if not shape:
        raise ValueError(f"{who}: input_dim must not be an empty shape")
    return check_shape(who, shape, rank=len(shape))


def _weight_scale(who, weight_scale):
    with checks.owned_by(who):
        return checks.real_in(weight_scale, "weight_scale (the std of the initial weights)",
                              0.0, low_open=True)


def _finish(layers, shape, seed, who, build, dtype, reg):
    model = finish(layers, shape, seed, who, build, dtype=np.dtype(dtype).type)
    model.reg = reg
    return model


def two_layer_net(input_dim=3 * 32 * 32, hidden_dim=100, num_classes=10, weight_scale=1e-3,
                  reg=0.0, seed=None, build=True, input_shape=None, dtype=np.float32):
    """cs231n's TwoLayerNet: affine(D, H) - relu - affine(H, C).

    Args:
        input_dim: D, an int, or a per-sample shape such as (3, 32, 32) (flattened).
        hidden_dim: H; num_classes: C.
        weight_scale: std of the normal initial weights.
        reg: L2 strength on the two weight matrices (``model.reg``).
        seed, build, dtype: as every zoo function; ``input_shape`` is an alias of
        ``input_dim`` for the zoo registry.

    Returns a ``cnnlab.Sequential`` with D*H + H + H*C + C parameters
    (3072-100-10: 308,310).

    Departures from the paper (cs231n assignment 2's ``TwoLayerNet``), layer by layer:

    - affine layers: cnnlab ``Dense`` layers (the same math), their weights drawn by the
      layer initializer with std ``weight_scale`` because every zoo net is built from
      layers; the course draws them with ``np.random`` directly, so a seed gives other
      numbers than the notebook's.
    - softmax: in ``fit``'s loss, not in the model, so that the model returns class scores
      as every zoo net does; ``reg`` is applied by ``fit`` (``model.reg``) for the same
      reason.
    """
    who = "two_layer_net"
    shape = _input_shape(who, input_dim, input_shape)
    hidden_dim = check_int(who, hidden_dim, "hidden_dim")
    num_classes = check_int(who, num_classes, "num_classes", 2)
    ws = _weight_scale(who, weight_scale)
    layers = [Dense(hidden_dim, kernel_initializer=ws), ReLU(),
              Dense(num_classes, kernel_initializer=ws)]
    return _finish(layers, shape, seed, who, build, dtype, check_reg(who, reg))


def fully_connected_net(hidden_dims=(100, 100), input_dim=3 * 32 * 32, num_classes=10,
                        dropout_keep=1.0, normalization=None, weight_scale=1e-2, reg=0.0,
                        seed=None, build=True, input_shape=None, dtype=np.float32):
    """cs231n's FullyConnectedNet of L = len(hidden_dims) + 1 affine layers::

        {affine - [batch norm] - relu - [dropout]} x (L - 1) - affine - (softmax in the loss)

    Args:
        hidden_dims: widths of the hidden layers, e.g. [100, 100] (a 3-layer net).
        input_dim: D, an int, or a per-sample shape such as (3, 32, 32) (flattened).
        num_classes: C.
        dropout_keep: keep probability of the dropout after each hidden relu; 1.0 (the
            default): no dropout layers.
        normalization: None or 'batchnorm' (before each hidden relu; momentum 0.9,
            eps 1e-5, as the course).
        weight_scale: std of the normal initial weights.
        reg: L2 strength on the weight matrices only (``model.reg``).
        seed: initial weights and dropout masks (``fit(seed=...)`` reseeds the masks per
            epoch); build, dtype: as every zoo function; ``input_shape``: alias of
            ``input_dim`` for the zoo registry.

    Departures from the paper (cs231n assignment 2's ``FullyConnectedNet``), layer by layer:

    - affine layers: cnnlab ``Dense`` layers, weights drawn by the layer initializer with
      std ``weight_scale`` because every zoo net is built from layers (a seed gives other
      numbers than the notebook's ``np.random``).
    - dropout: ``Dropout(rate=1 - dropout_keep)``, inverted dropout as the course's, its
      masks from the model's seed so that runs repeat.
    - batch norm: ``BatchNorm`` with the course's momentum 0.9 and eps 1e-5; gamma and
      beta are not decayed by ``reg``, as in the course.
    - softmax and ``reg``: in ``fit`` (loss and ``model.reg``) so that the model returns
      class scores as every zoo net does.
    """
    who = "fully_connected_net"
    shape = _input_shape(who, input_dim, input_shape)
    if isinstance(hidden_dims, (str, bytes)) or not hasattr(hidden_dims, "__iter__"):
        raise TypeError(f"{who}: hidden_dims must be a list of ints (hidden layer widths), "
                        f"got {hidden_dims!r}")
    hidden_dims = [check_int(who, h, "each of hidden_dims") for h in hidden_dims]
    num_classes = check_int(who, num_classes, "num_classes", 2)
    with checks.owned_by(who):
        checks.real_in(dropout_keep, "dropout_keep (the keep probability)", 0, 1, low_open=True)
    if normalization not in (None, "batchnorm"):
        raise ValueError(f"{who}: normalization must be None or 'batchnorm', got {normalization!r}")
    ws = _weight_scale(who, weight_scale)
    layers = []
    for h in hidden_dims:
        layers.append(Dense(h, kernel_initializer=ws))
        if normalization == "batchnorm":
            layers.append(BatchNorm(momentum=0.9, eps=1e-5))
        layers.append(ReLU())
        if dropout_keep < 1:
            layers.append(Dropout(1.0 - float(dropout_keep)))
    layers.append(Dense(num_classes, kernel_initializer=ws))
    return _finish(layers, shape, seed, who, build, dtype, check_reg(who, reg))


def loss(model, x, y=None):
    """cs231n's ``model.loss(X, y)``: with ``y=None`` the class scores (N, C) in test
    mode; else one training-mode forward and backward pass ->
    ``(loss, grads)``, loss = softmax cross-entropy + 0.5 * model.reg * sum(W ** 2)
    and grads a dict {qualified parameter name: gradient array (a copy)}."""
    if y is None:
        return model.forward(x, training=False)
    scores = model.forward(x, training=True)
    value, dscores = F.softmax_loss(scores, y)
    model.backward(dscores, need_dx=False)
    value = float(value) + add_l2_penalty(model)
    grads = {name: layer.grads[key].copy() for name, layer, key in model.named_parameters()}
    return value, grads
