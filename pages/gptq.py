"""GPTQ: column-by-column rounding with error feedback, on the layer's real inputs; what it buys on held-out
tokens, and what it costs in compute (measured here, extrapolated to a 7B and a 70B model).

Thin: widgets -> QuantSpec -> ONE cached library call (explorer.method_views.gptq_view, with a progress bar) ->
figure builders (explorer.plots.methods); the extrapolation is explorer.method_views.extrapolate_gptq.
"""
import streamlit as st

from explorer.method_views import EXTRAPOLATE_MODELS, OVERFIT_LAYERS, OVERFIT_OF, OVERFIT_WORST, REFERENCE_TOKENS, \
    GPTQTiming, GPTQView, compare_specs, extrapolate_gptq, gptq_fma, gptq_probe, gptq_view
from explorer.methods import gptq_quantize
from explorer.plots import methods as figs
from ui import check_yourself, common, state
from ui import methods_views as V
from ui.spec_controls import spec_controls
from ui import params_methods as M
from ui.text import md_literal

PARAMS = M.GPTQ_PAGE
PROBE_KEY = "_gptq_probe_wanted"
INTRO = ("**GPTQ** (Frantar et al. 2022, arXiv 2210.17323) quantizes a layer one input column at a time and pushes "
         "each column's rounding error onto the columns not yet quantized, weighted by the inverse of H = 2XᵀX "
         "built from **calibration inputs**. Here: the loss column by column, the output error on **held-out "
         "tokens** next to plain rounding (RTN) and AWQ, and the compute it takes.")
OVERFIT = (f"**Calibration data size matters.** These samples hold 512 real tokens per layer, so GPTQ calibrates on a "
           "few hundred (the reference uses 128 × 2048 = 262,144). H is then estimated from few tokens and GPTQ can "
           f"fit them too well: measured on the {OVERFIT_OF} bundled layers at INT4 g128 with 384 calibration tokens, "
           f"GPTQ at the reference's 1% damping is *worse than RTN on the held-out tokens* on {OVERFIT_LAYERS} of "
           f"them (up to {OVERFIT_WORST:.2f}×, e.g. MiniLM block 0 query/key/value), while it always wins on the "
           f"tokens it saw. 10% damping (a larger multiple of the identity added to H) generalises on all "
           f"{OVERFIT_OF}.")


@st.cache_data(max_entries=16, show_spinner=False)
def compute(source_key: str, tensor: str, device: str, spec, holdout: float, damp: float, _w, _x) -> GPTQView:
    """Cached per (source, tensor, device, spec, holdout, damping); the progress bar is replayed on a hit."""
    bar = st.progress(0.0, text="Waiting for a free compute slot…")
    with common.compute_slot():  # also keeps other visitors' work from skewing the measured seconds
        v = gptq_view(_w, _x, spec, holdout=holdout, damp=damp,
                      on_progress=lambda i, n, label: bar.progress(i / n, text=f"{label} ({i + 1}/{n})"))
    bar.empty()
    return v


@st.cache_data(max_entries=2, show_spinner=False)
def probe(device: str) -> GPTQTiming:
    """GPTQ timed on a random 4096 x 4096 layer with 2048 tokens, once per server and device."""
    with common.compute_slot():
        return gptq_probe(device)


def controls():
    name, gran, group, sym, _ = spec_controls()
    spec = compare_specs([name], gran, group, sym)[0]
    c1, c2 = st.columns(2)
    with c1:
        holdout = V.holdout_slider("Every method calibrates on the first tokens and is measured on the last ones")
    with c2:
        st.select_slider("Damping (× mean diag H added to H's diagonal)", M.DAMPS, key=state.bind(M.DAMP),
                         format_func=lambda d: f"{d:.1%}", help="The reference uses 1%")
        damp = state.commit(M.DAMP)
    return spec, holdout, damp


def _set_damp(value: float) -> None:
    state.put(M.DAMP, value)


def column_section(v: GPTQView, pres: bool) -> None:
    st.subheader("Loss per column: column order vs act-order")
    c1, c2 = (st.container(), st.container()) if pres else st.columns(2)
    with c1:
        common.plot(figs.column_losses(v.losses_order, v.losses_act, pres))
    with c2:
        common.plot(figs.cumulative_losses(v.losses_order, v.losses_act, pres))
    st.caption("Each column's loss is what rounding it costs the output after the earlier columns' errors were "
               "fed forward into it. Act-order quantizes the columns with the largest H_jj (the largest inputs) "
               "first, while many columns are still free to absorb their error.")
    common.download_csv("Per-column loss (CSV)", {
        "step": range(len(v.losses_order)), "column_order_loss": v.losses_order.tolist(),
        "act_order_column": v.perm_act.tolist(), "act_order_loss": v.losses_act.tolist()},
        "gptq-column-losses.csv", key="dl_gptq_columns")


def output_section(v: GPTQView, pres: bool) -> None:
    st.subheader("Output error on held-out tokens")
    common.plot(figs.output_errors([r.label for r in v.rows], [r.calib_error for r in v.rows],
                                   [r.holdout_error for r in v.rows],
                                   f"RTN vs GPTQ vs AWQ vs AWQ+GPTQ, {v.spec.label}, damping {v.damp:.1%}", pres))
    rtn = v.rows[0].holdout_error
    table = [{"method": r.label, "calibration error": round(r.calib_error, 5),
              "held-out error": round(r.holdout_error, 5),
              "held-out vs RTN": f"{r.holdout_error / rtn:.2f}×" if rtn > 0 else "", "seconds": round(r.seconds, 3),
              "alpha": None if r.alpha is None else round(r.alpha, 3)} for r in v.rows]
    st.dataframe(table, hide_index=True, width="stretch")
    common.download_csv("Methods (CSV)", {k: [row[k] for row in table] for k in table[0]}, "gptq-methods.csv",
                        key="dl_gptq_methods")
    worse = [r.label for r in v.rows if "GPTQ" in r.label and r.holdout_error > rtn]
    if worse:
        st.warning(f"Here {', '.join(worse)} {'is' if len(worse) == 1 else 'are'} worse than RTN on the held-out "
                   f"tokens, though better on the calibration tokens: overfitting to {v.rows[1].calib_tokens} "
                   f"calibration tokens.")
        if v.damp < 0.1:
            st.button("Try 10% damping", on_click=_set_damp, args=(0.1,))
    st.markdown(OVERFIT)


def cost_section(v: GPTQView, device: str, pres: bool) -> None:
    st.subheader("What it costs: “post-training” still takes compute")
    t = v.timing
    cols = st.columns(2 if pres else 3)
    cols[0].metric("Building H, measured", f"{t.hessian_seconds:.3f} s", help=f"{t.tokens} tokens")
    cols[1 % len(cols)].metric("Quantizing, measured", f"{t.quantize_seconds:.3f} s",
                               help="damping, the Cholesky factor, the column sweep")
    cols[2 % len(cols)].metric("RTN, measured", f"{v.rows[0].seconds:.4f} s")
    bases = [t]
    if st.button("Measure a 4096 × 4096 layer here (random weights, 2048 tokens; several seconds)"):
        st.session_state[PROBE_KEY] = True
    if st.session_state.get(PROBE_KEY):
        with st.spinner("Timing GPTQ on a 4096 × 4096 layer…"):
            bases.append(probe(device))
    rows = []
    for b in bases:
        for key in EXTRAPOLATE_MODELS:
            e = extrapolate_gptq(b, key)
            rows.append({"model": e.model, "Linears": e.linears, "building H (h)": round(e.hessian_seconds / 3600, 1),
                         "quantizing (h)": round(e.quantize_seconds / 3600, 1),
                         "total (h)": round(e.total_seconds / 3600, 1),
                         "scaled from": f"{b.what}: {b.hessian_seconds:.3f} s + {b.quantize_seconds:.3f} s"})
    st.markdown(f"**Extrapolation, not a measurement.** Each row scales the seconds measured on this machine "
                f"({device}, this server's torch threads) by the multiply-adds of every Linear of the real model "
                f"(shapes from its config.json): H costs tokens × in², the rest out × in²/2 + in³/3, with "
                f"{REFERENCE_TOKENS:,} calibration tokens per Linear as in the reference. It leaves out the forward "
                f"passes that capture the inputs. A small layer's time is mostly per-column overhead, so scaling "
                f"it up overstates; the 4096 × 4096 measurement is closer to these models' shapes.")
    st.dataframe(rows, hide_index=True, width="stretch")
    st.caption("For scale: the GPTQ paper quantizes 175B-parameter models in about four hours on one A100 GPU. "
               "Plain rounding (RTN) needs no calibration data and takes well under a second per layer.")
    common.show_code(gptq_quantize, gptq_fma, extrapolate_gptq)


def main():
    opened = V.start("GPTQ: error feedback across columns", PARAMS, INTRO)
    if opened is None:
        return
    sel, x = opened
    spec, holdout, damp = controls()
    info, pres = sel.tensor, sel.presenter
    st.caption(f"**{md_literal(info.name)}** {list(info.shape)} · {spec.label} · on {sel.device}")
    try:
        v = compute(sel.source.key, info.name, str(sel.device), spec, holdout, damp, sel.weight(), x)
    except ValueError as e:  # NVFP4 with dynamic groups, a group wider than the row, H not positive definite, ...
        st.error(f"Cannot run GPTQ on this tensor with these settings: {e}")
        common.page_end(PARAMS)
        return
    g, rtn = v.rows[1], v.rows[0]
    cols = st.columns(2 if pres else 4)
    cols[0].metric("Held-out error, RTN", f"{rtn.holdout_error:.4f}")
    cols[1].metric("Held-out error, GPTQ", f"{g.holdout_error:.4f}",
                   f"{g.holdout_error / rtn.holdout_error - 1:+.1%} vs RTN" if rtn.holdout_error > 0 else None,
                   delta_color="inverse")
    cols[2 % len(cols)].metric("Calibration / held-out tokens", f"{g.calib_tokens} / {g.holdout_tokens}")
    cols[3 % len(cols)].metric("GPTQ seconds (H + quantize)", f"{g.seconds:.3f} s")
    column_section(v, pres)
    output_section(v, pres)
    cost_section(v, str(sel.device), pres)
    check_yourself.panel("gptq")
    common.page_end(PARAMS)


main()
