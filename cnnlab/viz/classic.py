"""Hand-designed filters, before any learning: what a kernel detects follows from its
numbers. A CNN learns kernels like these (its first layer often ends up with edge and
blob detectors) instead of having them designed.

2-D (on the cameraman photo, cross-correlation as CNN layers compute it,
``cnnlab.functional.correlate2d``):
    vertical edge [[1, 0, -1]] x 3 rows (Andrew Ng's), horizontal edge (its transpose),
    Sobel and Scharr (x: vertical edges), Laplacian (second derivative, all directions),
    Gaussian 5x5 (sigma 1) and the 3x3 mean filter (smoothing).
1-D (on a noisy signal with a ramp and a step, ``correlate1d``):
    [1/3, 1/3, 1/3] averages neighbours (smooths noise);
    [1, -2, 1] is the second difference (zero on flat parts and straight ramps, large at
    corners and steps).
"""
from __future__ import annotations

import numpy as np

from .. import functional as F
from ._plot import new_figure, panel_grid, save_figure
from .images import read_image


def gaussian_kernel(size=5, sigma=1.0):
    """Normalized 2-D Gaussian kernel (sums to 1)."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"gaussian_kernel: size must be a positive odd int, got {size}")
    if sigma <= 0:
        raise ValueError(f"gaussian_kernel: sigma must be positive, got {sigma}")
    r = np.arange(size) - size // 2
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2.0 * sigma ** 2))
    return g / g.sum()


def classic_kernels():
    """{name: 2-D kernel} of the classic filters (float64)."""
    vertical = np.array([[1, 0, -1]] * 3, dtype=np.float64)
    sobel_x = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], dtype=np.float64)
    scharr_x = np.array([[3, 0, -3], [10, 0, -10], [3, 0, -3]], dtype=np.float64)
    return {
        "vertical edge": vertical,
        "horizontal edge": vertical.T.copy(),
        "Sobel x": sobel_x,
        "Sobel y": sobel_x.T.copy(),
        "Scharr x": scharr_x,
        "Laplacian": np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float64),
        "Gaussian, sigma 1": gaussian_kernel(5, 1.0),
        "mean 3x3": np.full((3, 3), 1.0 / 9.0),
    }


EDGE_KERNELS = ("vertical edge", "horizontal edge", "Sobel x", "Sobel y", "Scharr x", "Laplacian")


def apply_classic_filters(image=None, kernels=None):
    """Correlate a grayscale image ((H, W), (1, H, W), a path, or None for the bundled
    camera.png) with each kernel ('valid' mode). -> {name: response (H-f+1, W-f+1)},
    the input under 'input'."""
    if image is None or isinstance(image, str) or hasattr(image, "__fspath__"):
        image = read_image("camera" if image is None else image, mode="L")
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 3 and image.shape[0] == 1:
        image = image[0]
    if image.ndim != 2:
        raise ValueError(f"classic filters take a grayscale image (H, W), got shape {image.shape}")
    kernels = classic_kernels() if kernels is None else kernels
    out = {"input": image}
    for name, k in kernels.items():
        out[name] = F.correlate2d(image, np.asarray(k, dtype=np.float64), mode="valid")
    return out


def _kernel_text(k):
    if k.shape[0] > 3:
        return f"{k.shape[0]}x{k.shape[1]} weights, largest in the centre"
    fmt = (lambda v: f"{v:g}") if np.allclose(k, np.round(k)) else (lambda v: f"{v:.2f}")
    return "\n".join(" ".join(fmt(v).rjust(3) for v in row) for row in k)


def plot_classic_filters(responses, path=None, kernels=None):
    """Panels: the photo and each filter's response (edge filters as |response|, darker =
    stronger, so edges read as lines), with the kernel written under its name."""
    kernels = classic_kernels() if kernels is None else kernels
    img = responses["input"]
    panels = [(img, f"input {img.shape[0]}x{img.shape[1]}")]
    for name, k in kernels.items():
        r = responses[name]
        if name in EDGE_KERNELS:
            a = np.abs(r)
            show = (a, f"|{name}|\n{_kernel_text(k)}", {"cmap": "gray_r", "vmin": 0,
                                                        "vmax": np.percentile(a, 99.5)})
        else:
            show = (r, f"{name}\n{_kernel_text(k)}", {"cmap": "gray"})
        panels.append(show)
    fig = panel_grid(panels, ncols=3, panel_size=3.3, label_size=8,
                     title="Classic filters on the cameraman (cross-correlation, 'valid')")
    if path is not None:
        save_figure(fig, path)
    return fig


def filter_signal_1d(signal=None, seed=0):
    """The two 1-D filters of the course on a signal (default: flat, ramp, flat, step, a little noise).

    -> dict 'x' (the signal), 'smooth' (with [1/3, 1/3, 1/3]), 'second_diff' (with
    [1, -2, 1]), both 'valid' (length M - 2, centred on x[1:-1])."""
    if signal is None:
        rng = np.random.default_rng(seed)
        t = np.arange(60)
        clean = np.clip((t - 8) / 10.0, 0.0, 1.0) + np.where(t >= 40, 1.0, 0.0)
        signal = clean + 0.015 * rng.standard_normal(t.size)
    x = np.asarray(signal, dtype=np.float64)
    if x.ndim != 1 or x.size < 3:
        raise ValueError(f"filter_signal_1d takes a 1-D signal of length >= 3, got shape {x.shape}")
    return {"x": x,
            "smooth": F.correlate1d(x, np.full(3, 1.0 / 3.0)),
            "second_diff": F.correlate1d(x, np.array([1.0, -2.0, 1.0]))}


def plot_filter_signal_1d(result, path=None):
    """Three stacked plots: the signal, its smoothing, its second difference."""
    x = result["x"]
    t = np.arange(x.size)
    fig = new_figure(figsize=(8, 6))
    axes = fig.subplots(3, 1, sharex=True)
    axes[0].plot(t, x, "o-", ms=3, color="k")
    axes[0].set_title("signal x: flat, a ramp, flat, a step (plus a little noise)", fontsize=10)
    axes[1].plot(t, x, color="0.75", label="x")
    axes[1].plot(t[1:-1], result["smooth"], "o-", ms=3, color="C0", label="x * [1/3, 1/3, 1/3]")
    axes[1].set_title("[1/3, 1/3, 1/3]: the mean of 3 neighbours smooths the noise, and blurs the step", fontsize=10)
    axes[1].legend(fontsize=8, loc="upper left")
    axes[2].axhline(0, color="0.75", lw=1)
    axes[2].plot(t[1:-1], result["second_diff"], "o-", ms=3, color="C3", label="x * [1, -2, 1]")
    axes[2].set_title("[1, -2, 1]: second difference, ~0 on flat parts and straight ramps, "
                      "large at corners and steps", fontsize=10)
    axes[2].legend(fontsize=8, loc="upper left")
    d = result["second_diff"]
    for i in np.argsort(-np.abs(d))[:4]:
        axes[2].annotate("corner" if abs(d[i]) < 0.5 else "step", (t[i + 1], d[i]), fontsize=8,
                         xytext=(4, 4 if d[i] > 0 else -10), textcoords="offset points")
    axes[2].set_xlabel("position i (outputs at i = 1 .. M-2, 'valid')")
    fig.suptitle("1-D filters: y[i] = w[0] x[i-1] + w[1] x[i] + w[2] x[i+1]", fontsize=12)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig
