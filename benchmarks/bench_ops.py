"""cnnlab ops against PyTorch on the CPU, in the same run, same thread count.

    python benchmarks/bench_ops.py [--repeat 7] [--rounds 3] [--threads 2] [--quick]
    python benchmarks/bench_ops.py --routes      # every conv route of cnnlab, by name


For each row: median of `repeat` timings after warm-up (the best median of `rounds`
alternating worker runs), forward and forward+backward
(input and weight gradients), in ms; GFLOP/s of cnnlab's fwd+bwd; the ratio
torch time / cnnlab time (1.0 = as fast as PyTorch, > 1 faster). Float32 throughout.

Each framework is timed in its own worker process, one after the other: in one process
the idle threads of one library's pool spin-wait and steal the cores from the other
(measured: a 64x32x32x32 conv fwd+bwd took 47 ms in a fresh process, 78 ms beside
torch's OpenMP pool; torch's own time moved by 40% the other way).

``--routes`` times cnnlab alone: each conv row fwd+bwd by every route of the route table
that can run it (``cnnlab.functional.kernels.use_route``), against the textbook im2col
route, the baseline; the route the automatic choice takes is starred.
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
    p.add_argument("--rounds", type=int, default=3,
                   help="worker runs per framework, alternating; each figure is the best of "
                        "their medians (this VM's timings drift between runs, torch's "
                        "(64,3,32,32,32) row between 4.4 and 9.9 ms)")
    p.add_argument("--shapes", choices=["default", "cifar"], default="default",
                   help="conv rows: the default set, or cifar_resnet's convs at batch 128 "
                        "with the dx-by-correlation convs of its stride-1 backward passes")
    p.add_argument("--routes", action="store_true",
                   help="cnnlab only: every conv row by every conv route, against im2col")
    p.add_argument("--worker", choices=["cnnlab", "torch"], help=argparse.SUPPRESS)
    return p.parse_args()


ARGS = _parse()
# thread counts must be fixed before numpy / torch load their thread pools
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)

import json  # noqa: E402
import subprocess  # noqa: E402

import numpy as np  # noqa: E402

if ARGS.worker == "torch":
    import torch  # noqa: E402
    import torch.nn.functional as TF  # noqa: E402
    torch.set_num_threads(ARGS.threads)
elif ARGS.worker == "cnnlab":
    import cnnlab  # noqa: E402
    import cnnlab.functional as F  # noqa: E402
    cnnlab.set_num_threads(ARGS.threads)
    cnnlab.keep_freed_memory()  # the allocator setting the CLI runs with

CONV_ROWS = [  # (N, C, H, W, K, kernel, stride, pad)
    (64, 1, 28, 28, 6, 5, 1, 2),
    (64, 6, 14, 14, 16, 5, 1, 0),
    (64, 3, 32, 32, 32, 3, 1, 1),
    (64, 32, 32, 32, 64, 3, 1, 1),
    (64, 64, 16, 16, 128, 3, 1, 1),
    (32, 128, 8, 8, 256, 3, 1, 1),
    (16, 3, 224, 224, 64, 11, 4, 2),
]
CIFAR_ROWS = [  # cifar_resnet (default widths 16/32/64/128), batch 128
    (128, 3, 32, 32, 16, 3, 1, 1),
    (128, 16, 32, 32, 32, 3, 1, 1),
    (128, 32, 16, 16, 32, 3, 1, 1),
    (128, 32, 16, 16, 64, 3, 1, 1),
    (128, 64, 8, 8, 128, 3, 1, 1),
    (128, 128, 4, 4, 128, 3, 1, 1),
    (128, 32, 32, 32, 16, 3, 1, 1),  # the dx of the second as a convolution
    (128, 64, 16, 16, 32, 3, 1, 1),  # the dx of the fourth
    (128, 128, 8, 8, 64, 3, 1, 1),  # the dx of the fifth
]
if ARGS.shapes == "cifar":
    CONV_ROWS = CIFAR_ROWS


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


def _conv_inputs(row):
    n, c, h, w, k, f, s, p = row
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, h, w), dtype=np.float32)
    wt = rng.standard_normal((k, c, f, f), dtype=np.float32) * 0.1
    b = np.zeros(k, np.float32)
    ho, wo = (h + 2 * p - f) // s + 1, (w + 2 * p - f) // s + 1
    dout = rng.standard_normal((n, k, ho, wo), dtype=np.float32)
    flops = 2 * n * k * ho * wo * c * f * f * 3  # fwd + dx + dw
    return x, wt, b, s, p, dout, flops


def conv_case(row, fw, repeat):
    """(fwd seconds, fwd+bwd seconds, flops) of one framework on one row."""
    x, wt, b, s, p, dout, flops = _conv_inputs(row)
    if fw == "cnnlab":
        out, _ = F.conv2d_forward(x, wt, b, s, p)
        # the upstream gradient arrives in the memory layout of the output it belongs to
        # (in a network it is made from that output), for cnnlab as for torch
        d = np.empty_like(out)
        d[...] = dout

        def fwd():
            F.conv2d_forward(x, wt, b, s, p)

        def fwd_bwd():
            _, cache = F.conv2d_forward(x, wt, b, s, p)
            F.conv2d_backward(d, cache)
    else:
        xt = torch.from_numpy(x).requires_grad_(True)
        wtt = torch.from_numpy(wt).requires_grad_(True)
        bt = torch.from_numpy(b).requires_grad_(True)
        dt = torch.from_numpy(dout)

        def fwd():
            with torch.no_grad():
                TF.conv2d(xt, wtt, bt, s, p)

        def fwd_bwd():
            o = TF.conv2d(xt, wtt, bt, s, p)
            torch.autograd.grad(o, (xt, wtt, bt), dt)
    return median_time(fwd, repeat), median_time(fwd_bwd, repeat), flops


def pool_case(fw, repeat):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 32, 32, 32), dtype=np.float32)
    dout = rng.standard_normal((64, 32, 16, 16), dtype=np.float32)
    if fw == "cnnlab":
        def fwd():
            F.maxpool2d_forward(x, 2, 2)

        def fwd_bwd():
            _, c = F.maxpool2d_forward(x, 2, 2)
            F.maxpool2d_backward(dout, c)
    else:
        xt = torch.from_numpy(x).requires_grad_(True)

        def fwd():
            with torch.no_grad():
                TF.max_pool2d(xt, 2, 2)

        def fwd_bwd():
            o = TF.max_pool2d(xt, 2, 2)
            torch.autograd.grad(o, xt, torch.from_numpy(dout))
    return median_time(fwd, repeat), median_time(fwd_bwd, repeat), None


def bn_case(fw, repeat, channels_last=False):
    """Spatial batch norm; ``channels_last``: x and dout in the memory layout a
    channels-last conv hands over (cnnlab's convs from 12 channels on), torch's in
    torch.channels_last (its own kernel for that layout)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 64, 16, 16), dtype=np.float32)
    g = np.ones(64, np.float32)
    be = np.zeros(64, np.float32)
    dout = rng.standard_normal(x.shape, dtype=np.float32)
    if channels_last:
        x, dout = (np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
                   for a in (x, dout))
    if fw == "cnnlab":
        def fwd():
            F.spatial_batchnorm_forward(x, g, be, {"mode": "train"})

        def fwd_bwd():
            _, c = F.spatial_batchnorm_forward(x, g, be, {"mode": "train"})
            F.spatial_batchnorm_backward(dout, c)
    else:
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        xt = torch.from_numpy(np.ascontiguousarray(x)).to(memory_format=fmt).requires_grad_(True)
        dt = torch.from_numpy(np.ascontiguousarray(dout)).to(memory_format=fmt)
        gt = torch.from_numpy(g).requires_grad_(True)
        bt = torch.from_numpy(be).requires_grad_(True)
        rm, rv = torch.zeros(64), torch.ones(64)

        def fwd():
            with torch.no_grad():
                TF.batch_norm(xt, rm, rv, gt, bt, training=True)

        def fwd_bwd():
            o = TF.batch_norm(xt, rm, rv, gt, bt, training=True)
            torch.autograd.grad(o, (xt, gt, bt), dt)
    return median_time(fwd, repeat), median_time(fwd_bwd, repeat), None


def routes_worker():
    """fwd+bwd seconds of every conv row by every route that can run it; one JSON line."""
    from cnnlab.functional.kernels import ROUTES, use_route

    rows = CONV_ROWS[:3] if ARGS.quick else CONV_ROWS
    res = {"routes": sorted(ROUTES), "rows": []}
    for row in rows:
        x, wt, b, s, p, _, _ = _conv_inputs(row)
        auto = F.conv2d_forward(x, wt, b, s, p)[1].kernel.route
        times = {}
        for name in res["routes"]:
            with use_route(name):
                try:
                    times[name] = conv_case(row, "cnnlab", ARGS.repeat)[1]
                except ValueError:  # the route cannot run this conv
                    times[name] = None
        res["rows"].append([f"conv2d {row}", auto, times])
    print("RESULT " + json.dumps(res))


def print_routes(results):
    rows = results[0]["rows"]
    names = results[0]["routes"]
    print(f"cnnlab conv routes, fwd+bwd ms (best of {len(results)} runs' medians; * = the "
          f"automatic choice; x = speed-up over im2col)  {time.strftime('%Y-%m-%d %H:%M')}  "
          f"threads {ARGS.threads}\n")
    hdr = f"{'conv':<44}" + "".join(f"{n:>22}" for n in names)
    print(hdr)
    print("-" * len(hdr))
    for i, (name, auto, _) in enumerate(rows):
        best = {n: min((r["rows"][i][2][n] for r in results if r["rows"][i][2][n] is not None),
                       default=None) for n in names}
        cells = []
        for n in names:
            t = best[n]
            if t is None:
                cells.append(f"{'-':>22}")
            else:
                label = f"{'*' if n == auto else ''}{t * 1e3:.2f} ({best['im2col'] / t:.2f}x)"
                cells.append(f"{label:>22}")
        print(f"{name:<44}" + "".join(cells))


def worker(fw):
    """Time every row with one framework; print one JSON line."""
    if ARGS.routes:
        routes_worker()
        return
    rows = CONV_ROWS[:3] if ARGS.quick else CONV_ROWS
    res = {"rows": [[f"conv2d {r}", *conv_case(r, fw, ARGS.repeat)] for r in rows]}
    if not ARGS.quick:
        res["rows"].append(["maxpool2d 2x2 s2 (64,32,32,32)", *pool_case(fw, ARGS.repeat)])
        res["rows"].append(["spatial batchnorm (64,64,16,16)", *bn_case(fw, ARGS.repeat)])
        res["rows"].append(["  the same, channels-last", *bn_case(fw, ARGS.repeat, True)])
    if fw == "cnnlab":
        res["gemm_peak"] = gemm_peak(ARGS.repeat)
        res["version"] = f"numpy {np.__version__}"
    else:
        res["version"] = f"torch {torch.__version__} ({torch.get_num_threads()} threads)"
    print("RESULT " + json.dumps(res))


def run_worker(fw):
    cmd = [sys.executable, __file__, "--worker", fw, "--threads", str(ARGS.threads), "--repeat",
           str(ARGS.repeat), "--shapes", ARGS.shapes]
    if ARGS.quick:
        cmd.append("--quick")
    if ARGS.routes:
        cmd.append("--routes")
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{fw} worker failed:\n{out.stderr}")
    return json.loads([ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")][-1][7:])


def _best(results):
    """Per row, the fastest of the rounds' median times (the least disturbed run)."""
    best = dict(results[0])
    best["rows"] = [[name, min(r["rows"][i][1] for r in results), min(r["rows"][i][2] for r in results),
                     flops] for i, (name, _, _, flops) in enumerate(results[0]["rows"])]
    if "gemm_peak" in results[0]:
        best["gemm_peak"] = max(r["gemm_peak"] for r in results)
    return best


def main():
    if ARGS.worker:
        worker(ARGS.worker)
        return
    if ARGS.routes:
        print_routes([run_worker("cnnlab") for _ in range(max(1, ARGS.rounds))])
        return
    runs = {"cnnlab": [], "torch": []}
    for _ in range(max(1, ARGS.rounds)):
        for fw in runs:
            runs[fw].append(run_worker(fw))
    ours, theirs = (_best(runs[fw]) for fw in ("cnnlab", "torch"))
    print(f"cnnlab bench_ops  {time.strftime('%Y-%m-%d %H:%M')}  {platform.processor() or platform.machine()}  "
          f"python {sys.version.split()[0]}  {ours['version']}  {theirs['version']}  threads {ARGS.threads}")
    print(f"float32 GEMM peak (numpy a @ b, n=512..2048): {ours['gemm_peak']:.0f} GFLOP/s\n")
    hdr = f"{'op':<44}{'fwd ms':>9}{'torch':>9}{'ratio':>7}{'f+b ms':>10}{'torch':>9}{'ratio':>7}{'GFLOP/s':>9}"
    print(hdr)
    print("-" * len(hdr))
    conv_ratios = []
    for (name, of, ofb, flops), (_, tf, tfb, _) in zip(ours["rows"], theirs["rows"]):
        gf = f"{flops / ofb / 1e9:9.1f}" if flops else " " * 9
        print(f"{name:<44}{of * 1e3:9.2f}{tf * 1e3:9.2f}{tf / of:7.2f}{ofb * 1e3:10.2f}{tfb * 1e3:9.2f}{tfb / ofb:7.2f}{gf}")
        if name.startswith("conv2d"):
            conv_ratios.append(tfb / ofb)
    gm = float(np.exp(np.mean(np.log(conv_ratios))))
    print(f"\nconv2d fwd+bwd ratio torch/cnnlab: geometric mean {gm:.2f}, min {min(conv_ratios):.2f}"
          "  (target: geomean >= 0.8, no row < 0.5)")


if __name__ == "__main__":
    main()
