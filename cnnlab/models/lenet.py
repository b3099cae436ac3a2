"""Small classic nets: LeNet-5 (digits) and cs231n's three-layer convnet (CIFAR-10)."""
from __future__ import annotations

from ..layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU
from ._build import check_int, check_shape, finish
from ._pretrained import load_pretrained


def lenet5(num_classes=10, input_shape=(1, 28, 28), seed=None, build=True, pretrained=False):
    """LeNet-5 with ReLU and max pooling, the form used on 28x28 MNIST::

        conv 6@5x5 pad 2 - relu - maxpool 2 - conv 16@5x5 - relu - maxpool 2 - flatten -
        dense 120 - relu - dense 84 - relu - dense num_classes (scores; softmax in the loss)

    The padding of 2 makes a 28x28 digit behave like LeNet's original 32x32 input:
    28x28x6 -> 14x14x6 -> 10x10x16 -> 5x5x16 = 400 -> 120 -> 84 -> 10.
    Parameters: 156 + 2,416 + 48,120 + 10,164 + 850 = 61,706 (for 10 classes).

    ``pretrained=True``: the net trained on the 24,000 MNIST training images shipped in
    the package (99.2 %+ on the 10,000 test images; model card
    ``cnnlab/assets/pretrained/lenet5_mnist.md``), its SHA-256 checked on load. Input:
    28x28 grey digits, white on black, in [0, 1]. Needs the default ``num_classes`` and
    ``input_shape``; ``seed`` is ignored.

    Departures from the paper (LeCun, Bottou, Bengio & Haffner 1998, Fig. 2), layer by layer:

    - input: 28x28 with padding 2 in C1 instead of digits drawn into a 32x32 field: the
      same geometry without resizing MNIST (the paper's background is -0.1, here 0).
    - C1, C3, F6 activations: ReLU instead of the scaled tanh 1.7159 tanh(2a/3), because
      ReLU trains faster from He initialization and is what the courses teach.
    - S2, S4: 2x2 max pooling instead of a 2x2 average times a trainable coefficient plus
      a trainable bias, followed by a sigmoid: max pooling works better and has no
      parameters (the paper's S2/S4 have 12 and 32).
    - C3: every one of the 16 maps sees all 6 maps of S2 (2,416 parameters) instead of the
      paper's connection table (60 connections, 1,516 parameters), which existed to break
      symmetry and save compute; dense is what frameworks build.
    - C5: Dense(120) on the flattened 5x5x16 volume, the same function and parameters
      (48,120) as the paper's 120 5x5 convolutions on a 5x5 input.
    - output: Dense(num_classes) scores with softmax cross-entropy instead of Euclidean
      RBF units with fixed 7x12 bitmap prototypes and the paper's distance-based (MSE /
      MAP) criterion: softmax is the standard classifier and needs no hand-made
      prototypes.
    """
    input_shape = check_shape("lenet5", input_shape)
    num_classes = check_int("lenet5", num_classes, "num_classes", 2)
    if pretrained:
        if num_classes != 10 or input_shape != (1, 28, 28) or not build:
            raise ValueError(f"lenet5(pretrained=True) is the MNIST net: num_classes=10, "
                             f"input_shape=(1, 28, 28), build=True; got num_classes="
                             f"{num_classes}, input_shape={input_shape}, build={build}")
        model = load_pretrained("lenet5_mnist")
        model.zoo_input_shape = input_shape
        return model
    layers = [Conv2D(6, 5, padding=2), ReLU(), MaxPool2D(2),
              Conv2D(16, 5), ReLU(), MaxPool2D(2),
              Flatten(), Dense(120), ReLU(), Dense(84), ReLU(), Dense(num_classes)]
    return finish(layers, input_shape, seed, "lenet5", build)


def three_layer_convnet(input_shape=(3, 32, 32), num_filters=32, filter_size=7, hidden_dim=100,
                        num_classes=10, weight_scale=1e-3, seed=None, build=True):
    """cs231n's ThreeLayerConvNet (assignment 2)::

        conv num_filters@filter_size x filter_size (stride 1, 'same' padding) - relu -
        2x2 max pool - affine hidden_dim - relu - affine num_classes (softmax in the loss)

    ``weight_scale``: std of the normal initial weights (cs231n's 1e-3), or None for He
    initialization. Defaults on 3x32x32: 4,736 + 819,300 + 1,010 = 825,046 parameters.

    Departures from the paper (there is none: the reference is cs231n assignment 2's
    ``cs231n/classifiers/cnn.py``):

    - none in the layers: conv - relu - 2x2 max pool - affine - relu - affine, the
      same shapes and parameter count; the softmax is applied by the loss, as in the
      assignment's ``loss()``.
    - ``weight_scale=None`` (He initialization) is an addition: the assignment's 1e-3
      normal weights are kept as the default.
    """
    who = "three_layer_convnet"
    input_shape = check_shape(who, input_shape)
    num_filters = check_int(who, num_filters, "num_filters")
    filter_size = check_int(who, filter_size, "filter_size")
    if filter_size % 2 == 0:
        raise ValueError(f"{who}: filter_size must be odd (padding (F-1)/2 keeps the size), "
                         f"got {filter_size}")
    hidden_dim = check_int(who, hidden_dim, "hidden_dim")
    num_classes = check_int(who, num_classes, "num_classes", 2)
    init = "he" if weight_scale is None else float(weight_scale)
    layers = [Conv2D(num_filters, filter_size, padding=(filter_size - 1) // 2,
                     kernel_initializer=init), ReLU(), MaxPool2D(2),
              Flatten(), Dense(hidden_dim, kernel_initializer=init), ReLU(),
              Dense(num_classes, kernel_initializer=init)]
    return finish(layers, input_shape, seed, who, build)
