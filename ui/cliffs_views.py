"""Sections of the Per-task cliffs page below the matrix (kept out of pages/cliffs.py so the page stays short):
one scheme x task in detail (flips with examples, margins), the whole-model metric, per-layer sensitivity with
the mixed-precision plan, and the task descriptions."""
from __future__ import annotations

import streamlit as st

from explorer.cliffs import CATALOG, Sweep, evaluate_scheme, flip_examples
from explorer.models import registry
from explorer.plots import cliffs as figs
from explorer.sensitivity import layer_sensitivity, mixed_precision_plan
from explorer.tasks import Kind, Metric, Task
from ui import common, state
from ui import params_cliffs as C

QUICK_PROBE = 48  # probe sentences (or tokens) per layer in a quick look (the default probes: 96, 128)


def _pick(param, options: list, preferred) -> None:
    """Keep the param's value when it is one of `options`, else use `preferred` (silently for an empty value)."""
    value = state.get(param)
    if value in options:
        return
    if value not in ("", param.default):
        state.notices().append(f"{state.shown(value, 40)} is not in this sweep; showing {state.shown(preferred)} "
                               "instead.")
    state.put(param, preferred)


def _cols(pres: bool, n: int = 2):
    return [st.container() for _ in range(n)] if pres else st.columns(n)


def _unit(task: Task) -> str:
    return {Kind.EMBED_CHOICE: "cosine", Kind.LM_CHOICE: "log-likelihood", Kind.LM_TEXT: "log-probability"}[task.kind]


def detail_section(sweep: Sweep, scheme_keys: list[str], pres: bool) -> None:
    """scheme_keys: the catalog keys of sweep.results, in order."""
    st.subheader("One scheme, one task: which decisions flipped")
    dmg = sweep.damage_matrix()
    _pick(C.FOCUS_SCHEME, scheme_keys, scheme_keys[int(dmg.max(axis=1).argmax())])
    c1, c2 = st.columns(2)
    with c1:
        skey = st.selectbox("Scheme", scheme_keys, key=state.bind(C.FOCUS_SCHEME),
                            format_func=lambda k: CATALOG[k].label)
        state.commit(C.FOCUS_SCHEME)
    r = sweep.result(CATALOG[skey].label)
    label = r.label
    keys = [t.key for t in sweep.tasks]
    row = dmg[scheme_keys.index(skey)]
    _pick(C.FOCUS_TASK, keys, keys[int(row.argmax())])
    with c2:
        tkey = st.selectbox("Task", keys, key=state.bind(C.FOCUS_TASK), format_func=lambda k: sweep.task(k).title)
        state.commit(C.FOCUS_TASK)
    task, c = sweep.task(tkey), r.change(tkey)
    fmt = (lambda v: f"{v:.3f}") if c.metric is Metric.ACCURACY else (lambda v: f"{v:.2f}")
    unit = "pts" if c.metric is Metric.ACCURACY else "%"
    m = st.columns(4)
    m[0].metric(f"Unquantized {c.metric.value}", fmt(c.base_score))
    m[1].metric(f"{label}", fmt(c.score), f"{c.change:+.1f} {unit}",
                delta_color="normal" if c.metric is Metric.ACCURACY else "inverse")
    m[2].metric("Decisions flipped", f"{len(c.flipped)} / {c.n}", help="choice differs from the unquantized model's")
    m[3].metric("Right → wrong / wrong → right", f"{c.broke} / {c.fixed}")
    ex = flip_examples(task, sweep.base, r, limit=10)
    if ex:
        st.dataframe([{"item": e.index, "prompt": e.prompt, "right answer": e.right, "unquantized chose": e.before,
                       "quantized chose": e.after, "margin before": round(e.margin_before, 4),
                       "margin after": round(e.margin_after, 4)} for e in ex], hide_index=True, width="stretch")
    else:
        st.success("No decision flipped.")
    b, q = sweep.base.outcome(tkey), r.evaluation.outcome(tkey)
    a1, a2 = _cols(pres)
    with a1:
        common.plot(figs.margin_scatter(b.margin, q.margin, c.flipped, f"Margins: {task.title}", _unit(task), pres))
    with a2:
        common.plot(figs.margin_histograms(b.margin, q.margin, f"Margin distribution: {task.title}", _unit(task),
                                           pres))
    st.caption("Margin = score of the right answer minus the best wrong one: below 0 the decision is wrong. "
               "Decisions near 0 flip first; a fine task has many of them.")


def whole_section(sweep: Sweep, pres: bool) -> None:
    wholes = [(r, r.evaluation.whole) for r in sweep.results if r.evaluation.whole is not None]
    if not wholes:
        return
    w0 = wholes[0][1]
    st.subheader(f"The whole-model metric: {w0.label}")
    st.dataframe([{"scheme": r.label, "bits/weight": round(r.bits_per_weight, 3),
                   **{k: round(v, 5) for k, v in w.summary().items()}} for r, w in wholes],
                 hide_index=True, width="stretch")
    per = w0.unit.split(" per ")[-1]
    if w0.higher_is_better:  # cosines crowd near 1: show the distance 1 - cos on a log axis to separate them
        values, title, unit = [1.0 - w.values for _, w in wholes], f"1 − {w0.label}, per {per}", "1 − cosine (log)"
    else:
        values, title, unit = [w.values for _, w in wholes], f"{w0.label}, per {per}", f"{w0.unit} (log)"
    common.plot(figs.whole_model_histogram(values, [r.label for r, _ in wholes], title, unit, log_x=True,
                                           presenter=pres))


def _short(name: str) -> str:
    return name.replace("encoder.layer.", "L").replace("blocks.", "B").replace("attention.", "attn.")


def sensitivity_section(key: str, device: str, sweep: Sweep, base_model, store, pres: bool) -> None:
    st.subheader("Per-layer sensitivity and a mixed-precision plan")
    n_layers = len(registry.linear_names(key))
    c1, c2 = st.columns(2)
    with c1:
        skey = st.selectbox("Scheme to rank layers with", list(CATALOG), key=state.bind(C.SENS_SCHEME),
                            format_func=lambda k: CATALOG[k].label)
        state.commit(C.SENS_SCHEME)
    with c2:
        if state.get(C.KEEP_K) > n_layers // 3:
            state.put(C.KEEP_K, min(4, n_layers // 3))
        k = st.slider("Keep the worst k layers at INT8 per-channel", 0, n_layers // 3, key=state.bind(C.KEEP_K))
        state.commit(C.KEEP_K)
    scheme = CATALOG[skey]
    sens_key = ("sens", key, device, scheme, bool(state.get(C.SUBSET)))
    sens = store.get(sens_key)
    auto = state.get(C.SENS_RUN)
    if sens is None:
        if not (auto or st.button("Rank the layers", key="cl_sens", icon=":material/leaderboard:",
                                  help=f"Quantizes each of the {n_layers} Linears alone and measures the damage")):
            st.caption(f"Quantizes each of the {n_layers} Linears alone with {scheme.label} (the others "
                       "unquantized) and measures how far the model moves on a fixed probe.")
            return
        bar = st.progress(0.0, text="Waiting for a free compute slot…")
        with common.compute_slot():
            sens = layer_sensitivity(key, scheme, base_model(key, device), sweep.tasks,
                                     probe_size=QUICK_PROBE if state.get(C.SUBSET) else None,
                                     on_progress=lambda f, m: bar.progress(min(f, 1.0), text=m))
        bar.empty()
        store.put(sens_key, sens)
    common.plot(figs.sensitivity_bars([_short(x.name) for x in sens.layers], [x.damage for x in sens.layers], k,
                                      sens.probe, pres))
    plan = mixed_precision_plan(sens, k, base_model(key, device))
    st.markdown(f"**Plan:** {plan.scheme.label}. Bits per Linear weight **{plan.bits_before:.3f} → "
                f"{plan.bits_after:.3f}** (+{plan.bits_after - plan.bits_before:.3f}). Kept at 8-bit: "
                f"{', '.join(f'`{n}`' for n in plan.kept) or 'none'}.")
    subset = state.get(C.SUBSET)
    results = {}
    for name, s in (("scheme", scheme), ("plan", plan.scheme)):
        results[name] = store.get(("scheme", key, device, subset, s))
    if any(v is None for v in results.values()):
        if not (auto or st.button("Test the plan on the tasks", key="cl_plan", icon=":material/science:")):
            return
        bar = st.progress(0.0, text="Waiting for a free compute slot…")
        for i, (name, s) in enumerate((("scheme", scheme), ("plan", plan.scheme))):
            if results[name] is None:
                with common.compute_slot():
                    results[name] = evaluate_scheme(key, s, base_model(key, device), sweep.tasks, sweep.base,
                                                    lambda f, m, i=i: bar.progress(min(1.0, (i + f) / 2), text=m))
                store.put(("scheme", key, device, subset, s), results[name])
        bar.empty()
    metric = sweep.tasks[0].metric.value
    scores = {"unquantized": [sweep.base.outcome(t.key).score for t in sweep.tasks],
              scheme.label: [results["scheme"].change(t.key).score for t in sweep.tasks],
              f"plan (+{k} at 8-bit)": [results["plan"].change(t.key).score for t in sweep.tasks]}
    common.plot(figs.plan_effect([t.title for t in sweep.tasks], scores, metric, pres))
    st.dataframe([{"task": t.title, "unquantized": round(scores["unquantized"][i], 4),
                   "scheme damage": round(results["scheme"].change(t.key).damage, 2),
                   "plan damage": round(results["plan"].change(t.key).damage, 2),
                   "scheme flips": len(results["scheme"].change(t.key).flipped),
                   "plan flips": len(results["plan"].change(t.key).flipped)} for i, t in enumerate(sweep.tasks)],
                 hide_index=True, width="stretch")


def tasks_section(tasks, sweep: Sweep | None) -> None:
    with st.expander("The tasks: what they measure and how they were made", expanded=sweep is None):
        for t in tasks:
            unit = "texts" if t.texts else "items"
            st.markdown(f"**{t.title}** — {t.grain.value}, {t.size} {unit}. {t.description}")
            if t.items:
                i = t.items[0]
                st.caption(f"e.g. “{i.query}” → " + " | ".join(
                    f"{'✓' if j == i.answer else '✗'} “{c}”" for j, c in enumerate(i.choices)))
            if sweep is not None:
                score = sweep.base.outcome(t.key).score
                st.caption(f"Unquantized {t.metric.value}: **{score:.3f}**")
                if t.metric is Metric.ACCURACY and len(t.items[0].choices) == 2 and score < 0.5:
                    st.warning(f"The unquantized model itself is below chance on “{t.title}” ({score:.2f}): it "
                               "prefers the candidate that shares more words with the sentence. The flips still "
                               "show what quantization changed.")
