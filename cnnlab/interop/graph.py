"""An ONNX graph seen as data flow: constants (initializers and Constant nodes), the
"static" shape arithmetic PyTorch writes for ``x.view(x.size(0), -1)``, and for every data
tensor the nodes that consume it."""
from __future__ import annotations

import numpy as np

from .errors import OnnxImportError

#: ops that compute shapes (from Shape and constants), evaluated at import time
STATIC_OPS = ("Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Cast", "Constant",
              "Identity")
BATCH = "N"  # the batch size in a static shape value (unknown until run time)


def node_label(node):
    return f"node {node.name or '(unnamed)'!r} (op {node.op_type})"


def attrs(node, onnx):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


class Graph:
    """Constants, producers and data consumers of ``proto.graph``."""

    def __init__(self, proto, onnx):
        self.onnx, self.proto, g = onnx, proto, proto.graph
        self.consts = {t.name: onnx.numpy_helper.to_array(t) for t in g.initializer}
        self.producer, self.static, self.shapes = {}, set(self.consts), {}
        self.data_nodes, self.consumers = [], {}
        for node in g.node:
            for o in node.output:
                self.producer[o] = node
            if node.domain not in ("", "ai.onnx"):
                self.data_nodes.append(node)  # reported as an unknown op by the walk
                for i in self.data_inputs(node):
                    self.consumers.setdefault(i, []).append(node)
                continue
            if node.op_type == "Constant":
                self.consts[node.output[0]] = self._constant(node)
                self.static.add(node.output[0])
                continue
            ins = [i for i in node.input if i]
            if ins and all(i in self.consts for i in ins) and self._fold(node):
                continue
            if node.op_type == "Shape" or (node.op_type in STATIC_OPS
                                           and all(i in self.static for i in ins)):
                self.static.update(node.output)
                continue
            self.data_nodes.append(node)
            for i in self.data_inputs(node):
                self.consumers.setdefault(i, []).append(node)

    def _fold(self, node):
        """Arithmetic on constants only (PyTorch writes its pads that way without constant
        folding): evaluated once with onnx's reference implementation."""
        from onnx.reference import ReferenceEvaluator

        try:
            feeds = {i: self.consts[i] for i in node.input if i}
            outs = ReferenceEvaluator(node).run(None, feeds)
        except Exception:  # noqa: BLE001 - not foldable: the walk reports the node
            return False
        for name, value in zip(node.output, outs):
            self.consts[name] = np.asarray(value)
            self.static.add(name)
        return True

    def _constant(self, node):
        a = attrs(node, self.onnx)
        if "value" in a:
            return self.onnx.numpy_helper.to_array(a["value"])
        for key in ("value_float", "value_int", "value_floats", "value_ints"):
            if key in a:
                return np.array(a[key])
        raise OnnxImportError(f"{node_label(node)}: only tensor and number constants are "
                              f"supported, got attributes {sorted(a)}")

    def data_inputs(self, node):
        """Inputs that carry data (not constants nor shape arithmetic), in order."""
        return [i for i in node.input if i and i not in self.static]

    def const(self, node, index, what):
        """The constant array at input ``index`` of ``node`` (a weight), or an error."""
        if index >= len(node.input) or not node.input[index]:
            return None
        name = node.input[index]
        if name not in self.consts:
            raise OnnxImportError(f"{node_label(node)}: its {what} ({name!r}) must be a constant "
                                  f"(an initializer or Constant), got a computed tensor")
        return self.consts[name]

    def static_value(self, name, node):
        """Evaluate a shape computation (object array; the batch size is 'N')."""
        if name in self.consts:
            return np.asarray(self.consts[name]).astype(object)
        src = self.producer.get(name)
        if src is None or name not in self.static:
            raise OnnxImportError(f"{node_label(node)}: its shape input {name!r} is computed from "
                                  f"data; only constant shapes or (N, -1) are supported")
        a = attrs(src, self.onnx)
        ins = [self.static_value(i, node) if src.op_type != "Shape" else None
               for i in src.input if i]
        op = src.op_type
        if op == "Shape":
            shape = self.shapes.get(src.input[0])
            if shape is None:
                raise OnnxImportError(f"{node_label(src)}: the shape of {src.input[0]!r} is not "
                                      f"known here")
            full = np.array([BATCH] + list(shape), dtype=object)
            return full[a.get("start", 0):a.get("end", len(full))]
        if op == "Gather":
            return np.take(ins[0], np.asarray(ins[1]).astype(np.int64), axis=a.get("axis", 0))
        if op in ("Unsqueeze", "Squeeze"):
            axes = a.get("axes", list(ins[1]) if len(ins) > 1 else None)
            v = ins[0]
            if op == "Unsqueeze":
                for ax in sorted(int(x) for x in axes):
                    v = np.expand_dims(v, ax)
                return v
            return v.squeeze(tuple(int(x) for x in axes)) if axes is not None else v.squeeze()
        if op == "Concat":
            return np.concatenate([np.atleast_1d(v) for v in ins], axis=a.get("axis", 0))
        if op in ("Cast", "Identity"):
            return ins[0]
        raise OnnxImportError(f"{node_label(src)}: not supported in a shape computation")
