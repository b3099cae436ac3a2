"""Containers: layers made of layers, nestable.

    Sequential(layers)           out = f_n(... f_2(f_1(x)))
    Concat(branches, axis=1)     out = concatenate([b(x) for b in branches], axis)  (Inception)
    Residual(body, shortcut)     out = body(x) + (shortcut(x) if shortcut else x)   (ResNet)

A container's children are ``container.layers``; their names are unique among siblings
(Keras style: 'conv2d', 'conv2d_1', ...), and qualified parameter names join nested
container names with '/': 'concat/sequential_1/conv2d.w'.
"""

from __future__ import annotations

import numpy as np

from . import _checks
from .base import Layer
from .serialization import deserialize, register, serialize


class Container(Layer):
    """Common machinery: children, naming, building, parameters, cost model, summary."""

    def __init__(self, name=None):
        super().__init__(name)
        self.layers = []
        self.seed = None
        self._dtype_arg = np.dtype(np.float32)

    # ------------------------------------------------------------------ children
    def _adopt(self, new):
        """Append layers, naming auto-named ones uniquely among the siblings."""
        new = list(new)
        seen = list(self.layers)
        for layer in new:
            if not isinstance(layer, Layer):
                raise TypeError(
                    f"{self._label()}: children must be cnnlab layers, got "
                    f"{type(layer).__name__} {layer!r}"
                )
            if any(layer is other for other in seen):
                raise ValueError(
                    f"{self._label()}: layer {layer.name!r} appears twice; create a "
                    f"new layer for each position (weights are not shared)"
                )
            seen.append(layer)
        taken = {c.name for c in self.layers}
        for layer in new:
            if not layer._auto_name:
                if layer.name in taken:
                    raise ValueError(
                        f"{self._label()}: two children named {layer.name!r}; "
                        f"names must be unique within a container"
                    )
                taken.add(layer.name)
        for layer in new:
            if layer._auto_name:
                base, i = layer.base_name(), 0
                name = base
                while name in taken:
                    i += 1
                    name = f"{base}_{i}"
                layer.name = name
                taken.add(name)
        self.layers.extend(new)

    @staticmethod
    def _as_layer(value, what):
        if isinstance(value, (list, tuple)):
            return Sequential(list(value))
        if not isinstance(value, Layer):
            raise TypeError(
                f"{what} must be a Layer or a list of layers, got {type(value).__name__}"
            )
        return value

    def get_layer(self, name):
        """The child called ``name``; 'a/b' walks into nested containers."""
        head, _, rest = name.partition("/")
        for child in self.layers:
            if child.name == head:
                if not rest:
                    return child
                if isinstance(child, Container):
                    return child.get_layer(rest)
        names = [c.name for c in self.layers]
        raise KeyError(f"{self._label()} has no layer {name!r}; its children: {names}")

    # ------------------------------------------------------------------ building
    def build(self, input_shape, rng=None, dtype=None):
        """Build every child for per-sample ``input_shape``. ``rng``: Generator or seed
        (None: the container's ``seed``); ``dtype`` None: the container's dtype."""
        input_shape = _checks.as_shape(input_shape)
        dtype = _checks.float_dtype(self._dtype_arg if dtype is None else dtype)
        if self._already_built(input_shape, dtype):
            return
        if not isinstance(rng, np.random.Generator):
            rng = np.random.default_rng(self.seed if rng is None else rng)
        self.output_shape = tuple(self._build_children(input_shape, rng, dtype))
        self.input_shape, self.dtype, self._rng = input_shape, dtype, rng
        self.built = True

    def _lazy_build(self, x):
        self.build(x.shape[1:])

    def _shape_error(self, x, exc):
        return (
            f"{self._label()} was built for samples of shape {self.input_shape}, got x of "
            f"shape {x.shape}: {exc}"
        )

    def check_input_shape(self, input_shape):
        return tuple(self._propagate(_checks.as_shape(input_shape), "check_input_shape"))

    def _output_shape(self, input_shape):
        return self._propagate(input_shape, "compute_output_shape")

    # ------------------------------------------------------------------ parameters
    def _entries(self, prefix):
        for child in self.layers:
            yield from child._entries(f"{prefix}{self.name}/")

    def _top_entries(self):
        return [e for child in self.layers for e in child._entries("")]

    @property
    def trainable(self):
        """Whether any layer inside is trainable; setting it sets every layer inside
        (see :attr:`Layer.trainable`)."""
        return any(child.trainable for child in self.layers) if self.layers else self._trainable

    @trainable.setter
    def trainable(self, value):
        Layer.trainable.fset(self, value)
        for child in self.layers:
            child.trainable = value

    def release_cache(self):
        super().release_cache()
        for child in self.layers:
            child.release_cache()

    # ------------------------------------------------------------------ summary
    def summary(
        self,
        input_shape=None,
        batch_size=32,
        optimizer_slots=2,
        expand_nested=False,
        print_fn=print,
    ):
        """Print the table (Keras's ``model.summary()``: returns None, so a REPL or a
        notebook shows the table once). With ``print_fn=None`` (silent) or another
        ``print_fn``, return a :class:`cnnlab.layers.summary.Summary` instead: a list of
        row dicts with ``.totals``, ``.memory`` and ``.text``, whose repr is the table
        (see that module)."""
        from .summary import summarize

        rows = summarize(
            self,
            input_shape=input_shape,
            batch_size=batch_size,
            optimizer_slots=optimizer_slots,
            expand_nested=expand_nested,
            print_fn=print_fn,
        )
        return None if print_fn is print else rows

    def child_input_shapes(self, input_shape):
        """[(child, its per-sample input shape)] for per-sample ``input_shape``."""
        return [(child, input_shape) for child in self.layers]

    def flops(self, input_shape):
        return int(sum(c.flops(s) for c, s in self.child_input_shapes(input_shape)))

    def train_activations(self, input_shape):
        return int(sum(c.train_activations(s) for c, s in self.child_input_shapes(input_shape)))


@register
class Sequential(Container):
    """A stack of layers, each feeding the next.

        model = Sequential([Conv2D(8, 5, activation='relu'), MaxPool2D(2), Flatten(),
                            Dense(10)], input_shape=(3, 32, 32), seed=0)

    Builds at once when ``input_shape`` (per sample, channels first) is given, otherwise
    on ``build`` or the first forward. ``seed`` makes the initial weights (and dropout
    masks) reproducible; ``dtype`` is the float type of weights and activations."""

    def __init__(self, layers=None, input_shape=None, name=None, seed=None, dtype=np.float32):
        super().__init__(name)
        if layers is None:
            layers = []
        if isinstance(layers, Layer) or not isinstance(layers, (list, tuple)):
            raise TypeError(
                f"Sequential: layers must be a list of layers, got {type(layers).__name__}"
            )
        self.seed = None if seed is None else _checks.nonneg_int("Sequential", seed, "seed")
        self._dtype_arg = _checks.float_dtype(dtype)
        self._rng = None
        self._adopt(layers)
        if input_shape is not None:
            self.build(input_shape)

    def add(self, layer):
        """Append ``layer`` (built at once when the model is built)."""
        self._adopt([layer])
        if self.built:
            try:
                layer.build(self.output_shape, self._rng, self.dtype)
            except Exception:
                self.layers.pop()
                raise
            self.output_shape = layer.output_shape
            self._accepted = None  # the accepted input shapes were checked without it
        return self

    def __len__(self):
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    def _build_children(self, input_shape, rng, dtype):
        shape = input_shape
        for child in self.layers:
            child.build(shape, rng, dtype)
            shape = child.output_shape
        return shape

    def _propagate(self, shape, method):
        for child in self.layers:
            shape = getattr(child, method)(shape)
        return shape

    def child_input_shapes(self, input_shape):
        out = []
        for child in self.layers:
            out.append((child, input_shape))
            input_shape = child.compute_output_shape(input_shape)
        return out

    #: Run a ReLU that is followed by a max pool after the pool (see :meth:`fused_pairs`);
    #: set False on a model (or the class) to run every child in list order.
    fuse_relu_max_pool = True

    def fused_pairs(self):
        """The (ReLU, max pool) neighbours this Sequential runs as one fused step, pool
        first -- ``summary()`` lists them. The rule: a child that commutes with a max
        (``commutes_with_max``, true of ReLU) directly followed by a max pooling layer.

        max_window(relu(x)) == relu(max_window(x)) exactly, and so are the gradients: relu
        keeps positive numbers, their order and their ties, a window whose max is <= 0 or
        NaN gets no gradient either way, and +inf wins and passes in both orders. The ReLU
        then touches a quarter of the numbers (2x2 pool): LeNet-5's two ReLUs cost 0.46 ms
        of a 4.7 ms training step before, 0.12 ms after."""
        if not self.fuse_relu_max_pool:
            return []
        layers = self.layers
        return [
            (a, b)
            for a, b in zip(layers, layers[1:])
            if getattr(a, "commutes_with_max", False) and getattr(b, "is_max_pool", False)
        ]

    def execution_order(self):
        """Indices of the children in the order forward runs them: list order, with each
        fused pair of :meth:`fused_pairs` swapped. Backward runs the reverse."""
        fused = {id(a) for a, _ in self.fused_pairs()}
        order, i = [], 0
        while i < len(self.layers):
            if id(self.layers[i]) in fused:
                order += [i + 1, i]
                i += 2
            else:
                order.append(i)
                i += 1
        return order

    def _forward(self, x, training, keep):
        order = self.execution_order()
        for k in order:
            x = self.layers[k].forward(x, training=training, cache=keep)
        return x, order  # the cache: backward runs the same children in reverse

    def _backward(self, dout, order):
        start = 0
        if not self._need_dx:
            # nobody wants this stack's input gradient, so the children that run before
            # the first one with parameters to train need no backward at all (a training
            # step: the first layer's dx, or a frozen backbone)
            start = next(
                (j for j, k in enumerate(order) if self.layers[k].trainable_parameters()),
                len(order),
            )
            for k in order[:start]:
                self.layers[k].release_cache()
        for j in range(len(order) - 1, start - 1, -1):
            dout = self.layers[order[j]].backward(dout, need_dx=self._need_dx or j > start)
        return dout if start == 0 else None

    def peak_activations(self, input_shape):
        """Inference keeps one layer's input and output at a time: the largest pair."""
        return max(
            [c.peak_activations(s) for c, s in self.child_input_shapes(input_shape)]
            + [int(np.prod(input_shape))]
        )

    def get_config(self):
        return {
            "name": self.name,
            "layers": [serialize(c) for c in self.layers],
            "input_shape": list(self.input_shape) if self.built else None,
            "seed": self.seed,
            "dtype": (self.dtype if self.built else self._dtype_arg).name,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["layers"] = [deserialize(d) for d in config.get("layers", [])]
        return cls(**config)


@register
class Concat(Container):
    """Parallel branches on the same input, outputs concatenated along ``axis`` (1 = the
    channels, as in an Inception module). Each branch is a layer or a list of layers
    (made a Sequential). Backward splits dout by branch and sums the branches' dx."""

    def __init__(self, branches, axis=1, name=None):
        super().__init__(name)
        if not isinstance(branches, (list, tuple)) or not branches:
            raise ValueError(
                f"Concat: branches must be a non-empty list of layers, got {branches!r}"
            )
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or axis == 0:
            raise ValueError(
                f"Concat: axis must be a non-zero int (1 = channels; the batch axis "
                f"0 cannot be concatenated), got {axis!r}"
            )
        self.axis = int(axis)
        self._adopt([self._as_layer(b, "each branch") for b in branches])

    @property
    def branches(self):
        return self.layers

    def _sample_axis(self, rank):
        """Axis within a sample of ``rank`` dims (the batch axis not counted)."""
        a = self.axis - 1 if self.axis > 0 else rank + self.axis
        if not 0 <= a < rank:
            raise ValueError(
                f"{self._label()}: axis {self.axis} is out of range for branch "
                f"outputs of {rank} dims per sample"
            )
        return a

    def _merge(self, shapes):
        rank = len(shapes[0])
        a = self._sample_axis(rank)
        for s in shapes[1:]:
            if len(s) != rank or any(
                p != q for i, (p, q) in enumerate(zip(s, shapes[0])) if i != a
            ):
                raise ValueError(
                    f"{self._label()}: branch outputs must agree except on axis "
                    f"{self.axis}, got per-sample shapes {shapes}"
                )
        return shapes[0][:a] + (sum(s[a] for s in shapes),) + shapes[0][a + 1 :]

    def _build_children(self, input_shape, rng, dtype):
        for b in self.layers:
            b.build(input_shape, rng, dtype)
        return self._merge([b.output_shape for b in self.layers])

    def _propagate(self, shape, method):
        return self._merge([tuple(getattr(b, method)(shape)) for b in self.layers])

    def _forward(self, x, training, keep):
        outs = [b.forward(x, training=training, cache=keep) for b in self.layers]
        a = self._sample_axis(outs[0].ndim - 1) + 1
        sizes = [o.shape[a] for o in outs]
        return np.concatenate(outs, axis=a), (a, sizes)

    def _backward(self, dout, cache):
        a, sizes = cache
        parts = np.split(dout, np.cumsum(sizes)[:-1], axis=a)
        dx = None
        for b, d in zip(self.layers, parts):
            g = b.backward(d)
            dx = g if dx is None else dx + g
        return dx

    def train_activations(self, input_shape):
        return super().train_activations(input_shape) + int(
            np.prod(self.compute_output_shape(input_shape))
        )

    def peak_activations(self, input_shape):
        """The input stays while branch i runs beside the outputs of branches < i; then
        the branch outputs and the concatenation."""
        n_in, done, peak = int(np.prod(input_shape)), 0, 0
        for b in self.layers:
            peak = max(peak, n_in + done + b.peak_activations(input_shape))
            done += int(np.prod(b.compute_output_shape(input_shape)))
        return max(peak, 2 * done)

    def get_config(self):
        return {
            "name": self.name,
            "branches": [serialize(b) for b in self.layers],
            "axis": self.axis,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["branches"] = [deserialize(d) for d in config["branches"]]
        return cls(**config)


@register
class Residual(Container):
    """Skip connection: out = body(x) + shortcut(x), the shortcut being the identity when
    None (then body must keep the shape). ``body``/``shortcut``: a layer or a list of
    layers. dx = body.backward(dout) + (shortcut.backward(dout) or dout)."""

    def __init__(self, body, shortcut=None, name=None):
        super().__init__(name)
        self.body = self._as_layer(body, "body")
        self.shortcut = None if shortcut is None else self._as_layer(shortcut, "shortcut")
        self._adopt([self.body] + ([] if self.shortcut is None else [self.shortcut]))

    def _merge(self, input_shape, body_out, short_out):
        if tuple(body_out) != tuple(short_out):
            what = (
                "the shortcut's output"
                if self.shortcut is not None
                else "the input (identity shortcut)"
            )
            raise ValueError(
                f"{self._label()}: the body's output shape {tuple(body_out)} must equal "
                f"{what} {tuple(short_out)} for input {input_shape}; give a shortcut "
                f"that matches, e.g. a 1x1 Conv2D with the body's stride"
            )
        return tuple(body_out)

    def _build_children(self, input_shape, rng, dtype):
        self.body.build(input_shape, rng, dtype)
        if self.shortcut is not None:
            self.shortcut.build(input_shape, rng, dtype)
        short = input_shape if self.shortcut is None else self.shortcut.output_shape
        return self._merge(input_shape, self.body.output_shape, short)

    def _propagate(self, shape, method):
        body = getattr(self.body, method)(shape)
        short = shape if self.shortcut is None else getattr(self.shortcut, method)(shape)
        return self._merge(shape, body, short)

    def _forward(self, x, training, keep):
        y = self.body.forward(x, training=training, cache=keep)
        s = x if self.shortcut is None else self.shortcut.forward(x, training=training, cache=keep)
        return y + s, True

    def _backward(self, dout, cache):
        dx = self.body.backward(dout)
        return dx + (dout if self.shortcut is None else self.shortcut.backward(dout))

    def flops(self, input_shape):
        """Children plus one addition per output element."""
        return super().flops(input_shape) + int(np.prod(self.compute_output_shape(input_shape)))

    def train_activations(self, input_shape):
        return super().train_activations(input_shape) + int(
            np.prod(self.compute_output_shape(input_shape))
        )

    def peak_activations(self, input_shape):
        """x stays while the body runs; the body's output while the shortcut runs; then
        both and their sum."""
        n_in = int(np.prod(input_shape))
        n_out = int(np.prod(self.compute_output_shape(input_shape)))
        phase1 = n_in + self.body.peak_activations(input_shape)
        phase2 = n_out + (
            n_in if self.shortcut is None else self.shortcut.peak_activations(input_shape)
        )
        return max(phase1, phase2, 3 * n_out)

    def get_config(self):
        return {
            "name": self.name,
            "body": serialize(self.body),
            "shortcut": None if self.shortcut is None else serialize(self.shortcut),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["body"] = deserialize(config["body"])
        if config.get("shortcut") is not None:
            config["shortcut"] = deserialize(config["shortcut"])
        return cls(**config)


def chain(model):
    """[(qualified name, layer)] of a model in execution order, nested Sequentials opened
    up (names joined by '/': 'block/conv2d'); Concat and Residual blocks stay single links."""
    if not isinstance(model, Sequential):
        if isinstance(model, Layer):
            return [(model.name, model)]
        raise TypeError(
            f"expected a cnnlab model (a Sequential of layers), got {type(model).__name__}"
        )
    out = []
    for child in model.layers:
        if isinstance(child, Sequential):
            out.extend((f"{child.name}/{q}", layer) for q, layer in chain(child))
        else:
            out.append((child.name, child))
    return out
