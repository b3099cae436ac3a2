"""Architecture (de)serialization: ``{'class': 'Conv2D', 'config': {...}}``, JSON-able.

Weights are not part of it (see ``get_weights`` / ``set_weights``); no pickle anywhere.
Every layer class registers itself with :func:`register` under its class name, so
:func:`deserialize` can rebuild it from the name; custom layers register the same way.
"""
from __future__ import annotations

_REGISTRY = {}


def register(cls):
    """Class decorator: make ``cls`` known to :func:`deserialize` under ``cls.__name__``."""
    _REGISTRY[cls.__name__] = cls
    return cls


def registered():
    """Names of every registered layer class, sorted."""
    return sorted(_REGISTRY)


def serialize(layer):
    """Layer -> ``{'class': class name, 'config': layer.get_config()}`` (JSON-able;
    containers nest their children's serializations inside their config)."""
    from .base import Layer

    if not isinstance(layer, Layer):
        raise TypeError(f"layer must be a cnnlab Layer, got {type(layer).__name__}")
    return {"class": type(layer).__name__, "config": layer.get_config()}


def deserialize(d):
    """``{'class': ..., 'config': ...}`` -> a new (unbuilt unless its config has an input
    shape) layer, via the registry of layer classes."""
    if not isinstance(d, dict) or "class" not in d or "config" not in d:
        got = sorted(d) if isinstance(d, dict) else type(d).__name__
        raise ValueError(f"d must be a dict with keys 'class' and 'config', got {got}")
    name = d["class"]
    cls = _REGISTRY.get(name)
    if cls is None:
        raise ValueError(f"unknown layer class {name!r}; known: {', '.join(registered())}")
    config = d["config"]
    if not isinstance(config, dict):
        raise ValueError(f"config of {name} must be a dict, got {type(config).__name__}")
    return cls.from_config(config)
