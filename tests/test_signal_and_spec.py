"""The worked examples of SPEC section 1, exactly, through the fast and the reference ops;
the output-size arithmetic; 1-D/2-D correlate/convolve against numpy and torch."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import cnnlab
import cnnlab.functional as F
from cnnlab.reference import conv_output_size as ref_conv_output_size

VERTICAL = np.array([[1, 0, -1], [1, 0, -1], [1, 0, -1]], dtype=np.float64)


def conv2d_single(impl, x, w, **kw):
    """One image, one filter, through the layer op: (H, W) x (kh, kw) -> (H', W')."""
    out, _ = impl.conv2d_forward(np.asarray(x, float)[None, None], np.asarray(w, float)[None, None], **kw)
    return out[0, 0]


def edge_image(bright_left=True):
    x = np.zeros((6, 6))
    x[:, :3] = 10
    return x if bright_left else 10 - x


def test_vertical_edge_detector(impl):
    out = conv2d_single(impl, edge_image(), VERTICAL)
    np.testing.assert_array_equal(out, np.tile([0, 30, 30, 0], (4, 1)))
    np.testing.assert_array_equal(impl.correlate2d(edge_image(), VERTICAL), out)


def test_swapped_edge_gives_minus_30(impl):
    np.testing.assert_array_equal(conv2d_single(impl, edge_image(False), VERTICAL),
                                  np.tile([0, -30, -30, 0], (4, 1)))


def test_horizontal_edge_filter_is_the_transpose(impl):
    x = edge_image().T  # bright top half
    np.testing.assert_array_equal(conv2d_single(impl, x, VERTICAL.T), np.tile([0, 30, 30, 0], (4, 1)).T)
    np.testing.assert_array_equal(conv2d_single(impl, x, VERTICAL), np.zeros((4, 4)))  # blind to it


@pytest.mark.parametrize("kernel, expected", [
    ([[1, 0, -1], [2, 0, -2], [1, 0, -1]], [0, 40, 40, 0]),            # Sobel: 10 * (1 + 2 + 1)
    ([[3, 0, -3], [10, 0, -10], [3, 0, -3]], [0, 160, 160, 0]),        # Scharr: 10 * 16
    ([[0, 1, 0], [1, -4, 1], [0, 1, 0]], [0, -10, 10, 0]),             # Laplacian: 2nd difference
    (np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16, [10, 7.5, 2.5, 0]),  # Gaussian blur
    (np.ones((3, 3)) / 9, [10, 20 / 3, 10 / 3, 0]),                    # mean filter
])
def test_named_filters_on_the_edge_image(impl, kernel, expected):
    out = conv2d_single(impl, edge_image(), kernel)
    np.testing.assert_allclose(out, np.tile(expected, (4, 1)), rtol=1e-12, atol=1e-12)


X5 = [[1, 1, 1, 1, 1], [-1, 0, -3, 0, 1], [2, 1, 1, -1, 0], [0, -1, 1, 2, 1], [1, 2, 1, 1, 1]]
W3 = [[1, 0, 0], [0, 0, 0], [0, 0, -1]]


def test_true_convolution_5x5_example(impl):
    expected = [[0, -2, -1], [2, 2, 4], [-1, 0, 0]]
    np.testing.assert_array_equal(impl.convolve2d(np.array(X5, float), np.array(W3, float)), expected)
    # Y = rot180(W) * X: the layer op with the flipped filter gives the same
    np.testing.assert_array_equal(conv2d_single(impl, X5, np.rot90(W3, 2)), expected)


A = [[2, 10, 8], [5, 15, 20], [6, 11, 9]]
K = [[1, 8], [-5, 6]]


def test_a_k_example(impl):
    a, k = np.array(A, float), np.array(K, float)
    np.testing.assert_array_equal(impl.correlate2d(a, k), [[147, 119], [161, 174]])
    np.testing.assert_array_equal(impl.convolve2d(a, k), [[17, 160], [14, 87]])
    np.testing.assert_array_equal(conv2d_single(impl, a, k), [[147, 119], [161, 174]])


def test_binary_image_example(impl):
    x = [[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]]
    w = [[1, 0, 1], [0, 1, 0], [1, 0, 1]]
    np.testing.assert_array_equal(conv2d_single(impl, x, w), [[4, 3, 4], [2, 4, 3], [2, 3, 4]])
    np.testing.assert_array_equal(impl.correlate2d(np.array(x), np.array(w)), [[4, 3, 4], [2, 4, 3], [2, 3, 4]])


def test_max_pool_example(impl):
    x = np.array([[1, 1, 2, 0], [0, 1, 1, 2], [0, 0, 1, 3], [0, 0, 1, 1]], float)[None, None]
    out, _ = impl.maxpool2d_forward(x, 2, 2)
    np.testing.assert_array_equal(out[0, 0], [[1, 2], [0, 3]])


@pytest.mark.parametrize("size_fn", [cnnlab.conv_output_size, F.conv_output_size, ref_conv_output_size])
def test_output_sizes(size_fn):
    assert [size_fn(7, 3, stride=s) for s in (1, 2, 3)] == [5, 3, 2]  # 2.33 floors to 2
    assert size_fn(32, 5, padding=2) == 32
    assert size_fn(7, 3, padding="valid") == 5
    assert size_fn(7, 3, padding="same") == 7
    assert size_fn(7, 4, padding="same") == 7  # even kernel: the odd cell on one side
    assert size_fn(7, 3, padding="full") == 9  # M + F - 1
    assert size_fn(10, 3, padding=(0, 2), stride=2) == 5
    assert size_fn(9, 3, dilation=2) == 5  # effective kernel 5
    assert size_fn(9, 3, padding="same", dilation=2) == 9
    assert size_fn(6, 3, padding="full", dilation=2) == 10


def test_32x32x3_ten_5x5_filters_pad_2_gives_32x32x10(impl, rng):
    x = rng.standard_normal((1, 3, 32, 32)).astype(np.float32)
    w = rng.standard_normal((10, 3, 5, 5)).astype(np.float32)
    if impl is not F:
        x = x[:, :, :12, :12]  # the reference loops: same rule on a smaller map
    out, _ = impl.conv2d_forward(x, w, np.zeros(10, np.float32), stride=1, padding=2)
    assert out.shape == (1, 10) + x.shape[2:]


def test_padding_names_give_the_course_sizes(impl, rng):
    x, w = rng.standard_normal((1, 1, 9)), rng.standard_normal((1, 1, 4))
    sizes = {p: impl.conv1d_forward(x, w, padding=p)[0].shape[-1] for p in ("valid", "same", "full")}
    assert sizes == {"valid": 6, "same": 9, "full": 12}  # narrow, equal-width, wide


def test_1d_moving_average_smooths(impl):
    u = np.arange(40)
    x = 5 + np.cos(np.pi * u)  # a constant plus the highest frequency (+1, -1, +1, ...)
    y = impl.correlate1d(x, np.full(3, 1 / 3))
    # the constant passes unchanged; the alternation, (-c + c - c) / 3 at a cell holding c,
    # shrinks to a third of its amplitude
    np.testing.assert_allclose(y, 5 - np.cos(np.pi * u[1:-1]) / 3, rtol=1e-12)


def test_1d_second_difference(impl, rng):
    x = rng.standard_normal(12)
    y = impl.correlate1d(x, np.array([1.0, -2.0, 1.0]))
    np.testing.assert_allclose(y, x[2:] + x[:-2] - 2 * x[1:-1], rtol=1e-12, atol=1e-12)  # y(u+1)+y(u-1)-2y(u)
    u = np.arange(10.0)
    np.testing.assert_allclose(impl.correlate1d(u ** 2, [1.0, -2.0, 1.0]), np.full(8, 2.0))  # (u^2)'' = 2
    np.testing.assert_allclose(impl.correlate1d(3 * u + 1, [1.0, -2.0, 1.0]), np.zeros(8), atol=1e-12)
    # a low frequency barely moves, the highest frequency is amplified four times
    np.testing.assert_allclose(impl.correlate1d(np.cos(np.pi * u), [1.0, -2.0, 1.0]), -4 * np.cos(np.pi * u[1:-1]))


@pytest.mark.parametrize("mode", ["valid", "same", "full"])
@pytest.mark.parametrize("m, f", [(7, 1), (7, 2), (7, 3), (8, 4), (8, 5), (6, 6), (9, 8)])
def test_1d_correlate_and_convolve_match_numpy(impl, mode, m, f, rng):
    x, w = rng.standard_normal(m), rng.standard_normal(f)
    np.testing.assert_allclose(impl.correlate1d(x, w, mode), np.correlate(x, w, mode), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(impl.convolve1d(x, w, mode), np.convolve(x, w, mode), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ["valid", "same", "full"])
@pytest.mark.parametrize("xs, ws", [((6, 7), (3, 3)), ((5, 8), (2, 4)), ((4, 4), (4, 1))])
def test_2d_correlate_and_convolve_match_torch(impl, mode, xs, ws, rng):
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    full = TF.conv2d(torch.tensor(x)[None, None], torch.tensor(w)[None, None],
                     padding=(ws[0] - 1, ws[1] - 1))[0, 0].numpy()
    start = {"valid": [f - 1 for f in ws], "same": [(f - 1) // 2 for f in ws], "full": [0, 0]}[mode]
    size = {"valid": [m - f + 1 for m, f in zip(xs, ws)], "same": list(xs), "full": list(full.shape)}[mode]
    expected = full[start[0]:start[0] + size[0], start[1]:start[1] + size[1]]
    np.testing.assert_allclose(impl.correlate2d(x, w, mode), expected, rtol=1e-12, atol=1e-12)
    # true convolution = correlation with the kernel rotated by 180 degrees
    np.testing.assert_allclose(impl.convolve2d(x, w[::-1, ::-1], mode), expected, rtol=1e-12, atol=1e-12)


def test_same_mode_2d_is_centred_like_numpy_per_row(impl, rng):
    """A (1, F) kernel makes 2-D 'same' a row-by-row 1-D 'same': compare with np.convolve."""
    x, w = rng.standard_normal((3, 9)), rng.standard_normal((1, 4))
    expected = np.stack([np.convolve(row, w[0], "same") for row in x])
    np.testing.assert_allclose(impl.convolve2d(x, w, "same"), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("op", ["correlate1d", "convolve1d"])
def test_signal_float32_stays_float32(impl, op):
    assert getattr(impl, op)(np.ones(6, np.float32), np.ones(3, np.float32), "same").dtype == np.float32
    assert getattr(impl, op.replace("1d", "2d"))(np.ones((4, 4), np.float32), np.ones((2, 2), np.float32)).dtype \
        == np.float32
