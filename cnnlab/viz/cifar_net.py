"""The colour net of the viz tools: ``cnnlab.models.cifar_resnet(pretrained=True)``, the
narrow ResNet-9 shipped in the package (trained on the 50,000 CIFAR-10 training images;
its model card ``cnnlab/assets/pretrained/cifar_resnet.md`` gives ~90 % on the 10,000
test images). It takes 32x32 RGB in [0, 1] and is convolutional up to its global max
pool, so DeepDream runs it on photos of any size. Nothing is trained on the spot.
"""
from __future__ import annotations

import functools


@functools.lru_cache(maxsize=1)
def _pretrained():
    from ..models import cifar_resnet, pretrained_card

    model = cifar_resnet(pretrained=True)
    info = pretrained_card("cifar_resnet")
    model.viz_test_accuracy = float(info["test_accuracy"])
    model.viz_description = (f"the shipped CIFAR-10 ResNet ({info['test_accuracy']:.1%} on the "
                             f"CIFAR-10 test images)")
    return model


def pretrained_cifar():
    """``cnnlab.models.cifar_resnet(pretrained=True)`` (cached per process): the colour net
    of the viz tools. ``model.viz_test_accuracy``: the test accuracy of its model card."""
    return _pretrained()
