"""numba kernels for the CPU analysis of a layer (imported lazily by explorer.fused; numba brings its own LLVM, so
they compile without a system compiler, once per machine: cache=True keeps the machine code on disk).

`reduce_rows` does in one read of a chunk what explorer.analysis_blocks.LayerReducer's torch path does in ~9 passes
over it (the error, two non-zero counts, a dot product, the squares, their row and column sums, the windowed row
maxima): every pass over a chunk in L2 costs about as much as the arithmetic of all of them together.
Exact where the torch path is exact (counts, e = Ŵ - W and e^2 in float32 IEEE arithmetic, the max-pooled heatmap);
the sums accumulate in float64 (more accurate than torch's float32 sums; their order is free: fastmath 'reassoc'
lets LLVM vectorize them and touches no single operation).
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(nogil=True, cache=True, fastmath={"reassoc"})
def reduce_rows(x, h, n_in, r0, out_rows, fy, fx, row_e2, col_e2, win, heat, dot, counts):  # pragma: no cover
    """One chunk of rows: x = W and h = Ŵ [n, width] float32 C-contiguous (columns n_in.. are padding, skipped),
    rows r0 .. r0 + n of a layer of out_rows rows.
    row_e2 [out_rows] float32 <- sum_c e^2 of each row (e = h - x); col_e2 [n_in] float64 += sum_r e^2;
    win [n_in] float32: max e^2 per column over the current window of fy rows (windows start at rows 0, fy, ...);
    a window's last row writes its heatmap row: heat[r // fy, j] = sqrt(max over columns j fx .. (j+1) fx of win);
    dot [1] float64 += sum x e; counts [2] int64 += (#h != 0, #e != 0)."""
    n = x.shape[0]
    cells = heat.shape[1]
    acc = 0.0
    nz_hat = 0
    nz_err = 0
    for i in range(n):
        r = r0 + i
        if r % fy == 0:
            for c in range(n_in):
                win[c] = 0.0  # every e^2 is >= +0
        rs = 0.0
        for c in range(n_in):
            xv = x[i, c]
            hv = h[i, c]
            e = hv - xv
            nz_hat += hv != 0
            nz_err += e != 0
            acc += np.float64(xv) * np.float64(e)
            e2 = e * e
            rs += np.float64(e2)
            col_e2[c] += np.float64(e2)
            m = win[c]
            win[c] = e2 if e2 > m else m
        row_e2[r] = np.float32(rs)
        if (r + 1) % fy == 0 or r + 1 == out_rows:
            wi = r // fy
            for j in range(cells):
                m = np.float32(0.0)
                for c in range(j * fx, min((j + 1) * fx, n_in)):
                    v = win[c]
                    m = v if v > m else m
                heat[wi, j] = np.sqrt(m)
    dot[0] += acc
    counts[0] += nz_hat
    counts[1] += nz_err
