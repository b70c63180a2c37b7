"""One layer under the microscope: everything the Layer Lab shows, computed once from real tensors.

`analyze_layer(w, spec, x=None) -> LayerAnalysis` quantizes W [out, in] and reduces the result to small
arrays a browser can draw: histograms (binned on the server), per-channel errors, max-pooled heatmaps (a single
outlier row or column stays visible after pooling), the metrics, and the output error on real activations X
[tokens, in] when they are given. Nothing here is larger than a few thousand numbers per array, whatever the
layer size, so a page's chart payload stays small even for a 4096 x 11008 layer.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from explorer.histogram import Histogram, fixed_histogram, histogram
from explorer.metrics import WeightMetrics, channel_errors, output_rel_error, weight_metrics
from explorer.quantize import QuantResult, dequantize, quantize
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
    result = quantize(w, spec)
    w_hat = dequantize(result)
    wf = w.float()
    err = w_hat.float() - wf
    y, levels = code_space(w, result)
    nz = (wf != 0) & (err != 0)
    rel = torch.log10(err[nz].abs() / wf[nz].abs())
    rel_counts, rel_edges = fixed_histogram(rel, *REL_LOG10_RANGE, bins=160)
    row_mse, col_mse = channel_errors(wf, w_hat)
    w_pooled, pool = max_pool(wf.abs())
    err_pooled, _ = max_pool(err.abs())
    return LayerAnalysis(
        spec=spec, shape=tuple(w.shape), metrics=weight_metrics(w, result, w_hat),
        weight_hist=histogram(wf, bins), scaled_hist=histogram(y, max(bins, 512)), levels=levels,
        error_hist=histogram(err, bins), rel_counts=rel_counts, rel_edges=rel_edges,
        exact_frac=float((err == 0).float().mean()),
        row_mse=row_mse.cpu().numpy(), col_mse=col_mse.cpu().numpy(),
        w_pooled=w_pooled, err_pooled=err_pooled, pool=pool,
        output_error=None if x is None else output_rel_error(x, w, w_hat),
        tokens=0 if x is None else int(x.shape[0]),
    )
