"""Batch normalization step by step, in cs231n's conventions.

    mu = 1/N sum_i x_i,  var = 1/N sum_i (x_i - mu)^2   (biased),
    x_hat = (x - mu) / sqrt(var + eps),  out = gamma * x_hat + beta
    running = momentum * running + (1 - momentum) * batch statistic
    test mode: x_hat uses running_mean / running_var.

1-D: x (N, D), gamma/beta (D,). Spatial: x (N, C, *S) is moved to (N*prod(S), C) and
normalized per channel with the 1-D op. bn_param: 'mode' ('train'|'test'), 'eps' (1e-5),
'momentum' (0.9), 'running_mean'/'running_var' (created as zeros/ones, updated in place).
"""
from __future__ import annotations

import numpy as np

from ._checks import to_float


def batchnorm_forward(x, gamma, beta, bn_param):
    """x (N, D) -> ``out (N, D), cache``; out = gamma * (x - mu) / sqrt(var + eps) + beta."""
    x = to_float(x, "x")
    if x.ndim != 2:
        raise ValueError(f"x must be 2-D (N, D) for batchnorm_forward, got shape {x.shape}")
    n, d = x.shape
    gamma, beta = to_float(gamma, "gamma"), to_float(beta, "beta")
    if gamma.shape != (d,) or beta.shape != (d,):
        raise ValueError(f"gamma and beta must have shape ({d},), got {gamma.shape} and {beta.shape}")
    if not isinstance(bn_param, dict):
        raise TypeError(f"bn_param must be a dict, got {type(bn_param).__name__}")
    mode = bn_param.get("mode", "train")
    eps = bn_param.get("eps", 1e-5)
    momentum = bn_param.get("momentum", 0.9)
    if bn_param.get("running_mean") is None:
        bn_param["running_mean"] = np.zeros(d, dtype=x.dtype)
    if bn_param.get("running_var") is None:
        bn_param["running_var"] = np.ones(d, dtype=x.dtype)
    running_mean, running_var = bn_param["running_mean"], bn_param["running_var"]
    if mode == "test":
        out = gamma * (x - running_mean) / np.sqrt(running_var + eps) + beta
        return out.astype(x.dtype), None
    if mode != "train":
        raise ValueError(f"bn_param['mode'] must be 'train' or 'test', got {mode!r}")
    # the computation graph, one node per line (the backward pass walks it in reverse)
    mu = x.sum(axis=0) / n
    xmu = x - mu
    sq = xmu ** 2
    var = sq.sum(axis=0) / n
    sqrtvar = np.sqrt(var + eps)
    ivar = 1 / sqrtvar
    xhat = xmu * ivar
    out = gamma * xhat + beta
    running_mean[...] = momentum * running_mean + (1 - momentum) * mu
    running_var[...] = momentum * running_var + (1 - momentum) * var
    return out.astype(x.dtype), (xhat, gamma, xmu, ivar, sqrtvar, var, eps)


def batchnorm_backward(dout, cache):
    """Backward through the graph of the forward pass, node by node -> (dx, dgamma, dbeta)."""
    xhat, gamma, xmu, ivar, sqrtvar, var, eps = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)                    # out = gamma * xhat + beta
    dgamma = (dout * xhat).sum(axis=0)
    dxhat = dout * gamma
    divar = (dxhat * xmu).sum(axis=0)           # xhat = xmu * ivar
    dxmu1 = dxhat * ivar
    dsqrtvar = -divar / sqrtvar ** 2            # ivar = 1 / sqrtvar
    dvar = 0.5 / np.sqrt(var + eps) * dsqrtvar  # sqrtvar = sqrt(var + eps)
    dsq = np.ones_like(xmu) * dvar / n          # var = sum(sq) / N
    dxmu2 = 2 * xmu * dsq                       # sq = xmu^2
    dx1 = dxmu1 + dxmu2                         # xmu = x - mu
    dmu = -dx1.sum(axis=0)
    dx2 = np.ones_like(xmu) * dmu / n           # mu = sum(x) / N
    dx = dx1 + dx2
    return dx.astype(xhat.dtype), dgamma, dbeta


def batchnorm_backward_alt(dout, cache):
    """Closed form -> (dx, dgamma, dbeta):
    dx = gamma / (N * sqrt(var + eps)) * (N * dout - sum(dout) - xhat * sum(dout * xhat))."""
    xhat, gamma, xmu, ivar, sqrtvar, var, eps = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * xhat).sum(axis=0)
    dx = gamma * ivar / n * (n * dout - dbeta - xhat * dgamma)
    return dx.astype(xhat.dtype), dgamma, dbeta


def _to_rows(x):
    """(N, C, *S) -> (N * prod(S), C): every pixel of every image is one row."""
    return np.moveaxis(x, 1, -1).reshape(-1, x.shape[1])


def _from_rows(rows, shape):
    """Inverse of :func:`_to_rows`."""
    moved = rows.reshape((shape[0],) + tuple(shape[2:]) + (shape[1],))
    return np.moveaxis(moved, -1, 1)


def spatial_batchnorm_forward(x, gamma, beta, bn_param):
    """x (N, C, *S) -> ``out (N, C, *S), cache``; batchnorm per channel over N and S."""
    x = to_float(x, "x")
    if x.ndim < 3:
        raise ValueError(f"x must be (N, C, H, W) for spatial_batchnorm_forward, got shape {x.shape}")
    out, cache = batchnorm_forward(_to_rows(x), gamma, beta, bn_param)
    return _from_rows(out, x.shape), (cache, x.shape)


def spatial_batchnorm_backward(dout, cache):
    """dout (N, C, *S) -> (dx, dgamma (C,), dbeta (C,)) via the 1-D graph backward."""
    bn_cache, shape = cache
    dx, dgamma, dbeta = batchnorm_backward(_to_rows(dout), bn_cache)
    return _from_rows(dx, shape), dgamma, dbeta
