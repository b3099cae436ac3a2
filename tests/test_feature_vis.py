"""Feature visualization (cnnlab.viz.feature_vis): the transforms' adjoints, the
parameterization's gradient (numerically), the ascent, and the pixel-space judge."""
import numpy as np
import pytest

import cnnlab as cl
import cnnlab.layers as L
from cnnlab.viz import feature_vis as FV


def test_warp_adjoint_is_the_transpose():
    """<warp(x), g> == <x, warp^T(g)> for random images, angles, scales and shifts."""
    rng = np.random.default_rng(0)
    for _ in range(5):
        idx, wts = FV._affine_sampler(9, 7, rng.uniform(-0.5, 0.5), rng.uniform(0.8, 1.2),
                                      *rng.integers(-2, 3, size=2))
        x, g = rng.normal(size=(2, 9, 7)), rng.normal(size=(2, 9, 7))
        assert np.vdot(FV._warp(x, idx, wts), g) == pytest.approx(
            np.vdot(x, FV._warp_adjoint(g, idx, wts)), rel=1e-12)


def test_identity_transform_samples_the_image_itself():
    x = np.random.default_rng(1).normal(size=(1, 6, 5))
    np.testing.assert_allclose(FV._warp(x, *FV._affine_sampler(6, 5, 0.0, 1.0, 0, 0)), x)


def test_tv_gradient_matches_finite_differences():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(1, 5, 4))
    _, g = FV._tv(x)
    eps = 1e-6
    for i in np.ndindex(x.shape):
        d = np.zeros_like(x)
        d[i] = eps
        num = (FV._tv(x + d)[0] - FV._tv(x - d)[0]) / (2 * eps)
        assert g[i] == pytest.approx(num, abs=1e-5)


def test_ascent_raises_the_unit_and_stays_in_the_unit_interval():
    model = cl.Sequential([L.Conv2D(3, 3, padding=1), L.ReLU(), L.Flatten(), L.Dense(4)],
                          input_shape=(1, 10, 10), seed=0)
    start = model.forward(np.full((1, 1, 10, 10), 0.5, np.float32), training=False)[0, 2]
    r = FV.feature_visualization(model, -1, 2, steps=40, seed=0, tv=0, l1=0)
    assert r["image"].shape == (1, 10, 10)
    assert 0 < r["image"].min() and r["image"].max() < 1
    assert r["value"] > start + 0.5
    assert r["history"][-1] > r["history"][0]
    # reproducible with the seed
    np.testing.assert_array_equal(
        FV.feature_visualization(model, -1, 2, steps=40, seed=0, tv=0, l1=0)["image"], r["image"])
    # the L1 prior buys a darker image, the TV prior a smoother one
    inked = FV.feature_visualization(model, -1, 2, steps=40, seed=0, tv=0, l1=50)["image"]
    assert inked.mean() < r["image"].mean()
    smooth = FV.feature_visualization(model, -1, 2, steps=40, seed=0, tv=50, l1=0)["image"]
    assert FV._tv(smooth)[0] < FV._tv(r["image"])[0]


def test_nearest_neighbours_match_brute_force():
    rng = np.random.default_rng(3)
    ref, labels = rng.normal(size=(300, 4, 4)), rng.integers(0, 3, 300)
    q = rng.normal(size=(7, 4, 4))
    lab, dist, idx = FV.nearest_neighbours(q, ref, labels, k=5, chunk=64)
    d = np.sqrt(((q.reshape(7, 1, -1) - ref.reshape(1, 300, -1)) ** 2).sum(-1))
    order = np.argsort(d, axis=1)[:, :5]
    np.testing.assert_array_equal(idx, order)
    np.testing.assert_allclose(dist, np.take_along_axis(d, order, 1).mean(1))
    np.testing.assert_array_equal(lab, [np.bincount(labels[o]).argmax() for o in order])


def test_cli_class_vis_writes_the_judged_picture(tmp_path, capsys):
    from cnnlab.cli.main import main
    from cnnlab.models import lenet5

    path = tmp_path / "lenet.npz"
    lenet5(seed=0).save(path)
    assert main(["viz", "class-vis", "--model", str(path), "--steps", "2",
                 "--out", str(tmp_path)]) == 0
    assert "labelled right" in capsys.readouterr().out
    assert (tmp_path / "class_visualizations.png").stat().st_size > 1000


def test_a_unit_dead_on_the_start_image_comes_alive():
    """Behind a ReLU a unit that is zero on the start image has no gradient; the ascent
    follows its pre-activation until it turns positive (no blank pictures for live filters)."""
    model = cl.Sequential([L.Conv2D(2, 3), L.ReLU()], input_shape=(1, 8, 8), seed=0)
    conv = model.layers[0]
    conv.params["w"][...] = 0.0
    conv.params["w"][1, 0, :, 1] = 1.0   # filter 1 likes a bright vertical stroke
    conv.params["b"][...] = -0.9         # ... and is dead on a dark image
    r = FV.feature_visualization(model, 1, 1, steps=60, start=0.05, tv=0, l1=0, seed=0)
    assert r["start_value"] == 0.0 and r["value"] > 0.2
    assert r["image"].std() > 0.1


def test_write_filters_shows_deeper_layers_as_maximizations(tmp_path):
    from cnnlab.viz.gallery import write_filters

    model = cl.Sequential([L.Conv2D(4, 3, padding=1), L.ReLU(), L.Conv2D(3, 3, padding=1),
                           L.ReLU(), L.Flatten(), L.Dense(2)], input_shape=(1, 8, 8), seed=0)
    paths = write_filters(tmp_path, model, steps=5)
    assert [p.name for p in paths] == ["filters_conv2d.png", "filters_conv2d_1.png"]
    assert all(p.stat().st_size > 1000 for p in paths)
