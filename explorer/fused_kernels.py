"""numba kernels on CPU, driven by explorer.fused (imported lazily there; numba brings its own LLVM, so they compile
without a system compiler, once per machine: cache=True keeps the machine code on disk). One file on purpose:
numba's cache notices a change to a kernel's own file only, not to a function it calls from another file.

Fake quantization:
- element rounding of one row (`_quantize_row`: integers, minifloats, code books) and the scales of its spans
  (`_row_scales`), every step the reference's float32 operation (explorer.quantize; these kernels take no fastmath);
- `span_extremes`, `row_absmax`: W's statistics by integer reductions over the float bits;
- `fake_quantize_spans`, `fake_quantize_rows`: Ŵ = dequantize(quantize(W)) bit for bit, signs of zero included,
  each row read once into L1 (its statistics, scales and values) and written once; or, given one scale for the
  whole tensor, its values alone.
Layer Lab's analysis (explorer.analysis_blocks.LayerReducer):
- `quantize_reduce_rows`: rows of W quantized by the same row functions and reduced in the same read: the error
  e = Ŵ - W, its square, row and column sums, non-zero counts, clipped weights, sum W e and the windowed maxima of
  the heatmap; `reduce_rows`: the reduction alone, of a Ŵ computed elsewhere (explorer.fast_paths);
- `weight_rows`: the format-independent statistics of W (explorer.analysis.weight_stats): the bit-pattern cells of
  its histogram (explorer.histogram.CellCounts), non-zero count, sum W^2 per row, min and max per 16 inputs, the
  max-pooled |W| heatmap.
Exact where the torch paths are exact: Ŵ, counts, cells, extremes, e and e^2, the max-pooled heatmaps. Sums
accumulate in float64 (more accurate than torch's float32 sums; their order is free: `_reduce_row` and
`_sum_squares` alone take fastmath 'reassoc', which lets LLVM vectorize their sums and touches no single operation).
A bfloat16 W arrives as its bits (uint16) and is widened a row at a time in L1 (x16; x32 is then empty): a float32
row is bits << 16, and a float32 Ŵ rounds to bfloat16 half to even as (bits + 0x7FFF + bit 16) >> 16.
Inner loops run `for u in range(span)` over `c0 + u` and choose with selects, never min / max: LLVM vectorizes
those forms only.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["INT", "MINIFLOAT", "CODEBOOK", "span_extremes", "row_absmax", "fake_quantize_rows", "fake_quantize_spans",
           "quantize_reduce_rows", "reduce_rows", "weight_rows"]

INT, MINIFLOAT, CODEBOOK = 0, 1, 2  # element rounding rules (explorer.fused.plan picks one per format)
# scale rules (explorer.fused.scale_plan): quantize.element_scales symmetric / asymmetric, E8M0 (MX), NVFP4
S_SYM, S_ASYM, S_E8M0, S_NVFP4 = 0, 1, 2, 3
EXP_MASK = np.uint32(0x7F800000)    # float32 exponent bits: as a float, 2^floor(log2 |y|)
MAGIC = np.float32(1.5 * 2.0 ** 23)  # (y + MAGIC) - MAGIC rounds |y| < 2^22 to an integer, half to even
BF16_MAX = np.float32(3.3895313892515355e38)  # bfloat16's largest finite value, a float32


@njit(nogil=True, cache=True)
def _int_row(xr, si, zi, scol, zcol, n_spans, span, lo, hi, pre, post, hrow):  # pragma: no cover
    for j in range(n_spans):
        s = si[j if scol else 0]
        z = zi[j if zcol else 0]
        c0 = j * span
        for u in range(span):
            c = c0 + u
            t = (xr[c] / s + z) * pre
            t = t if t > lo else lo
            t = t if t < hi else hi
            q = (t + MAGIC) - MAGIC  # +0.0 for a zero code, as the integer codes give
            hrow[c] = ((q - z) * post) * s


@njit(nogil=True, cache=True)
def _minifloat_row(xr, si, scol, n_spans, span, fmax, kmag, emin_bits, signed, hrow, cbuf):  # pragma: no cover
    hb = hrow.view(np.uint32)
    cf = cbuf.view(np.float32)
    n = n_spans * span
    for j in range(n_spans):
        s = si[j if scol else 0]
        d = s if s > 0 else np.float32(1.0)
        c0 = j * span
        for u in range(span):
            c = c0 + u
            a = abs(xr[c] / d)
            hrow[c] = a if a < fmax else fmax
    for c in range(n):  # the rounding does not depend on the span: whole rows, long vectorized loops
        b = hb[c] & EXP_MASK
        cbuf[c] = b if b > emin_bits else emin_bits  # 2^max(e, emin): the step is it * 2^-mantissa
    for c in range(n):
        k = kmag * cf[c]  # exact: a power of two times 1.5 * 2^(23 - mantissa bits)
        v = math.copysign((hrow[c] + k) - k, xr[c])  # the float8 casts keep the sign of a zero,
        hrow[c] = v if signed else v + np.float32(0.0)  # FP4 gives +0 (primitives.round_fp4)
    for j in range(n_spans):
        s = si[j if scol else 0]
        c0 = j * span
        if s == 0:  # an NVFP4 block whose E4M3 scale underflowed: code 0, +0.0, everywhere
            for u in range(span):
                hrow[c0 + u] = 0.0
        else:
            for u in range(span):
                hrow[c0 + u] *= s


@njit(nogil=True, cache=True)
def _codebook_row(xr, si, scol, n_spans, span, mids, values, hrow, cbuf):  # pragma: no cover
    for j in range(n_spans):
        s = si[j if scol else 0]
        c0 = j * span
        for u in range(span):  # mids is a tuple: the loop over it unrolls and the one over elements vectorizes
            c = c0 + u
            y = xr[c] / s
            k = 0
            for b in mids:
                k += y > b
            cbuf[c] = k
        for u in range(span):  # the lookup in a loop of its own (in the loop above it stops vectorization)
            c = c0 + u
            hrow[c] = values[cbuf[c]] * s


@njit(nogil=True, cache=True)
def _quantize_row(kind, xr, si, zi, n_spans, span, p, emin_bits, mids, book, hrow, cbuf):  # pragma: no cover
    """hrow[:n_spans * span] <- Ŵ of one row xr (float32), given its scales si and zero points zi [n_spans or 1]."""
    scol, zcol = si.shape[0] > 1, zi.shape[0] > 1
    if kind == INT:
        _int_row(xr, si, zi, scol, zcol, n_spans, span, p[0], p[1], p[2], p[3], hrow)
    elif kind == MINIFLOAT:
        _minifloat_row(xr, si, scol, n_spans, span, p[4], p[5], emin_bits, p[6] != 0, hrow, cbuf)
    else:
        _codebook_row(xr, si, scol, n_spans, span, mids, book, hrow, cbuf)


@njit(nogil=True, cache=True)
def _widen_bf16(xi, n_in, xrow):  # pragma: no cover
    xb = xrow.view(np.uint32)
    for c in range(n_in):
        xb[c] = np.uint32(xi[c]) << np.uint32(16)


@njit(nogil=True, cache=True)
def _rows(x32, x16):  # pragma: no cover
    """The number of rows of W, given as x32 [n, n_in] float32 or as bfloat16 bits x16 [n, n_in] (the other
    empty)."""
    return x16.shape[0] if x16.shape[1] > 0 else x32.shape[0]


@njit(nogil=True, cache=True)
def _row(x32, x16, i, n_in, xrow):  # pragma: no cover
    """Row i of W in float32: x32's own row, or x16's bits widened into xrow (L1 scratch)."""
    if x16.shape[1] > 0:
        _widen_bf16(x16[i], n_in, xrow)
        return xrow
    return x32[i]


@njit(nogil=True, cache=True)
def _round_bf16(hrow, n_in):  # pragma: no cover
    """hrow's float32 values rounded to bfloat16 (half to even), in place; returns their bits as a uint32 view."""
    hb = hrow.view(np.uint32)
    for c in range(n_in):
        b = hb[c]
        hb[c] = (b + np.uint32(0x7FFF) + ((b >> np.uint32(16)) & np.uint32(1))) & np.uint32(0xFFFF0000)
    return hb


@njit(nogil=True, cache=True)
def _extremes_row(xr, n_spans, span, lo, hi):  # pragma: no cover
    """lo[j], hi[j] <- min and max of span j of the row, over order-preserving integer keys of the float bits
    (b ^ (sign ? 0x7FFFFFFF : 0): integer min / max reductions vectorize, float ones do not). NaN and Inf come out
    as an extreme (a NaN beyond +-Inf), -0.0 below +0.0."""
    xb = xr.view(np.int32)
    lb, hb = lo.view(np.int32), hi.view(np.int32)
    for j in range(n_spans):
        c0 = j * span
        m = np.int32(0x7FFFFFFF)
        mx = np.int32(-0x80000000)
        for u in range(span):
            b = xb[c0 + u]
            key = b ^ ((b >> np.int32(31)) & np.int32(0x7FFFFFFF))
            m = key if key < m else m
            mx = key if key > mx else mx
        lb[j] = m ^ ((m >> np.int32(31)) & np.int32(0x7FFFFFFF))  # the map is its own inverse
        hb[j] = mx ^ ((mx >> np.int32(31)) & np.int32(0x7FFFFFFF))


@njit(nogil=True, cache=True)
def span_extremes(x32, x16, n_in, span, lo, hi, xrow):  # pragma: no cover
    """W's min and max per span, lo and hi [n, n_in / span] float32, of x32 [n, n_in] float32 or bfloat16 bits x16
    (the other empty). A NaN or Inf in a span is its min or max."""
    for i in range(_rows(x32, x16)):
        _extremes_row(_row(x32, x16, i, n_in, xrow), n_in // span, span, lo[i], hi[i])


@njit(nogil=True, cache=True)
def fake_quantize_rows(kind, x32, x16, n_in, span, scales, zeros, p, mant_emin, mids, book, o32, o16, xrow, hrow,
                       cbuf):  # pragma: no cover
    """Ŵ of every row, bit for bit as explorer.quantize's dequantize(quantize(W)): into o32 [n, n_in] float32 for
    x32, or as bfloat16 bits into o16 [n, n_in] uint16 for bits x16 (the others empty). Arguments as for
    quantize_reduce_rows."""
    bf16 = x16.shape[1] > 0
    n = _rows(x32, x16)
    n_spans = n_in // span
    srow, zrow = scales.shape[0] > 1, zeros.shape[0] > 1
    emin_bits = np.uint32(mant_emin[1])
    for i in range(n):
        xr = _row(x32, x16, i, n_in, xrow)
        hr = hrow if bf16 else o32[i]  # a float32 Ŵ goes straight into the output row
        _quantize_row(kind, xr, scales[i if srow else 0], zeros[i if zrow else 0], n_spans, span, p, emin_bits,
                      mids, book, hr, cbuf)
        if bf16:
            hb = _round_bf16(hr, n_in)
            oi = o16[i]
            for c in range(n_in):
                oi[c] = np.uint16(hb[c] >> np.uint32(16))


@njit(nogil=True, cache=True)
def _absmax_row(xr, n_spans, span, amax):  # pragma: no cover
    """amax[j] <- max |x| over span j of the row: an integer max of the bits without their sign (NaN and Inf come
    out with an all-ones exponent field)."""
    xb = xr.view(np.uint32)
    ab = amax.view(np.uint32)
    for j in range(n_spans):
        c0 = j * span
        m = np.uint32(0)
        for u in range(span):
            b = xb[c0 + u] & np.uint32(0x7FFFFFFF)
            m = b if b > m else m
        ab[j] = m


@njit(nogil=True, cache=True)
def _row_scales(lo, hi, n_spans, sp, si, zi):  # pragma: no cover
    """si, zi [n_spans] <- the scales and zero points of one row's spans, bit for bit as explorer.quantize computes
    them, from their min and max lo, hi (asymmetric integers) or their absmax hi (every other rule). sp float32 =
    (rule, top, scale dtype (0 fp32, 1 fp16, 2 bf16), E8M0: emax of the element, NVFP4: FP32 tensor scale).
    Every step is the reference's float32 operation; rounding to the scale dtype is round half to even on the
    bits (fp16 subnormals by adding 0.75, whose float32 ulp is 2^-24). One branch-free loop per rule."""
    rule, top, store, extra = int(sp[0]), sp[1], int(sp[2]), sp[3]
    sb = si.view(np.uint32)
    hb = hi.view(np.uint32)
    zero, one = np.float32(0.0), np.float32(1.0)
    if rule == S_ASYM:  # zero is always inside the range
        for j in range(n_spans):
            lj = lo[j] if lo[j] < 0 else zero
            hj = hi[j] if hi[j] > 0 else zero
            si[j] = (hj - lj) / top if hj > lj else one
    elif rule == S_SYM:
        for j in range(n_spans):
            si[j] = hi[j] / top if hi[j] > 0 else one
    elif rule == S_E8M0:  # 2^(floor(log2 amax) - emax) from the exponent bits, within 2^-127 .. 2^127
        low, high, emax = np.int64(0x400000), np.int64(254 << 23), np.int64(extra) << 23
        for j in range(n_spans):
            e = np.int64(hb[j] & EXP_MASK) - emax
            e = e if e > low else low
            sb[j] = np.uint32(e if e < high else high)
    else:  # NVFP4: E4M3 block scale of amax / 6 / tensor scale (saturating), times the tensor scale
        step, k = np.uint32(121 << 23), np.float32(1.5 * 2.0 ** 20)  # 2^max(e, -6): E4M3's step * 2^3
        for j in range(n_spans):
            v = (hi[j] / np.float32(6.0)) / extra
            si[j] = v if v < np.float32(448.0) else np.float32(448.0)
        for j in range(n_spans):
            c = sb[j] & EXP_MASK
            zi[j] = si[j]
            sb[j] = c if c > step else step
        for j in range(n_spans):
            kc = k * si[j]
            si[j] = ((zi[j] + kc) - kc) * extra
    if rule == S_SYM or rule == S_ASYM:  # quantize.round_to_dtype: clamp to the dtype's range, round, back
        if store == 0:
            for j in range(n_spans):
                si[j] = si[j] if si[j] > np.float32(2.0 ** -149) else np.float32(2.0 ** -149)
        elif store == 1:
            for j in range(n_spans):
                v = si[j] if si[j] > np.float32(2.0 ** -24) else np.float32(2.0 ** -24)
                v = v if v < np.float32(65504.0) else np.float32(65504.0)
                sub = (v + np.float32(0.75)) - np.float32(0.75)  # fp16 subnormals: multiples of 2^-24
                si[j] = v
                b = sb[j]
                sb[j] = (b + np.uint32(0xFFF) + ((b >> np.uint32(13)) & np.uint32(1))) & np.uint32(0xFFFFE000)
                si[j] = sub if v < np.float32(2.0 ** -14) else si[j]
        else:
            for j in range(n_spans):
                v = si[j] if si[j] > np.float32(2.0 ** -133) else np.float32(2.0 ** -133)
                si[j] = v if v < BF16_MAX else BF16_MAX
                b = sb[j]
                sb[j] = (b + np.uint32(0x7FFF) + ((b >> np.uint32(16)) & np.uint32(1))) & np.uint32(0xFFFF0000)
    for j in range(n_spans):
        zi[j] = zero
    if rule == S_ASYM:
        for j in range(n_spans):
            lj = lo[j] if lo[j] < 0 else zero
            z = np.float32(np.rint(-lj / si[j]))
            zi[j] = z if z < top else top  # >= +0: -lj >= 0


@njit(nogil=True, cache=True)
def fake_quantize_spans(kind, x32, x16, n_in, span, sp, p, mant_emin, mids, book, o32, o16, xrow, hrow, cbuf, lo,
                        hi, si, zi):  # pragma: no cover
    """Ŵ of every row in one read and one write, each row's scales from its own spans (_row_scales): for every
    granularity but per tensor (and NVFP4 given its tensor scale in sp). Arguments as for fake_quantize_rows;
    lo, hi, si, zi float32 [n_in / span]: scratch. Returns -1, or the first row holding NaN / Inf (Ŵ is then
    unfinished)."""
    bf16 = x16.shape[1] > 0
    n = _rows(x32, x16)
    n_spans = n_in // span
    emin_bits = np.uint32(mant_emin[1])
    lb, hb = lo.view(np.uint32), hi.view(np.uint32)
    asym = int(sp[0]) == S_ASYM
    for i in range(n):
        xr = _row(x32, x16, i, n_in, xrow)
        hr = hrow if bf16 else o32[i]  # a float32 Ŵ goes straight into the output row
        bad = 0
        if asym:
            _extremes_row(xr, n_spans, span, lo, hi)
            for j in range(n_spans):
                bad += (lb[j] & EXP_MASK) == EXP_MASK
        else:
            _absmax_row(xr, n_spans, span, hi)
        for j in range(n_spans):
            bad += (hb[j] & EXP_MASK) == EXP_MASK
        if bad:
            return i
        _row_scales(lo, hi, n_spans, sp, si, zi)
        _quantize_row(kind, xr, si, zi, n_spans, span, p, emin_bits, mids, book, hr, cbuf)
        if bf16:
            hb16 = _round_bf16(hr, n_in)
            oi = o16[i]
            for c in range(n_in):
                oi[c] = np.uint16(hb16[c] >> np.uint32(16))
    return -1


@njit(nogil=True, cache=True)
def row_absmax(x32, x16, n_in, amax, xrow):  # pragma: no cover
    """amax [n] float32 <- max |x| of each row of x32 [n, n_in] float32 or bfloat16 bits x16 (the other empty);
    a NaN / Inf in a row comes out with an all-ones exponent field."""
    for i in range(_rows(x32, x16)):
        _absmax_row(_row(x32, x16, i, n_in, xrow), 1, n_in, amax[i:i + 1])


# Layer Lab's analysis

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


# The statistics of W

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
