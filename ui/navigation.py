"""The app's pages, in one table, and the guard that makes a first-visit deep link work.

Streamlit keeps a legacy rule for apps with a `pages/` folder: until some script calls `st.navigation`, a
server runs page files directly (multipage v1). So when a fresh server's very first request is a deep link
(`/layer_lab?fmt=fp8_e4m3`), the page file would run without app.py: no sidebar, no selection. Every page
therefore starts with `ensure_entry()`: if app.py did not run it, it declares the navigation (which switches
Streamlit to the `st.navigation` mode for good) and reruns, so app.py runs and opens the same URL.
"""
from __future__ import annotations

import streamlit as st

# (file, title, url_path, icon). The first page is the default and lives at "/".
PAGES = [
    ("pages/home.py", "Home", "home", ":material/home:"),
    ("pages/layer_lab.py", "Layer Lab", "layer_lab", ":material/biotech:"),
    ("pages/formats.py", "Formats side by side", "formats", ":material/compare:"),
    ("pages/outliers.py", "Outlier channels", "outliers", ":material/scatter_plot:"),
    ("pages/awq.py", "AWQ", "awq", ":material/tune:"),
    ("pages/gptq.py", "GPTQ", "gptq", ":material/functions:"),
    ("pages/methods.py", "Compare methods", "methods", ":material/leaderboard:"),
    ("pages/memory.py", "Memory & bandwidth", "memory", ":material/memory:"),
    ("pages/cliffs.py", "Per-task cliffs", "cliffs", ":material/warning:"),
    ("pages/quiz.py", "Quiz", "quiz", ":material/quiz:"),
]

_ENTRY = "_entry_running"


def build():
    """st.navigation over PAGES (call once per run, from app.py)."""
    return st.navigation([st.Page(f, title=t, url_path=u, icon=i, default=(n == 0))
                          for n, (f, t, u, i) in enumerate(PAGES)])


def run_entry(draw_sidebar) -> None:
    """app.py's body: navigation, the shared sidebar, then the selected page."""
    nav = build()
    st.session_state[_ENTRY] = True
    try:
        draw_sidebar()
        nav.run()
    finally:
        st.session_state[_ENTRY] = False


def ensure_entry() -> None:
    """At the top of every page: rerun through app.py when Streamlit ran this page file directly."""
    if not st.session_state.get(_ENTRY):
        build()
        st.rerun()
