"""Rescaling (x * scale + offset, Keras's layer): forward and backward against PyTorch
autograd in float32 and float64, the config round trip, and its ONNX form against
onnxruntime."""
import numpy as np
import onnxruntime as ort
import pytest
import torch

import cnnlab as cl
import cnnlab.layers as L
from cnnlab.interop import to_onnx


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scale,offset", [(1.0, -0.5), (1 / 255, 0.0), (2.0, 0.25)])
def test_forward_backward_match_torch(dtype, scale, offset):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 2, 5, 4)).astype(dtype)
    dout = rng.normal(size=x.shape).astype(dtype)
    layer = L.Rescaling(scale, offset)
    layer.build(x.shape[1:], dtype=dtype)
    out = layer.forward(x, cache=True)
    dx = layer.backward(dout)
    xt = torch.from_numpy(x).requires_grad_()
    yt = xt * scale + offset
    yt.backward(torch.from_numpy(dout))
    assert out.dtype == dx.dtype == dtype
    tol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, yt.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=tol, atol=tol)
    assert not np.shares_memory(out, x)


def test_config_round_trip_and_bad_arguments():
    layer = L.deserialize(L.serialize(L.Rescaling(0.5, -1.0, name="pre")))
    assert (layer.scale, layer.offset, layer.name) == (0.5, -1.0, "pre")
    with pytest.raises(TypeError, match="offset must be a number"):
        L.Rescaling(offset="0.5")
    with pytest.raises(ValueError, match="scale must be in"):
        L.Rescaling(scale=float("nan"))


def test_onnx_export_matches_onnxruntime(tmp_path):
    model = cl.Sequential([L.Rescaling(2.0, -0.5), L.Conv2D(4, 3), L.ReLU(), L.Flatten(),
                           L.Dense(3)], input_shape=(3, 8, 8), seed=0)
    path = str(tmp_path / "r.onnx")
    to_onnx(model, path)
    x = np.random.default_rng(1).random((2, 3, 8, 8), dtype=np.float32)
    got = ort.InferenceSession(path).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, model.forward(x), rtol=1e-5, atol=1e-5)
