"""The interop commands (cnnlab export / import) and .onnx files in the other commands;
``import cnnlab`` without onnx installed."""
import subprocess
import sys
import warnings

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

import cnnlab as cl
import cnnlab.models as zoo
from cnnlab.cli.main import main


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def torch_cnn(path):
    """A small torch CNN for 28x28 digits, exported as PyTorch's exporter writes it."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Conv2d(4, 8, 3), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(8 * 6 * 6, 10)).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.randn(1, 1, 28, 28),), str(path), dynamo=False,
                          input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
    return net


def test_export_a_saved_model_and_a_zoo_model(tmp_path, capsys):
    model = zoo.lenet5(seed=3)
    model.save(tmp_path / "m.npz")
    code, out, _ = run(capsys, "export", tmp_path / "m.npz", tmp_path / "m.onnx")
    assert code == 0 and "opset 17" in out
    x = np.random.default_rng(0).random((2, 1, 28, 28), dtype=np.float32)
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": x})[0]
    assert np.abs(got - model.forward(x)).max() < 1e-5 * np.abs(got).max()
    code, out, _ = run(capsys, "export", "cifar-convnet", tmp_path / "c.onnx", "--opset", "18")
    assert code == 0 and (tmp_path / "c.onnx").exists()


def test_import_then_every_command_reads_onnx(tmp_path, capsys):
    net = torch_cnn(tmp_path / "t.onnx")
    code, out, _ = run(capsys, "import", tmp_path / "t.onnx", tmp_path / "t.npz")
    assert code == 0 and "wrote" in out
    x = np.random.default_rng(1).random((3, 1, 28, 28), dtype=np.float32)
    with torch.no_grad():
        want = torch.softmax(net(torch.from_numpy(x)), 1).numpy()
    for path in ("t.npz", "t.onnx"):
        m = (cl.load_model(tmp_path / path) if path.endswith(".npz")
             else __import__("cnnlab.interop", fromlist=["x"]).from_onnx(tmp_path / path))
        assert np.abs(m.predict(x) - want).max() < 1e-5
    code, out, _ = run(capsys, "summary", tmp_path / "t.onnx")
    assert code == 0 and f"Params: {m.count_params():,}" in out
    code, out, _ = run(capsys, "evaluate", tmp_path / "t.onnx", "--limit", "50")
    assert code == 0 and "accuracy" in out
    img = cl.__path__[0] + "/assets/images/camera.png"
    code, out, _ = run(capsys, "predict", tmp_path / "t.onnx", img)
    assert code == 0 and "1." in out
    code, out, err = run(capsys, "viz", "feature-maps", tmp_path / "t.onnx", img,
                         "--out", tmp_path / "viz")
    assert code == 0, err
    assert list((tmp_path / "viz").glob("*.png"))


def test_bad_files_are_one_line_errors(tmp_path, capsys):
    (tmp_path / "bad.onnx").write_bytes(b"not a model at all")
    for argv in (["summary", tmp_path / "bad.onnx"], ["import", tmp_path / "bad.onnx", tmp_path / "o.npz"],
                 ["export", tmp_path / "bad.onnx", tmp_path / "o.onnx"]):
        code, _, err = run(capsys, *argv)
        lines = err.rstrip("\n").splitlines()  # one message, long ones wrapped and indented
        assert code == 2 and err.startswith("cnnlab: error:") and "Traceback" not in err
        assert all(line.startswith("  ") for line in lines[1:]), err
    code, _, err = run(capsys, "export", "lenet5", tmp_path / "o.txt")
    assert code == 2 and ".onnx" in err
    code, _, err = run(capsys, "export", "nonet", tmp_path / "o.onnx")
    assert code == 2 and "zoo" in err
    assert not (tmp_path / "o.npz").exists() and not (tmp_path / "o.onnx").exists()


def test_cnnlab_works_without_onnx():
    """With onnx and safetensors unimportable, cnnlab (and cnnlab.interop) still import;
    the ONNX functions raise ImportError naming the extra to install."""
    code = (
        "import sys; sys.modules['onnx'] = None; sys.modules['safetensors'] = None\n"
        "import cnnlab, cnnlab.interop, cnnlab.models as zoo\n"
        "m = zoo.lenet5(seed=0)\n"
        "for f in (lambda: cnnlab.interop.to_onnx(m, 'x.onnx'), lambda: cnnlab.interop.from_onnx('x.onnx')):\n"
        "    try:\n"
        "        f()\n"
        "    except ImportError as e:\n"
        "        assert 'pip install \"cnnlab[onnx]\"' in str(e), e\n"
        "    else:\n"
        "        raise SystemExit('no ImportError')\n"
        "print('ok')\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=False)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr
