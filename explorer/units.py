"""Units: every size in the library is a plain number of bytes (and bytes/s, FLOP/s); these helpers say
which kind of "GB" a page shows.

Decimal (SI) units: GB = 10^9 bytes, TB/s = 10^12 bytes/s — what bandwidth datasheets and the issue's worked
bounds use. Binary (IEC) units: GiB = 2^30 bytes — what memory capacities really are (HBM and GDDR come in
powers of two) and what `nvidia-smi` and llama.cpp's quantize table print. 16.06 GB = 14.96 GiB.
"""
from __future__ import annotations

KB, MB, GB, TB = 1e3, 1e6, 1e9, 1e12
KiB, MiB, GiB, TiB = 2 ** 10, 2 ** 20, 2 ** 30, 2 ** 40

_DECIMAL = (("TB", TB), ("GB", GB), ("MB", MB), ("kB", KB))
_BINARY = (("TiB", TiB), ("GiB", GiB), ("MiB", MiB), ("KiB", KiB))


def fmt_bytes(n: float, binary: bool = False, digits: int = 2) -> str:
    """'16.06 GB' (decimal, default) or '14.96 GiB' (binary=True); picks the largest unit that is <= n."""
    if n < 0:
        raise ValueError(f"bytes={n!r} is not allowed; a size must be >= 0")
    for unit, size in (_BINARY if binary else _DECIMAL):
        if n >= size:
            return f"{n / size:.{digits}f} {unit}"
    return f"{n:.0f} B"


def fmt_rate(bytes_per_s: float, digits: int = 2) -> str:
    """Bandwidth in decimal units, as datasheets print it: '3.35 TB/s', '800.00 GB/s'."""
    return fmt_bytes(bytes_per_s, binary=False, digits=digits) + "/s"


def fmt_flops(flops_per_s: float, digits: int = 1) -> str:
    """'989.5 TFLOP/s', '67.0 TFLOP/s', '12.3 GFLOP/s'."""
    for unit, size in (("PFLOP/s", 1e15), ("TFLOP/s", 1e12), ("GFLOP/s", 1e9), ("MFLOP/s", 1e6)):
        if flops_per_s >= size:
            return f"{flops_per_s / size:.{digits}f} {unit}"
    return f"{flops_per_s:.0f} FLOP/s"
