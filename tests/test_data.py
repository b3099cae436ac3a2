"""Tests for cnnlab.data: IDX/MNIST, CIFAR-10 (python, binary, image folder/zip, tar.gz), the
restricted unpickler, image folders and their cache, load_image, downloads, batching and
augmentation.

Real data under ../shared/data is used where present (skipped otherwise); everything else is
generated in tmp_path. No test touches the network or the user's cache directory.
"""
from __future__ import annotations

import ast
import gzip
import hashlib
import io
import os
import pickle
import struct
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import cnnlab.data as D
from cnnlab.data import folder as folder_mod

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
MNIST_DIR = SHARED / "mnist"
CIFAR_ZIP = SHARED / "cifar10" / "cifar10-jpeg.zip"
IMAGES_DIR = SHARED / "images"

if os.environ.get("CNNLAB_REQUIRE_SHARED_DATA") and not (MNIST_DIR.is_dir() and CIFAR_ZIP.is_file()):
    # CI sets this: there the real data must be tested, never skipped
    raise RuntimeError(f"CNNLAB_REQUIRE_SHARED_DATA is set but {SHARED} lacks mnist/ or cifar10/cifar10-jpeg.zip")
needs_mnist = pytest.mark.skipif(not MNIST_DIR.is_dir(), reason="shared MNIST files not present")
needs_cifar_zip = pytest.mark.skipif(not CIFAR_ZIP.is_file(), reason="shared CIFAR zip not present")


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path, monkeypatch):
    """Keep caches and downloads inside tmp_path; make any unexpected network use fail."""
    monkeypatch.setenv("CNNLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CNNLAB_DATA", str(tmp_path / "datasets"))
    real = urllib.request.urlopen

    def no_network(url, *a, **k):
        u = url if isinstance(url, str) else url.full_url
        if not u.startswith("file:"):
            raise AssertionError(f"test tried to reach the network: {u}")
        return real(url, *a, **k)

    monkeypatch.setattr(urllib.request, "urlopen", no_network)


def _md5(path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def _no_temp_files(directory: Path) -> bool:
    return not any(".tmp" in p.name for p in directory.iterdir())


# --------------------------------------------------------------------------------------------
# MNIST: real files
# --------------------------------------------------------------------------------------------

@needs_mnist
def test_real_mnist_train_count_from_header_and_label_histogram():
    x, y = D.load_mnist(MNIST_DIR, split="train")
    assert x.shape == (24000, 1, 28, 28) and x.dtype == np.float32
    assert y.shape == (24000,) and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    hist = np.bincount(y, minlength=10)
    assert hist.size == 10 and np.all(hist > 0.08 * 24000) and np.all(hist < 0.13 * 24000)
    assert 0.10 < x.mean() < 0.16  # MNIST mean intensity is about 0.13


@needs_mnist
def test_real_mnist_test_set_md5_and_uint8():
    assert D.file_md5(MNIST_DIR / "t10k-images-idx3-ubyte.gz") == "9fb629c4189551a2d022fa330f9573f3"
    assert D.file_md5(MNIST_DIR / "t10k-labels-idx1-ubyte.gz") == "ec29112dd5afa0611ce80d1b7f02629c"
    assert D.MNIST_MD5["t10k-images-idx3-ubyte.gz"] == "9fb629c4189551a2d022fa330f9573f3"
    x, y = D.load_mnist(MNIST_DIR, split="test", dtype=np.uint8)
    assert x.shape == (10000, 1, 28, 28) and x.dtype == np.uint8 and x.max() == 255
    assert np.bincount(y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    raw = D.read_idx(MNIST_DIR / "t10k-images-idx3-ubyte.gz")
    assert raw.shape == (10000, 28, 28) and raw.dtype == np.uint8
    np.testing.assert_array_equal(raw, x[:, 0])


def test_bundled_subset_loads_offline():
    bundled = D.bundled_mnist_dir()
    assert bundled.is_dir() and Path(D.__file__).parent.parent in bundled.parents
    assert (bundled / "README.md").is_file()
    assert "CC BY-SA 3.0" in (bundled / "README.md").read_text()
    xtr, ytr = D.load_mnist()          # no path: bundled files; urlopen would fail (fixture)
    xte, yte = D.load_mnist(split="test")
    assert xtr.shape == (10000, 1, 28, 28) and ytr.shape == (10000,)
    assert xte.shape == (2000, 1, 28, 28) and yte.shape == (2000,)
    assert np.all(np.bincount(ytr, minlength=10) > 800)
    if MNIST_DIR.is_dir():  # the subset is the head of the real files
        full_x, full_y = D.load_mnist(MNIST_DIR, split="test", dtype=np.uint8)
        sub_x, sub_y = D.load_mnist(split="test", dtype=np.uint8)
        np.testing.assert_array_equal(sub_x, full_x[:2000])
        np.testing.assert_array_equal(sub_y, full_y[:2000])


# --------------------------------------------------------------------------------------------
# IDX: generated files
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(tmp_path, dtype, gz):
    a = (np.arange(2 * 3 * 5) - 7).astype(dtype).reshape(2, 3, 5)
    p = D.write_idx(tmp_path / ("a.idx" + (".gz" if gz else "")), a)
    assert (p.read_bytes()[:2] == b"\x1f\x8b") == gz
    b = D.read_idx(p)
    assert b.dtype == np.dtype(dtype) and b.dtype.isnative and b.flags.writeable
    np.testing.assert_array_equal(a, b)


def test_idx_header_is_big_endian_standard(tmp_path):
    a = np.arange(6, dtype=np.uint8).reshape(2, 3)
    raw = D.write_idx(tmp_path / "x-idx2-ubyte", a).read_bytes()
    assert raw == b"\x00\x00\x08\x02" + struct.pack(">II", 2, 3) + bytes(range(6))
    i16 = D.write_idx(tmp_path / "y", np.array([1, -2], np.int16)).read_bytes()
    assert i16 == b"\x00\x00\x0b\x01" + struct.pack(">I", 2) + struct.pack(">hh", 1, -2)


def _write_mnist_dir(d: Path, n_train=7, n_test=3, gz=True, seed=0):
    rng = np.random.default_rng(seed)
    d.mkdir(parents=True, exist_ok=True)
    data = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, n).astype(np.uint8)
        ext = ".gz" if gz else ""
        D.write_idx(d / f"{prefix}-images-idx3-ubyte{ext}", x)
        D.write_idx(d / f"{prefix}-labels-idx1-ubyte{ext}", y)
        data[split] = (x, y)
    return data


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_generated(tmp_path, gz):
    data = _write_mnist_dir(tmp_path / "m", gz=gz)
    for split in ("train", "test"):
        x, y = D.load_mnist(tmp_path / "m", split=split)
        xs, ys = data[split]
        assert x.dtype == np.float32 and x.shape == (len(xs), 1, 28, 28)
        np.testing.assert_allclose(x[:, 0] * 255.0, xs, atol=1e-4)
        assert y.dtype == np.int64
        np.testing.assert_array_equal(y, ys)
        xu, _ = D.load_mnist(tmp_path / "m", split=split, dtype=np.uint8)
        np.testing.assert_array_equal(xu[:, 0], xs)
    x2, y2 = D.load_mnist(tmp_path / "m", limit=2)
    assert x2.shape == (2, 1, 28, 28) and y2.shape == (2,)
    # the torchvision layout root/MNIST/raw is found too
    _write_mnist_dir(tmp_path / "tv" / "MNIST" / "raw", gz=gz)
    assert D.load_mnist(tmp_path / "tv")[0].shape == (7, 1, 28, 28)


def test_bad_magic_number(tmp_path):
    p = tmp_path / "bad.idx"
    p.write_bytes(b"\x01\x02\x08\x01" + struct.pack(">I", 2) + b"\x00\x01")
    with pytest.raises(ValueError, match=r"bad\.idx.*magic.*expected.*got 0x01020801"):
        D.read_idx(p)
    p.write_bytes(b"\x00\x00\x07\x01" + struct.pack(">I", 2) + b"\x00\x01")  # unknown type code
    with pytest.raises(ValueError, match="magic"):
        D.read_idx(p)
    # images and labels swapped: valid IDX files, wrong MNIST magic numbers
    d = tmp_path / "m"
    _write_mnist_dir(d)
    (d / "t10k-images-idx3-ubyte.gz").rename(d / "tmp.gz")
    (d / "t10k-labels-idx1-ubyte.gz").rename(d / "t10k-images-idx3-ubyte.gz")
    (d / "tmp.gz").rename(d / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte\.gz.*expected magic number 0x00000803.*got 0x00000801"):
        D.load_mnist(d, split="test")


def test_truncated_files(tmp_path):
    a = np.zeros((4, 28, 28), np.uint8)
    raw = D.write_idx(tmp_path / "a", a).read_bytes()
    p = tmp_path / "short-idx3-ubyte"
    p.write_bytes(raw[:-10])
    with pytest.raises(ValueError, match=rf"short-idx3-ubyte.*truncated.*expected {len(raw)} bytes.*got {len(raw) - 10}"):
        D.read_idx(p)
    p.write_bytes(raw[:6])
    with pytest.raises(ValueError, match="truncated IDX header"):
        D.read_idx(p)
    p.write_bytes(raw + b"xx")
    with pytest.raises(ValueError, match="longer than its header"):
        D.read_idx(p)
    gz = gzip.compress(raw)
    pg = tmp_path / "short.gz"
    pg.write_bytes(gz[: len(gz) // 2])
    with pytest.raises(ValueError, match=r"short\.gz.*gzip"):
        D.read_idx(pg)


def test_count_mismatch_and_missing(tmp_path):
    d = tmp_path / "m"
    _write_mnist_dir(d)
    D.write_idx(d / "train-labels-idx1-ubyte.gz", np.zeros(5, np.uint8))
    with pytest.raises(ValueError, match=r"count mismatch.*7 images.*got 5"):
        D.load_mnist(d)
    with pytest.raises(FileNotFoundError, match="download_mnist"):
        D.load_mnist(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"t10k-images-idx3-ubyte\[\.gz\]"):
        D.load_mnist(tmp_path / "empty", split="test")
    with pytest.raises(ValueError, match="split"):
        D.load_mnist(d, split="val")


# --------------------------------------------------------------------------------------------
# CIFAR-10: python batches (restricted unpickler), binary batches, tar.gz
# --------------------------------------------------------------------------------------------

def _cifar_arrays(n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3072), dtype=np.uint8), rng.integers(0, 10, n).tolist()


def _write_python_batches(d: Path, n=4):
    d.mkdir(parents=True)
    out = {}
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        data, labels = _cifar_arrays(n, i)
        batch = {b"batch_label": f"batch {i}".encode(), b"labels": labels, b"data": data,
                 b"filenames": [f"img_{j}.png".encode() for j in range(n)]}
        with open(d / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
        out[name] = (data, labels)
    with open(d / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [c.encode() for c in D.CIFAR10_CLASSES],
                     b"num_cases_per_batch": n, b"num_vis": 3072}, f, protocol=2)
    return out


def _expected(batches, split):
    names = [f"data_batch_{k}" for k in range(1, 6)] if split == "train" else ["test_batch"]
    x = np.concatenate([batches[n][0] for n in names]).reshape(-1, 3, 32, 32)
    y = np.concatenate([batches[n][1] for n in names])
    return x, y


def test_cifar_python_batches(tmp_path):
    batches = _write_python_batches(tmp_path / "cifar-10-batches-py")
    for split in ("train", "test"):
        x, y = D.load_cifar10(tmp_path / "cifar-10-batches-py", split=split, dtype=np.uint8)
        ex, ey = _expected(batches, split)
        np.testing.assert_array_equal(x, ex)
        np.testing.assert_array_equal(y, ey)
        assert y.dtype == np.int64
    x, _ = D.load_cifar10(tmp_path, split="test")  # the parent directory works too
    assert x.shape == (4, 3, 32, 32) and x.dtype == np.float32 and x.max() <= 1.0
    assert D.find_cifar10(tmp_path, "train")[0] == "python"
    xb, yb = D.read_cifar_python_batch(tmp_path / "cifar-10-batches-py" / "data_batch_3")
    np.testing.assert_array_equal(xb.reshape(4, -1), batches["data_batch_3"][0])


def _py2_style_batch(data: np.ndarray, labels) -> bytes:
    """A batch pickled the way the official (Python 2 cPickle) files are: protocol 2, str as
    SHORT_BINSTRING/BINSTRING, arrays via numpy.core.multiarray._reconstruct."""
    def s(b: bytes) -> bytes:
        return (b"U" + bytes([len(b)]) + b) if len(b) < 256 else (b"T" + struct.pack("<I", len(b)) + b)

    def i(v: int) -> bytes:
        return b"K" + bytes([v]) if 0 <= v < 256 else b"J" + struct.pack("<i", v)

    arr = (b"cnumpy.core.multiarray\n_reconstruct\n" + b"cnumpy\nndarray\n" + i(0) + b"\x85"
           + s(b"b") + b"\x87R"
           + b"(" + i(1) + i(data.shape[0]) + i(data.shape[1]) + b"\x86"
           + b"cnumpy\ndtype\n" + s(b"u1") + i(0) + i(1) + b"\x87R"
           + b"(" + i(3) + s(b"|") + b"NNN" + i(-1) + i(-1) + i(0) + b"tb"
           + b"\x89" + s(data.tobytes()) + b"tb")
    labs = b"](" + b"".join(i(v) for v in labels) + b"e"
    return (b"\x80\x02}(" + s(b"batch_label") + s(b"training batch 1 of 5")
            + s(b"labels") + labs + s(b"data") + arr + b"u.")


def test_cifar_python2_style_pickle_is_read(tmp_path):
    data, labels = _cifar_arrays(3, 7)
    p = tmp_path / "data_batch_1"
    p.write_bytes(_py2_style_batch(data, labels))
    x, y = D.read_cifar_python_batch(p)
    np.testing.assert_array_equal(x.reshape(3, -1), data)
    assert y.tolist() == labels


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _EvalEvil:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


def test_malicious_pickles_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    evil = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"x": _Evil(marker)}
    p = tmp_path / "data_batch_1"
    p.write_bytes(pickle.dumps(evil, protocol=2))
    with pytest.raises(ValueError, match=r"data_batch_1.*(posix|nt)\.system.*not allowed"):
        D.read_cifar_python_batch(p)
    assert not marker.exists()
    with pytest.raises(pickle.UnpicklingError, match=r"builtins?__?\.eval.*not allowed"):
        D.restricted_loads(pickle.dumps(_EvalEvil(), protocol=2))
    for proto in (0, 2, 4, 5):
        with pytest.raises(pickle.UnpicklingError):
            D.restricted_loads(pickle.dumps(_Evil(marker), protocol=proto))
    assert not marker.exists()
    # numpy object arrays could smuggle arbitrary objects: refused at the dtype
    with pytest.raises(pickle.UnpicklingError, match="dtype"):
        D.restricted_loads(pickle.dumps(np.array([1, "a"], dtype=object), protocol=2))
    # the allowed _codecs.encode only encodes latin1 strings
    bad = b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x05\x00\x00\x00rot13\x86R."
    with pytest.raises(pickle.UnpicklingError, match="latin1"):
        D.restricted_loads(bad)
    # BUILD aimed at an allowed callable (to set attributes on it) is refused
    with pytest.raises(pickle.UnpicklingError, match="BUILD"):
        D.restricted_loads(b"\x80\x02cnumpy\ndtype\nN}X\x08\x00\x00\x00__code__K\x01s\x86b.")
    # _reconstruct only builds plain ndarrays
    with pytest.raises(pickle.UnpicklingError, match="subtype"):
        D.restricted_loads(b"\x80\x02cnumpy.core.multiarray\n_reconstruct\nK\x00K\x00\x85U\x01b\x87R.")
    # a well-formed pickle that is not a batch
    p.write_bytes(pickle.dumps({b"data": [1, 2], b"labels": [0]}, protocol=2))
    with pytest.raises(ValueError, match=r"uint8 array of shape \(N, 3072\)"):
        D.read_cifar_python_batch(p)
    p.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, protocol=2))
    with pytest.raises(ValueError, match="count mismatch"):
        D.read_cifar_python_batch(p)


def _write_binary_batches(d: Path, n=3):
    d.mkdir(parents=True)
    out = {}
    for i, name in enumerate([f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]):
        data, labels = _cifar_arrays(n, 100 + i)
        rec = np.concatenate([np.asarray(labels, np.uint8)[:, None], data], axis=1)
        (d / name).write_bytes(rec.tobytes())
        out[name.removesuffix(".bin")] = (data, labels)
    (d / "batches.meta.txt").write_text("\n".join(D.CIFAR10_CLASSES) + "\n")
    return out


def test_cifar_binary_batches(tmp_path):
    batches = _write_binary_batches(tmp_path / "cifar-10-batches-bin")
    for split in ("train", "test"):
        x, y = D.load_cifar10(tmp_path, split=split, dtype=np.uint8)
        ex, ey = _expected(batches, split)
        np.testing.assert_array_equal(x, ex)
        np.testing.assert_array_equal(y, ey)
    p = tmp_path / "cifar-10-batches-bin" / "test_batch.bin"
    raw = p.read_bytes()
    p.write_bytes(raw[:-100])
    with pytest.raises(ValueError, match=r"test_batch\.bin.*multiple of 3073.*got 9119 bytes.*truncated"):
        D.read_cifar_binary_batch(p)
    p.write_bytes(b"\x0a" + raw[1:])
    with pytest.raises(ValueError, match=r"record 0: label byte must be 0\.\.9, got 10"):
        D.read_cifar_binary_batch(p)
    (tmp_path / "cifar-10-batches-bin" / "data_batch_4.bin").unlink()
    with pytest.raises(FileNotFoundError, match="missing data_batch_4.bin"):
        D.load_cifar10(tmp_path, split="train")


def test_cifar_tar_archive_read_directly(tmp_path):
    batches = _write_python_batches(tmp_path / "src" / "cifar-10-batches-py")
    tar = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(tar, "w:gz") as tf:
        tf.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    x, y = D.load_cifar10(tar, split="train", dtype=np.uint8)
    ex, ey = _expected(batches, "train")
    np.testing.assert_array_equal(x, ex)
    np.testing.assert_array_equal(y, ey)


def test_cifar_not_found_message(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"download_cifar10.*cifar-10-python\.tar\.gz"):
        D.load_cifar10(tmp_path / "empty")
    with pytest.raises(ValueError, match="split"):
        D.load_cifar10(tmp_path / "empty", split="validation")


# --------------------------------------------------------------------------------------------
# image folders, zip archives, cache
# --------------------------------------------------------------------------------------------

def _write_folder(root: Path, classes=("cat", "dog"), per_class=3, size=(5, 4)):
    """PNG images (lossless) with known pixels; returns the expected (x uint8, y)."""
    rng = np.random.default_rng(1)
    xs, ys = [], []
    for label, c in enumerate(sorted(classes)):
        (root / c).mkdir(parents=True, exist_ok=True)
        for j in range(per_class):
            a = rng.integers(0, 256, size + (3,), dtype=np.uint8)
            Image.fromarray(a).save(root / c / f"{j:03d}.png")
            xs.append(a.transpose(2, 0, 1))
            ys.append(label)
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / ".hidden").mkdir()
    Image.fromarray(np.zeros(size + (3,), np.uint8)).save(root / ".hidden" / "x.png")
    return np.stack(xs), np.asarray(ys)


def _zip_dir(src: Path, zpath: Path, arc_prefix: str = ""):
    with zipfile.ZipFile(zpath, "w") as zf:
        for p in sorted(src.rglob("*")):
            zf.write(p, arc_prefix + p.relative_to(src).as_posix())
    return zpath


def test_image_folder_directory(tmp_path):
    ex, ey = _write_folder(tmp_path / "imgs")
    x, y, classes = D.load_image_folder(tmp_path / "imgs", dtype=np.uint8, cache=False)
    assert classes == ["cat", "dog"]
    np.testing.assert_array_equal(x, ex)
    np.testing.assert_array_equal(y, ey)
    xf, _, _ = D.load_image_folder(tmp_path / "imgs", cache=False)
    assert xf.dtype == np.float32
    np.testing.assert_allclose(xf * 255.0, ex, atol=1e-4)
    xl, _, _ = D.load_image_folder(tmp_path / "imgs", mode="L", size=(2, 3), cache=False)
    assert xl.shape == (6, 1, 2, 3)
    _, yd, cd = D.load_image_folder(tmp_path / "imgs", classes=["dog"], cache=False)
    assert cd == ["dog"] and yd.tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match=r"class folders not found.*\['bird'\]"):
        D.load_image_folder(tmp_path / "imgs", classes=["cat", "bird"], cache=False)
    Image.fromarray(np.zeros((9, 9, 3), np.uint8)).save(tmp_path / "imgs" / "dog" / "999.png")
    with pytest.raises(ValueError, match=r"999\.png.*expected \(C, H, W\) = \(3, 5, 4\).*got \(3, 9, 9\)"):
        D.load_image_folder(tmp_path / "imgs", cache=False)


def test_image_folder_zip_and_cache_round_trip(tmp_path, monkeypatch):
    ex, ey = _write_folder(tmp_path / "imgs")
    z = _zip_dir(tmp_path / "imgs", tmp_path / "photos.zip", arc_prefix="photos/")
    cache = Path(os.environ["CNNLAB_CACHE"]) / "decoded"
    x, y, classes = D.load_image_folder(z, dtype=np.uint8)  # auto-descends into photos/
    assert classes == ["cat", "dog"]
    np.testing.assert_array_equal(x, ex)
    np.testing.assert_array_equal(y, ey)
    files = list(cache.glob("photos-*.npz"))
    assert len(files) == 1 and _no_temp_files(cache)
    with np.load(files[0], allow_pickle=False) as npz:  # plain arrays, no pickle needed
        np.testing.assert_array_equal(npz["x"], ex)
        assert npz["classes"].tolist() == ["cat", "dog"]

    # second call comes from the cache: decoding would fail loudly
    def boom(*a, **k):
        raise AssertionError("decoded again despite the cache")
    monkeypatch.setattr(folder_mod, "_decode_all", boom)
    x2, y2, c2 = D.load_image_folder(z)
    np.testing.assert_allclose(x2 * 255.0, ex, atol=1e-4)
    assert c2 == classes and y2.dtype == np.int64
    monkeypatch.undo()
    monkeypatch.setenv("CNNLAB_CACHE", str(tmp_path / "cache"))
    xs, _, cs = D.load_image_folder(z, subdir="photos/", dtype=np.uint8, cache=False)
    assert cs == ["cat", "dog"]
    np.testing.assert_array_equal(xs, ex)

    # the archive changes (new mtime and size): the cache key changes and it is rebuilt
    ex2, _ = _write_folder(tmp_path / "imgs2", per_class=2)
    _zip_dir(tmp_path / "imgs2", z, arc_prefix="photos/")
    os.utime(z, ns=(1_000_000_000, 1_000_000_000))
    x3, _, _ = D.load_image_folder(z, dtype=np.uint8)
    np.testing.assert_array_equal(x3, ex2)

    # a corrupt cache file is ignored (warning) and rewritten
    for f in cache.glob("photos-*.npz"):
        f.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable cache"):
        x4, _, _ = D.load_image_folder(z, dtype=np.uint8)
    np.testing.assert_array_equal(x4, ex2)
    # an explicit cache directory
    D.load_image_folder(z, cache=tmp_path / "mycache")
    assert len(list((tmp_path / "mycache").glob("*.npz"))) == 1


def test_cifar_layout_zip_generated(tmp_path):
    """A tiny zip with the cifar10/{train,test}/{class}/NNNN.jpg layout of the shared archive."""
    zpath = tmp_path / "cifar10-mini.zip"
    rng = np.random.default_rng(3)
    with zipfile.ZipFile(zpath, "w") as zf:
        for split in ("train", "test"):
            for c in reversed(D.CIFAR10_CLASSES):  # archive order must not matter
                for j in range(2):
                    buf = io.BytesIO()
                    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, "JPEG")
                    zf.writestr(f"cifar10/{split}/{c}/{j:04d}.jpg", buf.getvalue())
    x, y = D.load_cifar10(zpath, split="test")
    assert x.shape == (20, 3, 32, 32) and x.dtype == np.float32
    assert y.tolist() == [k for k in range(10) for _ in range(2)]
    assert D.find_cifar10(tmp_path, "train") == ("zip", zpath, "cifar10/train")


@needs_cifar_zip
def test_real_cifar_zip_members(tmp_path):
    kind, loc, sub = D.find_cifar10(CIFAR_ZIP, "train")
    assert (kind, loc, sub) == ("zip", CIFAR_ZIP, "cifar10/train")
    assert D.find_cifar10(CIFAR_ZIP.parent, "test")[2] == "cifar10/test"
    # decode a few real members only (not all 60,000): 2 per class of the test split
    small = tmp_path / "real-few.zip"
    with zipfile.ZipFile(CIFAR_ZIP) as src, zipfile.ZipFile(small, "w") as dst:
        for c in D.CIFAR10_CLASSES:
            for j in range(2):
                name = f"cifar10/test/{c}/{j:04d}.jpg"
                data = src.read(name)
                assert data[:2] == b"\xff\xd8"  # JPEG
                dst.writestr(name, data)
    x, y = D.load_cifar10(small, split="test", cache=False)
    assert x.shape == (20, 3, 32, 32) and np.bincount(y).tolist() == [2] * 10
    assert 0.15 < x.mean() < 0.85 and x.std() > 0.05
    one = D.load_image(io.BytesIO(zipfile.ZipFile(CIFAR_ZIP).read("cifar10/train/ship/0000.jpg")))
    assert one.shape == (3, 32, 32)


# --------------------------------------------------------------------------------------------
# load_image / save_image
# --------------------------------------------------------------------------------------------

def test_load_image_modes_and_resize(tmp_path):
    a = np.random.default_rng(0).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    Image.fromarray(a).save(tmp_path / "rgb.png")
    x = D.load_image(tmp_path / "rgb.png")
    assert x.shape == (3, 6, 8) and x.dtype == np.float32
    np.testing.assert_allclose(x * 255.0, a.transpose(2, 0, 1), atol=1e-4)
    assert D.load_image(tmp_path / "rgb.png", mode="L").shape == (1, 6, 8)
    assert D.load_image(tmp_path / "rgb.png", size=4).shape == (3, 4, 4)
    assert D.load_image(tmp_path / "rgb.png", size=(3, 5), mode=None).shape == (3, 3, 5)
    Image.fromarray(a[..., 0]).save(tmp_path / "gray.png")
    assert D.load_image(tmp_path / "gray.png", mode=None).shape == (1, 6, 8)
    assert D.load_image(tmp_path / "gray.png").shape == (3, 6, 8)
    Image.fromarray(np.dstack([a, a[..., :1]])).save(tmp_path / "rgba.png")
    assert D.load_image(tmp_path / "rgba.png", mode=None).shape == (4, 6, 8)
    w16 = (np.arange(48, dtype=np.uint16).reshape(6, 8) * 1365)
    Image.fromarray(w16).save(tmp_path / "g16.png")
    g = D.load_image(tmp_path / "g16.png", mode=None)
    np.testing.assert_allclose(g[0], w16 / 65535.0, atol=1e-6)
    with pytest.raises(ValueError, match="mode"):
        D.load_image(tmp_path / "rgb.png", mode="CMYK")
    # save_image round trip (lossless PNG), atomic
    out = D.save_image(tmp_path / "out.png", x)
    np.testing.assert_allclose(D.load_image(out), x, atol=1e-6)
    assert _no_temp_files(tmp_path)
    if (IMAGES_DIR / "chelsea.png").is_file():
        c = D.load_image(IMAGES_DIR / "chelsea.png")
        assert c.shape == (3, 300, 451) and 0.0 <= c.min() and c.max() <= 1.0


# --------------------------------------------------------------------------------------------
# downloads (file:// URLs and a monkeypatched urlopen; never the network)
# --------------------------------------------------------------------------------------------

def test_download_url_checksum(tmp_path):
    src = tmp_path / "payload.bin"
    src.write_bytes(b"hello cnnlab" * 1000)
    good = hashlib.md5(src.read_bytes()).hexdigest()
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    dl = tmp_path / "dl"
    p = D.download_url(src.as_uri(), dl / "payload.bin", md5=good, sha256=sha)
    assert p.read_bytes() == src.read_bytes() and _no_temp_files(dl)
    with pytest.raises(D.ChecksumError, match=r"md5 mismatch: expected 0{32}, got " + good):
        D.download_url(src.as_uri(), dl / "other.bin", md5="0" * 32)
    assert not (dl / "other.bin").exists() and _no_temp_files(dl)
    # a wrong file already in place is replaced; a verified one is kept without fetching
    (dl / "payload.bin").write_bytes(b"stale")
    D.download_url(src.as_uri(), dl / "payload.bin", md5=good)
    assert _md5(dl / "payload.bin") == good
    D.download_url("file:///does/not/exist", dl / "payload.bin", md5=good)
    # the second mirror is used when the first one fails
    D.download_url(["file:///does/not/exist", src.as_uri()], dl / "m.bin", md5=good)
    assert _md5(dl / "m.bin") == good


def test_failed_download_leaves_no_partial_file(tmp_path, monkeypatch):
    class Flaky(io.BytesIO):
        def read(self, n=-1):
            if self.tell() >= 5000:
                raise ConnectionResetError("connection reset by peer")
            return super().read(min(n, 1000) if n and n > 0 else 1000)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=None: Flaky(b"x" * 100000))
    dest = tmp_path / "dl" / "big.bin"
    with pytest.raises(D.DownloadError, match=r"connection reset.*download https://example\.invalid/big\.bin elsewhere.*put it at"):
        D.download_url("https://example.invalid/big.bin", dest, md5="1" * 32)
    assert not dest.exists() and _no_temp_files(dest.parent)

    def offline(url, timeout=None):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(D.DownloadError) as info:
        D.download_mnist(tmp_path / "mnist")
    msg = str(info.value)
    assert "ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz" in msg
    assert "storage.googleapis.com/cvdf-datasets/mnist" in msg
    assert "f68b3c2dcbeaaa9fbdd348bbdeb94873" in msg and str(tmp_path / "mnist") in msg
    assert not isinstance(info.value, D.ChecksumError)
    assert list((tmp_path / "mnist").iterdir()) == []
    with pytest.raises(D.DownloadError, match=r"cs\.toronto\.edu/~kriz/cifar-10-python\.tar\.gz.*c58f30108f718f92721af3b95e74349a"):
        D.download_cifar10(tmp_path / "c10")
    assert not any(p.is_file() for p in (tmp_path / "c10").rglob("*"))


@needs_mnist
def test_download_mnist_from_file_mirror(tmp_path):
    """The shared test files are the official ones (md5 passes); the shared training files are
    shortened, so they fail the official md5 and must not be left behind."""
    dest = tmp_path / "mnist"
    with pytest.raises(D.ChecksumError, match=r"(?s)2 of 4 files failed.*train-images-idx3-ubyte\.gz.*expected f68b3c2dcbeaaa9fbdd348bbdeb94873, got c78651b59434abca47ceeb4122b408ce"):
        D.download_mnist(dest, mirrors=[MNIST_DIR.as_uri() + "/"])
    assert sorted(p.name for p in dest.iterdir()) == ["t10k-images-idx3-ubyte.gz",
                                                      "t10k-labels-idx1-ubyte.gz"]
    x, y = D.load_mnist(dest, split="test")
    assert x.shape == (10000, 1, 28, 28)


def test_download_cifar10_and_safe_extraction(tmp_path):
    _write_python_batches(tmp_path / "src" / "cifar-10-batches-py")
    tar = tmp_path / "served" / "cifar-10-python.tar.gz"
    tar.parent.mkdir()
    with tarfile.open(tar, "w:gz") as tf:
        tf.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    md5 = _md5(tar)
    out = D.download_cifar10(tmp_path / "data", url=tar.as_uri(), md5=md5)
    assert out == tmp_path / "data" / "cifar-10-batches-py"
    assert D.load_cifar10(out, split="test")[0].shape == (4, 3, 32, 32)
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["cifar-10-batches-py",
                                                                     "cifar-10-python.tar.gz"]
    with pytest.raises(D.ChecksumError):
        D.download_cifar10(tmp_path / "data2", url=tar.as_uri())  # the official md5 fails
    assert not (tmp_path / "data2" / "cifar-10-python.tar.gz").exists()

    # path traversal, absolute paths and links are refused before anything is extracted
    def evil_tar(name, **kind):
        p = tmp_path / f"evil{len(list(tmp_path.glob('evil*')))}.tar"
        with tarfile.open(p, "w") as tf:
            info = tarfile.TarInfo("cifar-10-batches-py/ok.txt")
            info.size = 2
            tf.addfile(info, io.BytesIO(b"ok"))
            info = tarfile.TarInfo(name)
            if kind.get("link"):
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tf.addfile(info)
            else:
                info.size = 4
                tf.addfile(info, io.BytesIO(b"evil"))
        return p

    for name, kind, pattern in (("../escaped.txt", {}, "path traversal"),
                                ("cifar-10-batches-py/../../escaped.txt", {}, "path traversal"),
                                ("/tmp/abs-escaped.txt", {}, "path traversal"),
                                ("cifar-10-batches-py/link", {"link": True}, "link")):
        target = tmp_path / "x" / "y"
        with pytest.raises(ValueError, match=pattern):
            D.safe_extract_tar(evil_tar(name, **kind), target)
        assert not (tmp_path / "x" / "escaped.txt").exists()
        assert not (target / "cifar-10-batches-py" / "ok.txt").exists()
    assert not Path("/tmp/abs-escaped.txt").exists()
    bad = evil_tar("../escaped.txt")
    with pytest.raises(ValueError, match="path traversal"):
        D.download_cifar10(tmp_path / "data3", url=bad.as_uri(), md5=_md5(bad))
    assert not (tmp_path / "data3" / "cifar-10-batches-py").exists()
    assert not [p for p in (tmp_path / "data3").iterdir() if p.is_dir()]  # temp dir removed


# --------------------------------------------------------------------------------------------
# batching
# --------------------------------------------------------------------------------------------

def test_iterate_minibatches():
    x = np.arange(10 * 2).reshape(10, 2)
    y = np.arange(10)
    batches = list(D.iterate_minibatches(x, y, 3, shuffle=True, rng=0))
    assert [len(b[0]) for b in batches] == [3, 3, 3, 1]
    seen = np.concatenate([yb for _, yb in batches])
    assert sorted(seen.tolist()) == list(range(10)) and seen.tolist() != list(range(10))
    for xb, yb in batches:
        np.testing.assert_array_equal(xb[:, 0] // 2, yb)  # x and y stay aligned
    again = list(D.iterate_minibatches(x, y, 3, rng=0))
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(batches, again))
    ordered = list(D.iterate_minibatches(x, y, 4, shuffle=False, drop_last=True))
    assert [b[1].tolist() for b in ordered] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert all(yb is None for _, yb in D.iterate_minibatches(x, None, 5))
    with pytest.raises(ValueError, match="same number of samples"):
        list(D.iterate_minibatches(x, y[:5], 2))
    with pytest.raises(ValueError, match="batch_size"):
        list(D.iterate_minibatches(x, y, 0))


def test_dataloader_and_split():
    x = np.random.default_rng(0).random((10, 1, 4, 4)).astype(np.float32)
    y = np.arange(10)
    loader = D.DataLoader(x, y, batch_size=4, transform=lambda xb, rng: D.random_flip(xb, rng), seed=1)
    assert len(loader) == 3 and len(D.DataLoader(x, y, 4, drop_last=True)) == 2
    e1 = [yb.tolist() for _, yb in loader]
    e2 = [yb.tolist() for _, yb in loader]
    assert sorted(sum(e1, [])) == list(range(10)) and e1 != e2  # reshuffled every epoch
    again = D.DataLoader(x, y, batch_size=4, transform=lambda xb, rng: D.random_flip(xb, rng), seed=1)
    assert [yb.tolist() for _, yb in again] == e1
    xtr, ytr, xva, yva = D.train_val_split(x, y, 0.3, rng=0)
    assert len(xtr) == 7 and len(xva) == 3 and sorted(ytr.tolist() + yva.tolist()) == list(range(10))
    np.testing.assert_array_equal(xtr, x[ytr])
    assert len(D.train_val_split(x, y, 2)[2]) == 2


# --------------------------------------------------------------------------------------------
# normalization and augmentation
# --------------------------------------------------------------------------------------------

def test_channel_stats_and_standardize():
    rng = np.random.default_rng(0)
    x = (rng.random((50, 3, 6, 6)) * [[[1]], [[2]], [[4]]] + [[[0]], [[1]], [[-3]]]).astype(np.float32)
    mean, std = D.channel_stats(x, chunk=7)
    np.testing.assert_allclose(mean, x.mean(axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(std, x.std(axis=(0, 2, 3)), rtol=1e-5)
    assert mean.dtype == np.float32 and mean.shape == (3,)
    z = D.standardize(x, mean, std)
    assert z.dtype == np.float32 and z.shape == x.shape
    np.testing.assert_allclose(z.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=(0, 2, 3)), 1, atol=1e-4)
    np.testing.assert_allclose(D.destandardize(z, mean, std), x, atol=1e-5)
    np.testing.assert_allclose(D.standardize(x[0], mean, std), z[0], atol=1e-6)  # one (C, H, W) image
    u8 = rng.integers(0, 256, (4, 1, 3, 3), dtype=np.uint8)
    assert D.standardize(u8, 0.0, 255.0).dtype == np.float32
    with pytest.raises(ValueError, match=r"expected shape \(3,\), got \(2,\)"):
        D.standardize(x, [0, 0], [1, 1])
    with pytest.raises(ValueError, match="positive"):
        D.standardize(x, 0, [1, 0, 1])


def test_random_crop():
    rng = np.random.default_rng(0)
    x = rng.random((16, 3, 8, 8)).astype(np.float32)
    same = D.random_crop(x, padding=0, rng=1)
    np.testing.assert_array_equal(same, x)
    assert same is not x
    out = D.random_crop(x, padding=4, rng=2)
    assert out.shape == x.shape and out.dtype == x.dtype
    # each crop is the window of the padded image at the offsets drawn from the same seed
    g = np.random.default_rng(2)
    oy, ox = g.integers(0, 9, 16), g.integers(0, 9, 16)
    padded = np.pad(x, ((0, 0), (0, 0), (4, 4), (4, 4)))
    for i in range(16):
        np.testing.assert_array_equal(out[i], padded[i, :, oy[i]:oy[i] + 8, ox[i]:ox[i] + 8])
    assert len(set(zip(oy.tolist(), ox.tolist()))) > 8  # offsets differ per image
    small = D.random_crop(x, size=5, padding=0, rng=3)
    assert small.shape == (16, 3, 5, 5)
    assert D.random_crop(x, size=(4, 6), padding=(1, 2), rng=3, pad_mode="reflect").shape == (16, 3, 4, 6)
    with pytest.raises(ValueError, match="larger than the padded image"):
        D.random_crop(x, size=20, padding=2)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        D.random_crop(x[0])


def test_random_flip():
    x = np.random.default_rng(0).random((64, 2, 3, 5)).astype(np.float32)
    once = D.random_flip(x, rng=5)
    twice = D.random_flip(once, rng=5)
    np.testing.assert_array_equal(twice, x)
    flipped = np.array([not np.array_equal(a, b) for a, b in zip(once, x)])
    assert 16 < flipped.sum() < 48
    np.testing.assert_array_equal(once[flipped], x[flipped][..., ::-1])
    np.testing.assert_array_equal(once[~flipped], x[~flipped])
    np.testing.assert_array_equal(D.random_flip(x, rng=0, p=1.0), D.flip_horizontal(x))
    np.testing.assert_array_equal(D.random_flip(x, rng=0, p=0.0), x)
    np.testing.assert_array_equal(D.flip_horizontal(D.flip_horizontal(x)), x)


# --------------------------------------------------------------------------------------------
# packaging and layering
# --------------------------------------------------------------------------------------------

def test_data_package_imports_no_model_code():
    """cnnlab.data may import only numpy, Pillow, the standard library and itself."""
    import sys
    allowed_top = {"numpy", "PIL", "__future__"} | set(sys.stdlib_module_names)
    for path in Path(D.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                tops = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: must stay inside cnnlab.data
                    assert node.level == 1, f"{path.name} imports outside cnnlab.data"
                    continue
                tops = [node.module.split(".")[0]]
            else:
                continue
            for t in tops:
                assert t in allowed_top, f"{path.name} imports {t}"


def test_bundled_files_are_package_data():
    import tomllib
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = cfg["tool"]["setuptools"]["package-data"]["cnnlab"]
    assert "assets/**/*" in globs
    names = sorted(p.name for p in D.bundled_mnist_dir().iterdir())
    assert names == ["README.md", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
                     "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]
    total = sum(p.stat().st_size for p in D.bundled_mnist_dir().iterdir())
    assert total < 3_000_000
