"""Widgets shared by the AWQ, GPTQ and Compare-methods pages: the page opening (a tensor with real calibration
inputs, or an explanation), and the format / granularity / group / symmetry controls bound to the URL params."""
from __future__ import annotations

import streamlit as st
import torch

from explorer.formats import FORMATS as REGISTRY
from explorer.formats import format_names
from ui import common, state
from ui import params as P
from ui.sidebar import Selection
from ui.sources import builtin_sources

GROUPS = [16, 32, 64, 128, 256, 512, 1024]
SAMPLE_LAYERS = (("sample:minilm", "encoder.layer.0.output.dense.weight", "MiniLM block 0 FFN output"),
                 ("sample:smollm2", "blocks.11.down.weight", "SmolLM2 blocks.11.down (massive activations)"))


def spec_controls(formats: bool = True):
    """Format (unless `formats` is False), granularity, group size, zero points -> (format name or None,
    granularity, group size, symmetric). Block formats ignore granularity and group size."""
    cols = st.columns([2, 3, 2, 2] if formats else [3, 2, 2])
    name = None
    if formats:
        with cols[0]:
            st.selectbox("Format", format_names(), key=state.bind(P.FMT),
                         format_func=lambda n: f"{n} ({REGISTRY[n].bits}-bit)")
            name = state.commit(P.FMT)
    block = name is not None and REGISTRY[name].is_block
    c_gran, c_group, c_sym = cols[-3:]
    with c_gran:
        if block:
            st.radio("Granularity", [f"block of {REGISTRY[name].block_size}"], horizontal=True, disabled=True)
        else:
            st.radio("Granularity", ["tensor", "channel", "group"], key=state.bind(P.GRAN), horizontal=True,
                     format_func={"tensor": "per tensor", "channel": "per channel", "group": "per group"}.get)
        gran = state.commit(P.GRAN)
    with c_group:
        groups = sorted(set(GROUPS) | {state.get(P.GROUP)})  # a link may carry any size: offer it
        st.select_slider("Group size", groups, key=state.bind(P.GROUP), disabled=block or gran != "group")
        group = state.commit(P.GROUP)
    with c_sym:
        st.toggle("Symmetric", key=state.bind(P.SYM), disabled=name is not None and REGISTRY[name].kind.value != "int",
                  help="Off: an integer zero point per scale (integer formats only), as most AWQ and GPTQ "
                       "checkpoints store INT4")
        sym = state.commit(P.SYM)
    return name, gran, group, sym


def _open_sample(src: str, tensor: str) -> None:
    state.put(P.SRC, src)
    state.put(P.TENSOR, tensor)


def need_inputs(sources) -> None:
    """Explain that these methods need real activations, and offer the bundled layers that have them."""
    st.info("AWQ, GPTQ and SmoothQuant are **calibrated**: they need the real inputs X this layer sees when the "
            "model runs on text, and a file of weights alone has none. They ship for the bundled sample layers "
            "(MiniLM blocks 0 and 5, SmolLM2 block 11). Open one:")
    keys = {s.key for s in sources}
    for src, tensor, label in SAMPLE_LAYERS:
        if src in keys:
            st.button(label, key=f"open_{src}", on_click=_open_sample, args=(src, tensor))


def start(title: str, params: list[state.Param], intro: str) -> tuple[Selection, torch.Tensor] | None:
    """Open a methods page: (selection, real inputs X [tokens, in]), or None after explaining what is missing
    (the page has then already written its URL state)."""
    sel = common.page_start(title, params, intro=intro)
    if not common.require_tensor(sel):
        common.page_end(params)
        return None
    x = sel.inputs()
    if x is None:
        need_inputs(builtin_sources())
        common.page_end(params)
        return None
    return sel, x
