"""Interop with PyTorch, Keras and ONNX: send cnnlab nets out, bring other nets in.

    import cnnlab.interop as io
    io.to_onnx(model, 'net.onnx')              # any cnnlab model -> ONNX (opset 17)
    net = io.from_onnx('net.onnx')             # a chain of supported ops -> cl.Sequential
    io.load_state_dict(model, 'resnet.safetensors')   # torch weights, no pickle
    io.save_state_dict(model, 'lenet.safetensors')    # torchvision names for zoo nets

ONNX needs the optional extra (``pip install "cnnlab[onnx]"``); ``onnx`` is imported only
when one of the ONNX functions is called, so ``import cnnlab`` works without it.
"""
from .errors import OnnxExportError, OnnxImportError, StateDictError
from .export import to_onnx
from .import_ import from_onnx
from .ops import SUPPORTED_OPS
from .state_dict import load_state_dict, save_state_dict, state_dict_names

__all__ = ["to_onnx", "from_onnx", "load_state_dict", "save_state_dict", "state_dict_names",
           "SUPPORTED_OPS", "OnnxExportError", "OnnxImportError", "StateDictError"]
