"""numba kernels for the CPU analysis of a layer (imported lazily by explorer.fused; numba brings its own LLVM, so
they compile without a system compiler, once per machine: cache=True keeps the machine code on disk).

- `quantize_reduce_rows`: rows of W quantized (Ŵ in value units, the reference's float32 operations: explorer.quantize)
  and reduced in the same read: the error e = Ŵ - W, its square, row and column sums, non-zero counts, sum W e and
  the windowed maxima of the heatmap. One pass over W instead of quantize_fast's ~6-10 and the reduction's ~9.
- `reduce_rows`: the reduction alone, of a Ŵ computed elsewhere (explorer.fast_paths).
Exact where the torch path is exact: Ŵ's values (every rounding is the reference's float32 operation, no fused or
reordered arithmetic: these kernels take no fastmath), counts, e and e^2, the max-pooled heatmap. The sums accumulate
in float64 (more accurate than torch's float32 sums; their order is free: `_reduce_row` alone takes fastmath
'reassoc', which lets LLVM vectorize its sums and touches no single operation).
"""
from __future__ import annotations

import numpy as np
from numba import njit

INT, MINIFLOAT, CODEBOOK = 0, 1, 2  # element rounding rules (explorer.fused.plan picks one per format)
EXP_MASK = np.uint32(0x7F800000)    # float32 exponent bits: as a float, 2^floor(log2 |y|)
MAGIC = np.float32(1.5 * 2.0 ** 23)  # (y + MAGIC) - MAGIC rounds |y| < 2^22 to an integer, half to even


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
def _int_row(xr, si, zi, scol, zcol, n_spans, span, lo, hi, pre, post, hrow):  # pragma: no cover
    for j in range(n_spans):
        s = si[j if scol else 0]
        d = s if s > 0 else np.float32(1.0)
        z = zi[j if zcol else 0]
        c0 = j * span
        for u in range(span):  # not range(c0, ...): LLVM vectorizes this form only
            c = c0 + u
            t = (xr[c] / d + z) * pre
            t = t if t > lo else lo  # selects, not min / max: those keep LLVM from vectorizing
            t = t if t < hi else hi
            q = (t + MAGIC) - MAGIC
            hrow[c] = ((q - z) * post) * s


@njit(nogil=True, cache=True)
def _minifloat_row(xr, si, scol, n_spans, span, fmax, kmag, emin_bits, hrow, cbuf):  # pragma: no cover
    hb = hrow.view(np.uint32)
    cf = cbuf.view(np.float32)
    for j in range(n_spans):
        s = si[j if scol else 0]
        d = s if s > 0 else np.float32(1.0)
        c0 = j * span
        for u in range(span):
            c = c0 + u
            a = abs(xr[c] / d)
            hrow[c] = a if a < fmax else fmax
        for u in range(span):
            c = c0 + u
            b = hb[c] & EXP_MASK
            cbuf[c] = b if b > emin_bits else emin_bits  # 2^max(e, emin): the step is it * 2^-mantissa
        for u in range(span):
            c = c0 + u
            k = kmag * cf[c]  # exact: a power of two times 1.5 * 2^(23 - mantissa bits)
            q = (hrow[c] + k) - k
            hrow[c] = (q if xr[c] >= 0 else -q) * s


@njit(nogil=True, cache=True)
def _codebook_row(xr, si, scol, n_spans, span, mids, values, hrow, cbuf):  # pragma: no cover
    for j in range(n_spans):
        s = si[j if scol else 0]
        d = s if s > 0 else np.float32(1.0)
        c0 = j * span
        for u in range(span):  # mids is a tuple: the loop over it unrolls and the one over elements vectorizes
            c = c0 + u
            y = xr[c] / d
            k = 0
            for b in mids:
                k += y > b
            cbuf[c] = k
        for u in range(span):  # the lookup in a loop of its own (in the loop above it stops vectorization)
            c = c0 + u
            hrow[c] = values[cbuf[c]] * s


@njit(nogil=True, cache=True)
def quantize_reduce_rows(kind, x, n_in, span, scales, zeros, p, mant_emin, mids, book, bf16, e_out, hrow, cbuf,
                         r0, out_rows, fy, fx, row_e2, col_e2, win, heat, dot, counts):  # pragma: no cover
    """Rows r0 .. r0 + n of W, x [n, n_in] float32 C-contiguous, quantized and reduced (see _reduce_row).

    scales / zeros [n or 1, n_in / span or 1] float32: per span of `span` inputs (one row or column: broadcast);
    a zero scale (an NVFP4 block underflowed to 0) divides by 1 and gives Ŵ = 0, as the reference does.
    kind INT: y = (x / scale + zero) * pre, q = round-half-even(clamp(y, lo, hi)), Ŵ = ((q - zero) * post) * scale;
    MINIFLOAT: q = nearest minifloat (mantissa bits, smallest normal exponent 2^emin) to min(|x / scale|, fmax),
    Ŵ = +-q * scale; CODEBOOK: Ŵ = book[#{mids < x / scale}] * scale (torch.bucketize's ties).
    p float32 = (lo, hi, pre, post, fmax, 1.5 * 2^(23 - mantissa bits)); mant_emin int64 = (mantissa bits,
    biased float32 exponent field of 2^emin << 23); mids: the code book's float32 midpoints padded with +inf, a
    tuple of fixed length (the loop over it unrolls) and book its values (CODEBOOK; else unused).
    bf16: Ŵ rounded to bfloat16 (round half to even: the stored Ŵ of a bf16 W). e_out [n, n_in]: Ŵ - W
    written there when it has rows (the output error's staging). hrow float32 / cbuf uint32 [>= n_in]: scratch."""
    n = x.shape[0]
    n_spans = n_in // span
    srow, scol = scales.shape[0] > 1, scales.shape[1] > 1
    zrow, zcol = zeros.shape[0] > 1, zeros.shape[1] > 1
    lo, hi, pre, post, fmax, kmag = p[0], p[1], p[2], p[3], p[4], p[5]
    emin_bits = np.uint32(mant_emin[1])
    hb = hrow.view(np.uint32)
    stage = e_out.shape[0] > 0
    for i in range(n):
        xr = x[i]
        si, zi = scales[i if srow else 0], zeros[i if zrow else 0]
        if kind == INT:
            _int_row(xr, si, zi, scol, zcol, n_spans, span, lo, hi, pre, post, hrow)
        elif kind == MINIFLOAT:
            _minifloat_row(xr, si, scol, n_spans, span, fmax, kmag, emin_bits, hrow, cbuf)
        else:
            _codebook_row(xr, si, scol, n_spans, span, mids, book, hrow, cbuf)
        if bf16:
            for c in range(n_in):
                b = hb[c]
                hb[c] = (b + np.uint32(0x7FFF) + ((b >> np.uint32(16)) & np.uint32(1))) & np.uint32(0xFFFF0000)
        if stage:
            for c in range(n_in):
                e_out[i, c] = hrow[c] - xr[c]
        a, nh, ne = _reduce_row(xr, hrow, n_in, r0 + i, out_rows, fy, fx, row_e2, col_e2, win, heat)
        dot[0] += a
        counts[0] += nh
        counts[1] += ne
