"""Element rounding primitives: value -> code for each kind of format, and code -> value back.

All functions take float32 tensors already divided by their scale and return codes of the smallest integer
dtype that holds them; none mutates its input. Rounding rules:
- integers: round half to even (torch.round), then clamp to the code range;
- FP8: saturate to the largest finite value, then torch's own cast (round to nearest even), so codes are
  bit-identical to `x.clamp(-max, max).to(torch.float8_e4m3fn)` (OCP OFP8 v1.0 saturating conversion);
- FP4 E2M1: round to nearest, ties to the even mantissa, saturating at 6 (OCP MX v1.0, section 5.3.3);
- code books (NF4): nearest entry, ties to the lower entry (a measure-zero event for real weights);
- E8M0 / E4M3 block scales per OCP MX v1.0 section 6.3 and NVIDIA's NVFP4 recipe.
"""
from __future__ import annotations

import functools

import torch

from explorer.formats import FP4_E2M1_VALUES

FLOAT8_DTYPES = {"fp8_e4m3": torch.float8_e4m3fn, "fp8_e5m2": torch.float8_e5m2}

# Largest-normal exponent of each MX element format (OCP MX v1.0 table 1): the shared scale is
# 2^(floor(log2(amax)) - emax_elem), which puts the block's largest element in the element's top binade.
MX_EMAX = {"fp8_e4m3": 8, "fp4_e2m1": 2, "int8": 0}
E8M0_BIAS = 127

# Positive FP4 magnitudes by code 0..7 and the midpoints between neighbours.
_FP4_MAGS = torch.tensor(FP4_E2M1_VALUES[:8])
_FP4_MIDS = (_FP4_MAGS[1:] + _FP4_MAGS[:-1]) / 2


@functools.lru_cache(maxsize=64)
def _table(values: tuple[float, ...], device: torch.device) -> torch.Tensor:
    """A float32 lookup table on `device` (cached: the tables are tiny and immutable)."""
    return torch.tensor(values, dtype=torch.float32, device=device)


def round_int(x: torch.Tensor, qmin: int, qmax: int) -> torch.Tensor:
    """x [...] float32 -> integer codes in [qmin, qmax] (int8 when qmin < 0, else uint8)."""
    dtype = torch.int8 if qmin < 0 else torch.uint8
    return torch.round(x).clamp_(qmin, qmax).to(dtype)


def round_fp8(x: torch.Tensor, name: str) -> torch.Tensor:
    """x [...] float32 -> FP8 bit patterns (uint8), saturating at the format's largest finite value."""
    dtype = FLOAT8_DTYPES[name]
    fmax = torch.finfo(dtype).max
    return x.clamp(-fmax, fmax).to(dtype).view(torch.uint8)


def fp8_values(codes: torch.Tensor, name: str) -> torch.Tensor:
    """FP8 bit patterns (uint8) -> float32 values: a lookup in the 256 values torch's own cast gives (the same
    bits as codes.view(float8).float(), several times faster on CPU, where that cast is a scalar loop)."""
    return _lookup(_fp8_table(name, codes.device), codes)


@functools.lru_cache(maxsize=8)
def _fp8_table(name: str, device: torch.device) -> torch.Tensor:
    patterns = torch.arange(256, dtype=torch.int32).to(torch.uint8)
    return patterns.view(FLOAT8_DTYPES[name]).float().to(device)


def _lookup(table: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """table[codes] for uint8 codes of any shape (index_select with int32 indices: a small-table gather)."""
    return torch.index_select(table, 0, codes.reshape(-1).to(torch.int32)).reshape(codes.shape)


def round_fp4(x: torch.Tensor) -> torch.Tensor:
    """x [...] float32 -> FP4 E2M1 bit patterns (uint8: sign bit 3, exponent bits 2-1, mantissa bit 0)."""
    mids = _FP4_MIDS.to(x.device)
    a = x.abs()
    idx = torch.bucketize(a, mids)  # a == mids[i] lands on i (the lower neighbour)
    # A tie goes to the even code: codes 0..7 alternate mantissa 0/1 within each binade.
    tie = (idx < mids.numel()) & (a == mids[idx.clamp(max=mids.numel() - 1)]) & (idx % 2 == 1)
    idx = idx + tie.to(idx.dtype)
    sign = (torch.signbit(x) & (idx > 0)).to(torch.uint8) << 3  # rounding to zero keeps +0: zero stays zero
    return idx.to(torch.uint8) | sign


def round_codebook(x: torch.Tensor, grid: tuple[float, ...]) -> torch.Tensor:
    """x [...] float32 -> indices (uint8) of the nearest value of a sorted code book."""
    table = _table(grid, x.device)
    mids = (table[1:] + table[:-1]) / 2
    return torch.bucketize(x, mids).to(torch.uint8)


def table_values(codes: torch.Tensor, values: tuple[float, ...]) -> torch.Tensor:
    """Codes (uint8 indices) -> float32 values of a lookup table."""
    return _lookup(_table(values, codes.device), codes)


def e8m0_scale(amax: torch.Tensor, element: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-block absmax [...] -> (E8M0 biased exponents uint8, scales float32 = 2^(e - 127)).

    X = 2^(floor(log2(amax)) - emax_elem), clamped to the E8M0 range 2^-127 .. 2^127; an all-zero block
    gets the smallest scale (its elements are all zero whatever the scale).
    """
    _, exp = torch.frexp(amax)  # amax = m * 2^exp with m in [0.5, 1): floor(log2(amax)) = exp - 1, exactly
    e = (exp - 1 - MX_EMAX[element]).clamp(-E8M0_BIAS, E8M0_BIAS)
    e = torch.where(amax > 0, e, torch.full_like(e, -E8M0_BIAS))
    biased = (e + E8M0_BIAS).to(torch.uint8)
    return biased, torch.ldexp(torch.ones_like(amax), e.to(torch.float32))


def round_to_dtype(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Round positive float32 scales to a storage dtype and back, kept finite and non-zero."""
    info = torch.finfo(dtype)
    smallest = info.smallest_normal * info.eps  # smallest subnormal
    return x.clamp(smallest, info.max).to(dtype).float()
