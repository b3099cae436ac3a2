"""One ONNX node (with the node it may fuse with: Pad before a conv or pool, Add after a
MatMul, Flatten after a global pool) -> cnnlab layers and their weights.

Each converter takes ``(graph, node, x, shape)`` -- ``x`` the data input's name, ``shape``
its per-sample shape -- and returns ``(entries, out)``: ``entries`` a list of
``(layer, {param or state key: array})`` and ``out`` the name of the last tensor used.
"""
from __future__ import annotations

import math

import numpy as np

from .. import layers as L
from .errors import OnnxImportError
from .graph import BATCH, attrs, node_label

#: the ops :func:`cnnlab.interop.from_onnx` reads (besides Concat and Add, which join
#: branches, and the shape arithmetic of ``x.view(N, -1)``)
SUPPORTED_OPS = ("Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "Relu", "LeakyRelu",
                 "Sigmoid", "Tanh", "Gemm", "MatMul", "Add", "Flatten", "Reshape",
                 "BatchNormalization", "Dropout", "Concat", "Softmax", "Identity", "Pad",
                 "Constant", "Mul")

_CONV = {1: L.Conv1D, 2: L.Conv2D, 3: L.Conv3D}
_MAX = {1: L.MaxPool1D, 2: L.MaxPool2D, 3: L.MaxPool3D}
_AVG = {1: L.AvgPool1D, 2: L.AvgPool2D, 3: L.AvgPool3D}
_GAP = {1: L.GlobalAvgPool1D, 2: L.GlobalAvgPool2D, 3: L.GlobalAvgPool3D}


def fail(node, problem):
    raise OnnxImportError(f"{node_label(node)}: {problem}")


def sole_consumer(g, name):
    cons = g.consumers.get(name, [])
    if len(cons) == 1 and name not in g.outputs:
        return cons[0]
    return None


def _spatial(node, shape, what):
    if len(shape) < 2:
        fail(node, f"{what} needs (N, C, spatial...) input, got per-sample shape {shape}")
    return len(shape) - 1


def _pairs(node, a, nsp, kernel, stride, dilation, spatial):
    """ONNX pads / auto_pad -> per-axis (lo, hi)."""
    auto = a.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("NOTSET", ""):
        p = list(a.get("pads", [0] * (2 * nsp)))
        if len(p) != 2 * nsp:
            fail(node, f"pads must have {2 * nsp} values, got {p}")
        return [(int(p[i]), int(p[i + nsp])) for i in range(nsp)]
    if auto == "VALID":
        return [(0, 0)] * nsp
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        out = []
        for s, k, st, d in zip(spatial, kernel, stride, dilation):
            total = max(0, (math.ceil(s / st) - 1) * st + (k - 1) * d + 1 - s)
            small, big = total // 2, total - total // 2
            out.append((small, big) if auto == "SAME_UPPER" else (big, small))
        return out
    fail(node, f"auto_pad {auto!r} is not supported (NOTSET, VALID, SAME_UPPER, SAME_LOWER)")


def _window(node, a, nsp, kernel):
    stride = tuple(int(v) for v in a.get("strides", [1] * nsp))
    dilation = tuple(int(v) for v in a.get("dilations", [1] * nsp))
    return stride, dilation


def _add_pads(pads, extra):
    return [(lo + elo, hi + ehi) for (lo, hi), (elo, ehi) in zip(pads, extra)]


def conv(g, node, x, shape, extra=None):
    a = attrs(node, g.onnx)
    w = g.const(node, 1, "weight")
    b = g.const(node, 2, "bias")
    nsp = _spatial(node, shape, "Conv")
    if w is None or w.ndim != nsp + 2:
        fail(node, f"weight must be {nsp + 2}-D for input of per-sample shape {shape}")
    if a.get("group", 1) != 1 or w.shape[1] != shape[0]:
        fail(node, f"grouped or depthwise convolution (group={a.get('group', 1)}, weight "
                   f"{w.shape} on {shape[0]} channels) is not supported; cnnlab's Conv has "
                   f"group=1 (every filter sees every input channel)")
    kernel = tuple(int(k) for k in w.shape[2:])
    stride, dilation = _window(node, a, nsp, kernel)
    pads = _pairs(node, a, nsp, kernel, stride, dilation, shape[1:])
    if extra is not None:
        pads = _add_pads(pads, extra)
    layer = _CONV[nsp](int(w.shape[0]), kernel, stride=stride, padding=tuple(pads),
                       dilation=dilation, use_bias=b is not None)
    arrays = {"w": w}
    if b is not None:
        arrays["b"] = b.reshape(-1)
    return [(layer, arrays)], node.output[0]


def _ceil_extra(node, spatial, kernel, stride, pads):
    """Extra 'hi' padding that makes floor mode give ceil mode's sizes (ONNX/PyTorch drop a
    last window that would start in the right padding)."""
    extra = []
    for s, k, st, (lo, hi) in zip(spatial, kernel, stride, pads):
        span = s + lo + hi - k
        out = -(-span // st) + 1
        if (out - 1) * st >= s + lo:
            out -= 1
        extra.append(max(0, (out - 1) * st + k - (s + lo + hi)))
    return extra


def pool(g, node, x, shape, extra=None, pad_value=None):
    a = attrs(node, g.onnx)
    nsp = _spatial(node, shape, node.op_type)
    kernel = tuple(int(k) for k in a["kernel_shape"])
    stride, dilation = _window(node, a, nsp, kernel)
    if any(d != 1 for d in dilation):
        fail(node, f"dilated pooling (dilations {list(dilation)}) is not supported")
    if len(node.output) > 1 and node.output[1]:
        fail(node, "the Indices output of MaxPool is not supported")
    pads = _pairs(node, a, nsp, kernel, stride, dilation, shape[1:])
    is_max = node.op_type == "MaxPool"
    if not is_max and a.get("count_include_pad", 0) == 0 and any(lo or hi for lo, hi in pads):
        fail(node, "AveragePool with count_include_pad=0 and non-zero pads is not supported "
                   "(cnnlab's AvgPool counts the zero padding, as count_include_pad=1)")
    if a.get("ceil_mode", 0):
        add = _ceil_extra(node, shape[1:], kernel, stride, pads)
        if any(add) and not is_max:
            fail(node, "AveragePool with ceil_mode=1 that changes the output size is not "
                       "supported (MaxPool's ceil_mode is)")
        pads = [(lo, hi + e) for (lo, hi), e in zip(pads, add)]
    if extra is not None:
        if is_max and not (pad_value is not None and pad_value == -np.inf):
            fail(node, f"a Pad of value {pad_value} feeds this MaxPool; only -inf padding "
                       f"(which never wins) can join a max pool")
        pads = _add_pads(pads, extra)
    for (lo, hi), k in zip(pads, kernel):
        if max(lo, hi) > k // 2:
            fail(node, f"padding {(lo, hi)} is more than half the window {k}; cnnlab's "
                       f"pools (as PyTorch's) allow at most {k // 2}")
    cls = (_MAX if is_max else _AVG)[nsp]
    return [(cls(kernel, stride=stride, padding=tuple(pads)), {})], node.output[0]


def pad(g, node, x, shape):
    """Pad (constant mode) feeding a Conv (value 0), an AveragePool (value 0) or a MaxPool
    (value -inf): folded into that node's padding."""
    a = attrs(node, g.onnx)
    mode = a.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    p = g.const(node, 1, "pads")
    if p is None:
        p = np.array(a.get("pads", []))
    value = g.const(node, 2, "constant value")
    value = float(a.get("value", 0.0)) if value is None else float(np.asarray(value).reshape(-1)[0])
    rank = len(shape) + 1
    p = [int(v) for v in np.asarray(p).reshape(-1)]
    nxt = sole_consumer(g, node.output[0])
    if (mode != "constant" or len(p) != 2 * rank or any(p[i] or p[i + rank] for i in (0, 1))
            or min(p) < 0 or len(node.input) > 3 and node.input[3]
            or nxt is None or nxt.op_type not in ("Conv", "AveragePool", "MaxPool")):
        fail(node, "only a constant-mode Pad of the spatial axes feeding one Conv, "
                   "AveragePool or MaxPool is supported (it becomes that layer's padding)")
    extra = [(p[2 + i], p[2 + i + rank]) for i in range(rank - 2)]
    padded = tuple(shape[:1]) + tuple(s + lo + hi for s, (lo, hi) in zip(shape[1:], extra))
    if nxt.op_type == "Conv":
        if value != 0:
            fail(node, f"a Pad of value {value} before a Conv is not supported (only 0)")
        return conv(g, nxt, x, padded, extra)
    if nxt.op_type == "AveragePool" and value != 0:
        fail(node, f"a Pad of value {value} before an AveragePool is not supported (only 0)")
    if nxt.op_type == "AveragePool":
        return pool(g, nxt, x, padded, extra)
    return pool(g, nxt, x, padded, extra, pad_value=value)


def global_pool(g, node, x, shape):
    nsp = _spatial(node, shape, "GlobalAveragePool")
    entries = [(_GAP[nsp](), {})]
    nxt = sole_consumer(g, node.output[0])
    if nxt is None:
        fail(node, "its output must feed one Flatten / Reshape(N, -1) / Squeeze (cnnlab's "
                   "global pool outputs (N, C))")
    if nxt.op_type == "Flatten" and attrs(nxt, g.onnx).get("axis", 1) == 1:
        return entries, nxt.output[0]
    if nxt.op_type in ("Reshape", "Squeeze"):
        if nxt.op_type == "Reshape":
            flatten_target(g, nxt, tuple(shape[:1]) + (1,) * nsp)
        return entries, nxt.output[0]
    fail(nxt, "after a GlobalAveragePool only Flatten, Reshape(N, -1) or Squeeze is "
              "supported (cnnlab's global pool outputs (N, C))")


def flatten_target(g, node, shape):
    """Check that a Reshape flattens to (N, -1)."""
    target = g.static_value(node.input[1], node).reshape(-1)
    d = int(np.prod(shape))
    ok = len(target) == 2 and (target[1] in (-1, d) and (target[0] in (BATCH, 0, -1))
                               and not (target[0] == -1 and target[1] == -1))
    if not ok:
        shown = [str(v) for v in target]
        fail(node, f"only a Reshape to (N, -1) (a flatten) is supported, got target shape "
                   f"({', '.join(shown)}) for per-sample input {shape}")


def reshape(g, node, x, shape):
    flatten_target(g, node, shape)
    return [(L.Flatten(), {})], node.output[0]


def flatten(g, node, x, shape):
    if attrs(node, g.onnx).get("axis", 1) != 1:
        fail(node, "only Flatten with axis=1 (keep the batch axis) is supported")
    return [(L.Flatten(), {})], node.output[0]


def gemm(g, node, x, shape):
    a = attrs(node, g.onnx)
    if len(shape) != 1:
        fail(node, f"Gemm needs (N, D) input, got per-sample shape {shape}")
    if a.get("transA", 0):
        fail(node, "transA=1 is not supported (the data must be the first matrix)")
    w = g.const(node, 1, "weight")
    c = g.const(node, 2, "bias")
    if w is None or w.ndim != 2:
        fail(node, "Gemm needs a constant 2-D weight matrix as its second input")
    w = w.T if a.get("transB", 0) else w
    w = w * a.get("alpha", 1.0)
    units = w.shape[1]
    arrays = {"w": w}
    if c is not None:
        try:
            c = np.broadcast_to(np.asarray(c) * a.get("beta", 1.0), (1, units)).reshape(units)
        except ValueError:
            fail(node, f"bias of shape {np.shape(c)} is not one value per unit ({units})")
        arrays["b"] = c
    return [(L.Dense(int(units), use_bias=c is not None), arrays)], node.output[0]


def matmul(g, node, x, shape):
    w = g.const(node, 1, "weight")
    if len(shape) != 1 or w is None or w.ndim != 2:
        fail(node, f"only MatMul of (N, D) data by a constant (D, units) matrix is supported "
                   f"(per-sample input {shape})")
    arrays, out = {"w": w}, node.output[0]
    nxt = sole_consumer(g, out)
    if nxt is not None and nxt.op_type == "Add" and len(g.data_inputs(nxt)) == 1:
        k = 1 if nxt.input[0] == out else 0
        b = g.const(nxt, k, "bias")
        if b.size != w.shape[1]:
            fail(nxt, f"bias of shape {b.shape} does not fit {w.shape[1]} units")
        arrays["b"], out = b.reshape(-1), nxt.output[0]
    return [(L.Dense(int(w.shape[1]), use_bias="b" in arrays), arrays)], out


def batchnorm(g, node, x, shape):
    a = attrs(node, g.onnx)
    if a.get("training_mode", 0) or (len(node.output) > 1 and any(node.output[1:])):
        fail(node, "only inference-mode BatchNormalization (one output) is supported")
    scale, bias, mean, var = (g.const(node, i, n) for i, n in
                              ((1, "scale"), (2, "bias"), (3, "mean"), (4, "var")))
    momentum = float(a.get("momentum", 0.9))
    layer = L.BatchNorm(momentum=min(max(momentum, 0.0), 1.0), eps=float(a.get("epsilon", 1e-5)))
    return [(layer, {"gamma": scale, "beta": bias, "running_mean": mean,
                     "running_var": var})], node.output[0]


def dropout(g, node, x, shape):
    a = attrs(node, g.onnx)
    ratio = g.const(node, 1, "ratio")
    ratio = float(a.get("ratio", 0.5)) if ratio is None else float(np.asarray(ratio).reshape(-1)[0])
    mode = g.const(node, 2, "training_mode")
    if mode is not None and bool(np.asarray(mode).reshape(-1)[0]):
        fail(node, "Dropout in training mode is not supported")
    if len(node.output) > 1 and node.output[1] and g.consumers.get(node.output[1]):
        fail(node, "the mask output of Dropout is not supported")
    return [(L.Dropout(min(max(ratio, 0.0), 0.999)), {})], node.output[0]


def softmax(g, node, x, shape):
    rank = len(shape) + 1
    axis = attrs(node, g.onnx).get("axis", -1 if g.opset >= 13 else 1)
    if axis % rank != 1 or (g.opset < 13 and rank != 2):
        fail(node, f"only a softmax over axis 1 (the classes / channels) is supported, got "
                   f"axis {axis} for rank-{rank} input")
    return [(L.Softmax(), {})], node.output[0]


def leaky_relu(g, node, x, shape):
    return [(L.LeakyReLU(float(attrs(node, g.onnx).get("alpha", 0.01))), {})], node.output[0]


def _simple(cls):
    def convert(g, node, x, shape):
        return [(cls(), {})], node.output[0]
    return convert


def _scalar(g, node, x, what):
    """The one constant number that ``node`` (Add or Mul) combines with tensor ``x``."""
    c = g.const(node, 1 if node.input[0] == x else 0, what)
    if c is None or np.size(c) != 1:
        fail(node, f"only {node.op_type} of the data and one constant number is supported "
                   f"(Rescaling), got a constant of shape {np.shape(c)}")
    return float(np.asarray(c).reshape(-1)[0])


def add_scalar(g, node, x, shape):
    """x + c -> Rescaling(offset=c)."""
    return [(L.Rescaling(offset=_scalar(g, node, x, "offset")), {})], node.output[0]


def mul_scalar(g, node, x, shape):
    """x * a [+ b] -> Rescaling(scale=a, offset=b) (an Add of a number right after fuses)."""
    scale, out, offset = _scalar(g, node, x, "scale"), node.output[0], 0.0
    nxt = sole_consumer(g, out)
    if nxt is not None and nxt.op_type == "Add" and len(g.data_inputs(nxt)) == 1:
        offset, out = _scalar(g, nxt, out, "offset"), nxt.output[0]
    return [(L.Rescaling(scale=scale, offset=offset), {})], out


def identity(g, node, x, shape):
    return [], node.output[0]


CONVERTERS = {
    "Conv": conv, "MaxPool": pool, "AveragePool": pool, "GlobalAveragePool": global_pool,
    "Relu": _simple(L.ReLU), "Sigmoid": _simple(L.Sigmoid), "Tanh": _simple(L.Tanh),
    "LeakyRelu": leaky_relu, "Gemm": gemm, "MatMul": matmul, "Flatten": flatten,
    "Reshape": reshape, "BatchNormalization": batchnorm, "Dropout": dropout,
    "Softmax": softmax, "Identity": identity, "Pad": pad, "Add": add_scalar, "Mul": mul_scalar,
}
