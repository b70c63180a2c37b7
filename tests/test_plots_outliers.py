"""explorer.plots.outliers: heatmap (log colour, marked channels, pooling keeps peaks), one layer's max|x| with
the cited 6.0 threshold, the weight range, and payload size for a 4096 x 11008 layer."""
import json

import numpy as np
import pytest
import torch

from app_helpers import figure_json
from explorer.outliers import over_threshold, weight_channel_range
from explorer.plots.common import ACCENT
from explorer.plots.outliers import HEATMAP_COLUMNS, channel_heatmap, layer_max_abs, log_ticks, pool_channels, \
    weight_range


def test_pool_channels_keeps_every_window_max():
    v = np.arange(10, dtype=np.float32)[None].repeat(2, 0)
    v[1, 7] = 100
    pooled, x, window = pool_channels(v, 4)
    assert window == 3 and list(x) == [0, 3, 6, 9]
    np.testing.assert_array_equal(pooled, [[2, 5, 8, 9], [2, 5, 100, 9]])
    same, x, window = pool_channels(v, 10)
    assert window == 1 and same.shape == (2, 10)


def test_log_ticks():
    assert log_ticks(0.5, 75)[1] == ["0.5", "1", "2", "5", "10", "20", "50"]
    assert log_ticks(0.05, 3000)[0] == pytest.approx([0.1, 1, 10, 100, 1000])


def test_heatmap_is_log_coloured_and_marks_channels():
    m = np.full((3, 8), 1.0, np.float32)
    m[:, 5] = 100.0
    fig = figure_json(channel_heatmap(m, ["block 0", "block 1", "block 2"], "max |x|", "max |x|", [5]))
    hm = fig["data"][0]
    np.testing.assert_allclose(hm["z"], np.log10(m))
    np.testing.assert_allclose(hm["customdata"], m)  # hover shows real values
    assert list(hm["y"]) == ["block 0", "block 1", "block 2"]
    peak, mark = fig["layout"]["annotations"]
    assert (peak["text"], peak["x"], peak["y"]) == ("<b>100</b>", 5, "block 0")  # the largest cell, with its value
    assert (mark["text"], mark["x"]) == ("<b>5</b>", 5)
    assert fig["layout"]["xaxis"]["title"]["text"] == "input channel"
    assert hm["colorbar"]["ticktext"][0] == "1" and hm["colorbar"]["ticktext"][-1] == "100"
    with pytest.raises(ValueError, match="row labels"):
        channel_heatmap(m, ["a"], "t", "s")


def test_layer_max_abs_draws_and_cites_the_threshold():
    v = np.array([1.0, 7.0, 0.5, 3000.0], np.float32)
    over = over_threshold(torch.from_numpy(v)).tolist()
    fig = figure_json(layer_max_abs(v, "layer", 6.0, over))
    assert over == [1, 3]
    bars, marks = fig["data"]
    np.testing.assert_array_equal(bars["y"], v)
    assert list(marks["x"]) == [3, 1] and marks["marker"]["color"] == ACCENT
    line = fig["layout"]["shapes"][0]
    assert line["y0"] == line["y1"] == 6.0
    assert any("2208.07339" in a["text"] for a in fig["layout"]["annotations"])
    lo, hi = fig["layout"]["yaxis"]["range"]
    assert fig["layout"]["yaxis"]["type"] == "log" and 10 ** lo <= 0.5 and 10 ** hi >= 3000


def test_weight_range_marks_the_activation_outliers():
    w = torch.tensor([[0.1, -2.0, 0.3], [0.2, 0.1, -0.4]])
    fig = figure_json(weight_range(weight_channel_range(w).numpy(), "W", [1]))
    np.testing.assert_allclose(fig["data"][0]["y"], [0.2, 2.0, 0.4])
    assert list(fig["data"][1]["x"]) == [1] and fig["data"][1]["y"][0] == pytest.approx(2.0)
    assert fig["layout"]["xaxis"]["title"]["text"] == "input channel j"


def test_figures_for_a_4096_x_11008_layer_stay_under_1_mb():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(4096, 11008, generator=g) * 0.02
    max_abs = torch.rand(11008, generator=g) * 2
    max_abs[[17, 9001]] = torch.tensor([40.0, 3000.0])
    stats = (torch.rand(32, 11008, generator=g) + 0.1).numpy()
    stats[:, 9001] = 500.0
    heat = channel_heatmap(stats, [f"block {i}" for i in range(32)], "t", "max |x|", [9001])
    over = over_threshold(max_abs).tolist()
    bars = layer_max_abs(max_abs.numpy(), "layer", 6.0, over)
    wr = weight_range(weight_channel_range(w).numpy(), "W", over)
    sizes = [len(json.dumps(json.loads(f.to_json()))) for f in (heat, bars, wr)]
    assert sum(sizes) < 1_000_000, sizes
    hm = figure_json(heat)["data"][0]
    assert np.asarray(hm["z"]).shape[1] <= HEATMAP_COLUMNS
    assert np.asarray(hm["customdata"]).max() == pytest.approx(500.0)  # the outlier column survives pooling
    b = figure_json(bars)["data"][0]
    assert np.max(b["y"]) == pytest.approx(3000.0) and len(b["y"]) <= 2048
