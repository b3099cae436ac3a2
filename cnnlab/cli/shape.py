"""``cnnlab shape``: the output size and parameter count of one convolution layer.

    output = floor((n + 2p - f) / s) + 1        parameters = (f * f * c + 1) * k

e.g. ``--n 32 --f 5 --p 2 --s 1 --k 10 --c 3`` -> 32x32x10, 760 parameters. ``--p`` also
takes 'valid' (0), 'same' ((f-1)/2, stride 1) or 'full' (f-1).
"""
from __future__ import annotations

import argparse

from .common import CLIError, positive_int

ORDER = 50


def _padding(text):
    t = text.lower()
    if t in ("valid", "same", "full"):
        return t
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer or valid/same/full, "
                                         f"got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer or valid/same/full, "
                                         f"got {text!r}")
    return v


def register(sub):
    p = sub.add_parser("shape", help="output size and parameters of a conv layer",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=positive_int, required=True, help="input height = width")
    p.add_argument("--f", type=positive_int, required=True, help="filter size")
    p.add_argument("--p", type=_padding, default=0, help="padding (default 0)")
    p.add_argument("--s", type=positive_int, default=1, help="stride (default 1)")
    p.add_argument("--k", type=positive_int, default=1, help="number of filters (default 1)")
    p.add_argument("--c", type=positive_int, default=1, help="input channels (default 1)")
    p.set_defaults(func=run)


def conv_shape(n, f, p=0, s=1, k=1, c=1):
    """-> dict(pad, out, exact (the unfloored value), params, fc_params) for one conv layer."""
    if p == "valid":
        p = 0
    elif p == "full":
        p = f - 1
    elif p == "same":
        if s != 1:
            raise CLIError(f"padding 'same' keeps the size only at stride 1, got --s {s}")
        if f % 2 == 0:
            raise CLIError(f"padding 'same' needs an odd filter size ((f-1)/2 each side), got --f {f}")
        p = (f - 1) // 2
    span = n + 2 * p - f
    if span < 0:
        raise CLIError(f"the filter does not fit: f={f} is larger than the padded input "
                       f"n + 2p = {n + 2 * p}")
    out = span // s + 1
    return {"pad": p, "out": out, "exact": span / s + 1, "params": (f * f * c + 1) * k,
            "fc_params": (n * n * c + 1) * out * out * k}


def run(args):
    r = conv_shape(args.n, args.f, args.p, args.s, args.k, args.c)
    n, f, p, s, k, c = args.n, args.f, r["pad"], args.s, args.k, args.c
    out = r["out"]
    print(f"input {n}x{n}x{c}, {k} filter{'s' if k > 1 else ''} {f}x{f}x{c}, stride {s}, "
          f"padding {p}")
    fit = "" if r["exact"] == out else (
        f"  (the formula gives {r['exact']:.4g}: the filter does not fit evenly, so the "
        f"last {span_left(n, f, p, s)} row(s)/column(s) are skipped; floor)")
    print(f"output {out}x{out}x{k}   floor(({n} + 2*{p} - {f}) / {s}) + 1 = {out}{fit}")
    print(f"parameters {r['params']:,}   ({f}*{f}*{c} + 1) * {k}   (independent of the image size)")
    print(f"a fully connected layer between the same volumes would need {r['fc_params']:,} "
          f"parameters   ({n}*{n}*{c} + 1) * {out}*{out}*{k}")
    return 0


def span_left(n, f, p, s):
    """Input rows (padded) that no window reaches when the stride does not divide."""
    return (n + 2 * p - f) % s
