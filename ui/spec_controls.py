"""The format / granularity / group size / symmetry (/ scale dtype) controls, bound to the URL params that Layer
Lab, the methods pages and the quiz's links share (ui/params.py: fmt, gran, gs, sym, sd)."""
from __future__ import annotations

from typing import NamedTuple

import streamlit as st

from explorer.formats import FORMATS as REGISTRY
from explorer.formats import format_names
from ui import params as P
from ui import state

GROUPS = [16, 32, 64, 128, 256, 512, 1024]


class SpecChoice(NamedTuple):
    name: str | None   # format name (None when the page picks formats itself)
    gran: str
    group: int
    sym: bool
    scale: str | None  # scale dtype (None unless asked for)


def spec_controls(formats: bool = True, scale: bool = False) -> SpecChoice:
    """Format (unless `formats` is False), granularity, group size, zero points and, with `scale`, the scale
    dtype. Block formats ignore granularity, group size and scale dtype."""
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
        scale_dtype = None
        if scale:
            st.selectbox("Scale dtype", ["fp16", "bf16", "fp32"], key=state.bind(P.SCALE), disabled=block,
                         help="Scales (and zero points) are rounded to this dtype and counted at its width")
            scale_dtype = state.commit(P.SCALE)
    return SpecChoice(name, gran, group, sym, scale_dtype)
