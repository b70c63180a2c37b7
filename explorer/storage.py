"""Exact storage accounting: bits per weight and packed bytes of a quantized W [out, in].

Everything that must be stored counts: the element codes, one scale per scale span, one zero point per span
for asymmetric integers (counted at the scale's width, as GPTQ/AWQ checkpoints with fp16 scale and zero do),
block-format scales (E8M0 = 8 bits per block of 32 for MX; E4M3 = 8 bits per block of 16 plus one FP32 tensor
scale for NVFP4). Examples: INT4 g128 asymmetric with fp16 scale and zero = 4 + 32/128 = 4.25 bits per weight;
MXFP4 = 4 + 8/32 = 4.25; NVFP4 = 4 + 8/16 + 32/numel ~ 4.5. A short last group costs a full scale.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from explorer.specs import Granularity, QuantSpec, ScaleEncoding


@dataclass(frozen=True)
class Storage:
    """Bits and bytes of one quantized matrix."""

    numel: int
    code_bits: int       # all element codes
    scale_bits: int      # all scales (block scales and tensor scale included)
    zero_bits: int       # all zero points
    n_scales: int        # number of per-span scales

    @property
    def total_bits(self) -> int:
        return self.code_bits + self.scale_bits + self.zero_bits

    @property
    def bits_per_weight(self) -> float:
        return self.total_bits / self.numel

    @property
    def packed_bytes(self) -> int:
        """Bytes when codes are bit-packed and each scale / zero array is stored at its own width."""
        return sum(math.ceil(b / 8) for b in (self.code_bits, self.scale_bits, self.zero_bits))


def n_spans(spec: QuantSpec, shape: tuple[int, int]) -> int:
    """How many scales W [out, in] needs under `spec`."""
    out, n_in = shape
    if spec.granularity is Granularity.TENSOR:
        return 1
    if spec.granularity is Granularity.CHANNEL:
        return out
    span = spec.group_size if spec.granularity is Granularity.GROUP else spec.format.block_size
    return out * math.ceil(n_in / span)


def storage(spec: QuantSpec, shape: tuple[int, ...]) -> Storage:
    """Storage of a matrix of `shape` [out, in] quantized with `spec` (no tensor needed)."""
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"shape={tuple(shape)} is not allowed; a 2-D [out, in] shape with both dims >= 1")
    numel = shape[0] * shape[1]
    n = n_spans(spec, shape)
    fmt = spec.format
    if fmt.scale_encoding is ScaleEncoding.E8M0:
        scale_bits = 8 * n
    elif fmt.scale_encoding is ScaleEncoding.E4M3:
        scale_bits = 8 * n + 32
    else:
        scale_bits = spec.scale_dtype.bits * n
    zero_bits = 0 if spec.symmetric else spec.scale_dtype.bits * n
    return Storage(numel=numel, code_bits=fmt.bits * numel, scale_bits=scale_bits, zero_bits=zero_bits,
                   n_scales=n)


def bits_per_weight(spec: QuantSpec, shape: tuple[int, int]) -> float:
    """Effective bits per weight, scales and zero points included."""
    return storage(spec, shape).bits_per_weight
