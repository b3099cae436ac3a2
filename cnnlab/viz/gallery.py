"""Writers: each computes one of the viz pictures and saves it under ``out_dir``,
returning the paths written. ``cnnlab viz ...`` calls these; :func:`write_all` writes
every picture with the shipped nets (LeNet-5 for digits, the CIFAR-10 ResNet for colour
photos) when no model is given; nothing is trained.

Inputs by name: ``image`` may be a file path, a bundled photo ('chelsea', 'camera') or
'mnist:K' (the K-th image of the bundled MNIST test subset).
"""
from __future__ import annotations

import numpy as np

from . import arithmetic, attribution as sal, cat, classic, dream, features, fully_conv_figure, maximize
from . import why_conv
from ._geometry import receptive_field
from ._graph import chain, last_conv_index, layer_names, resolve_layer
from ._plot import output_path
from .images import read_image
from .mnist_net import mnist_examples, pretrained_lenet


def _safe(name):
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(name))


def model_input(model, image, invert=False):
    """An image for ``model``: a path, a bundled photo name, or 'mnist:K' -> (C, H, W)
    float32 in [0, 1] with the model's channels and (for models with Dense layers) size."""
    c, h, w = model.input_shape
    if c not in (1, 3):
        raise ValueError(f"the model takes {c}-channel inputs; images give 1 or 3 channels")
    if isinstance(image, str) and image.startswith("mnist:"):
        from ..data import load_mnist

        try:
            k = int(image.split(":", 1)[1])
        except ValueError:
            raise ValueError(f"expected mnist:K with an integer K, got {image!r}") from None
        x, _ = load_mnist(split="test")
        if not 0 <= k < len(x):
            raise ValueError(f"mnist:K needs 0 <= K < {len(x)} (the bundled test images), got {k}")
        img = x[k]
        if img.shape != (c, h, w):
            raise ValueError(f"an MNIST digit is {img.shape}; the model takes {(c, h, w)}")
    else:
        img = read_image(image, size=(h, w), mode="L" if c == 1 else "RGB")
    return (1.0 - img if invert else img).astype(np.float32)


def default_model():
    """The shipped pretrained MNIST LeNet-5 (see :mod:`cnnlab.viz.mnist_net`)."""
    return pretrained_lenet()


# ---------------------------------------------------------------------- one writer per idea
def write_cat(out_dir, image=None, seed=0):
    """cat_experiments.png: the course's cat through untrained conv / ReLU / pool layers."""
    path = output_path(out_dir, "cat_experiments.png")
    stages = cat.cat_experiments(image, seed=seed)
    cat.plot_cat_experiments(stages, path)
    return [path]


def write_classic(out_dir, image=None):
    """classic_filters.png (2-D filters on the cameraman) and filters_1d.png."""
    p1, p2 = output_path(out_dir, "classic_filters.png"), output_path(out_dir, "filters_1d.png")
    classic.plot_classic_filters(classic.apply_classic_filters(image), p1)
    classic.plot_filter_signal_1d(classic.filter_signal_1d(), p2)
    return [p1, p2]


def write_feature_maps(out_dir, model, image, layer=None, invert=False):
    """With ``layer``: feature_maps_<layer>.png. Without: layers_overview.png (every
    layer's output) and, for nets on images, first_filters_and_maps.png."""
    x = model_input(model, image, invert)
    if layer is not None:
        name = layer_names(model)[resolve_layer(model, layer)]
        path = output_path(out_dir, f"feature_maps_{_safe(name)}.png")
        features.plot_feature_maps(features.feature_maps(model, x, layer), path,
                                   title=f"feature maps of {name!r}")
        return [path]
    paths = [output_path(out_dir, "layers_overview.png")]
    features.plot_layer_overview(model, x, paths[0])
    convs = features.conv_layer_names(model)
    if convs and features.layer_filters(model, convs[0]).shape[1] in (1, 3):
        paths.append(output_path(out_dir, "first_filters_and_maps.png"))
        features.plot_filters_and_maps(model, x, convs[0], paths[-1])
    return paths


def write_filters(out_dir, model, layer=None, max_maximized=16, steps=128, seed=0):
    """filters_<layer>.png for ``layer`` or every conv layer: a layer that sees the image
    (1 or 3 input channels) as its weights, which are pictures themselves; a deeper one as
    the input each filter responds to most (per-filter feature visualization of the
    activation after it, its first ``max_maximized`` filters), since a grid of 5x5 weight
    tiles over many input channels says little."""
    from .feature_vis import feature_visualization

    names = [layer_names(model)[resolve_layer(model, layer)]] if layer is not None else \
        features.conv_layer_names(model)
    if not names:
        raise ValueError("the model has no convolution layer")
    links = chain(model)
    paths = []
    for name in names:
        path = output_path(out_dir, f"filters_{_safe(name)}.png")
        w = features.layer_filters(model, name)
        if w.ndim != 4 or w.shape[1] <= 3:
            features.plot_filters(w, path, title=f"filters of {name!r}")
        else:
            i = resolve_layer(model, name)
            target = i + 1 if i + 1 < len(links) and type(links[i + 1][1]).__name__ in (
                "ReLU", "LeakyReLU") else i
            dark = model.input_shape[0] == 1  # digits: white ink on black
            res = [feature_visualization(model, target, k, steps=steps, seed=seed,
                                         start=0.05 if dark else 0.5, tv=0.2, l1=0.0)
                   for k in range(min(w.shape[0], max_maximized))]
            maximize.plot_maximization(res, path, unit="filter", title=(
                f"filters of {name!r} {tuple(w.shape)}: the input each one responds to most "
                f"(mean of its map after {links[target][0]!r}; Fourier-parameterized ascent)"))
        paths.append(path)
    return paths


def write_maximize(out_dir, model, layer, indices=None, filename=None, title=None, **kwargs):
    """maximize_<layer>.png: inputs maximizing each unit in ``indices`` (default: the
    first 16 channels / units) of ``layer``."""
    i = resolve_layer(model, layer)
    name, obj = chain(model)[i]
    if indices is None:
        out_shape = obj.output_shape or obj.compute_output_shape(model.input_shape)
        indices = range(min(16, out_shape[0]))
    results = maximize.maximize_units(model, i, list(indices), **kwargs)
    out_rank = len(obj.output_shape or obj.compute_output_shape(model.input_shape))
    unit = "filter" if out_rank > 1 else ("class" if i == len(chain(model)) - 1 else "unit")
    path = output_path(out_dir, filename or f"maximize_{_safe(name)}.png")
    maximize.plot_maximization(results, path, title=title, unit=unit)
    return [path]


def dream_layers(model):
    """The layers DeepDream amplifies by default: the last two ReLU or Residual outputs
    that are still feature maps (LeNet-5: its two conv ReLUs, strokes; the shipped CIFAR
    ResNet: its last ReLU and last residual block, eyes and cat faces)."""
    from ..layers import ReLU, Residual

    shape = tuple(model.input_shape)
    picked = []
    for name, layer in chain(model):
        shape = layer.output_shape or layer.compute_output_shape(shape)
        if isinstance(layer, (ReLU, Residual)) and len(shape) == 3:
            picked.append(name)
    if not picked:
        raise ValueError("DeepDream needs a ReLU or Residual layer with feature maps; the "
                         "model has none (name one with layers=...)")
    return picked[-2:]


def write_deepdream(out_dir, image="chelsea", model=None, layers=None, max_side=None,
                    **kwargs):
    """deepdream.png (photo and a dream per layer) and deepdream_<layer>.png (each dream
    alone). Default net: the shipped CIFAR-10 ResNet (it dreams in colour); default
    ``layers``: :func:`dream_layers`. ``max_side``: shrink the photo first so that its
    longer side is at most this many pixels (the CIFAR net saw 32x32 objects: on a
    smaller photo its patterns are larger, and each step is cheaper)."""
    from ..data import save_image
    from .cifar_net import pretrained_cifar

    model = pretrained_cifar() if model is None else model
    layers = dream_layers(model) if layers is None else list(layers)
    photo = read_image(image, mode="RGB")
    if max_side is not None:
        h, w = photo.shape[1:]
        if max(h, w) > max_side:
            k = max_side / max(h, w)
            photo = read_image(image, size=(max(8, round(h * k)), max(8, round(w * k))),
                               mode="RGB")
    results = [dream.deepdream(model, photo, layer, **kwargs) for layer in layers]
    path = output_path(out_dir, "deepdream.png")
    net = getattr(model, "viz_description", None) or f"the model {model.name!r}"
    dream.plot_deepdream(photo, results, path,
                         title=f"DeepDream with {net}: it amplifies the patterns it knows")
    paths = [path]
    for r in results:
        paths.append(output_path(out_dir, f"deepdream_{_safe(r['layer'])}.png"))
        save_image(paths[-1], r["image"])
    return paths


def first_block_layer(model):
    """The first pooling layer after the first conv (finer maps for Grad-CAM), or None."""
    from ..layers import PoolND

    links = chain(model)
    convs = [i for i, (_, layer) in enumerate(links) if isinstance(layer, features.CONV_TYPES)]
    if not convs:
        return None
    for i in range(convs[0] + 1, len(links)):
        if isinstance(links[i][1], PoolND):
            return links[i][0]
        if isinstance(links[i][1], features.CONV_TYPES):
            return None
    return None


def write_attribution(out_dir, model, images, kind=("saliency", "gradcam"), target=None,
                      layer=None, invert=False, filename=None, title=None):
    """saliency.png / gradcam.png / attribution.png for one or more images. ``kind``
    entries: 'saliency', 'gradcam' (at ``layer``, default the last conv layer) or
    'gradcam:<layer>'."""
    xs = np.stack([model_input(model, im, invert) for im in images])
    res = []
    for x in xs:
        r = {}
        for k in kind:
            if k == "saliency":
                r[k] = sal.saliency(model, x, target)
            elif k == "gradcam":
                r[k] = sal.gradcam(model, x, target, layer)
            elif k.startswith("gradcam:"):
                r[k] = sal.gradcam(model, x, target, k.split(":", 1)[1])
            else:
                raise ValueError(f"unknown attribution {k!r}")
        res.append(r)
    default = kind[0] + ".png" if len(kind) == 1 else "attribution.png"
    path = output_path(out_dir, filename or default)
    sal.plot_attribution(xs, res, path, show=kind, title=title)
    return [path]


def write_explanations(out_dir, model, images, methods=None, target=None, layer=None,
                       invert=False, filename=None, title=None, seed=0):
    """explanations.png (or ``filename``): a row per image, a column per method of
    :data:`cnnlab.viz.explainers.METHODS` (default: all eight; ``layer`` for the CAM family)."""
    from . import explain_figures
    from . import explainers as explain

    methods = list(explain.METHODS) if methods is None else [explain.method_key(m) for m in methods]
    xs = np.stack([model_input(model, im, invert) for im in images])
    res = {}
    for m in methods:
        opts = {"seed": seed} if m == "smoothgrad" else {}
        res[m] = explain.explain(model, xs, m, target=target,
                                 layer=layer if explain.takes_layer(m) else None, **opts)
    default = (methods[0].replace("+", "p") + ".png") if len(methods) == 1 else "explanations.png"
    path = output_path(out_dir, filename or default)
    explain_figures.plot_explanations(xs, res, path, title=title)
    return [path]


def write_class_visualizations(out_dir, model, steps=256, seed=0, data_dir=None, log=None):
    """class_visualizations.png: each class score maximized (cnnlab.viz.feature_vis), each
    image titled with the label of its 5 nearest MNIST training digits and its distance to
    them (the bundled 10,000 training digits unless ``data_dir`` names the IDX files).
    ``log``: called with a one-line summary of the judgement. -> [path]."""
    from ..data import load_mnist
    from .feature_vis import class_visualizations, pixel_space_report, plot_class_visualizations

    res = class_visualizations(model, steps=steps, seed=seed)
    x, y = load_mnist(data_dir, split="train")
    xt, _ = load_mnist(data_dir, split="test")
    rep = pixel_space_report(np.stack([r["image"] for r in res]), [r["index"] for r in res],
                             x, y, xt)
    if log is not None:
        log(f"5 nearest of {len(x):,} training digits (pixel space): {rep['correct']}/"
            f"{len(res)} labelled right; mean distance {rep['mean_distance']:.2f}, each: "
            f"{' '.join(f'{d:.1f}' for d in rep['distances'])}; {rep['within_p99']} within the "
            f"test digits' 99th percentile {rep['test_p99']:.2f} (median "
            f"{rep['test_median']:.2f})")
    path = output_path(out_dir, "class_visualizations.png")
    plot_class_visualizations(res, rep, path)
    return [path]


def write_conv_gif(out_dir, size=5, kernel=3, padding=0, stride=1, example=None, seed=0):
    """conv_n{size}_f{kernel}_p{padding}_s{stride}.gif; ``example='edge'`` is Andrew Ng's
    6x6 image (10s then 0s) with the vertical edge kernel."""
    x = w = None
    if example == "edge":
        x, w = np.array([[10] * 3 + [0] * 3] * 6), np.array([[1, 0, -1]] * 3)
        size, kernel = 6, 3
    elif example is not None:
        raise ValueError(f"example must be None or 'edge', got {example!r}")
    tag = "edge_" if example else ""
    path = output_path(out_dir, f"conv_{tag}n{size}_f{kernel}_p{padding}_s{stride}.gif")
    arithmetic.conv_gif(path, size=size, kernel=kernel, padding=padding, stride=stride,
                        x=x, w=w, seed=seed)
    return [path]


def write_pool_gif(out_dir, size=4, pool=2, stride=None, padding=0, seed=0):
    """pool_n{size}_f{pool}_p{padding}_s{stride}.gif (max pooling)."""
    s = pool if stride is None else stride
    path = output_path(out_dir, f"pool_n{size}_f{pool}_p{padding}_s{s}.gif")
    arithmetic.pool_gif(path, size=size, pool=pool, stride=stride, padding=padding, seed=seed)
    return [path]


def write_fc_to_conv(out_dir, model=None):
    """fc_to_conv.png: two digits on a 56x56 canvas through the converted LeNet (an 8x8
    grid of predictions at stride 4) and the check against sliding windows."""
    model = default_model() if model is None else model
    if tuple(model.input_shape) != (1, 28, 28):
        raise ValueError(f"the fc-to-conv picture places MNIST digits: it needs a model on "
                         f"(1, 28, 28), got {tuple(model.input_shape)}")
    x, _ = mnist_examples()
    canvas = fully_conv_figure.digits_canvas([x[3], x[7]], [(0, 0), (28, 28)], 56)
    demo = fully_conv_figure.fc_to_conv_demo(model, canvas)
    path = output_path(out_dir, "fc_to_conv.png")
    fully_conv_figure.plot_fc_to_conv(model, canvas, demo, path)
    return [path]


def write_why_conv(out_dir, input_shape=(3, 32, 32), filters=6, kernel=5, stride=1, padding=0):
    """why_conv.png; returns (paths, the counts dict)."""
    d = why_conv.why_convolution(input_shape, filters, kernel, stride, padding)
    path = output_path(out_dir, "why_conv.png")
    why_conv.plot_why_convolution(d, path)
    return [path], d


def write_all(out_dir, model=None, log=print):
    """Every picture into ``out_dir``. ``model``: a trained net on (1, 28, 28) digits for
    the model-based pictures (default: the shipped LeNet-5); DeepDream uses the shipped
    CIFAR-10 ResNet unless ``model`` takes colour.
    ``log``: called with one line per written file (None: silent). -> list of paths."""
    say = log or (lambda *_: None)
    paths = []

    def add(new):
        for p in new:
            say(f"wrote {p}")
        paths.extend(new)

    add(write_cat(out_dir))
    add(write_classic(out_dir))
    add(write_why_conv(out_dir)[0])
    add(write_conv_gif(out_dir, size=5, kernel=3, padding=1, stride=2))
    add(write_conv_gif(out_dir, example="edge"))
    add(write_pool_gif(out_dir))
    if model is None:
        model = default_model()
        say(f"model: {model.viz_description}, {model.viz_test_accuracy:.1%} on the bundled "
            f"test digits")
    names = layer_names(model)
    add(write_feature_maps(out_dir, model, "mnist:3"))
    add(write_filters(out_dir, model))
    relus = [n for n in names if n.rsplit("/", 1)[-1].startswith("relu")]
    for layer in relus[:2]:
        add(write_maximize(out_dir, model, layer))
    add(write_maximize(out_dir, model, len(names) - 1, indices=range(10),
                       filename="maximize_classes.png",
                       title="Inputs that maximize each class score (L2 decay, jitter, blur)"))
    add(write_maximize(out_dir, model, len(names) - 1, indices=range(10), l1=0.01,
                       filename="maximize_classes_l1.png",
                       title="The same with an L1 'less ink' penalty: cleaner digits"))
    digits = [f"mnist:{k}" for k in _first_of_each_class()[:4]]
    fine = first_block_layer(model)
    kinds = ("saliency", "gradcam") + ((f"gradcam:{fine}",) if fine else ())
    field = receptive_field(chain(model)[:last_conv_index(model) + 1])[2]
    add(write_attribution(out_dir, model, digits, kind=kinds, title=(
        f"Where is the evidence? Saliency, and Grad-CAM at the last conv layer (coarse: each "
        f"cell sees {field[0]}x{field[1]} px)\nand at the first conv block (finer: it follows "
        f"the strokes)" if fine else None)))
    add(write_explanations(out_dir, model, digits))
    if tuple(model.input_shape) == (1, 28, 28):
        add(write_class_visualizations(out_dir, model))
    # DeepDream on a colour photo: the user's net if it sees colour, else the shipped
    # CIFAR-10 ResNet (eyes at its last ReLU, cat faces at its last residual block;
    # about 6 s of one core for both at 120x180)
    colour = model if model.input_shape[0] == 3 else _colour_net()
    add(write_deepdream(out_dir, "chelsea", colour, max_side=180))
    if tuple(model.input_shape) == (1, 28, 28):
        add(write_fc_to_conv(out_dir, model))
    return paths


def _colour_net():
    from .cifar_net import pretrained_cifar
    return pretrained_cifar()


def _first_of_each_class():
    from ..data import load_mnist

    _, y = load_mnist(split="test")
    return [int(np.flatnonzero(y == c)[0]) for c in range(10)]


__all__ = ["write_all", "write_cat", "write_classic", "write_feature_maps", "write_filters",
           "write_maximize", "write_deepdream", "write_attribution", "write_conv_gif",
           "write_pool_gif", "write_fc_to_conv", "write_why_conv", "model_input", "dream_layers",
           "default_model", "first_block_layer"]
