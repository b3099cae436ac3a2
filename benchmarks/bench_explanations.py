"""Which attribution method to trust on which net: deletion / insertion areas (Petsiuk et
al. 2018), Average Drop / Increase in Confidence (Chattopadhay et al. 2018) and time per
image for every method of cnnlab.viz.explainers, beside a random and a centre-blob map.
Not part of the test suite (minutes of CPU).

    python benchmarks/bench_explanations.py                      # shipped LeNet-5, 500 MNIST test digits
    python benchmarks/bench_explanations.py --model cifar_resnet  # shipped CIFAR-10 ResNet, 500 test images

Deletion AUC: lower is better (the class probability falls fast when the pixels the map
ranks first are removed). Insertion AUC: higher is better (it rises fast when they are
put back into a blurred copy). A method is worth a look only where it beats both
baselines. The first --n images of the official test split are used (no selection).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "data"))
sys.path.insert(0, os.path.dirname(HERE))

import cnnlab as cl  # noqa: E402
from cnnlab.viz.faithfulness import compare_methods, format_comparison  # noqa: E402


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_model(spec):
    if spec == "lenet5":
        from cnnlab.models import lenet5
        return lenet5(pretrained=True)
    if spec == "cifar_resnet":
        from cnnlab.models import cifar_resnet
        return cifar_resnet(pretrained=True)
    return cl.load_model(spec)


def load_data(name, n, data_dir):
    from cnnlab.data import load_cifar10, load_mnist
    if name == "mnist":
        return load_mnist(os.path.join(data_dir, "mnist"), split="test", limit=n)[0]
    return load_cifar10(os.path.join(data_dir, "cifar10"), split="test")[0][:n]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="lenet5",
                   help="'lenet5' / 'cifar_resnet' (the shipped pretrained nets) or a model file")
    p.add_argument("--data", choices=["mnist", "cifar10"], default=None,
                   help="test images (default: by the model's input shape)")
    p.add_argument("--data-dir", default=SHARED)
    p.add_argument("--n", type=int, default=500, help="test images (default 500)")
    p.add_argument("--steps", type=int, default=28, help="points per curve (default 28)")
    p.add_argument("--method", nargs="+", default=None, help="methods (default: all)")
    a = p.parse_args(argv)
    model = load_model(a.model)
    data = a.data or ("mnist" if tuple(model.input_shape) == (1, 28, 28) else "cifar10")
    x = load_data(data, a.n, a.data_dir)
    t0 = time.perf_counter()
    rows = compare_methods(model, x, methods=a.method, steps=a.steps)
    print(f"cnnlab bench_explanations  {time.strftime('%Y-%m-%d %H:%M')}  model {a.model} "
          f"({model.count_params():,} parameters)  {len(x)} {data} test images  {a.steps} steps")
    print(f"CPU {cpu_model()}, {os.cpu_count()} cores, numpy {np.__version__}, "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(auto)')}, "
          f"load average {os.getloadavg()[0]:.2f}")
    print(format_comparison(rows))
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
