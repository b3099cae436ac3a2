"""What cnnlab.interop.from_onnx refuses, and how: every unsupported case raises an
OnnxImportError naming the node, its op and what is supported (or the file and what is
wrong with it), and no model is returned."""
import os
import warnings

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

import cnnlab.models as zoo
from cnnlab.cli.main import main
from cnnlab.interop import OnnxImportError, from_onnx, to_onnx


def make(nodes, inits=(), shape=("N", 3, 8, 8), out_shape=None, opset=17, path=None):
    """A one-input one-output float model from nodes (input 'x', output 'y')."""
    if out_shape is None:
        out_shape = [f"d{i}" for i in range(len(shape))]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        initializer=[numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    if path is not None:
        onnx.save(model, str(path))
    return model


def conv_w(k, c, f=3):
    return np.random.default_rng(0).standard_normal((k, c, f, f)).astype(np.float32)


def refuse(path, *needles):
    with pytest.raises(OnnxImportError) as info:
        from_onnx(path)
    msg = str(info.value)
    for n in needles:
        assert n in msg, msg
    return msg


def torch_export(net, shape, path):
    net.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.randn((2,) + shape),), str(path), dynamo=False,
                          input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})


def test_grouped_and_depthwise_conv(tmp_path):
    torch_export(nn.Sequential(nn.Conv2d(4, 8, 3, groups=2)), (4, 8, 8), tmp_path / "g.onnx")
    refuse(tmp_path / "g.onnx", "op Conv", "group=2", "not supported", "group=1")
    torch_export(nn.Sequential(nn.Conv2d(4, 4, 3, groups=4), nn.ReLU()), (4, 8, 8),
                 tmp_path / "d.onnx")
    refuse(tmp_path / "d.onnx", "op Conv", "depthwise", "group=4")


def test_unknown_op_names_node_and_supported_ops(tmp_path):
    make([helper.make_node("Conv", ["x", "w"], ["c"], name="conv1"),
          helper.make_node("Elu", ["c"], ["y"], name="the_elu")],
         [("w", conv_w(4, 3))], path=tmp_path / "u.onnx")
    msg = refuse(tmp_path / "u.onnx", "'the_elu'", "op Elu", "supported ops:", "Conv",
                 "BatchNormalization")
    assert "Relu" in msg
    # an op of another domain
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="r"),
             helper.make_node("FusedThing", ["r"], ["y"], name="f", domain="com.example")]
    m = make(nodes)
    m.opset_import.append(helper.make_opsetid("com.example", 1))
    onnx.save(m, str(tmp_path / "dom.onnx"))
    refuse(tmp_path / "dom.onnx", "'f'", "FusedThing", "com.example", "not supported")


def test_non_chain_graphs(tmp_path):
    # two branches joined by Mul: not a Concat or Add
    make([helper.make_node("Relu", ["x"], ["a"], name="r"),
          helper.make_node("Sigmoid", ["x"], ["b"], name="s"),
          helper.make_node("Mul", ["a", "b"], ["y"], name="gate")], path=tmp_path / "m.onnx")
    refuse(tmp_path / "m.onnx", "'gate'", "op Mul", "Concat", "Add")
    # a branch that skips into a later join: a -> relu -> b; Add(b, x) then Concat(c, a)
    make([helper.make_node("Relu", ["x"], ["a"], name="r1"),
          helper.make_node("Relu", ["a"], ["b"], name="r2"),
          helper.make_node("Add", ["b", "x"], ["c"], name="add"),
          helper.make_node("Concat", ["c", "a"], ["y"], name="cat", axis=1)],
         path=tmp_path / "skip.onnx")
    refuse(tmp_path / "skip.onnx", "not a chain")
    # two outputs
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Sigmoid", ["x"], ["z"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3]),
         helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 3])])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(m, str(tmp_path / "two.onnx"))
    refuse(tmp_path / "two.onnx", "one data input and one output")
    # a weight computed from the data
    make([helper.make_node("Relu", ["x"], ["w"], name="r"),
          helper.make_node("Conv", ["x", "w"], ["y"], name="c")], path=tmp_path / "w.onnx")
    refuse(tmp_path / "w.onnx", "'c'", "op Conv", "must be constants")


def test_dynamic_spatial_shape(tmp_path):
    make([helper.make_node("Relu", ["x"], ["y"])], shape=("N", 3, "H", "W"),
         path=tmp_path / "dyn.onnx")
    refuse(tmp_path / "dyn.onnx", "dynamic size", "'H'", "axis 2", "only the batch axis")


def test_unsupported_op_options(tmp_path):
    cases = [
        # count_include_pad=0 with padding: cnnlab's average pool counts the padding
        ([helper.make_node("AveragePool", ["x"], ["y"], name="ap", kernel_shape=[3, 3],
                           pads=[1, 1, 1, 1], count_include_pad=0)], [], ["'ap'", "count_include_pad"]),
        ([helper.make_node("Softmax", ["x"], ["y"], name="sm", axis=3)], [], ["'sm'", "axis 1"]),
        ([helper.make_node("Flatten", ["x"], ["y"], name="fl", axis=2)], [], ["'fl'", "axis=1"]),
        ([helper.make_node("Pad", ["x", "p"], ["y"], name="pd", mode="reflect")],
         [("p", np.array([0, 0, 1, 1, 0, 0, 1, 1]))], ["'pd'", "constant-mode"]),
        ([helper.make_node("MaxPool", ["x"], ["y"], name="mp", kernel_shape=[2, 2],
                           dilations=[2, 2])], [], ["'mp'", "dilated"]),
    ]
    for i, (nodes, inits, needles) in enumerate(cases):
        inits = [(k, v.astype(np.int64) if k == "p" else v) for k, v in inits]
        graph = helper.make_graph(
            nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "a", "b", "c"])],
            initializer=[numpy_helper.from_array(v, k) for k, v in inits])
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        onnx.save(m, str(tmp_path / f"c{i}.onnx"))
        refuse(tmp_path / f"c{i}.onnx", *needles)


def test_reshape_other_than_flatten(tmp_path):
    m = make([helper.make_node("Reshape", ["x", "s"], ["y"], name="rs")])
    m.graph.initializer.append(numpy_helper.from_array(np.array([0, 3, 64], np.int64), "s"))
    onnx.save(m, str(tmp_path / "r.onnx"))
    refuse(tmp_path / "r.onnx", "'rs'", "op Reshape", "(N, -1)")


def test_corrupt_truncated_and_non_model_files(tmp_path):
    good = to_onnx(zoo.lenet5(seed=0), tmp_path / "good.onnx")
    with open(good, "rb") as f:
        data = f.read()
    (tmp_path / "trunc.onnx").write_bytes(data[: len(data) // 2])
    refuse(tmp_path / "trunc.onnx", "trunc.onnx")
    (tmp_path / "junk.onnx").write_bytes(np.random.default_rng(0).bytes(5000))
    refuse(tmp_path / "junk.onnx", "junk.onnx")
    (tmp_path / "empty.onnx").write_bytes(b"")
    refuse(tmp_path / "empty.onnx", "not an ONNX model")
    # a valid protobuf of another kind: a tensor
    t = numpy_helper.from_array(np.ones((3, 4), np.float32), "t")
    (tmp_path / "tensor.onnx").write_bytes(t.SerializeToString())
    refuse(tmp_path / "tensor.onnx", "tensor.onnx", "not")
    with pytest.raises(FileNotFoundError, match="nope.onnx"):
        from_onnx(tmp_path / "nope.onnx")


def _external(tmp_path):
    """A conv model saved with its weight in an external file; -> (path, proto)."""
    d = tmp_path / "model"
    d.mkdir()
    m = make([helper.make_node("Conv", ["x", "w"], ["y"], name="c", pads=[1, 1, 1, 1])],
             [("w", conv_w(4, 3))])
    onnx.save_model(m, str(d / "m.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="w.bin", size_threshold=0)
    return d / "m.onnx", onnx.load(str(d / "m.onnx"), load_external_data=False)


def _point_to(proto, path, location):
    for t in proto.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = location
    onnx.save(proto, str(path))


def test_external_data_inside_the_folder_is_read(tmp_path):
    path, _ = _external(tmp_path)
    model = from_onnx(path)
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    import onnxruntime as ort
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert np.abs(model.forward(x) - want).max() < 1e-5 * np.abs(want).max()


@pytest.mark.parametrize("where", ["parent", "absolute", "symlink"])
def test_external_data_outside_the_folder_is_refused(tmp_path, where, monkeypatch):
    path, proto = _external(tmp_path)
    secret = tmp_path / "secret.bin"
    secret.write_bytes((tmp_path / "model" / "w.bin").read_bytes())
    if where == "parent":
        loc = "../secret.bin"
    elif where == "absolute":
        loc = str(secret)
    else:
        os.symlink(secret, tmp_path / "model" / "link.bin")
        loc = "link.bin"
    _point_to(proto, path, loc)
    opened = []
    real_open = open

    def spy(file, *a, **k):
        opened.append(os.path.realpath(os.fspath(file)) if isinstance(file, (str, os.PathLike)) else file)
        return real_open(file, *a, **k)

    monkeypatch.setattr("builtins.open", spy)
    refuse(path, "outside the model's folder", loc)
    monkeypatch.undo()
    assert os.path.realpath(secret) not in opened


def test_cli_import_refusal_is_one_line_and_writes_nothing(tmp_path, capsys):
    torch_export(nn.Sequential(nn.Conv2d(4, 8, 3, groups=2)), (4, 8, 8), tmp_path / "g.onnx")
    out = tmp_path / "g.npz"
    assert main(["import", str(tmp_path / "g.onnx"), str(out)]) == 2
    err = capsys.readouterr().err
    lines = err.rstrip("\n").splitlines()  # one message, long ones wrapped and indented
    assert err.startswith("cnnlab: error:") and "group" in err and "Traceback" not in err
    assert all(line.startswith("  ") for line in lines[1:]), err
    assert not out.exists()
