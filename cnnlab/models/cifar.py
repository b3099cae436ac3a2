"""Nets sized for CIFAR-10 on a small CPU: conv - batch norm - relu blocks with pooling
(airbench-like), and a narrow ResNet-9 (David Page's DAWNBench design) using
:class:`cnnlab.layers.Residual`.

Both end in a max pool over the whole remaining feature map, one fc layer and a batch
norm of the class scores (a learned per-class scale and bias, playing the part of the
fixed 0.125 logit scale of Page's ResNet-9: it keeps the first steps stable at a high
learning rate). Measured on cifar_convnet, 2 epochs of SGD on 10,000 training images,
2,000 test images: 63 % with this head at lr 0.2, 55.5 % with a plain fc head at its
best lr (0.05), 54 % with global average pooling. They take any input size divisible by
their total pooling factor.

``benchmarks/bench_accuracy.py --task cifar-best --minutes 4`` (2 shared CPU cores, SGD
Nesterov, wall-clock one-cycle to lr 0.2, crops + flips, the 10,000 test images):
cifar_convnet 73.3 % (727 img/s, 3.5 epochs), cifar_resnet 76.0 % (396 img/s, 1.9
epochs) -- the ResNet is the better use of a time budget even at 4 minutes.
"""
from __future__ import annotations

import numpy as np

from ..layers import (BatchNorm, Conv2D, Dense, Flatten, MaxPool2D, PatchWhitening, ReLU,
                      Rescaling, Residual)
from ._build import check_int, check_shape, finish
from ._pretrained import card, load_pretrained

#: the name of the shipped CIFAR-10 net in cnnlab/assets/pretrained
PRETRAINED_CIFAR = "cifar_resnet"


def conv_bn_relu(filters, kernel_size=3):
    """conv kxk 'same' (no bias: the batch norm's beta is the bias) - batch norm - relu."""
    return [Conv2D(filters, kernel_size, padding=kernel_size // 2, use_bias=False),
            BatchNorm(), ReLU()]


def _widths(who, widths, n):
    try:
        widths = tuple(widths)
    except TypeError:
        raise ValueError(f"{who}: widths must be a sequence of {n} positive ints, got {widths!r}") from None
    if len(widths) != n and n:
        raise ValueError(f"{who}: widths must be {n} positive ints, got {widths!r}")
    return tuple(check_int(who, w, "each width") for w in widths)


def _head(who, input_shape, factor, num_classes):
    h, w = input_shape[1:]
    if h % factor or w % factor:
        raise ValueError(f"{who}: input height and width must be multiples of {factor} (the "
                         f"net halves them {factor.bit_length() - 1} times), got {input_shape}")
    return [MaxPool2D((h // factor, w // factor)), Flatten(),
            Dense(num_classes, use_bias=False, kernel_initializer="lecun"), BatchNorm()]


def cifar_convnet(num_classes=10, input_shape=(3, 32, 32), widths=(32, 64, 128),
                  convs_per_stage=1, seed=None, build=True):
    """A plain fast CIFAR-10 net (the airbench recipe without its tricks)::

        for w in widths: [conv 3x3 w - batch norm - relu] x convs_per_stage - maxpool 2
        global max pool - fc num_classes (no bias) - batch norm

    Defaults (32, 64, 128), one conv per stage: 94,772 parameters (the three convs 864 +
    18,432 + 73,728, batch norms 448 + 20, fc 1,280), about 10 M multiply-adds per image.

    Departures from the paper (there is no paper: the model follows Keller Jordan's
    ``airbench`` CIFAR-10 speed runs, 2024), layer by layer:

    - first layer: a learned 3x3 conv-bn-relu instead of airbench's frozen 2x2
      whitening convolution computed from the training patches: a zoo model must not
      need the data to be built.
    - each stage: one conv (``convs_per_stage=1``) with widths 32/64/128 instead of two
      convs with widths 64/256/256, so that an epoch takes about a minute on 2 CPU
      cores; ``widths`` and ``convs_per_stage`` restore the larger form.
    - activations: ReLU instead of GELU (cheaper in NumPy, and the one the courses teach).
    - head: global max pool - fc (no bias) - batch norm of the scores instead of a fixed
      logit scale: a learned scale measured better here (see the module docstring).
    """
    who = "cifar_convnet"
    input_shape = check_shape(who, input_shape)
    num_classes = check_int(who, num_classes, "num_classes", 2)
    widths = _widths(who, widths, 0)
    if not widths:
        raise ValueError(f"{who}: widths must not be empty")
    convs_per_stage = check_int(who, convs_per_stage, "convs_per_stage")
    layers = []
    for w in widths:
        for _ in range(convs_per_stage):
            layers += conv_bn_relu(w)
        layers.append(MaxPool2D(2))
    layers += _head(who, input_shape, 2 ** len(widths), num_classes)
    return finish(layers, input_shape, seed, who, build)


def cifar_resnet(num_classes=10, input_shape=(3, 32, 32), widths=None, seed=None,
                 build=True, pretrained=False):
    """ResNet-9 in the DAWNBench form (Page 2018), widths scaled by ``widths``
    (the original is (64, 128, 256, 512), 6.57 M parameters)::

        prep:   conv-bn-relu w0                                     32x32
        layer1: conv-bn-relu w1 - maxpool 2 - Residual(2 x conv-bn-relu w1)    16x16
        layer2: conv-bn-relu w2 - maxpool 2                         8x8
        layer3: conv-bn-relu w3 - maxpool 2 - Residual(2 x conv-bn-relu w3)    4x4
        global max pool - fc num_classes (no bias) - batch norm

    Defaults (16, 32, 64, 128): 412,964 parameters.

    ``pretrained=True``: the net shipped in the package, widths (32, 64, 128, 256)
    (1,646,132 parameters), trained on the 50,000 CIFAR-10 training images in PyTorch on a
    GPU and imported (model card ``cnnlab/assets/pretrained/cifar_resnet.md``:
    about 90 % on the 10,000 test images), its SHA-256 checked on load. It starts with
    ``Rescaling(offset=-0.5)``, so it takes RGB images in [0, 1] (``load_cifar10``'s
    pixels) as they are. Needs the defaults (``widths`` None or the shipped ones,
    ``num_classes=10``, ``input_shape=(3, 32, 32)``, ``build=True``); ``seed`` is ignored.

    Departures from the paper (David Page, "How to train your ResNet", 2018), layer by
    layer:

    - prep, layer1, layer2, layer3 and both residual blocks: a quarter of Page's widths
      (16/32/64/128 instead of 64/128/256/512; 412,964 parameters instead of 6.57 M) so
      that it trains in minutes on a CPU; ``widths=(64, 128, 256, 512)`` gives the
      original.
    - head: global max pool - fc (no bias) as in Page, but followed by a batch norm of
      the class scores instead of his fixed 0.125 multiplier: the learned scale plays
      the same part (stable first steps at a high learning rate) and measured better
      on the small default widths.
    """
    who = "cifar_resnet"
    input_shape = check_shape(who, input_shape)
    num_classes = check_int(who, num_classes, "num_classes", 2)
    if pretrained:
        shipped = tuple(card(PRETRAINED_CIFAR)["widths"])
        given = shipped if widths is None else _widths(who, widths, 4)
        if given != shipped or num_classes != 10 or input_shape != (3, 32, 32) or not build:
            raise ValueError(f"cifar_resnet(pretrained=True) is the shipped CIFAR-10 net: "
                             f"widths={shipped} (or None), num_classes=10, input_shape=(3, 32, "
                             f"32), build=True; got widths={widths}, num_classes={num_classes}, "
                             f"input_shape={input_shape}, build={build}")
        model = load_pretrained(PRETRAINED_CIFAR)
        model.zoo_input_shape = input_shape
        return model
    w0, w1, w2, w3 = _widths(who, (16, 32, 64, 128) if widths is None else widths, 4)
    layers = (conv_bn_relu(w0)
              + conv_bn_relu(w1) + [MaxPool2D(2), Residual(conv_bn_relu(w1) + conv_bn_relu(w1))]
              + conv_bn_relu(w2) + [MaxPool2D(2)]
              + conv_bn_relu(w3) + [MaxPool2D(2), Residual(conv_bn_relu(w3) + conv_bn_relu(w3))])
    layers += _head(who, input_shape, 8, num_classes)
    return finish(layers, input_shape, seed, who, build)


def cifar_airbench(num_classes=10, input_shape=(3, 32, 32), widths=(64, 256, 256), seed=None,
                   build=True):
    """Keller Jordan's airbench94 CIFAR-10 net (2024), with ReLU::

        whiten: PatchWhitening 2x2 (3 -> 24 channels, fitted by .adapt) - relu   31x31
        for w in widths:  conv 3x3 w - maxpool 2 - bn - relu - conv 3x3 w - bn - relu
                                                             15x15, 7x7, 3x3
        global max pool - fc num_classes (no bias) - x 1/9

    Defaults (64, 256, 256): 1,972,504 parameters, about 118 M multiply-adds per image
    (each block's first conv runs before its pool, the second after it). Trained with
    airbench94's recipe by ``benchmarks/bench_accuracy.py --task cifar-best --minutes 60``
    on 2 CPU cores: 90.58 % on the 10,000 CIFAR-10 test images (flip test-time
    augmentation; 89.83 % without) after 21 epochs; 89.40 % (88.61 %) in 30 minutes.

    Build it, then fit the whitening to training images before training::

        net = cifar_airbench(seed=0)
        net.layers[0].adapt(x_train[:5000])

    The convs start as airbench's: the first ``C`` of a conv's ``K`` filters (all ``K`` of
    them when ``K < C``) are the identity (a 1 at the kernel centre of their own input channel, PyTorch's
    ``nn.init.dirac_``), the rest He-initialized, so every block starts close to passing
    its input through.

    Departures from the paper (there is no paper: the model follows the airbench94 script
    of Keller Jordan's CIFAR-10 speed runs, 2024), layer by layer:

    - activations: ReLU instead of GELU, because cnnlab has no GELU yet and ReLU is the
      activation the courses teach.
    - batch norms: learned scale and shift, where airbench freezes the scale at 1 and gives
      the shift a 64x learning rate, because cnnlab's optimizers take one learning rate
      for all parameters.
    - whiten: its filters are fitted by ``adapt``; its bias trains like any parameter.
      airbench stops training it after 3 epochs: freeze it then (``net.layers[0].trainable
      = False`` from a callback), as ``bench_accuracy.py``'s recipe does, and the whitening
      layer and the first conv's input gradient drop out of the backward pass.
    """
    who = "cifar_airbench"
    input_shape = check_shape(who, input_shape)
    num_classes = check_int(who, num_classes, "num_classes", 2)
    widths = _widths(who, widths, 3)
    layers = [PatchWhitening(2), ReLU()]
    for w in widths:
        layers += [Conv2D(w, 3, padding=1, use_bias=False), MaxPool2D(2), BatchNorm(), ReLU(),
                   Conv2D(w, 3, padding=1, use_bias=False), BatchNorm(), ReLU()]
    h, w_ = input_shape[1:]
    side = ((h - 1) // 8, (w_ - 1) // 8)
    if min(side) < 1:
        raise ValueError(f"{who}: input height and width must be at least 9 (a 2x2 whitening "
                         f"and three 2x pools), got {input_shape}")
    layers += [MaxPool2D(side), Flatten(), Dense(num_classes, use_bias=False),
               Rescaling(scale=1 / 9)]
    model = finish(layers, input_shape, seed, who, build)
    if build:
        for layer in model.layers:
            if isinstance(layer, Conv2D):
                dirac(layer.params["w"])
    return model


def dirac(w):
    """Set the first min(K, C) filters of ``w`` (K, C, kh, kw) to the identity, in place:
    filter c is a 1 at the kernel centre of input channel c and zeros elsewhere (PyTorch's
    ``nn.init.dirac_`` on ``w[:C]``); the other filters keep their values."""
    k, c, kh, kw = w.shape
    m = min(k, c)
    w[:m] = 0
    w[np.arange(m), np.arange(m), kh // 2, kw // 2] = 1
