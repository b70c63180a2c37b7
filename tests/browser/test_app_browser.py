"""The app in a real browser (Chromium via pytest-playwright) against a live `streamlit run app.py`.

What a visitor does: open Home; open Layer Lab and change the format; open a deep link; upload a malformed file and
a pickle file. Expected numbers come from the library itself (explorer.analysis) on the same tensor and spec, so
the tests check the page shows what the library computes, not merely that something changed. Waits are on the
plotly figure objects and metric texts (during a rerun old and new charts coexist; SVG text is not reliable).
Screenshots of each visited page go to test-artifacts/screenshots/.
"""
from __future__ import annotations

import pytest

pytest.importorskip("pytest_playwright",
                    reason="pytest-playwright is not installed (pip install -r requirements-dev.txt)")

# Skipped with a reason when /usr/bin/chromium is absent (see conftest.py).
pytestmark = pytest.mark.browser

TENSOR = "encoder.layer.0.output.dense.weight"  # the sidebar's default tensor for the default source
WAIT_MS = 60_000

METRIC_JS = """(label) => {
  for (const m of document.querySelectorAll('[data-testid="stMetric"]')) {
    const l = m.querySelector('[data-testid="stMetricLabel"]');
    if (l && l.innerText.trim() === label) return m.querySelector('[data-testid="stMetricValue"]').innerText.trim();
  }
  return null;
}"""

# The plotly figure (as plotly.js holds it) whose title contains `part`: its title and first trace's y values.
FIGURE_JS = """(part) => {
  for (const el of document.querySelectorAll('.js-plotly-plot')) {
    const t = el.layout && el.layout.title && el.layout.title.text;
    if (t && t.includes(part) && el._fullData && el._fullData.length)
      return {title: t, y: Array.from(el._fullData[0].y || [])};
  }
  return null;
}"""


def expected_metrics(fmt: str, gran: str = "group", group: int = 128) -> dict[str, str]:
    """The metric texts Layer Lab must show for this spec on the default tensor, computed by the library."""
    from explorer import make_spec, samples
    from explorer.analysis import analyze_layer
    from explorer.loader import load_tensor

    w = load_tensor(samples.weights_path("minilm"), TENSOR)
    m = analyze_layer(w, make_spec(fmt, gran, group, True, "fp16")).metrics
    return {"Relative error": f"{m.rel_error:.4f}", "SQNR": f"{m.sqnr_db:.1f} dB",
            "Bits / weight": f"{m.bits_per_weight:.3f}"}


def metric(page, label: str) -> str | None:
    return page.evaluate(METRIC_JS, label)


def wait_metrics(page, want: dict[str, str]) -> None:
    """Wait until every metric shows the wanted text (a rerun replaces them)."""
    for label, value in want.items():
        try:
            page.wait_for_function(f"([l, v]) => ({METRIC_JS})(l) === v", arg=[label, value], timeout=WAIT_MS)
        except Exception as e:
            raise AssertionError(f"metric {label!r} shows {metric(page, label)!r}, expected {value!r}") from e


def wait_figure(page, title_part: str) -> dict:
    page.wait_for_function(f"(p) => ({FIGURE_JS})(p) !== null", arg=title_part, timeout=WAIT_MS)
    return page.evaluate(FIGURE_JS, title_part)


def assert_no_exception(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0, "the page shows a Python exception"


def choose(page, combobox: str, option: str) -> None:
    """Pick `option` in the selectbox labelled `combobox`."""
    page.get_by_role("combobox", name=combobox).click()
    page.get_by_role("option", name=option, exact=True).click()


def open_layer_lab(page, url: str) -> None:
    page.goto(url)
    page.locator('[data-testid="stMetric"]').first.wait_for(timeout=WAIT_MS)
    wait_figure(page, "levels of")


def test_home_renders(page, app_server, screenshot):
    page.goto(app_server.url + "/")
    page.get_by_role("heading", name="What does quantization do").wait_for(timeout=WAIT_MS)
    page.get_by_role("combobox", name="Weights").wait_for(timeout=WAIT_MS)  # the shared sidebar is there
    assert page.get_by_text("Formats in the registry").count() == 1
    assert_no_exception(page)
    screenshot(page, "home")


def test_layer_lab_format_change_updates_chart_and_metrics(page, app_server, screenshot):
    open_layer_lab(page, app_server.url + "/layer_lab")
    wait_metrics(page, expected_metrics("int4"))
    before = wait_figure(page, "levels of int4")
    assert "15 levels" in before["title"]
    screenshot(page, "layer_lab_int4")

    choose(page, "Format", "int8 (8-bit)")
    after = wait_figure(page, "levels of int8")
    wait_metrics(page, expected_metrics("int8"))
    assert "255 levels" in after["title"]
    assert after["y"] != before["y"], "the code-space histogram did not change with the format"
    page.wait_for_url("**fmt=int8**", timeout=WAIT_MS)  # the view is in the link
    assert_no_exception(page)
    screenshot(page, "layer_lab_int8")


def test_deep_link_opens_the_exact_view(page, app_server, screenshot):
    open_layer_lab(page, app_server.url + "/layer_lab?fmt=fp8_e4m3&gran=channel")
    wait_figure(page, "levels of fp8_e4m3")
    assert page.get_by_role("combobox", name="Format").input_value() == "fp8_e4m3 (8-bit)"
    assert page.get_by_role("radio", name="per channel").is_checked()
    wait_metrics(page, expected_metrics("fp8_e4m3", "channel"))
    assert page.locator('[data-testid="stAlert"]').filter(has_text="ignored").count() == 0
    assert "fmt=fp8_e4m3" in page.url and "gran=channel" in page.url
    assert_no_exception(page)
    screenshot(page, "layer_lab_deep_link_fp8")


def test_bad_uploads_get_messages_and_the_server_keeps_serving(page, app_server, screenshot, tmp_path):
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes((16).to_bytes(8, "little") + b"{garbage header}" + b"\0" * 32)  # length ok, header not JSON
    pickle_file = tmp_path / "pytorch_model.bin"
    pickle_file.write_bytes(b"\x80\x02}q\x00.")  # a (tiny) pickle: must be refused by name, never opened

    page.goto(app_server.url + "/")  # Home: the sidebar is the same on every page, and Home draws no charts
    choose(page, "Weights", "Upload a .safetensors file")
    uploader = page.locator('[data-testid="stFileUploader"] input[type="file"]')
    uploader.wait_for(state="attached", timeout=WAIT_MS)

    uploader.set_input_files(str(bad))
    page.get_by_text("cannot be read as safetensors").first.wait_for(timeout=WAIT_MS)
    assert_no_exception(page)
    screenshot(page, "upload_malformed")

    uploader.set_input_files(str(pickle_file))
    page.get_by_text("pickle checkpoints can run arbitrary code").first.wait_for(timeout=WAIT_MS)
    assert_no_exception(page)
    screenshot(page, "upload_pickle")

    assert app_server.alive()
    other = page.context.new_page()
    open_layer_lab(other, app_server.url + "/layer_lab")
    wait_metrics(other, expected_metrics("int4"))
    assert_no_exception(other)
    screenshot(other, "second_tab_layer_lab")
    other.close()


def test_deep_link_as_the_first_visit_of_a_fresh_server(fresh_server, page, screenshot):  # page closes first
    """With a pages/ folder, a fresh server's first script run runs the page file without app.py (Streamlit's
    legacy rule); ui.navigation.ensure_entry must rerun it through app.py so the deep link still works."""
    page.goto(fresh_server.url + "/layer_lab?fmt=fp8_e4m3&gran=channel")
    page.locator('[data-testid="stMetric"], [data-testid="stException"]').first.wait_for(timeout=WAIT_MS)
    assert_no_exception(page)
    assert page.get_by_role("combobox", name="Format").input_value() == "fp8_e4m3 (8-bit)"
    page.get_by_role("combobox", name="Weights").wait_for(timeout=WAIT_MS)  # the shared sidebar ran too
    wait_metrics(page, expected_metrics("fp8_e4m3", "channel"))
    screenshot(page, "fresh_server_deep_link")
