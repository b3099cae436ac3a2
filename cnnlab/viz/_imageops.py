"""Small image operations for the gradient-ascent tools: Gaussian blur, jitter (random
shifts) and resizing of (C, H, W) float arrays."""
from __future__ import annotations

import numpy as np

from .. import functional as F
from ._plot import resize


def gaussian_blur(x, sigma):
    """Blur each channel of (C, H, W) with a Gaussian of std ``sigma`` pixels (reflected
    borders, so the edges do not darken); separable: a row pass, then a column pass.
    sigma <= 0 returns x unchanged."""
    x = np.asarray(x)
    if sigma <= 0:
        return x
    r = max(1, int(np.ceil(2.5 * sigma)))
    t = np.arange(-r, r + 1)
    g = np.exp(-t ** 2 / (2.0 * sigma ** 2))
    g /= g.sum()
    mode = "reflect" if min(x.shape[1:]) > r else "edge"
    padded = np.pad(x.astype(np.float64), ((0, 0), (r, r), (r, r)), mode=mode)[:, None]
    rows, _ = F.conv2d_forward(padded, g[None, None, None, :])
    out, _ = F.conv2d_forward(rows, g[None, None, :, None])
    return out[:, 0].astype(x.dtype)


def random_shift(rng, jitter):
    """A random (dy, dx) with each in [-jitter, jitter]."""
    if jitter <= 0:
        return 0, 0
    dy, dx = rng.integers(-int(jitter), int(jitter) + 1, size=2)
    return int(dy), int(dx)


def roll(x, dy, dx):
    """Shift the last two axes of x by (dy, dx), wrapping around."""
    if dy == 0 and dx == 0:
        return x
    return np.roll(x, (dy, dx), axis=(-2, -1))


def resize_chw(x, size):
    """Bilinear resize of (C, H, W) to (C, size[0], size[1])."""
    x = np.asarray(x)
    return np.stack([resize(c, size) for c in x]).astype(x.dtype)
