"""The picture of :mod:`cnnlab.viz.fully_conv`: digits on a larger canvas, the converted
net's grid of predictions, and the check against sliding windows."""
from __future__ import annotations

import numpy as np

from ..functional import softmax
from ._plot import new_figure, save_figure
from .fully_conv import conversion_table, sliding_window_scores, to_fully_convolutional, total_stride


def digits_canvas(digits, positions, size):
    """Paste 1-channel digits (k, 1, h, w) at (row, col) ``positions`` on a black canvas
    (1, size, size) (overlaps keep the brighter pixel)."""
    canvas = np.zeros((1, size, size), dtype=np.float32)
    for d, (r, c) in zip(digits, positions):
        h, w = d.shape[-2:]
        canvas[0, r:r + h, c:c + w] = np.maximum(canvas[0, r:r + h, c:c + w], d[0])
    return canvas


def fc_to_conv_demo(model, canvas):
    """Scores of the converted net on ``canvas`` (C, H, W), the sliding-window scores
    (with and without context) and the differences. -> dict."""
    fcn = to_fully_convolutional(model)
    grid = fcn.forward(canvas[None], training=False)[0]
    win = sliding_window_scores(model, canvas[None], context=True)[0]
    crop = sliding_window_scores(model, canvas[None], context=False)[0]
    return {"fcn": fcn, "scores": grid, "windows": win, "zero_padded_windows": crop,
            "max_diff": float(np.abs(grid - win).max()),
            "max_diff_zero_padded": float(np.abs(grid - crop).max()),
            "stride": total_stride(model), "table": conversion_table(model)}


def plot_fc_to_conv(model, canvas, demo, path=None):
    """Canvas with the first and last windows outlined | predicted digit per window
    (shade = probability) | the conversion table and the check."""
    from matplotlib.patches import Rectangle

    probs = softmax(demo["scores"], axis=0)
    pred, conf = probs.argmax(axis=0), probs.max(axis=0)
    gh, gw = pred.shape
    sy, sx = demo["stride"]
    _, h, w = model.input_shape
    fig = new_figure(figsize=(13, 4.8))
    ax = fig.add_subplot(1, 3, 1)
    ax.imshow(canvas[0], cmap="gray", interpolation="nearest")
    marks = (((0, 0), "#1f77b4"), ((gh - 1, gw - 1), "#d62728"), ((0, 1), "#2ca02c"))
    for (i, j), color in marks:
        ax.add_patch(Rectangle((j * sx - 0.5, i * sy - 0.5), w, h, fill=False, edgecolor=color, lw=2))
    ax.set_title(f"input {canvas.shape[1]}x{canvas.shape[2]}; windows {h}x{w} every {sy} px\n"
                 f"(blue: window (0,0), green: (0,1), red: ({gh - 1},{gw - 1}))", fontsize=9)
    ax.axis("off")
    ax = fig.add_subplot(1, 3, 2)
    ax.imshow(conf, cmap="Greens", vmin=0, vmax=1)
    for i in range(gh):
        for j in range(gw):
            ax.text(j, i, str(pred[i, j]), ha="center", va="center", fontsize=11,
                    color="white" if conf[i, j] > 0.6 else "black")
    for (i, j), color in marks:
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor=color, lw=2.5))
    ax.set_xticks(range(gw))
    ax.set_yticks(range(gh))
    ax.set_title(f"one pass of the converted net: {gh}x{gw} predictions\n(shade = probability)",
                 fontsize=9)
    ax = fig.add_subplot(1, 3, 3)
    ax.axis("off")
    lines = ["Dense -> Conv2D (same weights, reshaped):", ""]
    for before, after in demo["table"]:
        lines += [before, "   -> " + after, ""]
    lines += ["max |converted net - model on each window|",
              f"  = {demo['max_diff']:.1e}  (window padding = its surroundings)",
              f"  = {demo['max_diff_zero_padded']:.2f}  (each window zero-padded on its own:",
              "        differs because LeNet pads its first conv)",
              "",
              "The net has no 'nothing here' class: windows",
              "holding part of a digit get a guess too."]
    ax.text(0.0, 1.0, "\n".join(lines), va="top", ha="left", fontsize=8.5, family="monospace",
            transform=ax.transAxes)
    fig.suptitle("Fully connected layers as convolutions = sliding windows in one pass", fontsize=12)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig
