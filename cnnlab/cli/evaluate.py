"""``cnnlab evaluate MODEL_FILE``: loss and accuracy of a saved model on a test set."""
from __future__ import annotations

import time

from .common import (DATASETS, check_input_fits, guess_dataset, load_dataset, load_model_file,
                     nonneg_int, positive_int)

ORDER = 20


def register(sub):
    p = sub.add_parser("evaluate", help="accuracy of a saved model on a test set",
                       description=__doc__.replace("``", "") + " The data set defaults to MNIST for 1-channel "
                       "models and CIFAR-10 for 3-channel ones.")
    p.add_argument("model_file", metavar="MODEL_FILE", help="a .npz written by train / Model.save")
    p.add_argument("--data", choices=DATASETS, default=None,
                   help="data set (default: from the model's input channels)")
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="where the data set lives (default: the bundled MNIST subset / the "
                        "default CIFAR-10 locations)")
    p.add_argument("--split", choices=("test", "train"), default="test", help="default test")
    p.add_argument("--limit", type=positive_int, default=None, metavar="N",
                   help="only a random N of the images (seeded by --seed)")
    p.add_argument("--seed", type=nonneg_int, default=0, help="seed of --limit's subset")
    p.add_argument("--batch-size", type=positive_int, default=256, help="default 256")
    p.set_defaults(func=run)


def run(args):
    model = load_model_file(args.model_file)
    name = args.data or guess_dataset(model.input_shape)
    x, y, where = load_dataset(name, args.data_dir, args.split, args.limit, args.seed)
    check_input_fits(model, x, where)
    t0 = time.perf_counter()
    result = model.evaluate(x, y, batch_size=args.batch_size)
    dt = time.perf_counter() - t0
    print(f"{args.model_file}: accuracy {result['accuracy']:.2%}, loss {result['loss']:.4f} "
          f"on {len(x):,} images ({where}); {dt:.1f} s, {len(x) / max(dt, 1e-9):,.0f} img/s")
    return 0
