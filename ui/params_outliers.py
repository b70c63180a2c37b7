"""Query-string parameters of the Outlier channels page."""
from __future__ import annotations

from explorer.models.registry import MODELS
from ui.state import Param, int_in

# "" = the model's first input group (the attention input); otherwise a registry input-group name (checked per model on the page)
GROUP_NAMES = ("",) + tuple(dict.fromkeys(g.name for m in MODELS.values() for g in m.input_groups))

STAT = Param("ostat", "max", choices=("mean", "max"), label="statistic")
GROUP = Param("ogrp", "", choices=GROUP_NAMES, label="input group")
TOP_K = Param("ok", 3, int_in(1, 20), label="top-k")
OUTLIERS_PAGE = [STAT, GROUP, TOP_K]
