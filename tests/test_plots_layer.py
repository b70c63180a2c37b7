"""Layer Lab figure builders (explorer.plots.layer) on small arrays: traces carry exactly the binned arrays they
are given, axis titles and scales, the levels rug, presenter styling; and the chart payload of a 4096 x 11008
layer's analysis, measured the way Streamlit serialises it (plotly.io.to_json)."""
import json
import math

import numpy as np
import plotly.io as pio
import pytest
import torch

from app_helpers import axis_title, figure_json, title_text
from explorer.analysis import REL_LOG10_RANGE, HEATMAP_CELLS, max_pool, top_k
from explorer.histogram import Histogram, histogram
from explorer.metrics import channel_errors
from explorer.plots import layer as figs

MB = 1_000_000


def _hist(counts=(1, 2, 3, 4), half=1.0):
    return Histogram(np.asarray(counts, dtype=np.int64), half, True)


# ---- weight_distribution ----

def test_weight_distribution_is_the_binned_histogram():
    h = _hist()
    f = figure_json(figs.weight_distribution(h, "Weights W", "weight value"))
    assert len(f["data"]) == 1
    bar = f["data"][0]
    assert bar["type"] == "bar"
    np.testing.assert_allclose(bar["x"], [-0.75, -0.25, 0.25, 0.75])
    np.testing.assert_array_equal(bar["y"], [1, 2, 3, 4])
    assert bar["width"] == 0.5
    assert title_text(f) == "Weights W"
    assert axis_title(f, "xaxis") == "weight value" and axis_title(f, "yaxis") == "weights"
    assert f["layout"]["showlegend"] is False and f["layout"]["bargap"] == 0
    assert f["layout"]["yaxis"].get("type") != "log"


def test_weight_distribution_log_scale_and_levels_rug():
    f = figure_json(figs.weight_distribution(_hist(half=8.0), "t", "code", levels=np.arange(-7, 8), log_y=True))
    assert f["layout"]["yaxis"]["type"] == "log"
    assert axis_title(f, "yaxis") == "weights (log)"
    rug = f["data"][1]
    np.testing.assert_array_equal(rug["x"], np.arange(-7, 8))
    np.testing.assert_array_equal(rug["y"], np.full(15, 0.9))  # just under 1 on a log axis (0 cannot be drawn)
    assert rug["name"] == "levels (15)" and rug["marker"]["symbol"] == "line-ns-open"
    assert f["layout"]["showlegend"] is True
    lin = figure_json(figs.weight_distribution(_hist(half=8.0), "t", "code", levels=np.arange(-7, 8)))
    np.testing.assert_array_equal(lin["data"][1]["y"], np.zeros(15))


def test_many_levels_are_cut_to_the_histogram_range_but_few_are_all_kept():
    f = figure_json(figs.weight_distribution(_hist(half=16.0), "t", "code", levels=np.arange(-127, 128)))
    np.testing.assert_array_equal(f["data"][1]["x"], np.arange(-16, 17))  # |level| <= 16 * 1.05
    assert f["data"][1]["name"] == "levels (33)"
    few = figure_json(figs.weight_distribution(_hist(half=2.0), "t", "code", levels=np.arange(-7, 8)))
    assert len(few["data"][1]["x"]) == 15


# ---- error_histograms ----

def test_error_histograms_absolute_and_relative():
    err = _hist((5, 50, 40, 5), half=0.25)
    rel_edges = np.linspace(*REL_LOG10_RANGE, 161)
    rel_counts = np.arange(160)
    fa, fr = (figure_json(f) for f in figs.error_histograms(err, rel_counts, rel_edges, 0.125))
    np.testing.assert_array_equal(fa["data"][0]["y"], [5, 50, 40, 5])
    np.testing.assert_allclose(fa["data"][0]["x"], [-0.1875, -0.0625, 0.0625, 0.1875])
    assert fa["layout"]["yaxis"]["type"] == "log"
    assert axis_title(fa, "xaxis") == "error" and "Absolute error" in title_text(fa)
    np.testing.assert_allclose(fr["data"][0]["x"], 10.0 ** ((rel_edges[:-1] + rel_edges[1:]) / 2))
    np.testing.assert_array_equal(fr["data"][0]["y"], rel_counts)
    assert fr["layout"]["xaxis"]["type"] == "log"
    assert axis_title(fr, "xaxis") == "relative error"
    assert "12.5% of weights exact" in title_text(fr)
    noted = [figure_json(f) for f in (*figs.error_histograms(err, rel_counts, rel_edges, 0.125, note="1 in 4 rows"),
                                      figs.weight_distribution(err, "t", "x", note="1 in 4 rows"))]
    for f in noted:  # a second, smaller title line, with room for it
        assert title_text(f).endswith("<br><sup>1 in 4 rows</sup>") and f["layout"]["margin"]["t"] == 84
    assert fa["layout"]["margin"]["t"] == 60
    (line,) = fr["layout"]["shapes"]
    assert line["x0"] == line["x1"] == 1.0  # the 100% mark


# ---- channel_errors ----

def test_channel_errors_lines_and_top_markers():
    rng = np.random.default_rng(0)
    row, col = rng.random(10).astype(np.float32), rng.random(20).astype(np.float32)
    row[7] = 9.0
    tr, tc = top_k(row, 3), top_k(col, 3)
    fr, fc = (figure_json(f) for f in figs.channel_errors(row, col, tr, tc))
    for f, values, top, what in ((fr, row, tr, "output channel (row)"), (fc, col, tc, "input channel (column)")):
        line, marks = f["data"]
        assert line["type"] == "scattergl"  # WebGL: an 11008-wide layer is one trace of 11008 points
        assert "x" not in line and (line["x0"], line["dx"]) == (0, 1)  # x = channel index, no array sent
        np.testing.assert_array_equal(line["y"], values)  # every channel, exact
        np.testing.assert_array_equal(marks["x"], top)
        np.testing.assert_allclose(marks["y"], values[top])
        assert marks["text"] == [str(int(t)) for t in top]
        assert axis_title(f, "xaxis") == what
        assert f["layout"]["yaxis"]["type"] == "log"
    assert fr["data"][1]["x"][0] == 7


# ---- built without validation: plotly's validation would build the same figures ----

def _every_builder(presenter=False):
    rng = np.random.default_rng(1)
    row, col = rng.random(10).astype(np.float32), rng.random(20).astype(np.float32)
    return [figs.weight_distribution(_hist(), "t", "x", presenter=presenter),
            figs.weight_distribution(_hist(half=8.0), "t", "code", levels=np.arange(-7, 8), log_y=True),
            figs.weight_distribution(_hist(half=16.0), "t", "code", levels=np.arange(-127, 128)),
            *figs.error_histograms(_hist(), np.arange(160), np.linspace(-7, 1, 161), 0.5, presenter, "a note"),
            *figs.channel_errors(row, col, top_k(row, 3), top_k(col, 3), presenter),
            figs.heatmap(np.ones((2, 3), np.float32), (2, 8), "h", presenter),
            figs.heatmap(np.ones((2, 3), np.float32), (1, 1), "h", presenter, colorscale="Inferno")]


@pytest.mark.parametrize("presenter", [False, True])
def test_unvalidated_figures_equal_what_plotly_validation_builds(presenter):
    import plotly.graph_objects as go
    for fig in _every_builder(presenter):
        fast = fig.to_dict()
        checked = go.Figure(fast)  # validates every property: raises on an unknown one or a bad value
        same = json.loads(pio.to_json(checked, validate=False)) == json.loads(pio.to_json(fig, validate=False))
        assert same, fast["layout"]["title"]  # same properties and values (key order aside)


def test_house_style_layout_equals_style_and_figures_carry_only_their_traces_template():
    import plotly.graph_objects as go

    from explorer.plots.common import style, style_layout
    for presenter in (False, True):
        assert style_layout("t", "x", "y", presenter, 500) == style(go.Figure(), "t", "x", "y", presenter,
                                                                    height=500).to_dict()["layout"]
    white = pio.templates["plotly_white"].to_plotly_json()
    fig = figs.weight_distribution(_hist(), "t", "x", levels=np.arange(-7, 8)).to_dict()
    assert fig["layout"]["template"] == {"data": {k: white["data"][k] for k in ("bar", "scatter")},
                                         "layout": white["layout"]}  # other trace types' defaults never apply


# ---- heatmap ----

def test_heatmap_log_colour_original_indices_and_hover_values():
    pooled = np.array([[1.0, 10.0], [100.0, 0.0]], dtype=np.float32)
    f = figure_json(figs.heatmap(pooled, (2, 8), "|W|"))
    hm = f["data"][0]
    np.testing.assert_allclose(hm["z"], [[0.0, 1.0], [2.0, -1.0]], atol=1e-6)  # log10, zero a decade below the least
    tiny = figure_json(figs.heatmap(np.array([[1e-25, 1e-24], [0.0, 1e-23]], dtype=np.float32), (1, 1), "e"))
    np.testing.assert_allclose(tiny["data"][0]["z"], [[-25.0, -24.0], [-26.0, -23.0]], atol=1e-5)  # any scale
    zeros = figure_json(figs.heatmap(np.zeros((2, 2), np.float32), (1, 1), "e"))
    np.testing.assert_array_equal(zeros["data"][0]["z"], np.zeros((2, 2)))  # all exact: one colour, no -inf
    np.testing.assert_array_equal(hm["x"], [0, 8])  # first input channel of each cell
    np.testing.assert_array_equal(hm["y"], [0, 2])
    assert "customdata" not in hm and "10^%{z" in hm["hovertemplate"]  # hover shows the value from z alone
    assert f["layout"]["yaxis"]["autorange"] == "reversed"
    assert title_text(f) == "|W| (max over 2×8 blocks)"
    assert axis_title(f, "xaxis") == "input channel" and axis_title(f, "yaxis") == "output channel"
    small = figure_json(figs.heatmap(pooled, (1, 1), "|W|", colorscale="Inferno"))
    assert title_text(small) == "|W|"
    assert small["data"][0]["colorscale"][0][1] == "#000004"  # Inferno starts black


# ---- presenter mode ----

@pytest.mark.parametrize("presenter, size, height", [(False, 13, 380), (True, 22, 620)])
def test_presenter_mode_enlarges_type_and_charts(presenter, size, height):
    built = [figs.weight_distribution(_hist(), "t", "x", presenter=presenter),
             *figs.error_histograms(_hist(), np.ones(160), np.linspace(-7, 1, 161), 0.5, presenter),
             figs.heatmap(np.ones((2, 2), np.float32), (1, 1), "h", presenter)]
    for fig in built:
        f = figure_json(fig)
        assert f["layout"]["font"]["size"] == size
        assert f["layout"]["height"] == height


# ---- payload of a big layer ----

def _big_layer_arrays(out=4096, n_in=11008):
    """What analyze_layer returns for a [4096, 11008] layer, with the real shapes and dtypes. The reducers that
    fix the array sizes (max_pool, channel_errors) run on the full-size tensor; the histograms (fixed bin counts)
    are taken on a 1/64 subsample and scaled, which keeps the file fast without changing any array's size."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(out, n_in, generator=g) * 0.02
    w[:, 1234] *= 50  # an outlier channel
    scale = w.abs().amax(dim=1, keepdim=True) / 7
    w_hat = torch.round(w / scale) * scale
    err = w_hat - w
    row_mse, col_mse = channel_errors(w, w_hat)
    w_pooled, pool = max_pool(w.abs())
    err_pooled, _ = max_pool(err.abs())
    sub = slice(None, None, 64)
    scaled = lambda h: Histogram(h.counts * 64, h.half_range, h.signed)  # noqa: E731
    rel = torch.log10(err[::8, ::8].abs() / w[::8, ::8].abs()).clamp(*REL_LOG10_RANGE)
    rel_counts = np.histogram(rel.numpy(), bins=160, range=REL_LOG10_RANGE)[0] * 64
    return dict(weight_hist=scaled(histogram(w[sub])), scaled_hist=scaled(histogram((w / scale)[sub], 512)),
                levels=np.arange(-7.0, 8.0), error_hist=scaled(histogram(err[sub])), rel_counts=rel_counts,
                rel_edges=np.linspace(*REL_LOG10_RANGE, 161), row_mse=row_mse.numpy(), col_mse=col_mse.numpy(),
                w_pooled=w_pooled, err_pooled=err_pooled, pool=pool)


def _page_figures(a, presenter=False):
    """Every figure Layer Lab draws for one analysis, built as pages/layer_lab.py builds them."""
    tr, tc = top_k(a["row_mse"]), top_k(a["col_mse"])
    return [figs.weight_distribution(a["weight_hist"], "Weights W", "weight value", log_y=True, presenter=presenter),
            figs.weight_distribution(a["scaled_hist"], "W ÷ its scale", "code", levels=a["levels"], log_y=True,
                                     presenter=presenter),
            *figs.error_histograms(a["error_hist"], a["rel_counts"], a["rel_edges"], 0.01, presenter),
            *figs.channel_errors(a["row_mse"], a["col_mse"], tr, tc, presenter),
            figs.heatmap(a["w_pooled"], a["pool"], "|W|", presenter),
            figs.heatmap(a["err_pooled"], a["pool"], "|Ŵ − W|", presenter, colorscale="Inferno")]


@pytest.fixture(scope="module")
def big_figures():
    a = _big_layer_arrays()
    return a, [pio.to_json(f, validate=False) for f in _page_figures(a)]  # what Streamlit sends


def test_big_layer_figures_are_binned_not_raw(big_figures):
    a, specs = big_figures
    assert a["w_pooled"].shape == (math.ceil(4096 / a["pool"][0]), math.ceil(11008 / a["pool"][1]))
    assert max(a["w_pooled"].shape) <= HEATMAP_CELLS
    for spec in specs:
        f = figure_json(pio.from_json(spec, skip_invalid=True))
        for trace in f["data"]:
            for key in ("x", "y", "z", "customdata"):
                if key in trace and hasattr(trace[key], "__len__"):
                    assert np.size(trace[key]) <= max(11008, HEATMAP_CELLS ** 2), (title_text(f), key)
    # Every chart but the two heatmaps stays small.
    assert all(len(s) < 150_000 for s in specs[:-2]), [len(s) for s in specs]


def test_big_layer_page_payload_is_under_1mb(big_figures):
    _, specs = big_figures
    total = sum(len(s) for s in specs)
    assert total < MB, f"Layer Lab charts for a 4096x11008 layer: {total / MB:.2f} MB ({[len(s) for s in specs]})"
