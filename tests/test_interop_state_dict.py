"""PyTorch weights into cnnlab nets and back, without pickles (cnnlab.interop
load_state_dict / save_state_dict), checked against PyTorch: the same outputs after the
transfer, in float32 and float64. torchvision is not needed: the torch modules below
follow torchvision's definitions (module names and shapes) of AlexNet, VGG and GoogLeNet.
"""
import numpy as np
import pytest
import safetensors.numpy as stnp
import safetensors.torch as sttorch
import torch
import torch.nn.functional as Fn
from torch import nn

import cnnlab as cl
import cnnlab.layers as L
import cnnlab.models as zoo
from cnnlab.interop import StateDictError, load_state_dict, save_state_dict
from cnnlab.models.googlenet import INCEPTION

# ----------------------------------------------------------------------------- torchvision mirrors

class AlexNet(nn.Module):
    """torchvision.models.AlexNet (avgpool: the identity at the small test size)."""

    def __init__(self, num_classes, flat):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(True), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(True), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(True),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(True),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(True), nn.MaxPool2d(3, 2))
        self.avgpool = nn.Identity()
        self.classifier = nn.Sequential(
            nn.Dropout(), nn.Linear(flat, 4096), nn.ReLU(True), nn.Dropout(),
            nn.Linear(4096, 4096), nn.ReLU(True), nn.Linear(4096, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def vgg_bn(cfg, num_classes, flat):
    """torchvision.models.vgg*_bn's module layout."""
    layers, c = [], 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU(True)]
            c = v
    net = nn.Module()
    net.features = nn.Sequential(*layers)
    net.classifier = nn.Sequential(nn.Linear(flat, 4096), nn.ReLU(True), nn.Dropout(),
                                   nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(),
                                   nn.Linear(4096, num_classes))
    net.forward = lambda x: net.classifier(torch.flatten(net.features(x), 1))
    return net


class BasicConv2d(nn.Module):
    def __init__(self, cin, cout, **kw):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, bias=False, **kw)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x):
        return Fn.relu(self.bn(self.conv(x)))


class Inception(nn.Module):
    def __init__(self, cin, c1, c3r, c3, c5r, c5, pp):
        super().__init__()
        self.branch1 = BasicConv2d(cin, c1, kernel_size=1)
        self.branch2 = nn.Sequential(BasicConv2d(cin, c3r, kernel_size=1),
                                     BasicConv2d(c3r, c3, kernel_size=3, padding=1))
        self.branch3 = nn.Sequential(BasicConv2d(cin, c5r, kernel_size=1),
                                     BasicConv2d(c5r, c5, kernel_size=3, padding=1))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True),
                                     BasicConv2d(cin, pp, kernel_size=1))

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class GoogLeNet(nn.Module):
    """torchvision.models.GoogLeNet(aux_logits=False, transform_input=False)."""

    def __init__(self, num_classes):
        super().__init__()
        self.conv1 = BasicConv2d(3, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        for k in ("3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b"):
            setattr(self, f"inception{k}", Inception(*INCEPTION[k]))
        self.maxpool3 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.maxpool4 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(1024, num_classes)

    def forward(self, x):
        x = self.maxpool2(self.conv3(self.conv2(self.maxpool1(self.conv1(x)))))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        for k in ("4a", "4b", "4c", "4d", "4e"):
            x = getattr(self, f"inception{k}")(x)
        x = self.inception5b(self.inception5a(self.maxpool4(x)))
        return self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))


def randomize(net, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            else:
                t.copy_(torch.randn(t.shape, generator=g) * (0.05 if t.ndim > 1 else 0.5))
    return net.eval()




def pairs(dtype):
    """(name, torch net, cnnlab net, input shape)."""
    return {
        "alexnet": (lambda: AlexNet(10, 256),
                    lambda: cl.Sequential(zoo.alexnet(10, (3, 64, 64), build=False).layers,
                                          input_shape=(3, 64, 64), seed=0, dtype=dtype),
                    (3, 64, 64)),
        "vgg11_bn": (lambda: vgg_bn(zoo.VGG_CONFIGS["A"], 10, 512),
                     lambda: cl.Sequential(zoo.vgg11(10, (3, 32, 32), batch_norm=True,
                                                     build=False).layers,
                                           input_shape=(3, 32, 32), seed=0, dtype=dtype),
                     (3, 32, 32)),
        "googlenet": (lambda: GoogLeNet(10),
                      lambda: cl.Sequential(zoo.googlenet(10, (3, 64, 64), build=False).layers,
                                            input_shape=(3, 64, 64), seed=0, dtype=dtype),
                      (3, 64, 64)),
    }


def rel(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("name, dtype", [("alexnet", np.float32), ("vgg11_bn", np.float32),
                                         ("googlenet", np.float32), ("googlenet", np.float64)])
def test_torchvision_weights_in_through_safetensors(name, dtype, tmp_path):
    make_torch, make_cl, shape = pairs(dtype)[name]
    net = randomize(make_torch(), 0)
    if dtype == np.float64:
        net = net.double()
    sttorch.save_file(net.state_dict(), str(tmp_path / "w.safetensors"))
    model = make_cl()
    load_state_dict(model, tmp_path / "w.safetensors")
    x = np.random.default_rng(1).standard_normal((2,) + shape).astype(dtype)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    got = model.forward(x)
    assert got.dtype == dtype
    assert rel(got, want) < (1e-4 if dtype == np.float32 else 1e-10)


@pytest.mark.parametrize("name", ["alexnet", "googlenet"])
def test_zoo_weights_out_are_accepted_by_torch(name, tmp_path):
    make_torch, make_cl, shape = pairs(np.float64)[name]
    model = make_cl()
    model.name = name  # the zoo's name selects torchvision's module names
    rng = np.random.default_rng(2)
    for _, layer, key in model.named_parameters():
        layer.params[key][...] = rng.standard_normal(layer.params[key].shape) * 0.05
    for _, layer in ((None, c) for c in _walk(model)):
        if isinstance(layer, L.BatchNorm):
            layer.state["running_var"][...] = rng.uniform(0.5, 1.5, layer.state["running_var"].shape)
    save_state_dict(model, tmp_path / "out.safetensors")
    net = make_torch().double().eval()
    result = net.load_state_dict(sttorch.load_file(str(tmp_path / "out.safetensors")),
                                 strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    x = rng.standard_normal((2,) + shape)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    assert rel(model.forward(x), want) < 1e-10


def _walk(layer):
    yield layer
    for c in getattr(layer, "layers", []):
        yield from _walk(c)


class TorchBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.bn2(self.conv2(Fn.relu(self.bn1(self.conv1(x)))))
        return Fn.relu(y + (x if self.downsample is None else self.downsample(x)))


class TorchResNet(nn.Module):
    """ResNet-18's naming (conv1, bn1, layer1..layer4 of BasicBlocks, fc), narrow; 12
    stages' worth of 'layer10'-style names would sort before 'layer2': four suffice to
    make sorted names disagree with the order (bn1 < conv1, 'downsample' last)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        w = [8, 8, 16, 16]
        for i in range(4):
            cin = w[max(i - 1, 0)]
            setattr(self, f"layer{i + 1}", nn.Sequential(
                TorchBlock(cin, w[i], 2 if cin != w[i] else 1), TorchBlock(w[i], w[i], 1)))
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        x = Fn.relu(self.bn1(self.conv1(x)))
        for i in range(4):
            x = getattr(self, f"layer{i + 1}")(x)
        return self.fc(torch.flatten(Fn.adaptive_avg_pool2d(x, 1), 1))


def cnnlab_resnet(dtype):
    def block(cin, cout, stride):
        body = [L.Conv2D(cout, 3, stride, 1, use_bias=False), L.BatchNorm(), L.ReLU(),
                L.Conv2D(cout, 3, 1, 1, use_bias=False), L.BatchNorm()]
        short = None if stride == 1 and cin == cout else [L.Conv2D(cout, 1, stride, use_bias=False),
                                                          L.BatchNorm()]
        return [L.Residual(body, short), L.ReLU()]
    layers = [L.Conv2D(8, 3, 1, 1, use_bias=False), L.BatchNorm(), L.ReLU()]
    w = [8, 8, 16, 16]
    for i in range(4):
        cin = w[max(i - 1, 0)]
        layers += block(cin, w[i], 2 if cin != w[i] else 1) + block(w[i], w[i], 1)
    layers += [L.GlobalAvgPool2D(), L.Dense(5)]
    return cl.Sequential(layers, input_shape=(3, 16, 16), seed=0, dtype=dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("source", ["safetensors", "mapping", "sorted mapping"])
def test_resnet_weights_matched_by_structure_not_names(source, dtype, tmp_path):
    net = randomize(TorchResNet(), 3)
    if dtype == np.float64:
        net = net.double()
    model = cnnlab_resnet(dtype)
    sd = {k: v.numpy() for k, v in net.state_dict().items()}
    if source == "safetensors":
        stnp.save_file(sd, str(tmp_path / "r.safetensors"))
        src = tmp_path / "r.safetensors"
    elif source == "mapping":
        src = sd
    else:
        src = {k: sd[k] for k in sorted(sd)}  # 'bn1' before 'conv1', 'downsample' ...
    names = load_state_dict(model, src)
    assert len(names) == sum(1 for k in sd if not k.endswith("num_batches_tracked"))
    x = np.random.default_rng(4).standard_normal((2, 3, 16, 16)).astype(dtype)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    assert rel(model.forward(x), want) < (1e-5 if dtype == np.float32 else 1e-10)


def test_lenet_round_trip_through_a_torch_sequential(tmp_path):
    model = zoo.lenet5(seed=0)
    save_state_dict(model, tmp_path / "l.safetensors")
    net = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                        nn.Linear(84, 10))
    net.load_state_dict(sttorch.load_file(str(tmp_path / "l.safetensors")), strict=True)
    x = np.random.default_rng(5).random((3, 1, 28, 28), dtype=np.float32)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    assert rel(model.forward(x), want) < 1e-5
    other = zoo.lenet5(seed=1)
    load_state_dict(other, tmp_path / "l.safetensors")
    np.testing.assert_array_equal(other.forward(x), model.forward(x))


def test_mismatch_changes_nothing(tmp_path):
    net = randomize(TorchResNet(), 3)
    sd = {k: v.numpy() for k, v in net.state_dict().items()}
    sd["fc.weight"] = np.zeros((6, 16), np.float32)  # one wrong shape, at the very end
    model = cnnlab_resnet(np.float32)
    before = {k: v.copy() for k, v in model.get_weights().items()}
    with pytest.raises(StateDictError, match="do not fit"):
        load_state_dict(model, sd)
    after = model.get_weights()
    assert all(np.array_equal(before[k], after[k]) for k in before)
    # a missing tensor and an extra one
    sd = {k: v.numpy() for k, v in net.state_dict().items()}
    del sd["layer2.1.bn2.running_var"]
    with pytest.raises(StateDictError, match="do not fit"):
        load_state_dict(model, sd)
    sd = {k: v.numpy() for k, v in net.state_dict().items()}
    sd["extra.weight"] = np.ones((3, 3), np.float32)
    with pytest.raises(StateDictError, match="do not fit"):
        load_state_dict(model, sd)


def test_pickles_refused_with_the_conversion_lines(tmp_path):
    p = tmp_path / "net.pth"
    torch.save(nn.Linear(2, 2).state_dict(), p)
    for path in (p, tmp_path / "net.pt"):
        with pytest.raises(StateDictError) as info:
            load_state_dict(zoo.lenet5(seed=0), path)
        msg = str(info.value)
        assert "weights_only=True" in msg and "safetensors.torch.save_file" in msg
    with pytest.raises(StateDictError, match="safetensors"):
        load_state_dict(zoo.lenet5(seed=0), tmp_path / "net.npz")
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(StateDictError, match="not a readable safetensors"):
        load_state_dict(zoo.lenet5(seed=0), tmp_path / "bad.safetensors")
