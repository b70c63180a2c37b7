"""The hardware table, as data: memory, memory bandwidth and dense peak FLOP/s per math dtype, each number
with its source.

Rules the table follows:
- Only DENSE tensor throughput is used. NVIDIA datasheets print tensor figures "with sparsity" (2:4 structured
  sparsity doubles them); the dense figure is half, and the sparse one is only quoted in the note.
- Bandwidth is decimal (3.35 TB/s = 3.35e12 bytes/s), as printed. Capacity printed as "80GB" is stored as
  80 GiB: HBM/GDDR capacities are powers of two (nvidia-smi shows 81920 MiB on an A100 80GB), slightly less of
  it is usable (ECC, driver reserve); the note says so.
- A number nobody published is None with a source that says why ("not supported", "measure here"), never a
  guess. Numbers taken from third-party copies of a datasheet say so in their source.
`this_machine()` describes the computer running the code (CPU model, cores, RAM); its bandwidth and FLOP/s are
None ("measure here", see `explorer.measure`) unless a measured value is passed in.
"""
from __future__ import annotations

import enum
import os
import platform
from dataclasses import dataclass

from explorer.units import GiB


class MathDType(enum.Enum):
    """The dtype the multiply-accumulate runs in (tensor cores where the chip has them)."""

    FP32 = "fp32"   # plain FP32 (non-tensor) FLOP/s
    BF16 = "bf16"   # BF16 / FP16 tensor math, FP32 accumulate
    FP8 = "fp8"     # FP8 (E4M3/E5M2) tensor math
    INT8 = "int8"   # INT8 tensor math (TOPS: integer ops, counted like FLOPs)
    FP4 = "fp4"     # FP4 tensor math (Blackwell and later)


@dataclass(frozen=True)
class Figure:
    """One number with its source. value None means: not published / not supported / not measured."""

    value: float | None
    source: str
    note: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.source, str) or not self.source.strip():
            raise ValueError(f"source={self.source!r} is not allowed; every figure needs a non-empty source")
        if self.value is not None and not self.value > 0:
            raise ValueError(f"value={self.value!r} is not allowed; a figure is > 0 or None (unknown)")


@dataclass(frozen=True)
class Hardware:
    """One accelerator (or this machine). memory in bytes, bandwidth in bytes/s, peaks in FLOP/s (dense)."""

    key: str
    name: str
    memory_bytes: Figure
    bandwidth: Figure
    peaks: tuple[tuple[MathDType, Figure], ...]

    def __post_init__(self) -> None:
        dtypes = [d for d, _ in self.peaks]
        missing = [d.value for d in MathDType if d not in dtypes]
        if missing or len(dtypes) != len(set(dtypes)):
            raise ValueError(f"{self.key}: peaks must name each of {[d.value for d in MathDType]} once "
                             f"(missing {missing})")

    def peak_figure(self, dtype: MathDType) -> Figure:
        return dict(self.peaks)[MathDType(dtype)]

    def peak(self, dtype: MathDType) -> float | None:
        """Dense peak FLOP/s for `dtype`, or None when unknown/unsupported."""
        return self.peak_figure(dtype).value

    def figures(self) -> dict[str, Figure]:
        """Every number of the row by label: memory, bandwidth, peak_<dtype>."""
        out = {"memory": self.memory_bytes, "bandwidth": self.bandwidth}
        out.update({f"peak_{d.value}": f for d, f in self.peaks})
        return out


def _peaks(fp32: Figure, bf16: Figure, fp8: Figure, int8: Figure, fp4: Figure) -> tuple:
    return ((MathDType.FP32, fp32), (MathDType.BF16, bf16), (MathDType.FP8, fp8),
            (MathDType.INT8, int8), (MathDType.FP4, fp4))


def _dense(sparse_tflops: float, src: str) -> Figure:
    """A datasheet tensor figure printed with sparsity -> the dense figure (half), sparse one kept in the note."""
    return Figure(sparse_tflops / 2 * 1e12, src,
                  f"datasheet prints {sparse_tflops:,g} T with 2:4 sparsity (NOT used); dense = half")


def _cap(gib: float, src: str) -> Figure:
    return Figure(gib * GiB, src, f"printed as '{gib:g}GB'; stored as {gib:g} GiB (memory comes in powers of "
                                  f"two); somewhat less is usable after ECC and driver reserve")


_H100 = "NVIDIA H100 Tensor Core GPU datasheet"
_H100_3P = " (confirmed via a reseller's reproduction of the datasheet table, footnote '* Shown with sparsity')"
_H200 = "NVIDIA H200 Tensor Core GPU datasheet (H200 SXM column)"
_A100 = "NVIDIA A100 Tensor Core GPU datasheet"
_L4 = "NVIDIA L4 Tensor Core GPU datasheet"
_L4_3P = " (confirmed via third-party copies of the datasheet: 485 TOPS/120 TFLOPS marked 'Sparsity')"
_ADA = "NVIDIA Ada GPU Architecture whitepaper, appendix table for GeForce RTX 4090"
_ADA_3P = " (confirmed via third-party spec listings; the whitepaper itself not read here)"
_APPLE = "Apple newsroom, 'Apple introduces M2 Ultra' (June 2023)"
_NO_FP8 = "not supported: no FP8 tensor cores on this architecture"
_NO_FP4 = "not supported: FP4 tensor math arrives with NVIDIA Blackwell"
_APPLE_NO = "not published: Apple gives no GPU peak FLOP/s for M2 Ultra"

HARDWARE: dict[str, Hardware] = {h.key: h for h in (
    Hardware(
        "h100_sxm", "NVIDIA H100 SXM 80GB",
        _cap(80, f"{_H100}: GPU memory 80GB (H100 SXM)"),
        Figure(3.35e12, f"{_H100}: GPU memory bandwidth 3.35TB/s (H100 SXM)",
               "LLM-Viewer uses 3.072 TB/s; the datasheet figure is used here"),
        _peaks(Figure(67e12, f"{_H100}: FP32 67 teraFLOPS (H100 SXM)"),
               _dense(1979, f"{_H100}: BFLOAT16/FP16 Tensor Core 1,979 teraFLOPS* (H100 SXM)"),
               _dense(3958, f"{_H100}: FP8 Tensor Core 3,958 teraFLOPS* (H100 SXM)"),
               _dense(3958, f"{_H100}: INT8 Tensor Core 3,958 TOPS* (H100 SXM)"),
               Figure(None, _NO_FP4))),
    Hardware(
        "h100_pcie", "NVIDIA H100 PCIe 80GB",
        _cap(80, f"{_H100}: GPU memory 80GB (H100 PCIe)"),
        Figure(2.0e12, f"{_H100}: GPU memory bandwidth 2TB/s (H100 PCIe){_H100_3P}",
               "NVIDIA's H100 PCIe product brief says 'greater than 2,000 GBps'"),
        _peaks(Figure(51e12, f"{_H100}: FP32 51 teraFLOPS (H100 PCIe){_H100_3P}"),
               _dense(1513, f"{_H100}: BFLOAT16/FP16 Tensor Core 1,513 teraFLOPS* (H100 PCIe){_H100_3P}"),
               _dense(3026, f"{_H100}: FP8 Tensor Core 3,026 teraFLOPS* (H100 PCIe){_H100_3P}"),
               _dense(3026, f"{_H100}: INT8 Tensor Core 3,026 TOPS* (H100 PCIe){_H100_3P}"),
               Figure(None, _NO_FP4))),
    Hardware(
        "h200", "NVIDIA H200 SXM 141GB",
        _cap(141, f"{_H200}: GPU memory 141GB HBM3e"),
        Figure(4.8e12, f"{_H200}: GPU memory bandwidth 4.8TB/s"),
        _peaks(Figure(67e12, f"{_H200}: FP32 67 TFLOPS (same Hopper compute as H100 SXM)"),
               _dense(1979, f"{_H200}: BFLOAT16/FP16 Tensor Core 1,979 TFLOPS*"),
               _dense(3958, f"{_H200}: FP8 Tensor Core 3,958 TFLOPS*"),
               _dense(3958, f"{_H200}: INT8 Tensor Core 3,958 TOPS*"),
               Figure(None, _NO_FP4))),
    Hardware(
        "a100_40gb", "NVIDIA A100 40GB (SXM)",
        _cap(40, f"{_A100}: GPU memory 40GB HBM2"),
        Figure(1.555e12, f"{_A100}: GPU memory bandwidth 1,555GB/s (A100 40GB)"),
        _peaks(Figure(19.5e12, f"{_A100}: FP32 19.5 TFLOPS"),
               _dense(624, f"{_A100}: BFLOAT16/FP16 Tensor Core 312 | 624 TFLOPS* (dense | sparse)"),
               Figure(None, _NO_FP8 + " (Ampere)"),
               _dense(1248, f"{_A100}: INT8 Tensor Core 624 | 1,248 TOPS* (dense | sparse)"),
               Figure(None, _NO_FP4))),
    Hardware(
        "a100_80gb_sxm", "NVIDIA A100 80GB SXM",
        _cap(80, f"{_A100}: GPU memory 80GB HBM2e"),
        Figure(2.039e12, f"{_A100}: GPU memory bandwidth 2,039GB/s (A100 80GB SXM)",
               "the A100 80GB PCIe card is 1,935GB/s"),
        _peaks(Figure(19.5e12, f"{_A100}: FP32 19.5 TFLOPS"),
               _dense(624, f"{_A100}: BFLOAT16/FP16 Tensor Core 312 | 624 TFLOPS* (dense | sparse)"),
               Figure(None, _NO_FP8 + " (Ampere)"),
               _dense(1248, f"{_A100}: INT8 Tensor Core 624 | 1,248 TOPS* (dense | sparse)"),
               Figure(None, _NO_FP4))),
    Hardware(
        "l4", "NVIDIA L4 24GB",
        _cap(24, f"{_L4}: GPU memory 24GB GDDR6"),
        Figure(300e9, f"{_L4}: GPU memory bandwidth 300GB/s{_L4_3P}"),
        _peaks(Figure(30.3e12, f"{_L4}: FP32 30.3 teraFLOPS{_L4_3P}"),
               _dense(242, f"{_L4}: BFLOAT16/FP16 Tensor Core 242 teraFLOPS*{_L4_3P}"),
               _dense(485, f"{_L4}: FP8 Tensor Core 485 teraFLOPS*{_L4_3P}"),
               _dense(485, f"{_L4}: INT8 Tensor Core 485 TOPS*{_L4_3P}"),
               Figure(None, _NO_FP4))),
    Hardware(
        "rtx_4090", "NVIDIA GeForce RTX 4090 24GB",
        _cap(24, f"{_ADA}: 24 GB GDDR6X"),
        Figure(1008e9, f"{_ADA}: memory bandwidth 1,008 GB/s (21 Gbps x 384-bit){_ADA_3P}"),
        _peaks(Figure(82.6e12, f"{_ADA}: peak FP32 82.6 TFLOPS{_ADA_3P}"),
               Figure(165.2e12, f"{_ADA}: peak BF16/FP16 tensor 165.2 TFLOPS with FP32 accumulate{_ADA_3P}",
                      "dense; FP16 with FP16 accumulate is 330.3 (not used: LLM kernels accumulate in "
                      "FP32); sparse figures (330.4) NOT used"),
               Figure(330.3e12, f"{_ADA}: peak FP8 tensor 330.3 TFLOPS with FP32 accumulate{_ADA_3P}",
                      "dense; 660.6 with FP16 accumulate; sparse figures NOT used"),
               Figure(660.6e12, f"{_ADA}: peak INT8 tensor 660.6 TOPS{_ADA_3P}",
                      "dense; 1,321.2 with sparsity NOT used"),
               Figure(None, _NO_FP4 + " (Ada has none)"))),
    Hardware(
        "m2_ultra", "Apple M2 Ultra (192GB)",
        _cap(192, f"{_APPLE}: up to 192GB unified memory"),
        Figure(800e9, f"{_APPLE}: 800GB/s memory bandwidth (confirmed via press copies of the release)",
               "shared by CPU, GPU and Neural Engine"),
        _peaks(Figure(None, _APPLE_NO),
               Figure(None, _APPLE_NO, "the 31.6 trillion ops/s quoted is the Neural Engine, precision "
                                       "unstated, not a GPU matmul peak"),
               Figure(None, _NO_FP8 + " (Apple GPU)"),
               Figure(None, _APPLE_NO),
               Figure(None, _NO_FP4 + " (Apple GPU)"))),
)}


def hardware_names() -> list[str]:
    return list(HARDWARE)


def get_hardware(key: str) -> Hardware:
    """The table row for `key`; ValueError naming the allowed set otherwise."""
    try:
        return HARDWARE[key]
    except (KeyError, TypeError):
        raise ValueError(f"unknown hardware {key!r}; choose one of {hardware_names()}") from None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _total_ram() -> tuple[float | None, str]:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return float(line.split()[1]) * 1024, "/proc/meminfo MemTotal (kB = 1024 bytes)"
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")), "os.sysconf page size x pages"
    except (ValueError, OSError, AttributeError):
        return None, "not readable here: neither /proc/meminfo nor os.sysconf answered"


def this_machine(bandwidth_bytes_per_s: float | None = None, bandwidth_source: str = "") -> Hardware:
    """The computer running this code: CPU model and core count from /proc/cpuinfo / os.cpu_count, RAM from
    /proc/meminfo. Bandwidth and FLOP/s are None ("measure here") unless a measured bandwidth is passed
    (with `bandwidth_source` saying how it was measured, e.g. explorer.measure.measure_copy_bandwidth)."""
    cores = os.cpu_count() or 0
    ram, ram_src = _total_ram()
    if bandwidth_bytes_per_s is None:
        bw = Figure(None, "measure here: no datasheet for this machine; see explorer.measure")
    else:
        bw = Figure(float(bandwidth_bytes_per_s), bandwidth_source or "measured here")
    unmeasured = Figure(None, "measure here: peak FLOP/s of this CPU is not known to the explorer")
    return Hardware("this_machine", f"This machine: {_cpu_model()} ({cores} logical cores)",
                    Figure(ram, ram_src) if ram else Figure(None, ram_src), bw,
                    _peaks(unmeasured, unmeasured, unmeasured, unmeasured, unmeasured))
