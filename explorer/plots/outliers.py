"""Outlier-channel figures: a layers x input-channels heatmap of activation magnitudes (log colour), one layer's
max|x| per channel against LLM.int8()'s 6.0 threshold, and the weight's per-input-channel range. Inputs are
arrays from explorer.outliers; long channel axes are max-pooled on the server so a peak is never lost."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from explorer.plots.common import ACCENT, BASE, style

MAX_COLUMNS = 2048   # bar-chart points above which channels are max-pooled
HEATMAP_COLUMNS = 768  # heatmap columns above which channels are max-pooled: a lone outlier channel stays >= 1 px
INT8_SOURCE = "LLM.int8(), Dettmers et al. 2022, arXiv 2208.07339"


def pool_channels(values: np.ndarray, max_points: int = MAX_COLUMNS) -> tuple[np.ndarray, np.ndarray, int]:
    """Max-pool the last axis of `values` ([..., channels]) to at most `max_points`:
    (pooled [..., <= max_points], first channel of each window, window)."""
    values = np.asarray(values, dtype=np.float32)
    n = values.shape[-1]
    window = max(1, -(-n // max_points))
    if window == 1:
        return values, np.arange(n), 1
    pad = (-n) % window
    padded = np.concatenate([values, np.full(values.shape[:-1] + (pad,), -np.inf, np.float32)], axis=-1)
    pooled = padded.reshape(values.shape[:-1] + (-1, window)).max(axis=-1)
    return pooled, np.arange(pooled.shape[-1]) * window, window


def log_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    """Readable ticks for a log axis spanning [lo, hi] (real units, lo > 0): 1, 10, 100, ... and 2 and 5 between
    when the span is under three decades. Returns (values, labels)."""
    a, b = np.log10(lo), np.log10(hi)
    mults = (1, 2, 5) if b - a < 3 else (1,)
    vals = [m * 10.0 ** e for e in range(int(np.floor(a)), int(np.ceil(b)) + 1) for m in mults]
    vals = [v for v in vals if lo * (1 - 1e-9) <= v <= hi * (1 + 1e-9)] or [lo, hi]
    return vals, [f"{v:,.0f}" if v >= 1 else f"{v:.4g}" for v in vals]


def channel_heatmap(matrix: np.ndarray, row_labels: Sequence[str], title: str, stat_label: str,
                    marked: Sequence[int] = (), presenter: bool = False) -> go.Figure:
    """matrix [layers, channels] of |x| statistics as a heatmap with a log colour scale; `marked` channels
    (e.g. the recurring ones) labelled above the plot."""
    matrix = np.asarray(matrix, dtype=np.float32)
    if matrix.ndim != 2 or len(row_labels) != matrix.shape[0]:
        raise ValueError(f"matrix {matrix.shape} and {len(row_labels)} row labels do not match; "
                         f"allowed: [layers, channels] with one label per layer")
    pooled, x, window = pool_channels(matrix, HEATMAP_COLUMNS)
    positive = pooled[pooled > 0]
    tiny = float(positive.min()) if positive.size else 1e-6
    z = np.log10(np.maximum(pooled, tiny)).astype(np.float32)
    ticks, ticktext = log_ticks(10.0 ** float(z.min()), 10.0 ** float(z.max()))
    tickvals = [float(np.log10(t)) for t in ticks]
    fig = go.Figure(go.Heatmap(
        z=z, x=x, y=list(row_labels), colorscale="Viridis", customdata=pooled,
        colorbar=dict(title=dict(text=stat_label, side="right"), tickvals=tickvals, ticktext=ticktext),
        hovertemplate="%{y}<br>channel %{x}: %{customdata:.4g}<extra></extra>" if window == 1 else
        f"%{{y}}<br>channels %{{x}}..+{window - 1}: max %{{customdata:.4g}}<extra></extra>"))
    r, c = np.unravel_index(int(np.argmax(pooled)), pooled.shape)  # the largest cell, labelled with its value
    fig.add_annotation(x=int(x[c]), y=list(row_labels)[r], text=f"<b>{float(pooled[r, c]):,.4g}</b>", showarrow=True,
                       arrowcolor=ACCENT, ax=30, ay=-22, font=dict(color=ACCENT, size=16 if presenter else 12),
                       bgcolor="rgba(255,255,255,0.8)")
    for c in list(marked)[:8]:
        fig.add_annotation(x=int(c), y=1.0, yref="paper", yanchor="bottom", text=f"<b>{int(c)}</b>", showarrow=False,
                           font=dict(color=ACCENT, size=16 if presenter else 12))
    fig.update_yaxes(autorange="reversed", type="category")
    sub = f" (max over {window} channels per column)" if window > 1 else ""
    style(fig, title + sub, "input channel", "", presenter,
          height=max(360, min(900, 110 + len(row_labels) * (26 if presenter else 17))) + (200 if presenter else 0))
    fig.update_layout(margin=dict(t=110 if presenter else 90))
    return fig


def _channel_trace(values: np.ndarray, name: str, color: str) -> tuple[go.Bar | go.Scattergl, np.ndarray, int]:
    pooled, x, window = pool_channels(values)
    hover = "channel %{x}: %{y:.4g}" if window == 1 else f"channels %{{x}}..+{window - 1}: max %{{y:.4g}}"
    trace = go.Bar(x=x, y=pooled, width=window, marker_color=color, marker_line_width=0, name=name,
                   hovertemplate=hover + "<extra></extra>")
    return trace, pooled, window


def layer_max_abs(max_abs: np.ndarray, title: str, threshold: float, over: Sequence[int] = (),
                  presenter: bool = False) -> go.Figure:
    """One layer's max|x| per input channel (log y), the threshold drawn and cited, channels over it in red."""
    values = np.asarray(max_abs, dtype=np.float32)
    trace, _, _ = _channel_trace(values, "max|x|", BASE)
    fig = go.Figure(trace)
    over = np.asarray(list(over), dtype=np.int64)
    if over.size:
        shown = over[np.argsort(-values[over])][:MAX_COLUMNS]
        fig.add_trace(go.Scatter(x=shown, y=values[shown], mode="markers", name=f"≥ {threshold:g} ({over.size})",
                                 marker=dict(color=ACCENT, size=10 if presenter else 7),
                                 hovertemplate="channel %{x}: %{y:.4g}<extra></extra>"))
    fig.add_hline(y=threshold, line_dash="dash", line_color=ACCENT,
                  annotation_text=f"outlier threshold {threshold:g} ({INT8_SOURCE})", annotation_position="top left",
                  annotation_font=dict(color=ACCENT, size=16 if presenter else 11))
    positive = values[values > 0]
    lo = min(float(positive.min()) if positive.size else threshold, threshold) / 2
    hi = max(float(values.max()), threshold) * 3
    tickvals, ticktext = log_ticks(lo, hi)
    fig.update_yaxes(type="log", range=[np.log10(lo), np.log10(hi)], tickvals=tickvals, ticktext=ticktext)
    fig.update_layout(bargap=0)
    return style(fig, title, "input channel", "max |x| over calibration tokens (log)", presenter)


def weight_range(col_range: np.ndarray, title: str, marked: Sequence[int] = (), presenter: bool = False) -> go.Figure:
    """max |W[:, j]| per input channel j; `marked` channels (e.g. the activation outliers) in red."""
    values = np.asarray(col_range, dtype=np.float32)
    trace, _, _ = _channel_trace(values, "max |W[:, j]|", "#4c78a8")
    fig = go.Figure(trace)
    marked = np.asarray(list(marked), dtype=np.int64)[:MAX_COLUMNS]
    if marked.size:
        fig.add_trace(go.Scatter(x=marked, y=values[marked], mode="markers", name="activation outliers",
                                 marker=dict(color=ACCENT, size=10 if presenter else 7, symbol="diamond"),
                                 hovertemplate="channel %{x}: %{y:.4g}<extra></extra>"))
    fig.update_layout(bargap=0)
    return style(fig, title, "input channel j", "max |W[:, j]|", presenter)
