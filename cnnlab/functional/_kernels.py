"""The hot loops of cnnlab, in one place.

Everything that touches every pixel of a batch lives here: zero-copy window views,
the GEMMs of convolution, and the strided scatter-adds of the backward passes.
The rest of ``cnnlab.functional`` validates arguments, keeps caches and calls these.

Layout. Convolutions run *channels-last* inside: the padded input is stored as
(N, *spatial, C), so one output pixel's receptive field is prod(k) contiguous runs of
C numbers, im2col is a plain reshape of a window view, and the GEMM result (N*P, K) is
already the output in (N, *out, K) order. The public arrays stay (N, C, *spatial): we
hand back the channels-last buffer *transposed*, a view that costs nothing, and the
next convolution transposes it back for free (its memory is already channels-last).

No Python loop here runs over the batch or over pixels; the only loops are over the
prod(kernel) offsets of a window (9 for a 3x3 kernel), each a whole-batch strided op.
"""
from __future__ import annotations

import itertools

import numpy as np
from numpy.lib.stride_tricks import as_strided

# --------------------------------------------------------------------------- layout


def to_channels_last_padded(x, pads, fill=0.0):
    """(N, C, *S) -> zero-padded channels-last copy (N, *(S + lo + hi), C).

    One allocation and one strided copy, whatever the layout of ``x``: if ``x`` is the
    transposed view of a channels-last buffer (what our convs return) the copy is a
    straight memcpy per row.
    """
    n, c = x.shape[:2]
    spatial = x.shape[2:]
    padded = tuple(s + lo + hi for s, (lo, hi) in zip(spatial, pads))
    if all(lo == 0 and hi == 0 for lo, hi in pads):
        xp = np.empty((n,) + padded + (c,), dtype=x.dtype)
    elif fill == 0.0:
        xp = np.zeros((n,) + padded + (c,), dtype=x.dtype)
    else:
        xp = np.full((n,) + padded + (c,), fill, dtype=x.dtype)
    interior = (slice(None),) + tuple(slice(lo, lo + s) for s, (lo, _) in zip(spatial, pads))
    xp[interior] = np.moveaxis(x, 1, -1)
    return xp


def channels_first_view(y):
    """(N, *S, C) -> (N, C, *S) as a view (no copy)."""
    return np.moveaxis(y, -1, 1)


def window_view(xp, kernel, stride, dilation, out_shape):
    """Zero-copy view of all receptive fields of a channels-last array.

    xp (N, *Sp, C) -> (N, *out, *kernel, C); element [n, o.., k.., c] is
    xp[n, o*stride + k*dilation, c] along each spatial axis.
    """
    sn = xp.strides[0]
    ss = xp.strides[1:-1]
    sc = xp.strides[-1]
    shape = (xp.shape[0],) + tuple(out_shape) + tuple(kernel) + (xp.shape[-1],)
    strides = ((sn,) + tuple(s * st for s, st in zip(ss, stride))
               + tuple(s * d for s, d in zip(ss, dilation)) + (sc,))
    return as_strided(xp, shape=shape, strides=strides, writeable=False)


def _offset_slices(offset, stride, dilation, out_shape):
    """Slices of the padded input touched by kernel tap ``offset`` across all outputs."""
    return tuple(slice(k * d, k * d + (o - 1) * s + 1, s)
                 for k, d, s, o in zip(offset, dilation, stride, out_shape))


# --------------------------------------------------------------------------- conv


def conv_forward(x, w, b, stride, pads, dilation, out_shape):
    """N-d cross-correlation as one GEMM.

    x (N, C, *S), w (K, C, *k), b (K,) or None -> y (N, K, *out) (a channels-first view
    of a channels-last buffer), plus the im2col matrix for the backward pass.
    out[n, k, o] = b[k] + sum_{c, t} w[k, c, t] * xpad[n, c, o*stride + t*dilation]
    """
    n = x.shape[0]
    kdim, c = w.shape[:2]
    kernel = w.shape[2:]
    xp = to_channels_last_padded(x, pads)
    cols = window_view(xp, kernel, stride, dilation, out_shape)
    ntap = int(np.prod(kernel)) * c
    # reshape of a strided view copies exactly once: this *is* im2col
    cols = cols.reshape(-1, ntap)
    # (K, C, *k) -> (*k, C, K) so rows match the (tap, channel) order of `cols`
    w2 = np.moveaxis(w.reshape(kdim, c, -1), 0, -1).transpose(1, 0, 2).reshape(ntap, kdim)
    y = cols @ w2
    if b is not None:
        y += b
    y = y.reshape((n,) + tuple(out_shape) + (kdim,))
    return channels_first_view(y), (cols, w2, xp.shape)


def conv_backward(dout, w, kcache, stride, pads, dilation, need_dx=True):
    """Gradients of :func:`conv_forward`: (dx, dw, db_full).

    dw = cols^T @ dout,  dcols = dout @ w2^T scattered back by prod(k) strided adds.
    """
    cols, w2, padded_shape = kcache
    kdim, c = w.shape[:2]
    kernel = w.shape[2:]
    out_shape = dout.shape[2:]
    d2 = np.moveaxis(dout, 1, -1).reshape(-1, kdim)  # free if dout is our own layout
    dw2 = cols.T @ d2
    dw = dw2.reshape(kernel + (c, kdim))
    dw = np.ascontiguousarray(np.moveaxis(dw, -1, 0).transpose(
        (0, len(kernel) + 1) + tuple(range(1, len(kernel) + 1))))
    db = d2.sum(axis=0)
    if not need_dx:
        return None, dw, db
    dcols = (d2 @ w2.T).reshape((dout.shape[0],) + tuple(out_shape) + tuple(kernel) + (c,))
    dxp = np.zeros(padded_shape, dtype=dcols.dtype)
    nsp = len(kernel)
    for offset in itertools.product(*(range(k) for k in kernel)):
        sl = (slice(None),) + _offset_slices(offset, stride, dilation, out_shape)
        dxp[sl] += dcols[(slice(None),) * (1 + nsp) + offset]
    interior = (slice(None),) + tuple(slice(lo, s - hi) for s, (lo, hi) in zip(padded_shape[1:-1], pads))
    return channels_first_view(dxp[interior]), dw, db


# --------------------------------------------------------------------------- pooling


def _pool_windows(xp, kernel, stride, out_shape):
    """Zero-copy view (N, C, *out, *k) of a channels-first array's pooling windows."""
    nsp = len(kernel)
    ss = xp.strides[2:]
    shape = xp.shape[:2] + tuple(out_shape) + tuple(kernel)
    strides = xp.strides[:2] + tuple(s * st for s, st in zip(ss, stride)) + tuple(ss[:nsp])
    return as_strided(xp, shape=shape, strides=strides, writeable=False)


def _is_tiling(shape, kernel, stride, pads):
    """Non-overlapping windows that tile the input exactly: pooling is a reshape."""
    return (tuple(kernel) == tuple(stride) and all(lo == 0 and hi == 0 for lo, hi in pads)
            and all(s % k == 0 for s, k in zip(shape, kernel)))


def _tiled(x, kernel):
    """(N, C, *S) -> (N, C, *out, *k) for exact tilings, via reshape + transpose."""
    nsp = len(kernel)
    split = x.shape[:2]
    for s, k in zip(x.shape[2:], kernel):
        split += (s // k, k)
    order = (0, 1) + tuple(2 + 2 * i for i in range(nsp)) + tuple(3 + 2 * i for i in range(nsp))
    return x.reshape(split).transpose(order)


def _pad_channels_first(x, pads, fill):
    if all(lo == 0 and hi == 0 for lo, hi in pads):
        return x
    shape = x.shape[:2] + tuple(s + lo + hi for s, (lo, hi) in zip(x.shape[2:], pads))
    xp = np.full(shape, fill, dtype=x.dtype)
    xp[(slice(None), slice(None)) + tuple(slice(lo, lo + s) for s, (lo, _) in zip(x.shape[2:], pads))] = x
    return xp


def maxpool_forward(x, kernel, stride, pads, out_shape):
    """out[n, c, o] = max over the window; returns (out, argmax) with argmax the flat
    index of the winner inside its window (first maximum on ties, as PyTorch)."""
    nsp = len(kernel)
    if _is_tiling(x.shape[2:], kernel, stride, pads):
        win = _tiled(x, kernel)
    else:
        win = _pool_windows(_pad_channels_first(x, pads, -np.inf), kernel, stride, out_shape)
    flat = win.reshape(win.shape[:2 + nsp] + (-1,))  # one copy
    arg = flat.argmax(axis=-1)
    out = np.take_along_axis(flat, arg[..., None], axis=-1)[..., 0]
    # argmax never picks NaN over a number; propagate NaN as PyTorch does
    nan = np.isnan(flat).any(axis=-1)
    if nan.any():
        out = np.where(nan, np.nan, out)
    return out, arg


def maxpool_backward(dout, arg, x_shape, kernel, stride, pads):
    """Route each upstream gradient to its window's winner (prod(k) strided adds)."""
    nsp = len(kernel)
    out_shape = dout.shape[2:]
    if _is_tiling(x_shape[2:], kernel, stride, pads):
        ntap = int(np.prod(kernel))
        dwin = np.where(arg[..., None] == np.arange(ntap), dout[..., None], 0).astype(dout.dtype, copy=False)
        dwin = dwin.reshape(dout.shape + tuple(kernel))
        # inverse of _tiled: (N, C, *out, *k) -> (N, C, o0, k0, o1, k1, ...)
        order = (0, 1) + tuple(v for i in range(nsp) for v in (2 + i, 2 + nsp + i))
        return np.ascontiguousarray(dwin.transpose(order)).reshape(x_shape)
    padded = x_shape[:2] + tuple(s + lo + hi for s, (lo, hi) in zip(x_shape[2:], pads))
    dxp = np.zeros(padded, dtype=dout.dtype)
    for t, offset in enumerate(itertools.product(*(range(k) for k in kernel))):
        sl = (slice(None), slice(None)) + _offset_slices(offset, stride, (1,) * nsp, out_shape)
        dxp[sl] += np.where(arg == t, dout, 0)
    return dxp[(slice(None), slice(None)) + tuple(slice(lo, s - hi) for s, (lo, hi) in zip(padded[2:], pads))]


def avgpool_forward(x, kernel, stride, pads, out_shape):
    """out = mean over the window, zeros of the padding counted (PyTorch's default)."""
    nsp = len(kernel)
    if _is_tiling(x.shape[2:], kernel, stride, pads):
        win = _tiled(x, kernel)
    else:
        win = _pool_windows(_pad_channels_first(x, pads, 0.0), kernel, stride, out_shape)
    axes = tuple(range(2 + nsp, 2 + 2 * nsp))
    return win.mean(axis=axes, dtype=x.dtype)


def avgpool_backward(dout, x_shape, kernel, stride, pads):
    """Spread each upstream gradient evenly over its window."""
    nsp = len(kernel)
    out_shape = dout.shape[2:]
    share = dout / np.asarray(np.prod(kernel), dtype=dout.dtype)
    if _is_tiling(x_shape[2:], kernel, stride, pads):
        exp = share.reshape(share.shape + (1,) * nsp)
        exp = np.broadcast_to(exp, share.shape + tuple(kernel))
        order = (0, 1) + tuple(v for i in range(nsp) for v in (2 + i, 2 + nsp + i))
        return np.ascontiguousarray(exp.transpose(order)).reshape(x_shape)
    padded = x_shape[:2] + tuple(s + lo + hi for s, (lo, hi) in zip(x_shape[2:], pads))
    dxp = np.zeros(padded, dtype=dout.dtype)
    for offset in itertools.product(*(range(k) for k in kernel)):
        sl = (slice(None), slice(None)) + _offset_slices(offset, stride, (1,) * nsp, out_shape)
        dxp[sl] += share
    return dxp[(slice(None), slice(None)) + tuple(slice(lo, s - hi) for s, (lo, hi) in zip(padded[2:], pads))]
