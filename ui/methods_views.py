"""Widgets shared by the AWQ, GPTQ and Compare-methods pages: the page opening (a tensor with real calibration
inputs, or an explanation). Their format controls are ui/spec_controls.py, shared with Layer Lab."""
from __future__ import annotations

import streamlit as st
import torch

from ui import common, state
from ui import params as P
from ui import params_methods as M
from ui.sidebar import Selection
from ui.sources import builtin_sources

SAMPLE_LAYERS = (("sample:minilm", "encoder.layer.0.output.dense.weight", "MiniLM block 0 FFN output"),
                 ("sample:smollm2", "blocks.11.down.weight", "SmolLM2 blocks.11.down (massive activations)"))


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


def holdout_slider(help: str | None = None) -> float:
    """The held-out fraction of the tokens (the methods pages share it through the link), read back."""
    st.select_slider("Held-out fraction of the tokens", M.HOLDOUTS, key=state.bind(M.HOLDOUT),
                     format_func=lambda f: f"{f:.0%}", help=help)
    return state.commit(M.HOLDOUT)
