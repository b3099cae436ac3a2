"""``cnnlab explore``'s JSON API, over real HTTP: the numbers equal the library's own
(``model.predict``, ``cnnlab.viz``), the unit arithmetic and receptive fields equal
PyTorch's, and bad input gets a clear 4xx answer. The browser test is test_explore_browser."""
import base64
import http.client
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from PIL import Image

import cnnlab as cl
import cnnlab.functional as F
from cnnlab.data import load_mnist
from cnnlab.explore import ModelLoadError, load_source, make_server
from cnnlab.explore.server import PortInUseError
from cnnlab.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU, chain
from cnnlab.viz import all_feature_maps, gradcam, saliency

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def em():
    return load_source(None)


@pytest.fixture(scope="module")
def server(em):
    srv = make_server(em, port=0, max_upload=64 * 1024)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def request(srv, method, path, body=None, headers=None):
    host, port = srv.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return r.status, r.getheader("Content-Type"), data
    finally:
        conn.close()


def post_json(srv, path, body):
    status, ctype, data = request(srv, "POST", path, body)
    assert status == 200, data[:300]
    assert ctype.startswith("application/json")
    return json.loads(data)


def arr(d):
    return np.array(d["values"], dtype=np.float64).reshape(d["shape"])


@pytest.fixture(scope="module")
def digits():
    x, y = load_mnist(None, "test", dtype=np.uint8, limit=3)
    return x, y


def png(img_u8):
    buf = io.BytesIO()
    Image.fromarray(img_u8).save(buf, "PNG")
    return buf.getvalue()


def test_model_endpoint_describes_the_layers(server, em):
    status, ctype, data = request(server, "GET", "/api/model")
    assert status == 200 and ctype.startswith("application/json")
    info = json.loads(data)
    assert set(info) >= {"name", "input_shape", "classes", "layers"}
    assert info["input_shape"] == [1, 28, 28]
    assert info["classes"] == [str(i) for i in range(10)]
    links = chain(em.model)
    assert [r["name"] for r in info["layers"]] == [q for q, _ in links]
    shape = (1, 28, 28)
    for r, (_, layer) in zip(info["layers"], links):
        shape = layer.compute_output_shape(shape)
        assert set(r) >= {"name", "class", "output_shape", "params"}
        assert r["class"] == type(layer).__name__
        assert r["output_shape"] == list(shape)
        assert r["params"] == layer.count_params()
    assert sum(r["params"] for r in info["layers"]) == 61_706
    assert info["max_upload"] == 64 * 1024


def test_forward_equals_predict_and_feature_maps(server, em, digits):
    x, y = digits
    for i in range(3):
        res = post_json(server, "/api/forward", png(x[i, 0]))
        xin = x[i].astype(np.float32) / 255.0      # a 28x28 PNG is taken as it is
        np.testing.assert_array_equal(arr(res["input"]), xin)
        probs = em.model.predict(xin[None])[0]
        np.testing.assert_allclose(res["probabilities"], probs, rtol=1e-6, atol=1e-7)
        assert res["predicted"] == int(np.argmax(probs)) == y[i]
        maps = all_feature_maps(em.model, xin)
        assert [lay["name"] for lay in res["layers"]] == [n for n, _ in maps]
        for lay, (_, a) in zip(res["layers"], maps):
            assert lay["output_shape"] == list(a.shape)
            np.testing.assert_allclose(arr(lay["output"]), a, rtol=1e-5, atol=1e-6)
            assert lay["min"] == pytest.approx(float(a.min()), abs=1e-6)
    # the page's encoding: the same numbers as float32 bytes
    res64 = post_json(server, "/api/forward?encoding=base64", png(x[0, 0]))
    res = post_json(server, "/api/forward", png(x[0, 0]))
    for l64, lay in zip(res64["layers"], res["layers"]):
        got = np.frombuffer(base64.b64decode(l64["output"]["base64"]), "<f4")
        np.testing.assert_array_equal(got.reshape(l64["output"]["shape"]),
                                      arr(lay["output"]).astype(np.float32))
    status, _, data = request(server, "POST", "/api/forward?encoding=hex", png(x[0, 0]))
    assert status == 400 and b"encoding" in data


def torch_prefix(em, upto):
    """PyTorch ops for chain(em.model)[:upto + 1] with the same weights (LeNet's layers)."""
    ops = []
    for _, layer in chain(em.model)[:upto + 1]:
        if isinstance(layer, Conv2D):
            w = torch.tensor(layer.params["w"], dtype=torch.float64)
            b = torch.tensor(layer.params["b"], dtype=torch.float64)
            p = layer.padding
            ops.append(lambda t, w=w, b=b, p=p: TF.conv2d(t, w, b, padding=p))
        elif isinstance(layer, ReLU):
            ops.append(torch.relu)
        elif isinstance(layer, MaxPool2D):
            ops.append(lambda t: TF.max_pool2d(t, 2))
        else:
            raise AssertionError(type(layer))
    return ops


def field_by_autograd(em, upto, channel, row, col):
    """The unit's receptive field as PyTorch sees it: the support of d unit / d input in
    a net of the same geometry whose convs are all-ones and pools are averages."""
    t = torch.ones((1, 1, 28, 28), dtype=torch.float64, requires_grad=True)
    a = t
    for _, layer in chain(em.model)[:upto + 1]:
        if isinstance(layer, Conv2D):
            a = TF.conv2d(a.sum(1, keepdim=True), torch.ones((1, 1, 5, 5), dtype=torch.float64),
                          padding=layer.padding)
        elif isinstance(layer, MaxPool2D):
            a = TF.avg_pool2d(a, 2)
    a[0, 0, row, col].backward()
    rows, cols = np.nonzero(t.grad[0, 0].numpy())
    return [int(rows.min()), int(cols.min()), int(rows.max()), int(cols.max())]


@pytest.mark.parametrize("name,channel,row,col", [
    ("conv2d", 2, 0, 0), ("conv2d", 5, 13, 27), ("relu", 1, 10, 12), ("max_pool2d", 4, 7, 3),
    ("conv2d_1", 7, 4, 6), ("conv2d_1", 0, 9, 0), ("max_pool2d_1", 11, 2, 4)])
def test_unit_arithmetic_equals_torch(server, em, digits, name, channel, row, col):
    x, _ = digits
    img = x[0].astype(np.float64) / 255.0
    res = post_json(server, f"/api/unit?layer={name}&channel={channel}&row={row}&col={col}",
                    png(x[0, 0]))
    i = [q for q, _ in chain(em.model)].index(name)
    t = torch.tensor(img[None])
    for op in torch_prefix(em, i):
        t = op(t)
    expected = float(t[0, channel, row, col])
    assert res["output"] == pytest.approx(expected, rel=1e-5, abs=1e-5)
    assert res["value"] == pytest.approx(expected, rel=1e-5, abs=1e-5)
    assert res["field"] == field_by_autograd(em, i, channel, row, col)
    if res["kind"] == "conv":
        win, kern, prod = arr(res["window"]), arr(res["kernel"]), arr(res["products"])
        layer = chain(em.model)[i][1]
        np.testing.assert_array_equal(kern, layer.params["w"][channel].astype(np.float64))
        np.testing.assert_allclose(prod, win * kern)
        assert res["sum"] == pytest.approx(prod.sum())
        assert res["bias"] == pytest.approx(float(layer.params["b"][channel]))
        assert res["value"] == pytest.approx(res["sum"] + res["bias"])
        # the window is the layer input read by PyTorch's unfold (zeros in the padding)
        t_in = torch.tensor(img[None])
        for op in torch_prefix(em, i - 1) if i else []:
            t_in = op(t_in)
        cols_ = TF.unfold(t_in, 5, padding=layer.padding)        # (1, C*25, L)
        wo = t.shape[-1]
        np.testing.assert_allclose(win.ravel(), cols_[0, :, row * wo + col].numpy(), atol=1e-6)
    elif res["kind"] == "pool":
        assert res["op"] == "max"
        assert arr(res["window"]).max() == pytest.approx(res["value"])


@pytest.mark.parametrize("name,unit", [("dense", 0), ("dense", 119), ("dense_1", 40),
                                       ("dense_2", 7)])
def test_dense_unit_equals_torch_linear(server, em, digits, name, unit):
    x, _ = digits
    img = torch.tensor(x[2].astype(np.float64)[None] / 255.0)
    res = post_json(server, f"/api/unit?layer={name}&channel={unit}", png(x[2, 0]))
    links = chain(em.model)
    i = [q for q, _ in links].index(name)
    t = img
    for op in torch_prefix(em, 5):                      # conv .. max_pool2d_1
        t = op(t)
    t = t.reshape(1, -1)
    for q, layer in links[7:i + 1]:                     # dense, relu, dense, ...
        if isinstance(layer, Dense):
            t_in = t
            t = TF.linear(t, torch.tensor(layer.params["w"].T, dtype=torch.float64),
                          torch.tensor(layer.params["b"], dtype=torch.float64))
        else:
            t = torch.relu(t)
    layer = links[i][1]
    np.testing.assert_allclose(arr(res["inputs"]), t_in[0].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(arr(res["weights"]),
                                  layer.params["w"][:, unit].astype(np.float64))
    np.testing.assert_allclose(arr(res["products"]), arr(res["inputs"]) * arr(res["weights"]))
    assert res["value"] == pytest.approx(float(t[0, unit]), rel=1e-5, abs=1e-5)
    assert res["output"] == pytest.approx(float(t[0, unit]), rel=1e-5, abs=1e-5)
    prods = np.abs(arr(res["products"]))
    assert prods[res["top"]].min() >= np.sort(prods)[-len(res["top"])]


def test_unit_bad_requests(server, digits):
    x, _ = digits
    body = png(x[0, 0])
    for q, words in [("layer=nope&channel=0&row=0&col=0", "no layer named"),
                     ("layer=conv2d&channel=6&row=0&col=0", "outside"),
                     ("layer=conv2d&channel=0&row=x&col=0", "integer"),
                     ("layer=flatten&channel=0&row=0&col=0", "Dense outputs only"),
                     ("layer=dense&channel=120", "outside"),
                     ("channel=0&row=0&col=0", "missing")]:
        status, ctype, data = request(server, "POST", "/api/unit?" + q, body)
        assert status == 400 and ctype.startswith("application/json"), (q, data)
        assert words in json.loads(data)["error"], (q, data)


@pytest.mark.parametrize("target", [None, 3])
def test_attribution_equals_viz(server, em, digits, target):
    x, _ = digits
    xin = x[1].astype(np.float32) / 255.0
    q = "" if target is None else f"&target={target}"
    res = post_json(server, f"/api/attribution?method=gradcam&layer=conv2d_1{q}", png(x[1, 0]))
    ref = gradcam(em.model, xin, target=target, layer="conv2d_1")
    assert res["target"] == ref["target"] and res["layer"] == "conv2d_1"
    np.testing.assert_allclose(arr(res["map"]), ref["map"], rtol=1e-6, atol=1e-9)
    res = post_json(server, f"/api/attribution?method=saliency{q}", png(x[1, 0]))
    ref = saliency(em.model, xin, target=target)
    np.testing.assert_allclose(arr(res["map"]), ref["map"], rtol=1e-6, atol=1e-9)
    status, _, data = request(server, "POST", "/api/attribution?method=lime", png(x[1, 0]))
    assert status == 400 and b"saliency" in data
    status, _, data = request(server, "POST", "/api/attribution?target=10", png(x[1, 0]))
    assert status == 400


def test_filters_are_the_weights(server, em):
    status, _, data = request(server, "GET", "/api/filters?layer=conv2d_1")
    assert status == 200
    res = json.loads(data)
    layer = dict(chain(em.model))["conv2d_1"]
    np.testing.assert_array_equal(arr(res["weights"]), layer.params["w"].astype(np.float64))
    np.testing.assert_array_equal(arr(res["bias"]), layer.params["b"].astype(np.float64))
    status, _, data = request(server, "GET", "/api/filters?layer=dense")
    assert status == 400 and b"not a Conv2D" in data


@pytest.mark.parametrize("n,k,p,s,d,out", [(7, 3, 1, 2, 1, 4), (28, 5, 2, 1, 1, 28),
                                           (32, 5, 0, 1, 1, 28), (10, 3, 0, 1, 2, 6),
                                           (5, 7, 0, 1, 1, None), (5, 3, 0, 2, 3, None)])
def test_conv_size(server, n, k, p, s, d, out):
    status, _, data = request(server, "GET", f"/api/conv-size?n={n}&k={k}&p={p}&s={s}&d={d}")
    assert status == 200
    res = json.loads(data)
    if out is None:       # the kernel (dilated) is larger than the padded input
        assert "larger than the padded input" in res["error"]
        with pytest.raises(ValueError):
            F.conv_output_size(n, k, padding=p, stride=s, dilation=d)
    else:                 # worked examples (cs231n: 7x7 input, 3x3 filter, pad 1, stride 2 -> 4)
        assert res["output"] == out == F.conv_output_size(n, k, padding=p, stride=s, dilation=d)
    status, _, data = request(server, "GET", "/api/conv-size?n=0&k=3&p=0&s=1&d=1")
    assert status == 400 and b"'n'" in data


def test_bad_uploads_get_clear_json_errors(server):
    cases = [(b"this is not an image", 400, "not an image"),
             (b"", 400, "empty request body"),
             (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, 400, "not an image")]
    for body, code, words in cases:
        status, ctype, data = request(server, "POST", "/api/forward", body)
        assert status == code and ctype.startswith("application/json"), data
        assert words in json.loads(data)["error"]
    big = b"\x00" * (64 * 1024 + 1)     # the server's cap is 64 KiB here
    status, ctype, data = request(server, "POST", "/api/forward", big)
    assert status == 413 and "larger than the limit" in json.loads(data)["error"]


def test_oversized_upload_refused_before_reading(server):
    """413 is sent from the Content-Length alone: a 1 GB claim gets its answer at once."""
    host, port = server.server_address[:2]
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(b"POST /api/forward HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  b"Content-Length: 1000000000\r\n\r\n")
        reply = s.recv(4096)
    assert reply.startswith(b"HTTP/1.1 413")


def test_routing_and_safety(server):
    assert request(server, "GET", "/")[0] == 200
    status, ctype, _ = request(server, "GET", "/favicon.ico")
    assert status == 200 and ctype == "image/x-icon"
    for path in ("/../../etc/passwd", "/static/../server.py", "/api.py", "/%2e%2e/pyproject.toml"):
        status, ctype, data = request(server, "GET", path)
        assert status == 404 and ctype.startswith("application/json"), path
    assert request(server, "GET", "/api/forward")[0] == 405
    assert request(server, "POST", "/api/model", b"x")[0] == 405
    # DNS rebinding: a page of another site resolving to 127.0.0.1 is refused
    assert request(server, "GET", "/api/model", headers={"Host": "evil.example:80"})[0] == 403
    status, _, data = request(server, "GET", "/")
    assert b"http://" not in data.replace(b"http://www.w3.org", b"") and b"https://" not in data


def test_rgb_model_and_uploaded_photo(tmp_path):
    """Any model: a 3-channel net saved by Model.save, fed a JPEG of another size."""
    model = cl.Sequential([Conv2D(4, 3, padding=1), ReLU(), MaxPool2D(2), Flatten(), Dense(10)],
                          input_shape=(3, 16, 16), seed=0)
    path = tmp_path / "rgb.npz"
    model.save(path)
    em = load_source(str(path))
    assert em.classes[0] == "airplane"          # CIFAR-10 names for 3-channel 10-class nets
    srv = make_server(em, port=0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        rng = np.random.default_rng(0)
        photo = Image.fromarray(rng.integers(0, 256, (40, 30, 3), dtype=np.uint8))
        buf = io.BytesIO()
        photo.save(buf, "JPEG")
        res = post_json(srv, "/api/forward", buf.getvalue())
        xin = cl.data.load_image(io.BytesIO(buf.getvalue()), size=(16, 16), mode="RGB")
        np.testing.assert_allclose(arr(res["input"]), xin, atol=1e-7)
        np.testing.assert_allclose(res["probabilities"], model.predict(xin[None])[0], rtol=1e-5)
    finally:
        srv.shutdown()
        srv.server_close()


def test_corrupt_or_unsupported_model_fails_at_start(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 definitely not a zip")
    with pytest.raises(ModelLoadError, match="cannot load model file"):
        load_source(str(bad))
    with pytest.raises(ModelLoadError, match="not found"):
        load_source(str(tmp_path / "missing.npz"))
    onnx = tmp_path / "net.onnx"
    onnx.write_bytes(b"\x08\x07")
    with pytest.raises(ModelLoadError, match="onnx"):
        load_source(str(onnx))
    flat = cl.Sequential([Dense(3)], input_shape=(5,), seed=0)
    flat.save(tmp_path / "flat.npz")
    with pytest.raises(ModelLoadError, match="image model"):
        load_source(str(tmp_path / "flat.npz"))
    # the command line: one line on stderr, exit status 2, no server started
    r = subprocess.run([sys.executable, "-m", "cnnlab", "explore", str(bad), "--no-browser"],
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 2 and "cannot load model file" in r.stderr and r.stdout == ""


def test_port_in_use(em):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(PortInUseError, match=f"port {port} on 127.0.0.1 is already in use"):
            make_server(em, port=port)
        r = subprocess.run([sys.executable, "-m", "cnnlab", "explore", "--no-browser",
                            "--port", str(port)], capture_output=True, text=True, timeout=60,
                           cwd=ROOT)
    assert r.returncode == 2 and "already in use" in r.stderr


def test_cli_serves_and_stops_cleanly_on_ctrl_c():
    p = subprocess.Popen([sys.executable, "-m", "cnnlab", "explore", "--no-browser", "--port", "0"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                         preexec_fn=_default_sigint)
    try:
        line = p.stdout.readline()
        assert "at http://127.0.0.1:" in line, line + p.stderr.read()
        url = line.split(" at ")[1].split()[0]
        port = int(url.rsplit(":", 1)[1].strip("/"))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/api/model")
        assert conn.getresponse().status == 200
        conn.close()
        time.sleep(0.2)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    assert "stopped" in out and "Traceback" not in err


def test_unit_arithmetic_with_stride_padding_dilation_and_avgpool(tmp_path):
    """An RGB net with a strided, padded, dilated conv and a padded average pool: every
    unit's window, value and receptive field equal PyTorch's."""
    from cnnlab.layers import AvgPool2D
    model = cl.Sequential([Conv2D(4, 3, stride=2, padding=2, dilation=2), ReLU(),
                           AvgPool2D(3, stride=2, padding=1), Flatten(), Dense(10)],
                          input_shape=(3, 13, 11), seed=3)
    model.save(tmp_path / "g.npz")
    em = load_source(str(tmp_path / "g.npz"))
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (13, 11, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "PNG")
    from cnnlab.explore import api
    x = api.decode_image(buf.getvalue(), (3, 13, 11))
    np.testing.assert_array_equal(x, img.transpose(2, 0, 1) / np.float32(255))
    conv = model.layers[0]
    w = torch.tensor(conv.params["w"], dtype=torch.float64)
    b = torch.tensor(conv.params["b"], dtype=torch.float64)
    t_in = torch.tensor(x[None], dtype=torch.float64)
    t_conv = TF.conv2d(t_in, w, b, stride=2, padding=2, dilation=2)
    t_pool = TF.avg_pool2d(torch.relu(t_conv), 3, stride=2, padding=1, count_include_pad=True)
    cols = TF.unfold(t_in, 3, dilation=2, padding=2, stride=2)      # (1, 27, L)

    def field(upto, row, col):
        t = torch.ones((1, 1, 13, 11), dtype=torch.float64, requires_grad=True)
        a = TF.conv2d(t, torch.ones((1, 1, 3, 3), dtype=torch.float64), stride=2, padding=2,
                      dilation=2)
        if upto == 2:
            a = TF.avg_pool2d(a, 3, stride=2, padding=1)
        a[0, 0, row, col].backward()
        rows, cols_ = np.nonzero(t.grad[0, 0].numpy())
        return [int(rows.min()), int(cols_.min()), int(rows.max()), int(cols_.max())]

    ho, wo = t_conv.shape[2:]
    for ch, r, c in [(0, 0, 0), (3, ho - 1, wo - 1), (1, 2, 3)]:
        res = api.unit(em, x, "conv2d", ch, r, c)
        assert res["value"] == pytest.approx(float(t_conv[0, ch, r, c]), abs=1e-5)
        np.testing.assert_allclose(arr(res["window"]).ravel(), cols[0, :, r * wo + c].numpy(),
                                   atol=1e-7)
        assert res["field"] == field(0, r, c)
    hp, wp = t_pool.shape[2:]
    for ch, r, c in [(0, 0, 0), (2, hp - 1, wp - 1), (3, 1, 1)]:
        res = api.unit(em, x, "avg_pool2d", ch, r, c)
        assert res["op"] == "mean"
        assert res["value"] == pytest.approx(float(t_pool[0, ch, r, c]), abs=1e-5)
        assert res["output"] == pytest.approx(float(t_pool[0, ch, r, c]), abs=1e-5)
        assert res["field"] == field(2, r, c)


def test_an_onnx_model_is_explored_after_conversion(tmp_path):
    """An .onnx file (here the shipped LeNet-5 exported by cnnlab.interop) loads at start
    and predicts what onnxruntime predicts for the same digits."""
    import onnxruntime as ort

    from cnnlab.interop import to_onnx
    from cnnlab.models import lenet5

    net = lenet5(pretrained=True)
    path = tmp_path / "lenet.onnx"
    to_onnx(net, path)
    em = load_source(str(path))
    assert em.name == "lenet.onnx" and em.classes == [str(i) for i in range(10)]
    x = load_mnist(split="test", limit=8)[0]
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    scores = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(em.model.forward(x, training=False), scores, rtol=1e-4, atol=1e-5)


def _default_sigint():
    """In the child: SIGINT back to its default. A shell starts background jobs with SIGINT
    ignored, and children inherit that; Python then installs no KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
