"""Batch normalization (Ioffe & Szegedy), cs231n's conventions.

    x_hat = (x - mu_B) / sqrt(var_B + eps),  out = gamma * x_hat + beta
    running = momentum * running + (1 - momentum) * batch statistic   (biased var_B)

1-D: x (N, D), gamma/beta (D,). Spatial: x (N, C, H, W) (or any (N, C, *S)), statistics
per channel over N and the spatial axes -- the (N*H*W, C) reshape done without copying.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._args import as_float_array, check_cache, check_dout, real_number
from .kernels import (
    channel_affine,
    channel_combine,
    channel_dot,
    channel_sums,
    in_order,
    memory_order,
)


class BatchNormCache(NamedTuple):
    """What the batch-norm backward passes need (x_hat is rebuilt from x, mu and std;
    the statistics in float64)."""

    x: np.ndarray
    mu: np.ndarray
    var: np.ndarray
    std: np.ndarray
    gamma: np.ndarray
    eps: float
    axes: tuple
    sync: object = None  # (reduce, m) of a sync batch norm over MPI ranks, else None


# The moments come from one read of x, var = mean(x^2) - mu^2, which loses about
# log10(mu^2 / var) of float32's 7 digits to cancellation. Channels whose mean is
# further than 16 standard deviations from zero (> 2.4 digits lost) take the exact
# two-pass form instead: var = mean((x - mu)^2), backward from x - mu.
CANCELLATION = 256.0


def _far_from_zero(mu, var):
    """Whether a channel's mean is so far from zero, against its spread, that the one-pass
    forms lose too many digits (see CANCELLATION)."""
    return bool(np.any(mu * mu > CANCELLATION * var))


def _param(bn_param, d, dtype):
    if not isinstance(bn_param, dict):
        raise TypeError(f"bn_param must be a dict, got {type(bn_param).__name__}")
    mode = bn_param.get("mode", "train")
    if mode not in ("train", "test"):
        raise ValueError(f"bn_param['mode'] must be 'train' or 'test', got {mode!r}")
    eps = real_number(bn_param.get("eps", 1e-5), "bn_param['eps']")
    momentum = real_number(bn_param.get("momentum", 0.9), "bn_param['momentum']")
    rm = bn_param.get("running_mean")
    rv = bn_param.get("running_var")
    if rm is None:
        rm = bn_param["running_mean"] = np.zeros(d, dtype=dtype)
    if rv is None:
        rv = bn_param["running_var"] = np.ones(d, dtype=dtype)
    return mode, eps, momentum, rm, rv


def _bn_forward(x, gamma, beta, bn_param, axes, shape):
    d = x.shape[1]
    gamma = as_float_array(gamma, "gamma")
    beta = as_float_array(beta, "beta")
    if gamma.shape != (d,) or beta.shape != (d,):
        raise ValueError(
            f"gamma and beta must have shape ({d},) (one per feature/channel), "
            f"got {gamma.shape} and {beta.shape}"
        )
    mode, eps, momentum, rm, rv = _param(bn_param, d, x.dtype)
    g = gamma.reshape(shape).astype(x.dtype, copy=False)
    bt = beta.reshape(shape).astype(x.dtype, copy=False)
    if mode == "test":  # out = (x - running_mean) * gamma / sqrt(running_var + eps) + beta
        scale = g.reshape(d) / np.sqrt(rv + eps).astype(x.dtype, copy=False)
        return channel_affine(
            x, scale, bt.reshape(d) - rm.astype(x.dtype, copy=False) * scale
        ), None
    m = x.size // d
    # sum(x) and sum(x^2) per channel in one read of x (kernels.channel_sums/_dot, long
    # inner loops in any memory layout), accumulated in float64
    sums, sq, reduce = channel_sums(x), channel_dot(x, x), bn_param.get("reduce")
    if reduce is not None:  # sync batch norm: sums over every rank's share of the batch
        total = reduce(np.concatenate([sums, sq, [m]]))
        sums, sq, m = total[:d], total[d : 2 * d], int(round(total[-1]))
    mu = sums / m  # float64 throughout: the statistics, scale and shift
    var = np.maximum(sq / m - mu * mu, 0.0)
    xs, mu_x = x, np.zeros(d)  # x, or x less its mean as x's dtype holds it (see _centered)
    if _far_from_zero(mu, var):  # two passes: the mean square of x - mu
        xs, mu_x = _centered(x, mu)
        # the mean again, from the small numbers xs (their float32 sums lose little)
        rest = np.concatenate([channel_sums(xs), channel_dot(xs, xs)])
        rest = (rest if reduce is None else reduce(rest)) / m
        mu = mu_x + rest[:d]
        var = np.maximum(rest[d:] - rest[:d] ** 2, 0.0)
    std = np.sqrt(var + eps)
    # out = xhat * gamma + beta with xhat = (x - mu) / std, as xs * scale + shift in one
    # pass: neither x - mu nor x_hat is stored (the backward pass works from x)
    scale = g.reshape(d) / std
    out = channel_affine(
        xs, scale, bt.reshape(d) - (mu - mu_x) * scale, out=None if xs is x else xs
    )
    rm *= momentum
    rm += (1 - momentum) * mu.astype(x.dtype)
    rv *= momentum
    rv += (1 - momentum) * var.astype(x.dtype)
    sync = None if reduce is None else (reduce, m)
    return out, BatchNormCache(
        x, mu.reshape(shape), var.reshape(shape), std.reshape(shape), g, eps, axes, sync
    )


def _centered(x, mu):
    """(x - mu_x, mu_x) with mu_x = mu rounded to x's dtype: the subtraction is then exact
    for x near its mean, and the rest of mu (mu - mu_x) goes into the per-channel shifts."""
    mu_x = mu.astype(x.dtype)
    return channel_affine(x, None, -mu_x), mu_x.astype(np.float64)


def batchnorm_forward(x, gamma, beta, bn_param):
    """x (N, D) -> ``out, cache``; bn_param: mode, eps, momentum, running_mean, running_var,
    and optionally 'reduce': a function summing a 1-D array over the processes that each
    hold a share of the batch (sync batch norm, see cnnlab.distributed.syncbn; the
    backward pass must then be :func:`batchnorm_backward_alt`)."""
    x = as_float_array(x, "x")
    if x.ndim != 2:
        raise ValueError(
            f"x must be 2-D (N, D) for batchnorm_forward, got shape {x.shape}; "
            "use spatial_batchnorm_forward for (N, C, H, W)"
        )
    return _bn_forward(x, gamma, beta, bn_param, (0,), (1, -1))


def batchnorm_backward(dout, cache):
    """Backward through the computation graph, node by node -> (dx, dgamma, dbeta)."""
    x, mu, var, std, g, eps, axes, sync = check_cache(cache, BatchNormCache, "batchnorm")
    dout = check_dout(dout, x.shape)
    xc = x - mu
    if sync is not None:
        raise ValueError(
            "a sync batch norm forward (bn_param['reduce']) needs "
            "batchnorm_backward_alt, which reduces its sums over the processes"
        )
    m = x.size // x.shape[1]
    xhat = xc / std
    dbeta = dout.sum(axis=axes)
    dgamma = (dout * xhat).sum(axis=axes)
    dxhat = dout * g
    # xhat = xc * ivar, ivar = 1 / std, std = sqrt(var + eps), var = mean(xc^2), xc = x - mu
    ivar = 1.0 / std
    dxc = dxhat * ivar
    divar = (dxhat * xc).sum(axis=axes, keepdims=True)
    dstd = -divar / (std * std)
    dvar = 0.5 * dstd / std
    dsq = np.broadcast_to(dvar / m, x.shape)
    dxc = dxc + 2 * xc * dsq
    dmu = -dxc.sum(axis=axes, keepdims=True)
    dx = dxc + dmu / m
    dt = x.dtype
    return dx.astype(dt, copy=False), dgamma.reshape(-1).astype(dt), dbeta.reshape(-1).astype(dt)


def batchnorm_backward_alt(dout, cache):
    """Simplified closed form -> (dx, dgamma, dbeta):

    dx = gamma / (m * std) * (m * dout - sum(dout) - xhat * sum(dout * xhat))
    """
    x, mu, var, std, g, eps, axes, sync = check_cache(cache, BatchNormCache, "batchnorm")
    dout = check_dout(dout, x.shape)
    m = x.size // x.shape[1]
    mu, std = mu.reshape(-1), std.reshape(-1)
    a = g.reshape(-1) / std
    dout = in_order(dout, memory_order(x))  # mixed layouts would crawl (see copy_into)
    dbeta = channel_sums(dout)
    xs, mu_x = x, np.zeros_like(mu)  # as in the forward pass (see CANCELLATION)
    if _far_from_zero(mu, var.reshape(-1)):
        xs, mu_x = _centered(x, mu)
    # sum(dout * xhat) = (sum(dout * xs) - (mu - mu_x) * sum(dout)) / std
    dgamma = (channel_dot(dout, xs) - (mu - mu_x) * dbeta) / std
    sb, sg = dbeta, dgamma
    if sync is not None:  # sync batch norm: dx needs both sums over the whole batch
        reduce, m = sync
        total = reduce(np.concatenate([dbeta, dgamma]))
        sb, sg = total[: dbeta.size], total[dbeta.size :]
    # dx = a * (dout - xhat * sg / m - sb / m), a = gamma / std, xhat = (xs - (mu - mu_x))
    # / std: dout * a + xs * p + q in one pass
    p = -a * sg / (m * std)
    dx = channel_combine(dout, a, xs, p, -a * sb / m - p * (mu - mu_x), out=None if xs is x else xs)
    dt = x.dtype
    return dx, dgamma.astype(dt), dbeta.astype(dt)


def spatial_batchnorm_forward(x, gamma, beta, bn_param):
    """x (N, C, H, W) (or (N, C, *S)), statistics per channel -> ``out, cache``."""
    x = as_float_array(x, "x")
    if x.ndim < 3:
        raise ValueError(
            f"x must be (N, C, H, W) for spatial_batchnorm_forward, got shape {x.shape}"
        )
    axes = (0,) + tuple(range(2, x.ndim))
    return _bn_forward(x, gamma, beta, bn_param, axes, (1, -1) + (1,) * (x.ndim - 2))


def spatial_batchnorm_backward(dout, cache):
    """-> (dx, dgamma, dbeta) for :func:`spatial_batchnorm_forward` (closed form)."""
    return batchnorm_backward_alt(dout, cache)
