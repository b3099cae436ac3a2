"""GoogLeNet / Inception v1 (Szegedy et al. 2014) in torchvision's form, built with the
:class:`cnnlab.layers.Concat` branch container.

Every convolution is torchvision's ``BasicConv2d``: conv without bias - batch norm
(eps 0.001) - relu. An Inception module runs four branches on the same input and
concatenates them on the channels::

    1x1 conv | 1x1 reduce - 3x3 conv | 1x1 reduce - "5x5" conv | 3x3 max pool s1 - 1x1 proj

torchvision's "5x5" branch actually uses a 3x3 kernel (a known quirk kept for its
pretrained weights); ``paper_5x5=True`` uses the paper's 5x5 kernel instead. Its
``MaxPool2d(..., ceil_mode=True)`` layers are written as max pools with one extra row and
column of -inf padding at the bottom/right, which gives the same windows and sizes.
No auxiliary classifiers (torchvision's ``aux_logits=False``).

Parameters for 3x224x224 and 1000 classes: 6,624,904, torchvision's count (see
:func:`googlenet`).
"""
from __future__ import annotations

from ..layers import (BatchNorm, Concat, Conv2D, Dense, Dropout, GlobalAvgPool2D, MaxPool2D,
                      ReLU, Sequential)
from ._build import check_int, check_shape, finish

#: (in, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj) for each module, as in the paper's
#: Table 1 (the input width is implied; kept for reading).
INCEPTION = {
    "3a": (192, 64, 96, 128, 16, 32, 32), "3b": (256, 128, 128, 192, 32, 96, 64),
    "4a": (480, 192, 96, 208, 16, 48, 64), "4b": (512, 160, 112, 224, 24, 64, 64),
    "4c": (512, 128, 128, 256, 24, 64, 64), "4d": (512, 112, 144, 288, 32, 64, 64),
    "4e": (528, 256, 160, 320, 32, 128, 128), "5a": (832, 256, 160, 320, 32, 128, 128),
    "5b": (832, 384, 192, 384, 48, 128, 128),
}
_CEIL = ((0, 1), (0, 1))  # one extra -inf row/column at the end = ceil_mode for these sizes


def basic_conv(filters, kernel_size, stride=1, padding=0, name=None):
    """torchvision's BasicConv2d: conv (no bias) - batch norm (eps 1e-3) - relu."""
    return Sequential([Conv2D(filters, kernel_size, stride=stride, padding=padding,
                              use_bias=False),
                       BatchNorm(eps=1e-3), ReLU()], name=name)


def inception(ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj, paper_5x5=False, name=None):
    """One Inception module: a :class:`Concat` of four branches (channels add up to
    ch1x1 + ch3x3 + ch5x5 + pool_proj)."""
    k5 = 5 if paper_5x5 else 3
    return Concat([
        [basic_conv(ch1x1, 1)],
        [basic_conv(ch3x3red, 1), basic_conv(ch3x3, 3, padding=1)],
        [basic_conv(ch5x5red, 1), basic_conv(ch5x5, k5, padding=k5 // 2)],
        [MaxPool2D(3, 1, padding=1), basic_conv(pool_proj, 1)],
    ], name=name)


def googlenet(num_classes=1000, input_shape=(3, 224, 224), dropout=0.2, paper_5x5=False,
              seed=None, build=True):
    """GoogLeNet (Inception v1) as torchvision defines it with ``aux_logits=False``::

        conv 64@7x7 s2 p3 - maxpool 3 s2 (ceil) - conv 64@1x1 - conv 192@3x3 p1 -
        maxpool 3 s2 (ceil) - inception 3a, 3b - maxpool 3 s2 (ceil) -
        inception 4a..4e - maxpool 2 s2 (ceil) - inception 5a, 5b -
        global average pool (7x7x1024 -> 1024) - dropout 0.2 - fc num_classes

    Spatial sizes for 224x224: 112, 56, 56, 28, 28, 14, 14, 7, 7, 1.
    Parameters for 1000 classes: 6,624,904 -- exactly torchvision's count for
    ``GoogLeNet(aux_logits=False, init_weights=False)``: every conv is bias-free and is
    followed by a batch norm with 2 parameters per channel (running statistics are state,
    not parameters, as in PyTorch). With ``paper_5x5=True`` the "5x5" branches really use
    5x5 kernels: 7,005,832 parameters (380,928 more: 16 * sum(ch5x5red * ch5x5) = 16 * 23,808).

    Departures from the paper (Szegedy et al. 2014, Table 1 and Fig. 3), layer by layer --
    torchvision's form, so that the counts match the model people compare against:

    - every convolution (conv1, conv2, conv3 and all inside the modules): no bias, then
      batch norm (eps 1e-3), then ReLU, instead of conv with bias and ReLU: batch norm
      (published a year later) lets the net train from scratch without the auxiliary
      classifiers.
    - after conv1 and after conv3: the paper's local response normalization is omitted
      (no LRN layer in cnnlab; torchvision omits it too).
    - maxpool1..3: 3x3 stride 2 as in the paper, with ceil rounding (one extra -inf
      row/column) to reproduce torchvision's sizes.
    - maxpool4 (after 4e): 2x2 stride 2 instead of the paper's 3x3 stride 2 (torchvision);
      both give 7x7 from 14x14.
    - every Inception "5x5" branch: a 3x3 kernel, torchvision's quirk kept for its
      pretrained weights; ``paper_5x5=True`` restores 5x5.
    - avgpool: global average pooling instead of a 7x7 average pool (the same at 224x224,
      and it accepts other sizes).
    - dropout 0.2 before the classifier instead of the paper's 40 % (torchvision's value).
    - the two auxiliary classifiers (after 4a and 4d, used only in training) are left out
      (``aux_logits=False``): batch norm makes them unnecessary, and they would need a
      model with several outputs.
    """
    who = "googlenet"
    input_shape = check_shape(who, input_shape)
    num_classes = check_int(who, num_classes, "num_classes", 2)

    def block(key):
        return inception(*INCEPTION[key][1:], paper_5x5=paper_5x5, name=f"inception{key}")

    layers = [basic_conv(64, 7, stride=2, padding=3, name="conv1"),
              MaxPool2D(3, 2, padding=_CEIL, name="maxpool1"),
              basic_conv(64, 1, name="conv2"),
              basic_conv(192, 3, padding=1, name="conv3"),
              MaxPool2D(3, 2, padding=_CEIL, name="maxpool2"),
              block("3a"), block("3b"),
              MaxPool2D(3, 2, padding=_CEIL, name="maxpool3"),
              block("4a"), block("4b"), block("4c"), block("4d"), block("4e"),
              MaxPool2D(2, 2, padding=_CEIL, name="maxpool4"),
              block("5a"), block("5b"),
              GlobalAvgPool2D(name="avgpool"), Dropout(dropout), Dense(num_classes, name="fc")]
    return finish(layers, input_shape, seed, who, build)

