"""Query-string parameters of the Per-task cliffs page (keys prefixed `c`, unique app-wide)."""
from __future__ import annotations

from explorer.cliffs import CATALOG, DEFAULT_SCHEMES
from explorer.tasks import TASK_SETS
from ui.state import Param, dump_bool, int_in, parse_bool

SUBSETS = (0, 100, 40)  # items per task: 0 = the whole task
TASK_KEYS = tuple(t.key for build in TASK_SETS.values() for t in build())


def parse_schemes(raw: str) -> list[str]:
    keys = [k for k in raw.split(",") if k]
    bad = [k for k in keys if k not in CATALOG]
    if bad or not keys:
        raise ValueError(f"{raw!r} names unknown schemes {bad}; allowed: {list(CATALOG)}")
    return list(dict.fromkeys(keys))


def parse_tolerance(raw: str) -> float:
    try:
        v = float(raw)
    except ValueError:
        raise ValueError(f"{raw!r} is not a number") from None
    if not 0.0 <= v <= 100.0:
        raise ValueError(f"{v} is outside 0..100")
    return v


MODEL = Param("cm", "minilm", choices=("minilm", "smollm2"), label="model")
SCHEMES = Param("cs", list(DEFAULT_SCHEMES), parse_schemes, ",".join, label="schemes")
TOLERANCE = Param("ctol", 5.0, parse_tolerance, lambda v: f"{v:g}", label="tolerance")
SUBSET = Param("cq", 0, int_in(0, 1000), choices=SUBSETS, label="items per task")
RUN = Param("crun", False, parse_bool, dump_bool, label="run the sweep on opening")
FOCUS_SCHEME = Param("cfs", "", choices=("",) + tuple(CATALOG), label="scheme shown in detail")
FOCUS_TASK = Param("cft", "", choices=("",) + TASK_KEYS, label="task shown in detail")
SENS_SCHEME = Param("csx", "int4_t", choices=tuple(CATALOG), label="scheme ranked per layer")
KEEP_K = Param("ck", 4, int_in(0, 210), label="layers kept at 8-bit")
SENS_RUN = Param("csr", False, parse_bool, dump_bool, label="rank layers on opening")
CLIFFS_PAGE = [MODEL, SCHEMES, TOLERANCE, SUBSET, RUN, FOCUS_SCHEME, FOCUS_TASK, SENS_SCHEME, KEEP_K, SENS_RUN]
