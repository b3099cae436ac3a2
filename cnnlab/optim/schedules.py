"""Learning-rate schedules: the learning rate as a function of the epoch (or step).

A schedule is a callable ``schedule(t) -> lr`` for ``t = 0, 1, 2, ...`` computed in closed
form from a base learning rate, so it needs no state and resuming at epoch ``k`` just calls
``schedule(k)``. ``schedule(t)`` equals the rate PyTorch's matching ``lr_scheduler`` gives
after ``t`` calls of ``scheduler.step()``. ``per_step`` says whether ``t`` counts batches
(OneCycle) rather than epochs. Set ``optimizer.lr = schedule(t)`` before the updates of
epoch/step ``t`` (the training loop's ``LearningRateScheduler`` callback does this).

:class:`ReduceLROnPlateau` is the exception: it reacts to a metric, so it keeps state and
is driven with ``new_lr = plateau.step(metric, lr)`` once per epoch.
"""
from __future__ import annotations

import math

from ..checks import int_at_least, real_in


class Schedule:
    """Base class: ``__call__(t)`` validates ``t`` and calls ``lr_at(t)``."""

    per_step = False

    def __call__(self, t) -> float:
        return float(self.lr_at(int_at_least(t, "t", 0)))

    def lr_at(self, t):  # pragma: no cover - abstract
        raise NotImplementedError

    def get_config(self) -> dict:
        return dict(self._config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class StepLR(Schedule):
    """``base_lr * gamma ** (t // step_size)`` (``torch.optim.lr_scheduler.StepLR``)."""

    def __init__(self, base_lr, step_size, gamma=0.1):
        self.base_lr = real_in(base_lr, "base_lr", 0.0)
        self.step_size = int_at_least(step_size, "step_size", 1)
        self.gamma = real_in(gamma, "gamma", 0.0)
        self._config = {"base_lr": self.base_lr, "step_size": self.step_size,
                        "gamma": self.gamma}

    def lr_at(self, t):
        return self.base_lr * self.gamma ** (t // self.step_size)


class MultiStepLR(Schedule):
    """``base_lr * gamma ** (number of milestones <= t)`` (``MultiStepLR``)."""

    def __init__(self, base_lr, milestones, gamma=0.1):
        self.base_lr = real_in(base_lr, "base_lr", 0.0)
        self.milestones = sorted(int_at_least(m, "milestones[i]", 0) for m in milestones)
        self.gamma = real_in(gamma, "gamma", 0.0)
        self._config = {"base_lr": self.base_lr, "milestones": list(self.milestones),
                        "gamma": self.gamma}

    def lr_at(self, t):
        return self.base_lr * self.gamma ** sum(m <= t for m in self.milestones)


class ExponentialLR(Schedule):
    """``base_lr * gamma ** t`` (``ExponentialLR``)."""

    def __init__(self, base_lr, gamma):
        self.base_lr = real_in(base_lr, "base_lr", 0.0)
        self.gamma = real_in(gamma, "gamma", 0.0)
        self._config = {"base_lr": self.base_lr, "gamma": self.gamma}

    def lr_at(self, t):
        return self.base_lr * self.gamma ** t


class LinearWarmup(Schedule):
    """Ramp linearly from ``start_factor * base_lr`` to ``base_lr`` over ``warmup`` epochs,
    then stay there (``LinearLR(start_factor, end_factor=1.0, total_iters=warmup)``)."""

    def __init__(self, base_lr, warmup, start_factor=0.1):
        self.base_lr = real_in(base_lr, "base_lr", 0.0)
        self.warmup = int_at_least(warmup, "warmup", 1)
        self.start_factor = real_in(start_factor, "start_factor", 0.0, 1.0, low_open=True)
        self._config = {"base_lr": self.base_lr, "warmup": self.warmup,
                        "start_factor": self.start_factor}

    def lr_at(self, t):
        f = self.start_factor + (1.0 - self.start_factor) * min(t, self.warmup) / self.warmup
        return self.base_lr * f


class CosineAnnealing(Schedule):
    """Cosine decay from ``base_lr`` to ``eta_min`` reached at ``t = T_max``, optionally
    after a linear warm-up of ``warmup`` epochs (from ``warmup_start_factor * base_lr``)::

        t < warmup:  base_lr * (f0 + (1 - f0) * t / warmup)
        otherwise:   eta_min + (base_lr - eta_min) * (1 + cos(pi * (t - warmup) / (T_max - warmup))) / 2

    and ``eta_min`` after ``T_max`` (no restart). Without warm-up this is
    ``torch.optim.lr_scheduler.CosineAnnealingLR``; with it, ``SequentialLR`` of
    ``LinearLR`` then ``CosineAnnealingLR(T_max - warmup)``.
    """

    def __init__(self, base_lr, T_max, eta_min=0.0, warmup=0, warmup_start_factor=0.1):
        self.base_lr = real_in(base_lr, "base_lr", 0.0)
        self.T_max = int_at_least(T_max, "T_max", 1)
        self.eta_min = real_in(eta_min, "eta_min", 0.0)
        self.warmup = int_at_least(warmup, "warmup", 0)
        if self.warmup >= self.T_max:
            raise ValueError(f"warmup must be < T_max, got warmup={self.warmup}, "
                             f"T_max={self.T_max}")
        self.warmup_start_factor = real_in(warmup_start_factor, "warmup_start_factor",
                                           0.0, 1.0, low_open=True)
        self._config = {"base_lr": self.base_lr, "T_max": self.T_max,
                        "eta_min": self.eta_min, "warmup": self.warmup,
                        "warmup_start_factor": self.warmup_start_factor}

    def lr_at(self, t):
        if t < self.warmup:
            f0 = self.warmup_start_factor
            return self.base_lr * (f0 + (1.0 - f0) * t / self.warmup)
        if t >= self.T_max:
            return self.eta_min
        frac = (t - self.warmup) / (self.T_max - self.warmup)
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * frac)) / 2


class OneCycle(Schedule):
    """The 1cycle policy (Smith), per batch step (``torch.optim.lr_scheduler.OneCycleLR``
    with ``cycle_momentum=False``): rise from ``max_lr / div_factor`` to ``max_lr`` over the
    first ``pct_start`` of ``total_steps``, then anneal to ``initial / final_div_factor``
    (cosine or linear). ``three_phase=True`` returns to the initial rate symmetrically
    before the final decay. Steps past ``total_steps - 1`` keep the final rate."""

    per_step = True

    def __init__(self, max_lr, total_steps, pct_start=0.3, anneal_strategy="cos",
                 div_factor=25.0, final_div_factor=1e4, three_phase=False):
        self.max_lr = real_in(max_lr, "max_lr", 0.0)
        self.total_steps = int_at_least(total_steps, "total_steps", 2)
        self.pct_start = real_in(pct_start, "pct_start", 0.0, 1.0, True, True)
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"anneal_strategy must be 'cos' or 'linear', got "
                             f"{anneal_strategy!r}")
        self.anneal_strategy = anneal_strategy
        self.div_factor = real_in(div_factor, "div_factor", 0.0, low_open=True)
        self.final_div_factor = real_in(final_div_factor, "final_div_factor", 0.0,
                                        low_open=True)
        self.three_phase = bool(three_phase)
        self._config = {"max_lr": self.max_lr, "total_steps": self.total_steps,
                        "pct_start": self.pct_start, "anneal_strategy": anneal_strategy,
                        "div_factor": self.div_factor,
                        "final_div_factor": self.final_div_factor,
                        "three_phase": self.three_phase}
        init = self.max_lr / self.div_factor
        low = init / self.final_div_factor
        up_end = float(self.pct_start * self.total_steps) - 1
        last = float(self.total_steps - 1)
        if self.three_phase:
            self._phases = [(up_end, init, self.max_lr),
                            (float(2 * self.pct_start * self.total_steps) - 2, self.max_lr, init),
                            (last, init, low)]
        else:
            self._phases = [(up_end, init, self.max_lr), (last, self.max_lr, low)]

    def _anneal(self, start, end, pct):
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def lr_at(self, t):
        t = min(t, self.total_steps - 1)
        start_step = 0.0
        for i, (end_step, lo, hi) in enumerate(self._phases):
            if t <= end_step or i == len(self._phases) - 1:
                span = end_step - start_step
                # a phase shorter than one step (very short runs) is already complete
                # (torch's OneCycleLR divides by zero there)
                return self._anneal(lo, hi, (t - start_step) / span if span > 0 else 1.0)
            start_step = end_step
        raise AssertionError("unreachable")  # pragma: no cover


SCHEDULES = {cls.__name__: cls for cls in (StepLR, MultiStepLR, ExponentialLR, LinearWarmup,
                                            CosineAnnealing, OneCycle)}


class ReduceLROnPlateau:
    """Multiply the learning rate by ``factor`` once a metric has stopped improving for
    more than ``patience`` epochs (``torch.optim.lr_scheduler.ReduceLROnPlateau``)::

        plateau = ReduceLROnPlateau(factor=0.5, patience=2)
        for epoch in ...:
            opt.lr = plateau.step(val_loss, opt.lr)

    ``mode`` 'min' (loss) or 'max' (accuracy); improvement means beating the best value by
    ``threshold`` (relative with ``threshold_mode='rel'``, absolute with 'abs'); after a
    reduction, ``cooldown`` epochs pass before bad epochs count again; the rate never goes
    below ``min_lr`` and changes smaller than ``eps`` are ignored.
    """

    def __init__(self, mode="min", factor=0.1, patience=10, threshold=1e-4,
                 threshold_mode="rel", cooldown=0, min_lr=0.0, eps=1e-8):
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        self.mode, self.threshold_mode = mode, threshold_mode
        self.factor = real_in(factor, "factor", 0.0, 1.0, high_open=True)
        self.patience = int_at_least(patience, "patience", 0)
        self.threshold = real_in(threshold, "threshold", 0.0)
        self.cooldown = int_at_least(cooldown, "cooldown", 0)
        self.min_lr = real_in(min_lr, "min_lr", 0.0)
        self.eps = real_in(eps, "eps", 0.0)
        self.reset()

    def reset(self):
        """Forget the best value and all counters."""
        self.best = math.inf if self.mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0

    def is_better(self, current, best):
        if self.mode == "min":
            ref = best * (1.0 - self.threshold) if self.threshold_mode == "rel" \
                else best - self.threshold
            return current < ref
        ref = best * (1.0 + self.threshold) if self.threshold_mode == "rel" \
            else best + self.threshold
        return current > ref

    def step(self, metric, lr) -> float:
        """Record this epoch's ``metric``; return the learning rate to use from now on."""
        current = float(metric)
        lr = float(lr)
        if self.is_better(current, self.best):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            new_lr = max(lr * self.factor, self.min_lr)
            if lr - new_lr > self.eps:
                lr = new_lr
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        return lr

    def state_dict(self) -> dict:
        return {"best": float(self.best), "num_bad_epochs": float(self.num_bad_epochs),
                "cooldown_counter": float(self.cooldown_counter)}

    def load_state_dict(self, d):
        self.best = float(d["best"])
        self.num_bad_epochs = int(float(d["num_bad_epochs"]))
        self.cooldown_counter = int(float(d["cooldown_counter"]))
