"""The model zoo: functions returning a ``cnnlab.Sequential`` (trainable ``Model``).

    import cnnlab.models as zoo
    net = zoo.lenet5(seed=0)                  # built for (1, 28, 28), 61,706 params
    net = zoo.get('cifar_convnet', seed=0)    # by name (the command line uses this)
    zoo.available()                           # the names
    rows, total = zoo.analyze(zoo.vgg16(build=False))   # counts/shapes without weights

Every function takes ``seed`` (reproducible initial weights) and ``build`` (False: no
weights are allocated until ``model.build(input_shape)``), and ``num_classes`` /
``input_shape`` where they make sense. The nets output class scores (logits): the
softmax is in the loss, and ``Model.predict`` applies it.

Parameter counts (3x224x224 input, 1000 classes unless stated):
LeNet-5 61,706 (1x28x28, 10) - three-layer convnet 825,046 (3x32x32, 10) -
AlexNet 61,100,840 - ZFNet 62,357,608 - VGG-11 132,863,336 - VGG-16 138,357,544 -
GoogLeNet 6,624,904 - cifar_convnet 94,772 - cifar_resnet 412,964 - cifar_airbench
1,972,504 (3x32x32, 10).
"""
from .alexnet import alexnet, zfnet
from ._pretrained import card as pretrained_card
from .analytic import analyze, count_params
from .cifar import cifar_airbench, cifar_convnet, cifar_resnet, conv_bn_relu
from .fc_nets import fully_connected_net, two_layer_net
from .googlenet import basic_conv, googlenet, inception
from .lenet import lenet5, three_layer_convnet
from .registry import MODELS, available, default_input_shape, describe, get
from .vgg import CONFIGS as VGG_CONFIGS
from .vgg import vgg, vgg11, vgg13, vgg16, vgg19

__all__ = ["lenet5", "three_layer_convnet", "alexnet", "zfnet", "vgg", "vgg11", "vgg13", "vgg16",
           "vgg19", "googlenet", "inception", "basic_conv", "cifar_convnet", "cifar_resnet",
           "cifar_airbench", "conv_bn_relu", "get", "available", "default_input_shape", "describe", "MODELS",
           "analyze", "count_params", "VGG_CONFIGS", "two_layer_net", "fully_connected_net",
           "pretrained_card"]
