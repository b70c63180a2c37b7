"""numba kernel of a layer's format-independent statistics on CPU (explorer.analysis.weight_stats through
explorer.fused): one read of W for what the torch path takes ~12 passes over each block for — the float bit-pattern
cells of W's histogram (explorer.histogram.CellCounts), the count of non-zero weights, the sum of W^2 per row, the
min and max per 16 inputs, and the max-pooled |W| heatmap. Exact where the torch path is exact (cells, counts,
extremes, pooled maxima, by integer operations on the bits); the sums of squares accumulate in float64.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from explorer.fused_kernels import _extremes_row, _row, _rows

__all__ = ["weight_rows"]


@njit(nogil=True, cache=True, fastmath={"reassoc"})
def _sum_squares(xr, n_in):  # pragma: no cover
    """sum of x^2 over the row: float32 squares, summed in float64 (their order is free: fastmath 'reassoc')."""
    s = 0.0
    for c in range(n_in):
        v = xr[c]
        s += np.float64(v * v)
    return s


@njit(nogil=True, cache=True)
def weight_rows(x32, x16, n_in, shift, counts, row_sq, fy, fx, pooled, s_min, s_max, lo, hi, xrow, win,
                cell_max):  # pragma: no cover
    """The statistics of W, x32 [n, n_in] float32 or bfloat16 bits x16 [n, n_in] (the other empty), row by row.

    counts [cells] int64 += W's values per CellCounts cell: ((b + (b >> 31)) >> shift) & (cells - 1) for bit
    pattern b; row_sq [n] float64 <- sum W^2 per row; s_min, s_max [n, n_in / 16] float32 <- min and max per 16
    inputs when they have columns, else lo, hi [n] <- each row's min and max; pooled [ceil(n / fy), ceil(n_in /
    fx)] float32 <- max |W| over windows of fy rows (from row 0) and fx columns; xrow float32, win uint32
    [>= n_in], cell_max uint32 [ceil(n_in / fx)]: scratch. NaN / Inf come out as extremes. Returns the number of
    non-zero weights."""
    mask = np.int32(counts.shape[0] - 1)
    sh = np.int32(shift)
    n = _rows(x32, x16)
    per16 = s_min.shape[1] > 0
    nonzero = 0
    cells = pooled.shape[1]
    cell_max_f = cell_max.view(np.float32)
    for i in range(n):
        xr = _row(x32, x16, i, n_in, xrow)
        xb = xr.view(np.int32)
        for c in range(n_in):  # a scatter: one increment per weight
            b = xb[c]
            counts[((b + (b >> np.int32(31))) >> sh) & mask] += 1
        nz = 0
        for c in range(n_in):
            nz += (xb[c] & np.int32(0x7FFFFFFF)) != 0
        nonzero += nz
        row_sq[i] = _sum_squares(xr, n_in)
        if per16:
            _extremes_row(xr, n_in // 16, 16, s_min[i], s_max[i])
        else:
            _extremes_row(xr, 1, n_in, lo[i:i + 1], hi[i:i + 1])
        if i % fy == 0:
            for c in range(n_in):
                win[c] = 0
        for c in range(n_in):  # max |W| per column over the window: an integer max of the bits without sign
            a = np.uint32(xb[c] & np.int32(0x7FFFFFFF))
            win[c] = a if a > win[c] else win[c]
        if (i + 1) % fy == 0 or i + 1 == n:
            for j in range(cells):
                m = np.uint32(0)
                for c in range(j * fx, min((j + 1) * fx, n_in)):
                    m = win[c] if win[c] > m else m
                cell_max[j] = m
            pooled[i // fy, :] = cell_max_f  # the bits as float32: max |W| of each cell
    return nonzero
