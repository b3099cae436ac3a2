"""cnnlab course EXPERIMENT: cs231n assignment 2's experiments on CIFAR-10, each writing
its figure (PNG, the setup in the title) and its numbers (JSON) to --out.

    cnnlab course overfit --out DIR        # 3-layer net overfits 50 images; weight-scale sweep 3 vs 5 layers
    cnnlab course update-rules --out DIR   # SGD, momentum, RMSProp, Adam on 4,000 images, 5 epochs
    cnnlab course batchnorm --out DIR      # curves, weight-scale sweep, batch size
    cnnlab course dropout --out DIR        # keep 1.0 vs 0.25 on 500 images
    cnnlab course convnet --out DIR        # three-layer convnet: overfit 100 images; filters after 1 epoch
    cnnlab course all --out DIR

--quick runs the small CI-size versions (seconds); --seed changes every random choice
(data subset, initial weights, batches); --data points at CIFAR-10 (default: the usual
places, e.g. shared/data/cifar10/cifar10-jpeg.zip).
"""
from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

from .common import CLIError, nonneg_int

ORDER = 85
EXPERIMENTS = ("overfit", "update-rules", "batchnorm", "dropout", "convnet")


def register(subparsers):
    p = subparsers.add_parser(
        "course", help="run cs231n assignment 2's experiments and draw their figures",
        description=__doc__.split("\n\n")[0])
    p.add_argument("experiment", choices=EXPERIMENTS + ("all",), help="which experiment")
    p.add_argument("--out", default="cnnlab_course", help="output folder (default ./cnnlab_course)")
    p.add_argument("--seed", type=nonneg_int, default=0, help="seed of data, weights, batches")
    p.add_argument("--data", default=None, metavar="PATH",
                   help="CIFAR-10 location (zip, image folder or batches; default: search)")
    p.add_argument("--quick", action="store_true", help="small CI-size runs (seconds)")
    p.set_defaults(func=run)


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "tolist"):
        return _jsonable(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None  # JSON has no NaN: a diverged run
    return obj


def _write_json(path, data):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_jsonable(data), indent=1))
    os.replace(tmp, path)


def _experiment(name, args):
    from .. import course
    from ..course import figures

    budget = "ci" if args.quick else "full"
    common = {"seed": args.seed, "path": args.data}

    def k(key):
        return dict(course.budget_kwargs(key, budget), **common)

    if name == "overfit":
        r = course.overfit_small(**k("overfit"))
        s = course.weight_scale_sweep(**k("weight_scale_sweep"))
        yield "overfit", figures.plot_overfit(r, s), {"overfit": r, "sweep": s}
        print(f"  3-layer net: training accuracy {r['train_acc'][-1]:.0%} after "
              f"{len(r['train_acc'])} epochs (first 100 %: epoch "
              f"{next((i + 1 for i, a in enumerate(r['train_acc']) if a == 1.0), 'never')})")
    elif name == "update-rules":
        r = course.compare_update_rules(**k("update_rules"))
        yield "update_rules", figures.plot_update_rules(r), r
        for rule, run in r["runs"].items():
            print(f"  {rule:13s} epoch-1 train {run['train_acc'][0]:.1%}, final val "
                  f"{run['val_acc'][-1]:.1%}")
    elif name == "batchnorm":
        c = course.batchnorm_curves(**k("batchnorm_curves"))
        yield "batchnorm_curves", figures.plot_batchnorm_curves(c), c
        w = course.batchnorm_weight_sweep(**k("batchnorm_sweep"))
        yield "batchnorm_weight_scale", figures.plot_weight_scale_sweep(w), w
        b = course.batch_size_effect(**k("batch_size"))
        yield "batchnorm_batch_size", figures.plot_batch_size(b), b
    elif name == "dropout":
        r = course.dropout_comparison(**k("dropout"))
        yield "dropout", figures.plot_dropout(r), r
        for keep, gap in course.generalization_gap(r).items():
            print(f"  keep {keep:g}: train - validation accuracy gap {gap:.1%}")
    elif name == "convnet":
        o = course.overfit_convnet(**k("convnet_overfit"))
        t = course.train_convnet(**k("convnet_train"))
        yield "convnet", figures.plot_convnet(o, t), {"overfit": o, "trained": t}
        print(f"  overfit: train {o['train_acc'][-1]:.0%}; after training: val "
              f"{t['val_acc'][-1]:.1%}")


def run(args):
    from ..course import figures

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out} exists and is not a folder")
    if args.data is not None and not Path(args.data).exists():
        raise CLIError(f"--data {args.data}: no such file or folder")
    out.mkdir(parents=True, exist_ok=True)
    names = EXPERIMENTS if args.experiment == "all" else (args.experiment,)
    for name in names:
        print(f"cnnlab course {name}{' (quick)' if args.quick else ''}, seed {args.seed}:",
              file=sys.stdout, flush=True)
        for stem, fig, numbers in _experiment(name, args):
            png = figures.save(fig, out / f"{stem}.png")
            _write_json(out / f"{stem}.json", numbers)
            print(f"  wrote {png} and {stem}.json", flush=True)
    return 0
