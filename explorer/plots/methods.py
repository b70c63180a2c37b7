"""Figures of the AWQ, GPTQ and Compare-methods pages (arrays from explorer.method_views in, plotly Figures out).

AWQ: mean|x| per input channel, the scale vector, the loss over alpha, the salient channels' error before/after.
GPTQ: the loss per column in processing order (column order vs act-order), and its running total. Both pages and
Compare: output error in-sample vs held out. Channel axes longer than MAX_POINTS are max-pooled on the server (a
peak is never lost), so a chart stays small whatever the layer.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from explorer.plots.common import ACCENT, BASE, MUTED, PALETTE, style
from explorer.plots.outliers import log_ticks, pool_channels

MAX_POINTS = 2048
CALIB_COLOR, HELD_COLOR = "#9ecae1", BASE


def _log_axis(fig: go.Figure, *arrays) -> None:
    """A log y axis with readable ticks (1, 2, 5 per decade over short spans) for the positive values given."""
    vals = np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays])
    vals = vals[np.isfinite(vals) & (vals > 0)]
    if vals.size == 0:
        return
    lo, hi = float(vals.min()) / 1.5, float(vals.max()) * 1.5
    tickvals, ticktext = log_ticks(lo, hi)
    fig.update_yaxes(type="log", range=[np.log10(lo), np.log10(hi)], tickvals=tickvals, ticktext=ticktext)


def _marker_size(presenter: bool) -> int:
    return 12 if presenter else 8


def _channel_bars(values: np.ndarray, name: str, color: str) -> go.Bar:
    pooled, x, window = pool_channels(np.asarray(values, dtype=np.float32), MAX_POINTS)
    hover = "channel %{x}: %{y:.4g}" if window == 1 else f"channels %{{x}}..+{window - 1}: max %{{y:.4g}}"
    return go.Bar(x=x, y=pooled, width=window, marker_color=color, marker_line_width=0, name=name,
                  hovertemplate=hover + "<extra></extra>")


def _salient_marks(values: np.ndarray, salient: Sequence[int], presenter: bool) -> go.Scatter:
    idx = np.asarray(list(salient), dtype=np.int64)[:MAX_POINTS]
    return go.Scatter(x=idx, y=np.asarray(values, dtype=np.float32)[idx], mode="markers",
                      name=f"salient ({idx.size})", marker=dict(color=ACCENT, size=_marker_size(presenter),
                                                                symbol="diamond"),
                      hovertemplate="channel %{x}: %{y:.4g}<extra></extra>")


def channel_magnitude(act_mean: np.ndarray, salient: Sequence[int], presenter: bool = False) -> go.Figure:
    """mean|x| per input channel [in] (log y), the salient channels marked."""
    fig = go.Figure([_channel_bars(act_mean, "mean |x|", BASE), _salient_marks(act_mean, salient, presenter)])
    _log_axis(fig, act_mean)
    fig.update_layout(bargap=0)
    return style(fig, "mean |x| per input channel (calibration tokens)", "input channel j",
                 "mean |x_j| (log)", presenter)


def scale_vector(scales: np.ndarray, salient: Sequence[int], alpha: float, presenter: bool = False) -> go.Figure:
    """AWQ's s_j = mean|x_j|^alpha (normalised) per input channel [in], log y; s > 1 means finer rounding."""
    fig = go.Figure([_channel_bars(scales, "s", "#4c78a8"), _salient_marks(scales, salient, presenter)])
    fig.add_hline(y=1.0, line_dash="dot", line_color=MUTED)
    _log_axis(fig, scales, [1.0])
    fig.update_layout(bargap=0)
    return style(fig, f"AWQ scale per input channel at alpha = {alpha:.3f}", "input channel j",
                 "s_j (log)", presenter)


def loss_curve(alphas: np.ndarray, losses: np.ndarray, best: int, inspected: int | None = None,
               presenter: bool = False) -> go.Figure:
    """Output MSE on the calibration tokens at each alpha of the grid; the searched minimum marked (and the
    inspected point, when another one is shown). alpha = 0 is plain rounding (RTN)."""
    a, l = np.asarray(alphas, dtype=np.float64), np.asarray(losses, dtype=np.float64)
    size = _marker_size(presenter)
    fig = go.Figure(go.Scatter(x=a, y=l, mode="lines+markers", name="output MSE", line=dict(color=BASE),
                               marker=dict(size=size - 2), hovertemplate="alpha %{x:.3f}: %{y:.4g}<extra></extra>"))
    fig.add_trace(go.Scatter(x=[a[0]], y=[l[0]], mode="markers", name="alpha 0 = RTN",
                             marker=dict(color=MUTED, size=size + 2, symbol="square")))
    fig.add_trace(go.Scatter(x=[a[best]], y=[l[best]], mode="markers", name=f"searched: alpha {a[best]:.3f}",
                             marker=dict(color=ACCENT, size=size + 8, symbol="star")))
    if inspected is not None and inspected != best:
        fig.add_trace(go.Scatter(x=[a[inspected]], y=[l[inspected]], mode="markers",
                                 name=f"shown: alpha {a[inspected]:.3f}",
                                 marker=dict(color="#ff7f0e", size=size + 4, symbol="diamond")))
    _log_axis(fig, l)
    return style(fig, "The alpha search: output error on the calibration tokens", "alpha",
                 "mean((XWᵀ − XŴᵀ)²)", presenter)


def salient_errors(channels: Sequence[int], err_rtn: np.ndarray, err_awq: np.ndarray, presenter: bool = False
                   ) -> go.Figure:
    """Relative error of the salient weight columns [in arrays indexed by channel], RTN vs AWQ, and the mean
    over every other column (AWQ shifts error there)."""
    idx = np.asarray(list(channels), dtype=np.int64)
    rest = np.ones(len(err_rtn), dtype=bool)
    rest[idx] = False
    x = [f"ch {int(j)}" for j in idx] + (["other channels (mean)"] if rest.any() else [])

    def values(err):
        e = np.asarray(err, dtype=np.float64)
        return list(e[idx]) + ([float(e[rest].mean())] if rest.any() else [])
    fig = go.Figure([go.Bar(x=x, y=values(err_rtn), name="RTN", marker_color=MUTED),
                     go.Bar(x=x, y=values(err_awq), name="AWQ", marker_color=ACCENT)])
    fig.update_layout(barmode="group")
    return style(fig, "Salient columns: weight error, RTN vs AWQ",
                 "input channel (largest mean |x| first)", "‖W[:, j] − Ŵ[:, j]‖ / ‖W[:, j]‖", presenter)


def output_errors(labels: Sequence[str], calib: Sequence[float], holdout: Sequence[float], title: str,
                  presenter: bool = False) -> go.Figure:
    """Output error per method on the calibration tokens and on the held-out tokens; RTN's held-out error
    (the first label's) as a dashed reference line."""
    text = [f"{v:.4f}" for v in holdout]
    fig = go.Figure([go.Bar(x=list(labels), y=list(calib), name="calibration tokens (seen)", marker_color=CALIB_COLOR),
                     go.Bar(x=list(labels), y=list(holdout), name="held-out tokens (unseen)", marker_color=HELD_COLOR,
                            text=text, textposition="outside")])
    fig.add_hline(y=float(holdout[0]), line_dash="dash", line_color=MUTED,
                  annotation_text=f"{labels[0]} held out", annotation_position="top right")
    fig.update_layout(barmode="group")
    fig.update_yaxes(rangemode="tozero")
    return style(fig, title, "", "‖XWᵀ − XŴᵀ‖ / ‖XWᵀ‖", presenter)


def column_losses(losses_order: np.ndarray, losses_act: np.ndarray, presenter: bool = False) -> go.Figure:
    """GPTQ's loss per column [in] in processing order: column order vs act-order (log y)."""
    fig = go.Figure()
    shown = []
    for values, name, color in ((losses_order, "column order", BASE), (losses_act, "act-order", ACCENT)):
        pooled, x, window = pool_channels(np.asarray(values, dtype=np.float32), MAX_POINTS)
        hover = "step %{x}: %{y:.4g}" if window == 1 else f"steps %{{x}}..+{window - 1}: max %{{y:.4g}}"
        shown.append(pooled)
        fig.add_trace(go.Scattergl(x=x, y=np.maximum(pooled, 1e-30), mode="lines", name=name,
                                   line=dict(color=color, width=2 if presenter else 1),
                                   hovertemplate=hover + "<extra></extra>"))
    _log_axis(fig, *shown)
    return style(fig, "GPTQ's loss per column, in processing order",
                 "step (act-order: largest H_jj first)",
                 "(w − q)² / 2[H_F⁻¹]_jj, summed over rows (log)", presenter)


def cumulative_losses(losses_order: np.ndarray, losses_act: np.ndarray, presenter: bool = False) -> go.Figure:
    """Running total of GPTQ's per-column loss over the steps: where in the sweep the error is paid."""
    fig = go.Figure()
    for values, name, color in ((losses_order, "column order", BASE), (losses_act, "act-order", ACCENT)):
        total = np.cumsum(np.asarray(values, dtype=np.float64))
        step = max(1, -(-total.size // MAX_POINTS))
        x = np.arange(total.size)[step - 1::step]
        fig.add_trace(go.Scattergl(x=x, y=total[step - 1::step].astype(np.float32), mode="lines",
                                   name=f"{name} (total {total[-1]:.4g})",
                                   line=dict(color=color, width=3 if presenter else 2),
                                   hovertemplate="after step %{x}: %{y:.4g}<extra></extra>"))
    return style(fig, "GPTQ's loss, running total over the sweep", "step", "loss so far", presenter)


def compare_chart(specs: Sequence[str], methods: Sequence[str], errors: dict, presenter: bool = False
                  ) -> go.Figure:
    """Held-out output error, one bar per (spec, method): errors[(method, spec)] -> value or None (not run)."""
    fig = go.Figure()
    for k, m in enumerate(methods):
        ys = [errors.get((m, s)) for s in specs]
        fig.add_trace(go.Bar(x=list(specs), y=[np.nan if v is None else v for v in ys], name=m,
                             marker_color=PALETTE[k % len(PALETTE)],
                             hovertemplate=f"{m} · %{{x}}: %{{y:.4g}}<extra></extra>"))
    fig.update_layout(barmode="group")
    _log_axis(fig, [v for v in errors.values() if v is not None])
    return style(fig, "Output error on held-out tokens, per method and format", "format",
                 "‖XWᵀ − XŴᵀ‖ / ‖XWᵀ‖ (log)", presenter)
