"""cnnlab viz WHAT ...: the pictures of cnnlab.viz, written as PNG/GIF files.

    cnnlab viz all --out DIR                       # everything (the shipped MNIST LeNet-5)
    cnnlab viz cat --out DIR                       # the cat through random conv/ReLU/pool layers
    cnnlab viz filters-classic                     # edges, Sobel, Scharr, Laplacian, blur; 1-D filters
    cnnlab viz feature-maps MODEL IMAGE [--layer NAME]
    cnnlab viz filters MODEL [--layer NAME]
    cnnlab viz maximize MODEL --layer NAME [--index K ...]
    cnnlab viz deepdream IMAGE [--model MODEL] [--layer NAME ...]   # colour: the CIFAR net
    cnnlab viz saliency MODEL IMAGE [--target C]
    cnnlab viz gradcam MODEL IMAGE [--target C] [--layer NAME]
    cnnlab viz explain MODEL IMAGE... [--method M ...]   # eight methods side by side
    cnnlab viz smoothgrad|integrated-gradients|guided-backprop|gradcam-pp|layercam|scorecam
                   MODEL IMAGE...
    cnnlab viz faithfulness [--model MODEL] [--n 100]    # deletion / insertion table
    cnnlab viz conv-gif --size 5 --kernel 3 --padding 1 --stride 2
    cnnlab viz pool-gif --size 4 --pool 2
    cnnlab viz fc-to-conv [--model MODEL]
    cnnlab viz why-conv [--input 3,32,32 --filters 6 --kernel 5]

MODEL is a model file (``cnnlab train`` / ``model.save``, or an ``.onnx`` file),
``lenet-mnist``: the LeNet-5 shipped with cnnlab, trained on 24,000 MNIST digits
(``cnnlab.models.lenet5(pretrained=True)``), or ``cifar-resnet``: the ResNet-9 shipped
with cnnlab, trained on CIFAR-10 (``cnnlab.models.cifar_resnet(pretrained=True)``, 32x32
colour; DeepDream's default). Nothing is trained on the spot. IMAGE is an image
file, a bundled photo ('chelsea', 'camera') or ``mnist:K`` (the K-th bundled MNIST test
digit). Files go to --out (default ./cnnlab_viz); each written path is printed.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from .common import CLIError, load_model_file, nonneg_int, positive_float, positive_int, shape3

ORDER = 80
QUICK_MODEL = "lenet-mnist"
COLOUR_MODEL = "cifar-resnet"


def _model(spec):
    from ..viz.mnist_net import pretrained_lenet

    if spec == QUICK_MODEL:
        return pretrained_lenet()
    if spec == COLOUR_MODEL:
        from ..viz.cifar_net import pretrained_cifar
        return pretrained_cifar()
    return load_model_file(spec)


def _nonneg_float(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not v >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return v


def _layer(text):
    """A layer name, or an integer index into the model's layers."""
    try:
        return int(text)
    except ValueError:
        return text


def _guard(func):
    """Unknown layer names / indices (KeyError, IndexError from cnnlab.viz) are user
    errors: one line, exit status 2."""
    def run(args):
        try:
            return func(args)
        except (KeyError, IndexError) as e:
            raise CLIError(str(e.args[0]) if e.args else str(e)) from None
    return run


def _done(paths):
    for p in paths:
        print(f"wrote {p}")
    return 0


# ---------------------------------------------------------------------- handlers
def _run_all(a):
    from ..viz.gallery import write_all

    model = None if a.model is None else _model(a.model)
    write_all(a.out, model=model)
    return 0


def _run_cat(a):
    from ..viz.gallery import write_cat
    return _done(write_cat(a.out, a.image, a.seed))


def _run_classic(a):
    from ..viz.gallery import write_classic
    return _done(write_classic(a.out, a.image))


def _run_feature_maps(a):
    from ..viz.gallery import write_feature_maps
    return _done(write_feature_maps(a.out, _model(a.model), a.image, a.layer, a.invert))


def _run_filters(a):
    from ..viz.gallery import write_filters
    return _done(write_filters(a.out, _model(a.model), a.layer))


def _run_maximize(a):
    from ..viz.gallery import write_maximize
    return _done(write_maximize(a.out, _model(a.model), a.layer, a.index, steps=a.steps, lr=a.lr,
                                l2=a.l2, l1=a.l1, jitter=a.jitter, blur_every=a.blur_every,
                                seed=a.seed))


def _run_deepdream(a):
    from ..viz.gallery import write_deepdream

    model = _model(a.model)
    return _done(write_deepdream(a.out, a.image, model, layers=a.layer,
                                 max_side=a.max_side or None, octaves=a.octaves,
                                 steps=a.steps, lr=a.lr, jitter=a.jitter, seed=a.seed))


def _run_attribution(kind):
    def run(a):
        from ..viz.gallery import write_attribution
        return _done(write_attribution(a.out, _model(a.model), a.image, kind=kind, target=a.target,
                                       layer=getattr(a, "layer", None), invert=a.invert))
    return run


def _run_explain(methods):
    def run(a):
        from ..viz.gallery import write_explanations
        return _done(write_explanations(a.out, _model(a.model), a.image,
                                        methods=methods or a.method, target=a.target,
                                        layer=getattr(a, "layer", None), invert=a.invert,
                                        seed=a.seed))
    return run


def _run_faithfulness(a):
    from ..data import load_mnist
    from ..viz.explain_figures import plot_deletion_insertion
    from ..viz import explainers as explain
    from ..viz.faithfulness import compare_methods, deletion_insertion, format_comparison

    model = _model(a.model)
    if tuple(model.input_shape) != (1, 28, 28):
        raise CLIError(f"cnnlab viz faithfulness measures on MNIST test digits: the model must "
                       f"take (1, 28, 28) inputs, got {tuple(model.input_shape)}")
    x, _ = load_mnist(split="test", limit=a.n)
    rows = compare_methods(model, x, methods=a.method, steps=a.steps, seed=a.seed)
    print(f"faithfulness on the first {len(x)} bundled MNIST test digits ({a.steps} steps):")
    print(format_comparison(rows))
    curves = {}
    for name in (a.method or list(explain.METHODS))[:4]:
        m = explain.explain(model, x, name, **({"seed": a.seed} if name == "smoothgrad" else {}))
        curves[explain.method_key(name)] = deletion_insertion(model, x, m["map"], steps=a.steps)
    path = Path(os.curdir if a.out is None else a.out) / "faithfulness.png"
    plot_deletion_insertion(curves, path, title=f"Deletion and insertion on {len(x)} MNIST "
                                                f"test digits")
    return _done([path])


def _run_class_vis(a):
    from ..viz.gallery import write_class_visualizations

    model = _model(a.model)
    if tuple(model.input_shape) != (1, 28, 28):
        raise CLIError(f"cnnlab viz class-vis judges the images against MNIST digits: the "
                       f"model must take (1, 28, 28) inputs, got {tuple(model.input_shape)}")
    return _done(write_class_visualizations(a.out, model, steps=a.steps, seed=a.seed,
                                            data_dir=a.data_dir, log=print))


def _run_conv_gif(a):
    from ..viz.gallery import write_conv_gif
    return _done(write_conv_gif(a.out, a.size, a.kernel, a.padding, a.stride, a.example, a.seed))


def _run_pool_gif(a):
    from ..viz.gallery import write_pool_gif
    return _done(write_pool_gif(a.out, a.size, a.pool, a.stride, a.padding, a.seed))


def _run_fc_to_conv(a):
    from ..viz.gallery import write_fc_to_conv
    return _done(write_fc_to_conv(a.out, _model(a.model)))


def _run_why_conv(a):
    from ..viz.gallery import write_why_conv
    from ..viz.why_conv import format_why_convolution

    paths, d = write_why_conv(a.out, a.input, a.filters, a.kernel, a.stride, a.padding)
    print(format_why_convolution(d))
    return _done(paths)


# ---------------------------------------------------------------------- parser
def register(sub):
    p = sub.add_parser("viz", help="pictures of what happens inside a CNN (PNG/GIF files)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    inner = p.add_subparsers(dest="viz_command", metavar="WHAT", parser_class=type(p))

    def add(name, helptext, func, model=None, image=None):
        q = inner.add_parser(name, help=helptext, description=helptext)
        if model == "positional":
            q.add_argument("model", metavar="MODEL",
                           help=f"model file, '{QUICK_MODEL}' (the shipped LeNet-5) or "
                                f"'{COLOUR_MODEL}' (the shipped CIFAR-10 ResNet)")
        elif model == "option":
            q.add_argument("--model", default=QUICK_MODEL, metavar="MODEL",
                           help=f"model file (default '{QUICK_MODEL}': the shipped LeNet-5)")
        if image == "positional":
            q.add_argument("image", metavar="IMAGE",
                           help="image file, 'chelsea', 'camera' or mnist:K")
        if image in ("positional", "invert"):
            q.add_argument("--invert", action="store_true",
                           help="use 1 - pixel (dark ink on white paper -> MNIST's white on black)")
        q.add_argument("--out", default="cnnlab_viz", metavar="DIR",
                       help="output folder (default ./cnnlab_viz)")
        q.set_defaults(func=_guard(func))
        return q

    q = add("all", "write every picture", _run_all)
    q.add_argument("--model", default=None, metavar="MODEL",
                   help="a trained net on 28x28 digits (default: the shipped LeNet-5)")

    q = add("cat", "the course's cat through random conv (3x3, 10x10, 15x15), ReLU, max "
                   "pooling and LeNet's conv/pool stages", _run_cat)
    q.add_argument("--image", default=None, help="an RGB photo instead of the bundled cat")
    q.add_argument("--seed", type=nonneg_int, default=0, help="random filters (default 0)")

    q = add("filters-classic", "classic 2-D filters on a photo and 1-D filters on a signal",
            _run_classic)
    q.add_argument("--image", default=None, help="a photo instead of the bundled cameraman")

    q = add("feature-maps", "a layer's feature maps for an input (default: every layer)",
            _run_feature_maps, model="positional", image="positional")
    q.add_argument("--layer", type=_layer, default=None, help="layer name or index")

    q = add("filters", "the weights of a trained net's conv layers as image grids", _run_filters,
            model="positional")
    q.add_argument("--layer", type=_layer, default=None, help="one conv layer (default: all)")

    q = add("maximize", "activation maximization: the inputs a layer's units like best",
            _run_maximize, model="positional")
    q.add_argument("--layer", type=_layer, required=True,
                   help="layer name or index (e.g. relu, relu_1, or -1 for the class scores)")
    q.add_argument("--index", type=nonneg_int, nargs="+", default=None, metavar="K",
                   help="filters / units to maximize (default: the first 16)")
    q.add_argument("--steps", type=positive_int, default=200)
    q.add_argument("--lr", type=positive_float, default=0.05)
    q.add_argument("--l2", type=_nonneg_float, default=1e-3, help="decay towards 0 per step")
    q.add_argument("--l1", type=_nonneg_float, default=0.0, help="'less ink' pull per step")
    q.add_argument("--jitter", type=nonneg_int, default=1, help="random shift in pixels")
    q.add_argument("--blur-every", type=nonneg_int, default=4, help="blur every N steps (0: never)")
    q.add_argument("--seed", type=nonneg_int, default=0)

    q = add("deepdream", "DeepDream: amplify in a photo what a layer sees (in colour, with "
                         "the shipped CIFAR-10 ResNet by default)", _run_deepdream)
    q.add_argument("--model", default=COLOUR_MODEL, metavar="MODEL",
                   help=f"model file or '{QUICK_MODEL}' (default '{COLOUR_MODEL}': the shipped "
                        f"CIFAR-10 ResNet)")
    q.add_argument("image", metavar="IMAGE", help="image file, 'chelsea' or 'camera'")
    q.add_argument("--layer", type=_layer, nargs="+", default=None,
                   help="layer(s) to amplify, one dream each (default: the last two ReLU / "
                        "residual outputs with feature maps)")
    q.add_argument("--max-side", type=nonneg_int, default=225,
                   help="shrink the photo to this longer side first (default 225; 0: keep "
                        "its size)")
    q.add_argument("--octaves", type=positive_int, default=3)
    q.add_argument("--steps", type=positive_int, default=10, help="steps per octave")
    q.add_argument("--lr", type=positive_float, default=0.01)
    q.add_argument("--jitter", type=nonneg_int, default=4)
    q.add_argument("--seed", type=nonneg_int, default=0)

    for name, kind, helptext in (("saliency", ("saliency",), "vanilla-gradient saliency "
                                  "|d score / d x| of a class"),
                                 ("gradcam", ("gradcam",), "Grad-CAM of a class at a conv layer")):
        q = add(name, helptext, _run_attribution(kind), model="positional", image=None)
        _attribution_args(q)
        if name == "gradcam":
            q.add_argument("--layer", type=_layer, default=None,
                           help="conv layer (default: the last conv layer's activation)")

    methods = ("saliency", "smoothgrad", "integrated-gradients", "guided-backprop", "gradcam",
               "gradcam-pp", "layercam", "scorecam")
    for name, helptext in (("explain", "several attribution methods side by side (default: "
                                       "all eight)"),
                           ("smoothgrad", "SmoothGrad: saliency averaged over noisy copies"),
                           ("integrated-gradients", "integrated gradients from a black baseline"),
                           ("guided-backprop", "guided backpropagation"),
                           ("gradcam-pp", "Grad-CAM++ at a conv layer"),
                           ("layercam", "LayerCAM at a conv layer"),
                           ("scorecam", "Score-CAM at a conv layer (no gradients)")):
        q = add(name, helptext, _run_explain(None if name == "explain" else [name]),
                model="positional")
        _attribution_args(q)
        q.add_argument("--seed", type=nonneg_int, default=0, help="SmoothGrad's noise")
        if name == "explain":
            q.add_argument("--method", nargs="+", choices=methods, default=None,
                           help="methods to show (default: all)")
        if name == "explain" or name in ("gradcam-pp", "layercam", "scorecam"):
            q.add_argument("--layer", type=_layer, default=None,
                           help="conv layer for the CAM family (default: the last conv layer)")

    q = add("faithfulness", "deletion / insertion areas of every attribution method on MNIST "
                            "test digits, with random and centre baselines", _run_faithfulness,
            model="option")
    q.add_argument("--n", type=positive_int, default=100, help="test digits (default 100)")
    q.add_argument("--steps", type=positive_int, default=28, help="curve points (default 28)")
    q.add_argument("--method", nargs="+", choices=methods, default=None)
    q.add_argument("--seed", type=nonneg_int, default=0)

    q = add("class-vis", "class visualizations (Fourier parameterization, transformation "
                         "robustness, TV and L1), judged by their nearest MNIST digits",
            _run_class_vis, model="option")
    q.add_argument("--steps", type=positive_int, default=256)
    q.add_argument("--seed", type=nonneg_int, default=0)
    q.add_argument("--data-dir", default=None,
                   help="MNIST IDX folder for the judge (default: the bundled subset)")

    q = add("conv-gif", "animated convolution: kernel sliding, products and sums", _run_conv_gif)
    q.add_argument("--size", type=positive_int, default=5, help="input side n (default 5)")
    q.add_argument("--kernel", type=positive_int, default=3, help="kernel side f (default 3)")
    q.add_argument("--padding", type=nonneg_int, default=0, help="p (default 0)")
    q.add_argument("--stride", type=positive_int, default=1, help="s (default 1)")
    q.add_argument("--example", choices=["edge"], default=None,
                   help="edge: Andrew Ng's 6x6 vertical edge (10s and 0s, kernel [1 0 -1])")
    q.add_argument("--seed", type=nonneg_int, default=0, help="the random small integers")

    q = add("pool-gif", "animated max pooling", _run_pool_gif)
    q.add_argument("--size", type=positive_int, default=4, help="input side (default 4)")
    q.add_argument("--pool", type=positive_int, default=2, help="window side (default 2)")
    q.add_argument("--stride", type=positive_int, default=None, help="default: the window side")
    q.add_argument("--padding", type=nonneg_int, default=0)
    q.add_argument("--seed", type=nonneg_int, default=0)

    add("fc-to-conv", "Dense layers as convolutions: a grid of scores = sliding windows",
        _run_fc_to_conv, model="option")

    q = add("why-conv", "parameters and connections: conv vs fully connected", _run_why_conv)
    q.add_argument("--input", type=shape3, default=(3, 32, 32), metavar="C,H,W",
                   help="input volume (default 3,32,32)")
    q.add_argument("--filters", type=positive_int, default=6)
    q.add_argument("--kernel", type=positive_int, default=5)
    q.add_argument("--stride", type=positive_int, default=1)
    q.add_argument("--padding", type=nonneg_int, default=0)

    p.set_defaults(func=lambda a: _no_what(p))


def _attribution_args(q):
    """The arguments every attribution command shares: images, --invert, --target."""
    q.add_argument("image", metavar="IMAGE", nargs="+",
                   help="image file(s), 'chelsea', 'camera' or mnist:K")
    q.add_argument("--invert", action="store_true",
                   help="use 1 - pixel (dark ink on white paper -> MNIST's white on black)")
    q.add_argument("--target", type=nonneg_int, default=None,
                   help="class index (default: the predicted class)")


def _no_what(parser):
    parser.print_help()
    raise CLIError("cnnlab viz: say what to draw (e.g. 'cnnlab viz all --out DIR')")
