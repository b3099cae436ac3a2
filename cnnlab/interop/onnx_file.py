"""Reading an ONNX file safely: clear errors for missing, corrupt, truncated or
non-model files, and external-data tensors that may only live inside the model's folder.
"""
from __future__ import annotations

import os

from ._onnx import require_onnx
from .errors import OnnxImportError


def _external_locations(proto, onnx):
    for t in _all_tensors(proto, onnx):
        if t.data_location == onnx.TensorProto.EXTERNAL:
            info = {e.key: e.value for e in t.external_data}
            yield t.name, info.get("location", "")


def _all_tensors(proto, onnx):
    yield from proto.graph.initializer
    for node in proto.graph.node:
        for a in node.attribute:
            if a.type == onnx.AttributeProto.TENSOR:
                yield a.t


def check_external_paths(proto, folder, path, onnx):
    """OnnxImportError unless every external-data location is a relative path that stays
    (after resolving links) inside ``folder``. Nothing is read here."""
    root = os.path.realpath(folder)
    for name, loc in _external_locations(proto, onnx):
        bad = (not loc or os.path.isabs(loc) or loc.startswith(("\\", "/"))
               or ".." in loc.replace("\\", "/").split("/"))
        target = os.path.realpath(os.path.join(root, loc)) if not bad else ""
        if bad or os.path.commonpath([root, target]) != root:
            raise OnnxImportError(f"{path}: tensor {name!r} keeps its data in {loc!r}, outside "
                                  f"the model's folder {folder}; only files inside that folder "
                                  f"are read (refused, nothing was read)")
        if not os.path.isfile(target):
            raise OnnxImportError(f"{path}: tensor {name!r} keeps its data in {loc!r}, which "
                                  f"is not a file in {folder}")


def load_proto(path):
    """-> a checked ``onnx.ModelProto`` with its weights loaded, or OnnxImportError."""
    onnx = require_onnx()
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"ONNX file not found: {path}")
    if not os.path.isfile(path):
        raise OnnxImportError(f"{path} is not a file")
    from google.protobuf.message import DecodeError

    with open(path, "rb") as f:
        data = f.read()
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise OnnxImportError(f"{path} is not a readable ONNX model (corrupt or truncated "
                              f"file: {exc})") from None
    if (not data or proto.ir_version <= 0 or not proto.HasField("graph")
            or not proto.graph.node or not proto.opset_import):
        raise OnnxImportError(f"{path} is not an ONNX model (no IR version, graph or opset: "
                              f"a truncated file or another kind of protobuf)")
    folder = os.path.dirname(os.path.abspath(path))
    check_external_paths(proto, folder, path, onnx)
    try:
        if any(True for _ in _external_locations(proto, onnx)):
            from onnx.external_data_helper import load_external_data_for_model
            load_external_data_for_model(proto, folder)
        onnx.checker.check_model(proto)
    except Exception as exc:  # noqa: BLE001 - onnx raises several types; all mean "bad file"
        raise OnnxImportError(f"{path} is not a valid ONNX model: "
                              f"{' '.join(str(exc).split())[:500]}") from None
    return proto
