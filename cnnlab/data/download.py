"""Downloading MNIST and CIFAR-10 for online users: checksum-verified, written atomically
(temp file + ``os.replace``; a failed or corrupt download leaves no partial file).

Offline, every function raises :class:`DownloadError` saying what to fetch, from where, with
which checksum, and where to put it.
"""
from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath

from ._paths import atomic_open, data_dir

__all__ = [
    "DownloadError", "ChecksumError", "download_url", "download_mnist", "download_cifar10",
    "safe_extract_tar", "file_md5", "MNIST_MIRRORS", "MNIST_MD5", "CIFAR10_URL", "CIFAR10_MD5",
]

MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
#: md5 of the official gzipped MNIST files.
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
_CHUNK = 1 << 20


class DownloadError(OSError):
    """A download failed (network error, or every source failed)."""


class ChecksumError(DownloadError):
    """Downloaded data did not match the expected checksum (nothing was written)."""


def file_md5(path: str | os.PathLike, algorithm: str = "md5") -> str:
    """Hex digest of a file (``algorithm``: any ``hashlib`` name)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _verified(path: Path, md5: str | None, sha256: str | None) -> bool:
    if not path.is_file():
        return False
    if md5 and file_md5(path, "md5") != md5.lower():
        return False
    if sha256 and file_md5(path, "sha256") != sha256.lower():
        return False
    return True


def _fetch(url: str, dest: Path, md5: str | None, sha256: str | None, timeout: float) -> None:
    hashes = {k: hashlib.new(k) for k, v in (("md5", md5), ("sha256", sha256)) if v}
    with atomic_open(dest) as out, urllib.request.urlopen(url, timeout=timeout) as resp:
        for chunk in iter(lambda: resp.read(_CHUNK), b""):
            out.write(chunk)
            for h in hashes.values():
                h.update(chunk)
        for name, want in (("md5", md5), ("sha256", sha256)):
            if want and hashes[name].hexdigest() != want.lower():
                # raising inside atomic_open deletes the temp file: nothing is left behind
                raise ChecksumError(
                    f"{name} mismatch: expected {want.lower()}, got "
                    f"{hashes[name].hexdigest()}; the data was discarded")


def download_url(urls, dest: str | os.PathLike, md5: str | None = None,
                 sha256: str | None = None, timeout: float = 60.0, force: bool = False) -> Path:
    """Download the first working URL of ``urls`` (a string or a list of mirrors) to the file
    ``dest``, verifying ``md5`` and/or ``sha256`` when given.

    An existing ``dest`` that matches the checksums is kept (no download) unless ``force``.
    The data is streamed into a temporary file next to ``dest`` and renamed onto it only after
    verification, so ``dest`` is never partial.

    Raises:
        ChecksumError: every source delivered data with the wrong checksum.
        DownloadError: no source could be fetched (offline?); the message lists each URL's error
            and says where to put a manually downloaded copy.
    """
    urls = [urls] if isinstance(urls, (str, bytes)) else list(urls)
    if not urls:
        raise ValueError("download_url: expected at least one URL, got none")
    dest = Path(dest)
    if not force and (md5 or sha256) and _verified(dest, md5, sha256):
        return dest
    errors: list[tuple[str, Exception]] = []
    for url in urls:
        try:
            _fetch(url, dest, md5, sha256, timeout)
            return dest
        except ChecksumError as e:
            errors.append((url, e))
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as e:
            # offline, 404, connection reset, incomplete read, bad URL...
            errors.append((url, e))
    checksums = ", ".join(f"{k} {v}" for k, v in (("md5", md5), ("sha256", sha256)) if v)
    details = "; ".join(f"{u}: {e}" for u, e in errors)
    advice = (f" If this machine is offline, download {urls[0]} elsewhere"
              + (f" (check its {checksums})" if checksums else "")
              + f" and put it at {dest}.")
    cls = ChecksumError if all(isinstance(e, ChecksumError) for _, e in errors) else DownloadError
    raise cls(f"could not download {dest.name}: {details}.{advice}")


def download_mnist(dest: str | os.PathLike | None = None, mirrors=MNIST_MIRRORS,
                   timeout: float = 60.0, force: bool = False) -> Path:
    """Download the four official gzipped MNIST files (60,000 train + 10,000 test) into ``dest``
    (default ``data_dir()/mnist``, i.e. ``~/.cache/cnnlab/datasets/mnist`` or
    ``$CNNLAB_DATA/mnist``), md5-verified, trying each mirror in turn. Files already present with
    the right md5 are kept. Returns ``dest``, ready for ``load_mnist(path=dest)``.

    All four files are attempted; if any fails, :class:`DownloadError` (or
    :class:`ChecksumError`) lists the failures, and only verified files remain in ``dest``.
    """
    dest = Path(dest) if dest is not None else data_dir() / "mnist"
    mirrors = [mirrors] if isinstance(mirrors, str) else list(mirrors)
    failures = []
    for name, md5 in MNIST_MD5.items():
        urls = [m.rstrip("/") + "/" + name for m in mirrors]
        try:
            download_url(urls, dest / name, md5=md5, timeout=timeout, force=force)
        except DownloadError as e:
            failures.append(e)
    if failures:
        cls = ChecksumError if all(isinstance(e, ChecksumError) for e in failures) else DownloadError
        raise cls(f"download_mnist: {len(failures)} of {len(MNIST_MD5)} files failed "
                  f"(MNIST is also at http://yann.lecun.com/exdb/mnist/; put the four .gz files "
                  f"in {dest}):\n" + "\n".join(str(e) for e in failures))
    return dest


def _check_member(m: tarfile.TarInfo, archive) -> None:
    p = PurePosixPath(m.name)
    if (not p.parts or p.is_absolute() or ".." in p.parts or m.name.startswith(("/", "\\"))
            or ":" in p.parts[0] or "\\" in m.name):
        raise ValueError(f"{archive}: refusing unsafe path in archive: {m.name!r} (path traversal)")
    if not (m.isfile() or m.isdir()):
        raise ValueError(
            f"{archive}: refusing member {m.name!r}: expected regular files and directories only, "
            f"got a {'link' if (m.issym() or m.islnk()) else 'special file'}")


def safe_extract_tar(archive: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Extract a tar archive into ``dest``, refusing (``ValueError``, nothing extracted) absolute
    paths, ``..`` components, links and device files. Returns ``dest``."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    with tarfile.open(archive, "r:*") as tf:
        members = tf.getmembers()
        for m in members:
            _check_member(m, archive)
            target = (root / m.name).resolve()
            if target != root and root not in target.parents:
                raise ValueError(f"{archive}: refusing member {m.name!r}: it would land outside {root}")
        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4 / 3.12: belt and braces
            tf.extractall(root, members=members, filter="data")
        else:  # pragma: no cover
            tf.extractall(root, members=members)
    return dest


def download_cifar10(dest: str | os.PathLike | None = None, url: str | list = CIFAR10_URL,
                     md5: str | None = CIFAR10_MD5, timeout: float = 60.0, force: bool = False,
                     keep_archive: bool = True) -> Path:
    """Download ``cifar-10-python.tar.gz`` (163 MB, md5-verified) into ``dest`` (default
    ``data_dir()``) and extract it safely to ``dest/cifar-10-batches-py``, which is returned
    (ready for ``load_cifar10(path=...)``). Extraction goes to a temporary folder first and is
    renamed into place, so a failure leaves no half-extracted directory. An existing extracted
    directory is kept unless ``force``.
    """
    dest = Path(dest) if dest is not None else data_dir()
    final = dest / "cifar-10-batches-py"
    if final.is_dir() and not force:
        return final
    archive = dest / "cifar-10-python.tar.gz"
    download_url(url, archive, md5=md5, timeout=timeout, force=force)
    tmp = Path(tempfile.mkdtemp(dir=dest, prefix=".cifar-10-extract-"))
    try:
        safe_extract_tar(archive, tmp)
        extracted = tmp / "cifar-10-batches-py"
        if not extracted.is_dir():
            raise ValueError(f"{archive}: expected a top-level folder cifar-10-batches-py in the "
                             f"archive, got {sorted(p.name for p in tmp.iterdir())}")
        if final.exists():
            shutil.rmtree(final)
        os.replace(extracted, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not keep_archive:
        with contextlib.suppress(OSError):
            archive.unlink()
    return final
