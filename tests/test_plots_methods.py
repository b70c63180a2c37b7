"""explorer.plots.methods: what each figure carries (decoded as a browser receives it), pooling that keeps peaks,
payloads under 1 MB for the widest real layers, readable log ticks, presenter sizes."""
from __future__ import annotations

import numpy as np
import pytest
from app_helpers import figure_json, title_text

from explorer.plots import methods as figs


def ys(fig: dict, i: int = 0) -> np.ndarray:
    return np.asarray(fig["data"][i]["y"], dtype=np.float64)


def test_channel_magnitude_pools_wide_layers_without_losing_the_peak():
    act = np.full(28672, 0.1, dtype=np.float32)
    act[20001] = 500.0
    fig = figs.channel_magnitude(act, [20001, 7], presenter=False)
    j = figure_json(fig)
    bars = j["data"][0]
    assert len(bars["x"]) <= figs.MAX_POINTS and ys(j).max() == 500.0
    assert list(j["data"][1]["x"]) == [20001, 7] and list(ys(j, 1)) == pytest.approx([500.0, 0.1])
    assert j["layout"]["yaxis"]["type"] == "log" and len(fig.to_json()) < 1_000_000
    assert "calibration tokens" in title_text(j)


def test_scale_vector_marks_one_and_the_alpha():
    s = np.array([0.5, 1.0, 4.0, 2.0], dtype=np.float32)
    j = figure_json(figs.scale_vector(s, [2], 0.3684))
    assert "alpha = 0.368" in title_text(j) and list(ys(j)) == pytest.approx(s.tolist())
    assert j["layout"]["shapes"][0]["y0"] == 1.0


def test_loss_curve_marks_the_search_and_the_inspected_point():
    a = np.linspace(0, 1, 20)
    losses = (a - 0.4) ** 2 + 0.01
    best = int(np.argmin(losses))
    j = figure_json(figs.loss_curve(a, losses, best, best))
    names = [d["name"] for d in j["data"]]
    assert names == ["output MSE", "alpha 0 = RTN", f"searched: alpha {a[best]:.3f}"]
    assert j["data"][2]["x"] == [pytest.approx(a[best])] and j["data"][2]["marker"]["symbol"] == "star"
    j2 = figure_json(figs.loss_curve(a, losses, best, 3))
    assert j2["data"][-1]["name"] == f"shown: alpha {a[3]:.3f}" and len(j2["data"]) == 4
    ticks = j["layout"]["yaxis"]["tickvals"]
    assert j["layout"]["yaxis"]["type"] == "log" and all(t > 0 for t in ticks)


def test_salient_errors_adds_the_mean_of_the_other_channels():
    rtn = np.array([0.1, 0.2, 0.3, 0.4])
    awq = np.array([0.05, 0.3, 0.35, 0.1])
    j = figure_json(figs.salient_errors([3, 0], rtn, awq))
    assert list(j["data"][0]["x"]) == ["ch 3", "ch 0", "other channels (mean)"]
    assert list(ys(j, 0)) == pytest.approx([0.4, 0.1, 0.25]) and list(ys(j, 1)) == pytest.approx([0.1, 0.05, 0.325])


def test_output_errors_draws_both_token_sets_and_the_rtn_line():
    j = figure_json(figs.output_errors(["RTN", "GPTQ"], [0.05, 0.01], [0.04, 0.03], "t"))
    assert [d["name"] for d in j["data"]] == ["calibration tokens (seen)", "held-out tokens (unseen)"]
    assert list(ys(j, 1)) == [0.04, 0.03] and j["layout"]["shapes"][0]["y0"] == 0.04


def test_column_losses_and_running_total_stay_small_for_the_widest_layer():
    rng = np.random.default_rng(0)
    order = rng.random(28672).astype(np.float32) * 1e-4
    act = order[::-1].copy()
    act[5] = 0.0  # a dead column: kept off the log axis' range, not a crash
    f1 = figs.column_losses(order, act)
    j = figure_json(f1)
    assert [d["type"] for d in j["data"]] == ["scattergl", "scattergl"]
    assert all(len(d["x"]) <= figs.MAX_POINTS for d in j["data"]) and ys(j).max() == pytest.approx(order.max())
    f2 = figs.cumulative_losses(order, act)
    j2 = figure_json(f2)
    assert ys(j2)[-1] == pytest.approx(order.astype(np.float64).sum(), rel=1e-6)
    assert len(f1.to_json()) + len(f2.to_json()) < 1_000_000


def test_compare_chart_one_trace_per_method_and_gaps_for_cells_not_run():
    errors = {("RTN", "int4 g128"): 0.04, ("GPTQ", "int4 g128"): 0.03, ("RTN", "nvfp4 (block 16)"): 0.05}
    j = figure_json(figs.compare_chart(["int4 g128", "nvfp4 (block 16)"], ["RTN", "GPTQ"], errors))
    assert [d["name"] for d in j["data"]] == ["RTN", "GPTQ"]
    assert list(ys(j, 0)) == [0.04, 0.05] and ys(j, 1)[0] == 0.03 and np.isnan(ys(j, 1)[1])
    assert j["layout"]["yaxis"]["type"] == "log"


def test_presenter_mode_enlarges_type():
    a = np.linspace(0, 1, 5)
    normal = figure_json(figs.loss_curve(a, a + 1, 0))
    big = figure_json(figs.loss_curve(a, a + 1, 0, presenter=True))
    assert big["layout"]["font"]["size"] > normal["layout"]["font"]["size"]
    assert big["layout"]["height"] > normal["layout"]["height"]
