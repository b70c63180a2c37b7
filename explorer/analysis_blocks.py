"""The block machinery behind explorer.analysis.analyze_layer: rows of W quantized and reduced a block at a time.

- `BlockQuantizer`: Ŵ and the QuantResult of a block of rows, bit for bit those of the whole tensor (per-tensor
  statistics carried in by two extra rows holding W's extremes);
- `Clips`: clipped-weight counts, only inside spans whose extremes pass their bounds;
- `Histograms`: the format-dependent histograms (code space, error, relative error), over every k-th row;
- small kernels: code space of rows, relative-error counts, non-zero counts by bit pattern, max-pooled |a|
  without an |a| array, block and pooling sizes.
Everything works in place on float32 scratch buffers a block in size, so a block stays in cache.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from explorer.fast_paths import quantize_fast
from explorer.histogram import CellCounts
from explorer.metrics import clip_bounds, count_clipped
from explorer.quantize import QuantResult
from explorer.specs import Granularity, QuantSpec, ScaleEncoding

if TYPE_CHECKING:  # only for annotations: analysis imports this module
    from explorer.analysis import WeightStats

REL_LOG10_RANGE = (-7.0, 1.0)  # relative error |Ŵ-W|/|W| histogram, log10 units
REL_BINS = 160
HEATMAP_CELLS = 192            # max rows and columns of a pooled heatmap
BLOCK_WEIGHTS = 1 << 20        # weights per block of rows (whole pooling windows): quantized and reduced at once
EXTREMES_SPAN = 16             # WeightStats keeps min and max per 16 inputs: any multiple (groups, blocks) follows


class BlockQuantizer:
    """Ŵ and the QuantResult of rows r0:r1 of W, bit for bit what quantize_fast(w, spec) gives for those rows.

    Rows are quantized independently except through per-tensor statistics (a TENSOR scale from W's range, NVFP4's
    tensor scale from W's absmax). For those, the rows go in followed by two rows holding W's min and max: the
    block then has W's range, so it gets W's per-tensor scale, and its own rows come out as in the whole tensor."""

    def __init__(self, w: torch.Tensor, spec: QuantSpec, stats: WeightStats, rows: int):
        self.w, self.spec = w, spec
        self.tensor_wide = (spec.granularity is Granularity.TENSOR
                            or spec.format.scale_encoding is ScaleEncoding.E4M3)
        if self.tensor_wide:
            self.buf = torch.empty(rows + 2, w.shape[1], dtype=w.dtype, device=w.device)
            self.extremes = stats.extremes[:, None].expand(2, w.shape[1])

    def __call__(self, r0: int, r1: int) -> tuple[torch.Tensor, QuantResult]:
        if not self.tensor_wide:
            return quantize_fast(self.w[r0:r1], self.spec, with_result=True, codes=False)
        n = r1 - r0
        block = self.buf[:n + 2]
        block[:n].copy_(self.w[r0:r1])
        block[n:].copy_(self.extremes)
        h, res = quantize_fast(block, self.spec, with_result=True, codes=False)
        rows = (lambda t: t if t is None or t.shape[0] == 1 else t[:n])
        return h[:n], QuantResult(res.spec, res.codes[:n], rows(res.scales), rows(res.zeros), res.dtype, res.span,
                                  None, res.tensor_scale)


class Clips:
    """count_clipped over W, counting only inside spans whose extremes pass their bounds (elsewhere nothing can
    clip): the blocks' scales are gathered, and the bounds compared once for the whole layer with the cached
    extremes per 16 inputs (or the blocks' own, when the span is not a multiple of 16)."""

    def __init__(self, w: torch.Tensor, spec: QuantSpec, span: int, stats: WeightStats):
        self.w, self.spec, self.span, self.count = w, spec, span, 0
        self.spanned = w.shape[1] % span == 0
        self.cached = self.spanned and stats.span_min is not None and span % EXTREMES_SPAN == 0
        self.stats, self.scales, self.zeros, self.mins, self.maxs = stats, [], [], [], []

    def add(self, xc: torch.Tensor, res: QuantResult) -> None:
        """One block of rows: xc [rows, in] float32 and its QuantResult."""
        if not self.spanned:  # a short last group: bounds spread to every column, counted now
            lo, hi = clip_bounds(res)
            spread = (lambda t: t.repeat_interleave(self.span, dim=1)[:, :xc.shape[1]] if t.shape[1] > 1 else t)
            self.count += count_clipped(xc, spread(lo), spread(hi))
            return
        if res.scales.shape[0] > 1 or not self.scales:  # a per-tensor scale once
            self.scales.append(res.scales)
            self.zeros.append(res.zeros)
        if not self.cached:
            view = xc.view(len(xc), -1, self.span)
            self.mins.append(view.amin(-1))
            self.maxs.append(view.amax(-1))

    def total(self) -> int:
        if not self.spanned:
            return self.count
        out, n_in = self.w.shape
        zeros = None if self.zeros[0] is None else torch.cat(self.zeros)
        lo, hi = clip_bounds(QuantResult(self.spec, self.w[:0], torch.cat(self.scales), zeros, self.w.dtype,
                                         self.span))
        if self.cached:
            shape = (out, n_in // self.span, self.span // EXTREMES_SPAN)
            s_min, s_max = self.stats.span_min.view(shape).amin(-1), self.stats.span_max.view(shape).amax(-1)
        else:
            s_min, s_max = torch.cat(self.mins), torch.cat(self.maxs)
        maybe = (s_max > hi) | (s_min < lo)
        if not bool(maybe.any()):
            return 0
        rows, cols = maybe.nonzero(as_tuple=True)
        view, lo, hi = self.w.view(out, -1, self.span), lo.expand_as(maybe), hi.expand_as(maybe)
        step, count = max(1, BLOCK_WEIGHTS // self.span), 0  # gathered a block's worth of weights at a time
        for i in range(0, len(rows), step):
            r, c = rows[i:i + step], cols[i:i + step]
            count += count_clipped(view[r, c].float(), lo[r, c].unsqueeze(-1), hi[r, c].unsqueeze(-1))
        return count


class Histograms:
    """The format-dependent histograms (code space, error, relative error) over rows 0, k, 2k, ... of W (k = 1:
    every row). With k > 1 the blocks' sampled rows are gathered first and counted in batches of a block's size:
    a sparse sample then costs a few large passes instead of many small ones."""

    def __init__(self, n_in: int, span: int, k: int, bins: int, rows: int, per_row: bool, device):
        self.cells_e = CellCounts(device, mantissa_bits(bins))
        self.cells_y = CellCounts(device, mantissa_bits(max(bins, 512)))
        self.rel = torch.zeros(REL_BINS, dtype=torch.int64)
        self.span, self.k, self.per_row, self.e_amax, self.y_amax, self.weights = span, k, per_row, 0.0, 0.0, 0
        if k > 1:  # staging: sampled rows of the error and of W, with their scales and zero points
            self.err, self.x = torch.empty(rows, n_in, device=device), torch.empty(rows, n_in, device=device)
            self.n, self.scales, self.zeros = 0, [], []

    def add(self, r0: int, err: torch.Tensor, xc: torch.Tensor, res: QuantResult, zero_errors: int,
            tmp: torch.Tensor, keys: torch.Tensor) -> None:
        """A block of rows r0.. (err, xc [rows, in] float32, its QuantResult and count of zero errors)."""
        if self.k == 1:
            return self._count(err, xc, res.scales, res.zeros, zero_errors, tmp, keys)
        off = (-r0) % self.k  # the block's rows that are multiples of k
        m = len(range(off, len(err), self.k))
        if m == 0:
            return
        if self.n + m > len(self.err):
            self.flush(tmp, keys)
        self.err[self.n:self.n + m].copy_(err[off::self.k])
        self.x[self.n:self.n + m].copy_(xc[off::self.k])
        rows = (lambda t: t if t is None or not self.per_row else t[off::self.k])
        self.scales.append(rows(res.scales))
        self.zeros.append(rows(res.zeros))
        self.n += m

    def flush(self, tmp: torch.Tensor, keys: torch.Tensor) -> None:
        if self.k == 1 or self.n == 0:
            return
        e, x = self.err[:self.n], self.x[:self.n]
        cat = (lambda parts: None if parts[0] is None else torch.cat(parts) if self.per_row else parts[0])
        self._count(e, x, cat(self.scales), cat(self.zeros), e.numel() - count_nonzero(e, keys), tmp, keys)
        self.n, self.scales, self.zeros = 0, [], []

    def _count(self, e, x, scales, zeros, zero_errors, tmp, keys) -> None:
        self.weights += e.numel()
        self.cells_e.add(e, keys)
        self.e_amax = max(self.e_amax, float(e.amax()), -float(e.amin()))
        y = code_space_rows(x, scales, zeros, self.span, tmp)
        self.y_amax = max(self.y_amax, float(y.amax()), -float(y.amin()))
        self.cells_y.add(y, keys)
        self.rel += rel_counts(e, x, zero_errors, tmp, keys).cpu()


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
