"""The photographs bundled with cnnlab (``cnnlab/assets/images``, both CC0):

- ``'chelsea'``: a cat's face, RGB 451x300 (Stefan van der Walt) -- the cat of the
  feature-map experiments;
- ``'camera'``: the "cameraman", grayscale 256x256 (Lav Varshney) -- for classic filters.
"""
from __future__ import annotations

from pathlib import Path

SAMPLE_IMAGES = ("chelsea", "camera")


def sample_image_path(name):
    """Path of a bundled photograph ('chelsea' or 'camera')."""
    if name not in SAMPLE_IMAGES:
        raise ValueError(f"sample image must be one of {SAMPLE_IMAGES}, got {name!r}")
    path = Path(__file__).resolve().parent.parent / "assets" / "images" / f"{name}.png"
    if not path.is_file():
        raise FileNotFoundError(f"the bundled image {path} is missing; reinstall cnnlab")
    return path


def sample_image(name, size=None, mode=None):
    """A bundled photograph as (C, H, W) float32 in [0, 1] (``cnnlab.data.load_image``).

    ``mode``: 'RGB', 'L' or None (the file's own: RGB for chelsea, L for camera);
    ``size``: None, an int or (H, W)."""
    from ..data import load_image

    return load_image(sample_image_path(name), size=size, mode=mode)


def read_image(path_or_name, size=None, mode=None):
    """A bundled image by name ('chelsea', 'camera') or any image file by path."""
    if isinstance(path_or_name, str) and path_or_name in SAMPLE_IMAGES:
        return sample_image(path_or_name, size=size, mode=mode)
    from ..data import load_image

    path = Path(path_or_name)
    if not path.is_file():
        raise FileNotFoundError(f"no image file {str(path)!r} (or give a bundled name: "
                                f"{', '.join(SAMPLE_IMAGES)})")
    return load_image(path, size=size, mode=mode)
