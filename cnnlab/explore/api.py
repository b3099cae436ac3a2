"""The explorer's JSON answers, computed from the library: no HTTP here.

Every function takes an :class:`~.source.ExplorerModel` (``em``) and plain Python
values and returns a JSON-able dict; a bad request raises :class:`BadRequest` (the
server answers 400 with its message). Arrays are sent as ``{"shape": [...], "values":
[flat, C order]}`` so a script needs no more than ``np.reshape``.

- :func:`model_info`   GET  /api/model
- :func:`forward`      POST /api/forward        (body: an image file)
- :func:`unit`         POST /api/unit           (one unit's arithmetic: window, kernel, ...)
- :func:`attribution`  POST /api/attribution    (saliency or Grad-CAM, via cnnlab.viz)
- :func:`filters`      GET  /api/filters        (a conv layer's weights)
- :func:`conv_size`    GET  /api/conv-size      (the output-size formula, or why invalid)
"""
from __future__ import annotations

import base64
import io
import math

import numpy as np

from .. import functional as F
from ..layers import AvgPool2D, Conv2D, Dense, Flatten, MaxPool2D, chain
from ..viz import gradcam, receptive_field, saliency

#: Largest image accepted, in pixels (decoding cost is bounded before any pixel is read).
MAX_PIXELS = 25_000_000
#: At most this many channels of one layer are sent by /api/forward (all of LeNet's are).
MAX_CHANNELS = 64


class BadRequest(ValueError):
    """A request the explorer cannot answer: the server sends 400 with this message."""


# ----------------------------------------------------------------------------- helpers

def as_json_array(a, encoding="list"):
    """ndarray -> {"shape", "values"}: float64 values in C order (non-finite -> None);
    ``encoding='base64'``: {"shape", "dtype": "float32", "base64"} instead, the values as
    little-endian float32 bytes (what the page asks for: a list of floats costs tens of
    milliseconds to format, the bytes almost nothing)."""
    if encoding == "base64":
        raw = np.ascontiguousarray(a, dtype="<f4").tobytes()
        return {"shape": list(np.shape(a)), "dtype": "float32",
                "base64": base64.b64encode(raw).decode("ascii")}
    a = np.asarray(a, dtype=np.float64)
    flat = a.ravel()
    values = flat.tolist()
    if not np.isfinite(flat).all():
        values = [v if math.isfinite(v) else None for v in values]
    return {"shape": list(a.shape), "values": values}


def layer_kind(layer):
    """'conv', 'pool', 'dense', 'flatten', 'activation' or 'other' (what the page draws)."""
    if isinstance(layer, Conv2D):
        return "conv"
    if isinstance(layer, (MaxPool2D, AvgPool2D)):
        return "pool"
    if isinstance(layer, Dense):
        return "dense"
    if isinstance(layer, Flatten):
        return "flatten"
    if type(layer).__module__.endswith("activations"):
        return "activation"
    return "other"


def _pad_lo(layer):
    """Low-side padding per axis, from the layer's receptive-field offset
    (offset = d*(k-1)/2 - pad_lo, see cnnlab.viz.receptive_field)."""
    _, offset, size = receptive_field([(layer.name, layer)])
    return tuple(round((s - 1) / 2.0 - o) for s, o in zip(size, offset))


def _geometry(layer):
    """(kernel, stride, dilation, pad_lo) of a Conv2D / 2-D pool, as int pairs."""
    if isinstance(layer, Conv2D):
        return (tuple(layer.kernel_size), tuple(layer.stride), tuple(layer.dilation),
                _pad_lo(layer))
    k = tuple(layer.pool_size)
    s = k if layer.stride is None else tuple(layer.stride)
    return k, s, (1, 1), _pad_lo(layer)


def _layers_info(em):
    model = em.model
    shape = tuple(model.input_shape)
    rows = []
    for name, layer in chain(model):
        out = tuple(int(v) for v in layer.compute_output_shape(shape))
        row = {"name": name, "class": type(layer).__name__, "output_shape": list(out),
               "params": int(layer.count_params()), "kind": layer_kind(layer),
               "input_shape": list(shape)}
        if row["kind"] in ("conv", "pool"):
            k, s, d, p = _geometry(layer)
            row["geometry"] = {"kernel": list(k), "stride": list(s), "dilation": list(d),
                               "padding": list(p)}
            if row["kind"] == "pool":
                row["op"] = "max" if isinstance(layer, MaxPool2D) else "mean"
        rows.append(row)
        shape = out
    return rows


def model_info(em):
    """GET /api/model -> {"name", "input_shape", "classes", "layers": [{"name", "class",
    "output_shape", "params", "kind", "input_shape", "geometry"?}], "source",
    "total_params"}."""
    return {"name": em.name, "input_shape": [int(v) for v in em.model.input_shape],
            "classes": list(em.classes), "layers": _layers_info(em), "source": em.source,
            "total_params": int(em.model.count_params())}


def query_int(query, key, low=None, high=None, default=None):
    raw = query.get(key, default)
    if raw is None:
        raise BadRequest(f"missing query parameter {key!r}")
    try:
        v = int(raw)
    except (TypeError, ValueError):
        raise BadRequest(f"query parameter {key!r} must be an integer, got {raw!r}") from None
    if (low is not None and v < low) or (high is not None and v > high):
        raise BadRequest(f"query parameter {key!r} must be in [{low}, {high}], got {v}")
    return v


def _layer_index(em, name):
    names = [q for q, _ in chain(em.model)]
    if name not in names:
        raise BadRequest(f"no layer named {name!r}; the model's layers: {names}")
    return names.index(name)


# ----------------------------------------------------------------------------- input

def decode_image(data, input_shape, invert=False):
    """Image file bytes -> (C, H, W) float32 in [0, 1] for a model taking ``input_shape``.

    Grey for 1-channel models, RGB for 3-channel ones; resized (bilinear, antialiased, as
    ``cnnlab.data.load_image``) when not already H x W, so a 28x28 white-on-black PNG is
    taken exactly as it is. ``invert``: 1 - pixel (dark ink on white paper -> MNIST)."""
    from PIL import Image, UnidentifiedImageError

    from ..data import load_image

    if not data:
        raise BadRequest("empty request body: send an image file (PNG, JPEG, ...) as the body")
    c, h, w = input_shape
    try:
        with Image.open(io.BytesIO(data)) as im:   # lazy: reads the header only
            size = im.size
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise BadRequest(f"the request body is not an image Pillow can read ({len(data)} "
                         f"bytes; {type(e).__name__}); send a PNG, JPEG, BMP, GIF or WebP "
                         f"file") from None
    if size[0] * size[1] > MAX_PIXELS:
        raise BadRequest(f"image of {size[0]}x{size[1]} pixels is too large (at most "
                         f"{MAX_PIXELS:,} pixels)")
    try:
        x = load_image(io.BytesIO(data), size=(h, w), mode="L" if c == 1 else "RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise BadRequest(f"the image could not be decoded: {e}") from None
    if invert:
        x = 1.0 - x
    return np.ascontiguousarray(x, dtype=np.float32)


def em_dtype(em):
    """The model's float dtype (float32 unless it was built in float64)."""
    if em.model.dtype is None:
        return np.float32
    return np.dtype(em.model.dtype)


# ----------------------------------------------------------------------------- forward

def layer_outputs(em, x):
    """[(name, layer, output (per sample))] of every layer of the chain for one sample."""
    a = x[None].astype(em_dtype(em))
    out = []
    for name, layer in chain(em.model):
        a = layer.forward(a, training=False)
        out.append((name, layer, a[0]))
    return out


def forward(em, x, encoding="list"):
    """POST /api/forward -> {"predicted", "label", "probabilities", "input", "layers":
    [{"name", "class", "kind", "output_shape", "min", "max", "channels_shown", "output"}]}.

    ``probabilities`` are ``model.predict``; each layer's ``output`` is that layer's
    activation (``cnnlab.viz.all_feature_maps``), at most MAX_CHANNELS channels.
    ``encoding``: 'list' (floats) or 'base64' (float32 bytes) for ``input`` and ``output``."""
    if encoding not in ("list", "base64"):
        raise BadRequest(f"encoding must be 'list' or 'base64', got {encoding!r}")
    probs = em.model.predict(x[None])[0]
    predicted = int(np.argmax(probs))
    layers = []
    for name, layer, a in layer_outputs(em, x):
        shown = a[:MAX_CHANNELS] if a.ndim == 3 else a
        layers.append({"name": name, "class": type(layer).__name__, "kind": layer_kind(layer),
                       "output_shape": list(a.shape), "min": float(a.min()),
                       "max": float(a.max()),
                       "channels_shown": int(shown.shape[0]) if a.ndim == 3 else None,
                       "output": as_json_array(shown, encoding)})
    return {"predicted": predicted, "label": em.classes[predicted],
            "probabilities": [float(p) for p in probs], "input": as_json_array(x, encoding),
            "layers": layers}


# ----------------------------------------------------------------------------- one unit

def _window(a, ci, cj, k, s, d, p):
    """The k x k window of ``a`` (C, H, W) read by output (ci, cj), zeros where it falls
    in the padding. -> (window (C, kh, kw), rows, cols, inside mask (kh, kw))."""
    rows = s[0] * ci - p[0] + d[0] * np.arange(k[0])
    cols = s[1] * cj - p[1] + d[1] * np.arange(k[1])
    inside = (((rows >= 0) & (rows < a.shape[1]))[:, None]
              & ((cols >= 0) & (cols < a.shape[2]))[None])
    win = np.zeros((a.shape[0], k[0], k[1]), dtype=np.float64)
    rr, cc = np.clip(rows, 0, a.shape[1] - 1), np.clip(cols, 0, a.shape[2] - 1)
    win[:] = a[:, rr][:, :, cc]
    win[:, ~inside] = 0.0
    return win, rows, cols, inside


def _field(em, index, ci, cj):
    """Receptive field of unit (ci, cj) of chain link ``index`` on the input:
    [row0, col0, row1, col1] inclusive, clipped to the image; None if unknown."""
    try:
        (sy, sx), (oy, ox), (hy, hx) = receptive_field(chain(em.model)[:index + 1])
    except ValueError:
        return None
    _, h, w = em.model.input_shape
    cy, cx = sy * ci + oy, sx * cj + ox
    r0, c0 = math.ceil(cy - (hy - 1) / 2.0), math.ceil(cx - (hx - 1) / 2.0)
    return [max(r0, 0), max(c0, 0), min(r0 + hy - 1, h - 1), min(c0 + hx - 1, w - 1)]


def unit(em, x, layer_name, channel, row, col):
    """POST /api/unit?layer=&channel=&row=&col= -> the arithmetic of one unit.

    Dense (``channel`` = the unit, row = col = 0): see :func:`_dense_unit`.
    conv: ``window`` (C, kh, kw) of the layer's input, ``kernel`` (C, kh, kw), ``products``
    (their elementwise product), ``sum``, ``bias``, ``value`` = sum + bias, and ``output``
    (the model's own number, for comparison). pool: ``window`` (kh, kw) of the channel,
    ``op`` ('max' or 'mean'), ``value``. activation: ``input`` and ``value``. Every kind
    also gives ``field``, the unit's receptive field on the input."""
    i = _layer_index(em, layer_name)
    outs = layer_outputs(em, x)
    name, layer, out = outs[i]
    a_in = x.astype(np.float64) if i == 0 else outs[i - 1][2].astype(np.float64)
    kind = layer_kind(layer)
    if out.ndim == 1 and kind == "dense":
        return _dense_unit(name, layer, a_in, out, channel, None if i == 0 else outs[i - 1][0])
    if out.ndim != 3:
        raise BadRequest(f"layer {name!r} outputs shape {tuple(out.shape)}: units can be "
                         f"inspected on (C, H, W) feature maps and Dense outputs only")
    c, h, w = out.shape
    if not (0 <= channel < c and 0 <= row < h and 0 <= col < w):
        raise BadRequest(f"unit (channel {channel}, row {row}, col {col}) is outside layer "
                         f"{name!r} of shape {c}x{h}x{w}")
    res = {"layer": name, "class": type(layer).__name__, "kind": kind, "channel": channel,
           "row": row, "col": col, "output": float(out[channel, row, col]),
           "field": _field(em, i, row, col), "input_layer": None if i == 0 else outs[i - 1][0]}
    if kind == "conv":
        k, s, d, p = _geometry(layer)
        win, rows, cols, inside = _window(a_in, row, col, k, s, d, p)
        kern = layer.params["w"][channel].astype(np.float64)
        prod = win * kern
        total = float(prod.sum())
        bias = float(layer.params["b"][channel]) if "b" in layer.params else 0.0
        res.update({"window": as_json_array(win), "kernel": as_json_array(kern),
                    "products": as_json_array(prod), "sum": total, "bias": bias,
                    "value": total + bias, "rows": rows.tolist(), "cols": cols.tolist(),
                    "inside": inside.tolist(), "activation": layer.activation,
                    "geometry": {"kernel": list(k), "stride": list(s), "dilation": list(d),
                                 "padding": list(p)}})
    elif kind == "pool":
        k, s, d, p = _geometry(layer)
        win, rows, cols, inside = _window(a_in[channel:channel + 1], row, col, k, s, d, p)
        win = win[0]
        if isinstance(layer, MaxPool2D):
            # padding never wins a max (PyTorch semantics): only inside cells compete
            vals = np.where(inside, win, -np.inf)
            value, op = float(vals.max()), "max"
            arg = np.unravel_index(int(np.argmax(vals)), vals.shape)
            res["argmax"] = [int(arg[0]), int(arg[1])]
        else:
            value, op = float(win.sum() / win.size), "mean"
        res.update({"window": as_json_array(win), "op": op, "value": value,
                    "rows": rows.tolist(), "cols": cols.tolist(), "inside": inside.tolist(),
                    "geometry": {"kernel": list(k), "stride": list(s), "dilation": list(d),
                                 "padding": list(p)}})
    else:
        # elementwise layers (activations, batch norm, dropout) map one number to one
        # number; for a block (Residual, Concat) the input cell alone does not explain it
        elementwise = kind == "activation" or type(layer).__name__ in ("BatchNorm", "Dropout")
        res.update({"input": float(a_in[channel, row, col])
                    if elementwise and a_in.shape == out.shape else None,
                    "value": float(out[channel, row, col])})
    return res


def _dense_unit(name, layer, a_in, out, j, input_layer, top=8):
    """A Dense unit j: ``inputs`` (D_in,), ``weights`` (column j), ``products``, ``sum``,
    ``bias``, ``value`` = sum + bias, ``output`` (the model's), and ``top``: the indices of
    the ``top`` largest |products| (what the panel lists)."""
    if a_in.ndim != 1:
        raise BadRequest(f"Dense layer {name!r} reads a {a_in.ndim}-D input; only flat inputs "
                         f"are shown")
    if not 0 <= j < out.shape[0]:
        raise BadRequest(f"unit {j} is outside layer {name!r} of {out.shape[0]} units")
    wcol = layer.params["w"][:, j].astype(np.float64)
    prod = a_in * wcol
    total = float(prod.sum())
    bias = float(layer.params["b"][j]) if "b" in layer.params else 0.0
    order = np.argsort(-np.abs(prod), kind="stable")[:top]
    return {"layer": name, "class": type(layer).__name__, "kind": "dense", "channel": int(j),
            "row": 0, "col": 0, "output": float(out[j]), "field": None,
            "input_layer": input_layer, "inputs": as_json_array(a_in),
            "weights": as_json_array(wcol), "products": as_json_array(prod), "sum": total,
            "bias": bias, "value": total + bias, "top": [int(k) for k in order],
            "activation": layer.activation}


# ----------------------------------------------------------------------------- explanations

def _conv_layers(em):
    return [q for q, layer in chain(em.model) if isinstance(layer, Conv2D)]


def attribution(em, x, method, target=None, layer=None):
    """POST /api/attribution?method=saliency|gradcam[&target=k][&layer=name] ->
    {"method", "target", "layer", "map" (H, W), "scores"}: ``cnnlab.viz.saliency`` /
    ``cnnlab.viz.gradcam`` on the same input."""
    n = len(em.classes)
    if target is not None and not 0 <= target < n:
        raise BadRequest(f"target must be a class index in [0, {n - 1}], got {target}")
    if method == "saliency":
        r = saliency(em.model, x, target=target)
        lname = None
    elif method == "gradcam":
        if layer is not None:
            _layer_index(em, layer)
        try:
            r = gradcam(em.model, x, target=target, layer=layer)
        except (ValueError, KeyError) as e:
            raise BadRequest(f"Grad-CAM at layer {layer!r}: {e}") from None
        lname = r["layer"]
    else:
        raise BadRequest(f"method must be 'saliency' or 'gradcam', got {method!r}")
    return {"method": method, "target": int(r["target"]), "layer": lname,
            "map": as_json_array(r["map"]), "scores": [float(v) for v in r["scores"]]}


def filters(em, layer):
    """GET /api/filters?layer=name -> {"layer", "weights" (K, C, kh, kw), "bias" (K,)}."""
    i = _layer_index(em, layer)
    obj = chain(em.model)[i][1]
    if not isinstance(obj, Conv2D):
        raise BadRequest(f"layer {layer!r} is a {type(obj).__name__}, not a Conv2D: it has "
                         f"no filters; conv layers: {_conv_layers(em)}")
    b = obj.params.get("b")
    return {"layer": layer, "weights": as_json_array(obj.params["w"]),
            "bias": None if b is None else as_json_array(b)}


def conv_size(n, k, p, s, d):
    """GET /api/conv-size?n=&k=&p=&s=&d= -> {"output": floor((n + 2p - d(k-1) - 1)/s) + 1,
    "formula", "exact" (the stride tiles the input exactly)} or {"error": why invalid},
    by ``cnnlab.functional.conv_output_size``."""
    span = d * (k - 1) + 1
    formula = f"floor(({n} + 2*{p} - {d}*({k}-1) - 1) / {s}) + 1"
    try:
        out = F.conv_output_size(n, k, padding=p, stride=s, dilation=d)
    except ValueError as e:
        return {"error": str(e), "formula": formula, "span": span}
    return {"output": int(out), "formula": formula, "span": span,
            "exact": (n + 2 * p - span) % s == 0}
