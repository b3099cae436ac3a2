"""Training the way cs231n's ``Solver`` reports it, on top of ``Model.fit``: the loss of
every iteration, and after every epoch the accuracy (test mode) on up to 1,000 training
images and on the validation set."""
from __future__ import annotations

import numpy as np

from ..training import LambdaCallback


def accuracy(model, x, y, batch_size=500):
    """Fraction of ``x`` classified as ``y`` in test mode (dropout off, batch norm's
    running statistics)."""
    return model.evaluate(x, y, batch_size=batch_size)["accuracy"]


def train(model, data, optimizer, epochs, batch_size, seed=0, num_train_check=1000):
    """Train ``model`` on ``data`` (X_train, y_train, X_val, y_val) with ``optimizer``.

    Returns a dict: 'loss' (one value per iteration: data loss + L2 penalty, as the
    course's loss_history), 'train_acc' and 'val_acc' (one per epoch, test mode;
    train_acc on the first ``num_train_check`` training images in a seeded random
    order), 'iters_per_epoch'.
    """
    xt, yt, xv, yv = data["X_train"], data["y_train"], data["X_val"], data["y_val"]
    check = np.random.default_rng([seed, 231]).permutation(len(xt))[:num_train_check]
    xc, yc = xt[check], yt[check]
    out = {"loss": [], "train_acc": [], "val_acc": []}

    def on_epoch_end(epoch, logs):
        out["train_acc"].append(accuracy(model, xc, yc))
        out["val_acc"].append(accuracy(model, xv, yv) if len(xv) else float("nan"))

    cb = LambdaCallback(on_batch_end=lambda b, logs: out["loss"].append(logs["loss"]),
                        on_epoch_end=on_epoch_end)
    model.fit(xt, yt, epochs=epochs, batch_size=batch_size, optimizer=optimizer,
              callbacks=[cb], verbose=0, seed=seed)
    out["iters_per_epoch"] = -(-len(xt) // batch_size)
    return out
