"""Per-layer forward/backward time of a zoo model's training step (for optimizing).

    python benchmarks/profile_layers.py [--model lenet5] [--batch 64] [--steps 50]
"""
import argparse, collections, time
import numpy as np
import cnnlab as cl
import cnnlab.functional as F
from cnnlab.models import get, default_input_shape

p = argparse.ArgumentParser()
p.add_argument("--model", default="lenet5"); p.add_argument("--batch", type=int, default=64)
p.add_argument("--steps", type=int, default=50)
p.add_argument("--threads", type=int, default=None, help="cnnlab kernel threads")
a = p.parse_args()
cl.keep_freed_memory()  # the allocator setting the CLI runs with
if a.threads:
    cl.set_num_threads(a.threads)
model = get(a.model, seed=0)
shape = default_input_shape(a.model)
rng = np.random.default_rng(0)
x = rng.random((a.batch,) + shape, dtype=np.float32)
print(f"cnnlab threads {cl.get_num_threads()}")
y = rng.integers(0, 10, a.batch)
acc = collections.defaultdict(float)
layers = model.layers
model.forward(x, training=True)
order = model._order  # the order Sequential runs its layers in (a ReLU after its max pool)
for step in range(a.steps + 5):
    h = x
    t = {}
    for i in order:
        l = layers[i]
        t0 = time.perf_counter(); h = l.forward(h, training=True); t[(i, 'f')] = time.perf_counter() - t0
    t0 = time.perf_counter(); loss, d = F.softmax_loss(h, y); t[('loss', '')] = time.perf_counter() - t0
    for j, i in enumerate(reversed(order)):
        t0 = time.perf_counter(); d = layers[i].backward(d, need_dx=j < len(order) - 1); t[(i, 'b')] = time.perf_counter() - t0
    if step >= 5:
        for k, v in t.items(): acc[k] += v
tot = sum(acc.values())
print(f"{a.model} batch {a.batch}: {tot / a.steps * 1e3:.2f} ms per step (fwd+bwd, no optimizer)")
for i, l in enumerate(layers):
    f, b = acc[(i, 'f')] / a.steps * 1e3, acc[(i, 'b')] / a.steps * 1e3
    print(f"  {i:2d} {type(l).__name__:<12} {str(l.output_shape):<16} fwd {f:6.3f} ms  bwd {b:6.3f} ms")
