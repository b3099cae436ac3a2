"""Pictures for :mod:`cnnlab.viz.explainers` and :mod:`cnnlab.viz.faithfulness`: one row per
input, one column per method; and the deletion / insertion curves."""
from __future__ import annotations

import numpy as np

from ._plot import new_figure, normalize, save_figure, to_hwc

#: column titles
LABELS = {"saliency": "saliency", "smoothgrad": "SmoothGrad",
          "integrated_gradients": "integrated gradients", "guided_backprop": "guided backprop",
          "gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++", "layercam": "LayerCAM",
          "scorecam": "Score-CAM"}
_ON_TOP = {"gradcam", "gradcam++", "layercam", "scorecam"}


def plot_explanations(x, results, path=None, title=None, class_names=None):
    """``x`` (N, C, H, W); ``results``: {method: the method's dict for the batch x}.
    CAM maps are drawn over the input, gradient maps on their own (hot, per-image scale)."""
    xs = np.asarray(x)
    if xs.ndim == 3:
        xs = xs[None]
    methods = list(results)
    n, cols = len(xs), 1 + len(methods)
    fig = new_figure(figsize=(2.1 * cols, 2.1 * n + 0.7))
    first = results[methods[0]]
    for r in range(n):
        base = normalize(to_hwc(xs[r]), per_channel=False)
        ax = fig.add_subplot(n, cols, cols * r + 1)
        ax.imshow(base, cmap="gray", interpolation="nearest")
        t, p = int(first["target"][r]), int(np.argmax(first["scores"][r]))
        name = (lambda k: str(k) if class_names is None else class_names[k])
        ax.set_title(f"class {name(t)} (pred. {name(p)})", fontsize=8)
        for c, m in enumerate(methods):
            ax = fig.add_subplot(n, cols, cols * r + 2 + c)
            mp = results[m]["map"][r]
            if m in _ON_TOP:
                ax.imshow(base, cmap="gray", interpolation="nearest")
                ax.imshow(mp, cmap="jet", alpha=0.45, vmin=0, vmax=max(mp.max(), 1e-12),
                          interpolation="bilinear")
            else:
                ax.imshow(mp, cmap="hot", interpolation="nearest")
            if r == 0:
                ax.set_title(LABELS.get(m, m), fontsize=8)
    for ax in fig.axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title or "Where is the evidence? Eight attribution methods", fontsize=10)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_deletion_insertion(curves, path=None, title=None):
    """``curves``: {label: deletion_insertion(...) dict}; mean curves with their areas."""
    fig = new_figure(figsize=(10, 4))
    for k, kind in enumerate(("deletion", "insertion")):
        ax = fig.add_subplot(1, 2, k + 1)
        for label, r in curves.items():
            ax.plot(r["fractions"], r[kind].mean(axis=0),
                    label=f"{label} (AUC {r[kind + '_auc'].mean():.3f})")
        ax.set_xlabel(f"fraction of pixels {'removed' if kind == 'deletion' else 'inserted'}")
        ax.set_ylabel("probability of the class")
        ax.set_title(f"{kind} ({'lower' if kind == 'deletion' else 'higher'} is better)",
                     fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(title or "Faithfulness: deletion and insertion curves", fontsize=10)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig
