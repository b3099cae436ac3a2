"""Shapes and parameter counts of a model WITHOUT building it (no weight allocated).

Building VGG-16 draws 138 M random weights (about 553 MB of float32 and a few seconds);
``analyze(vgg16(build=False))`` answers "how many parameters, which shapes" instantly
from the layers' configurations and :meth:`Layer.compute_output_shape`.
"""
from __future__ import annotations

import numpy as np

from ..layers import BatchNorm, Container, Dense, Layer, deserialize, serialize
from ..layers import ConvND


def count_params(layer, input_shape):
    """Trainable parameters of ``layer`` for per-sample ``input_shape``, built or not."""
    input_shape = tuple(int(s) for s in input_shape)
    if layer.built:
        return layer.count_params()
    if isinstance(layer, Container):
        return sum(count_params(c, s) for c, s in layer.child_input_shapes(input_shape))
    if isinstance(layer, ConvND):
        k = int(np.prod(layer.kernel_size))
        return layer.filters * input_shape[0] * k + (layer.filters if layer.use_bias else 0)
    if isinstance(layer, Dense):
        d = int(np.prod(input_shape))
        return d * layer.units + (layer.units if layer.use_bias else 0)
    if isinstance(layer, BatchNorm):
        return 2 * input_shape[0]
    # any other layer: build a detached copy (layers without big weights are cheap)
    copy = deserialize(serialize(layer))
    copy.build(input_shape, 0)
    return copy.count_params()


def analyze(model, input_shape=None, expand_nested=False):
    """Rows ``{'layer', 'type', 'output_shape', 'params'}`` (an 'input' row first, then one
    per child; ``expand_nested`` adds the children of nested containers as 'parent/child')
    and the total, without building: -> ``(rows, total_params)``.

    ``input_shape`` defaults to the shape the model was built for, or the zoo's default
    (``model.zoo_input_shape``) for an unbuilt zoo model."""
    if not isinstance(model, Layer):
        raise TypeError(f"model must be a cnnlab layer or model, got {type(model).__name__}")
    if input_shape is None:
        input_shape = model.input_shape if model.built else getattr(model, "zoo_input_shape", None)
    if input_shape is None:
        raise ValueError("analyze: pass input_shape (per sample, channels first), the model "
                         "is not built")
    input_shape = tuple(int(s) for s in input_shape)
    model.compute_output_shape(input_shape)  # raises ValueError on a shape that cannot fit
    rows = [{"layer": "input", "type": "Input", "output_shape": input_shape, "params": 0}]

    def walk(container, shape, prefix):
        for child, s in container.child_input_shapes(shape):
            rows.append({"layer": prefix + child.name, "type": type(child).__name__,
                         "output_shape": tuple(child.compute_output_shape(s)),
                         "params": count_params(child, s)})
            if expand_nested and isinstance(child, Container):
                walk(child, s, f"{prefix}{child.name}/")

    if isinstance(model, Container):
        walk(model, input_shape, "")
    else:
        rows.append({"layer": model.name, "type": type(model).__name__,
                     "output_shape": tuple(model.compute_output_shape(input_shape)),
                     "params": count_params(model, input_shape)})
    return rows, count_params(model, input_shape)
