"""Query-string parameters of the AWQ, GPTQ and Compare-methods pages, and the two widgets the three pages share
(the spec controls, the "these methods need real inputs" message). The format choice is Layer Lab's shared
FMT/GRAN/GROUP/SYM (ui/params.py: the quiz links `awq?fmt=int4&gs=128`); the keys here are unique app-wide."""
from __future__ import annotations

from explorer.formats import format_names
from explorer.method_views import COMPARE_FORMATS
from ui import params as P
from ui.state import Param, dump_bool, int_in, parse_bool

HOLDOUTS = (0.1, 0.2, 0.25, 0.3, 0.4, 0.5)
DAMPS = (0.001, 0.01, 0.03, 0.1, 0.3, 1.0)
SMOOTH_ALPHAS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)  # SmoothQuant: 0.5 by default, 0.8-0.9 in published Llama runs
N_GRID = 20  # AWQ's alpha grid (explorer.methods.awq_search default)


def parse_float(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{raw!r} is not a number") from None


def dump_float(v: float) -> str:
    return f"{v:g}"


def parse_formats(raw: str) -> list[str]:
    """'int4,nf4' -> ['int4', 'nf4']: at least one, each a registry format, duplicates dropped."""
    items = list(dict.fromkeys(x.strip() for x in raw.split(",") if x.strip()))
    bad = [x for x in items if x not in format_names()]
    if bad or not items:
        raise ValueError(f"{raw!r} names unknown formats {bad}; allowed: {format_names()}")
    return items


def _join(v: list[str]) -> str:
    return ",".join(v)


HOLDOUT = Param("hold", 0.25, parse_float, dump_float, label="held-out fraction", choices=HOLDOUTS)
DAMP = Param("damp", 0.01, parse_float, dump_float, label="GPTQ damping", choices=DAMPS)
ALPHA = Param("aalpha", -1, int_in(-1, N_GRID - 1), label="alpha shown (-1 = the searched one)")
CLIP = Param("aclip", False, parse_bool, dump_bool, label="AWQ clip search")
SMOOTH_ALPHA = Param("sqa", 0.5, parse_float, dump_float, label="SmoothQuant migration strength",
                     choices=SMOOTH_ALPHAS)
FORMATS = Param("cmpf", list(COMPARE_FORMATS), parse_formats, _join, label="formats compared")

SPEC = [P.FMT, P.GRAN, P.GROUP, P.SYM]
AWQ_PAGE = SPEC + [HOLDOUT, ALPHA, CLIP]
GPTQ_PAGE = SPEC + [HOLDOUT, DAMP]
METHODS_PAGE = [FORMATS, P.GRAN, P.GROUP, P.SYM, HOLDOUT, DAMP, SMOOTH_ALPHA]
