"""cnnlab: convolutional neural networks in readable NumPy.

    import cnnlab as cl
    import cnnlab.functional as F
    cl.models.lenet5()          # subpackages are attributes, imported on first use

Thread safety: see ``cnnlab.training.Model`` (predict/evaluate may run beside fit).
"""
import importlib

from . import data, functional
from . import gradcheck
from . import reference
from .functional import conv_output_size
from .functional.kernels import get_num_threads, keep_freed_memory, set_num_threads
from . import layers, optim, training
from .training import History, Model, Sequential, load_model

from .version import __version__

# PEP 562: heavier subpackages load on first attribute access (``cl.models``, ``cl.viz``),
# so ``import cnnlab`` stays light and never pulls in matplotlib.
_LAZY_SUBPACKAGES = ("models", "viz", "cli")


def __getattr__(name):
    if name in _LAZY_SUBPACKAGES:
        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module  # later lookups skip __getattr__
        return module
    raise AttributeError(f"module 'cnnlab' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY_SUBPACKAGES))
