"""Layers with parameters and state, Keras ergonomics, built on :mod:`cnnlab.functional`.

    import cnnlab.layers as L
    model = L.Sequential([L.Conv2D(8, 5, activation='relu'), L.MaxPool2D(2),
                          L.Conv2D(16, 5, activation='relu'), L.MaxPool2D(2),
                          L.Dense(120, activation='relu'), L.Dense(84, activation='relu'),
                          L.Dense(10, activation='softmax')], input_shape=(3, 32, 32), seed=0)
    model.summary()
    out = model.forward(x, training=True); dx = model.backward(dout)

The contract (forward/backward/params/grads/state, naming, shape inference) is in
docs/ARCHITECTURE.md and :mod:`cnnlab.layers.base`.
"""

from .activations import Activation, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .base import Layer
from .containers import Concat, Container, Residual, Sequential, chain
from .conv import Conv1D, Conv2D, Conv3D, ConvND
from .core import Dense, Dropout, Flatten
from .normalization import BatchNorm
from .pooling import (
    AvgPool1D,
    AvgPool2D,
    AvgPool3D,
    GlobalAvgPool1D,
    GlobalAvgPool2D,
    GlobalAvgPool3D,
    MaxPool1D,
    MaxPool2D,
    MaxPool3D,
    PoolND,
)
from .preprocessing import PatchWhitening, Rescaling
from .serialization import deserialize, get_registered, register, registered, serialize
from .roundtrip import check_serializable
from .serialization import custom_object_scope
from .summary import Summary, summarize

__all__ = [
    "chain",
    "Layer",
    "Container",
    "Sequential",
    "Concat",
    "Residual",
    "Conv1D",
    "Conv2D",
    "Conv3D",
    "MaxPool1D",
    "MaxPool2D",
    "MaxPool3D",
    "AvgPool1D",
    "AvgPool2D",
    "AvgPool3D",
    "GlobalAvgPool1D",
    "GlobalAvgPool2D",
    "GlobalAvgPool3D",
    "ReLU",
    "LeakyReLU",
    "Sigmoid",
    "Tanh",
    "Softmax",
    "Flatten",
    "Dense",
    "BatchNorm",
    "Dropout",
    "PatchWhitening",
    "Rescaling",
    "serialize",
    "deserialize",
    "register",
    "registered",
    "Summary",
    "summarize",
    "custom_object_scope",
    "check_serializable",
    "get_registered",
    "Activation",
    "ConvND",
    "PoolND",  # base classes, for isinstance tests and subclassing
]
