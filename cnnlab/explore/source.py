"""Where the explorer's model comes from: a cnnlab ``.npz`` file, an ``.onnx`` file
(converted by :func:`cnnlab.interop.from_onnx`), or none (the shipped MNIST LeNet-5)."""
from __future__ import annotations

import os
from typing import NamedTuple


class ModelLoadError(ValueError):
    """The model file cannot be explored (missing, corrupt, unsupported); raised at start."""


class ExplorerModel(NamedTuple):
    """What the server explores: a built ``cnnlab.Sequential``, its display name, class
    names (one per output score) and where it came from."""
    model: object
    name: str
    classes: list
    source: str


def default_classes(num_classes, channels):
    """Digits for a 1-channel 10-class net, the CIFAR-10 names for a 3-channel one, else
    the indices as strings."""
    if num_classes == 10 and channels == 3:
        from ..data import CIFAR10_CLASSES
        return list(CIFAR10_CLASSES)
    return [str(i) for i in range(num_classes)]


def _check_explorable(model, where):
    shape = tuple(getattr(model, "input_shape", None) or ())
    if len(shape) != 3 or shape[0] not in (1, 3):
        raise ModelLoadError(f"{where}: the explorer needs an image model taking (C, H, W) "
                             f"with C = 1 (grey) or 3 (RGB); this one takes {shape or 'nothing'}")
    try:
        out = model.compute_output_shape(shape)
    except ValueError as e:
        raise ModelLoadError(f"{where}: {e}") from None
    if len(out) != 1:
        raise ModelLoadError(f"{where}: the explorer needs a classifier ending in one score "
                             f"per class, (num_classes,); this model outputs {tuple(out)}")
    return shape, int(out[0])


def load_source(path=None):
    """``path``: a cnnlab ``.npz`` (``Model.save``), an ``.onnx`` file, or None for the shipped LeNet-5
    (``cnnlab.models.lenet5(pretrained=True)``). -> :class:`ExplorerModel`.

    Raises :class:`ModelLoadError` with the reason (missing file, corrupt checkpoint,
    wrong kind of model) so that a bad model fails at start, never on the first request.
    """
    from ..training import CheckpointError, load_model

    if path is None:
        from ..models import lenet5
        try:
            model = lenet5(pretrained=True)
        except (ValueError, OSError) as e:   # altered/missing weights, corrupt checkpoint
            raise ModelLoadError(f"the shipped LeNet-5 cannot be loaded: {e}") from None
        name, source = "LeNet-5 (MNIST, shipped)", "cnnlab.models.lenet5(pretrained=True)"
    else:
        path = os.fspath(path)
        if not os.path.exists(path):
            raise ModelLoadError(f"model file not found: {path}")
        if os.path.isdir(path):
            raise ModelLoadError(f"model file {path} is a directory, expected a .npz file")
        ext = os.path.splitext(path)[1].lower()
        try:
            if ext == ".onnx":
                from ..interop import from_onnx   # converted to a cnnlab model once, at start
                model = from_onnx(path)
            else:
                model = load_model(path)
        except (CheckpointError, OSError, ValueError, ImportError) as e:
            raise ModelLoadError(f"cannot load model file {path}: {e}") from None
        name, source = os.path.basename(path), path
    shape, num_classes = _check_explorable(model, source)
    return ExplorerModel(model, name, default_classes(num_classes, shape[0]), source)
