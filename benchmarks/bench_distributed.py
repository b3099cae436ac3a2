"""Data-parallel training speed: 1 process x 2 threads vs 2 MPI ranks x 1 thread, and a
ring-allreduce projection to clusters (not part of the test suite).

    python benchmarks/bench_distributed.py                 # both nets, both layouts
    python benchmarks/bench_distributed.py --models lenet5 --steps 20

For each net (LeNet-5 on 1x28x28, batch 64; cifar_resnet on 3x32x32, batch 128) it trains
on random data of the right shape with SGD + momentum, first ``--warmup`` steps untimed:

- ``1 x 2``: one process, cnnlab and BLAS with 2 threads, ``fit(distributed=False)``;
- ``2 x 1``: ``mpiexec -n 2``, 1 thread per rank, ``fit(distributed=True)``, the global
  batch split in two. It reports the time spent inside ``Allreduce`` per step (waiting for
  the slower rank included), and, after training, the time of the same Allreduce alone
  (both ranks lined up by a barrier first): the pure communication cost.

The projection (printed after the measurements) models N nodes, each as fast as the
measured ``1 x 2`` process, exchanging the gradients with a ring allreduce:

    t_allreduce(N) = 2 (N - 1) / N * bytes / bandwidth + 2 (N - 1) * latency
    efficiency(N, b) = t_compute(b) / (t_compute(b) + t_allreduce(N))   (no overlap)

with t_compute(b) = b / (images/s of one node), b the batch per node, the global batch
N * b. Latency: 20 us per message at 10 Gbit/s (TCP over Ethernet), 2 us at 100 Gbit/s
(InfiniBand-class). It prints the efficiency at the measured per-node batch and the
smallest global batch that keeps it at or above 90 %.

``--node-rate lenet5=15989 --project-only`` skips the measurements and projects from a
given one-node speed (images/s; e.g. the README's unloaded figures), the allreduced bytes
computed from the model.

Timings on a shared machine are only indicative: the script prints the load average.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

NETS = {"lenet5": ((1, 28, 28), 64), "cifar_resnet": ((3, 32, 32), 128)}
NETWORKS = [("10 Gbit/s", 10e9, 20e-6), ("100 Gbit/s", 100e9, 2e-6)]


def machine():
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return (f"{time.strftime('%Y-%m-%d %H:%M:%S')}, {platform.node()}, {os.cpu_count()} CPUs "
            f"({platform.processor() or platform.machine()}), Python "
            f"{platform.python_version()}, NumPy {np.__version__}, load average "
            f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


# ------------------------------------------------------------------------------ worker

def worker(args):
    """Train ``args.model`` for warmup + steps batches; print one JSON line (rank 0)."""
    import cnnlab as cl
    import cnnlab.models as zoo
    from cnnlab.optim import SGD
    from cnnlab.training import Callback

    cl.set_num_threads(args.threads)
    cl.keep_freed_memory()  # the allocator setting the CLI runs with
    shape, batch = NETS[args.model]
    total = args.warmup + args.steps
    rng = np.random.default_rng(0)
    x = rng.random((total * batch,) + shape, dtype=np.float32)
    y = rng.integers(0, 10, total * batch)
    model = zoo.get(args.model, num_classes=10, input_shape=shape, seed=0)

    timer = {"allreduce": 0.0, "calls": 0, "bytes": 0}
    dist = None
    if args.distributed:
        import cnnlab.distributed as dist
        from cnnlab.distributed import FlatBuffers

        plain = FlatBuffers.allreduce

        def timed(self, comm):
            t0 = time.perf_counter()
            plain(self, comm)
            if timer.get("on"):
                timer["allreduce"] += time.perf_counter() - t0
                timer["calls"] += 1
            timer["bytes"] = self.nbytes()
            timer["buffers"] = self

        FlatBuffers.allreduce = timed

    class Clock(Callback):
        def on_batch_begin(self, batch, logs=None):
            if batch == args.warmup:
                timer["on"], timer["t0"] = True, time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            timer["t1"] = time.perf_counter()

    model.fit(x, y, epochs=1, batch_size=batch, optimizer=SGD(0.01, momentum=0.9), seed=0,
              verbose=0, callbacks=[Clock()], distributed=args.distributed)
    result = {"model": args.model, "params": model.count_params(), "batch": batch,
              "steps": args.steps, "seconds": timer["t1"] - timer["t0"]}
    result["images_per_s"] = args.steps * batch / result["seconds"]
    if dist is not None:
        comm = dist.world()
        bufs = timer["buffers"]
        result["allreduce_in_fit_ms"] = 1e3 * timer["allreduce"] / max(timer["calls"], 1)
        result["allreduce_bytes"] = timer["bytes"]
        timer["on"] = False
        alone = []
        for _ in range(20):  # the same exchange with both ranks ready: pure communication
            comm.Barrier()
            t0 = time.perf_counter()
            bufs.allreduce(comm)
            alone.append(time.perf_counter() - t0)
        result["allreduce_alone_ms"] = 1e3 * float(np.median(alone))
        if dist.rank() != 0:
            return
    print("RESULT " + json.dumps(result), flush=True)


# ------------------------------------------------------------------------------ launcher

def run(model, threads, ranks, args):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads), CNNLAB_NUM_THREADS=str(threads),
               OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--model", model,
           "--threads", str(threads), "--steps", str(args.steps), "--warmup", str(args.warmup)]
    if ranks > 1:
        exe = os.path.join(os.path.dirname(sys.executable), "mpiexec")
        exe = exe if os.path.exists(exe) else shutil.which("mpiexec")
        if exe is None:
            sys.exit("mpiexec not found: pip install 'cnnlab[mpi]'")
        cmd = [exe, "--oversubscribe", "-n", str(ranks), *cmd, "--distributed"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.exit(f"benchmark run failed ({' '.join(cmd)}):\n{proc.stdout}\n{proc.stderr}")
    return json.loads(lines[-1][len("RESULT "):])


def ring_allreduce_s(nbytes, nodes, bandwidth_bits, latency):
    """Seconds for a ring allreduce of nbytes over ``nodes`` (bandwidth in bit/s)."""
    if nodes == 1:
        return 0.0
    return (2 * (nodes - 1) / nodes * nbytes * 8 / bandwidth_bits
            + 2 * (nodes - 1) * latency)


def allreduce_bytes(model):
    """Bytes fit(distributed=True) allreduces per step for a zoo model: its parameters and
    running statistics, and 3 numbers of batch figures (float32)."""
    import cnnlab.models as zoo

    net = zoo.get(model, num_classes=10, input_shape=NETS[model][0], seed=0)
    return 4 * (net.count_params() + net.count_state() + 3)


def projection(one, nbytes):
    """Lines: efficiency at the measured batch per node, and the global batch for 90 %."""
    per_image = 1.0 / one["images_per_s"]
    b = one["batch"]
    lines = []
    for label, bw, lat in NETWORKS:
        for nodes in (8, 64):
            t_ar = ring_allreduce_s(nbytes, nodes, bw, lat)
            eff = b * per_image / (b * per_image + t_ar)
            # efficiency >= 0.9  <=>  b * per_image >= 9 * t_ar
            b90 = max(1, int(np.ceil(9 * t_ar / per_image)))
            lines.append(f"    {nodes:3d} nodes, {label:>10}: allreduce {1e3 * t_ar:7.2f} ms, "
                         f"efficiency {eff:6.1%} at {b} images/node (global {nodes * b}); "
                         f">= 90 % from {b90} images/node (global batch {nodes * b90:,})")
    return lines


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=list(NETS), choices=list(NETS))
    p.add_argument("--steps", type=int, default=20, help="timed steps (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed first steps (default 3)")
    p.add_argument("--node-rate", nargs="+", default=[], metavar="MODEL=IMG_PER_S",
                   help="one node's training speed to project from, instead of measuring")
    p.add_argument("--project-only", action="store_true",
                   help="no measurements: project from --node-rate only")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--distributed", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)

    print(f"bench_distributed: {machine()}")
    rates = dict(item.split("=") for item in args.node_rate)
    if args.project_only:
        for model, rate in rates.items():
            nbytes = allreduce_bytes(model)
            print(f"\n{model}: projection from {float(rate):.0f} images/s per node, "
                  f"{nbytes / 1e6:.2f} MB allreduced per step:")
            one = {"images_per_s": float(rate), "batch": NETS[model][1]}
            print("\n".join(projection(one, nbytes)))
        return None
    for model in args.models:
        one = run(model, threads=2, ranks=1, args=args)
        two = run(model, threads=1, ranks=2, args=args)
        print(f"\n{model} ({one['params']:,} parameters, {two['allreduce_bytes'] / 1e6:.2f} MB "
              f"allreduced per step), global batch {one['batch']}, {args.steps} timed steps:")
        print(f"  1 process x 2 threads: {one['images_per_s']:8.1f} images/s")
        print(f"  2 ranks   x 1 thread:  {two['images_per_s']:8.1f} images/s "
              f"({two['images_per_s'] / one['images_per_s']:.2f}x); Allreduce "
              f"{two['allreduce_in_fit_ms']:.2f} ms per step in fit (waiting for the other "
              f"rank included), {two['allreduce_alone_ms']:.3f} ms alone "
              f"({100 * two['allreduce_in_fit_ms'] * 1e-3 * two['images_per_s'] / two['batch']:.1f} "
              f"% of a step)")
        print("  projection (ring allreduce, nodes as fast as '1 x 2', no overlap):")
        print("\n".join(projection(one, two["allreduce_bytes"])))
    print(f"\nend: {machine()}")


if __name__ == "__main__":
    main()
