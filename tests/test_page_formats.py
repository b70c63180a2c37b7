"""Formats side by side under AppTest: renders on defaults with the library's numbers, round-trips its link,
reacts to the group size and the highlight picker, and turns bad links and too-wide groups into messages."""
from __future__ import annotations

import pytest
from app_helpers import assert_no_exception, errors, open_page, plotly_payload_bytes, plotly_specs, query, \
    title_text, warnings

from explorer import make_spec
from explorer.metrics import weight_metrics
from explorer.quantize import quantize
from explorer.samples import load_weight

PAGE = "pages/formats.py"
SMALL = "encoder.layer.0.attention.self.query.weight"  # 384 x 384: a quick sweep


def pareto(at) -> dict:
    return next(f for f in plotly_specs(at) if "Error vs size" in title_text(f))


def table(at):
    return at.dataframe[0].value


@pytest.fixture(scope="module")
def default_page():
    return open_page(PAGE, {"t": SMALL})


def test_renders_on_defaults_with_the_library_numbers(default_page):
    at = default_page
    assert_no_exception(at)
    assert not errors(at)
    assert at.title[0].value == "Formats side by side"
    df = table(at)
    assert len(df) == 58
    row = df[(df["format"] == "int4") & (df["granularity"] == "group 128") & (df["scheme"] == "symmetric")].iloc[0]
    w = load_weight("minilm", SMALL)
    m = weight_metrics(w, quantize(w, make_spec("int4", "group", 128)))
    assert row["rel error"] == pytest.approx(m.rel_error) and row["bits/weight"] == pytest.approx(4.125)
    assert row["Layer Lab"] == "◀"  # Layer Lab's default choice is highlighted
    assert df["output error"].notna().all()  # real inputs ship for this layer
    fig = pareto(at)
    hi = next(t for t in fig["data"] if t["name"] == "your choice (Layer Lab)")
    assert list(hi["x"]) == [pytest.approx(4.125)] and list(hi["y"]) == [pytest.approx(m.rel_error)]
    assert any(t["name"] == "Pareto front" for t in fig["data"])
    assert fig["layout"]["yaxis"]["type"] == "log"
    assert any("per format at its usual granularity" in title_text(f) for f in plotly_specs(at))
    assert plotly_payload_bytes(at) < 1_000_000
    assert {"Table (CSV)"} <= {b.proto.label for b in at.get("download_button")}
    assert len(at.expander) >= 2  # show-the-code expanders


def test_a_link_round_trips_into_the_widgets():
    link = {"t": SMALL, "gs": "64", "fmt": "int8", "gran": "channel", "sym": "0", "ferr": "output", "flog": "0"}
    at = open_page(PAGE, link)
    assert_no_exception(at)
    assert at.select_slider(key="w_gs").value == 64
    assert at.radio(key="w_ferr").value == "output"
    assert at.toggle(key="w_flog").value is False
    assert at.selectbox(key="formats_pick").value == "int8 per-channel asym"
    assert "output error" in pareto(at)["layout"]["yaxis"]["title"]["text"]
    assert {k: query(at).get(k) for k in link} == link


def test_group_size_and_picker_change_the_output(default_page):
    at = default_page
    at.select_slider(key="w_gs").set_value(32).run()
    assert_no_exception(at)
    grans = set(table(at)["granularity"])
    assert "group 32" in grans and "group 128" not in grans
    assert query(at)["gs"] == "32"
    at.selectbox(key="formats_pick").set_value("nf4 per-tensor").run()
    assert_no_exception(at)
    assert query(at)["fmt"] == "nf4" and query(at)["gran"] == "tensor"
    df = table(at)
    marked = df[df["Layer Lab"] == "◀"]
    assert list(marked["format"]) == ["nf4"] and list(marked["granularity"]) == ["per-tensor"]
    hi = next(t for t in pareto(at)["data"] if t["name"] == "your choice (Layer Lab)")
    assert hi["x"][0] == pytest.approx(float(marked["bits/weight"].iloc[0]), abs=1e-3)


def test_bad_link_and_too_wide_group_become_messages():
    at = open_page(PAGE, {"t": SMALL, "gs": "abc", "ferr": "sideways"})
    assert_no_exception(at)
    assert any("`gs` ignored" in w for w in warnings(at)) and any("`ferr` ignored" in w for w in warnings(at))
    at = open_page(PAGE, {"t": SMALL, "gs": "1024"})
    assert_no_exception(at)
    assert any("wider than this layer's 384 inputs" in i.value for i in at.info)
    assert len(table(at)) == 58 - 18
