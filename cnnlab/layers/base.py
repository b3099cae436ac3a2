"""The layer contract (see docs/ARCHITECTURE.md).

A layer owns three dicts of arrays -- ``params`` (trainable), ``grads`` (same keys, shapes
and dtypes, overwritten in place by ``backward``) and ``state`` (non-trainable, e.g. batch
norm's running statistics) -- and is built lazily from the per-sample, channels-first
input shape (no ``in_channels`` anywhere):

    layer.build((3, 32, 32), rng, np.float32)
    out = layer.forward(x, training=True)      # x (N, 3, 32, 32)
    dx = layer.backward(dout)                  # dout shaped like out; fills layer.grads

``forward(x, training=False, cache=None)``: ``training`` selects the train/test
behaviour (dropout, batch norm); ``cache`` (None = same as ``training``) says whether to
keep what ``backward`` needs. Inference keeps nothing and leaves ``layer._cache`` as it
was (so predicting in one thread never disturbs a training step in another), its memory
is the current activation; ``backward`` uses the cache of the last forward that kept one,
releases it, and raises a RuntimeError when there is none.
"""

from __future__ import annotations

import re
from typing import ClassVar

import numpy as np

from . import _checks

_SHAPE_CHECKS = ("strict", "channels", "rank")


def _snake(name):
    return re.sub(r"(?<=[a-z])(?=[A-Z])", "_", name).lower()


class Layer:
    """Base class of every layer and container.

    Subclasses implement ``_output_shape(input_shape)``, optionally ``_build(input_shape,
    rng, dtype)`` (create ``self.params`` / ``self.state``), ``_forward(x, training, keep)
    -> (out, cache)`` and ``_backward(dout, cache) -> dx``.

    ``shape_check`` says how ``forward`` compares x with the built input shape:
    'strict' (every axis: Dense), 'channels' (rank and channel count: conv, batch norm --
    a fully convolutional net accepts any spatial size), 'rank' (rank only: pooling,
    activations, flatten, dropout).
    """

    shape_check = "strict"
    default_name: ClassVar[str | None] = (
        None  # None: the class name in snake case ('MaxPool2D' -> 'max_pool2d')
    )

    def __init__(self, name=None):
        if name is not None and (
            not isinstance(name, str) or not name or "/" in name or "." in name
        ):
            raise ValueError(
                f"{type(self).__name__}: name must be a non-empty str without '/' or "
                f"'.' (they separate qualified names), got {name!r}"
            )
        self._auto_name = name is None
        self.name = self.base_name() if name is None else name
        self.params, self.grads, self.state = {}, {}, {}
        self.built = False
        self.input_shape = None  # per sample, channels first, set by build
        self.output_shape = None
        self.dtype = None
        self._cache = None  # None: no forward kept a cache
        self._accepted = None  # the last per-sample shape forward() checked and accepted
        self._need_dx = True  # set by backward(need_dx=...) for _backward to read
        self._trainable = True

    # ------------------------------------------------------------------ naming
    @classmethod
    def base_name(cls):
        """The name before de-duplication: 'conv2d', 'max_pool2d', 'dense', ..."""
        return cls.default_name or _snake(cls.__name__)

    def _label(self):
        return f"{type(self).__name__} '{self.name}'"

    def __repr__(self):
        shape = f", input_shape={self.input_shape}" if self.built else ""
        return f"<{type(self).__name__} name={self.name!r}{shape}>"

    # ------------------------------------------------------------------ building
    def build(self, input_shape, rng=None, dtype=np.float32):
        """Create the parameters for per-sample ``input_shape`` (channels first).

        ``rng``: a numpy Generator (or an int seed; None: fresh entropy) used for weight
        initialization. Building again with the same shape and dtype does nothing."""
        input_shape = _checks.as_shape(input_shape)
        dtype = _checks.float_dtype(dtype)
        if self._already_built(input_shape, dtype):
            return
        if not isinstance(rng, np.random.Generator):
            rng = np.random.default_rng(rng)
        out_shape = self.compute_output_shape(input_shape)
        self.params, self.state = {}, {}
        self._build(input_shape, rng, dtype)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.input_shape, self.output_shape, self.dtype = input_shape, out_shape, dtype
        self._accepted = None
        self.built = True

    def _already_built(self, input_shape, dtype):
        """True if built for exactly this shape and dtype; ValueError if built otherwise."""
        if not self.built:
            return False
        if input_shape == self.input_shape and dtype == self.dtype:
            return True
        raise ValueError(
            f"{self._label()} is already built for input shape {self.input_shape} "
            f"({self.dtype}); cannot build it again for {input_shape} ({dtype})"
        )

    def _build(self, input_shape, rng, dtype):
        """Create ``self.params`` / ``self.state`` (none by default)."""

    def compute_output_shape(self, input_shape):
        """Per-sample output shape for per-sample ``input_shape`` (raises ValueError if the
        layer cannot take it)."""
        return tuple(self._output_shape(_checks.as_shape(input_shape)))

    def _output_shape(self, input_shape):
        return input_shape

    def check_input_shape(self, input_shape):
        """Raise ValueError unless the built layer accepts per-sample ``input_shape``
        (see ``shape_check``); return the output shape it would produce."""
        input_shape = _checks.as_shape(input_shape)
        expected = self.input_shape
        if self.built:
            mode = self.shape_check
            if len(input_shape) != len(expected):
                raise ValueError(
                    f"{self._label()} was built for {len(expected)}-D samples of shape "
                    f"{expected}, got samples of shape {input_shape}"
                )
            if mode == "strict" and input_shape != expected:
                raise ValueError(
                    f"{self._label()} was built for samples of shape {expected}, got {input_shape}"
                )
            if mode == "channels" and input_shape[0] != expected[0]:
                raise ValueError(
                    f"{self._label()} was built for {expected[0]} input channel(s) "
                    f"(samples of shape {expected}), got {input_shape[0]} channels "
                    f"(samples of shape {input_shape})"
                )
        return self.compute_output_shape(input_shape)

    # ------------------------------------------------------------------ running
    def _prepare(self, x):
        """x -> float array of the layer's dtype (building lazily on the first call)."""
        x = np.asarray(x)
        if x.dtype.kind not in "fiub":
            raise TypeError(f"{self._label()}: x must hold numbers, got dtype {x.dtype}")
        if x.ndim < 2:
            raise ValueError(
                f"{self._label()}: x must be a batch (N, *sample_shape), got shape {x.shape}"
            )
        if not self.built:
            self._lazy_build(x)
        if x.dtype != self.dtype:
            x = x.astype(self.dtype)
        if x.shape[1:] != self._accepted:  # checking every batch cost ~3 us a layer
            try:
                self.check_input_shape(x.shape[1:])
            except ValueError as exc:
                raise ValueError(self._shape_error(x, exc)) from None
            self._accepted = x.shape[1:]
        return x

    def _lazy_build(self, x):
        """Build from the first batch (fresh random weights, x's float dtype or float32)."""
        self.build(x.shape[1:], None, x.dtype if x.dtype.kind == "f" else np.float32)

    def _shape_error(self, x, exc):
        return f"wrong input x of shape {x.shape}: {exc}"

    def forward(self, x, training=False, cache=None):
        """x (N, *input_shape) -> out (N, *output_shape).

        ``training``: train behaviour (dropout on, batch statistics); ``cache``: keep what
        ``backward`` needs (default: same as ``training``)."""
        x = self._prepare(x)
        keep = bool(training) if cache is None else bool(cache)
        if not keep:
            # inference leaves self._cache alone: a training step running in another
            # thread (fit beside predict) still finds the cache of its own forward
            return self._forward(x, bool(training), False)[0]
        self._cache = None  # release the previous one before allocating anew
        out, c = self._forward(x, bool(training), keep)
        self._cache = (c, out.shape)
        return out

    def __call__(self, x, training=False, cache=None):
        return self.forward(x, training=training, cache=cache)

    def backward(self, dout, need_dx=True):
        """dout (shape of the last output) -> dx (shape of the last input); fills
        ``self.grads`` in place and releases the cache. ``need_dx=False`` lets a layer
        skip the input gradient (a training step never uses the one of the first layer);
        it may then return None."""
        if self._cache is None:
            raise RuntimeError(
                f"{self._label()}: backward() needs the cache of a forward pass: call "
                f"forward(x, training=True) or forward(x, training=False, cache=True) first "
                f"(inference keeps no cache, and each backward releases the one it used)"
            )
        (c, out_shape), self._cache = self._cache, None
        dout = np.asarray(dout)
        if dout.shape != out_shape:
            raise ValueError(
                f"{self._label()}: dout must have the shape of the last output "
                f"{out_shape}, got {dout.shape}"
            )
        if dout.dtype != self.dtype:
            dout = dout.astype(self.dtype)
        self._need_dx = bool(need_dx)
        return self._backward(dout, c)

    def _forward(self, x, training, keep):
        raise NotImplementedError(f"{type(self).__name__} must implement _forward")

    def _backward(self, dout, cache):
        raise NotImplementedError(f"{type(self).__name__} must implement _backward")

    def _set_grad(self, key, g):
        np.copyto(self.grads[key], g)

    # ------------------------------------------------------------------ freezing
    @property
    def trainable(self):
        """Whether training updates this layer's parameters (Keras's ``trainable``).

        ``layer.trainable = False`` freezes them: ``fit`` hands the optimizer no gradient
        for them (so neither the step nor weight decay nor momentum moves them; the
        optimizer keeps their state), and a training step skips the backward pass of the
        frozen layers at the input end of a model, which need no gradient (a frozen
        backbone costs its forward pass only). Set on a container, it sets every layer
        inside. A frozen :class:`BatchNorm` still normalizes with the batch's statistics
        in training and updates its running statistics, as in PyTorch with
        ``requires_grad=False``; only its scale and shift are fixed. Can be changed
        between steps (a callback may freeze a layer after some epochs)."""
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{self._label()}: trainable must be True or False, got {value!r}")
        self._trainable = bool(value)

    def trainable_parameters(self):
        """:meth:`named_parameters` less those of frozen layers (``trainable = False``)."""
        return [(q, layer, key) for q, layer, key in self.named_parameters() if layer.trainable]

    def release_cache(self):
        """Drop what the last training forward kept for ``backward`` (nothing to do for a
        layer whose backward has run). A training step calls it on the layers whose
        backward it skips."""
        self._cache = None

    # ------------------------------------------------------------------ parameters
    def _entries(self, prefix):
        """Yield (qualified name, layer, 'params' | 'state', key)."""
        for key in self.params:
            yield f"{prefix}{self.name}.{key}", self, "params", key
        for key in self.state:
            yield f"{prefix}{self.name}.{key}", self, "state", key

    def _top_entries(self):
        return list(self._entries(""))

    def named_parameters(self):
        """[(qualified name, layer, key)] of the trainable arrays, in a fixed order:
        ``layer.params[key]`` is the array (updated in place), ``layer.grads[key]`` its
        gradient. Names: '<layer.name>.<key>', nested containers joined by '/'."""
        return [(q, layer, key) for q, layer, kind, key in self._top_entries() if kind == "params"]

    def get_weights(self):
        """{qualified name: copy of the array} for params and state (for saving)."""
        if not self.built:
            raise RuntimeError(
                f"{self._label()} is not built yet: call build(input_shape) or "
                f"run a forward pass first"
            )
        return {q: getattr(layer, kind)[key].copy() for q, layer, kind, key in self._top_entries()}

    def set_weights(self, weights):
        """Copy ``weights`` ({qualified name: array}, as ``get_weights`` returns) into the
        layer's arrays in place. Names, shapes and dtypes must all match, else ValueError
        and nothing is changed."""
        if not self.built:
            raise RuntimeError(f"{self._label()} is not built yet: call build(input_shape) first")
        if not isinstance(weights, dict):
            raise TypeError(f"weights must be a dict name -> array, got {type(weights).__name__}")
        entries = self._top_entries()
        names = [q for q, *_ in entries]
        missing = [n for n in names if n not in weights]
        extra = sorted(set(weights) - set(names))
        if missing or extra:
            raise ValueError(
                f"set_weights: names do not match the model: missing {missing}, unexpected {extra}"
            )
        for q, layer, kind, key in entries:
            target, got = getattr(layer, kind)[key], np.asarray(weights[q])
            if got.shape != target.shape:
                raise ValueError(
                    f"set_weights: {q!r} must have shape {target.shape}, got {got.shape}"
                )
            if got.dtype != target.dtype:
                raise ValueError(
                    f"set_weights: {q!r} must have dtype {target.dtype} (the model's), "
                    f"got {got.dtype}; cast it first"
                )
        for q, layer, kind, key in entries:
            np.copyto(getattr(layer, kind)[key], weights[q])

    def count_params(self):
        """Number of parameter scalars, frozen layers' included (``trainable = False``:
        see :meth:`count_frozen`)."""
        return int(
            sum(
                layer.params[key].size
                for _, layer, kind, key in self._top_entries()
                if kind == "params"
            )
        )

    def count_frozen(self):
        """Number of parameter scalars in frozen layers (``trainable = False``)."""
        return self.count_params() - int(
            sum(layer.params[key].size for _, layer, key in self.trainable_parameters())
        )

    def count_state(self):
        """Number of non-trainable scalars (running statistics)."""
        return int(
            sum(
                layer.state[key].size
                for _, layer, kind, key in self._top_entries()
                if kind == "state"
            )
        )

    # ------------------------------------------------------------------ cost model
    def flops(self, input_shape):
        """Floating-point operations per sample for ``forward`` (multiply-adds x 2 for
        conv/dense; one per output element, or per window element, for the rest)."""
        return int(np.prod(self.compute_output_shape(input_shape)))

    def train_activations(self, input_shape):
        """Activation scalars per sample held for ``backward`` (its output by default)."""
        return int(np.prod(self.compute_output_shape(input_shape)))

    def peak_activations(self, input_shape):
        """Scalars per sample alive at once in inference: input + output."""
        return int(np.prod(input_shape)) + int(np.prod(self.compute_output_shape(input_shape)))

    # ------------------------------------------------------------------ config
    def get_config(self):
        """JSON-able constructor keyword arguments (the name included)."""
        return {"name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
