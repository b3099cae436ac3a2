"""``cnnlab predict MODEL_FILE IMAGE``: the top classes of one image.

The image is converted to the model's input: grayscale for 1-channel models, RGB for
3-channel ones, resized to the model's height and width, scaled to [0, 1]. MNIST digits
are white on black: a photo of dark ink on white paper needs ``--invert``.
"""
from __future__ import annotations

import numpy as np

from .common import CLIError, class_names, existing_file, load_model_file, positive_int

ORDER = 30


def register(sub):
    p = sub.add_parser("predict", help="classify one image with a saved model",
                       description=__doc__.replace("``", ""))
    p.add_argument("model_file", metavar="MODEL_FILE", help="a .npz written by train / Model.save")
    p.add_argument("image", metavar="IMAGE", help="an image file (PNG, JPEG, ...)")
    p.add_argument("--top-k", type=positive_int, default=3, metavar="K",
                   help="how many classes to show (default 3)")
    p.add_argument("--invert", action="store_true",
                   help="use 1 - pixel (dark digits on a light background -> MNIST style)")
    p.add_argument("--classes", default=None, metavar="A,B,...",
                   help="class names, comma-separated (default: digits, or the CIFAR-10 names "
                        "for 3-channel 10-class models)")
    p.set_defaults(func=run)


def load_input(path, input_shape, invert=False):
    """Image file -> (1, C, H, W) float32 in [0, 1] for a model taking ``input_shape``."""
    from PIL import UnidentifiedImageError

    from ..data import load_image

    c, h, w = input_shape
    if c not in (1, 3):
        raise CLIError(f"the model takes {c}-channel images; predict handles 1 (grayscale) "
                       f"or 3 (RGB)")
    try:
        x = load_image(path, size=(h, w), mode="L" if c == 1 else "RGB")
    except UnidentifiedImageError:
        raise CLIError(f"not an image file Pillow can read: {path}") from None
    if invert:
        x = 1.0 - x
    return x[None].astype(np.float32)


def run(args):
    model = load_model_file(args.model_file)
    existing_file(args.image, "image")
    shape = tuple(model.input_shape)
    if len(shape) != 3:
        raise CLIError(f"predict needs an image model (input C,H,W), this one takes {shape}")
    x = load_input(args.image, shape, args.invert)
    probs = model.predict(x)[0]
    k = min(args.top_k, probs.size)
    if args.classes:
        names = [s.strip() for s in args.classes.split(",")]
        if len(names) != probs.size:
            raise CLIError(f"--classes gives {len(names)} names but the model has "
                           f"{probs.size} classes")
    else:
        names = class_names(probs.size, shape[0])
    order = np.argsort(-probs, kind="stable")[:k]
    print(f"{args.image} ({shape[0]}x{shape[1]}x{shape[2]} input"
          f"{', inverted' if args.invert else ''}):")
    for rank, i in enumerate(order, 1):
        label = names[i] if names[i] == str(i) else f"{names[i]} ({i})"
        print(f"  {rank}. {label:<16} {probs[i]:7.2%}")
    return 0
