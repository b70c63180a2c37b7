"""Shared helpers for the app's AppTest suites (tests/test_page_*.py): the app path, an AppTest factory, page
deep links, and plotly figure decoding (plotly >= 6 sends numpy arrays as base64 `{dtype, bdata, shape}`).

Not a test module (no `test_` prefix); page tests import it as `from app_helpers import ...` (pytest puts tests/
on sys.path in its default rootdir-relative import mode).

Why `new_app` patches Streamlit: AppTest builds a fresh `PagesManager` on every run, and because this repository
has a `pages/` folder, Streamlit then takes its legacy "pages directory" path on every run, which runs a
switched-to page file directly. A real server takes that path only on its very first script run, and
ui.navigation.ensure_entry() then reruns through app.py. `new_app` makes each AppTest run behave like a server
after that first run (no extra rerun per run); tests/browser covers the first run of a fresh server.
"""
from __future__ import annotations

import base64
import contextlib
import json
import sys
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest

REPO_ROOT = Path(__file__).resolve().parent.parent
APP_PATH = REPO_ROOT / "app.py"
if str(REPO_ROOT) not in sys.path:  # the app's packages (ui, pages' imports) import from the repo root
    sys.path.insert(0, str(REPO_ROOT))
TIMEOUT = 60  # s; the first run imports torch and loads a weight (AppTest's default of 3 s is too short)


@contextlib.contextmanager
def _navigation_only() -> Iterator[None]:
    """Within the block, a new PagesManager does not switch on the legacy pages/ folder mode."""
    original = PagesManager.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    PagesManager.__init__ = init
    try:
        yield
    finally:
        PagesManager.__init__ = original


class _AppTest(AppTest):
    def _run(self, widget_state=None, timeout=None):  # every run (at.run(), widget.run()) goes through here
        with _navigation_only():
            return super()._run(widget_state, timeout=timeout)


def new_app(timeout: float = TIMEOUT) -> AppTest:
    """An AppTest of app.py (not run yet)."""
    return _AppTest(APP_PATH, default_timeout=timeout)


def open_page(page: str | None = None, query: dict[str, str] | None = None, at: AppTest | None = None) -> AppTest:
    """Open `page` ("pages/layer_lab.py"; None = Home) with `query` as its link parameters and run it.

    With `at` None a new session starts: Home opens first, as it does for a visitor (AppTest cannot switch to a
    st.navigation page before a first run); for Home itself the link is there from the first run."""
    if at is None:
        at = new_app()
        if page is None:
            _set_query(at, query)
            return at.run()
        at.run()
    if page is not None:
        at.switch_page(page)
    _set_query(at, query)
    return at.run()


def _set_query(at: AppTest, query: dict[str, str] | None) -> None:
    if query is not None:
        at.query_params.clear()
        at.query_params.update(query)


def exceptions(at: AppTest) -> list[str]:
    return [e.value for e in at.exception]


def assert_no_exception(at: AppTest) -> None:
    assert not at.exception, "the app raised: " + "\n".join(
        f"{e.value}\n{''.join(e.stack_trace)}" for e in at.exception)


def warnings(at: AppTest) -> list[str]:
    return [w.value for w in at.warning]


def errors(at: AppTest) -> list[str]:
    """Every st.error text of the last run (page and sidebar)."""
    return [e.value for e in at.error]


def metrics(at: AppTest) -> dict[str, str]:
    """Metric label -> displayed value (first occurrence of each label)."""
    out: dict[str, str] = {}
    for m in at.metric:
        out.setdefault(m.label, m.value)
    return out


def query(at: AppTest) -> dict[str, str]:
    """The URL query string the last run left (what a copied link carries)."""
    return {k: at.query_params[k] for k in at.query_params}


def decode_arrays(obj: Any) -> Any:
    """A copy of a plotly JSON object with every base64 `{dtype, bdata[, shape]}` array turned into a numpy array."""
    if isinstance(obj, dict):
        if "bdata" in obj and "dtype" in obj:
            a = np.frombuffer(base64.b64decode(obj["bdata"]), dtype=np.dtype(obj["dtype"]).newbyteorder("<"))
            shape = obj.get("shape")
            if shape:
                a = a.reshape([int(s) for s in str(shape).split(",")])
            return a
        return {k: decode_arrays(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [decode_arrays(v) for v in obj]
    return obj


def figure_json(fig) -> dict:
    """A plotly Figure as the JSON a browser receives, arrays decoded."""
    return decode_arrays(json.loads(fig.to_json()))


def plotly_specs(at: AppTest) -> list[dict]:
    """Every plotly chart of the last run, as decoded figure dicts (data, layout), in page order."""
    return [decode_arrays(json.loads(c.proto.spec)) for c in at.get("plotly_chart")]


def plotly_payload_bytes(at: AppTest) -> int:
    """Total size of the plotly figure JSON the page sends."""
    return sum(len(c.proto.spec) for c in at.get("plotly_chart"))


def title_text(fig: dict) -> str:
    t = fig.get("layout", {}).get("title", {})
    return t.get("text", "") if isinstance(t, dict) else str(t)


def axis_title(fig: dict, axis: str = "xaxis") -> str:
    t = fig.get("layout", {}).get(axis, {}).get("title", {})
    return t.get("text", "") if isinstance(t, dict) else str(t)


def safetensors_bytes(tensors: dict) -> bytes:
    """A .safetensors file in memory (safetensors' own writer: no pickle)."""
    from safetensors.torch import save
    return save({k: v.contiguous() for k, v in tensors.items()})
