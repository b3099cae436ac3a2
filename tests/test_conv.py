"""Convolution 1-D/2-D/3-D (fast and reference) against torch.nn.functional.conv*d in
float64: forward, dx, dw, db, over every padding form, strides, dilations, kernel shapes."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

import cnnlab.functional as F
from conftest import torch_autograd

# torch warns that it copies the input for an even-kernel 'same' conv; irrelevant here
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same'")

TOL = dict(rtol=1e-10, atol=1e-10)
TORCH_CONV = {1: TF.conv1d, 2: TF.conv2d, 3: TF.conv3d}


def torch_padding(padding, kernel, dilation):
    """Our padding spec -> (explicit F.pad pairs or None, torch's padding argument).

    torch takes ints, per-axis ints, 'valid' and 'same'; 'full' is d(k-1) per axis;
    per-axis (lo, hi) pairs need an explicit pad first.
    """
    nsp = len(kernel)
    dil = dilation if isinstance(dilation, tuple) else (dilation,) * nsp
    if padding == "full":
        return None, tuple(d * (k - 1) for k, d in zip(kernel, dil))
    if isinstance(padding, tuple) and any(isinstance(p, tuple) for p in padding):
        pairs = [p if isinstance(p, tuple) else (p, p) for p in padding]
        flat = [v for lo_hi in reversed(pairs) for v in lo_hi]  # F.pad: last axis first
        return flat, 0
    return None, padding


def torch_conv(x, w, b, stride, padding, dilation, dout):
    nsp = x.ndim - 2
    pre, tpad = torch_padding(padding, w.shape[2:], dilation)

    def fn(tx, tw, tb):
        if pre is not None:
            tx = TF.pad(tx, pre)
        return TORCH_CONV[nsp](tx, tw, tb, stride=stride, padding=tpad, dilation=dilation)

    out, grads = torch_autograd(fn, [x, w, b], dout)
    return out, grads


def check_against_torch(mod, xs, ws, stride, padding, dilation, rng, bias=True):
    x = rng.standard_normal(xs)
    w = rng.standard_normal(ws)
    b = rng.standard_normal(ws[0]) if bias else None
    nsp = len(xs) - 2
    out, cache = getattr(mod, f"conv{nsp}d_forward")(x, w, b, stride, padding, dilation)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = getattr(mod, f"conv{nsp}d_backward")(dout, cache)
    t_out, (t_dx, t_dw, t_db) = torch_conv(x, w, b, stride, padding, dilation, dout)
    assert out.shape == t_out.shape
    np.testing.assert_allclose(out, t_out, **TOL)
    np.testing.assert_allclose(dx, t_dx, **TOL)
    np.testing.assert_allclose(dw, t_dw, **TOL)
    if bias:
        np.testing.assert_allclose(db, t_db, **TOL)
    else:
        assert db is None
    assert out.dtype == dx.dtype == dw.dtype == np.float64


#        x shape           w shape         stride     padding              dilation
CASES = [
    ((2, 3, 11),         (4, 3, 3),       1,         0,                   1),
    ((2, 3, 11),         (4, 3, 4),       3,         2,                   1),  # even k, s does not divide
    ((1, 2, 9),          (3, 2, 3),       1,         "same",              2),
    ((2, 2, 8),          (2, 2, 4),       1,         "same",              1),  # even 'same'
    ((2, 2, 6),          (2, 2, 3),       1,         "full",              1),
    ((2, 2, 5),          (2, 2, 7),       1,         "full",              1),  # kernel longer than x
    ((2, 2, 7),          (3, 2, 2),       2,         ((2, 1),),           1),  # (lo, hi)
    ((2, 3, 7, 5),       (4, 3, 3, 3),    1,         0,                   1),
    ((2, 3, 7, 5),       (4, 3, 3, 2),    (2, 3),    (1, 0),              1),  # non-square everything
    ((2, 3, 8, 9),       (2, 3, 4, 4),    1,         "same",              1),
    ((1, 2, 6, 7),       (3, 2, 2, 3),    1,         "same",              (2, 1)),
    ((2, 1, 5, 4),       (2, 1, 3, 2),    1,         "full",              1),
    ((2, 2, 9, 8),       (3, 2, 3, 3),    2,         "valid",             (1, 2)),
    ((2, 2, 6, 6),       (2, 2, 3, 3),    (1, 2),    ((0, 2), (1, 0)),    1),
    ((2, 2, 5, 5),       (2, 2, 5, 5),    1,         0,                   1),  # one output pixel
    ((2, 2, 5, 5),       (3, 2, 1, 1),    2,         0,                   1),  # 1x1 conv
    ((2, 2, 5, 7),       (3, 2, 3, 3),    3,         1,                   1),  # 32x32 s2 analogue
    ((2, 16, 5, 6),      (3, 16, 3, 3),   1,         1,                   1),  # wide: channels-last dx
    ((2, 20, 6, 5),      (4, 20, 2, 3),   2,         (1, 2),              1),
    # wide inputs at stride 1, where a fast dx may itself be a convolution of dout,
    # including padding beyond the kernel's reach (the transposed conv then needs a crop)
    ((2, 16, 6, 5),      (3, 16, 1, 1),   1,         1,                   1),
    ((2, 16, 7, 6),      (3, 16, 3, 2),   1,         ((0, 3), (2, 1)),    1),
    ((2, 18, 6, 7),      (2, 18, 3, 3),   1,         "same",              2),
    ((2, 16, 9),         (3, 16, 3),      1,         "full",              1),
    ((2, 4, 5, 9),       (3, 4, 2, 6),    1,         0,                   1),  # few channels, wide rows
    ((2, 10, 7, 7),      (3, 10, 3, 3),   2,         1,                   1),  # middling C, strided
    ((2, 13, 9, 8),      (3, 13, 3, 3),   2,         1,                   1),  # channels-last fwd, batch-last phase col2im
    ((2, 2, 13, 12),     (3, 2, 5, 4),    (3, 2),    (2, 1),              (1, 2)),  # phases along both axes, dilated
    ((2, 10, 7, 7),      (3, 10, 3, 3),   1,         1,                   1),
    ((2, 2, 5, 6, 4),    (3, 2, 3, 2, 3), 1,         0,                   1),
    ((1, 2, 6, 5, 7),    (2, 2, 3, 3, 2), (2, 1, 3), (1, 0, 1),           1),
    ((1, 2, 5, 5, 4),    (2, 2, 2, 3, 3), 1,         "same",              (1, 2, 1)),
    ((1, 1, 3, 4, 3),    (2, 1, 2, 2, 2), 1,         "full",              1),
    ((1, 17, 4, 3, 4),   (2, 17, 2, 2, 2), 2,        ((1, 0), 1, (0, 1)), 1),
    ((1, 16, 4, 4, 4),   (2, 16, 2, 2, 2), 1,        1,                   1),
]


@pytest.mark.parametrize("xs, ws, stride, padding, dilation", CASES)
def test_conv_matches_torch(impl, xs, ws, stride, padding, dilation, rng):
    check_against_torch(impl, xs, ws, stride, padding, dilation, rng)


@pytest.mark.parametrize("xs, ws", [((2, 3, 6), (2, 3, 3)), ((2, 3, 5, 6), (2, 3, 2, 3)),
                                    ((1, 2, 3, 4, 5), (2, 2, 2, 2, 2))])
def test_conv_without_bias(impl, xs, ws, rng):
    check_against_torch(impl, xs, ws, 2, 1, 1, rng, bias=False)


@st.composite
def conv_config(draw):
    nsp = draw(st.integers(1, 3))
    kind = draw(st.sampled_from(["int", "per_axis", "pairs", "valid", "same", "full"]))
    kernel, stride, dilation, pads, spatial = [], [], [], [], []
    p_int = draw(st.integers(0, 2))
    for _ in range(nsp):
        k, d = draw(st.integers(1, 4)), draw(st.integers(1, 2))
        s = 1 if kind == "same" else draw(st.integers(1, 3))
        if kind == "int":
            lo = hi = p_int
        elif kind == "per_axis":
            lo = hi = draw(st.integers(0, 2))
        elif kind == "pairs":
            lo, hi = draw(st.integers(0, 2)), draw(st.integers(0, 2))
        elif kind == "same":
            lo, hi = (d * (k - 1)) // 2, d * (k - 1) - (d * (k - 1)) // 2
        elif kind == "full":
            lo = hi = d * (k - 1)
        else:
            lo = hi = 0
        need = max(1, d * (k - 1) + 1 - lo - hi)  # smallest input the kernel fits
        spatial.append(draw(st.integers(need, need + (6 if nsp < 3 else 3))))
        kernel.append(k), stride.append(s), dilation.append(d), pads.append((lo, hi))
    padding = {"int": p_int, "per_axis": tuple(lo for lo, _ in pads), "pairs": tuple(pads)}.get(kind, kind)
    n, c, kf = draw(st.integers(1, 2)), draw(st.sampled_from([1, 2, 3, 7, 8, 17])), draw(st.integers(1, 3))
    scalar = lambda v: v[0] if len(set(v)) == 1 and draw(st.booleans()) else tuple(v)  # int or tuple
    return ((n, c) + tuple(spatial), (kf, c) + tuple(kernel), scalar(stride), padding, scalar(dilation),
            draw(st.integers(0, 2 ** 31)))


@settings(max_examples=300)
@given(conv_config())
def test_conv_random_configs_match_torch(cfg):
    xs, ws, stride, padding, dilation, seed = cfg
    check_against_torch(F, xs, ws, stride, padding, dilation, np.random.default_rng(seed))


def test_chained_convs_and_strided_views_match_torch(rng):
    """Our conv returns a channels-last buffer seen as (N, C, H, W); feeding it (and a
    strided slice of an input) into the next conv must not change any number."""
    x = rng.standard_normal((2, 3, 14, 12))[:, :, ::2, :]  # non-contiguous view
    w1, b1 = rng.standard_normal((16, 3, 3, 3)), rng.standard_normal(16)
    w2, b2 = rng.standard_normal((5, 16, 2, 3)), rng.standard_normal(5)
    h, c1 = F.conv2d_forward(x, w1, b1, 1, 1)
    y, c2 = F.conv2d_forward(h, w2, b2, 2, "valid")
    dy = rng.standard_normal(y.shape)
    dh, dw2, db2 = F.conv2d_backward(dy, c2)
    dx, dw1, db1 = F.conv2d_backward(dh, c1)

    def fn(tx, tw1, tb1, tw2, tb2):
        return TF.conv2d(TF.conv2d(tx, tw1, tb1, padding=1), tw2, tb2, stride=2)

    t_y, grads = torch_autograd(fn, [x, w1, b1, w2, b2], dy)
    np.testing.assert_allclose(y, t_y, **TOL)
    for ours, theirs in zip([dx, dw1, db1, dw2, db2], grads):
        np.testing.assert_allclose(ours, theirs, **TOL)


def test_chained_row_block_convs_match_torch(rng, monkeypatch):
    """LeNet-like: the first conv's output (images innermost) feeds the second as is (no
    copy); each dx comes back in its input's layout, the padded one as a cropped view."""
    from cnnlab.functional.kernels import conv_rows, memory_order
    seen = []
    real = conv_rows.images_innermost
    monkeypatch.setattr(conv_rows, "images_innermost", lambda *a: seen.append(real(*a)) or seen[-1])
    x = rng.standard_normal((3, 1, 12, 12))
    w1, b1 = rng.standard_normal((6, 1, 5, 5)), rng.standard_normal(6)
    w2, b2 = rng.standard_normal((16, 6, 5, 5)), rng.standard_normal(16)
    h, c1 = F.conv2d_forward(x, w1, b1, 1, 2)
    y, c2 = F.conv2d_forward(h, w2, b2, 1, 0)
    assert seen[0] is None and seen[1] is not None  # padded: copied; then taken as is
    dy = rng.standard_normal(y.shape)
    dh, dw2, db2 = F.conv2d_backward(dy, c2)
    assert memory_order(dh) == memory_order(h)
    dx, dw1, db1 = F.conv2d_backward(dh, c1)

    def fn(tx, tw1, tb1, tw2, tb2):
        return TF.conv2d(TF.conv2d(tx, tw1, tb1, padding=2), tw2, tb2)

    t_y, grads = torch_autograd(fn, [x, w1, b1, w2, b2], dy)
    np.testing.assert_allclose(y, t_y, **TOL)
    for ours, theirs in zip([dx, dw1, db1, dw2, db2], grads):
        np.testing.assert_allclose(ours, theirs, **TOL)


def test_big_wide_conv_matches_torch(rng):
    """Big enough (about 9 MB of im2col columns in float64) that a fast path working in
    cache-sized pieces must stitch several of them, with an uneven last piece."""
    check_against_torch(F, (7, 32, 24, 24), (8, 32, 3, 3), 1, 1, 1, rng)
    check_against_torch(F, (5, 24, 20, 18), (4, 24, 3, 2), (2, 1), 2, 1, rng)


@pytest.mark.parametrize("c", [2, 12])
@pytest.mark.parametrize("layout", ["fortran", "reversed"])
def test_conv_of_any_memory_layout_matches_torch(c, layout, rng):
    base = rng.standard_normal((2, c, 7, 6))
    x = np.asfortranarray(base) if layout == "fortran" else base[:, ::-1, ::-1]
    w, b = rng.standard_normal((3, c, 3, 2)), rng.standard_normal(3)
    out, cache = F.conv2d_forward(x, w, b, (2, 1), 1)
    dout = np.asfortranarray(rng.standard_normal(out.shape))  # an upstream gradient in yet another order
    grads = F.conv2d_backward(dout, cache)
    t_out, t_grads = torch_conv(x, w, b, (2, 1), 1, 1, dout)
    np.testing.assert_allclose(out, t_out, **TOL)
    for g, tg in zip(grads, t_grads):
        np.testing.assert_allclose(g, tg, **TOL)


def test_need_dx_false_skips_dx_only(rng):
    x, w, b = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    out, cache = F.conv2d_forward(x, w, b, 1, 1)
    dout = rng.standard_normal(out.shape)
    full = F.conv2d_backward(dout, cache)
    dx, dw, db = F.conv2d_backward(dout, cache, need_dx=False)
    assert dx is None
    np.testing.assert_array_equal(dw, full[1])
    np.testing.assert_array_equal(db, full[2])


@pytest.mark.parametrize("xs, ws", [((2, 3, 9), (4, 3, 3)), ((2, 3, 7, 6), (4, 3, 3, 2)),
                                    ((2, 20, 5, 6), (3, 20, 3, 3)), ((1, 2, 4, 5, 4), (3, 2, 2, 3, 2))])
def test_float32_stays_float32(impl, xs, ws, rng):
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in (xs, ws, ws[:1]))
    out, cache = impl.convnd_forward(x, w, b, 2, 1)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    grads = impl.convnd_backward(dout, cache)
    assert out.dtype == np.float32 and all(g.dtype == np.float32 for g in grads)
    out64, cache64 = impl.convnd_forward(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), 2, 1)
    grads64 = impl.convnd_backward(dout.astype(np.float64), cache64)
    np.testing.assert_allclose(out, out64, rtol=1e-4, atol=1e-4)
    for g, g64 in zip(grads, grads64):
        np.testing.assert_allclose(g, g64, rtol=1e-4, atol=1e-4)


def test_integer_input_is_computed_in_float32(impl):
    x = np.arange(2 * 1 * 4 * 4).reshape(2, 1, 4, 4)
    w = np.ones((1, 1, 2, 2), dtype=np.int64)
    out, _ = impl.conv2d_forward(x, w)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out[0, 0, 0], [0 + 1 + 4 + 5, 1 + 2 + 5 + 6, 2 + 3 + 6 + 7])


def test_convnd_infers_rank_and_named_wrappers_agree(rng):
    x, w = rng.standard_normal((2, 2, 5, 4, 3)), rng.standard_normal((3, 2, 2, 2, 2))
    np.testing.assert_array_equal(F.convnd_forward(x, w)[0], F.conv3d_forward(x, w)[0])
    x1, w1 = rng.standard_normal((2, 2, 5)), rng.standard_normal((3, 2, 2))
    np.testing.assert_array_equal(F.convnd_forward(x1, w1)[0], F.conv1d_forward(x1, w1)[0])


# A small map with few channels runs in blocks of output rows, as a convolution over its
# other axes with a Toeplitz weight matrix in H (the 'rows' route). Same numbers as
# the batch-last route and torch, at every stride, dilation and padding along H.
@pytest.mark.parametrize("xs, ws, stride, padding, dilation", [
    ((3, 6, 14, 14), (16, 6, 5, 5), 1, 0, 1),                # LeNet's second conv: 2 blocks of 5 rows
    ((2, 1, 28, 28), (6, 1, 5, 5), 1, 2, 1),                 # LeNet's first: 7 blocks of 4
    ((2, 3, 13, 7), (4, 3, 5, 3), (2, 1), (1, 0), 1),        # strided along H: 2 blocks of 3
    ((2, 2, 9, 6), (3, 2, 5, 3), 1, ((1, 0), (0, 1)), (2, 1)),  # dilated, uneven padding
    ((2, 2, 8, 4, 6), (3, 2, 5, 2, 3), (1, 2, 1), 1, 1),     # 3-D: H in blocks, a 2-D conv remains
])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_toeplitz_lowering_matches_plain_path_and_torch(xs, ws, stride, padding, dilation, dtype,
                                                         rng, monkeypatch):
    from cnnlab.functional.kernels import use_route
    x, w, b = (rng.standard_normal(s).astype(dtype) for s in (xs, ws, ws[:1]))
    nsp = len(xs) - 2
    fwd, bwd = getattr(F, f"conv{nsp}d_forward"), getattr(F, f"conv{nsp}d_backward")
    out, cache = fwd(x, w, b, stride, padding, dilation)
    dout = rng.standard_normal(out.shape).astype(dtype)
    grads = bwd(dout, cache)
    assert cache.kernel.route == "rows"  # chosen automatically
    with use_route("batch_last"):
        p_out, p_cache = fwd(x, w, b, stride, padding, dilation)
        p_grads = bwd(dout, p_cache)
    assert p_cache.kernel.route == "batch_last"
    t_out, t_grads = torch_conv(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64),
                                stride, padding, dilation, dout.astype(np.float64))
    tol = TOL if dtype == np.float64 else dict(rtol=2e-4, atol=2e-4)
    for ours, plain, theirs in zip((out,) + tuple(grads), (p_out,) + tuple(p_grads), (t_out,) + tuple(t_grads)):
        assert ours.dtype == dtype
        np.testing.assert_allclose(ours, theirs, **tol)
        np.testing.assert_allclose(ours, plain, **tol)


# Every path of the fast kernel split over several threads and cache chunks: the parts
# must add up to exactly what torch computes (races or a wrong part boundary would not).
@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("xs, ws, stride, padding", [
    ((7, 20, 9, 9), (4, 20, 3, 3), 2, 1),     # channels-last, strided: channels-last scatter
    ((5, 16, 9, 9), (4, 16, 3, 3), 1, 1),     # channels-last, stride 1: dx by correlation
    ((3, 64, 5, 6), (64, 64, 3, 3), 1, 1),    # stride 1, 64+ channels: channels-last scatter
    ((6, 12, 9, 9), (5, 12, 3, 3), 1, 0),     # channels-last, 12-15 channels: batch-last col2im
    ((6, 6, 14, 14), (16, 6, 5, 5), 1, 0),    # batch-last (LeNet's second conv)
    ((5, 3, 8, 8), (5, 3, 3, 3), 1, 1),       # batch-last (RGB-like input)
    ((4, 1, 9, 9), (3, 1, 5, 5), 2, 2),       # batch-last, strided
])
def test_threads_and_chunks_match_torch(threads, xs, ws, stride, padding, rng, monkeypatch):
    from cnnlab.functional.kernels import conv_batch_last, conv_channels_last, gemm, runtime
    monkeypatch.setattr(conv_channels_last, "CHUNK_BYTES", 3000)  # several chunks per part
    monkeypatch.setattr(runtime, "GRAIN_SCALE", 0)  # split even these tiny inputs
    monkeypatch.setattr(gemm, "GEMM_BLOCK", 7)  # several GEMM blocks per part
    monkeypatch.setattr(conv_batch_last, "CHUNK_BYTES", 3000)  # batch-last: several row chunks
    if threads > 1:  # batch-last columns rebuilt in the backward pass instead of kept
        monkeypatch.setattr(conv_batch_last, "KEEP_BYTES", 0)
    before = runtime.get_num_threads()
    runtime.set_num_threads(threads)
    try:
        x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
        out, cache = F.conv2d_forward(x, w, b, stride, padding)
        dout = rng.standard_normal(out.shape)
        grads = F.conv2d_backward(dout, cache)
        t_out, t_grads = torch_autograd(
            lambda a, k, c: torch.nn.functional.conv2d(a, k, c, stride, padding), (x, w, b), dout)
        np.testing.assert_allclose(out, t_out, **TOL)
        for g, tg in zip(grads, t_grads):
            np.testing.assert_allclose(g, tg, **TOL)
        # pooling splits its images (channels when batch-last) over the same threads
        batch_last = np.moveaxis(np.ascontiguousarray(np.moveaxis(x, 0, -1)), -1, 0)
        for xx in (x, batch_last):
            p_out, p_cache = F.maxpool2d_forward(xx, 2, 2, 1)
            tp_out, (tp_dx,) = torch_autograd(lambda a: torch.nn.functional.max_pool2d(a, 2, 2, 1),
                                              (x,), np.ones_like(p_out))
            np.testing.assert_allclose(p_out, tp_out, **TOL)
            np.testing.assert_allclose(F.maxpool2d_backward(np.ones_like(p_out), p_cache), tp_dx, **TOL)
    finally:
        runtime.set_num_threads(before)
