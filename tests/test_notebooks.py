"""Every notebook in examples/ runs top to bottom (nbclient) at the CI budget
(CNNLAB_NOTEBOOK_BUDGET=ci), in a kernel that is this interpreter (a kernelspec written
for sys.executable, so a fresh CI virtualenv runs its own cnnlab). The gradient-check
notebook asserts its errors; the others would raise on any broken call."""
import json
import os
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "examples").glob("*.ipynb"))
SHARED = ROOT.parent / "shared" / "data"
if os.environ.get("CNNLAB_REQUIRE_SHARED_DATA") and not (SHARED / "cifar10").is_dir():
    raise RuntimeError(f"CNNLAB_REQUIRE_SHARED_DATA is set but {SHARED}/cifar10 is missing")
needs_cifar = pytest.mark.skipif(not (SHARED / "cifar10").is_dir(),
                                 reason="shared CIFAR-10 not present")


def test_there_are_notebooks():
    names = [p.name for p in NOTEBOOKS]
    assert len(names) >= 7 and "00_functional_ops_gradcheck.ipynb" in names, names


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory):
    """A kernelspec 'cnnlab-test' running this very Python, and the notebooks' env."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / "cnnlab-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "cnnlab test", "language": "python"}))
    saved = {k: os.environ.get(k) for k in ("JUPYTER_PATH", "CNNLAB_NOTEBOOK_BUDGET",
                                            "PYTHONPATH", "CNNLAB_DATA", "CNNLAB_CACHE",
                                            "MPLBACKEND")}
    os.environ.update({
        "JUPYTER_PATH": str(root), "CNNLAB_NOTEBOOK_BUDGET": "ci",
        # the kernel imports this checkout's cnnlab and finds the shared data from any cwd
        "PYTHONPATH": os.pathsep.join([str(ROOT)] + ([saved["PYTHONPATH"]] if saved["PYTHONPATH"] else [])),
        "CNNLAB_DATA": str(SHARED), "CNNLAB_CACHE": str(root / "cache"), "MPLBACKEND": "Agg"})
    yield "cnnlab-test"
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@needs_cifar
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, kernel_env):
    book = nbformat.read(path, as_version=4)
    client = NotebookClient(book, kernel_name=kernel_env, timeout=600,
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    outputs = [o for c in book.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "budget: ci" in text or path.name.startswith("00_"), text[:500]
    if not path.name.startswith("00_"):  # every experiment notebook draws figures
        assert any("image/png" in o.get("data", {}) for o in outputs), path.name
