"""PyTorch weights in and out without pickles: ``load_state_dict`` / ``save_state_dict``.

A cnnlab model built to mirror a torch module (the zoo nets mirror torchvision's) takes
that module's ``state_dict`` from a ``.safetensors`` file (read with the ``safetensors``
package's NumPy API: no torch needed) or from a mapping of arrays
(``{k: v.numpy() for k, v in net.state_dict().items()}``).

Matching is by structure and shape, not by sorted names (a safetensors file keeps no
order, and 'features.10' sorts before 'features.2'): the torch names are read as a tree of
modules ('layer1.0.conv1' -> layer1 / 0 / conv1); numbered children keep their number
order, named children may come in any order, and the tensors of every module must fit
the cnnlab layer at that position of the model's execution order (conv: weight (K, C,
*k) and bias; linear: weight (out, in), transposed to cnnlab's (in, out); batch norm:
weight, bias, running_mean, running_var; ``num_batches_tracked`` is ignored). Among
fitting orders the first in the source's own order (for a mapping) or in natural name
order (for a file) wins: 'conv1, bn1, conv2, bn2' before 'conv2, bn2, conv1, bn1'. Every
shape is checked before anything is assigned (all or nothing).

``save_state_dict(model, path)`` writes a ``.safetensors`` file with torch names: those
of torchvision for the zoo's AlexNet, VGG and GoogLeNet (``features.0.weight``,
``inception3a.branch2.1.bn.running_var``, ...), and for any other model the names of an
``nn.Sequential`` mirror ('0.weight', '3.bias'; a Concat's branches '{i}.{j}', a
Residual's 'body' and 'shortcut').
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping

import numpy as np

from ..layers import BatchNorm, Concat, Container, Dense, Flatten, Residual, Sequential
from ..layers import ConvND
from ..data import atomic_open
from .errors import StateDictError

PICKLE_HINT = ("PyTorch .pt/.pth files are pickles, which can run code when loaded, so cnnlab "
               "does not read them. Convert one in PyTorch (two safe lines):\n"
               "    sd = torch.load('net.pth', map_location='cpu', weights_only=True)\n"
               "    safetensors.torch.save_file({k: v.contiguous() for k, v in sd.items()}, "
               "'net.safetensors')")
_BN_KEYS = (("gamma", "weight"), ("beta", "bias"), ("running_mean", "running_mean"),
            ("running_var", "running_var"))
_TORCHVISION_FLAT = ("alexnet", "zfnet", "vgg11", "vgg13", "vgg16", "vgg19", "vgg")
_MAX_STEPS = 200_000


# ----------------------------------------------------------------------------- cnnlab side

def _slots(layer, out):
    """cnnlab layers with weights, in execution order: [(kind, layer)]."""
    if isinstance(layer, Residual):
        _slots(layer.body, out)
        if layer.shortcut is not None:
            _slots(layer.shortcut, out)
    elif isinstance(layer, Container):
        for c in layer.layers:
            _slots(c, out)
    elif isinstance(layer, ConvND):
        out.append(("conv", layer))
    elif isinstance(layer, Dense):
        out.append(("linear", layer))
    elif isinstance(layer, BatchNorm):
        out.append(("bn", layer))
    return out


def _torch_shapes(kind, layer):
    """{torch suffix: (shape, cnnlab dict, key, transpose)} of one cnnlab layer."""
    if kind == "bn":
        return {t: (layer.state[k].shape if k in layer.state else layer.params[k].shape,
                    layer.state if k in layer.state else layer.params, k, False)
                for k, t in _BN_KEYS}
    w = layer.params["w"]
    out = {"weight": (w.shape[::-1] if kind == "linear" else w.shape, layer.params, "w",
                      kind == "linear")}
    if "b" in layer.params:
        out["bias"] = (layer.params["b"].shape, layer.params, "b", False)
    return out


# ----------------------------------------------------------------------------- torch side

def _natural(name):
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", name) if p]


class _Module:
    """A node of the torch module tree built from the tensor names."""

    def __init__(self, path):
        self.path, self.children, self.tensors = path, {}, {}

    def kind(self):
        keys = set(self.tensors) - {"num_batches_tracked"}
        if not keys:
            return None
        if "running_mean" in keys:
            return "bn"
        w = self.tensors.get("weight")
        if w is not None and w.ndim >= 3:
            return "conv"
        if w is not None and w.ndim == 2:
            return "linear"
        return "unknown"


def _tree(arrays, natural):
    root = _Module("")
    for name, arr in arrays.items():
        parts = name.split(".")
        node = root
        for i, p in enumerate(parts[:-1]):
            node = node.children.setdefault(p, _Module(".".join(parts[:i + 1])))
        node.tensors[parts[-1]] = arr
    def sort(node):
        # numbered children (nn.Sequential) in number order; named ones in natural name
        # order for a file, in the source's own order for a mapping
        if natural or all(k.isdigit() for k in node.children):
            node.children = dict(sorted(node.children.items(), key=lambda kv: _natural(kv[0])))
        for c in node.children.values():
            sort(c)

    sort(root)
    return root


class _Matcher:
    """Search for an order of the torch modules that fits the cnnlab slots. For each
    (subtree or set of siblings, start position) it keeps, per reachable end position,
    the first fitting assignment in preference order: what follows depends only on where
    a part ends, so this is exact and polynomial for the usual nets."""

    def __init__(self, slots):
        self.slots, self.steps, self.memo = slots, 0, {}

    def fits(self, module, pos):
        if pos >= len(self.slots) or module.kind() != self.slots[pos][0]:
            return False
        want = _torch_shapes(*self.slots[pos])
        have = {k: v for k, v in module.tensors.items() if k != "num_batches_tracked"}
        return set(have) == set(want) and all(tuple(have[k].shape) == tuple(want[k][0])
                                              for k in want)

    def _tick(self):
        self.steps += 1
        if self.steps > _MAX_STEPS:
            raise StateDictError("load_state_dict: the weights' structure is too ambiguous to "
                                 "match (search limit reached)")

    def match(self, module, pos):
        """{end position: [(module, slot index)]} for the fitting orders of ``module``."""
        self._tick()
        if module.kind() is not None:
            if module.children:
                raise StateDictError(f"load_state_dict: module {module.path!r} has tensors "
                                     f"and submodules with tensors; not supported")
            return {pos + 1: [(module, pos)]} if self.fits(module, pos) else {}
        kids = tuple(module.children.values())
        numbered = all(k.path.rsplit(".", 1)[-1].isdigit() for k in kids)
        return self._seq(kids, pos, numbered)

    def _seq(self, kids, pos, fixed):
        key = (tuple(id(k) for k in kids), pos)
        if key in self.memo:
            return self.memo[key]
        self._tick()
        out = {}
        if not kids:
            out[pos] = []
        for i in ([0] if fixed else range(len(kids))) if kids else ():
            for p1, a1 in self.match(kids[i], pos).items():
                for p2, a2 in self._seq(kids[:i] + kids[i + 1:], p1, fixed).items():
                    out.setdefault(p2, a1 + a2)
        self.memo[key] = out
        return out


def _read(source):
    """-> (dict name -> ndarray, natural order wanted, where)."""
    if isinstance(source, Mapping):
        arrays = {}
        for k, v in source.items():
            if not isinstance(k, str):
                raise StateDictError(f"load_state_dict: keys must be str, got {k!r}")
            if hasattr(v, "detach"):  # a torch tensor given by mistake: its numpy view
                v = v.detach().cpu().numpy()
            arrays[k] = np.asarray(v)
        return arrays, False, "the mapping"
    path = os.fspath(source)
    low = path.lower()
    if low.endswith((".pt", ".pth", ".ckpt", ".pkl", ".bin")):
        raise StateDictError(f"load_state_dict: refusing {path}. {PICKLE_HINT}")
    if not low.endswith(".safetensors"):
        raise StateDictError(f"load_state_dict: source must be a .safetensors file or a mapping "
                             f"of arrays, got {path!r}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weights file not found: {path}")
    st = _require_safetensors()
    try:
        arrays = st.load_file(path)
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        raise StateDictError(f"load_state_dict: {path} is not a readable safetensors file: "
                             f"{exc}") from None
    return arrays, True, path


def _require_safetensors():
    try:
        import safetensors.numpy as st
    except ImportError as exc:
        raise ImportError("reading/writing .safetensors needs the 'safetensors' package: "
                          "pip install safetensors") from exc
    return st


def load_state_dict(model, source):
    """Copy PyTorch weights into a built cnnlab ``model`` (see the module docstring).

    ``source``: a ``.safetensors`` path or a mapping name -> array. Raises StateDictError
    (nothing assigned) when the weights do not fit; refuses ``.pt``/``.pth`` pickles with
    the two lines that convert one safely. -> the list of (torch name, cnnlab qualified
    name) pairs assigned, in model order."""
    if not isinstance(model, Container) or not model.built:
        raise StateDictError("load_state_dict: model must be a built cnnlab model")
    arrays, natural, where = _read(source)
    slots = _slots(model, [])
    root = _tree(arrays, natural)
    matcher = _Matcher(slots)
    found = matcher.match(root, 0).get(len(slots))
    if found is None:
        kinds = [k for k, _ in slots]
        mods = _leaves(root, natural)
        raise StateDictError(
            f"load_state_dict: the tensors of {where} do not fit the model: it has "
            f"{len(slots)} layers with weights ({_count(kinds)}), {where} has "
            f"{len(mods)} modules ({_count([m.kind() for m in mods])}); first layers: "
            + ", ".join(f"{layer.name} {kind} {_fmt(_torch_shapes(kind, layer))}"
                        for kind, layer in slots[:3]) + "; first modules: "
            + ", ".join(f"{m.path} {m.kind()} {_fmt({k: (v.shape,) for k, v in m.tensors.items()})}"
                        for m in mods[:3]))
    # every check passed: assign (dtype of the model)
    names = []
    for module, pos in found:
        kind, layer = slots[pos]
        for suffix, (_, target, key, transpose) in _torch_shapes(kind, layer).items():
            v = module.tensors[suffix]
            target[key][...] = (v.T if transpose else v).astype(target[key].dtype, copy=False)
            names.append((f"{module.path}.{suffix}", f"{layer.name}.{key}"))
    return names


def _leaves(node, natural, out=None):
    out = [] if out is None else out
    if node.kind() is not None:
        out.append(node)
    for c in node.children.values():
        _leaves(c, natural, out)
    return out


def _count(kinds):
    return ", ".join(f"{kinds.count(k)} {k}" for k in dict.fromkeys(kinds))


def _fmt(shapes):
    return "{" + ", ".join(f"{k} {tuple(v[0])}" for k, v in shapes.items()) + "}"


# ----------------------------------------------------------------------------- names out

def _flat_names(model):
    """torchvision's AlexNet/VGG: before the Flatten 'features.{i}', after it 'classifier.{i}'."""
    out, part, i = [], "features", 0
    for layer in model.layers:
        if isinstance(layer, Flatten):
            part, i = "classifier", 0
            continue
        out.append((f"{part}.{i}", layer))
        i += 1
    return out


def _googlenet_names(model):
    """torchvision's GoogLeNet: BasicConv2d = '{name}.conv' / '{name}.bn', Inception
    branches 'branch{k}' (a branch of several modules: 'branch{k}.{j}')."""
    out = []

    def basic(prefix, seq):
        conv, bn = seq.layers[0], seq.layers[1]
        out.append((f"{prefix}.conv", conv))
        out.append((f"{prefix}.bn", bn))

    for layer in model.layers:
        if isinstance(layer, Concat):
            for k, branch in enumerate(layer.layers, start=1):
                kids = branch.layers if isinstance(branch, Sequential) else [branch]
                if len(kids) == 1:
                    basic(f"{layer.name}.branch{k}", kids[0])
                else:
                    for j, kid in enumerate(kids):
                        if isinstance(kid, Sequential):
                            basic(f"{layer.name}.branch{k}.{j}", kid)
        elif isinstance(layer, Sequential):
            basic(layer.name, layer)
        elif isinstance(layer, (Dense, ConvND, BatchNorm)):
            out.append((layer.name, layer))
    return out


def _generic_names(layer, prefix, out):
    """An nn.Sequential mirror: children '{i}', Residual 'body' / 'shortcut'."""
    if isinstance(layer, Residual):
        _generic_names(layer.body, f"{prefix}body.", out)
        if layer.shortcut is not None:
            _generic_names(layer.shortcut, f"{prefix}shortcut.", out)
    elif isinstance(layer, Container):
        for i, c in enumerate(layer.layers):
            if isinstance(c, Container):
                _generic_names(c, f"{prefix}{i}.", out)
            else:
                out.append((f"{prefix}{i}", c))
    else:
        out.append((prefix.rstrip("."), layer))
    return out


def state_dict_names(model):
    """[(torch module name, cnnlab layer)] for the layers with weights, as
    :func:`save_state_dict` names them."""
    if model.name in _TORCHVISION_FLAT and any(isinstance(c, Flatten) for c in model.layers):
        pairs = _flat_names(model)
    elif model.name == "googlenet":
        pairs = _googlenet_names(model)
    else:
        pairs = _generic_names(model, "", [])
    return [(n, layer) for n, layer in pairs if isinstance(layer, (ConvND, Dense, BatchNorm))]


def to_state_dict(model):
    """{torch name: array} (Linear weights transposed to (out, in), batch norm with
    running statistics and num_batches_tracked), in model order."""
    if not isinstance(model, Container) or not model.built:
        raise StateDictError("save_state_dict: model must be a built cnnlab model")
    sd = {}
    for name, layer in state_dict_names(model):
        kind = "bn" if isinstance(layer, BatchNorm) else "linear" if isinstance(layer, Dense) else "conv"
        for suffix, (_, src, key, transpose) in _torch_shapes(kind, layer).items():
            v = src[key]
            sd[f"{name}.{suffix}"] = np.ascontiguousarray(v.T if transpose else v)
        if kind == "bn":
            sd[f"{name}.num_batches_tracked"] = np.array(0, dtype=np.int64)
    return sd


def save_state_dict(model, path):
    """Write the model's weights as a PyTorch-style ``.safetensors`` state dict, atomically
    (``torch_model.load_state_dict(safetensors.torch.load_file(path))`` accepts it for a
    mirroring module). -> path."""
    path = os.fspath(path)
    if not path.lower().endswith(".safetensors"):
        raise StateDictError(f"save_state_dict: path must end in .safetensors, got {path!r}")
    st = _require_safetensors()
    sd = to_state_dict(model)
    with atomic_open(path) as f:  # a crash never leaves a half-written file
        f.write(st.save(sd))
    return path
