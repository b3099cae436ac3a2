"""cnnlab model -> ONNX file (``to_onnx``), one ONNX node (or a few) per layer.

    to_onnx(model, 'net.onnx')          # input 'input' (N, C, H, W), output 'output'

The batch axis is dynamic ('N'); the per-sample shape is the one the model was built
for. Weights are written as float32 (ONNX runtimes compute convolutions in float32).
Layer -> nodes:

    Conv1D/2D/3D   Conv (strides, pads lo..hi, dilations) [+ fused activation]
    MaxPool*D      MaxPool (pads; padding never wins, as in cnnlab)
    AvgPool*D      AveragePool count_include_pad=1 (cnnlab counts the zero padding)
    GlobalAvgPool  GlobalAveragePool + Flatten (cnnlab outputs (N, C))
    BatchNorm      BatchNormalization (inference form: running statistics)
    Dense          [Flatten] + Gemm (w is (D_in, D_out): transB=0) [+ fused activation]
    ReLU, LeakyReLU, Sigmoid, Tanh, Softmax(axis=1), Flatten(axis=1)
    Dropout        Dropout (an identity at inference; its ratio kept for the round trip)
    Rescaling      [Mul scale] + Add offset
    PatchWhitening Conv (its fitted filters, its bias; no padding)
    Sequential     its children in order       Concat  branches + Concat(axis)
    Residual       body, shortcut (or the input) + Add
"""
from __future__ import annotations

import os

import numpy as np

from ..layers import (BatchNorm, Concat, Dense, Dropout, Flatten, LeakyReLU, Layer,
                      PatchWhitening, ReLU, Rescaling, Residual, Sequential, Sigmoid, Softmax, Tanh)
from ..layers.conv import Conv1D, Conv2D, Conv3D
from ..layers.pooling import (AvgPool1D, AvgPool2D, AvgPool3D, GlobalAvgPool1D,
                              GlobalAvgPool2D, GlobalAvgPool3D, MaxPool1D, MaxPool2D, MaxPool3D)
from ..data import atomic_open
from ._onnx import require_onnx
from .errors import OnnxExportError

_ACT_OPS = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softmax": "Softmax",
            "leaky_relu": "LeakyRelu"}
_CONVS = (Conv1D, Conv2D, Conv3D)
_MAXPOOLS = (MaxPool1D, MaxPool2D, MaxPool3D)
_AVGPOOLS = (AvgPool1D, AvgPool2D, AvgPool3D)
_GLOBALS = (GlobalAvgPool1D, GlobalAvgPool2D, GlobalAvgPool3D)


class _Graph:
    """Nodes and initializers being collected, with unique tensor names."""

    def __init__(self, onnx):
        self.onnx = onnx
        self.nodes, self.inits, self.used = [], [], set()

    def unique(self, base):
        base = base.replace("/", ".")
        name, i = base, 0
        while name in self.used:
            i += 1
            name = f"{base}_{i}"
        self.used.add(name)
        return name

    def init(self, name, array, dtype=np.float32):
        name = self.unique(name)
        self.inits.append(self.onnx.numpy_helper.from_array(np.array(array, dtype=dtype, order="C"), name))
        return name

    def node(self, op, inputs, name, **attrs):
        out = self.unique(name)
        self.nodes.append(self.onnx.helper.make_node(op, list(inputs), [out], name=out, **attrs))
        return out


def _pads_attr(pads):
    """cnnlab (lo, hi) per axis -> ONNX [lo_1, ..., lo_n, hi_1, ..., hi_n]."""
    return [int(lo) for lo, _ in pads] + [int(hi) for _, hi in pads]


def _activation(g, name, x, prefix):
    if name is None:
        return x
    attrs = {"axis": 1} if name == "softmax" else {}
    return g.node(_ACT_OPS[name], [x], f"{prefix}.{name}", **attrs)


def _emit(g, layer, x, shape, prefix):
    """Add the nodes of ``layer`` reading tensor ``x`` (per-sample ``shape``); -> the
    output tensor's name."""
    p = f"{prefix}{layer.name}"
    if isinstance(layer, Sequential):
        for child in layer.layers:
            x = _emit(g, child, x, shape, f"{p}/")
            shape = child.output_shape
        return x
    if isinstance(layer, Concat):
        outs = []
        for b in layer.layers:
            outs.append(_emit(g, b, x, shape, f"{p}/"))
        return g.node("Concat", outs, p, axis=int(layer.axis))
    if isinstance(layer, Residual):
        y = _emit(g, layer.body, x, shape, f"{p}/")
        s = x if layer.shortcut is None else _emit(g, layer.shortcut, x, shape, f"{p}/")
        return g.node("Add", [y, s], p)
    if isinstance(layer, _CONVS):
        ins = [x, g.init(f"{p}.w", layer.params["w"])]
        if layer.use_bias:
            ins.append(g.init(f"{p}.b", layer.params["b"]))
        # layer._pads: the (lo, hi) pairs the layer resolved from its padding spec
        y = g.node("Conv", ins, p, kernel_shape=list(layer.kernel_size),
                   strides=list(layer.stride), dilations=list(layer.dilation),
                   pads=_pads_attr(layer._pads))
        return _activation(g, layer.activation, y, p)
    if isinstance(layer, PatchWhitening):
        ins = [x, g.init(f"{p}.w", layer.state["w"]), g.init(f"{p}.b", layer.params["b"])]
        return g.node("Conv", ins, p, kernel_shape=list(layer.kernel_size))
    if isinstance(layer, _MAXPOOLS + _AVGPOOLS):
        attrs = {"kernel_shape": list(layer.pool_size), "strides": list(layer._stride),
                 "pads": _pads_attr(layer._pads)}
        if isinstance(layer, _AVGPOOLS):
            return g.node("AveragePool", [x], p, count_include_pad=1, **attrs)
        return g.node("MaxPool", [x], p, **attrs)
    if isinstance(layer, _GLOBALS):
        y = g.node("GlobalAveragePool", [x], p)
        return g.node("Flatten", [y], f"{p}.flatten", axis=1)
    if isinstance(layer, BatchNorm):
        ins = [x] + [g.init(f"{p}.{k}", arr) for k, arr in
                     (("gamma", layer.params["gamma"]), ("beta", layer.params["beta"]),
                      ("running_mean", layer.state["running_mean"]),
                      ("running_var", layer.state["running_var"]))]
        return g.node("BatchNormalization", ins, p, epsilon=float(layer.eps),
                      momentum=float(layer.momentum))
    if isinstance(layer, Dense):
        if len(shape) != 1:
            x = g.node("Flatten", [x], f"{p}.flatten", axis=1)
        ins = [x, g.init(f"{p}.w", layer.params["w"])]
        if layer.use_bias:
            ins.append(g.init(f"{p}.b", layer.params["b"]))
        y = g.node("Gemm", ins, p)
        return _activation(g, layer.activation, y, p)
    if isinstance(layer, Flatten):
        return g.node("Flatten", [x], p, axis=1)
    if isinstance(layer, Rescaling):
        if layer.scale != 1.0:
            x = g.node("Mul", [x, g.init(f"{p}.scale", np.array(layer.scale))], f"{p}.mul")
        return g.node("Add", [x, g.init(f"{p}.offset", np.array(layer.offset))], p)
    if isinstance(layer, Dropout):
        ratio = g.init(f"{p}.ratio", np.array(layer.rate, dtype=np.float32))
        return g.node("Dropout", [x, ratio], p)
    if isinstance(layer, LeakyReLU):
        return g.node("LeakyRelu", [x], p, alpha=float(layer.alpha))
    if isinstance(layer, Softmax):
        return g.node("Softmax", [x], p, axis=1)
    for cls, op in ((ReLU, "Relu"), (Sigmoid, "Sigmoid"), (Tanh, "Tanh")):
        if isinstance(layer, cls):
            return g.node(op, [x], p)
    raise OnnxExportError(f"to_onnx: layer {p!r} of type {type(layer).__name__} has no ONNX "
                          f"form here; supported: Conv1D/2D/3D, MaxPool*, AvgPool*, "
                          f"GlobalAvgPool*, BatchNorm, Dense, Flatten, Dropout, Rescaling, "
                          f"PatchWhitening, ReLU, LeakyReLU, Sigmoid, Tanh, Softmax, Sequential, "
                          f"Concat, Residual")


def to_model_proto(model, opset=17, probabilities=False, input_name="input",
                   output_name="output"):
    """The ``onnx.ModelProto`` of a built cnnlab model (see :func:`to_onnx`)."""
    onnx = require_onnx()
    if not isinstance(model, Layer):
        raise TypeError(f"to_onnx: model must be a cnnlab model, got {type(model).__name__}")
    if not model.built:
        raise OnnxExportError("to_onnx: the model is not built; build it first "
                              "(model.build(input_shape)) so that every weight exists")
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) or not 13 <= opset <= onnx.defs.onnx_opset_version():
        raise ValueError(f"to_onnx: opset must be an int from 13 to "
                         f"{onnx.defs.onnx_opset_version()}, got {opset!r}")
    g = _Graph(onnx)
    g.used.update([input_name, output_name])
    out = _emit(g, model, input_name, tuple(model.input_shape), "")
    if probabilities and len(model.output_shape) == 1:
        from ..training.loop import outputs_probabilities
        if not outputs_probabilities(model):
            out = g.node("Softmax", [out], "probabilities", axis=1)
    g.nodes.append(onnx.helper.make_node("Identity", [out], [output_name], name=output_name))
    f32 = onnx.TensorProto.FLOAT
    inp = onnx.helper.make_tensor_value_info(input_name, f32, ["N"] + list(model.input_shape))
    outp = onnx.helper.make_tensor_value_info(output_name, f32, ["N"] + list(model.output_shape))
    graph = onnx.helper.make_graph(g.nodes, model.name, [inp], [outp], initializer=g.inits)
    proto = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", int(opset))],
                                   producer_name="cnnlab")
    # the IR version every onnxruntime that knows this opset reads
    proto.ir_version = min(proto.ir_version, 8 if opset <= 18 else 9)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def to_onnx(model, path, opset=17, probabilities=False):
    """Write ``model`` (a built cnnlab model) as an ONNX file at ``path``, atomically.

    Input 'input' of shape (N, *model.input_shape) float32 with a dynamic batch axis N;
    output 'output' (N, *model.output_shape): what ``model.forward`` returns (class scores
    for the zoo nets; ``model.predict`` is their softmax), or with ``probabilities=True``
    what ``model.predict`` returns (a Softmax node is added unless the model ends in one).
    ``onnx.checker`` (full check, with shape inference) passes on the result. -> ``path``.
    """
    proto = to_model_proto(model, opset, probabilities)
    path = os.fspath(path)
    with atomic_open(path) as f:  # a crash never leaves a half-written file
        f.write(proto.SerializeToString())
    return path
