"""The program the MPI tests run on every rank (not a test module).

    mpiexec -n 2 python tests/_mpi_worker.py '<json config>'

Also imported by tests/test_distributed.py, which runs ``train`` in one process with
``distributed=False`` as the reference. Config keys: out (file prefix), net ('plain':
conv/pool/dense, no batch norm or dropout; 'bn': with batch norm), dtype, epochs, sync
(sync_batchnorm), ckpt (ModelCheckpoint path pattern or null), resume (checkpoint to
resume from or null), fail ([rank, epoch, batch, 'raise' | 'die'] or null), mismatch
(rank 1 drops a sample). The argument may also be a list of configs, run one after the
other in the same launch.
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))  # the checkout's cnnlab

import cnnlab as cl
from cnnlab.layers import BatchNorm, Conv2D, Dense, Flatten, MaxPool2D, ReLU
from cnnlab.optim import SGD
from cnnlab.training import Callback, ModelCheckpoint

# 161 = 5 batches of 32 + 1: the last global batch has one sample, so with two ranks
# rank 0 has none and runs the weight-0 stand-in
N, BATCH, SEED = 161, 32, 7


def data(dtype="float32", n=N):
    """A small learnable problem: the class is the quadrant of the brightest blob."""
    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, n)
    x = rng.standard_normal((n, 1, 10, 10)) * 0.5
    for i, c in enumerate(y):
        r, q = divmod(int(c), 2)
        x[i, 0, 5 * r:5 * r + 5, 5 * q:5 * q + 5] += 1.0
    return x.astype(dtype), y.astype(np.int64)


def net(kind, dtype="float32"):
    def bn():
        return [BatchNorm()] if kind == "bn" else []

    return cl.Sequential([Conv2D(6, 3, padding="same"), *bn(), ReLU(), MaxPool2D(2),
                          Conv2D(8, 3), *bn(), ReLU(), Flatten(),
                          Dense(16), *bn(), ReLU(), Dense(4)],
                         input_shape=(1, 10, 10), seed=SEED, dtype=np.dtype(dtype))


class FailAt(Callback):
    """On (rank, epoch, batch): raise (a bug or a bad file on one rank only) or die (the
    process ends at once, as if killed)."""

    def __init__(self, rank, epoch, batch, how, me):
        self.at, self.how, self.me, self.epoch = (rank, epoch, batch), how, me, None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_batch_end(self, batch, logs=None):
        if (self.me, self.epoch, batch) == self.at:
            if self.how == "die":
                os._exit(3)
            raise RuntimeError(f"injected failure on rank {self.me}, epoch {self.epoch}, "
                               f"batch {batch}")


def train(cfg, distributed):
    """Train as ``cfg`` says -> (model, history)."""
    dtype = cfg.get("dtype", "float32")
    x, y = data(dtype)
    me = 0
    if distributed:
        import cnnlab.distributed as dist
        me = dist.rank()
        if cfg.get("mismatch") and me == 1:
            x, y = x[:-1], y[:-1]
    callbacks = []
    if cfg.get("ckpt"):
        callbacks.append(ModelCheckpoint(cfg["ckpt"], save_best_only=False))
    if cfg.get("fail"):
        callbacks.append(FailAt(*cfg["fail"], me))
    initial_epoch = 0
    if cfg.get("resume"):
        ck = cl.training.load_checkpoint(cfg["resume"])
        model, optimizer, initial_epoch = ck.model, ck.optimizer, ck.epoch
    else:
        model, optimizer = net(cfg["net"], dtype), SGD(0.05, momentum=0.9)
    for i in cfg.get("freeze", ()):
        model.layers[i].trainable = False
    saves = cfg["out"] + f".saves-rank{me}"
    plain_save = model.save

    def logged_save(path, *args, **kwargs):  # which rank writes checkpoints
        with open(saves, "a") as f:
            f.write(f"{path}\n")
        plain_save(path, *args, **kwargs)

    model.save = logged_save
    xv, yv = data(dtype, 57)
    history = model.fit(x, y, epochs=cfg["epochs"], batch_size=BATCH, optimizer=optimizer,
                        seed=SEED, verbose=0, callbacks=callbacks, initial_epoch=initial_epoch,
                        validation_data=(xv, yv), distributed=distributed,
                        sync_batchnorm=cfg.get("sync", False))
    return model, history


def main():
    cfgs = json.loads(sys.argv[1])
    for cfg in cfgs if isinstance(cfgs, list) else [cfgs]:
        run(cfg)


def run(cfg):
    import cnnlab.distributed as dist
    model, history = train(cfg, distributed=True)
    xt, yt = data(cfg.get("dtype", "float32"), 45)
    res = model.evaluate(xt, yt, batch_size=16, distributed=True)
    probs = model.predict(xt, batch_size=16, distributed=True)
    if dist.is_root():
        np.savez(cfg["out"] + ".npz", **model.get_weights(), __probs=probs,
                 __eval=np.array([res["loss"], res["accuracy"]]),
                 __loss=np.array(history.history["loss"]),
                 __val_loss=np.array(history.history["val_loss"]),
                 __size=np.array(dist.size()))


if __name__ == "__main__":
    main()
