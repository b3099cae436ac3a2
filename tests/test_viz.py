"""cnnlab.viz: properties of the arrays each tool returns, and valid PNG/GIF files.

One LeNet-5 is trained briefly on the bundled MNIST subset (module fixture, a few
seconds) for the tools that need a trained net.
"""
import numpy as np
import pytest
from PIL import Image

import cnnlab as cl
import cnnlab.viz as V
from cnnlab import layers as L
from cnnlab.data import load_mnist
from cnnlab.functional import conv_output_size
from cnnlab.models import lenet5


@pytest.fixture(scope="module")
def net():
    x, y = load_mnist(split="train", limit=3000)
    model = lenet5(seed=0)
    model.fit(x, y, epochs=1, batch_size=32, verbose=0, seed=0)
    return model


@pytest.fixture(scope="module")
def digits():
    return load_mnist(split="test", limit=40)


def _png(path):
    with Image.open(path) as im:
        assert im.format == "PNG"
        im.load()
        return im.size


# ---------------------------------------------------------------------- cat and sizes
def test_cat_experiments_sizes_follow_the_formula(tmp_path):
    img = V.sample_image("chelsea", size=(60, 80))
    stages = V.cat_experiments(img, seed=1)
    keys = [s["key"] for s in stages]
    assert keys == ["original", "conv3", "conv10", "conv15", "relu", "pool2", "pool5",
                    "lenet11", "lenet31", "lenet33"]
    for s in stages:
        assert tuple(s["maps"].shape[1:]) == tuple(s["expected_hw"]), s["key"]
        assert s["display"].min() >= 0 and s["display"].max() <= 1
    by = {s["key"]: s for s in stages}
    assert by["conv10"]["maps"].shape[1:] == (conv_output_size(60, 10), conv_output_size(80, 10))
    assert by["pool5"]["maps"].shape[1:] == (conv_output_size(58, 5, stride=5),
                                           conv_output_size(78, 5, stride=5))
    assert by["conv3"]["maps"].shape[0] == 3 and by["lenet31"]["maps"].shape[0] == 1
    assert (by["relu"]["maps"] >= 0).all() and (by["conv3"]["maps"] < 0).any()
    assert "58x78x3" in by["conv3"]["label"]
    V.plot_cat_experiments(stages, tmp_path / "cat.png")
    assert _png(tmp_path / "cat.png")[0] > 500


# ---------------------------------------------------------------------- classic filters
def test_vertical_edge_filter_prefers_vertical_structure(tmp_path):
    stripes = np.zeros((32, 32))
    stripes[:, 8:16] = 1.0                     # two vertical edges
    r = V.apply_classic_filters(stripes)
    assert np.abs(r["vertical edge"]).sum() > 10 * np.abs(r["horizontal edge"]).sum() + 1
    assert np.abs(r["Sobel x"]).sum() > 10 * np.abs(r["Sobel y"]).sum() + 1
    r = V.apply_classic_filters(stripes.T)     # the same rotated: horizontal edges
    assert np.abs(r["horizontal edge"]).sum() > 10 * np.abs(r["vertical edge"]).sum() + 1
    cam = V.apply_classic_filters()            # the bundled cameraman
    assert cam["vertical edge"].shape == (254, 254)
    assert np.allclose(cam["mean 3x3"].mean(), cam["input"][1:-1, 1:-1].mean(), atol=0.01)
    V.plot_classic_filters(cam, tmp_path / "classic.png")
    _png(tmp_path / "classic.png")


def test_one_d_filters():
    res = V.filter_signal_1d(np.array([0, 0, 0, 1, 2, 3, 3, 3], dtype=float))
    np.testing.assert_allclose(res["smooth"], [0, 1 / 3, 1, 2, 8 / 3, 3])
    np.testing.assert_allclose(res["second_diff"], [0, 1, 0, 0, -1, 0])


# ---------------------------------------------------------------------- feature maps, filters
def test_feature_maps_and_filters(net, digits, tmp_path):
    x = digits[0][0]
    maps = V.feature_maps(net, x, "conv2d_1")
    assert maps.shape == (16, 10, 10)
    np.testing.assert_allclose(V.feature_maps(net, x, -1), net.forward(x[None])[0], rtol=1e-5)
    with pytest.raises(KeyError, match="conv2d_1"):
        V.feature_maps(net, x, "nope")
    assert V.layer_filters(net, "conv2d").shape == (6, 1, 5, 5)
    with pytest.raises(ValueError, match="not a built convolution"):
        V.layer_filters(net, "relu")
    V.plot_feature_maps(maps, tmp_path / "maps.png")
    V.plot_filters(V.layer_filters(net, "conv2d_1"), tmp_path / "filters.png")
    V.plot_layer_overview(net, x, tmp_path / "overview.png")
    for f in ("maps.png", "filters.png", "overview.png"):
        _png(tmp_path / f)


# ---------------------------------------------------------------------- maximization
def test_activation_maximization_raises_the_target_tenfold(net, tmp_path):
    results = V.maximize_units(net, "relu_1", range(6), steps=60, seed=0)
    alive = [r for r in results if r["start_value"] > 0]
    assert alive, "some filter of relu_1 should respond to the grey start image"
    for r in alive:
        assert r["value"] >= 10 * r["start_value"], (r["index"], r["start_value"], r["value"])
    for r in results:
        assert np.isfinite(r["image"]).all() and r["image"].shape == (1, 28, 28)
        assert r["image"].min() >= 0 and r["image"].max() <= 1          # clipped
    cls = V.activation_maximization(net, -1, 7, steps=60)
    assert cls["value"] > cls["start_value"] + 5
    V.plot_maximization(results, tmp_path / "max.png")
    _png(tmp_path / "max.png")


# ---------------------------------------------------------------------- saliency, Grad-CAM
def test_gradcam_and_saliency_look_at_the_digit(net, digits, tmp_path):
    x, y = digits
    ink_cam, bg_cam, ink_sal, bg_sal = [], [], [], []
    for xi, yi in zip(x[:30], y[:30]):
        ink = xi[0] > 0.3
        last = V.gradcam(net, xi, target=int(yi))          # default: last conv layer, 10x10
        assert last["layer"] == "relu_1" and last["cam"].shape == (10, 10)
        # the first conv block's 14x14 maps resolve strokes (the last layer's cells see
        # 14x14 of the 28x28 pixels: too coarse to tell ink from the blank beside it)
        cam = V.gradcam(net, xi, target=int(yi), layer="max_pool2d")
        sal = V.saliency(net, xi, target=int(yi))
        assert cam["map"].shape == (28, 28) and cam["cam"].shape == (14, 14)
        assert cam["map"].min() >= 0 and cam["map"].max() <= 1
        ink_cam.append(cam["map"][ink].mean())
        bg_cam.append(cam["map"][~ink].mean())
        ink_sal.append(sal["map"][ink].mean())
        bg_sal.append(sal["map"][~ink].mean())
    assert np.mean(ink_cam) > 2 * np.mean(bg_cam)
    assert np.mean(ink_sal) > np.mean(bg_sal)
    # saliency is the gradient of the class score: check one pixel by finite differences
    xi = x[0].astype(np.float64)
    g = V.saliency(net, xi, target=int(y[0]))["gradient"]
    i, j = np.unravel_index(np.argmax(np.abs(g[0])), g[0].shape)
    e = np.zeros_like(xi)
    e[0, i, j] = 1e-2
    fd = (V.class_scores(net, xi + e)[y[0]] - V.class_scores(net, xi - e)[y[0]]) / 2e-2
    assert fd == pytest.approx(g[0, i, j], rel=0.05, abs=1e-3)
    res = [{"saliency": V.saliency(net, x[k]), "gradcam": V.gradcam(net, x[k])} for k in range(2)]
    V.plot_attribution(x[:2], res, tmp_path / "attr.png")
    _png(tmp_path / "attr.png")


# ---------------------------------------------------------------------- DeepDream
def test_deepdream_increases_the_layer_objective(net):
    photo = V.sample_image("chelsea", size=(48, 72), mode="RGB")
    r = V.deepdream(net, photo, "relu_1", octaves=2, steps=5)
    assert r["image"].shape == photo.shape and np.isfinite(r["image"]).all()
    assert r["image"].min() >= 0 and r["image"].max() <= 1
    assert r["objective"][-1] > r["objective"][0]
    assert np.abs(r["delta"]).mean() > 1e-3


# ---------------------------------------------------------------------- FC -> conv
def test_fully_convolutional_grid_equals_sliding_windows(net, digits):
    fcn = V.to_fully_convolutional(net)
    assert not any(isinstance(layer, (L.Dense, L.Flatten)) for layer in fcn.layers)
    x28 = digits[0][:4]
    np.testing.assert_allclose(fcn.forward(x28)[:, :, 0, 0], net.forward(x28), rtol=1e-4, atol=1e-4)
    rng = np.random.default_rng(0)
    big = rng.random((2, 1, 44, 44)).astype(np.float32)
    grid = fcn.forward(big)
    assert grid.shape == (2, 10, 5, 5) and V.total_stride(net) == (4, 4)
    np.testing.assert_allclose(grid, V.sliding_window_scores(net, big), rtol=1e-4, atol=1e-4)
    # LeNet pads its first conv: zero-padded windows differ from the net's windows
    assert np.abs(grid - V.sliding_window_scores(net, big, context=False)).max() > 1e-2


def test_conversion_table_names_each_dense_and_its_conv(net, digits):
    rows = V.conversion_table(net)
    dense = [layer for layer in net.layers if isinstance(layer, L.Dense)]
    assert len(rows) == len(dense) >= 2
    first = rows[0]
    assert f"Dense w {tuple(dense[0].params['w'].shape)}" in first[0]
    assert "Conv2D" in first[1] and "w (" in first[1]
    demo = V.fc_to_conv_demo(net, np.zeros((1, 44, 44), dtype=np.float32))
    assert demo["table"] == rows and demo["scores"].shape == (10, 5, 5)
    assert demo["max_diff"] < 1e-3  # the converted net equals the sliding windows


def test_fully_convolutional_without_padding_matches_plain_crops():
    model = cl.Sequential([L.Conv2D(4, 3), L.ReLU(), L.MaxPool2D(2), L.Conv2D(5, 3, stride=2),
                           L.Flatten(), L.Dense(7, activation="relu"), L.Dropout(0.5), L.Dense(3)],
                          input_shape=(2, 14, 14), seed=3)
    fcn = model.to_fully_convolutional()              # the Model method, same function
    x = np.random.default_rng(1).standard_normal((2, 2, 30, 22)).astype(np.float32)
    grid = fcn.forward(x)
    assert grid.shape == (2, 3, 5, 3)                     # total stride 4
    np.testing.assert_allclose(grid, V.sliding_window_scores(model, x, context=False),
                               rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="already fully convolutional"):
        V.to_fully_convolutional(cl.Sequential([L.Conv2D(2, 3)], input_shape=(1, 8, 8)))


# ---------------------------------------------------------------------- arithmetic GIFs
@pytest.mark.parametrize("n,f,p,s", [(5, 3, 1, 2), (6, 3, 0, 1), (7, 2, 0, 3)])
def test_conv_steps_sizes_and_sums(n, f, p, s):
    res = V.conv_steps(size=n, kernel=f, padding=p, stride=s, seed=n)
    o = (n + 2 * p - f) // s + 1
    assert res["output"].shape == (o, o) and len(res["steps"]) == o * o
    for st in res["steps"]:
        assert st["value"] == pytest.approx(st["products"].sum())
        assert st["value"] == res["output"][st["out"]]


def test_conv_and_pool_gifs(tmp_path):
    res = V.conv_gif(tmp_path / "conv.gif", size=5, kernel=3, padding=1, stride=2)
    with Image.open(tmp_path / "conv.gif") as im:
        assert im.format == "GIF" and im.n_frames == 9 + 1
        assert im.size == (res["frames"].shape[2], res["frames"].shape[1])
    pool = V.pool_gif(tmp_path / "pool.gif", size=4, pool=2)
    np.testing.assert_array_equal(pool["output"], pool["input"].reshape(2, 2, 2, 2).max(axis=(1, 3)))
    with Image.open(tmp_path / "pool.gif") as im:
        assert im.n_frames == 4 + 1
    with pytest.raises(ValueError, match="larger than the padded input"):
        V.conv_steps(size=3, kernel=5)


# ---------------------------------------------------------------------- why convolution
def test_why_convolution_numbers(tmp_path):
    d = V.why_convolution((3, 32, 32), filters=6, kernel=5)
    assert d["output_shape"] == (6, 28, 28)
    assert d["conv_params"] == 456
    assert d["fc_weights"] == 14_450_688 and d["fc_params"] == 14_450_688 + 4704
    assert d["uses_per_weight"] == 784 and d["inputs_per_output"] == 75
    assert "456" in V.format_why_convolution(d)
    V.plot_why_convolution(d, tmp_path / "why.png")
    _png(tmp_path / "why.png")


# ---------------------------------------------------------------------- command line
def test_cli_writes_files(tmp_path, capsys):
    from cnnlab.cli.main import main

    assert main(["viz", "conv-gif", "--size", "4", "--kernel", "2", "--stride", "2",
                 "--out", str(tmp_path)]) == 0
    assert main(["viz", "why-conv", "--out", str(tmp_path)]) == 0
    assert main(["viz", "pool-gif", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "14,455,392" in out
    with Image.open(tmp_path / "conv_n4_f2_p0_s2.gif") as im:
        assert im.n_frames == 4 + 1
    _png(tmp_path / "why_conv.png")
    assert main(["viz", "conv-gif", "--size", "30", "--out", str(tmp_path)]) == 2
    assert "too large" in capsys.readouterr().err
    assert main(["viz", "filters", str(tmp_path / "missing.npz")]) == 2


def test_cli_model_commands(net, tmp_path):
    from cnnlab.cli.main import main

    path = tmp_path / "net.npz"
    net.save(path)
    assert main(["viz", "feature-maps", str(path), "mnist:0", "--layer", "conv2d",
                 "--out", str(tmp_path)]) == 0
    assert main(["viz", "gradcam", str(path), "mnist:1", "mnist:2", "--out", str(tmp_path)]) == 0
    assert main(["viz", "maximize", str(path), "--layer", "relu", "--index", "0", "1",
                 "--steps", "20", "--out", str(tmp_path)]) == 0
    for f in ("feature_maps_conv2d.png", "gradcam.png", "maximize_relu.png"):
        _png(tmp_path / f)
