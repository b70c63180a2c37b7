"""Figures of the per-task cliffs page: the scheme x task damage matrix (cliffs outlined), margins before vs
after (flips are the points that cross zero), margin distributions, the whole-model metric's distribution,
per-layer sensitivity bars, and the mixed-precision plan's effect. Pure: arrays in, plotly Figure out; every
array is per task item, per sentence or per layer (at most a few thousand points), histograms are binned here.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from explorer.plots.common import ACCENT, BASE, MUTED, PALETTE, style

HIST_BINS = 60
# red = worse, blue = better, white = unchanged (damage in percent units, clipped to +-CLIP for the colours)
_DAMAGE_SCALE = [[0.0, "#2166ac"], [0.5, "#f7f7f7"], [0.75, "#f4a582"], [1.0, "#b2182b"]]
CLIP = 30.0


def damage_matrix(schemes: Sequence[str], tasks: Sequence[str], damage: np.ndarray, cell_text: Sequence[Sequence[str]],
                  tolerance: float, presenter: bool = False, model_label: str = "") -> go.Figure:
    """Heatmap of damage [schemes, tasks] (percent units, positive = worse); cells beyond `tolerance` outlined."""
    d = np.asarray(damage, dtype=float)
    z = np.clip(np.nan_to_num(d, nan=0.0, posinf=CLIP), -CLIP, CLIP)
    fig = go.Figure(go.Heatmap(
        z=z, x=list(tasks), y=list(schemes), zmin=-CLIP, zmax=CLIP, colorscale=_DAMAGE_SCALE,
        text=[list(r) for r in cell_text], texttemplate="%{text}", customdata=d,
        textfont=dict(size=20 if presenter else 12),
        colorbar=dict(title="damage"), xgap=2, ygap=2,
        hovertemplate="%{y}<br>%{x}: damage %{customdata:.2f}<extra></extra>"))
    rows, cols = np.nonzero(d > tolerance)
    for r, c in zip(rows.tolist(), cols.tolist()):
        fig.add_shape(type="rect", x0=c - 0.5, x1=c + 0.5, y0=r - 0.5, y1=r + 0.5, xref="x", yref="y",
                      line=dict(color=ACCENT, width=4 if presenter else 3))
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(tickangle=0)
    height = max(320, 70 * len(schemes) + 140) * (1.6 if presenter else 1)
    model = f", {model_label}" if model_label else ""
    return style(fig, f"Damage per task{model} (outlined: beyond the tolerance of {tolerance:g})", "task", "scheme",
                 presenter, height=int(height))


def margin_scatter(before: np.ndarray, after: np.ndarray, flipped: np.ndarray, title: str,
                   unit: str, presenter: bool = False) -> go.Figure:
    """Margin of each decision unquantized (x) vs quantized (y); flipped decisions in red."""
    before, after = np.asarray(before, float), np.asarray(after, float)
    mask = np.zeros(len(before), bool)
    mask[np.asarray(flipped, int)] = True
    fig = go.Figure()
    trace = go.Scattergl if len(before) > 10_000 else go.Scatter
    fig.add_trace(trace(x=before[~mask], y=after[~mask], mode="markers", name="same decision",
                        marker=dict(color=BASE, size=5, opacity=0.5),
                        hovertemplate="before %{x:.4f}<br>after %{y:.4f}<extra></extra>"))
    fig.add_trace(trace(x=before[mask], y=after[mask], mode="markers", name=f"flipped ({int(mask.sum())})",
                        marker=dict(color=ACCENT, size=8), text=np.flatnonzero(mask).astype(str),
                        hovertemplate="item %{text}<br>before %{x:.4f}<br>after %{y:.4f}<extra></extra>"))
    lo = float(min(before.min(), after.min())) if len(before) else -1.0
    hi = float(max(before.max(), after.max())) if len(before) else 1.0
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", line=dict(color=MUTED, dash="dot"),
                             name="unchanged", hoverinfo="skip"))
    fig.add_hline(y=0, line_color=MUTED)
    fig.add_vline(x=0, line_color=MUTED)
    return style(fig, title, f"margin unquantized ({unit})", f"margin quantized ({unit})", presenter)


def margin_histograms(before: np.ndarray, after: np.ndarray, title: str, unit: str,
                      presenter: bool = False) -> go.Figure:
    """Distribution of margins, unquantized vs quantized, on common bins; right of 0 = decided right."""
    before, after = np.asarray(before, float), np.asarray(after, float)
    finite = np.concatenate([before, after])
    finite = finite[np.isfinite(finite)]
    edges = np.histogram_bin_edges(finite if len(finite) else np.zeros(1), bins=HIST_BINS)
    centers = (edges[:-1] + edges[1:]) / 2
    fig = go.Figure()
    for values, name, color in ((before, "unquantized", MUTED), (after, "quantized", BASE)):
        counts, _ = np.histogram(values[np.isfinite(values)], bins=edges)
        fig.add_trace(go.Bar(x=centers, y=counts, name=name, marker_color=color, opacity=0.7,
                             width=edges[1] - edges[0], hovertemplate="%{x:.4f}: %{y}<extra></extra>"))
    fig.update_layout(barmode="overlay", bargap=0)
    fig.add_vline(x=0, line_color=ACCENT, line_dash="dash", annotation_text="wrong | right")
    return style(fig, title, f"margin ({unit})", "decisions", presenter)


def whole_model_histogram(values: Sequence[np.ndarray], names: Sequence[str], label: str, unit: str,
                          log_x: bool = False, presenter: bool = False) -> go.Figure:
    """Distribution of the whole-model metric (per sentence or token), one outline per scheme."""
    arrays = [np.asarray(v, float) for v in values]
    allv = np.concatenate(arrays) if arrays else np.zeros(1)
    if log_x:
        allv = np.log10(np.maximum(allv, 1e-8))
    edges = np.histogram_bin_edges(allv, bins=HIST_BINS)
    centers = (edges[:-1] + edges[1:]) / 2
    fig = go.Figure()
    for i, (v, n) in enumerate(zip(arrays, names)):
        x = np.log10(np.maximum(v, 1e-8)) if log_x else v
        counts, _ = np.histogram(x, bins=edges)
        fig.add_trace(go.Scatter(x=10 ** centers if log_x else centers, y=counts, mode="lines", name=n,
                                 line=dict(color=PALETTE[i % len(PALETTE)], shape="hvh")))
    if log_x:
        fig.update_xaxes(type="log")
    style(fig, label, unit, "count", presenter)
    # one legend entry per scheme: a column on the right, clear of the title
    fig.update_layout(legend=dict(orientation="v", yanchor="top", y=1.0, xanchor="left", x=1.02))
    return fig


def sensitivity_bars(names: Sequence[str], damage: np.ndarray, kept: int, label: str,
                     presenter: bool = False) -> go.Figure:
    """Per-layer damage, worst first; the `kept` worst layers (the plan's 8-bit layers) in red."""
    d = np.asarray(damage, float)
    colors = [ACCENT if i < kept else BASE for i in range(len(d))]
    fig = go.Figure(go.Bar(x=list(names), y=d, marker_color=colors,
                           hovertemplate="%{x}<br>damage %{y:.5f}<extra></extra>"))
    fig.update_xaxes(tickangle=-60, tickfont=dict(size=16 if presenter else 10))
    return style(fig, "One layer quantized at a time: damage per layer (worst first)", "layer", label, presenter,
                 height=int((560 if not presenter else 780)))


def plan_effect(tasks: Sequence[str], scores: dict[str, Sequence[float]], metric_label: str,
                presenter: bool = False) -> go.Figure:
    """Grouped bars: each task's score under several variants (unquantized, scheme, plan)."""
    fig = go.Figure()
    for i, (name, values) in enumerate(scores.items()):
        fig.add_trace(go.Bar(x=list(tasks), y=list(values), name=name, marker_color=PALETTE[i % len(PALETTE)],
                             hovertemplate=f"{name}<br>%{{x}}: %{{y:.4f}}<extra></extra>"))
    fig.update_layout(barmode="group")
    return style(fig, "Effect of the mixed-precision plan", "task", metric_label, presenter)
