"""The training benchmarks run and report consistent figures (no speed is asserted: timings
live in benchmarks/ and the README).

bench_train.py's cifar rows compare cifar_resnet with its PyTorch mirror and refuse to
report when the two differ in parameter count or thread count; profile_layers.py files
the time of a cifar_resnet step under cnnlab's layer types, for cnnlab and for the mirror
under torch.profiler. Each is run for a step or two in a fresh process.
"""
import os
import re
import subprocess
import sys

import pytest

from cnnlab.models import cifar_airbench, cifar_resnet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks")


def _run(script, *args):
    r = subprocess.run([sys.executable, os.path.join(BENCH, script), *args], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{script} {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}"
    return r.stdout


def test_bench_train_cifar_rows():
    out = _run("bench_train.py", "--nets", "cifar", "--threads", "1", "--rounds", "1",
               "--cifar-steps", "2", "--cifar-warmup", "1")
    assert "LeNet" not in out  # --nets cifar runs only the cifar benchmark
    params = cifar_resnet(seed=0).count_params()  # the torch mirror had the same, or exit 1
    assert f"({params:,} parameters)" in out and "batch 128" in out and "1 threads" in out
    rows = {m[1]: (float(m[2]), float(m[3]), float(m[4]))
            for m in re.finditer(r"^(torch|cnnlab) +([\d.]+) +(\d+) +(\d+)$", out, re.M)}
    assert set(rows) == {"torch", "cnnlab"}, out
    for s_step, img_s, rss in rows.values():
        assert s_step > 0 and rss > 50
        assert img_s == pytest.approx(128 / s_step, rel=0.02, abs=1)  # 2 steps of 128
    speed = float(re.search(r"training speed cnnlab/torch: ([\d.]+)x", out)[1])
    assert speed == pytest.approx(rows["torch"][0] / rows["cnnlab"][0], rel=0.02, abs=0.01)
    rss = float(re.search(r"peak RSS cnnlab/torch: ([\d.]+)x", out)[1])
    assert rss == pytest.approx(rows["cnnlab"][2] / rows["torch"][2], rel=0.02, abs=0.01)


def test_bench_train_airbench_rows():
    out = _run("bench_train.py", "--nets", "airbench", "--threads", "2", "--rounds", "1",
               "--airbench-steps", "1")
    params = cifar_airbench(seed=0).count_params()  # the mirror's trainable count, or exit 1
    assert f"cifar_airbench widths 64-256-256 ({params:,} parameters)" in out
    assert "batch 512" in out and "label smoothing 0.2" in out and "1 timed steps" in out
    rows = {m[1]: float(m[3]) for m in re.finditer(r"^(torch|cnnlab) +([\d.]+) +(\d+) +(\d+)$",
                                                   out, re.M)}
    assert set(rows) == {"torch", "cnnlab"}, out
    assert re.search(r"training speed cnnlab/torch: [\d.]+x", out)


def _types(out):
    """{layer type: (fwd ms, bwd ms, %)} and (timed ms, step ms) of a profile's summary."""
    types = {m[1].strip(): (float(m[2]), float(m[3]), float(m[4]))
             for m in re.finditer(r"^  (\S.*?) +fwd +([\d.]+) ms +bwd +([\d.]+) ms +([\d.]+) %", out, re.M)}
    m = re.search(r"by layer type: ([\d.]+) ms of the ([\d.]+) ms step", out)
    return types, (float(m[1]), float(m[2]))


@pytest.mark.parametrize("framework", ["cnnlab", "torch"])
def test_profile_layers_cifar_resnet(framework):
    out = _run("profile_layers.py", "--model", "cifar_resnet", "--batch", "16", "--steps", "2",
               "--warmup", "1", "--threads", "1", "--framework", framework)
    types, (timed, step) = _types(out)
    expected = {"Conv2D", "BatchNorm", "MaxPool2D", "ReLU", "Residual", "Dense", "loss",
                "optimizer step"}
    assert expected <= set(types), out
    assert types["Conv2D"][0] > 0 and types["Conv2D"][1] > 0
    assert sum(f + b for f, b, _ in types.values()) == pytest.approx(timed, rel=0.01, abs=0.05)
    if framework == "cnnlab":  # every call inside the step is timed: the rows add up to it
        assert timed <= step * 1.001 and timed > 0.9 * step
        assert sum(p for *_, p in types.values()) == pytest.approx(100 * timed / step, abs=0.5)
    else:  # every operator and autograd node torch ran is filed under a layer type
        assert not any(name.startswith("other") for name in types), out
