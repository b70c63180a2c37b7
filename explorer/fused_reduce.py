"""numba kernels of Layer Lab's analysis on CPU (explorer.analysis_blocks.LayerReducer through explorer.fused):
- `quantize_reduce_rows`: rows of W quantized (explorer.fused_kernels' row functions) and reduced in the same read:
  the error e = Ŵ - W, its square, row and column sums, non-zero counts, clipped weights, sum W e and the windowed
  maxima of the heatmap. One read of W instead of the torch fast path's ~6-10 passes and the reduction's ~9;
- `reduce_rows`: the reduction alone, of a Ŵ computed elsewhere (explorer.fast_paths).
Exact where the torch path is exact: Ŵ, counts, e and e^2, the max-pooled heatmap. The sums accumulate in float64
(more accurate than torch's float32 sums; their order is free: `_reduce_row` alone takes fastmath 'reassoc', which
lets LLVM vectorize its sums and touches no single operation).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from explorer.fused_kernels import S_ASYM, _quantize_row, _round_bf16, _row, _row_scales, _rows

__all__ = ["quantize_reduce_rows", "reduce_rows"]


@njit(nogil=True, cache=True, fastmath={"reassoc"})
def _reduce_row(xr, hr, n_in, r, out_rows, fy, fx, row_e2, col_e2, win, heat):  # pragma: no cover
    """Row r of the layer: x = W and h = Ŵ [>= n_in] float32. row_e2[r] <- sum e^2 (float32 of a float64 sum);
    col_e2 [n_in] float64 += e^2; win [n_in] float32: max e^2 per column over the window of fy rows holding r
    (windows start at rows 0, fy, ...); the window's last row writes its heatmap row: heat[r // fy, j] =
    sqrt(max of win over columns j fx .. (j+1) fx). Returns (sum x e float64, #h != 0, #e != 0)."""
    if r % fy == 0:
        for c in range(n_in):
            win[c] = 0.0  # every e^2 is >= +0
    acc = 0.0
    rs = 0.0
    nz_hat = 0
    nz_err = 0
    for c in range(n_in):
        xv = xr[c]
        hv = hr[c]
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
        for j in range(heat.shape[1]):
            m = np.float32(0.0)
            for c in range(j * fx, min((j + 1) * fx, n_in)):
                v = win[c]
                m = v if v > m else m
            heat[wi, j] = np.sqrt(m)
    return acc, nz_hat, nz_err


@njit(nogil=True, cache=True)
def reduce_rows(x, h, n_in, r0, out_rows, fy, fx, row_e2, col_e2, win, heat, dot, counts):  # pragma: no cover
    """One chunk of rows: x = W and h = Ŵ [n, width] float32 C-contiguous (columns n_in.. are padding, skipped),
    rows r0 .. r0 + n of a layer of out_rows rows (see _reduce_row); dot [1] float64 += sum x e;
    counts [2] int64 += (#h != 0, #e != 0)."""
    for i in range(x.shape[0]):
        a, nh, ne = _reduce_row(x[i], h[i], n_in, r0 + i, out_rows, fy, fx, row_e2, col_e2, win, heat)
        dot[0] += a
        counts[0] += nh
        counts[1] += ne


@njit(nogil=True, cache=True)
def _clipped(xr, si, zi, n_spans, span, c_lo, c_hi):  # pragma: no cover
    """Weights of the row beyond their span's clip bounds (c - zero) * scale for c = c_lo, c_hi (the extreme
    levels plus half a step: metrics.clip_bounds); a span whose scale is 0 clips nothing."""
    scol, zcol = si.shape[0] > 1, zi.shape[0] > 1
    count = 0
    for j in range(n_spans):
        s = si[j if scol else 0]
        if s == 0:
            continue
        z = zi[j if zcol else 0]
        a, b = (c_lo - z) * s, (c_hi - z) * s
        c0 = j * span
        for u in range(span):
            v = xr[c0 + u]
            count += (v < a) + (v > b)
    return count


@njit(nogil=True, cache=True)
def quantize_reduce_rows(kind, x32, x16, n_in, span, scales, zeros, sp, lo, hi, amax, p, mant_emin, mids, book,
                         e_out, xrow, hrow, cbuf, r0, out_rows, fy, fx, row_e2, col_e2, win,
                         heat, dot, counts):  # pragma: no cover
    """Rows r0 .. r0 + n of W quantized and reduced (see _reduce_row): x32 [n, n_in] float32, or for a bfloat16 W
    its bits x16 [n, n_in] uint16 (x32 then empty, and Ŵ is rounded to bfloat16 as the stored Ŵ is).

    scales / zeros [n or 1, n_in / span or 1] float32: per span of `span` inputs (one row or column: broadcast);
    a zero scale (an NVFP4 block underflowed to 0) gives Ŵ = +0, as the reference does. With lo and hi, W's min
    and max per span [n, n_in / span] (else empty), the kernel writes the scales and zero points [n, n_in / span]
    there itself, from them by the rule sp (see _row_scales; amax [n_in / span]: scratch).
    kind INT: y = (x / scale + zero) * pre, q = round-half-even(clamp(y, lo, hi)), Ŵ = ((q - zero) * post) * scale;
    MINIFLOAT: q = nearest minifloat (mantissa bits, smallest normal exponent 2^emin) to min(|x / scale|, fmax),
    Ŵ = q * scale with x's sign (signed zero: a zero keeps it, as torch's float8 casts; else +0 as FP4);
    CODEBOOK: Ŵ = book[#{mids < x / scale}] * scale (torch.bucketize's ties).
    p float32 = (lo, hi, pre, post, fmax, 1.5 * 2^(23 - mantissa bits), signed zero); mant_emin int64 = (mantissa
    bits, biased float32 exponent field of 2^emin << 23); mids: the code book's float32 midpoints padded with +inf,
    a tuple of fixed length (the loop over it unrolls) and book its values (CODEBOOK; else unused).
    p[7], p[8]: the clip levels (see _clipped). e_out [n, n_in]: Ŵ - W written there when it has rows (the output
    error's staging). xrow, hrow float32 and cbuf uint32 [>= n_in]: scratch. counts [3] int64 += (#Ŵ != 0,
    #e != 0, #clipped)."""
    bf16 = x16.shape[1] > 0
    n = _rows(x32, x16)
    n_spans = n_in // span
    srow, zrow = scales.shape[0] > 1, zeros.shape[0] > 1
    emin_bits = np.uint32(mant_emin[1])
    stage = e_out.shape[0] > 0
    known, asym = lo.shape[0] > 0, int(sp[0]) == S_ASYM
    for i in range(n):
        xr = _row(x32, x16, i, n_in, xrow)
        if known and asym:
            _row_scales(lo[i], hi[i], n_spans, sp, scales[i], zeros[i])
        elif known:
            li, hi_ = lo[i], hi[i]
            for j in range(n_spans):
                a, b = abs(li[j]), abs(hi_[j])
                amax[j] = a if a > b else b
            _row_scales(li, amax, n_spans, sp, scales[i], zeros[i])
        _quantize_row(kind, xr, scales[i if srow else 0], zeros[i if zrow else 0], n_spans, span, p, emin_bits,
                      mids, book, hrow, cbuf)
        counts[2] += _clipped(xr, scales[i if srow else 0], zeros[i if zrow else 0], n_spans, span, p[7], p[8])
        if bf16:
            _round_bf16(hrow, n_in)
        if stage:
            for c in range(n_in):
                e_out[i, c] = hrow[c] - xr[c]
        a, nh, ne = _reduce_row(xr, hrow, n_in, r0 + i, out_rows, fy, fx, row_e2, col_e2, win, heat)
        dot[0] += a
        counts[0] += nh
        counts[1] += ne
