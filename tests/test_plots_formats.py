"""explorer.plots.formats: Pareto chart (traces, axes, front, highlight) and small-multiple error histograms
(exact re-binning onto the shared range, highlight, payload size for a 4096 x 11008 layer)."""
import json

import numpy as np
import pytest
import torch

from app_helpers import figure_json
from explorer import make_spec
from explorer.histogram import Histogram, histogram
from explorer.plots.common import ACCENT
from explorer.plots.formats import error_small_multiples, on_range, pareto_chart, shared_range, widest
from explorer.quantize import fake_quantize

BITS = [2.0, 3.0, 4.0, 4.25, 8.0]
ERR = [0.5, 0.3, 0.1, 0.0, 0.01]
LABELS = ["a", "b", "c", "d", "e"]
GROUPS = ["per tensor", "per channel", "per group", "per group", "per tensor"]
SYM = [True, True, False, True, True]
FRONT = [True, True, True, True, False]


def _pareto(highlight=2, **kw):
    return figure_json(pareto_chart(BITS, ERR, LABELS, GROUPS, SYM, FRONT, highlight, "weight error", **kw))


def test_pareto_chart_traces_axes_and_highlight():
    fig = _pareto()
    names = [t["name"] for t in fig["data"]]
    assert names == ["per tensor", "per channel", "per group", "Pareto front", "your choice (Layer Lab)"]
    lay = fig["layout"]
    assert lay["yaxis"]["type"] == "log"
    assert "bits per weight" in lay["xaxis"]["title"]["text"]
    assert lay["yaxis"]["title"]["text"] == "weight error (log)"
    hi = fig["data"][-1]
    assert list(hi["x"]) == [4.0] and list(hi["y"]) == [0.1] and hi["marker"]["color"] == ACCENT
    assert any(a["text"] == "<b>c</b>" for a in lay["annotations"])
    front = fig["data"][3]
    assert list(front["x"]) == [2.0, 3.0, 4.0, 4.25]  # sorted by bits, e excluded
    group = fig["data"][2]
    assert list(group["marker"]["symbol"]) == ["circle-open", "circle"]  # asymmetric c is open


def test_pareto_chart_zero_error_floor_and_no_highlight():
    fig = _pareto(highlight=None)
    assert "your choice (Layer Lab)" not in [t["name"] for t in fig["data"]]
    d = fig["data"][2]  # per group: c (0.1) and d (0.0 -> floor 0.01 / 10)
    assert list(d["y"]) == pytest.approx([0.1, 0.001])
    assert list(d["customdata"]) == [0.1, 0.0]  # hover keeps the true error


def test_pareto_chart_error_paths():
    with pytest.raises(ValueError, match="same length"):
        pareto_chart(BITS, ERR[:-1], LABELS, GROUPS, SYM, FRONT)
    with pytest.raises(ValueError, match="highlight"):
        pareto_chart(BITS, ERR, LABELS, GROUPS, SYM, FRONT, highlight=9)


def test_on_range_rebins_exactly():
    x = torch.linspace(-0.3, 0.3, 1001)
    h = histogram(x, 256)
    assert h.half_range == 0.5
    centers, counts, width = on_range(h, 2.0, 128)
    assert counts.sum() == 1001 and width == pytest.approx(4.0 / 128)
    # every value in [-0.3, 0.3] lies in the 20 central bins of width 1/32 around 0
    ref = np.histogram(x.numpy(), bins=np.linspace(-2, 2, 129))[0]
    np.testing.assert_array_equal(counts, ref)
    assert centers[64] == pytest.approx(width / 2)


def test_small_multiples_share_range_and_highlight():
    hists = {"int8": histogram(torch.randn(1000) * 0.01), "int2": histogram(torch.randn(1000)),
             "nf4": histogram(torch.randn(1000) * 0.1)}
    titles = {k: f"{k} · t" for k in hists}
    fig = figure_json(error_small_multiples(hists, titles, highlight="nf4"))
    bars = fig["data"]
    assert [b["name"] for b in bars] == ["int8", "int2", "nf4"]
    half = shared_range(list(hists.values()))
    assert half == hists["int2"].half_range and widest(hists) == "int2"
    for b in bars:
        assert int(np.sum(b["y"])) == 1000  # nothing lost in the re-binning
    assert bars[2]["marker"]["color"] == ACCENT and bars[0]["marker"]["color"] != ACCENT
    assert fig["layout"]["xaxis"]["range"] == [-half, half]
    assert fig["layout"]["yaxis"]["type"] == "log"
    assert any(a["text"] == "<b>nf4 · t</b>" and a["font"]["color"] == ACCENT for a in fig["layout"]["annotations"])
    lin = figure_json(error_small_multiples(hists, titles, log_y=False))
    assert lin["layout"]["yaxis"].get("type") != "log"
    with pytest.raises(ValueError, match="empty"):
        error_small_multiples({}, {})


def test_figures_for_a_4096_x_11008_layer_stay_under_1_mb():
    torch.manual_seed(0)
    w = torch.randn(4096, 11008) * 0.02
    err = histogram(fake_quantize(w, make_spec("int4", "group", 128)) - w)
    names = [f"fmt{i}" for i in range(15)]  # as many panels as the registry has formats
    hists = {n: Histogram(err.counts, err.half_range * 2 ** (i % 3), True) for i, n in enumerate(names)}
    small = error_small_multiples(hists, {n: n for n in names}, highlight="fmt3")
    n = 58
    rng = np.random.default_rng(0)
    pareto = pareto_chart(rng.uniform(2, 8.5, n), rng.uniform(1e-3, 1, n), [f"s{i}" for i in range(n)],
                          ["per tensor"] * n, [True] * n, [i % 4 == 0 for i in range(n)], 5, "weight error")
    sizes = [len(json.dumps(json.loads(f.to_json()))) for f in (small, pareto)]
    assert sum(sizes) < 1_000_000, sizes
