"""Layer Lab figures: weight distribution over the format's levels, error histograms, per-channel error,
max-pooled heatmaps. Inputs are the small arrays of explorer.analysis.LayerAnalysis (or any arrays).

Built from plain dicts with explorer.plots.common.fast_figure (no per-property validation: the figures of a
Layer Lab rerun cost ~2 ms each instead of ~30); tests/test_plots_layer.py checks that plotly's validation
would build exactly the same figures."""
from __future__ import annotations

import functools

import numpy as np
import plotly.colors
import plotly.graph_objects as go

from explorer.histogram import Histogram
from explorer.plots.common import ACCENT, BASE, MUTED, fast_figure, merge_layout, style_layout

LOG_Y = dict(type="log", dtick=1)


def _bars(h: Histogram, name: str, color: str) -> dict:
    return dict(type="bar", x=h.centers, y=h.counts, width=h.width, name=name,
                marker=dict(color=color, line=dict(width=0)), hovertemplate="%{x:.4g}: %{y} weights<extra></extra>")


def weight_distribution(h: Histogram, title: str, x_title: str, levels: np.ndarray | None = None,
                        log_y: bool = False, presenter: bool = False, note: str = "") -> go.Figure:
    """Histogram of weights; `levels` (if given) drawn as a rug of the representable values. note: a second,
    smaller title line (e.g. that the histogram samples rows)."""
    data = [_bars(h, "weights", BASE)]
    if levels is not None and len(levels):
        lv = np.asarray(levels, dtype=float)
        lv = lv[np.abs(lv) <= h.half_range * 1.05] if len(lv) > 64 else lv
        data.append(dict(type="scatter", x=lv, y=np.full(lv.shape, 0.9 if log_y else 0.0), mode="markers",
                         name=f"levels ({len(lv)})", hovertemplate="level %{x:.4g}<extra></extra>",
                         marker=dict(symbol="line-ns-open", size=18, color=ACCENT, line=dict(width=2))))
    layout = _noted(style_layout(title, x_title, "weights (log)" if log_y else "weights", presenter), note)
    merge_layout(layout, bargap=0, showlegend=levels is not None, yaxis=LOG_Y if log_y else {})
    return fast_figure(data, layout)


def _noted(layout: dict, note: str) -> dict:
    """layout with `note` as a second, smaller title line (and the room for it), if any."""
    if note:
        layout["title"]["text"] += f"<br><sup>{note}</sup>"
        layout["margin"]["t"] += 24
    return layout


def error_histograms(err: Histogram, rel_counts: np.ndarray, rel_edges: np.ndarray, exact_frac: float,
                     presenter: bool = False, note: str = "") -> tuple[go.Figure, go.Figure]:
    """(absolute error Ŵ - W histogram, relative error log10(|Ŵ-W|/|W|) histogram). note: a second, smaller
    title line on both (e.g. that the histograms sample rows)."""
    la = _noted(style_layout("Absolute error Ŵ − W", "error", "weights (log)", presenter), note)
    a = fast_figure([_bars(err, "Ŵ − W", BASE)], merge_layout(la, bargap=0, showlegend=False, yaxis=LOG_Y))
    centers = (rel_edges[:-1] + rel_edges[1:]) / 2
    bar = dict(type="bar", x=10.0 ** centers, y=rel_counts, marker=dict(color=BASE, line=dict(width=0)),
               hovertemplate="|Ŵ−W|/|W| ≈ %{x:.2g}: %{y} weights<extra></extra>")
    lr = _noted(style_layout(f"Relative error |Ŵ−W| / |W|  ({100 * exact_frac:.1f}% of weights exact)",
                             "relative error", "weights", presenter), note)
    # What fig.add_vline(x=1, annotation_text=...) adds, written out.
    mark = dict(x0=1.0, x1=1.0, xref="x", y0=0, y1=1, yref="y domain", type="line",
                line=dict(color=ACCENT, dash="dash"))
    label = dict(text="100% (e.g. rounded to zero)", showarrow=False, x=1.0, xanchor="left", xref="x", y=1,
                 yanchor="top", yref="y domain")
    merge_layout(lr, bargap=0, showlegend=False, xaxis=dict(type="log"), shapes=[mark], annotations=[label])
    return a, fast_figure([bar], lr)


def channel_errors(row_mse: np.ndarray, col_mse: np.ndarray, top_rows: np.ndarray, top_cols: np.ndarray,
                   presenter: bool = False) -> tuple[go.Figure, go.Figure]:
    """Per-output-channel and per-input-channel MSE, the top channels marked and labelled. The line's x is the
    channel index 0, 1, ... (x0 = 0, dx = 1): no index array is sent."""
    figs = []
    for values, top, what in ((row_mse, top_rows, "output channel (row)"), (col_mse, top_cols, "input channel (column)")):
        line = dict(type="scattergl", x0=0, dx=1, y=values, mode="lines", line=dict(color=MUTED, width=1),
                    name="MSE", hovertemplate=f"{what} %{{x}}: MSE %{{y:.3g}}<extra></extra>")
        marks = dict(type="scatter", x=top, y=values[top], mode="markers+text", text=[str(int(t)) for t in top],
                     textposition="top center", marker=dict(color=ACCENT, size=10), name=f"top {len(top)}",
                     hovertemplate="channel %{x}: MSE %{y:.3g}<extra></extra>")
        layout = style_layout(f"Error per {what}", what, "mean squared error (log)", presenter)
        figs.append(fast_figure([line, marks], merge_layout(layout, yaxis=LOG_Y)))
    return figs[0], figs[1]


def heatmap(pooled: np.ndarray, pool: tuple[int, int], title: str, presenter: bool = False,
            colorscale: str = "Viridis") -> go.Figure:
    """A max-pooled |values| heatmap; axes in original row/column indices; log colour so outliers stand out."""
    fy, fx = pool
    # float32 and no customdata copy: the heatmap is the largest payload of the page (plotly sends arrays as
    # base64 of their dtype), and hover can show the value from z itself.
    # A zero cell (every value exactly 0) sits a decade below the smallest non-zero one, whatever the layer's scale
    positive = pooled[pooled > 0]
    floor = float(positive.min()) / 10 if positive.size else 1.0
    z = np.log10(np.maximum(pooled, floor)).astype(np.float32)
    trace = dict(type="heatmap", z=z, x=np.arange(pooled.shape[1]) * fx, y=np.arange(pooled.shape[0]) * fy,
                 colorscale=_colorscale(colorscale), colorbar=dict(title=dict(text="log10")),
                 hovertemplate="rows %{y}+, cols %{x}+: max 10^%{z:.2f}<extra></extra>")
    sub = f" (max over {fy}×{fx} blocks)" if fy * fx > 1 else ""
    layout = style_layout(title + sub, "input channel", "output channel", presenter)
    return fast_figure([trace], merge_layout(layout, yaxis=dict(autorange="reversed")))


@functools.lru_cache(maxsize=8)
def _colorscale(name: str) -> tuple:
    """A named colorscale as [[position, colour], ...], as plotly's validation expands it (plotly.js knows only
    some names)."""
    return tuple(tuple(stop) for stop in plotly.colors.get_colorscale(name))
