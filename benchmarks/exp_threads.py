"""Experiment: how much do 2 Python threads (BLAS 1 thread each) gain on a LeNet step?"""
import os
os.environ["OPENBLAS_NUM_THREADS"] = "1"
import time, copy
from concurrent.futures import ThreadPoolExecutor
import numpy as np
import cnnlab.functional as F
from cnnlab.models import lenet5
rng = np.random.default_rng(0)
x = rng.random((64, 1, 28, 28), dtype=np.float32); y = rng.integers(0, 10, 64)
m1 = lenet5(seed=0); m2 = lenet5(seed=0)
def step(m, xb, yb):
    s = m.forward(xb, training=True); l, d = F.softmax_loss(s, yb); m.backward(d, need_dx=False)
for _ in range(5): step(m1, x, y)
t0 = time.perf_counter()
for _ in range(50): step(m1, x, y)
seq = (time.perf_counter() - t0) / 50
pool = ThreadPoolExecutor(2)
def par():
    a = pool.submit(step, m1, x[:32], y[:32]); b = pool.submit(step, m2, x[32:], y[32:]); a.result(); b.result()
for _ in range(5): par()
t0 = time.perf_counter()
for _ in range(50): par()
p = (time.perf_counter() - t0) / 50
print(f"sequential 64: {seq*1e3:.2f} ms   2 threads x 32: {p*1e3:.2f} ms   speedup {seq/p:.2f}")
