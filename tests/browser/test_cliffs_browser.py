"""The Per-task cliffs page in a real browser (Chromium via pytest-playwright) against the live server of
tests/browser/conftest.py: nothing runs on opening; the button runs a quick sweep with a progress bar; the matrix
carries the library's numbers; the tolerance slider moves the outlines and reaches the link."""
from __future__ import annotations

import dataclasses

import pytest

pytest.importorskip("pytest_playwright",
                    reason="pytest-playwright is not installed (pip install -r requirements-dev.txt)")

pytestmark = pytest.mark.browser  # skipped with a reason when /usr/bin/chromium is absent (see conftest.py)

WAIT_MS = 180_000  # a quick sweep is a few seconds alone, much longer on a shared 2-core machine

MATRIX_JS = """() => {
  for (const el of document.querySelectorAll('.js-plotly-plot')) {
    const t = el.layout && el.layout.title && el.layout.title.text;
    if (t && t.includes('Damage per task') && el._fullData && el._fullData.length)
      return {title: t, text: el._fullData[0].text, shapes: (el.layout.shapes || []).length};
  }
  return null;
}"""


def expected_sweep():
    """The same quick sweep (int8 per-channel, int4 per-tensor, 40 items per task) from the library."""
    from explorer.cliffs import CATALOG, run_sweep
    from explorer.models.minilm import load_minilm
    from explorer.tasks import model_tasks

    tasks = tuple(dataclasses.replace(t, items=t.items[::max(1, len(t.items) // 40)][:40])
                  for t in model_tasks("minilm"))
    return run_sweep("minilm", [CATALOG["int8_ch"], CATALOG["int4_t"]], base=load_minilm(), tasks=tasks)


def matrix(page, shapes: int | None = None) -> dict:
    cond = "m !== null" if shapes is None else f"m !== null && m.shapes === {shapes}"
    page.wait_for_function(f"() => {{ const m = ({MATRIX_JS})(); return {cond}; }}", timeout=WAIT_MS)
    return page.evaluate(MATRIX_JS)


def test_run_a_quick_sweep_and_move_the_tolerance(page, app_server, screenshot):
    from explorer.cliffs import find_cliffs

    page.goto(app_server.url + "/")  # Home first (see test_app_browser.py: a fresh server's first run)
    page.get_by_role("combobox", name="Weights").wait_for(timeout=WAIT_MS)
    page.goto(app_server.url + "/cliffs?cs=int8_ch,int4_t&cq=40")
    button = page.get_by_role("button", name="Run the sweep")
    button.wait_for(timeout=WAIT_MS)
    page.get_by_text("Nothing is computed until then").first.wait_for(timeout=WAIT_MS)
    assert page.locator(".js-plotly-plot").count() == 0
    button.click()
    page.locator('[data-testid="stProgress"]').first.wait_for(timeout=WAIT_MS)  # progress while it runs
    want = expected_sweep()
    got = matrix(page)
    for i, r in enumerate(want.results):
        for j, t in enumerate(want.tasks):
            c = r.change(t.key)
            assert got["text"][i][j].startswith(f"{c.base_score:.2f}→{c.score:.2f}"), (r.label, t.key)
    assert got["shapes"] == len(find_cliffs(want, 5.0))
    assert page.locator('[data-testid="stException"]').count() == 0
    screenshot(page, "cliffs_quick_sweep")

    slider = page.get_by_role("slider").first
    slider.focus()
    slider.press("Home")  # tolerance 0: every pair that lost anything is outlined
    matrix(page, shapes=len(find_cliffs(want, 0.0)))
    page.wait_for_url("**ctol=0**", timeout=WAIT_MS)
    screenshot(page, "cliffs_tolerance_0")
