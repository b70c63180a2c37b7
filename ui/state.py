"""A page's whole state lives in the URL query string, so a link reopens the exact view.

Each piece of state is a `Param`: its query key, default and a parser that validates a query-string value
(an unknown format, an absurd group size, a tensor that does not exist: the default is used and a notice is
shown, never an exception). Widgets bind to a param through `bind(param)`, which returns the widget key and
seeds it from the canonical value; `publish()` writes the current values back to the URL.

Canonical values live in `st.session_state["_v_<key>"]` (they survive page switches, when Streamlit drops the
state of widgets that were not drawn); widget keys are `"w_<key>"`. A query string that differs from what this
session last wrote (a deep link, a quiz "see it" link, a hand-edited URL) is applied on the next run.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import streamlit as st


@dataclass(frozen=True)
class Param:
    key: str
    default: Any
    parse: Callable[[str], Any] = str            # str -> value; raises ValueError with a message
    dump: Callable[[Any], str] = str             # value -> str
    label: str = ""                              # for notices
    choices: tuple = field(default=())           # when set, parse also checks membership

    def from_query(self, raw: str) -> Any:
        value = self.parse(raw)
        if self.choices and value not in self.choices:
            raise ValueError(f"{raw!r} is not one of {list(self.choices)}")
        return value


def parse_bool(raw: str) -> bool:
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{raw!r} is not 1/0 or true/false")


def dump_bool(v: bool) -> str:
    return "1" if v else "0"


def int_in(lo: int, hi: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            v = int(raw)
        except ValueError:
            raise ValueError(f"{raw!r} is not an integer") from None
        if not lo <= v <= hi:
            raise ValueError(f"{v} is outside {lo}..{hi}")
        return v
    return parse


def _vkey(key: str) -> str:
    return f"_v_{key}"


def wkey(key: str) -> str:
    return f"w_{key}"


def get(param: Param) -> Any:
    return st.session_state.get(_vkey(param.key), param.default)


def put(param: Param, value: Any) -> None:
    st.session_state[_vkey(param.key)] = value
    st.session_state[wkey(param.key)] = value


def notices() -> list[str]:
    return st.session_state.setdefault("_notices", [])


def shown(text: object, limit: int = 240) -> str:
    """Visitor text for a notice, inert: an inline-code span (no markdown links, images, HTML or LaTeX inside),
    one line, no backticks, control characters escaped, at most `limit` characters."""
    s = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text)).replace("`", "'")
    return f"`{s if len(s) <= limit else s[:limit - 12] + '…' + s[-8:]}`"


def note_unknown(params: list[Param]) -> None:
    """A notice naming link keys that none of `params` declares (a mistyped or stale link); publish() drops them."""
    current = {k: st.query_params.get(k) for k in st.query_params.keys()}
    if current == st.session_state.get("_last_url"):
        return
    unknown = sorted(set(current) - {p.key for p in params})
    if unknown:
        names = ", ".join(shown(k, 40) for k in unknown[:5])
        names += f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        notices().append(f"Link parameter{'s' if len(unknown) > 1 else ''} {names} not used on this page: ignored.")


def apply_url(params: list[Param]) -> None:
    """Take values from the query string when it changed since this session last wrote it."""
    current = {k: st.query_params.get(k) for k in st.query_params.keys()}
    if current == st.session_state.get("_last_url"):
        return
    for p in params:
        raw = current.get(p.key)
        if raw is None:
            continue
        try:
            put(p, p.from_query(raw))
        except ValueError as e:
            why = str(e) if len(raw) <= 40 else str(e).replace(repr(raw), repr(raw[:30] + "…"))
            notices().append(f"Link parameter {shown(p.key, 40)} ignored ({shown(why)}); showing the default "
                             f"{p.label or p.key} instead.")


def bind(param: Param) -> str:
    """The widget key for `param`, seeded from the canonical value (so the widget shows the current state)."""
    k = wkey(param.key)
    if k not in st.session_state:
        st.session_state[k] = get(param)
    return k


def commit(param: Param) -> Any:
    """Copy the widget's value to the canonical value and return it."""
    value = st.session_state.get(wkey(param.key), get(param))
    st.session_state[_vkey(param.key)] = value
    return value


def reset_invalid(param: Param, allowed: list | tuple, why: str, fallback: Any = None) -> Any:
    """If the current value is not allowed (e.g. a tensor that is not in this file), fall back with a notice
    (to `fallback` when given and allowed, else the param's default, else the first allowed value)."""
    value = get(param)
    if value in allowed or not allowed:
        return value
    if fallback not in allowed:
        fallback = param.default if param.default in allowed else allowed[0]
    notices().append(f"{why}: {shown(value, 120)} is not available; showing {shown(fallback, 120)} instead.")
    put(param, fallback)
    return fallback


def publish(params: list[Param]) -> None:
    """Write the values of `params` to the URL (non-default values only, so links stay short)."""
    wanted = {}
    for p in params:
        v = get(p)
        if v != p.default:
            wanted[p.key] = p.dump(v)
    current = {k: st.query_params.get(k) for k in st.query_params.keys()}
    if current != wanted:
        st.query_params.from_dict(wanted)
    st.session_state["_last_url"] = wanted
