"""Why convolution? Parameter sharing and sparse connections, as numbers.

For the same input and output volumes, a conv layer and a fully connected layer differ by:

- parameter sharing: a conv filter's weights are reused at every output position
  (each weight is used H_out * W_out times), so the layer has K * (C * f * f + 1)
  parameters whatever the image size; the FC layer has one weight per (input, output) pair;
- sparse connections: each conv output depends on C * f * f inputs (its receptive field),
  not on all C * H * W of them.

Andrew Ng's example: 32x32x3 -> 28x28x6 with 5x5 filters: 6 * (75 + 1) = 456 parameters,
against 3,072 * 4,704 = 14,450,688 weights for a fully connected layer (+ 4,704 biases).
Li Hongyi's: a 100x100 colour image into 1,000 fully connected units is 30,000,000 weights.
"""
from __future__ import annotations

import numpy as np

from ..functional import conv_output_size
from ._plot import new_figure, save_figure


def why_convolution(input_shape=(3, 32, 32), filters=6, kernel=5, stride=1, padding=0):
    """Counts for a conv layer (``filters`` of ``kernel`` x ``kernel``, ``stride``,
    ``padding``) against a fully connected layer with the same input and output sizes.

    -> dict with 'input_shape', 'output_shape' (C, H, W), 'n_in', 'n_out',
    'conv_weights', 'conv_biases', 'conv_params', 'fc_weights', 'fc_biases', 'fc_params',
    'conv_connections', 'fc_connections' (multiply-adds per image), 'uses_per_weight',
    'inputs_per_output', 'fraction_of_inputs_seen', 'param_ratio', 'connection_ratio'."""
    try:
        c, h, w = (int(v) for v in input_shape)
    except (TypeError, ValueError):
        raise ValueError(f"input_shape must be (C, H, W), got {input_shape!r}") from None
    if min(c, h, w, filters, kernel) < 1:
        raise ValueError("input_shape, filters and kernel must be positive")
    ho, wo = conv_output_size(h, kernel, padding, stride), conv_output_size(w, kernel, padding, stride)
    n_in, n_out = c * h * w, filters * ho * wo
    field = c * kernel * kernel
    d = {"input_shape": (c, h, w), "output_shape": (filters, ho, wo), "n_in": n_in, "n_out": n_out,
         "kernel": kernel, "stride": stride, "padding": padding,
         "conv_weights": filters * field, "conv_biases": filters,
         "fc_weights": n_in * n_out, "fc_biases": n_out,
         "conv_connections": n_out * field, "fc_connections": n_in * n_out,
         "uses_per_weight": ho * wo, "inputs_per_output": field,
         "fraction_of_inputs_seen": field / n_in}
    d["conv_params"] = d["conv_weights"] + d["conv_biases"]
    d["fc_params"] = d["fc_weights"] + d["fc_biases"]
    d["param_ratio"] = d["fc_params"] / d["conv_params"]
    d["connection_ratio"] = d["fc_connections"] / d["conv_connections"]
    return d


def _hwc(shape):
    c, h, w = shape
    return f"{h}x{w}x{c}"


def format_why_convolution(d):
    """The counts as a few lines of text."""
    k = d["kernel"]
    c = d["input_shape"][0]
    f = d["output_shape"][0]
    return "\n".join([
        f"{_hwc(d['input_shape'])} -> {_hwc(d['output_shape'])} ({k}x{k} filters, stride "
        f"{d['stride']}, padding {d['padding']})",
        f"  conv layer:            {d['conv_params']:>14,} parameters = {f} x ({c}x{k}x{k} + 1)",
        f"  fully connected layer: {d['fc_params']:>14,} parameters = {d['n_in']:,} x "
        f"{d['n_out']:,} weights + {d['fc_biases']:,} biases",
        f"  -> {d['param_ratio']:,.0f} times more parameters without sharing",
        f"  parameter sharing: each conv weight is used at {d['uses_per_weight']:,} positions",
        f"  sparse connections: each output sees {d['inputs_per_output']:,} of {d['n_in']:,} "
        f"inputs ({d['fraction_of_inputs_seen']:.2%})",
        f"  multiply-adds per image: conv {d['conv_connections']:,} vs fully connected "
        f"{d['fc_connections']:,} ({d['connection_ratio']:,.0f}x)",
    ])


def _diagram(ax, conv):
    """7 inputs -> 5 outputs: a 1-D conv with kernel 3 (lines coloured by the shared
    weight they use) or fully connected (35 weights, all different)."""
    n_in, n_out, k = 7, 5, 3
    xi = np.arange(n_in)
    xo = np.arange(n_out) + 1.0
    colors = ["#d62728", "#2ca02c", "#1f77b4"]
    for o in range(n_out):
        ins = range(o, o + k) if conv else range(n_in)
        for t, i in enumerate(ins):
            ax.plot([xi[i], xo[o]], [0, 1], color=colors[t] if conv else "0.55", lw=1.6 if conv else 0.8)
    ax.scatter(xi, np.zeros(n_in), s=120, color="white", edgecolor="k", zorder=3)
    ax.scatter(xo, np.ones(n_out), s=120, color="#fdd49e", edgecolor="k", zorder=3)
    ax.set_xlim(-0.6, n_in - 0.4)
    ax.set_ylim(-0.3, 1.3)
    ax.axis("off")
    if conv:
        ax.set_title("convolution: 3 weights (3 colours), each used 5 times;\n"
                     "each output sees 3 inputs", fontsize=9)
    else:
        ax.set_title("fully connected: 35 different weights;\neach output sees all 7 inputs",
                     fontsize=9)
    ax.text(-0.5, 0, "in", va="center", fontsize=8)
    ax.text(-0.5, 1, "out", va="center", fontsize=8)


def plot_why_convolution(d, path=None):
    """Bars (log scale) of parameters and multiply-adds, conv vs fully connected, and the
    connection diagrams of a small 1-D layer."""
    fig = new_figure(figsize=(12, 6.2))
    gs = fig.add_gridspec(2, 2, height_ratios=[1.25, 1])
    for col, (key, label) in enumerate((("params", "parameters"),
                                        ("connections", "multiply-adds per image"))):
        ax = fig.add_subplot(gs[0, col])
        vals = [d[f"conv_{key}"], d[f"fc_{key}"]]
        bars = ax.bar(["convolution", "fully connected"], vals, color=["#2ca02c", "#d62728"])
        ax.set_yscale("log")
        ax.set_ylim(1, max(vals) * 30)
        for b, v in zip(bars, vals):
            ax.text(b.get_x() + b.get_width() / 2, v * 1.5, f"{v:,}", ha="center", fontsize=10)
        ax.set_title(f"{label} ({vals[1] / vals[0]:,.0f}x)", fontsize=10)
        ax.set_ylabel(f"{label} (log scale)", fontsize=9)
    _diagram(fig.add_subplot(gs[1, 0]), conv=True)
    _diagram(fig.add_subplot(gs[1, 1]), conv=False)
    k = d["kernel"]
    fig.suptitle(f"Why convolution? {_hwc(d['input_shape'])} -> {_hwc(d['output_shape'])} with "
                 f"{k}x{k} filters: parameter sharing and sparse connections", fontsize=12)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig
