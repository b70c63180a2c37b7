"""Shared figure styling: one look for every chart, and presenter mode (large type for a projector).

style() styles a validated go.Figure; style_layout() + fast_figure() build the same look from plain dicts
without plotly's validation, for pages whose script time matters (Layer Lab)."""
from __future__ import annotations

import functools

import plotly.graph_objects as go
import plotly.io as pio

ACCENT = "#d62728"      # the current choice, outliers, thresholds
BASE = "#1f77b4"        # data
MUTED = "#9aa5b1"       # context
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf"]


def style(fig: go.Figure, title: str, x_title: str = "", y_title: str = "", presenter: bool = False,
          height: int | None = None) -> go.Figure:
    """Apply the house look; presenter mode doubles the type and the height."""
    size = 22 if presenter else 13
    fig.update_layout(
        title=dict(text=title, font=dict(size=size + 4)),
        font=dict(size=size),
        margin=dict(l=60, r=20, t=60 if not presenter else 80, b=50),
        height=height or (620 if presenter else 380),
        legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1.0),
        template="plotly_white",
    )
    fig.update_xaxes(title_text=x_title)
    fig.update_yaxes(title_text=y_title)
    return fig


@functools.lru_cache(maxsize=1)
def _template() -> dict:
    return pio.templates["plotly_white"].to_plotly_json()


def style_layout(title: str, x_title: str = "", y_title: str = "", presenter: bool = False,
                 height: int | None = None) -> dict:
    """style()'s house look as a plain layout dict, for figures built with fast_figure()."""
    size = 22 if presenter else 13
    return dict(
        title=dict(text=title, font=dict(size=size + 4)),
        font=dict(size=size),
        margin=dict(l=60, r=20, t=60 if not presenter else 80, b=50),
        height=height or (620 if presenter else 380),
        legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1.0),
        template=_template(),  # shared: go.Figure copies its layout
        xaxis=dict(title=dict(text=x_title)),
        yaxis=dict(title=dict(text=y_title)),
    )


def fast_figure(data: list[dict], layout: dict) -> go.Figure:
    """A go.Figure of plain trace dicts (each with its "type") and a layout dict, skipping plotly's per-property
    validation (10-40 ms a figure, most of a page's script time). Only for builders whose every property a test
    validates (plotly would build the same figure: tests/test_plots_layer.py); nested dicts, never magic
    underscores (marker=dict(color=...), not marker_color)."""
    if layout.get("template") is _template():  # style_layout's: only the entries of these traces' types apply
        layout = {**layout, "template": _template_for(tuple(sorted({trace["type"] for trace in data})))}
    return go.Figure(data=data, layout=layout, _validate=False)


@functools.lru_cache(maxsize=16)
def _template_for(types: tuple[str, ...]) -> dict:
    """plotly_white with trace defaults for `types` only (half the bytes a figure carries, the same look)."""
    full = _template()
    return {"data": {t: v for t, v in full["data"].items() if t in types}, "layout": full["layout"]}


def merge_layout(layout: dict, **parts: dict) -> dict:
    """layout with each named part (e.g. yaxis=dict(type="log")) merged one level deep."""
    for key, value in parts.items():
        layout[key] = {**layout.get(key, {}), **value} if isinstance(value, dict) else value
    return layout
