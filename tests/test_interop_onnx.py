"""cnnlab.interop ONNX export and import, checked against onnxruntime (the reference
runtime): every zoo model and every layer type out, and back in after a round trip.

onnx and onnxruntime are imported at module level: a missing one is a collection error,
never a silent skip (CI installs them with the test extra).
"""
import numpy as np
import onnx
import onnxruntime as ort
import pytest

import cnnlab as cl
import cnnlab.layers as L
import cnnlab.models as zoo
from cnnlab.functional import softmax
from cnnlab.interop import from_onnx, to_onnx

# small inputs keep the big zoo nets fast; each builder accepts them
ZOO = {
    "lenet5": {}, "three_layer_convnet": {}, "cifar_convnet": {}, "cifar_resnet": {},
    "cifar_airbench": {"widths": (8, 16, 16)},
    "alexnet": {"input_shape": (3, 64, 64), "num_classes": 10},
    "zfnet": {"input_shape": (3, 64, 64), "num_classes": 10},
    "vgg11": {"input_shape": (3, 32, 32), "num_classes": 10},
    "vgg13": {"input_shape": (3, 32, 32), "num_classes": 10},
    "vgg16": {"input_shape": (3, 32, 32), "num_classes": 10},
    "vgg19": {"input_shape": (3, 32, 32), "num_classes": 10},
    "googlenet": {"input_shape": (3, 64, 64), "num_classes": 10},
}


def rel_err(a, b):
    return float(np.abs(np.asarray(a, np.float64) - b).max() / np.abs(b).max())


def ort_run(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def randomize_bn(model, rng):
    """Non-trivial batch-norm statistics, so that the inference form is really tested."""
    for _, layer, key in model.named_parameters():
        if key in ("gamma", "beta"):
            layer.params[key][...] = rng.uniform(0.5, 1.5, layer.params[key].shape)
    for _, layer in _all_layers(model):
        if isinstance(layer, L.BatchNorm):
            layer.state["running_mean"][...] = rng.uniform(-0.5, 0.5, layer.state["running_mean"].shape)
            layer.state["running_var"][...] = rng.uniform(0.5, 2.0, layer.state["running_var"].shape)


def _all_layers(layer, prefix=""):
    yield prefix + layer.name, layer
    for child in getattr(layer, "layers", []):
        yield from _all_layers(child, prefix + layer.name + "/")


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_model_exports_imports_and_matches_onnxruntime(name, tmp_path):
    rng = np.random.default_rng(0)
    model = zoo.get(name, seed=0, **ZOO[name])
    randomize_bn(model, rng)
    path = to_onnx(model, tmp_path / f"{name}.onnx")  # runs onnx.checker (full check)
    proto = onnx.load(path, load_external_data=False)
    assert proto.opset_import[0].version == 17
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = rng.standard_normal((3,) + tuple(model.input_shape)).astype(np.float32)
    scores = sess.run(None, {"input": x})[0]
    assert scores.shape == (3,) + tuple(model.output_shape)
    probs = model.predict(x)
    assert rel_err(softmax(scores, axis=1), probs) < 1e-5
    # the dynamic batch axis: one sample through the same session
    assert rel_err(sess.run(None, {"input": x[:1]})[0], scores[:1]) < 1e-5
    # round trip: the imported cnnlab model computes what onnxruntime computes
    back = from_onnx(path)
    assert isinstance(back, cl.Sequential)
    # the same scalars (PatchWhitening's fitted filters come back as a plain Conv's weights)
    assert back.count_params() + back.count_state() == model.count_params() + model.count_state()
    assert rel_err(back.forward(x), scores) < 1e-5


def every_layer_models(dtype=np.float32):
    """Models using every layer (and option) cnnlab has, 1-D, 2-D and 3-D."""
    return [
        cl.Sequential([L.Conv1D(4, 3, padding=((1, 2),), dilation=2, activation="tanh"),
                       L.AvgPool1D(2, padding=1), L.MaxPool1D(3, stride=1, padding=1),
                       L.BatchNorm(), L.Conv1D(3, 2, stride=2, use_bias=False,
                                               activation="sigmoid"),
                       L.GlobalAvgPool1D(), L.Dense(5, activation="leaky_relu"),
                       L.LeakyReLU(0.2), L.Sigmoid(), L.Dropout(0.3), L.Tanh(),
                       L.Dense(3, activation="softmax")], input_shape=(2, 17), seed=0, dtype=dtype),
        cl.Sequential([L.Conv2D(6, (3, 5), stride=(2, 1), padding=((0, 1), (2, 2)),
                                dilation=(1, 2), activation="relu"),
                       L.Concat([[L.Conv2D(2, 1)], [L.MaxPool2D(3, 1, padding=1)],
                                 [L.AvgPool2D(3, 1, padding=1), L.Conv2D(3, 3, padding="same")]]),
                       L.Residual([L.Conv2D(11, 3, padding=1), L.BatchNorm(), L.ReLU()]),
                       L.Residual([L.Conv2D(8, 3, stride=2, padding=1)],
                                  shortcut=[L.Conv2D(8, 1, stride=2), L.BatchNorm()]),
                       L.MaxPool2D(2), L.Flatten(), L.Dense(7), L.BatchNorm(), L.ReLU(),
                       L.Dense(4), L.Softmax()], input_shape=(3, 13, 12), seed=1, dtype=dtype),
        cl.Sequential([L.Conv3D(4, 3, stride=2, padding=((0, 1), (1, 0), (1, 1))),
                       L.AvgPool3D(2), L.MaxPool3D(2, stride=1), L.BatchNorm(),
                       L.GlobalAvgPool3D(), L.Softmax()], input_shape=(2, 9, 10, 11), seed=2, dtype=dtype),
    ]


@pytest.mark.parametrize("index", range(3))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_layer_out_and_back(index, dtype, tmp_path):
    rng = np.random.default_rng(index)
    model = every_layer_models(dtype)[index]
    assert model.dtype == dtype
    randomize_bn(model, rng)
    path = to_onnx(model, tmp_path / "m.onnx")
    x = rng.standard_normal((4,) + tuple(model.input_shape))
    want = model.forward(x.astype(dtype))
    got = ort_run(path, x.astype(np.float32))
    # a float64 model is written in float32: its error is float32 rounding
    assert rel_err(got, want) < 1e-5
    back = from_onnx(path, dtype=dtype)
    assert back.dtype == dtype
    assert rel_err(back.forward(x.astype(dtype)), got) < 1e-5
    # containers come back as containers (fused activations as layers of their own)
    def blocks(m):
        return [type(c).__name__ for c in m.layers if isinstance(c, (L.Concat, L.Residual))]
    assert blocks(back) == blocks(model)
    assert back.count_params() == model.count_params()


def test_round_tripped_model_trains_saves_and_loads(tmp_path):
    rng = np.random.default_rng(3)
    path = to_onnx(zoo.cifar_resnet(seed=0, widths=(4, 8, 8, 8)), tmp_path / "r.onnx")
    net = from_onnx(path)
    assert any(isinstance(c, L.Residual) for c in net.layers)
    x = rng.random((16, 3, 32, 32), dtype=np.float32)
    y = rng.integers(0, 10, 16)
    before = net.evaluate(x, y)["loss"]
    net.fit(x, y, epochs=3, batch_size=16, verbose=0, seed=0,
            optimizer=cl.optim.SGD(lr=0.05, momentum=0.9))
    assert net.evaluate(x, y)["loss"] < before
    net.save(tmp_path / "r.npz")
    again = cl.load_model(tmp_path / "r.npz")
    np.testing.assert_array_equal(again.predict(x), net.predict(x))


def test_probabilities_output_is_model_predict(tmp_path):
    x = np.random.default_rng(6).standard_normal((3, 1, 28, 28)).astype(np.float32)
    for model in (zoo.lenet5(seed=0),
                  cl.Sequential([L.Flatten(), L.Dense(4, activation="softmax")],
                                input_shape=(1, 28, 28), seed=0)):
        path = to_onnx(model, tmp_path / "p.onnx", probabilities=True)
        ops = [n.op_type for n in onnx.load(path).graph.node]
        assert ops.count("Softmax") == 1  # never a second softmax on probabilities
        assert rel_err(ort_run(path, x), model.predict(x)) < 1e-5


def test_export_needs_a_built_model_and_a_known_opset(tmp_path):
    from cnnlab.interop import OnnxExportError
    with pytest.raises(OnnxExportError, match="not built"):
        to_onnx(zoo.lenet5(build=False), tmp_path / "a.onnx")
    with pytest.raises(ValueError, match="opset"):
        to_onnx(zoo.lenet5(seed=0), tmp_path / "a.onnx", opset=5)
    assert not (tmp_path / "a.onnx").exists()
    # other opsets from 13 on work too
    model = zoo.lenet5(seed=0)
    x = np.random.default_rng(0).random((2, 1, 28, 28), dtype=np.float32)
    for opset in (13, 19):
        p = to_onnx(model, tmp_path / f"o{opset}.onnx", opset=opset)
        assert rel_err(ort_run(p, x), model.forward(x)) < 1e-5


@pytest.mark.parametrize("scale,offset", [(1.0, -0.5), (0.25, 0.0), (2.0, 3.0)])
def test_rescaling_out_and_back(scale, offset, tmp_path):
    model = cl.Sequential([L.Rescaling(scale=scale, offset=offset), L.Conv2D(2, 3), L.Flatten(),
                           L.Dense(3)], input_shape=(1, 5, 5), seed=0)
    x = np.random.default_rng(0).standard_normal((2, 1, 5, 5)).astype(np.float32)
    path = to_onnx(model, tmp_path / "r.onnx")
    got = ort_run(path, x)
    assert rel_err(got, model.forward(x)) < 1e-5
    back = from_onnx(path)
    first = back.layers[0]
    assert isinstance(first, L.Rescaling) and (first.scale, first.offset) == (scale, offset)
    assert rel_err(back.forward(x), got) < 1e-5
