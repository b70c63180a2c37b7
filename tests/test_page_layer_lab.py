"""Layer Lab (AppTest): the page shows what the library computes for the chosen spec and tensor; the format
changes the numbers; a link round-trips into the widgets and back into the URL; bad link values give the default
view with a notice; presenter mode; the SmolLM2 sample and its caveat; uploads (NaN, malformed, pickle, size cap)
become messages, never tracebacks."""
import hashlib

import numpy as np
import pytest
import torch

from app_helpers import (assert_no_exception, errors, metrics, open_page, plotly_payload_bytes, plotly_specs, query,
                         safetensors_bytes, title_text, warnings)
from explorer import make_spec, samples
from explorer.analysis import analyze_layer
from explorer.loader import load_tensor
from ui.text import md_literal

LAB = "pages/layer_lab.py"
TENSOR = "encoder.layer.0.output.dense.weight"  # the sidebar's default for the MiniLM sample
OTHER = "encoder.layer.5.attention.self.query.weight"
TABS = ["Distribution", "Error", "Channels", "Heatmaps", "Output error", "Metrics table"]


def library(spec, tensor=TENSOR, model="minilm"):
    """The analysis Layer Lab must show, computed here from the same files (weights and real inputs)."""
    w = load_tensor(samples.weights_path(model), tensor)
    return analyze_layer(w, spec, samples.load_inputs(model, tensor))


def _num(text: str) -> float:
    return float(text.split()[0].rstrip("%"))


def assert_shows(at, a) -> None:
    """The metric row shows `a`'s numbers (to the precision displayed)."""
    shown = metrics(at)
    m = a.metrics
    assert _num(shown["Relative error"]) == pytest.approx(m.rel_error, abs=0.6e-4)
    assert _num(shown["SQNR"]) == pytest.approx(m.sqnr_db, abs=0.06)
    assert _num(shown["Bits / weight"]) == pytest.approx(m.bits_per_weight, abs=0.6e-3)
    assert _num(shown["Output error"]) == pytest.approx(a.output_error, abs=0.6e-4)


@pytest.fixture(scope="module")
def lab():
    return open_page(LAB)


def _spec_titles(at) -> list[str]:
    return [title_text(f) for f in plotly_specs(at)]


# ---- defaults ----

def test_renders_on_defaults_with_the_library_numbers(lab):
    assert_no_exception(lab)
    assert lab.title[0].value == "Layer Lab" and not warnings(lab) and not errors(lab)
    assert [t.label for t in lab.tabs] == TABS
    assert md_literal(TENSOR) in lab.caption[0].value and "int4 g128" in lab.caption[0].value  # name escaped
    assert_shows(lab, library(make_spec("int4", "group", 128)))


def test_default_charts_carry_the_binned_weights_and_the_levels(lab):
    figs = plotly_specs(lab)
    assert len(figs) == 8
    titles = [title_text(f) for f in figs]
    assert "over the 15 levels of int4" in titles[1]
    bars, rug = figs[1]["data"]
    assert int(np.sum(bars["y"])) == 384 * 1536  # every weight counted once, binned on the server
    assert len(bars["y"]) == 512
    np.testing.assert_array_equal(rug["x"], np.arange(-7, 8))
    assert int(np.sum(figs[0]["data"][0]["y"])) == 384 * 1536


def test_csv_downloads_are_offered(lab):
    labels = [b.proto.label for b in lab.get("download_button")]
    assert labels == ["Per-channel error (CSV)", "Metrics (CSV)"]


# ---- the format changes the view ----

def test_changing_the_format_changes_metrics_charts_and_link():
    at = open_page(LAB)
    before = metrics(at)
    at.selectbox(key="w_fmt").set_value("int8").run()
    assert_no_exception(at)
    assert metrics(at)["Relative error"] != before["Relative error"]
    assert_shows(at, library(make_spec("int8", "group", 128)))
    assert "over the 255 levels of int8" in _spec_titles(at)[1]
    assert query(at)["fmt"] == "int8"


def test_a_block_format_fixes_the_granularity():
    at = open_page(LAB, {"fmt": "mxfp4"})
    assert_no_exception(at)
    assert [r.options for r in at.radio if r.label == "Granularity"] == [["block of 32"]]
    assert "mxfp4 (block 32)" in at.caption[0].value
    assert metrics(at)["Bits / weight"] == "4.250"  # 4 bits + one 8-bit E8M0 scale per 32
    assert_shows(at, library(make_spec("mxfp4")))


# ---- links ----

LINK = {"fmt": "int3", "gran": "channel", "gs": "64", "sym": "0", "t": OTHER, "present": "1"}


def test_a_link_round_trips_into_the_widgets_and_back_into_the_url():
    at = open_page(LAB, LINK)
    assert_no_exception(at)
    assert not warnings(at)
    assert at.selectbox(key="w_fmt").value == "int3"
    assert at.radio(key="w_gran").value == "channel"
    assert at.select_slider(key="w_gs").value == 64
    assert at.toggle(key="w_sym").value is False
    assert at.sidebar.selectbox(key="w_t").value == OTHER
    assert at.sidebar.selectbox(key="w_block").value == "encoder.layer.5"
    assert at.sidebar.toggle(key="w_present").value is True
    assert query(at) == LINK
    assert "int3 per-channel asym" in at.caption[0].value  # the link reached the spec, not only the widgets
    assert_shows(at, library(make_spec("int3", "channel", 64, symmetric=False), OTHER))
    at.run()  # an unchanged rerun keeps the link as it is
    assert query(at) == LINK


def test_a_widget_change_rewrites_the_link():
    at = open_page(LAB, LINK)
    at.radio(key="w_gran").set_value("group").run()
    assert_no_exception(at)
    assert query(at) == {k: v for k, v in LINK.items() if k != "gran"}  # the default is left out
    assert "int3 g64 asym" in at.caption[0].value


INVALID = {"fmt": {"fmt": "int9"}, "gs=0": {"gs": "0"}, "gs=huge": {"gs": "99999999"},
           "tensor": {"t": "encoder.layer.0.no_such.weight"}, "dev": {"dev": "tpu"}}


@pytest.mark.parametrize("link", INVALID.values(), ids=INVALID.keys())
def test_an_invalid_link_value_is_a_notice_never_an_exception(link):
    at = open_page(LAB, link)
    assert_no_exception(at)
    (key, raw), = link.items()
    notices = warnings(at)
    assert len(notices) == 1 and raw in notices[0], notices
    assert metrics(at), "the page drew no view"


@pytest.mark.parametrize("link", [
    {"fmt": "int9"}, {"gs": "0"}, {"gs": "99999999"}, {"dev": "tpu"},
    {"t": "encoder.layer.0.no_such.weight"},
], ids=["fmt", "gs=0", "gs=huge", "dev", "tensor"])
def test_an_invalid_link_value_gives_the_default_view(lab, link):
    at = open_page(LAB, link)
    assert at.selectbox(key="w_fmt").value == "int4"
    assert at.select_slider(key="w_gs").value == 128
    assert at.sidebar.radio(key="w_dev").value == "auto"
    assert at.sidebar.selectbox(key="w_t").value == TENSOR
    assert metrics(at) == metrics(lab)
    assert query(at) == query(lab)  # the bad value left the link


def test_switching_the_source_opens_its_default_tensor_without_a_notice():
    at = open_page(LAB)
    for src, default in (("sample:smollm2", "blocks.11.down.weight"), ("pkg:minilm", TENSOR)):
        at.sidebar.selectbox(key="w_src").set_value(src).run()
        assert_no_exception(at)
        assert not warnings(at), warnings(at)
        assert at.sidebar.selectbox(key="w_t").value == default


def test_a_group_wider_than_the_layer_is_an_error_message():
    at = open_page(LAB, {"gs": "4096"})  # a valid link value, but this layer's rows are 1536 wide
    assert_no_exception(at)
    assert any("Cannot quantize this tensor" in e and "larger than the row (1536 inputs)" in e for e in errors(at))
    assert at.select_slider(key="w_gs").value == 4096  # offered, so the widget shows what the link asked


# ---- presenter mode, SmolLM2 ----

def test_presenter_mode_renders_large():
    at = open_page(LAB, {"present": "1"})
    assert_no_exception(at)
    assert any("font-size: 22px" in m.value for m in at.markdown)
    figs = plotly_specs(at)
    assert len(figs) == 8
    assert all(f["layout"]["font"]["size"] == 22 and f["layout"]["height"] == 620 for f in figs)
    assert len(metrics(at)) >= 8


def test_smollm2_sample_shows_its_caveat():
    at = open_page(LAB, {"src": "sample:smollm2"})
    assert_no_exception(at)
    assert at.sidebar.selectbox(key="w_src").value == "sample:smollm2"
    assert any("already Q4_1" in c.value for c in at.sidebar.caption)
    assert at.sidebar.selectbox(key="w_t").value == "blocks.11.down.weight"
    assert_shows(at, library(make_spec("int4", "group", 128), "blocks.11.down.weight", "smollm2"))


def test_smollm2_caveat_promise_holds_in_the_app():
    at = open_page(LAB, {"src": "sample:smollm2", "fmt": "int4", "gs": "32", "sym": "0"})
    assert_no_exception(at)
    caveat = " ".join(c.value for c in at.sidebar.caption)
    assert "already Q4_1" in caveat and "not on it" in caveat  # it says the app's INT4 g32 asym is not Q4_1
    assert _num(metrics(at)["Relative error"]) > 3e-4  # ...and the app indeed does not reproduce the grid


# ---- uploads ----

def _upload(name: str, data: bytes):
    at = open_page(LAB)
    at.sidebar.selectbox(key="w_src").set_value("upload").run()
    at.sidebar.get("file_uploader")[0].upload(name, data).run()
    assert_no_exception(at)
    return at


def test_a_weight_with_nan_is_reported_with_a_message():
    w = torch.randn(64, 128)
    w[3, 5] = float("nan")
    at = _upload("nan.safetensors", safetensors_bytes({"layer.0.weight": w, "layer.0.bias": torch.zeros(64)}))
    assert at.sidebar.selectbox(key="w_t").value == "layer.0.weight"
    assert any("Cannot quantize this tensor" in e and "NaN" in e for e in errors(at)), errors(at)
    assert not metrics(at)


def test_an_uploaded_good_file_is_analysed():
    w = torch.randn(32, 256, dtype=torch.float16)
    at = _upload("mine.safetensors", safetensors_bytes({"proj.weight": w}))
    assert not errors(at)
    assert query(at)["t"] == "proj.weight"
    spec = make_spec("int4", "group", 128)
    assert _num(metrics(at)["Relative error"]) == pytest.approx(analyze_layer(w, spec).metrics.rel_error, abs=0.6e-4)


@pytest.mark.parametrize("name, data, message", [
    ("broken.safetensors", (16).to_bytes(8, "little") + b"{garbage header}", "cannot be read as safetensors"),
    ("huge_header.safetensors", b"\xff" * 8 + b"{}", "cannot be read as safetensors"),
    ("pytorch_model.bin", b"\x80\x02}q\x00.", "pickle checkpoints can run arbitrary code"),
    ("model.gguf", b"GGUF", "only .safetensors files are accepted"),
])
def test_a_bad_upload_is_a_message(name, data, message):
    at = _upload(name, data)
    assert any(message in e for e in errors(at)), errors(at)
    assert any(message in i.value for i in at.info)  # the page says why it shows nothing
    assert not metrics(at)


def test_a_malformed_upload_message_names_the_file():
    at = _upload("broken.safetensors", (16).to_bytes(8, "little") + b"{garbage header}")
    (message,) = {e for e in errors(at) if "cannot be read" in e}
    assert "broken.safetensors" in message and "upload:" not in message


def test_an_upload_without_a_2d_float_weight_says_so():
    at = _upload("norms.safetensors", safetensors_bytes({"norm.weight": torch.ones(8), "ids": torch.arange(4)}))
    assert any("No 2-D floating-point weight" in w for w in warnings(at))
    assert not metrics(at)


def test_upload_source_checks_extension_and_size(monkeypatch):
    from ui import sources
    monkeypatch.setattr(sources, "MAX_UPLOAD_MB", 1)
    ok = b"x" * (1 << 20)
    src = sources.upload_source("My.SafeTensors", ok)
    assert src.key == "upload:" + hashlib.sha256(ok).hexdigest() and src.label == "upload: My.SafeTensors"
    with pytest.raises(ValueError, match=r"big\.safetensors is 1 MB; the limit on this server is 1 MB"):
        sources.upload_source("big.safetensors", ok + b"x")
    for name in ("w.bin", "w.pt", "w.pth", "w.ckpt", "w.pkl", "w.pickle", "W.BIN"):
        with pytest.raises(ValueError, match="pickle checkpoints can run arbitrary code"):
            sources.upload_source(name, b"")
    for name in ("w.gguf", "w.npz", "w.safetensors.txt", "safetensors"):
        with pytest.raises(ValueError, match="only .safetensors files are accepted"):
            sources.upload_source(name, b"")


# ---- caching: the weight's statistics once per tensor, keys are names and specs ----

def test_cached_functions_are_keyed_by_names_and_specs_never_tensors():
    import ast
    from pathlib import Path
    tree = ast.parse((Path(__file__).parent.parent / LAB).read_text())
    cached = [f for f in tree.body if isinstance(f, ast.FunctionDef)
              and any("cache_" in ast.unparse(d) for d in f.decorator_list)]
    assert {f.name for f in cached} == {"stats", "analysis"}
    for f in cached:  # Streamlit hashes every argument not starting with "_"
        hashed = [a.arg for a in f.args.args if not a.arg.startswith("_")]
        assert set(hashed) <= {"source_key", "tensor", "device", "spec"}, (f.name, hashed)


def test_weight_stats_once_per_tensor_and_a_large_layer_says_its_histograms_sample_rows(monkeypatch):
    import explorer.analysis as A
    calls = []
    real = A.weight_stats
    monkeypatch.setattr(A, "weight_stats", lambda w, *a, **k: calls.append(tuple(w.shape)) or real(w, *a, **k))
    monkeypatch.setattr(A, "HIST_WEIGHTS", 4096)  # this 64 x 256 upload counts as a large layer: 1 row in 4
    w = torch.randn(64, 256, generator=torch.Generator().manual_seed(8117))  # a file no other test uploads
    at = _upload("stats-once.safetensors", safetensors_bytes({"proj.weight": w}))
    for fmt in ("int8", "nf4", "mxfp4"):
        at.selectbox(key="w_fmt").set_value(fmt).run()
        assert_no_exception(at)
    assert calls.count((64, 256)) == 1  # the first view of the upload; none per format
    titles = _spec_titles(at)
    assert "1 in 4 rows" not in titles[0]  # W itself: every weight
    assert all("histogram of 1 in 4 rows (4,096 weights)" in t for t in titles[1:4]), titles[:4]
    assert any("count 1 row in 4 (4,096 weights)" in c.value for c in at.caption)
    spec = make_spec("mxfp4")
    assert _num(metrics(at)["Relative error"]) == pytest.approx(analyze_layer(w, spec).metrics.rel_error, abs=0.6e-4)


# ---- payload ----

def test_the_page_chart_payload_stays_under_1mb(lab):
    assert plotly_payload_bytes(lab) < 1_000_000
