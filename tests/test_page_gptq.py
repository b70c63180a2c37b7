"""GPTQ page (AppTest): the library's numbers on the default layer, the per-column and output-error charts, the
honestly labelled extrapolation, the overfitting warning on a layer where 1% damping loses to RTN (and its fix), a
link round trip, a format GPTQ cannot run as a message, and a tensor without real inputs."""
from __future__ import annotations

import numpy as np
import pytest
from app_helpers import assert_no_exception, errors, metrics, open_page, plotly_payload_bytes, plotly_specs, query, \
    title_text, warnings

from explorer import samples
from explorer.loader import load_tensor
from explorer.method_views import EXTRAPOLATE_MODELS, compare_specs, extrapolate_gptq, gptq_view

PAGE = "pages/gptq.py"
TENSOR = "encoder.layer.0.output.dense.weight"
QUERY_0 = "encoder.layer.0.attention.self.query.weight"  # GPTQ at 1% damping overfits its 384 calibration tokens


def library(tensor=TENSOR, spec=None, **kw):
    w = load_tensor(samples.weights_path("minilm"), tensor)
    return gptq_view(w, samples.load_inputs("minilm", tensor), spec or compare_specs(["int4"], "group", 128, True)[0],
                     **kw)


def table(at, i: int = 0) -> dict:
    return at.dataframe[i].value.to_dict("list")


@pytest.fixture(scope="module")
def default_page():
    return open_page(PAGE)


def test_renders_on_defaults_with_the_library_numbers(default_page):
    at = default_page
    assert_no_exception(at)
    assert at.title[0].value == "GPTQ: error feedback across columns" and not errors(at) and not warnings(at)
    v = library()
    rows = table(at)
    assert rows["method"] == ["RTN", "GPTQ", "GPTQ act-order", "AWQ", "AWQ+GPTQ"]
    assert rows["held-out error"] == pytest.approx([round(r.holdout_error, 5) for r in v.rows], abs=1e-5)
    assert rows["calibration error"] == pytest.approx([round(r.calib_error, 5) for r in v.rows], abs=1e-5)
    m = metrics(at)
    assert float(m["Held-out error, GPTQ"]) == pytest.approx(v.rows[1].holdout_error, abs=6e-5)
    assert m["Calibration / held-out tokens"] == "384 / 128"
    figs = plotly_specs(at)
    assert [title_text(f) for f in figs][:2] == ["GPTQ's loss per column, in processing order",
                                                 "GPTQ's loss, running total over the sweep"]
    np.testing.assert_allclose(np.asarray(figs[0]["data"][0]["y"]), v.losses_order, rtol=1e-5)
    assert [d["name"] for d in figs[2]["data"]] == ["calibration tokens (seen)", "held-out tokens (unseen)"]
    assert plotly_payload_bytes(at) < 1_000_000
    assert {"Per-column loss (CSV)", "Methods (CSV)"} <= {b.proto.label for b in at.get("download_button")}


def test_the_extrapolation_is_labelled_and_follows_the_library(default_page):
    at = default_page
    assert any(md.value.startswith("**Extrapolation, not a measurement.**") for md in at.markdown)
    ext = table(at, 1)
    assert len(ext["model"]) == len(EXTRAPOLATE_MODELS) and ext["model"] == ["Mistral-7B-v0.1", "Llama-3.1-70B"]
    assert all(s.startswith("this layer (384, 1536)") for s in ext["scaled from"])
    # Timings vary run to run, but each column's 70B / 7B ratio is fixed by the real shapes alone
    basis = library().timing
    e7, e70 = (extrapolate_gptq(basis, k) for k in EXTRAPOLATE_MODELS)
    assert ext["Linears"] == [e7.linears, e70.linears] == [224, 560]
    for col, attr in (("building H (h)", "hessian_seconds"), ("quantizing (h)", "quantize_seconds")):
        want = getattr(e70, attr) / getattr(e7, attr)
        assert ext[col][1] / ext[col][0] == pytest.approx(want, rel=0.03), col
    labels = [b.proto.label for b in at.button]
    assert any(label.startswith("Measure a 4096 × 4096 layer here") for label in labels)


def test_overfitting_is_shown_and_more_damping_fixes_it():
    at = open_page(PAGE, {"t": QUERY_0})
    assert_no_exception(at)
    warned = [w for w in warnings(at) if "worse than RTN on the held-out tokens" in w]
    assert warned and "overfitting to 384 calibration tokens" in warned[0]
    rows = table(at)
    assert rows["held-out error"][1] > rows["held-out error"][0]
    assert rows["calibration error"][1] < rows["calibration error"][0]
    next(b for b in at.button if b.proto.label == "Try 10% damping").click().run()
    assert_no_exception(at)
    assert query(at)["damp"] == "0.1" and at.select_slider(key="w_damp").value == 0.1
    assert not [w for w in warnings(at) if "worse than RTN" in w]
    rows = table(at)
    assert rows["held-out error"][1] < rows["held-out error"][0]


def test_a_link_round_trips_into_the_widgets():
    link = {"t": TENSOR, "fmt": "int3", "gs": "64", "damp": "0.03", "hold": "0.4", "sym": "0"}
    at = open_page(PAGE, link)
    assert_no_exception(at)
    assert at.select_slider(key="w_damp").value == 0.03 and at.select_slider(key="w_hold").value == 0.4
    assert at.selectbox(key="w_fmt").value == "int3" and at.toggle(key="w_sym").value is False
    assert {k: query(at).get(k) for k in link} == link
    assert "int3 g64 asym, damping 3.0%" in title_text(plotly_specs(at)[2])
    assert metrics(at)["Calibration / held-out tokens"] == "307 / 205"


def test_a_format_gptq_cannot_run_is_a_message():
    at = open_page(PAGE, {"fmt": "nvfp4"})
    assert_no_exception(at)
    assert any("Cannot run GPTQ" in e and "static_groups=True" in e for e in errors(at)), errors(at)
    assert not plotly_specs(at)


def test_a_layer_without_real_inputs_is_explained():
    at = open_page(PAGE, {"src": "pkg:minilm", "t": "encoder.layer.1.output.dense.weight"})
    if query(at).get("src") != "pkg:minilm":
        pytest.skip("the MiniLM package source is not installed")
    assert_no_exception(at)
    assert any("need the real inputs X" in i.value for i in at.info)
    assert not plotly_specs(at)
