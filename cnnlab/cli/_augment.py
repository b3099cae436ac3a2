"""Vectorized random affine augmentation for image batches (the training recipes of
``cnnlab train``): a small rotation, zoom and shift per image, bilinear, zeros outside.
Private to the command line (the ``_`` keeps it from being taken for a subcommand)."""
from __future__ import annotations

import numpy as np


def random_affine(x, rng, degrees=10.0, zoom=0.1, shift=2.0):
    """Warp each image of ``x`` (N, C, H, W) by its own random rotation in
    [-degrees, degrees], scale in [1 - zoom, 1 + zoom] and shift in [-shift, shift]
    pixels per axis, about the image centre. Returns a new float32 array."""
    x = np.asarray(x, dtype=np.float32)
    n, c, h, w = x.shape
    theta = np.deg2rad(rng.uniform(-degrees, degrees, n))
    scale = rng.uniform(1.0 - zoom, 1.0 + zoom, n)
    tx, ty = rng.uniform(-shift, shift, (2, n))
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    v, u = np.meshgrid(np.arange(h) - cy, np.arange(w) - cx, indexing="ij")   # (H, W)
    cos = (np.cos(theta) / scale)[:, None, None]
    sin = (np.sin(theta) / scale)[:, None, None]
    # the source pixel of each output pixel: inverse rotation and zoom, minus the shift
    sx = cos * u + sin * v + cx - tx[:, None, None]
    sy = -sin * u + cos * v + cy - ty[:, None, None]
    x0, y0 = np.floor(sx).astype(np.intp), np.floor(sy).astype(np.intp)
    wx, wy = (sx - x0).astype(np.float32), (sy - y0).astype(np.float32)
    padded = np.zeros((n, c, h + 2, w + 2), np.float32)
    padded[:, :, 1:-1, 1:-1] = x
    nn = np.arange(n)[:, None, None]

    def tap(yy, xx):  # (N, C, H, W); coordinates outside read the zero border
        yy = np.clip(yy + 1, 0, h + 1)
        xx = np.clip(xx + 1, 0, w + 1)
        return padded[nn, :, yy, xx].transpose(0, 3, 1, 2)

    wx, wy = wx[:, None], wy[:, None]
    top = tap(y0, x0) * (1 - wx) + tap(y0, x0 + 1) * wx
    bottom = tap(y0 + 1, x0) * (1 - wx) + tap(y0 + 1, x0 + 1) * wx
    return np.ascontiguousarray(top * (1 - wy) + bottom * wy, dtype=np.float32)
