"""The hot loops of cnnlab: everything that touches every pixel of a batch.

The rest of ``cnnlab.functional`` validates arguments, keeps caches and calls these; no
other package imports them (layers call ``F.*`` only). One idea per module:

==========================  ==============================================================
``runtime``                 the thread pool that splits a batch over the cores, BLAS held
                            to one thread inside it, the allocator switch
``layout``                  memory orders (channels-last, batch-last) and copies between
``elementwise``             masks and finiteness checks, exact for inf and NaN
``channels``                per-channel sums and scale-and-shift (batch norm's passes)
``gemm``                    GEMM shapes that keep OpenBLAS in its fast kernels
``conv``                    the conv route table and dispatch (read this first)
``conv_im2col``             the textbook route, the baseline
``conv_channels_last``      im2col on a channels-last copy (12+ channels)
``conv_batch_last``         im2col with the batch innermost (few channels)
``conv_rows``               row blocks with a Toeplitz weight matrix (LeNet's convs)
``pooling``                 max and average pooling as strided passes
==========================  ==============================================================

No Python loop here runs over pixels; the loops are over the prod(kernel) taps of a
window (9 for 3x3), over cache-sized chunks of images, and over one part per thread.
"""

from .channels import channel_affine, channel_combine, channel_dot, channel_sums
from .conv import AUTO, ROUTES, choose_route, conv_backward, conv_forward, use_route
from .elementwise import all_finite, keep_where, masked, relu, relu_grad
from .layout import empty_in_order, in_order, memory_order
from .pooling import avgpool_backward, avgpool_forward, maxpool_backward, maxpool_forward
from .runtime import get_num_threads, keep_freed_memory, set_num_threads

__all__ = [
    "AUTO",
    "ROUTES",
    "choose_route",
    "conv_forward",
    "conv_backward",
    "use_route",
    "channel_affine",
    "channel_combine",
    "channel_dot",
    "channel_sums",
    "all_finite",
    "keep_where",
    "masked",
    "relu",
    "relu_grad",
    "empty_in_order",
    "in_order",
    "memory_order",
    "maxpool_forward",
    "maxpool_backward",
    "avgpool_forward",
    "avgpool_backward",
    "get_num_threads",
    "set_num_threads",
    "keep_freed_memory",
]
