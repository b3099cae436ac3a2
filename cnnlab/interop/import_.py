"""ONNX file -> cnnlab model (``from_onnx``).

The graph must be a chain of the supported ops (:data:`SUPPORTED_OPS`), where a tensor
may fork into branches that meet again in one node: a ``Concat`` (-> :class:`Concat`,
an Inception module) or an ``Add`` of two branches, one of which may be the tensor itself
(-> :class:`Residual`, a ResNet block with an identity or a downsampling shortcut).
Branches may fork again inside. Anything else raises :class:`OnnxImportError` naming the
node, its op and what is supported, before any model is returned.

The per-sample input shape must be fixed in the file (the batch axis may be dynamic);
the result is a built ``cnnlab.Sequential`` (float32) with the file's weights.
"""
from __future__ import annotations

import numpy as np

from .. import layers as L
from ._onnx import require_onnx
from .errors import OnnxImportError
from .graph import Graph, node_label
from .onnx_file import load_proto
from .ops import CONVERTERS, SUPPORTED_OPS, fail

_MERGES = ("Concat", "Add")


def _supported():
    return ", ".join(SUPPORTED_OPS)


class _Walker:
    """Turns the data flow from the graph input into nested cnnlab layers."""

    def __init__(self, g):
        self.g, self.weights = g, []

    def convert(self, node, x, shape):
        conv = CONVERTERS.get(node.op_type) if node.domain in ("", "ai.onnx") else None
        if conv is None:
            dom = f" of domain {node.domain!r}" if node.domain not in ("", "ai.onnx") else ""
            fail(node, f"op {node.op_type!r}{dom} is not supported; supported ops: "
                       f"{_supported()}")
        entries, out = conv(self.g, node, x, shape)
        layers = []
        for layer, arrays in entries:
            try:
                shape = tuple(layer.compute_output_shape(shape))
            except ValueError as exc:
                fail(node, f"does not fit its input of per-sample shape {shape}: {exc}")
            layers.append(layer)
            self.weights.append((node, layer, arrays))
        self.g.shapes[out] = shape
        return layers, out, shape

    def chain(self, x, shape, first=None):
        """Layers from tensor ``x`` until the graph output or a node joining branches.
        -> (layers, last tensor, its shape, the joining node or None)."""
        layers = []
        while True:
            self.g.shapes[x] = shape
            cons = [first] if first is not None else self.g.consumers.get(x, [])
            first = None
            if x in self.g.outputs:
                if cons:
                    fail(cons[0], f"the graph output {x!r} also feeds this node; only a chain "
                                  f"ending in the output is supported")
                return layers, x, shape, None
            if not cons:
                node = self.g.producer.get(x)
                raise OnnxImportError(f"tensor {x!r} (from {node_label(node) if node else 'the input'})"
                                      f" leads nowhere: the graph is not a chain ending in its output")
            if len(cons) > 1:
                block, x, shape = self.fork(x, shape, cons)
                layers.append(block)
                continue
            node = cons[0]
            if len(self.g.data_inputs(node)) > 1:
                if node.op_type not in _MERGES:
                    fail(node, f"takes {len(self.g.data_inputs(node))} computed inputs; only "
                               f"Concat and Add may join branches, and the other inputs of "
                               f"an op (weights, biases) must be constants")
                return layers, x, shape, node
            new, x, shape = self.convert(node, x, shape)
            layers.extend(new)

    def fork(self, x, shape, cons):
        """Branches from ``x`` that meet in one Concat / Add -> (Concat or Residual, out,
        shape)."""
        ends, joins, branches = [], [], []
        for c in cons:
            if len(self.g.data_inputs(c)) > 1:  # the tensor itself joins: an empty branch
                layers, end, join = [], x, c
            else:
                layers, end, _, join = self.chain(x, shape, first=c)
            if join is None:
                fail(c, f"the branches that start at tensor {x!r} do not meet again (the graph "
                        f"is not a chain of blocks); supported: branches joined by one Concat "
                        f"or Add")
            ends.append(end)
            joins.append(join)
            branches.append(layers)
        join = joins[0]
        inputs = self.g.data_inputs(join)
        if any(j is not join for j in joins) or sorted(inputs) != sorted(ends):
            fail(join, f"the branches that start at tensor {x!r} meet in more than one node or "
                       f"this node also takes other inputs (the graph is not a chain of blocks); "
                       f"supported: branches from one tensor joined by one Concat or Add")
        # branch order = the joining node's input order
        order = []
        for name in inputs:
            k = next(i for i, e in enumerate(ends) if e == name and i not in order)
            order.append(k)
        branches = [branches[k] for k in order]
        if join.op_type == "Concat":
            axis = next((a.i for a in join.attribute if a.name == "axis"), None)
            if axis is None or axis % (len(shape) + 1) != 1:
                fail(join, f"only a Concat on axis 1 (the channels) is supported, got axis {axis}")
            if any(not b for b in branches):
                fail(join, "a Concat branch that is the input itself is not supported")
            block = L.Concat([list(b) for b in branches], axis=1)
        elif join.op_type == "Add" and len(branches) == 2:
            body, short = sorted(branches, key=len, reverse=True)
            if not body:
                fail(join, "an Add of a tensor to itself is not supported")
            block = L.Residual(list(body), shortcut=list(short) if short else None)
        else:
            fail(join, f"branches may only be joined by Concat or by an Add of two branches "
                       f"(a residual); got {join.op_type} of {len(branches)}")
        try:
            shape = tuple(block.compute_output_shape(shape))
        except ValueError as exc:
            fail(join, f"the branches do not fit together: {exc}")
        self.g.shapes[join.output[0]] = shape
        return block, join.output[0], shape


def _input(g, path):
    inits = set(g.consts)
    inputs = [i for i in g.proto.graph.input if i.name not in inits]
    if len(inputs) != 1 or len(g.proto.graph.output) != 1:
        raise OnnxImportError(f"{path}: the graph must have one data input and one output, got "
                              f"inputs {[i.name for i in inputs]} and outputs "
                              f"{[o.name for o in g.proto.graph.output]}")
    inp = inputs[0]
    t = inp.type.tensor_type
    onnx = g.onnx
    if t.elem_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16):
        raise OnnxImportError(f"{path}: input {inp.name!r} must be a float tensor, got element "
                              f"type {onnx.TensorProto.DataType.Name(t.elem_type)}")
    dims = list(t.shape.dim)
    if len(dims) < 2:
        raise OnnxImportError(f"{path}: input {inp.name!r} must be (N, C, ...), got rank {len(dims)}")
    shape = []
    for k, d in enumerate(dims[1:], start=1):
        if not d.HasField("dim_value") or d.dim_value < 1:
            what = d.dim_param or "unknown"
            raise OnnxImportError(f"{path}: input {inp.name!r} has a dynamic size ({what!r}) on "
                                  f"axis {k}; only the batch axis may be dynamic (export with a "
                                  f"fixed per-sample shape, e.g. dynamic_axes={{'input': {{0: 'N'}}}})")
        shape.append(int(d.dim_value))
    return inp.name, tuple(shape)


def _assign(model, weights, dtype):
    for node, layer, arrays in weights:
        slots = {**layer.params, **layer.state}
        if set(arrays) != set(slots):
            fail(node, f"weights {sorted(arrays)} do not fit layer {layer.name} ({sorted(slots)})")
        for k, v in arrays.items():
            v = np.asarray(v)
            if v.shape != slots[k].shape:
                fail(node, f"its {k} has shape {v.shape}, the layer needs {slots[k].shape}")
            if not np.all(np.isfinite(v)):
                fail(node, f"its {k} holds NaN or infinite values")
    for _, layer, arrays in weights:
        for k, v in arrays.items():
            target = layer.params if k in layer.params else layer.state
            target[k][...] = np.asarray(v, dtype=dtype)


def from_onnx(path, dtype=np.float32):
    """Read the ONNX file ``path`` as a built ``cnnlab.Sequential`` with its weights.

    Supported: see :data:`SUPPORTED_OPS` and the module docstring (chains, Inception-style
    Concat blocks, residual Add blocks). ``dtype``: the model's float type. Raises
    OnnxImportError (unsupported graph, corrupt file, external data outside the file's
    folder), FileNotFoundError, or ImportError when ``onnx`` is not installed."""
    from ..training import Sequential

    onnx = require_onnx()
    proto = load_proto(path)
    g = Graph(proto, onnx)
    g.opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    if g.opset < 7:
        raise OnnxImportError(f"{path}: opset {g.opset} is too old; supported: 7 or newer")
    g.outputs = {o.name for o in proto.graph.output}
    x, shape = _input(g, path)
    walker = _Walker(g)
    layers, _, out_shape, join = walker.chain(x, shape)
    if join is not None:
        fail(join, "this node joins a branch that does not start at a fork of the chain "
                   "(the graph is not a chain of blocks)")
    name = "".join(ch if ch.isalnum() or ch in "_-" else "_" for ch in proto.graph.name) or None
    try:
        model = Sequential(layers, input_shape=shape, name=name, seed=0, dtype=dtype)
    except ValueError as exc:
        raise OnnxImportError(f"{path}: the layers read do not fit together: {exc}") from None
    _assign(model, walker.weights, model.dtype)
    declared = proto.graph.output[0].type.tensor_type.shape.dim
    want = [d.dim_value if d.HasField("dim_value") else None for d in declared][1:]
    if want and len(want) == len(out_shape) and any(w not in (None, s) for w, s in zip(want, out_shape)):
        raise OnnxImportError(f"{path}: the model read outputs per-sample shape {out_shape}, "
                              f"the file declares {tuple(want)}")
    return model
