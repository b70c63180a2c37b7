"""The shared sidebar: weight source, a tensor picker grouped by block, the device, presenter mode.

`render()` runs once per script run (from app.py) and leaves a `Selection` for the page in session state;
pages read it with `selection()`. Every problem (a malformed upload, a missing tensor, no CUDA) becomes a
message in the sidebar or the page, never an exception.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import streamlit as st
import torch

from explorer.device import cuda_available, resolve_device
from explorer.loader import SafetensorsError, TensorInfo
from ui import params as P
from ui import state
from ui.sources import MAX_UPLOAD_MB, Source, builtin_sources, calibration_inputs, confine, list_source, \
    load_weight, local_dirs, upload_source
from ui.text import md_literal

UPLOAD, LOCAL = "upload", "local"
# A good first view per built-in source: the layer with the famous outliers.
DEFAULT_TENSOR = {"sample:minilm": "encoder.layer.0.output.dense.weight", "pkg:minilm": "encoder.layer.0.output.dense.weight",
                  "sample:smollm2": "blocks.11.down.weight"}


@dataclass(frozen=True, eq=False)
class Selection:
    source: Source | None
    tensor: TensorInfo | None
    device: torch.device
    presenter: bool
    infos: tuple[TensorInfo, ...] = ()
    error: str = ""
    data: bytes | None = field(default=None, repr=False)

    def weight(self) -> torch.Tensor:
        """The selected tensor, shared by every session: never mutate it."""
        return load_weight(self.source, self.tensor.name, self.device, self.data)

    def inputs(self) -> torch.Tensor | None:
        """Real calibration inputs X [tokens, in] of the selected weight, when the samples have them."""
        if self.tensor is None or self.source is None:
            return None
        return calibration_inputs(self.source, self.tensor.name, self.device)


def selection() -> Selection:
    return st.session_state["_selection"]


def _source_choice(builtins: list[Source]) -> tuple[Source | None, bytes | None, str]:
    keys = [s.key for s in builtins] + [UPLOAD] + ([LOCAL] if local_dirs() else [])
    labels = {s.key: s.label for s in builtins} | {UPLOAD: "Upload a .safetensors file", LOCAL: "A file or model folder on this server"}
    state.reset_invalid(P.SRC, keys, "Weight source")
    choice = st.selectbox("Weights", keys, key=state.bind(P.SRC), format_func=labels.get)
    state.commit(P.SRC)
    if choice == UPLOAD:
        up = st.file_uploader(f"safetensors file (max {MAX_UPLOAD_MB} MB; pickle files are refused)", key="upload",
                              max_upload_size=MAX_UPLOAD_MB)  # the browser refuses bigger files before sending
        if up is None:
            return None, None, "Upload a `.safetensors` file to explore its tensors."
        try:
            data = up.getvalue()
            return upload_source(up.name, data), data, ""
        except ValueError as e:
            return None, None, str(e)
    if choice == LOCAL:
        text = st.text_input("Path on the server", key="local_path",
                             help="A .safetensors file or a Hugging Face model folder inside the allowed folders")
        if not text:
            return None, None, "Type the path of a .safetensors file or model folder."
        try:
            p = confine(text)
        except ValueError as e:
            return None, None, str(e)
        return Source(f"local:{p}", f"local: {p.name}", str(p)), None, ""
    src = next(s for s in builtins if s.key == choice)
    return src, None, ""


def _tensor_picker(source: Source, infos: list[TensorInfo]) -> TensorInfo | None:
    good = [i for i in infos if i.quantizable]
    bad = [i for i in infos if not i.quantizable]
    if not good:
        st.warning("No 2-D floating-point weight in this file.")
        return None
    names = [i.name for i in good]
    default = DEFAULT_TENSOR.get(source.key, names[0])
    default = default if default in names else names[0]
    previous_source = st.session_state.get("_tensor_source")
    st.session_state["_tensor_source"] = source.key
    if not state.get(P.TENSOR) or (previous_source not in (None, source.key) and state.get(P.TENSOR) not in names):
        state.put(P.TENSOR, default)  # first visit, or the visitor switched sources: that source's default, quietly
    current = state.reset_invalid(P.TENSOR, names, "Tensor", fallback=default)
    by_name = {i.name: i for i in good}
    blocks = list(dict.fromkeys(i.block for i in good))
    if len(blocks) > 1:
        cur_block = by_name[current].block
        if st.session_state.get("w_block") not in blocks or st.session_state.get("_block_for") != current:
            st.session_state["w_block"] = cur_block
        block = st.selectbox("Block", blocks, key="w_block")
        st.session_state["_block_for"] = current
        if by_name[current].block != block:  # the user picked another block: go to its first tensor
            current = next(i.name for i in good if i.block == block)
            state.put(P.TENSOR, current)
            st.session_state["_block_for"] = current
        names = [i.name for i in good if i.block == block]
    st.selectbox("Tensor", names, key=state.bind(P.TENSOR),
                 format_func=lambda n: f"{n}  {list(by_name[n].shape)} {by_name[n].dtype}")
    name = state.commit(P.TENSOR)
    if bad:
        with st.expander(f"{len(bad)} tensors not quantizable here"):
            for i in bad:
                st.caption(f"{md_literal(i.name)} {list(i.shape)} {i.dtype}: {i.reason}")
    return by_name.get(name)


def _device() -> torch.device:
    st.radio("Device", ["auto", "cpu", "cuda"], key=state.bind(P.DEVICE), horizontal=True,
             help="auto = CUDA when this server has a GPU, else CPU")
    choice = state.commit(P.DEVICE)
    if choice == "cuda" and not cuda_available():
        st.caption(":orange[No CUDA device on this server: using the CPU.]")
        return torch.device("cpu")
    return resolve_device(choice)


def render() -> Selection:
    """Draw the sidebar and store the selection for the page."""
    state.apply_url(P.SIDEBAR)
    with st.sidebar:
        st.markdown("### Weights")
        source, data, error = _source_choice(builtin_sources())
        tensor, infos = None, []
        if source is not None:
            try:
                infos = list_source(source, data)
            except SafetensorsError as e:
                error = f"This file cannot be read as safetensors: {e}"
            else:
                if source.caveat:
                    st.caption(source.caveat)
                tensor = _tensor_picker(source, infos)
                if tensor is None and not error:
                    error = "Pick a source with at least one 2-D floating-point weight."
        if error:
            st.error(error)
        st.markdown("### View")
        device = _device()
        st.toggle("Presenter mode", key=state.bind(P.PRESENT), help="Large type and full-width charts for a projector")
        presenter = state.commit(P.PRESENT)
    sel = Selection(source, tensor, device, presenter, tuple(infos), error, data)
    st.session_state["_selection"] = sel
    return sel
