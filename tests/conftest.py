"""Shared fixtures for the op tests.

torch is imported at module level on purpose: the suite checks cnnlab against PyTorch,
so a missing torch must be a collection error, never a silent skip.
"""
import numpy as np
import pytest
import torch
from hypothesis import settings

import cnnlab.functional as F
import cnnlab.reference as R

# the ops under test are tiny; extra threads only compete with other processes
torch.set_num_threads(1)

# hypothesis: examples here are whole forward+backward passes, so no per-example deadline
settings.register_profile("cnnlab", deadline=None)
settings.load_profile("cnnlab")

IMPLS = {"fast": F, "reference": R}


@pytest.fixture(params=list(IMPLS))
def impl(request):
    """The module under test: cnnlab.functional ('fast') or cnnlab.reference."""
    return IMPLS[request.param]


@pytest.fixture
def rng():
    return np.random.default_rng(20240601)


def torch_autograd(fn, inputs, dout):
    """PyTorch's forward and vector-Jacobian product, as numpy
    (test files import it: ``from conftest import torch_autograd``).

    fn(*tensors) -> tensor; ``inputs`` are numpy arrays (float64 stays float64) or None
    (passed through as None); ``dout`` the upstream gradient of fn's output.
    Returns (out, [d input or None for each input]).
    """
    # C-ordered copies: torch refuses numpy views with negative strides
    # (np.array, not np.ascontiguousarray, which would make a 0-d dout 1-d)
    ts = [None if a is None else torch.tensor(np.array(a, order="C"), requires_grad=True) for a in inputs]
    out = fn(*ts)
    out.backward(torch.as_tensor(np.array(dout, order="C"), dtype=out.dtype))
    return out.detach().numpy(), [None if t is None else t.grad.numpy() for t in ts]

