"""Memory & bandwidth page under AppTest: renders on defaults, shows the library's numbers, reacts to the model and
format, round-trips its link, and runs "Measure here" on a small sample layer (budget kept small by env var)."""
from __future__ import annotations

import pytest
from app_helpers import assert_no_exception, errors, new_app, open_page, plotly_payload_bytes, plotly_specs, query, \
    title_text, warnings

from explorer import make_spec
from explorer.bounds import deployment
from explorer.hardware import get_hardware
from explorer.memory import KV_FORMATS, StoreDType, WeightScheme, footprint, model_footprint
from explorer.model_configs import get_model_config, tensors_from_listing
from explorer.units import GiB

PAGE = "pages/memory.py"


def gib(fp) -> str:
    return f"{fp.weight_bytes / GiB:.2f} GiB"


def weight_metrics(at) -> list[tuple[str, str]]:
    """(label, value) of the first metric row: the weight memory per format."""
    return [(m.label, m.value) for m in at.metric if m.value.endswith("GiB")]


def bound_metrics(at) -> list[tuple[str, str]]:
    return [(m.label, m.value) for m in at.metric if m.value.endswith("tok/s")]


@pytest.fixture(scope="module")
def default_page():
    return open_page(PAGE)


def test_renders_on_defaults_with_the_library_numbers(default_page):
    at = default_page
    assert_no_exception(at)
    assert not errors(at)
    assert at.title[0].value == "Memory & bandwidth"
    llama = get_model_config("llama31_8b")
    bf16 = model_footprint(llama, WeightScheme(None, StoreDType.BF16))
    int4 = model_footprint(llama, WeightScheme(make_spec("int4", symmetric=False)))
    got = dict(weight_metrics(at))
    assert got["bf16 (baseline)"] == gib(bf16) == "14.96 GiB"
    assert got["int4 g128 asym"] == gib(int4)
    # the decode bound on the first GPU (H100 SXM), context 8192, batch 1, fp16 KV
    d = deployment(get_hardware("h100_sxm"), bf16, llama, 8192, 1, KV_FORMATS["fp16"])
    assert dict(bound_metrics(at))["bf16 (baseline)"] == f"≤ {d.decode.tokens_per_s:,.0f} tok/s"
    figs = plotly_specs(at)
    titles = [title_text(f) for f in figs]
    assert any("memory per format" in t for t in titles)
    assert any("decode upper bound" in t for t in titles)
    roof = next(f for f in figs if "decode step" in title_text(f))
    assert roof["layout"]["xaxis"]["type"] == "log" and roof["layout"]["yaxis"]["type"] == "log"
    assert plotly_payload_bytes(at) < 1_000_000
    assert any("A bound is not a promise" in w and "2.47" in w and "19264" in w for w in warnings(at))
    labels = [b.proto.label for b in at.get("download_button")]
    assert {"Memory table (CSV)", "Speed bounds (CSV)", "Whole hardware table (CSV)"} <= set(labels)
    assert query(at).get("mmodel") is None  # defaults stay out of the link


def test_changing_the_model_and_formats_changes_the_numbers(default_page):
    at = default_page
    before = weight_metrics(at)
    at.selectbox(key="w_mmodel").set_value("llama31_70b").run()
    assert_no_exception(at)
    big = get_model_config("llama31_70b")
    after = dict(weight_metrics(at))
    assert after["bf16 (baseline)"] == gib(model_footprint(big, WeightScheme(None, StoreDType.BF16)))
    assert weight_metrics(at) != before
    assert query(at)["mmodel"] == "llama31_70b"
    at.multiselect(key="w_mfmt").set_value(["bf16", "nvfp4", "int8"]).run()
    assert_no_exception(at)
    assert [label for label, _ in weight_metrics(at)] == ["bf16 (baseline)", "nvfp4 (block 16)", "int8 per-channel"]
    assert dict(weight_metrics(at))["nvfp4 (block 16)"] == gib(model_footprint(big, WeightScheme(make_spec("nvfp4"))))
    assert query(at)["mfmt"] == "bf16,nvfp4,int8"
    tokens = next(f for f in plotly_specs(at) if "decode upper bound" in title_text(f))
    assert [t["name"] for t in tokens["data"]] == ["bf16 (baseline)", "nvfp4 (block 16)", "int8 per-channel"]


def test_a_link_round_trips():
    link = {"mmodel": "qwen25_7b", "mfmt": "bf16,int4", "masym": "0", "mctx": "32768", "mbatch": "8", "mkv": "int8",
            "mgpu": "l4,h200", "mroof": "h200"}
    at = open_page(PAGE, link)
    assert_no_exception(at)
    assert not [w for w in warnings(at) if "ignored" in w]
    assert at.selectbox(key="w_mmodel").value == "qwen25_7b"
    assert at.multiselect(key="w_mfmt").value == ["bf16", "int4"]
    assert at.multiselect(key="w_mgpu").value == ["l4", "h200"]
    assert at.select_slider(key="w_mctx").value == 32768 and at.select_slider(key="w_mbatch").value == 8
    assert at.selectbox(key="w_mkv").value == "int8" and at.toggle(key="w_masym").value is False
    assert at.selectbox(key="w_mroof").value == "h200"
    got = query(at)
    assert {k: got[k] for k in link} == link
    qwen = get_model_config("qwen25_7b")
    sym = model_footprint(qwen, WeightScheme(make_spec("int4")))                      # 4.125 bits: no zero points
    assert dict(weight_metrics(at))["int4 g128"] == gib(sym)
    # the first GPU of the link (L4) carries the bound, with the int8 KV cache of 8 x 32768 tokens
    d = deployment(get_hardware("l4"), sym, qwen, 32768, 8, KV_FORMATS["int8"])
    assert dict(bound_metrics(at))["int4 g128"] == f"≤ {d.decode.tokens_per_s:,.0f} tok/s"


def test_bad_link_values_fall_back_with_a_notice():
    at = open_page(PAGE, {"mmodel": "gpt5", "mfmt": "int4,bogus", "mbatch": "0"})
    assert_no_exception(at)
    notes = " ".join(warnings(at))
    assert "mmodel" in notes and "mfmt" in notes and "mbatch" in notes
    assert at.selectbox(key="w_mmodel").value == "llama31_8b"


def test_the_loaded_file_is_sized_from_its_own_tensor_listing():
    at = open_page(PAGE, {"mmodel": "loaded", "mfmt": "bf16,int8"})
    assert_no_exception(at)
    from explorer import samples
    from explorer.loader import list_tensors
    infos = list_tensors(samples.weights_path("minilm"))
    tensors = tensors_from_listing([(i.name, i.shape, i.dtype) for i in infos])
    got = dict(weight_metrics(at))
    assert got["bf16 (baseline)"] == gib(footprint(tensors, WeightScheme(None, StoreDType.BF16)))
    assert got["int8 per-channel"] == gib(footprint(tensors, WeightScheme(make_spec("int8"))))
    assert any("No KV cache counted" in c.value for c in at.caption)


def test_presenter_mode_renders_larger_charts():
    at = open_page(PAGE, {"present": "1"})
    assert_no_exception(at)
    heights = [f["layout"]["height"] for f in plotly_specs(at)]
    assert min(heights) >= 600


def test_measure_here_times_the_sample_layer(monkeypatch):
    monkeypatch.setenv("EXPLORER_MEASURE_BUDGET_S", "0.4")
    at = new_app()
    at.run()
    at = open_page(PAGE, {"mfmt": "bf16"}, at=at)
    assert not [d for d in at.dataframe if "median ms" in d.value.columns]        # nothing measured yet
    at.button(key="mem_measure").click().run()
    assert_no_exception(at)
    table = next(d.value for d in at.dataframe if "median ms" in d.value.columns)
    assert set(table["batch"]) == {1, 64}
    for variant in ("fp32", "bf16", "4-bit dequantize + bf16 matmul"):
        assert (table[table["variant"] == variant]["median ms"] > 0).all()
    assert (table["× smaller than fp32"] >= 1).all()
    assert any(m.value.startswith("Measured on ") and "torch thread" in m.value for m in at.markdown)
    assert any("fused kernel" in i.value for i in at.info)
    # a rerun (another batch) shows the cached result: the same numbers, no error replaying the progress bar
    at.select_slider(key="w_mbatch").set_value(4).run()
    assert_no_exception(at)
    again = next(d.value for d in at.dataframe if "median ms" in d.value.columns)
    assert list(again["median ms"]) == list(table["median ms"])


def test_the_layer_lab_choice_is_a_format_and_travels_in_the_link():
    link = {"mfmt": "bf16,lab", "fmt": "int3", "gran": "channel", "sd": "bf16"}
    at = open_page(PAGE, link)
    assert_no_exception(at)
    llama = get_model_config("llama31_8b")
    spec = make_spec("int3", "channel", scale_dtype="bf16")
    assert dict(weight_metrics(at))["Layer Lab: int3 per-channel"] == gib(model_footprint(llama, WeightScheme(spec)))
    got = query(at)
    assert {k: got[k] for k in link} == link


def test_this_machine_gets_a_measured_bandwidth_and_no_file_gets_a_message():
    at = open_page(PAGE, {"mgpu": "this_machine,m2_ultra", "mfmt": "bf16"})
    assert_no_exception(at)
    hardware = " ".join(m.value for m in at.markdown if m.value.startswith("| device"))
    assert "measured here: torch copy" in hardware and "Apple newsroom" in hardware
    assert any("None of the selected GPUs has a published BF16 peak" in i.value for i in at.info)  # no roofline
    assert bound_metrics(at)[0][1].startswith("≤ ")
    at = open_page(PAGE, {"mmodel": "loaded", "src": "upload"})
    assert_no_exception(at)
    assert not weight_metrics(at)
    assert any("Upload a `.safetensors` file" in i.value for i in at.info)


def test_list_params_parse_and_reject():
    from ui.params_memory import FORMATS, GPUS
    assert FORMATS.from_query("int4, nf4,int4") == ["int4", "nf4"]
    assert GPUS.from_query("") == []                               # everything deselected: the page falls back
    with pytest.raises(ValueError, match=r"\['h900'\] not in"):
        GPUS.from_query("h100_sxm,h900")
