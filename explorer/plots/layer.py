"""Layer Lab figures: weight distribution over the format's levels, error histograms, per-channel error,
max-pooled heatmaps. Inputs are the small arrays of explorer.analysis.LayerAnalysis (or any arrays)."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from explorer.histogram import Histogram
from explorer.plots.common import ACCENT, BASE, MUTED, style


def _bars(h: Histogram, name: str, color: str) -> go.Bar:
    return go.Bar(x=h.centers, y=h.counts, width=h.width, name=name, marker_color=color,
                  marker_line_width=0, hovertemplate="%{x:.4g}: %{y} weights<extra></extra>")


def weight_distribution(h: Histogram, title: str, x_title: str, levels: np.ndarray | None = None,
                        log_y: bool = False, presenter: bool = False) -> go.Figure:
    """Histogram of weights; `levels` (if given) drawn as a rug of the representable values."""
    fig = go.Figure(_bars(h, "weights", BASE))
    if levels is not None and len(levels):
        lv = np.asarray(levels, dtype=float)
        lv = lv[np.abs(lv) <= h.half_range * 1.05] if len(lv) > 64 else lv
        y0 = 0.9 if log_y else 0
        fig.add_trace(go.Scatter(x=lv, y=np.full(lv.shape, y0), mode="markers", name=f"levels ({len(lv)})",
                                 marker=dict(symbol="line-ns-open", size=18, color=ACCENT, line_width=2),
                                 hovertemplate="level %{x:.4g}<extra></extra>"))
    fig.update_layout(bargap=0, showlegend=levels is not None)
    if log_y:
        fig.update_yaxes(type="log", dtick=1)
    return style(fig, title, x_title, "weights (log)" if log_y else "weights", presenter)


def error_histograms(err: Histogram, rel_counts: np.ndarray, rel_edges: np.ndarray, exact_frac: float,
                     presenter: bool = False) -> tuple[go.Figure, go.Figure]:
    """(absolute error Ŵ - W histogram, relative error log10(|Ŵ-W|/|W|) histogram)."""
    a = go.Figure(_bars(err, "Ŵ − W", BASE))
    a.update_layout(bargap=0, showlegend=False)
    style(a, "Absolute error Ŵ − W", "error", "weights (log)", presenter)
    a.update_yaxes(type="log", dtick=1)
    centers = (rel_edges[:-1] + rel_edges[1:]) / 2
    r = go.Figure(go.Bar(x=10.0 ** centers, y=rel_counts, marker_color=BASE, marker_line_width=0,
                         hovertemplate="|Ŵ−W|/|W| ≈ %{x:.2g}: %{y} weights<extra></extra>"))
    r.update_xaxes(type="log")
    r.update_layout(bargap=0, showlegend=False)
    r.add_vline(x=1.0, line_dash="dash", line_color=ACCENT, annotation_text="100% (e.g. rounded to zero)")
    style(r, f"Relative error |Ŵ−W| / |W|  ({100 * exact_frac:.1f}% of weights exact)", "relative error",
          "weights", presenter)
    return a, r


def channel_errors(row_mse: np.ndarray, col_mse: np.ndarray, top_rows: np.ndarray, top_cols: np.ndarray,
                   presenter: bool = False) -> tuple[go.Figure, go.Figure]:
    """Per-output-channel and per-input-channel MSE, the top channels marked and labelled."""
    figs = []
    for values, top, what in ((row_mse, top_rows, "output channel (row)"), (col_mse, top_cols, "input channel (column)")):
        idx = np.arange(values.size)
        fig = go.Figure(go.Scattergl(x=idx, y=values, mode="lines", line=dict(color=MUTED, width=1), name="MSE",
                                     hovertemplate=f"{what} %{{x}}: MSE %{{y:.3g}}<extra></extra>"))
        fig.add_trace(go.Scatter(x=top, y=values[top], mode="markers+text", text=[str(int(t)) for t in top],
                                 textposition="top center", marker=dict(color=ACCENT, size=10),
                                 name=f"top {len(top)}", hovertemplate="channel %{x}: MSE %{y:.3g}<extra></extra>"))
        fig.update_yaxes(type="log", dtick=1)
        figs.append(style(fig, f"Error per {what}", what, "mean squared error (log)", presenter))
    return figs[0], figs[1]


def heatmap(pooled: np.ndarray, pool: tuple[int, int], title: str, presenter: bool = False,
            colorscale: str = "Viridis") -> go.Figure:
    """A max-pooled |values| heatmap; axes in original row/column indices; log colour so outliers stand out."""
    fy, fx = pool
    # float32 and no customdata copy: the heatmap is the largest payload of the page (plotly sends arrays as
    # base64 of their dtype), and hover can show the value from z itself.
    z = np.log10(np.maximum(pooled, 1e-12)).astype(np.float32)
    fig = go.Figure(go.Heatmap(
        z=z, x=np.arange(pooled.shape[1]) * fx, y=np.arange(pooled.shape[0]) * fy, colorscale=colorscale,
        colorbar=dict(title="log10"), hovertemplate="rows %{y}+, cols %{x}+: max 10^%{z:.2f}<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    sub = f" (max over {fy}×{fx} blocks)" if fy * fx > 1 else ""
    return style(fig, title + sub, "input channel", "output channel", presenter)
