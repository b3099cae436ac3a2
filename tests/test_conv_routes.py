"""The conv route table: every route, picked by name, gives the numbers of the textbook
im2col route and of PyTorch, forward and backward; the automatic choice picks the route
the table in ``cnnlab.functional.kernels.conv`` documents."""
import numpy as np
import pytest
import torch

import cnnlab.functional as F
from cnnlab.functional.kernels import AUTO, ROUTES, use_route

from conftest import torch_autograd

TOL64 = dict(rtol=1e-9, atol=1e-9)
TOL32 = dict(rtol=2e-4, atol=2e-4)

CASES = [  # x shape, w shape, stride, padding, dilation
    ((2, 3, 9, 9), (4, 3, 3, 3), 1, 1, 1),
    ((2, 3, 11, 10), (4, 3, 3, 3), 2, 1, 1),
    ((2, 1, 12, 12), (6, 1, 5, 5), 1, 2, 1),       # LeNet's first conv
    ((3, 6, 14, 14), (16, 6, 5, 5), 1, 0, 1),      # LeNet's second
    ((2, 16, 7, 7), (8, 16, 3, 3), 1, 1, 1),       # dx by correlation
    ((2, 20, 9, 9), (4, 20, 3, 3), 2, 1, 1),       # channels-last scatter
    ((2, 12, 8, 8), (5, 12, 3, 3), 1, 0, 2),       # dilated
    ((2, 4, 13), (3, 4, 5), 2, 2, 1),              # 1-D
    ((2, 2, 5, 6, 6), (3, 2, 3, 3, 3), 1, 1, 1),   # 3-D
    ((2, 2, 8, 4, 6), (3, 2, 5, 2, 3), (1, 2, 1), 1, 1),
]


def _torch_conv(x, w, b, stride, padding, dilation, dout):
    nsp = x.ndim - 2
    conv = getattr(torch.nn.functional, f"conv{nsp}d")
    return torch_autograd(lambda a, k, c: conv(a, k, c, stride, padding, dilation), (x, w, b), dout)


def _run(route, x, w, b, stride, padding, dilation, dout):
    with use_route(route):
        out, cache = F.convnd_forward(x, w, b, stride, padding, dilation)
        grads = F.convnd_backward(dout, cache)
    assert cache.kernel.route == route
    return out, grads


@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c[0])))
@pytest.mark.parametrize("route", sorted(ROUTES))
def test_every_route_matches_the_im2col_baseline_and_torch(route, case, rng):
    xs, ws, stride, padding, dilation = case
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    plan = ROUTES[route].applies(x, w, *_geometry(x, w, stride, padding, dilation), forced=True)
    if not plan:
        with pytest.raises(ValueError, match="does not apply"):
            with use_route(route):
                F.convnd_forward(x, w, b, stride, padding, dilation)
        return
    dout_shape = F.convnd_forward(x, w, b, stride, padding, dilation)[0].shape
    dout = rng.standard_normal(dout_shape)
    out, grads = _run(route, x, w, b, stride, padding, dilation, dout)
    base_out, base_grads = _run("im2col", x, w, b, stride, padding, dilation, dout)
    t_out, t_grads = _torch_conv(x, w, b, stride, padding, dilation, dout)
    for ours, base, theirs in zip((out,) + tuple(grads), (base_out,) + tuple(base_grads),
                                  (t_out,) + tuple(t_grads)):
        np.testing.assert_allclose(ours, base, **TOL64)
        np.testing.assert_allclose(ours, theirs, **TOL64)


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_every_route_in_float32(route, rng):
    x = rng.standard_normal((4, 6, 14, 14)).astype(np.float32)
    w = rng.standard_normal((16, 6, 5, 5)).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    dout = rng.standard_normal((4, 16, 10, 10)).astype(np.float32)
    out, grads = _run(route, x, w, b, 1, 0, 1, dout)
    t_out, t_grads = _torch_conv(x, w, b, 1, 0, 1, dout)
    for ours, theirs in zip((out,) + tuple(grads), (t_out,) + tuple(t_grads)):
        assert ours.dtype == np.float32
        np.testing.assert_allclose(ours, theirs, **TOL32)


def _geometry(x, w, stride, padding, dilation):
    """(stride, pads, dilation, out_shape) as the functional layer resolves them."""
    _, cache = F.convnd_forward(x[:1], w, None, stride, padding, dilation)
    return cache.stride, cache.pads, cache.dilation, cache.out_shape[2:]


@pytest.mark.parametrize("xs, ws, expected", [
    ((2, 3, 32, 32), (16, 3, 3, 3), "batch_last"),    # RGB first layer, 3x3
    ((2, 1, 28, 28), (6, 1, 5, 5), "rows"),           # LeNet-5
    ((2, 6, 14, 14), (16, 6, 5, 5), "rows"),
    ((2, 3, 32, 32), (32, 3, 5, 5), "batch_last"),    # too many filters for row blocks
    ((2, 16, 16, 16), (32, 16, 3, 3), "channels_last"),
    ((2, 64, 8, 8), (128, 64, 3, 3), "channels_last"),
])
def test_the_automatic_choice_follows_the_table(xs, ws, expected, rng):
    assert AUTO == ("channels_last", "rows", "batch_last")
    _, cache = F.conv2d_forward(rng.standard_normal(xs), rng.standard_normal(ws), None, 1,
                                ws[-1] // 2)
    assert cache.kernel.route == expected


def test_non_finite_input_leaves_the_row_blocks(rng):
    """The Toeplitz zeros times an inf would spread it: such an x takes batch-last."""
    x = rng.standard_normal((2, 1, 28, 28))
    x[0, 0, 3, 3] = np.inf
    _, cache = F.conv2d_forward(x, rng.standard_normal((6, 1, 5, 5)), None, 1, 2)
    assert cache.kernel.route == "batch_last"


def test_unknown_route_name_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown conv route 'fft'.*batch_last"):
        with use_route("fft"):
            pass
