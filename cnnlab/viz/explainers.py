"""Attribution methods, batched: which input pixels (gradient family) or which places of
a conv layer (CAM family) carry the evidence for a class.

Every function takes one sample (C, H, W) or a batch (N, C, H, W), a ``target`` (None:
the predicted class of each sample; an int for all; or one int per sample) and returns a
dict whose 'map' is (N, H, W) at the input's resolution (always a batch), plus 'target'
(N,) and 'scores' (N, classes), the raw class scores (before a trailing Softmax).

Gradient family (g = d score_c / d x):
    saliency              |g|, the largest over colour channels       (Simonyan et al. 2013)
    smoothgrad            mean over noisy copies x + e, e ~ N(0, (noise * (max x - min x))^2)
                          of |g(x + e)|                                (Smilkov et al. 2017)
    integrated_gradients  (x - b) * integral_0^1 g(b + a (x - b)) da  (Sundararajan et al. 2017)
    guided_backprop       g with every ReLU's backward also zeroing negative gradients
                                                                        (Springenberg et al. 2015)
CAM family, at a conv layer with maps A_k (N, K, h, w), G_k = d score_c / d A_k:
    gradcam     ReLU(sum_k mean_ij(G_k) A_k)                          (Selvaraju et al. 2017)
    gradcam++   ReLU(sum_k w_k A_k),  w_k = sum_ij a_kij ReLU(G_kij),
                a_kij = G^2 / (2 G^2 + sum_ab A_kab G^3)              (Chattopadhay et al. 2018)
    layercam    ReLU(sum_k ReLU(G_k) * A_k)   (elementwise)           (Jiang et al. 2021)
    scorecam    ReLU(sum_k p_k A_k),  p_k = softmax(f(x * M_k))_c, M_k = A_k upsampled to the
                input and scaled to [0, 1]: no gradients at all       (Wang et al. 2020)

Inference behaviour throughout (dropout off, batch norm on its running statistics), so
the samples of a batch are independent and one backward pass gives every sample's
gradient. Each method is checked in the tests against Captum (saliency, SmoothGrad,
integrated gradients, guided backprop, Grad-CAM) or the published formula computed by
PyTorch's autograd (Grad-CAM++, LayerCAM, Score-CAM). How far to trust each map on a
given net is measured by :func:`cnnlab.viz.faithfulness.deletion_insertion`.
"""
from __future__ import annotations

import numpy as np

from .. import functional as F

from ..layers import Concat, Container, Residual, Sequential
from ._graph import (backward_through, chain, forward_through, last_conv_index, model_dtype,
                     resolve_layer, score_layer)
from ._geometry import place_on_input

__all__ = ["METHODS", "explain", "gradcam_batch", "gradcam_plus_plus", "guided_backprop",
           "input_gradients", "integrated_gradients", "layercam", "method_key", "saliency_batch",
           "scorecam", "smoothgrad", "takes_layer"]


# ----------------------------------------------------------------------------- plumbing
def _batch(model, x):
    """x as an (N, C, H, W) array of the model's dtype."""
    x = np.asarray(x)
    if x.dtype.kind not in "fiub":
        raise TypeError(f"x must hold numbers, got dtype {x.dtype}")
    rank = len(model.input_shape)
    if x.ndim == rank:
        x = x[None]
    if x.ndim != rank + 1 or tuple(x.shape[1:]) != tuple(model.input_shape):
        raise ValueError(f"x must be one sample of shape {tuple(model.input_shape)} or a batch "
                         f"of them, got shape {x.shape}")
    if x.shape[0] == 0:
        raise ValueError("x is an empty batch")
    return x.astype(model_dtype(model))


def _targets(scores, target):
    """(N,) int class indices: argmax where ``target`` is None, else broadcast / checked."""
    n, k = scores.shape
    if target is None:
        return scores.argmax(axis=1)
    t = np.asarray(target)
    if t.dtype.kind not in "iu" and not (t.dtype.kind == "f" and np.all(t == np.round(t))):
        raise TypeError(f"target must be None, a class index or one per sample, got {target!r}")
    t = np.broadcast_to(t.astype(np.int64), (n,)) if t.ndim == 0 else t.astype(np.int64)
    if t.shape != (n,):
        raise ValueError(f"target must be one class index or {n} (one per sample), got shape "
                         f"{t.shape}")
    if t.min() < 0 or t.max() >= k:
        raise IndexError(f"target {t.min() if t.min() < 0 else t.max()} is out of range for "
                         f"{k} class scores")
    return np.array(t)


def _one_hot(scores, t):
    d = np.zeros_like(scores)
    d[np.arange(len(t)), t] = 1
    return d


def _is_relu(layer):
    return type(layer).__name__ == "ReLU" or getattr(layer, "activation", None) == "relu"


# Guided backprop must change the backward pass of ReLUs inside blocks too, so it runs
# the net itself, leaf by leaf, in the declared order (containers' own forward may fuse
# or reorder their children): Sequential = one after another, Residual = body(x) +
# shortcut(x), Concat = branches joined along its axis.
def _guided_forward(layer, x):
    if isinstance(layer, Sequential):
        for child in layer.layers:
            x = _guided_forward(child, x)
        return x
    if isinstance(layer, Residual):
        y = _guided_forward(layer.body, x)
        return y + (x if layer.shortcut is None else _guided_forward(layer.shortcut, x))
    if isinstance(layer, Concat):
        return np.concatenate([_guided_forward(b, x) for b in layer.branches], axis=layer.axis)
    if isinstance(layer, Container):
        raise ValueError(f"guided backprop does not know the block type {type(layer).__name__}")
    return layer.forward(x, training=False, cache=True)


def _guided_backward(layer, dout):
    """Backward of :func:`_guided_forward` with every ReLU's incoming gradient clamped to
    >= 0 first: relu(d) * [x > 0] = ReLU(d * [x > 0]), guided backprop's rule."""
    if isinstance(layer, Sequential):
        for child in reversed(layer.layers):
            dout = _guided_backward(child, dout)
        return dout
    if isinstance(layer, Residual):
        dx = _guided_backward(layer.body, dout)
        return dx + (dout if layer.shortcut is None else _guided_backward(layer.shortcut, dout))
    if isinstance(layer, Concat):
        axis = layer.axis % dout.ndim
        sizes = [b.output_shape[axis - 1] for b in layer.branches]
        parts = np.split(dout, np.cumsum(sizes)[:-1], axis=axis)
        return sum(_guided_backward(b, d) for b, d in zip(layer.branches, parts))
    if _is_relu(layer):
        dout = np.maximum(dout, 0)
    return layer.backward(dout)


def _normalized(maps):
    """Each map scaled to [0, 1] by its maximum (all-zero maps stay zero)."""
    top = maps.reshape(len(maps), -1).max(axis=1).reshape(-1, *([1] * (maps.ndim - 1)))
    return np.divide(maps, top, out=np.zeros_like(maps), where=top > 0)


# ----------------------------------------------------------------------- gradient family
def _scores(model, xb):
    """Class scores (N, classes) in float64, forward only (no caches kept)."""
    links = chain(model)[:score_layer(model) + 1]
    return forward_through(links, xb, cache=False).astype(np.float64)


def input_gradients(model, x, target=None, guided=False):
    """-> (scores (N, classes), target (N,), d score_target / d x (N, C, H, W), float64)."""
    xb = _batch(model, x)
    links = chain(model)[:score_layer(model) + 1]
    if guided:
        scores = xb
        for _, layer in links:
            scores = _guided_forward(layer, scores)
    else:
        scores = forward_through(links, xb, cache=True)
    t = _targets(scores, target)
    if guided:
        g = _one_hot(scores, t)
        for _, layer in reversed(links):
            g = _guided_backward(layer, g)
    else:
        g = backward_through(links, _one_hot(scores, t))
    return scores.astype(np.float64), t, g.astype(np.float64)


def saliency_batch(model, x, target=None):
    """Vanilla gradient: 'map' = max over channels of |g|, 'gradient' g (N, C, H, W)."""
    scores, t, g = input_gradients(model, x, target)
    return {"map": np.abs(g).max(axis=1), "gradient": g, "target": t, "scores": scores}


def smoothgrad(model, x, target=None, samples=25, noise=0.15, seed=0):
    """SmoothGrad: the mean of |g| over ``samples`` noisy copies of each input.

    The noise is ``rng.standard_normal((samples, N, C, H, W)) * sigma`` with
    ``rng = np.random.default_rng(seed)`` and sigma = ``noise`` * (max - min) of each
    sample (the paper's 10-20 %). The target is fixed by the clean input.
    -> 'map' (N, H, W) = max over channels of mean |g|, 'gradient' = mean g (N, C, H, W)."""
    samples = int(samples)
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    if not float(noise) >= 0:
        raise ValueError(f"noise must be >= 0 (a fraction of the input's range), got {noise!r}")
    xb = _batch(model, x)
    scores = _scores(model, xb)
    t = _targets(scores, target)
    flat = xb.reshape(len(xb), -1)
    sigma = (noise * (flat.max(axis=1) - flat.min(axis=1))).reshape(-1, *([1] * (xb.ndim - 1)))
    rng = np.random.default_rng(seed)
    total, total_abs = np.zeros(xb.shape), np.zeros(xb.shape)
    for _ in range(samples):
        e = rng.standard_normal(xb.shape) * sigma
        g = input_gradients(model, (xb + e).astype(xb.dtype), t)[2]
        total += g
        total_abs += np.abs(g)
    return {"map": (total_abs / samples).max(axis=1), "gradient": total / samples,
            "target": t, "scores": scores}


def _path_points(steps, method):
    """Points a in [0, 1] and weights w with integral_0^1 f ~ sum w f(a)."""
    if method == "gausslegendre":
        a, w = np.polynomial.legendre.leggauss(steps)
        return 0.5 * (a + 1), 0.5 * w
    if method == "riemann_trapezoid":
        if steps < 2:
            raise ValueError("riemann_trapezoid needs steps >= 2")
        w = np.full(steps, 1.0 / (steps - 1))
        w[[0, -1]] /= 2
        return np.linspace(0, 1, steps), w
    raise ValueError(f"method must be 'gausslegendre' or 'riemann_trapezoid', got {method!r}")


def integrated_gradients(model, x, target=None, baseline=0.0, steps=50,
                         method="gausslegendre"):
    """Integrated gradients along the straight path from ``baseline`` (a number or an
    array broadcastable to x; default black) to x.

    -> 'attribution' (N, C, H, W); 'map' = sum over channels of |attribution|;
    'delta' (N,): sum(attribution) - (score(x) - score(baseline)), the completeness
    error (0 for the exact integral: a large delta says: more steps)."""
    steps = int(steps)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    xb = _batch(model, x)
    base = np.broadcast_to(np.asarray(baseline, dtype=np.float64), xb.shape)
    scores = _scores(model, xb)
    t = _targets(scores, target)
    base_scores = _scores(model, base.astype(xb.dtype))
    alphas, weights = _path_points(steps, method)
    total = np.zeros(xb.shape)
    diff = xb.astype(np.float64) - base
    for a, w in zip(alphas, weights):
        total += w * input_gradients(model, (base + a * diff).astype(xb.dtype), t)[2]
    attr = diff * total
    n = np.arange(len(t))
    delta = attr.reshape(len(t), -1).sum(axis=1) - (scores[n, t] - base_scores[n, t])
    return {"map": np.abs(attr).sum(axis=1), "attribution": attr, "delta": delta,
            "target": t, "scores": scores}


def guided_backprop(model, x, target=None):
    """Guided backprop: 'map' = max over channels of |g_guided|, 'gradient' (N, C, H, W).
    Reaches the ReLUs inside Sequential, Residual and Concat blocks too."""
    scores, t, g = input_gradients(model, x, target, guided=True)
    return {"map": np.abs(g).max(axis=1), "gradient": g, "target": t, "scores": scores}


# ---------------------------------------------------------------------------- CAM family
def _layer_grads(model, x, target, layer):
    """-> (xb, head links, a (N, K, h, w), scores, target, d score_t / d a, layer name)."""
    xb = _batch(model, x)
    links = chain(model)
    i = last_conv_index(model) if layer is None else resolve_layer(model, layer)
    j = score_layer(model)
    if i >= j:
        raise ValueError(f"a CAM needs a conv layer before the class scores; {links[i][0]!r} "
                         f"is not")
    head, tail = links[:i + 1], links[i + 1:j + 1]
    a = forward_through(head, xb, cache=False)
    if a.ndim != 4:
        raise ValueError(f"a CAM needs a layer with 2-D maps (N, K, h, w); {links[i][0]!r} "
                         f"outputs shape {a.shape}")
    scores = forward_through(tail, a, cache=True)
    t = _targets(scores, target)
    g = backward_through(tail, _one_hot(scores, t))
    return (xb, head, a.astype(np.float64), scores.astype(np.float64), t, g.astype(np.float64),
            links[i][0])


def _cam_result(xb, head, cam, t, scores, name, weights=None):
    up = np.stack([place_on_input(c, head, xb.shape[2:]) for c in cam])
    out = {"map": _normalized(up), "cam": cam, "layer": name, "target": t, "scores": scores}
    if weights is not None:
        out["weights"] = weights
    return out


def gradcam_batch(model, x, target=None, layer=None):
    """Grad-CAM at ``layer`` (default: the last conv layer, or its activation).
    -> 'map' (N, H, W) in [0, 1], 'cam' (N, h, w) unnormalized, 'weights' (N, K)."""
    xb, head, a, scores, t, g, name = _layer_grads(model, x, target, layer)
    w = g.mean(axis=(2, 3))
    cam = np.maximum(np.einsum("nk,nkij->nij", w, a), 0)
    return _cam_result(xb, head, cam, t, scores, name, w)


def gradcam_plus_plus(model, x, target=None, layer=None):
    """Grad-CAM++ (the closed form of the paper, with the exponential of the score)."""
    xb, head, a, scores, t, g, name = _layer_grads(model, x, target, layer)
    g2, g3 = g ** 2, g ** 3
    denom = 2 * g2 + a.sum(axis=(2, 3), keepdims=True) * g3
    alpha = np.divide(g2, denom, out=np.zeros_like(g), where=denom != 0)
    w = (alpha * np.maximum(g, 0)).sum(axis=(2, 3))
    cam = np.maximum(np.einsum("nk,nkij->nij", w, a), 0)
    return _cam_result(xb, head, cam, t, scores, name, w)


def layercam(model, x, target=None, layer=None):
    """LayerCAM: every place weighted by its own positive gradient."""
    xb, head, a, scores, t, g, name = _layer_grads(model, x, target, layer)
    cam = np.maximum((np.maximum(g, 0) * a).sum(axis=1), 0)
    return _cam_result(xb, head, cam, t, scores, name)


def scorecam(model, x, target=None, layer=None, batch_size=64):
    """Score-CAM: each map, upsampled and scaled to [0, 1], masks the input; the class
    probability of the masked input is the map's weight (N * K forward passes).
    -> also 'masks' (N, K, H, W)."""
    xb, head, a, scores, t, _, name = _layer_grads(model, x, target, layer)
    links = chain(model)[:score_layer(model) + 1]
    n, k = a.shape[:2]
    masks = np.stack([[place_on_input(m, head, xb.shape[2:]) for m in maps] for maps in a])
    lo = masks.min(axis=(2, 3), keepdims=True)
    span = masks.max(axis=(2, 3), keepdims=True) - lo
    masks = np.divide(masks - lo, span, out=np.zeros_like(masks), where=span > 0)
    masked = (xb[:, None].astype(np.float64) * masks[:, :, None]).reshape(n * k, *xb.shape[1:])
    probs = np.empty(n * k)
    rows = np.repeat(t, k)
    for s in range(0, n * k, int(batch_size)):
        out = forward_through(links, masked[s:s + batch_size].astype(xb.dtype), cache=False)
        probs[s:s + batch_size] = F.softmax(out.astype(np.float64), axis=1)[
            np.arange(len(out)), rows[s:s + batch_size]]
    w = probs.reshape(n, k)
    cam = np.maximum(np.einsum("nk,nkij->nij", w, a), 0)
    res = _cam_result(xb, head, cam, t, scores, name, w)
    res["masks"] = masks
    return res


# ------------------------------------------------------------------------------ dispatch
#: name -> (function, takes a layer)
METHODS = {
    "saliency": (saliency_batch, False),
    "smoothgrad": (smoothgrad, False),
    "integrated_gradients": (integrated_gradients, False),
    "guided_backprop": (guided_backprop, False),
    "gradcam": (gradcam_batch, True),
    "gradcam++": (gradcam_plus_plus, True),
    "layercam": (layercam, True),
    "scorecam": (scorecam, True),
}


def method_key(method):
    """The :data:`METHODS` key of a method name ('-' and '_' alike; 'gradcam_pp' and
    'gradcam-pp' mean 'gradcam++'; 'ig' integrated gradients)."""
    key = str(method).lower().replace("-", "_")
    key = {"gradcam_pp": "gradcam++", "gradcam_plus_plus": "gradcam++",
           "ig": "integrated_gradients"}.get(key, key)
    if key not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    return key


def takes_layer(method):
    """True for the CAM family (they explain at a conv layer)."""
    return METHODS[method_key(method)][1]


def explain(model, x, method="gradcam", target=None, layer=None, **options):
    """Any method of :data:`METHODS` by name (see :func:`method_key`); ``layer`` only for
    the CAM family. -> the method's dict."""
    key = method_key(method)
    func, takes_layer = METHODS[key]
    if takes_layer:
        return func(model, x, target, layer, **options)
    if layer is not None:
        raise ValueError(f"{key} attributes to the input; it takes no layer (got {layer!r})")
    return func(model, x, target, **options)
