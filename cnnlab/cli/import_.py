"""``cnnlab import IN.onnx OUT.npz``: read an ONNX net (e.g. exported from PyTorch with
torch.onnx.export(..., dynamo=False)) as a cnnlab model and save it as a .npz model file,
which every command (train --resume aside) and cnnlab.load_model read. The commands also
take the .onnx file directly."""
from __future__ import annotations

import os

from .common import CLIError, existing_file

ORDER = 91


def register(sub):
    p = sub.add_parser("import", help="convert an ONNX net into a cnnlab .npz model file",
                       description=__doc__.replace("``", ""))
    p.add_argument("onnx_file", metavar="IN.onnx", help="the ONNX file to read")
    p.add_argument("out", metavar="OUT.npz", help="the cnnlab model file to write")
    p.set_defaults(func=run)


def run(args):
    from ..interop import from_onnx

    existing_file(args.onnx_file, "ONNX file")
    if not args.out.lower().endswith(".npz"):
        raise CLIError(f"OUT must end in .npz, got {args.out!r}")
    folder = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(folder):
        raise CLIError(f"output folder does not exist: {folder}")
    try:
        model = from_onnx(args.onnx_file)
    except (ValueError, ImportError) as e:
        raise CLIError(f"cannot import {args.onnx_file}: {e}") from None
    model.save(args.out)
    print(f"wrote {args.out}: {len(model.layers)} layers, input (N, "
          f"{', '.join(map(str, model.input_shape))}), output (N, "
          f"{', '.join(map(str, model.output_shape))}), {model.count_params():,} parameters")
    return 0
