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
import warnings

import numpy as np

from .. import checks
from .. import functional as F
from .. import optim as _optim
from ..distributed.guard import abort_on_error
from ..optim import Adam
from . import metrics as _metrics
from . import sources
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
    """(params, grads, step_grads) lists in ``named_parameters`` order, grads read after
    backward. ``step_grads`` is what the optimizer gets: None for a frozen layer's
    arrays, which it then leaves alone; ``grads`` has them all (the exchange between
    ranks sends one fixed list)."""
    entries = model.named_parameters()
    grads = [layer.grads[key] for _, layer, key in entries]
    return ([layer.params[key] for _, layer, key in entries], grads,
            [g if layer.trainable else None for g, (_, layer, _) in zip(grads, entries)])


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


def check_finite(x, name):
    """Reject NaN / inf in ``x`` (min and max propagate NaN: no mask the size of x)."""
    if not (np.isfinite(x.min()) and np.isfinite(x.max())):
        raise ValueError(f"{name} contains NaN or infinite values")


def check_batch_not_sample(model, x, name="x", fn="predict"):
    """A single sample (C, H, W) given where a batch (N, C, H, W) is expected: say so."""
    x = np.asarray(x) if not isinstance(x, np.ndarray) else x
    if model.built and x.ndim == len(model.input_shape) and \
            tuple(x.shape) == tuple(model.input_shape)[:x.ndim]:
        raise ValueError(f"{name} of shape {tuple(x.shape)} looks like one sample, but {fn} "
                         f"takes a batch (N, {', '.join(map(str, x.shape))}): use {name}[None] "
                         f"(or {name}[np.newaxis]) for a batch of one")


def _data(model, x, y, name, yname, with_labels=True):
    """Arrays or a stream of batches -> (ArrayData | BatchStream, num_classes), the model
    built for the samples' shape."""
    if sources.is_batch_stream(x):
        if y is not None:
            raise ValueError(f"{yname} must be None when {name} is a DataLoader or an "
                             f"iterable of (x_batch, y_batch) batches: the labels come with "
                             f"the batches")
        holder = {}

        def check_first(item):
            xb, yb = sources.split_pair(item, name, 0, with_labels)
            xb = check_x(xb, f"{name} batch 1")
            holder["k"] = ensure_built(model, xb.shape[1:])
            return xb, yb

        data = sources.BatchStream(x, name, check_first)
        return data, holder["k"]
    if y is None and with_labels:
        raise ValueError(f"{yname} is missing: give labels (N,) with the array {name}, or "
                         f"pass {name} as a DataLoader / iterable of (x_batch, y_batch)")
    check_batch_not_sample(model, x, name, "fit/evaluate" if with_labels else "predict")
    x = check_x(x, name)
    k = ensure_built(model, x.shape[1:])
    if with_labels:
        y = check_y(y, x.shape[0], k, yname, name)
    return sources.ArrayData(x, y), k


def _stream_batch(data, item, b, num_classes, with_labels=True):
    """Check one batch of a stream (shape, finiteness, labels) -> (xb, yb)."""
    xb, yb = sources.split_pair(item, data.name, b, with_labels)
    xb = check_x(xb, f"{data.name} batch {b + 1}", data.sample_shape)
    if with_labels:
        check_finite(xb, f"{data.name} batch {b + 1}")
        yb = check_y(yb, xb.shape[0], num_classes, f"labels of {data.name} batch {b + 1}",
                     f"{data.name} batch {b + 1}")
    return xb, yb


def iterate(data, num_classes, batch_size, epoch=0, seed=None, shuffle=False,
            with_labels=True):
    """(x_batch, y_batch) of one pass over ArrayData or a BatchStream, checked."""
    if not data.stream:
        yield from data.batches(epoch, batch_size, seed, shuffle)
        return
    for b, item in enumerate(data.items(epoch)):
        yield _stream_batch(data, item, b, num_classes, with_labels)


def batched_scores(model, x, batch_size):
    """Yield (start, scores) for consecutive batches of array ``x`` in inference mode."""
    dtype = getattr(model, "dtype", np.float32)
    for start in range(0, x.shape[0], batch_size):
        xb = np.ascontiguousarray(x[start:start + batch_size], dtype=dtype)
        yield start, model.forward(xb, training=False)


class _Totals:
    """Running sums of the loss and the metrics over the samples seen."""

    def __init__(self, metrics):
        self.metrics, self.seen, self.loss = metrics, 0, 0.0
        self.sums = [0.0] * len(metrics)

    def add(self, value, scores, yb):
        """Add a batch; returns its own logs (mean loss and metrics of the batch)."""
        k = scores.shape[0]
        self.seen += k
        self.loss += value * k
        batch = {"loss": value}
        for i, m in enumerate(self.metrics):
            s = m.batch_sum(scores, yb)
            self.sums[i] += s
            batch[m.name] = s / k
        return batch

    def add_sums(self, value, k, sums):
        """Add a batch of ``k`` samples given its mean loss and its metrics' sums (as
        combined over MPI ranks); returns the batch's logs."""
        self.seen += k
        self.loss += value * k
        batch = {"loss": value}
        for i, (m, s) in enumerate(zip(self.metrics, sums)):
            self.sums[i] += s
            batch[m.name] = s / k
        return batch

    def logs(self, prefix=""):
        n = max(self.seen, 1)
        out = {prefix + "loss": self.loss / n}
        out.update({prefix + m.name: s / n for m, s in zip(self.metrics, self.sums)})
        return out


def evaluate(model, x, y=None, batch_size=256, loss="softmax", metrics=None):
    """Mean loss, accuracy and ``metrics`` over (x, y) -- arrays, or a DataLoader /
    iterable of (x_batch, y_batch) -- batched, inference mode. -> dict."""
    loss_fn = resolve_loss(loss)
    batch_size = checks.int_at_least(batch_size, "batch_size", 1)
    metric_list = _metrics.resolve(metrics)
    data, num_classes = _data(model, x, y, "x", "y")
    return _evaluate_data(model, data, num_classes, batch_size, loss_for(model, loss_fn),
                          metric_list)


def _evaluate_data(model, data, num_classes, batch_size, loss_fn, metric_list, prefix=""):
    dtype = getattr(model, "dtype", np.float32)
    totals = _Totals(metric_list)
    for xb, yb in iterate(data, num_classes, batch_size):
        scores = model.forward(np.ascontiguousarray(xb, dtype=dtype), training=False)
        value, _ = loss_fn(scores, yb)
        totals.add(float(value), scores, yb)
    return totals.logs(prefix)


def predict(model, x, batch_size=256):
    """Class probabilities (N, num_classes), batched, inference mode: the softmax of the
    scores, or the outputs themselves when the model ends in a softmax. ``x``: an array
    (N, C, H, W), or a DataLoader / iterable of x batches or (x_batch, y_batch) pairs."""
    batch_size = checks.int_at_least(batch_size, "batch_size", 1)
    data, num_classes = _data(model, x, None, "x", "y", with_labels=False)
    already = outputs_probabilities(model)
    dtype = getattr(model, "dtype", np.float32)
    parts, out, start = [], None, 0
    for xb, _ in iterate(data, num_classes, batch_size, with_labels=False):
        scores = model.forward(np.ascontiguousarray(xb, dtype=dtype), training=False)
        probs = scores if already else F.softmax(scores, axis=1)
        if data.stream:
            parts.append(probs)
            continue
        if out is None:  # arrays: one output buffer, no concatenation
            out = np.empty((data.n, num_classes), dtype=probs.dtype)
        out[start:start + probs.shape[0]] = probs
        start += probs.shape[0]
    return out if not data.stream else np.concatenate(parts)


def _new_seed():
    return int(np.random.SeedSequence().entropy % (2 ** 63))


def resolve_seed(model, seed, initial_epoch):
    """The training seed: given, else the model's stored one when resuming, else fresh."""
    if seed is not None:
        return checks.nonneg_int(seed, "seed")
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


def check_epochs(epochs, initial_epoch):
    """``epochs`` is the index to stop at (Keras), not a count: refuse a range that is
    empty because of that mix-up. ``initial_epoch == epochs`` (resuming a finished run)
    trains nothing and is allowed."""
    if initial_epoch > epochs:
        raise ValueError(
            f"fit(initial_epoch={initial_epoch}, epochs={epochs}) would train nothing: "
            f"epochs is the epoch to stop at (Keras's convention), not a number of further "
            f"epochs, so training runs epochs initial_epoch .. epochs-1. To train "
            f"{epochs} more epoch(s) after {initial_epoch}, pass epochs="
            f"{initial_epoch + epochs}")


def split_validation(x, y, validation_data, validation_split):
    """Keras's ``validation_split``: the LAST fraction of the samples (before any
    shuffling) becomes the validation data. -> (x, y, validation_data)."""
    frac = checks.real_in(validation_split, "validation_split", 0, 1, high_open=True)
    if frac == 0.0:
        return x, y, validation_data
    if validation_data is not None:
        raise ValueError("give validation_data or validation_split, not both")
    if sources.is_batch_stream(x):
        raise ValueError("validation_split needs x as an array; with a DataLoader or an "
                         "iterable of batches, pass validation_data instead")
    x = check_x(x)
    n = x.shape[0]
    split_at = int(n * (1.0 - frac))  # Keras's rounding
    if split_at < 1 or split_at >= n:
        raise ValueError(f"validation_split={validation_split} of {n} samples leaves "
                         f"{split_at} for training and {n - split_at} for validation; both "
                         f"need at least one")
    y = np.asarray(y) if y is not None else None
    if y is None or y.shape[:1] != (n,):
        raise ValueError(f"y must have one label per sample of x ({n}) to split off "
                         f"validation data, got {None if y is None else y.shape}")
    return x[:split_at], y[:split_at], (x[split_at:], y[split_at:])


def _validation(model, validation_data, sample_shape, num_classes):
    """Check ``validation_data`` ((x_val, y_val) or an iterable of batches) -> ArrayData,
    BatchStream or None."""
    if validation_data is None:
        return None
    is_pair = (isinstance(validation_data, (tuple, list)) and len(validation_data) == 2
               and not isinstance(validation_data[0], (tuple, list)))
    if not is_pair and sources.is_batch_stream(validation_data):
        data, _ = _data(model, validation_data, None, "validation_data", "validation_data")
        if data.sample_shape != tuple(sample_shape):
            raise ValueError(f"validation_data samples must have shape {tuple(sample_shape)} "
                             f"(like x), got {data.sample_shape}")
        return data
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
        raise ValueError("validation_data must be a tuple (x_val, y_val) or a DataLoader / "
                         "iterable of (x_batch, y_batch)")
    xv = check_x(validation_data[0], "validation_data[0]", sample_shape)
    check_finite(xv, "validation_data[0]")
    yv = check_y(validation_data[1], xv.shape[0], num_classes, "validation_data[1]",
                 "validation_data[0]")
    return sources.ArrayData(xv, yv)


class _Run:
    """What one ``fit`` call trains with (so that the per-epoch helpers stay small)."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


@abort_on_error  # distributed=True: a rank that raises ends every rank (MPI_Abort)
def fit(model, x, y=None, epochs=1, batch_size=64, optimizer=None, loss="softmax",
        validation_data=None, callbacks=None, verbose=1, seed=None, shuffle=True,
        initial_epoch=0, augment=None, validation_split=0.0, metrics=None, *,
        distributed=False, sync_batchnorm=False):
    """See :meth:`cnnlab.training.Model.fit`."""
    loss_fn = resolve_loss(loss)
    epochs = checks.int_at_least(epochs, "epochs", 0)
    initial_epoch = checks.int_at_least(initial_epoch, "initial_epoch", 0)
    check_epochs(epochs, initial_epoch)
    batch_size = checks.int_at_least(batch_size, "batch_size", 1)
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0 (silent), 1 (progress bar) or 2 (one line per "
                         f"epoch), got {verbose!r}")
    metric_list = _metrics.resolve(metrics)
    x, y, validation_data = split_validation(x, y, validation_data, validation_split)
    train, num_classes = _data(model, x, y, "x", "y")
    if train.stream:
        train.require_passes(epochs - initial_epoch)
    else:
        check_finite(train.x, "x")
    loss_fn = loss_for(model, loss_fn)
    val = _validation(model, validation_data, train.sample_shape, num_classes)
    if optimizer is None:
        optimizer = getattr(model, "optimizer", None) or Adam(1e-3)
    optimizer = _optim.resolve(optimizer)
    if isinstance(callbacks, Callback):
        callbacks = [callbacks]
    seed = resolve_seed(model, seed, initial_epoch)
    aug = _augmenter(augment)
    dist = None
    if distributed:  # MPI data parallelism: the hooks below call into cnnlab.distributed
        dist = _data_parallel(model, train, val, metric_list, optimizer, seed, loss_fn, aug,
                              callbacks, verbose, batch_size, epochs, initial_epoch, shuffle,
                              sync_batchnorm)
        seed, loss_fn, aug = dist.seed, dist.loss_fn, dist.augment
        callbacks, verbose = dist.callbacks, dist.verbose
    model.optimizer, model.train_seed, model.stop_training = optimizer, seed, False

    steps = train.steps(batch_size)
    history = History({"epochs": epochs, "initial_epoch": initial_epoch, "steps": steps,
                       "samples": train.n, "batch_size": None if train.stream else batch_size,
                       "seed": seed})
    cbs = CallbackList(callbacks)
    cbs.set_model(model)
    cbs.set_params(history.params)
    run = _Run(model=model, train=train, val=val, num_classes=num_classes, loss_fn=loss_fn,
               metrics=metric_list, optimizer=optimizer, cbs=cbs, aug=aug, dist=dist,
               seed=seed, shuffle=shuffle, batch_size=batch_size, steps=steps, epochs=epochs,
               verbose=verbose, dtype=getattr(model, "dtype", np.float32), first_loss=None,
               warned=False)
    cbs.on_train_begin({})
    logs = {}
    for epoch in range(initial_epoch, epochs):
        optimizer.set_epoch(epoch)  # before the callbacks: a LearningRateScheduler wins
        cbs.on_epoch_begin(epoch, {})
        _reseed_layers(model, seed, epoch)
        logs = _run_epoch(run, epoch)
        cbs.on_epoch_end(epoch, logs)
        history.record(epoch, logs)  # after the callbacks, so metrics they add are kept
        if model.stop_training:
            break
    if dist is not None:
        dist.close()
    cbs.on_train_end(logs)
    return history


def _data_parallel(model, train, val, metric_list, optimizer, seed, loss_fn, aug, callbacks,
                   verbose, batch_size, epochs, initial_epoch, shuffle, sync_batchnorm):
    """The cnnlab.distributed.DataParallel of a ``fit(distributed=True)`` (collective)."""
    if train.stream or (val is not None and val.stream):
        raise ValueError("fit(distributed=True) needs x, y (and validation_data) as arrays: "
                         "every rank takes its share of each global batch by index")
    if float(getattr(model, "reg", 0.0) or 0.0):
        raise ValueError("fit(distributed=True) does not apply model.reg (each rank would add "
                         "the whole L2 gradient before the sum); use the optimizer's "
                         "weight_decay instead")
    if [m.name for m in metric_list] != ["accuracy"]:
        raise ValueError(f"fit(distributed=True) reports the loss and accuracy only; got "
                         f"metrics {[m.name for m in metric_list[1:]]}")
    from ..distributed import DataParallel
    return DataParallel(model, train.x, train.y, optimizer, seed, loss_fn, aug, callbacks,
                        verbose, batch_size=batch_size, epochs=epochs,
                        initial_epoch=initial_epoch, shuffle=shuffle,
                        validation=None if val is None else (val.x, val.y),
                        sync_batchnorm=sync_batchnorm)


def _rank_batches(run, epoch):
    """This rank's share of each global batch: the same permutation as one process
    (ArrayData.batches), then cut by cnnlab.distributed."""
    n, bs = run.train.n, run.batch_size
    order = (np.random.default_rng([run.seed, epoch]).permutation(n) if run.shuffle
             else np.arange(n))
    for b, start in enumerate(range(0, n, bs)):
        idx = run.dist.shard(order[start:start + bs], epoch, b)
        yield run.train.x[idx], run.train.y[idx]


def _run_epoch(run, epoch):
    """Train one epoch, validate, check the weights; print the summary. -> logs."""
    bar = _progress(run.verbose, run.train.n, f"Epoch {epoch + 1}/{run.epochs}")
    t0 = time.perf_counter()
    try:
        totals, lr_used = _train_batches(run, epoch, bar)
        logs = totals.logs()
        logs["lr"] = lr_used
        check_weights_finite(run.model, epoch, run.epochs, run.optimizer)
        if run.val is not None and run.dist is not None:
            val = run.dist.evaluate(run.model, run.val.x, run.val.y,
                                    batch_size=max(run.batch_size, 256), loss=run.loss_fn)
            logs.update({"val_loss": val["loss"], "val_accuracy": val["accuracy"]})
        elif run.val is not None:
            logs.update(_evaluate_data(run.model, run.val, run.num_classes,
                                       max(run.batch_size, 256), run.loss_fn, run.metrics,
                                       prefix="val_"))
        _watch_loss_growth(run, epoch, logs["loss"])
        if bar is not None:  # the bar's last state doubles as the epoch summary
            bar.set_postfix_str(_epoch_summary(logs), refresh=False)
        elif run.verbose == 2:
            rate = totals.seen / max(time.perf_counter() - t0, 1e-9)
            print(f"Epoch {epoch + 1}/{run.epochs}: {_epoch_summary(logs)} ({rate:.0f} img/s)",
                  file=sys.stderr)
    finally:
        if bar is not None:
            bar.close()
    return logs


def _train_batches(run, epoch, bar):
    """The optimizer steps of one epoch. -> (_Totals, the last learning rate used)."""
    model, opt, cbs = run.model, run.optimizer, run.cbs
    totals = _Totals(run.metrics)
    lr_used = opt.lr
    batches = (iterate(run.train, run.num_classes, run.batch_size, epoch, run.seed, run.shuffle)
               if run.dist is None else _rank_batches(run, epoch))
    for b, (xb, yb) in enumerate(batches):
        xb = np.ascontiguousarray(xb, dtype=run.dtype)
        if run.aug is not None:
            xb = _augment_batch(run.aug, xb, np.random.default_rng([run.seed, epoch, b, 1]),
                                run.dtype)
        k = xb.shape[0]
        cbs.on_batch_begin(b, {"batch": b, "size": k})
        if opt.schedule is not None and opt.schedule.per_step:
            opt.lr = opt.schedule(opt.t)  # the rate step() will use, for the logs
        lr_used = opt.lr
        scores = model.forward(xb, training=True)
        value, dscores = run.loss_fn(scores, yb)
        value = float(value)
        if not math.isfinite(value):
            raise TrainingDivergedError(
                f"training diverged: the loss is {value} at epoch {epoch + 1}/{run.epochs}, "
                f"batch {b + 1}/{run.steps or '?'}. Try a lower learning rate (optimizer.lr "
                f"is {opt.lr:g}), gradient clipping, or check the data for extreme values.",
                epoch=epoch, batch=b, loss=value)
        if run.first_loss is None:
            run.first_loss = value
        model.backward(dscores, need_dx=False)  # the input gradient is unused
        value += add_l2_penalty(model)  # model.reg: L2 on weights (cs231n)
        params, grads, step_grads = parameter_arrays(model)
        if run.dist is None:
            opt.step(params, step_grads)
            batch_logs = totals.add(value, scores, yb)
        else:  # gradients summed over the ranks; the global batch's loss and accuracy
            correct = run.metrics[0].batch_sum(scores, yb)
            value, k, correct = run.dist.allreduce(grads, value, correct)  # in place
            opt.step(params, step_grads)
            batch_logs = totals.add_sums(value, k, [correct])
        if bar is not None:
            bar.update(k)
            bar.set_postfix_str(_bar_text(totals.logs(), lr_used), refresh=False)
        cbs.on_batch_end(b, {"batch": b, "size": k, **batch_logs, "lr": lr_used})
        if model.stop_training:
            break
    if totals.seen == 0:
        raise ValueError(f"x yielded no batches in epoch {epoch + 1}")
    return totals, lr_used


def _augment_batch(aug, xb, rng, dtype):
    """Apply ``augment``; it must keep the batch size (and give an array)."""
    out = aug(xb, rng)
    if not hasattr(out, "shape") or len(out.shape) < 1:
        raise TypeError(f"augment must return the batch as an array (N, C, H, W), got "
                        f"{type(out).__name__}")
    if out.shape[0] != xb.shape[0]:
        raise ValueError(f"augment returned a batch of {out.shape[0]} samples (shape "
                         f"{tuple(out.shape)}) for a batch of {xb.shape[0]} (shape "
                         f"{xb.shape}); it must return one augmented sample per input sample")
    return np.ascontiguousarray(out, dtype=dtype)


def check_weights_finite(model, epoch, epochs, optimizer=None):
    """Raise TrainingDivergedError if any parameter or state array holds NaN or inf
    (a NaN gradient leaves the loss finite until the next batch: the last batch of an
    epoch would otherwise hand NaN weights to callbacks, checkpoints and the caller)."""
    for layer in _walk(model):
        if layer is not model and getattr(layer, "layers", None):
            continue  # containers hold no arrays of their own
        for kind in ("params", "state"):
            for key, a in getattr(layer, kind, {}).items():
                if not np.isfinite(a).all():
                    lr = f" (optimizer.lr is {optimizer.lr:g})" if optimizer is not None else ""
                    raise TrainingDivergedError(
                        f"training diverged: {layer.name}.{key} holds NaN or infinite values "
                        f"after epoch {epoch + 1}/{epochs} (the loss stayed finite, so a "
                        f"gradient went non-finite on a late batch). The weights are not "
                        f"usable; try a lower learning rate{lr}, gradient clipping, or "
                        f"check the data and any custom loss.", epoch=epoch)


# a mean epoch loss this many times the first batch's counts as growing by orders of
# magnitude (cross-entropy starts near log(num_classes) and falls when training works)
_GROWTH = 100.0


def _watch_loss_growth(run, epoch, loss):
    """Warn (once per fit) when the epoch's loss is orders of magnitude above the first
    batch's: the classic sign of a learning rate far too high (Adam at lr 1e6 reports
    losses of 1e36 while every number stays finite)."""
    first = run.first_loss
    if run.warned or first is None or not loss > _GROWTH * max(abs(first), 1e-3):
        return
    run.warned = True
    warnings.warn(
        f"the training loss grew from {first:.3g} (first batch) to {loss:.3g} (epoch "
        f"{epoch + 1} mean): training is diverging. The learning rate is probably far too "
        f"high: optimizer.lr is {run.optimizer.lr:g}; try 10x to 1000x lower.",
        RuntimeWarning, stacklevel=5)  # the caller of Model.fit


def _bar_text(logs, lr):
    parts = [f"{_short(k)}={v:.4f}" for k, v in logs.items()]
    return " ".join(parts) + f" lr={lr:.3g}"


def _short(key):
    return "acc" if key == "accuracy" else key.replace("_accuracy", "")


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
