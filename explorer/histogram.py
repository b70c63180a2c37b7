"""Exact, mergeable histograms whose range follows the data (in the spirit of llama.cpp's quantize-stats).

A histogram has a fixed number of equal bins over [-R, R] (signed) or [0, R] (unsigned), where R is the
smallest power of two >= max|x|. Because every R is a power of two, two histograms with different R have
aligned edges: the one with the smaller range is re-binned exactly (2^k adjacent bins summed) into the larger
one, so histograms of chunks (rows of a huge layer, layers of a model) merge without loss. Counts are
int64 (computed with torch.bincount, exact on CPU and CUDA), never float.

CellCounts bins float32 values before their range is known, with no arithmetic on them: by their bit patterns
(sign, exponent and the top mantissa bits), four integer operations and one bincount per value. Every edge of a
power-of-two-range histogram is a float with few significant bits, so it falls on a cell boundary and the cells
re-bin exactly into histogram(x) once max|x| is known (explorer.analysis counts chunk by chunk this way).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

_CHUNK = 1 << 22  # elements binned at a time: bounds the int64 index buffer to 32 MB


@dataclass(frozen=True, eq=False)
class Histogram:
    """counts [bins] int64 over [-half_range, half_range] (signed) or [0, half_range] (unsigned)."""

    counts: np.ndarray
    half_range: float
    signed: bool

    @property
    def bins(self) -> int:
        return int(self.counts.size)

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    @property
    def edges(self) -> np.ndarray:
        lo = -self.half_range if self.signed else 0.0
        return np.linspace(lo, self.half_range, self.bins + 1)

    @property
    def centers(self) -> np.ndarray:
        e = self.edges
        return (e[:-1] + e[1:]) / 2

    @property
    def width(self) -> float:
        return (2 * self.half_range if self.signed else self.half_range) / self.bins


def _pow2_at_least(v: float) -> float:
    """The smallest power of two >= v (2^-126 for v <= 0, so an all-zero histogram merges into anything)."""
    if not v > 0:
        return 2.0 ** -126
    m, e = math.frexp(v)  # v = m * 2^e, m in [0.5, 1)
    return math.ldexp(1.0, e - 1) if m == 0.5 else math.ldexp(1.0, e)


def histogram(x: torch.Tensor, bins: int = 256, signed: bool = True) -> Histogram:
    """Histogram of all elements of x (any shape, any float dtype, any device). bins: a power of two >= 2."""
    if bins < 2 or bins & (bins - 1):
        raise ValueError(f"bins={bins} is not allowed; choose a power of two >= 2")
    flat = x.detach().reshape(-1)
    if not signed and flat.numel() and bool((flat < 0).any()):
        raise ValueError("an unsigned histogram needs non-negative values; use signed=True")
    if flat.numel() and not bool(torch.isfinite(flat).all()):
        raise ValueError("histogram input holds NaN or Inf; allowed: finite values only")
    amax = float(flat.abs().max()) if flat.numel() else 0.0
    return histogram_of_finite(flat, amax, bins, signed)


def histogram_of_finite(x: torch.Tensor, amax: float, bins: int = 256, signed: bool = True) -> Histogram:
    """histogram() for a caller that already knows x is finite (and non-negative if unsigned) and max|x| = amax:
    the same counts, without the checking passes (explorer.analysis bins chunk by chunk and merges)."""
    flat = x.detach().reshape(-1)
    half = _pow2_at_least(amax)
    lo = -half if signed else 0.0
    width = (half - lo) / bins
    counts = torch.zeros(bins, dtype=torch.int64, device=flat.device)
    inv = 1.0 / width
    exact_inv = inv * width == 1.0 and inv < 2.0 ** 126  # a normal power of two: x * inv == x / width exactly
    for start in range(0, flat.numel(), _CHUNK):
        part = flat[start:start + _CHUNK].float()
        # width is a power of two, so part / width is exact and floor() puts each value in its true bin.
        idx = torch.mul(part, inv) if exact_inv else torch.div(part, width)
        idx = idx.floor_().add_(bins // 2 if signed else 0).clamp_(0, bins - 1)
        counts += torch.bincount(idx.to(torch.int32), minlength=bins)
    return Histogram(counts.cpu().numpy(), half, signed)


def _rebin(h: Histogram, half: float) -> np.ndarray:
    """Counts of h re-binned exactly onto [-half, half] (or [0, half]) with the same number of bins."""
    k = round(math.log2(half / h.half_range))
    if k == 0:
        return h.counts.copy()
    factor = 1 << k
    n = h.bins
    # Position of each old bin in units of the old width, measured from the new range's low edge.
    offset = (factor - 1) * (n // 2) if h.signed else 0
    idx = (np.arange(n, dtype=object) + offset) // factor
    out = np.zeros(n, dtype=np.int64)
    np.add.at(out, np.asarray(idx, dtype=np.int64), h.counts)
    return out


def merge(a: Histogram, b: Histogram) -> Histogram:
    """The histogram of the union of a's and b's samples (exact)."""
    if a.bins != b.bins or a.signed != b.signed:
        raise ValueError(f"cannot merge histograms with bins {a.bins}/{b.bins} and signed {a.signed}/{b.signed}; "
                         f"allowed: equal bins and signedness")
    half = max(a.half_range, b.half_range)
    return Histogram(_rebin(a, half) + _rebin(b, half), half, a.signed)


def fixed_histogram(x: torch.Tensor, lo: float, hi: float, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """(counts int64 [bins], edges [bins + 1]) over a fixed [lo, hi]; values outside land in the end bins."""
    if not hi > lo or bins < 1:
        raise ValueError(f"fixed_histogram needs hi > lo and bins >= 1, got lo={lo}, hi={hi}, bins={bins}")
    flat = x.detach().reshape(-1)
    width = (hi - lo) / bins
    counts = torch.zeros(bins, dtype=torch.int64, device=flat.device)
    for start in range(0, flat.numel(), _CHUNK):
        part = flat[start:start + _CHUNK].float()
        idx = torch.sub(part, lo).div_(width).floor_().clamp_(0, bins - 1)
        counts += torch.bincount(idx.to(torch.int32), minlength=bins)
    return counts.cpu().numpy(), np.linspace(lo, hi, bins + 1)


class CellCounts:
    """Exact counts of float32 values per cell of 2^shift consecutive bit patterns, accumulated chunk by chunk.

    A value's cell: its bit pattern b (as int32) shifted right by `shift` = 23 - mantissa_bits, with negative
    values first moved down by one pattern, (b + (b >> 31)) >> shift, so a negative cell holds the magnitudes
    (m 2^shift, (m + 1) 2^shift] and a positive one [m 2^shift, (m + 1) 2^shift): each cell is a half-open value
    interval [a, b), as histogram()'s bins are. -0.0 wraps to the last positive cell (a NaN pattern that finite
    data never fills) and is counted as 0.0. histogram(amax, bins) is exact for bins <= 2^(mantissa_bits + 1).
    """

    def __init__(self, device=None, mantissa_bits: int = 8):
        if not 1 <= mantissa_bits <= 12:
            raise ValueError(f"mantissa_bits={mantissa_bits} is not allowed; choose 1..12")
        self.mantissa_bits = mantissa_bits
        self.shift = 23 - mantissa_bits
        self.cells = 1 << (32 - self.shift)
        self.counts = torch.zeros(self.cells, dtype=torch.int64, device=device)

    def add(self, x: torch.Tensor, scratch: torch.Tensor | None = None) -> None:
        """Count x (float32, finite, any shape and strides). scratch: a contiguous int32 tensor of at least
        x.numel() elements, reused across calls (else one is allocated)."""
        b = x.view(torch.int32)
        t = torch.empty(b.numel(), dtype=torch.int32, device=x.device) if scratch is None else scratch
        t = t.view(-1)[:b.numel()].view(b.shape)
        torch.bitwise_right_shift(b, 31, out=t)  # -1 for negative values, else 0
        t.add_(b).bitwise_right_shift_(self.shift).bitwise_and_(self.cells - 1)
        self.counts += torch.bincount(t.view(-1), minlength=self.cells)

    def nonzero_below(self, v: float, zeros: int) -> int:
        """Non-zero values with |x| < v counted (v a power of two, 2^-126 <= v <= 2^127), given `zeros`, the
        number of +-0.0 added. Conservative: a negative cell holds magnitudes (a, b], so x = -v counts too."""
        m, e = math.frexp(v)
        if m != 0.5 or not -125 <= e <= 128:
            raise ValueError(f"v={v!r} is not allowed; allowed: a power of two in [2^-126, 2^127]")
        limit = int(np.float32(v).view(np.int32)) >> self.shift  # v's bit pattern is a multiple of 2^shift
        counts = self.counts.cpu()
        half = self.cells // 2
        positive = int(counts[:limit].sum())  # +0.0 and the positives below v
        negative = int(counts[half:half + limit].sum())  # magnitudes up to v
        minus_zero = int(counts[half - 1])  # -0.0 wraps to the last positive cell (see the class docstring)
        return positive + negative - (zeros - minus_zero)

    def histogram(self, amax: float, bins: int = 256) -> Histogram:
        """The signed histogram(x, bins) of every value added, given amax = max|x| over them (exact)."""
        if bins < 2 or bins & (bins - 1) or bins > 1 << (self.mantissa_bits + 1):
            raise ValueError(f"bins={bins} is not allowed; choose a power of two in 2..{1 << (self.mantissa_bits + 1)}")
        counts = self.counts.cpu().numpy()
        keys = np.flatnonzero(counts)
        half = _pow2_at_least(amax)
        positive = keys < self.cells // 2
        # The lowest value of each cell: [m 2^shift, ...) for positive cells, [-(m + 1) 2^shift, ...) for negative.
        pattern = np.where(positive, keys, keys - self.cells // 2 + 1).astype(np.int64) << self.shift
        low = pattern.astype(np.uint32).view(np.float32).astype(np.float64)
        low = np.where(positive, low, -low)
        low[keys == self.cells // 2 - 1] = 0.0  # -0.0
        with np.errstate(invalid="ignore"):
            idx = np.floor(low / (2 * half / bins)) + bins // 2
        out = np.zeros(bins, dtype=np.int64)
        np.add.at(out, np.clip(idx, 0, bins - 1).astype(np.int64), counts[keys])
        return Histogram(out, half, True)
