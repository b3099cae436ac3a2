"""History: what ``Model.fit`` returns — the per-epoch logs."""
from __future__ import annotations

import numbers

import numpy as np


class History:
    """Per-epoch metrics of one ``fit`` call, Keras style.

    ``history.history`` maps 'loss', 'accuracy', 'lr' and, with validation data,
    'val_loss', 'val_accuracy' to lists with one float per epoch run; ``history.epoch`` lists
    the (0-based) epoch indices; ``history.params`` the fit settings.
    """

    def __init__(self, params=None):
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.params: dict = dict(params or {})

    def record(self, epoch, logs):
        """Append one epoch's logs (the numeric entries)."""
        self.epoch.append(int(epoch))
        for k, v in logs.items():
            if isinstance(v, numbers.Real) or (isinstance(v, np.ndarray) and v.size == 1):
                self.history.setdefault(k, []).append(float(v))

    def __getitem__(self, key):
        return self.history[key]

    def __len__(self):
        return len(self.epoch)

    def __repr__(self):
        last = {k: round(v[-1], 4) for k, v in self.history.items() if v}
        return f"History(epochs={len(self.epoch)}, last={last})"
