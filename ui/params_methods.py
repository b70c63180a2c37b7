"""Query-string parameters of the AWQ, GPTQ and Compare-methods pages, and the two widgets the three pages share
(the spec controls, the "these methods need real inputs" message). The format choice is Layer Lab's shared
FMT/GRAN/GROUP/SYM (ui/params.py: the quiz links `awq?fmt=int4&gs=128`); the keys here are unique app-wide."""
from __future__ import annotations

import streamlit as st

from explorer.formats import FORMATS as REGISTRY
from explorer.formats import format_names
from explorer.method_views import COMPARE_FORMATS
from ui import params as P
from ui import state
from ui.state import Param, dump_bool, int_in, parse_bool

HOLDOUTS = (0.1, 0.2, 0.25, 0.3, 0.4, 0.5)
DAMPS = (0.001, 0.01, 0.03, 0.1, 0.3, 1.0)
SMOOTH_ALPHAS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)  # SmoothQuant: 0.5 by default, 0.8-0.9 in published Llama runs
N_GRID = 20  # AWQ's alpha grid (explorer.methods.awq_search default)


def parse_float(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{raw!r} is not a number") from None


def dump_float(v: float) -> str:
    return f"{v:g}"


def parse_formats(raw: str) -> list[str]:
    """'int4,nf4' -> ['int4', 'nf4']: at least one, each a registry format, duplicates dropped."""
    items = list(dict.fromkeys(x.strip() for x in raw.split(",") if x.strip()))
    bad = [x for x in items if x not in format_names()]
    if bad or not items:
        raise ValueError(f"{raw!r} names unknown formats {bad}; allowed: {format_names()}")
    return items


def _join(v: list[str]) -> str:
    return ",".join(v)


HOLDOUT = Param("hold", 0.25, parse_float, dump_float, label="held-out fraction", choices=HOLDOUTS)
DAMP = Param("damp", 0.01, parse_float, dump_float, label="GPTQ damping", choices=DAMPS)
ALPHA = Param("aalpha", -1, int_in(-1, N_GRID - 1), label="alpha shown (-1 = the searched one)")
CLIP = Param("aclip", False, parse_bool, dump_bool, label="AWQ clip search")
SMOOTH_ALPHA = Param("sqa", 0.5, parse_float, dump_float, label="SmoothQuant migration strength",
                     choices=SMOOTH_ALPHAS)
FORMATS = Param("cmpf", list(COMPARE_FORMATS), parse_formats, _join, label="formats compared")

SPEC = [P.FMT, P.GRAN, P.GROUP, P.SYM]
AWQ_PAGE = SPEC + [HOLDOUT, ALPHA, CLIP]
GPTQ_PAGE = SPEC + [HOLDOUT, DAMP]
METHODS_PAGE = [FORMATS, P.GRAN, P.GROUP, P.SYM, HOLDOUT, DAMP, SMOOTH_ALPHA]


# ---- widgets shared by the three pages (they bind the params above) ----

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
