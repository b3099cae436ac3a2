"""VGG (Simonyan & Zisserman 2014), torchvision's configurations A (VGG-11), B (13),
D (16) and E (19), without batch norm (``batch_norm=True`` adds it after each conv)."""
from __future__ import annotations

from ..layers import BatchNorm, Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU
from ._build import check_int, check_shape, finish

#: Conv widths per configuration; 'M' is a 2x2 stride-2 max pool.
CONFIGS = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M"],
}


def vgg(config="D", num_classes=1000, input_shape=(3, 224, 224), batch_norm=False, dropout=0.5,
        seed=None, build=True, name=None):
    """A VGG net from a configuration letter (see :data:`CONFIGS`): 3x3 'same' convs with
    ReLU, 2x2 max pools, then fc 4096 - relu - dropout - fc 4096 - relu - dropout - fc.
    For 224x224 input the features end 7x7x512 = 25,088 (torchvision's
    ``AdaptiveAvgPool2d((7, 7))`` is then the identity and is left out)."""
    who = name or "vgg"
    if config not in CONFIGS:
        raise ValueError(f"{who}: config must be one of {sorted(CONFIGS)}, got {config!r}")
    input_shape = check_shape(who, input_shape)
    num_classes = check_int(who, num_classes, "num_classes", 2)
    layers = []
    for v in CONFIGS[config]:
        if v == "M":
            layers.append(MaxPool2D(2))
        else:
            layers.append(Conv2D(v, 3, padding=1))
            if batch_norm:
                layers.append(BatchNorm())
            layers.append(ReLU())
    layers += [Flatten(), Dense(4096), ReLU(), Dropout(dropout), Dense(4096), ReLU(),
               Dropout(dropout), Dense(num_classes)]
    return finish(layers, input_shape, seed, who, build)


VGG_DEPARTURES = """

    Departures from the paper (Simonyan & Zisserman 2014, Table 1), layer by layer:

    - conv layers: the paper's 3x3 stride-1 'same' convolutions and ReLU, unchanged;
      ``batch_norm=True`` (a batch norm after each conv, torchvision's ``vgg*_bn``) is an
      addition, not in the paper.
    - pool layers: 2x2 stride-2 max pools, unchanged.
    - torchvision's AdaptiveAvgPool2d((7, 7)) before fc6: left out (the identity at
      224x224; another input size changes fc6's size instead).
    - fc6 / fc7: dropout 0.5 after each, as in the paper. At test time the paper turns the
      fc layers into convolutions for dense multi-scale evaluation; here they stay Dense
      (``model.to_fully_convolutional()`` does that conversion on request).
    - initialization: He normal weights and zero biases for every depth, instead of
      N(0, 1e-2) for configuration A and copying A's layers into the deeper nets: He
      initialization trains the deep configurations directly.
    - configuration C (with 1x1 convs) and A-LRN are not provided.
    """


def vgg11(num_classes=1000, input_shape=(3, 224, 224), batch_norm=False, seed=None, build=True):
    """VGG-11 (configuration A): 132,863,336 parameters for 3x224x224, 1000 classes."""
    return vgg("A", num_classes, input_shape, batch_norm, seed=seed, build=build, name="vgg11")


def vgg13(num_classes=1000, input_shape=(3, 224, 224), batch_norm=False, seed=None, build=True):
    """VGG-13 (configuration B): 133,047,848 parameters for 3x224x224, 1000 classes."""
    return vgg("B", num_classes, input_shape, batch_norm, seed=seed, build=build, name="vgg13")


def vgg16(num_classes=1000, input_shape=(3, 224, 224), batch_norm=False, seed=None, build=True):
    """VGG-16 (configuration D): 138,357,544 parameters for 3x224x224, 1000 classes
    (about 553 MB of float32 weights)."""
    return vgg("D", num_classes, input_shape, batch_norm, seed=seed, build=build, name="vgg16")


def vgg19(num_classes=1000, input_shape=(3, 224, 224), batch_norm=False, seed=None, build=True):
    """VGG-19 (configuration E): 143,667,240 parameters for 3x224x224, 1000 classes."""
    return vgg("E", num_classes, input_shape, batch_norm, seed=seed, build=build, name="vgg19")


for _f in (vgg11, vgg13, vgg16, vgg19):  # one text for the four depths
    _f.__doc__ += VGG_DEPARTURES
del _f
