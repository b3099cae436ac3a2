"""Hostile files: every crafted file fails with a clear error naming it, in bounded time and
memory.

Each bomb is built on the fly (tests/_hostile.py, a few MB at most) and loaded in a fresh
subprocess whose peak RSS (imports included, ~50 MB) and wall time are asserted; the
subprocess's address space is capped at 3 GiB, so a regression fails instead of eating the
machine. Before the fixes these files took up to 42 s (one ran past 60 s) and 4.4 GB each.
"""
import io
import os
import pickle
import re
import time
import zipfile

import numpy as np
import pytest
from _hostile import (MiB, checkpoint_with_big_entry, checkpoint_with_deep_json,
                      checkpoint_with_duplicate, checkpoint_with_huge_shape, cifar_dir_with,
                      corrupt_zip, float_tiff_with_nan, folder_zip_with, folder_zip_with_bomb,
                      gzip_zeros, idx_gzip_declared, idx_header, measure, mnist_dir_with_gzip_bomb,
                      npy_bytes, pickle_ndarray_call, pickle_shared_lists, png_bytes, raw_zip,
                      small_checkpoint, small_png, stored, truncated_png)

import cnnlab as cl
import cnnlab.data as D
from cnnlab.training import CheckpointError, read_checkpoint

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
MAX_SECONDS, MAX_MB = 10.0, 300.0


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


def _png_file(d, name, data):
    return _write(d / name, data)


# (id, builder(tmp_path) -> statement, expected 'Type: message' regex)
BOMBS = [
    ("checkpoint entry inflating to 3 GiB",
     lambda d: (checkpoint_with_big_entry(d / "c.npz"), f"cl.load_model({str(d / 'c.npz')!r})")[1],
     r"CheckpointError: .*c\.npz.*decompression bomb"),
    # the same file with the compression-ratio guard lifted: the comparison with the
    # architecture must still refuse it before any data is read
    ("checkpoint entry of 3 GiB, ratio guard lifted",
     lambda d: (checkpoint_with_big_entry(d / "c.npz"),
                "import cnnlab.training.safe_npz as S; S.MAX_RATIO = 10**9; "
                f"cl.load_model({str(d / 'c.npz')!r})")[1],
     r"CheckpointError: .*c\.npz: weight 'conv2d\.w': the architecture expects float32 "
     r"\(4, 1, 3, 3\), the file holds float32 \(805306368,\)"),
    ("checkpoint shape 1e12",
     lambda d: (checkpoint_with_huge_shape(d / "c.npz"), f"cl.load_model({str(d / 'c.npz')!r})")[1],
     r"CheckpointError: .*c\.npz.*declares float32 \(1000000000000,\)"),
    ("checkpoint shape 1e12, read_checkpoint",
     lambda d: (checkpoint_with_huge_shape(d / "c.npz"),
                f"cl.training.read_checkpoint({str(d / 'c.npz')!r})")[1],
     r"CheckpointError: .*c\.npz.*declares float32 \(1000000000000,\)"),
    ("checkpoint JSON 200k deep",
     lambda d: (checkpoint_with_deep_json(d / "c.npz"), f"cl.load_model({str(d / 'c.npz')!r})")[1],
     r"CheckpointError: .*c\.npz: corrupt metadata \(bad JSON"),
    ("MNIST gzip inflating to 2 GiB",
     lambda d: f"D.load_mnist({mnist_dir_with_gzip_bomb(str(d / 'm'))!r})",
     r"ValueError: .*train-images-idx3-ubyte\.gz: IDX file longer than its header says"),
    ("IDX gzip declaring 900 MiB (zeros)",
     lambda d: (idx_gzip_declared(d / "x.gz", 900 * MiB), f"D.read_idx({str(d / 'x.gz')!r})")[1],
     r"ValueError: .*x\.gz: gzip data inflates more than 100:1"),
    ("IDX gzip declaring 2 GiB",
     lambda d: (_write(d / "x.gz", gzip_zeros(idx_header((2**31 // 784 + 1, 28, 28)), 0)),
                f"D.read_idx({str(d / 'x.gz')!r})")[1],
     r"ValueError: .*x\.gz: the IDX header declares shape \(2739138, 28, 28\).*max_bytes"),
    ("CIFAR pickle calling numpy.ndarray",
     lambda d: f"D.load_cifar10({cifar_dir_with(str(d), pickle_ndarray_call())!r}, split='test')",
     r"ValueError: .*test_batch: not a valid CIFAR python batch.*numpy\.ndarray may not be "
     r"called directly"),
    ("pickle of shared lists, depth 31",
     lambda d: f"D.load_cifar10({cifar_dir_with(str(d), pickle_shared_lists(31))!r}, split='test')",
     r"ValueError: .*test_batch: not a CIFAR python batch: expected a dict, got list"),
    ("image-folder zip member of 1.5 GiB",
     lambda d: (folder_zip_with_bomb(d / "f.zip"),
                f"D.load_image_folder({str(d / 'f.zip')!r}, cache=False)")[1],
     r"ValueError: load_image_folder: .*f\.zip:imgs/a/0\.png is 1,610,612,809 bytes"),
    ("PNG bomb 400 MP",
     lambda d: f"D.load_image({_png_file(d, 'b.png', png_bytes(20000, 20000))!r})",
     r"ValueError: load_image: cannot read image .*b\.png: .*400000000 pixels"),
    ("PNG of 100 MP (Pillow only warns)",
     lambda d: f"D.load_image({_png_file(d, 'b.png', png_bytes(10000, 10000))!r})",
     r"ValueError: load_image: cannot read image .*b\.png: 10000x10000 = 100,000,000 pixels"),
    ("PNG bomb in an image-folder zip",
     lambda d: (folder_zip_with(d / "f.zip", png_bytes(20000, 20000)),
                f"D.load_image_folder({str(d / 'f.zip')!r}, cache=False)")[1],
     r"ValueError: load_image_folder: cannot decode .*f\.zip/imgs/a/0\.png: .*pixels"),
]


@pytest.mark.parametrize("name,build,expected", BOMBS, ids=[b[0] for b in BOMBS])
def test_bomb_bounded_time_and_memory(tmp_path, name, build, expected):
    statement = build(tmp_path)
    assert sum(f.stat().st_size for f in tmp_path.rglob("*") if f.is_file()) < 8 * MiB
    r = measure(statement, REPO, timeout=60, address_space_gb=3)
    assert r["outcome"] != "timeout", f"{name}: ran past 60 s"
    assert re.search(expected, r["outcome"], re.S), f"{name}: {r['outcome']}"
    assert r["seconds"] < MAX_SECONDS, f"{name}: {r['seconds']:.1f} s"
    assert r["peak_mb"] < MAX_MB, f"{name}: peak RSS {r['peak_mb']:.0f} MB"


def test_the_harness_sees_memory_and_errors():
    """The measurement itself can fail a bomb: 400 MB allocated shows as a 400 MB peak."""
    r = measure("a = np.ones(400 << 20, np.uint8); raise ValueError('boom')", REPO)
    assert r["peak_mb"] > 400 and r["outcome"] == "ValueError: boom"


# ----- checkpoints, in process -----------------------------------------------------------------
def test_duplicate_entry_is_an_error(tmp_path):
    checkpoint_with_duplicate(tmp_path / "d.npz")
    for load in (cl.load_model, read_checkpoint):
        with pytest.raises(CheckpointError, match=r"d\.npz.*duplicate entry 'weight\.0'"):
            load(tmp_path / "d.npz")


def test_text_file_is_not_a_cnnlab_model_file(tmp_path):
    for name, content in [("notes.txt", b"epoch 3: loss 0.12\n"), ("model.npz", b"")]:
        p = tmp_path / name
        p.write_bytes(content)
        with pytest.raises(CheckpointError) as e:
            cl.load_model(p)
        msg = str(e.value)
        assert "not a cnnlab model file" in msg and str(p) in msg
        assert "allow_pickle" not in msg and "pickle" not in msg.lower()
    with pytest.raises(CheckpointError, match="not a cnnlab model file: it is a directory"):
        cl.load_model(tmp_path)


def test_object_entry_refused_without_unpickling(tmp_path):
    entries = small_checkpoint(tmp_path / "c.npz")
    entries["weight.0"] = npy_bytes(np.array([{"evil": 1}], dtype=object))
    p = _write(tmp_path / "c.npz", raw_zip([stored(k + ".npy", v) for k, v in entries.items()]))
    with pytest.raises(CheckpointError, match=r"weight\.0.*dtype object refused"):
        cl.load_model(p)


def test_entry_header_checked_against_metadata_before_data(tmp_path):
    """A header that disagrees with the metadata (here: more data than it says) is refused."""
    entries = small_checkpoint(tmp_path / "c.npz")
    arr = np.load(io.BytesIO(entries["weight.0"]))
    entries["weight.0"] = npy_bytes(np.zeros((arr.size * 1000,), arr.dtype))
    p = _write(tmp_path / "c.npz", raw_zip([stored(k + ".npy", v) for k, v in entries.items()]))
    with pytest.raises(CheckpointError, match=r"weight 'conv2d\.w' is float32 \(36000,\) but "
                                              r"the metadata says <f4 \(4, 1, 3, 3\)"):
        cl.load_model(p)


def test_header_disagreeing_with_member_size(tmp_path):
    entries = small_checkpoint(tmp_path / "c.npz")
    header = npy_bytes(np.zeros((4, 1, 3, 3), np.float32))[:128]
    entries["weight.0"] = header + bytes(8)  # header says 144 bytes of data, 8 are there
    p = _write(tmp_path / "c.npz", raw_zip([stored(k + ".npy", v) for k, v in entries.items()]))
    with pytest.raises(CheckpointError, match=r"declares float32 \(4, 1, 3, 3\) \(144 bytes of "
                                              r"data\) but the entry holds 8 bytes"):
        cl.load_model(p)


def test_deeply_nested_architecture_is_a_checkpoint_error(tmp_path):
    import json
    entries = small_checkpoint(tmp_path / "c.npz")
    meta = json.loads(np.load(io.BytesIO(entries["meta"])).tobytes())
    for depth in (400, 5000):  # past Python's recursion limit in deserialize / in json
        meta["architecture"] = "@"
        arch = ('{"class": "Sequential", "config": {"layers": [' * depth
                + '{"class": "ReLU", "config": {}}' + "]}}" * depth)
        text = json.dumps(meta).replace('"@"', arch)
        entries["meta"] = npy_bytes(np.frombuffer(text.encode(), np.uint8))
        p = _write(tmp_path / "c.npz", raw_zip([stored(k + ".npy", v) for k, v in entries.items()]))
        with pytest.raises(CheckpointError, match=r"c\.npz: (cannot rebuild the architecture|"
                                                  r"corrupt metadata).*RecursionError"):
            cl.load_model(p)


# ----- the restricted unpickler ----------------------------------------------------------------
ARRAYS = [np.arange(12, dtype=np.uint8).reshape(3, 4), np.linspace(-1, 1, 6, dtype=np.float32),
          np.asfortranarray(np.arange(6, dtype=np.int64).reshape(2, 3)),
          np.arange(5, dtype=">f8"), np.array([True, False]), np.array([b"ab", b"c"]),
          np.array(["x", "yz"]), np.zeros((0, 3), np.int16), np.array(7, np.int32)]


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_numpys_own_pickles_round_trip(protocol):
    """Whatever NumPy itself writes for a plain array (any protocol) loads identically."""
    obj = {b"data": ARRAYS, "t": tuple(ARRAYS[:2]), "n": [1, 2.5, None, True, "s"]}
    got = D.restricted_loads(pickle.dumps(obj, protocol=protocol))
    for a, b in zip(ARRAYS, got[b"data"]):
        assert type(b) is np.ndarray and b.dtype == a.dtype and b.shape == a.shape
        np.testing.assert_array_equal(a, b)
        assert b.flags.writeable
    assert got[b"data"][2].flags.f_contiguous
    assert got["n"] == [1, 2.5, None, True, "s"] and isinstance(got["t"], tuple)


def _reconstruct(shape_ops: bytes, state: bytes) -> bytes:
    """A pickle of _reconstruct(ndarray, <shape_ops>, b'b') followed by BUILD <state>."""
    return (b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n" + shape_ops
            + b"C\x01b\x87R" + state + b"b.")


U1 = b"cnumpy\ndtype\nX\x02\x00\x00\x00u1\x89\x88\x87R(K\x03X\x01\x00\x00\x00|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"


def test_only_numpys_exact_construction_passes():
    ok = _reconstruct(b"K\x00\x85", b"(K\x01K\x02K\x03\x86" + U1 + b"\x89C\x06abcdef" + b"t")
    np.testing.assert_array_equal(D.restricted_loads(ok), np.frombuffer(b"abcdef", np.uint8).reshape(2, 3))
    bad = {
        # _reconstruct with a real shape would hand out uninitialised memory
        "shape (0,)": _reconstruct(b"J\x00\x10\x00\x00\x85", b"(K\x01K\x00\x85" + U1 + b"\x89C\x00t"),
        # payload shorter / longer than shape x itemsize
        "needs 6 bytes, the payload holds 5": _reconstruct(
            b"K\x00\x85", b"(K\x01K\x02K\x03\x86" + U1 + b"\x89C\x05abcdet"),
        "needs 6 bytes, the payload holds 7": _reconstruct(
            b"K\x00\x85", b"(K\x01K\x02K\x03\x86" + U1 + b"\x89C\x07abcdefgt"),
        # a state that is not NumPy's (a list payload, as for object arrays)
        "bytes payload": _reconstruct(b"K\x00\x85", b"(K\x01K\x01\x85" + U1 + b"\x89]t"),
        # a dtype state that changes more than the byte order (itemsize)
        "NumPy's own state": b"\x80\x02cnumpy\ndtype\nX\x02\x00\x00\x00u1\x85R(K\x03X\x01\x00\x00\x00|NNNK\x08K\x01K\x00tb.",
        # an array without its data
        "without its data": _reconstruct(b"K\x00\x85", b"N")[:-3] + b".",
        # numpy.ndarray(shape) called directly
        "may not be called directly": b"\x80\x02cnumpy\nndarray\nK\x05\x85\x85R.",
        # a structure that refers to itself
        "cycle": b"\x80\x02]q\x00h\x00a.",
    }
    for what, data in bad.items():
        with pytest.raises(pickle.UnpicklingError, match=re.escape(what)):
            D.restricted_loads(data)


def test_structure_check_is_linear():
    """2^31 paths through 31 shared lists (246 bytes): each list visited once."""
    data = pickle_shared_lists(31)
    assert len(data) < 300
    t = time.perf_counter()
    out = D.restricted_loads(data)
    assert time.perf_counter() - t < 1.0
    assert out[0] is out[1]  # sharing kept, not copied 2^40 times
    with pytest.raises(pickle.UnpicklingError, match="nested more than 32"):
        D.restricted_loads(pickle.dumps(_nest(40), protocol=2))


def _nest(depth):
    x = []
    for _ in range(depth):
        x = [x]
    return x


# ----- IDX ------------------------------------------------------------------------------------
def test_idx_gzip_limits(tmp_path):
    p = tmp_path / "x.gz"
    p.write_bytes(gzip_zeros(idx_header((10, 28, 28)), 10 * 784)[:-12])  # cut short
    with pytest.raises(ValueError, match=r"x\.gz: corrupt or truncated gzip data"):
        D.read_idx(p)
    p.write_bytes(gzip_zeros(idx_header((100, 28, 28)), 100 * 784))
    with pytest.raises(ValueError, match=r"more than max_bytes=1000"):
        D.read_idx(p, max_bytes=1000)
    assert D.read_idx(p).shape == (100, 28, 28)  # zeros compress 1000:1, but are small


# ----- images and zips -------------------------------------------------------------------------
def test_image_errors_name_the_file(tmp_path):
    t = _write(tmp_path / "t.png", truncated_png())
    with pytest.raises(ValueError, match=r"load_image: cannot read image .*t\.png: image file is truncated"):
        D.load_image(t)
    nan = tmp_path / "nan.tif"
    float_tiff_with_nan(nan)
    for mode in (None, "L", "RGB"):
        with pytest.raises(ValueError, match=r"nan\.tif: the float image holds 1 NaN/inf pixel"):
            D.load_image(nan, mode=mode)
    txt = _write(tmp_path / "notes.png", b"not an image")
    with pytest.raises(ValueError, match=r"notes\.png is not an image file Pillow can read"):
        D.load_image(txt)
    with pytest.raises(ValueError, match=r"<file object>|cannot read image"):
        D.load_image(io.BytesIO(b"garbage"))


def test_image_folder_errors_name_the_file(tmp_path):
    z = _write(tmp_path / "c.zip", corrupt_zip())
    with pytest.raises(ValueError, match=r"c\.zip:imgs/a/0\.png \(BadZipFile: Bad CRC-32"):
        D.load_image_folder(z, cache=False)
    folder_zip_with(tmp_path / "t.zip", truncated_png())
    with pytest.raises(ValueError, match=r"cannot decode .*t\.zip/imgs/a/0\.png: image file is truncated"):
        D.load_image_folder(tmp_path / "t.zip", cache=False)
    nan = tmp_path / "dir" / "a" / "0.tif"
    nan.parent.mkdir(parents=True)
    float_tiff_with_nan(nan)
    (tmp_path / "dir" / "b").mkdir()
    _write(tmp_path / "dir" / "b" / "1.png", small_png())
    with pytest.raises(ValueError, match=r"a/0\.tif: the float image holds 1 NaN"):
        D.load_image_folder(tmp_path / "dir", cache=False)
    # a zip whose central directory is damaged: named, not a raw BadZipFile
    raw = bytearray(raw_zip([stored("imgs/a/0.png", small_png()), stored("imgs/b/1.png", small_png(3))]))
    cd = raw.rfind(b"PK\x01\x02")
    raw[cd + 10] = 99  # compression method 99: unsupported
    _write(tmp_path / "m.zip", bytes(raw))
    with pytest.raises(ValueError, match=r"m\.zip"):
        D.load_image_folder(tmp_path / "m.zip", cache=False)


def test_tar_member_size_checked_before_reading(tmp_path):
    import tarfile
    p = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(p, "w:gz") as tf:
        for n in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
                  "data_batch_5", "test_batch"]:
            info = tarfile.TarInfo(f"cifar-10-batches-py/{n}")
            info.size = 4
            tf.addfile(info, io.BytesIO(b"abcd"))
    raw = bytearray(__import__("gzip").decompress(p.read_bytes()))
    # declare test_batch 3 GiB big in its header (octal size field, then fix the checksum)
    off = raw.find(b"cifar-10-batches-py/test_batch")
    raw[off + 124:off + 136] = b"%011o\0" % (3 << 30)
    raw[off + 148:off + 156] = b"        "
    raw[off + 148:off + 156] = b"%06o\0 " % sum(raw[off:off + 512])
    p.write_bytes(__import__("gzip").compress(bytes(raw)))
    with pytest.raises(ValueError, match=r"tar\.gz"):
        D.load_cifar10(p, split="test")


def test_real_data_still_loads_within_the_limits(tmp_path):
    """The limits accept the real files of ../shared/data: all of MNIST (idx.gz) is read,
    every member of the CIFAR-10 JPEG zip is within the per-file limit, and a subset of it
    decodes through the checked reader (test_data.py loads more of it)."""
    shared = os.path.join(REPO, "..", "shared", "data")
    if not os.path.isdir(os.path.join(shared, "mnist")):
        pytest.skip("no ../shared/data here (test_data.py covers the bundled subset)")
    for split, n in (("train", 24000), ("test", 10000)):
        x, y = D.load_mnist(os.path.join(shared, "mnist"), split)
        assert x.shape == (n, 1, 28, 28) and y.min() == 0 and y.max() == 9
    from cnnlab.data.folder import MAX_IMAGE_FILE_BYTES
    src = os.path.join(shared, "cifar10", "cifar10-jpeg.zip")
    with zipfile.ZipFile(src) as z:
        infos = [i for i in z.infolist() if not i.is_dir()]
        assert len(infos) >= 60000 and max(i.file_size for i in infos) <= MAX_IMAGE_FILE_BYTES
        picked = [i for i in infos if i.filename.startswith("cifar10/test/")][::50]
        small = tmp_path / "cifar-subset.zip"
        with zipfile.ZipFile(small, "w") as dst:
            for i in picked:
                dst.writestr(i.filename, z.read(i))
    x, y, classes = D.load_image_folder(small, subdir="cifar10/test", cache=False, dtype=np.uint8)
    assert x.shape == (len(picked), 3, 32, 32) and len(classes) == 10
