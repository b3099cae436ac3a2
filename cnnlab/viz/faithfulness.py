"""Numbers that say whether to trust an attribution map.

- Deletion (Petsiuk et al. 2018, RISE): remove the pixels in the map's order, most
  important first (set to ``deletion_substrate``, default 0), and follow the class
  probability. A faithful map makes it fall fast: a LOW area under the curve is good.
- Insertion: start from a blurred copy and put the pixels back in the same order. A
  faithful map makes the probability rise fast: a HIGH area is good.
- Average Drop and Increase in Confidence (Chattopadhay et al. 2018, Grad-CAM++): show
  the net only x * map (the map scaled to [0, 1]); Y = p_c(x), O = p_c(x * map):
  average drop = mean(max(0, Y - O) / Y) (low is good), increase = share of samples with
  O > Y (high is good). Both are fractions here (the papers print percentages).

Baselines that any method must beat: :func:`random_map` and :func:`center_map` (a blob
in the middle, which on centred digits is a strong baseline).
"""
from __future__ import annotations

import numpy as np

from .. import functional as F
from ._imageops import gaussian_blur

from ._graph import chain, forward_through, model_dtype, score_layer

__all__ = ["blur", "center_map", "compare_methods", "deletion_insertion", "format_comparison",
           "random_map"]


def random_map(shape, seed=0):
    """(N, H, W) maps of independent uniform numbers (a map that knows nothing)."""
    return np.random.default_rng(seed).random(tuple(shape))


def center_map(shape, sigma=0.25):
    """(N, H, W) Gaussian blobs at the centre, ``sigma`` as a fraction of the side."""
    n, h, w = shape
    yy = (np.arange(h) - (h - 1) / 2) / (sigma * h)
    xx = (np.arange(w) - (w - 1) / 2) / (sigma * w)
    blob = np.exp(-0.5 * (yy[:, None] ** 2 + xx[None, :] ** 2))
    return np.broadcast_to(blob, (n, h, w)).copy()


def blur(x, sigma=5.0):
    """Gaussian blur of (N, C, H, W) images over H and W (the viz tools' blur, one image at
    a time), the insertion curve's starting point (RISE blurs with sigma 5 on 224x224;
    scale it for small inputs)."""
    x = np.asarray(x, dtype=np.float64)
    return np.stack([gaussian_blur(img, sigma) for img in x])


def _probabilities(model, x, rows, batch_size):
    links = chain(model)[:score_layer(model) + 1]
    out = np.empty(len(x))
    for s in range(0, len(x), batch_size):
        z = forward_through(links, x[s:s + batch_size].astype(model_dtype(model)),
                            cache=False).astype(np.float64)
        p = F.softmax(z, axis=1)
        out[s:s + batch_size] = p[np.arange(len(z)), rows[s:s + batch_size]]
    return out


def _auc(curves):
    """Trapezoid area under curves sampled at equal steps over [0, 1]."""
    s = curves.shape[1] - 1
    return (curves[:, :-1] + curves[:, 1:]).sum(axis=1) / (2 * s)


def deletion_insertion(model, x, maps, target=None, steps=28, deletion_substrate=0.0,
                       insertion_substrate="blur", blur_sigma=None, batch_size=256):
    """Deletion and insertion curves of ``maps`` (N, H, W) for inputs ``x`` (N, C, H, W).

    target: None (the predicted class of each clean input), an int, or one per sample.
    steps: points of the curves beyond the start (each step moves H*W/steps pixels, all
    channels of a pixel at once). Pixels are taken in decreasing map value (ties in
    raster order). insertion_substrate: 'blur' (x blurred with ``blur_sigma``, default
    H/6) or a number. -> dict 'fractions' (steps+1,), 'deletion' and 'insertion' curves
    (N, steps+1), their areas 'deletion_auc' / 'insertion_auc' (N,), 'average_drop',
    'increase_in_confidence' (floats), 'target' (N,), 'probability' p_c(x) (N,)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == len(model.input_shape):
        x = x[None]
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim == 2:
        maps = maps[None]
    n, c, h, w = x.shape
    if maps.shape != (n, h, w):
        raise ValueError(f"maps must be (N, H, W) = {(n, h, w)} to match x {x.shape}, got "
                         f"{maps.shape}")
    if not np.isfinite(maps).all():
        raise ValueError("maps hold NaN or inf")
    steps = int(steps)
    if not 1 <= steps <= h * w:
        raise ValueError(f"steps must be in 1..{h * w} (the pixels), got {steps}")
    links = chain(model)[:score_layer(model) + 1]
    clean = forward_through(links, x.astype(model_dtype(model)), cache=False).astype(np.float64)
    if target is None:
        t = clean.argmax(axis=1)
    else:
        t = np.broadcast_to(np.asarray(target, dtype=np.int64), (n,)).copy()
        if t.min() < 0 or t.max() >= clean.shape[1]:
            raise IndexError(f"target out of range for {clean.shape[1]} classes")
    if isinstance(insertion_substrate, str):
        if insertion_substrate != "blur":
            raise ValueError(f"insertion_substrate must be 'blur' or a number, got "
                             f"{insertion_substrate!r}")
        start = blur(x, h / 6 if blur_sigma is None else float(blur_sigma))
    else:
        start = np.full_like(x, float(insertion_substrate))
    gone = np.full_like(x[0], float(deletion_substrate))

    counts = np.round(np.arange(steps + 1) * (h * w) / steps).astype(int)
    deletion, insertion = np.empty((n, steps + 1)), np.empty((n, steps + 1))
    for i in range(n):
        order = np.argsort(-maps[i].ravel(), kind="stable")
        rank = np.empty(h * w, dtype=np.int64)
        rank[order] = np.arange(h * w)
        taken = (rank[None, :] < counts[:, None]).reshape(steps + 1, 1, h, w)
        rows = np.full(steps + 1, t[i])
        deletion[i] = _probabilities(model, np.where(taken, gone, x[i]), rows, batch_size)
        insertion[i] = _probabilities(model, np.where(taken, x[i], start[i]), rows, batch_size)

    top = maps.reshape(n, -1).max(axis=1).reshape(n, 1, 1)
    lo = maps.reshape(n, -1).min(axis=1).reshape(n, 1, 1)
    unit = np.divide(maps - lo, top - lo, out=np.zeros_like(maps), where=top > lo)
    y = F.softmax(clean, axis=1)[np.arange(n), t]  # p_c(x), from the scores above
    o = _probabilities(model, x * unit[:, None], t, batch_size)
    return {"fractions": counts / (h * w), "deletion": deletion, "insertion": insertion,
            "deletion_auc": _auc(deletion), "insertion_auc": _auc(insertion),
            "average_drop": float(np.mean(np.maximum(0, y - o) / np.maximum(y, 1e-12))),
            "increase_in_confidence": float(np.mean(o > y)), "target": t, "probability": y}


def compare_methods(model, x, methods=None, target=None, steps=28, baselines=True,
                    batch_size=50, layer=None, seed=0):
    """Deletion / insertion areas of several attribution methods on the inputs ``x``.

    methods: names of :data:`cnnlab.viz.explainers.METHODS` (default all); ``baselines``
    adds the 'random' and 'centre' maps. Inputs are explained ``batch_size`` at a time.
    -> list of dicts, one per method: 'method', 'deletion_auc', 'insertion_auc' (means),
    'average_drop', 'increase_in_confidence', 'seconds_per_image' (the map alone)."""
    import time

    from . import explainers as explain

    x = np.asarray(x)
    names = list(explain.METHODS) if methods is None else [explain.method_key(m) for m in methods]
    if baselines:
        names += ["random", "centre"]
    rows = []
    for name in names:
        maps, secs = [], 0.0
        for s in range(0, len(x), batch_size):
            xb = x[s:s + batch_size]
            t0 = time.perf_counter()
            if name == "random":
                maps.append(random_map((len(xb),) + xb.shape[2:], seed + s))
            elif name == "centre":
                maps.append(center_map((len(xb),) + xb.shape[2:]))
            else:
                opts = {"seed": seed} if name == "smoothgrad" else {}
                maps.append(explain.explain(model, xb, name, target,
                                            layer if explain.takes_layer(name) else None,
                                            **opts)["map"])
            secs += time.perf_counter() - t0
        r = deletion_insertion(model, x, np.concatenate(maps), target=target, steps=steps)
        rows.append({"method": name, "deletion_auc": float(r["deletion_auc"].mean()),
                     "insertion_auc": float(r["insertion_auc"].mean()),
                     "average_drop": r["average_drop"],
                     "increase_in_confidence": r["increase_in_confidence"],
                     "seconds_per_image": secs / len(x)})
    return rows


def format_comparison(rows):
    """The rows of :func:`compare_methods` as a fixed-width table."""
    lines = [f"{'method':<22}{'deletion AUC (low)':>20}{'insertion AUC (high)':>22}"
             f"{'avg drop':>10}{'increase':>10}{'ms/image':>10}"]
    for r in rows:
        lines.append(f"{r['method']:<22}{r['deletion_auc']:>20.3f}{r['insertion_auc']:>22.3f}"
                     f"{r['average_drop']:>10.3f}{r['increase_in_confidence']:>10.3f}"
                     f"{1e3 * r['seconds_per_image']:>10.2f}")
    return "\n".join(lines)
