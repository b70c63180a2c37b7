"""Formats side by side: every format x granularity on the selected layer, as a table, an error-vs-size chart
with its Pareto front, and one error histogram per format.

Thin: group size -> explorer.compare.all_specs -> ONE cached library call (explorer.compare.sweep, with a progress
bar) -> figure builders (explorer.plots.formats). The highlighted scheme is Layer Lab's current choice.
"""
import time

import streamlit as st

from explorer import FORMATS, Granularity, Kind, make_spec
from explorer.compare import ErrorAxis, SweepRow, all_specs, find_row, fitting_specs, pareto_front, sweep, usual_rows
from explorer.plots import formats as figs
from ui import check_yourself, common, state
from ui import params as P
from ui.params_formats import ERROR_AXIS, FORMATS_PAGE, HIST_LOG
from ui.sidebar import Selection
from ui.text import md_literal

PARAMS = FORMATS_PAGE
GROUPS = [16, 32, 64, 128, 256, 512, 1024]
PICK_KEY = "formats_pick"
LEGEND = {Granularity.TENSOR: "per tensor", Granularity.CHANNEL: "per channel", Granularity.GROUP: "per group",
          Granularity.BLOCK: "block format (MX, NVFP4)"}
INTRO = ("Every format the app knows, at every granularity, on **the layer picked in the sidebar**: which scheme "
         "loses the least for the bits it costs? The red ring is your current **Layer Lab** choice.")


@st.cache_data(max_entries=16, show_spinner=False)
def run_sweep(source_key: str, tensor: str, device: str, group_size: int, _w, _x):
    """Cached per (source, tensor, device, group size): (rows, seconds, labels of schemes too wide for the row)."""
    specs, dropped = fitting_specs(all_specs(group_size), _w.shape[1])
    bar = st.progress(0.0, text="Quantizing…")
    start = time.perf_counter()
    rows = sweep(_w, specs, _x, on_progress=lambda done, total, label: bar.progress(
        done / total, text=f"Quantizing with {label} ({done}/{total})"))
    seconds = time.perf_counter() - start
    bar.empty()
    return rows, seconds, [s.label for s in dropped]


def layer_lab_spec():
    """Layer Lab's current choice (format, granularity, group size, symmetric) as a QuantSpec."""
    fmt = FORMATS[state.get(P.FMT)]
    sym = state.get(P.SYM) or fmt.kind is not Kind.INT
    return make_spec(fmt.name, None if fmt.is_block else state.get(P.GRAN), state.get(P.GROUP), sym)


def _choose(specs: dict) -> None:
    """The highlight picker changed: make that scheme the Layer Lab choice."""
    spec = specs.get(st.session_state[PICK_KEY])
    if spec is None:
        return
    state.put(P.FMT, spec.format.name)
    if not spec.format.is_block:
        state.put(P.GRAN, spec.granularity.value)
    state.put(P.SYM, spec.symmetric)


def controls(has_inputs: bool):
    c1, c2 = st.columns([3, 2])
    with c1:
        if state.get(P.GROUP) not in GROUPS:
            GROUPS.append(state.get(P.GROUP))
            GROUPS.sort()
        st.select_slider("Group size for the per-group schemes", GROUPS, key=state.bind(P.GROUP),
                         help="Shared with Layer Lab. Per-tensor, per-channel and block schemes do not use it.")
        group = state.commit(P.GROUP)
    with c2:
        st.radio("Rank by", ["weight", "output"], key=state.bind(ERROR_AXIS), horizontal=True,
                 format_func={"weight": "weight error ‖W−Ŵ‖/‖W‖",
                              "output": "output error on real inputs"}.get)
        axis = ErrorAxis(state.commit(ERROR_AXIS))
    if axis is ErrorAxis.OUTPUT and not has_inputs:
        st.info("No real inputs ship for this tensor, so the output error cannot be measured: ranking by the "
                "weight error.")
        axis = ErrorAxis.WEIGHT
    return group, axis


def picker(rows: list[SweepRow], current: SweepRow | None) -> None:
    specs = {r.label: r.spec for r in rows}
    st.session_state[PICK_KEY] = current.label if current is not None else None
    st.selectbox("Highlighted scheme (the Layer Lab choice)", [None] + list(specs), key=PICK_KEY,
                 format_func=lambda v: "— none —" if v is None else v, on_change=_choose, args=(specs,),
                 help="Changing it changes the Layer Lab choice too.")


def table(rows: list[SweepRow], front: set, current: SweepRow | None, has_inputs: bool) -> dict:
    cols = {"format": [], "granularity": [], "scheme": [], "bits/weight": [], "rel error": [], "SQNR dB": [],
            "max |error|": [], "cosine": [], "clipped %": [], "zeroed %": []}
    if has_inputs:
        cols["output error"] = []
    cols["Pareto"], cols["Layer Lab"] = [], []
    for r in rows:
        m = r.metrics
        for k, v in (("format", r.spec.format.name), ("granularity", r.granularity_label),
                     ("scheme", "symmetric" if r.spec.symmetric else "asymmetric"),
                     ("bits/weight", round(m.bits_per_weight, 4)), ("rel error", m.rel_error),
                     ("SQNR dB", round(m.sqnr_db, 2)), ("max |error|", m.max_abs_error), ("cosine", m.cosine),
                     ("clipped %", 100 * m.clipped_frac), ("zeroed %", 100 * m.zeroed_frac),
                     ("Pareto", "✓" if id(r) in front else ""), ("Layer Lab", "◀" if r is current else "")):
            cols[k].append(v)
        if has_inputs:
            cols["output error"].append(r.output_error)
    return cols


def show_table(cols: dict, current_index: int | None) -> None:
    import pandas as pd
    df = pd.DataFrame(cols)
    styler = df.style.format({"rel error": "{:.4g}", "max |error|": "{:.3g}", "cosine": "{:.6f}",
                              "clipped %": "{:.3f}", "zeroed %": "{:.2f}", "output error": "{:.4g}",
                              "bits/weight": "{:.3f}", "SQNR dB": "{:.1f}"})
    if current_index is not None:
        styler = styler.apply(lambda row: ["background-color: #fde2e2; font-weight: bold"
                                           if row.name == current_index else "" for _ in row], axis=1)
    st.dataframe(styler, hide_index=True, width="stretch", height=420)


def main():
    sel: Selection = common.page_start("Formats side by side", PARAMS, intro=INTRO)
    if not common.require_tensor(sel):
        common.page_end(PARAMS)
        return
    info = sel.tensor
    try:
        w = sel.weight()
        x = sel.inputs()
    except ValueError as e:
        st.error(f"Cannot read this tensor: {e}")
        common.page_end(PARAMS)
        return
    group, axis = controls(x is not None)
    try:
        rows, seconds, dropped = run_sweep(sel.source.key, info.name, str(sel.device), group, w, x)
    except ValueError as e:  # NaN/Inf weights, a 1-D tensor, ...
        st.error(f"Cannot quantize this tensor: {e}")
        common.page_end(PARAMS)
        return
    st.caption(f"**{md_literal(info.name)}** {list(info.shape)} {info.dtype} · {len(rows)} schemes measured in "
               f"**{seconds:.1f} s** on {sel.device} (computed once, then cached) · scales and zero points stored as fp16"
               + (f" · output error on {x.shape[0]} real input tokens" if x is not None else ""))
    if dropped:
        st.info(f"Group size {group} is wider than this layer's {info.shape[1]} inputs, so the per-group schemes "
                f"({len(dropped)}) are left out. Pick a smaller group size.")
    current = find_row(rows, layer_lab_spec())
    picker(rows, current)
    front_rows = pareto_front(rows, axis)
    front = {id(r) for r in front_rows}
    pres = sel.presenter
    idx = next((i for i, r in enumerate(rows) if r is current), None)
    error_title = "weight error ‖W−Ŵ‖/‖W‖" if axis is ErrorAxis.WEIGHT else "output error ‖XWᵀ−XŴᵀ‖/‖XWᵀ‖"
    common.plot(figs.pareto_chart(
        [r.metrics.bits_per_weight for r in rows], [r.error(axis) for r in rows], [r.label for r in rows],
        [LEGEND[r.spec.granularity] for r in rows], [r.spec.symmetric for r in rows], [id(r) in front for r in rows], idx, error_title, pres))
    st.caption("Each marker is one scheme; filled = symmetric, open = asymmetric (a zero point per scale). The "
               "dotted line is the **Pareto front**: no other scheme is both smaller and more accurate. "
               f"On the front here: {', '.join(r.label for r in front_rows)}.")
    if current is None:
        st.caption(f"Layer Lab's choice ({layer_lab_spec().label}) is not in this sweep.")
    common.show_code(all_specs, sweep, pareto_front)

    st.subheader("All schemes")
    cols = table(rows, front, current, x is not None)
    show_table(cols, idx)
    common.download_csv("Table (CSV)", cols, f"{info.name}-formats-g{group}.csv")

    st.subheader("Where the error goes, format by format")
    st.toggle("Log counts", key=state.bind(HIST_LOG))
    log_y = state.commit(HIST_LOG)
    usual = usual_rows(rows)
    if usual:
        common.plot(figs.error_small_multiples(
            {n: r.error_hist for n, r in usual.items()},
            {n: f"{r.label} · {r.metrics.rel_error:.3g}" for n, r in usual.items()},
            highlight=current.spec.format.name if current is not None else None, log_y=log_y, presenter=pres))
        wide = usual[figs.widest({n: r.error_hist for n, r in usual.items()})]
        st.caption(f"Histograms of Ŵ − W, each format at its usual granularity (per-group ones at the group size "
                   f"above), all on one x and y range so widths and tails compare directly; the number is the "
                   f"relative error. The range is set by **{wide.label}**, whose largest error is "
                   f"{wide.metrics.max_abs_error:.3g}. Drag across a panel to zoom all of them."
                   + (f" This layer is large: the histograms count 1 row in {wide.hist_stride} (every metric and "
                      f"the table cover all weights)." if wide.hist_stride > 1 else ""))
        common.show_code(usual_rows, figs.on_range)
    check_yourself.panel("formats")
    common.page_end(PARAMS)


main()
