"""cnnlab.layers, one layer at a time: input and parameter gradients against centred
differences in float64, initialization, train/test behaviour, inference without cache,
argument and input-shape errors."""
import numpy as np
import pytest

import cnnlab.layers as L

TOL = 1e-7


def numerical_grad(f, x, dout, h=1e-5):
    """d sum(f(x) * dout) / dx by centred differences; x is nudged in place and restored."""
    grad = np.zeros_like(x)
    for i in np.ndindex(*x.shape):
        old = x[i]
        x[i] = old + h
        pos = np.array(f(), copy=True)
        x[i] = old - h
        neg = np.array(f(), copy=True)
        x[i] = old
        grad[i] = np.sum((pos - neg) * dout) / (2 * h)
    return grad


def rel_error(a, b):
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))


def check_gradients(layer, input_shape, training=True, batch=2, seed=0, before=None, x=None):
    """Build ``layer`` in float64, run forward/backward, compare dx and every grad with
    centred differences. ``before()`` runs before each forward (e.g. reseeding dropout)."""
    rng = np.random.default_rng(seed)
    layer.build(input_shape, rng, np.float64)
    if x is None:
        x = rng.standard_normal((batch,) + tuple(input_shape))
    before = before or (lambda: None)

    def f():
        before()
        return layer.forward(x, training=training, cache=False)

    before()
    out = layer.forward(x, training=training, cache=True)
    assert out.dtype == np.float64
    assert out.shape == (batch,) + layer.compute_output_shape(input_shape)
    dout = rng.standard_normal(out.shape)
    dx = layer.backward(dout)
    assert dx.shape == x.shape
    assert rel_error(dx, numerical_grad(f, x, dout)) < TOL
    for key, p in layer.params.items():
        g = layer.grads[key]
        assert g.shape == p.shape and g.dtype == p.dtype
        assert rel_error(g, numerical_grad(f, p, dout)) < TOL, key
    return out, dx


GRAD_CASES = {
    "conv1d_stride_pad": (lambda: L.Conv1D(3, 3, stride=2, padding=1), (2, 9)),
    "conv1d_full": (lambda: L.Conv1D(2, 4, padding="full"), (2, 5)),
    "conv2d_same_dilated_tanh": (lambda: L.Conv2D(3, 3, padding="same", dilation=2,
                                                  activation="tanh"), (2, 6, 6)),
    "conv2d_stride2_nobias": (lambda: L.Conv2D(4, (3, 2), stride=(2, 1), use_bias=False), (3, 7, 6)),
    "conv2d_valid_sigmoid": (lambda: L.Conv2D(2, 2, padding="valid", activation="sigmoid"), (2, 4, 5)),
    "conv2d_pairs_pad": (lambda: L.Conv2D(2, 3, padding=((1, 0), (0, 2))), (2, 4, 4)),
    "conv3d": (lambda: L.Conv3D(2, 2, padding=1, stride=2), (2, 3, 4, 3)),
    "maxpool1d": (lambda: L.MaxPool1D(3, stride=2, padding=1), (2, 9)),
    "maxpool2d": (lambda: L.MaxPool2D(2), (3, 6, 6)),
    "maxpool2d_overlap": (lambda: L.MaxPool2D(3, stride=2), (2, 7, 7)),
    "maxpool3d": (lambda: L.MaxPool3D(2, padding=1), (2, 3, 4, 3)),
    "avgpool1d": (lambda: L.AvgPool1D(2), (2, 8)),
    "avgpool2d_pad": (lambda: L.AvgPool2D(3, stride=2, padding=1), (2, 6, 5)),
    "avgpool3d": (lambda: L.AvgPool3D((1, 2, 2)), (2, 2, 4, 4)),
    "gap1d": (lambda: L.GlobalAvgPool1D(), (3, 5)),
    "gap2d": (lambda: L.GlobalAvgPool2D(), (3, 4, 5)),
    "gap3d": (lambda: L.GlobalAvgPool3D(), (2, 2, 3, 3)),
    "relu": (lambda: L.ReLU(), (3, 4, 4)),
    "leaky_relu": (lambda: L.LeakyReLU(0.1), (3, 4, 4)),
    "sigmoid": (lambda: L.Sigmoid(), (7,)),
    "tanh": (lambda: L.Tanh(), (2, 5)),
    "softmax": (lambda: L.Softmax(), (6,)),
    "softmax_channels": (lambda: L.Softmax(), (4, 2, 3)),
    "flatten": (lambda: L.Flatten(), (2, 3, 4)),
    "dense": (lambda: L.Dense(5), (7,)),
    "dense_flattens_tanh": (lambda: L.Dense(4, activation="tanh"), (2, 3, 3)),
    "dense_softmax_nobias": (lambda: L.Dense(5, use_bias=False, activation="softmax"), (6,)),
    "dense_leaky": (lambda: L.Dense(6, activation="leaky_relu"), (4,)),
    "batchnorm_1d": (lambda: L.BatchNorm(), (5,)),
    "batchnorm_spatial": (lambda: L.BatchNorm(momentum=0.8, eps=1e-3), (3, 4, 4)),
    "batchnorm_1d_spatial": (lambda: L.BatchNorm(), (3, 6)),
}


@pytest.mark.parametrize("case", list(GRAD_CASES))
def test_gradients_train_mode(case):
    make, shape = GRAD_CASES[case]
    batch = 4 if "batchnorm" in case else 2
    check_gradients(make(), shape, training=True, batch=batch)


@pytest.mark.parametrize("case", ["batchnorm_1d", "batchnorm_spatial", "conv2d_stride2_nobias",
                                  "maxpool2d", "dense_flattens_tanh"])
def test_gradients_inference_behaviour_with_cache(case):
    """forward(x, training=False, cache=True) then backward: what saliency maps use."""
    make, shape = GRAD_CASES[case]
    layer = make()
    if isinstance(layer, L.BatchNorm):  # non-trivial running statistics
        rng = np.random.default_rng(1)
        layer.build(shape, rng, np.float64)
        layer.state["running_mean"][...] = rng.standard_normal(shape[0])
        layer.state["running_var"][...] = rng.uniform(0.5, 2.0, shape[0])
        layer.params["gamma"][...] = rng.uniform(0.5, 1.5, shape[0])
    check_gradients(layer, shape, training=False, batch=3)


def test_dropout_gradient_train_and_test():
    layer = L.Dropout(0.4, seed=3)

    def reseed():
        layer.rng = np.random.default_rng(7)

    out, dx = check_gradients(layer, (4, 5), training=True, batch=3, before=reseed)
    assert np.any(out == 0)
    out, dx = check_gradients(L.Dropout(0.4), (4, 5), training=False, batch=3)


def test_dropout_rate_is_drop_probability_and_inverted_scaling():
    layer = L.Dropout(0.25, seed=0)
    layer.build((1000,), None, np.float64)
    x = np.ones((20, 1000))
    out = layer.forward(x, training=True)
    dropped = np.mean(out == 0)
    assert abs(dropped - 0.25) < 0.01
    assert np.allclose(out[out != 0], 1 / 0.75)
    assert np.array_equal(layer.forward(x, training=False), x)


def test_dropout_seeded_from_model_rng():
    def make(seed):
        m = L.Sequential([L.Dense(50), L.Dropout(0.5)], input_shape=(10,), seed=seed)
        return m.forward(np.ones((4, 10)), training=True)

    assert np.array_equal(make(0), make(0))
    assert not np.array_equal(make(0), make(1))


def test_batchnorm_running_statistics_cs231n_convention():
    rng = np.random.default_rng(0)
    bn = L.BatchNorm(momentum=0.9)
    bn.build((3, 4, 4), rng, np.float64)
    x = rng.standard_normal((5, 3, 4, 4)) * 2 + 1
    out = bn.forward(x, training=True)
    mean = x.mean(axis=(0, 2, 3))
    var = x.var(axis=(0, 2, 3))  # biased
    np.testing.assert_allclose(bn.state["running_mean"], 0.1 * mean, rtol=1e-12)
    np.testing.assert_allclose(bn.state["running_var"], 0.9 + 0.1 * var, rtol=1e-12)
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    test = bn.forward(x, training=False)
    expect = (x - bn.state["running_mean"].reshape(1, 3, 1, 1)) / np.sqrt(
        bn.state["running_var"].reshape(1, 3, 1, 1) + 1e-5)
    np.testing.assert_allclose(test, expect, rtol=1e-12)
    assert set(bn.state) == {"running_mean", "running_var"}
    assert set(bn.params) == {"gamma", "beta"}


def test_softmax_outputs_probabilities():
    out = L.Softmax().forward(np.array([[1.0, 2.0, 3.0], [1000.0, 0.0, -1000.0]]))
    np.testing.assert_allclose(out.sum(axis=1), 1)
    np.testing.assert_allclose(out[0], np.exp([1, 2, 3]) / np.exp([1, 2, 3]).sum())


def test_he_initialization_and_shapes():
    conv = L.Conv2D(64, 3)
    conv.build((16, 8, 8), np.random.default_rng(0))
    w = conv.params["w"]
    assert w.shape == (64, 16, 3, 3) and w.dtype == np.float32
    assert abs(w.std() / np.sqrt(2 / (16 * 9)) - 1) < 0.05
    assert np.array_equal(conv.params["b"], np.zeros(64, np.float32))
    dense = L.Dense(300)
    dense.build((4, 5, 5), np.random.default_rng(0))
    assert dense.params["w"].shape == (100, 300) and dense.params["b"].shape == (300,)
    assert abs(dense.params["w"].std() / np.sqrt(2 / 100) - 1) < 0.05
    other = L.Conv2D(64, 3, kernel_initializer="glorot")
    other.build((16, 8, 8), np.random.default_rng(0))
    assert abs(other.params["w"].std() / np.sqrt(2 / (16 * 9 + 64 * 9)) - 1) < 0.05
    fixed = L.Dense(200, kernel_initializer=0.01)
    fixed.build((300,), np.random.default_rng(0))
    assert abs(fixed.params["w"].std() / 0.01 - 1) < 0.05
    # grads exist from the start, same shapes and dtypes
    assert all(conv.grads[k].shape == v.shape and conv.grads[k].dtype == v.dtype
               for k, v in conv.params.items())


def test_initialization_is_reproducible_with_a_seed():
    def weights(seed):
        m = L.Sequential([L.Conv2D(4, 3), L.Flatten(), L.Dense(3)], input_shape=(2, 5, 5), seed=seed)
        return m.get_weights()

    a, b, c = weights(0), weights(0), weights(1)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["conv2d.w"], c["conv2d.w"])


def test_dtype_and_integer_input():
    conv = L.Conv2D(2, 3)
    out = conv.forward(np.zeros((1, 1, 5, 5), np.uint8))  # lazy build, float32
    assert conv.built and out.dtype == np.float32 and conv.params["w"].dtype == np.float32
    out64 = conv.forward(np.zeros((1, 1, 5, 5)))  # float64 input is cast to the layer's dtype
    assert out64.dtype == np.float32


def test_padding_names_and_output_shapes():
    assert L.Conv2D(10, 5, padding=2).compute_output_shape((3, 32, 32)) == (10, 32, 32)
    assert L.Conv2D(10, 5, padding="same").compute_output_shape((3, 32, 32)) == (10, 32, 32)
    assert L.Conv1D(1, 3, padding="full").compute_output_shape((1, 7)) == (1, 9)
    assert L.Conv1D(1, 3, stride=3).compute_output_shape((1, 7)) == (1, 2)  # floor(4/3)+1
    assert L.MaxPool2D(3, stride=2).compute_output_shape((4, 13, 13)) == (4, 6, 6)
    assert L.GlobalAvgPool2D().compute_output_shape((1000, 7, 7)) == (1000,)
    assert L.Flatten().compute_output_shape((16, 5, 5)) == (400,)


# ------------------------------------------------------------------ inference keeps no cache
def test_inference_keeps_no_cache_and_backward_raises():
    layers = [L.Conv2D(3, 3, activation="relu"), L.BatchNorm(), L.MaxPool2D(2), L.Dropout(0.5),
              L.Flatten(), L.Dense(4), L.Softmax()]
    model = L.Sequential(layers, input_shape=(2, 8, 8), seed=0)
    x = np.random.default_rng(0).standard_normal((3, 2, 8, 8))
    out = model.forward(x, training=True)
    assert all(layer._cache is not None for layer in layers)
    model.backward(np.ones_like(out))
    assert all(layer._cache is None for layer in layers)  # backward releases the cache
    out = model.forward(x)  # inference
    assert model._cache is None and all(layer._cache is None for layer in layers)
    with pytest.raises(RuntimeError, match="forward"):
        model.backward(np.ones_like(out))
    with pytest.raises(RuntimeError, match="cache"):
        layers[0].backward(np.ones((3, 3, 6, 6)))
    model.forward(x, training=False, cache=True)
    assert all(layer._cache is not None for layer in layers)


def test_backward_checks_dout_shape():
    layer = L.Dense(3)
    layer.forward(np.ones((2, 4)), training=True)
    with pytest.raises(ValueError, match=r"dout must have the shape of the last output \(2, 3\)"):
        layer.backward(np.ones((2, 4)))


# ------------------------------------------------------------------ errors
BAD_ARGS = [
    (lambda: L.Conv2D(0, 3), ValueError, "filters"),
    (lambda: L.Conv2D(2.5, 3), TypeError, "filters"),
    (lambda: L.Conv2D(8, (3, 3, 3)), ValueError, "kernel_size"),
    (lambda: L.Conv2D(8, 0), ValueError, "kernel_size"),
    (lambda: L.Conv2D(8, 3, stride=0), ValueError, "stride"),
    (lambda: L.Conv2D(8, 3, padding="bogus"), ValueError, "padding"),
    (lambda: L.Conv2D(8, 3, padding=-1), ValueError, "padding"),
    (lambda: L.Conv2D(8, 3, stride=2, padding="same"), ValueError, "same"),
    (lambda: L.Conv2D(8, 3, activation="relux"), ValueError, "activation"),
    (lambda: L.Conv2D(8, 3, kernel_initializer="uniformish"), ValueError, "kernel_initializer"),
    (lambda: L.Conv2D(8, 3, use_bias="yes"), TypeError, "use_bias"),
    (lambda: L.Conv2D(8, 3, name="a/b"), ValueError, "name"),
    (lambda: L.Conv1D(8, 3, dilation=0), ValueError, "dilation"),
    (lambda: L.Dense(0), ValueError, "units"),
    (lambda: L.Dense(True), TypeError, "units"),
    (lambda: L.Dropout(1.0), ValueError, "rate"),
    (lambda: L.Dropout(-0.1), ValueError, "rate"),
    (lambda: L.Dropout("half"), TypeError, "rate"),
    (lambda: L.BatchNorm(momentum=1.5), ValueError, "momentum"),
    (lambda: L.BatchNorm(eps=0), ValueError, "eps"),
    (lambda: L.LeakyReLU(alpha=-1), ValueError, "alpha"),
    (lambda: L.MaxPool2D(0), ValueError, "pool_size"),
    (lambda: L.MaxPool2D(2, padding=2), ValueError, "padding"),
    (lambda: L.AvgPool3D((2, 2)), ValueError, "pool_size"),
    (lambda: L.Sequential(L.Dense(3)), TypeError, "layers"),
    (lambda: L.Sequential([L.Dense(3), "relu"]), TypeError, "children"),
    (lambda: L.Sequential([L.Dense(3)], seed=-1), ValueError, "seed"),
    (lambda: L.Sequential([L.Dense(3)], dtype=np.int32), TypeError, "dtype"),
    (lambda: L.Sequential([L.Dense(3)], input_shape=(0, 3)), ValueError, "input_shape"),
]


@pytest.mark.parametrize("make, exc, word", BAD_ARGS)
def test_bad_constructor_arguments(make, exc, word):
    with pytest.raises(exc, match=word) as info:
        make()
    assert "got" in str(info.value)


def test_error_names_class_and_value():
    with pytest.raises(ValueError, match=r"Conv2D: filters must be positive, got 0"):
        L.Conv2D(0, 3)
    with pytest.raises(ValueError, match=r"Dropout: rate must be in \[0.0, 1.0\), got 1.0"):
        L.Dropout(1.0)


def test_wrong_input_shape_at_forward():
    model = L.Sequential([L.Conv2D(4, 3), L.MaxPool2D(2), L.Flatten(), L.Dense(10)],
                         input_shape=(1, 28, 28), seed=0)
    with pytest.raises(ValueError) as info:
        model.forward(np.zeros((2, 3, 32, 32), np.float32))
    msg = str(info.value)
    assert "(1, 28, 28)" in msg and "(2, 3, 32, 32)" in msg and "channels" in msg
    with pytest.raises(ValueError, match=r"\(1, 28, 28\).*\(2, 1, 32, 32\)"):
        model.forward(np.zeros((2, 1, 32, 32), np.float32))  # the Dense cannot take it
    with pytest.raises(ValueError, match="4-D|3-D|shape"):
        model.forward(np.zeros((2, 28, 28), np.float32))
    with pytest.raises(ValueError, match="batch"):
        model.forward(np.zeros(5, np.float32))
    with pytest.raises(ValueError, match=r"Conv2D 'conv2d' expects samples of shape \(C, H, W\)"):
        L.Conv2D(4, 3).build((28, 28))
    with pytest.raises(ValueError, match="larger than the padded"):
        L.Conv2D(4, 5).build((1, 3, 3))
    with pytest.raises(TypeError, match="numbers"):
        model.forward(np.array([["a"]]))


def test_fully_convolutional_layers_accept_other_spatial_sizes():
    model = L.Sequential([L.Conv2D(4, 3, padding=1), L.BatchNorm(), L.ReLU(), L.MaxPool2D(2),
                          L.Conv2D(5, 1), L.GlobalAvgPool2D(), L.Dense(3)],
                         input_shape=(2, 8, 8), seed=0)
    assert model.forward(np.zeros((1, 2, 12, 10), np.float32)).shape == (1, 3)
    assert model.compute_output_shape((2, 16, 16)) == (3,)
    with pytest.raises(ValueError, match="channels"):
        model.forward(np.zeros((1, 3, 8, 8), np.float32))


def test_build_twice():
    layer = L.Dense(3)
    layer.build((4,), np.random.default_rng(0))
    w = layer.params["w"]
    layer.build((4,), np.random.default_rng(1))  # same shape: nothing happens
    assert layer.params["w"] is w
    with pytest.raises(ValueError, match="already built"):
        layer.build((5,))
