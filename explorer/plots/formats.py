"""Formats side by side: the error vs bits-per-weight chart with its Pareto front, and small-multiple error
histograms (one panel per format, one shared x range). Inputs are plain arrays and explorer.histogram
Histograms (from explorer.compare.sweep); nothing here quantizes."""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explorer.histogram import Histogram, merge
from explorer.plots.common import ACCENT, MUTED, PALETTE, style
from explorer.plots.outliers import log_ticks

PANEL_BINS = 128  # bins per small-multiple panel (the 256-bin histograms summed in pairs: exact)


def pareto_chart(bits: Sequence[float], errors: Sequence[float], labels: Sequence[str], groups: Sequence[str],
                 symmetric: Sequence[bool], on_front: Sequence[bool], highlight: int | None = None,
                 error_title: str = "relative error", presenter: bool = False) -> go.Figure:
    """Error (log) vs effective bits per weight, one marker per scheme, coloured by `groups` (granularity),
    open markers for asymmetric; the Pareto front as a line; `highlight` (an index) ringed and labelled.
    Errors of exactly 0 (a scheme that reproduces W) are drawn at a floor below the smallest non-zero error."""
    bits = np.asarray(bits, dtype=float)
    err = np.asarray(errors, dtype=float)
    n = len(bits)
    if not (len(err) == len(labels) == len(groups) == len(symmetric) == len(on_front) == n):
        raise ValueError("bits, errors, labels, groups, symmetric and on_front must have the same length")
    if highlight is not None and not 0 <= highlight < n:
        raise ValueError(f"highlight={highlight} is outside 0..{n - 1}")
    positive = err[(err > 0) & np.isfinite(err)]
    floor = positive.min() / 10 if positive.size else 1e-6
    y = np.where(err > 0, err, floor)
    labels = list(labels)
    fig = go.Figure()
    for i, g in enumerate(dict.fromkeys(groups)):
        idx = [j for j in range(n) if groups[j] == g]
        fig.add_trace(go.Scatter(
            x=bits[idx], y=y[idx], mode="markers", name=g, text=[labels[j] for j in idx],
            customdata=err[idx],
            marker=dict(color=PALETTE[i % len(PALETTE)], size=14 if presenter else 10,
                        symbol=["circle" if symmetric[j] else "circle-open" for j in idx], line_width=2),
            hovertemplate="%{text}<br>%{x:.3f} bits/weight<br>error %{customdata:.4g}<extra></extra>"))
    front = [j for j in range(n) if on_front[j]]
    front.sort(key=lambda j: (bits[j], y[j]))
    # Label only the most accurate front scheme of each whole-bit tier: every front label would overlap.
    tiers = {}
    for j in front:
        t = int(np.floor(bits[j] + 1e-9))
        if t not in tiers or y[j] < y[tiers[t]]:
            tiers[t] = j
    fig.add_trace(go.Scatter(
        x=bits[front], y=y[front], mode="lines+text", name="Pareto front",
        text=[labels[j] if j in tiers.values() and j != highlight else "" for j in front],
        textposition=["bottom right" if bits[j] < bits.min() + 1 else "bottom left" for j in front], textfont=dict(size=15 if presenter else 11, color="#333"),
        line=dict(color=MUTED, width=2, dash="dot", shape="hv"), hoverinfo="skip"))
    if highlight is not None:
        fig.add_trace(go.Scatter(
            x=[bits[highlight]], y=[y[highlight]], mode="markers", name="your choice (Layer Lab)",
            marker=dict(symbol="circle-open", size=30 if presenter else 24, color=ACCENT, line_width=3),
            hovertemplate=f"{labels[highlight]} (Layer Lab)<extra></extra>"))
        fig.add_annotation(x=bits[highlight], y=math.log10(y[highlight]), text=f"<b>{labels[highlight]}</b>",
                           font=dict(color=ACCENT, size=18 if presenter else 13), showarrow=True,
                           arrowcolor=ACCENT, ax=40, ay=-40)
    lo, hi = float(y.min()) / 1.5, float(y.max()) * 1.5
    tickvals, ticktext = log_ticks(lo, hi)
    fig.update_yaxes(type="log", range=[math.log10(lo), math.log10(hi)], tickvals=tickvals, ticktext=ticktext)
    fig.update_xaxes(dtick=1)
    style(fig, f"Error vs size: {n} schemes on this layer", "effective bits per weight (scales and zeros included)",
          f"{error_title} (log)", presenter, height=760 if presenter else 520)
    fig.update_layout(legend=dict(orientation="v", yanchor="top", y=1.0, xanchor="left", x=1.01))
    return fig


def shared_range(hists: Sequence[Histogram]) -> float:
    """The largest half-range of `hists` (all mergeable histograms re-bin exactly onto it)."""
    return max(h.half_range for h in hists)


def widest(hists: Mapping[str, Histogram]) -> str:
    """The name of the histogram with the largest |value| (the one that sets the shared range)."""
    def reach(h: Histogram) -> float:
        nz = np.nonzero(h.counts)[0]
        return 0.0 if nz.size == 0 else float(max(abs(h.edges[nz[0]]), abs(h.edges[nz[-1] + 1])))
    return max(hists, key=lambda n: reach(hists[n]))


def on_range(h: Histogram, half: float, bins: int = PANEL_BINS) -> tuple[np.ndarray, np.ndarray, float]:
    """(centers, counts, width) of h re-binned exactly onto [-half, half] with `bins` bins (a divisor of h.bins)."""
    empty = Histogram(np.zeros(h.bins, dtype=np.int64), half, h.signed)
    wide = merge(h, empty)  # exact: power-of-two ranges have aligned edges
    if wide.bins % bins:
        raise ValueError(f"bins={bins} must divide the histogram's {wide.bins} bins")
    counts = wide.counts.reshape(bins, -1).sum(axis=1)
    edges = np.linspace(-half, half, bins + 1)
    return (edges[:-1] + edges[1:]) / 2, counts, 2 * half / bins


def error_small_multiples(hists: Mapping[str, Histogram], titles: Mapping[str, str], highlight: str | None = None,
                          log_y: bool = True, presenter: bool = False) -> go.Figure:
    """One panel per format (keys of `hists`: Ŵ − W histograms), all on one x range; `highlight` in red."""
    if not hists:
        raise ValueError("hists is empty; allowed: at least one histogram")
    names = list(hists)
    cols = 3 if presenter else 5
    rows = math.ceil(len(names) / cols)
    half = shared_range(list(hists.values()))
    subtitles = [f"<b>{titles.get(n, n)}</b>" if n == highlight else titles.get(n, n) for n in names]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=subtitles, shared_xaxes="all", shared_yaxes="all",
                        vertical_spacing=0.5 / rows / (1.5 if presenter else 2.5), horizontal_spacing=0.03)
    top = 1
    for i, n in enumerate(names):
        centers, counts, width = on_range(hists[n], half)
        top = max(top, int(counts.max()))
        r, c = divmod(i, cols)
        color = ACCENT if n == highlight else "#4c78a8"
        fig.add_trace(go.Bar(x=centers, y=counts, width=width, marker_color=color, marker_line_width=0, name=n,
                             showlegend=False, hovertemplate=f"{n}: error %{{x:.3g}}: %{{y}} weights<extra></extra>"),
                      row=r + 1, col=c + 1)
    fig.update_layout(bargap=0)
    if log_y:  # one y range for all panels, so tails compare too
        fig.update_yaxes(type="log", range=[-0.1, math.log10(top) + 0.3], dtick=1)
    else:
        fig.update_yaxes(range=[0, top * 1.05])
    fig.update_xaxes(range=[-half, half])
    if highlight in names:  # colour the highlighted panel's title as well
        for ann in fig.layout.annotations:
            if ann.text == f"<b>{titles.get(highlight, highlight)}</b>":
                ann.font = dict(color=ACCENT)
    style(fig, f"Error Ŵ − W per format at its usual granularity (shared x range ±{half:.3g})", "", "",
          presenter, height=(330 if presenter else 190) * rows + 90)
    fig.update_annotations(font_size=18 if presenter else 12)
    return fig
