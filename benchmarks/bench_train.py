"""Training speed of cnnlab against the same net in PyTorch: one LeNet-5 epoch on MNIST
(24,000 images), and cifar_resnet's training throughput on CIFAR-shaped data.

    python benchmarks/bench_train.py [--data ../shared/data/mnist] [--threads 2] [--epochs 1] [--rounds 3]
    python benchmarks/bench_train.py --threads 2 --nets cifar [--cifar-steps 30]   # one of the two

Each framework runs in its own process (so peak resident memory is its own), same net
(conv 6@5x5 pad 2 - relu - maxpool 2 - conv 16@5x5 - relu - maxpool 2 - fc 120 - relu -
fc 84 - relu - fc 10), same batch size (64), same optimizer (SGD, lr 0.05, momentum 0.9),
float32. Prints seconds per epoch, images per second, peak RSS, test accuracy, and
inference throughput on the 10,000 test images; then the ratios. The two frameworks run
alternately `rounds` times and the fastest run of each is reported.

cifar: ``cnnlab.models.cifar_resnet`` at its default widths against its PyTorch mirror
(``build`` of ``benchmarks/pretrain_cifar_torch.py``, the net whose weights cnnlab's
importer maps layer for layer; the parameter counts are checked equal), batch 128, SGD
Nesterov momentum 0.9, weight decay 5e-4 on every array (what cnnlab's SGD does; torch gets
one parameter group to match), float32, on synthetic CIFAR-shaped data (uniform in
[-0.5, 0.5), random labels: the speed hardly depends on the values; both processes hold
the same (warm-up + timed steps) x 128 images, 52 MB by default). Each process trains
``--cifar-warmup`` untimed steps (first-call allocations), then times ``--cifar-steps``
steps -- cnnlab through ``Model.fit``, torch through the same loop as LeNet's -- and
reports images/s and its peak RSS. Both frameworks run on ``--threads`` threads
(``cnnlab.set_num_threads``, ``torch.set_num_threads``; checked equal), alternately,
``--rounds`` times, fastest run of each reported. ``--nets`` picks the benchmarks.

airbench: ``cnnlab.models.cifar_airbench`` (64/256/256) against the same net in PyTorch
(``benchmarks/airbench_torch.py``; its whitening weights frozen, as cnnlab keeps them as
state), batch 512, SGD Nesterov momentum 0.85, weight decay 1.33e-3, label smoothing 0.2:
the recipe of ``bench_accuracy.py --task cifar-best --model cifar_airbench``. Timed like
cifar, with ``--airbench-steps`` (default 8) steps after one untimed step.
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
sys.path.insert(0, os.path.dirname(HERE))  # the workers measure this checkout's cnnlab
DEFAULT_DATA = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "data", "mnist"))
NETS = ("lenet", "cifar", "airbench")
# the cifar benchmark's net and recipe (bench_accuracy.py --task cifar-best trains with it)
CIFAR_WIDTHS = (16, 32, 64, 128)  # cifar_resnet's defaults
CIFAR = dict(batch_size=128, lr=0.2, momentum=0.9, nesterov=True, weight_decay=5e-4)
# the airbench benchmark's net and recipe (bench_accuracy.py --task cifar-best --model
# cifar_airbench trains with it)
AIRBENCH_WIDTHS = (64, 256, 256)
AIRBENCH = dict(batch_size=512, lr=0.75, momentum=0.85, nesterov=True, weight_decay=1.33e-3,
                label_smoothing=0.2)


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
    p.add_argument("--nets", nargs="+", choices=NETS, default=list(NETS),
                   help="which benchmarks (default both): lenet (an MNIST epoch) and cifar "
                        "(cifar_resnet training throughput on synthetic CIFAR-shaped data)")
    p.add_argument("--cifar-steps", type=int, default=30,
                   help="timed training steps of the cifar benchmark (default 30)")
    p.add_argument("--cifar-warmup", type=int, default=3,
                   help="untimed training steps before them (default 3)")
    p.add_argument("--airbench-steps", type=int, default=8,
                   help="timed training steps of the airbench benchmark (default 8, batch 512)")
    p.add_argument("--framework", choices=["cnnlab", "torch"], help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.threads < 1 or a.rounds < 1 or a.cifar_steps < 1 or a.cifar_warmup < 0 or a.airbench_steps < 1:
        p.error(f"--threads, --rounds and --cifar-steps must be >= 1 and --cifar-warmup >= 0, "
                f"got {a.threads}, {a.rounds}, {a.cifar_steps} and {a.cifar_warmup} (and "
                f"--airbench-steps {a.airbench_steps})")
    return a


def _peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def run_cnnlab(a):
    import numpy as np

    import cnnlab as cl
    from cnnlab.data import load_mnist
    from cnnlab.models import lenet5

    cl.keep_freed_memory()  # the allocator setting the CLI runs with
    cl.set_num_threads(a.threads)
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
                rss=_peak_rss_mib(), threads=cl.get_num_threads(), numpy=np.__version__)


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
                rss=_peak_rss_mib(), threads=torch.get_num_threads(), torch=torch.__version__,
                numpy=np.__version__)


def _synthetic_cifar(steps, batch_size):
    """(x, y): ``steps`` batches (warm-up + timed) of CIFAR-shaped float32 images and
    labels, the same in both processes."""
    import numpy as np

    n = steps * batch_size
    rng = np.random.default_rng(0)
    x = rng.random((n, 3, 32, 32), dtype=np.float32) - np.float32(0.5)
    return x, rng.integers(0, 10, n)


def _cifar_spec(a, net):
    """(zoo model, PyTorch mirror module, widths, recipe, warm-up steps, timed steps) of
    the cifar or airbench benchmark."""
    if net == "airbench":
        return "cifar_airbench", "airbench_torch", AIRBENCH_WIDTHS, AIRBENCH, 1, a.airbench_steps
    return "cifar_resnet", "pretrain_cifar_torch", CIFAR_WIDTHS, CIFAR, a.cifar_warmup, a.cifar_steps


def run_cnnlab_cifar(a, net="cifar"):
    import functools

    import numpy as np

    import cnnlab as cl
    from cnnlab.models import get

    name, _, widths, c, warm_steps, steps = _cifar_spec(a, net)
    cl.keep_freed_memory()  # the allocator setting the CLI runs with
    cl.set_num_threads(a.threads)
    bs = c["batch_size"]
    x, y = _synthetic_cifar(warm_steps + steps, bs)
    model = get(name, widths=widths, seed=0)
    opt = cl.optim.SGD(lr=c["lr"], momentum=c["momentum"], nesterov=c["nesterov"],
                       weight_decay=c["weight_decay"])
    smooth = c.get("label_smoothing", 0.0)
    loss = functools.partial(cl.functional.softmax_loss, label_smoothing=smooth) if smooth else "softmax"
    warm = warm_steps * bs
    if warm:
        model.fit(x[:warm], y[:warm], epochs=1, batch_size=bs, optimizer=opt, loss=loss, verbose=0,
                  seed=0)
    t0 = time.perf_counter()
    model.fit(x[warm:], y[warm:], epochs=1, batch_size=bs, optimizer=opt, loss=loss, verbose=0, seed=1)
    train_s = time.perf_counter() - t0
    return dict(n_train=len(x) - warm, steps=steps, train_s=train_s, rss=_peak_rss_mib(),
                params=model.count_params(), threads=cl.get_num_threads(), numpy=np.__version__)


def run_torch_cifar(a, net="cifar"):
    import importlib

    import numpy as np
    import torch
    from torch import nn

    _, mirror, widths, c, warm_steps, steps = _cifar_spec(a, net)
    build = importlib.import_module(mirror).build  # the zoo net's layer-for-layer mirror
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    bs = c["batch_size"]
    x, y = _synthetic_cifar(warm_steps + steps, bs)
    net = build(widths).train()
    # one parameter group: cnnlab's SGD decays every array, batch norms' included (the
    # airbench mirror's frozen whitening weights are cnnlab's state, not parameters)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=c["lr"], momentum=c["momentum"], nesterov=c["nesterov"],
                          weight_decay=c["weight_decay"])
    smooth = c.get("label_smoothing", 0.0)
    X, Y = torch.from_numpy(x), torch.from_numpy(y)
    warm = warm_steps * bs
    g = torch.Generator().manual_seed(0)

    def train(lo, hi):
        perm = lo + torch.randperm(hi - lo, generator=g)
        for i in range(0, hi - lo, bs):
            idx = perm[i:i + bs]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(net(X[idx]), Y[idx], label_smoothing=smooth)
            loss.backward()
            opt.step()

    train(0, warm)
    t0 = time.perf_counter()
    train(warm, len(X))
    train_s = time.perf_counter() - t0
    return dict(n_train=len(x) - warm, steps=steps, train_s=train_s, rss=_peak_rss_mib(),
                params=sum(p.numel() for p in params), threads=torch.get_num_threads(),
                torch=torch.__version__, numpy=np.__version__)


RUNNERS = {("lenet", "cnnlab"): run_cnnlab, ("lenet", "torch"): run_torch,
           ("cifar", "cnnlab"): run_cnnlab_cifar, ("cifar", "torch"): run_torch_cifar,
           ("airbench", "cnnlab"): lambda a: run_cnnlab_cifar(a, "airbench"),
           ("airbench", "torch"): lambda a: run_torch_cifar(a, "airbench")}


def _measure(a, net, env):
    """Run each framework's worker `rounds` times, alternately. -> {framework: [result]}"""
    runs = {"torch": [], "cnnlab": []}
    for _ in range(a.rounds):
        for fw in runs:
            cmd = [sys.executable, __file__, "--framework", fw, "--nets", net, "--data", a.data,
                   "--threads", str(a.threads), "--epochs", str(a.epochs), "--batch-size",
                   str(a.batch_size), "--lr", str(a.lr), "--cifar-steps", str(a.cifar_steps),
                   "--cifar-warmup", str(a.cifar_warmup), "--airbench-steps",
                   str(a.airbench_steps)]
            out = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if out.returncode != 0:
                sys.exit(f"{fw} {net} run failed:\n{out.stderr}")
            line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")][-1]
            runs[fw].append(json.loads(line[len("RESULT "):]))
    for key in ("threads", "params"):  # the same work on both sides, or no comparison
        seen = {fw: rs[0][key] for fw, rs in runs.items() if key in rs[0]}
        if len(set(seen.values())) > 1:
            sys.exit(f"{net}: the frameworks differ in {key}: {seen}")
    return runs


def report_cifar(a, runs, net="cifar"):
    results = {fw: dict(rs[0], train_s=min(r["train_s"] for r in rs), rss=max(r["rss"] for r in rs))
               for fw, rs in runs.items()}
    name, _, widths, c, warm, steps = _cifar_spec(a, net)
    extra = f" label smoothing {c['label_smoothing']:g}" if "label_smoothing" in c else ""
    print(f"{name} widths {'-'.join(map(str, widths))} ({results['torch']['params']:,} "
          f"parameters), synthetic 3x32x32 data, batch {c['batch_size']}, SGD Nesterov momentum "
          f"{c['momentum']:g} weight decay {c['weight_decay']:g} lr {c['lr']:g}{extra}, float32, "
          f"{a.threads} threads, {steps} timed steps after {warm}, "
          f"{time.strftime('%Y-%m-%d')}")
    print(f"{'':10}{'s/step':>10}{'img/s':>10}{'peak RSS MiB':>14}")
    for fw, r in results.items():
        print(f"{fw:10}{r['train_s'] / r['steps']:10.3f}{r['n_train'] / r['train_s']:10.0f}{r['rss']:14.0f}")
    cn, t = results["cnnlab"], results["torch"]
    print(f"\ntraining speed cnnlab/torch: {t['train_s'] / cn['train_s']:.2f}x (target >= 1.0x);  "
          f"peak RSS cnnlab/torch: {cn['rss'] / t['rss']:.2f}x (target <= 1.0x)")


def report_lenet(a, runs):
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


def main():
    a = _args()
    if a.framework:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, str(a.threads))
        res = RUNNERS[a.nets[0], a.framework](a)
        print("RESULT " + json.dumps(res))
        return
    env = dict(os.environ, **{v: str(a.threads) for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")})
    nets = [n for n in NETS if n in a.nets]
    for i, net in enumerate(nets):
        if i:
            print()
        if net == "lenet":
            report_lenet(a, _measure(a, net, env))
        else:
            report_cifar(a, _measure(a, net, env), net)


if __name__ == "__main__":
    main()
