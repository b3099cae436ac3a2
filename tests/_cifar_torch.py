"""The torch mirror of the shipped CIFAR-10 ResNet (the definition it was trained with,
``benchmarks/pretrain_cifar_torch.py``) and a copy of cnnlab's weights into it, written
independently of ``cnnlab.interop``: the reference of test_pretrained_cifar.py and
test_viz_cifar.py."""
import importlib.util
import os

import torch

from cnnlab.layers import BatchNorm, Conv2D, Dense, Residual, Sequential

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def torch_mirror(widths):
    """The torch net the weights were trained as (the benchmark's own definition)."""
    path = os.path.join(ROOT, "benchmarks", "pretrain_cifar_torch.py")
    spec = importlib.util.spec_from_file_location("pretrain_cifar_torch", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.build(widths)


def _leaves(layer):
    if isinstance(layer, Sequential):
        return [leaf for child in layer.layers for leaf in _leaves(child)]
    if isinstance(layer, Residual):
        return _leaves(layer.body)
    return [layer]


def copy_into_torch(model, tnet):
    """The cnnlab weights into the torch mirror, layer by layer in execution order (written
    here, independently of cnnlab.interop)."""
    ours = [m for m in _leaves(model) if isinstance(m, (Conv2D, Dense, BatchNorm))]
    theirs = [m for m in tnet.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear,
                                                          torch.nn.BatchNorm1d,
                                                          torch.nn.BatchNorm2d))]
    assert len(ours) == len(theirs) == 18  # 8 convs, 9 batch norms, 1 fc
    with torch.no_grad():
        for a, b in zip(ours, theirs):
            if isinstance(a, Conv2D):
                b.weight.copy_(torch.from_numpy(a.params["w"]))
            elif isinstance(a, Dense):
                b.weight.copy_(torch.from_numpy(a.params["w"].T.copy()))
            else:
                b.weight.copy_(torch.from_numpy(a.params["gamma"]))
                b.bias.copy_(torch.from_numpy(a.params["beta"]))
                b.running_mean.copy_(torch.from_numpy(a.state["running_mean"]))
                b.running_var.copy_(torch.from_numpy(a.state["running_var"]))
    return tnet.eval()
