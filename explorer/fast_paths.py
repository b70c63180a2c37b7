"""The fast path of fake quantization: Ŵ = dequantize(quantize(W)) bit for bit, near the memory-copy floor.

Fake quantization is memory-bound: the floor is one read and one write of W (`w.clone()`). The reference path
(explorer.quantize) is written for clarity: whole-tensor temporaries, codes, then a table lookup back. Here:
- rows are processed in chunks of ~128K elements on preallocated float32 scratch buffers that stay in the L2
  cache; Ŵ is computed in value units (no codes, no table lookup back) and written to the output by the chunk's
  last op, so the page faults of the fresh output (the kernel zeroes each page through the cache) come after
  the chunk's work instead of evicting its buffers; a bf16 / fp16 W is read into a float32 buffer with one
  conversion copy and Ŵ written back with one;
- every op on a whole chunk is a vectorized same-dtype loop: no comparison into a bool or int tensor, no
  `where` / `masked_fill`, no mixed-dtype op, no 16-wide `amax` (a max-pool instead), each 3-40x slower than a
  float add on CPU; scalar operands are cached 0-dim tensors (15-30% faster than Python numbers, which torch
  wraps per call), and the views each op needs are made once per call (a torch call costs microseconds);
- rounding is arithmetic, never a binary search or a gather over the whole tensor:
  * integers, round half to even: (y + 1.5·2^23) - 1.5·2^23. One float32 addition rounds to the integer grid
    (exact for |y| < 2^22, guaranteed by clamping to the code range first, which commutes with rounding to an
    integer grid) and a zero result comes back as +0.0, as the integer codes do;
  * minifloats (FP8 E4M3 / E5M2, FP4 E2M1, OCP OFP8 v1.0 / OCP MX v1.0): the same trick with the step of y's own
    binade, y + k·c - k·c with c = 2^max(e, emin) read from y's float32 exponent bits and k = 1.5·2^(23 -
    mantissa bits) (one `add_(c, alpha=k)`: k·c is exact, so the add rounds once): round to nearest, ties to
    the even mantissa, exactly as torch's float8 casts and the FP4 rule;
  * code books (NF4, QLoRA arXiv 2305.14314): y + 1.5·2^(23-p) rounds y to a cell of a 2^-p grid, read back as
    an integer from the float's bits; the grid is fine enough to hold at most one decision boundary per cell, so
    index = first[cell] + (y > boundary[cell]) with two small-table index_selects, ties going to the lower
    entry as torch.bucketize does;
- scales are the reference's own float32 operations (explorer.quantize.element_scales, block_scales,
  primitives.e8m0_scale), rewritten as few small ops; the largest |y| of a chunk proves when a saturating clamp
  is a no-op (it is then skipped) and catches NaN/Inf in W on the way;
- two layouts get their own plan: a 16-bit W with one scale for the whole tensor maps each element through a
  table of Ŵ for all 65536 bit patterns (Ŵ is then a function of the element's bits alone), and NVFP4 takes
  its block absmax in a first pass over the chunks (their largest sets the FP32 tensor scale) and computes all
  E4M3 block scales at once.
The rounding kernels live in explorer.fast_kernels, the MX / NVFP4 block steps in explorer.fast_blocks.
tests/test_fast_paths.py checks every format at every granularity, scale dtype and input dtype, codes and scales
included, against the reference path, bit for bit (signs of zero included).
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from explorer import fast_blocks as BL
from explorer import fast_kernels as K
from explorer import quantize as Q
from explorer.specs import Granularity, Kind, QuantSpec, ScaleEncoding

# sink(r0, x, w_hat, scales, zeros): see quantize_fast
Sink = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor, "torch.Tensor | None", torch.Tensor], None]

def quantize_fast(w: torch.Tensor, spec: QuantSpec, chunk_elements: int = 1 << 17,
                  with_result: bool = False, codes: bool = True, sink: Sink | None = None,
                  extremes: tuple[torch.Tensor, torch.Tensor] | None = None
                  ) -> tuple[torch.Tensor | None, Q.QuantResult | None]:
    """(Ŵ [out, in] in w's dtype, the QuantResult when with_result) for a checked W [out, in].

    Ŵ equals dequantize(quantize(w, spec)) and the QuantResult equals quantize(w, spec), bit for bit.
    codes=False skips the codes (the result's codes are then a zero-strided placeholder of the right shape and
    dtype: for callers that need only the scales, such as explorer.analysis).
    sink: instead of keeping Ŵ, hand each chunk of rows to sink(r0, x, w_hat, scales, zeros, scratch) while it
    is still in cache, in row order: x and w_hat [rows, in] float32 (W's rows r0.., and Ŵ's as Ŵ in w's dtype,
    converted back), scales and zeros [rows, n_spans] of those rows, or [1, 1] for a per-tensor scale (zeros
    None where the format has none), and a float32 scratch buffer [rows, in] (the chunk's free work buffer). The
    sink may overwrite w_hat and scratch, never x (it can be W itself); all are reused for the next chunk. Ŵ is
    then not allocated: the call returns (None, the result when with_result). explorer.analysis reduces a layer
    this way without a pass over memory.
    Per-tensor statistics come from one whole-tensor pass first, NVFP4's block absmax (whose largest sets the
    tensor scale) from a first pass over the chunks, so each chunk uses the scale the reference path would; a
    NaN/Inf anywhere shows up in the statistics and raises ValueError.
    extremes: W's (min, max) per span [out, n_spans] float32, known already (explorer.analysis caches them per
    tensor: WeightStats.extremes_per), for a span that divides in; the statistics behind every scale (absmax,
    range; per tensor: their min and max) then come from them, exact, and no pass over W or a chunk takes them.
    The caller vouches that they are W's and finite.
    """
    fmt = spec.format
    out_rows, n_in = w.shape
    span = Q.span_of(spec, n_in)
    tensor_wide = spec.granularity is Granularity.TENSOR
    span_len = n_in if tensor_wide else span
    n_spans = -(-n_in // span_len)
    width = n_spans * span_len
    element = fmt.element if fmt.is_block else fmt.name
    book = K.codebook_tables(fmt.grid, w.device) if fmt.kind is Kind.CODEBOOK else None
    if fmt.kind is Kind.CODEBOOK and book is None:  # pragma: no cover - NF4 always has tables
        if sink is not None:
            raise RuntimeError("a code book without cell tables has no chunked path")
        return _reference_chunks(w, spec, chunk_elements), (Q.quantize(w, spec) if with_result else None)

    if extremes is not None and (n_in % span_len or tuple(extremes[0].shape) != (out_rows, n_spans)
                                 or tuple(extremes[1].shape) != (out_rows, n_spans)):
        raise ValueError(f"extremes of shapes {[tuple(e.shape) for e in extremes]} do not fit W {tuple(w.shape)} "
                         f"in spans of {span_len}; allowed: two [out, in / span] tensors for a span dividing in")
    tensor_values = None
    if tensor_wide:
        v = w.float() if w.dtype in (torch.float8_e4m3fn, torch.float8_e5m2) else w
        lo, hi = ((m.float().reshape(1, 1, 1) for m in torch.aminmax(v)) if extremes is None  # exact; one pass
                  else (extremes[0].amin().reshape(1, 1, 1), extremes[1].amax().reshape(1, 1, 1)))
        check_finite((lo, hi))
        stats = (lo.clamp(max=0), hi.clamp(min=0)) if not spec.symmetric else torch.maximum(-lo, hi)
        tensor_values = _TensorScales(stats, spec)

    scaled = with_result or sink is not None  # chunks compute their scales for the result or the sink
    direct = w.dtype == torch.float32 and width == n_in and w.is_contiguous()
    rows = min(max(1, chunk_elements // width), out_rows)
    # With a sink, Ŵ goes to one chunk's worth of output, reused: every chunk of `out` below is a view of it.
    out = torch.empty((rows, n_in) if sink is not None else w.shape, dtype=w.dtype, device=w.device)
    codes_out = torch.empty(w.shape, dtype=K.code_dtype(spec), device=w.device) if with_result and codes else None
    if tensor_values is not None and w.element_size() == 2 and codes_out is None and sink is None:
        _tensor_lut_values(w, out, spec, tensor_values, book, chunk_elements)
        return out, (_result(spec, w, span, codes_out, [tensor_values.scales.squeeze(-1)],
                             [tensor_values.zero.squeeze(-1)] if tensor_values.zero is not None else [], [], None)
                     if with_result else None)

    minifloat = element in K.MINIFLOATS
    shape = (rows, n_spans, span_len)
    x = None
    if not direct:  # a float32 copy of the chunk, its zero tail the padding of a short last group
        x = torch.zeros(shape, device=w.device) if width != n_in else torch.empty(shape, device=w.device)
    f = torch.empty(shape, device=w.device) if book is not None else None
    i = torch.empty(shape, dtype=torch.int32, device=w.device) if book is not None or minifloat else None
    if sink is not None and direct:  # the one-chunk output is free until Ŵ is written: a scratch buffer less in L2
        if f is not None:
            f = out.view(shape)
        elif i is not None:
            i = out.view(torch.int32).view(shape)
    t = torch.empty(shape, device=w.device)
    split = (lambda a: a.view(out_rows, n_spans, span_len).split(rows)) if direct else (lambda a: a.split(rows))
    w_chunks = split(w)
    if sink is None:
        out_chunks = split(out)
    else:
        one = out.view(rows, n_spans, span_len) if direct else out
        out_chunks = [one[:len(c)] for c in w_chunks]
    code_chunks = codes_out.split(rows) if codes_out is not None else None
    last = w_chunks[-1].shape[0]
    works = [K.Work(x, t, f, i, n_in)]
    if last != rows:
        works.append(K.Work(*(b[:last] if b is not None else None for b in (x, t, f, i)), n_in))
    known = {}  # the spans' absmax, or their min and max clamped as element_scales takes them [out, n_spans, 1]
    if extremes is not None and not tensor_wide:
        lo, hi = (e.unsqueeze(-1) for e in extremes)
        if fmt.is_block or spec.symmetric:  # max |x| = max(|min|, |max|), +0 for a span of zeros as abs() gives
            known = {"amax": torch.maximum(lo.abs(), hi.abs())}
        else:
            known = {"lo": lo.clamp(max=0), "hi": hi.clamp(min=0)}
    known_chunks = [(name, v.split(rows)) for name, v in known.items()]

    def work(k: int) -> K.Work:
        """Chunk k's tensors, its input converted to float32 first unless W is used in place."""
        wk = works[0] if k < len(w_chunks) - 1 else works[-1]
        if direct:
            wk.xs, wk.dest = w_chunks[k], out_chunks[k]
        else:
            wk.x_rows.copy_(w_chunks[k])  # one conversion copy (bf16/fp16 -> float32)
        wk.codes = code_chunks[k] if code_chunks is not None else None
        for name, parts in known_chunks:
            setattr(wk, name, parts[k])
        return wk

    parts: dict[str, list] = {"scales": [], "zeros": [], "scale_codes": []}
    tensor_scale = None
    scale_plan = _ScalePlan(spec, w.device) if not fmt.is_block else None
    if fmt.scale_encoding is ScaleEncoding.E4M3:
        amax = known.get("amax")
        scales_all, safe_all, codes_all, tensor_scale = BL.nvfp4_scales(work, len(w_chunks), rows, out_rows, n_spans,
                                                                      w.device, with_result, amax)
        scales_all_2d = scales_all.squeeze(-1)
        parts["scales"] = [scales_all.squeeze(-1)]
        parts["scale_codes"] = [codes_all.squeeze(-1)] if with_result else []
        scale_chunks, safe_chunks = scales_all.split(rows), safe_all.split(rows)

    spare = None
    for k in range(len(w_chunks)):
        wk = work(k)
        zero = None
        if fmt.scale_encoding is ScaleEncoding.E4M3:
            BL.nvfp4_values(wk, scale_chunks[k], safe_chunks[k], n_in)
            scales = scales_all_2d[k * rows:k * rows + w_chunks[k].shape[0]] if sink is not None else None
        elif fmt.is_block:
            scales, scale_codes = BL.mx_values(wk, spec, n_in, scaled)
            scales = scales.squeeze(-1) if scaled else None
            if with_result:
                parts["scale_codes"].append(scale_codes.squeeze(-1))
                parts["scales"].append(scales)
        else:
            if tensor_values is not None:
                scales, zero, y_range = tensor_values.scales, tensor_values.zero, tensor_values.y_range
            else:
                scales, zero, y_range = _chunk_scales(wk, scale_plan, scaled)
            _element_values(wk, scales, zero, spec, element, book, n_in, y_range)
            if scaled:
                scales, zero = scales.squeeze(-1), (zero.squeeze(-1) if zero is not None else None)
            if with_result and (tensor_values is None or k == 0):
                parts["scales"].append(scales)
                if zero is not None:
                    parts["zeros"].append(zero)
        if not direct:
            out_chunks[k].copy_(wk.t_rows)  # one conversion copy back (float32 -> bf16/fp16)
        if sink is not None:
            n = w_chunks[k].shape[0]
            if direct:  # the work buffer is free once Ŵ is out: the sink's scratch, no new buffer in cache
                x, w_hat, free = w_chunks[k].view(n, n_in), out_chunks[k].view(n, n_in), wk.t_rows
            else:  # Ŵ as stored in w's dtype, back in float32 (exact)
                x, w_hat = wk.x_rows, (wk.t_rows if w.dtype == torch.float32 else wk.t_rows.copy_(out_chunks[k]))
                done = wk.f if wk.f is not None else wk.i_float  # scratch the rounding is done with
                if done is not None and width == n_in:
                    free = done.view(n, n_in)
                else:
                    if spare is None:
                        spare = torch.empty(rows, n_in, device=w.device)
                    free = spare[:n]
            sink(k * rows, x, w_hat, scales, zero, free)

    if sink is not None:
        out = None
    if not with_result:
        return out, None
    return out, _result(spec, w, span, codes_out, parts["scales"], parts["zeros"], parts["scale_codes"], tensor_scale)


def _result(spec, w, span, codes_out, scales, zeros, scale_codes, tensor_scale) -> Q.QuantResult:
    if codes_out is None:
        codes_out = torch.zeros((), dtype=K.code_dtype(spec), device=w.device).expand(w.shape)
    cat = (lambda parts: torch.cat(parts) if parts else None)
    return Q.QuantResult(spec, codes_out, cat(scales), cat(zeros), w.dtype, span, cat(scale_codes), tensor_scale)


class _TensorScales:
    """TENSOR granularity: the one scale (and zero point) and the range of y = x / scale (+ zero), from the
    statistics of the whole tensor (checked finite)."""

    def __init__(self, stats, spec: QuantSpec):
        self.scales, self.zero = Q.element_scales(stats, spec)
        if self.zero is None:
            y_max = float((stats / self.scales).amax())
            self.y_range = (-y_max, y_max)
        else:
            lo, hi = stats
            self.y_range = (float(lo / self.scales + self.zero), float(hi / self.scales + self.zero))


def _tensor_lut_values(w, out, spec, tensor_values: _TensorScales, book, chunk_elements: int) -> None:
    """out <- Ŵ of a 16-bit (bf16 / fp16) W with one scale for the whole tensor: Ŵ is then a function of the
    element's 16 bits alone, so it is computed once for all 65536 bit patterns (the same float32 ops, with every
    clamp on, as they are valid for any y) and W is mapped through that table: two int32 ops and one gather per
    element, written to Ŵ's 16 bits directly."""
    patterns = torch.arange(-32768, 32768, dtype=torch.int32, device=w.device).to(torch.int16)
    v = patterns.view(w.dtype).float()
    v = torch.where(torch.isfinite(v), v, torch.zeros_like(v)).view(1, 1, -1)  # W itself is finite (checked)
    n = v.numel()
    wk = K.Work(None, torch.empty_like(v), torch.empty_like(v), torch.empty(v.shape, dtype=torch.int32,
                                                                           device=w.device), v.numel())
    wk.xs = v
    t = wk.ts
    element = spec.format.name
    _element_values(wk, tensor_values.scales, tensor_values.zero, spec, element, book, n, (-math.inf, math.inf))
    lut = t.view(-1).to(w.dtype).view(torch.int16)  # lut[p + 32768] = Ŵ bits of the element with bits p (int16)
    out_rows, n_in = w.shape
    rows = min(max(1, chunk_elements // n_in), out_rows)
    idx = torch.empty(rows, n_in, dtype=torch.int32, device=w.device)
    for wc, oc in zip(w.view(torch.int16).split(rows), out.view(torch.int16).split(rows)):
        i = idx[:wc.shape[0]]
        i.copy_(wc)
        i.add_(K.const(32768, torch.int32, w.device))
        torch.index_select(lut, 0, i.view(-1), out=oc.view(-1))


class _ScalePlan:
    """Per-call constants of quantize.element_scales for a spec: scale = round_to_dtype(width / top), where
    width is the absmax (symmetric) or max(x, 0) - min(x, 0) (asymmetric integers)."""

    def __init__(self, spec: QuantSpec, device):
        fmt = spec.format
        store = K.SCALE_TORCH[spec.scale_dtype.value]
        info = torch.finfo(store)
        self.symmetric = spec.symmetric
        self.top = fmt.max_value if spec.symmetric else float(2 ** fmt.bits - 1)
        self.top_k = K.const(self.top, torch.float32, device)
        self.smallest = info.smallest_normal * info.eps  # primitives.round_to_dtype's floor: the smallest subnormal
        self.largest = info.max
        self.store = store
        # A code book whose range is covered far beyond 1.5 top needs no bound on y: a scale rounded to the scale
        # dtype is at least 2/3 of amax / top (the worst case is a subnormal scale rounded down, v -> v - q/2 for
        # v >= q), so |y| < 1.5 top + rounding; a NaN/Inf in W then shows up as an out-of-range table index.
        book = K.codebook_tables(fmt.grid, device) if fmt.kind is Kind.CODEBOOK else None
        self.unbounded = book is not None and spec.symmetric and 1.5 * self.top * (1 + 1e-6) < book.cover


def _chunk_scales(wk: K.Work, plan: _ScalePlan, with_result: bool):
    """Per-span scales of a chunk [rows, n, span], as Q._span_stats and Q.element_scales compute them, bit for bit,
    in fewer small ops: (scale [rows, n, 1], zero point or None, (y_lo, y_hi)), where every y = x / scale
    (+ zero) of the chunk lies in [y_lo, y_hi] (division by a positive scale and adding a constant are monotone
    in float32). Raises ValueError if the chunk holds a NaN or Inf (it reaches y_lo / y_hi). For a code book
    that needs no bound (_ScalePlan.unbounded) the range is None and the lookup catches NaN/Inf instead."""
    xs = wk.xs
    if plan.symmetric:
        amax = torch.abs(xs, out=wk.ts).amax(-1, keepdim=True) if wk.amax is None else wk.amax
        width = amax
    else:
        if wk.lo is not None:
            lo, hi = wk.lo, wk.hi
        else:
            lo = xs.amin(-1, keepdim=True).clamp_(max=0)
            hi = xs.amax(-1, keepdim=True).clamp_(min=0)
        width = hi - lo  # > 0 exactly when hi > lo (lo <= 0 <= hi)
    if plan.top != 1.0:
        scale = torch.div(width, plan.top_k).clamp_(plan.smallest, plan.largest)
    else:
        scale = torch.clamp(width, plan.smallest, plan.largest)
    if plan.store is torch.float16:
        scale = scale.half().float()
    elif plan.store is torch.bfloat16:
        scale = scale.bfloat16().float()
    if with_result or not plan.symmetric:
        # where(width > 0, scale, 1): an empty range gets scale 1. Its clamped scale is the smallest subnormal s,
        # and s + (1 - s) rounds to exactly 1 in float32 for every scale dtype (1 - 2^-24 is a float32; smaller
        # s vanish in the sum); a non-empty range adds 0. (Without a result, symmetric formats skip it: a span of
        # zeros gives the same Ŵ, +-0 / s rounds to the same +-0 and times s stays it, for any finite s > 0.)
        scale.add_(torch.eq(width, 0, out=torch.empty_like(width)), alpha=1.0 - plan.smallest)
    if plan.unbounded:
        return scale, None, None
    if plan.symmetric:
        y_max = float((amax / scale).amax())
        y_range = (-y_max, y_max)
        zero = None
    else:
        zero = torch.round(-lo / scale).clamp_(0, plan.top)
        y_range = (float((lo / scale + zero).amin()), float((hi / scale + zero).amax()))
    if not (math.isfinite(y_range[0]) and math.isfinite(y_range[1])):
        raise ValueError("weight holds NaN or Inf values; allowed: finite values only")
    return scale, zero, y_range


def _element_values(wk: K.Work, scale, zero, spec, element, book, n_in, y_range: tuple[float, float]) -> None:
    """wk.dest <- Ŵ of an element format (TENSOR / CHANNEL / GROUP), and wk.codes when asked.

    y_range: bounds of every y = x / scale (+ zero) of the chunk; where they prove a clamp a no-op, it is skipped.
    """
    fmt = spec.format
    y_lo, y_hi = y_range if y_range is not None else (-math.inf, math.inf)
    ts, codes = wk.ts, wk.codes
    torch.div(wk.xs, scale, out=ts)
    if fmt.kind is Kind.INT:
        if zero is not None:
            ts.add_(zero)
            qmax = 2 ** fmt.bits - 1
            K.round_integer_(ts, 0, qmax, clamp=not (y_lo > -0.5 and y_hi < qmax + 0.5))
        else:
            qmax = 2 ** (fmt.bits - 1) - 1
            K.round_integer_(ts, -qmax - 1, qmax, clamp=not y_hi < qmax + 0.5)
        K.store_codes(codes, ts, n_in)
        if zero is not None:
            ts.sub_(zero)
    elif element in K.MINIFLOATS:
        K.round_minifloat_(ts, wk.t_bits, wk.i, wk.i_float, element,
                          clamp=not max(-y_lo, y_hi) < K.saturates(element), sign_of=wk.xs)
        if codes is not None:
            K.store_codes(codes, K.minifloat_codes(ts, element, wk.i), n_in)
    else:  # code book
        if y_range is not None and not max(-y_lo, y_hi) < book.cover:
            ts.clamp_(fmt.grid[0], fmt.grid[-1])  # beyond the book's range every y maps to an end entry anyway
        try:
            _codebook_lookup(wk, book)
        except IndexError as e:  # only a NaN or Inf y falls outside the tables (see _ScalePlan.unbounded)
            raise ValueError("weight holds NaN or Inf values; allowed: finite values only") from e
        if codes is not None:
            K.store_codes(codes, torch.index_select(book.code, 0, wk.i_flat).view(ts.shape), n_in)
        torch.index_select(book.value, 0, wk.i_flat, out=wk.t_flat)
    torch.mul(ts, scale, out=wk.dest)


def _codebook_lookup(wk: K.Work, book: K.Book) -> None:
    """wk.i <- the table index of every y in wk.ts: its cell, plus the upper tables' offset above the cell's
    decision boundary."""
    ts, dev = wk.ts, wk.ts.device
    bound, above, idx = wk.f, wk.f_bits, wk.i
    torch.add(ts, K.const(book.magic, torch.float32, dev), out=bound)  # magic + cell * step, exactly
    torch.sub(above, K.const(book.base, torch.int32, dev), out=idx)  # the cell
    torch.index_select(book.boundary, 0, wk.i_flat, out=wk.f_flat)
    torch.gt(ts, bound, out=bound)  # 1.0 above the cell's boundary (float output: a vectorized compare)
    above.bitwise_right_shift_(K.const(book.shift, torch.int32, dev))  # bits of 1.0 >> shift: the upper offset
    idx.add_(above)


def _reference_chunks(w: torch.Tensor, spec: QuantSpec, chunk_elements: int) -> torch.Tensor:  # pragma: no cover
    """The straightforward path, whole tensor (used only for a code book without cell tables)."""
    return Q.dequantize(Q.quantize(w, spec))


def check_finite(stats) -> None:
    """ValueError (check_weight's message) unless every value of the tensor, or tuple of tensors, is finite."""
    parts = stats if isinstance(stats, tuple) else (stats,)
    if not all(bool(torch.isfinite(p).all()) for p in parts):
        raise ValueError("weight holds NaN or Inf values; allowed: finite values only")
