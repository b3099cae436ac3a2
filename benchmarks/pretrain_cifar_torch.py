"""Train cnnlab's ``cifar_resnet`` architecture in PyTorch (on a GPU when one is there) and
write its weights as ``.safetensors`` for ``benchmarks/train_cifar_resnet.py --weights``.

This is how the shipped ``cifar_resnet(pretrained=True)`` weights were made: cnnlab's
own trainer reaches ~87 % in 30 minutes on two CPU cores, and the 90 % net took a GPU.
The torch net below is built layer for layer like ``cnnlab.models.cifar_resnet`` (an
``nn.Sequential`` mirror, so ``cnnlab.interop.load_state_dict`` maps it by structure),
and the weights then pass through cnnlab's importer and are evaluated by cnnlab itself.

Nothing is selected on the test set: the last 500 training images of each class
(5,000) are held out as a validation split, and the test images are not read here.

    python benchmarks/pretrain_cifar_torch.py --data ../shared/data/cifar10/cifar10-jpeg.zip \
        --widths 16 32 64 128 --epochs 80 --out cifar_resnet.safetensors

Needs torch and safetensors (the ``test`` extra has both); about 2 minutes on one H200,
hours on a CPU.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import time
import zipfile
from concurrent.futures import ProcessPoolExecutor

import numpy as np

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck")


def _decode(blobs):
    from PIL import Image

    return np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in blobs])


def load_train(path, workers):
    """The 50,000 CIFAR-10 training JPEGs of an image-folder zip -> (uint8 NHWC, labels)."""
    with zipfile.ZipFile(path) as z:
        names = sorted(n for n in z.namelist() if "/train/" in n and n.endswith(".jpg"))
        labels = np.array([CLASSES.index(n.split("/")[-2]) for n in names], dtype=np.int64)
        blobs = [z.read(n) for n in names]
    parts = [blobs[i:i + 2000] for i in range(0, len(blobs), 2000)]
    with ProcessPoolExecutor(workers) as ex:
        x = np.concatenate(list(ex.map(_decode, parts)))
    return x, labels


def holdout(labels, per_class=500):
    """Indices (train, val): the last ``per_class`` images of each class (file order) are
    the validation split."""
    if per_class == 0:
        return np.arange(len(labels)), np.arange(0)
    val = np.concatenate([np.flatnonzero(labels == c)[-per_class:] for c in range(10)])
    mask = np.ones(len(labels), bool)
    mask[val] = False
    return np.flatnonzero(mask), np.sort(val)


def build(widths):
    import torch.nn as nn

    class Residual(nn.Module):
        def __init__(self, *layers):
            super().__init__()
            self.body = nn.Sequential(*layers)

        def forward(self, x):
            return x + self.body(x)

    def cbr(c_in, c_out):
        return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True)]

    w0, w1, w2, w3 = widths
    layers = (cbr(3, w0) + cbr(w0, w1) + [nn.MaxPool2d(2), Residual(*cbr(w1, w1), *cbr(w1, w1))]
              + cbr(w1, w2) + [nn.MaxPool2d(2)]
              + cbr(w2, w3) + [nn.MaxPool2d(2), Residual(*cbr(w3, w3), *cbr(w3, w3))]
              + [nn.MaxPool2d(4), nn.Flatten(), nn.Linear(w3, 10, bias=False),
                 nn.BatchNorm1d(10)])
    return nn.Sequential(*layers)


def augment(xp, gen):
    """Random 32x32 crops of the 40x40 zero-padded batch, random horizontal flips."""
    import torch

    n = xp.shape[0]
    oy = torch.randint(0, 9, (n,), device=xp.device, generator=gen)
    ox = torch.randint(0, 9, (n,), device=xp.device, generator=gen)
    base = torch.arange(32, device=xp.device)
    rows = (oy[:, None] + base)[:, None, :, None].expand(n, 3, 32, 32)
    cols = (ox[:, None] + base)[:, None, None, :].expand(n, 3, 32, 32)
    out = xp[torch.arange(n, device=xp.device)[:, None, None, None],
             torch.arange(3, device=xp.device)[None, :, None, None], rows, cols]
    flip = torch.rand(n, device=xp.device, generator=gen) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(3), out)


def evaluate(net, x, y):
    """Accuracy on the validation split (nan when there is none)."""
    import torch

    if len(y) == 0:
        return float("nan")
    net.eval()
    with torch.no_grad():
        return (net(x).argmax(1) == y).float().mean().item()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.path.join("..", "shared", "data", "cifar10",
                                                  "cifar10-jpeg.zip"))
    p.add_argument("--widths", type=int, nargs=4, default=(16, 32, 64, 128))
    p.add_argument("--epochs", type=int, default=80)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--lr", type=float, default=0.4)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--label-smoothing", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--holdout", type=int, default=500, help="validation images per class "
                   "(the last ones of each class); 0 trains on all 50,000")
    p.add_argument("--limit", type=int, default=0, help="train on this many images only "
                   "(a smoke test)")
    p.add_argument("--out", required=True, help="the .safetensors file to write")
    a = p.parse_args(argv)

    import torch
    import torch.nn.functional as tf
    from safetensors.torch import save_file

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(a.seed)
    t0 = time.perf_counter()
    x, y = load_train(a.data, a.workers)
    tr, va = holdout(y, a.holdout)
    if a.limit:
        tr = tr[:a.limit]
    print(f"decoded {len(x):,} training JPEGs in {time.perf_counter() - t0:.1f} s; "
          f"{len(tr):,} train / {len(va):,} validation", flush=True)
    # inputs in [0, 1] minus 0.5, channels first: what cnnlab's loaders and recipes use
    xt = torch.from_numpy(x).to(dev).permute(0, 3, 1, 2).float().div_(255).sub_(0.5)
    yt = torch.from_numpy(y).to(dev)
    x_tr = tf.pad(xt[tr], (4, 4, 4, 4))
    y_tr, x_va, y_va = yt[tr], xt[va], yt[va]

    net = build(a.widths).to(dev)
    steps = a.epochs * (len(tr) // a.batch_size)
    decay, no_decay = [], []
    for m in net.modules():
        for name, prm in m.named_parameters(recurse=False):
            (no_decay if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) else decay).append(prm)
    opt = torch.optim.SGD([{"params": decay, "weight_decay": a.weight_decay},
                           {"params": no_decay, "weight_decay": 0.0}],
                          lr=a.lr, momentum=0.9, nesterov=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, a.lr, total_steps=steps, pct_start=0.2,
                                                anneal_strategy="linear", div_factor=10,
                                                final_div_factor=100)
    gen = torch.Generator(device=dev).manual_seed(a.seed)
    t0 = time.perf_counter()
    for epoch in range(a.epochs):
        net.train()
        perm = torch.randperm(len(tr), device=dev, generator=gen)
        total = 0.0
        for i in range(len(tr) // a.batch_size):
            idx = perm[i * a.batch_size:(i + 1) * a.batch_size]
            xb = augment(x_tr[idx], gen)
            loss = tf.cross_entropy(net(xb), y_tr[idx], label_smoothing=a.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        if (epoch + 1) % 10 == 0 or epoch + 1 == a.epochs:
            acc = evaluate(net, x_va, y_va)
            print(f"epoch {epoch + 1}: train loss {total / (i + 1):.4f}, validation accuracy "
                  f"{acc:.2%} ({time.perf_counter() - t0:.0f} s)", flush=True)
    acc = evaluate(net, x_va, y_va)
    sd = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()
          if not k.endswith("num_batches_tracked")}
    save_file(sd, a.out)
    info = {"widths": list(a.widths), "epochs": a.epochs, "batch_size": a.batch_size,
            "lr": a.lr, "weight_decay": a.weight_decay, "label_smoothing": a.label_smoothing,
            "seed": a.seed, "validation_accuracy": acc, "train_seconds": time.perf_counter() - t0,
            "device": torch.cuda.get_device_name() if dev == "cuda" else "cpu",
            "torch": torch.__version__}
    with open(os.path.splitext(a.out)[0] + ".json", "w") as f:
        json.dump(info, f, indent=1)
    print(json.dumps(info))


if __name__ == "__main__":
    main()
