"""AlexNet (torchvision's single-stream definition) and ZFNet (Zeiler & Fergus 2013).

Neither has local response normalization here (cnnlab has no LRN layer; it has no
parameters, so counts are unaffected): torchvision's AlexNet dropped it as well.
"""
from __future__ import annotations

from ..layers import Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU
from ._build import check_int, check_shape, finish


def _classifier(num_classes, dropout, hidden=4096):
    return [Flatten(), Dropout(dropout), Dense(hidden), ReLU(), Dropout(dropout), Dense(hidden),
            ReLU(), Dense(num_classes)]


def alexnet(num_classes=1000, input_shape=(3, 224, 224), dropout=0.5, seed=None, build=True):
    """AlexNet as torchvision defines it (``torchvision.models.alexnet``)::

        conv 64@11x11 s4 p2 - relu - maxpool 3 s2 - conv 192@5x5 p2 - relu - maxpool 3 s2 -
        conv 384@3x3 p1 - relu - conv 256@3x3 p1 - relu - conv 256@3x3 p1 - relu -
        maxpool 3 s2 - [6x6x256] - dropout - fc 4096 - relu - dropout - fc 4096 - relu - fc

    61,100,840 parameters for 3x224x224 and 1000 classes. torchvision puts an
    ``AdaptiveAvgPool2d((6, 6))`` before the classifier; for 224x224 input the features are
    already 6x6, so it is the identity and is left out (another input size changes the
    first fc layer's size instead).

    Departures from the paper (Krizhevsky, Sutskever & Hinton 2012, Fig. 2), layer by
    layer -- torchvision's one-stream form, from Krizhevsky's "One weird trick" (2014),
    so that the layer sizes match the weights people compare against:

    - conv1: 64 filters with padding 2 instead of 96 unpadded (on 227x227 input); both
      give 55x55. No local response normalization after it: cnnlab has no LRN layer,
      later work found it adds little, and it has no parameters.
    - conv2: 192 filters, each seeing all 64 input maps, instead of 256 in two groups of
      128 (one per GPU) each seeing 48 maps; no LRN after it either.
    - conv3: 384 filters as in the paper (already connected across both GPUs there).
    - conv4: 256 dense filters instead of 384 in two groups; conv5: 256 dense filters
      instead of 256 in two groups -- one stream needs no split.
    - torchvision's AdaptiveAvgPool2d((6, 6)): left out (the identity at 224x224).
    - fc6 / fc7: dropout 0.5 on their inputs (pool5 and fc6 outputs, torchvision's
      placement) rather than on the fc6 and fc7 outputs as in the paper.
    - initialization: He normal weights and zero biases instead of N(0, 0.01) weights with
      biases of 1 in conv2, conv4, conv5 and the fc layers: He initialization trains a
      ReLU net from scratch without the paper's hand tuning.
    """
    input_shape = check_shape("alexnet", input_shape)
    num_classes = check_int("alexnet", num_classes, "num_classes", 2)
    layers = [Conv2D(64, 11, stride=4, padding=2), ReLU(), MaxPool2D(3, 2),
              Conv2D(192, 5, padding=2), ReLU(), MaxPool2D(3, 2),
              Conv2D(384, 3, padding=1), ReLU(),
              Conv2D(256, 3, padding=1), ReLU(),
              Conv2D(256, 3, padding=1), ReLU(), MaxPool2D(3, 2)]
    return finish(layers + _classifier(num_classes, dropout), input_shape, seed, "alexnet", build)


def zfnet(num_classes=1000, input_shape=(3, 224, 224), dropout=0.5, seed=None, build=True):
    """ZFNet, the layout of Zeiler & Fergus (2013), Fig. 3 (one stream, no groups)::

        224x224x3 - conv 96@7x7 s2 p1 -> 110x110x96 - relu - maxpool 3 s2 p1 -> 55x55 -
        conv 256@5x5 s2 -> 26x26x256 - relu - maxpool 3 s2 p1 -> 13x13 -
        conv 384@3x3 p1 - relu - conv 384@3x3 p1 - relu - conv 256@3x3 p1 - relu ->
        13x13x256 - maxpool 3 s2 -> 6x6x256 = 9216 - fc 4096 - fc 4096 - fc num_classes

    Paddings are chosen to reproduce the paper's sizes (110, 55, 26, 13, 13, 6).
    Parameters for 1000 classes: 62,357,608 = convs 14,208 + 614,656 + 885,120 +
    1,327,488 + 884,992 (3,726,464) + fc 37,752,832 + 16,781,312 + 4,097,000 (58,631,144).
    The paper gives no total; against the original two-GPU AlexNet (60,965,224, with
    conv2/4/5 split in 2 groups) ZFNet has a smaller first layer (7x7: 14,208 instead of
    34,944) but dense conv2/4/5 (about twice the grouped counts), hence 1.39 M more.
    Its contrast normalization layers (no parameters) are omitted.

    Departures from the paper (Zeiler & Fergus 2013, Fig. 3), layer by layer:

    - conv1 / pool1 / conv2 / pool2: paddings (1, 1, 0, 1) are not in the paper, which
      gives only the sizes; they are chosen to reproduce those sizes exactly.
    - after pool1 and pool2: the paper's local contrast normalization is omitted (no such
      layer in cnnlab; no parameters, so the counts hold).
    - conv1..conv5: the paper renormalizes every filter whose RMS exceeds 0.1 during
      training; no such constraint here (it is a training rule, not a layer).
    - fc6 / fc7: dropout 0.5 on their inputs, as in :func:`alexnet`, not on their outputs.
    - initialization: He normal weights and zero biases instead of the paper's 1e-2
      weights and zero biases, for training from scratch with ReLU.
    """
    input_shape = check_shape("zfnet", input_shape)
    num_classes = check_int("zfnet", num_classes, "num_classes", 2)
    layers = [Conv2D(96, 7, stride=2, padding=1), ReLU(), MaxPool2D(3, 2, padding=1),
              Conv2D(256, 5, stride=2), ReLU(), MaxPool2D(3, 2, padding=1),
              Conv2D(384, 3, padding=1), ReLU(),
              Conv2D(384, 3, padding=1), ReLU(),
              Conv2D(256, 3, padding=1), ReLU(), MaxPool2D(3, 2)]
    return finish(layers + _classifier(num_classes, dropout), input_shape, seed, "zfnet", build)
