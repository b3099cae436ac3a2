"""Convolution and pooling arithmetic, step by step, as the course figures animate them:
a kernel slides over a small matrix (zero padding shaded), the products of each window
are written out and summed into the output cell; max pooling the same with the maximum.

    steps = conv_steps(size=5, kernel=3, padding=1, stride=2)   # numbers only
    conv_gif('conv.gif', size=5, kernel=3, padding=1, stride=2)  # and the animation

The output side is n_out = floor((n + 2p - f) / s) + 1 (written in the title); the
values come from ``cnnlab.functional`` (conv2d_forward / maxpool2d_forward), and each
step's written sum is checked against them.
"""
from __future__ import annotations

import numpy as np

from .. import functional as F
from ._plot import figure_to_array, new_figure, save_gif

MAX_SIDE = 12  # padded input side drawn at most (the numbers must stay legible)


def _matrix(x, size, seed, low, high, name):
    if x is None:
        return np.random.default_rng(seed).integers(low, high + 1, size=(size, size)).astype(np.float64)
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D matrix, got shape {x.shape}")
    return x


def _check_geometry(n, f, padding, stride, what):
    if padding < 0 or stride < 1 or f < 1:
        raise ValueError(f"{what}: need kernel >= 1, padding >= 0, stride >= 1; got "
                         f"kernel {f}, padding {padding}, stride {stride}")
    if n + 2 * padding < f:
        raise ValueError(f"{what}: the kernel ({f}) is larger than the padded input "
                         f"({n} + 2*{padding} = {n + 2 * padding})")
    if n + 2 * padding > MAX_SIDE:
        raise ValueError(f"{what}: the padded input side {n + 2 * padding} is too large to draw "
                         f"legibly (at most {MAX_SIDE})")


def conv_steps(x=None, w=None, size=5, kernel=3, padding=0, stride=1, seed=0):
    """Every position of a kernel sliding over a square matrix.

    ``x`` (n, n) and ``w`` (f, f) default to seeded small integers (x in 0..3, w in -1..1)
    of sides ``size`` and ``kernel``. -> dict 'input', 'kernel', 'padded', 'output'
    (from ``F.conv2d_forward``), 'padding', 'stride', 'steps': a list of dicts with 'out'
    (i, j), 'top_left' (row, col in the padded matrix), 'window', 'products', 'value'."""
    x = _matrix(x, size, seed, 0, 3, "x")
    w = _matrix(w, kernel, seed + 1, -1, 1, "w")
    if x.shape[0] != x.shape[1] or w.shape[0] != w.shape[1]:
        raise ValueError(f"x and w must be square, got {x.shape} and {w.shape}")
    n, f = x.shape[0], w.shape[0]
    _check_geometry(n, f, padding, stride, "conv_steps")
    out, _ = F.conv2d_forward(x[None, None], w[None, None], None, stride, padding)
    out = out[0, 0]
    xp = np.pad(x, padding)
    steps = []
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            r, c = i * stride, j * stride
            win = xp[r:r + f, c:c + f]
            prod = win * w
            value = float(prod.sum())
            if not np.isclose(value, out[i, j]):
                raise AssertionError(f"step ({i}, {j}): {value} != conv2d_forward {out[i, j]}")
            steps.append({"out": (i, j), "top_left": (r, c), "window": win, "products": prod,
                          "value": value})
    return {"input": x, "kernel": w, "padded": xp, "output": out, "padding": int(padding),
            "stride": int(stride), "steps": steps, "op": "conv"}


def pool_steps(x=None, size=4, pool=2, stride=None, padding=0, seed=0):
    """Every window of 2-D max pooling over a square matrix (default: seeded integers
    0..9 of side ``size``); ``stride`` None = ``pool``. Padding cells are -inf (they never
    win). Same dict as :func:`conv_steps` with 'pool' instead of 'kernel' and each step's
    'argmax' (row, col inside the window)."""
    x = _matrix(x, size, seed, 0, 9, "x")
    if x.shape[0] != x.shape[1]:
        raise ValueError(f"x must be square, got {x.shape}")
    stride = pool if stride is None else stride
    n = x.shape[0]
    _check_geometry(n, pool, padding, stride, "pool_steps")
    if padding > pool // 2:
        raise ValueError(f"pool_steps: padding must be at most pool // 2 = {pool // 2}, got {padding}")
    out, _ = F.maxpool2d_forward(x[None, None], pool, stride, padding)
    out = out[0, 0]
    xp = np.pad(x, padding, constant_values=-np.inf)
    steps = []
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            r, c = i * stride, j * stride
            win = xp[r:r + pool, c:c + pool]
            a = np.unravel_index(int(np.argmax(win)), win.shape)
            value = float(win[a])
            if value != out[i, j]:
                raise AssertionError(f"step ({i}, {j}): {value} != maxpool2d_forward {out[i, j]}")
            steps.append({"out": (i, j), "top_left": (r, c), "window": win, "argmax": a,
                          "value": value})
    return {"input": x, "pool": int(pool), "padded": xp, "output": out, "padding": int(padding),
            "stride": int(stride), "steps": steps, "op": "maxpool"}


# ---------------------------------------------------------------------- drawing
def _fmt(v):
    if not np.isfinite(v):
        return "-inf"
    return f"{v:g}" if abs(v - round(v)) < 1e-9 else f"{v:.2f}"


def _equation(res, step):
    if res["op"] == "maxpool":
        vals = [_fmt(v) for v in step["window"].ravel() if np.isfinite(v)]
        return f"max({', '.join(vals)}) = {_fmt(step['value'])}"
    terms = [f"{_fmt(a)}·{_fmt(b) if b >= 0 else '(' + _fmt(b) + ')'}"
             for a, b in zip(step["window"].ravel(), res["kernel"].ravel())]
    f = res["kernel"].shape[1]
    lines = [" + ".join(terms[k:k + f]) for k in range(0, len(terms), f)]
    return "  +\n".join(lines) + f"  =  {_fmt(step['value'])}"


def _title(res):
    n = res["input"].shape[0]
    f = res["kernel"].shape[0] if res["op"] == "conv" else res["pool"]
    p, s = res["padding"], res["stride"]
    o = res["output"].shape[0]
    what = "convolution (cross-correlation)" if res["op"] == "conv" else "max pooling"
    return (f"{what}: n={n}, f={f}, p={p}, s={s}\n"
            f"output side floor((n + 2p - f)/s) + 1 = floor(({n} + {2 * p} - {f})/{s}) + 1 = {o}")


def render_frames(res, upto=None):
    """Frames (T, H, W, 3) uint8 of the animation of :func:`conv_steps` /
    :func:`pool_steps` results: one per step, plus a last frame with the full output."""
    from matplotlib.patches import Rectangle

    xp, out = res["padded"], res["output"]
    P, O = xp.shape[0], out.shape[0]
    p = res["padding"]
    f = res["kernel"].shape[0] if res["op"] == "conv" else res["pool"]
    gap = 2.0
    conv = res["op"] == "conv"
    width = P + gap + (max(O, f) if conv else O)
    rows = max(P, O + 1.6 + f) if conv else P   # the kernel is drawn under the output
    n_eq_lines = f + 1 if conv else 1
    eq_h = 0.3 * n_eq_lines + 0.4
    cell_in = 0.55
    steps = res["steps"] if upto is None else res["steps"][:upto]
    frames = []
    for t in range(len(steps) + 1):
        cur = steps[t] if t < len(steps) else None
        fig_h = cell_in * rows + eq_h + 1.1
        fig = new_figure(figsize=(cell_in * width + 0.6, fig_h), dpi=80)
        ax = fig.add_axes([0.02, eq_h / fig_h, 0.96, cell_in * rows / fig_h])
        ax.set_xlim(-0.1, width + 0.1)
        ax.set_ylim(rows + 0.1, -0.1)
        ax.set_aspect("equal")
        ax.axis("off")
        fs = 11 if P <= 8 else 9
        for r in range(P):
            for c in range(P):
                pad = r < p or c < p or r >= P - p or c >= P - p
                ax.add_patch(Rectangle((c, r), 1, 1, facecolor="0.85" if pad else "white",
                                       edgecolor="0.5", lw=0.8))
                ax.text(c + 0.5, r + 0.45, _fmt(xp[r, c]) if np.isfinite(xp[r, c]) else "",
                        ha="center", va="center", fontsize=fs, color="0.45" if pad else "black")
        done = {s["out"]: s["value"] for s in steps[:t]} if cur else {s["out"]: s["value"] for s in steps}
        for i in range(O):
            for j in range(O):
                hot = cur is not None and cur["out"] == (i, j)
                ax.add_patch(Rectangle((P + gap + j, i), 1, 1, edgecolor="0.5", lw=0.8,
                                       facecolor="#9ecae1" if hot else "white"))
                if (i, j) in done or hot:
                    v = cur["value"] if hot else done[(i, j)]
                    ax.text(P + gap + j + 0.5, i + 0.5, _fmt(v), ha="center", va="center",
                            fontsize=fs, fontweight="bold" if hot else "normal")
        pad_note = "" if not p else (f" (padding {p} shaded)" if conv else
                                     f" (padding {p} shaded: -inf, never the max)")
        ax.text(P / 2, -0.35, "input" + pad_note, ha="center", fontsize=9)
        ax.text(P + gap + O / 2, -0.35, "output", ha="center", fontsize=9)
        if conv:
            k0 = O + 1.6
            ax.text(P + gap + f / 2, k0 - 0.35, "kernel", ha="center", fontsize=9, color="#cb181d")
            for a in range(f):
                for b in range(f):
                    ax.add_patch(Rectangle((P + gap + b, k0 + a), 1, 1, facecolor="#fee0d2",
                                           edgecolor="0.5", lw=0.8))
                    ax.text(P + gap + b + 0.5, k0 + a + 0.5, _fmt(res["kernel"][a, b]),
                            ha="center", va="center", fontsize=fs, color="#cb181d")
        if cur is not None:
            r0, c0 = cur["top_left"]
            ax.add_patch(Rectangle((c0, r0), f, f, facecolor="#9ecae1", alpha=0.35,
                                   edgecolor="#08519c", lw=2.5))
            for a in range(f):
                for b in range(f):
                    if res["op"] == "conv":
                        ax.text(c0 + b + 0.93, r0 + a + 0.9, _fmt(res["kernel"][a, b]),
                                ha="right", va="bottom", fontsize=fs - 3, color="#cb181d")
                    elif (a, b) == tuple(cur["argmax"]):
                        ax.add_patch(Rectangle((c0 + b + 0.08, r0 + a + 0.08), 0.84, 0.84,
                                               fill=False, edgecolor="#cb181d", lw=2))
            i, j = cur["out"]
            ax.annotate("", xy=(P + gap + j, i + 0.5), xytext=(c0 + f, r0 + f / 2),
                        arrowprops=dict(arrowstyle="->", color="#08519c", lw=1.2, alpha=0.5))
            label = (f"out[{i},{j}] = " if res["op"] == "conv" else f"out[{i},{j}] = ") + _equation(res, cur)
            if res["op"] == "conv":
                label += "\n(red: the kernel's weights, in the window's corners)"
        else:
            label = "done: every output cell filled"
        fig.text(0.5, (eq_h - 0.1) / fig_h, label, ha="center", va="top",
                 fontsize=9, family="monospace")
        fig.suptitle(_title(res), fontsize=10, y=0.985)
        frames.append(figure_to_array(fig))
    return np.stack(frames)


def conv_gif(path, size=5, kernel=3, padding=0, stride=1, x=None, w=None, seed=0,
             duration_ms=900):
    """Write the animated GIF of a convolution; returns the :func:`conv_steps` dict with
    'frames' added."""
    res = conv_steps(x=x, w=w, size=size, kernel=kernel, padding=padding, stride=stride, seed=seed)
    res["frames"] = render_frames(res)
    save_gif(res["frames"], path, duration_ms=duration_ms)
    return res


def pool_gif(path, size=4, pool=2, stride=None, padding=0, x=None, seed=0, duration_ms=900):
    """Write the animated GIF of max pooling; returns the :func:`pool_steps` dict with
    'frames' added."""
    res = pool_steps(x=x, size=size, pool=pool, stride=stride, padding=padding, seed=seed)
    res["frames"] = render_frames(res)
    save_gif(res["frames"], path, duration_ms=duration_ms)
    return res
