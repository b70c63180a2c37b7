"""Figure builders of the per-task cliffs page: what each chart encodes, read back from the figure JSON."""
from __future__ import annotations

import json

import numpy as np
import pytest

from explorer.plots import cliffs as figs
from explorer.plots.common import ACCENT, BASE
from app_helpers import figure_json, title_text

SCHEMES = ["int8", "int4 g128", "int4 tensor"]
TASKS = ["topic", "negation"]
DAMAGE = np.array([[0.0, 0.5], [2.0, 12.0], [21.5, np.inf]])


def text(d):
    return [[f"{v:.1f}" for v in row] for row in d]


def test_damage_matrix_outlines_exactly_the_cells_beyond_tolerance():
    fig = figure_json(figs.damage_matrix(SCHEMES, TASKS, DAMAGE, text(DAMAGE), 5.0))
    rects = fig["layout"]["shapes"]
    cells = sorted((int(round((r["y0"] + r["y1"]) / 2)), int(round((r["x0"] + r["x1"]) / 2))) for r in rects)
    assert cells == [(1, 1), (2, 0), (2, 1)]
    assert all(r["line"]["color"] == ACCENT for r in rects)
    z = np.asarray(fig["data"][0]["z"], dtype=float)
    assert z.max() == figs.CLIP and np.isfinite(z).all()  # an infinite damage is drawn at the clip, not lost
    assert fig["data"][0]["text"][1][1] == "12.0" and "tolerance of 5" in title_text(fig)
    loose = figure_json(figs.damage_matrix(SCHEMES, TASKS, DAMAGE, text(DAMAGE), 50.0))
    assert len(loose["layout"].get("shapes", [])) == 1  # only the infinite one


def test_presenter_mode_enlarges():
    a = figs.damage_matrix(SCHEMES, TASKS, DAMAGE, text(DAMAGE), 5.0)
    b = figs.damage_matrix(SCHEMES, TASKS, DAMAGE, text(DAMAGE), 5.0, presenter=True)
    assert b.layout.font.size > a.layout.font.size and b.layout.height > a.layout.height


def test_margin_scatter_marks_the_flips():
    rng = np.random.default_rng(0)
    before, after = rng.normal(size=200), rng.normal(size=200)
    flipped = np.flatnonzero(np.sign(before) != np.sign(after))
    fig = figure_json(figs.margin_scatter(before, after, flipped, "m", "cosine"))
    same, flips = fig["data"][0], fig["data"][1]
    assert len(flips["x"]) == len(flipped) and len(same["x"]) == 200 - len(flipped)
    np.testing.assert_allclose(np.sort(flips["x"]), np.sort(before[flipped]))
    assert flips["marker"]["color"] == ACCENT and f"flipped ({len(flipped)})" == flips["name"]


def test_margin_histograms_share_bins_and_count_every_decision():
    before, after = np.linspace(-1, 1, 101), np.linspace(-2, 0.5, 101)
    fig = figure_json(figs.margin_histograms(before, after, "h", "cosine"))
    a, b = fig["data"]
    np.testing.assert_allclose(a["x"], b["x"])
    assert sum(a["y"]) == 101 and sum(b["y"]) == 101 and len(a["x"]) == figs.HIST_BINS


def test_whole_model_histogram_log_axis_for_divergences():
    kl = [np.array([1e-4, 1e-3, 1e-2, 1.0]), np.array([1e-3, 2e-3])]
    fig = figure_json(figs.whole_model_histogram(kl, ["a", "b"], "KL", "nats", log_x=True))
    assert fig["layout"]["xaxis"]["type"] == "log"
    assert [sum(t["y"]) for t in fig["data"]] == [4, 2]


def test_sensitivity_bars_colour_the_kept_layers():
    fig = figure_json(figs.sensitivity_bars(["a", "b", "c", "d"], np.array([4.0, 3.0, 2.0, 1.0]), 2, "1 - cos"))
    assert fig["data"][0]["marker"]["color"] == [ACCENT, ACCENT, BASE, BASE]


def test_plan_effect_groups_variants():
    fig = figure_json(figs.plan_effect(TASKS, {"fp32": [0.9, 0.8], "int4": [0.7, 0.1], "plan": [0.9, 0.6]}, "acc"))
    assert [t["name"] for t in fig["data"]] == ["fp32", "int4", "plan"] and fig["layout"]["barmode"] == "group"


@pytest.mark.parametrize("n", [5000])
def test_payloads_stay_small(n):
    rng = np.random.default_rng(1)
    m = rng.normal(size=n)
    fig = figs.margin_scatter(m, m + rng.normal(scale=0.01, size=n), np.arange(10), "m", "logprob")
    assert len(json.dumps(fig.to_plotly_json(), default=str)) < 1_000_000
    big = figs.whole_model_histogram([rng.random(100_000)], ["x"], "cos", "cosine")
    assert len(big.to_json()) < 20_000  # binned on the server
