"""Nets written by PyTorch's ONNX exporter (``torch.onnx.export(..., dynamo=False)``) read by
cnnlab.interop.from_onnx, checked against onnxruntime on the same file (and PyTorch).

The nets: a LeNet (with ``x.view(x.size(0), -1)``), an AlexNet-like (ceil-mode max pool,
dropout, softmax), a VGG-like with batch norm (2-D and 1-D), an Inception block, a
ResNet-18-like with downsampling shortcuts, and the odd ops (Pad before a conv / pool,
MatMul + Add, reshape to (-1, D)). Each is exported twice: with PyTorch's constant folding
(batch norm folded into the convs) and without (batch norm nodes kept).
"""
import warnings

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as Fn
from torch import nn

import cnnlab as cl
import cnnlab.layers as L
from cnnlab.interop import from_onnx


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(1, 6, 5, padding=2), nn.Conv2d(6, 16, 5)
        self.f1, self.f2, self.f3 = nn.Linear(400, 120), nn.Linear(120, 84), nn.Linear(84, 10)

    def forward(self, x):
        x = Fn.max_pool2d(Fn.relu(self.c1(x)), 2)
        x = Fn.max_pool2d(torch.tanh(self.c2(x)), 2)
        x = x.view(x.size(0), -1)
        return self.f3(torch.sigmoid(self.f2(Fn.relu(self.f1(x)))))


def alexnet_like():
    return nn.Sequential(
        nn.Conv2d(3, 16, 11, 4, 2), nn.ReLU(True), nn.MaxPool2d(3, 2, ceil_mode=True),
        nn.Conv2d(16, 32, 5, padding=2), nn.LeakyReLU(0.1), nn.MaxPool2d(3, 2),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2, padding=1), nn.Flatten(),
        nn.Dropout(0.5), nn.Linear(128, 64), nn.ReLU(), nn.Dropout(), nn.Linear(64, 10),
        nn.Softmax(dim=1))


def vgg_like_bn():
    layers, c = [], 3
    for v in [16, "M", 32, 32, "M"]:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU()]
            c = v
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 32),
                         nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10))


class Inception(nn.Module):
    """A stem and one Inception block (four branches, one a 3x3 max pool), then a head."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.b1 = nn.Conv2d(8, 4, 1)
        self.b2 = nn.Sequential(nn.Conv2d(8, 4, 1), nn.ReLU(), nn.Conv2d(4, 6, 3, padding=1))
        self.b3 = nn.Sequential(nn.Conv2d(8, 2, 1), nn.ReLU(), nn.Conv2d(2, 3, 5, padding=2))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, 1, padding=1), nn.Conv2d(8, 3, 1))
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        x = Fn.relu(self.stem(x))
        x = torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1)
        x = Fn.avg_pool2d(x, 2, count_include_pad=False)
        return self.fc(torch.flatten(Fn.adaptive_avg_pool2d(x, 1), 1))


class Block(nn.Module):
    """torchvision's BasicBlock."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.c2, self.b2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.down = None if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.b2(self.c2(Fn.relu(self.b1(self.c1(x)))))
        return Fn.relu(y + (x if self.down is None else self.down(x)))


class ResNet18Like(nn.Module):
    """ResNet-18's layout (stem, 4 stages of 2 basic blocks, 3 downsampling), narrower."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 7, 2, 3, bias=False), nn.BatchNorm2d(8),
                                  nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        w = [8, 16, 32, 64]
        blocks = []
        for i, c in enumerate(w):
            cin = w[max(i - 1, 0)]
            blocks += [Block(cin, c, 1 if i == 0 else 2), Block(c, c, 1)]
        self.layers = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(torch.flatten(Fn.adaptive_avg_pool2d(self.layers(self.stem(x)), 1), 1))


class OddOps(nn.Module):
    """Pad before a conv (zeros), a max pool (-inf) and an average pool; a reshape to
    (-1, D); a MatMul + Add dense layer."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3)
        self.w = nn.Parameter(torch.randn(80, 6) * 0.1)
        self.b = nn.Parameter(torch.randn(6))

    def forward(self, x):
        x = self.conv(Fn.pad(x, (1, 2, 0, 1)))
        x = Fn.max_pool2d(Fn.pad(x, (1, 1, 1, 1), value=float("-inf")), 3, 2)
        x = Fn.avg_pool2d(Fn.pad(x, (0, 1, 0, 1)), 2, 1)
        return x.reshape(-1, 80) @ self.w + self.b


NETS = {
    "lenet": (LeNet, (1, 28, 28), ["Conv2D", "Flatten", "Dense"]),
    "alexnet_like": (alexnet_like, (3, 67, 67), ["Softmax", "AvgPool2D", "LeakyReLU"]),
    "vgg_like_bn": (vgg_like_bn, (3, 16, 16), ["GlobalAvgPool2D", "BatchNorm"]),
    "inception": (Inception, (3, 12, 12), ["Concat"]),
    "resnet18_like": (ResNet18Like, (3, 64, 64), ["Residual"]),
    "odd_ops": (OddOps, (2, 9, 8), ["MaxPool2D", "AvgPool2D", "Dense"]),
}


def export(net, shape, path, fold):
    torch.manual_seed(0)
    for m in net.modules():  # non-trivial batch-norm statistics
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            with torch.no_grad():
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    net.eval()
    x = torch.randn((3,) + shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x,), str(path), dynamo=False, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "N"}, "y": {0: "N"}},
                          do_constant_folding=fold, opset_version=17)
    return x


def kinds(layer):
    out = {type(layer).__name__}
    for c in getattr(layer, "layers", []):
        out |= kinds(c)
    return out


@pytest.mark.parametrize("fold", [True, False], ids=["folded", "unfolded"])
@pytest.mark.parametrize("name", sorted(NETS))
def test_torch_exported_net_matches_onnxruntime(name, fold, tmp_path):
    make, shape, expect = NETS[name]
    torch.manual_seed(1)
    net = make()
    path = tmp_path / f"{name}.onnx"
    x = export(net, shape, path, fold)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    want = sess.run(None, {"x": x.numpy()})[0]
    model = from_onnx(path)
    assert isinstance(model, cl.Sequential) and model.input_shape == shape
    got = model.forward(x.numpy())
    assert np.abs(got - want).max() / np.abs(want).max() < 1e-5
    with torch.no_grad():
        ref = net(x).numpy()
    assert np.abs(got - ref).max() / np.abs(ref).max() < 1e-5
    found = kinds(model)
    assert set(expect) - ({"BatchNorm"} if fold else set()) <= found
    if not fold and name in ("vgg_like_bn", "resnet18_like"):
        assert "BatchNorm" in found
    # float64 import: the same numbers to float32 rounding
    m64 = from_onnx(path, dtype=np.float64)
    got64 = m64.forward(x.numpy().astype(np.float64))
    assert np.abs(got64 - want).max() / np.abs(want).max() < 1e-5


def test_resnet_shortcuts_become_residual_blocks(tmp_path):
    x = export(ResNet18Like(), (3, 64, 64), tmp_path / "r.onnx", fold=False)
    model = from_onnx(tmp_path / "r.onnx")
    res = [c for c in model.layers if isinstance(c, L.Residual)]
    assert len(res) == 8
    # three downsampling blocks carry a conv + batch norm shortcut, the others the identity
    assert [r.shortcut is not None for r in res] == [False, False, True, False, True, False,
                                                     True, False]
    assert model.predict(x.numpy()).shape == (3, 10)


def test_imported_inception_gradients_match_torch(tmp_path):
    """Saliency / Grad-CAM use: input gradients through the imported Concat block equal
    PyTorch's autograd on the original net."""
    torch.manual_seed(2)
    net = Inception()
    x = export(net, (3, 12, 12), tmp_path / "i.onnx", fold=True)
    model = from_onnx(tmp_path / "i.onnx", dtype=np.float64)
    xs = x.numpy()[:1].astype(np.float64)
    model.forward(xs, training=False, cache=True)
    dx = model.backward(np.eye(5)[[2]])
    xt = torch.tensor(xs, requires_grad=True)
    net.double()(xt)[0, 2].backward()
    want = xt.grad.numpy()
    assert np.abs(dx - want).max() / np.abs(want).max() < 1e-5
