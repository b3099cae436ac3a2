"""Hostile files, built on the fly and small (a few MB at most), and a harness that loads one
in a fresh subprocess and reports its wall time and peak RSS (not a test module).

    python tests/_hostile.py [REPO]     # table of every bomb against the cnnlab in REPO

Bombs that inflate use deflate streams of zeros made by repeating one full-flushed block
(1,037 bytes per MiB), so a 3 GiB entry costs 3 MB on disk and milliseconds to build.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import struct
import subprocess
import sys
import textwrap
import zipfile
import zlib

import numpy as np

MiB = 1 << 20
GiB = 1 << 30
_ZERO_MIB = bytes(MiB)


def _deflate_zeros(prefix: bytes, n_zeros: int, wbits: int = -15):
    """(compressed, crc32) of ``prefix + bytes(n_zeros)``: raw deflate (wbits -15) or zlib
    (wbits 15, with its true Adler-32). Full flushes make every 1 MiB block of zeros
    compress identically, so only one is compressed.

    Beyond 64 MiB the CRC-32 returned is the prefix's only (computing it over GiBs costs
    seconds): a reader notices only after inflating everything, the cost being measured."""
    c = zlib.compressobj(9, zlib.DEFLATED, wbits)
    parts = [c.compress(prefix), c.flush(zlib.Z_FULL_FLUSH)]
    adler = zlib.adler32(prefix)
    full, rest = divmod(n_zeros, MiB)
    if full:
        parts += [c.compress(_ZERO_MIB), c.flush(zlib.Z_FULL_FLUSH)]
        block = c.compress(_ZERO_MIB) + c.flush(zlib.Z_FULL_FLUSH)
        parts.append(block * (full - 1))
        if wbits > 0:
            for _ in range(full):
                adler = zlib.adler32(_ZERO_MIB, adler)
    parts += [c.compress(bytes(rest)), c.flush()]
    adler = zlib.adler32(bytes(rest), adler)
    data = b"".join(parts)
    if wbits > 0:  # the compressor saw only some of the blocks: write the true Adler-32
        data = data[:-4] + struct.pack(">I", adler)
    crc = zlib.crc32(prefix)
    if n_zeros <= 64 * MiB:
        crc = zlib.crc32(bytes(n_zeros), crc)
    return data, crc


def gzip_zeros(prefix: bytes, n_zeros: int) -> bytes:
    """A gzip file of ``prefix`` followed by ``n_zeros`` zero bytes."""
    data, crc = _deflate_zeros(prefix, n_zeros)
    size = len(prefix) + n_zeros
    return (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + data
            + struct.pack("<II", crc, size & 0xFFFFFFFF))


def raw_zip(members) -> bytes:
    """A zip archive from ``[(name, method, payload, crc, uncompressed size)]`` written as
    given (method 0 stored, 8 deflated; payload already compressed). Duplicate names allowed."""
    out, central = io.BytesIO(), []
    for name, method, payload, crc, usize in members:
        fn = name.encode()
        offset = out.tell()
        out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, crc,
                              len(payload), usize, len(fn), 0) + fn + payload)
        central.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0,
                                   0x21, crc, len(payload), usize, len(fn), 0, 0, 0, 0, 0,
                                   offset) + fn)
    cd_offset = out.tell()
    cd = b"".join(central)
    out.write(cd + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members),
                               len(cd), cd_offset, 0))
    return out.getvalue()


def stored(name: str, data: bytes):
    return (name, 0, data, zlib.crc32(data), len(data))


def npy_header(shape, descr="<f4") -> bytes:
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(f, {"descr": descr, "fortran_order": False,
                                             "shape": tuple(shape)})
    return f.getvalue()


def npy_bytes(arr) -> bytes:
    f = io.BytesIO()
    np.save(f, arr)
    return f.getvalue()


# ----- checkpoints ---------------------------------------------------------------------------
def small_checkpoint(path):
    """Save a small real model to ``path``; -> {entry name: .npy bytes} of that file."""
    import cnnlab as cl
    from cnnlab.layers import Conv2D, Dense, Flatten
    model = cl.Sequential([Conv2D(4, 3), Flatten(), Dense(3)], input_shape=(1, 6, 6), seed=0)
    model.save(path)
    with zipfile.ZipFile(path) as z:
        return {n[:-4]: z.read(n) for n in z.namelist()}


def _meta(entries):
    raw = np.load(io.BytesIO(entries["meta"]))
    return json.loads(raw.tobytes())


def _with_meta(entries, meta):
    entries = dict(entries)
    entries["meta"] = npy_bytes(np.frombuffer(json.dumps(meta).encode(), np.uint8))
    return entries


def checkpoint_with_big_entry(path, n_bytes=3 * GiB):
    """weight.0's .npy header (and the metadata) declare an n_bytes float32 array, and the
    deflated entry really inflates to it (zeros): ~3 MB on disk for 3 GiB."""
    entries = small_checkpoint(path)
    meta = _meta(entries)
    n = n_bytes // 4
    meta["weights"][0]["shape"] = [n]
    entries = _with_meta(entries, meta)
    header = npy_header((n,))
    data, crc = _deflate_zeros(header, n * 4)
    members = [stored(k + ".npy", v) for k, v in entries.items() if k != "weight.0"]
    members.insert(0, ("weight.0.npy", 8, data, crc, len(header) + n * 4))
    with open(path, "wb") as f:
        f.write(raw_zip(members))


def checkpoint_with_huge_shape(path, n=10**12):
    """weight.0 declared (metadata and header) with 1e12 elements; the data is 16 bytes."""
    entries = small_checkpoint(path)
    meta = _meta(entries)
    meta["weights"][0]["shape"] = [n]
    entries = _with_meta(entries, meta)
    entries["weight.0"] = npy_header((n,)) + bytes(16)
    with open(path, "wb") as f:
        f.write(raw_zip([stored(k + ".npy", v) for k, v in entries.items()]))


def checkpoint_with_deep_json(path, depth=200_000):
    entries = small_checkpoint(path)
    text = ("[" * depth + "]" * depth).encode()
    entries["meta"] = npy_bytes(np.frombuffer(text, np.uint8))
    with open(path, "wb") as f:
        f.write(raw_zip([stored(k + ".npy", v) for k, v in entries.items()]))


def checkpoint_with_duplicate(path):
    """Two entries called weight.0: the second (what a zip reader may pick) is different."""
    entries = small_checkpoint(path)
    arr = np.load(io.BytesIO(entries["weight.0"]))
    members = [stored(k + ".npy", v) for k, v in entries.items()]
    members.append(stored("weight.0.npy", npy_bytes(np.full_like(arr, 7.0))))
    with open(path, "wb") as f:
        f.write(raw_zip(members))


# ----- IDX / MNIST ---------------------------------------------------------------------------
def idx_header(shape, code=0x08) -> bytes:
    return bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)


def mnist_dir_with_gzip_bomb(d, n_zeros=2 * GiB, images=10):
    """train-images declares ``images`` 28x28 images but inflates to n_zeros bytes."""
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "train-images-idx3-ubyte.gz"), "wb") as f:
        f.write(gzip_zeros(idx_header((images, 28, 28)), n_zeros))
    with open(os.path.join(d, "train-labels-idx1-ubyte.gz"), "wb") as f:
        f.write(gzip_zeros(idx_header((images,)), images))
    return d


def idx_gzip_declared(path, n_bytes):
    """A gzipped IDX whose header declares n_bytes of images and which holds them (zeros)."""
    n = n_bytes // 784
    with open(path, "wb") as f:
        f.write(gzip_zeros(idx_header((n, 28, 28)), n * 784))


# ----- pickles -------------------------------------------------------------------------------
def pickle_ndarray_call(n=300_000):
    """A CIFAR batch whose data is a direct call ``numpy.ndarray((n, 3072), uint8)``
    (uninitialised memory, n images) and whose labels are n zeros (a plain list, ~600 KB)."""
    nd = b"cnumpy\nndarray\n"
    u1 = b"cnumpy\ndtype\nX\x02\x00\x00\x00u1\x85R"
    n4 = b"J" + struct.pack("<i", n)
    return (b"\x80\x02}(C\x04data" + nd + n4 + b"M\x00\x0c\x86" + u1 + b"\x86R"
            + b"C\x06labels" + pickle.dumps([0] * n, protocol=2)[2:-1] + b"u.")


def pickle_shared_lists(depth=31):
    """L0 = [], L(k+1) = [Lk, Lk]: 2^depth paths through ~8*depth bytes."""
    out = [b"\x80\x02]q\x00"]
    for k in range(depth):
        out.append(b"](h" + bytes([k]) + b"h" + bytes([k]) + b"eq" + bytes([k + 1]))
    return b"".join(out) + b"."


def cifar_dir_with(d, pickle_bytes):
    os.makedirs(os.path.join(d, "cifar-10-batches-py"), exist_ok=True)
    with open(os.path.join(d, "cifar-10-batches-py", "test_batch"), "wb") as f:
        f.write(pickle_bytes)
    return d


# ----- images --------------------------------------------------------------------------------
def png_bytes(width, height, rows=None, bit_depth=1) -> bytes:
    """A grayscale PNG of zeros, width x height; ``rows`` < height writes only that many
    rows of data (the rest missing: a truncated image)."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))
    row = 1 + (width * bit_depth + 7) // 8
    data, _ = _deflate_zeros(b"", row * (height if rows is None else rows), wbits=15)
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data)
            + chunk(b"IEND", b""))


def small_png(value=128, size=(8, 8)) -> bytes:
    from PIL import Image
    f = io.BytesIO()
    Image.fromarray(np.full(size, value, np.uint8)).save(f, format="PNG")
    return f.getvalue()


def folder_zip_with_bomb(path, n_zeros=3 * GiB // 2):
    """An image-folder zip: a/0.png is a member that inflates to n_zeros bytes."""
    head = small_png()
    data, crc = _deflate_zeros(head, n_zeros)
    members = [("imgs/a/0.png", 8, data, crc, len(head) + n_zeros),
               stored("imgs/b/1.png", small_png(3))]
    with open(path, "wb") as f:
        f.write(raw_zip(members))


def folder_zip_with(path, first_png: bytes):
    with open(path, "wb") as f:
        f.write(raw_zip([stored("imgs/a/0.png", first_png), stored("imgs/b/1.png", small_png(3))]))


def truncated_png() -> bytes:
    """A 64x64 RGB PNG of noise cut off in the middle of its data (an interrupted download)."""
    from PIL import Image
    f = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(f, format="PNG")
    return f.getvalue()[: len(f.getvalue()) // 2]


def corrupt_zip() -> bytes:
    """An image-folder zip whose first member's bytes were damaged (its CRC no longer fits)."""
    png = bytearray(small_png())
    crc = zlib.crc32(bytes(png))
    png[40] ^= 0xFF
    return raw_zip([("imgs/a/0.png", 0, bytes(png), crc, len(png)),
                    stored("imgs/b/1.png", small_png(3))])


def float_tiff_with_nan(path):
    from PIL import Image
    a = np.full((4, 4), 0.5, np.float32)
    a[1, 2] = np.nan
    Image.fromarray(a, "F").save(path, format="TIFF")


# ----- the harness ---------------------------------------------------------------------------
_CHILD = """
import json, resource, sys, time
sys.path.insert(0, {repo!r})
import numpy as np
import cnnlab as cl
import cnnlab.data as D
t0 = time.perf_counter()
try:
    {call}
    outcome = "no error"
except BaseException as e:
    outcome = type(e).__name__ + ": " + str(e)[:300]
seconds = time.perf_counter() - t0
try:  # this process's own peak (ru_maxrss would include the parent's size at fork)
    with open("/proc/self/status") as f:
        peak = [int(l.split()[1]) for l in f if l.startswith("VmHWM:")][0] / 1024
except OSError:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"seconds": seconds, "peak_mb": peak, "outcome": outcome}}))
"""


def measure(call: str, repo: str, timeout: float = 60.0, address_space_gb: float = 8.0):
    """Run ``call`` (one line; ``cl``, ``D``, ``np`` imported) in a fresh Python with
    ``repo`` first on sys.path. -> {'seconds', 'peak_mb' (the process's peak RSS, VmHWM of
    /proc/self/status, imports included), 'outcome'}; {'outcome': 'timeout'} when it ran
    past ``timeout``."""
    code = _CHILD.format(repo=os.path.abspath(repo), call=call)
    limit = int(address_space_gb * GiB)

    def cap():
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", CNNLAB_CACHE=os.devnull + "-none")
    try:
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=timeout, preexec_fn=cap, env=env)
    except subprocess.TimeoutExpired:
        return {"seconds": timeout, "peak_mb": float("nan"), "outcome": "timeout"}
    lines = p.stdout.strip().splitlines()
    if p.returncode or not lines:
        return {"seconds": float("nan"), "peak_mb": float("nan"),
                "outcome": f"crashed (rc {p.returncode}): {p.stderr[-300:]}"}
    return json.loads(lines[-1])


def build_all(d):
    """Write every bomb under directory ``d``; -> {name: statement that loads it}."""
    j = os.path.join
    os.makedirs(d, exist_ok=True)
    checkpoint_with_big_entry(j(d, "big_entry.npz"))
    checkpoint_with_huge_shape(j(d, "huge_shape.npz"))
    checkpoint_with_deep_json(j(d, "deep_json.npz"))
    checkpoint_with_duplicate(j(d, "duplicate.npz"))
    mnist_dir_with_gzip_bomb(j(d, "mnist_bomb"))
    idx_gzip_declared(j(d, "declared_900mb-idx3-ubyte.gz"), 900 * MiB)
    cifar_dir_with(j(d, "cifar_ndarray"), pickle_ndarray_call())
    cifar_dir_with(j(d, "cifar_lists"), pickle_shared_lists(31))
    folder_zip_with_bomb(j(d, "folder_bomb.zip"))
    with open(j(d, "bomb.png"), "wb") as f:
        f.write(png_bytes(20000, 20000))
    with open(j(d, "big100mp.png"), "wb") as f:
        f.write(png_bytes(10000, 10000))
    folder_zip_with(j(d, "folder_png_bomb.zip"), png_bytes(20000, 20000))
    with open(j(d, "corrupt.zip"), "wb") as f:
        f.write(corrupt_zip())
    with open(j(d, "truncated.png"), "wb") as f:
        f.write(truncated_png())
    float_tiff_with_nan(j(d, "nan.tif"))
    p = lambda n: repr(j(d, n))  # noqa: E731
    return {
        "checkpoint: entry inflating to 3 GiB": f"cl.load_model({p('big_entry.npz')})",
        "checkpoint: declared shape 1e12": f"cl.load_model({p('huge_shape.npz')})",
        "checkpoint: JSON nested 200k deep": f"cl.load_model({p('deep_json.npz')})",
        "checkpoint: duplicate entry": f"cl.load_model({p('duplicate.npz')})",
        "MNIST gzip inflating to 2 GiB": f"D.load_mnist({p('mnist_bomb')})",
        "IDX gzip declaring 900 MiB of zeros": f"D.read_idx({p('declared_900mb-idx3-ubyte.gz')})",
        "CIFAR pickle calling ndarray()": f"D.load_cifar10({p('cifar_ndarray')}, split='test')",
        "pickle of shared lists, depth 31": f"D.load_cifar10({p('cifar_lists')}, split='test')",
        "image-folder zip member of 1.5 GiB": f"D.load_image_folder({p('folder_bomb.zip')}, cache=False)",
        "PNG bomb 20000x20000 (load_image)": f"D.load_image({p('bomb.png')})",
        "PNG 10000x10000 (100 MP, load_image)": f"D.load_image({p('big100mp.png')})",
        "PNG bomb in an image-folder zip": f"D.load_image_folder({p('folder_png_bomb.zip')}, cache=False)",
        "corrupt zip, bad CRC (image folder)": f"D.load_image_folder({p('corrupt.zip')}, cache=False)",
        "truncated PNG (load_image)": f"D.load_image({p('truncated.png')})",
        "float TIFF with NaN pixels": f"D.load_image({p('nan.tif')}, mode=None)",
    }


if __name__ == "__main__":
    import tempfile
    repo = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    with tempfile.TemporaryDirectory() as d:
        calls = build_all(d)
        size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(d) for f in fs)
        print(f"bombs built: {size / MiB:.1f} MiB on disk in all; repo {os.path.abspath(repo)}")
        only = os.environ.get("HOSTILE_ONLY", "")
        for name, call in calls.items():
            if only and not any(w in name for w in only.split(",")):
                continue
            r = measure(call, repo, timeout=float(os.environ.get("HOSTILE_TIMEOUT", 60)))
            print(f"| {name} | {r['seconds']:.2f} s | {r['peak_mb']:.0f} MB | "
                  f"{textwrap.shorten(r['outcome'], 110)} |", flush=True)
