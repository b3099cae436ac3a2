"""Model and optimizer arrays, and their broadcast from rank 0 so every rank starts equal.

A model exposes its trainable arrays through ``named_parameters()`` (``layer.params[key]``)
and its non-trainable state (batch-norm running statistics) as ``layer.state`` on the
leaf layers; both are updated in place, so a broadcast copies into them.
"""
from __future__ import annotations

import json

import numpy as np

from .buffers import FlatBuffers


def leaves(layer):
    """The layers without children under ``layer``, in forward order."""
    children = getattr(layer, "layers", None)
    if not children:
        return [layer]
    return [leaf for child in children for leaf in leaves(child)]


def param_arrays(model):
    """[(qualified name, array)] of the trainable arrays, ``named_parameters`` order."""
    return [(q, layer.params[key]) for q, layer, key in model.named_parameters()]


def state_arrays(model):
    """[(name, array)] of the non-trainable state (running statistics), leaf order."""
    return [(f"{leaf.name}.{key}", arr) for leaf in leaves(model)
            for key, arr in (getattr(leaf, "state", None) or {}).items()]


def broadcast_arrays(arrays, comm, root=0):
    """Overwrite ``arrays`` (same shapes and dtypes on every rank) with ``root``'s, in a
    few flat-buffer Bcasts."""
    if not arrays:
        return
    bufs = FlatBuffers([a.shape for a in arrays], [a.dtype for a in arrays])
    if comm.Get_rank() == root:
        bufs.pack(arrays)
    bufs.bcast(comm, root)
    bufs.unpack(arrays)


def broadcast_model(model, comm, root=0):
    """Every rank's weights and state become ``root``'s."""
    broadcast_arrays([a for _, a in param_arrays(model) + state_arrays(model)], comm, root)


def broadcast_optimizer(optimizer, comm, root=0):
    """Every rank's optimizer state (lr, step count, momentum/moment buffers) becomes
    ``root``'s: the layout goes as JSON, the arrays as flat buffers."""
    layout = None
    if comm.Get_rank() == root:
        d = optimizer.state_dict()
        arrays = {k: np.asarray(v) for k, v in d.items() if np.ndim(v) > 0}
        layout = json.dumps({
            "scalars": {k: float(v) for k, v in d.items() if np.ndim(v) == 0},
            "arrays": [[k, list(a.shape), a.dtype.str] for k, a in arrays.items()]})
    meta = json.loads(comm.bcast(layout, root=root))
    names = [k for k, _, _ in meta["arrays"]]
    if comm.Get_rank() == root:
        values = [arrays[k] for k in names]
    else:
        values = [np.empty(shape, dtype=np.dtype(dt)) for _, shape, dt in meta["arrays"]]
    broadcast_arrays(values, comm, root)
    if comm.Get_rank() != root:
        state = dict(meta["scalars"])
        state.update(zip(names, values))
        optimizer.load_state_dict(state)
