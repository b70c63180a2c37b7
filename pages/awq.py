"""AWQ: activation-aware scaling of the salient input channels, searched on the layer's real inputs.

Thin: widgets -> QuantSpec -> ONE cached library call (explorer.method_views.awq_view) -> figure builders
(explorer.plots.methods).
"""
import numpy as np
import streamlit as st

from explorer.method_views import MIN_SALIENT, AWQView, awq_at_alpha, awq_view, compare_specs, holdout_split
from explorer.methods import awq_search
from explorer.methods.awq import awq_scales
from explorer.plots import methods as figs
from ui import check_yourself, common, state
from ui import methods_views as V
from ui.spec_controls import spec_controls
from ui import params_methods as M
from ui.text import md_literal

PARAMS = M.AWQ_PAGE
INTRO = ("A weight column that multiplies a large input channel matters more to the output. **AWQ** (Lin et al. "
         "2023, arXiv 2306.00978) multiplies each weight column j by s_j = mean|x_j|^α before rounding, so the "
         "salient columns get finer steps, and folds 1/s_j into the op that produces x. α is searched on a "
         "20-point grid from 0 (plain rounding) to 1, keeping the one with the lowest output error on "
         "**calibration tokens**; the result is then measured on **held-out tokens** the search never saw. "
         "Try SmolLM2 `blocks.11.down`, whose inputs have massive activations.")


@st.cache_data(max_entries=24, show_spinner=False)
def compute(source_key: str, tensor: str, device: str, spec, holdout: float, index: int, clip: bool,
            _w, _x) -> AWQView:
    """Cached per (source, tensor, device, spec, holdout, alpha index, clip); tensors are not hashed."""
    with common.compute_slot():
        return awq_view(_w, _x, spec, holdout=holdout, index=index, clip=clip)


def controls():
    name, gran, group, sym, _ = spec_controls()
    spec = compare_specs([name], gran, group, sym)[0]
    c1, c2, c3 = st.columns([3, 3, 2])
    with c1:
        holdout = V.holdout_slider("AWQ calibrates on the first tokens and is measured on the last ones")
    with c2:
        st.selectbox("α shown", [-1] + list(range(M.N_GRID)), key=state.bind(M.ALPHA),
                     format_func=lambda i: "the searched one (lowest loss)" if i == -1 else f"{i / (M.N_GRID - 1):.3f}",
                     help="Inspect any grid point; the search's own choice is marked on the loss curve")
        index = state.commit(M.ALPHA)
    with c3:
        st.toggle("Clip search", key=state.bind(M.CLIP),
                  help="After scaling, shrink each scale span's range by up to 50% where that lowers the output "
                       "error (llm-awq auto_clip)")
        clip = state.commit(M.CLIP)
    return spec, holdout, index, clip


def headline(v: AWQView, presenter: bool) -> None:
    e = v.errors
    cols = st.columns(2 if presenter else 4)
    items = [("Searched α", f"{v.alphas[v.best_index]:.3f}", None),
             ("Held-out error, RTN", f"{e['rtn_holdout']:.4f}", None),
             (f"Held-out error, AWQ (α {v.alpha:.3f})", f"{e['awq_holdout']:.4f}",
              f"{e['awq_holdout'] / e['rtn_holdout'] - 1:+.1%} vs RTN" if e["rtn_holdout"] > 0 else None),
             ("Search time", f"{v.seconds:.2f} s", None)]
    for i, (label, value, delta) in enumerate(items):
        cols[i % len(cols)].metric(label, value, delta, delta_color="inverse")


def main():
    opened = V.start("AWQ: activation-aware scaling", PARAMS, INTRO)
    if opened is None:
        return
    sel, x = opened
    spec, holdout, index, clip = controls()
    info, pres = sel.tensor, sel.presenter
    st.caption(f"**{md_literal(info.name)}** {list(info.shape)} · {spec.label} · on {sel.device}")
    try:
        with st.spinner("Searching α on the calibration tokens…"):
            v = compute(sel.source.key, info.name, str(sel.device), spec, holdout, index, clip, sel.weight(), x)
    except ValueError as e:  # a group wider than the row, NaN/Inf, ...
        st.error(f"Cannot run AWQ on this tensor: {e}")
        common.page_end(PARAMS)
        return
    headline(v, pres)
    st.caption(f"Calibrated on the first {v.calib_tokens} tokens, measured on the last {v.holdout_tokens} "
               f"(real inputs of this layer on the project's calibration text). "
               f"Output error = ‖XWᵀ − XŴᵀ‖ / ‖XWᵀ‖.")

    st.subheader("What AWQ looks at, and the scales it sets")
    c1, c2 = (st.container(), st.container()) if pres else st.columns(2)
    with c1:
        common.plot(figs.channel_magnitude(v.act_mean, v.salient, pres))
    with c2:
        common.plot(figs.scale_vector(v.scales, v.salient, v.alpha, pres))
    st.caption(f"Red diamonds: the {len(v.salient)} input channels with the largest mean |x| (1% of the layer, at "
               f"least {MIN_SALIENT}). s is normalised so that √(max s · min s) = 1: columns with s > 1 are rounded "
               f"on a finer grid, the rest on a coarser one.")

    st.subheader("The search over α")
    common.plot(figs.loss_curve(v.alphas, v.losses, v.best_index, v.index, pres))
    st.caption("Each point quantizes W·diag(s) at that α, folds 1/s back and measures the output MSE on the "
               "calibration tokens. α = 0 gives s = 1: plain round-to-nearest (RTN)."
               + (" On this CPU the grid is ranked with bfloat16 matrix products (AMX tiles, about 6x float32); "
                  "α = 0 and every point within 2% of the lowest are measured again in float32, so the chosen α "
                  "and the losses quoted are float32 values." if v.grid_dtype == "bfloat16" else ""))

    st.subheader("Error before and after, on the salient channels and on the output")
    c1, c2 = (st.container(), st.container()) if pres else st.columns(2)
    with c1:
        common.plot(figs.salient_errors(v.salient, v.col_err_rtn, v.col_err_awq, pres))
    with c2:
        e = v.errors
        common.plot(figs.output_errors(["RTN", f"AWQ α {v.alpha:.3f}"], [e["rtn_calib"], e["awq_calib"]],
                                       [e["rtn_holdout"], e["awq_holdout"]], "Output error, RTN vs AWQ", pres))
    better = int((v.col_err_awq[v.salient] < v.col_err_rtn[v.salient]).sum())
    rest = np.ones(len(v.col_err_rtn), dtype=bool)
    rest[v.salient] = False
    st.caption(f"Left: AWQ trades error between columns. Here {better} of the {len(v.salient)} salient columns lose "
               f"less than with RTN (a scaled-up column also stretches the scale of the group it shares, which can "
               f"cost a less salient neighbour), and the other columns' mean error goes from "
               f"{v.col_err_rtn[rest].mean():.4f} to {v.col_err_awq[rest].mean():.4f}. What counts is the output: "
               f"the salient columns meet the largest inputs. Right: the light bar is the error on the tokens the "
               f"search saw, the dark one on tokens it never saw.")
    common.show_code(awq_search, awq_scales, awq_at_alpha, holdout_split)
    common.download_csv("Per-channel data (CSV)", {
        "channel": range(len(v.act_mean)), "mean_abs_x_calib": v.act_mean.tolist(), "scale": v.scales.tolist(),
        "col_rel_error_rtn": v.col_err_rtn.tolist(), "col_rel_error_awq": v.col_err_awq.tolist()},
        f"{info.name}-{spec.format.name}-awq-channels.csv", key="dl_awq_channels")
    common.download_csv("Loss over α (CSV)", {"alpha": v.alphas.tolist(), "calib_output_mse": v.losses.tolist()},
                        f"{info.name}-{spec.format.name}-awq-alpha.csv", key="dl_awq_alpha")
    check_yourself.panel("awq")
    common.page_end(PARAMS)


main()
