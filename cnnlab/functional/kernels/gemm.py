"""GEMM shapes that keep OpenBLAS in its fast kernels (tiny x long operands, in blocks)."""

from __future__ import annotations

import numpy as np

# A GEMM whose small operand is tiny (6 filters x 25 taps, the weights of a conv on a
# gray or RGB image) against a very long one (every pixel of the batch) runs 1.5-3x
# faster in blocks of ~1k columns than in one call: OpenBLAS otherwise streams the long
# operand through its packing routine out of cache. The blocks go to one batched matmul
# (a stack of (.., 1024) views: NumPy loops over them in C). Measured, one thread:
# (6,25)@(25,50176) 0.43 -> 0.25 ms, its dw (6,50176)@(50176,25) 0.85 -> 0.26 ms,
# (32,27)@(27,65536) dw 2.5 -> 1.4 ms; with a larger small operand (16x150 and up)
# blocking gained nothing.
GEMM_BLOCK = 1024


def _blocked(small):
    return small <= 1200


def _stacked(a):
    """a (rows, cols) as a stack of column blocks (blocks, rows, GEMM_BLOCK) -- a view --
    and the leftover columns (rows, < GEMM_BLOCK)."""
    nb = a.shape[1] // GEMM_BLOCK
    mid = nb * GEMM_BLOCK
    stack = a[:, :mid].reshape(a.shape[0], nb, GEMM_BLOCK).transpose(1, 0, 2)
    return stack, a[:, mid:]


def gemm_blocked(w, cols, out):
    """out = w @ cols, in column blocks when w is tiny."""
    if not _blocked(w.size):
        np.matmul(w, cols, out=out)
        return
    (cs, cr), (os_, or_) = _stacked(cols), _stacked(out)
    if len(cs):
        np.matmul(w, cs, out=os_)
    if cr.shape[1]:
        np.matmul(w, cr, out=or_)


def column_sums(a):
    """a (M, K) -> (K,) sums over the rows, as a GEMV (ones @ a): 17x faster than
    a.sum(axis=0) for a (6400, 16) gradient. Called inside the parts of parallel(), where
    BLAS is single-threaded: a multi-threaded BLAS call outside them leaves OpenBLAS's
    threads spin-waiting for ~ms, and they then steal the core from the next parallel op
    (measured: a 64x64x16x16 -> 128 conv backward 29 -> 49 ms)."""
    return np.ones(a.shape[0], dtype=a.dtype) @ a


def gemm_nt_blocked(a, b):
    """a @ b.T, summed over column blocks when both are short. Computed as the transpose
    of b @ a.T, which OpenBLAS runs 1.2-1.8x faster for these shapes (measured
    (16,6400)@(6400,150): 0.42 -> 0.24 ms)."""
    if not _blocked(a.shape[0] * b.shape[0]):
        return np.matmul(b, a.T).T
    (as_, ar), (bs, br) = _stacked(a), _stacked(b)
    out = np.matmul(bs, as_.transpose(0, 2, 1)).sum(axis=0) if len(bs) else 0
    if br.shape[1]:
        out = out + br @ ar.T
    return out.T
