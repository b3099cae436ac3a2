"""Loading single images as float arrays (C, H, W) in [0, 1], and saving them."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ._paths import atomic_open

__all__ = ["load_image", "save_image"]

_WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
#: What Pillow raises on bad image files (truncated, corrupt, unknown format, bombs).
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


def check_pixels(im: Image.Image) -> None:
    """Refuse an image with more pixels than ``PIL.Image.MAX_IMAGE_PIXELS`` (89,478,485 by
    default; Pillow itself only warns up to twice that) before it is decoded: a small
    compressed file can declare gigapixels (a decompression bomb)."""
    limit = Image.MAX_IMAGE_PIXELS
    w, h = im.size
    if limit and w * h > limit:
        raise ValueError(f"{w}x{h} = {w * h:,} pixels, more than PIL.Image.MAX_IMAGE_PIXELS "
                         f"({limit:,}): refusing a possible decompression bomb (raise "
                         f"PIL.Image.MAX_IMAGE_PIXELS if the image is genuine)")


def _normalize_size(size, who: str):
    """None, an int (square) or (H, W) -> None or a tuple (H, W) of positive ints."""
    if size is None:
        return None
    if isinstance(size, (int, np.integer)):
        size = (int(size), int(size))
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"{who}: size must be None, an int or (H, W), got {size!r}") from None
    if h <= 0 or w <= 0:
        raise ValueError(f"{who}: size must be positive, got {size!r}")
    return (h, w)


def _wide_to_unit(im: Image.Image) -> np.ndarray:
    """16/32-bit integer or float grayscale image -> float32 (H, W) in [0, 1]."""
    a = np.asarray(im)
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        bad = int(a.size - np.count_nonzero(np.isfinite(a)))
        raise ValueError(f"the float image holds {bad} NaN/inf pixel(s) of {a.size}; expected "
                         f"finite values")
    if im.mode == "F":
        return np.clip(a, 0.0, 1.0).astype(np.float32)
    hi = 65535.0 if im.mode.startswith("I;16") or (a.size and a.max() <= 65535) else float(a.max())
    return (np.clip(a, 0, None).astype(np.float64) / hi).astype(np.float32)


def load_image(path, size: int | tuple[int, int] | None = None,
               mode: str | None = "RGB", dtype=np.float32) -> np.ndarray:
    """Read an image file as an array ``(C, H, W)`` with values in [0, 1].

    Args:
        path: a file path, or a binary file object (e.g. ``io.BytesIO`` of a zip member), in any
            format Pillow reads (PNG, JPEG, BMP, GIF, TIFF, WebP...). EXIF orientation is applied.
        size: resize to ``(H, W)`` (an int means square), bilinear with antialiasing; None keeps
            the original size.
        mode: ``'RGB'`` (C=3), ``'L'`` (C=1, grayscale), ``'RGBA'`` (C=4), or None to keep the
            file's own channels (grayscale -> 1, grayscale+alpha -> 2, RGB -> 3, RGBA -> 4;
            palette images become RGB/RGBA; 16-bit grayscale keeps its precision).
        dtype: float dtype of the result (default float32).

    Raises ``ValueError`` naming the file for anything Pillow cannot read (truncated or
    corrupt files, unknown formats), for images larger than ``PIL.Image.MAX_IMAGE_PIXELS``
    (decompression bombs) and for float images holding NaN or inf.
    """
    if mode not in ("RGB", "L", "RGBA", None):
        raise ValueError(f"load_image: mode must be 'RGB', 'L', 'RGBA' or None, got {mode!r}")
    size = _normalize_size(size, "load_image")
    if not hasattr(path, "read"):
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"load_image: no image file at {str(path)!r}")
    name = str(path) if isinstance(path, Path) else str(getattr(path, "name", "<file object>"))
    try:
        return _load(path, size, mode, dtype)
    except UnidentifiedImageError as e:
        raise ValueError(f"load_image: {name} is not an image file Pillow can read "
                         f"({e})") from e
    except DECODE_ERRORS as e:
        raise ValueError(f"load_image: cannot read image {name}: {e}") from e


def _load(path, size, mode, dtype):
    with Image.open(path) as im:
        check_pixels(im)
        im = ImageOps.exif_transpose(im)
        if im.mode in _WIDE_MODES and mode in ("L", None):
            a = _wide_to_unit(im)
            if size and a.shape != size:
                a = np.asarray(Image.fromarray(a, "F").resize((size[1], size[0]),
                                                               Image.Resampling.BILINEAR))
            return np.clip(a, 0.0, 1.0)[None].astype(dtype)
        if im.mode in _WIDE_MODES:
            im = Image.fromarray((_wide_to_unit(im) * 255.0).round().astype(np.uint8))
        target = mode
        if target is None:
            if im.mode in ("L", "LA", "RGB", "RGBA"):
                target = im.mode
            elif im.mode == "1":
                target = "L"
            elif im.mode in ("P", "PA") and ("transparency" in im.info or im.mode == "PA"):
                target = "RGBA"
            else:
                target = "RGB"
        if im.mode != target:
            im = im.convert(target)
        if size and im.size != (size[1], size[0]):
            im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        a = np.asarray(im)
    a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
    out = a.astype(dtype)
    out /= out.dtype.type(255.0)
    return out


def save_image(path: str | os.PathLike, image) -> Path:
    """Save ``image`` atomically; the format comes from the file extension.

    ``image``: ``(C, H, W)`` with C in {1, 3, 4}, or ``(H, W)``; floats are taken as [0, 1]
    (clipped), uint8 as 0..255. Returns the path.
    """
    a = np.asarray(image)
    if a.ndim == 3:
        if a.shape[0] not in (1, 3, 4):
            raise ValueError(f"save_image: expected (C, H, W) with C in 1, 3, 4, got shape {a.shape}")
        a = a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)
    elif a.ndim != 2:
        raise ValueError(f"save_image: expected (C, H, W) or (H, W), got shape {a.shape}")
    if a.dtype != np.uint8:
        a = (np.clip(a.astype(np.float64), 0.0, 1.0) * 255.0).round().astype(np.uint8)
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"save_image: unknown image extension {path.suffix!r} in {path}")
    with atomic_open(path) as f:
        Image.fromarray(np.ascontiguousarray(a)).save(f, format=fmt)
    return path
