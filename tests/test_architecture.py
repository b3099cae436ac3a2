"""The import structure docs/ARCHITECTURE.md promises, checked on the source: no import
circles between cnnlab's modules, imports flowing one way between its packages, and no
private name (``_x``) imported from another package.

The graph is read from the source with ``ast`` (every ``import`` statement, the ones
inside functions too: a circle closed by a late import is still a circle), so the test
takes well under a second and needs no import of cnnlab.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "cnnlab"

# Which cnnlab packages (or top-level modules) each one may import: ARCHITECTURE.md's
#     functional <- layers <- training, models, viz <- cli
# with data and optim seeing no model, reference and distributed standing alone, and the
# argument checks (cnnlab.checks) at the bottom. '<root>' is cnnlab/__init__.py.
BOTTOM = {"checks", "version"}
ALLOWED = {
    "checks": set(),
    "version": set(),
    "gradcheck": set(),
    "reference": set(),                     # stands alone (its own argument checks)
    "distributed": set(),                   # duck-typed models: imports nothing of cnnlab
    "functional": BOTTOM,
    "data": BOTTOM,                         # no model
    "optim": BOTTOM,                        # arrays only
    "layers": BOTTOM | {"functional"},
    "training": BOTTOM | {"functional", "layers", "optim", "data", "distributed"},
    "models": BOTTOM | {"functional", "layers", "training"},
    "interop": BOTTOM | {"functional", "layers", "training", "data"},
    "viz": BOTTOM | {"functional", "layers", "training", "models", "data"},
    "explore": BOTTOM | {"functional", "layers", "training", "models", "viz", "interop", "data"},
    "course": BOTTOM | {"functional", "layers", "training", "models", "viz", "data", "optim"},
    "cli": BOTTOM | {"<root>", "functional", "layers", "training", "models", "viz", "data", "optim",
                     "interop", "explore", "course", "distributed", "gradcheck", "reference"},
    "__main__": {"cli"},
    "<root>": BOTTOM | {"functional", "layers", "training", "data", "optim", "gradcheck",
                        "reference"},
}

# Private imports across packages that are allowed for now, each with its reason.
EXEMPT: set = set()  # none: every private name stays inside its package


def _modules():
    """{dotted module name: path} of every module in cnnlab/."""
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = ("cnnlab",) + path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name, path):
    """[(target module, imported name or None, line)] of module ``name``: every import of
    cnnlab, at any depth of the file; ``from pkg import sub`` targets the submodule."""
    is_pkg = path.name == "__init__.py"
    here = name.split(".") if is_pkg else name.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, None, node.lineno) for a in node.names
                      if a.name.split(".")[0] == "cnnlab"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "cnnlab":
                continue
            for a in node.names:
                sub = f"{target}.{a.name}"
                found.append((sub, a.name, node.lineno) if sub in MODULES
                             else (target, a.name, node.lineno))
    return found


EDGES = {name: _imports(name, path) for name, path in MODULES.items()}


def _package(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "<root>"


def _is_private(word):
    return word.startswith("_") and not word.startswith("__")


def _find_cycle(graph):
    """One import circle as a list of modules [a, b, ..., a], or None (iterative DFS)."""
    state = {}  # 1: on the current path, 2: done
    for start in graph:
        if state.get(start):
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def test_the_graph_sees_the_imports_it_should():
    # the reader must find known imports, late ones included, or the tests below prove nothing
    assert ("cnnlab.functional", "functional") in [(t, n) for t, n, _ in EDGES["cnnlab.layers.conv"]]
    assert any(t == "cnnlab.training.checkpoint" for t, _, _ in EDGES["cnnlab.training.model"])
    late = [t for t, _, _ in EDGES["cnnlab.training.checkpoint"]]
    assert "cnnlab.layers" in late and "cnnlab.version" in late  # both inside functions
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None
    assert len(MODULES) > 100


def test_no_import_circles():
    graph = {m: {t for t, _, _ in edges if t != m and t in MODULES} for m, edges in EDGES.items()}
    cycle = _find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_imports_flow_one_way_between_packages():
    packages = {_package(m) for m in MODULES}
    assert packages == set(ALLOWED), f"packages without a rule: {packages ^ set(ALLOWED)}"
    bad = [f"{m}:{line} imports {t} ({_package(m)} may import only "
           f"{sorted(ALLOWED[_package(m)]) or 'nothing of cnnlab'})"
           for m, edges in EDGES.items() for t, _, line in edges
           if _package(t) != _package(m) and _package(t) not in ALLOWED[_package(m)]]
    assert not bad, "\n".join(bad)


def test_no_private_name_imported_across_packages():
    bad, used = [], set()
    for m, edges in EDGES.items():
        for t, name, line in edges:
            if _package(t) == _package(m):
                continue
            private = any(_is_private(p) for p in t.split(".")[1:]) or (
                name is not None and _is_private(name))
            if not private:
                continue
            if (m, t, name) in EXEMPT:
                used.add((m, t, name))
                continue
            bad.append(f"{m}:{line} imports {name or t} from {t}")
    assert not bad, ("private names imported across packages (make them public in their "
                     "package, or move the code):\n" + "\n".join(bad))
    assert used == EXEMPT, f"stale exemptions, remove them: {sorted(EXEMPT - used)}"


@pytest.mark.parametrize("module", ["cnnlab.checks", "cnnlab.version"])
def test_the_bottom_imports_nothing_of_cnnlab(module):
    assert EDGES[module] == []


def test_old_private_names_stay_as_aliases_of_the_public_ones():
    import cnnlab.layers as L
    from cnnlab.layers.activations import _Activation
    from cnnlab.layers.conv import _ConvND
    from cnnlab.layers.pooling import _PoolND
    from cnnlab.training import convert

    assert (_Activation, _ConvND, _PoolND) == (L.Activation, L.ConvND, L.PoolND)
    assert isinstance(L.ReLU(), L.Activation) and isinstance(L.Conv2D(2, 3), L.ConvND)
    assert isinstance(L.MaxPool2D(2), L.PoolND) and isinstance(L.AvgPool1D(2), L.PoolND)
    assert (convert._split, convert._copy_arrays) == (convert.split_head, convert.copy_arrays)


def test_model_is_found_by_its_registered_name(tmp_path):
    # checkpoint.py and convert.py build cnnlab.Sequential this way instead of importing
    # model.py (which imports them): what they return is still that class
    import numpy as np

    import cnnlab as cl
    from cnnlab.layers import get_registered
    from cnnlab.training.convert import to_fully_convolutional

    assert get_registered("Model") is cl.Sequential is cl.training.Model
    assert get_registered("NoSuchLayer") is None
    net = cl.Sequential([cl.layers.Conv2D(2, 3), cl.layers.Flatten(), cl.layers.Dense(3)],
                        input_shape=(1, 6, 6), seed=0)
    net.save(tmp_path / "net.npz")
    back = cl.load_model(tmp_path / "net.npz")
    fcn = to_fully_convolutional(net)
    assert type(back) is cl.Sequential and type(fcn) is cl.Sequential
    x = np.random.default_rng(0).random((2, 1, 6, 6)).astype(np.float32)
    assert np.array_equal(back.forward(x), net.forward(x))
    np.testing.assert_allclose(fcn.forward(x)[:, :, 0, 0], net.forward(x), rtol=1e-5, atol=1e-6)
