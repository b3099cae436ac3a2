"""Model summary: per-layer output shape, parameters, activations and FLOPs, with totals
and a memory estimate (Keras' ``model.summary()`` plus the course's memory arithmetic).

``container.summary(...)`` returns a :class:`Summary`, a list of row dicts (one per child,
after an 'input' row), each with

    'layer'         name ('input' for the input row; 'parent/child' when nested rows are
                    expanded)
    'type'          class name ('Input', 'Conv2D', ...)
    'output_shape'  per sample, channels first, e.g. (8, 28, 28)
    'params'        parameter scalars (for a container, all of its children's)
    'frozen'        those of them in frozen layers (``trainable = False``); the layer
                    column says 'frozen' when all of them are
    'activations'   prod(output_shape), the scalars the row outputs per sample
    'flops'         per sample (2 x multiply-adds for conv/dense; see Layer.flops)

plus attributes

    .totals  {'params', 'frozen', 'state' (non-trainable scalars), 'input' (scalars per sample),
              'activations' (scalars per sample kept for backward, inside containers too),
              'flops' (per sample)}
    .memory  {'batch_size', 'dtype', 'optimizer_slots',
              'training':  {'activations', 'activation_grads', 'params', 'grads',
                            'optimizer', 'state', 'batch', 'total'},     # bytes
              'inference': {'activations', 'params', 'total'}}            # bytes
    .text    the printed table (also its str() and repr()).
    .fused   [(first, second)] names of the neighbours a Sequential runs as one fused step
             (a ReLU run after the max pool that follows it: see Sequential.fused_pairs),
             nested containers' with their 'parent/' prefix; listed under the table.

Memory model (bytes = scalars x itemsize). Training: every activation and its gradient
(2 x batch x totals['activations']), the parameters, their gradients and
``optimizer_slots`` arrays of the same size (SGD 0, momentum / RMSProp 1, Adam 2), the
state, and the input batch. Inference keeps only the current layer's input and output:
batch x the largest such pair (``Layer.peak_activations``), plus parameters and state.
"""

from __future__ import annotations

import numpy as np

from . import _checks


class Summary(list):
    """Rows of a model summary (see the module docstring) with ``totals``, ``memory``
    and ``text`` attributes; ``str(summary)`` is the table."""

    def __init__(self, rows, totals, memory, text, fused=()):
        super().__init__(rows)
        self.totals, self.memory, self.text, self.fused = totals, memory, text, list(fused)

    def __str__(self):
        return self.text

    def __repr__(self):  # a REPL echo shows the table, not a list of dicts
        return self.text


def _row(layer, input_shape, prefix):
    out = tuple(layer.compute_output_shape(input_shape))
    return {
        "layer": prefix + layer.name,
        "type": type(layer).__name__,
        "output_shape": out,
        "params": layer.count_params(),
        "frozen": layer.count_frozen(),
        "activations": int(np.prod(out)),
        "flops": int(layer.flops(input_shape)),
    }


def _rows(container, input_shape, prefix, expand):
    rows = []
    for child, shape in container.child_input_shapes(input_shape):
        rows.append(_row(child, shape, prefix))
        if expand and hasattr(child, "child_input_shapes"):
            rows.extend(_rows(child, shape, f"{prefix}{child.name}/", expand))
    return rows


def _fused(container, prefix=""):
    """[(relu name, pool name)] of every Sequential in ``container``, nested ones too."""
    pairs = [
        (prefix + a.name, prefix + b.name) for a, b in getattr(container, "fused_pairs", list)()
    ]
    for child in getattr(container, "layers", []):
        if hasattr(child, "layers"):
            pairs += _fused(child, f"{prefix}{child.name}/")
    return pairs


def _memory(model, input_shape, totals, batch_size, slots):
    isz = model.dtype.itemsize
    p, s = totals["params"], totals["state"]
    act = batch_size * totals["activations"] * isz
    train = {
        "activations": act,
        "activation_grads": act,
        "params": p * isz,
        "grads": p * isz,
        "optimizer": slots * p * isz,
        "state": s * isz,
        "batch": batch_size * totals["input"] * isz,
    }
    train["total"] = sum(train.values())
    infer = {
        "activations": batch_size * model.peak_activations(input_shape) * isz,
        "params": (p + s) * isz,
    }
    infer["total"] = infer["activations"] + infer["params"]
    return {
        "batch_size": batch_size,
        "dtype": model.dtype.name,
        "optimizer_slots": slots,
        "training": train,
        "inference": infer,
    }


def _mib(n):
    return f"{n / 2**20:,.2f} MiB"


def _params_line(totals):
    frozen = totals["frozen"]
    if not frozen:
        return f"Params: {totals['params']:,} trainable, {totals['state']:,} non-trainable (state)"
    return (
        f"Params: {totals['params'] - frozen:,} trainable, {frozen:,} frozen (trainable=False), "
        f"{totals['state']:,} non-trainable (state)"
    )


def _name_cell(r):
    frozen = r["params"] and r["frozen"] == r["params"]
    return f"{r['layer']} ({r['type']}{', frozen' if frozen else ''})"


def _table(model, rows, totals, memory, fused):
    head = ("Layer (type)", "Output shape", "Params", "Activations", "FLOPs")
    cells = [
        (
            _name_cell(r),
            str(r["output_shape"]),
            f"{r['params']:,}",
            f"{r['activations']:,}",
            f"{r['flops']:,}",
        )
        for r in rows
    ]
    widths = [max(len(c[i]) for c in cells + [head]) for i in range(5)]

    def fmt(c):
        return "  ".join(
            [c[0].ljust(widths[0]), c[1].ljust(widths[1])]
            + [c[i].rjust(widths[i]) for i in range(2, 5)]
        )

    rule = "=" * len(fmt(head))
    tr, inf = memory["training"], memory["inference"]
    lines = [f'Model: "{model.name}"  (per sample; shapes channels first)', rule, fmt(head), rule]
    lines += [fmt(c) for c in cells]
    lines += [
        rule,
        _params_line(totals),
        f"Activations per sample: {totals['activations']:,} (input {totals['input']:,}); "
        f"FLOPs per sample: {totals['flops']:,}",
        f"Memory estimate, batch {memory['batch_size']}, {memory['dtype']}:",
        f"  training  {_mib(tr['total'])} = activations {_mib(tr['activations'])} x 2 (with "
        f"gradients) + params/grads/optimizer ({memory['optimizer_slots']} slots) "
        f"{_mib(tr['params'] + tr['grads'] + tr['optimizer'] + tr['state'])} + batch "
        f"{_mib(tr['batch'])}",
        f"  inference {_mib(inf['total'])} = largest activation pair "
        f"{_mib(inf['activations'])} + params {_mib(inf['params'])}",
    ]
    if fused:
        lines.append(
            "Fused (same numbers, fewer passes): "
            + "; ".join(f"{a} runs after {b}" for a, b in fused)
        )
    return "\n".join(lines)


def summarize(
    model, input_shape=None, batch_size=32, optimizer_slots=2, expand_nested=False, print_fn=print
):
    """Summary of a container ``model`` for per-sample ``input_shape`` (default: the one it
    was built for; an unbuilt model is built for it). ``batch_size`` and
    ``optimizer_slots`` feed the memory estimate; ``expand_nested`` adds rows for the
    children of nested containers; ``print_fn`` prints the table (None: silent).
    Returns a :class:`Summary`."""
    if input_shape is None:
        if not model.built:
            raise ValueError(
                f"{model._label()} is not built: pass input_shape (per sample, "
                f"channels first, e.g. (3, 32, 32)) to summary()"
            )
        input_shape = model.input_shape
    input_shape = _checks.as_shape(input_shape)
    batch_size = _checks.positive_int("summary", batch_size, "batch_size")
    optimizer_slots = _checks.nonneg_int("summary", optimizer_slots, "optimizer_slots")
    if not model.built:
        model.build(input_shape)
    model.check_input_shape(input_shape)
    rows = [
        {
            "layer": "input",
            "type": "Input",
            "output_shape": input_shape,
            "params": 0,
            "frozen": 0,
            "activations": int(np.prod(input_shape)),
            "flops": 0,
        }
    ]
    rows += _rows(model, input_shape, "", expand_nested)
    totals = {
        "params": model.count_params(),
        "frozen": model.count_frozen(),
        "state": model.count_state(),
        "input": int(np.prod(input_shape)),
        "activations": model.train_activations(input_shape),
        "flops": model.flops(input_shape),
    }
    memory = _memory(model, input_shape, totals, batch_size, optimizer_slots)
    fused = _fused(model)
    text = _table(model, rows, totals, memory, fused)
    if print_fn is not None:
        print_fn(text)
    return Summary(rows, totals, memory, text, fused)
