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
from .kernels import channel_affine, channel_dot, channel_sums, in_order, memory_order


class BatchNormCache(NamedTuple):
    """What the batch-norm backward passes need (x_hat is rebuilt from xc / std)."""

    x: np.ndarray
    xc: np.ndarray
    mu: np.ndarray
    var: np.ndarray
    std: np.ndarray
    gamma: np.ndarray
    eps: float
    axes: tuple
    sync: object = None  # (reduce, m) of a sync batch norm over MPI ranks, else None


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
    # per-channel passes that keep long inner loops in any memory layout (see
    # kernels.channel_sums): the mean, x - mean, its mean square, the scale and shift
    sums, reduce = channel_sums(x), bn_param.get("reduce")
    if reduce is not None:  # sync batch norm: sums over every rank's share of the batch
        total = reduce(np.append(sums.astype(np.float64), m))
        sums, m = total[:-1].astype(x.dtype), int(round(total[-1]))
    mu = sums / m
    xc = channel_affine(x, None, -mu)
    sq = channel_dot(xc, xc)  # sum of xc^2, no xc*xc temporary
    var = (sq if reduce is None else reduce(sq).astype(x.dtype)) / m
    std = np.sqrt(var + eps)
    # out = xhat * gamma + beta with xhat = xc / std, as xc * (gamma / std) + beta: x_hat
    # itself is never stored (the backward pass works from xc)
    out = channel_affine(xc, g.reshape(d) / std, bt.reshape(d))
    rm *= momentum
    rm += (1 - momentum) * mu
    rv *= momentum
    rv += (1 - momentum) * var
    sync = None if reduce is None else (reduce, m)
    return out, BatchNormCache(
        x, xc, mu.reshape(shape), var.reshape(shape), std.reshape(shape), g, eps, axes, sync
    )


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
    x, xc, mu, var, std, g, eps, axes, sync = check_cache(cache, BatchNormCache, "batchnorm")
    dout = check_dout(dout, x.shape)
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
    return dx.astype(x.dtype, copy=False), dgamma.reshape(-1), dbeta.reshape(-1)


def batchnorm_backward_alt(dout, cache):
    """Simplified closed form -> (dx, dgamma, dbeta):

    dx = gamma / (m * std) * (m * dout - sum(dout) - xhat * sum(dout * xhat))
    """
    x, xc, mu, var, std, g, eps, axes, sync = check_cache(cache, BatchNormCache, "batchnorm")
    dout = check_dout(dout, x.shape)
    m = x.size // x.shape[1]
    std, a = std.reshape(-1), (g / std).reshape(-1)
    dout = in_order(dout, memory_order(xc))  # mixed layouts would crawl (see copy_into)
    dbeta = channel_sums(dout)
    dgamma = channel_dot(dout, xc) / std  # sum(dout * xhat)
    sb, sg = dbeta, dgamma
    if sync is not None:  # sync batch norm: dx needs both sums over the whole batch
        reduce, m = sync
        total = reduce(np.concatenate([dbeta, dgamma])).astype(x.dtype)
        sb, sg = total[: dbeta.size], total[dbeta.size :]
    # dx = a * (dout - xc * dgamma / (m * std)) - a * dbeta / m, a = gamma / std
    dx = channel_affine(xc, -sg / (m * std))
    np.add(dx, dout, out=dx)
    channel_affine(dx, a, -a * sb / m, out=dx)
    return dx.astype(x.dtype, copy=False), dgamma, dbeta


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
