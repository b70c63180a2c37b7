"""Shared figure styling: one look for every chart, and presenter mode (large type for a projector)."""
from __future__ import annotations

import plotly.graph_objects as go

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
