"""Where cnnlab keeps downloaded data sets and decoded caches, and atomic file writes.

Locations (each overridable by an environment variable):

- ``cache_dir()``: ``$CNNLAB_CACHE``, else ``$XDG_CACHE_HOME/cnnlab``, else ``~/.cache/cnnlab``.
  Decoded image-folder arrays are cached under ``cache_dir()/decoded``.
- ``data_dir()``: ``$CNNLAB_DATA``, else ``cache_dir()/datasets``. Downloads go there by default.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator, IO

__all__ = ["cache_dir", "data_dir", "atomic_open"]


def cache_dir() -> Path:
    """Return the user cache directory for cnnlab (not created)."""
    env = os.environ.get("CNNLAB_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "cnnlab"
    return Path.home() / ".cache" / "cnnlab"


def data_dir() -> Path:
    """Return the default directory for downloaded data sets (not created)."""
    env = os.environ.get("CNNLAB_DATA")
    if env:
        return Path(env).expanduser()
    return cache_dir() / "datasets"


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file next to ``path``; on success fsync it and ``os.replace`` it onto
    ``path``; on any exception delete it, leaving ``path`` untouched (no partial file).

    The temporary file is named ``<name>.tmp<random>`` in the same directory, so the final
    rename is atomic on POSIX and Windows.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open: mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
