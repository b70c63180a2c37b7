"""One layer under the microscope: everything the Layer Lab shows, computed once from real tensors.

`analyze_layer(w, spec, x=None) -> LayerAnalysis` quantizes W [out, in] and reduces the result to small
arrays a browser can draw: histograms (binned on the server), per-channel errors, max-pooled heatmaps (a single
outlier row or column stays visible after pooling), the metrics, and the output error on real activations X
[tokens, in] when they are given. Nothing here is larger than a few thousand numbers per array, whatever the
layer size, so a page's chart payload stays small even for a 4096 x 11008 layer.

Speed (a widget change reruns this): W is quantized by the chunked fast path (explorer.fast_paths, bit-identical
to the reference), then one loop over blocks of rows computes every statistic while a block of W, Ŵ and the error
is in cache: histograms per block merged exactly (explorer.histogram.merge), sums per row in float32 and across
rows in float64 (explorer.metrics.MetricSums), max-pooling on blocks aligned to the pooling windows.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from explorer.fast_paths import quantize_fast
from explorer.histogram import Histogram, histogram_of_finite, merge
from explorer.metrics import MetricSums, WeightMetrics, clip_bounds, count_clipped, output_rel_error
from explorer.quantize import QuantResult, check_weight, span_of
from explorer.specs import Kind, QuantSpec

REL_LOG10_RANGE = (-7.0, 1.0)  # relative error |Ŵ-W|/|W| histogram, log10 units
HEATMAP_CELLS = 192            # max rows and columns of a pooled heatmap


@dataclass(frozen=True, eq=False)
class LayerAnalysis:
    spec: QuantSpec
    shape: tuple[int, int]
    metrics: WeightMetrics
    weight_hist: Histogram      # W
    scaled_hist: Histogram      # W in units of its own scale (code space): where weights land on the grid
    levels: np.ndarray          # the format's levels in that code space
    error_hist: Histogram       # Ŵ - W
    rel_counts: np.ndarray      # histogram of log10(|Ŵ - W| / |W|) over non-zero W with non-zero error
    rel_edges: np.ndarray
    exact_frac: float           # share of weights reproduced exactly
    row_mse: np.ndarray         # [out] per-output-channel MSE
    col_mse: np.ndarray         # [in] per-input-channel MSE
    w_pooled: np.ndarray        # max-pooled |W| [<= HEATMAP_CELLS, <= HEATMAP_CELLS]
    err_pooled: np.ndarray      # max-pooled |Ŵ - W|, same cells
    pool: tuple[int, int]       # (rows, columns) of W per heatmap cell, rounded up
    output_error: float | None  # ||X W^T - X Ŵ^T|| / ||X W^T|| on real inputs, when X is given
    tokens: int                 # tokens in X (0 when absent)


def expand_scales(result: QuantResult, t: torch.Tensor) -> torch.Tensor:
    """A per-span array [rows, n_spans] of `result` broadcast to W's shape [out, in]."""
    out, n_in = result.shape
    if t.shape[1] == 1:
        return t.expand(out, n_in)
    return t.repeat_interleave(result.span, dim=1)[:, :n_in].expand(out, n_in)


def code_space(w: torch.Tensor, result: QuantResult) -> tuple[torch.Tensor, np.ndarray]:
    """(W divided by its own scale (+ zero point) [out, in], the format's levels in those units)."""
    scales = expand_scales(result, result.scales)
    safe = torch.where(scales > 0, scales, torch.ones_like(scales))
    y = w.float() / safe
    fmt = result.spec.format
    if result.zeros is not None:
        y = y + expand_scales(result, result.zeros)
        levels = np.arange(2 ** fmt.bits, dtype=np.float64)
    elif fmt.kind is Kind.INT:
        q = 2 ** (fmt.bits - 1) - 1
        levels = np.arange(-q, q + 1, dtype=np.float64)
    else:
        levels = np.asarray(fmt.grid, dtype=np.float64)
    return y, levels


def max_pool(a: torch.Tensor, cells: int = HEATMAP_CELLS) -> tuple[np.ndarray, tuple[int, int]]:
    """Max-pool a 2-D array to at most `cells` x `cells` (windows of ceil(size / cells))."""
    fy, fx = max(1, -(-a.shape[0] // cells)), max(1, -(-a.shape[1] // cells))
    pooled = F.max_pool2d(a.float()[None, None], kernel_size=(fy, fx), stride=(fy, fx), ceil_mode=True)[0, 0]
    return pooled.cpu().numpy(), (fy, fx)


def top_k(values: np.ndarray, k: int = 5) -> np.ndarray:
    """Indices of the k largest values, largest first."""
    k = min(k, values.size)
    idx = np.argpartition(-values, k - 1)[:k]
    return idx[np.argsort(-values[idx])]


def analyze_layer(w: torch.Tensor, spec: QuantSpec, x: torch.Tensor | None = None, bins: int = 256) -> LayerAnalysis:
    """Quantize W [out, in] with `spec` and reduce what happened to small arrays (see LayerAnalysis)."""
    if not isinstance(spec, QuantSpec):
        raise ValueError(f"spec must be a QuantSpec, got {type(spec).__name__}")
    check_weight(w, finite=False)  # NaN/Inf: the fast path's statistics catch them, with the same message
    span_of(spec, w.shape[1])
    w_hat, result = quantize_fast(w, spec, with_result=True, codes=False)
    out, n_in = w.shape
    fy, fx = max(1, -(-out // HEATMAP_CELLS)), max(1, -(-n_in // HEATMAP_CELLS))
    rows = max(1, (1 << 16) // n_in // fy) * fy  # whole pooling windows per block
    _, levels = code_space(w[:1], _rows_of(result, 0, 1))
    lo_all, hi_all = clip_bounds(result)  # per span
    safe_all = torch.where(result.scales > 0, result.scales, torch.ones_like(result.scales))
    sums, rel = MetricSums(), torch.zeros(len(_REL_EDGES) - 1, dtype=torch.int64, device=w.device)
    hists: dict[str, Histogram | None] = {"w": None, "y": None, "e": None}
    row_e2, col_e2 = torch.empty(out, device=w.device), torch.zeros(n_in, dtype=torch.float64, device=w.device)
    w_pool, e_pool, exact = [], [], 0
    for r0 in range(0, out, rows):
        r1 = min(r0 + rows, out)
        xc, hc = w[r0:r1].float(), w_hat[r0:r1].float()
        err = hc - xc
        e2 = err * err
        row_e2[r0:r1] = e2.sum(1)
        col_e2 += e2.sum(0).double()
        view = _by_span(xc, result.span)
        per_span = (lambda t: _spread(t, r0, r1, result.span, n_in, view is not None))
        lo, hi = per_span(lo_all), per_span(hi_all)
        xv = xc if view is None else view
        clipped = count_clipped(xv, lo, hi) if _may_clip(xv, lo, hi, view is not None) else 0
        # Round-to-nearest maps 0 to 0 in every format (tests/test_quantize.py), so a zero W has a zero error and
        # (Ŵ == 0) & (W != 0) counts zeros(Ŵ) - zeros(W).
        nnz_x, nnz_err = int(torch.count_nonzero(xc)), int(torch.count_nonzero(err))
        sums.add(xc, hc, err, row_e2[r0:r1], clipped, nnz_x - int(torch.count_nonzero(hc)))
        exact += err.numel() - nnz_err
        _add(hists, "w", xc, max(float(xc.amax()), -float(xc.amin())), bins)
        _add(hists, "e", err, sums.max_err, bins)  # the running max: >= this block's, <= the whole layer's
        y = torch.div(xv, per_span(safe_all))  # code space, as code_space() computes it
        if result.zeros is not None:
            y.add_(per_span(result.zeros))
        _add(hists, "y", y, max(float(y.amax()), -float(y.amin())), max(bins, 512))
        a = xc.abs()
        rel += _rel_counts(a, err, err.numel() - nnz_err)
        w_pool.append(_pool(a, fy, fx))
        e_pool.append(_pool(err.abs_(), fy, fx))
    return LayerAnalysis(
        spec=spec, shape=tuple(w.shape), metrics=sums.metrics(spec, tuple(w.shape)),
        weight_hist=hists["w"], scaled_hist=hists["y"], levels=levels,
        error_hist=hists["e"], rel_counts=rel.cpu().numpy(), rel_edges=np.linspace(*REL_LOG10_RANGE, 161),
        exact_frac=exact / w.numel(),
        row_mse=(row_e2 / n_in).cpu().numpy(), col_mse=(col_e2 / out).float().cpu().numpy(),
        w_pooled=torch.cat(w_pool).cpu().numpy(), err_pooled=torch.cat(e_pool).cpu().numpy(), pool=(fy, fx),
        output_error=None if x is None else output_rel_error(x, w, w_hat),
        tokens=0 if x is None else int(x.shape[0]),
    )


_REL_EDGES = np.linspace(*REL_LOG10_RANGE, 161)


def _rows_of(result: QuantResult, r0: int, r1: int) -> QuantResult:
    """The result restricted to rows r0:r1 (per-tensor scales are shared by every row)."""
    sl = (lambda t: t if t is None or t.shape[0] == 1 else t[r0:r1])
    return QuantResult(result.spec, result.codes[r0:r1], sl(result.scales), sl(result.zeros), result.dtype,
                       result.span, None, result.tensor_scale)


def _by_span(x: torch.Tensor, span: int) -> torch.Tensor | None:
    """x [rows, in] as a [rows, in / span, span] view when span divides in, else None."""
    return x.view(x.shape[0], -1, span) if x.shape[1] % span == 0 else None


def _spread(t: torch.Tensor, r0: int, r1: int, span: int, n_in: int, spanned: bool) -> torch.Tensor:
    """Per-span values [rows or 1, n_spans] of rows r0:r1, broadcastable to the chunk: [r, n, 1] against its span
    view, or repeated to [r, in] when the last group is short."""
    t = t if t.shape[0] == 1 else t[r0:r1]
    if spanned:
        return t.unsqueeze(-1)
    return t.repeat_interleave(span, dim=1)[:, :n_in] if t.shape[1] > 1 else t


def _add(hists: dict, key: str, v: torch.Tensor, amax: float, bins: int) -> None:
    h = histogram_of_finite(v, amax, bins)
    hists[key] = h if hists[key] is None else merge(hists[key], h)


def _rel_counts(a: torch.Tensor, err: torch.Tensor, zero_errors: int) -> torch.Tensor:
    """a = |W|, err = Ŵ - W. Counts of log10(|Ŵ - W| / |W|) over REL_LOG10_RANGE (160 bins; outside: the end
    bins), over weights with W != 0 and an error != 0. A zero error gives log10(0) = -inf, or NaN where W = 0 too
    (a zero W always has a zero error): fmax sends both to bin 0, and the zero_errors of them leave bin 0 again."""
    lo, hi = REL_LOG10_RANGE
    bins = len(_REL_EDGES) - 1
    v = torch.abs(err).div_(a).log10_().sub_(lo).div_((hi - lo) / bins).floor_()
    v = torch.fmax(v, torch.zeros((), device=v.device), out=v).clamp_(max=bins - 1)
    counts = torch.bincount(v.to(torch.int32).reshape(-1), minlength=bins)
    counts[0] -= zero_errors
    return counts


def _may_clip(xv: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, spanned: bool) -> bool:
    """False when no span's extremes pass its bounds (then nothing clips and the count is skipped)."""
    if not spanned:
        return True
    return bool((xv.amax(-1, keepdim=True) > hi).any() or (xv.amin(-1, keepdim=True) < lo).any())


def _pool(a: torch.Tensor, fy: int, fx: int) -> torch.Tensor:
    return F.max_pool2d(a[None, None], kernel_size=(fy, fx), stride=(fy, fx), ceil_mode=True)[0, 0]
