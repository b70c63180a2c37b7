"""Specs: the frozen, validated descriptions every other module works from.

`FormatDef` describes a number format (its grid, its largest value, its block structure and where it is
defined); the registry of concrete formats lives in `explorer.formats`. `QuantSpec` says how to apply one
format to a weight matrix: granularity, group size, symmetric or asymmetric, and the dtype the scales are
stored in. Both are frozen dataclasses of primitives and enums, hashable (so they can be cache keys) and
validated at construction with a ValueError that names the bad value and the allowed set.
"""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass


class Kind(enum.Enum):
    """How a format maps a code to a value."""

    INT = "int"            # uniform integer grid, value = (code - zero) * scale
    FLOAT = "float"        # a minifloat (sign, exponent, mantissa), value = fp(code) * scale
    CODEBOOK = "codebook"  # a lookup table of values (NF4), value = table[code] * scale
    BLOCK = "block"        # a block format with its own fixed block and scale encoding (MX, NVFP4)


class Granularity(enum.Enum):
    """Which weights share one scale."""

    TENSOR = "tensor"    # one scale for the whole matrix
    CHANNEL = "channel"  # one scale per output channel (row of W [out, in])
    GROUP = "group"      # one scale per `group_size` consecutive inputs of a row
    BLOCK = "block"      # the block format's own fixed block along the input dimension


class ScaleDType(enum.Enum):
    """The dtype a scale (and a zero point) is stored in: it rounds the scale and sets its storage cost."""

    FP32 = "fp32"
    FP16 = "fp16"
    BF16 = "bf16"

    @property
    def bits(self) -> int:
        return 32 if self is ScaleDType.FP32 else 16


class ScaleEncoding(enum.Enum):
    """How a block format stores its block scale (OCP MX v1.0; NVIDIA NVFP4)."""

    NONE = "none"        # not a block format: scales follow QuantSpec.scale_dtype
    E8M0 = "e8m0"        # a power of two, 8-bit exponent, bias 127 (OCP MX)
    E4M3 = "e4m3"        # an FP8 E4M3 block scale times one FP32 tensor scale (NVFP4)


def _choice(value, enum_type, field: str):
    """Accept an enum member or its string value; anything else is a ValueError naming the allowed set."""
    if isinstance(value, enum_type):
        return value
    allowed = [m.value for m in enum_type]
    if isinstance(value, str) and value in allowed:
        return enum_type(value)
    raise ValueError(f"{field}={value!r} is not allowed; choose one of {allowed}")


@dataclass(frozen=True)
class FormatDef:
    """One number format.

    `grid` holds every finite value an element can take (the codes' values before scaling), sorted and
    with duplicates (such as -0.0) removed; `max_value` is its largest magnitude; `bits` the bits per
    element. Block formats name their element format and their block size and scale encoding.
    """

    name: str
    kind: Kind
    bits: int
    grid: tuple[float, ...]
    max_value: float
    description: str
    source: str
    element: str = ""            # block formats: the registry name of the element format
    block_size: int = 0          # block formats: elements per shared scale
    scale_encoding: ScaleEncoding = ScaleEncoding.NONE

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum():
            raise ValueError(f"format name {self.name!r} must be a non-empty identifier")
        if not 1 <= self.bits <= 16:
            raise ValueError(f"bits={self.bits} is not allowed for {self.name}; choose 1..16")
        if not self.grid or any(not math.isfinite(v) for v in self.grid):
            raise ValueError(f"grid of {self.name} must be non-empty and finite")
        if list(self.grid) != sorted(set(self.grid)):
            raise ValueError(f"grid of {self.name} must be sorted and free of duplicates")
        if (self.kind is Kind.BLOCK) != (self.block_size > 0):
            raise ValueError(f"{self.name}: block_size must be > 0 exactly for block formats")

    @property
    def is_block(self) -> bool:
        return self.kind is Kind.BLOCK


@dataclass(frozen=True)
class QuantSpec:
    """How to quantize a weight matrix W [out, in] with one format.

    - granularity TENSOR / CHANNEL / GROUP for element formats; BLOCK (and only BLOCK) for block formats.
    - group_size: inputs per scale for GROUP (any positive size; a row width it does not divide ends in
      one shorter group, see `explorer.quantize`); ignored otherwise and normalised to 0.
    - symmetric: True for a scale only; False (INT formats only) adds an integer zero point per scale.
    - scale_dtype: the dtype scales and zero points are stored in (rounded to it, and counted at its
      width in bits per weight). Block formats store their scales their own way and ignore it.
    """

    format: FormatDef
    granularity: Granularity = Granularity.CHANNEL
    group_size: int = 0
    symmetric: bool = True
    scale_dtype: ScaleDType = ScaleDType.FP16

    def __post_init__(self) -> None:
        if not isinstance(self.format, FormatDef):
            raise ValueError(f"format={self.format!r} must be a FormatDef; use explorer.formats.get_format(name)")
        object.__setattr__(self, "granularity", _choice(self.granularity, Granularity, "granularity"))
        object.__setattr__(self, "scale_dtype", _choice(self.scale_dtype, ScaleDType, "scale_dtype"))
        fmt, gran = self.format, self.granularity
        if fmt.is_block and gran is not Granularity.BLOCK:
            raise ValueError(f"granularity={gran.value!r} is not allowed for block format {fmt.name}; "
                             f"allowed: ['block'] (its fixed {fmt.block_size}-element block)")
        if not fmt.is_block and gran is Granularity.BLOCK:
            raise ValueError(f"granularity='block' is only for block formats; {fmt.name} allows "
                             f"['tensor', 'channel', 'group']")
        if not isinstance(self.symmetric, bool):
            raise ValueError(f"symmetric={self.symmetric!r} must be True or False")
        if not self.symmetric and fmt.kind is not Kind.INT:
            raise ValueError(f"symmetric=False (a zero point) is only for integer formats; {fmt.name} is "
                             f"{fmt.kind.value}: allowed symmetric=[True]")
        if gran is Granularity.GROUP:
            if isinstance(self.group_size, bool) or not isinstance(self.group_size, int) or self.group_size < 1:
                raise ValueError(f"group_size={self.group_size!r} is not allowed; choose an integer >= 1")
        else:
            object.__setattr__(self, "group_size", 0)

    @property
    def label(self) -> str:
        """A short human label, e.g. 'int4 g128 asym' or 'mxfp4 (block 32)'."""
        if self.format.is_block:
            return f"{self.format.name} (block {self.format.block_size})"
        gran = {Granularity.TENSOR: "per-tensor", Granularity.CHANNEL: "per-channel"}.get(
            self.granularity, f"g{self.group_size}")
        sym = "" if self.symmetric else " asym"
        return f"{self.format.name} {gran}{sym}"
