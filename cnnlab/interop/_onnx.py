"""The lazy import of the optional ``onnx`` package, with the install hint."""
from __future__ import annotations

INSTALL_HINT = 'pip install "cnnlab[onnx]"'


def require_onnx():
    """-> the ``onnx`` module, or ImportError naming the extra to install."""
    try:
        import onnx
    except ImportError as exc:
        raise ImportError(f"cnnlab.interop needs the 'onnx' package for ONNX files: "
                          f"{INSTALL_HINT}") from exc
    return onnx
