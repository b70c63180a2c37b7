"""One layer under the microscope: everything the Layer Lab shows, computed from real tensors.

`analyze_layer(w, spec, x=None, stats=None) -> LayerAnalysis` quantizes W [out, in] and reduces the result to
small arrays a browser can draw: histograms (binned on the server), per-channel errors, max-pooled heatmaps (a
single outlier row or column stays visible after pooling), the metrics, and the output error on real activations
X [tokens, in] when they are given. No array grows past a few thousand numbers, whatever the layer size.

Split in two so a widget change recomputes only what depends on the format:
- `weight_stats(w, x=None) -> WeightStats`: what depends on W (and X) alone: W's histogram, max-pooled |W|,
  sum of W^2 per row, zero count, extremes (whole and per 16 inputs), ||X W^T||^2. Once per tensor (a page
  caches it by the tensor's name, never by the tensor);
- `analyze_layer(..., stats=that)`: the rest. Without stats it computes them first: the same numbers.

Speed (a widget change reruns this): on CPU, for a float32 or bfloat16 layer of 2^20 weights or more, numba
kernels quantize and reduce W in one read (explorer.fused: each row into L1, its scales from the cached extremes,
Ŵ bit-identical to the reference, then its error sums, counts, clipped weights and heatmap rows). Elsewhere the
torch fast path (explorer.fast_paths.quantize_fast, bit-identical to the reference) hands each chunk of ~128K
weights (W and Ŵ in float32) to explorer.analysis_blocks.LayerReducer while the chunk is still in the L2 cache,
which reduces it with a few vectorized passes (or the fused kernel's one): sums of W Ŵ and Ŵ^2
from the cached sums of W^2 plus one dot product W . (Ŵ - W) per chunk (analysis_blocks.products), counts as
sums of float 0/1 comparisons, max-pooling as a running max of the squared error over each window's rows (exact:
analysis_blocks.squares_normal); Ŵ and the error never exist at W's size. The scales come from the cached
extremes per span (quantize_fast(..., extremes=)), clip counts look only inside spans whose cached extremes pass
their bounds; histograms count float bit patterns (explorer.histogram.CellCounts: no range needed upfront, no
merges). Every metric, count, per-channel error and heatmap covers every weight. The three format-dependent
histograms (code space, error, relative error) cost ~20 passes per counted weight, so above HIST_WEIGHTS
weights they are taken over 1 in `hist_stride` rows (every k-th row, exact counts of those rows), and
LayerAnalysis says so for the charts to show.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from explorer import analysis_blocks as B
from explorer.analysis_blocks import EXTREMES_SPAN, HEATMAP_CELLS, REL_BINS, REL_LOG10_RANGE
from explorer.histogram import CellCounts, Histogram
from explorer.metrics import MetricSums, WeightMetrics
from explorer.fast_paths import quantize_fast
from explorer.fused import RowStats, weight_statistics, worthwhile
from explorer.quantize import QuantResult, check_weight, span_of
from explorer.specs import Kind, QuantSpec

HIST_WEIGHTS = 1 << 20         # above this, format-dependent histograms sample every k-th row down to about this


@dataclass(frozen=True, eq=False)
class LayerAnalysis:
    spec: QuantSpec
    shape: tuple[int, int]
    metrics: WeightMetrics
    weight_hist: Histogram      # W (every weight)
    scaled_hist: Histogram      # W in units of its own scale (code space): where weights land on the grid
    levels: np.ndarray          # the format's levels in that code space
    error_hist: Histogram       # Ŵ - W
    rel_counts: np.ndarray      # histogram of log10(|Ŵ - W| / |W|) over non-zero W with non-zero error
    rel_edges: np.ndarray
    exact_frac: float           # share of weights reproduced exactly
    row_mse: np.ndarray         # [out] per-output-channel MSE, float32 (float64 for weights whose squares leave
    col_mse: np.ndarray         # [in] per-input-channel MSE     float32's range: analysis_blocks.squares_normal)
    w_pooled: np.ndarray        # max-pooled |W| [<= HEATMAP_CELLS, <= HEATMAP_CELLS]
    err_pooled: np.ndarray      # max-pooled |Ŵ - W|, same cells
    pool: tuple[int, int]       # (rows, columns) of W per heatmap cell, rounded up
    output_error: float | None  # ||X W^T - X Ŵ^T|| / ||X W^T|| on real inputs, when X is given
    tokens: int                 # tokens in X (0 when absent)
    hist_stride: int = 1        # scaled_hist, error_hist, rel_counts: rows 0, k, 2k, ... (1: every weight)
    hist_weights: int = 0       # weights in those three histograms


@dataclass(frozen=True, eq=False)
class WeightStats:
    """What analyze_layer needs from W [out, in] (and X [tokens, in]) alone, whatever the format."""
    shape: tuple[int, int]
    dtype: torch.dtype
    bins: int
    weight_hist: Histogram      # W, `bins` bins
    w_pooled: np.ndarray        # max-pooled |W| float32
    pool: tuple[int, int]
    row_sq: torch.Tensor        # [out] float64: sum of W^2 per row (float32 sums along the row, float64 sums for
                                # weights whose squares leave float32's range)
    zeros: int                  # weights exactly 0
    small: int                  # non-zero weights with |W| < SMALL_WEIGHT (conservatively: or W = -SMALL_WEIGHT)
    extremes: torch.Tensor      # [2] min and max of W, in W's dtype
    span_min: torch.Tensor | None  # [out, in / 16] float32 min of W per 16 inputs (None unless 16 divides in)
    span_max: torch.Tensor | None
    tokens: int                 # tokens in X (0 when absent)
    out_sq: float | None        # ||X W^T||_F^2 when X is given
    _per_span: dict = field(default_factory=dict, repr=False)  # extremes_per(span), computed once per span

    def extremes_per(self, span: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(min, max) of W per `span` inputs [out, in / span] float32, from the extremes per EXTREMES_SPAN inputs
        (span a multiple of it that divides in); kept for the next format with the same span."""
        if self.span_min is None:
            raise ValueError(f"no extremes per {EXTREMES_SPAN} inputs were kept ({EXTREMES_SPAN} does not divide "
                             f"in={self.shape[1]}); allowed: a W whose in is a multiple of {EXTREMES_SPAN}")
        if span not in self._per_span:
            out, n = self.span_min.shape
            if span % EXTREMES_SPAN or n * EXTREMES_SPAN % span:
                raise ValueError(f"span={span} is not allowed; allowed: multiples of {EXTREMES_SPAN} dividing "
                                 f"{n * EXTREMES_SPAN}")
            shape = (out, n * EXTREMES_SPAN // span, span // EXTREMES_SPAN)
            self._per_span[span] = ((self.span_min, self.span_max) if span == EXTREMES_SPAN else
                                    (self.span_min.view(shape).amin(-1), self.span_max.view(shape).amax(-1)))
        return self._per_span[span]


def expand_scales(result: QuantResult, t: torch.Tensor) -> torch.Tensor:
    """A per-span array [rows, n_spans] of `result` broadcast to W's shape [out, in]."""
    out, n_in = result.shape
    if t.shape[1] == 1:
        return t.expand(out, n_in)
    return t.repeat_interleave(result.span, dim=1)[:, :n_in].expand(out, n_in)


def code_space(w: torch.Tensor, result: QuantResult) -> tuple[torch.Tensor, np.ndarray]:
    """(W divided by its own scale (+ zero point) [out, in], the format's levels in those units)."""
    scales = expand_scales(result, result.scales)
    y = w.float() / torch.where(scales > 0, scales, torch.ones_like(scales))
    if result.zeros is not None:
        y = y + expand_scales(result, result.zeros)
    return y, levels_of(result.spec)


def levels_of(spec: QuantSpec) -> np.ndarray:
    """The format's levels in code space: codes 0..2^b-1 (asymmetric), -q..q (symmetric INT), else its grid."""
    fmt = spec.format
    if fmt.kind is Kind.INT:
        q = 2 ** (fmt.bits - 1) - 1
        return np.arange(2 ** fmt.bits, dtype=np.float64) if not spec.symmetric else np.arange(-q, q + 1.0)
    return np.asarray(fmt.grid, dtype=np.float64)


def max_pool(a: torch.Tensor, cells: int = HEATMAP_CELLS) -> tuple[np.ndarray, tuple[int, int]]:
    """Max-pool a 2-D array to at most `cells` x `cells` (windows of ceil(size / cells))."""
    fy, fx = B.pool_factors(*a.shape, cells)
    pooled = F.max_pool2d(a.float()[None, None], kernel_size=(fy, fx), stride=(fy, fx), ceil_mode=True)[0, 0]
    return pooled.cpu().numpy(), (fy, fx)


def top_k(values: np.ndarray, k: int = 5) -> np.ndarray:
    """Indices of the k largest values, largest first."""
    k = min(k, values.size)
    idx = np.argpartition(-values, k - 1)[:k]
    return idx[np.argsort(-values[idx])]


def default_hist_stride(out: int, n_in: int) -> int:
    """Rows per sampled row in the format-dependent histograms: 1 up to HIST_WEIGHTS weights, then about
    (out * in) / HIST_WEIGHTS."""
    return max(1, -(-out * n_in // HIST_WEIGHTS))


def weight_stats(w: torch.Tensor, x: torch.Tensor | None = None, bins: int = 256) -> WeightStats:
    """The format-independent part of analyze_layer for W [out, in] (and real inputs X [tokens, in])."""
    check_weight(w, finite=False)
    _check_inputs(w, x)
    w = w.detach().contiguous()  # rows are viewed as spans (a copy only for a strided view); a Parameter's values
    out, n_in = w.shape
    fy, fx = B.pool_factors(out, n_in)
    cells = CellCounts(w.device, B.mantissa_bits(bins))
    if w.dtype in (torch.float32, torch.bfloat16) and worthwhile(w):  # one read by the kernel (explorer.fused)
        red = weight_statistics(w, cells, fy, fx)
    else:
        red = _weight_reductions(w, cells, fy, fx)
    extremes = red.extremes.to(w.dtype)
    if not bool(torch.isfinite(extremes.float()).all()):
        raise ValueError("weight holds NaN or Inf values; allowed: finite values only")
    lo, hi = (float(v) for v in extremes.float())
    out_sq = None
    if x is not None:
        wf = w.float()
        out_sq = sum(float((x[t:t + 4096].float() @ wf.T).double().square().sum()) for t in range(0, len(x), 4096))
    zeros, row_sq = out * n_in - red.nonzero, red.row_sq
    stats = WeightStats((out, n_in), w.dtype, bins, cells.histogram(max(-lo, hi), bins), red.pooled, (fy, fx),
                        row_sq, zeros, cells.nonzero_below(B.SMALL_WEIGHT, zeros), extremes,
                        red.span_min, red.span_max, 0 if x is None else int(x.shape[0]), out_sq)
    if not B.squares_normal(stats):  # squares outside float32's normal range: sums of W^2 in float64
        rows = B.block_rows(out, n_in, fy)
        for r0 in range(0, out, rows):
            row_sq[r0:r0 + rows] = w[r0:r0 + rows].double().square().sum(1)
    return stats


def _weight_reductions(w: torch.Tensor, cells: CellCounts, fy: int, fx: int) -> RowStats:
    """weight_stats' reductions of a contiguous W [out, in] by torch ops, a block of whole pooling windows at a
    time (the cells of W's histogram are added to `cells`); fused.weight_statistics does the same in one read."""
    out, n_in = w.shape
    rows = B.block_rows(out, n_in, fy)
    keys = torch.empty(rows * n_in, dtype=torch.int32, device=w.device)
    tmp, row_sq = torch.empty(rows, n_in, device=w.device), torch.empty(out, dtype=torch.float64, device=w.device)
    native = w if w.dtype in (torch.float32, torch.float16, torch.bfloat16, torch.float64) else w.float()
    s_min, s_max = ((torch.empty(out, n_in // EXTREMES_SPAN, device=w.device) for _ in range(2))
                    if n_in % EXTREMES_SPAN == 0 else (None, None))
    nnz, pooled, ext = 0, [], []
    for r0 in range(0, out, rows):
        xc = w[r0:r0 + rows].float()
        m = xc.shape[0]
        row_sq[r0:r0 + rows] = torch.mul(xc, xc, out=tmp[:m]).sum(1)
        nnz += B.count_nonzero(xc, keys)
        cells.add(xc, keys)
        pooled.append(B.pool_abs(xc, fy, fx))
        if s_min is not None:  # 16-wide max-pools (a 16-wide amax runs ~2.5x slower); they carry NaN along
            s_max[r0:r0 + rows] = F.max_pool1d(xc.view(m, 1, n_in), EXTREMES_SPAN).view(m, -1)
            s_min[r0:r0 + rows] = F.max_pool1d(torch.neg(xc, out=tmp[:m]).view(m, 1, n_in), EXTREMES_SPAN).view(m, -1)
            s_min[r0:r0 + rows].neg_()
        else:
            ext.append(torch.stack([native[r0:r0 + rows].amin(), native[r0:r0 + rows].amax()]))
    ext = torch.stack(ext) if s_min is None else torch.stack([s_min.amin(), s_max.amax()])[None]
    return RowStats(nnz, row_sq, torch.cat(pooled).cpu().numpy(), s_min, s_max,
                    torch.stack([ext[:, 0].amin(), ext[:, 1].amax()]))


def analyze_layer(w: torch.Tensor, spec: QuantSpec, x: torch.Tensor | None = None, bins: int = 256,
                  stats: WeightStats | None = None, hist_stride: int | None = None, fused: bool | None = None
                  ) -> LayerAnalysis:
    """Quantize W [out, in] with `spec` and reduce what happened to small arrays (see LayerAnalysis).
    stats: weight_stats(w, x, bins) computed earlier (reused across formats), or None to compute them here.
    hist_stride: take the format-dependent histograms over rows 0, k, 2k, ... (None: default_hist_stride).
    fused: quantize and reduce in one pass of the numba kernels where they can run (explorer.fused); False keeps
    the torch ops; None (default) takes the kernels for layers of 2^20 weights or more (fused.worthwhile). The
    two agree: Ŵ, counts and the heatmap exactly, sums to float rounding (tests/test_fused.py)."""
    if not isinstance(spec, QuantSpec):
        raise ValueError(f"spec must be a QuantSpec, got {type(spec).__name__}")
    check_weight(w, finite=False)  # NaN/Inf: weight_stats catches them, with check_weight's message
    span = span_of(spec, w.shape[1])
    out, n_in = w.shape
    k = default_hist_stride(out, n_in) if hist_stride is None else hist_stride
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"hist_stride={hist_stride!r} is not allowed; allowed: None or an integer >= 1")
    stats = weight_stats(w, x, bins) if stats is None else _checked(stats, w, x, bins)
    w = w.detach().contiguous()  # Clips views rows as spans (a copy only for a strided view); a Parameter's values
    clips = B.Clips(w, spec, span, stats)
    reducer = B.LayerReducer(w, stats, clips, x, worthwhile(w) if fused is None else fused)
    known = stats.extremes_per(span) if clips.cached else None  # the scales' statistics, without a pass over W
    result = reducer.quantize(w, spec, span, known)  # one fused pass, where it can
    if result is None:
        _, result = quantize_fast(w, spec, chunk_elements=B.CHUNK_WEIGHTS, with_result=True, codes=False,
                                  sink=reducer, extremes=known)
    reducer.finish()
    hists = B.Histograms(w, spec, span, k, bins, stats.extremes)
    err_pooled = reducer.err_pooled()
    max_err = float(err_pooled.max())
    sums = MetricSums()
    # Round-to-nearest maps 0 to 0 in every format (tests/test_quantize.py), so a zero W has a zero error and
    # (Ŵ == 0) & (W != 0) counts zeros(Ŵ) - zeros(W).
    zeroed = (out * n_in - reducer.nonzero_hat) - stats.zeros
    cross, hat = (torch.tensor([v], dtype=torch.float64) for v in B.products(w, spec, reducer, stats.row_sq))
    sums.add_rows(stats.row_sq, cross, hat, reducer.row_e2.double(), out * n_in, max_err, reducer.clipped(result),
                  zeroed)
    row_e2, col_e2, num, exact = reducer.row_e2, reducer.col_e2, reducer.num, out * n_in - reducer.nonzero_err
    fy, fx = stats.pool
    return LayerAnalysis(
        spec=spec, shape=(out, n_in), metrics=sums.metrics(spec, (out, n_in)),
        weight_hist=stats.weight_hist, scaled_hist=hists.cells_y.histogram(hists.y_amax, max(bins, 512)),
        levels=levels_of(spec), error_hist=hists.cells_e.histogram(hists.e_amax, bins), rel_counts=hists.rel.numpy(),
        rel_edges=np.linspace(*REL_LOG10_RANGE, REL_BINS + 1), exact_frac=exact / w.numel(),
        row_mse=(row_e2 / n_in).cpu().numpy(), col_mse=(col_e2 / out).to(row_e2.dtype).cpu().numpy(),
        w_pooled=stats.w_pooled, err_pooled=err_pooled, pool=(fy, fx),
        output_error=None if x is None else _ratio(num, stats.out_sq), tokens=stats.tokens,
        hist_stride=k, hist_weights=hists.weights,
    )


def _check_inputs(w: torch.Tensor, x: torch.Tensor | None) -> None:
    if x is not None and (x.dim() != 2 or x.shape[1] != w.shape[1]):
        raise ValueError(f"activations of shape {tuple(x.shape)} do not fit W {tuple(w.shape)}; "
                         f"allowed: [tokens, {w.shape[1]}]")


def _checked(stats: WeightStats, w: torch.Tensor, x: torch.Tensor | None, bins: int) -> WeightStats:
    """stats, if they can be those of w (shape, dtype), x (tokens) and bins; else ValueError."""
    _check_inputs(w, x)
    got = (stats.shape, stats.dtype, stats.tokens, stats.bins)
    want = (tuple(w.shape), w.dtype, 0 if x is None else int(x.shape[0]), bins)
    if got != want:
        raise ValueError(f"stats of (shape, dtype, tokens, bins) {got} do not fit this call; allowed: {want} "
                         f"(weight_stats(w, x, bins) of the same tensor)")
    return stats


def _ratio(num: float, den: float | None) -> float:
    if not den:
        return 0.0 if num == 0 else float("inf")
    return float(np.sqrt(num / den))
