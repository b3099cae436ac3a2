"""History: what ``Model.fit`` returns — the per-epoch logs."""
from __future__ import annotations

import numbers
import os

import numpy as np


class History:
    """Per-epoch metrics of one ``fit`` call, Keras style.

    ``history.history`` maps 'loss', 'accuracy', the other ``metrics`` of fit (e.g.
    'top5_accuracy'), 'lr' and, with validation data, 'val_loss', 'val_accuracy', ... to
    lists with one float per epoch run; ``history.epoch`` lists the (0-based) epoch
    indices; ``history.params`` the fit settings. ``history.plot()`` draws them.
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

    def metric_names(self):
        """The plotted quantities: 'loss' then each metric, without the 'val_' twins
        and without 'lr'."""
        names = [k for k in self.history if not k.startswith("val_") and k != "lr"]
        names += [k[4:] for k in self.history if k.startswith("val_") and k[4:] not in names]
        return sorted(names, key=lambda k: (k != "loss", list(self.history).index(
            k if k in self.history else "val_" + k)))

    def plot(self, path=None, dpi=100):
        """One panel per quantity ('loss', 'accuracy', other metrics), train and
        validation against the epoch (1-based). Returns the ``matplotlib.figure.Figure``
        (built without pyplot: no display needed, the user's backend untouched); with
        ``path`` (a .png) also writes it there, atomically."""
        if not self.epoch:
            raise ValueError("History.plot: no epochs were recorded (fit trained nothing)")
        if path is not None and not str(path).lower().endswith(".png"):
            raise ValueError(f"History.plot: path must end in .png, got {str(path)!r}")
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator

        names = self.metric_names()
        fig = Figure(figsize=(4.2 * len(names), 3.4), dpi=dpi, layout="constrained")
        FigureCanvasAgg(fig)
        epochs = [e + 1 for e in self.epoch]
        for ax, name in zip(fig.subplots(1, len(names), squeeze=False)[0], names):
            for key, label, style in ((name, "train", "o-"), ("val_" + name, "validation",
                                                             "s--")):
                values = self.history.get(key)
                if values:
                    ax.plot(epochs[:len(values)], values, style, label=label, markersize=3)
            ax.set_title(name)
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            seen = [v for k in (name, "val_" + name) for v in self.history.get(k, [])]
            if name == "loss" and min(seen) > 0 and max(seen) > 30 * min(seen):
                ax.set_yscale("log")  # a diverging or fast-falling loss spans decades
            ax.grid(True, alpha=0.3)
            ax.legend()
        if path is not None:
            _atomic_savefig(fig, path)
        return fig


def _atomic_savefig(fig, path):
    """Write the PNG to a temporary file beside ``path``, then rename it over ``path``: a
    crash never leaves a half-written picture."""
    from ..data import atomic_open

    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"History.plot: folder {folder} does not exist")
    with atomic_open(path) as f:
        fig.savefig(f, format="png")
