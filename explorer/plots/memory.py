"""Figure builders of the Memory & bandwidth page: stacked memory bars against GPU memory, decode-bound tokens/s
per format and GPU, the roofline (Williams, Waterman, Patterson, CACM 2009), measured speed-ups beside bytes
saved; and its table builders (the cited hardware table, sizes, fit, speed bounds, measured timings) as rows.

Pure functions: numbers in (already computed by explorer.memory / explorer.bounds / explorer.measure), a plotly
Figure (or table rows) out. Payloads are tiny: one bar per format and GPU, three points per roof.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import plotly.graph_objects as go

from explorer.bounds import Deployment
from explorer.hardware import Hardware
from explorer.measure import LayerTiming, Variant
from explorer.memory import Footprint
from explorer.model_configs import TensorKind
from explorer.plots.common import ACCENT, MUTED, PALETTE, style
from explorer.units import GB, GiB, fmt_bytes, fmt_rate

PARTS = (("weights", "#1f77b4"), ("KV cache", "#ff7f0e"), ("overhead", "#9aa5b1"))


def memory_bars(labels: Sequence[str], weights: Sequence[float], kv: Sequence[float], overhead: Sequence[float],
                gpu_lines: Sequence[tuple[str, float]], title: str, presenter: bool = False) -> go.Figure:
    """Stacked bars (weights / KV cache / overhead, in GiB) per format, one dashed line per GPU memory size.

    labels, weights, kv, overhead: one entry per format; gpu_lines: (GPU name, memory in GiB). GPUs with the same
    memory share one line and one label."""
    if not len(labels) == len(weights) == len(kv) == len(overhead):
        raise ValueError(f"labels, weights, kv, overhead must have equal lengths; got {len(labels)}, "
                         f"{len(weights)}, {len(kv)}, {len(overhead)}")
    fig = go.Figure()
    for (name, color), values in zip(PARTS, (weights, kv, overhead)):
        fig.add_trace(go.Bar(x=list(labels), y=list(values), name=name, marker_color=color,
                             hovertemplate="%{x}<br>" + name + ": %{y:.2f} GiB<extra></extra>"))
    totals = [w + k + o for w, k, o in zip(weights, kv, overhead)]
    fig.add_trace(go.Scatter(x=list(labels), y=totals, mode="text", text=[f"{t:.1f}" for t in totals],
                             textposition="top center", showlegend=False, hoverinfo="skip",
                             textfont=dict(size=22 if presenter else 13)))
    merged: dict[float, list[str]] = {}
    for name, mem in gpu_lines:
        merged.setdefault(round(mem, 3), []).append(name)
    for mem, names in sorted(merged.items()):
        fig.add_hline(y=mem, line_dash="dash", line_color=ACCENT, line_width=1.5,
                      annotation_text=f"{' / '.join(names)}: {mem:,.0f} GiB" if mem >= 10 else
                      f"{' / '.join(names)}: {mem:.1f} GiB", annotation_position="top left",
                      annotation_font_color=ACCENT, annotation_bgcolor="rgba(255,255,255,0.85)")
    fig.update_layout(barmode="stack", yaxis_rangemode="tozero")
    top = max(totals + [m for m in merged] + [0.0])
    fig.update_yaxes(range=[0, top * 1.15 if top > 0 else 1])
    return style(fig, title, "", "GiB (2³⁰ bytes)", presenter, height=720 if presenter else 460)


def tokens_bars(gpus: Sequence[str], labels: Sequence[str], tokens: Sequence[Sequence[float | None]], title: str,
                y_title: str = "tokens/s (upper bound)", presenter: bool = False,
                fits: Sequence[Sequence[bool]] | None = None) -> go.Figure:
    """Grouped bars: x = GPU, one bar per format. tokens[f][g] is format f on GPU g (None: no bar).
    fits[f][g] False hatches the bar: the model does not fit on one such device, so the bound needs several."""
    if len(tokens) != len(labels) or any(len(row) != len(gpus) for row in tokens):
        raise ValueError(f"tokens must be [{len(labels)} formats][{len(gpus)} GPUs]")
    fits = fits if fits is not None else [[True] * len(gpus) for _ in labels]
    if len(fits) != len(labels) or any(len(row) != len(gpus) for row in fits):
        raise ValueError(f"fits must be [{len(labels)} formats][{len(gpus)} GPUs]")
    fig = go.Figure()
    for i, (label, row, ok) in enumerate(zip(labels, tokens, fits)):
        fig.add_trace(go.Bar(x=list(gpus), y=list(row), name=label,
                             marker_color=PALETTE[i % len(PALETTE)],
                             marker_pattern_shape=["" if f else "/" for f in ok],
                             text=[f"{v:,.0f}" if v is not None else "" for v in row], textposition="outside",
                             textfont=dict(size=18 if presenter else 11), cliponaxis=False,
                             hovertemplate="%{x}<br>" + label + ": %{y:,.1f} tok/s<extra></extra>"))
    fig.update_layout(barmode="group", bargap=0.2)
    return style(fig, title, "", y_title, presenter, height=720 if presenter else 460)


class Roof(NamedTuple):
    """One roof: min(peak, intensity x bandwidth). peak in FLOP/s, bandwidth in bytes/s."""

    label: str
    peak: float
    bandwidth: float
    color: str = "#222222"
    dash: str = "solid"


class Trajectory(NamedTuple):
    """Roofline points of one format and execution over batch sizes (intensity FLOP/byte, attainable FLOP/s)."""

    label: str
    intensity: Sequence[float]
    flops: Sequence[float]
    batches: Sequence[int]
    w8a8: bool = False     # activations and math in 8 bits too: drawn with diamonds
    color: int = 0         # index into the palette (the format's colour on the other charts)


def _batch_labels(t: Trajectory) -> list[str]:
    """'batch b' beside each point on the slope and the last one; points crowding the flat roof stay unlabelled."""
    top = max(t.flops)
    return [f"batch {b}" if y < top * 0.999 or k == len(t.batches) - 1 else ""
            for k, (b, y) in enumerate(zip(t.batches, t.flops))]


def roofline_chart(roofs: Sequence[Roof], series: Sequence[Trajectory], title: str,
                   presenter: bool = False) -> go.Figure:
    """Log-log roofline (Williams, Waterman, Patterson 2009): attainable FLOP/s = min(peak, intensity x bandwidth).

    Each roof is drawn exactly with three points (straight lines on log-log axes) across the plotted range. Each
    trajectory is one format and execution over batch sizes: circles weight-only, diamonds W8A8/FP8; the batch
    sizes of the first trajectory are written beside its points on the slope and its last point (the others sit
    at the same batches)."""
    xs = [x for t in series for x in t.intensity] + [r.peak / r.bandwidth for r in roofs]
    if not xs or any(not x > 0 for x in xs):
        raise ValueError("roofline_chart needs at least one roof or trajectory, with intensities > 0")
    lo, hi = min(xs) / 6, max(xs) * 3
    fig = go.Figure()
    ys = []
    for r in roofs:
        ridge = r.peak / r.bandwidth
        x = [lo, ridge, hi] if lo < ridge < hi else [lo, hi]
        y = [min(r.peak, v * r.bandwidth) / 1e12 for v in x]
        ys += y
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=r.label,
                                 line=dict(color=r.color, dash=r.dash, width=3 if r.dash == "solid" else 2),
                                 hovertemplate=r.label + "<br>%{x:.3g} FLOP/B → %{y:,.1f} TFLOP/s<extra></extra>"))
    size = 18 if presenter else 12
    for i, t in enumerate(series):
        color = PALETTE[t.color % len(PALETTE)]
        ys += [v / 1e12 for v in t.flops]
        fig.add_trace(go.Scatter(
            x=list(t.intensity), y=[v / 1e12 for v in t.flops], name=t.label,
            mode="markers+text" if i == 0 else "markers", text=_batch_labels(t),
            textposition="top left", textfont=dict(size=size, color="#444444"),
            marker=dict(size=16 if presenter else 11, color=color, symbol="diamond" if t.w8a8 else "circle",
                        line=dict(color="white", width=1)),
            customdata=list(t.batches),
            hovertemplate=t.label + "<br>batch %{customdata}: %{x:.3g} FLOP/B, %{y:,.1f} TFLOP/s<extra></extra>"))
    fig.update_xaxes(type="log", dtick=1, range=[math.log10(lo), math.log10(hi)])
    pos = [y for y in ys if y > 0]
    fig.update_yaxes(type="log", dtick=1, range=[math.log10(min(pos) / 2), math.log10(max(pos) * 3)])
    style(fig, title, "arithmetic intensity (FLOPs per byte moved)", "attainable TFLOP/s", presenter,
          height=820 if presenter else 600)
    if presenter:  # a projector needs the width for the chart: the legend goes underneath
        fig.update_layout(legend=dict(orientation="h", yanchor="top", y=-0.15, xanchor="left", x=0.0),
                          margin=dict(b=60), height=1000)
    else:
        fig.update_layout(legend=dict(orientation="v", yanchor="top", y=1.0, xanchor="left", x=1.02))
    return fig


def measured_bars(variants: Sequence[str], bytes_smaller: Sequence[float],
                  speedups: Sequence[tuple[str, Sequence[float | None]]], title: str,
                  presenter: bool = False) -> go.Figure:
    """Per variant: how many times fewer bytes it stores than fp32, beside its measured speed-up vs fp32 at each
    batch (None: not supported here), on a log axis (0.5x and 2x are equally far from 1x). A dotted line marks
    1x: as fast as fp32."""
    if len(bytes_smaller) != len(variants) or any(len(v) != len(variants) for _, v in speedups):
        raise ValueError(f"bytes_smaller and every speed-up row need {len(variants)} values")
    fig = go.Figure()
    size = 18 if presenter else 11
    fig.add_trace(go.Bar(x=list(variants), y=list(bytes_smaller), name="bytes: × smaller than fp32",
                         marker_color=MUTED, text=[f"{v:.1f}×" for v in bytes_smaller], textposition="outside",
                         textfont=dict(size=size), cliponaxis=False))
    for i, (label, values) in enumerate(speedups):
        fig.add_trace(go.Bar(x=list(variants), y=list(values), name=label, marker_color=PALETTE[i % len(PALETTE)],
                             text=[_times(v) for v in values],
                             textposition="outside", textfont=dict(size=size), cliponaxis=False))
    fig.add_hline(y=1.0, line_dash="dot", line_color=ACCENT, annotation_text="1× = fp32 speed",
                  annotation_position="top right")
    fig.update_layout(barmode="group")
    fig.update_yaxes(type="log", dtick=1)
    return style(fig, title, "", "× vs fp32, log scale (higher is better)", presenter,
                 height=680 if presenter else 460)


def _times(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}×" if v >= 0.1 else f"{v:.2g}×"


def _value(label: str, v: float | None) -> str:
    if v is None:
        return "—"
    if label == "memory":
        return fmt_bytes(v, binary=True)
    if label == "bandwidth":
        return fmt_rate(v)
    return f"{v / 1e12:,.1f} " + ("TOPS" if label == "peak_int8" else "TFLOP/s")  # as datasheets print them


WHAT = {"memory": "memory", "bandwidth": "memory bandwidth", "peak_fp32": "FP32 (dense)",
        "peak_bf16": "BF16/FP16 tensor (dense)", "peak_fp8": "FP8 tensor (dense)", "peak_int8": "INT8 tensor (dense)",
        "peak_fp4": "FP4 tensor (dense)"}


def hardware_rows(hardware: Sequence[Hardware]) -> list[dict[str, str]]:
    """The hardware table in long form: one row per (device, quantity) with the value, its source and note."""
    return [{"device": hw.name, "quantity": WHAT.get(label, label), "value": _value(label, f.value),
             "source": f.source, "note": f.note}
            for hw in hardware for label, f in hw.figures().items()]


# Table builders: rows (dicts) for st.dataframe and the CSV downloads, from the library's results.

def size_rows(labels: Sequence[str], fps: Sequence[Footprint], deps: Sequence[Sequence[Deployment]],
              kv_bytes: float) -> list[dict]:
    """Per format: effective bits per weight (Linear weights, whole model) and GB/GiB of weights, KV, total."""
    rows = []
    for lab, f, ds in zip(labels, fps, deps):
        lin = f.bits_per_weight_of(TensorKind.LINEAR)
        rows.append({"format": lab, "bits/weight (Linear)": round(lin, 3) if lin else None,
                     "bits/weight (model)": round(f.bits_per_weight, 3), "weights GB": round(f.weight_bytes / GB, 2),
                     "weights GiB": round(f.weight_bytes / GiB, 2), "KV cache GiB": round(kv_bytes / GiB, 2),
                     "+ overhead GiB": round(ds[0].fit.overhead_bytes / GiB, 2),
                     "total GiB": round(ds[0].fit.total_bytes / GiB, 2)})
    return rows


def fit_rows(labels: Sequence[str], devices: Sequence[str], deps: Sequence[Sequence[Deployment]]) -> list[dict]:
    """Per format, per device: '✓ fits, N GiB free' or '✗ needs n (m with TP)'."""
    rows = []
    for lab, ds in zip(labels, deps):
        row = {"format": lab}
        for name, d in zip(devices, ds):
            row[name] = (f"✓ fits, {d.fit.free_bytes / GiB:.0f} GiB free" if d.fit.fits else
                         f"✗ needs {d.fit.gpus_needed} ({d.fit.gpus_tensor_parallel} with TP)")
        rows.append(row)
    return rows


def speed_rows(labels: Sequence[str], devices: Sequence[str], deps: Sequence[Sequence[Deployment]]) -> list[dict]:
    """Per format: bytes read per decode step (weights + KV) and the tokens/s bound on each device."""
    rows = []
    for lab, ds in zip(labels, deps):
        row = {"format": lab, "bytes read per step": fmt_bytes(ds[0].bytes_per_step),
               "weights per step": fmt_bytes(ds[0].decode.weight_bytes_read),
               "KV per step": fmt_bytes(ds[0].decode.kv_bytes_read)}
        row.update({f"{name} tok/s": round(d.decode.tokens_per_s, 1) for name, d in zip(devices, ds)})
        rows.append(row)
    return rows


def timing_rows(t: LayerTiming) -> list[dict]:
    """One row per (variant, batch) of a measure-here run: median ms, runs, bytes, speed-ups, note."""
    fp32 = max(v.weight_bytes for v in t.timings if v.variant is Variant.FP32)
    return [{"variant": v.variant.value, "batch": v.batch,
             "median ms": round(v.median_s * 1e3, 4) if v.supported else None, "runs": v.repeats,
             "weight bytes": v.weight_bytes, "× smaller than fp32": round(fp32 / v.weight_bytes, 2),
             "speed-up vs fp32": round(v.speedup_vs_fp32, 2) if v.speedup_vs_fp32 else None,
             "speed-up vs bf16": round(v.speedup_vs_bf16, 2) if v.speedup_vs_bf16 else None, "note": v.note}
            for v in t.timings]
