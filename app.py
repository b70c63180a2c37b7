"""Quantization explorer: the app's entry file (`streamlit run app.py`).

It registers the pages, draws the shared sidebar once per run, then runs the selected page. Pages live in
pages/ (one file each, thin); the computing happens in the `explorer` library.
"""
import streamlit as st

st.set_page_config(page_title="Quantization explorer", page_icon="🔬", layout="wide")

from ui import sidebar  # noqa: E402  (set_page_config must come first)

# (file, title, url_path, icon). The first page is the default and lives at "/".
PAGES = [
    ("pages/home.py", "Home", "home", ":material/home:"),
    ("pages/layer_lab.py", "Layer Lab", "layer_lab", ":material/biotech:"),
]

navigation = st.navigation([st.Page(f, title=t, url_path=u, icon=i, default=(n == 0))
                            for n, (f, t, u, i) in enumerate(PAGES)])
sidebar.render()
navigation.run()
