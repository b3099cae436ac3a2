"""``cnnlab export MODEL OUT.onnx``: write a saved model (.npz) or a zoo model as ONNX,
for onnxruntime, Netron or any ONNX tool. The batch axis stays dynamic."""
from __future__ import annotations

import os

from .common import CLIError, load_model_file

ORDER = 90


def register(sub):
    p = sub.add_parser("export", help="write a model file (or zoo model) as ONNX",
                       description=__doc__.replace("``", ""))
    p.add_argument("model", metavar="MODEL", help="a .npz model file, a .onnx file, or a zoo "
                   "model name (random weights, seed 0)")
    p.add_argument("out", metavar="OUT.onnx", help="the ONNX file to write")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (13 or newer, default 17)")
    p.add_argument("--probabilities", action="store_true",
                   help="output class probabilities (what predict shows) instead of scores")
    p.set_defaults(func=run)


def run(args):
    from .. import models
    from ..interop import to_onnx

    if not args.out.lower().endswith(".onnx"):
        raise CLIError(f"OUT must end in .onnx, got {args.out!r}")
    if os.path.isfile(args.model) or args.model.lower().endswith((".npz", ".onnx")):
        model = load_model_file(args.model)
    elif args.model.lower().replace("-", "_") in models.available():
        model = models.get(args.model, seed=0)
    else:
        raise CLIError(f"model file not found and not a zoo model: {args.model!r} (zoo: "
                       f"{', '.join(models.available())})")
    folder = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(folder):
        raise CLIError(f"output folder does not exist: {folder}")
    try:
        to_onnx(model, args.out, opset=args.opset, probabilities=args.probabilities)
    except ImportError as e:
        raise CLIError(str(e)) from None
    print(f"wrote {args.out}: {model.name}, input (N, {', '.join(map(str, model.input_shape))}), "
          f"output (N, {', '.join(map(str, model.output_shape))}), opset {args.opset}, "
          f"{model.count_params():,} parameters")
    return 0
