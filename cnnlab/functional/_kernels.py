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

# below this many input channels, dx is scattered in a (C, N, ...) layout (see conv_backward)
_CHANNELS_LAST_DX_MIN_C = 16


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
    """Gradients of :func:`conv_forward`: (dx, dw, db).

    dw = cols^T @ dout (one GEMM against the saved im2col matrix).
    dx: dcols^T = w2 @ dout^T (one GEMM, rows = (tap, channel), columns = (n, out pixel)),
    then one strided add per kernel tap into a (C, N, *padded) buffer. In that layout both
    sides of every add run contiguously along the output row, whatever C is -- a
    channels-last scatter would crawl in runs of C numbers (3 for RGB input).
    """
    cols, w2, padded_shape = kcache
    kdim, c = w.shape[:2]
    kernel = w.shape[2:]
    out_shape = tuple(dout.shape[2:])
    n = dout.shape[0]
    d2 = np.moveaxis(dout, 1, -1).reshape(-1, kdim)  # free if dout is our own layout
    dw2 = cols.T @ d2
    nsp = len(kernel)
    dw = dw2.reshape(kernel + (c, kdim))
    dw = np.ascontiguousarray(dw.transpose((nsp + 1, nsp) + tuple(range(nsp))))
    db = d2.sum(axis=0)
    if not need_dx:
        return None, dw, db
    spatial = padded_shape[1:-1]
    interior = tuple(slice(lo, s - hi) for s, (lo, hi) in zip(spatial, pads))
    taps = list(enumerate(itertools.product(*(range(k) for k in kernel))))
    if c >= _CHANNELS_LAST_DX_MIN_C:
        # wide rows: scatter in channels-last, so dx comes back in the layout the layer
        # below produced (its backward then needs no transpose copy)
        dcols = (d2 @ w2.T).reshape((n,) + out_shape + (-1,))
        dxp = np.zeros(padded_shape, dtype=dcols.dtype)
        for t, offset in taps:
            dxp[(slice(None),) + _offset_slices(offset, stride, dilation, out_shape)] += dcols[..., t * c:(t + 1) * c]
        return channels_first_view(dxp[(slice(None),) + interior]), dw, db
    # few channels (RGB input): a channels-last scatter would crawl in runs of C numbers, so
    # lay dcols out as (taps, C, N, *out) and scatter into a (C, N, *padded) buffer, where
    # both sides of every add run contiguously along an output row.
    dcols_t = (w2 @ d2.T).reshape((-1, c, n) + out_shape)
    dxp = np.zeros((c, n) + tuple(spatial), dtype=dcols_t.dtype)
    for t, offset in taps:
        dxp[(slice(None), slice(None)) + _offset_slices(offset, stride, dilation, out_shape)] += dcols_t[t]
    return np.swapaxes(dxp[(slice(None), slice(None)) + interior], 0, 1), dw, db


# --------------------------------------------------------------------------- pooling


def _pad_channels_first(x, pads, fill):
    if all(lo == 0 and hi == 0 for lo, hi in pads):
        return x
    shape = x.shape[:2] + tuple(s + lo + hi for s, (lo, hi) in zip(x.shape[2:], pads))
    xp = np.full(shape, fill, dtype=x.dtype)
    xp[(slice(None), slice(None)) + tuple(slice(lo, lo + s) for s, (lo, _) in zip(x.shape[2:], pads))] = x
    return xp


def _taps(kernel, stride, out_shape):
    """(tap index, slices of the padded input that tap t sees for every output)."""
    ones = (1,) * len(kernel)
    for t, offset in enumerate(itertools.product(*(range(k) for k in kernel))):
        yield t, (slice(None), slice(None)) + _offset_slices(offset, stride, ones, out_shape)


def empty_like_layout(shape, dtype, channels_last, zero=False):
    """A new (N, C, *S) array whose memory is channels-last when ``channels_last`` (so a
    gradient comes back in the layout of the activation it belongs to)."""
    make = np.zeros if zero else np.empty
    if not channels_last:
        return make(shape, dtype=dtype)
    return channels_first_view(make((shape[0],) + tuple(shape[2:]) + (shape[1],), dtype=dtype))


def is_channels_last(x):
    """True when the memory of an (N, C, *S) array is ordered (N, *S, C)."""
    return x.ndim > 2 and x.shape[1] > 1 and x.strides[1] == x.itemsize and not x.flags.c_contiguous


def _unpad(dxp, pads):
    return dxp[(slice(None), slice(None)) + tuple(
        slice(lo, s - hi) for s, (lo, hi) in zip(dxp.shape[2:], pads))]


def maxpool_forward(x, kernel, stride, pads, out_shape, with_arg=True):
    """out[n, c, o] = max over the window, as prod(k) whole-batch np.maximum passes over
    strided slices (no window copy). ``arg`` is the tap index of the winner (uint8/16),
    the first maximum on ties as in PyTorch; NaN propagates (np.maximum keeps it)."""
    xp = _pad_channels_first(x, pads, -np.inf)
    taps = list(_taps(kernel, stride, out_shape))
    out = xp[taps[0][1]].copy(order="K")  # keep the input's memory layout
    for _, sl in taps[1:]:
        np.maximum(out, xp[sl], out=out)
    if not with_arg:
        return out, None
    arg = np.zeros(out.shape, dtype=np.uint8 if len(taps) <= 256 else np.uint16)
    for t, sl in reversed(taps[1:]):  # reversed: the first winning tap writes last
        np.copyto(arg, t, where=xp[sl] == out)
    np.copyto(arg, 0, where=xp[taps[0][1]] == out)
    return out, arg


def maxpool_backward(dout, arg, x_shape, kernel, stride, pads, channels_last=False):
    """Route each upstream gradient to its window's winner, one strided pass per tap."""
    padded = x_shape[:2] + tuple(s + lo + hi for s, (lo, hi) in zip(x_shape[2:], pads))
    zero = np.zeros((), dtype=dout.dtype)
    if _is_tiling(x_shape[2:], kernel, stride, pads):
        # every cell is some window's tap exactly once
        dx = empty_like_layout(x_shape, dout.dtype, channels_last)
        for t, sl in _taps(kernel, stride, dout.shape[2:]):
            dx[sl] = np.where(arg == t, dout, zero)
        return dx
    dxp = empty_like_layout(padded, dout.dtype, channels_last, zero=True)
    for t, sl in _taps(kernel, stride, dout.shape[2:]):
        dxp[sl] += np.where(arg == t, dout, zero)
    return _unpad(dxp, pads)


def _is_tiling(shape, kernel, stride, pads):
    """Non-overlapping windows that tile the input exactly: every cell in one window."""
    return (tuple(kernel) == tuple(stride) and all(lo == 0 and hi == 0 for lo, hi in pads)
            and all(s % k == 0 for s, k in zip(shape, kernel)))


def avgpool_forward(x, kernel, stride, pads, out_shape):
    """out = mean over the window (zeros of the padding counted, PyTorch's default),
    as prod(k) strided adds."""
    xp = _pad_channels_first(x, pads, 0.0)
    taps = list(_taps(kernel, stride, out_shape))
    out = xp[taps[0][1]].copy(order="K")  # keep the input's memory layout
    for _, sl in taps[1:]:
        out += xp[sl]
    out *= np.asarray(1.0 / len(taps), dtype=out.dtype)
    return out


def avgpool_backward(dout, x_shape, kernel, stride, pads, channels_last=False):
    """Spread each upstream gradient evenly over its window: dx += dout / prod(k) per tap."""
    share = dout * np.asarray(1.0 / np.prod(kernel), dtype=dout.dtype)
    if _is_tiling(x_shape[2:], kernel, stride, pads):
        dx = empty_like_layout(x_shape, dout.dtype, channels_last)
        for _, sl in _taps(kernel, stride, dout.shape[2:]):
            dx[sl] = share
        return dx
    padded = x_shape[:2] + tuple(s + lo + hi for s, (lo, hi) in zip(x_shape[2:], pads))
    dxp = empty_like_layout(padded, dout.dtype, channels_last, zero=True)
    for _, sl in _taps(kernel, stride, dout.shape[2:]):
        dxp[sl] += share
    return _unpad(dxp, pads)
