"""Page furniture shared by every page: start/end (URL state, notices), charts, show-the-code, CSV downloads,
presenter mode."""
from __future__ import annotations

import contextlib
import csv
import functools
import inspect
import io
import os
import threading
from collections import deque
from typing import Callable, Iterable, Iterator

import plotly.graph_objects as go
import streamlit as st

from ui import navigation, state
from ui import params as P
from ui.sidebar import Selection, selection

PRESENTER_CSS = """
<style>
html, body, [data-testid="stAppViewContainer"] { font-size: 22px; }
[data-testid="stMetricValue"] { font-size: 2.6rem; }
[data-testid="stMarkdownContainer"] p, [data-testid="stMarkdownContainer"] li { font-size: 1.35rem; }
h1 { font-size: 3rem !important; }
</style>
"""


# Heavy library calls running at once, server-wide. Each needs tens of MB while it runs, so without a bound twenty
# visitors changing settings together would need twenty working sets at once (measured by scripts/load_test.py);
# with one torch thread per server, more slots than cores gains no speed anyway.
COMPUTE_SLOTS = int(os.environ.get("EXPLORER_COMPUTE_SLOTS", "2"))


class _FairSlots:
    """A first-come-first-served counting semaphore (threading.Semaphore lets a newcomer overtake a woken waiter,
    which starved some visitors for a minute under load)."""

    def __init__(self, n: int) -> None:
        self._cv, self._free, self._line = threading.Condition(), n, deque()

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        me = object()
        with self._cv:
            self._line.append(me)
            try:
                self._cv.wait_for(lambda: self._free > 0 and self._line[0] is me)
            finally:
                self._line.remove(me)
            self._free -= 1
            self._cv.notify_all()  # the next in line may start too
        try:
            yield
        finally:
            with self._cv:
                self._free += 1
                self._cv.notify_all()


@st.cache_resource(show_spinner=False)
def _compute_slots() -> _FairSlots:
    return _FairSlots(COMPUTE_SLOTS)


def compute_slot():
    """Hold one of the server's COMPUTE_SLOTS while a heavy library call runs, first come first served (wrap the
    call inside the page's cached function, so cache hits never wait)."""
    return _compute_slots().hold()


def page_start(title: str, params: list[state.Param], intro: str = "") -> Selection:
    """Apply the page's link parameters, draw the title and any notices; returns the sidebar selection."""
    navigation.ensure_entry()
    state.apply_url(params)
    state.note_unknown(P.SIDEBAR + params)
    sel = selection()
    if sel.presenter:
        st.markdown(PRESENTER_CSS, unsafe_allow_html=True)
    st.title(title)
    if intro:
        st.markdown(intro)
    for n in state.notices():
        st.warning(n)
    state.notices().clear()
    return sel


def page_end(params: list[state.Param]) -> None:
    """Write the page's state to the URL so the link reopens this exact view."""
    state.publish(P.SIDEBAR + params)


def plot(fig: go.Figure, key: str | None = None) -> None:
    # theme=None: the figure's own styling (explorer.plots.common.style, presenter sizes included) applies as built.
    st.plotly_chart(fig, width="stretch", key=key, theme=None, config={"displaylogo": False})


def show_code(*funcs: Callable, label: str = "Show the code behind this chart") -> None:
    """An expander with the source of the library functions that computed what is shown."""
    with st.expander(label):
        for f in funcs:
            st.caption(f"`{f.__module__}.{f.__qualname__}`")
            st.code(_source(f), language="python")


@functools.lru_cache(maxsize=256)
def _source(f: Callable) -> str:
    """inspect.getsource, once per function object (~9 ms a page otherwise, on every rerun; an edited module
    is reloaded as new function objects, so the cache never shows stale code)."""
    return inspect.getsource(f)


def csv_bytes(columns: dict[str, Iterable]) -> bytes:
    cols = {k: list(v) for k, v in columns.items()}
    n = max((len(v) for v in cols.values()), default=0)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(cols.keys())
    for i in range(n):
        w.writerow([v[i] if i < len(v) else "" for v in cols.values()])
    return buf.getvalue().encode()


def download_csv(label: str, columns: dict[str, Iterable], filename: str, key: str | None = None) -> None:
    """A CSV download of `columns`, formatted only when clicked (a big layer's 11008 rows take ~15 ms, too much for
    every rerun); the columns are taken now, so a one-shot iterable serves every click."""
    cols = {k: list(v) for k, v in columns.items()}
    st.download_button(label, lambda: csv_bytes(cols), file_name=filename, mime="text/csv", key=key)


def require_tensor(sel: Selection) -> bool:
    """Show why there is nothing to analyse (no file, malformed upload, ...) and say whether to go on."""
    if sel.error or sel.tensor is None:
        st.info(sel.error or "Pick a tensor in the sidebar.")
        return False
    return True
