"""Query-string parameters of the Formats side by side page (its own; the highlighted scheme is Layer Lab's
shared FMT/GRAN/GROUP/SYM from ui/params.py)."""
from __future__ import annotations

from ui import params as P
from ui.state import Param, dump_bool, parse_bool

ERROR_AXIS = Param("ferr", "weight", choices=("weight", "output"), label="error axis")
HIST_LOG = Param("flog", True, parse_bool, dump_bool, label="log counts")
FORMATS_PAGE = [P.FMT, P.GRAN, P.GROUP, P.SYM, ERROR_AXIS, HIST_LOG]
