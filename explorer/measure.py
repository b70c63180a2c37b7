"""Measure here: time one layer's matmul y = x W^T on the device of W, in the formats a quantized model could use.

Variants, each at batch 1 (decode) and a larger batch:
- fp32 and bf16: W cast once, then a plain matmul.
- int8: W8A8 as torch runs it without a serving engine: x quantized per token (absmax / 127), torch._int_mm on
  int8 codes (W per output channel), int32 result rescaled. torch._int_mm is private and shape-limited (on CUDA
  it needs more than 16 rows), so it is tried at every batch and reported "unsupported here" when it fails.
- 4-bit dequantize + matmul: W quantized once with explorer.quantize (INT4 g128 asymmetric by default), then each
  call dequantizes to bf16 and multiplies. Without a fused kernel the 16-bit matrix is rebuilt every call, so
  4-bit is not faster here: fewer bytes stored is not fewer bytes moved.
Timing: one warm-up call per cell, then repeats until the cell's share of the time budget is spent; the median
is reported. CUDA work is synchronized before each clock read. Nothing is changed globally (threads, flags).
"""
from __future__ import annotations

import enum
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch

from explorer.device import device_name
from explorer.formats import make_spec
from explorer.quantize import check_weight, dequantize, quantize
from explorer.specs import QuantSpec
from explorer.storage import storage

Progress = Callable[[float, str], None]


class Variant(enum.Enum):
    FP32 = "fp32"
    BF16 = "bf16"
    INT8 = "int8 (torch._int_mm)"
    DEQUANT4 = "4-bit dequantize + bf16 matmul"


@dataclass(frozen=True)
class VariantTiming:
    variant: Variant
    batch: int
    median_s: float | None     # None: unsupported here
    repeats: int
    weight_bytes: int          # bytes of W this variant stores and reads (codes + scales for int8 / 4-bit)
    speedup_vs_fp32: float | None
    speedup_vs_bf16: float | None
    note: str

    @property
    def supported(self) -> bool:
        return self.median_s is not None


@dataclass(frozen=True)
class LayerTiming:
    hardware: str
    device: str
    threads: int
    shape: tuple[int, int]
    budget_s: float
    elapsed_s: float
    four_bit: str              # the 4-bit spec's label
    timings: tuple[VariantTiming, ...]

    def get(self, variant: Variant, batch: int) -> VariantTiming:
        for t in self.timings:
            if t.variant is variant and t.batch == batch:
                return t
        raise ValueError(f"no timing for ({variant.value!r}, batch={batch}); batches measured: "
                         f"{sorted({t.batch for t in self.timings})}")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _int8_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row int8: x [m, k] float -> (codes int8 [m, k], scales float32 [m, 1])."""
    scale = x.abs().amax(dim=1, keepdim=True).float().clamp(min=1e-12) / 127.0
    return torch.round(x.float() / scale).clamp(-127, 127).to(torch.int8), scale


def _variants(w: torch.Tensor, four_bit: QuantSpec) -> dict[Variant, tuple[Callable, int]]:
    """Per variant: (fn(x32) -> y, stored weight bytes). Weight preparation happens here, outside the timing."""
    w32 = w.float()
    wbf = w.to(torch.bfloat16)
    q8 = quantize(w32, make_spec("int8", "channel"))
    w8_t = q8.codes.t()                       # [in, out] view of the row-major [out, in] codes
    s8 = q8.scales.reshape(1, -1)             # [1, out]
    q4 = quantize(wbf, four_bit)              # dequantize() returns bf16
    numel = w.numel()

    def int8(x32: torch.Tensor) -> torch.Tensor:
        xq, sx = _int8_rows(x32)
        return torch._int_mm(xq, w8_t).float() * sx * s8

    return {
        Variant.FP32: (lambda x32: x32 @ w32.t(), 4 * numel),
        Variant.BF16: (lambda x32: x32.to(torch.bfloat16) @ wbf.t(), 2 * numel),
        Variant.INT8: (int8, storage(q8.spec, tuple(w.shape)).packed_bytes),
        Variant.DEQUANT4: (lambda x32: x32.to(torch.bfloat16) @ dequantize(q4).t(),
                           storage(four_bit, tuple(w.shape)).packed_bytes),
    }


def _time_cell(fn: Callable, x: torch.Tensor, device: torch.device, seconds: float,
               may_fail: bool = False) -> tuple[list[float], str]:
    """Warm-up, then repeats for about `seconds`. With `may_fail`, an error in the warm-up (a private op missing
    or refusing these shapes on this platform) is reported as 'unsupported here'. When the warm-up alone used
    the cell's share of the budget, it is the one sample (slow variants then cost one call, not two)."""
    try:
        _sync(device)
        t0 = time.perf_counter()
        fn(x)
        _sync(device)
        warm = time.perf_counter() - t0
    except (RuntimeError, NotImplementedError, AttributeError) as e:
        if not may_fail:
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return [], f"unsupported here: {first[:160]}"
    if warm >= seconds:
        return [warm], "1 run (the warm-up; budget spent)"
    times: list[float] = []
    deadline = time.perf_counter() + seconds - warm
    while not times or (time.perf_counter() < deadline and len(times) < 1000):
        _sync(device)
        t0 = time.perf_counter()
        fn(x)
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times, ""


def measure_layer(w: torch.Tensor, batches: tuple[int, ...] = (1, 64), budget_s: float = 3.0,
                  four_bit: QuantSpec | None = None, on_progress: Progress | None = None,
                  seed: int = 0) -> LayerTiming:
    """Time y = x W^T for W [out, in] on W's device at each batch size, within about `budget_s` seconds.

    four_bit: the 4-bit spec (default INT4 g128 asymmetric, fp16 scale and zero; its group must fit the row).
    on_progress(fraction in [0, 1], message) is called after preparation and after every cell.
    Never mutates w. The activations x [batch, in] are seeded N(0, 1), so runs are repeatable."""
    check_weight(w)
    if not budget_s > 0:
        raise ValueError(f"budget_s={budget_s!r} is not allowed; choose a number of seconds > 0")
    if not batches or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in batches):
        raise ValueError(f"batches={batches!r} is not allowed; give a non-empty tuple of integers >= 1")
    four_bit = four_bit or make_spec("int4", "group", 128, symmetric=False)
    if four_bit.format.bits != 4:
        raise ValueError(f"four_bit={four_bit.label!r} is not allowed; choose a 4-bit format spec")
    report = on_progress or (lambda fraction, message: None)
    device = w.device
    start = time.perf_counter()
    variants = _variants(w, four_bit)
    cells = [(b, v) for b in batches for v in variants]
    report(0.0, f"prepared fp32, bf16, int8 and {four_bit.label} copies of W {tuple(w.shape)}")
    gen = torch.Generator().manual_seed(seed)
    medians: dict[tuple[Variant, int], float | None] = {}
    raw: list[tuple[Variant, int, list[float], str]] = []
    for k, (batch, variant) in enumerate(cells):
        x = torch.randn(batch, w.shape[1], generator=gen).to(device)
        left = budget_s - (time.perf_counter() - start)
        fn, _ = variants[variant]
        times, note = _time_cell(fn, x, device, max(left, 0.0) / (len(cells) - k), variant is Variant.INT8)
        medians[(variant, batch)] = statistics.median(times) if times else None
        raw.append((variant, batch, times, note))
        report((k + 1) / len(cells), f"batch {batch}, {variant.value}: "
               + (f"{medians[(variant, batch)] * 1e3:.3f} ms" if times else note))

    def ratio(ref: Variant, variant: Variant, batch: int) -> float | None:
        a, b = medians.get((ref, batch)), medians[(variant, batch)]
        return a / b if a and b else None

    timings = tuple(
        VariantTiming(v, b, medians[(v, b)], len(times), variants[v][1], ratio(Variant.FP32, v, b),
                      ratio(Variant.BF16, v, b), note or f"median of {len(times)} runs")
        for v, b, times, note in raw)
    return LayerTiming(device_name(device), str(device), torch.get_num_threads(), tuple(w.shape), budget_s,
                       time.perf_counter() - start, four_bit.label, timings)


@dataclass(frozen=True)
class BandwidthResult:
    device: str
    nbytes: int          # size of the buffer copied
    median_s: float
    repeats: int

    @property
    def bytes_per_s(self) -> float:
        """A copy reads and writes the buffer: 2 x nbytes per copy."""
        return 2 * self.nbytes / self.median_s


def measure_copy_bandwidth(device: torch.device | str = "cpu", nbytes: int = 64 * 2 ** 20,
                           budget_s: float = 1.0) -> BandwidthResult:
    """Memory bandwidth seen by torch: median time of dst.copy_(src) for two `nbytes` buffers on `device`.

    A floor for what a decode step can stream (one read + one write per byte); pass `bytes_per_s` to
    explorer.hardware.this_machine to fill its "measure here" bandwidth."""
    device = torch.device(device)
    if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 4:
        raise ValueError(f"nbytes={nbytes!r} is not allowed; choose an integer >= 4")
    if not budget_s > 0:
        raise ValueError(f"budget_s={budget_s!r} is not allowed; choose a number of seconds > 0")
    src = torch.ones(nbytes // 4, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    times, _ = _time_cell(lambda s: dst.copy_(s), src, device, budget_s)
    return BandwidthResult(str(device), 4 * (nbytes // 4), statistics.median(times), len(times))
