"""Query-string parameters of the Memory & bandwidth page (keys unique app-wide, all prefixed "m")."""
from __future__ import annotations

from typing import Callable

from explorer.formats import format_names
from explorer.hardware import hardware_names
from explorer.memory import KV_FORMATS
from explorer.model_configs import model_names
from ui.state import Param, dump_bool, int_in, parse_bool

LOADED = "loaded"        # the model option "the file picked in the sidebar"
BASELINE = "bf16"        # the format option "16-bit weights, nothing quantized"
LAB = "lab"              # the format option "the Layer Lab's current choice"
THIS_MACHINE = "this_machine"

MODEL_CHOICES = tuple(model_names()) + (LOADED,)
FORMAT_CHOICES = (BASELINE, LAB) + tuple(format_names())
GPU_CHOICES = tuple(hardware_names()) + (THIS_MACHINE,)
CONTEXTS = (0, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072)
BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def list_of(allowed: tuple[str, ...]) -> Callable[[str], list[str]]:
    """'a,b' -> ['a', 'b']: each item must be allowed, duplicates dropped ('' is the empty choice)."""
    def parse(raw: str) -> list[str]:
        items = list(dict.fromkeys(x.strip() for x in raw.split(",") if x.strip()))
        bad = [x for x in items if x not in allowed]
        if bad:
            raise ValueError(f"{bad} not in {list(allowed)}")
        return items
    return parse


def dump_list(v: list[str]) -> str:
    return ",".join(v)


MODEL = Param("mmodel", "llama31_8b", choices=MODEL_CHOICES, label="model")
FORMATS = Param("mfmt", [BASELINE, "int8", "fp8_e4m3", "int4", "nf4"], list_of(FORMAT_CHOICES), dump_list,
                label="formats")
ASYM = Param("masym", True, parse_bool, dump_bool, label="integer zero points")
LM_HEAD = Param("mlmh", False, parse_bool, dump_bool, label="quantize lm_head")
CONTEXT = Param("mctx", 8192, int_in(0, 1 << 20), label="context")
BATCH = Param("mbatch", 1, int_in(1, 4096), label="batch")
KV = Param("mkv", "fp16", choices=tuple(KV_FORMATS), label="KV-cache dtype")
GPUS = Param("mgpu", ["h100_sxm", "a100_80gb_sxm", "rtx_4090", "l4"], list_of(GPU_CHOICES), dump_list,
             label="GPUs")
ROOF = Param("mroof", "h100_sxm", choices=tuple(hardware_names()), label="roofline GPU")

MEMORY = [MODEL, FORMATS, ASYM, LM_HEAD, CONTEXT, BATCH, KV, GPUS, ROOF]
