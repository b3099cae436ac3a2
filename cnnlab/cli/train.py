"""``cnnlab train``: train a zoo model on MNIST, CIFAR-10 or an image folder, with a progress
bar per epoch, validation on held-out training images, a checkpoint and the test accuracy at
the end; ``--resume`` continues an interrupted run exactly.

With no arguments it trains LeNet-5 on the MNIST subset bundled in the package (10,000
training images, 1,000 of them held out for validation; 2,000 test images): 30 epochs of
SGD with Nesterov momentum 0.9 and weight decay 5e-4, batch 64, a one-cycle learning rate
peaking at 0.05, and random rotations (+-10 deg), zooms (+-10 %) and shifts (+-2 px).
"""
from __future__ import annotations

import os
import shlex
import sys
import time

import numpy as np

from . import _resume
from ._train_data import check_data_arg, is_folder, load_train_test
from .common import (CLIError, check_input_fits, existing_file, fraction, machine, message,
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
        "cifar10 and image folders train cifar_resnet for 6 epochs (batch 128, SGD Nesterov, "
        "peak lr 0.2, crops and flips). Ctrl-C stops after saying which epoch the checkpoint "
        "holds and how to resume.")
    # defaults are None here and filled in by run(), so that --resume can tell the options
    # given on the command line from the recorded ones
    p.add_argument("--model", default=None,
                   help="zoo model name (see 'cnnlab summary --list'); default lenet5 for "
                        "mnist, cifar_resnet for cifar10 and image folders")
    p.add_argument("--data", default=None, metavar="{mnist,cifar10,DIR}",
                   help="data set: mnist (default), cifar10, or an image folder DIR (a "
                        "directory or .zip of DIR/<class>/<image>, any image size, resized to "
                        "the model's input; DIR/train/<class>/... and DIR/test/<class>/... "
                        "give a test set too)")
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="where mnist or cifar10 lives (MNIST IDX files; CIFAR-10 batches, image "
                        "folder or its .zip). Default: the bundled MNIST subset / the default "
                        "CIFAR-10 locations")
    p.add_argument("--resume", default=None, metavar="FILE",
                   help="continue the run that wrote this checkpoint (model, optimizer state, "
                        "epoch; the other settings come from FILE.args.json), exactly as if it "
                        "had not stopped. --epochs may be raised to train a finished run "
                        "further; --out defaults to FILE")
    p.add_argument("--epochs", type=positive_int, default=None, help="number of epochs")
    p.add_argument("--batch-size", type=positive_int, default=None, help="minibatch size")
    p.add_argument("--lr", type=positive_float, default=None,
                   help="peak learning rate of the one-cycle schedule")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=None,
                   help="default sgd (Nesterov momentum 0.9, weight decay 5e-4); adamw uses "
                        "decoupled weight decay 0.05")
    p.add_argument("--schedule", choices=("onecycle", "constant"), default=None,
                   help="learning rate schedule (default onecycle: warm up 25%%, cosine down)")
    p.add_argument("--val-split", type=fraction, default=None, metavar="F",
                   help="fraction of the training images held out for validation (default "
                        "0.1; 0 = no validation)")
    p.add_argument("--limit", type=positive_int, default=None, metavar="N",
                   help="use a random N of the training images (and of the test images), for "
                        "quick runs; only those N are read (CIFAR-10) and converted to float")
    p.add_argument("--no-augment", action="store_true", default=None,
                   help="no data augmentation (default: random rotations/zooms/shifts for "
                        "mnist, crops/flips for cifar10)")
    p.add_argument("--out", default=None, metavar="FILE",
                   help="checkpoint file (default model.npz, or the --resume file), rewritten "
                        "after every epoch with the model, optimizer state and epoch; the run's "
                        "settings go to FILE.args.json")
    p.add_argument("--seed", type=nonneg_int, default=None,
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


def _recipe_key(data, channels):
    """Which DEFAULTS recipe: the data set's own; for image folders, by channels."""
    if data in DEFAULTS:
        return data
    return "mnist" if channels == 1 else "cifar10"


def _resolve(given, data_default="mnist", model_default=None, seed_default=0):
    """Concrete settings from the options given (None = not given) and the recipes."""
    from .. import models

    s = dict(given)
    s["data"] = s["data"] or data_default
    check_data_arg(s["data"], s["data_dir"])
    if is_folder(s["data"]):
        s["data"] = os.path.abspath(s["data"])
    if s["data_dir"] is not None:
        s["data_dir"] = os.path.abspath(s["data_dir"])
    name = s["model"] or model_default or ("lenet5" if s["data"] == "mnist" else "cifar_resnet")
    if name.lower().replace("-", "_") not in models.available():
        raise CLIError(f"unknown model {name!r}; available: {', '.join(models.available())}")
    s["model"] = name = name.lower().replace("-", "_")
    channels = models.default_input_shape(name)[0]
    recipe = DEFAULTS[_recipe_key(s["data"], channels)]
    s["optimizer"] = s["optimizer"] or "sgd"
    for key in ("epochs", "batch_size"):
        s[key] = s[key] or recipe[key]
    s["lr"] = s["lr"] or recipe["lr"][s["optimizer"]]
    s["schedule"] = s["schedule"] or "onecycle"
    s["val_split"] = 0.1 if s["val_split"] is None else s["val_split"]
    s["no_augment"] = bool(s["no_augment"])
    s["seed"] = seed_default if s["seed"] is None else s["seed"]
    return s


def _check_split(n, val_split, limit, what):
    """A clear error, naming the options, when the split leaves no training or no
    validation image (train_val_split holds out round(n * val_split))."""
    if val_split <= 0:
        return
    n_val = int(round(n * val_split))
    if 1 <= n_val < n:
        return
    need = next((m for m in range(2, 10 ** 6) if 1 <= int(round(m * val_split)) < m), None)
    source = f"--limit {limit}" if limit is not None and limit <= n else f"the {n:,} images of {what}"
    left = "no validation image" if n_val < 1 else "no training image"
    fix = (f"use --limit {need} or more, or --val-split 0" if need is not None
           else "use a smaller --val-split")
    raise CLIError(f"{source} with --val-split {val_split:.10g} leaves {left} (round({n} x "
                   f"{val_split:.10g}) = {n_val} held out): {fix}")


def _load_resume(path, given):
    """(Checkpoint, settings, note) for --resume PATH."""
    from ..training import CheckpointError, load_checkpoint

    existing_file(path, "--resume checkpoint")
    try:
        ckpt = load_checkpoint(path)
    except CheckpointError as e:
        raise CLIError(f"cannot resume from {path}: {e}") from None
    if ckpt.optimizer is None or ckpt.epoch is None:
        raise CLIError(f"cannot resume from {path}: it holds no optimizer state and epoch (saved "
                       f"with model.save(path) alone); train writes them, and so does "
                       f"model.save(path, optimizer=..., epoch=...)")
    recorded = _resume.read_settings(path)
    if recorded is None:  # saved from Python: the command line gives the settings
        from .. import models

        name = getattr(ckpt.model, "name", None)
        kind = type(ckpt.optimizer).__name__.lower()  # the optimizer is the checkpoint's
        if given["optimizer"] not in (None, kind):
            raise CLIError(f"--resume {path} continues with its own optimizer ({kind}), but "
                           f"--optimizer {given['optimizer']} was given; leave it out")
        given = dict(given, optimizer=kind if kind in OPTIMIZERS else None)
        settings = _resolve(given, model_default=name if name in models.available() else None,
                            seed_default=getattr(ckpt.model, "train_seed", None) or 0)
        note = (f"no {_resume.settings_path(path)}: the data and settings are those given on "
                f"this command line")
    else:
        settings = _resume.merge(recorded, given, path)
        note = f"settings from {_resume.settings_path(path)}"
    return ckpt, settings, note


def _settings_writer(out, settings):
    """A callback that writes the settings file just before the first checkpoint of the
    run (it comes first in the list), so a checkpoint never sits next to another run's
    settings."""
    from ..training import Callback

    class SaveSettings(Callback):
        done = False
        root_only = True  # fit(distributed=True): only rank 0 writes files

        def on_epoch_end(self, epoch, logs=None):
            if not self.done:
                _resume.write_settings(out, settings)
                self.done = True

    return SaveSettings()


def _epoch_saved(out, saved, initial, start_ns):
    """Epochs completed in the checkpoint this run wrote to ``out``, or None. The file is
    the truth: a Ctrl-C can land after its rename but before the callback's bookkeeping."""
    from ..training.checkpoint import read_checkpoint

    counted = initial + len(saved) if saved else None
    try:
        if os.stat(out).st_mtime_ns < start_ns:  # not written by this run
            return counted
        epoch = read_checkpoint(out)[0].get("epoch")
    except (OSError, ValueError):
        return counted
    return counted if epoch is None else int(epoch)


def _interrupted(out, saved, initial, epochs, resume, start_ns):
    """Say what the checkpoint holds and the command that resumes (Ctrl-C during fit)."""
    print(file=sys.stderr)  # off the ^C and any progress bar
    holds, file = _epoch_saved(out, saved, initial, start_ns), out
    if holds is None and resume is not None:
        holds, file = initial, resume
    if holds is None:
        message(f"interrupted during epoch 1/{epochs}, before the first checkpoint: nothing "
                f"was saved by this run; run the same command to start again", None)
        return 130
    command = _resume.resume_command(file)
    if os.path.abspath(file) != os.path.abspath(out):
        command += f" --out {shlex.quote(out)}"
    message(f"interrupted during epoch {holds + 1}/{epochs}: {file} holds the model after "
            f"epoch {holds} (weights, optimizer state and epoch). Resume with:", None)
    print(f"  {command}", file=sys.stderr, flush=True)
    return 130


def run(args):
    from .. import models
    from ..data import train_val_split
    from ..optim import OneCycle
    from ..training import LearningRateScheduler, ModelCheckpoint

    start_ns = time.time_ns()
    given = {k: getattr(args, k) for k in _resume.SETTINGS}
    ckpt = None
    if args.resume is not None:
        ckpt, s, resume_note = _load_resume(args.resume, given)
    else:
        s = _resolve(given)
    out_path = args.out or args.resume or "model.npz"
    _check_out(out_path)
    if args.plot is not None and (not args.plot.lower().endswith(".png")
                                  or not os.path.isdir(os.path.dirname(os.path.abspath(args.plot)))):
        raise CLIError(f"cannot write --plot {args.plot}: give a .png file in an existing folder")
    name, epochs, batch_size, lr = s["model"], s["epochs"], s["batch_size"], s["lr"]
    initial = 0 if ckpt is None else ckpt.epoch
    if initial >= epochs:
        raise CLIError(f"{args.resume} already holds all {initial} epochs of its run (--epochs "
                       f"{epochs}); give --epochs N with N > {initial} to train it further")

    input_shape = (tuple(ckpt.model.input_shape) if ckpt is not None
                   else tuple(models.default_input_shape(name)))
    d = load_train_test(s["data"], s["data_dir"], input_shape, s["limit"], s["seed"])
    x, y = d["x"], d["y"]
    if ckpt is not None:
        model = ckpt.model
        check_input_fits(model, x, d["where"])
        if tuple(model.output_shape) != (d["num_classes"],):
            raise CLIError(f"cannot resume from {args.resume}: the model has "
                           f"{model.output_shape[-1]} outputs but the data has "
                           f"{d['num_classes']} classes")
    else:
        try:
            model = models.get(name, num_classes=d["num_classes"],
                               input_shape=tuple(x.shape[1:]), seed=s["seed"])
        except ValueError as e:
            raise CLIError(f"cannot build {name} for images of shape {tuple(x.shape[1:])}: "
                           f"{e}") from None

    _check_split(len(x), s["val_split"], s["limit"], d["where"])
    if s["val_split"] > 0:
        xtr, ytr, xv, yv = train_val_split(x, y, s["val_split"], rng=s["seed"])
        val = (xv, yv)
        val_text = (f"{len(xv):,} images held out at random from the {len(x):,} training "
                    f"images ({s['val_split']:.0%}; never trained on)")
    else:
        xtr, ytr, val = x, y, None
        val_text = "none (--val-split 0)"
    if ckpt is None:
        for layer in model.layers:  # cifar_airbench's PatchWhitening: fitted to data, not trained
            if hasattr(layer, "adapt"):
                layer.adapt(xtr[:5000])
    steps = -(-len(xtr) // batch_size)
    optimizer = ckpt.optimizer if ckpt is not None else _optimizer(s["optimizer"], lr)
    checkpoint = ModelCheckpoint(out_path, save_best_only=False)
    callbacks = [_settings_writer(out_path, s), checkpoint]
    if s["schedule"] == "onecycle":
        callbacks.append(LearningRateScheduler(OneCycle(lr, max(epochs * steps, 2), pct_start=0.25)))
    recipe = _recipe_key(s["data"], input_shape[0])
    augment = None if s["no_augment"] else _augmenter(DEFAULTS[recipe]["augment"])

    out = sys.stdout
    if args.distributed:  # every rank trains; rank 0 alone prints (cnnlab.distributed)
        from ..distributed import root_stream
        out = root_stream(out)
    print(f"cnnlab train: {name} ({model.count_params():,} parameters) on {d['where']}", file=out)
    if d["classes"] is not None:
        shown = ", ".join(d["classes"][:10]) + (", ..." if len(d["classes"]) > 10 else "")
        print(f"  classes:    {d['num_classes']} ({shown})", file=out)
    if ckpt is not None:
        print(f"  resuming:   {args.resume} holds epoch {initial}/{epochs}; continuing with "
              f"epoch {initial + 1} ({resume_note})", file=out)
    print(f"  training:   {len(xtr):,} images of shape {tuple(x.shape[1:])}, {epochs} epochs, "
          f"batch {batch_size}, {s['optimizer']} lr {lr:g} ({s['schedule']}), augmentation "
          f"{'off' if augment is None else AUGMENT_TEXT[DEFAULTS[recipe]['augment']]}, seed "
          f"{s['seed']}", file=out)
    print(f"  validation: {val_text}", file=out)
    test_text = (f"{len(d['xt']):,} images ({d['twhere']}), evaluated once at the end"
                 if d["xt"] is not None else d["twhere"])
    print(f"  test:       {test_text}", file=out)
    print(f"  machine:    {machine()}", file=out, flush=True)
    if args.distributed:
        from ..distributed import size
        print(f"  ranks:      {size()} MPI processes, each with its share of every batch", file=out)

    t0 = time.perf_counter()
    try:
        history = model.fit(xtr, ytr, epochs=epochs, batch_size=batch_size, optimizer=optimizer,
                            validation_data=val, callbacks=callbacks, seed=s["seed"],
                            verbose=2 if args.quiet else 1, augment=augment,
                            initial_epoch=initial, distributed=args.distributed)
    except KeyboardInterrupt:
        return _interrupted(out_path, checkpoint.saved, initial, epochs, args.resume, start_ns)
    train_time = time.perf_counter() - t0
    epochs_run = initial + len(history.history["loss"])
    summary = ""
    if val is not None:
        accs = history.history["val_accuracy"]
        summary = (f"; validation accuracy {accs[-1]:.2%} at the end (best {max(accs):.2%}, "
                   f"epoch {initial + int(np.argmax(accs)) + 1})")
    print(f"trained in {train_time:.1f} s{summary}", file=out)
    print(f"checkpoint {out_path}: the model after epoch {epochs_run} (saved every epoch; "
          f"nothing is selected on the test set)", file=out)
    if d["xt"] is not None:
        result = model.evaluate(d["xt"], d["yt"], distributed=args.distributed)
        print(f"test accuracy {result['accuracy']:.2%} (loss {result['loss']:.4f}) on "
              f"{len(d['xt']):,} test images ({d['twhere']})", file=out, flush=True)
    if args.plot is not None and len(history) and (not args.distributed or _is_root()):
        history.plot(args.plot)
        print(f"training curves: {args.plot}", file=out, flush=True)
    return 0


def _is_root():
    from ..distributed import is_root
    return is_root()
