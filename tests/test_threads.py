"""The kernels' thread pool: parts cover the input exactly, errors reach the caller, and
nested or concurrent calls run inline instead of deadlocking."""
import threading

import numpy as np
import pytest

from cnnlab.functional.kernels import channels, layout, runtime


@pytest.fixture
def three_threads():
    before = runtime.get_num_threads()
    runtime.set_num_threads(3)
    yield
    runtime.set_num_threads(before)


def test_parts_cover_every_item_once_and_run_on_several_threads(three_threads):
    seen = np.zeros(100, dtype=int)
    names = set()

    def part(lo, hi):
        seen[lo:hi] += 1
        names.add(threading.current_thread().name)
        return hi - lo

    assert sum(runtime.parallel(part, runtime.partition(100))) == 100
    np.testing.assert_array_equal(seen, 1)
    assert len(names) == 3


def test_an_error_in_a_worker_part_reaches_the_caller_and_the_pool_still_works(three_threads):
    def part(lo, hi):
        if lo > 0:
            raise KeyError(f"part {lo}")
        return lo

    with pytest.raises(KeyError, match="part"):
        runtime.parallel(part, [0, 1, 2, 3])
    assert runtime.parallel(lambda lo, hi: (lo, hi), [0, 1, 2, 3]) == [(0, 1), (1, 2), (2, 3)]


def test_nested_and_concurrent_calls_run_inline(three_threads):
    inner = runtime.parallel(lambda lo, hi: runtime.parallel(lambda a, b: b - a, [0, 2, 4]),
                              [0, 1, 2])
    assert inner == [[2, 2], [2, 2]]
    results = []

    def caller():
        results.append(sum(runtime.parallel(lambda lo, hi: hi - lo, runtime.partition(50))))

    threads = [threading.Thread(target=caller) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert results == [50] * 4


def test_small_work_stays_on_one_thread_large_work_splits(three_threads):
    assert runtime.partition(64, 2, work=1e6, grain=50e6) == [0, 64]
    assert len(runtime.partition(64, 2, work=1e9, grain=50e6)) == 4
    with pytest.raises(ValueError, match="positive"):
        runtime.set_num_threads(0)


@pytest.mark.parametrize("order", [(0, 2, 3, 1), (1, 2, 3, 0), (3, 2, 1, 0), (0, 1, 2, 3)])
def test_copy_into_any_layout_in_blocks_over_threads(order, three_threads, monkeypatch):
    """copy_into: a layout-changing copy in cache-sized blocks split over the threads
    (tiny blocks and no grain here, so every block and part boundary is crossed) is an
    exact copy, whatever the two memory orders."""
    monkeypatch.setattr(layout, "COPY_BLOCK", 7)
    monkeypatch.setattr(runtime, "GRAIN_SCALE", 0)
    src = layout.empty_in_order((5, 3, 4, 6), np.float32, (0, 2, 3, 1))  # channels-last
    src[...] = np.arange(src.size).reshape(src.shape)
    dst = layout.empty_in_order(src.shape, src.dtype, order)
    assert layout.copy_into(dst, src) is dst
    np.testing.assert_array_equal(dst, src)
    assert layout.memory_order(dst) == order


def test_importing_cnnlab_starts_no_thread_and_leaves_the_allocator_alone():
    """No side effects at import: threads start with the first op big enough to split,
    and the allocator switch waits for an explicit keep_freed_memory() (the CLI's)."""
    import subprocess
    import sys
    code = (
        "import threading, numpy as np, cnnlab, cnnlab.models, cnnlab.viz\n"
        "from cnnlab.functional.kernels import runtime\n"
        "assert threading.active_count() == 1, threading.enumerate()\n"
        "assert runtime._kept is False and runtime._fork_hook is False\n"
        "cnnlab.set_num_threads(2)\n"
        "import cnnlab.functional as F\n"
        "x = np.ones((64, 16, 32, 32), np.float32); w = np.ones((32, 16, 3, 3), np.float32)\n"
        "F.conv2d_forward(x, w, None, 1, 1)\n"
        "assert threading.active_count() == 2 and runtime._fork_hook\n"
        "print(cnnlab.keep_freed_memory())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "CNNLAB_KEEP_FREED_MEMORY": ""})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ("True" if sys.platform.startswith("linux") else "False")


@pytest.mark.parametrize("layout", ["nchw", "channels_last", "batch_last"])
def test_batch_norm_and_relu_split_over_threads_match_torch(layout, three_threads, monkeypatch):
    """Batch norm's per-channel passes and ReLU cut into parts (tiny grain here), batch
    norm's parts into blocks (tiny blocks here): they add up to torch's numbers in every
    memory layout the convs hand over."""
    import torch
    from conftest import torch_autograd

    import cnnlab.functional as F
    monkeypatch.setattr(runtime, "GRAIN_SCALE", 0)
    monkeypatch.setattr(channels, "COMBINE_BLOCK", 20)
    monkeypatch.setattr(channels, "SUM_BLOCK", 2)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 5, 4, 3)) * 2 + 1
    d = rng.standard_normal(x.shape)
    order = {"nchw": (0, 1, 2, 3), "channels_last": (0, 2, 3, 1), "batch_last": (1, 2, 3, 0)}[layout]
    xs, ds = (layout_copy(a, order) for a in (x, d))
    gamma, beta = rng.standard_normal(5), rng.standard_normal(5)
    out, cache = F.spatial_batchnorm_forward(xs, gamma, beta, {"mode": "train"})
    h, hc = F.relu_forward(out)
    dx, dg, db = F.spatial_batchnorm_backward(F.relu_backward(ds, hc), cache)
    assert layout_of(h) == order and layout_of(dx) == order

    def fn(a, g, b):
        return torch.relu(torch.nn.functional.batch_norm(a, None, None, g, b, training=True))

    t_out, t_grads = torch_autograd(fn, (x, gamma, beta), d)
    np.testing.assert_allclose(h, t_out, rtol=1e-9, atol=1e-9)
    for ours, theirs in zip((dx, dg, db), t_grads):
        np.testing.assert_allclose(ours, theirs, rtol=1e-8, atol=1e-9)


def test_relu_gradient_in_parts_is_exact_for_inf_and_nan(three_threads, monkeypatch):
    """relu_grad cut into parts keeps dout's bits where the output is nonzero (inf and NaN
    included) and +0 elsewhere, as torch's threshold_backward."""
    import torch

    import cnnlab.functional as F
    monkeypatch.setattr(runtime, "GRAIN_SCALE", 0)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((4, 3, 5, 6)).astype(np.float32)
    d = rng.standard_normal(x.shape).astype(np.float32)
    x.flat[::7], d.flat[::5], d.flat[1::11] = np.nan, np.inf, -np.inf
    out, cache = F.relu_forward(x)
    dx = F.relu_backward(d, cache)
    tx = torch.tensor(x, requires_grad=True)
    torch.relu(tx).backward(torch.tensor(d))
    np.testing.assert_array_equal(dx.view(np.int32), tx.grad.numpy().view(np.int32))


def layout_copy(a, order):
    """A copy of ``a`` laid out in memory in axis ``order``."""
    out = layout.empty_in_order(a.shape, a.dtype, order)
    out[...] = a
    return out


def layout_of(a):
    return layout.memory_order(a)
