"""Hostile and mistyped links against the whole app (AppTest): every value is validated, a bad one gives the
default view with a notice, never an exception; notices quote visitor text short and inert (no markdown links or
images a crafted link could plant); unknown keys are named and dropped; local-path mode is off unless the host
enables it, and confined when on.

Complements tests/test_ui_state.py (the parsers and a mini page) and tests/test_page_layer_lab.py (one bad value
at a time on Layer Lab: fmt, gs, t, dev); here: booleans, many bad values at once, unknown keys, hostile text, the
source parameter, every page, and the local-path UI.
"""
from __future__ import annotations

import importlib
import re

import pytest
import torch
from safetensors.torch import save_file

from app_helpers import assert_no_exception, errors, metrics, open_page, query, warnings
from ui import params as P
from ui.sources import LOCAL_DIRS_ENV

LAB = "pages/layer_lab.py"
GARBAGE = "\x00<b>`x`</b> $x$ [y](http://evil.example) " + "9" * 300
LINKY = re.compile(r"\[[^\]]*\]\(|https?://")  # a markdown link or image, or a bare URL


def live_markdown(note: str) -> str:
    """What of a notice markdown would interpret: everything outside inline-code spans."""
    return re.sub(r"`[^`]*`", "", note)


@pytest.fixture(scope="module")
def lab():
    return open_page(LAB)


@pytest.mark.parametrize("link", [{"sym": "maybe"}, {"log": "2"}, {"present": "yes please"}, {"sym": ""}],
                         ids=["sym", "log", "present", "empty"])
def test_bad_booleans_give_the_default_view_with_a_notice(lab, link):
    at = open_page(LAB, link)
    assert_no_exception(at)
    (key, raw), = link.items()
    notes = warnings(at)
    assert len(notes) == 1 and f"`{key}` ignored" in notes[0], notes
    assert at.toggle(key="w_sym").value is True and at.toggle(key="w_log").value is True
    assert at.sidebar.toggle(key="w_present").value is False
    assert metrics(at) == metrics(lab) and query(at) == query(lab)


def test_every_bad_value_at_once_is_one_notice_each_and_the_default_view(lab):
    # (a missing tensor, `t`, has its own tests in test_page_layer_lab.py)
    link = {"src": "nope", "dev": "tpu", "present": "2", "fmt": "int9", "gran": "row",
            "gs": "-1", "sym": "x", "sd": "fp64", "log": "y"}
    at = open_page(LAB, link)
    assert_no_exception(at)
    notes = warnings(at)
    assert len(notes) == len(link), notes
    for key in ("dev", "present", "fmt", "gran", "gs", "sym", "sd", "log"):
        assert any(f"`{key}` ignored" in n for n in notes), key
    assert any("`nope` is not available" in n for n in notes)  # the source, checked against the offered ones
    assert metrics(at) == metrics(lab) and query(at) == query(lab)


def test_unknown_keys_are_named_dropped_and_the_rest_applies(lab):
    at = open_page(LAB, {"fmt": "int8", "colour": "red", "fmtt": "nf4"})
    assert_no_exception(at)
    notes = warnings(at)
    assert len(notes) == 1 and "`colour`" in notes[0] and "`fmtt`" in notes[0] and "not used" in notes[0], notes
    assert at.selectbox(key="w_fmt").value == "int8"
    assert query(at) == {**query(lab), "fmt": "int8"}


def test_streamlits_own_keys_are_not_unknown():
    at = open_page(LAB, {"embed": "true", "embed_options": "light_theme"})
    assert_no_exception(at)
    assert not warnings(at)


@pytest.mark.parametrize("key", ["fmt", "t", "src", "gs", "colour"])
def test_hostile_text_is_quoted_short_and_inert(key):
    at = open_page(LAB, {key: GARBAGE})
    assert_no_exception(at)
    notes = warnings(at)
    assert len(notes) == 1, notes
    note = notes[0]
    assert len(note) < 400 and "\x00" not in note, note
    live = live_markdown(note)
    assert not LINKY.search(live) and "<b>" not in live and "$" not in live, note
    assert metrics(at)  # the default view is drawn


def test_local_paths_are_off_unless_the_host_enables_them(monkeypatch):
    monkeypatch.delenv(LOCAL_DIRS_ENV, raising=False)
    at = open_page(LAB, {"src": "local"})
    assert_no_exception(at)
    assert "local" not in at.sidebar.selectbox(key="w_src").options
    assert any("`local` is not available" in n for n in warnings(at))
    assert at.sidebar.selectbox(key="w_src").value == P.SRC.default


def test_local_paths_are_confined_in_the_app(tmp_path, monkeypatch):
    allowed, secret = tmp_path / "models", tmp_path / "secret"
    allowed.mkdir()
    secret.mkdir()
    save_file({"proj.weight": torch.randn(16, 256)}, str(allowed / "m.safetensors"))
    save_file({"stolen.weight": torch.randn(16, 256)}, str(secret / "s.safetensors"))
    (allowed / "link.safetensors").symlink_to(secret / "s.safetensors")
    monkeypatch.setenv(LOCAL_DIRS_ENV, str(allowed))
    at = open_page(LAB, {"src": "local"})
    assert_no_exception(at)
    for bad in [str(secret / "s.safetensors"), "../secret/s.safetensors", "link.safetensors",
                str(tmp_path / "models2"), "/etc/passwd"]:
        at.sidebar.text_input(key="local_path").set_value(bad).run()
        assert_no_exception(at)
        assert any("outside the folders this server allows" in e or "does not exist" in e for e in errors(at)), bad
        assert not metrics(at)
    at.sidebar.text_input(key="local_path").set_value("m.safetensors").run()
    assert_no_exception(at)
    assert at.sidebar.selectbox(key="w_t").value == "proj.weight" and metrics(at)


def _all_params() -> list:
    """Every Param declared app-wide (ui/params.py and ui/params_<page>.py)."""
    import pkgutil

    import ui
    from ui.state import Param
    names = ["ui.params"] + [f"ui.{m.name}" for m in pkgutil.iter_modules(ui.__path__) if m.name.startswith("params_")]
    found = {id(v): v for n in names for v in vars(importlib.import_module(n)).values() if isinstance(v, Param)}
    return list(found.values())


def _pages() -> list[str]:
    from ui.navigation import PAGES
    return [f for f, *_ in PAGES]


@pytest.mark.parametrize("page", _pages())
def test_every_page_survives_garbage_in_every_parameter(page):
    """Every key of every page at once, each with hostile text: on each page its own keys are notices, the others
    one 'not used on this page' notice; nothing raises, nothing hostile reaches the link."""
    params = _all_params()
    at = open_page(page, {p.key: GARBAGE for p in params})
    assert_no_exception(at)
    assert at.title, "the page drew nothing"
    notes = [n for n in warnings(at) if "Link parameter" in n or "is not available" in n]  # not the page's own
    assert notes, "no notice for the bad link"
    assert all(len(n) < 400 and not LINKY.search(live_markdown(n)) for n in notes), notes
    assert GARBAGE not in str(query(at))  # nothing hostile survives into the link a visitor would share
