"""Error types of :mod:`cnnlab.interop` (ValueErrors, so the command line prints them
on one line)."""


class OnnxExportError(ValueError):
    """A model (or one of its layers) that cannot be written as ONNX."""


class OnnxImportError(ValueError):
    """An ONNX file that cannot be read as a cnnlab model: unreadable, not a model, or a
    graph outside what cnnlab supports (the message names the node, its op and what is
    supported)."""


class StateDictError(ValueError):
    """Weights that do not fit the model (names, count or shapes), or a refused file."""
