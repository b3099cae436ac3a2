"""Where a unit of a conv layer sits in the input: receptive-field geometry.

Along one axis, a layer with kernel k, stride s, dilation d and padding p_lo maps output
index u to an input window centred at  s*u + d*(k-1)/2 - p_lo.  Composing the layers up to
a given one gives  centre(u) = stride * u + offset  in input pixels (and a receptive field
``size``), used to put a coarse map (Grad-CAM) back on the input exactly, and to know
the total stride of a net (its sliding-window step when made fully convolutional).
"""
from __future__ import annotations

import numpy as np

from ..layers import BatchNorm, Dropout
from ..layers import Activation, PoolND
from ._graph import CONV_TYPES


def layer_geometry(layer):
    """(kernel, stride, dilation, pad_lo) per spatial axis, or None for a layer that
    keeps positions (activations, batch norm, dropout). Raises ValueError otherwise."""
    if isinstance(layer, CONV_TYPES):
        return (layer.kernel_size, layer.stride, layer.dilation,
                tuple(lo for lo, _ in layer._pads))
    if isinstance(layer, PoolND):
        n = len(layer.pool_size)
        return (layer.pool_size, layer._stride, (1,) * n, tuple(lo for lo, _ in layer._pads))
    if isinstance(layer, (Activation, BatchNorm, Dropout)):
        return None
    raise ValueError(f"no receptive-field geometry for a {type(layer).__name__} layer "
                     f"({layer.name!r})")


def receptive_field(links, nsp=2):
    """For (name, layer) ``links`` run in order: (stride, offset, size) tuples per spatial
    axis, with centre(u) = stride*u + offset in input pixels and ``size`` the receptive
    field's extent."""
    stride, offset, size = [1] * nsp, [0.0] * nsp, [1] * nsp
    for _, layer in links:
        g = layer_geometry(layer)
        if g is None:
            continue
        k, s, d, p = g
        for a in range(nsp):
            offset[a] += stride[a] * (d[a] * (k[a] - 1) / 2.0 - p[a])
            size[a] += stride[a] * d[a] * (k[a] - 1)
            stride[a] *= s[a]
    return tuple(stride), tuple(offset), tuple(size)


def place_on_input(cam, links, size):
    """Upsample a (h, w) map of the layer reached by ``links`` to the input ``size``
    (H, W), bilinearly, each cell at the centre of its receptive field (exact for
    'valid' convs, where a plain resize would shift and stretch the map). Falls back to a
    plain resize when the layers' geometry is unknown."""
    from ._plot import resize

    try:
        (sy, sx), (oy, ox), _ = receptive_field(links, nsp=2)
    except ValueError:
        return resize(cam, size)
    h, w = cam.shape
    ys = np.clip((np.arange(size[0]) - oy) / sy, 0, h - 1)
    xs = np.clip((np.arange(size[1]) - ox) / sx, 0, w - 1)
    rows = np.stack([np.interp(ys, np.arange(h), cam[:, j]) for j in range(w)], axis=1)
    return np.stack([np.interp(xs, np.arange(w), rows[i]) for i in range(size[0])], axis=0)
