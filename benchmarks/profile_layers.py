"""Where the time of a zoo model's training step goes, per layer (for optimizing).

    python benchmarks/profile_layers.py [--model lenet5] [--batch 64] [--steps 50]
    python benchmarks/profile_layers.py --model cifar_resnet --batch 128 --steps 20 [--threads 2]
    python benchmarks/profile_layers.py --model cifar_resnet --batch 128 --framework torch
    python benchmarks/profile_layers.py --model cifar_airbench --batch 512 --steps 5 [--framework torch]

cnnlab: every layer's forward and backward is timed, the layers inside containers included
(a Residual's body); a container's own row is its time minus its children's (a
Residual's add in the forward pass and its gradient add in the backward pass, a
Sequential's dispatch). The step is the one ``Model.fit`` runs: forward with batch
statistics, softmax loss, backward without the first layer's input gradient, then an SGD
step (Nesterov momentum 0.9, weight decay 5e-4: bench_train.py's cifar recipe), on random
data. Prints the rows, then the time per layer type (fwd / bwd) with the loss and the
optimizer step, in ms and as shares of the step.

torch (``--framework torch``, cifar_resnet and cifar_airbench): the same step of its PyTorch
mirror (``build`` of pretrain_cifar_torch.py or airbench_torch.py) under ``torch.profiler``; each top-level operator
(forward) and autograd node (backward) is filed under the cnnlab layer type it stands
for, so the two tables compare row by row. The profiler adds its own overhead; the
per-step wall time above the table is measured without it.
"""
import argparse
import collections
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import cnnlab as cl  # noqa: E402
import cnnlab.functional as F  # noqa: E402
from cnnlab.models import default_input_shape, get  # noqa: E402

SGD = dict(lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
# zoo model -> (module in benchmarks/, widths) of its layer-for-layer PyTorch mirror
TORCH_MIRRORS = {"cifar_resnet": ("pretrain_cifar_torch", (16, 32, 64, 128)),
                 "cifar_airbench": ("airbench_torch", (64, 256, 256))}


def _args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="lenet5")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    p.add_argument("--threads", type=int, default=None,
                   help="cnnlab kernel threads and BLAS threads / torch.set_num_threads "
                        "(default: cnnlab's default, BLAS's own)")
    p.add_argument("--framework", choices=["cnnlab", "torch"], default="cnnlab")
    a = p.parse_args()
    if a.framework == "torch" and a.model not in TORCH_MIRRORS:
        p.error(f"--framework torch profiles the PyTorch mirrors of {', '.join(TORCH_MIRRORS)} "
                f"only, got --model {a.model}")
    if a.steps < 1 or a.warmup < 0 or a.batch < 1:
        p.error("--steps and --batch must be >= 1, --warmup >= 0")
    return a


def _data(a):
    rng = np.random.default_rng(0)
    x = rng.random((a.batch,) + default_input_shape(a.model), dtype=np.float32) - np.float32(0.5)
    return x, rng.integers(0, 10, a.batch)


def _timed(layer, qname, method, tag, acc, inner):
    """Replace layer.<method> (on the instance) by a wrapper adding its own time (its time
    minus that of the timed calls inside it) to acc[qname, tag]."""
    run = getattr(layer, method)

    def wrapper(*args, **kw):
        inner.append(0.0)
        t0 = time.perf_counter()
        out = run(*args, **kw)
        dt = time.perf_counter() - t0
        acc[qname, tag] += dt - inner.pop()
        if inner:
            inner[-1] += dt
        return out

    setattr(layer, method, wrapper)


def profile_cnnlab(a):
    """-> (ms per step, {layer type: [fwd ms, bwd ms]}), after printing the per-layer rows."""
    x, y = _data(a)
    model = get(a.model, seed=0)
    acc, inner, rows = collections.defaultdict(float), [], []

    def instrument(layer, prefix, depth):
        for child in layer.layers:
            q = f"{prefix}{child.name}"
            rows.append((q, child, depth))
            _timed(child, q, "forward", "f", acc, inner)
            _timed(child, q, "backward", "b", acc, inner)
            if getattr(child, "layers", None):
                instrument(child, q + "/", depth + 1)

    instrument(model, "", 0)
    opt = cl.optim.SGD(**SGD)
    entries = None
    for step in range(a.warmup + a.steps):
        if step == a.warmup:
            acc.clear()
        t0 = time.perf_counter()
        h = model.forward(x, training=True)
        t1 = time.perf_counter()
        _, d = F.softmax_loss(h, y)
        t2 = time.perf_counter()
        model.backward(d, need_dx=False)
        t3 = time.perf_counter()
        if entries is None:
            entries = model.named_parameters()
        opt.step([layer.params[k] for _, layer, k in entries], [layer.grads[k] for _, layer, k in entries])
        t4 = time.perf_counter()
        acc["loss", "f"] += t2 - t1
        acc["optimizer step", "b"] += t4 - t3
        acc["step", ""] += t4 - t0
    n = a.steps
    step_ms = acc.pop(("step", "")) / n * 1e3
    print(f"cnnlab {cl.__version__}, {cl.get_num_threads()} threads: {a.model} batch {a.batch}, "
          f"{step_ms:.2f} ms per training step, {a.batch / step_ms * 1e3:.0f} img/s "
          f"({n} steps after {a.warmup})")
    for q, layer, depth in rows:
        own = " (own)" if getattr(layer, "layers", None) else ""
        print(f"  {'  ' * depth}{q:<{38 - 2 * depth}} {type(layer).__name__ + own:<18} "
              f"{str(layer.output_shape):<15} fwd {acc[q, 'f'] / n * 1e3:8.3f} ms  "
              f"bwd {acc[q, 'b'] / n * 1e3:8.3f} ms")
    by_type = collections.defaultdict(lambda: [0.0, 0.0])
    for q, layer, _ in rows + [("loss", None, 0), ("optimizer step", None, 0)]:
        name = type(layer).__name__ if layer is not None else q
        by_type[name][0] += acc[q, "f"] / n * 1e3
        by_type[name][1] += acc[q, "b"] / n * 1e3
    return step_ms, by_type


# torch: what each top-level forward operator and each autograd node is, in cnnlab's terms
TORCH_FWD = {"aten::conv2d": "Conv2D", "aten::batch_norm": "BatchNorm", "aten::max_pool2d": "MaxPool2D",
             "aten::relu_": "ReLU", "aten::relu": "ReLU", "aten::add": "Residual",
             "aten::add_": "BatchNorm",  # num_batches_tracked += 1
             "aten::flatten": "Flatten", "aten::linear": "Dense", "loss": "loss",
             "aten::mul": "Rescaling",  # cifar_airbench's logit scale
             "aten::ones_like": "loss",  # loss.backward()'s seed gradient
             "optimizer step": "optimizer step", "Optimizer.zero_grad#SGD.zero_grad": "optimizer step"}
TORCH_BWD = {"ConvolutionBackward0": "Conv2D", "NativeBatchNormBackward0": "BatchNorm",
             "MaxPool2DWithIndicesBackward0": "MaxPool2D", "ReluBackward0": "ReLU",
             "AddBackward0": "Residual", "MmBackward0": "Dense", "TBackward0": "Dense",
             "ViewBackward0": "Flatten", "MulBackward0": "Rescaling", "LogSoftmaxBackward0": "loss", "NllLossBackward0": "loss",
             "torch::autograd::AccumulateGrad": "gradient accumulation (AccumulateGrad)"}


def profile_torch(a):
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    import importlib

    module, widths = TORCH_MIRRORS[a.model]
    build = importlib.import_module(module).build  # the model's layer-for-layer mirror
    torch.set_num_threads(a.threads or cl.get_num_threads())
    torch.manual_seed(0)
    x, y = (torch.from_numpy(v) for v in _data(a))
    net = build(widths).train()
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], **SGD)

    def step():
        opt.zero_grad()
        out = net(x)
        with record_function("loss"):
            loss = torch.nn.functional.cross_entropy(out, y)
        loss.backward()
        with record_function("optimizer step"):
            opt.step()

    for _ in range(a.warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    step_ms = (time.perf_counter() - t0) / a.steps * 1e3
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(a.steps):
            step()
    by_type = collections.defaultdict(lambda: [0.0, 0.0])
    for e in prof.events():
        if e.cpu_parent is not None:
            continue
        node = e.name.removeprefix("autograd::engine::evaluate_function: ")
        if node != e.name:
            by_type[TORCH_BWD.get(node, f"other ({node})")][1] += e.cpu_time_total / 1e3 / a.steps
        else:
            name = TORCH_FWD.get(e.name, f"other ({e.name})")
            by_type[name][name == "optimizer step"] += e.cpu_time_total / 1e3 / a.steps
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads: {a.model} (PyTorch mirror) "
          f"batch {a.batch}, {step_ms:.2f} ms per training step without the profiler, "
          f"{a.batch / step_ms * 1e3:.0f} img/s ({a.steps} steps after {a.warmup})")
    return step_ms, by_type


def print_types(step_ms, by_type):
    timed = sum(f + b for f, b in by_type.values())
    print(f"\nby layer type: {timed:.2f} ms of the {step_ms:.2f} ms step timed; containers: own "
          f"time only; shares of the step; the optimizer step (and torch's zero_grad) in the "
          f"bwd column")
    for name, (f, b) in sorted(by_type.items(), key=lambda kv: -sum(kv[1])):
        print(f"  {name:<40} fwd {f:8.3f} ms  bwd {b:8.3f} ms  {100 * (f + b) / step_ms:5.1f} %"
              f"  (fwd {100 * f / step_ms:4.1f} %, bwd {100 * b / step_ms:4.1f} %)")


def main():
    a = _args()
    cl.keep_freed_memory()  # the allocator setting the CLI runs with
    if a.threads:  # as bench_train.py: the kernels' threads, and BLAS's outside their parts
        cl.set_num_threads(a.threads)
        from threadpoolctl import threadpool_limits

        threadpool_limits(a.threads, user_api="blas")
    print_types(*(profile_torch(a) if a.framework == "torch" else profile_cnnlab(a)))


if __name__ == "__main__":
    main()
