"""The chunk machinery behind explorer.analysis.analyze_layer: rows of W quantized and reduced a chunk at a time.

- `LayerReducer`: quantizes and reduces W in one pass of explorer.fused's kernels where they run (`quantize`),
  else is the sink of explorer.fast_paths.quantize_fast, reducing each chunk of rows (W and Ŵ float32) while it
  is in the L2 cache (by the fused kernel, or torch ops): per-row and per-column error sums, counts, the pooled
  error heatmap;
- `Clips`: clipped-weight counts, only inside spans whose extremes pass their bounds;
- `Histograms`: the format-dependent histograms (code space, error, relative error), over every k-th row;
- small kernels: code space of rows, relative-error counts, non-zero counts by bit pattern, max-pooled |a|
  without an |a| array, block and pooling sizes.
Everything works in place on float32 scratch buffers a chunk (or a staged batch) in size.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from explorer.fast_kernels import const
from explorer.fast_paths import quantize_fast
from explorer.fused import RowReduction as fused_rows
from explorer.fused import available
from explorer.histogram import CellCounts
from explorer.metrics import LARGE_WEIGHT, clip_bounds, count_clipped
from explorer.quantize import QuantResult
from explorer.specs import Granularity, QuantSpec, ScaleEncoding

if TYPE_CHECKING:  # only for annotations: analysis imports this module
    from explorer.analysis import WeightStats

REL_LOG10_RANGE = (-7.0, 1.0)  # relative error |Ŵ-W|/|W| histogram, log10 units
REL_BINS = 160
HEATMAP_CELLS = 192            # max rows and columns of a pooled heatmap
CHUNK_WEIGHTS = 1 << 17        # weights per chunk of rows: quantized and reduced while in the L2 cache
BLOCK_WEIGHTS = 1 << 20        # weights per batch of staged rows (sampled histograms, output error, clip gathers)
POOL_BATCH = 32                # heatmap windows whose row maxima are kept before their columns are pooled
SMALL_WEIGHT = 2.0 ** -37      # below it, |Ŵ - W| may have a subnormal square (see squares_normal)
EXTREMES_SPAN = 16             # WeightStats keeps min and max per 16 inputs: any multiple (groups, blocks) follows


class LayerReducer:
    """The sink of quantize_fast for analyze_layer: each chunk of rows (W and Ŵ in float32, just written and still
    in the L2 cache) is reduced at once to per-row and per-column sums of the error, counts, the rows of the
    max-pooled |Ŵ - W| heatmap and clip counts (and, with inputs X, staged for ||X (Ŵ - W)^T||). The error is
    written over Ŵ's chunk buffer, with the chunk's free work buffer as scratch: nothing of W's size is written.
    Ops on a chunk that fits in L2 run ~4x faster here than on blocks of a few MB (sub / mul on 11 x 11008 rows vs
    88: 5 vs 21 ms per 45M weights, one thread), so each pass counts: sums of products are dot products over
    the chunk (read-only passes; the metrics need only their totals), and the heatmap pools the squared error
    already computed for the per-row and per-column sums."""

    def __init__(self, w: torch.Tensor, stats: WeightStats, clips: Clips, x: torch.Tensor | None,
                 fused: bool = True):
        out, n_in = w.shape
        dev = w.device
        self.out, self.n_in, (self.fy, self.fx) = out, n_in, stats.pool
        # Squares in float32 while every one is normal and their row sums finite (squares_normal: max |e| is then
        # sqrt(max e^2) exactly, sqrt(fl(e^2)) = |e| holding for every float32 in a binade of each parity,
        # tests/test_analysis.py); else (weights below 2^-37 or above 2^50) squares and products in float64, and
        # the heatmap pools e and -e.
        self.squared = squares_normal(stats)
        self.dot, self.nonzero_err, self.nonzero_hat = 0.0, 0, 0
        self.clips = clips
        self.x, self.num, self.staged, self.stage = x, 0.0, 0, None
        self.quantized = False  # whether quantize ran the fused quantizer (it counts the clipped weights too)
        # On CPU, one numba kernel reads each chunk once for all the sums below (explorer.fused): the torch ops
        # make ~9 passes over it. fused=False (or no numba, or CUDA, or squares outside float32) keeps torch.
        self.fast = fused_rows(out, n_in, self.fy, self.fx) if fused and self.squared and available(w) else None
        if self.fast is not None:
            self.row_e2, self.col_e2 = self.fast.row_e2, self.fast.col_e2
            return
        sums = torch.float32 if self.squared else torch.float64
        self.row_e2 = torch.empty(out, dtype=sums, device=dev)
        self.col_e2 = torch.zeros(n_in, dtype=torch.float64, device=dev)
        self.col, self.seg = torch.empty(n_in, dtype=sums, device=dev), torch.empty(n_in, device=dev)
        self.zero = const(0.0, torch.float32, dev)  # a 0-dim operand: no scalar wrapping per call
        windows = -(-out // self.fy)
        self.ext, self.batch0 = torch.empty(2, min(POOL_BATCH, windows), n_in, device=dev), 0  # see _pool
        self.e_pool: list[torch.Tensor] = []

    def quantize(self, w: torch.Tensor, spec: QuantSpec, span: int,
                 extremes: tuple[torch.Tensor, torch.Tensor] | None) -> QuantResult | None:
        """Quantizes W and reduces it in one fused pass where the kernels cover it (explorer.fused: CPU, float32 or
        bfloat16 W, W's extremes per span known): the QuantResult's scales and zero points (no codes). Else None:
        then quantize_fast feeds this reducer chunk by chunk (its sink)."""
        if self.fast is None or extremes is None:
            return None
        rows = max(1, CHUNK_WEIGHTS // self.n_in)
        result = self.fast.quantize(w, spec, span, extremes, rows, self._stage if self.x is not None else None)
        self.quantized = result is not None
        return result

    def __call__(self, r0: int, x: torch.Tensor, w_hat: torch.Tensor, scales: torch.Tensor,
                 zeros: torch.Tensor | None, tmp: torch.Tensor) -> None:
        if self.fast is not None:
            self.fast.add(r0, x, w_hat)
            self.clips.add(x, scales, zeros)
            if self.x is not None:
                self._stage(torch.sub(w_hat, x, out=tmp))
            return
        n = x.shape[0]
        # Counts as sums of a float 0/1 comparison (a vectorized compare, unlike one into bool): exact up to 2^24.
        wide = None if x.numel() < 1 << 24 else torch.float64
        self.nonzero_hat += int(torch.ne(w_hat, self.zero, out=tmp).sum(dtype=wide))
        err = torch.sub(w_hat, x, out=w_hat)  # Ŵ's buffer is the sink's to overwrite; a third buffer would leave L2
        self.nonzero_err += int(torch.ne(err, self.zero, out=tmp).sum(dtype=wide))
        if self.squared:
            self.dot += _dot(x, err, tmp)
            e2 = torch.mul(err, err, out=tmp)
        else:  # squares outside float32's normal range: float64 (a copy of the chunk; such layers are rare)
            e2 = err.double()
            self.dot += float(torch.mul(x.double(), e2).sum())
            e2.square_()
        torch.sum(e2, 1, out=self.row_e2[r0:r0 + n])
        self.col_e2.add_(torch.sum(e2, 0, out=self.col))
        self._pool(r0, e2 if self.squared else err)
        self.clips.add(x, scales, zeros)
        if self.x is not None:
            self._stage(err)

    def _pool(self, r0: int, a: torch.Tensor) -> None:
        """Max over the rows of each window of fy rows, a chunk's part of it at a time, kept per window in a batch
        of POOL_BATCH windows (of e^2, or of e and -e where e^2 may be inexact); a finished batch becomes rows of
        the heatmap: max over windows of fx columns, pooled for the whole batch at once."""
        r1, s = r0 + a.shape[0], r0
        while s < r1:
            w0 = s - s % self.fy
            w1 = min(w0 + self.fy, self.out)
            e = min(r1, w1)
            seg, j = a[s - r0:e - r0], w0 // self.fy - self.batch0
            hi, lo = self.ext[0, j], self.ext[1, j]
            if s == w0:
                torch.amax(seg, 0, out=hi)
                if not self.squared:
                    torch.amin(seg, 0, out=lo)
            else:
                torch.maximum(hi, torch.amax(seg, 0, out=self.seg), out=hi)
                if not self.squared:
                    torch.minimum(lo, torch.amin(seg, 0, out=self.seg), out=lo)
            if e == w1 and (j == self.ext.shape[1] - 1 or w1 == self.out):
                if self.squared:
                    self.e_pool.append(F.max_pool1d(self.ext[0, :j + 1], self.fx, self.fx, ceil_mode=True).sqrt_())
                else:
                    ext = self.ext[:, :j + 1]
                    ext[1].neg_()
                    pooled = F.max_pool1d(ext, self.fx, self.fx, ceil_mode=True)
                    self.e_pool.append(torch.maximum(pooled[0], pooled[1]))
                self.batch0 += j + 1
            s = e

    def _stage(self, err: torch.Tensor) -> None:
        """Rows of the error gathered for ||X (Ŵ - W)^T||^2 in products of ~BLOCK_WEIGHTS weights."""
        n = len(err)
        if self.stage is None:
            self.stage = torch.empty(max(n, BLOCK_WEIGHTS // self.n_in), self.n_in, device=err.device)
        if self.staged + n > len(self.stage):
            self._flush()
        self.stage[self.staged:self.staged + n].copy_(err)
        self.staged += n

    def finish(self) -> None:
        """After the last chunk: adds the output error of the rows still staged, takes the fused kernel's totals."""
        self._flush()
        if self.fast is not None:
            self.dot, self.nonzero_hat, self.nonzero_err = self.fast.dot, self.fast.nonzero_hat, self.fast.nonzero_err

    def clipped(self, result: QuantResult) -> int:
        """Clipped weights: counted by the fused quantizer when it ran (quantize), else by the Clips."""
        return self.fast.clipped if self.quantized else self.clips.total(result)

    def _flush(self) -> None:
        """Adds the output error of the error rows staged."""
        if self.x is None or not self.staged:
            return
        e = self.stage[:self.staged]
        self.num += sum(float((self.x[t:t + 4096].float() @ e.T).double().square().sum())
                        for t in range(0, len(self.x), 4096))
        self.staged = 0

    def err_pooled(self) -> np.ndarray:
        """The heatmap of max |Ŵ - W| [ceil(out / fy), ceil(in / fx)]."""
        return self.fast.heat if self.fast is not None else torch.cat(self.e_pool).cpu().numpy()


def products(w: torch.Tensor, spec: QuantSpec, reducer: LayerReducer, row_sq: torch.Tensor) -> tuple[float, float]:
    """(sum W Ŵ, sum Ŵ^2) over W [out, in], after the reducer's pass, given sum W^2 per row. Where Ŵ is close to W
    they are W^2 + W e and W^2 + 2 W e + e^2 (e = Ŵ - W), the small terms summed directly, so 1 - cosine keeps
    its digits (a float32 sum of W Ŵ is off by ~1e-7 of itself, as much as 1 - cosine of an INT8 layer). Where Ŵ
    is far smaller than W (weights beyond a scale's range, or below its step) those cancel to noise: then a
    second pass sums W Ŵ and Ŵ^2 directly."""
    sig = float(row_sq.sum())
    hat = sig + 2 * reducer.dot + float(reducer.row_e2.double().sum())
    if hat >= sig / 4:
        return sig + reducer.dot, hat
    sums = [0.0, 0.0]

    def direct(r0, x, w_hat, scales, zeros, tmp):
        if reducer.squared:
            sums[0] += _dot(x, w_hat, tmp)
            sums[1] += _dot(w_hat, w_hat, tmp)
        else:  # products outside float32's normal range (squares_normal)
            x, w_hat = x.double(), w_hat.double()
            sums[0] += float(torch.mul(x, w_hat).sum())
            sums[1] += float(torch.mul(w_hat, w_hat).sum())

    quantize_fast(w, spec, chunk_elements=CHUNK_WEIGHTS, codes=False, sink=direct)
    return sums[0], sums[1]


def _dot(a: torch.Tensor, b: torch.Tensor, tmp: torch.Tensor) -> float:
    """sum a b over a chunk [rows, in] float32: one BLAS dot product (a read of both, no write), or a product
    into tmp and its sum for the strided views of rows padded to whole groups."""
    if a.is_contiguous() and b.is_contiguous():
        return float(torch.vdot(a.view(-1), b.view(-1)))
    return float(torch.mul(a, b, out=tmp).sum())


def squares_normal(stats: WeightStats) -> bool:
    """Whether every square the analysis sums (W^2, (Ŵ - W)^2, W (Ŵ - W) for a round-to-nearest Ŵ) is 0 or a
    normal float32 and their sums along a row (up to 2^20 inputs) stay finite: no non-zero |W| below SMALL_WEIGHT
    = 2^-37 and none above LARGE_WEIGHT = 2^50. Then max |e| = sqrt(max e^2) exactly, too.
    Why: 0 is on every grid and Ŵ is a nearest point, so W = 0 gives e = 0 and otherwise |Ŵ| <= 2 |W| (+ scale
    rounding), |e| <= 3 |W| < 2^52. For e != 0 with p = 2^(floor(log2 |W|) - 1) >= |W| / 4: if |Ŵ| < |W| / 2
    then |e| > |W| / 2; else Ŵ and W are both >= p in magnitude, so multiples of p 2^-23, and so is e, |e| >=
    p 2^-23 >= 2^-25 |W| >= 2^-62 (squares >= 2^-124, and W^2 >= 2^-74; products W e likewise)."""
    lo, hi = (float(v) for v in stats.extremes.float())
    return stats.small == 0 and max(-lo, hi) <= LARGE_WEIGHT


class Clips:
    """count_clipped over W, counting only inside spans whose extremes pass their bounds (elsewhere nothing can
    clip): the bounds of the result's scales are compared once for the whole layer with the cached extremes per
    16 inputs (or the spans' own, gathered chunk by chunk, when the span is not a multiple of 16)."""

    def __init__(self, w: torch.Tensor, spec: QuantSpec, span: int, stats: WeightStats):
        self.w, self.spec, self.span, self.count = w, spec, span, 0
        self.spanned = w.shape[1] % span == 0
        self.cached = self.spanned and stats.span_min is not None and span % EXTREMES_SPAN == 0
        self.stats, self.mins, self.maxs = stats, [], []

    def _result(self, scales: torch.Tensor, zeros: torch.Tensor | None) -> QuantResult:
        return QuantResult(self.spec, self.w[:0], scales, zeros, self.w.dtype, self.span)

    def add(self, x: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor | None) -> None:
        """One chunk of rows: x [rows, in] float32, its scales and zero points [rows or 1, n_spans]."""
        if not self.spanned:  # a short last group: bounds spread to every column, counted now
            lo, hi = clip_bounds(self._result(scales, zeros))
            spread = (lambda t: t.repeat_interleave(self.span, dim=1)[:, :x.shape[1]] if t.shape[1] > 1 else t)
            self.count += count_clipped(x, spread(lo), spread(hi))
        elif not self.cached:
            view = x.reshape(len(x), -1, self.span)
            self.mins.append(view.amin(-1))
            self.maxs.append(view.amax(-1))

    def total(self, result: QuantResult) -> int:
        """The count over W, given the QuantResult of all of it (its scales)."""
        if not self.spanned:
            return self.count
        out, n_in = self.w.shape
        lo, hi = clip_bounds(self._result(result.scales, result.zeros))
        if self.cached:
            s_min, s_max = self.stats.extremes_per(self.span)
        else:
            s_min, s_max = torch.cat(self.mins), torch.cat(self.maxs)
        # Spans whose extremes pass a bound, by float 0/1 comparisons (vectorized, unlike into bool)
        flags = torch.gt(s_max, hi, out=torch.empty_like(s_max))
        flags.add_(torch.lt(s_min, lo, out=torch.empty_like(s_min)))
        if float(flags.amax()) == 0:
            return 0
        maybe = flags.view(-1) > 0
        # The spans that may clip, gathered a batch at a time as whole rows of W viewed [spans, span] (MX blocks
        # clip in ~1 in 5 spans), compared with their bounds into float 0/1 (vectorized) and summed.
        idx = maybe.nonzero().squeeze(1)
        lo, hi = lo.expand(out, -1).reshape(-1), hi.expand(out, -1).reshape(-1)
        spans = self.w.view(-1, self.span)
        # Batches that stay in L2 for their compares; bounds symmetric about 0 (a symmetric grid without zero
        # points: lo = -hi exactly) count |v| > hi, one compare instead of two.
        step, count = max(1, CHUNK_WEIGHTS // self.span), 0
        gathered, flags = (torch.empty(min(step, idx.shape[0]), self.span, device=self.w.device) for _ in range(2))
        fmt = self.spec.format
        mirrored = (result.zeros is None and fmt.grid[0] == -fmt.grid[-1]
                    and fmt.grid[1] - fmt.grid[0] == fmt.grid[-1] - fmt.grid[-2])
        for i in range(0, idx.shape[0], step):
            j = idx[i:i + step]
            n = j.shape[0]
            if spans.dtype == torch.float32:
                v = torch.index_select(spans, 0, j, out=gathered[:n])
            else:
                v = gathered[:n].copy_(spans.index_select(0, j))
            b = flags[:n]
            if mirrored:
                count += int(torch.gt(v.abs_(), hi.index_select(0, j).unsqueeze(1), out=b).sum())
            else:
                count += int(torch.lt(v, lo.index_select(0, j).unsqueeze(1), out=b).sum())
                count += int(torch.gt(v, hi.index_select(0, j).unsqueeze(1), out=b).sum())
        return count


class Histograms:
    """The format-dependent histograms (code space, error, relative error) over rows 0, k, 2k, ... of W (k = 1:
    every row), in a pass of their own: the sampled rows are gathered in batches of ~BLOCK_WEIGHTS weights and
    quantized by the fast path, bit for bit as in the whole tensor (per-tensor statistics are carried in by two
    extra rows holding W's min and max: the batch then has W's range, so it gets W's per-tensor scales), then
    counted. A sparse sample costs a few large passes, and the main pass carries nothing for it."""

    def __init__(self, w: torch.Tensor, spec: QuantSpec, span: int, k: int, bins: int, extremes: torch.Tensor):
        self.cells_e = CellCounts(w.device, mantissa_bits(bins))
        self.cells_y = CellCounts(w.device, mantissa_bits(max(bins, 512)))
        self.rel = torch.zeros(REL_BINS, dtype=torch.int64)
        self.e_amax = self.y_amax = 0.0
        self.weights = 0
        out, n_in = w.shape
        tensor_wide = spec.granularity is Granularity.TENSOR or spec.format.scale_encoding is ScaleEncoding.E4M3
        sampled = range(0, out, k)
        rows = max(1, BLOCK_WEIGHTS // n_in)
        extra = 2 if tensor_wide else 0
        block = torch.empty(min(rows, len(sampled)) + extra, n_in, dtype=w.dtype, device=w.device)
        x = torch.empty(block.shape, device=w.device)
        tmp, scratch = torch.empty(block.shape, device=w.device), torch.empty(block.shape, device=w.device)
        keys = torch.empty(block.numel(), dtype=torch.int32, device=w.device)
        for i in range(0, len(sampled), rows):
            part = sampled[i:i + rows]
            n = len(part)
            torch.index_select(w, 0, torch.arange(part.start, part.stop, k, device=w.device), out=block[:n])
            if extra:
                block[n:n + 2].copy_(extremes[:, None].expand(2, n_in))
            h, res = quantize_fast(block[:n + extra], spec, with_result=True, codes=False)
            xs = x[:n].copy_(block[:n])
            e = torch.sub(h[:n], xs, out=tmp[:n]) if h.dtype == torch.float32 else h[:n].float().sub_(xs)
            per_row = (lambda t: t if t is None or t.shape[0] == 1 else t[:n])
            self._count(e, xs, per_row(res.scales), per_row(res.zeros), span, scratch, keys)

    def _count(self, e, x, scales, zeros, span, scratch, keys) -> None:
        """e = Ŵ - W and x = W [m, in] float32, with their scales and zero points [m or 1, n_spans]."""
        self.weights += e.numel()
        zero_errors = e.numel() - count_nonzero(e, keys)
        self.cells_e.add(e, keys)
        self.e_amax = max(self.e_amax, float(e.amax()), -float(e.amin()))
        self.rel += rel_counts(e, x, zero_errors, scratch, keys).cpu()
        y = code_space_rows(x, scales, zeros, span, scratch)
        self.y_amax = max(self.y_amax, float(y.amax()), -float(y.amin()))
        self.cells_y.add(y, keys)


def code_space_rows(xs: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor | None, span: int,
                     out: torch.Tensor) -> torch.Tensor:
    """y = W / scale (+ zero) of rows xs [m, in] with their per-span scales (and zero points) [m or 1, n_spans],
    as code_space() computes it, written into `out`."""
    safe = torch.where(scales > 0, scales, torch.ones_like(scales))
    m, n_in = xs.shape
    y = out.view(-1)[:m * n_in].view(m, n_in)
    if n_in % span:
        spread = (lambda t: t.repeat_interleave(span, dim=1)[:, :n_in] if t.shape[1] > 1 else t)
        torch.div(xs, spread(safe), out=y)
        return y if zeros is None else y.add_(spread(zeros))
    yv = torch.div(xs.view(m, -1, span), safe.unsqueeze(-1), out=y.view(m, -1, span))
    if zeros is not None:
        yv.add_(zeros.unsqueeze(-1))
    return y


def rel_counts(err: torch.Tensor, x: torch.Tensor, zero_errors: int, tmp: torch.Tensor,
                keys: torch.Tensor) -> torch.Tensor:
    """Counts of log10(|Ŵ - W| / |W|) over REL_LOG10_RANGE (REL_BINS bins; outside: the end bins), over weights
    with W != 0 and an error != 0. A zero error gives log10(0) = -inf, or NaN where W = 0 too (a zero W always
    has a zero error): fmax sends both to bin 0, and the zero_errors of them leave bin 0 again. After fmax and
    the upper clamp every value is >= 0, so truncation to an integer is the floor."""
    lo, hi = REL_LOG10_RANGE
    v = tmp.view(-1)[:err.numel()].view(err.shape)
    torch.div(err, x, out=v).abs_().log10_().sub_(lo).div_((hi - lo) / REL_BINS)
    torch.fmax(v, torch.zeros((), device=v.device), out=v).clamp_(max=REL_BINS - 1)
    idx = keys[:v.numel()].view(v.shape)
    idx.copy_(v)
    counts = torch.bincount(idx.view(-1), minlength=REL_BINS)
    counts[0] -= zero_errors
    return counts


def count_nonzero(t: torch.Tensor, keys: torch.Tensor) -> int:
    """Non-zero elements of a float32 tensor: its bit patterns shifted past the sign bit, counted as integers
    (faster than a float comparison; -0.0 counts as zero)."""
    b = keys[:t.numel()].view(t.shape)
    torch.bitwise_left_shift(t.view(torch.int32), 1, out=b)
    return int(torch.count_nonzero(b))


def pool_abs(a: torch.Tensor, fy: int, fx: int) -> torch.Tensor:
    """Max-pooled |a| [ceil(rows / fy), ceil(cols / fx)] = max(max a, -min a) over each window: reductions over
    rows, then columns; no |a| array. Windows start at row 0 of a (callers pass whole windows of rows)."""
    r, n = a.shape
    full = r // fy * fy
    maxs, mins = [], []
    if full:
        v = a[:full].view(full // fy, fy, n)
        maxs.append(v.amax(1))
        mins.append(v.amin(1))
    if full < r:
        maxs.append(a[full:].amax(0, keepdim=True))
        mins.append(a[full:].amin(0, keepdim=True))
    mx = F.max_pool1d(torch.cat(maxs)[None], fx, fx, ceil_mode=True)[0]
    mn = F.max_pool1d(-torch.cat(mins)[None], fx, fx, ceil_mode=True)[0]
    return torch.maximum(mx, mn)


def pool_factors(out: int, n_in: int, cells: int = HEATMAP_CELLS) -> tuple[int, int]:
    return max(1, -(-out // cells)), max(1, -(-n_in // cells))


def block_rows(out: int, n_in: int, fy: int) -> int:
    """Rows per block: whole pooling windows, about BLOCK_WEIGHTS weights."""
    return max(1, BLOCK_WEIGHTS // n_in // fy) * fy


def mantissa_bits(bins: int) -> int:
    """Mantissa bits of CellCounts cells for an exact histogram of `bins` bins (at least 8: 256 cells a binade)."""
    if bins < 2 or bins & (bins - 1):
        raise ValueError(f"bins={bins} is not allowed; choose a power of two >= 2")
    return max(8, bins.bit_length() - 2)
