"""Compare methods: RTN, AWQ, GPTQ, AWQ+GPTQ and SmoothQuant W·A8, each in several formats, on the selected layer
and its real inputs, in one table and one chart (output error on held-out tokens).

Thin: widgets -> specs -> ONE cached library call (explorer.method_views.compare_methods, with a progress bar) ->
figure builder (explorer.plots.methods.compare_chart).
"""
import streamlit as st

from explorer.formats import FORMATS as REGISTRY
from explorer.formats import format_names
from explorer.method_views import COMPARE_METHODS, LABELS, CompareRow, compare_methods, compare_specs, evaluate
from explorer.methods import Method
from explorer.plots import methods as figs
from ui import check_yourself, common, state
from ui import methods_views as V
from ui.spec_controls import spec_controls
from ui import params_methods as M
from ui.text import md_literal

PARAMS = M.METHODS_PAGE
SMOOTH = LABELS[Method.SMOOTHQUANT]
INTRO = ("The same layer, the same real inputs, every method in every chosen format: each method calibrates on the "
         "first tokens and is measured on **held-out tokens** it never saw. RTN rounds each weight to the nearest "
         "level; AWQ scales salient input channels first; GPTQ feeds each column's rounding error forward; AWQ+GPTQ "
         "does both; SmoothQuant moves activation outliers into the weights so that the **activations can be INT8 "
         "too** (its error includes rounding the activations, so it is not a weight-only number).")


@st.cache_data(max_entries=12, show_spinner=False)
def compute(source_key: str, tensor: str, device: str, specs: tuple, holdout: float, damp: float,
            smooth_alpha: float, _w, _x) -> list[CompareRow]:
    """Cached per (source, tensor, device, specs, holdout, damping, SmoothQuant alpha); the progress bar is
    replayed on a hit."""
    bar = st.progress(0.0, text="Waiting for a free compute slot…")
    with common.compute_slot():
        rows = compare_methods(_w, _x, list(specs), holdout=holdout, damp=damp, smooth_alpha=smooth_alpha,
                               on_progress=lambda i, n, label: bar.progress(i / n, text=f"{label} ({i + 1}/{n})"))
    bar.empty()
    return rows


def controls():
    st.multiselect("Formats", format_names(), key=state.bind(M.FORMATS),
                   format_func=lambda n: f"{n} ({REGISTRY[n].bits}-bit)")
    names = state.commit(M.FORMATS) or list(M.FORMATS.default)
    _, gran, group, sym, _ = spec_controls(formats=False)
    specs = compare_specs(names, gran, group, sym)
    c1, c2, c3 = st.columns(3)
    with c1:
        holdout = V.holdout_slider()
    with c2:
        st.select_slider("GPTQ damping", M.DAMPS, key=state.bind(M.DAMP), format_func=lambda d: f"{d:.1%}",
                         help="× mean diag H added to H's diagonal; the reference uses 1%")
        damp = state.commit(M.DAMP)
    with c3:
        st.select_slider("SmoothQuant α", M.SMOOTH_ALPHAS, key=state.bind(M.SMOOTH_ALPHA),
                         help="How much of the activations' range moves into the weights: 0.5 by default, 0.8-0.9 "
                              "in the published Llama runs")
        smooth_alpha = state.commit(M.SMOOTH_ALPHA)
    return specs, holdout, damp, smooth_alpha


def table(rows: list[CompareRow]) -> list[dict]:
    rtn = {r.spec: r.holdout_error for r in rows if r.method == LABELS[Method.RTN]}
    out = []
    for r in rows:
        base = rtn.get(r.spec)
        # SmoothQuant's error includes INT8 activations: not comparable with weight-only RTN (see its own column)
        ratio = r.holdout_error / base if r.holdout_error is not None and base and r.method != SMOOTH else None
        out.append({"format": r.spec, "method": r.method, "bits / weight": round(r.bits_per_weight, 3),
                    "held-out error": r.holdout_error, "× RTN": None if ratio is None else round(ratio, 3),
                    "calibration error": r.calib_error, "seconds": None if r.seconds is None else round(r.seconds, 3),
                    "alpha": r.alpha, "W·A8 without smoothing": r.unsmoothed_error, "not run": r.skipped})
    return out


def main():
    opened = V.start("Compare methods", PARAMS, INTRO)
    if opened is None:
        return
    sel, x = opened
    specs, holdout, damp, smooth_alpha = controls()
    info, pres = sel.tensor, sel.presenter
    st.caption(f"**{md_literal(info.name)}** {list(info.shape)} · {len(specs)} formats × {len(COMPARE_METHODS)} methods · on "
               f"{sel.device}")
    try:
        rows = compute(sel.source.key, info.name, str(sel.device), tuple(specs), holdout, damp, smooth_alpha,
                       sel.weight(), x)
    except ValueError as e:
        st.error(f"Cannot compare methods on this tensor: {e}")
        common.page_end(PARAMS)
        return
    if all(r.skipped for r in rows):  # e.g. a group wider than every row of this tensor
        st.error(f"Cannot compare methods on this tensor with these settings: {rows[0].skipped}")
        common.page_end(PARAMS)
        return
    labels = [s.label for s in specs]
    methods = [LABELS[m] for m in COMPARE_METHODS]
    errors = {(r.method, r.spec): r.holdout_error for r in rows if r.holdout_error is not None}
    common.plot(figs.compare_chart(labels, methods, errors, pres))
    best = []
    for s in labels:
        cands = [r for r in rows if r.spec == s and r.holdout_error is not None and r.method != SMOOTH]
        if cands:
            b = min(cands, key=lambda r: r.holdout_error)
            best.append(f"{s}: **{b.method}** ({b.holdout_error:.4f})")
    st.markdown("Lowest held-out error among the weight-only methods — " + "; ".join(best) + ".")
    data = table(rows)
    st.dataframe(data, hide_index=True, width="stretch")
    skipped = [r for r in rows if r.skipped]
    if skipped:
        st.caption("Not run: " + "; ".join(f"{r.method} · {r.spec}: {r.skipped}" for r in skipped))
    st.caption(f"SmoothQuant rows: weights in the format shown, activations INT8 per tensor after smoothing (α = "
               f"{smooth_alpha:g}); “W·A8 without smoothing” is the same quantization with s = 1, what smoothing "
               f"is measured against.")
    sq = [r for r in rows if r.method == SMOOTH and r.unsmoothed_error is not None]
    hurt = [r.spec for r in sq if r.holdout_error > r.unsmoothed_error]
    if hurt:
        st.info(f"Here smoothing at α = {smooth_alpha:g} makes W·A8 *worse* ({', '.join(hurt)}): moving the "
                f"activations' range into weights that have outliers of their own hurts the weights more than it "
                f"helps the activations. A different α (the slider above) moves the balance.")
    common.download_csv("Methods × formats (CSV)", {k: [d[k] for d in data] for k in data[0]},
                        f"{info.name}-methods.csv", key="dl_methods")
    common.show_code(compare_methods, evaluate)
    check_yourself.panel("methods")
    common.page_end(PARAMS)


main()
