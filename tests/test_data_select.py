"""Loading only the images asked for (``select=``): from an image-folder zip (decoding only
those) and from the decode cache (reading only those rows), equal to loading all and
indexing; and the CLI's --limit on CIFAR-10 through it."""
import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnlab.data import folder
from cnnlab.data.folder import load_image_folder

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
# CI sets CNNLAB_REQUIRE_SHARED_DATA: there the real-data test must run, never skip
needs_cifar = pytest.mark.skipif(
    not (SHARED / "cifar10" / "cifar10-jpeg.zip").is_file()
    and not os.environ.get("CNNLAB_REQUIRE_SHARED_DATA"),
    reason="shared CIFAR-10 zip not present")


@pytest.fixture
def zipped(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "set.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for c in ("cat", "dog", "emu"):
            for k in range(7):
                buf = io.BytesIO()
                Image.fromarray(rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)).save(buf, "PNG")
                zf.writestr(f"set/{c}/{k:02d}.png", buf.getvalue())
    return path


def test_select_decodes_only_the_chosen_images_and_equals_indexing(zipped, tmp_path, monkeypatch):
    full_x, full_y, names = load_image_folder(zipped, dtype=np.uint8, cache=False)
    keep = np.array([0, 3, 8, 20])
    decoded = []
    real = folder._decode
    monkeypatch.setattr(folder, "_decode", lambda *a: decoded.append(a[1]) or real(*a))
    x, y, names2 = load_image_folder(zipped, dtype=np.uint8, cache=tmp_path / "c",
                                     select=lambda n: keep if n == 21 else None)
    np.testing.assert_array_equal(x, full_x[keep])
    np.testing.assert_array_equal(y, full_y[keep])
    assert names2 == names and len(decoded) == 4
    assert not list((tmp_path / "c").glob("*.npz"))  # a partial decode is not cached


def test_select_reads_only_the_chosen_rows_of_the_cache(zipped, tmp_path, monkeypatch):
    full_x, full_y, _ = load_image_folder(zipped, dtype=np.uint8, cache=tmp_path / "c")
    assert len(list((tmp_path / "c").glob("*.npz"))) == 1
    calls = []
    real = folder._stored_rows
    monkeypatch.setattr(folder, "_stored_rows", lambda *a: calls.append(a) or real(*a))
    monkeypatch.setattr(folder, "_decode", lambda *a: pytest.fail("decoded despite the cache"))
    keep = np.array([1, 2, 19])
    x, y, _ = load_image_folder(zipped, dtype=np.float32, cache=tmp_path / "c",
                                select=lambda n: keep)
    assert calls and real(*calls[0]).shape == (3, 3, 6, 5)  # read row by row, not decoded
    np.testing.assert_array_equal(x, full_x[keep].astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(y, full_y[keep])
    # select returning None keeps everything
    x_all, _, _ = load_image_folder(zipped, dtype=np.uint8, cache=tmp_path / "c",
                                    select=lambda n: None)
    np.testing.assert_array_equal(x_all, full_x)


@needs_cifar
def test_cli_limit_on_cifar_equals_the_old_subset_of_everything():
    """--limit's images: the same random subset as loading all 10,000 and indexing."""
    from cnnlab.cli.common import load_dataset, random_subset
    from cnnlab.data import load_cifar10

    root = str(SHARED)
    x, y, where = load_dataset("cifar10", root, "test", limit=300, seed=4)
    ax, ay = load_cifar10(root, split="test", dtype=np.uint8)
    keep = random_subset(len(ax), 300, 4)
    np.testing.assert_array_equal(y, ay[keep])
    np.testing.assert_array_equal(x, ax[keep].astype(np.float32) / np.float32(255))
    assert "a random 300 of its 10,000 images" in where
