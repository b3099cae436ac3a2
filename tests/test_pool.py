"""Max / average / global average pooling (fast and reference) against PyTorch in float64:
forward and dx, 1-D/2-D/3-D, overlapping windows, padding (-inf for max, counted zeros
for average), ties (first maximum wins), channels-last inputs."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

import cnnlab.functional as F
from conftest import torch_autograd

TOL = dict(rtol=1e-12, atol=1e-12)
TORCH_POOL = {("max", 1): TF.max_pool1d, ("max", 2): TF.max_pool2d, ("max", 3): TF.max_pool3d,
              ("avg", 1): TF.avg_pool1d, ("avg", 2): TF.avg_pool2d, ("avg", 3): TF.avg_pool3d}


def torch_pool(kind, x, pool_size, stride, padding, dout):
    """PyTorch's pooling; 'same' and (lo, hi) pairs as an explicit pad (-inf for max, 0 for avg:
    zeros that are then counted, which is what count_include_pad=True does)."""
    nsp = x.ndim - 2
    if padding == "same":  # torch pooling has no 'same': spell it out, odd cell high
        ks = pool_size if isinstance(pool_size, tuple) else (pool_size,) * nsp
        padding = tuple(((k - 1) // 2, k - 1 - (k - 1) // 2) for k in ks)
    pre, tpad = None, padding
    if isinstance(padding, tuple) and any(isinstance(p, tuple) for p in padding):
        pairs = [p if isinstance(p, tuple) else (p, p) for p in padding]
        pre, tpad = [v for lo_hi in reversed(pairs) for v in lo_hi], 0
    fill = -np.inf if kind == "max" else 0.0

    def fn(tx):
        if pre is not None:
            tx = TF.pad(tx, pre, value=fill)
        return TORCH_POOL[kind, nsp](tx, pool_size, stride, tpad)

    out, (dx,) = torch_autograd(fn, [x], dout)
    return out, dx


def check_pool(mod, kind, x, pool_size, stride, padding, rng):
    nsp = x.ndim - 2
    out, cache = getattr(mod, f"{kind}pool{nsp}d_forward")(x, pool_size, stride, padding)
    dout = rng.standard_normal(out.shape)
    dx = getattr(mod, f"{kind}pool{nsp}d_backward")(dout, cache)
    t_out, t_dx = torch_pool(kind, x, pool_size, stride if stride is not None else pool_size, padding, dout)
    assert out.shape == t_out.shape and dx.shape == x.shape
    np.testing.assert_allclose(out, t_out, **TOL)
    np.testing.assert_allclose(dx, t_dx, **TOL)


#        x shape            pool        stride      padding
CASES = [
    ((2, 3, 8),           2,          None,       0),
    ((2, 3, 9),           3,          2,          1),          # overlapping, padded
    ((2, 2, 10),          4,          3,          2),
    ((2, 3, 8, 8),        2,          None,       0),          # the classic 2x2 s2 (tiling)
    ((2, 3, 7, 9),        3,          2,          0),          # overlapping 3x3 s2 (AlexNet)
    ((2, 2, 11, 9),       5,          1,          2),          # 5x5
    ((2, 2, 7, 6),        (3, 2),     (2, 1),     (1, 1)),     # non-square everything
    ((2, 2, 7, 8),        (2, 3),     (3, 2),     (0, 1)),     # stride does not divide
    ((1, 2, 5, 6),        2,          1,          "same"),     # (0, 1) padding
    ((1, 2, 6, 5),        3,          1,          "same"),
    ((1, 2, 6, 5),        3,          2,          ((1, 0), (0, 1))),
    ((2, 2, 4, 6, 6),     2,          None,       0),
    ((1, 2, 5, 6, 7),     (3, 2, 3),  (2, 2, 1),  (1, 0, 1)),
    ((1, 2, 4, 4, 5),     3,          2,          1),
]


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("xs, pool_size, stride, padding", CASES)
def test_pool_matches_torch(impl, kind, xs, pool_size, stride, padding, rng):
    check_pool(impl, kind, rng.standard_normal(xs), pool_size, stride, padding, rng)


@pytest.mark.parametrize("xs, pool_size, stride, padding", [
    ((2, 2, 6, 6), 2, 2, 0), ((2, 2, 7, 7), 3, 1, 1), ((2, 2, 9, 8), 3, 2, 1), ((2, 2, 12), 4, 2, 2),
    ((1, 2, 4, 5, 4), 2, 1, 1)])
def test_max_pool_ties_go_to_first_maximum(impl, xs, pool_size, stride, padding, rng):
    """Lots of equal values inside overlapping windows: dx must route to the same cell as
    PyTorch (the first maximum in row-major window order)."""
    x = rng.integers(0, 3, size=xs).astype(np.float64)
    check_pool(impl, "max", x, pool_size, stride, padding, rng)


def test_max_pool_pads_with_minus_infinity(impl):
    x = -np.arange(1.0, 17.0).reshape(1, 1, 4, 4)  # every value negative: a 0 pad would win
    out, cache = impl.maxpool2d_forward(x, 3, 2, 1)
    # windows: rows/cols {-1..1} and {1..3} of the input (-1 = padding); a 0 pad would win all four
    np.testing.assert_array_equal(out[0, 0], [[-1, -2], [-5, -6]])
    dx = impl.maxpool2d_backward(np.ones_like(out), cache)
    expected = np.zeros((4, 4))
    expected[:2, :2] = 1
    np.testing.assert_array_equal(dx[0, 0], expected)


def test_avg_pool_counts_zero_padding(impl):
    x = np.ones((1, 1, 2, 2))
    out, cache = impl.avgpool2d_forward(x, 2, 1, 1)  # 3x3 outputs over a zero-padded 4x4
    np.testing.assert_allclose(out[0, 0], [[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]])
    dx = impl.avgpool2d_backward(np.ones_like(out), cache)
    np.testing.assert_allclose(dx, np.ones_like(x))  # each cell is in 4 windows, 1/4 each


@st.composite
def pool_config(draw):
    nsp = draw(st.integers(1, 3))
    pool = [draw(st.integers(1, 4)) for _ in range(nsp)]
    stride = [draw(st.integers(1, 4)) for _ in range(nsp)]
    pad = [draw(st.integers(0, k // 2)) for k in pool]
    # torch's 3-D pools refuse inputs smaller than the window even when padding makes it fit
    spatial = [draw(st.integers(k if nsp == 3 else max(1, k - 2 * p), k + (6 if nsp < 3 else 3)))
               for k, p in zip(pool, pad)]
    xs = (draw(st.integers(1, 2)), draw(st.integers(1, 3))) + tuple(spatial)
    stride = None if draw(st.booleans()) else tuple(stride)
    return draw(st.sampled_from(["max", "avg"])), xs, tuple(pool), stride, tuple(pad), draw(st.integers(0, 2 ** 31))


@settings(max_examples=200)
@given(pool_config())
def test_pool_random_configs_match_torch(cfg):
    kind, xs, pool, stride, pad, seed = cfg
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(xs) if seed % 2 else rng.integers(-2, 2, size=xs).astype(np.float64)
    check_pool(F, kind, x, pool, stride, pad, rng)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("pool_size, stride", [(2, 2), (3, 2)])  # tiling and overlapping paths
@pytest.mark.parametrize("c_in", [3, 12])  # the fast conv lays out few- and many-channel outputs differently
@pytest.mark.parametrize("size", [9, 10])  # 8x8 maps (2x2 windows tile them) or 9x9 (a strip left over)
def test_pool_of_conv_output_matches_torch(kind, pool_size, stride, c_in, size, rng):
    """Conv outputs are views of buffers in the conv's own memory order; pooling them (and
    the gradient, which keeps that order) must give the same numbers."""
    x, w = rng.standard_normal((2, c_in, size, size)), rng.standard_normal((6, c_in, 2, 2))
    h, _ = F.conv2d_forward(x, w)  # (2, 6, size - 1, size - 1)
    assert not h.flags.c_contiguous
    check_pool(F, kind, h, pool_size, stride, 0, rng)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("layout", ["fortran", "reversed", "sliced"])
def test_pool_of_any_memory_layout_matches_torch(kind, layout, rng):
    base = rng.standard_normal((2, 3, 8, 10))
    x = {"fortran": np.asfortranarray(base), "reversed": base[:, ::-1, :, ::-1],
         "sliced": rng.standard_normal((2, 3, 16, 10))[:, :, ::2]}[layout]
    check_pool(F, kind, x, 2, None, 0, rng)
    check_pool(F, kind, x, 3, 2, 1, rng)


@pytest.mark.parametrize("xs", [(2, 3, 7), (2, 3, 4, 5), (2, 2, 3, 4, 2), (1, 1000, 7, 7)])
def test_global_avgpool_matches_torch(impl, xs, rng):
    x = rng.standard_normal(xs)
    out, cache = impl.global_avgpool_forward(x)
    assert out.shape == xs[:2]  # 7x7x1000 -> 1000 per sample
    dout = rng.standard_normal(out.shape)
    dx = impl.global_avgpool_backward(dout, cache)
    t_out, (t_dx,) = torch_autograd(lambda t: t.mean(dim=tuple(range(2, len(xs)))), [x], dout)
    np.testing.assert_allclose(out, t_out, **TOL)
    np.testing.assert_allclose(dx, t_dx, **TOL)


@pytest.mark.parametrize("op", ["maxpool2d", "avgpool2d"])
def test_pool_float32_stays_float32(impl, op, rng):
    x = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)
    out, cache = getattr(impl, f"{op}_forward")(x, 3, 2, 1)
    dx = getattr(impl, f"{op}_backward")(np.ones_like(out), cache)
    assert out.dtype == dx.dtype == np.float32
    g, gc = impl.global_avgpool_forward(x)
    assert g.dtype == impl.global_avgpool_backward(g, gc).dtype == np.float32


def test_pool_is_per_channel_without_parameters(impl, rng):
    """Pooling never mixes channels: pooling each channel alone gives the same maps."""
    x = rng.standard_normal((2, 4, 6, 6))
    out, _ = impl.maxpool2d_forward(x, 2)
    for c in range(4):
        np.testing.assert_array_equal(out[:, c:c + 1], impl.maxpool2d_forward(x[:, c:c + 1], 2)[0])


@pytest.mark.parametrize("pool, stride, padding", [(2, 2, 0), (3, 2, 1), (2, 1, 0)])
def test_max_pool_routes_like_torch_with_ties_nan_and_inf(pool, stride, padding):
    rng = np.random.default_rng(7)
    x = rng.integers(-2, 3, (2, 3, 6, 6)).astype(np.float64)  # many exact ties
    x[0, 0, 0, 0] = x[0, 0, 1, 1] = np.nan   # two NaNs in one window
    x[0, 1, 2, 3] = np.nan
    x[1, 2, 4, 4] = np.inf
    x[1, 0, 3, 3] = -np.inf
    out, cache = F.maxpool2d_forward(x, pool, stride, padding)
    dout = rng.standard_normal(out.shape)
    dx = F.maxpool2d_backward(dout, cache)
    t_out, (t_dx,) = torch_autograd(lambda a: torch.nn.functional.max_pool2d(a, pool, stride, padding),
                                    (x,), dout)
    np.testing.assert_array_equal(out, t_out)
    np.testing.assert_allclose(dx, t_dx, rtol=1e-12, atol=1e-12)  # overlapping windows add
