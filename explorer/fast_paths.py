"""The fast path of fake quantization: Ŵ = dequantize(quantize(W)) bit for bit, near the memory-copy floor.

Fake quantization is memory-bound: the floor is one read and one write of W (`w.clone()`). The reference path
(explorer.quantize) is written for clarity: whole-tensor temporaries, codes, then a table lookup back. Here:
- rows are processed in chunks of ~128K elements, every op runs in place on preallocated float32 scratch
  buffers that stay in the L2 cache, and Ŵ is computed in value units (no codes, no table lookup);
- rounding is arithmetic, never a binary search or a gather over the whole tensor:
  * integers, round half to even: (y + 1.5·2^23) - 1.5·2^23. One float32 addition rounds to the integer grid
    (exact for |y| < 2^22, guaranteed by clamping to the code range first, which commutes with rounding to an
    integer grid) and a zero result comes back as +0.0, as the integer codes do;
  * minifloats (FP8 E4M3 / E5M2, FP4 E2M1, OCP OFP8 v1.0 / OCP MX v1.0): the same trick with the step of y's own
    binade, c = 1.5·2^23 · 2^(max(e, emin) - mantissa_bits), e = floor(log2|y|) read from y's float32 exponent
    bits: round to nearest, ties to the even mantissa, exactly as torch's float8 casts and the FP4 rule;
  * code books (NF4, QLoRA arXiv 2305.14314): a uniform grid of cells over the book's range holds at most one
    decision boundary per cell, so index = first[cell] + (y > boundary[cell]) with two small-table
    index_selects, ties going to the lower entry as torch.bucketize does.
tests/test_fast_paths.py checks every format at every granularity, codes and scales included, against the
reference path, bit for bit (signs of zero included).
"""
from __future__ import annotations

import functools
import math

import torch

from explorer import primitives as P
from explorer import quantize as Q
from explorer.specs import Granularity, Kind, QuantSpec, ScaleEncoding

_MAGIC = 1.5 * 2.0 ** 23       # adding it rounds a float32 |y| < 2^22 to an integer, half to even
_EXP_MASK = 0x7F800000         # float32 exponent bits: (bits & mask) viewed as float = 2^floor(log2|y|)

# Minifloat element formats: (mantissa bits, smallest normal exponent, largest finite value, keeps -0.0).
# torch's float8 casts keep the sign of a value that rounds to zero; the FP4 rule (primitives.round_fp4) gives +0.
MINIFLOATS = {
    "fp8_e4m3": (3, -6, 448.0, True),
    "fp8_e5m2": (2, -14, 57344.0, True),
    "fp4_e2m1": (1, 0, 6.0, False),
}


def _round_integer_(t: torch.Tensor, lo: float, hi: float, clamp: bool = True) -> torch.Tensor:
    """In place: t -> round-half-even(t) clamped to [lo, hi] (integer bounds), +0.0 for a zero result.
    clamp=False: the caller knows lo - 0.5 < t < hi + 0.5 already (then rounding alone stays in range)."""
    return (t.clamp_(lo, hi) if clamp else t).add_(_MAGIC).sub_(_MAGIC)


def _saturates(element: str) -> float:
    """The smallest |y| that a minifloat element would round past its largest value (so needs clamping):
    the largest value plus half the step of its binade."""
    mant, _, fmax, _ = MINIFLOATS[element]
    return fmax + 2.0 ** (math.floor(math.log2(fmax)) - mant) / 2


def _round_minifloat_(t: torch.Tensor, sign_of: torch.Tensor, scratch: torch.Tensor, element: str,
                      clamp: bool = True) -> torch.Tensor:
    """In place: t -> the nearest value of a minifloat element (saturating), as float32.

    sign_of: a tensor with t's signs (the input before division by a positive scale), for formats whose cast
    keeps -0.0. scratch: an int32 tensor shaped like t. clamp=False: the caller knows |t| < _saturates(element).
    """
    mant, emin, fmax, signed_zero = MINIFLOATS[element]
    if clamp:
        t.clamp_(-fmax, fmax)
    c = torch.bitwise_and(t.view(torch.int32), _EXP_MASK, out=scratch).view(torch.float32)
    c.clamp_(min=2.0 ** emin).mul_(1.5 * 2.0 ** (23 - mant))  # 1.5 * 2^23 * (the grid step of t's binade)
    t.add_(c).sub_(c)
    if signed_zero:
        torch.copysign(t, sign_of, out=t)
    return t


@functools.lru_cache(maxsize=16)
def _codebook_tables(grid: tuple[float, ...], device: torch.device):
    """Tables for the cell lookup of a sorted code book, or None if no grid of <= 4096 cells separates its
    decision boundaries. Returns (a, b, cells, boundary [cells + 1], value [2 (cells + 1)], code [2 (cells + 1)]):
    cell = trunc(clamp(y * a + b, 0, cells)); index = first[cell] + (y > boundary[cell])."""
    g = torch.tensor(grid, dtype=torch.float32)
    mids = ((g[1:] + g[:-1]) / 2).double()  # the reference's float32 decision boundaries (primitives.round_codebook)
    lo, hi = grid[0], grid[-1]
    for cells in (2 ** k for k in range(4, 13)):
        a = cells / (hi - lo)
        b = -lo * a
        u = mids * a + b
        frac = u - u.floor()
        cell = u.floor().long()
        # Each boundary well inside its cell (float32 error in y * a + b stays far below the margin), one per cell.
        if bool(((frac < 1e-2) | (frac > 1 - 1e-2)).any()) or bool((cell[1:] == cell[:-1]).any()):
            continue
        starts = torch.arange(cells + 1, dtype=torch.float64)
        first = torch.searchsorted(u, starts, right=False)  # boundaries below each cell's start
        boundary = torch.full((cells + 1,), math.inf, dtype=torch.float32)
        boundary[cell] = mids.float()
        upper = (first + torch.isfinite(boundary).long()).clamp(max=len(grid) - 1)
        index = torch.cat([first, upper])
        value = g[index]
        code = index.to(torch.uint8)
        a32, b32 = float(torch.tensor(a, dtype=torch.float32)), float(torch.tensor(b, dtype=torch.float32))
        return a32, b32, cells, boundary.to(device), value.to(device), code.to(device)
    return None


class _Chunk:
    """Scratch buffers for one chunk of rows, sliced to the rows at hand."""

    def __init__(self, rows: int, width: int, device, need_x: bool, ints: int, floats: int):
        self.x = torch.zeros(rows, width, device=device) if need_x else None  # zero tail = group padding
        self.t = torch.empty(rows, width, device=device)
        self.i = [torch.empty(rows, width, dtype=torch.int32, device=device) for _ in range(ints)]
        self.f = [torch.empty(rows, width, device=device) for _ in range(floats)]


def quantize_fast(w: torch.Tensor, spec: QuantSpec, chunk_elements: int = 1 << 17,
                  with_result: bool = False, codes: bool = True) -> tuple[torch.Tensor, Q.QuantResult | None]:
    """(Ŵ [out, in] in w's dtype, the QuantResult when with_result) for a checked W [out, in].

    Ŵ equals dequantize(quantize(w, spec)) and the QuantResult equals quantize(w, spec), bit for bit.
    codes=False skips the codes (the result's codes are then a zero-strided placeholder of the right shape and
    dtype: for callers that need only the scales, such as explorer.analysis).
    Per-tensor statistics and NVFP4's tensor absmax come from one whole-tensor pass first, so each chunk uses
    the scale the reference path would; a NaN/Inf anywhere shows up in the statistics and raises ValueError.
    """
    fmt = spec.format
    out_rows, n_in = w.shape
    span = Q.span_of(spec, n_in)
    tensor_wide = spec.granularity is Granularity.TENSOR
    span_len = n_in if tensor_wide else span
    n_spans = -(-n_in // span_len)
    width = n_spans * span_len
    element = fmt.element if fmt.is_block else fmt.name
    book = _codebook_tables(fmt.grid, w.device) if fmt.kind is Kind.CODEBOOK else None
    if fmt.kind is Kind.CODEBOOK and book is None:  # pragma: no cover - NF4 always has tables
        return _reference_chunks(w, spec, chunk_elements), (Q.quantize(w, spec) if with_result else None)

    stats, tensor_amax = None, None
    if tensor_wide or fmt.scale_encoding is ScaleEncoding.E4M3:
        v = w.float() if w.dtype in (torch.float8_e4m3fn, torch.float8_e5m2) else w
        lo, hi = (m.float().reshape(1, 1, 1) for m in torch.aminmax(v))  # exact in any float dtype; one pass
        _check_finite((lo, hi))
        if tensor_wide:
            stats = (lo.clamp(max=0), hi.clamp(min=0)) if not spec.symmetric else torch.maximum(-lo, hi)
        else:
            tensor_amax = float(torch.maximum(-lo, hi))

    direct = w.dtype == torch.float32 and width == n_in and w.is_contiguous()
    rows = max(1, chunk_elements // width)
    minifloat = element in MINIFLOATS
    buf = _Chunk(min(rows, out_rows), width, w.device, need_x=not direct,
                 ints=2 if book else int(minifloat), floats=1 if book else 0)
    out = torch.empty(w.shape, dtype=w.dtype, device=w.device)
    codes_out = None
    parts: dict[str, list] = {"scales": [], "zeros": [], "scale_codes": []}
    if with_result and codes:
        codes_out = torch.empty(w.shape, dtype=_code_dtype(spec), device=w.device)

    seen: list[torch.Tensor] = []  # per-chunk statistics, checked for NaN/Inf once at the end
    for r0 in range(0, out_rows, rows):
        r = min(rows, out_rows - r0)
        if direct:
            x, t = w[r0:r0 + r], out[r0:r0 + r]
        else:
            buf.x[:r, :n_in].copy_(w[r0:r0 + r])
            x, t = buf.x[:r], buf.t[:r]
        xs, ts = x.view(r, n_spans, span_len), t.view(r, n_spans, span_len)
        scratch_i = [b[:r].view(r, n_spans, span_len) for b in buf.i]
        scratch_f = [b[:r].view(r, n_spans, span_len) for b in buf.f]
        chunk_codes = codes_out[r0:r0 + r] if codes_out is not None else None
        if fmt.is_block:
            torch.abs(xs, out=ts)
            amax = ts.amax(-1, keepdim=True)
            seen.append(amax)
            scales, scale_codes, tensor_scale = Q.block_scales(amax, spec, tensor_amax)
            parts["scale_codes"].append(scale_codes.squeeze(-1))
            _block_values(xs, ts, scales, spec, scratch_i, chunk_codes, n_in, amax)
        else:
            chunk_stats = stats if tensor_wide else _chunk_stats(xs, ts, spec)
            if not tensor_wide:
                seen.extend(chunk_stats if isinstance(chunk_stats, tuple) else (chunk_stats,))
                if book is not None:  # a NaN would index out of the tables: check before the lookups
                    _check_finite(chunk_stats)
            scales, zero = Q.element_scales(chunk_stats, spec)
            if zero is not None and (not tensor_wide or r0 == 0):
                parts["zeros"].append(zero.squeeze(-1))
            y_max = None if zero is not None else float((chunk_stats / scales).amax())  # >= every |x / scale|
            _element_values(xs, ts, scales, zero, spec, element, book, scratch_i, scratch_f, chunk_codes, n_in,
                            y_max)
            tensor_scale = None
        if not tensor_wide or r0 == 0:
            parts["scales"].append(scales.squeeze(-1))
        if not direct:
            out[r0:r0 + r].copy_(t[:, :n_in])

    if seen:
        _check_finite(torch.cat([v.reshape(-1) for v in seen]))
    if not with_result:
        return out, None
    if codes_out is None:
        codes_out = torch.zeros((), dtype=_code_dtype(spec), device=w.device).expand(w.shape)
    cat = (lambda k: torch.cat(parts[k]) if parts[k] else None)
    scales_out, zeros_out, scale_codes_out = cat("scales"), cat("zeros"), cat("scale_codes")
    return out, Q.QuantResult(spec, codes_out, scales_out, zeros_out, w.dtype, span, scale_codes_out,
                              tensor_scale if fmt.scale_encoding is ScaleEncoding.E4M3 else None)


def _chunk_stats(xs: torch.Tensor, ts: torch.Tensor, spec: QuantSpec):
    """Per-span statistics of a chunk, as Q._span_stats computes them (absmax via a scratch buffer)."""
    if not spec.symmetric:
        return xs.amin(-1, keepdim=True).clamp(max=0), xs.amax(-1, keepdim=True).clamp(min=0)
    return torch.abs(xs, out=ts).amax(-1, keepdim=True)


def _element_values(xs, ts, scale, zero, spec, element, book, scratch_i, scratch_f, codes, n_in,
                    y_max: float | None) -> None:
    """ts <- Ŵ of an element format (TENSOR / CHANNEL / GROUP), and codes when asked.

    y_max: max |x / scale| (fl(amax / scale) bounds every fl(x / scale): division by a positive number is
    monotone), or None (asymmetric). Where it proves the clamp a no-op, the clamp pass is skipped.
    """
    fmt = spec.format
    torch.div(xs, scale, out=ts)
    if fmt.kind is Kind.INT:
        if zero is not None:
            ts.add_(zero)
            _round_integer_(ts, 0, 2 ** fmt.bits - 1)
        else:
            qmax = 2 ** (fmt.bits - 1) - 1
            _round_integer_(ts, -qmax - 1, qmax, clamp=not y_max < qmax + 0.5)
        _store_codes(codes, ts, n_in)
        if zero is not None:
            ts.sub_(zero)
    elif element in MINIFLOATS:
        _round_minifloat_(ts, xs, scratch_i[0], element, clamp=not y_max < _saturates(element))
        if codes is not None:
            _store_codes(codes, _minifloat_codes(ts, element, scratch_i[0]), n_in)
    else:  # code book
        a, b, cells, boundary, value, code = book
        u, idx, above = scratch_f[0], scratch_i[0], scratch_i[1]
        torch.mul(ts, a, out=u).add_(b)
        lo, hi = fmt.grid[0], fmt.grid[-1]
        if not (-y_max > lo - 0.5 / a and y_max < hi + 0.5 / a):  # else u is inside (-1, cells + 1) already
            u.clamp_(0, cells)
        idx.copy_(u)  # truncation toward zero: the cell for u > -1
        flat = idx.view(-1)
        torch.index_select(boundary, 0, flat, out=u.view(-1))
        torch.gt(ts, u, out=above)
        idx.add_(above, alpha=cells + 1)
        if codes is not None:
            _store_codes(codes, torch.index_select(code, 0, flat).view(ts.shape), n_in)
        torch.index_select(value, 0, flat, out=ts.view(-1))
    ts.mul_(scale)


def _block_values(xs, ts, scales, spec, scratch_i, codes, n_in, amax) -> None:
    """ts <- Ŵ of a block format (MX: E8M0 power-of-two scales; NVFP4: E4M3 x FP32 scales), codes when asked.
    amax: the blocks' absmax [rows, n, 1]."""
    element = spec.format.element
    dead, clamp = None, True
    if spec.format.scale_encoding is ScaleEncoding.E8M0:
        torch.mul(xs, 1.0 / scales, out=ts)  # powers of two 2^-127..2^127: x * 2^-e == x / 2^e exactly
    else:  # an NVFP4 block whose E4M3 scale underflowed to 0 gets code 0 everywhere (see quantize)
        dead = scales == 0
        safe = scales if not bool(dead.any()) else torch.where(dead, torch.ones_like(scales), scales)
        dead = None if safe is scales else dead
        torch.div(xs, safe, out=ts)
        clamp = not float((amax / safe).amax()) < _saturates(element)
    if element == "int8":  # MXINT8: codes are y * 64 rounded into [-127, 127] (see quantize._round_element)
        _round_integer_(ts.mul_(64.0), -127, 127)
        _store_codes(codes, ts, n_in)
        ts.mul_(1.0 / 64.0)
    else:
        _round_minifloat_(ts, xs, scratch_i[0], element, clamp)
        if dead is not None:
            ts.masked_fill_(dead, 0.0)
        if codes is not None:
            _store_codes(codes, _minifloat_codes(ts, element, scratch_i[0]), n_in)
    ts.mul_(scales)


def _minifloat_codes(values: torch.Tensor, element: str, scratch: torch.Tensor) -> torch.Tensor:
    """Bit patterns (uint8) of values already on a minifloat grid (exact conversions, no rounding left)."""
    if element in P.FLOAT8_DTYPES:
        return values.to(P.FLOAT8_DTYPES[element]).view(torch.uint8)
    key = torch.mul(values, 2.0).add_(12.0)  # FP4: 2 v + 12 is an integer in 0..24
    idx = scratch.copy_(key).view(-1)
    return torch.index_select(_fp4_code_table(values.device), 0, idx).view(values.shape)


@functools.lru_cache(maxsize=4)
def _fp4_code_table(device: torch.device) -> torch.Tensor:
    """FP4 E2M1 bit pattern of each value v in -6 .. 6 (step 0.5), indexed by 2 v + 12."""
    table = torch.zeros(25, dtype=torch.uint8)
    for code, v in enumerate(P.FP4_E2M1_VALUES):
        if code != 8:  # skip -0.0: a value rounded to zero has the +0 code (primitives.round_fp4)
            table[int(2 * v + 12)] = code
    return table.to(device)


def _store_codes(codes: torch.Tensor | None, values, n_in: int) -> None:
    if codes is None:
        return
    codes.copy_(values.reshape(codes.shape[0], -1)[:, :n_in])


def _code_dtype(spec: QuantSpec) -> torch.dtype:
    fmt = spec.format
    if fmt.kind is Kind.INT and spec.symmetric or fmt.is_block and fmt.element == "int8":
        return torch.int8
    return torch.uint8


def _reference_chunks(w: torch.Tensor, spec: QuantSpec, chunk_elements: int) -> torch.Tensor:  # pragma: no cover
    """The straightforward path, whole tensor (used only for a code book without cell tables)."""
    return Q.dequantize(Q.quantize(w, spec))


def _check_finite(stats) -> None:
    parts = stats if isinstance(stats, tuple) else (stats,)
    if not all(bool(torch.isfinite(p).all()) for p in parts):
        raise ValueError("weight holds NaN or Inf values; allowed: finite values only")
