"""Softmax and the two classification losses of the courses (mean over the batch).

softmax:  p_ij = exp(s_ij) / sum_k exp(s_ik)
cross-entropy:  L = -1/N sum_i log p_{i, y_i},     dL/ds = (p - onehot(y)) / N
  (with label smoothing e: the target onehot(y) becomes (1 - e) onehot(y) + e / C)
SVM (hinge, margin 1):  L = 1/N sum_i sum_{j != y_i} max(0, s_ij - s_{i y_i} + 1)
"""

from __future__ import annotations

import numpy as np

from ._args import as_float_array, real_number


def softmax(x, axis=-1):
    """Numerically stable softmax along ``axis``."""
    x = as_float_array(x, "x")
    z = x - x.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax(x, axis=-1):
    """log(softmax(x)) without overflow."""
    x = as_float_array(x, "x")
    z = x - x.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def _check(scores, y):
    scores = as_float_array(scores, "scores")
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D (N, num_classes), got shape {scores.shape}")
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != scores.shape[0]:
        raise ValueError(
            f"y must be 1-D with one label per row of scores: expected shape "
            f"({scores.shape[0]},), got {y.shape}"
        )
    if y.dtype.kind not in "iu":
        if y.dtype.kind == "f" and np.all(np.mod(y, 1) == 0):
            y = y.astype(np.int64)
        else:
            raise TypeError(f"y must hold integer class labels, got dtype {y.dtype}")
    c = scores.shape[1]
    if y.size and (y.min() < 0 or y.max() >= c):
        bad = y[(y < 0) | (y >= c)][0]
        raise ValueError(f"labels in y must be in [0, {c - 1}] for {c} classes, got {bad}")
    return scores, y


def softmax_loss(scores, y, label_smoothing=0.0):
    """Cross-entropy of softmax(scores) -> (loss, dscores). scores (N, C), y (N,) ints.

    ``label_smoothing`` e (PyTorch's and Keras's argument): the target is
    q = (1 - e) onehot(y) + e / C instead of onehot(y), so L = -1/N sum_i sum_j q_ij log p_ij
    and dL/ds = (p - q) / N.
    """
    scores, y = _check(scores, y)
    e = real_number(label_smoothing, "label_smoothing")
    if not 0.0 <= e <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing!r}")
    n, c = scores.shape
    logp = log_softmax(scores)
    loss = -logp[np.arange(n), y].mean()
    dscores = np.exp(logp)
    if e:
        loss = (1.0 - e) * loss - e * logp.mean(axis=1).mean()
        dscores -= scores.dtype.type(e / c)
    dscores[np.arange(n), y] -= scores.dtype.type(1.0 - e)
    dscores /= n
    return float(loss), dscores


def svm_loss(scores, y, delta=1.0):
    """Multiclass SVM (hinge) loss -> (loss, dscores). scores (N, C), y (N,) ints."""
    scores, y = _check(scores, y)
    delta = real_number(delta, "delta")
    n = scores.shape[0]
    rows = np.arange(n)
    correct = scores[rows, y][:, None]
    margins = np.maximum(0, scores - correct + delta)
    margins[rows, y] = 0
    loss = margins.sum() / n
    active = (margins > 0).astype(scores.dtype)
    active[rows, y] = -active.sum(axis=1)
    return float(loss), active / n
