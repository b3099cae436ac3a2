"""The model zoo: parameter counts against PyTorch definitions written here (torchvision is
not a dependency), output shapes, forward passes equal to PyTorch's with copied weights,
the registry, and a CIFAR net that learns."""
import numpy as np
import pytest
import torch
from torch import nn

import cnnlab as cl
import cnnlab.functional as F
import cnnlab.models as zoo
from cnnlab.models.googlenet import INCEPTION

# ----------------------------------------------------------------------------- torch references


def torch_lenet5():
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                         nn.Linear(84, 10))


def torch_alexnet(num_classes=1000):
    """torchvision.models.alexnet (its AdaptiveAvgPool2d((6, 6)) is the identity at 224)."""
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(), nn.Conv2d(384, 256, 3, padding=1),
        nn.ReLU(), nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.AdaptiveAvgPool2d((6, 6)), nn.Flatten(),
        nn.Dropout(0.5), nn.Linear(256 * 36, 4096), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(4096, 4096), nn.ReLU(), nn.Linear(4096, num_classes))


def torch_vgg16(num_classes=1000):
    """torchvision.models.vgg16 (configuration D)."""
    layers, c = [], 3
    for v in [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M"]:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU()]
            c = v
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d((7, 7)), nn.Flatten(),
                         nn.Linear(512 * 49, 4096), nn.ReLU(), nn.Dropout(),
                         nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(),
                         nn.Linear(4096, num_classes))


class BasicConv2d(nn.Sequential):
    def __init__(self, cin, cout, **kw):
        super().__init__(nn.Conv2d(cin, cout, bias=False, **kw), nn.BatchNorm2d(cout, eps=0.001),
                         nn.ReLU())


class Inception(nn.Module):
    """torchvision's Inception block (its "5x5" branch uses a 3x3 kernel)."""

    def __init__(self, cin, c1, c3r, c3, c5r, c5, pp):
        super().__init__()
        self.b1 = BasicConv2d(cin, c1, kernel_size=1)
        self.b2 = nn.Sequential(BasicConv2d(cin, c3r, kernel_size=1),
                                BasicConv2d(c3r, c3, kernel_size=3, padding=1))
        self.b3 = nn.Sequential(BasicConv2d(cin, c5r, kernel_size=1),
                                BasicConv2d(c5r, c5, kernel_size=3, padding=1))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True),
                                BasicConv2d(cin, pp, kernel_size=1))

    def forward(self, x):
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1)


def torch_googlenet(num_classes=1000):
    """torchvision.models.GoogLeNet(aux_logits=False, transform_input=False)."""
    inc = [Inception(*INCEPTION[k][:])
           for k in ("3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b")]
    return nn.Sequential(
        BasicConv2d(3, 64, kernel_size=7, stride=2, padding=3), nn.MaxPool2d(3, 2, ceil_mode=True),
        BasicConv2d(64, 64, kernel_size=1), BasicConv2d(64, 192, kernel_size=3, padding=1),
        nn.MaxPool2d(3, 2, ceil_mode=True), inc[0], inc[1], nn.MaxPool2d(3, 2, ceil_mode=True),
        *inc[2:7], nn.MaxPool2d(2, 2, ceil_mode=True), inc[7], inc[8],
        nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Dropout(0.2), nn.Linear(1024, num_classes))


def torch_count(factory):
    """Parameter count without allocating (meta device)."""
    with torch.device("meta"):
        return sum(p.numel() for p in factory().parameters())


def copy_into_torch(model, tnet):
    """Copy cnnlab weights (params and state, in order) into the torch net's state dict."""
    ours = list(model.get_weights().items())
    theirs = [(k, v) for k, v in tnet.state_dict().items() if not k.endswith("num_batches_tracked")]
    assert len(ours) == len(theirs)
    new = {}
    for (qn, a), (k, v) in zip(ours, theirs):
        a = a.T if a.ndim == 2 else a   # dense (D_in, D_out) vs torch (out, in)
        assert tuple(a.shape) == tuple(v.shape), (qn, k)
        new[k] = torch.from_numpy(np.ascontiguousarray(a))
    tnet.load_state_dict(new, strict=False)
    return tnet.eval()


def _bn_updates(model, rng):
    """Non-trivial running statistics, so that inference mode is really compared."""
    out = {}
    for qn, arr in model.get_weights().items():
        if qn.endswith("running_mean"):
            out[qn] = (rng.standard_normal(arr.shape) * 0.1).astype(np.float32)
        elif qn.endswith("running_var"):
            out[qn] = rng.uniform(0.5, 1.5, arr.shape).astype(np.float32)
    return out


# ----------------------------------------------------------------------------- counts


def test_lenet5_count_shape_and_forward_match_torch():
    model = zoo.lenet5(seed=0)
    assert isinstance(model, cl.Sequential) and model.built
    assert model.count_params() == 61706 == torch_count(torch_lenet5)
    rows = model.summary(print_fn=None)
    assert [r["output_shape"] for r in rows] == [
        (1, 28, 28), (6, 28, 28), (6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 10, 10),
        (16, 5, 5), (400,), (120,), (120,), (84,), (84,), (10,)]
    x = np.random.default_rng(1).random((4, 1, 28, 28), dtype=np.float32)
    tnet = copy_into_torch(model, torch_lenet5())
    with torch.no_grad():
        ref = tnet(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model.forward(x), ref, rtol=1e-4, atol=1e-5)


def test_seed_makes_weights_reproducible():
    a, b, c = zoo.lenet5(seed=3), zoo.lenet5(seed=3), zoo.lenet5(seed=4)
    wa, wb, wc = a.get_weights(), b.get_weights(), c.get_weights()
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)
    assert not np.array_equal(wa["conv2d.w"], wc["conv2d.w"])


def test_alexnet_count_and_forward_match_torch():
    model = zoo.alexnet(seed=0)
    assert model.count_params() == 61_100_840 == torch_count(torch_alexnet)
    shapes = [r["output_shape"] for r in zoo.analyze(model)[0]]
    assert (64, 55, 55) in shapes and (256, 6, 6) in shapes and shapes[-1] == (1000,)
    x = np.random.default_rng(2).random((1, 3, 224, 224), dtype=np.float32)
    torch.manual_seed(0)
    tnet = copy_into_torch(model, torch_alexnet())
    with torch.no_grad():
        ref = tnet(torch.from_numpy(x)).numpy()
    out = model.forward(x)
    assert out.shape == (1, 1000)
    np.testing.assert_allclose(out, ref, rtol=1e-3, atol=1e-4)


@pytest.fixture(scope="module")
def vgg16_model():
    """VGG-16 allocates ~553 MB of weights: built once for the module."""
    return zoo.vgg16(seed=0)


def test_vgg16_count_matches_torch_built_and_analytic(vgg16_model):
    expected = 138_357_544
    assert torch_count(torch_vgg16) == expected
    assert vgg16_model.count_params() == expected
    assert zoo.analyze(zoo.vgg16(build=False))[1] == expected
    assert vgg16_model.get_weights()["dense.w"].shape == (25088, 4096)


def test_vgg16_forward_one_sample(vgg16_model):
    x = np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)
    out = vgg16_model.forward(x)
    assert out.shape == (1, 1000) and np.all(np.isfinite(out))


def test_vgg_family_counts_without_building():
    for name, n in [("vgg11", 132_863_336), ("vgg13", 133_047_848), ("vgg19", 143_667_240)]:
        model = zoo.get(name, build=False)
        assert not model.built
        rows, total = zoo.analyze(model)
        assert total == n, name
        assert rows[-1]["output_shape"] == (1000,)
        assert (512, 7, 7) in [r["output_shape"] for r in rows]


def test_googlenet_count_matches_torchvision_definition():
    assert torch_count(torch_googlenet) == 6_624_904
    model = zoo.googlenet(build=False)
    rows, total = zoo.analyze(model)
    assert total == 6_624_904
    shapes = {r["layer"]: r["output_shape"] for r in rows}
    assert shapes["conv1"] == (64, 112, 112) and shapes["maxpool1"] == (64, 56, 56)
    assert shapes["inception3a"] == (256, 28, 28) and shapes["inception4e"] == (832, 14, 14)
    assert shapes["inception5b"] == (1024, 7, 7) and shapes["fc"] == (1000,)
    # the paper's real 5x5 kernels: 16 * sum(c5r * c5) = 380,928 more
    assert zoo.analyze(zoo.googlenet(build=False, paper_5x5=True))[1] == 6_624_904 + 380_928


def test_googlenet_forward_matches_torch_with_ceil_mode_pools():
    """80x80 input makes every ceil_mode pool round up (40 -> 20 -> 10 -> 5 -> 3)."""
    rng = np.random.default_rng(5)
    model = zoo.googlenet(num_classes=10, input_shape=(3, 80, 80), seed=0)
    assert model.count_params() == 6_624_904 - 990 * (1024 + 1)
    model.set_weights(model.get_weights() | _bn_updates(model, rng))
    tnet = copy_into_torch(model, torch_googlenet(10))
    x = rng.random((2, 3, 80, 80), dtype=np.float32)
    with torch.no_grad():
        ref = tnet(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model.forward(x), ref, rtol=1e-3, atol=1e-4)
    assert [r["output_shape"] for r in zoo.analyze(model)[0] if r["layer"].startswith("maxpool")] \
        == [(64, 20, 20), (192, 10, 10), (480, 5, 5), (832, 3, 3)]


def test_zfnet_sizes_follow_the_paper():
    model = zoo.zfnet(build=False)
    rows, total = zoo.analyze(model)
    assert total == 62_357_608

    def zf():
        return nn.Sequential(
            nn.Conv2d(3, 96, 7, 2, 1), nn.Conv2d(96, 256, 5, 2), nn.Conv2d(256, 384, 3, padding=1),
            nn.Conv2d(384, 384, 3, padding=1), nn.Conv2d(384, 256, 3, padding=1),
            nn.Linear(9216, 4096), nn.Linear(4096, 4096), nn.Linear(4096, 1000))

    def alexnet_two_gpus():  # the 2012 paper's grouped convs, for the docstring's comparison
        return nn.Sequential(
            nn.Conv2d(3, 96, 11, 4), nn.Conv2d(96, 256, 5, padding=2, groups=2),
            nn.Conv2d(256, 384, 3, padding=1), nn.Conv2d(384, 384, 3, padding=1, groups=2),
            nn.Conv2d(384, 256, 3, padding=1, groups=2),
            nn.Linear(9216, 4096), nn.Linear(4096, 4096), nn.Linear(4096, 1000))

    assert torch_count(zf) == 62_357_608 and torch_count(alexnet_two_gpus) == 60_965_224
    spatial = [r["output_shape"][1] for r in rows if r["type"] in ("Conv2D", "MaxPool2D")]
    assert spatial == [110, 55, 26, 13, 13, 13, 13, 6]
    assert rows[1]["output_shape"] == (96, 110, 110)


def test_three_layer_convnet_count_and_forward_matches_torch():
    model = zoo.three_layer_convnet(seed=0)
    assert model.count_params() == 825_046
    tnet = nn.Sequential(nn.Conv2d(3, 32, 7, padding=3), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(32 * 16 * 16, 100), nn.ReLU(),
                         nn.Linear(100, 10))
    assert sum(p.numel() for p in tnet.parameters()) == 825_046
    x = np.random.default_rng(0).random((3, 3, 32, 32), dtype=np.float32)
    copy_into_torch(model, tnet)
    with torch.no_grad():
        ref = tnet(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model.forward(x), ref, rtol=1e-4, atol=1e-6)
    assert zoo.three_layer_convnet(num_filters=8, filter_size=5, hidden_dim=20,
                                   input_shape=(1, 28, 28)).forward(x[:, :1, :28, :28]).shape == (3, 10)
    with pytest.raises(ValueError, match="odd"):
        zoo.three_layer_convnet(filter_size=4)


# ----------------------------------------------------------------------------- small nets


@pytest.mark.parametrize("name, shape, count", [
    ("cifar_convnet", (3, 32, 32), 94_772), ("cifar_resnet", (3, 32, 32), 412_964),
    ("lenet5", (1, 28, 28), 61_706), ("three_layer_convnet", (3, 32, 32), 825_046)])
def test_small_nets_forward_shape_and_analytic_count(name, shape, count):
    model = zoo.get(name, seed=0)
    assert zoo.default_input_shape(name) == shape
    assert model.count_params() == count == zoo.analyze(zoo.get(name, build=False))[1]
    rows, total = zoo.analyze(model, expand_nested=True)
    assert total == count
    x = np.random.default_rng(0).random((2,) + shape, dtype=np.float32)
    out = model.forward(x)
    assert out.shape == (2, 10) and np.all(np.isfinite(out))


def test_num_classes_and_input_shape_arguments():
    m = zoo.lenet5(num_classes=5, input_shape=(3, 32, 32), seed=0)
    assert m.forward(np.zeros((1, 3, 32, 32), np.float32)).shape == (1, 5)
    assert m.count_params() == 456 + 2416 + 576 * 120 + 120 + 10164 + 85 * 5
    assert zoo.cifar_convnet(num_classes=100, input_shape=(3, 64, 64), seed=0).output_shape == (100,)
    assert zoo.cifar_resnet(widths=(8, 8, 16, 16), seed=0).count_params() < 50_000
    assert zoo.alexnet(num_classes=10, build=False).compute_output_shape((3, 224, 224)) == (10,)
    with pytest.raises(ValueError, match="multiples of 8"):
        zoo.cifar_convnet(input_shape=(3, 30, 30))
    with pytest.raises(ValueError, match="input_shape"):
        zoo.lenet5(input_shape=(28, 28))
    with pytest.raises(ValueError, match="num_classes"):
        zoo.lenet5(num_classes=0)


def test_registry():
    names = zoo.available()
    for n in ("lenet5", "three_layer_convnet", "alexnet", "zfnet", "vgg11", "vgg16", "googlenet",
              "cifar_convnet", "cifar_resnet"):
        assert n in names and zoo.describe(n)
    assert zoo.get("LeNet-5".replace("-", ""), seed=1).name == "lenet5"
    with pytest.raises(ValueError, match="unknown model 'resnet1000'.*lenet5"):
        zoo.get("resnet1000")


def test_zoo_models_save_and_load(tmp_path):
    model = zoo.cifar_resnet(widths=(4, 4, 8, 8), seed=0)
    x = np.random.default_rng(0).random((2, 3, 32, 32), dtype=np.float32)
    path = tmp_path / "net.npz"
    model.save(path)
    again = cl.load_model(path)
    np.testing.assert_array_equal(again.forward(x), model.forward(x))


@pytest.mark.parametrize("name", ["cifar_convnet", "cifar_resnet"])
def test_cifar_net_trains(name):
    """A few Adam steps on a fixed batch: the loss falls clearly."""
    rng = np.random.default_rng(0)
    x = rng.random((32, 3, 32, 32), dtype=np.float32)
    y = rng.integers(0, 10, 32)
    model = zoo.get(name, seed=0)
    opt = cl.optim.Adam(3e-3)
    losses = []
    for _ in range(12):
        scores = model.forward(x, training=True)
        loss, d = F.softmax_loss(scores, y)
        losses.append(loss)
        model.backward(d)
        entries = model.named_parameters()
        opt.step([l.params[k] for _, l, k in entries], [l.grads[k] for _, l, k in entries])
    assert losses[-1] < 0.5 * losses[0], losses
