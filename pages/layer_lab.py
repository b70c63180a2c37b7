"""Layer Lab: one real layer under the microscope, in one format.

Thin: widgets -> QuantSpec -> cached library calls -> figure builders. The format-independent statistics of the
tensor (explorer.analysis.weight_stats) are computed once per tensor and shared; a widget change reruns only
analyze_layer with them. Both caches are keyed by source key, tensor name and device, never by a tensor.
"""
import streamlit as st

from explorer import FORMATS, make_spec
from explorer.analysis import LayerAnalysis, WeightStats, analyze_layer, top_k, weight_stats
from explorer.plots import layer as figs
from ui import check_yourself, common, state
from ui import params as P
from ui.sidebar import Selection
from ui.spec_controls import spec_controls
from ui.text import md_literal

PARAMS = P.LAYER_LAB


@st.cache_resource(max_entries=12, show_spinner=False)
def stats(source_key: str, tensor: str, device: str, _w, _x) -> WeightStats:
    """Per (source, tensor, device), like the loaded weight itself (ui.sources): shared, immutable, never copied."""
    with common.compute_slot():  # bounds the server's memory when many visitors compute at once
        return weight_stats(_w, _x)


@st.cache_data(max_entries=48, show_spinner=False)
def analysis(source_key: str, tensor: str, device: str, spec, _w, _x) -> LayerAnalysis:
    """Cached per (source, tensor, device, spec): the weight itself is not part of the key."""
    ws = stats(source_key, tensor, device, _w, _x)
    with common.compute_slot():
        return analyze_layer(_w, spec, _x, stats=ws)


def sample_note(a: LayerAnalysis) -> str:
    """Chart-title note for format-dependent histograms taken over 1 in k rows of a large layer ('' if all)."""
    if a.hist_stride == 1:
        return ""
    return f"histogram of 1 in {a.hist_stride} rows ({weights_text(a.hist_weights)})"


def weights_text(n: int) -> str:
    return f"{n / 1e6:.1f}M weights" if n >= 1e6 else f"{n:,} weights"


def controls():
    c = spec_controls(scale=True)
    fmt = FORMATS[c.name]
    # Non-integer formats have no zero point: symmetric whatever the (disabled) toggle says.
    return make_spec(c.name, None if fmt.is_block else c.gran, c.group, c.sym or fmt.kind.value != "int", c.scale)


def metrics_row(a: LayerAnalysis, presenter: bool):
    m = a.metrics
    cols = st.columns(3 if presenter else 5)
    items = [("Relative error", f"{m.rel_error:.4f}"), ("SQNR", f"{m.sqnr_db:.1f} dB"),
             ("Bits / weight", f"{m.bits_per_weight:.3f}"), ("Cosine", f"{m.cosine:.5f}"),
             ("Max |error|", f"{m.max_abs_error:.3g}"), ("Clipped", f"{100 * m.clipped_frac:.2f}%"),
             ("Zeroed", f"{100 * m.zeroed_frac:.2f}%"), ("Packed size", f"{m.packed_bytes / 1024:.0f} KiB")]
    if a.output_error is not None:
        items.insert(1, ("Output error", f"{a.output_error:.4f}"))
    for i, (label, value) in enumerate(items):
        cols[i % len(cols)].metric(label, value)


def main():
    sel: Selection = common.page_start("Layer Lab", PARAMS)
    if not common.require_tensor(sel):
        common.page_end(PARAMS)
        return
    spec = controls()
    info = sel.tensor
    st.caption(f"**{md_literal(info.name)}** {list(info.shape)} {info.dtype} · {spec.label} · on {sel.device}")
    try:
        w = sel.weight()
        x = sel.inputs()
        with st.spinner("Quantizing…"):
            a = analysis(sel.source.key, info.name, str(sel.device), spec, w, x)
    except ValueError as e:  # NaN/Inf, a group wider than the row, ...
        st.error(f"Cannot quantize this tensor: {e}")
        common.page_end(PARAMS)
        return
    metrics_row(a, sel.presenter)
    pres = sel.presenter
    tabs = st.tabs(["Distribution", "Error", "Channels", "Heatmaps", "Output error", "Metrics table"])
    with tabs[0]:
        st.toggle("Log scale", key=state.bind(P.LOGY))
        log_y = state.commit(P.LOGY)
        unit = "code" if a.spec.format.kind.value == "int" else "element value"
        c1, c2 = (st.container(), st.container()) if pres else st.columns(2)
        with c1:
            common.plot(figs.weight_distribution(a.weight_hist, "Weights W", "weight value", log_y=log_y,
                                                 presenter=pres))
        with c2:
            common.plot(figs.weight_distribution(
                a.scaled_hist, f"W ÷ its scale, over the {len(a.levels)} levels of {a.spec.format.name}",
                f"{unit} (weight ÷ scale)", levels=a.levels, log_y=log_y, presenter=pres, note=sample_note(a)))
        st.caption("Right: every weight divided by its own scale (per tensor, channel, group or block), so one "
                   "axis shows where all weights land relative to the format's representable levels (red).")
        if a.hist_stride > 1:
            st.caption(f"This layer has {weights_text(a.shape[0] * a.shape[1])}: the histograms that depend "
                       f"on the format (right, and the Error tab) count 1 row in {a.hist_stride} "
                       f"({weights_text(a.hist_weights)}), so a format change stays quick. The weights "
                       f"histogram (left), every metric, the exact share, per-channel errors and heatmaps cover "
                       f"all weights.")
        common.show_code(analyze_layer, figs.weight_distribution)
    with tabs[1]:
        fa, fr = figs.error_histograms(a.error_hist, a.rel_counts, a.rel_edges, a.exact_frac, pres,
                                       sample_note(a))
        c1, c2 = (st.container(), st.container()) if pres else st.columns(2)
        with c1:
            common.plot(fa)
        with c2:
            common.plot(fr)
        common.show_code(figs.error_histograms)
    with tabs[2]:
        tr, tc = top_k(a.row_mse), top_k(a.col_mse)
        fr_, fc_ = figs.channel_errors(a.row_mse, a.col_mse, tr, tc, pres)
        common.plot(fr_)
        common.plot(fc_)
        st.caption(f"Worst output channels: {', '.join(map(str, tr))}; worst input channels: "
                   f"{', '.join(map(str, tc))}.")
        common.download_csv("Per-channel error (CSV)", {
            "channel": range(max(len(a.row_mse), len(a.col_mse))), "output_channel_mse": a.row_mse,
            "input_channel_mse": a.col_mse}, f"{info.name}-{spec.format.name}-channel-error.csv")
    with tabs[3]:
        c1, c2 = (st.container(), st.container()) if pres else st.columns(2)
        with c1:
            common.plot(figs.heatmap(a.w_pooled, a.pool, "|W|", pres))
        with c2:
            common.plot(figs.heatmap(a.err_pooled, a.pool, "|Ŵ − W|", pres, colorscale="Inferno"))
        st.caption("Max-pooled: each cell shows the largest value of its block, so one outlier row or column "
                   "stays visible at any size.")
    with tabs[4]:
        if a.output_error is None:
            st.info("No real calibration inputs ship for this tensor (they exist for the bundled sample layers). "
                    "The weight error is shown in the other tabs.")
        else:
            st.metric("Output error ‖XWᵀ − XŴᵀ‖ / ‖XWᵀ‖", f"{a.output_error:.4f}",
                      help=f"on {a.tokens} real tokens of the project's calibration text")
            st.markdown(f"Measured on **{a.tokens} real input tokens** of this layer (captured on the project's "
                        f"calibration text). Compare with the weight's relative error "
                        f"**{a.metrics.rel_error:.4f}**: outlier input channels can make the output error larger "
                        f"or smaller than the weight error.")
    with tabs[5]:
        rows = {k: [v] for k, v in a.metrics.as_dict().items()}
        if a.output_error is not None:
            rows["output_rel_error"] = [a.output_error]
        st.dataframe([{"metric": k, "value": v[0]} for k, v in rows.items()], hide_index=True,
                     width="stretch")
        common.download_csv("Metrics (CSV)", rows, f"{info.name}-{spec.format.name}-metrics.csv")
    check_yourself.panel("layer_lab")
    common.page_end(PARAMS)


main()
