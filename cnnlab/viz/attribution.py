"""Which pixels does a class score depend on?

- Saliency (Simonyan et al. 2013, "vanilla gradient"): |d score_c / d x|, the largest
  over colour channels: how much a small change of each pixel would change the score.
- Grad-CAM (Selvaraju et al. 2017): at a conv layer with maps A_k, weight each map by
  the mean gradient of the score over it, alpha_k = mean_ij d score_c / d A_k[i, j]; the
  map is ReLU(sum_k alpha_k A_k), upsampled to the input size: WHERE the evidence for
  class c is, at the conv layer's resolution.

The layer trades meaning for resolution. The paper uses the last conv layer; in LeNet-5 on
MNIST that is a 10x10 map whose cells each see 14x14 of the 28x28 pixels, so the map is
a coarse blob around the digit, often brightest beside the strokes (blank space is
evidence too: a "1" is a stroke with nothing on either side). At the first conv block
(``layer='max_pool2d'``, 14x14, 6x6 fields) the map follows the ink.

Scores are taken before a final Softmax layer (raw class scores). Gradients use
inference behaviour (dropout off, batch norm running statistics).
"""
from __future__ import annotations

import numpy as np

from ._graph import (as_batch, backward_through, chain, forward_through, last_conv_index,
                     model_dtype, resolve_layer, score_layer)
from ._geometry import receptive_field
from ._plot import new_figure, normalize, resize, save_figure, to_hwc


def place_on_input(cam, links, size):
    """Upsample a (h, w) map of the layer reached by ``links`` to the input ``size``
    (H, W), bilinearly, each cell at the centre of its receptive field (exact for
    'valid' convs, where a plain resize would shift and stretch the map). Falls back to a
    plain resize when the layers' geometry is unknown."""
    try:
        (sy, sx), (oy, ox), _ = receptive_field(links, nsp=2)
    except ValueError:
        return resize(cam, size)
    h, w = cam.shape
    ys = np.clip((np.arange(size[0]) - oy) / sy, 0, h - 1)
    xs = np.clip((np.arange(size[1]) - ox) / sx, 0, w - 1)
    rows = np.stack([np.interp(ys, np.arange(h), cam[:, j]) for j in range(w)], axis=1)
    return np.stack([np.interp(xs, np.arange(w), rows[i]) for i in range(size[0])], axis=0)


def _one_hot_like(scores, target):
    if not 0 <= target < scores.shape[1]:
        raise IndexError(f"class {target} is out of range for {scores.shape[1]} class scores")
    d = np.zeros_like(scores)
    d[0, target] = 1.0
    return d


def class_scores(model, x):
    """Raw class scores (before a trailing Softmax layer) of one sample -> (classes,)."""
    xb, _ = as_batch(x, model)
    links = chain(model)[:score_layer(model) + 1]
    return forward_through(links, xb.astype(model_dtype(model)), cache=False)[0]


def saliency(model, x, target=None):
    """Vanilla-gradient saliency of one sample ``x`` (C, H, W) for class ``target``
    (default: the predicted class). -> dict 'map' (H, W) = max_c |d score / d x|,
    'gradient' (C, H, W), 'target', 'scores'."""
    xb, _ = as_batch(x, model)
    if xb.shape[0] != 1:
        raise ValueError(f"saliency takes one sample (C, H, W), got a batch of {xb.shape[0]}")
    links = chain(model)[:score_layer(model) + 1]
    scores = forward_through(links, xb.astype(model_dtype(model)), cache=True)
    target = int(np.argmax(scores[0])) if target is None else int(target)
    g = backward_through(links, _one_hot_like(scores, target))[0].astype(np.float64)
    return {"map": np.abs(g).max(axis=0), "gradient": g, "target": target,
            "scores": scores[0].astype(np.float64)}


def gradcam(model, x, target=None, layer=None):
    """Grad-CAM of one sample ``x`` for class ``target`` (default: predicted) at conv
    ``layer`` (default: the last conv layer, or the activation right after it).

    -> dict 'map' (H, W) in [0, 1] at the input's resolution, 'cam' (the map at the
    layer's resolution, not normalized), 'weights' (alpha_k), 'layer', 'target', 'scores'."""
    xb, _ = as_batch(x, model)
    if xb.shape[0] != 1:
        raise ValueError(f"gradcam takes one sample (C, H, W), got a batch of {xb.shape[0]}")
    links = chain(model)
    i = last_conv_index(model) if layer is None else resolve_layer(model, layer)
    j = score_layer(model)
    if i >= j:
        raise ValueError(f"Grad-CAM needs a conv layer before the class scores; "
                         f"{links[i][0]!r} is not")
    head, tail = links[:i + 1], links[i + 1:j + 1]
    a = forward_through(head, xb.astype(model_dtype(model)), cache=False)
    if a.ndim != 4:
        raise ValueError(f"Grad-CAM needs a layer with 2-D maps (N, K, H, W); {links[i][0]!r} "
                         f"outputs shape {a.shape}")
    scores = forward_through(tail, a, cache=True)
    target = int(np.argmax(scores[0])) if target is None else int(target)
    da = backward_through(tail, _one_hot_like(scores, target))[0].astype(np.float64)
    weights = da.mean(axis=(1, 2))
    cam = np.maximum(np.tensordot(weights, a[0].astype(np.float64), axes=1), 0.0)
    up = place_on_input(cam, head, xb.shape[2:])
    top = up.max()
    return {"map": up / top if top > 0 else up, "cam": cam, "weights": weights,
            "layer": links[i][0], "target": target, "scores": scores[0].astype(np.float64)}


def _base(x):
    img = to_hwc(np.asarray(x))
    return normalize(img, per_channel=False)


def plot_attribution(x, results, path=None, title=None, class_names=None,
                     show=("saliency", "gradcam")):
    """Rows of (input, then one column per entry of ``show``) for several samples.

    ``x``: (N, C, H, W) (or one sample); ``results``: a list (one per sample) of dicts
    holding, under each key of ``show``, the output of :func:`saliency` (key 'saliency')
    or of :func:`gradcam` (keys 'gradcam' or 'gradcam:<layer>', e.g. two layers)."""
    xs = np.asarray(x)
    if xs.ndim == 3:
        xs = xs[None]
    show = tuple(show)
    if not show or any(s != "saliency" and not s.startswith("gradcam") for s in show):
        raise ValueError(f"show must name 'saliency' and/or 'gradcam[:layer]', got {show!r}")
    n, cols = len(results), 1 + len(show)
    fig = new_figure(figsize=(2.3 * cols, 2.3 * n + 0.6))
    for r, res in enumerate(results):
        base = _base(xs[r])
        first = res[show[0]]
        name = str(first["target"]) if class_names is None else class_names[first["target"]]
        ax = fig.add_subplot(n, cols, cols * r + 1)
        ax.imshow(base, cmap="gray", interpolation="nearest")
        pred = int(np.argmax(first["scores"]))
        pname = str(pred) if class_names is None else class_names[pred]
        ax.set_title(f"input (predicted {pname})", fontsize=8)
        for k, kind in enumerate(show):
            ax = fig.add_subplot(n, cols, cols * r + 2 + k)
            if kind == "saliency":
                ax.imshow(res["saliency"]["map"], cmap="hot", interpolation="nearest")
                ax.set_title(f"saliency |d score[{name}] / dx|", fontsize=8)
            else:
                cam = res[kind]
                ax.imshow(base, cmap="gray", interpolation="nearest")
                ax.imshow(cam["map"], cmap="jet", alpha=0.45, vmin=0, vmax=1,
                          interpolation="bilinear")
                h, w = cam["cam"].shape
                empty = "\n(no positive evidence here)" if not cam["cam"].any() else ""
                ax.set_title(f"Grad-CAM {name} at {cam['layer']} ({h}x{w}){empty}", fontsize=8)
        for a in fig.axes[-cols:]:
            a.set_xticks([])
            a.set_yticks([])
    words = " and ".join(dict.fromkeys("Saliency" if s == "saliency" else "Grad-CAM" for s in show))
    fig.suptitle(title or f"Where is the evidence for the class? {words}", fontsize=10)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig
