"""Drawing helpers shared by the viz modules: figures without pyplot, display scaling,
mosaics, PNG and GIF writing.

Figures are ``matplotlib.figure.Figure`` objects on an Agg canvas, created directly (never
through ``pyplot``), so the library neither needs a display nor changes the backend of a
user's interactive session. GIFs are assembled with Pillow.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def new_figure(figsize=(6.4, 4.8), dpi=100, layout=None):
    """A Figure with its Agg canvas attached (no pyplot, no global state).
    ``layout``: None or 'constrained' (matplotlib's layout engines)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path, dpi=None):
    """Write ``fig`` as a PNG (parent folders created); returns the path as a Path."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"figures are written as PNG: give a path ending in .png, got {str(path)!r}")
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi or fig.dpi, bbox_inches="tight", pad_inches=0.15)
    return path


def figure_to_array(fig):
    """Render ``fig`` and return its pixels, (H, W, 3) uint8."""
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    return np.ascontiguousarray(rgba[..., :3])


def save_gif(frames, path, duration_ms=700, last_ms=None, loop=0):
    """Write frames ((T, H, W, 3) uint8 or a list of such images) as an animated GIF.

    ``duration_ms``: time per frame; ``last_ms``: time on the last frame (default 3x)."""
    from PIL import Image

    path = Path(path)
    if path.suffix.lower() != ".gif":
        raise ValueError(f"animations are written as GIF: give a path ending in .gif, got {str(path)!r}")
    frames = [np.asarray(f) for f in frames]
    if not frames:
        raise ValueError("save_gif: no frames to write")
    for f in frames:
        if f.dtype != np.uint8 or f.ndim != 3 or f.shape[2] != 3:
            raise ValueError(f"save_gif: frames must be (H, W, 3) uint8, got {f.shape} {f.dtype}")
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(f) for f in frames]
    durations = [int(duration_ms)] * len(images)
    durations[-1] = int(last_ms if last_ms is not None else 3 * duration_ms)
    images[0].save(path, save_all=True, append_images=images[1:], duration=durations, loop=loop,
                   optimize=False, disposal=1)
    return path


def output_path(out_dir, filename):
    """``out_dir / filename`` as a Path (None for out_dir: the current folder)."""
    return Path(os.curdir if out_dir is None else out_dir) / filename


# ---------------------------------------------------------------------- array helpers
def to_hwc(x):
    """(C, H, W) with C in {1, 3} -> (H, W) or (H, W, 3) for display; 2-D passes through."""
    x = np.asarray(x)
    if x.ndim == 2:
        return x
    if x.ndim == 3 and x.shape[0] == 1:
        return x[0]
    if x.ndim == 3 and x.shape[0] == 3:
        return np.moveaxis(x, 0, -1)
    raise ValueError(f"expected an image (H, W), (1, H, W) or (3, H, W), got shape {x.shape}")


def normalize(x, per_channel=False, lo_pct=0.0, hi_pct=100.0):
    """Min-max scale to [0, 1] (float64). ``per_channel``: scale each channel of a
    (H, W, C) array on its own (how an RGB composite of feature maps is shown).
    Percentiles other than 0/100 clip outliers first. A constant array maps to 0.5."""
    x = np.asarray(x, dtype=np.float64)
    if per_channel and x.ndim == 3:
        return np.stack([normalize(x[..., c], False, lo_pct, hi_pct) for c in range(x.shape[-1])],
                        axis=-1)
    lo, hi = np.percentile(x, [lo_pct, hi_pct]) if x.size else (0.0, 0.0)
    if not np.isfinite(lo) or not np.isfinite(hi):
        raise ValueError("cannot display an array holding NaN or infinity")
    if hi - lo < 1e-12:
        return np.full(x.shape, 0.5)
    return np.clip((x - lo) / (hi - lo), 0.0, 1.0)


def tile(images, ncols=None, pad=1, pad_value=1.0):
    """Mosaic of equally shaped images ((H, W) or (H, W, 3)) in rows of ``ncols`` with
    ``pad`` pixels of ``pad_value`` between them -> one array."""
    images = [np.asarray(im, dtype=np.float64) for im in images]
    if not images:
        raise ValueError("tile: no images")
    shape = images[0].shape
    if any(im.shape != shape for im in images):
        raise ValueError(f"tile: images must share one shape, got {sorted({im.shape for im in images})}")
    n = len(images)
    ncols = int(ncols or int(np.ceil(np.sqrt(n))))
    nrows = int(np.ceil(n / ncols))
    h, w = shape[:2]
    out = np.full((nrows * h + (nrows - 1) * pad, ncols * w + (ncols - 1) * pad) + shape[2:],
                  pad_value, dtype=np.float64)
    for i, im in enumerate(images):
        r, c = divmod(i, ncols)
        out[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = im
    return out


def resize(img, size):
    """Bilinear resize of a float (H, W) array to ``size`` = (H', W') (Pillow 'F' mode)."""
    from PIL import Image

    img = np.asarray(img, dtype=np.float32)
    h, w = int(size[0]), int(size[1])
    if img.shape == (h, w):
        return img.astype(np.float64)
    im = Image.fromarray(img, mode="F") if img.ndim == 2 else None
    if im is None:
        raise ValueError(f"resize takes a 2-D array, got shape {img.shape}")
    return np.asarray(im.resize((w, h), Image.Resampling.BILINEAR), dtype=np.float64)


# ---------------------------------------------------------------------- panel figures
def panel_grid(panels, title=None, ncols=None, panel_size=2.4, cmap="gray", suptitle_size=12,
               label_size=9):
    """Figure of labelled image panels.

    ``panels``: list of (image, label) or (image, label, options) where image is (H, W)
    (drawn with ``cmap``, or options['cmap'], options['vmin'/'vmax']) or (H, W, 3) in [0, 1].
    Returns the Figure."""
    n = len(panels)
    if n == 0:
        raise ValueError("panel_grid: no panels")
    ncols = int(ncols or min(n, 4))
    nrows = int(np.ceil(n / ncols))
    fig = new_figure(figsize=(panel_size * ncols, panel_size * nrows + (0.5 if title else 0.1)))
    for i, p in enumerate(panels):
        img, label = p[0], p[1]
        opts = dict(p[2]) if len(p) > 2 else {}
        ax = fig.add_subplot(nrows, ncols, i + 1)
        img = np.asarray(img)
        if img.ndim == 2:
            ax.imshow(img, cmap=opts.pop("cmap", cmap), vmin=opts.pop("vmin", None),
                      vmax=opts.pop("vmax", None), interpolation=opts.pop("interpolation", "nearest"))
        else:
            ax.imshow(np.clip(img, 0, 1), interpolation=opts.pop("interpolation", "nearest"))
        ax.set_title(label, fontsize=label_size)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=suptitle_size)
    fig.tight_layout()
    return fig
