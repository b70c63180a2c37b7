"""Outlier channels: the real per-input-channel activation magnitudes of every Linear of the model, the channels
that recur from block to block, and what they mean for the selected layer (LLM.int8()'s threshold, the weight's
per-channel range, AWQ's salient channels).

Thin: activation statistics (explorer.samples) -> explorer.outliers -> figure builders (explorer.plots.outliers).
"""
import streamlit as st
import torch

from explorer import samples
from explorer.models.registry import model_info
from explorer.outliers import AWQ_FRACTION, LLM_INT8_THRESHOLD, Stat, input_group_rows, over_threshold, \
    recurring_channels, saliency, stats_matrix, top_channels, weight_channel_range
from explorer.plots import outliers as figs
from ui import check_yourself, common, state
from ui.params_outliers import GROUP, OUTLIERS_PAGE, STAT, TOP_K
from ui.sidebar import Selection
from ui.text import md_literal

PARAMS = OUTLIERS_PAGE
INTRO = ("A few input channels of a transformer carry activations far larger than the rest, and they are the "
         "**same channels in every block**. One scale per tensor must stretch to cover them, so everything else "
         "is rounded coarsely. Measured on the project's calibration text, for every Linear of the model.")
STAT_LABEL = {"mean": "mean |x|", "max": "max |x|"}


@st.cache_resource(max_entries=4, show_spinner=False)
def model_stats(model: str) -> dict:
    """Linear name -> (mean|x| [in], max|x| [in]), loaded once per server (read-only, shared)."""
    return samples.activation_stats(model)


def stats_model(sel: Selection) -> str:
    """The sample model whose activation statistics describe the selected source ('' when there are none)."""
    if sel.source is None:
        return ""
    model = sel.source.model or ("minilm" if sel.source.key == "pkg:minilm" else "")
    try:
        return model if model in samples.sample_models() else ""
    except FileNotFoundError:
        return ""


def controls(groups):
    names = [g.name for g in groups]
    labels = {g.name: g.label for g in groups}
    state.reset_invalid(GROUP, [""] + names, "Input group")  # a link may name another model's group
    for n in state.notices():  # page_start has shown its notices already: show this one now
        st.warning(n)
    state.notices().clear()
    c1, c2, c3 = st.columns([3, 2, 2])
    with c1:
        st.selectbox("Input", [""] + names, key=state.bind(GROUP),
                     format_func=lambda n: labels[n or names[0]])
        name = state.commit(GROUP) or names[0]
    with c2:
        st.radio("Statistic over tokens", ["mean", "max"], key=state.bind(STAT), horizontal=True,
                 format_func=STAT_LABEL.get)
        stat = state.commit(STAT)
    with c3:
        st.slider("Top-k per layer", 1, 20, key=state.bind(TOP_K),
                  help="A channel recurs when it is among the k largest in at least two layers")
        k = state.commit(TOP_K)
    return next(g for g in groups if g.name == name), stat, k


def model_view(model: str, stats: dict, pres: bool) -> None:
    groups = input_group_rows(model)
    group, stat, k = controls(groups)
    matrix, names = stats_matrix(stats, group.rows, Stat(stat))
    rows = [f"block {b}" for b in range(len(names))]
    k = min(k, matrix.shape[1])
    recurring = recurring_channels(matrix, k)
    info = model_info(model)
    fig = figs.channel_heatmap(matrix.cpu().numpy(), rows, f"{STAT_LABEL[stat]} per input channel, {group.label}",
                               STAT_LABEL[stat], [r.channel for r in recurring], pres)
    common.plot(fig, key="outlier_heatmap")
    shared = len(group.linears[0])
    st.caption(f"{info.display_name}: {len(names)} blocks × {matrix.shape[1]} input channels, log colour. "
               f"The input is {group.fed_by}."
               + (f" The {shared} Linears of each block read the same input, so one row stands for all "
                  f"{shared * len(names)}." if shared > 1 else "")
               + f" Statistics over {samples.manifest()['models'][model]['activation_stats']['tokens']} "
               f"calibration tokens.")
    c1, c2 = (st.container(), st.container()) if pres else st.columns([2, 3])
    with c1:
        st.markdown(f"**Recurring channels** (in the top {k} of at least two blocks)")
        if recurring:
            st.dataframe([{"channel": r.channel, "top-k in blocks": f"{r.layers} of {r.of_layers}",
                           f"largest {STAT_LABEL[stat]}": round(r.peak, 3),
                           "× median channel": round(r.peak_ratio, 1)} for r in recurring[:12]],
                         hide_index=True, width="stretch")
        else:
            st.caption("No channel is in the top k of two blocks for this input.")
    with c2:
        st.markdown("**Why it matters.** When activations are quantized (W8A8), one scale per token covers every "
                    "input channel, so a channel 20× larger than the rest leaves few levels for all the others. "
                    "Even when only weights are quantized, the rounding error of weight column j is multiplied by "
                    "x_j in the output, so errors in the outlier channels' columns count most. LLM.int8() keeps "
                    "such channels in 16 bits; SmoothQuant moves their magnitude into the weights; AWQ scales the "
                    "salient weight columns up before rounding.")
    common.show_code(stats_matrix, recurring_channels)
    common.download_csv("Heatmap data (CSV)", {"channel": range(matrix.shape[1]),
                                                **{f"{n} {stat}_abs": matrix[i].tolist() for i, n in enumerate(names)}},
                        f"{model}-{group.name}-{stat}-abs.csv")


def _show_group(name: str) -> None:
    state.put(GROUP, name)


def layer_view(linear: str, stats: dict | None, w: torch.Tensor, pres: bool, model: str = "") -> None:
    st.subheader(f"The selected layer: {linear}")
    group = next((g for g in input_group_rows(model) if any(linear in b for b in g.linears)), None) if model else None
    if group is not None and group.name != (state.get(GROUP) or input_group_rows(model)[0].name):
        st.button(f"Show its input ({group.label}) in the heatmap", on_click=_show_group, args=(group.name,))
    col_range = weight_channel_range(w)
    if stats is None or linear not in stats:
        common.plot(figs.weight_range(col_range.cpu().numpy(), "Weight range per input channel", presenter=pres))
        top = top_channels(col_range, AWQ_FRACTION)
        st.caption(f"The {top.numel()} input channels ({100 * AWQ_FRACTION:g}%) with the widest weight columns. A "
                   f"column far wider than the rest stretches every per-tensor and per-row scale it shares; "
                   f"without real inputs, whether it also meets large activations cannot be told.")
        st.dataframe([{"channel": int(j), "max |W[:, j]|": float(col_range[j])} for j in top.tolist()],
                     hide_index=True)
        common.show_code(weight_channel_range, top_channels)
        return
    mean_x, max_x = (t.to(w.device) for t in stats[linear])
    if mean_x.numel() != w.shape[1]:
        st.error(f"The statistics have {mean_x.numel()} channels but this weight has {w.shape[1]} inputs.")
        return
    over = over_threshold(max_x, LLM_INT8_THRESHOLD)
    c1, c2 = (st.container(), st.container()) if pres else st.columns(2)
    with c1:
        common.plot(figs.layer_max_abs(max_x.cpu().numpy(), "Largest input per channel, max |x|",
                                       LLM_INT8_THRESHOLD, over.cpu().tolist(), pres))
    with c2:
        common.plot(figs.weight_range(col_range.cpu().numpy(), "Weight range per input channel, max |W[:, j]|",
                                      over.cpu().tolist(), pres))
    top = int(torch.argmax(max_x))
    st.caption(f"**{over.numel()} of {max_x.numel()}** input channels reach LLM.int8()'s outlier magnitude "
               f"{LLM_INT8_THRESHOLD:g} (Dettmers et al. 2022, arXiv 2208.07339, section 3.2); the largest is channel "
               f"**{top}** at **{float(max_x[top]):,.1f}**, {float(max_x[top] / max_x.median()):,.0f}× the median "
               f"channel. Red diamonds on the right: those channels' weight columns.")
    sal = saliency(mean_x, w)
    top_ch = sal.top(AWQ_FRACTION)
    st.markdown(f"**The {100 * AWQ_FRACTION:g}% most salient input channels** ({top_ch.numel()} of "
                f"{sal.channels.numel()}), ranked by mean|x| × mean|W[:, j]|: AWQ (Lin et al. 2023, arXiv "
                f"2306.00978) keeps about 1% of channels from being rounded coarsely and recovers most of the error.")
    st.dataframe([{"rank": i + 1, "channel": int(j), "mean |x|": float(sal.act[j]), "mean |W[:, j]|": float(sal.weight[j]),
                   "saliency": float(sal.scores[j]), "max |x|": float(max_x[j]), "max |W[:, j]|": float(col_range[j]),
                   f"≥ {LLM_INT8_THRESHOLD:g}": "yes" if float(max_x[j]) >= LLM_INT8_THRESHOLD else ""}
                  for i, j in enumerate(top_ch.tolist())], hide_index=True, width="stretch")
    common.show_code(over_threshold, saliency)
    common.download_csv("Per-channel data (CSV)", {
        "channel": range(w.shape[1]), "mean_abs_x": sal.act.tolist(), "max_abs_x": max_x.tolist(),
        "mean_abs_w_col": sal.weight.tolist(), "max_abs_w_col": col_range.tolist(), "saliency": sal.scores.tolist()},
        f"{linear}-channels.csv")


def main():
    sel: Selection = common.page_start("Outlier channels", PARAMS, intro=INTRO)
    model = stats_model(sel)
    linear = sel.tensor.name.removesuffix(".weight") if sel.tensor is not None else ""
    stats = model_stats(model) if model else None
    if stats is not None:
        model_view(model, stats, sel.presenter)
    else:
        st.info("Activation statistics need **real inputs**: the model must be run on text and every Linear's input "
                "recorded. They ship for the bundled samples (MiniLM, SmolLM2) and the MiniLM package; a file of "
                "weights alone has none. Below is what the weight alone shows: its range per input channel.")
    if sel.tensor is None or sel.error:
        if sel.error:
            st.info(sel.error)
        common.page_end(PARAMS)
        return
    try:
        w = sel.weight()
        if stats is not None and linear not in stats:
            st.info(f"{md_literal(sel.tensor.name)} is not the weight of a Linear with activation statistics; pick one "
                    f"(e.g. an FFN or attention weight) in the sidebar to see its channels. Weight range only:")
        layer_view(linear, stats, w, sel.presenter, model)
    except ValueError as e:
        st.error(f"Cannot analyse this tensor: {e}")
    check_yourself.panel("outliers")
    common.page_end(PARAMS)


main()
