"""Normalization and vectorized batch augmentation for image arrays ``(N, C, H, W)``.

All augmentations work on a whole batch at once with per-image random choices and no Python
loop over images, and return new arrays (inputs are never modified).
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ._rng import as_rng
from .image import _normalize_size

__all__ = ["channel_stats", "standardize", "destandardize", "random_crop", "random_flip",
           "flip_horizontal"]


def _channel_axis(x, who):
    if x.ndim == 4:
        return 1
    if x.ndim == 3:
        return 0
    raise ValueError(f"{who}: expected images (N, C, H, W) or one image (C, H, W), got shape {x.shape}")


def channel_stats(x, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of images ``(N, C, H, W)`` (or ``(C, H, W)``),
    over all samples and pixels, accumulated in float64 chunk by chunk (memory stays small for
    uint8 inputs). Returns two float32 arrays of shape ``(C,)``."""
    x = np.asarray(x)
    ax = _channel_axis(x, "channel_stats")
    if ax == 0:
        x = x[None]
    n, c = x.shape[:2]
    count = n * x.shape[2] * x.shape[3]
    if count == 0:
        raise ValueError(f"channel_stats: expected at least one pixel, got shape {x.shape}")
    s = np.zeros(c, np.float64)
    for i in range(0, n, chunk):
        s += x[i:i + chunk].sum(axis=(0, 2, 3), dtype=np.float64)
    mean = s / count
    ss = np.zeros(c, np.float64)
    for i in range(0, n, chunk):
        d = x[i:i + chunk].astype(np.float64) - mean[:, None, None]
        ss += np.einsum("nchw,nchw->c", d, d)
    return mean.astype(np.float32), np.sqrt(ss / count).astype(np.float32)


def _per_channel(v, c, who, name):
    v = np.asarray(v, np.float64)
    if v.ndim == 0:
        v = np.full(c, float(v))
    if v.shape != (c,):
        raise ValueError(f"{who}: {name} must be a scalar or have one value per channel: "
                         f"expected shape ({c},), got {v.shape}")
    return v


def standardize(x, mean, std, eps: float = 0.0) -> np.ndarray:
    """``(x - mean) / std`` per channel (channel axis 1 of ``(N, C, H, W)``, 0 of ``(C, H, W)``).
    ``mean``/``std``: scalars or length-C sequences, e.g. from :func:`channel_stats`.
    Float inputs keep their dtype; integer inputs become float32 (values taken as they are)."""
    x = np.asarray(x)
    ax = _channel_axis(x, "standardize")
    c = x.shape[ax]
    m = _per_channel(mean, c, "standardize", "mean")
    s = _per_channel(std, c, "standardize", "std") + eps
    if np.any(s <= 0):
        raise ValueError(f"standardize: std must be positive, got {s.tolist()}")
    dt = x.dtype if x.dtype.kind == "f" else np.dtype(np.float32)
    shape = (c, 1, 1)
    out = x.astype(dt)  # a copy
    out -= m.reshape(shape).astype(dt)
    out /= s.reshape(shape).astype(dt)
    return out


def destandardize(x, mean, std) -> np.ndarray:
    """Inverse of :func:`standardize`: ``x * std + mean`` per channel."""
    x = np.asarray(x)
    ax = _channel_axis(x, "destandardize")
    c = x.shape[ax]
    m = _per_channel(mean, c, "destandardize", "mean")
    s = _per_channel(std, c, "destandardize", "std")
    dt = x.dtype if x.dtype.kind == "f" else np.dtype(np.float32)
    out = x.astype(dt)
    out *= s.reshape(c, 1, 1).astype(dt)
    out += m.reshape(c, 1, 1).astype(dt)
    return out


def _batch(x, who):
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"{who}: expected a batch (N, C, H, W), got shape {x.shape}")
    return x


def random_crop(x, size=None, padding: int | tuple[int, int] = 4, rng=None,
                pad_mode: str = "constant") -> np.ndarray:
    """Pad each image, then cut a ``size`` window at an independent random offset per image.

    Args:
        x: batch ``(N, C, H, W)``.
        size: output ``(h, w)`` or an int; None: the input's ``(H, W)`` (the classic CIFAR
            "pad 4 and crop 32" augmentation).
        padding: pixels added on every side (int) or ``(pad_h, pad_w)``; 0 for plain random crops.
        rng: None, int seed or ``numpy.random.Generator``.
        pad_mode: ``np.pad`` mode: ``'constant'`` (zeros), ``'reflect'``, ``'edge'``...

    Vectorized: one pad, a sliding-window view and one fancy-indexing gather.
    """
    x = _batch(x, "random_crop")
    n, c, h, w = x.shape
    if isinstance(padding, (int, np.integer)):
        ph = pw = int(padding)
    else:
        ph, pw = (int(v) for v in padding)
    if ph < 0 or pw < 0:
        raise ValueError(f"random_crop: padding must be >= 0, got {padding!r}")
    oh, ow = _normalize_size(size, "random_crop") or (h, w)
    hp, wp = h + 2 * ph, w + 2 * pw
    if oh > hp or ow > wp:
        raise ValueError(f"random_crop: crop size {(oh, ow)} larger than the padded image: "
                         f"expected at most {(hp, wp)}, got {(oh, ow)}")
    rng = as_rng(rng, "random_crop")
    padded = x if ph == pw == 0 else np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), mode=pad_mode)
    oy = rng.integers(0, hp - oh + 1, size=n)
    ox = rng.integers(0, wp - ow + 1, size=n)
    windows = sliding_window_view(padded, (oh, ow), axis=(2, 3))  # (N, C, hp-oh+1, wp-ow+1, oh, ow)
    return windows[np.arange(n), :, oy, ox]                        # (N, C, oh, ow), a new array


def flip_horizontal(x) -> np.ndarray:
    """Mirror every image left-right (last axis); returns a copy."""
    return np.ascontiguousarray(np.asarray(x)[..., ::-1])


def random_flip(x, rng=None, p: float = 0.5) -> np.ndarray:
    """Mirror each image of a batch ``(N, C, H, W)`` left-right with probability ``p``
    (independently per image). Returns a new array."""
    x = _batch(x, "random_flip")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"random_flip: p must be in [0, 1], got {p!r}")
    flip = as_rng(rng, "random_flip").random(len(x)) < p
    out = x.copy()
    out[flip] = x[flip, :, :, ::-1]
    return out
