"""The optimizer base class: arrays in, arrays updated in place, state kept by position.

    opt = Adam(lr=1e-3)
    opt.step(params, grads)        # lists of ndarrays, same order every call
    d = opt.state_dict()           # flat {str: ndarray | float}, savable with np.savez
    opt.load_state_dict(d)

Optimizers never see layers: the i-th array of ``params`` owns the i-th slot of state
(momentum buffers, running averages). All arithmetic is done in the parameter's own dtype
with Python-float scalars, so float32 parameters stay float32.
"""
from __future__ import annotations

import numpy as np

from ..checks import real_in
from . import schedules


# State buffers are running averages that decay geometrically where a gradient stays 0
# (a dead ReLU unit): momentum 0.9 takes a value of 1e-3 below float32's smallest normal
# number (1.2e-38) in ~800 steps, and it then stays subnormal for ~150 more. x86 computes
# with subnormal numbers many times slower: training LeNet-5, 1,430 of them in one momentum
# buffer; flushing them cut the SGD step from 0.20 to 0.14 ms. Every _FLUSH_EVERY steps
# they are set to 0 (a change below 1.2e-38; TensorFlow flushes them in hardware).
_FLUSH_EVERY = 16


def _flush_subnormals(a):
    """Set the subnormal entries of float array ``a`` to 0, in place (NaN and inf stay)."""
    np.multiply(a, ~(np.abs(a) < np.finfo(a.dtype).tiny), out=a)


def _as_schedule(lr):
    """A Schedule given as ``lr`` (or its ``get_config`` form, from a checkpoint) -> the
    Schedule; a number -> None."""
    if isinstance(lr, schedules.Schedule):
        return lr
    if isinstance(lr, dict):
        name, config = lr.get("schedule"), lr.get("config")
        cls = schedules.SCHEDULES.get(name)
        if cls is None or not isinstance(config, dict):
            raise ValueError(f"lr given as a dict must be {{'schedule': one of "
                             f"{sorted(schedules.SCHEDULES)}, 'config': {{...}}}}, got {lr!r}")
        return cls(**config)
    if callable(lr):
        raise TypeError(f"lr must be a number or a cnnlab.optim schedule (StepLR, OneCycle, "
                        f"...), got the callable {lr!r}; wrap a plain function in "
                        f"cnnlab.training.LearningRateScheduler instead")
    return None


class Optimizer:
    """Base class. Subclasses set ``_slots`` (names of per-array state buffers), define
    ``get_config`` and ``_update(p, g, slots, t)`` which updates ``p`` in place.

    ``lr`` is a plain attribute; learning-rate schedules set it between steps.
    ``t`` counts completed steps (Adam's bias correction uses it).

    ``lr`` may also be a :class:`cnnlab.optim.Schedule` (``Adam(lr=OneCycle(1e-2, 1000))``):
    the optimizer then keeps it as ``schedule`` and sets ``lr`` itself. A per-step
    schedule (``schedule.per_step``, e.g. OneCycle) gives step ``t`` (0-based) the rate
    ``schedule(t)``; a per-epoch one is moved by :meth:`set_epoch`, which ``Model.fit``
    calls at the start of every epoch (``schedule(epoch)``; until then ``schedule(0)``).
    """

    _slots: tuple = ()

    def __init__(self, lr):
        self.schedule = _as_schedule(lr)
        self.lr = self.schedule(0) if self.schedule is not None else real_in(lr, "lr", 0.0)
        self.t = 0
        self._state: list[dict[str, np.ndarray]] | None = None

    # --- public API -------------------------------------------------------------------
    def step(self, params, grads):
        """Apply one update to every array in ``params`` (in place) from ``grads``.

        A gradient of None leaves its array and its state as they are (a frozen layer's,
        as PyTorch skips a parameter whose ``grad`` is None): neither weight decay nor
        momentum moves it. Its slot in the state stays, so it may train again later
        (Adam's bias correction then follows the optimizer's step count, not the
        array's own, unlike PyTorch's per-parameter count)."""
        params, grads = self._check_arrays(params, grads)
        if self._state is None:
            self._state = [{k: np.zeros_like(p) for k in self._slots} for p in params]
        elif len(self._state) != len(params):
            raise ValueError(f"optimizer state holds {len(self._state)} parameter arrays but "
                             f"step() got {len(params)}; an optimizer serves one fixed list")
        if self.schedule is not None and self.schedule.per_step:
            self.lr = self.schedule(self.t)
        self.lr = real_in(self.lr, "lr", 0.0)
        self.t += 1
        for p, g, slots in zip(params, grads, self._state):
            if g is None:
                continue
            if slots and next(iter(slots.values())).shape != p.shape:
                raise ValueError(f"parameter shape changed: optimizer state has "
                                 f"{next(iter(slots.values())).shape}, got {p.shape}")
            self._update(p, g, slots, self.t)
        if self.t % _FLUSH_EVERY == 0:
            for slots in self._state:
                for buf in slots.values():
                    _flush_subnormals(buf)

    def set_epoch(self, epoch):
        """Set ``lr`` for (0-based) ``epoch`` from a per-epoch schedule; does nothing
        without a schedule or with a per-step one (that one follows the step count)."""
        if self.schedule is not None and not self.schedule.per_step:
            self.lr = self.schedule(epoch)

    def get_config(self) -> dict:
        """JSON-able constructor keyword arguments (``lr`` is the current value, or the
        schedule as ``{'schedule': class name, 'config': {...}}``)."""
        return {"lr": self._lr_config()}

    def _lr_config(self):
        if self.schedule is None:
            return self.lr
        return {"schedule": type(self.schedule).__name__, "config": self.schedule.get_config()}

    def state_dict(self) -> dict:
        """Flat dict: 'lr', 't', 'n_params' as floats and 'state.<i>.<slot>' arrays."""
        d = {"lr": float(self.lr), "t": float(self.t),
             "n_params": float(-1 if self._state is None else len(self._state))}
        for i, slots in enumerate(self._state or []):
            for k, v in slots.items():
                d[f"state.{i}.{k}"] = v.copy()
        return d

    def load_state_dict(self, d):
        """Restore from :meth:`state_dict` output (also after ``np.load``: 0-d arrays are
        accepted for scalars). Checks the slot names; all-or-nothing."""
        try:
            lr, t, n = float(d["lr"]), int(float(d["t"])), int(float(d["n_params"]))
        except KeyError as e:
            raise KeyError(f"optimizer state_dict is missing key {e.args[0]!r}; expected "
                           f"'lr', 't', 'n_params' and 'state.<i>.<slot>' entries") from None
        state = None
        if n >= 0:
            state = []
            for i in range(n):
                slots = {}
                for k in self._slots:
                    key = f"state.{i}.{k}"
                    if key not in d:
                        raise KeyError(f"optimizer state_dict is missing {key!r} "
                                       f"({type(self).__name__} keeps {list(self._slots)})")
                    slots[k] = np.array(d[key], copy=True)
                state.append(slots)
            expected = {f"state.{i}.{k}" for i in range(n) for k in self._slots}
            extra = sorted(k for k in d if k.startswith("state.") and k not in expected)
            if extra:
                raise KeyError(f"optimizer state_dict has unexpected entries {extra[:5]} for "
                               f"{type(self).__name__} (slots {list(self._slots)})")
        self.lr = real_in(lr, "lr", 0.0)
        self.t = t
        self._state = state

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    # --- helpers ----------------------------------------------------------------------
    @staticmethod
    def _check_arrays(params, grads):
        params, grads = list(params), list(grads)
        if len(params) != len(grads):
            raise ValueError(f"params and grads must have the same length, got "
                             f"{len(params)} params and {len(grads)} grads")
        out = []
        for i, (p, g) in enumerate(zip(params, grads)):
            if not isinstance(p, np.ndarray) or p.dtype.kind != "f":
                raise TypeError(f"params[{i}] must be a floating ndarray (updated in place), "
                                f"got {type(p).__name__} {getattr(p, 'dtype', '')}")
            if g is None:
                out.append(None)
                continue
            g = np.asarray(g)
            if g.shape != p.shape:
                raise ValueError(f"grads[{i}] must have the shape of params[{i}] {p.shape}, "
                                 f"got {g.shape}")
            if g.dtype != p.dtype:
                g = g.astype(p.dtype)
            out.append(g)
        return params, out

    def _update(self, p, g, slots, t):  # pragma: no cover - abstract
        raise NotImplementedError
