"""One LeNet-5 training epoch on MNIST (24,000 images): cnnlab against the same net in PyTorch.

    python benchmarks/bench_train.py [--data ../shared/data/mnist] [--threads 2] [--epochs 1] [--rounds 3]

Each framework runs in its own process (so peak resident memory is its own), same net
(conv 6@5x5 pad 2 - relu - maxpool 2 - conv 16@5x5 - relu - maxpool 2 - fc 120 - relu -
fc 84 - relu - fc 10), same batch size (64), same optimizer (SGD, lr 0.05, momentum 0.9),
float32. Prints seconds per epoch, images per second, peak RSS, test accuracy, and
inference throughput on the 10,000 test images; then the ratios. The two frameworks run
alternately `rounds` times and the fastest run of each is reported.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "data", "mnist"))


def _args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=DEFAULT_DATA, help="directory with the MNIST IDX files")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--rounds", type=int, default=3,
                   help="runs per framework, alternating; the fastest epoch and inference of "
                        "each are reported (timings on this VM drift by 5-10%% between runs)")
    p.add_argument("--framework", choices=["cnnlab", "torch"], help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def run_cnnlab(a):
    import numpy as np

    import cnnlab as cl
    from cnnlab.data import load_mnist
    from cnnlab.models import lenet5

    cl.keep_freed_memory()  # the allocator setting the CLI runs with
    x, y = load_mnist(a.data, split="train")
    xt, yt = load_mnist(a.data, split="test")
    model = lenet5(seed=0)
    opt = cl.optim.SGD(lr=a.lr, momentum=0.9)
    t0 = time.perf_counter()
    model.fit(x, y, epochs=a.epochs, batch_size=a.batch_size, optimizer=opt, verbose=0, seed=0)
    train_s = (time.perf_counter() - t0) / a.epochs
    model.predict(xt[:512], batch_size=512)  # warm-up
    t0 = time.perf_counter()
    probs = model.predict(xt, batch_size=512)
    infer_s = time.perf_counter() - t0
    acc = float((probs.argmax(1) == yt).mean())
    return dict(n_train=len(x), n_test=len(xt), train_s=train_s, infer_s=infer_s, acc=acc,
                rss=_peak_rss_mib(), numpy=np.__version__)


def run_torch(a):
    import numpy as np
    import torch
    from torch import nn

    from cnnlab.data import load_mnist

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    x, y = load_mnist(a.data, split="train")
    xt, yt = load_mnist(a.data, split="test")
    net = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
    opt = torch.optim.SGD(net.parameters(), lr=a.lr, momentum=0.9)
    X, Y = torch.from_numpy(x), torch.from_numpy(y)
    g = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    for _ in range(a.epochs):
        perm = torch.randperm(len(X), generator=g)
        for i in range(0, len(X), a.batch_size):
            idx = perm[i:i + a.batch_size]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(net(X[idx]), Y[idx])
            loss.backward()
            opt.step()
    train_s = (time.perf_counter() - t0) / a.epochs
    XT = torch.from_numpy(xt)
    with torch.no_grad():
        net(XT[:512])
        t0 = time.perf_counter()
        preds = torch.cat([net(XT[i:i + 512]).softmax(1) for i in range(0, len(XT), 512)])
        infer_s = time.perf_counter() - t0
    acc = float((preds.argmax(1).numpy() == yt).mean())
    return dict(n_train=len(x), n_test=len(xt), train_s=train_s, infer_s=infer_s, acc=acc,
                rss=_peak_rss_mib(), torch=torch.__version__, numpy=np.__version__)


def main():
    a = _args()
    if a.framework:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, str(a.threads))
        res = run_cnnlab(a) if a.framework == "cnnlab" else run_torch(a)
        print("RESULT " + json.dumps(res))
        return
    env = dict(os.environ, **{v: str(a.threads) for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")})
    runs = {"torch": [], "cnnlab": []}
    for _ in range(max(1, a.rounds)):
        for fw in runs:
            cmd = [sys.executable, __file__, "--framework", fw, "--data", a.data, "--threads", str(a.threads),
                   "--epochs", str(a.epochs), "--batch-size", str(a.batch_size), "--lr", str(a.lr)]
            out = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if out.returncode != 0:
                sys.exit(f"{fw} run failed:\n{out.stderr}")
            line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")][-1]
            runs[fw].append(json.loads(line[len("RESULT "):]))
    results = {}
    for fw, rs in runs.items():  # fastest of the rounds; memory and accuracy do not vary
        results[fw] = dict(rs[0], train_s=min(r["train_s"] for r in rs), infer_s=min(r["infer_s"] for r in rs),
                           rss=max(r["rss"] for r in rs))
    print(f"LeNet-5, MNIST {results['torch']['n_train']} training images, batch {a.batch_size}, SGD momentum 0.9, "
          f"{a.threads} threads, {time.strftime('%Y-%m-%d')}")
    print(f"{'':10}{'s/epoch':>10}{'img/s':>10}{'infer img/s':>13}{'peak RSS MiB':>14}{'test acc':>10}")
    for fw, r in results.items():
        print(f"{fw:10}{r['train_s']:10.2f}{r['n_train'] / r['train_s']:10.0f}{r['n_test'] / r['infer_s']:13.0f}"
              f"{r['rss']:14.0f}{r['acc'] * 100:9.2f}%")
    c, t = results["cnnlab"], results["torch"]
    print(f"\nepoch time cnnlab/torch: {c['train_s'] / t['train_s']:.2f}x (target <= 1.25x);  "
          f"peak RSS cnnlab/torch: {c['rss'] / t['rss']:.2f}x (target <= 1.20x);  "
          f"inference speed cnnlab/torch: {t['infer_s'] / c['infer_s']:.2f}")


if __name__ == "__main__":
    main()
