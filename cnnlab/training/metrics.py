"""Metrics reported by ``fit`` / ``evaluate`` beside the loss (``metrics=[...]``).

A metric sums a per-sample score over a batch; the epoch value is the sum over all
samples divided by their number, so it does not depend on the batch size:

    Accuracy()        'accuracy'        argmax(scores) == y
    TopKAccuracy(5)   'top5_accuracy'   y among the k largest scores (ties: any k of them)

Names accepted by ``metrics=``: 'accuracy' / 'acc', 'top5' (any k: 'top3', ...),
'top_k_accuracy' / 'top_k_categorical_accuracy' (k = 5, Keras's default), or a Metric.
"""
from __future__ import annotations

import re

import numpy as np

from .. import checks


class Metric:
    """Base class: ``name`` (the log key; validation adds 'val_') and
    ``batch_sum(scores, y) -> float``, the sum of the per-sample values of a batch
    (scores (N, num_classes), y (N,) int labels)."""

    name = "metric"

    def batch_sum(self, scores, y):  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}()"


class Accuracy(Metric):
    """Fraction of samples whose highest score is the label."""

    name = "accuracy"

    def batch_sum(self, scores, y):
        return float(np.count_nonzero(scores.argmax(axis=1) == y))


class TopKAccuracy(Metric):
    """Fraction of samples whose label is among the ``k`` highest scores."""

    def __init__(self, k=5):
        with checks.owned_by("TopKAccuracy"):
            self.k = checks.positive_int(k, "k")
        self.name = f"top{self.k}_accuracy"

    def batch_sum(self, scores, y):
        c = scores.shape[1]
        if self.k >= c:  # every class is in the top k
            return float(scores.shape[0])
        # the label is in the top k iff fewer than k scores beat it; counting them is
        # exact where argpartition would pick arbitrarily among ties
        own = scores[np.arange(scores.shape[0]), y][:, None]
        return float(np.count_nonzero((scores > own).sum(axis=1) < self.k))

    def __repr__(self):
        return f"TopKAccuracy(k={self.k})"


def get(metric):
    """A Metric from a name ('accuracy', 'top5', 'top_k_accuracy', ...) or a Metric."""
    if isinstance(metric, Metric):
        return metric
    if isinstance(metric, str):
        key = metric.lower()
        if key in ("accuracy", "acc", "sparse_categorical_accuracy"):
            return Accuracy()
        if key in ("top_k_accuracy", "top_k_categorical_accuracy",
                   "sparse_top_k_categorical_accuracy"):
            return TopKAccuracy(5)
        m = re.fullmatch(r"top_?(\d+)(_accuracy)?", key)
        if m and int(m.group(1)) >= 1:
            return TopKAccuracy(int(m.group(1)))
    raise ValueError(f"unknown metric {metric!r}: use 'accuracy', 'top5' (any k), "
                     f"'top_k_accuracy' or a cnnlab.training.metrics.Metric such as "
                     f"TopKAccuracy(3)")


def resolve(metrics):
    """The metrics to report: always Accuracy first, then the others asked for (each
    name once). ``metrics``: None, a name, a Metric or a list of them."""
    if metrics is None:
        metrics = []
    elif isinstance(metrics, (str, Metric)):
        metrics = [metrics]
    elif not isinstance(metrics, (list, tuple)):
        raise TypeError(f"metrics must be a list of names or Metric objects, got "
                        f"{type(metrics).__name__}")
    out = [Accuracy()]
    for m in metrics:
        m = get(m)
        if m.name not in [o.name for o in out]:
            out.append(m)
    return out
