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

from . import explainers
from ._geometry import place_on_input  # noqa: F401  (its home was here; kept importable)
from ._graph import as_batch, chain, forward_through, model_dtype, score_layer
from ._plot import new_figure, normalize, save_figure, to_hwc


def class_scores(model, x):
    """Raw class scores (before a trailing Softmax layer) of one sample -> (classes,)."""
    xb, _ = as_batch(x, model)
    links = chain(model)[:score_layer(model) + 1]
    return forward_through(links, xb.astype(model_dtype(model)), cache=False)[0]


def _one_sample(x, model, who):
    """``x`` as a batch of one, its dtype kept (the explainers cast to the model's)."""
    xb, single = as_batch(x, model)
    if xb.shape[0] != 1:
        raise ValueError(f"{who} takes one sample (C, H, W), got a batch of {xb.shape[0]}")
    return np.asarray(x)[None] if single else np.asarray(x)


def _first(result, keys):
    """Sample 0 of a batched result of :mod:`cnnlab.viz.explainers`."""
    out = {k: result[k][0] for k in keys}
    out["target"] = int(result["target"][0])
    return out


def saliency(model, x, target=None):
    """Vanilla-gradient saliency of one sample ``x`` (C, H, W) for class ``target``
    (default: the predicted class). -> dict 'map' (H, W) = max_c |d score / d x|,
    'gradient' (C, H, W), 'target', 'scores'. (The batched form:
    :func:`cnnlab.viz.explainers.saliency_batch`.)"""
    res = explainers.saliency_batch(model, _one_sample(x, model, "saliency"), target)
    return _first(res, ("map", "gradient", "scores"))


def gradcam(model, x, target=None, layer=None):
    """Grad-CAM of one sample ``x`` for class ``target`` (default: predicted) at conv
    ``layer`` (default: the last conv layer, or the activation right after it).

    -> dict 'map' (H, W) in [0, 1] at the input's resolution, 'cam' (the map at the
    layer's resolution, not normalized), 'weights' (alpha_k), 'layer', 'target', 'scores'.
    (The batched form: :func:`cnnlab.viz.explainers.gradcam_batch`.)"""
    res = explainers.gradcam_batch(model, _one_sample(x, model, "gradcam"), target, layer)
    out = _first(res, ("map", "cam", "weights", "scores"))
    out["layer"] = res["layer"]
    return out


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
