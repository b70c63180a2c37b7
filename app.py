"""Quantization explorer: the app's entry file (`streamlit run app.py`).

It registers the pages, draws the shared sidebar once per run, then runs the selected page. Pages live in
pages/ (one file each, thin); the computing happens in the `explorer` library.
"""
import os

import streamlit as st
import torch

st.set_page_config(page_title="Quantization explorer", page_icon="🔬", layout="wide")

# One torch thread per server by default: on a small shared CPU (a hosted demo, 2 cores) more threads than
# cores slow every visitor down ~10x whenever another process runs. A host with cores to spare can raise it.
torch.set_num_threads(int(os.environ.get("EXPLORER_TORCH_THREADS", "1")))

from ui import navigation, sidebar  # noqa: E402  (set_page_config must come first)

navigation.run_entry(sidebar.render)
