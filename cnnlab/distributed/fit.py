"""Data-parallel ``fit``: what the training loop asks of MPI, one object per fit call.

Semantics (the same as one process on the same global batches, up to summation order):

- ``batch_size`` is the global batch. Every rank shuffles with the same seed (rank 0's)
  and takes its contiguous share of each batch (shares differ by at most one sample).
- Rank 0's weights, batch-norm state and optimizer state are broadcast at the start.
- Each rank's loss gradient is scaled by its share k_r / K of the batch, so the sum over
  ranks of the parameter gradients is the gradient of the mean loss over the global
  batch. The sum is one in-place Allreduce per flat buffer (:class:`FlatBuffers`), which
  also carries the batch's loss, correct count and size, so every rank logs the global
  figures and every rank's optimizer takes the same step.
- Batch norm normalizes with per-rank statistics (as PyTorch DDP) unless
  ``sync_batchnorm``; the running statistics are averaged over the ranks after every step
  (weighted by share: the running mean is then exactly the one-process one).
- Dropout masks and augmentation draws differ per rank (their generators are derived from
  the loop's ones and the rank).
- A rank with no sample in a batch (the last batch shorter than the number of ranks) runs
  one stand-in sample so that every rank makes the same collective calls; its loss,
  gradients, batch-norm sums and running-statistics update all count with weight 0.
- Only rank 0 shows progress and runs callbacks marked ``root_only`` (ModelCheckpoint).
"""
from __future__ import annotations

import numpy as np

from . import checks, inference, syncbn
from .buffers import FlatBuffers
from .mpi import check_world, world
from .state import broadcast_model, broadcast_optimizer, leaves, param_arrays

#: DataParallel objects between construction and close(): an exception that leaves fit on a
#: world of one process (nothing to abort) still takes their batch-norm reducers off.
ACTIVE = []


def release_all():
    """Take the sync-BN reducers off every model of an unfinished distributed fit."""
    while ACTIVE:
        ACTIVE.pop().release()


class ScaledLoss:
    """The loop's loss, its gradient scaled by this rank's share of the current batch."""

    def __init__(self, inner, share):
        self.inner, self.share = inner, share

    def __call__(self, scores, y):
        value, dscores = self.inner(scores, y)
        w = self.share()
        if w == 0:  # a stand-in sample: no loss, no gradient (even if its scores overflow)
            return 0.0, np.zeros_like(dscores)
        return value, (dscores if w == 1.0 else dscores * np.asarray(w, dscores.dtype))


class DataParallel:
    """Set up a distributed fit (collective: every rank must construct it), then serve the
    loop's hooks: :meth:`shard`, :meth:`allreduce`, :meth:`evaluate`, :meth:`close`.

    Attributes the loop uses instead of its own: ``seed`` (rank 0's), ``loss_fn`` (scaled
    by share), ``augment`` (per-rank draws), ``callbacks`` (root-only ones dropped on
    other ranks), ``verbose`` (0 except on rank 0).
    """

    def __init__(self, model, x, y, optimizer, seed, loss_fn, augment=None, callbacks=None,
                 verbose=1, *, batch_size, epochs, initial_epoch=0, shuffle=True,
                 validation=None, sync_batchnorm=False):
        self.comm = world()
        self.size = check_world()
        self.rank = self.comm.Get_rank()
        self.model = model
        self.sync_batchnorm = bool(sync_batchnorm)
        sig = {"data": checks.data_signature(x, y), "model": checks.model_signature(model),
               "optimizer": checks.optimizer_signature(optimizer),
               "fit": {"batch_size": int(batch_size), "epochs": int(epochs),
                       "initial_epoch": int(initial_epoch), "shuffle": bool(shuffle),
                       "augment": augment is not None, "sync_batchnorm": self.sync_batchnorm,
                       "loss": getattr(loss_fn, "__name__", type(loss_fn).__name__)}}
        if validation is not None:
            sig["validation"] = checks.data_signature(*validation)
        checks.check_same(self.comm, sig)
        self.seed = self.comm.bcast(seed, root=0)  # seed=None drew fresh entropy per rank
        broadcast_model(model, self.comm)
        broadcast_optimizer(optimizer, self.comm)

        self.k_local, self.k_global = 1, 1
        self.loss_fn = ScaledLoss(loss_fn, lambda: self.k_local / self.k_global)
        self.augment = augment
        if augment is not None and self.size > 1:
            self.augment = lambda xb, rng: augment(xb, self._per_rank(rng))
        self.callbacks = [cb for cb in (callbacks or [])
                          if self.rank == 0 or not getattr(cb, "root_only", False)]
        self.verbose = verbose if self.rank == 0 else 0

        self._saved_reducers = []
        if self.sync_batchnorm:
            reducer = syncbn.SumOverRanks(self.comm, lambda: 1.0 if self.k_local else 0.0)
            self._saved_reducers = syncbn.attach(model, reducer)
            ACTIVE.append(self)
        synced = {id(layer) for layer, _ in self._saved_reducers}
        # running statistics of synced layers are already equal on every rank
        self.state = [a for leaf in leaves(model) if id(leaf) not in synced
                      for a in (getattr(leaf, "state", None) or {}).values()]
        params = [a for _, a in param_arrays(model)]
        self.n_params = len(params)
        stats_dtype = params[0].dtype if params else np.float64
        self.stats = np.zeros(3, dtype=stats_dtype)  # loss x share, correct, samples
        arrays = params + self.state + [self.stats]
        self.buffers = FlatBuffers([a.shape for a in arrays], [a.dtype for a in arrays])

    def _per_rank(self, rng):
        """A generator for this rank derived from ``rng`` (the loop's, equal on all ranks)."""
        return np.random.default_rng([int(rng.integers(2 ** 63)), self.rank])

    # ------------------------------------------------------------------ loop hooks
    def shard(self, idx, epoch, batch):
        """This rank's share of the global batch ``idx`` (sample indices). At the first
        batch of an epoch it also gives dropout layers per-rank generators (after the loop
        reseeded them from (seed, epoch))."""
        if batch == 0 and self.size > 1:
            for layer in leaves(self.model):
                if isinstance(getattr(layer, "rng", None), np.random.Generator):
                    layer.rng = self._per_rank(layer.rng)
        lo, hi = inference.shard(len(idx), self.rank, self.size)
        self.k_global, self.k_local = len(idx), hi - lo
        return idx[lo:hi] if hi > lo else idx[:1]  # stand-in sample, weight 0

    def allreduce(self, grads, value, correct):
        """Sum ``grads`` (in place) over the ranks, average the running statistics, and
        return the global batch's (mean loss, size, correct count)."""
        if len(grads) != self.n_params:
            raise ValueError(f"expected {self.n_params} gradient arrays, got {len(grads)}")
        w = self.k_local / self.k_global
        self.stats[:] = (value * self.k_local, correct if self.k_local else 0, self.k_local)
        arrays = list(grads) + self.state + [self.stats]
        # a stand-in's gradients are not all zero under sync batch norm (its dx mixes in
        # the other ranks' sums), so they are dropped here, not only scaled at the loss
        scales = [1.0 if self.k_local else 0.0] * len(grads) + [w] * len(self.state) + [1.0]
        self.buffers.pack(arrays, scales)
        self.buffers.allreduce(self.comm)
        self.buffers.unpack(arrays)
        k = round(float(self.stats[2]))
        return float(self.stats[0]) / k, k, round(float(self.stats[1]))

    def evaluate(self, model, x, y, batch_size=256, loss="softmax"):
        """Validation over all ranks' shards (see :func:`cnnlab.distributed.evaluate`)."""
        return inference.evaluate(model, x, y, batch_size=batch_size,
                                  loss=getattr(loss, "inner", loss), comm=self.comm)

    def close(self):
        """End of fit: take the reducers off, and give every rank rank 0's weights (they
        are already equal up to the last bit unless an MPI's Allreduce is not
        bitwise-reproducible across ranks; this makes it certain)."""
        self.release()
        broadcast_model(self.model, self.comm)

    def release(self):
        """Put back the batch-norm layers' own reducers (None): no MPI after fit."""
        syncbn.detach(self._saved_reducers)
        self._saved_reducers = []
        if self in ACTIVE:
            ACTIVE.remove(self)


__all__ = ["DataParallel", "ScaledLoss"]
