"""AWQ page (AppTest): the library's numbers on the default layer, every chart, a link round trip (alpha, clip,
held-out fraction, format), alpha 0 = RTN, SmolLM2's massive activations, bad link values as notices, presenter
mode, and an uploaded weight without real inputs: a message and a way to the bundled layers."""
from __future__ import annotations

import pytest
import torch
from app_helpers import assert_no_exception, errors, metrics, open_page, plotly_payload_bytes, plotly_specs, query, \
    safetensors_bytes, title_text, warnings

from explorer import samples
from explorer.method_views import awq_view, compare_specs
from explorer.loader import load_tensor

PAGE = "pages/awq.py"
TENSOR = "encoder.layer.0.output.dense.weight"
KEY_5 = "encoder.layer.5.attention.self.key.weight"


def library(tensor=TENSOR, model="minilm", spec=None, **kw):
    w = load_tensor(samples.weights_path(model), tensor)
    return awq_view(w, samples.load_inputs(model, tensor), spec or compare_specs(["int4"], "group", 128, True)[0], **kw)


def shown(at, label_start: str) -> float:
    value = next(v for k, v in metrics(at).items() if k.startswith(label_start))
    return float(value.split()[0])


@pytest.fixture(scope="module")
def default_page():
    return open_page(PAGE)


def test_renders_on_defaults_with_the_library_numbers(default_page):
    at = default_page
    assert_no_exception(at)
    assert at.title[0].value == "AWQ: activation-aware scaling" and not errors(at) and not warnings(at)
    v = library()
    assert shown(at, "Searched α") == pytest.approx(v.alphas[v.best_index], abs=6e-4)
    assert shown(at, "Held-out error, RTN") == pytest.approx(v.errors["rtn_holdout"], abs=6e-5)
    assert shown(at, "Held-out error, AWQ") == pytest.approx(v.errors["awq_holdout"], abs=6e-5)
    figs = plotly_specs(at)
    titles = [title_text(f) for f in figs]
    assert titles == ["mean |x| per input channel (calibration tokens)",
                      f"AWQ scale per input channel at alpha = {v.alpha:.3f}",
                      "The alpha search: output error on the calibration tokens",
                      "Salient columns: weight error, RTN vs AWQ", "Output error, RTN vs AWQ"]
    curve = figs[2]["data"]
    assert list(curve[0]["y"]) == pytest.approx(list(v.losses)) and curve[2]["x"] == [pytest.approx(v.alpha)]
    assert plotly_payload_bytes(at) < 1_000_000
    assert {"Per-channel data (CSV)", "Loss over α (CSV)"} <= {b.proto.label for b in at.get("download_button")}
    assert any("Calibrated on the first 384 tokens, measured on the last 128" in c.value for c in at.caption)


def test_a_link_round_trips_and_alpha_zero_is_rtn():
    link = {"t": KEY_5, "fmt": "int4", "gs": "64", "aalpha": "0", "aclip": "1", "hold": "0.5"}
    at = open_page(PAGE, link)
    assert_no_exception(at)
    assert at.selectbox(key="w_aalpha").value == 0 and at.toggle(key="w_aclip").value is True
    assert at.select_slider(key="w_hold").value == 0.5 and at.select_slider(key="w_gs").value == 64
    assert {k: query(at).get(k) for k in link if k != "fmt"} == {k: v for k, v in link.items() if k != "fmt"}
    assert "alpha = 0.000" in title_text(plotly_specs(at)[1])
    v = library(KEY_5, spec=compare_specs(["int4"], "group", 64, True)[0], holdout=0.5, index=0, clip=True)
    assert shown(at, "Held-out error, RTN") == pytest.approx(v.errors["rtn_holdout"], abs=6e-5)
    assert shown(at, "Held-out error, AWQ") == pytest.approx(v.errors["awq_holdout"], abs=6e-5)  # clipped
    at.toggle(key="w_aclip").set_value(False).run()
    assert shown(at, "Held-out error, AWQ") == shown(at, "Held-out error, RTN")  # alpha 0, no clip: s = 1, RTN
    assert "aclip" not in query(at)


def test_choosing_alpha_updates_the_charts_and_the_link(default_page):
    at = default_page
    at.selectbox(key="w_aalpha").set_value(19).run()
    assert_no_exception(at)
    assert "alpha = 1.000" in title_text(plotly_specs(at)[1]) and query(at)["aalpha"] == "19"
    names = [d["name"] for d in plotly_specs(at)[2]["data"]]
    assert names[-1] == "shown: alpha 1.000"
    at.selectbox(key="w_aalpha").set_value(-1).run()
    assert "aalpha" not in query(at)


def test_smollm2_massive_activations():
    if "smollm2" not in samples.sample_models():
        pytest.skip("SmolLM2 sample not built")
    at = open_page(PAGE, {"src": "sample:smollm2", "t": "blocks.11.down.weight"})
    assert_no_exception(at)
    assert shown(at, "Held-out error, AWQ") < 0.1 * shown(at, "Held-out error, RTN")


def test_bad_link_values_are_notices_with_defaults():
    at = open_page(PAGE, {"hold": "0.33", "aalpha": "25", "aclip": "maybe"})
    assert_no_exception(at)
    notes = " ".join(warnings(at))
    assert "`hold` ignored" in notes and "`aalpha` ignored" in notes and "`aclip` ignored" in notes
    assert at.select_slider(key="w_hold").value == 0.25 and at.selectbox(key="w_aalpha").value == -1


def test_presenter_mode_stacks_large_charts():
    at = open_page(PAGE, {"present": "1"})
    assert_no_exception(at)
    assert plotly_specs(at)[0]["layout"]["font"]["size"] == 22


def test_an_upload_without_inputs_explains_and_offers_the_samples():
    at = open_page(PAGE)
    at.sidebar.selectbox(key="w_src").set_value("upload").run()
    at.sidebar.get("file_uploader")[0].upload("mine.safetensors",
                                              safetensors_bytes({"proj.weight": torch.randn(32, 256)})).run()
    assert_no_exception(at)
    assert any("need the real inputs X" in i.value for i in at.info), [i.value for i in at.info]
    assert not plotly_specs(at) and not errors(at)
    at.button(key="open_sample:minilm").click().run()
    assert_no_exception(at)
    assert query(at)["t"] == TENSOR and len(plotly_specs(at)) == 5
