"""Looking inside a CNN: every function returns arrays (testable, reusable) and can save
a PNG (matplotlib, Agg canvas, no pyplot) or a GIF (Pillow). ``cnnlab viz ...`` writes the
same pictures from the command line (:mod:`cnnlab.viz.gallery`).

    import cnnlab.viz as V
    V.cat_experiments()                       # the course's cat through random conv/ReLU/pool
    V.apply_classic_filters()                 # edges, Sobel, Laplacian, blur on the cameraman
    V.feature_maps(model, x, 'conv2d_1')      # one layer's output for one input
    V.layer_filters(model, 'conv2d')          # a conv layer's weights
    V.activation_maximization(model, 'relu_1', 3)   # the input a filter likes best
    V.deepdream(model, photo, 'relu_1')       # amplify what a layer sees
    V.saliency(model, x); V.gradcam(model, x) # where the evidence for a class is
    V.explain(model, xs, 'scorecam')          # eight methods, batched (cnnlab.viz.explainers)
    V.deletion_insertion(model, xs, maps)     # can the map be trusted? (faithfulness)
    V.conv_gif('conv.gif', size=5, kernel=3, padding=1, stride=2)   # the arithmetic
    V.to_fully_convolutional(model)           # Dense -> Conv: sliding windows in one pass
    V.why_convolution((3, 32, 32), 6, 5)      # 456 vs 14,455,392 parameters
"""
from .arithmetic import conv_gif, conv_steps, pool_gif, pool_steps, render_frames
from .cat import cat_experiments, plot_cat_experiments
from .classic import (apply_classic_filters, classic_kernels, filter_signal_1d, gaussian_kernel,
                      plot_classic_filters, plot_filter_signal_1d)
from .dream import deepdream, plot_deepdream
from .features import (all_feature_maps, conv_layer_names, feature_maps, filters_image,
                       layer_filters, plot_feature_maps, plot_filters, plot_filters_and_maps,
                       plot_layer_overview)
from .fully_conv import (conversion_table, sliding_window_scores, to_fully_convolutional,
                         total_stride)
from .fully_conv_figure import digits_canvas, fc_to_conv_demo, plot_fc_to_conv
from .images import SAMPLE_IMAGES, sample_image, sample_image_path
from .maximize import activation_maximization, maximize_units, plot_maximization
from .mnist_net import mnist_examples, pretrained_lenet, trained_lenet
from .attribution import class_scores, gradcam, plot_attribution, saliency
from .explainers import (explain, gradcam_batch, gradcam_plus_plus, guided_backprop,
                      integrated_gradients, layercam, saliency_batch, scorecam, smoothgrad)
from .explain_figures import plot_deletion_insertion, plot_explanations
from .faithfulness import (center_map, compare_methods, deletion_insertion, format_comparison,
                           random_map)
from .why_conv import format_why_convolution, plot_why_convolution, why_convolution
from ._geometry import receptive_field
from ._graph import chain, layer_names
from ._plot import save_gif, tile

__all__ = [name for name in dir() if not name.startswith("_")]
