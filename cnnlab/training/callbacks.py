"""Callbacks: hooks into ``Model.fit`` (Keras style).

Every hook receives a ``logs`` dict. ``fit`` calls, in order::

    on_train_begin(logs)
      on_epoch_begin(epoch, logs)                         epoch is 0-based
        on_batch_begin(batch, logs)  on_batch_end(batch, logs)   logs: 'batch', 'size',
                                                                 'loss', 'accuracy', 'lr'
                                                                 (+ fit's other metrics)
      on_epoch_end(epoch, logs)      logs: 'loss', 'accuracy', other metrics, 'lr' (+
                                     'val_loss', 'val_accuracy', ... with validation data)
    on_train_end(logs)

A callback sees the model as ``self.model`` (its optimizer is ``self.model.optimizer``) and
the fit settings as ``self.params`` ('epochs', 'initial_epoch', 'steps', 'samples',
'batch_size'; 'steps' and 'samples' are None for an iterable x without len()). Setting ``self.model.stop_training = True`` ends training after the current
batch.
"""
from __future__ import annotations

import inspect
import math

from ..optim import schedules as _schedules


class Callback:
    """Base class; override any hook. ``model`` and ``params`` are set by ``fit``."""

    model = None
    params: dict = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_batch_begin(self, batch, logs=None):
        pass

    def on_batch_end(self, batch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass


class CallbackList(Callback):
    """Calls each hook on every callback of a list, in order."""

    def __init__(self, callbacks=None):
        callbacks = [] if callbacks is None else list(callbacks)
        for i, cb in enumerate(callbacks):
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks[{i}] must be a cnnlab.training.Callback, got "
                                f"{type(cb).__name__}")
        self.callbacks = callbacks

    def _call(self, hook, *args):
        for cb in self.callbacks:
            getattr(cb, hook)(*args)

    def set_model(self, model):
        self._call("set_model", model)

    def set_params(self, params):
        self._call("set_params", params)

    def on_train_begin(self, logs=None):
        self._call("on_train_begin", logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._call("on_epoch_begin", epoch, logs)

    def on_batch_begin(self, batch, logs=None):
        self._call("on_batch_begin", batch, logs)

    def on_batch_end(self, batch, logs=None):
        self._call("on_batch_end", batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._call("on_epoch_end", epoch, logs)

    def on_train_end(self, logs=None):
        self._call("on_train_end", logs)


def _resolve_mode(mode, monitor, who):
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{who}: mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        return "max" if "acc" in monitor else "min"
    return mode


def _monitored(logs, monitor, who):
    if logs is None or monitor not in logs:
        have = sorted(logs or {})
        hint = " (pass validation_data to fit, or monitor 'loss')" if monitor.startswith(
            "val_") else ""
        raise ValueError(f"{who} monitors {monitor!r} but the epoch logs hold {have}{hint}")
    return float(logs[monitor])


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience``
    epochs. ``mode`` 'auto' maximizes metrics containing 'acc' and minimizes the rest.
    ``baseline``: stop as well unless the metric beats it within ``patience`` epochs.
    ``restore_best_weights``: at the end of training, put back the weights (and batch
    norm statistics) of the best epoch, if a later epoch was worse.

    What happened is kept in attributes: ``stopped_epoch`` (0-based, None if training
    ran to the end), ``stop_reason`` (a sentence saying when and why, or None),
    ``best``, ``best_epoch`` (0-based) and ``restored_epoch`` (the epoch whose weights
    were put back, or None). ``verbose=1`` prints the same sentences when they happen.
    """

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, mode="auto",
                 baseline=None, restore_best_weights=False, verbose=0):
        self.monitor = monitor
        self.mode = _resolve_mode(mode, monitor, "EarlyStopping")
        self.min_delta = abs(float(min_delta))
        if int(patience) < 0:
            raise ValueError(f"EarlyStopping: patience must be >= 0, got {patience}")
        self.patience = int(patience)
        self.baseline = None if baseline is None else float(baseline)
        self.restore_best_weights = bool(restore_best_weights)
        self.verbose = verbose
        self.stopped_epoch = self.stop_reason = self.restored_epoch = None

    def _improved(self, current, reference):
        if self.mode == "min":
            return current < reference - self.min_delta
        return current > reference + self.min_delta

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = None
        self.stop_reason = None
        self.restored_epoch = None
        self.best_epoch = None
        self.best_weights = None
        self.best = math.inf if self.mode == "min" else -math.inf
        self._last_epoch = None

    def on_epoch_end(self, epoch, logs=None):
        current = _monitored(logs, self.monitor, "EarlyStopping")
        self._last_epoch = epoch
        self.wait += 1
        if self._improved(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()  # copies
            if self.baseline is None or self._improved(current, self.baseline):
                self.wait = 0
        if self.wait > 0 and self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            self.stop_reason = self._reason(epoch, current)
            if self.verbose:
                print(self.stop_reason)

    def _reason(self, epoch, current):
        better = "lower" if self.mode == "min" else "higher"
        delta = f" by more than {self.min_delta:g}" if self.min_delta else ""
        if self.best_epoch is None or (self.baseline is not None
                                       and not self._improved(self.best, self.baseline)):
            why = (f"{self.monitor} never got {better} than the baseline {self.baseline:g}"
                   f"{delta} in {self.wait} epoch(s) (best {self.best:.4g})")
        else:
            why = (f"{self.monitor} did not get {better}{delta} for {self.wait} epoch(s) "
                   f"(patience {self.patience}): best {self.best:.4g} at epoch "
                   f"{self.best_epoch + 1}, now {current:.4g}")
        return f"EarlyStopping: stopped after epoch {epoch + 1}: {why}"

    def on_train_end(self, logs=None):
        if (self.restore_best_weights and self.best_weights is not None
                and self.best_epoch != self._last_epoch):
            self.model.set_weights(self.best_weights)
            self.restored_epoch = self.best_epoch
            if self.verbose:
                print(f"EarlyStopping: restored the weights of epoch {self.best_epoch + 1} "
                      f"({self.monitor} {self.best:.4g})")


class ModelCheckpoint(Callback):
    """Save the model after each epoch with ``model.save`` (atomic: a crash mid-save
    keeps the previous file). ``path`` may hold format fields, e.g.
    ``'ckpt-{epoch:02d}-{val_loss:.3f}.npz'`` (``epoch`` is 1-based: epochs completed).
    ``save_best_only``: save only when ``monitor`` improves (``mode`` as EarlyStopping).
    ``save_optimizer``: include the optimizer state and epoch so that training resumes
    exactly (see ``load_checkpoint``)."""

    root_only = True  # fit(distributed=True): only rank 0 writes the file

    def __init__(self, path, monitor="val_loss", save_best_only=False, mode="auto",
                 save_optimizer=True, verbose=0):
        self.path = str(path)
        self.monitor = monitor
        self.mode = _resolve_mode(mode, monitor, "ModelCheckpoint")
        self.save_best_only = bool(save_best_only)
        self.save_optimizer = bool(save_optimizer)
        self.verbose = verbose
        self.best = math.inf if self.mode == "min" else -math.inf
        self.saved: list[str] = []

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        if self.save_best_only:
            current = _monitored(logs, self.monitor, "ModelCheckpoint")
            better = current < self.best if self.mode == "min" else current > self.best
            if not better:
                return
            self.best = current
        try:
            path = self.path.format(epoch=epoch + 1, **logs)
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(f"ModelCheckpoint: cannot fill path {self.path!r} from epoch "
                             f"and logs {sorted(logs)}: {e}") from None
        opt = getattr(self.model, "optimizer", None) if self.save_optimizer else None
        self.model.save(path, optimizer=opt, epoch=epoch + 1)
        self.saved.append(path)
        if self.verbose:
            print(f"ModelCheckpoint: saved {path}")


def _takes_lr(fn):
    """True when ``fn`` wants (epoch, lr) like a Keras schedule, False for (t)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    positional = [p for p in sig.parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if any(p.kind == p.VAR_POSITIONAL for p in sig.parameters.values()):
        return False
    return len(positional) >= 2


class LearningRateScheduler(Callback):
    """Set ``optimizer.lr`` from a schedule before each epoch (or each batch).

    ``schedule``: any ``cnnlab.optim`` schedule (``StepLR(1e-2, 10)``, ``CosineAnnealing``,
    ``OneCycle``...), a function ``epoch -> lr`` or a Keras-style ``(epoch, lr) -> lr``.
    ``per_step`` (default: the schedule's own ``per_step``, else False) makes ``t`` the
    global batch index ``epoch * steps_per_epoch + batch``. Since ``t`` comes from the
    epoch index, resuming with ``initial_epoch`` continues the schedule where it was.
    """

    def __init__(self, schedule, per_step=None, verbose=0):
        if not callable(schedule):
            raise TypeError(f"schedule must be callable (t -> lr), got "
                            f"{type(schedule).__name__}")
        self.schedule = schedule
        self.per_step = bool(getattr(schedule, "per_step", False) if per_step is None
                             else per_step)
        self._with_lr = not isinstance(schedule, _schedules.Schedule) and _takes_lr(schedule)
        self.verbose = verbose
        self._epoch = 0

    def _set(self, t):
        opt = self.model.optimizer
        lr = self.schedule(t, opt.lr) if self._with_lr else self.schedule(t)
        try:
            lr = float(lr)
        except (TypeError, ValueError):
            raise TypeError(f"schedule must return a number, got {lr!r} at t={t}") from None
        if not (lr >= 0 and math.isfinite(lr)):
            raise ValueError(f"schedule returned an invalid learning rate {lr} at t={t}")
        opt.lr = lr

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        if not self.per_step:
            self._set(epoch)
            if self.verbose:
                print(f"LearningRateScheduler: epoch {epoch + 1}, lr = "
                      f"{self.model.optimizer.lr:.4g}")

    def on_batch_begin(self, batch, logs=None):
        if self.per_step:
            steps = self.params.get("steps")
            if steps is None:
                raise ValueError(
                    "LearningRateScheduler with a per-step schedule needs the number of "
                    "batches per epoch, but x is an iterable without len(); give it a "
                    "__len__, or pass the schedule as the optimizer's lr (it then follows "
                    "the optimizer's step count)")
            self._set(self._epoch * steps + batch)


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` stalls for more than
    ``patience`` epochs (see :class:`cnnlab.optim.ReduceLROnPlateau` for the rule)."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, mode="auto",
                 threshold=1e-4, threshold_mode="rel", cooldown=0, min_lr=0.0, verbose=0):
        self.monitor = monitor
        self.plateau = _schedules.ReduceLROnPlateau(
            mode=_resolve_mode(mode, monitor, "ReduceLROnPlateau"), factor=factor,
            patience=patience, threshold=threshold, threshold_mode=threshold_mode,
            cooldown=cooldown, min_lr=min_lr)
        self.verbose = verbose

    def on_train_begin(self, logs=None):
        self.plateau.reset()

    def on_epoch_end(self, epoch, logs=None):
        opt = self.model.optimizer
        old = opt.lr
        opt.lr = self.plateau.step(_monitored(logs, self.monitor, "ReduceLROnPlateau"), old)
        if self.verbose and opt.lr != old:
            print(f"ReduceLROnPlateau: lr {old:.4g} -> {opt.lr:.4g} after epoch {epoch + 1}")


class LambdaCallback(Callback):
    """Build a callback from functions: ``LambdaCallback(on_epoch_end=lambda e, logs: ...)``."""

    _HOOKS = ("on_train_begin", "on_epoch_begin", "on_batch_begin", "on_batch_end",
              "on_epoch_end", "on_train_end")

    def __init__(self, **hooks):
        for name, fn in hooks.items():
            if name not in self._HOOKS:
                raise ValueError(f"LambdaCallback: unknown hook {name!r}; expected one of "
                                 f"{list(self._HOOKS)}")
            setattr(self, name, fn)


__all__ = ["Callback", "CallbackList", "EarlyStopping", "ModelCheckpoint",
           "LearningRateScheduler", "ReduceLROnPlateau", "LambdaCallback"]
