"""Activation maximization: find by gradient ascent the input that makes one filter (or
one neuron, or one class score) respond the most -- "what does this unit look for?"

For a conv layer the objective is the mean of the k-th output map (the course's "degree
of activation of the k-th filter", a sum over the map up to a constant); for a dense layer
it is the j-th output. Starting from a grey image with a little noise, each step moves the
input along the normalized gradient and then applies regularizers that keep the image
natural:

- ``l2``: weight decay of the input towards 0 (black for images in [0, 1]); ``l1``:
  the same with a constant pull (Li Hongyi's "fewer ink pixels" term);
- ``jitter``: each step sees the image shifted by a random few pixels (no pixel-exact
  tricks);
- ``blur_every`` / ``blur_sigma``: a light Gaussian blur every few steps (no high
  frequency noise);
- ``clip``: keep the pixels in the input range, e.g. (0, 1).

A unit behind a ReLU layer that is zero everywhere on the start image has no gradient;
while it stays dead the ascent uses the gradient of its pre-activation instead (a
"pass-through" ReLU), so dead units can come alive. For a first conv layer pick the ReLU
after it: its pre-activation is linear in the input, so its mean is maximized by a flat
white or black image, while the ReLU's output is maximized by stripes at the filter's
preferred orientation.

The gradient is computed in inference behaviour (``forward(x, training=False,
cache=True)`` then ``backward``), running the model only up to the chosen layer.
"""
from __future__ import annotations

import numpy as np

from ._graph import chain, forward_through, backward_through, model_dtype, resolve_layer
from ._imageops import gaussian_blur, random_shift, roll
from ._plot import new_figure, normalize, save_figure, to_hwc


def _objective(a, index):
    """Mean of channel ``index`` of a (1, K, ...) output, or unit ``index`` of (1, D)."""
    if a.ndim < 2 or not 0 <= index < a.shape[1]:
        raise ValueError(f"index {index} is out of range for a layer with {a.shape[1]} "
                         f"{'channels' if a.ndim > 2 else 'units'} (output shape {a.shape[1:]})")
    d = np.zeros_like(a)
    if a.ndim == 2:
        d[0, index] = 1.0
        return float(a[0, index]), d
    n = int(np.prod(a.shape[2:]))
    d[0, index] = 1.0 / n
    return float(a[0, index].mean()), d


def activation_maximization(model, layer, index, steps=200, lr=0.05, l2=1e-3, l1=0.0,
                            jitter=1, blur_every=4, blur_sigma=0.5, clip=(0.0, 1.0), seed=0,
                            start=None, input_shape=None):
    """Gradient ascent on the input to maximize unit ``index`` of ``layer``.

    Args:
        model: a cnnlab model (Sequential); ``layer``: name, index or Layer of it.
        index: the filter (conv: mean of its map) or neuron / class (dense output).
        steps, lr: number of steps and step size (the gradient is divided by its mean
            absolute value, so ``lr`` is about the mean change of a pixel per step).
        l2, l1, jitter, blur_every, blur_sigma, clip: the regularizers (module docstring);
            0 / None switches one off.
        seed: the start noise and the jitter; start: a start image (C, H, W) instead.
        input_shape: (C, H, W) for models that accept several sizes (default: the
            model's built input shape).

    Returns a dict: 'image' (C, H, W), 'start' (the start image), 'start_value' and 'value'
    (the objective before and after), 'history' (objective per step).
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if lr <= 0:
        raise ValueError(f"lr must be positive, got {lr}")
    links = chain(model)[:resolve_layer(model, layer) + 1]
    dtype = model_dtype(model)
    rng = np.random.default_rng(seed)
    if start is None:
        shape = tuple(input_shape or getattr(model, "input_shape", None) or ())
        if len(shape) < 2:
            raise ValueError("the model is not built: pass input_shape=(C, H, W)")
        lo, hi = clip if clip is not None else (0.0, 1.0)
        x = (lo + 0.5 * (hi - lo) + 0.02 * (hi - lo) * rng.standard_normal(shape))
    else:
        x = np.array(start, dtype=np.float64)
    if clip is not None:
        x = np.clip(x, *clip)
    x0 = x.copy()

    relu_last = type(links[-1][1]).__name__ in ("ReLU", "LeakyReLU") and len(links) > 1

    def value_and_grad(img):
        a = forward_through(links, img[None].astype(dtype), cache=True)
        v, da = _objective(a, int(index))
        if relu_last and not np.any(a[0, int(index)] > 0):
            # a dead unit has no gradient: skip its ReLU until the pre-activation turns positive
            links[-1][1].backward(da)
            return v, backward_through(links[:-1], da)[0].astype(np.float64)
        return v, backward_through(links, da)[0].astype(np.float64)

    start_value = value_and_grad(x0)[0]
    history = []
    for step in range(int(steps)):
        dy, dx = random_shift(rng, jitter)
        v, g = value_and_grad(roll(x, dy, dx))
        g = roll(g, -dy, -dx)
        history.append(v)
        x = x + lr * g / (np.abs(g).mean() + 1e-12)
        if l2:
            x = x * (1.0 - l2)
        if l1:
            x = x - l1 * np.sign(x)
        if blur_every and blur_sigma > 0 and (step + 1) % int(blur_every) == 0:
            x = gaussian_blur(x, blur_sigma)
        if clip is not None:
            x = np.clip(x, *clip)
        if not np.all(np.isfinite(x)):
            raise FloatingPointError(f"activation maximization diverged at step {step} "
                                     f"(lower lr or add regularization)")
    value = value_and_grad(x)[0]
    return {"image": x.astype(np.float32), "start": x0.astype(np.float32),
            "start_value": float(start_value), "value": float(value), "history": history,
            "layer": links[-1][0], "index": int(index)}


def maximize_units(model, layer, indices, **kwargs):
    """:func:`activation_maximization` for each of ``indices`` (same settings)."""
    return [activation_maximization(model, layer, int(k), **kwargs) for k in indices]


def plot_maximization(results, path=None, title=None, ncols=None, unit="filter"):
    """The maximizing images in a grid, each labelled with its unit and the objective
    before -> after."""
    n = len(results)
    if n == 0:
        raise ValueError("plot_maximization: no results")
    ncols = int(ncols or min(n, 6))
    nrows = int(np.ceil(n / ncols))
    fig = new_figure(figsize=(1.7 * ncols, 1.9 * nrows + 0.7))
    for i, r in enumerate(results):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        img = to_hwc(r["image"])
        ax.imshow(normalize(img) if img.ndim == 3 else img, cmap="gray",
                  vmin=None if img.ndim == 3 else 0, vmax=None if img.ndim == 3 else 1,
                  interpolation="nearest")
        ax.set_title(f"{unit} {r['index']}\n{r['start_value']:.2g} -> {r['value']:.3g}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    layer = results[0]["layer"]
    fig.suptitle(title or f"Inputs that maximize each {unit} of {layer!r} (gradient ascent)",
                 fontsize=10)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig
