"""cnnlab ops against PyTorch on the CPU, same process, same thread count.

    python benchmarks/bench_ops.py [--repeat 7] [--threads 2] [--quick]

For each row: median of `repeat` timings after warm-up, forward and forward+backward
(input and weight gradients), in ms; GFLOP/s of cnnlab's fwd+bwd; the ratio
torch time / cnnlab time (1.0 = as fast as PyTorch, > 1 faster). Float32 throughout.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time


def _parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=7, help="timings per measurement (median taken)")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="BLAS / torch threads")
    p.add_argument("--quick", action="store_true", help="only the first three conv rows")
    return p.parse_args()


ARGS = _parse()
# thread counts must be fixed before numpy / torch load their thread pools
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as TF  # noqa: E402

import cnnlab.functional as F  # noqa: E402

torch.set_num_threads(ARGS.threads)

CONV_ROWS = [  # (N, C, H, W, K, kernel, stride, pad)
    (64, 1, 28, 28, 6, 5, 1, 2),
    (64, 6, 14, 14, 16, 5, 1, 0),
    (64, 3, 32, 32, 32, 3, 1, 1),
    (64, 32, 32, 32, 64, 3, 1, 1),
    (64, 64, 16, 16, 128, 3, 1, 1),
    (32, 128, 8, 8, 256, 3, 1, 1),
    (16, 3, 224, 224, 64, 11, 4, 2),
]


def median_time(fn, repeat):
    fn()  # warm-up (allocations, thread pools, caches)
    fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def gemm_peak(repeat):
    best = 0.0
    for n in (512, 1024, 2048):
        a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
        b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
        t = median_time(lambda: a @ b, max(3, repeat // 2))
        best = max(best, 2 * n ** 3 / t / 1e9)
    return best


def conv_case(row, repeat):
    n, c, h, w, k, f, s, p = row
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, h, w), dtype=np.float32)
    wt = (rng.standard_normal((k, c, f, f), dtype=np.float32) * 0.1)
    b = np.zeros(k, np.float32)
    out, _ = F.conv2d_forward(x, wt, b, s, p)
    # the upstream gradient arrives in the memory layout of the output it belongs to
    # (in a network it is made from that output), for cnnlab as for torch
    dout = np.empty_like(out)
    dout[...] = rng.standard_normal(out.shape, dtype=np.float32)

    def ours_f():
        F.conv2d_forward(x, wt, b, s, p)

    def ours_fb():
        o, cache = F.conv2d_forward(x, wt, b, s, p)
        F.conv2d_backward(dout, cache)

    xt = torch.from_numpy(x).requires_grad_(True)
    wtt = torch.from_numpy(wt).requires_grad_(True)
    bt = torch.from_numpy(b).requires_grad_(True)
    dt = torch.from_numpy(dout)

    def torch_f():
        with torch.no_grad():
            TF.conv2d(xt, wtt, bt, s, p)

    def torch_fb():
        o = TF.conv2d(xt, wtt, bt, s, p)
        gx, gw, gb = torch.autograd.grad(o, (xt, wtt, bt), dt)

    ho, wo = out.shape[2:]
    flops = 2 * n * k * ho * wo * c * f * f * 3  # fwd + dx + dw
    return (f"conv2d {row}", median_time(ours_f, repeat), median_time(torch_f, repeat),
            median_time(ours_fb, repeat), median_time(torch_fb, repeat), flops)


def pool_case(repeat):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 32, 32, 32), dtype=np.float32)
    out, _ = F.maxpool2d_forward(x, 2, 2)
    dout = rng.standard_normal(out.shape, dtype=np.float32)

    def ours_fb():
        o, c = F.maxpool2d_forward(x, 2, 2)
        F.maxpool2d_backward(dout, c)

    xt = torch.from_numpy(x).requires_grad_(True)

    def torch_fb():
        o = TF.max_pool2d(xt, 2, 2)
        torch.autograd.grad(o, xt, torch.from_numpy(dout))

    def torch_f():
        with torch.no_grad():
            TF.max_pool2d(xt, 2, 2)

    return ("maxpool2d 2x2 s2 (64,32,32,32)", median_time(lambda: F.maxpool2d_forward(x, 2, 2), repeat),
            median_time(torch_f, repeat), median_time(ours_fb, repeat), median_time(torch_fb, repeat), None)


def bn_case(repeat):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 64, 16, 16), dtype=np.float32)
    g = np.ones(64, np.float32)
    be = np.zeros(64, np.float32)
    dout = rng.standard_normal(x.shape, dtype=np.float32)

    def ours_f():
        F.spatial_batchnorm_forward(x, g, be, {"mode": "train"})

    def ours_fb():
        o, c = F.spatial_batchnorm_forward(x, g, be, {"mode": "train"})
        F.spatial_batchnorm_backward(dout, c)

    xt = torch.from_numpy(x).requires_grad_(True)
    gt = torch.from_numpy(g).requires_grad_(True)
    bt = torch.from_numpy(be).requires_grad_(True)
    rm, rv = torch.zeros(64), torch.ones(64)

    def torch_f():
        with torch.no_grad():
            TF.batch_norm(xt, rm, rv, gt, bt, training=True)

    def torch_fb():
        o = TF.batch_norm(xt, rm, rv, gt, bt, training=True)
        torch.autograd.grad(o, (xt, gt, bt), torch.from_numpy(dout))

    return ("spatial batchnorm (64,64,16,16)", median_time(ours_f, repeat), median_time(torch_f, repeat),
            median_time(ours_fb, repeat), median_time(torch_fb, repeat), None)


def main():
    print(f"cnnlab bench_ops  {time.strftime('%Y-%m-%d %H:%M')}  {platform.processor() or platform.machine()}  "
          f"python {sys.version.split()[0]}  numpy {np.__version__}  torch {torch.__version__}  "
          f"threads {ARGS.threads} (torch {torch.get_num_threads()})")
    print(f"float32 GEMM peak (numpy a @ b, n=512..2048): {gemm_peak(ARGS.repeat):.0f} GFLOP/s\n")
    rows = CONV_ROWS[:3] if ARGS.quick else CONV_ROWS
    results = [conv_case(r, ARGS.repeat) for r in rows]
    if not ARGS.quick:
        results += [pool_case(ARGS.repeat), bn_case(ARGS.repeat)]
    hdr = f"{'op':<44}{'fwd ms':>9}{'torch':>9}{'ratio':>7}{'f+b ms':>10}{'torch':>9}{'ratio':>7}{'GFLOP/s':>9}"
    print(hdr)
    print("-" * len(hdr))
    conv_ratios = []
    for name, of, tf, ofb, tfb, flops in results:
        gf = f"{flops / ofb / 1e9:9.1f}" if flops else " " * 9
        print(f"{name:<44}{of * 1e3:9.2f}{tf * 1e3:9.2f}{tf / of:7.2f}{ofb * 1e3:10.2f}{tfb * 1e3:9.2f}{tfb / ofb:7.2f}{gf}")
        if name.startswith("conv2d"):
            conv_ratios.append(tfb / ofb)
    gm = float(np.exp(np.mean(np.log(conv_ratios))))
    print(f"\nconv2d fwd+bwd ratio torch/cnnlab: geometric mean {gm:.2f}, min {min(conv_ratios):.2f}"
          "  (target: geomean >= 0.8, no row < 0.5)")


if __name__ == "__main__":
    main()
