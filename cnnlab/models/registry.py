"""The zoo's registry, used by the command line: ``get(name, **kw)``, ``available()``,
``default_input_shape(name)``, ``describe(name)``."""
from __future__ import annotations

from .alexnet import alexnet, zfnet
from .cifar import cifar_airbench, cifar_convnet, cifar_resnet
from .fc_nets import fully_connected_net, two_layer_net
from .googlenet import googlenet
from .lenet import lenet5, three_layer_convnet
from .vgg import vgg11, vgg13, vgg16, vgg19

#: name -> (builder, default input shape, one-line description)
MODELS = {
    "lenet5": (lenet5, (1, 28, 28), "LeNet-5 for 28x28 digits (61,706 params)"),
    "three_layer_convnet": (three_layer_convnet, (3, 32, 32),
                            "cs231n's conv-relu-pool-affine-relu-affine (825,046 params)"),
    "cifar_convnet": (cifar_convnet, (3, 32, 32),
                      "fast conv-BN-ReLU 32/64/128 CIFAR-10 net (94,772 params)"),
    "cifar_resnet": (cifar_resnet, (3, 32, 32),
                     "narrow ResNet-9 for CIFAR-10 with Residual blocks (412,964 params)"),
    "cifar_airbench": (cifar_airbench, (3, 32, 32),
                       "airbench94's CIFAR-10 net: patch whitening, 64/256/256 (1,972,504 params)"),
    "alexnet": (alexnet, (3, 224, 224), "AlexNet, torchvision's definition (61,100,840 params)"),
    "zfnet": (zfnet, (3, 224, 224), "ZFNet, Zeiler & Fergus 2013 layout (62,357,608 params)"),
    "vgg11": (vgg11, (3, 224, 224), "VGG-11, configuration A (132,863,336 params)"),
    "vgg13": (vgg13, (3, 224, 224), "VGG-13, configuration B (133,047,848 params)"),
    "vgg16": (vgg16, (3, 224, 224), "VGG-16, configuration D (138,357,544 params)"),
    "vgg19": (vgg19, (3, 224, 224), "VGG-19, configuration E (143,667,240 params)"),
    "two_layer_net": (two_layer_net, (3, 32, 32), "cs231n's affine-relu-affine net (308,310 params)"),
    "fully_connected_net": (fully_connected_net, (3, 32, 32),
                            "cs231n's fully connected net, hidden (100, 100) (318,410 params)"),
    "googlenet": (googlenet, (3, 224, 224),
                  "GoogLeNet / Inception v1 as torchvision, no aux heads (6,624,904 params)"),
}


def available():
    """Sorted names accepted by :func:`get`."""
    return sorted(MODELS)


def _entry(name):
    if not isinstance(name, str):
        raise TypeError(f"model name must be a str, got {type(name).__name__}")
    key = name.lower().replace("-", "_")
    if key not in MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(available())}")
    return MODELS[key]


def get(name, **kw):
    """Build the zoo model ``name`` (case-insensitive, '-' = '_') with keyword arguments
    passed to its function, e.g. ``get('lenet5', seed=0)``,
    ``get('vgg16', build=False)``. Unknown name -> ValueError listing the names."""
    fn = _entry(name)[0]
    return fn(**kw)


def default_input_shape(name):
    """The per-sample input shape a zoo model is defined for, e.g. (1, 28, 28)."""
    return _entry(name)[1]


def describe(name):
    """One line about the model."""
    return _entry(name)[2]
