"""``cnnlab train``: train a zoo model on MNIST or CIFAR-10, with a progress bar per epoch,
validation on held-out training images, a checkpoint and the test accuracy at the end.

With no arguments it trains LeNet-5 on the MNIST subset bundled in the package (10,000
training images, 1,000 of them held out for validation; 2,000 test images): 30 epochs of
SGD with Nesterov momentum 0.9 and weight decay 5e-4, batch 64, a one-cycle learning rate
peaking at 0.05, and random rotations (+-10 deg), zooms (+-10 %) and shifts (+-2 px).
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

from .common import (CLIError, DATASETS, NUM_CLASSES, fraction, load_dataset, machine,
                     nonneg_int, positive_float, positive_int)

ORDER = 10
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")

#: Recipes per data set: model, epochs, batch size, peak learning rate per optimizer,
#: augmentation ('affine': rotation/zoom/shift; 'crop-flip': pad-4 crops and mirror images).
DEFAULTS = {
    "mnist": {"model": "lenet5", "epochs": 30, "batch_size": 64, "augment": "affine",
              "lr": {"sgd": 0.05, "adam": 2e-3, "adamw": 2e-3, "rmsprop": 1e-3}},
    "cifar10": {"model": "cifar_resnet", "epochs": 6, "batch_size": 128,
                "augment": "crop-flip",
                "lr": {"sgd": 0.2, "adam": 4e-3, "adamw": 4e-3, "rmsprop": 1e-3}},
}
AUGMENT_TEXT = {"affine": "random rotations +-10 deg, zooms +-10 %, shifts +-2 px",
                "crop-flip": "random crops after 4 px padding + horizontal flips"}


def register(sub):
    p = sub.add_parser(
        "train", help="train a model (default: LeNet-5 on the bundled MNIST subset)",
        description=__doc__.split("\n\n")[0].replace("``", "") + " Defaults depend on --data: mnist trains "
        "lenet5 for 30 epochs (batch 64, SGD Nesterov, peak lr 0.05, rotations/zooms/shifts); "
        "cifar10 trains cifar_resnet for 6 epochs (batch 128, SGD Nesterov, peak lr 0.2, "
        "crops and flips).")
    p.add_argument("--model", default=None,
                   help="zoo model name (see 'cnnlab summary --list'); default lenet5 for "
                        "mnist, cifar_resnet for cifar10")
    p.add_argument("--data", choices=DATASETS, default="mnist", help="data set (default mnist)")
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="where the data set lives (MNIST IDX files; CIFAR-10 batches, image "
                        "folder or its .zip). Default: the bundled MNIST subset / the default "
                        "CIFAR-10 locations")
    p.add_argument("--epochs", type=positive_int, default=None, help="number of epochs")
    p.add_argument("--batch-size", type=positive_int, default=None, help="minibatch size")
    p.add_argument("--lr", type=positive_float, default=None,
                   help="peak learning rate of the one-cycle schedule")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd",
                   help="default sgd (Nesterov momentum 0.9, weight decay 5e-4); adamw uses "
                        "decoupled weight decay 0.05")
    p.add_argument("--schedule", choices=("onecycle", "constant"), default="onecycle",
                   help="learning rate schedule (default onecycle: warm up 25%%, cosine down)")
    p.add_argument("--val-split", type=fraction, default=0.1, metavar="F",
                   help="fraction of the training images held out for validation (default "
                        "0.1; 0 = no validation)")
    p.add_argument("--limit", type=positive_int, default=None, metavar="N",
                   help="use a random N of the training images (and of the test images), for "
                        "quick runs")
    p.add_argument("--no-augment", action="store_true",
                   help="no data augmentation (default: random rotations/zooms/shifts for "
                        "mnist, crops/flips for cifar10)")
    p.add_argument("--out", default="model.npz", metavar="FILE",
                   help="checkpoint file (default model.npz), rewritten after every epoch "
                        "with the model, optimizer state and epoch")
    p.add_argument("--seed", type=nonneg_int, default=0,
                   help="seed of the weights, the split, shuffling and augmentation (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bars, one line per epoch")
    p.add_argument("--distributed", action="store_true",
                   help="data-parallel over the processes of mpiexec (mpiexec -n 4 cnnlab "
                        "train --distributed): --batch-size is the global batch; rank 0 "
                        "prints and writes the checkpoint (needs 'cnnlab[mpi]')")
    p.add_argument("--plot", default=None, metavar="PNG",
                   help="also draw the training curves (loss and accuracy per epoch, train "
                        "and validation) into this .png file")
    p.set_defaults(func=run)


def _optimizer(name, lr):
    from .. import optim

    if name == "adam":
        return optim.Adam(lr)
    if name == "adamw":
        return optim.AdamW(lr, weight_decay=5e-2)
    if name == "sgd":
        return optim.SGD(lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    return optim.RMSProp(lr)


def _augmenter(kind):
    """(x_batch, rng) -> x_batch for the recipe's augmentation."""
    from ..data import random_crop, random_flip
    from ._augment import random_affine

    if kind == "affine":
        return lambda xb, rng: random_affine(xb, rng, degrees=10.0, zoom=0.1, shift=2.0)
    return lambda xb, rng: random_flip(random_crop(xb, padding=4, rng=rng), rng=rng)


def _check_out(path):
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise CLIError(f"cannot write --out {path}: directory {directory} does not exist")
    if os.path.isdir(path):
        raise CLIError(f"--out {path} is a directory; give a file name such as model.npz")


def run(args):
    from .. import models
    from ..data import train_val_split
    from ..optim import OneCycle
    from ..training import LearningRateScheduler, ModelCheckpoint

    recipe = DEFAULTS[args.data]
    name = args.model or recipe["model"]
    if name.lower().replace("-", "_") not in models.available():
        raise CLIError(f"unknown model {name!r}; available: {', '.join(models.available())}")
    epochs = args.epochs or recipe["epochs"]
    batch_size = args.batch_size or recipe["batch_size"]
    lr = args.lr or recipe["lr"][args.optimizer]
    _check_out(args.out)
    if args.plot is not None and (not args.plot.lower().endswith(".png")
                                  or not os.path.isdir(os.path.dirname(os.path.abspath(args.plot)))):
        raise CLIError(f"cannot write --plot {args.plot}: give a .png file in an existing folder")

    x, y, where = load_dataset(args.data, args.data_dir, "train", args.limit, args.seed)
    xt, yt, twhere = load_dataset(args.data, args.data_dir, "test", args.limit, args.seed)
    num_classes = NUM_CLASSES[args.data]
    try:
        model = models.get(name, num_classes=num_classes, input_shape=tuple(x.shape[1:]),
                           seed=args.seed)
    except ValueError as e:
        raise CLIError(f"cannot build {name} for {args.data} images of shape "
                       f"{tuple(x.shape[1:])}: {e}") from None

    if args.val_split > 0:
        xtr, ytr, xv, yv = train_val_split(x, y, args.val_split, rng=args.seed)
        val = (xv, yv)
        val_text = (f"{len(xv):,} images held out at random from the {len(x):,} training "
                    f"images ({args.val_split:.0%}; never trained on)")
    else:
        xtr, ytr, val = x, y, None
        val_text = "none (--val-split 0)"
    steps = -(-len(xtr) // batch_size)
    optimizer = _optimizer(args.optimizer, lr)
    callbacks = [ModelCheckpoint(args.out, save_best_only=False)]
    if args.schedule == "onecycle":
        callbacks.append(LearningRateScheduler(OneCycle(lr, max(epochs * steps, 2), pct_start=0.25)))
    augment = None if args.no_augment else _augmenter(recipe["augment"])

    out = sys.stdout
    if args.distributed:  # every rank trains; rank 0 alone prints (cnnlab.distributed)
        from ..distributed import root_stream
        out = root_stream(out)
    print(f"cnnlab train: {name} ({model.count_params():,} parameters) on {where}", file=out)
    print(f"  training:   {len(xtr):,} images of shape {tuple(x.shape[1:])}, {epochs} epochs, "
          f"batch {batch_size}, {args.optimizer} lr {lr:g} ({args.schedule}), augmentation "
          f"{'off' if augment is None else AUGMENT_TEXT[recipe['augment']]}, seed {args.seed}", file=out)
    print(f"  validation: {val_text}", file=out)
    print(f"  test:       {len(xt):,} images ({twhere}), evaluated once at the end", file=out)
    print(f"  machine:    {machine()}", file=out, flush=True)
    if args.distributed:
        from ..distributed import size
        print(f"  ranks:      {size()} MPI processes, each with its share of every batch", file=out)

    t0 = time.perf_counter()
    history = model.fit(xtr, ytr, epochs=epochs, batch_size=batch_size, optimizer=optimizer,
                        validation_data=val, callbacks=callbacks, seed=args.seed,
                        verbose=2 if args.quiet else 1, augment=augment,
                        distributed=args.distributed)
    train_time = time.perf_counter() - t0
    epochs_run = len(history.history["loss"])
    summary = ""
    if val is not None:
        accs = history.history["val_accuracy"]
        summary = (f"; validation accuracy {accs[-1]:.2%} at the end (best {max(accs):.2%}, "
                   f"epoch {int(np.argmax(accs)) + 1})")
    result = model.evaluate(xt, yt, distributed=args.distributed)
    print(f"trained in {train_time:.1f} s{summary}", file=out)
    print(f"checkpoint {args.out}: the model after epoch {epochs_run} (saved every epoch; "
          f"nothing is selected on the test set)", file=out)
    print(f"test accuracy {result['accuracy']:.2%} (loss {result['loss']:.4f}) on "
          f"{len(xt):,} test images ({twhere})", file=out, flush=True)
    if args.plot is not None and len(history) and (not args.distributed or _is_root()):
        history.plot(args.plot)
        print(f"training curves: {args.plot}", file=out, flush=True)
    return 0


def _is_root():
    from ..distributed import is_root
    return is_root()
