"""The format registry: every number format the explorer knows, as data.

Each entry is a `FormatDef` (explorer.specs): name, kind, bits, the finite value grid, the largest value, a
one-line description and the spec or paper it follows. Sources:
- INT2..INT8: uniform integer grids, as in GPTQ (arXiv 2210.17323) and torchao's affine quantization.
- FP8 E4M3 (fn) / E5M2: OCP 8-bit Floating Point Specification (OFP8) v1.0; grids read off torch's own
  float8_e4m3fn / float8_e5m2 dtypes so they agree bit for bit with torch's casts.
- FP4 E2M1: OCP Microscaling Formats (MX) v1.0, section 5.3.3.
- NF4: QLoRA (Dettmers et al., arXiv 2305.14314), the 16-value NormalFloat code book.
- MXFP8 / MXFP4 / MXINT8: OCP MX v1.0: blocks of 32 elements sharing one E8M0 (power-of-two) scale.
- NVFP4: NVIDIA's NVFP4 (blocks of 16 FP4 E2M1 elements, an FP8 E4M3 block scale, one FP32 tensor scale).
"""
from __future__ import annotations

import torch

from explorer.specs import FormatDef, Granularity, Kind, QuantSpec, ScaleDType, ScaleEncoding


def _float8_grid(dtype: torch.dtype) -> tuple[float, ...]:
    """All finite values of a torch float8 dtype, from its 256 bit patterns."""
    values = torch.arange(256, dtype=torch.int32).to(torch.uint8).view(dtype).float()
    values = values[torch.isfinite(values)]
    return tuple(sorted(set(values.tolist())))


# FP4 E2M1 by bit pattern (sign, 2 exponent bits, 1 mantissa bit): code i -> value. OCP MX v1.0 table.
FP4_E2M1_VALUES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0)

# NF4 by code 0..15: QLoRA appendix E (the same table as bitsandbytes' NF4 quant map).
NF4_VALUES = (
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
)

MXINT8_STEP = 2.0 ** -6  # OCP MX v1.0: MXINT8 elements are 8-bit two's complement with an implicit 2^-6 scale


def _int_format(bits: int) -> FormatDef:
    qmax = 2 ** (bits - 1) - 1
    return FormatDef(
        name=f"int{bits}", kind=Kind.INT, bits=bits,
        grid=tuple(float(v) for v in range(-qmax - 1, qmax + 1)), max_value=float(qmax),
        description=(f"{bits}-bit integers: symmetric codes in [-{qmax}, {qmax}] (scale = absmax/{qmax}), "
                     f"or asymmetric codes in [0, {2 ** bits - 1}] with an integer zero point"),
        source="Uniform affine quantization; GPTQ (arXiv 2210.17323), torchao affine_quantization",
    )


def _build_registry() -> dict[str, FormatDef]:
    e4m3 = _float8_grid(torch.float8_e4m3fn)
    e5m2 = _float8_grid(torch.float8_e5m2)
    fp4 = tuple(sorted(set(FP4_E2M1_VALUES)))
    formats = [_int_format(b) for b in range(2, 9)]
    formats += [
        FormatDef("fp8_e4m3", Kind.FLOAT, 8, e4m3, max(e4m3),
                  "FP8 E4M3 (fn): 4 exponent bits, 3 mantissa bits, no infinities, max 448; more precision",
                  "OCP 8-bit Floating Point Specification (OFP8) v1.0; torch.float8_e4m3fn"),
        FormatDef("fp8_e5m2", Kind.FLOAT, 8, e5m2, max(e5m2),
                  "FP8 E5M2: 5 exponent bits, 2 mantissa bits, max 57344; more range, less precision",
                  "OCP 8-bit Floating Point Specification (OFP8) v1.0; torch.float8_e5m2"),
        FormatDef("fp4_e2m1", Kind.FLOAT, 4, fp4, 6.0,
                  "FP4 E2M1: values 0, ±0.5, ±1, ±1.5, ±2, ±3, ±4, ±6 with a per-tensor/channel/group scale",
                  "OCP Microscaling Formats (MX) v1.0, FP4 E2M1 element"),
        FormatDef("nf4", Kind.CODEBOOK, 4, tuple(sorted(NF4_VALUES)), 1.0,
                  "NormalFloat4: 16 quantiles of a normal distribution, scaled by each group's absmax",
                  "QLoRA (Dettmers et al. 2023, arXiv 2305.14314); bitsandbytes NF4"),
        FormatDef("mxfp8", Kind.BLOCK, 8, e4m3, max(e4m3),
                  "MXFP8: blocks of 32 FP8 E4M3 elements sharing one power-of-two (E8M0) scale",
                  "OCP Microscaling Formats (MX) v1.0", element="fp8_e4m3", block_size=32,
                  scale_encoding=ScaleEncoding.E8M0),
        FormatDef("mxfp4", Kind.BLOCK, 4, fp4, 6.0,
                  "MXFP4: blocks of 32 FP4 E2M1 elements sharing one power-of-two (E8M0) scale",
                  "OCP Microscaling Formats (MX) v1.0", element="fp4_e2m1", block_size=32,
                  scale_encoding=ScaleEncoding.E8M0),
        FormatDef("mxint8", Kind.BLOCK, 8, tuple(k * MXINT8_STEP for k in range(-127, 128)), 127 * MXINT8_STEP,
                  "MXINT8: blocks of 32 8-bit integers (implicit 2^-6 scale, symmetric ±127) sharing one E8M0 scale",
                  "OCP Microscaling Formats (MX) v1.0", element="int8", block_size=32,
                  scale_encoding=ScaleEncoding.E8M0),
        FormatDef("nvfp4", Kind.BLOCK, 4, fp4, 6.0,
                  "NVFP4: blocks of 16 FP4 E2M1 elements, an FP8 E4M3 block scale and one FP32 tensor scale",
                  "NVIDIA NVFP4 (Blackwell); torchao prototype/mx_formats/nvfp4_tensor.py",
                  element="fp4_e2m1", block_size=16, scale_encoding=ScaleEncoding.E4M3),
    ]
    return {f.name: f for f in formats}


FORMATS: dict[str, FormatDef] = _build_registry()

# The granularity each format is usually deployed at (benchmarks, "all formats" tables, CLI defaults).
_USUAL: dict[str, tuple[Granularity, int]] = {
    **{f"int{b}": (Granularity.GROUP, 128) for b in range(2, 8)},
    "int8": (Granularity.CHANNEL, 0),
    "fp8_e4m3": (Granularity.TENSOR, 0),
    "fp8_e5m2": (Granularity.TENSOR, 0),
    "fp4_e2m1": (Granularity.GROUP, 32),
    "nf4": (Granularity.GROUP, 64),  # bitsandbytes' 4-bit block
}


def format_names() -> list[str]:
    """Registry names, in registry order."""
    return list(FORMATS)


def get_format(name: str) -> FormatDef:
    """The registry entry for `name`; ValueError naming the allowed set otherwise."""
    try:
        return FORMATS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown format {name!r}; choose one of {format_names()}") from None


def make_spec(name: str, granularity: Granularity | str | None = None, group_size: int = 128,
              symmetric: bool = True, scale_dtype: ScaleDType | str = ScaleDType.FP16) -> QuantSpec:
    """A QuantSpec from a format name. granularity None means the format's usual one (block formats: block)."""
    fmt = get_format(name)
    if granularity is None:
        if fmt.is_block:
            granularity = Granularity.BLOCK
        else:
            granularity, usual_group = _USUAL[name]
            if granularity is Granularity.GROUP:
                group_size = usual_group
    return QuantSpec(fmt, granularity, group_size, symmetric, scale_dtype)


def usual_spec(name: str) -> QuantSpec:
    """The format at its usual granularity: int8 per-channel, int2-7 g128, fp8 per-tensor, nf4 g64, ..."""
    return make_spec(name)
