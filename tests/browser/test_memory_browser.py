"""The Memory & bandwidth page in a real browser (Chromium via pytest-playwright) against the live server of
tests/browser/conftest.py: the memory chart draws, a tokens/s bound shows the library's number, the speed chart
carries the same numbers, and a model change reaches the link. Expected values come from explorer itself."""
from __future__ import annotations

import pytest

pytest.importorskip("pytest_playwright",
                    reason="pytest-playwright is not installed (pip install -r requirements-dev.txt)")

pytestmark = pytest.mark.browser  # skipped with a reason when /usr/bin/chromium is absent (see conftest.py)

WAIT_MS = 60_000

FIGURE_JS = """(part) => {
  for (const el of document.querySelectorAll('.js-plotly-plot')) {
    const t = el.layout && el.layout.title && el.layout.title.text;
    if (t && t.includes(part) && el._fullData && el._fullData.length)
      return {title: t, names: el._fullData.map(d => d.name), y: Array.from(el._fullData[0].y || [])};
  }
  return null;
}"""


def expected_bound(model: str = "llama31_8b") -> str:
    """The page's first tokens/s metric (bf16 on H100 SXM, context 8192, batch 1, fp16 KV), from the library."""
    from explorer.bounds import deployment
    from explorer.hardware import get_hardware
    from explorer.memory import KV_FORMATS, StoreDType, WeightScheme, model_footprint
    from explorer.model_configs import get_model_config

    cfg = get_model_config(model)
    d = deployment(get_hardware("h100_sxm"), model_footprint(cfg, WeightScheme(None, StoreDType.BF16)), cfg, 8192,
                   1, KV_FORMATS["fp16"])
    return f"≤ {d.decode.tokens_per_s:,.0f} tok/s"


def wait_figure(page, title_part: str) -> dict:
    page.wait_for_function(f"(p) => ({FIGURE_JS})(p) !== null", arg=title_part, timeout=WAIT_MS)
    return page.evaluate(FIGURE_JS, title_part)


def open_memory(page, url: str) -> None:
    # Home first: a fresh server's very first script run takes Streamlit's legacy pages/ path (see
    # test_app_browser.py's xfail); a visitor normally arrives from Home.
    page.goto(url + "/")
    page.get_by_role("combobox", name="Weights").wait_for(timeout=WAIT_MS)
    page.goto(url + "/memory")
    wait_figure(page, "memory per format")


def test_memory_page_shows_the_chart_and_a_tokens_per_second_bound(page, app_server, screenshot):
    open_memory(page, app_server.url)
    fig = wait_figure(page, "Llama-3.1-8B: memory per format")
    assert fig["names"][:3] == ["weights", "KV cache", "overhead"]
    want = expected_bound()
    page.get_by_text(want, exact=True).first.wait_for(timeout=WAIT_MS)             # the headline tok/s bound
    assert page.locator('[data-testid="stException"]').count() == 0
    screenshot(page, "memory_default")

    page.get_by_role("tab", name="Decode speed bound").click()
    speed = wait_figure(page, "decode upper bound")
    assert speed["names"][0] == "bf16 (baseline)"
    assert f"≤ {speed['y'][0]:,.0f} tok/s" == want                  # the bar carries the same bound
    screenshot(page, "memory_speed")


def test_model_change_updates_the_numbers_and_the_link(page, app_server, screenshot):
    open_memory(page, app_server.url)
    page.get_by_role("combobox", name="Model").click()
    page.get_by_role("option", name="Llama-3.1-70B (70.6B)").click()
    wait_figure(page, "Llama-3.1-70B: memory per format")
    page.get_by_text(expected_bound("llama31_70b"), exact=True).first.wait_for(timeout=WAIT_MS)
    page.wait_for_url("**mmodel=llama31_70b**", timeout=WAIT_MS)
    assert page.locator('[data-testid="stException"]').count() == 0
    screenshot(page, "memory_70b")
