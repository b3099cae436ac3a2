"""Architecture (de)serialization: ``{'class': 'Conv2D', 'config': {...}}``, JSON-able.

Weights are not part of it (see ``get_weights`` / ``set_weights``); no pickle anywhere.
Every layer class registers itself with :func:`register` under its class name, so
:func:`deserialize` can rebuild it from the name. Custom layers do the same::

    @cnnlab.layers.register
    class Scale(cnnlab.layers.Layer): ...

or, without registering, are named when loading:
``cnnlab.load_model(path, custom_objects={'Scale': Scale})`` (Keras's spelling), which is
:func:`custom_object_scope` around the load. Saving checks first
(:func:`cnnlab.layers.check_serializable`, in :mod:`cnnlab.layers.roundtrip`) that every layer of the model could be rebuilt this way.
"""

from __future__ import annotations

import contextlib
import threading

_REGISTRY: dict[str, type] = {}
_SCOPES = threading.local()  # .stack: the custom_objects dicts in force in this thread


def register(cls):
    """Class decorator: make ``cls`` known to :func:`deserialize` under ``cls.__name__``.

    The class must be a :class:`cnnlab.layers.Layer` subclass whose ``get_config()``
    returns its constructor's keyword arguments (JSON-able) and whose
    ``from_config(config)`` (default ``cls(**config)``) rebuilds it. Registering another
    class under a name already taken replaces the old one (re-running a notebook cell)."""
    from .base import Layer

    if not (isinstance(cls, type) and issubclass(cls, Layer)):
        raise TypeError(f"register: expected a subclass of cnnlab.layers.Layer, got {cls!r}")
    _REGISTRY[cls.__name__] = cls
    return cls


def registered():
    """Names of every registered layer class, sorted."""
    return sorted(_REGISTRY)


def _check_custom_objects(custom_objects):
    from .base import Layer

    if custom_objects is None:
        return {}
    if not isinstance(custom_objects, dict):
        raise TypeError(
            f"custom_objects must be a dict {{class name: Layer subclass}}, got "
            f"{type(custom_objects).__name__}"
        )
    for name, cls in custom_objects.items():
        if not isinstance(name, str) or not (isinstance(cls, type) and issubclass(cls, Layer)):
            raise TypeError(
                f"custom_objects must map class names to cnnlab Layer subclasses, "
                f"got {name!r}: {cls!r}"
            )
    return dict(custom_objects)


@contextlib.contextmanager
def custom_object_scope(custom_objects):
    """Within the ``with`` block (in this thread), :func:`deserialize` also knows the classes
    of ``custom_objects`` (``{'Scale': Scale}``), before the registry.

        with cnnlab.layers.custom_object_scope({'Scale': Scale}):
            layer = cnnlab.layers.deserialize(d)
    """
    objects = _check_custom_objects(custom_objects)
    stack = _SCOPES.__dict__.setdefault("stack", [])
    stack.append(objects)
    try:
        yield objects
    finally:
        stack.pop()


def _lookup(name):
    for objects in reversed(getattr(_SCOPES, "stack", [])):
        if name in objects:
            return objects[name]
    return _REGISTRY.get(name)


def get_registered(name):
    """The layer class :func:`deserialize` would build for the class name ``name`` (from
    the current :func:`custom_object_scope`, then the registry), or None. Code that must
    build a registered class without importing its module (``cnnlab.training`` builds
    ``'Model'`` this way, so that the checkpoint reader does not import the model that
    imports it) asks here."""
    return _lookup(name)


def serialize(layer):
    """Layer -> ``{'class': class name, 'config': layer.get_config()}`` (JSON-able;
    containers nest their children's serializations inside their config), with
    ``'trainable': False`` for a frozen layer."""
    from .base import Layer

    if not isinstance(layer, Layer):
        raise TypeError(f"layer must be a cnnlab Layer, got {type(layer).__name__}")
    d = {"class": type(layer).__name__, "config": layer.get_config()}
    if not layer.trainable and not hasattr(layer, "layers"):
        # absent: trainable (files written before it existed too); a container's is its
        # children's
        d["trainable"] = False
    return d


def _how_to_register(cls):
    return (
        f"decorate the class with @cnnlab.layers.register (or call "
        f"cnnlab.layers.register({cls.__name__}) once) where it is defined; "
        f"cnnlab.load_model then rebuilds it whenever that module has been imported"
    )


def deserialize(d):
    """``{'class': ..., 'config': ...}`` -> a new (unbuilt unless its config has an input
    shape) layer, via the classes of the current :func:`custom_object_scope` and the
    registry of layer classes."""
    if not isinstance(d, dict) or "class" not in d or "config" not in d:
        got = sorted(d) if isinstance(d, dict) else type(d).__name__
        raise ValueError(f"d must be a dict with keys 'class' and 'config', got {got}")
    name = d["class"]
    cls = _lookup(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(
            f"unknown layer class {name!r}: if it is your own layer, import the "
            f"module that registers it (@cnnlab.layers.register) before loading, "
            f"or pass custom_objects={{{name!r}: {name if isinstance(name, str) else 'cls'}}} "
            f"to cnnlab.load_model; known: {', '.join(registered())}"
        )
    config = d["config"]
    if not isinstance(config, dict):
        raise ValueError(f"config of {name} must be a dict, got {type(config).__name__}")
    trainable = d.get("trainable", True)
    if not isinstance(trainable, bool):
        raise ValueError(f"'trainable' of {name} must be true or false, got {trainable!r}")
    layer = cls.from_config(config)
    if not trainable:
        layer.trainable = False
    return layer
