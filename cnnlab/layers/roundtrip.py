"""Can a model be saved and loaded back? :func:`check_serializable` walks it before
``Model.save`` writes anything.

Its own module because it walks containers, and the containers import
:mod:`cnnlab.layers.serialization` (to save and rebuild their children).
"""

from __future__ import annotations

from .base import Layer
from .containers import Container
from .serialization import _how_to_register, _lookup


def check_serializable(layer):
    """Raise ValueError unless ``layer`` and every layer inside it could be rebuilt by
    :func:`deserialize`: each class registered (or in a :func:`custom_object_scope`) under
    its own name, and each leaf layer's ``from_config(get_config())`` accepted. Saving calls
    this, so a model that could not be loaded back fails when saved, not later."""
    todo = [(layer, "")]
    while todo:
        item, where = todo.pop()
        if not isinstance(item, Layer):
            raise TypeError(f"layer must be a cnnlab Layer, got {type(item).__name__}")
        cls = type(item)
        label = f"layer {where + item.name!r} ({cls.__module__}.{cls.__qualname__})"
        known = _lookup(cls.__name__)
        if known is None:
            raise ValueError(
                f"cannot save: {label} is of a class that is not registered, "
                f"so the file could not be loaded back: {_how_to_register(cls)}"
            )
        if known is not cls:
            raise ValueError(
                f"{label}: the name {cls.__name__!r} is registered for another "
                f"class ({known.__module__}.{known.__qualname__}), so loading "
                f"would build that one instead: rename your class, and "
                f"{_how_to_register(cls)}"
            )
        if isinstance(item, Container):
            todo.extend((c, f"{where}{item.name}/") for c in item.layers)
            continue
        config = item.get_config()
        try:
            cls.from_config(dict(config))
        except Exception as e:  # any constructor error: say which layer and what to fix
            raise ValueError(
                f"{label} cannot be rebuilt from its get_config() {config!r} "
                f"({type(e).__name__}: {e}); make get_config() return every "
                f"constructor argument"
            ) from None
