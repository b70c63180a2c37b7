"""Every query-string parameter of the app, in one place (keys are unique app-wide)."""
from __future__ import annotations

from explorer.device import DEVICE_CHOICES
from explorer.formats import format_names
from ui.state import Param, dump_bool, int_in, parse_bool

# Shared sidebar
SRC = Param("src", "sample:minilm", label="weight source")
TENSOR = Param("t", "", label="tensor")
DEVICE = Param("dev", "auto", choices=DEVICE_CHOICES, label="device")
PRESENT = Param("present", False, parse_bool, dump_bool, label="presenter mode")
SIDEBAR = [SRC, TENSOR, DEVICE, PRESENT]

# Layer Lab (and the views that share its format choice)
FMT = Param("fmt", "int4", choices=tuple(format_names()), label="format")
GRAN = Param("gran", "group", choices=("tensor", "channel", "group"), label="granularity")
GROUP = Param("gs", 128, int_in(1, 1 << 16), label="group size")
SYM = Param("sym", True, parse_bool, dump_bool, label="symmetric")
SCALE = Param("sd", "fp16", choices=("fp16", "bf16", "fp32"), label="scale dtype")
LOGY = Param("log", True, parse_bool, dump_bool, label="log scale")
LAYER_LAB = [FMT, GRAN, GROUP, SYM, SCALE, LOGY]

ALL = SIDEBAR + LAYER_LAB
