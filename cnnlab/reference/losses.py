"""Softmax and the two classification losses, one sample at a time (mean over the batch).

scores (N, C), y (N,) integer labels in [0, C) -> (loss: float, dscores (N, C)).
    softmax: p_j = e^{s_j} / sum_k e^{s_k};   cross-entropy: L_i = -log p_{y_i}
    SVM: L_i = sum_{j != y_i} max(0, s_j - s_{y_i} + delta)
"""
from __future__ import annotations

import numpy as np

from ._checks import to_float


def softmax(x, axis=-1):
    """p = e^{x - max} / sum e^{x - max} along ``axis`` (shifting by the max avoids overflow)."""
    x = to_float(x, "x")
    moved = np.moveaxis(x, axis, -1)
    out = np.zeros_like(moved)
    for idx in np.ndindex(*moved.shape[:-1]):
        e = np.exp(moved[idx] - np.max(moved[idx]))
        out[idx] = e / np.sum(e)
    return np.moveaxis(out, -1, axis)


def log_softmax(x, axis=-1):
    """log p = (x - max) - log(sum e^{x - max}) along ``axis``."""
    x = to_float(x, "x")
    moved = np.moveaxis(x, axis, -1)
    out = np.zeros_like(moved)
    for idx in np.ndindex(*moved.shape[:-1]):
        z = moved[idx] - np.max(moved[idx])
        out[idx] = z - np.log(np.sum(np.exp(z)))
    return np.moveaxis(out, -1, axis)


def _check(scores, y):
    scores = to_float(scores, "scores")
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D (N, num_classes), got shape {scores.shape}")
    y = np.asarray(y)
    if y.shape != (scores.shape[0],):
        raise ValueError(f"y must have one label per row of scores, shape ({scores.shape[0]},), got {y.shape}")
    if y.dtype.kind not in "iu":
        if y.dtype.kind == "f" and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise TypeError(f"y must hold integer class labels, got dtype {y.dtype}")
    c = scores.shape[1]
    for label in y:
        if not 0 <= label < c:
            raise ValueError(f"labels in y must be in [0, {c - 1}], got {label}")
    return scores, y


def softmax_loss(scores, y, label_smoothing=0.0):
    """-> (L = -1/N sum_i sum_j q_ij log p_ij, dscores = (p - q) / N), where the target
    q_i = (1 - e) onehot(y_i) + e / C (e = ``label_smoothing``; 0: the plain one-hot)."""
    scores, y = _check(scores, y)
    e = float(label_smoothing)
    if not 0.0 <= e <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing!r}")
    n, c = scores.shape
    loss = 0.0
    dscores = np.zeros_like(scores)
    for i in range(n):
        z = scores[i] - np.max(scores[i])
        logp = z - np.log(np.sum(np.exp(z)))  # log p, computed without log(0)
        q = np.full(c, e / c)
        q[y[i]] += 1.0 - e
        loss += -np.sum(q * logp)
        dscores[i] = np.exp(logp) - q
    return float(loss / n), dscores / n


def svm_loss(scores, y, delta=1.0):
    """-> (L = 1/N sum_i sum_{j != y_i} max(0, s_ij - s_{i y_i} + delta), dscores)."""
    scores, y = _check(scores, y)
    n, c = scores.shape
    loss = 0.0
    dscores = np.zeros_like(scores)
    for i in range(n):
        for j in range(c):
            if j == y[i]:
                continue
            margin = scores[i, j] - scores[i, y[i]] + delta
            if margin > 0:
                loss += margin
                dscores[i, j] += 1
                dscores[i, y[i]] -= 1
    return float(loss / n), dscores / n
