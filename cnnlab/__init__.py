"""cnnlab: convolutional neural networks in readable NumPy.

    import cnnlab as cl
    import cnnlab.functional as F
"""
from . import data, functional
from . import gradcheck
from . import reference
from .functional import conv_output_size
from .functional._kernels import get_num_threads, set_num_threads
from . import layers, optim, training
from .training import History, Model, Sequential, load_model
from . import models  # the zoo: cl.models.lenet5, cl.models.fully_connected_net, ...

__version__ = "0.1.0"
