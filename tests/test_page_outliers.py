"""Outlier channels under AppTest: renders on defaults with MiniLM's recurring channels, round-trips its link,
mean -> max changes the heatmap, the selected layer's threshold and saliency views, SmolLM2's massive
activations, and sources without activation statistics."""
from __future__ import annotations

import numpy as np
import pytest
from app_helpers import assert_no_exception, errors, open_page, plotly_payload_bytes, plotly_specs, query, \
    title_text, warnings

from explorer import samples
from explorer.outliers import saliency

PAGE = "pages/outliers.py"


def heatmap(at) -> dict:
    return next(f for f in plotly_specs(at) if f["data"][0]["type"] == "heatmap")


def recurring(at) -> list[int]:
    return list(at.dataframe[0].value["channel"])


@pytest.fixture(scope="module")
def default_page():
    return open_page(PAGE)


def test_renders_on_defaults_with_minilm_recurring_channels(default_page):
    at = default_page
    assert_no_exception(at)
    assert not errors(at)
    assert at.title[0].value == "Outlier channels"
    hm = heatmap(at)
    assert "input of attention.self.{query, key, value}" in title_text(hm)
    assert np.asarray(hm["data"][0]["z"]).shape == (6, 384)
    assert list(hm["data"][0]["y"]) == [f"block {i}" for i in range(6)]
    assert recurring(at)[:2] == [99, 157]
    marks = [a["text"] for a in hm["layout"]["annotations"]]
    assert "<b>99</b>" in marks
    titles = [title_text(f) for f in plotly_specs(at)]
    assert any("max |x|" in t and "Largest input" in t for t in titles)
    assert any("Weight range per input channel" in t for t in titles)
    assert plotly_payload_bytes(at) < 1_000_000
    # the selected layer (sidebar default encoder.layer.0.output.dense): AWQ's top 1% = 16 of 1536 channels
    sal_table = at.dataframe[1].value
    stats = samples.activation_stats("minilm")["encoder.layer.0.output.dense"]
    w = samples.load_weight("minilm", "encoder.layer.0.output.dense")
    assert list(sal_table["channel"]) == saliency(stats[0], w).top(0.01).tolist() and len(sal_table) == 16
    assert {"Heatmap data (CSV)", "Per-channel data (CSV)"} <= {b.proto.label for b in at.get("download_button")}


def test_mean_to_max_changes_the_heatmap(default_page):
    at = default_page
    z_max = np.asarray(heatmap(at)["data"][0]["customdata"])
    at.radio(key="w_ostat").set_value("mean").run()
    assert_no_exception(at)
    z_mean = np.asarray(heatmap(at)["data"][0]["customdata"])
    stats = samples.activation_stats("minilm")
    ref = np.stack([stats[f"encoder.layer.{b}.attention.self.query"][0].numpy() for b in range(6)])
    np.testing.assert_allclose(z_mean, ref, rtol=1e-6)
    assert not np.allclose(z_mean, z_max)
    assert query(at)["ostat"] == "mean"


def test_a_link_round_trips_into_the_widgets():
    link = {"ostat": "mean", "ogrp": "intermediate.dense", "ok": "5"}
    at = open_page(PAGE, link)
    assert_no_exception(at)
    assert at.radio(key="w_ostat").value == "mean"
    assert at.selectbox(key="w_ogrp").value == "intermediate.dense"
    assert at.slider(key="w_ok").value == 5
    assert "input of intermediate.dense" in title_text(heatmap(at))
    assert {k: query(at).get(k) for k in link} == link


def test_button_shows_the_selected_layers_input_group(default_page):
    at = default_page
    at.button[0].click().run()
    assert_no_exception(at)
    assert at.selectbox(key="w_ogrp").value == "output.dense"
    hm = heatmap(at)
    assert np.asarray(hm["data"][0]["z"]).shape == (6, 768)  # 1536 channels, max-pooled in pairs
    assert "max over 2 channels" in title_text(hm)


@pytest.mark.skipif("smollm2" not in samples.sample_models(), reason="SmolLM2 sample not built")
def test_smollm2_massive_activation_on_down():
    at = open_page(PAGE, {"src": "sample:smollm2", "ogrp": "down"})
    assert_no_exception(at)
    cells = np.asarray(heatmap(at)["data"][0]["customdata"])
    assert cells.shape == (30, 768) and cells[11].max() > 1000 and int(cells.max(axis=1).argmax()) == 11
    peak = heatmap(at)["layout"]["annotations"][0]
    assert peak["y"] == "block 11" and peak["text"] == f"<b>{cells.max():,.4g}</b>"
    layer = next(f for f in plotly_specs(at) if "Largest input" in title_text(f))
    assert np.max(layer["data"][0]["y"]) > 1000


def test_bad_link_and_sources_without_statistics():
    at = open_page(PAGE, {"ogrp": "qkv", "ok": "99"})  # qkv is SmolLM2's group, not MiniLM's
    assert_no_exception(at)
    assert any("Input group" in w for w in warnings(at)) and any("`ok` ignored" in w for w in warnings(at))
    at = open_page(PAGE, {"src": "upload"})  # no file yet: no statistics, no tensor
    assert_no_exception(at)
    assert any("need **real inputs**" in i.value for i in at.info)
    assert not [f for f in plotly_specs(at) if f["data"][0]["type"] == "heatmap"]


def test_a_tensor_without_statistics_shows_the_weight_only():
    at = open_page(PAGE, {"src": "pkg:minilm", "t": "embeddings.word_embeddings.weight"})
    assert_no_exception(at)
    assert any("not the weight of a Linear" in i.value for i in at.info)
    assert any("Weight range per input channel" in title_text(f) for f in plotly_specs(at))
    widest = at.dataframe[-1].value  # the 1% widest weight columns of a [30522, 384] embedding: 4 channels
    assert len(widest) == 4 and list(widest["max |W[:, j]|"]) == sorted(widest["max |W[:, j]|"], reverse=True)
