"""Which route runs a convolution: the route table, and the forward/backward dispatch.

Every route computes the same cross-correlation (see ``cnnlab.functional.conv``)::

    out[n, k, o] = b[k] + sum_{c, t} w[k, c, t] * xpad[n, c, o*stride + t*dilation]

and differs only in how it lays the numbers out for the GEMM. Each route is one module
with ``applies(x, w, stride, pads, dilation, out_shape, forced=False)`` (a truthy plan, or
None/False; ``forced``: whether it can compute this conv at all, speed aside),
``forward(..., plan) -> (y, Cache)``, ``backward(dout, w, cache, ...) -> (dx, dw, db)``
and a typed ``Cache`` naming its route. The automatic choice takes the first route in
:data:`AUTO` that applies:

=================  ==========================================  =============================
route              applies when                                 e.g.
=================  ==========================================  =============================
``channels_last``  12+ input channels                           ResNet/VGG convs after the 1st
``rows``           2+ spatial axes, kernel of 5+ rows, <= 16    LeNet-5's two convs
                   filters, a block fits, x finite
``batch_last``     any (the route for few channels)             an RGB 3x3 first layer
``im2col``         any; never chosen automatically              the baseline, by name
=================  ==========================================  =============================

dx of a stride-1 convolution is itself a convolution (of dout with the kernel flipped in
space and K <-> C swapped); a route asks for it with ``dx_by_correlation`` and the
dispatcher then runs it through whichever route fits dout.

Tests and benchmarks pick a route by name: ``with use_route("im2col"): ...``.
"""

from __future__ import annotations

import contextlib
import contextvars

import numpy as np

from . import conv_batch_last, conv_channels_last, conv_im2col, conv_rows
from .layout import in_order

ROUTES = {
    conv_channels_last.NAME: conv_channels_last,
    conv_rows.NAME: conv_rows,
    conv_batch_last.NAME: conv_batch_last,
    conv_im2col.NAME: conv_im2col,
}
AUTO = (conv_channels_last.NAME, conv_rows.NAME, conv_batch_last.NAME)

_forced = contextvars.ContextVar("cnnlab_conv_route", default=None)


@contextlib.contextmanager
def use_route(name):
    """Run the convolutions inside the ``with`` block by route ``name`` (a key of
    :data:`ROUTES`); one that does not apply to some conv raises ValueError. The dx of a
    stride-1 conv computed as a convolution still picks its own route."""
    if name not in ROUTES:
        raise ValueError(f"unknown conv route {name!r}; the routes are {sorted(ROUTES)}")
    token = _forced.set(name)
    try:
        yield
    finally:
        _forced.reset(token)


def choose_route(x, w, stride, pads, dilation, out_shape, forced=None):
    """(route name, plan): ``forced`` if given, else the first route of :data:`AUTO` that
    applies."""
    if forced is not None:
        plan = ROUTES[forced].applies(x, w, stride, pads, dilation, out_shape, forced=True)
        if not plan:
            raise ValueError(
                f"conv route {forced!r} does not apply to x {x.shape}, w {w.shape}, "
                f"stride {stride}, dilation {dilation}"
            )
        return forced, plan
    for name in AUTO:
        plan = ROUTES[name].applies(x, w, stride, pads, dilation, out_shape)
        if plan:
            return name, plan
    raise AssertionError("the last automatic route applies to every convolution")


def conv_forward(x, w, b, stride, pads, dilation, out_shape, route=None):
    """y (N, K, *O), possibly a view of a buffer in the route's layout, and the route's
    cache. ``route``: a name of :data:`ROUTES`, or None for the one :func:`use_route` set,
    else the automatic choice."""
    name, plan = choose_route(
        x,
        w,
        stride,
        pads,
        dilation,
        out_shape,
        forced=route if route is not None else _forced.get(),
    )
    return ROUTES[name].forward(x, w, b, stride, pads, dilation, out_shape, plan)


def conv_backward(dout, w, cache, stride, pads, dilation, need_dx=True):
    """(dx or None, dw, db) by the route that ran the forward pass (``cache.route``); dx in
    the memory order of the forward's x."""
    route = ROUTES[cache.route]
    correlate = need_dx and route.dx_by_correlation(w.shape, stride)
    dx, dw, db = route.backward(dout, w, cache, stride, pads, dilation, need_dx and not correlate)
    if correlate:
        dx = in_order(dx_by_correlation(dout, w, pads, dilation, cache.x_shape[2:]), cache.x_order)
    return dx, dw, db


def dx_by_correlation(dout, w, pads, dilation, spatial):
    """dx (N, C, *spatial) of a stride-1 convolution as a convolution itself::

        dx = dout (padded by d(k-1) - p) correlated with w flipped in space, K <-> C

    so it runs through the chunked im2col + GEMM of a forward pass instead of a
    prod(k)-pass scatter (single-threaded memory traffic in NumPy)."""
    nsp = w.ndim - 2
    w_t = np.ascontiguousarray(
        np.swapaxes(w, 0, 1)[(slice(None), slice(None)) + (slice(None, None, -1),) * nsp]
    )
    kernel = w.shape[2:]
    full = tuple(d * (k - 1) for k, d in zip(kernel, dilation))
    pads_t = tuple((f - lo, f - hi) for f, (lo, hi) in zip(full, pads))
    ones = (1,) * nsp
    if any(lo < 0 or hi < 0 for lo, hi in pads_t):  # padding wider than the kernel reach
        big = tuple((max(lo, 0), max(hi, 0)) for lo, hi in pads_t)
        out = tuple(
            o + sum(b) - d * (k - 1) for o, b, k, d in zip(dout.shape[2:], big, kernel, dilation)
        )
        name, plan = choose_route(dout, w_t, ones, big, dilation, out)
        dx, _ = ROUTES[name].forward(dout, w_t, None, ones, big, dilation, out, plan)
        crop = tuple(slice(max(-lo, 0), max(-lo, 0) + s) for (lo, _), s in zip(pads_t, spatial))
        return dx[(slice(None), slice(None)) + crop]
    name, plan = choose_route(dout, w_t, ones, pads_t, dilation, tuple(spatial))
    dx, _ = ROUTES[name].forward(dout, w_t, None, ones, pads_t, dilation, tuple(spatial), plan)
    return dx
