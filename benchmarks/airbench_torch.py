"""``cnnlab.models.cifar_airbench`` built in PyTorch, layer for layer (an ``nn.Sequential``
in the same order): the mirror that ``bench_train.py --nets airbench`` times cnnlab
against (tests/test_airbench.py checks the architecture itself against torch, weights
copied, forward and backward).

The whitening conv's weight is frozen (``requires_grad=False``): cnnlab keeps those filters
as state, fitted by ``PatchWhitening.adapt``, and never trains them.
"""
from __future__ import annotations


def build(widths=(64, 256, 256), num_classes=10):
    import torch.nn as nn

    class Scale(nn.Module):
        def __init__(self, factor):
            super().__init__()
            self.factor = factor

        def forward(self, x):
            return x * self.factor

    whiten = nn.Conv2d(3, 24, 2)
    whiten.weight.requires_grad_(False)
    layers, c = [whiten, nn.ReLU()], 24
    for w in widths:
        layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.MaxPool2d(2), nn.BatchNorm2d(w),
                   nn.ReLU(), nn.Conv2d(w, w, 3, padding=1, bias=False), nn.BatchNorm2d(w),
                   nn.ReLU()]
        c = w
    layers += [nn.MaxPool2d(3), nn.Flatten(), nn.Linear(c, num_classes, bias=False), Scale(1 / 9)]
    return nn.Sequential(*layers)
