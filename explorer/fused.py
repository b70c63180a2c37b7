"""numba kernels on CPU (explorer.fused_kernels) where torch would make one pass over memory per op:
- `fake_quantize`: Ŵ = dequantize(quantize(W)) bit for bit, each row read once for its statistics and its values
  and Ŵ written once (per-tensor scales and NVFP4's tensor scale take one read first);
- `RowReduction`: Layer Lab's analysis of a layer (explorer.analysis.analyze_layer): W quantized and reduced in the
  same read (error sums per row and column, counts, clipped weights, the max-pooled heatmap), or the reduction alone
  of a Ŵ the torch fast path computed; `weight_statistics`: analysis.weight_stats' reductions in one read.
Optional by design: `available(t, use)` says whether the kernels can run on t (a CPU tensor, numba importable, the
kernels for that use compiled); callers keep their torch paths for everything else (CUDA tensors, platforms without
numba, what a kernel does not cover), and tests/test_fused.py holds the two to the same results. numba ships its
own LLVM: no system compiler is needed, and the machine code is cached on disk (numba's cache: each use compiles
once per machine, in 6-9 s).
"""
from __future__ import annotations

import enum
import functools
import os
from types import SimpleNamespace
from typing import Callable, NamedTuple

import numpy as np
import torch

from explorer import fast_blocks as BL
from explorer import fast_kernels as FK
from explorer import metrics as M
from explorer import primitives as P
from explorer import quantize as Q
from explorer.fast_paths import check_finite
from explorer.histogram import CellCounts
from explorer.specs import Granularity, Kind, QuantSpec, ScaleDType, ScaleEncoding

MIN_WEIGHTS = 1 << 20  # see worthwhile
_NONE = torch.empty(0, 1)  # an empty [0, 1] array: "not given" to a kernel, one compiled signature
BOOK_ENTRIES = 16  # code books up to 4 bits (NF4) take the fused quantizer: one compiled signature for all formats


class Use(enum.Enum):
    """What the kernels are asked for: each compiles (or loads from numba's cache) only its own on first use."""
    ANALYSIS = "analysis"       # Layer Lab: weight_stats' reductions, the quantize-and-reduce pass
    FAKE_QUANT = "fake quantization"  # fake_quantize


@functools.lru_cache(maxsize=None)
def _kernels(use: Use = Use.ANALYSIS) -> SimpleNamespace | None:
    """The kernels of explorer.fused_kernels, those `use` needs compiled (or loaded from numba's on-disk cache) on a
    tiny input, or None where numba is missing or cannot compile here, or where the environment says
    EXPLORER_FUSED=0 (a host short of memory: numba and the kernels take ~125 MB once loaded)."""
    if os.environ.get("EXPLORER_FUSED", "1") == "0":
        return None
    try:
        from explorer import fused_kernels
        K = SimpleNamespace(**{name: getattr(fused_kernels, name) for name in fused_kernels.__all__})
        z, one, acc = np.zeros((1, 1), np.float32), np.ones(1, np.float32), np.zeros(1)
        pl = plan_of(K.INT, (-1, 1, 1, 1))
        no16, rows = np.zeros((1, 0), np.uint16), (one.copy(), one.copy(), np.zeros(1, np.uint32))
        if use is Use.ANALYSIS:
            red = (0, 1, 1, 1, np.zeros(1, np.float32), acc.copy(), one.copy(), z.copy(), acc,
                   np.zeros(3, np.int64))
            K.reduce_rows(z, z, 1, *red)
            K.weight_rows(z, no16, 1, 22, np.zeros(1 << 10, np.int64), acc.copy(), 1, 1, z.copy(), z.copy(),
                          z.copy(), one.copy(), one.copy(), one.copy(), np.zeros(1, np.uint32),
                          np.zeros(1, np.uint32))
            K.quantize_reduce_rows(pl.kind, z, no16, 1, 1, z + 1, z, np.array([0, 1, 0, 0], np.float32),
                                   _NONE.numpy(), _NONE.numpy(), one.copy(), pl.p, pl.mant_emin, pl.mids, pl.book,
                                   np.zeros((0, 1), np.float32), *rows, *red)
        else:
            K.span_extremes(z, no16, 1, 1, z.copy(), z.copy(), one.copy())  # (NaN / Inf come out as extremes)
            K.row_absmax(z, no16, 1, one.copy(), one.copy())
            K.fake_quantize_rows(pl.kind, z, no16, 1, 1, z + 1, z, pl.p, pl.mant_emin, pl.mids, pl.book,
                                 z.copy(), no16, *rows)
            K.fake_quantize_spans(pl.kind, z, no16, 1, 1, np.array([0, 1, 0, 0], np.float32), pl.p,
                                  pl.mant_emin, pl.mids, pl.book, z.copy(), no16, *rows,
                                  *(one.copy() for _ in range(4)))
    except Exception:  # noqa: BLE001 - any failure to import or compile means the torch path
        return None
    return K


def available(t: torch.Tensor, use: Use = Use.ANALYSIS) -> bool:
    """Whether the kernels for `use` can run on tensors like t. The first call compiles them, once per machine
    (6-9 s each use: numba caches the machine code on disk), later processes load them in ~0.5 s."""
    return t.device.type == "cpu" and _kernels(use) is not None


def worthwhile(t: torch.Tensor, use: Use = Use.ANALYSIS) -> bool:
    """Whether callers that choose for themselves (quantize.fake_quantize, analysis.analyze_layer, compare.sweep)
    should use the kernels on t: a CPU tensor of at least MIN_WEIGHTS elements. Below that the torch paths take
    milliseconds too, and a server that only ever sees small layers never pays the kernels' compile."""
    return t.numel() >= MIN_WEIGHTS and available(t, use)


def padded_rows(t: torch.Tensor) -> np.ndarray:
    """A C-contiguous numpy view [rows, row stride] of rows t [rows, n] float32 with unit column stride (a view of
    rows padded to whole groups takes the padding along; kernels stop at n), else a contiguous copy."""
    if t.is_contiguous():
        return t.numpy()
    if t.stride(1) == 1 and t.stride(0) >= t.shape[1]:
        try:
            return torch.as_strided(t, (t.shape[0], t.stride(0)), (t.stride(0), 1)).numpy()
        except RuntimeError:  # the padding of the last row is not in t's storage
            pass
    return t.contiguous().numpy()


class Plan(NamedTuple):
    """How fused_kernels.quantize_reduce_rows rounds the elements of a format (its docstring has the rules)."""
    kind: int
    p: np.ndarray          # float32 (lo, hi, pre, post, fmax, 1.5 * 2^(23 - mantissa bits), signed zero,
                           # clip levels low and high)
    mant_emin: np.ndarray  # int64 (mantissa bits, float32 exponent field of 2^emin << 23)
    mids: tuple            # BOOK_ENTRIES - 1 float32: the code book's midpoints, padded with +inf (unused: all inf)
    book: np.ndarray       # float32 code-book values (CODEBOOK), else [0]


def plan_of(kind: int, ints=(0.0, 0.0, 1.0, 1.0), minifloat=(0, 0, 0.0, False), grid=(), clip=(0.0, 0.0)) -> Plan:
    """A Plan from its parts: integer (lo, hi, pre, post), minifloat (mantissa bits, emin, fmax, signed zero),
    code-book grid (sorted values), clip levels (metrics.clip_bounds' extreme levels plus half a step)."""
    mant, emin, fmax, signed = minifloat
    mids, book = [], np.zeros(1, np.float32)
    if grid:
        g = torch.tensor(grid, dtype=torch.float32)
        mids, book = ((g[1:] + g[:-1]) / 2).tolist(), g.numpy()  # primitives.round_codebook's float32 midpoints
    mids += [np.inf] * (BOOK_ENTRIES - 1 - len(mids))  # y > inf never counts
    p = np.array([*ints, fmax, 1.5 * 2.0 ** (23 - mant), float(signed), *clip], np.float32)
    return Plan(kind, p, np.array([mant, (emin + 127) << 23], np.int64), tuple(np.float32(m) for m in mids), book)


@functools.lru_cache(maxsize=256)
def plan(spec: QuantSpec) -> Plan | None:
    """The element rule of spec's format, as explorer.quantize rounds and dequantizes it (None: not covered)."""
    fmt = spec.format
    element = fmt.element if fmt.is_block else fmt.name
    clip = _clip_levels(spec)
    if fmt.is_block and element == "int8":  # MXINT8: codes = round(y * 64) in +-127, values codes / 64
        return plan_of(0, (-127.0, 127.0, 64.0, 1.0 / 64.0), clip=clip)
    if fmt.kind is Kind.INT:
        qmax = 2 ** (fmt.bits - 1) - 1
        return plan_of(0, (-qmax - 1.0, float(qmax), 1.0, 1.0) if spec.symmetric
                       else (0.0, float(2 ** fmt.bits - 1), 1.0, 1.0), clip=clip)
    if element in FK.MINIFLOATS:
        return plan_of(1, minifloat=FK.MINIFLOATS[element], clip=clip)
    if fmt.kind is Kind.CODEBOOK and len(fmt.grid) <= BOOK_ENTRIES:
        return plan_of(2, grid=fmt.grid, clip=clip)
    return None


def _clip_levels(spec: QuantSpec) -> tuple[float, float]:
    """metrics.clip_bounds' (lowest code - half its step, highest code + half its step), in code units: a weight
    clips below (level - zero) * scale, level rounded to float32 as torch takes a Python number."""
    probe = Q.QuantResult(spec, torch.zeros(0, 1, dtype=FK.code_dtype(spec)), torch.ones(1, 1), None,
                          torch.float32, 1)
    lo, hi = M.clip_bounds(probe)  # scale 1, no zero point: the levels themselves
    return float(lo), float(hi)


def span_scales(spec: QuantSpec, lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(scales, zero points or None) [out, n_spans] ([1, 1] per tensor) of W, from its min and max per span
    lo, hi [out, n_spans]: explorer.quantize's element_scales / block_scales on the statistics they take."""
    fmt = spec.format
    if fmt.is_block:  # the fast path's bit-exact forms of quantize.block_scales (tests/test_fast_paths.py)
        amax = torch.maximum(lo.abs(), hi.abs())
        if fmt.scale_encoding is ScaleEncoding.E8M0:
            return BL.e8m0_scales(amax, fmt.element)[0], None
        out, n = amax.shape
        return BL.nvfp4_scales(None, 0, 0, out, n, amax.device, False, amax.unsqueeze(-1))[0].squeeze(-1), None
    if spec.granularity is Granularity.TENSOR:
        lo, hi = lo.amin().reshape(1, 1), hi.amax().reshape(1, 1)
    lo, hi = lo.clamp(max=0).unsqueeze(-1), hi.clamp(min=0).unsqueeze(-1)  # zero is always inside the range
    scale, zero = Q.element_scales(torch.maximum(-lo, hi) if spec.symmetric else (lo, hi), spec)
    return scale.squeeze(-1), (zero.squeeze(-1) if zero is not None else None)


_STORE = {ScaleDType.FP32: 0, ScaleDType.FP16: 1, ScaleDType.BF16: 2}
_SCALE_RULES = {"sym": 0, "asym": 1, "e8m0": 2, "nvfp4": 3}  # fused_kernels.S_SYM .. S_NVFP4


def scale_plan(spec: QuantSpec, tensor_scale: float = 1.0) -> np.ndarray:
    """fused_kernels._row_scales' parameters for spec: float32 (rule, top, scale dtype, E8M0 emax or NVFP4's FP32
    tensor scale)."""
    fmt = spec.format
    if fmt.scale_encoding is ScaleEncoding.E8M0:
        rule, top, extra = _SCALE_RULES["e8m0"], 1.0, P.MX_EMAX[fmt.element]
    elif fmt.scale_encoding is ScaleEncoding.E4M3:
        rule, top, extra = _SCALE_RULES["nvfp4"], 1.0, tensor_scale
    elif spec.symmetric:
        rule, top, extra = _SCALE_RULES["sym"], fmt.max_value, 0.0
    else:
        rule, top, extra = _SCALE_RULES["asym"], float(2 ** fmt.bits - 1), 0.0
    return np.array([rule, top, _STORE[spec.scale_dtype], extra], np.float32)


def _inputs(w: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(x32, x16) of a contiguous float32 or bfloat16 W [n, n_in] for the kernels: its float32 values, or its
    bfloat16 bits as uint16; the other one empty."""
    n, w = w.shape[0], w.detach()  # a Parameter's data: numpy refuses tensors that require grad
    if w.dtype == torch.bfloat16:
        return np.zeros((n, 0), np.float32), w.view(torch.int16).numpy().view(np.uint16)
    return w.numpy(), np.zeros((n, 0), np.uint16)


def fake_quantize(w: torch.Tensor, spec: QuantSpec) -> torch.Tensor | None:
    """Ŵ = dequantize(quantize(w, spec)) for W [out, in] in w's dtype, bit for bit (signs of zero included), by
    the kernels: each row read once (into L1) for its spans' extremes, its scales (the reference's float32
    operations, fused_kernels._row_scales) and Ŵ, written once. Per tensor: W's extremes in a first read and the
    scale from them (span_scales); NVFP4: W's absmax in a first read for the FP32 tensor scale. None where the
    kernels do not cover the call: not on CPU or no numba, W neither float32 nor bfloat16, a span not dividing
    in, a 16-bit W with one scale (explorer.fast_paths maps it through a table), a code book over BOOK_ENTRIES.
    Raises ValueError for NaN / Inf in W."""
    if w.dtype not in (torch.float32, torch.bfloat16) or w.dim() != 2 or not available(w, Use.FAKE_QUANT):
        return None
    out, n_in = w.shape
    span = Q.span_of(spec, n_in)
    pl = plan(spec)
    if pl is None or n_in % span or out == 0 or (w.dtype != torch.float32 and n_in == span
                                                 and spec.granularity is Granularity.TENSOR):
        return None
    K = _kernels(Use.FAKE_QUANT)
    x32, x16 = _inputs(w.contiguous())
    scratch = (np.empty(n_in, np.float32), np.empty(n_in, np.float32), np.empty(n_in, np.uint32))
    w_hat = torch.empty(w.shape, dtype=w.dtype)
    o32, o16 = _inputs(w_hat)
    fmt, n_spans = spec.format, n_in // span
    if spec.granularity is not Granularity.TENSOR:  # one read: each row's scales from its own spans
        tensor_scale = 1.0
        if fmt.scale_encoding is ScaleEncoding.E4M3:  # NVFP4's FP32 tensor scale needs W's absmax first
            amax = torch.empty(out)
            K.row_absmax(x32, x16, n_in, amax.numpy(), scratch[0])
            check_finite(amax)
            _, _, tensor_scale = Q.block_scales(amax.amax().reshape(1, 1, 1), spec)
        spans = [np.empty(n_spans, np.float32) for _ in range(4)]
        bad = K.fake_quantize_spans(pl.kind, x32, x16, n_in, span, scale_plan(spec, tensor_scale), pl.p,
                                    pl.mant_emin, pl.mids, pl.book, o32, o16, *scratch, *spans)
        if bad >= 0:
            raise ValueError("weight holds NaN or Inf values; allowed: finite values only")
        return w_hat
    lo, hi = torch.empty(out, n_spans), torch.empty(out, n_spans)
    K.span_extremes(x32, x16, n_in, span, lo.numpy(), hi.numpy(), scratch[0])
    check_finite((lo, hi))  # a NaN / Inf is an extreme
    scales, zeros = span_scales(spec, lo, hi)
    K.fake_quantize_rows(pl.kind, x32, x16, n_in, span, scales.numpy(),
                         (zeros if zeros is not None else torch.zeros(1, 1)).numpy(), pl.p, pl.mant_emin, pl.mids,
                         pl.book, o32, o16, *scratch)
    return w_hat


class RowStats(NamedTuple):
    """What weight_statistics returns (see fused_kernels.weight_rows)."""
    nonzero: int
    row_sq: torch.Tensor           # [out] float64
    pooled: np.ndarray             # [ceil(out / fy), ceil(in / fx)] float32 max |W|
    span_min: torch.Tensor | None  # [out, in / 16] float32, when 16 divides in
    span_max: torch.Tensor | None
    extremes: torch.Tensor         # [2] W's min and max, float32 (or W's dtype when 16 does not divide in: the
                                   # torch path); NaN / Inf among them if W holds any


def weight_statistics(w: torch.Tensor, cells: CellCounts, fy: int, fx: int) -> RowStats:
    """analysis.weight_stats' reductions of a contiguous float32 or bfloat16 W [out, in] in one read by the kernel
    (the bit-pattern cells of W's histogram are added to `cells`)."""
    out, n_in = w.shape
    per16 = n_in % 16 == 0
    x32, x16 = _inputs(w)
    row_sq = torch.empty(out, dtype=torch.float64)
    span_min, span_max = (torch.empty(out, n_in // 16 if per16 else 0) for _ in range(2))
    lo, hi = (np.empty(0 if per16 else out, np.float32) for _ in range(2))
    pooled = np.empty((-(-out // fy), -(-n_in // fx)), np.float32)
    nonzero = _kernels(Use.ANALYSIS).weight_rows(
        x32, x16, n_in, cells.shift, cells.counts.numpy(), row_sq.numpy(), fy, fx, pooled, span_min.numpy(),
        span_max.numpy(), lo, hi, np.empty(n_in, np.float32), np.empty(n_in, np.uint32),
        np.empty(pooled.shape[1], np.uint32))
    if per16:
        extremes = torch.stack([span_min.amin(), span_max.amax()])
    else:
        extremes = torch.tensor([lo.min(), hi.max()])
    return RowStats(int(nonzero), row_sq, pooled, span_min if per16 else None, span_max if per16 else None,
                    extremes)


class RowReduction:
    """explorer.analysis_blocks.LayerReducer's sums of the error e = Ŵ - W by the kernels: row and column sums of
    e^2, sum W e, non-zero counts of Ŵ and e, clipped weights (quantize only) and the heatmap of max |e| over
    windows of fy rows and fx columns. For a layer [out, n_in] whose squares are normal float32
    (analysis_blocks.squares_normal)."""

    def __init__(self, out: int, n_in: int, fy: int, fx: int):
        self.kernels = _kernels(Use.ANALYSIS)
        self.out, self.n_in, self.fy, self.fx = out, n_in, fy, fx
        self.row_e2 = torch.empty(out)
        self.col_e2 = torch.zeros(n_in, dtype=torch.float64)
        self.heat = np.empty((-(-out // fy), -(-n_in // fx)), np.float32)
        self._win, self._dot, self._counts = np.empty(n_in, np.float32), np.zeros(1), np.zeros(3, np.int64)
        self._row, self._col = self.row_e2.numpy(), self.col_e2.numpy()

    def add(self, r0: int, x: torch.Tensor, w_hat: torch.Tensor) -> None:
        """Rows r0 .. of W (x) and Ŵ (w_hat) [rows, n_in] float32 (read only)."""
        self.kernels.reduce_rows(padded_rows(x), padded_rows(w_hat), self.n_in, r0, self.out, self.fy, self.fx,
                                 self._row, self._col, self._win, self.heat, self._dot, self._counts)

    def quantize(self, w: torch.Tensor, spec: QuantSpec, span: int, extremes: tuple[torch.Tensor, torch.Tensor],
                 rows: int, stage: Callable[[torch.Tensor], None] | None) -> Q.QuantResult | None:
        """Quantizes W [out, n_in] (float32 or bfloat16, spans dividing n_in) and reduces it in the same pass, rows
        at a time, given W's (min, max) per span [out, n_in / span]; stage(e) gets each chunk's error rows when
        given. Returns the QuantResult's scales and zero points (no codes), or None where no plan covers the
        format or dtype (the caller then quantizes with explorer.fast_paths and reduces with add)."""
        pl = plan(spec)
        if pl is None or w.dtype not in (torch.float32, torch.bfloat16) or w.shape[1] % span:
            return None
        out, n_in = w.shape
        lo, hi = extremes
        fmt = spec.format
        if spec.granularity is Granularity.TENSOR:  # one scale: from the whole tensor's extremes, here
            scales, zeros = span_scales(spec, lo, hi)
            zs, sp, lo_, hi_ = (zeros if zeros is not None else torch.zeros(1, 1)), scale_plan(spec), _NONE, _NONE
        else:  # each row's scales computed by the kernel from its extremes (NVFP4: given W's absmax)
            tensor_scale = 1.0
            if fmt.scale_encoding is ScaleEncoding.E4M3:
                t_amax = torch.maximum(lo.abs().amax(), hi.abs().amax())
                tensor_scale = Q.block_scales(t_amax.reshape(1, 1, 1), spec)[2]
            scales = torch.empty(out, n_in // span)
            zeros = torch.zeros(out, n_in // span) if not spec.symmetric else None
            zs = zeros if zeros is not None else torch.zeros(out, n_in // span)
            sp, lo_, hi_ = scale_plan(spec, tensor_scale), lo, hi
        amax = np.empty(n_in // span, np.float32)
        per_row = (lambda t, a, b: t[a:b] if t.shape[0] > 1 else t)
        scratch = (np.empty(n_in, np.float32), np.empty(n_in, np.float32), np.empty(n_in, np.uint32))
        x32, x16 = _inputs(w.contiguous())
        ebuf = torch.empty(min(rows, out), n_in) if stage is not None else torch.empty(0, n_in)
        rows = rows if stage is not None else out  # chunks only for the staging of the error rows
        for r0 in range(0, out, rows):
            r1 = min(r0 + rows, out)
            e = ebuf[:r1 - r0] if stage is not None else ebuf
            self.kernels.quantize_reduce_rows(
                pl.kind, x32[r0:r1], x16[r0:r1], n_in, span,
                per_row(scales, r0, r1).numpy(), per_row(zs, r0, r1).numpy(), sp, per_row(lo_, r0, r1).numpy(),
                per_row(hi_, r0, r1).numpy(), amax, pl.p, pl.mant_emin, pl.mids, pl.book,
                e.numpy(), *scratch, r0, self.out, self.fy, self.fx, self._row, self._col, self._win, self.heat,
                self._dot, self._counts)
            if stage is not None:
                stage(e)
        codes = torch.zeros((), dtype=FK.code_dtype(spec)).expand(w.shape)
        return Q.QuantResult(spec, codes, scales, zeros, w.dtype, span)

    @property
    def dot(self) -> float:
        return float(self._dot[0])

    @property
    def nonzero_hat(self) -> int:
        return int(self._counts[0])

    @property
    def nonzero_err(self) -> int:
        return int(self._counts[1])

    @property
    def clipped(self) -> int:
        """Weights beyond their span's clip bounds, counted by quantize (metrics.clip_bounds)."""
        return int(self._counts[2])
