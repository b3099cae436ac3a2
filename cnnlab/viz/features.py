"""Feature maps (what each layer outputs for one input) and filters (a trained net's conv
weights) as image grids.

    maps = feature_maps(model, x, 'conv2d')         # (C, H, W) for one sample x
    plot_feature_maps(maps, 'maps.png', title=...)
    plot_layer_overview(model, x, 'overview.png')   # input, then a row per layer
    w = layer_filters(model, 'conv2d')              # (K, C, kh, kw)
    plot_filters(w, 'filters.png')
"""
from __future__ import annotations

import numpy as np

from ._graph import CONV_TYPES, as_batch, chain, forward_through, resolve_layer
from ._plot import new_figure, normalize, save_figure, tile, to_hwc


def feature_maps(model, x, layer):
    """Output of ``layer`` (name, index or Layer) for input ``x``: one sample (C, H, W)
    -> that sample's output (e.g. (K, H', W')); a batch -> the batch's outputs."""
    xb, single = as_batch(x, model)
    links = chain(model)
    a = forward_through(links[:resolve_layer(model, layer) + 1], xb, cache=False)
    return a[0] if single else a


def all_feature_maps(model, x):
    """[(layer name, output)] of every layer for one sample ``x``."""
    xb, _ = as_batch(x, model)
    out = []
    for name, layer in chain(model):
        xb = layer.forward(xb, training=False)
        out.append((name, xb[0]))
    return out


def _shape_text(shape):
    return "x".join(str(s) for s in shape)


def plot_feature_maps(maps, path=None, title=None, max_maps=64, ncols=None, cmap="viridis"):
    """Grid of the channels of one layer's output ((C, H, W); a 1-D output (D,) is drawn
    as a bar chart). Each map is labelled with its channel and value range."""
    maps = np.asarray(maps)
    if maps.ndim == 1:
        fig = new_figure(figsize=(min(12, 2 + 0.12 * maps.size), 3))
        ax = fig.add_subplot(1, 1, 1)
        ax.bar(np.arange(maps.size), maps, color="C0")
        ax.set_xlabel("unit")
        ax.set_ylabel("activation")
        ax.set_title(title or f"activations ({maps.size} units)", fontsize=11)
        fig.tight_layout()
    elif maps.ndim == 3:
        n = min(maps.shape[0], int(max_maps))
        ncols = int(ncols or min(n, 8))
        nrows = int(np.ceil(n / ncols))
        fig = new_figure(figsize=(1.6 * ncols, 1.75 * nrows + 0.6))
        for k in range(n):
            ax = fig.add_subplot(nrows, ncols, k + 1)
            m = maps[k]
            ax.imshow(m, cmap=cmap, interpolation="nearest")
            ax.set_title(f"#{k}  [{m.min():.2g}, {m.max():.2g}]", fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
        more = f" (first {n} of {maps.shape[0]})" if n < maps.shape[0] else ""
        fig.suptitle((title or "feature maps") + f"  {_shape_text(maps.shape)}{more}", fontsize=11)
        fig.tight_layout()
    else:
        raise ValueError(f"feature maps must be (C, H, W) or (D,), got shape {maps.shape}")
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_layer_overview(model, x, path=None, per_row=8, title=None, skip=("Flatten",)):
    """The input, then one row per layer with its first ``per_row`` maps (1-D outputs as
    bars): how the representation changes from layer to layer."""
    x = np.asarray(x)
    rows = [(n, a) for n, a in all_feature_maps(model, x)
            if type(dict(chain(model))[n]).__name__ not in skip]
    fig = new_figure(figsize=(1.1 * (per_row + 1.6), 1.1 * (len(rows) + 1) + 0.5), layout="constrained")
    gs = fig.add_gridspec(len(rows) + 1, per_row + 1)
    ax = fig.add_subplot(gs[0, 0])
    img = to_hwc(x)
    ax.imshow(normalize(img), cmap="gray", interpolation="nearest")
    ax.set_title(f"input {_shape_text(x.shape)}", fontsize=8)
    ax.axis("off")
    for r, (name, a) in enumerate(rows, start=1):
        label = fig.add_subplot(gs[r, 0])
        label.axis("off")
        label.text(0.0, 0.5, f"{name}\n{_shape_text(a.shape)}", fontsize=8, va="center")
        if a.ndim == 3:
            for k in range(min(per_row, a.shape[0])):
                ax = fig.add_subplot(gs[r, k + 1])
                ax.imshow(a[k], cmap="viridis", interpolation="nearest")
                ax.axis("off")
        else:
            ax = fig.add_subplot(gs[r, 1:])
            ax.bar(np.arange(a.size), a.ravel(), color="C0", width=0.8 if a.size <= 20 else 1.0)
            if a.size <= 20:
                ax.set_xticks(np.arange(a.size))
                ax.tick_params(axis="x", labelsize=6, length=0)
            else:
                ax.set_xticks([])
            ax.tick_params(labelsize=6)
    fig.suptitle(title or "What each layer outputs for this input", fontsize=11)
    if path is not None:
        save_figure(fig, path)
    return fig


SEPARATOR = (0.75, 0.85, 1.0)  # light blue: neither a weight's grey nor a colour tile


def conv_layer_names(model):
    """Names (in ``chain(model)``) of the convolution layers."""
    return [n for n, layer in chain(model) if isinstance(layer, CONV_TYPES)]


def layer_filters(model, layer):
    """The weights of a conv layer, (K, C, kh, kw) (a copy)."""
    name, obj = chain(model)[resolve_layer(model, layer)]
    if not isinstance(obj, CONV_TYPES) or "w" not in obj.params:
        raise ValueError(f"layer {name!r} is a {type(obj).__name__}, not a built convolution; "
                         f"the conv layers are {conv_layer_names(model)}")
    return obj.params["w"].copy()


def filters_image(w, max_filters=64, max_channels=16):
    """The filters as one mosaic: RGB filters ((K, 3, kh, kw)) as K colour tiles (each
    min-max scaled); otherwise a row per filter with a tile per input channel, on one
    symmetric grey scale (0.5 = weight 0), tiles separated by light blue lines.
    Returns (H, W, 3) in [0, 1]."""
    w = np.asarray(w, dtype=np.float64)
    if w.ndim != 4:
        raise ValueError(f"filters must be (K, C, kh, kw), got shape {w.shape}")
    w = w[:max_filters]
    k, c = w.shape[:2]
    if c == 3:
        return tile([normalize(np.moveaxis(f, 0, -1)) for f in w], ncols=min(k, 8),
                    pad_value=SEPARATOR)
    w = w[:, :max_channels]
    m = np.abs(w).max() or 1.0
    tiles = [np.repeat((0.5 + 0.5 * w[i, j] / m)[..., None], 3, axis=-1)
             for i in range(k) for j in range(w.shape[1])]
    ncols = min(k, 8) if c == 1 else w.shape[1]   # one input channel: filters side by side
    return tile(tiles, ncols=ncols, pad=1, pad_value=SEPARATOR)


def plot_filters(w, path=None, title=None, max_filters=64, max_channels=16):
    """Each filter of a conv layer as one mosaic (see :func:`filters_image`): colour tiles
    for RGB inputs, else a row per filter and a column per input channel on one symmetric
    grey scale (white = positive weight, black = negative, mid-grey = 0)."""
    w = np.asarray(w)
    mosaic = filters_image(w, max_filters=max_filters, max_channels=max_channels)
    k, c = min(w.shape[0], max_filters), w.shape[1]
    rgb = c == 3
    kh, kw = w.shape[2:]
    scale = max(0.16, min(0.5, 6.0 / max(mosaic.shape)))
    fig = new_figure(figsize=(max(3.5, scale * mosaic.shape[1] + 1.2), scale * mosaic.shape[0] + 1.2))
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(mosaic, interpolation="nearest")
    if rgb or c == 1:
        per_row = min(k, 8)
        for i in range(k):
            r, q = divmod(i, per_row)
            ax.text(q * (kw + 1) + (kw - 1) / 2, r * (kh + 1) - 0.7, str(i), ha="center",
                    va="bottom", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
        note = ("each filter's R, G, B weights shown as a colour image (min-max scaled)" if rgb
                else "white = positive weight, black = negative, grey = 0")
    else:
        cols = min(c, max_channels)
        ax.set_xticks([(kw + 1) * j + (kw - 1) / 2 for j in range(cols)])
        ax.set_xticklabels([str(j) for j in range(cols)], fontsize=7)
        ax.set_yticks([(kh + 1) * i + (kh - 1) / 2 for i in range(k)])
        ax.set_yticklabels([str(i) for i in range(k)], fontsize=7)
        ax.set_xlabel("input channel", fontsize=8)
        ax.set_ylabel("filter", fontsize=8)
        ax.tick_params(length=0)
        note = "white = positive weight, black = negative, grey = 0"
    shown = f", first {k} filters" if k < w.shape[0] else ""
    shown += f", first {max_channels} input channels" if (not rgb and c > max_channels) else ""
    ax.set_title((title or "filters") + f"  {_shape_text(w.shape)}{shown}\n{note}", fontsize=9,
                 pad=14 if (rgb or c == 1) else 6)
    if not rgb:  # signed weights on one grey scale for the whole panel: show its values
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize
        m = float(np.abs(w[:max_filters, :max_channels]).max()) or 1.0
        fig.colorbar(ScalarMappable(Normalize(-m, m), "gray"), ax=ax, fraction=0.04, pad=0.02,
                     label="weight")
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_filters_and_maps(model, x, layer=None, path=None, max_filters=8):
    """For a conv layer that sees the image itself (1 or 3 input channels; default the
    first conv layer): each filter above the feature map it produces on ``x`` -- what a
    filter looks like next to what it responds to."""
    layer = conv_layer_names(model)[0] if layer is None else layer
    w = layer_filters(model, layer)
    if w.shape[1] not in (1, 3):
        raise ValueError(f"filters and maps side by side need a layer on the image (1 or 3 input "
                         f"channels); {layer!r} has {w.shape[1]}")
    name = chain(model)[resolve_layer(model, layer)][0]
    maps = feature_maps(model, x, layer)
    k = min(w.shape[0], max_filters)
    fig = new_figure(figsize=(1.5 * (k + 1), 3.4))
    ax = fig.add_subplot(2, k + 1, k + 2)
    ax.imshow(normalize(to_hwc(np.asarray(x))), cmap="gray", interpolation="nearest")
    ax.set_title("input", fontsize=8)
    ax.axis("off")
    m = float(np.abs(w[:k]).max()) or 1.0
    for i in range(k):
        ax = fig.add_subplot(2, k + 1, i + 2)
        if w.shape[1] == 3:
            ax.imshow(normalize(np.moveaxis(w[i], 0, -1)), interpolation="nearest")
        else:
            ax.imshow(w[i, 0], cmap="gray", vmin=-m, vmax=m, interpolation="nearest")
        ax.set_title(f"filter {i}", fontsize=8)
        ax.axis("off")
        ax = fig.add_subplot(2, k + 1, k + 1 + i + 2)
        ax.imshow(maps[i], cmap="viridis", interpolation="nearest")
        ax.set_title(f"its map {_shape_text(maps[i].shape)}", fontsize=7)
        ax.axis("off")
    fig.suptitle(f"{name}: filters {_shape_text(w.shape)} (white +, black -) and their feature "
                 f"maps (yellow = strong response)", fontsize=10)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig
