"""The training loop behind ``Model.fit``, ``evaluate`` and ``predict``.

Shuffling is reproducible and resumable: the permutation of epoch ``e`` comes from
``np.random.default_rng([seed, e])`` and augmentation of batch ``b`` from
``default_rng([seed, e, b, 1])``, so training epochs ``k..n`` after loading a checkpoint
saved at epoch ``k`` repeats exactly what an uninterrupted run would have done.
"""
from __future__ import annotations

import inspect
import math
import sys
import time

import numpy as np

from .. import functional as F
from ..optim import Adam, Optimizer
from .callbacks import Callback, CallbackList
from .errors import TrainingDivergedError
from .history import History
from .regularization import add_l2_penalty

LOSSES = {"softmax": F.softmax_loss, "cross_entropy": F.softmax_loss,
          "crossentropy": F.softmax_loss, "svm": F.svm_loss, "hinge": F.svm_loss}


def resolve_loss(loss):
    """'softmax' (cross-entropy; aliases 'cross_entropy') or 'svm' ('hinge'), or a callable
    ``(scores, y) -> (loss, dscores)``."""
    if callable(loss):
        return loss
    if isinstance(loss, str) and loss.lower() in LOSSES:
        return LOSSES[loss.lower()]
    raise ValueError(f"loss must be 'softmax' (cross-entropy) or 'svm' (hinge), or a "
                     f"callable (scores, y) -> (loss, dscores); got {loss!r}")


def _last_leaf(model):
    layer = model
    while getattr(layer, "layers", None):
        layer = layer.layers[-1]
    return layer


def outputs_probabilities(model):
    """True when the model ends in a softmax (a ``Softmax`` layer or
    ``activation='softmax'``), i.e. it outputs probabilities rather than scores."""
    leaf = _last_leaf(model)
    return type(leaf).__name__ == "Softmax" or getattr(leaf, "activation", None) == "softmax"


def probability_cross_entropy(probs, y):
    """Cross-entropy of probabilities (a model ending in softmax) -> (loss, dprobs).

    dL/dp_y = -1 / (N p_y); backpropagated through the softmax layer's exact Jacobian it
    gives (p - onehot(y)) / N, the same as the loss on logits. p_y is floored at the
    dtype's smallest normal number so an underflowed probability gives a finite loss."""
    n = probs.shape[0]
    rows = np.arange(n)
    p = np.maximum(probs[rows, y], np.finfo(probs.dtype).tiny)
    dprobs = np.zeros_like(probs)
    dprobs[rows, y] = -1.0 / (n * p)
    return float(-np.log(p).mean()), dprobs


def loss_for(model, loss_fn):
    """The loss to apply to this model's outputs: cross-entropy on probabilities when the
    model ends in a softmax, else ``loss_fn`` on the scores."""
    if loss_fn is F.softmax_loss and outputs_probabilities(model):
        return probability_cross_entropy
    return loss_fn


def _positive_int(name, value, minimum=1):
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if int(value) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_x(x, name="x", expected_shape=None):
    """x must be a floating array (N, C, ...) with N >= 1; returns it (no copy)."""
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
    if x.dtype.kind not in "f":
        hint = " (scale images to floats first, e.g. x.astype(np.float32) / 255)" \
            if x.dtype.kind in "iub" else ""
        raise TypeError(f"{name} must be a floating-point array (N, C, H, W), got dtype "
                        f"{x.dtype}{hint}")
    if x.ndim < 2:
        raise ValueError(f"{name} must be a batch of samples (N, C, H, W), got shape "
                         f"{x.shape}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty: got shape {x.shape}")
    if expected_shape is not None and tuple(x.shape[1:]) != tuple(expected_shape):
        raise ValueError(f"{name} samples must have shape {tuple(expected_shape)} (like x), "
                         f"got {tuple(x.shape[1:])} ({name}.shape = {x.shape})")
    return x


def check_y(y, n, num_classes, name="y", xname="x"):
    """y must be (n,) integer labels in [0, num_classes); returns an int64 array."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D class labels (N,), got shape {y.shape}"
                         + (" (one-hot labels? use y.argmax(1))" if y.ndim == 2 else ""))
    if y.shape[0] != n:
        raise ValueError(f"{name} must have one label per sample of {xname}: expected "
                         f"{n}, got {y.shape[0]}")
    if y.dtype.kind not in "iu":
        if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise TypeError(f"{name} must hold integer class labels, got dtype {y.dtype}")
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= num_classes:
        bad = lo if lo < 0 else hi
        raise ValueError(f"{name} labels must be in [0, {num_classes - 1}] (the model has "
                         f"{num_classes} outputs), got {bad}")
    return y.astype(np.int64, copy=False)


def ensure_built(model, sample_shape):
    """Build the model for per-sample ``sample_shape`` if needed (with its own seed), else
    check that it accepts that shape. Returns the number of classes (the model's
    per-sample output size)."""
    sample_shape = tuple(int(s) for s in sample_shape)
    if not model.built:
        model.build(sample_shape)
    try:
        out = tuple(model.check_input_shape(sample_shape))
    except ValueError as e:
        raise ValueError(f"x samples of shape {sample_shape} do not fit the model (built "
                         f"for {model.input_shape}): {e}") from None
    if len(out) != 1:
        raise ValueError(f"the model must output class scores of shape (num_classes,) per "
                         f"sample to be trained with fit/evaluate/predict, but it outputs "
                         f"{out}; end it with Flatten() and Dense(num_classes)")
    return out[0]


def parameter_arrays(model):
    """(params, grads) lists in ``named_parameters`` order (grads read after backward)."""
    entries = model.named_parameters()
    return ([layer.params[key] for _, layer, key in entries],
            [layer.grads[key] for _, layer, key in entries])


def _augmenter(augment):
    """Wrap ``augment`` as f(xb, rng). It may take the generator as keyword ``rng`` (like
    ``cnnlab.data.random_crop`` / ``random_flip``), as its second positional argument,
    or not at all (``f(xb)``)."""
    if augment is None:
        return None
    if not callable(augment):
        raise TypeError(f"augment must be a callable (x_batch, rng) -> x_batch, got "
                        f"{type(augment).__name__}")
    try:
        params = list(inspect.signature(augment).parameters.values())
    except (TypeError, ValueError):
        return augment
    if any(p.name == "rng" and p.kind != p.POSITIONAL_ONLY for p in params):
        return lambda xb, rng: augment(xb, rng=rng)
    n_pos = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)
    if n_pos >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params):
        return augment
    return lambda xb, rng: augment(xb)


def _accuracy_count(scores, y):
    return int(np.count_nonzero(scores.argmax(axis=1) == y))


def batched_scores(model, x, batch_size):
    """Yield (start, scores) for consecutive batches of ``x`` in inference mode."""
    dtype = getattr(model, "dtype", np.float32)
    for start in range(0, x.shape[0], batch_size):
        xb = np.ascontiguousarray(x[start:start + batch_size], dtype=dtype)
        yield start, model.forward(xb, training=False)


def evaluate(model, x, y, batch_size=256, loss="softmax"):
    """Mean loss and accuracy over (x, y), batched, inference mode. -> dict."""
    loss_fn = resolve_loss(loss)
    batch_size = _positive_int("batch_size", batch_size)
    x = check_x(x)
    num_classes = ensure_built(model, x.shape[1:])
    y = check_y(y, x.shape[0], num_classes)
    loss_fn = loss_for(model, loss_fn)
    total, correct = 0.0, 0
    for start, scores in batched_scores(model, x, batch_size):
        yb = y[start:start + scores.shape[0]]
        value, _ = loss_fn(scores, yb)
        total += float(value) * scores.shape[0]
        correct += _accuracy_count(scores, yb)
    n = x.shape[0]
    return {"loss": total / n, "accuracy": correct / n}


def predict(model, x, batch_size=256):
    """Class probabilities (N, num_classes), batched, inference mode: the softmax of the
    scores, or the outputs themselves when the model ends in a softmax."""
    batch_size = _positive_int("batch_size", batch_size)
    x = check_x(x)
    num_classes = ensure_built(model, x.shape[1:])
    already = outputs_probabilities(model)
    out = None
    for start, scores in batched_scores(model, x, batch_size):
        if out is None:
            out = np.empty((x.shape[0], num_classes), dtype=scores.dtype)
        out[start:start + scores.shape[0]] = scores if already else F.softmax(scores, axis=1)
    return out


def _new_seed():
    return int(np.random.SeedSequence().entropy % (2 ** 63))


def resolve_seed(model, seed, initial_epoch):
    """The training seed: given, else the model's stored one when resuming, else fresh."""
    if seed is not None:
        if isinstance(seed, bool) or not hasattr(seed, "__index__"):
            raise TypeError(f"seed must be a non-negative integer or None, got {seed!r}")
        if int(seed) < 0:
            raise ValueError(f"seed must be a non-negative integer or None, got {seed}")
        return int(seed)
    stored = getattr(model, "train_seed", None)
    if initial_epoch > 0 and stored is not None:
        return int(stored)
    return _new_seed()


def _progress(verbose, total, desc):
    if verbose != 1:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, unit="img", leave=True, dynamic_ncols=True,
                file=sys.stderr, mininterval=0.2)


def fit(model, x, y, epochs=1, batch_size=64, optimizer=None, loss="softmax",
        validation_data=None, callbacks=None, verbose=1, seed=None, shuffle=True,
        initial_epoch=0, augment=None):
    """See :meth:`cnnlab.training.Model.fit`."""
    loss_fn = resolve_loss(loss)
    epochs = _positive_int("epochs", epochs, 0)
    initial_epoch = _positive_int("initial_epoch", initial_epoch, 0)
    batch_size = _positive_int("batch_size", batch_size)
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0 (silent), 1 (progress bar) or 2 (one line per "
                         f"epoch), got {verbose!r}")
    x = check_x(x)
    if not (np.isfinite(x.min()) and np.isfinite(x.max())):  # NaN propagates; no big mask
        raise ValueError("x contains NaN or infinite values")
    num_classes = ensure_built(model, x.shape[1:])
    y = check_y(y, x.shape[0], num_classes)
    loss_fn = loss_for(model, loss_fn)
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError("validation_data must be a tuple (x_val, y_val)")
        xv = check_x(validation_data[0], "validation_data[0]", x.shape[1:])
        yv = check_y(validation_data[1], xv.shape[0], num_classes, "validation_data[1]",
                     "validation_data[0]")
    if optimizer is None:
        optimizer = getattr(model, "optimizer", None) or Adam(1e-3)
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be a cnnlab.optim.Optimizer (SGD, Adam, ...), got "
                        f"{type(optimizer).__name__}")
    if isinstance(callbacks, Callback):
        callbacks = [callbacks]
    aug = _augmenter(augment)
    seed = resolve_seed(model, seed, initial_epoch)
    model.optimizer, model.train_seed, model.stop_training = optimizer, seed, False

    n = x.shape[0]
    steps = math.ceil(n / batch_size)
    dtype = getattr(model, "dtype", np.float32)
    history = History({"epochs": epochs, "initial_epoch": initial_epoch, "steps": steps,
                       "samples": n, "batch_size": batch_size, "seed": seed})
    cbs = CallbackList(callbacks)
    cbs.set_model(model)
    cbs.set_params(history.params)
    cbs.on_train_begin({})
    logs = {}
    for epoch in range(initial_epoch, epochs):
        cbs.on_epoch_begin(epoch, {})
        order = (np.random.default_rng([seed, epoch]).permutation(n) if shuffle
                 else np.arange(n))
        _reseed_layers(model, seed, epoch)
        bar = _progress(verbose, n, f"Epoch {epoch + 1}/{epochs}")
        lr_used, seen, loss_sum, correct, t0 = optimizer.lr, 0, 0.0, 0, time.perf_counter()
        try:
            for b in range(steps):
                idx = order[b * batch_size:(b + 1) * batch_size]
                xb = np.ascontiguousarray(x[idx], dtype=dtype)
                yb = y[idx]
                if aug is not None:
                    xb = np.ascontiguousarray(
                        aug(xb, np.random.default_rng([seed, epoch, b, 1])), dtype=dtype)
                cbs.on_batch_begin(b, {"batch": b, "size": len(idx)})
                lr_used = optimizer.lr
                scores = model.forward(xb, training=True)
                value, dscores = loss_fn(scores, yb)
                value = float(value)
                if not math.isfinite(value):
                    raise TrainingDivergedError(
                        f"training diverged: the loss is {value} at epoch {epoch + 1}/"
                        f"{epochs}, batch {b + 1}/{steps}. Try a lower learning rate "
                        f"(optimizer.lr is {optimizer.lr:g}), gradient clipping, or check "
                        f"the data for extreme values.", epoch=epoch, batch=b, loss=value)
                model.backward(dscores, need_dx=False)  # the input gradient is unused
                value += add_l2_penalty(model)  # model.reg: L2 on weights (cs231n)
                params, grads = parameter_arrays(model)
                optimizer.step(params, grads)
                k = len(idx)
                batch_correct = _accuracy_count(scores, yb)
                seen, loss_sum, correct = seen + k, loss_sum + value * k, correct + batch_correct
                if bar is not None:
                    bar.update(k)
                    bar.set_postfix_str(f"loss={loss_sum / seen:.4f} acc={correct / seen:.4f} "
                                        f"lr={lr_used:.3g}", refresh=False)
                cbs.on_batch_end(b, {"batch": b, "size": k, "loss": value,
                                     "accuracy": batch_correct / k, "lr": lr_used})
                if model.stop_training:
                    break
            logs = {"loss": loss_sum / max(seen, 1), "accuracy": correct / max(seen, 1),
                    "lr": lr_used}
            if validation_data is not None:
                val = evaluate(model, xv, yv, batch_size=max(batch_size, 256), loss=loss_fn)
                logs["val_loss"], logs["val_accuracy"] = val["loss"], val["accuracy"]
            if bar is not None:  # the bar's last state doubles as the epoch summary
                bar.set_postfix_str(_epoch_summary(logs), refresh=False)
            elif verbose == 2:
                rate = seen / max(time.perf_counter() - t0, 1e-9)
                print(f"Epoch {epoch + 1}/{epochs}: {_epoch_summary(logs)} ({rate:.0f} img/s)",
                      file=sys.stderr)
        finally:
            if bar is not None:
                bar.close()
        cbs.on_epoch_end(epoch, logs)
        history.record(epoch, logs)  # after the callbacks, so metrics they add are kept
        if model.stop_training:
            break
    cbs.on_train_end(logs)
    return history


def _epoch_summary(logs):
    parts = [f"{k}={v:.4f}" for k, v in logs.items() if k != "lr"]
    return " ".join(parts) + f" lr={logs['lr']:.3g}"


def _reseed_layers(model, seed, epoch):
    """Give every random layer (dropout) a generator derived from (seed, epoch, position)
    so a resumed run draws the same masks as an uninterrupted one."""
    for i, layer in enumerate(_walk(model)):
        if layer is not model and isinstance(getattr(layer, "rng", None), np.random.Generator):
            layer.rng = np.random.default_rng([seed, epoch, i, 2])


def _walk(layer):
    yield layer
    for child in getattr(layer, "layers", None) or ():
        yield from _walk(child)
