"""Compare methods page (AppTest): methods x formats in one table and one chart with the library's numbers, the
format list and the shared granularity in the link, SmoothQuant's alpha and its honest "smoothing made it worse"
note, cells a method cannot run, bad link values, and a tensor without real inputs."""
from __future__ import annotations

import numpy as np
import pytest
from app_helpers import assert_no_exception, errors, open_page, plotly_specs, query, title_text, warnings

from explorer import samples
from explorer.loader import load_tensor
from explorer.method_views import COMPARE_FORMATS, compare_methods, compare_specs
from ui.params_methods import FORMATS

PAGE = "pages/methods.py"
TENSOR = "encoder.layer.0.output.dense.weight"
QUICK = {"cmpf": "int4,int8"}  # two formats keep the page test quick
METHODS = ["RTN", "AWQ", "GPTQ", "AWQ+GPTQ", "SmoothQuant W·A8"]


def library(formats=("int4", "int8"), tensor=TENSOR, gran="group", group=128, sym=True, **kw):
    w = load_tensor(samples.weights_path("minilm"), tensor)
    return compare_methods(w, samples.load_inputs("minilm", tensor), compare_specs(formats, gran, group, sym), **kw)


def table(at) -> dict:
    return at.dataframe[0].value.to_dict("list")


@pytest.fixture(scope="module")
def quick_page():
    return open_page(PAGE, QUICK)


def test_one_table_and_one_chart_with_the_library_numbers(quick_page):
    at = quick_page
    assert_no_exception(at)
    assert at.title[0].value == "Compare methods" and not errors(at) and not warnings(at)
    want = library()
    t = table(at)
    assert list(zip(t["format"], t["method"])) == [(r.spec, r.method) for r in want]
    np.testing.assert_allclose(t["held-out error"], [r.holdout_error for r in want], rtol=1e-9)
    assert t["× RTN"][:5][0] == 1.0 and t["bits / weight"][0] == 4.125
    (fig,) = plotly_specs(at)
    assert title_text(fig) == "Output error on held-out tokens, per method and format"
    assert [d["name"] for d in fig["data"]] == METHODS and list(fig["data"][0]["x"]) == ["int4 g128", "int8 g128"]
    np.testing.assert_allclose(np.asarray(fig["data"][2]["y"]), [want[2].holdout_error, want[7].holdout_error],
                               rtol=1e-6)
    assert query(at)["cmpf"] == "int4,int8"
    assert any(md.value.startswith("Lowest held-out error among the weight-only methods") for md in at.markdown)
    assert "Methods × formats (CSV)" in {b.proto.label for b in at.get("download_button")}


def test_smoothing_that_hurts_is_said_and_alpha_moves_it(quick_page):
    at = quick_page  # MiniLM's FFN output: weight outliers of its own; at alpha 0.5 smoothing hurts W·A8
    assert any("smoothing at α = 0.5 makes W·A8 *worse*" in i.value for i in at.info)
    at.select_slider(key="w_sqa").set_value(0.7).run()
    assert_no_exception(at)
    assert query(at)["sqa"] == "0.7" and not [i for i in at.info if "makes W·A8" in i.value]
    t = table(at)
    sq = [i for i, m in enumerate(t["method"]) if m == "SmoothQuant W·A8"]
    assert all(t["held-out error"][i] < t["W·A8 without smoothing"][i] for i in sq)


def test_default_formats_and_a_link_with_shared_granularity():
    at = open_page(PAGE, {"cmpf": "int3,mxfp4", "gran": "channel", "sym": "0", "hold": "0.5", "damp": "0.1"})
    assert_no_exception(at)
    t = table(at)
    assert sorted(set(t["format"])) == ["int3 per-channel asym", "mxfp4 (block 32)"]
    want = library(("int3", "mxfp4"), gran="channel", sym=False, holdout=0.5, damp=0.1)
    np.testing.assert_allclose(t["held-out error"], [r.holdout_error for r in want], rtol=1e-9)
    assert at.multiselect(key="w_cmpf").value == ["int3", "mxfp4"]
    assert list(COMPARE_FORMATS) == ["int3", "int4", "int8", "fp8_e4m3", "nf4"]


def test_a_cell_a_method_cannot_run_is_listed_not_raised():
    at = open_page(PAGE, {"cmpf": "nvfp4"})
    assert_no_exception(at)
    t = table(at)
    gptq = t["method"].index("GPTQ")
    assert "static_groups=True" in t["not run"][gptq] and np.isnan(t["held-out error"][gptq])
    assert any(c.value.startswith("Not run: GPTQ · nvfp4") for c in at.caption)


def test_settings_no_method_can_run_are_one_message():
    at = open_page(PAGE, {"t": "encoder.layer.0.attention.self.key.weight", "cmpf": "int4", "gs": "1024"})
    assert_no_exception(at)
    assert any("Cannot compare methods" in e and "group_size=1024 is larger than the row" in e for e in errors(at))
    assert not plotly_specs(at)


def test_bad_link_values_are_notices():
    at = open_page(PAGE, {"cmpf": "int8", "sqa": "2", "damp": "0.5"})
    assert_no_exception(at)
    notes = " ".join(warnings(at))
    assert "`sqa` ignored" in notes and "`damp` ignored" in notes
    assert at.select_slider(key="w_sqa").value == 0.5 and at.select_slider(key="w_damp").value == 0.01


@pytest.mark.parametrize("raw,match", [("int4,int9", r"'int4,int9' names unknown formats \['int9'\]; allowed: \['int2'"),
                                       ("", r"'' names unknown formats \[\]"), (",,", "names unknown formats")])
def test_the_format_list_parser_names_the_bad_value(raw, match):
    with pytest.raises(ValueError, match=match):
        FORMATS.from_query(raw)
    assert FORMATS.from_query("nf4, int4,nf4") == ["nf4", "int4"]


def test_a_tensor_without_real_inputs_is_explained():
    at = open_page(PAGE, {"src": "pkg:minilm", "t": "encoder.layer.2.intermediate.dense.weight"})
    if query(at).get("src") != "pkg:minilm":
        pytest.skip("the MiniLM package source is not installed")
    assert_no_exception(at)
    assert any("need the real inputs X" in i.value for i in at.info) and not at.dataframe
