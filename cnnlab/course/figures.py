"""The figures of the course experiments, drawn from the dicts the experiment functions
return. Each returns a ``matplotlib.figure.Figure`` (Agg canvas, no pyplot) whose title
states the setup (data size, epochs, seed); ``save(fig, path)`` writes a PNG."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .common import setup_text

LABELS = {"sgd": "SGD", "sgd_momentum": "SGD + momentum 0.9", "rmsprop": "RMSProp",
          "adam": "Adam"}


def new_figure(ncols, title, width=4.6, height=3.6):
    """A figure of ``ncols`` axes side by side with a title (two lines allowed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    fig.suptitle(title, fontsize=9)
    return fig, axes


def save(fig, path):
    """Write ``fig`` as a PNG, atomically (a temporary file renamed into place)."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"figures are PNG files: give a path ending in .png, got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        fig.savefig(tmp, format="png", dpi=110)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _epochs(values):
    return np.arange(1, len(values) + 1)


def _acc_axes(ax, what):
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{what} accuracy")
    ax.grid(alpha=0.3)


def plot_overfit(result, sweep=None):
    """Left: train/validation accuracy per epoch of the overfitting run; right (with
    ``sweep``): final training accuracy against weight scale per depth."""
    title = "Sanity check: overfit a small training set\n" + setup_text(result["setup"])
    if sweep is not None:
        title += "\nweight-scale sweep: " + setup_text(sweep["setup"])
    fig, axes = new_figure(2 if sweep is not None else 1, title)
    ax = axes[0]
    ax.plot(_epochs(result["train_acc"]), result["train_acc"], "o-", label="train")
    ax.plot(_epochs(result["val_acc"]), result["val_acc"], "s-", label="validation")
    ax.axhline(1.0, color="grey", lw=0.8, ls=":")
    ax.set_title(f"{result['setup']['layers']}-layer net")
    _acc_axes(ax, "")
    ax.legend()
    if sweep is not None:
        ax = axes[1]
        for depth, acc in sweep["final_train_acc"].items():
            ax.semilogx(sweep["weight_scales"], acc, "o-", label=f"{depth} layers")
        ax.set_xlabel("weight scale (std of the initial weights)")
        ax.set_ylabel("final training accuracy")
        ax.set_title("which weight scales overfit? (missing = diverged)")
        ax.grid(alpha=0.3)
        ax.legend()
    return fig


def _curves(axes, runs, label):
    for name, r in runs.items():
        lab = label(name)
        axes[0].plot(np.arange(1, len(r["loss"]) + 1), r["loss"], lw=0.7, alpha=0.8, label=lab)
        axes[1].plot(_epochs(r["train_acc"]), r["train_acc"], "o-", label=lab)
        axes[2].plot(_epochs(r["val_acc"]), r["val_acc"], "o-", label=lab)
    axes[0].set_xlabel("iteration")
    axes[0].set_ylabel("training loss")
    axes[0].grid(alpha=0.3)
    axes[0].set_title("training loss")
    _acc_axes(axes[1], "training")
    _acc_axes(axes[2], "validation")
    axes[1].set_title("training accuracy")
    axes[2].set_title("validation accuracy")
    axes[2].legend(fontsize=8)


def plot_update_rules(result):
    """Loss per iteration, train and validation accuracy per epoch, one line per rule."""
    fig, axes = new_figure(3, "Update rules\n" + setup_text(result["setup"]))
    _curves(axes, result["runs"],
            lambda n: f"{LABELS.get(n, n)} (lr {result['runs'][n]['lr']:g})")
    return fig


def plot_batchnorm_curves(result):
    """Training with and without batch norm."""
    fig, axes = new_figure(3, "Batch normalization\n" + setup_text(result["setup"]))
    _curves(axes, result["runs"], lambda n: n)
    return fig


def plot_weight_scale_sweep(result):
    """The course's three panels against weight scale (log axis): best validation and
    training accuracy and final training loss, with and without batch norm."""
    fig, axes = new_figure(3, "Weight initialization and batch normalization\n"
                           + setup_text(result["setup"]))
    ws = result["weight_scales"]
    for name in ("baseline", "batchnorm"):
        r = result[name]
        axes[0].semilogx(ws, r["best_val_acc"], "o-", label=name)
        axes[1].semilogx(ws, r["best_train_acc"], "o-", label=name)
        axes[2].semilogx(ws, r["final_loss"], "o-", label=name)
    for ax, t in zip(axes, ("best validation accuracy", "best training accuracy",
                            "final training loss")):
        ax.set_title(t)
        ax.set_xlabel("weight scale")
        ax.grid(alpha=0.3)
    axes[2].set_yscale("log")  # a diverging plain net reaches 1e7: keep the rest visible
    axes[0].legend()
    return fig


def plot_batch_size(result):
    """Training and validation accuracy per epoch for each batch size."""
    fig, axes = new_figure(2, "Batch size and batch normalization\n"
                           + setup_text(result["setup"]))
    for name, r in result["runs"].items():
        style = "--" if name.startswith("baseline") else "-"
        axes[0].plot(_epochs(r["train_acc"]), r["train_acc"], "o" + style, label=name)
        axes[1].plot(_epochs(r["val_acc"]), r["val_acc"], "o" + style, label=name)
    _acc_axes(axes[0], "training")
    _acc_axes(axes[1], "validation")
    axes[1].legend(fontsize=8)
    return fig


def plot_dropout(result):
    """Training (solid) and validation (dashed) accuracy per epoch for each keep
    probability."""
    fig, axes = new_figure(1, "Dropout\n" + setup_text(result["setup"]), width=6)
    ax = axes[0]
    for i, (keep, r) in enumerate(result["runs"].items()):
        c = f"C{i}"
        ax.plot(_epochs(r["train_acc"]), r["train_acc"], "o-", color=c,
                label=f"keep {keep:g}: train")
        ax.plot(_epochs(r["val_acc"]), r["val_acc"], "s--", color=c,
                label=f"keep {keep:g}: validation")
    _acc_axes(ax, "")
    ax.legend(fontsize=8)
    return fig


def plot_convnet(overfit, trained=None):
    """Left: the convnet overfitting a small set; right (with ``trained``): its
    first-layer filters after training (each filter's RGB weights min-max scaled)."""
    from ..viz import filters_image

    title = "Three-layer convnet\noverfit: " + setup_text(overfit["setup"])
    if trained is not None:
        title += "\nfilters: " + setup_text(trained["setup"])
    fig, axes = new_figure(2 if trained is not None else 1, title, height=4.0)
    ax = axes[0]
    ax.plot(_epochs(overfit["train_acc"]), overfit["train_acc"], "o-", label="train")
    ax.plot(_epochs(overfit["val_acc"]), overfit["val_acc"], "s-", label="validation")
    _acc_axes(ax, "")
    ax.legend()
    if trained is not None:
        axes[1].imshow(filters_image(trained["filters"]), interpolation="nearest")
        axes[1].set_axis_off()
        axes[1].set_title(f"first-layer filters (val acc {trained['val_acc'][-1]:.1%})")
    return fig
