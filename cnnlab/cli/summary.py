"""``cnnlab summary MODEL``: per-layer output shapes, parameters, activations, FLOPs and a
memory estimate of a zoo model (or of a saved .npz model file).

``--no-build`` prints shapes and parameter counts without allocating the weights (instant
even for VGG-16, whose 138 M weights take a few seconds and ~553 MB to build).
"""
from __future__ import annotations

import os

from .common import CLIError, load_model_file, positive_int, shape3

ORDER = 40


def register(sub):
    p = sub.add_parser("summary", help="layer table of a zoo model or model file",
                       description=__doc__.replace("``", ""))
    p.add_argument("model", metavar="MODEL", nargs="?",
                   help="zoo model name (see --list) or a .npz model file")
    p.add_argument("--input-shape", type=shape3, default=None, metavar="C,H,W",
                   help="per-sample input shape (default: the model's own)")
    p.add_argument("--num-classes", type=positive_int, default=None, metavar="N",
                   help="number of classes of a zoo model (default: its own)")
    p.add_argument("--batch-size", type=positive_int, default=32,
                   help="batch size of the memory estimate (default 32)")
    p.add_argument("--expand", action="store_true", help="also list the layers inside "
                   "containers (Inception branches, residual blocks)")
    p.add_argument("--no-build", action="store_true",
                   help="shapes and parameter counts only, without allocating weights")
    p.add_argument("--list", action="store_true", help="list the zoo models and exit")
    p.set_defaults(func=run)


def _zoo_model(name, input_shape, num_classes, build):
    from .. import models

    kw = {"build": build, "seed": 0}
    if input_shape is not None:
        kw["input_shape"] = input_shape
    if num_classes is not None:
        if num_classes < 2:
            raise CLIError(f"--num-classes must be at least 2, got {num_classes}")
        kw["num_classes"] = num_classes
    try:
        return models.get(name, **kw)
    except ValueError as e:
        shape = "" if input_shape is None else " for input " + "x".join(map(str, input_shape))
        raise CLIError(f"cannot build {name}{shape}: {e}") from None


def _print_analytic(model, input_shape, expand):
    from ..models import analyze

    rows, total = analyze(model, input_shape, expand_nested=expand)
    cells = [(f"{r['layer']} ({r['type']})", "x".join(map(str, r["output_shape"])),
              f"{r['params']:,}") for r in rows]
    head = ("Layer (type)", "Output shape", "Params")
    widths = [max(len(c[i]) for c in cells + [head]) for i in range(3)]
    line = "=" * (sum(widths) + 4)
    print(f'Model: "{model.name}" (not built: shapes and parameter counts only)')
    def fmt(c):
        return f"{c[0]:<{widths[0]}}  {c[1]:<{widths[1]}}  {c[2]:>{widths[2]}}"

    print("\n".join([line, fmt(head), line] + [fmt(c) for c in cells] + [line]))
    print(f"Params: {total:,} ({total * 4 / 2 ** 20:,.1f} MiB as float32)")


def run(args):
    from .. import models

    if args.list:
        for name in models.available():
            shape = "x".join(map(str, models.default_input_shape(name)))
            print(f"{name:<20} {shape:<10} {models.describe(name)}")
        return 0
    if not args.model:
        raise CLIError("summary: give a MODEL name or .npz file (or --list for the names)")
    is_file = args.model.endswith(".npz") or os.path.sep in args.model or os.path.isfile(args.model)
    if is_file:
        if args.num_classes is not None:
            raise CLIError("--num-classes applies to zoo models, not to a model file")
        model = load_model_file(args.model)
    else:
        if args.model.lower().replace("-", "_") not in models.available():
            raise CLIError(f"unknown model {args.model!r}; available: "
                           f"{', '.join(models.available())}")
        model = _zoo_model(args.model, args.input_shape, args.num_classes, not args.no_build)
    input_shape = args.input_shape or (model.input_shape if model.built else None)
    if args.no_build:
        _print_analytic(model, input_shape, args.expand)
    else:
        model.summary(input_shape=input_shape, batch_size=args.batch_size,
                      expand_nested=args.expand)
    return 0
