"""Feature visualization that works on small nets (Olah et al. 2017, "Feature
Visualization"; Lucid): gradient ascent on a decorrelated image parameterization, with
transformation robustness and image priors.

- Parameterization: the image is sigmoid(real(IFFT2(S * P))), P a complex spectrum per
  channel, S = 1 / frequency^decay. A step on P moves all frequencies at the same speed
  in a whitened space, so the ascent cannot fill the image with the high-frequency
  patterns a pixel parameterization finds first (the "clutter" of plain ascent). The
  sigmoid keeps pixels in (0, 1) without clipping.
- Transformation robustness: each step scores a few copies of the image, each shifted,
  scaled and rotated at random; only what survives every transform is kept.
- Priors: total variation (smooth strokes) and L1 (little ink: a black background).
- Objective: a class score (dense output), a unit, or the mean of a conv channel.

It starts from a constant grey image (P = 0), never from a data image.

How to tell whether a class visualization looks like the class without asking a second
net (nets of one architecture share adversarial features): :func:`nearest_neighbours`
labels each image by its 5 nearest training images in pixel space, and compares its
distance to them with the distances of real test images (:func:`pixel_space_report`).
"""
from __future__ import annotations

import numpy as np

from .. import functional as F

from ._graph import backward_through, chain, forward_through, model_dtype, resolve_layer

__all__ = ["DIGIT_SETTINGS", "class_visualizations", "feature_visualization",
           "nearest_neighbours", "pixel_space_report", "plot_class_visualizations"]


def _spectrum_scale(h, w, decay):
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[None, :]
    f = np.sqrt(fy ** 2 + fx ** 2)
    return 1.0 / np.maximum(f, 1.0 / max(h, w)) ** decay


def _affine_sampler(h, w, angle, scale, dy, dx):
    """Bilinear sampling of an (h, w) image under rotation ``angle`` (radians), zoom
    ``scale`` and shift (dy, dx) about the centre. -> (idx (4, h*w), weights (4, h*w)),
    out.flat = sum_k weights[k] * img.flat[idx[k]] (0 outside the image)."""
    cy, cx = (h - 1) / 2, (w - 1) / 2
    yy, xx = np.meshgrid(np.arange(h) - cy - dy, np.arange(w) - cx - dx, indexing="ij")
    c, s = np.cos(angle) / scale, np.sin(angle) / scale
    sy, sx = c * yy - s * xx + cy, s * yy + c * xx + cx
    y0, x0 = np.floor(sy).astype(int), np.floor(sx).astype(int)
    fy, fx = sy - y0, sx - x0
    idx, wts = [], []
    for oy, ox, wt in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx),
                       (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        yi, xi = y0 + oy, x0 + ox
        ok = (yi >= 0) & (yi < h) & (xi >= 0) & (xi < w)
        idx.append(np.where(ok, yi * w + xi, 0).ravel())
        wts.append(np.where(ok, wt, 0.0).ravel())
    return np.array(idx), np.array(wts)


def _warp(img, idx, wts):
    """(C, H, W) -> (C, H, W) by a sampler of :func:`_affine_sampler`."""
    c, h, w = img.shape
    flat = img.reshape(c, -1)
    return (flat[:, idx] * wts).sum(axis=1).reshape(c, h, w)


def _warp_adjoint(g, idx, wts):
    """The transpose of :func:`_warp`: scatter the gradient back to the source pixels."""
    c, h, w = g.shape
    out = np.zeros((c, h * w))
    gf = g.reshape(c, -1)
    for k in range(4):
        for ch in range(c):
            out[ch] += np.bincount(idx[k], weights=gf[ch] * wts[k], minlength=h * w)
    return out.reshape(c, h, w)


def _objective(a, index, log_softmax=False):
    """Value and d value / d a of unit ``index`` of the batch output a (mean over the
    batch; the mean of a conv channel's map). ``log_softmax``: of log softmax(a)[index]
    instead (a class's log probability: it saturates once the class is certain, so the
    priors then clean the image instead of the ascent adding ever more evidence)."""
    n = a.shape[0]
    if a.ndim < 2 or not 0 <= index < a.shape[1]:
        raise ValueError(f"index {index} is out of range for a layer with {a.shape[1]} units "
                         f"or channels (output shape {a.shape[1:]})")
    if log_softmax:
        if a.ndim != 2:
            raise ValueError(f"log_softmax needs class scores (N, classes), got {a.shape}")
        logp = F.log_softmax(a.astype(np.float64), axis=1)
        d = -np.exp(logp) / n
        d[:, index] += 1.0 / n
        return float(logp[:, index].mean()), d
    d = np.zeros_like(a, dtype=np.float64)
    per = int(np.prod(a.shape[2:])) if a.ndim > 2 else 1
    d[:, index] = 1.0 / (n * per)
    return float(a[:, index].mean()), d


def _tv(img):
    """Total variation sum |x[i+1] - x[i]| (both axes) and its (sub)gradient."""
    g = np.zeros_like(img)
    dy = np.diff(img, axis=1)
    dx = np.diff(img, axis=2)
    sy, sx = np.sign(dy), np.sign(dx)
    g[:, 1:] += sy
    g[:, :-1] -= sy
    g[:, :, 1:] += sx
    g[:, :, :-1] -= sx
    return float(np.abs(dy).sum() + np.abs(dx).sum()), g


def feature_visualization(model, layer, index, steps=256, lr=0.05, decay=1.0, copies=4,
                          jitter=2, scale=(0.9, 1.1), rotate=10.0, tv=4.0, l1=8.0,
                          log_softmax=False, start=0.5, seed=0, input_shape=None):
    """Maximize unit / channel ``index`` of ``layer`` by Adam on the Fourier
    parameterization (module docstring).

    steps, lr: Adam steps and step size on the spectrum. decay: the spectrum's 1/f power.
    copies: randomly transformed copies scored per step; jitter (pixels), scale (range),
    rotate (degrees, +-): the transforms. tv, l1: weights of the priors, each on the
    mean over the image's pixels (the total variation per pixel, the mean ink), subtracted
    from the unit's value. log_softmax: maximize a class's log probability instead of its
    score (class scores only). start: the grey level of the constant start image (its
    logit is a fixed offset under the spectrum; 0.05 suits white-on-black digits). seed:
    the transforms.
    -> dict 'image' (C, H, W) in (0, 1), 'start_value' and 'value' (the unit on the constant
    start image and on the final one, untransformed),
    'history' (objective per step), 'layer', 'index'."""
    steps, copies = int(steps), int(copies)
    if steps < 1 or copies < 1:
        raise ValueError(f"steps and copies must be >= 1, got {steps} and {copies}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    links = chain(model)[:resolve_layer(model, layer) + 1]
    shape = tuple(input_shape or model.input_shape)
    if len(shape) != 3:
        raise ValueError(f"feature visualization needs (C, H, W) inputs, got {shape}")
    c, h, w = shape
    dtype = model_dtype(model)
    rng = np.random.default_rng(seed)
    s = _spectrum_scale(h, w, decay)
    s = s / np.sqrt((s ** 2).mean())
    p = np.zeros((c, h, w), dtype=np.complex128)
    m, v = np.zeros_like(p), np.zeros((c, h, w))
    npix = c * h * w

    if not 0 < start < 1:
        raise ValueError(f"start must be a grey level in (0, 1), got {start!r}")
    offset = np.log(start / (1 - start))

    def image_of(p):
        raw = np.real(np.fft.ifft2(p * s, norm="ortho")) + offset
        return raw, 1.0 / (1.0 + np.exp(-raw))

    # A unit behind a ReLU that is zero on every copy has no gradient: while it is dead the
    # ascent follows its pre-activation instead, so dead units come alive (as in maximize).
    relu_last = len(links) > 1 and type(links[-1][1]).__name__ in ("ReLU", "LeakyReLU")
    start_img = image_of(p)[1]
    start_value = _objective(forward_through(links, start_img[None].astype(dtype), cache=False),
                             int(index), log_softmax)[0]
    history = []
    for t in range(1, steps + 1):
        raw, img = image_of(p)
        samplers = []
        for _ in range(copies):
            ang = np.deg2rad(rng.uniform(-rotate, rotate)) if rotate else 0.0
            sc = rng.uniform(*scale) if scale else 1.0
            dy, dx = rng.integers(-jitter, jitter + 1, size=2) if jitter else (0, 0)
            samplers.append(_affine_sampler(h, w, ang, sc, dy, dx))
        batch = np.stack([_warp(img, *sp) for sp in samplers])
        a = forward_through(links, batch.astype(dtype), cache=True)
        value, da = _objective(a, int(index), log_softmax)
        if relu_last and not np.any(a[:, int(index)] > 0):
            links[-1][1].backward(da.astype(a.dtype))  # consume its cache; skip its mask
            gb = backward_through(links[:-1], da.astype(a.dtype)).astype(np.float64)
        else:
            gb = backward_through(links, da.astype(a.dtype)).astype(np.float64)
        g_img = sum(_warp_adjoint(gb[k], *samplers[k]) for k in range(copies))
        tv_val, tv_g = _tv(img)
        g_img = g_img - tv * tv_g / npix - l1 * np.sign(img) / npix
        history.append(value - tv * tv_val / npix - l1 * np.abs(img).sum() / npix)
        g_raw = g_img * img * (1 - img)
        g_p = s * np.fft.fft2(g_raw, norm="ortho")
        # Adam ascent on the complex spectrum (moments of real and imaginary parts)
        m = 0.9 * m + 0.1 * g_p
        v = 0.999 * v + 0.001 * (g_p.real ** 2 + g_p.imag ** 2) / 2
        p = p + lr * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
    _, img = image_of(p)
    final = forward_through(links, img[None].astype(dtype), cache=False)
    return {"image": img.astype(np.float32), "start_value": float(start_value),
            "value": _objective(final, int(index), log_softmax)[0],
            "history": history, "layer": links[-1][0], "index": int(index)}


#: Settings for class visualizations of digit nets (white ink on black), chosen on the
#: 5-NN criterion for the shipped LeNet-5, judged against 22,000 training digits with 1,000
#: held-out training digits as the distance reference (no test image took part).
DIGIT_SETTINGS = dict(steps=256, copies=8, scale=(0.8, 1.2), rotate=15.0, tv=8.0, l1=24.0,
                      start=0.05)


def class_visualizations(model, classes=None, **kwargs):
    """:func:`feature_visualization` of each class score (the layer before a trailing
    Softmax), with :data:`DIGIT_SETTINGS` unless ``kwargs`` say otherwise.
    -> list of result dicts."""
    from ._graph import score_layer

    layer = score_layer(model)
    n = chain(model)[layer][1].output_shape[0]
    classes = range(n) if classes is None else classes
    opts = {**DIGIT_SETTINGS, **kwargs}
    return [feature_visualization(model, layer, int(k), **opts) for k in classes]


def plot_class_visualizations(results, report=None, path=None, title=None):
    """The images in a row; with a :func:`pixel_space_report`, each titled with its
    5-NN label and distance (red when the label is wrong or the distance beyond the test
    digits' 99th percentile)."""
    from ._plot import new_figure, save_figure

    n = len(results)
    fig = new_figure(figsize=(1.6 * n, 2.3))
    for i, r in enumerate(results):
        ax = fig.add_subplot(1, n, i + 1)
        ax.imshow(r["image"][0] if r["image"].shape[0] == 1 else r["image"].transpose(1, 2, 0),
                  cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        text = f"class {r['index']}"
        bad = False
        if report is not None:
            lab, d = int(report["labels"][i]), float(report["distances"][i])
            bad = lab != r["index"] or d > report["test_p99"]
            text += f"\n5-NN: {lab}, d={d:.1f}"
        ax.set_title(text, fontsize=8, color="red" if bad else "black")
        ax.set_xticks([])
        ax.set_yticks([])
    if title is None and report is not None:
        title = (f"Class visualizations (Fourier parameterization, transforms, TV + L1): "
                 f"{report['correct']}/{n} labelled right by their 5 nearest training digits; "
                 f"real test digits lie at d = {report['test_median']:.1f} (median), "
                 f"{report['test_p99']:.1f} (99th pct.)")
    fig.suptitle(title or "Class visualizations", fontsize=8)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


def nearest_neighbours(images, x_ref, y_ref, k=5, chunk=2048):
    """Label each of ``images`` (N, ...) by a majority vote of its ``k`` nearest
    references ``x_ref`` (M, ...) in pixel space (Euclidean). -> (labels (N,), mean
    distance to the k nearest (N,), their indices (N, k))."""
    a = np.asarray(images, dtype=np.float64).reshape(len(images), -1)
    b = np.asarray(x_ref, dtype=np.float64).reshape(len(x_ref), -1)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"images have {a.shape[1]} pixels, the references {b.shape[1]}")
    b2 = (b ** 2).sum(axis=1)
    best_d = np.full((len(a), k), np.inf)
    best_i = np.zeros((len(a), k), dtype=np.int64)
    for s in range(0, len(b), chunk):
        d2 = (a ** 2).sum(axis=1)[:, None] + b2[None, s:s + chunk] - 2 * a @ b[s:s + chunk].T
        d = np.sqrt(np.maximum(d2, 0))
        cand_d = np.concatenate([best_d, d], axis=1)
        cand_i = np.concatenate([best_i, np.arange(s, s + d.shape[1])[None].repeat(len(a), 0)],
                                axis=1)
        order = np.argsort(cand_d, axis=1, kind="stable")[:, :k]
        best_d = np.take_along_axis(cand_d, order, axis=1)
        best_i = np.take_along_axis(cand_i, order, axis=1)
    votes = np.asarray(y_ref)[best_i]
    labels = np.array([np.bincount(v).argmax() for v in votes])
    return labels, best_d.mean(axis=1), best_i


def pixel_space_report(images, classes, x_train, y_train, x_test, k=5, n_test=1000):
    """Are class visualizations digits? For each image: the label of its ``k`` nearest
    training images and its mean distance to them; for reference, the same distance for
    the first ``n_test`` test images (median, 99th percentile).
    -> dict 'labels', 'distances', 'correct' (count), 'within_p99' (count),
    'test_median', 'test_p99'."""
    labels, dist, _ = nearest_neighbours(images, x_train, y_train, k)
    _, test_d, _ = nearest_neighbours(np.asarray(x_test)[:n_test], x_train, y_train, k)
    p99 = float(np.percentile(test_d, 99))
    return {"labels": labels, "distances": dist, "classes": np.asarray(classes),
            "correct": int((labels == np.asarray(classes)).sum()),
            "within_p99": int((dist <= p99).sum()), "mean_distance": float(dist.mean()),
            "test_median": float(np.median(test_d)), "test_p99": p99}
