"""Stateless CNN operations, cs231n's contract: ``out, cache = F.op_forward(...)`` and
``grads = F.op_backward(dout, cache)``.

Import as ``import cnnlab.functional as F``. Every op here has a readable loop twin in
:mod:`cnnlab.reference`; the tests hold the two (and PyTorch) to the same numbers.
"""

from ._args import conv_output_size
from .activations import (
    leaky_relu_backward,
    leaky_relu_forward,
    relu_backward,
    relu_forward,
    sigmoid_backward,
    sigmoid_forward,
    tanh_backward,
    tanh_forward,
)
from .affine import affine_backward, affine_forward
from .batchnorm import (
    batchnorm_backward,
    batchnorm_backward_alt,
    batchnorm_forward,
    spatial_batchnorm_backward,
    spatial_batchnorm_forward,
)
from .conv import (
    conv1d_backward,
    conv1d_forward,
    conv2d_backward,
    conv2d_forward,
    conv3d_backward,
    conv3d_forward,
    convnd_backward,
    convnd_forward,
)
from .dropout import dropout_backward, dropout_forward
from .flatten import flatten_backward, flatten_forward
from .losses import log_softmax, softmax, softmax_loss, svm_loss
from .pool import (
    avgpool1d_backward,
    avgpool1d_forward,
    avgpool2d_backward,
    avgpool2d_forward,
    avgpool3d_backward,
    avgpool3d_forward,
    avgpoolnd_backward,
    avgpoolnd_forward,
    global_avgpool_backward,
    global_avgpool_forward,
    maxpool1d_backward,
    maxpool1d_forward,
    maxpool2d_backward,
    maxpool2d_forward,
    maxpool3d_backward,
    maxpool3d_forward,
    maxpoolnd_backward,
    maxpoolnd_forward,
)
from .signal import convolve1d, convolve2d, correlate1d, correlate2d

__all__ = [name for name in dir() if not name.startswith("_")]
