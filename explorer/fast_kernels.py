"""The arithmetic kernels of the fake-quantization fast path (explorer.fast_paths explains the approach).

Round-to-nearest-even by float32 additions (integers: (y + 1.5·2^23) - 1.5·2^23; minifloats: the same with the step
of y's binade, OCP OFP8 v1.0 / OCP MX v1.0 rounding), code-book cell tables for NF4 (QLoRA, arXiv 2305.14314),
cached 0-dim constants, the per-chunk scratch views (`Work`) and code bit patterns. Every kernel works in place on
float32 / int32 buffers a chunk in size and is bit-identical to explorer.primitives (tests/test_fast_paths.py).
"""
from __future__ import annotations

import functools
import math
import struct
from typing import NamedTuple

import torch

from explorer import primitives as P
from explorer.specs import Kind, QuantSpec

MAGIC = 1.5 * 2.0 ** 23       # adding it rounds a float32 |y| < 2^22 to an integer, half to even
EXP_MASK = 0x7F800000         # float32 exponent bits: (bits & mask) viewed as float = 2^floor(log2|y|)
E4M3_MAX = 448.0

# Minifloat element formats: (mantissa bits, smallest normal exponent, largest finite value, keeps -0.0).
# torch's float8 casts keep the sign of a value that rounds to zero; the FP4 rule (primitives.round_fp4) gives +0.
MINIFLOATS = {
    "fp8_e4m3": (3, -6, 448.0, True),
    "fp8_e5m2": (2, -14, 57344.0, True),
    "fp4_e2m1": (1, 0, 6.0, False),
}
SCALE_TORCH = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def bits(v: float) -> int:
    """The float32 bit pattern of v (exactly representable) as a Python int."""
    return struct.unpack("<i", struct.pack("<f", v))[0]


@functools.lru_cache(maxsize=256)
def const(value, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A 0-dim constant tensor. Ops take it as a scalar operand, the same arithmetic as a Python number but
    15-30% faster on a whole chunk (no scalar wrapping per call)."""
    return torch.tensor(value, dtype=dtype, device=device)


def round_integer_(t: torch.Tensor, lo: float, hi: float, clamp: bool = True) -> torch.Tensor:
    """In place: t -> round-half-even(t) clamped to [lo, hi] (integer bounds), +0.0 for a zero result.
    clamp=False: the caller knows lo - 0.5 < t < hi + 0.5 already (then rounding alone stays in range)."""
    magic = const(MAGIC, torch.float32, t.device)
    return (t.clamp_(lo, hi) if clamp else t).add_(magic).sub_(magic)


def saturates(element: str) -> float:
    """The smallest |y| that a minifloat element would round past its largest value (so needs clamping):
    the largest value plus half the step of its binade."""
    mant, _, fmax, _ = MINIFLOATS[element]
    return fmax + 2.0 ** (math.floor(math.log2(fmax)) - mant) / 2


def round_minifloat_(t: torch.Tensor, t_bits: torch.Tensor, c_bits: torch.Tensor, c: torch.Tensor, element: str,
                      clamp: bool = True, sign_of: torch.Tensor | None = None) -> torch.Tensor:
    """In place: t -> the nearest value of a minifloat element (saturating), as float32.

    t_bits: t viewed as int32; c_bits / c: an int32 scratch tensor shaped like t and its float32 view.
    clamp=False: the caller knows |t| < saturates(element). sign_of: a tensor with t's signs (the input before
    division by a positive scale), for formats whose cast keeps -0.0 (None when t holds no negative value).
    """
    mant, emin, fmax, signed_zero = MINIFLOATS[element]
    if clamp:
        t.clamp_(-fmax, fmax)
    torch.bitwise_and(t_bits, const(EXP_MASK, torch.int32, t.device), out=c_bits)
    c.clamp_(min=2.0 ** emin)  # 2^max(e, emin): the grid step of t's binade is c * 2^-mant
    k = 1.5 * 2.0 ** (23 - mant)  # k * c = 1.5 * 2^23 * step, a power of two times 1.5: exact
    t.add_(c, alpha=k).sub_(c, alpha=k)
    if signed_zero and sign_of is not None:
        torch.copysign(t, sign_of, out=t)
    return t


class Book(NamedTuple):
    """Cell tables of a sorted code book (see codebook_tables)."""
    magic: float             # 1.5 * 2^(23 - p): fl(y + magic) = magic + round(y * 2^p) * 2^-p
    base: int                # bits(magic) - half: bits(fl(y + magic)) - base = the cell index in 0 .. 2 half
    shift: int               # bits(1.0) >> shift = offset: a 1.0 (above the boundary) moves an index that far
    step: float              # 2^-p, the cell width
    cover: float             # |y| < cover lands inside the tables (else clamp y to the book's range first)
    boundary: torch.Tensor   # [cells] float32: the decision boundary inside each cell, +inf where none
    value: torch.Tensor      # [offset + cells] float32: book value of (cell, y <= boundary) at cell, of
                             # (cell, y > boundary) at offset + cell
    code: torch.Tensor       # [offset + cells] uint8: the same as code indices


@functools.lru_cache(maxsize=16)
def codebook_tables(grid: tuple[float, ...], device: torch.device) -> Book | None:
    """Cell tables for a sorted code book, or None if no grid of step >= 2^-12 separates its decision boundaries.

    The decision boundaries are the reference's float32 midpoints (primitives.round_codebook); a value y goes
    to entry #{boundaries < y}. Cell j holds the y that round to j on the 2^-p grid, all of [(j - 1/2) 2^-p,
    (j + 1/2) 2^-p]; p is the smallest with more than one step between neighbouring boundaries and no boundary
    on a cell edge, so a cell holds at most one boundary and its entry is first[j] + (y > boundary[j]), exactly.
    """
    g = torch.tensor(grid, dtype=torch.float32)
    mids = ((g[1:] + g[:-1]) / 2).double().tolist()  # exact float32 values
    top = max(abs(grid[0]), abs(grid[-1]))
    for p in range(0, 13):
        step = 2.0 ** -p
        if any(b - a <= step for a, b in zip(mids, mids[1:])):
            continue
        if any((m / step - 0.5).is_integer() for m in mids):  # a boundary on a cell edge
            continue
        half = math.ceil(2 * top / step)  # cells -half .. half cover twice the book's range
        boundary, first = [], []
        for j in range(-half, half + 1):
            lo_edge, hi_edge = (j - 0.5) * step, (j + 0.5) * step
            first.append(sum(m < lo_edge for m in mids))
            inside = [m for m in mids if lo_edge < m < hi_edge]
            boundary.append(inside[0] if inside else math.inf)
        upper = [min(f + (b != math.inf), len(grid) - 1) for f, b in zip(first, boundary)]
        cells = 2 * half + 1
        shift = max(k for k in range(24) if bits(1.0) >> k >= cells)
        offset = bits(1.0) >> shift
        index = torch.tensor(first + [0] * (offset - cells) + upper)
        magic = 1.5 * 2.0 ** (23 - p)
        return Book(magic, bits(magic) - half, shift, step, (half - 1) * step,
                     torch.tensor(boundary, dtype=torch.float32, device=device),
                     g[index].to(device), index.to(torch.uint8).to(device))
    return None


class Work:
    """The tensors one chunk of rows works on, shaped [rows, n_spans, span_len], with the views its ops need made
    once per call (a torch call costs microseconds, as much as a small op): ts (the work buffer), f / i (float32 /
    int32 scratch) stay; per chunk: xs (its input, float32), dest (where Ŵ goes: the output rows for a float32
    W, else ts), codes, and the spans' statistics when known (else None: computed from xs): amax (absmax) or
    lo / hi (min clamped to <= 0, max clamped to >= 0) [rows, n_spans, 1]."""

    __slots__ = ("xs", "dest", "codes", "ts", "t_bits", "t_flat", "t_pool", "t_rows", "f", "f_bits", "f_flat",
                 "i", "i_float", "i_flat", "x_rows", "amax", "lo", "hi")

    def __init__(self, x, ts, f, i, n_in: int):
        r, n, span = ts.shape
        self.ts, self.t_bits, self.t_flat = ts, ts.view(torch.int32), ts.view(-1)
        self.t_pool = ts.view(r, 1, n * span)
        self.t_rows = ts.view(r, n * span)[:, :n_in]  # Ŵ's columns, without the padded tail
        self.f, self.f_bits, self.f_flat = (f, f.view(torch.int32), f.view(-1)) if f is not None else (None,) * 3
        self.i, self.i_float, self.i_flat = ((i, i.view(torch.float32), i.view(-1)) if i is not None
                                             else (None,) * 3)
        self.x_rows = x.view(r, n * span)[:, :n_in] if x is not None else None  # where a converted W goes
        self.xs = x
        self.dest = ts
        self.codes = None
        self.amax = self.lo = self.hi = None


def minifloat_codes(values: torch.Tensor, element: str, scratch: torch.Tensor) -> torch.Tensor:
    """Bit patterns (uint8) of values already on a minifloat grid (exact conversions, no rounding left)."""
    if element in P.FLOAT8_DTYPES:
        return values.to(P.FLOAT8_DTYPES[element]).view(torch.uint8)
    key = torch.mul(values, 2.0).add_(12.0)  # FP4: 2 v + 12 is an integer in 0..24
    idx = scratch.copy_(key).view(-1)
    return torch.index_select(fp4_code_table(values.device), 0, idx).view(values.shape)


@functools.lru_cache(maxsize=4)
def fp4_code_table(device: torch.device) -> torch.Tensor:
    """FP4 E2M1 bit pattern of each value v in -6 .. 6 (step 0.5), indexed by 2 v + 12."""
    table = torch.zeros(25, dtype=torch.uint8)
    for code, v in enumerate(P.FP4_E2M1_VALUES):
        if code != 8:  # skip -0.0: a value rounded to zero has the +0 code (primitives.round_fp4)
            table[int(2 * v + 12)] = code
    return table.to(device)


def store_codes(codes: torch.Tensor | None, values, n_in: int) -> None:
    if codes is None:
        return
    codes.copy_(values.reshape(codes.shape[0], -1)[:, :n_in])


def code_dtype(spec: QuantSpec) -> torch.dtype:
    fmt = spec.format
    if fmt.kind is Kind.INT and spec.symmetric or fmt.is_block and fmt.element == "int8":
        return torch.int8
    return torch.uint8
