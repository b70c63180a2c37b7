"""Query-string state (ui.state, ui.params, ui/params_*.py): every link value is validated, every default and
choice survives its own link, keys are unique app-wide; and in a running script a bad value becomes a notice with
the default kept, a good one reaches the widget, and the URL carries only non-default values."""
import importlib
import pkgutil

import pytest
from streamlit.testing.v1 import AppTest

import app_helpers  # noqa: F401  (puts the repo root on sys.path for `ui`)
import ui
from ui import params as P
from ui.state import Param, dump_bool, int_in, parse_bool


def _all_params() -> list[Param]:
    """Every Param declared in ui/params.py and ui/params_<page>.py (shared objects counted once)."""
    seen: dict[int, Param] = {}
    names = ["ui.params"] + [f"ui.{m.name}" for m in pkgutil.iter_modules(ui.__path__) if m.name.startswith("params_")]
    for name in names:
        for value in vars(importlib.import_module(name)).values():
            if isinstance(value, Param):
                seen[id(value)] = value
    return list(seen.values())


PARAMS = _all_params()


def test_keys_are_unique_app_wide():
    keys = [p.key for p in PARAMS]
    assert len(keys) == len(set(keys)), sorted(k for k in keys if keys.count(k) > 1)
    assert {"src", "t", "dev", "present", "fmt", "gran", "gs", "sym", "sd", "log"} <= set(keys)


@pytest.mark.parametrize("p", PARAMS, ids=lambda p: p.key)
def test_default_and_every_choice_survive_their_own_link(p):
    assert p.from_query(p.dump(p.default)) == p.default
    for choice in p.choices:
        assert p.from_query(p.dump(choice)) == choice


@pytest.mark.parametrize("p, raw, match", [
    (P.FMT, "int9", r"'int9' is not one of \['int2'"),
    (P.FMT, "", r"'' is not one of"),
    (P.GROUP, "0", r"0 is outside 1\.\.65536"),
    (P.GROUP, "99999999", r"99999999 is outside 1\.\.65536"),
    (P.GROUP, "-4", r"-4 is outside"),
    (P.GROUP, "12abc", r"'12abc' is not an integer"),
    (P.GROUP, "1e3", r"'1e3' is not an integer"),
    (P.GRAN, "row", r"'row' is not one of \['tensor', 'channel', 'group'\]"),
    (P.SYM, "maybe", r"'maybe' is not 1/0 or true/false"),
    (P.PRESENT, "2", r"'2' is not 1/0"),
    (P.DEVICE, "tpu", r"'tpu' is not one of \['auto', 'cpu', 'cuda'\]"),
    (P.SCALE, "fp64", r"'fp64' is not one of"),
    (P.LOGY, "", r"'' is not 1/0"),
], ids=lambda v: v.key if isinstance(v, Param) else None)
def test_bad_link_values_raise_a_message_naming_value_and_allowed_set(p, raw, match):
    with pytest.raises(ValueError, match=match):
        p.from_query(raw)


def test_parsers_accept_what_they_promise():
    assert [parse_bool(v) for v in ("1", "true", "Yes", "ON", "0", "false", "no", "OFF")] == [True] * 4 + [False] * 4
    assert dump_bool(True) == "1" and dump_bool(False) == "0"
    within = int_in(1, 65536)
    assert within("1") == 1 and within("65536") == 65536 and within(" 64 ") == 64
    with pytest.raises(ValueError, match="65537 is outside 1..65536"):
        within("65537")
    assert P.GROUP.from_query("64") == 64 and P.FMT.from_query("nf4") == "nf4"


# ---- in a running script ----

def _mini_app():
    """A page with one selectbox and one number, bound to FMT and GROUP the way pages bind them."""
    import streamlit as st

    from ui import state
    from ui.params import FMT, GROUP

    state.apply_url([FMT, GROUP])
    state.reset_invalid(FMT, [c for c in FMT.choices if c != "int2"], "Format")  # as the sidebar does for tensors
    st.selectbox("Format", FMT.choices, key=state.bind(FMT))
    state.commit(FMT)
    st.number_input("Group", 1, 65536, key=state.bind(GROUP))
    state.commit(GROUP)
    for n in state.notices():
        st.warning(n)
    state.notices().clear()
    state.publish([FMT, GROUP])


def _run(query: dict | None = None, at: AppTest | None = None) -> AppTest:
    at = at or AppTest.from_function(_mini_app, default_timeout=30)
    if query is not None:
        at.query_params.clear()
        at.query_params.update(query)
    return at.run()


def test_defaults_give_an_empty_query_and_no_notice():
    at = _run()
    assert not at.exception and not at.warning
    assert at.selectbox(key="w_fmt").value == "int4" and at.number_input(key="w_gs").value == 128
    assert dict(at.query_params) == {}


def test_good_link_values_reach_the_widgets_and_stay_in_the_url():
    at = _run({"fmt": "nf4", "gs": "64"})
    assert not at.warning
    assert at.selectbox(key="w_fmt").value == "nf4" and at.number_input(key="w_gs").value == 64
    assert dict(at.query_params) == {"fmt": "nf4", "gs": "64"}


def test_a_bad_value_is_a_notice_and_the_default_while_good_ones_still_apply():
    at = _run({"fmt": "int9", "gs": "64"})
    assert not at.exception
    assert len(at.warning) == 1 and "`fmt` ignored" in at.warning[0].value and "int9" in at.warning[0].value
    assert at.selectbox(key="w_fmt").value == "int4" and at.number_input(key="w_gs").value == 64
    assert dict(at.query_params) == {"gs": "64"}  # the bad value is gone from the link


@pytest.mark.parametrize("gs", ["0", "99999999", "abc"])
def test_absurd_group_sizes_fall_back_to_the_default(gs):
    at = _run({"gs": gs})
    assert not at.exception and len(at.warning) == 1 and "`gs` ignored" in at.warning[0].value
    assert at.number_input(key="w_gs").value == 128


def test_a_value_not_available_here_falls_back_with_a_notice():
    at = _run({"fmt": "int2"})  # a valid format that this mini page does not offer
    assert "`int2` is not available; showing `int4` instead" in at.warning[0].value
    assert at.selectbox(key="w_fmt").value == "int4"
    assert dict(at.query_params) == {}


def test_widget_changes_after_a_deep_link_stick_and_a_new_link_applies_again():
    at = _run({"fmt": "nf4"})
    at.selectbox(key="w_fmt").set_value("int8").run()
    assert at.selectbox(key="w_fmt").value == "int8"  # the old link does not pull it back
    assert dict(at.query_params) == {"fmt": "int8"}
    at.run()
    assert at.selectbox(key="w_fmt").value == "int8"
    at = _run({"fmt": "fp8_e5m2"}, at)  # a link opened later in the same session
    assert at.selectbox(key="w_fmt").value == "fp8_e5m2"
    assert dict(at.query_params) == {"fmt": "fp8_e5m2"}
