"""Speed limits of a decode step: the memory-bandwidth bound, the compute bound, and the roofline.

Roofline model (Williams, Waterman, Patterson, CACM 2009): attainable FLOP/s = min(peak, intensity x bandwidth),
intensity = FLOPs / bytes moved. A decode step at batch b multiplies every weight matrix by b activation vectors:
FLOPs = 2 x b x (matmul parameters); bytes = weight bytes (read once per step, shared by the batch) + activations
in and out + the KV cache read by attention. At b = 1 the intensity is about 2 / (bytes per weight): far below any
GPU's ridge point, so decode is bandwidth-bound and tokens/s <= bandwidth / bytes read per token. Weight-only
quantization (W4A16: low-bit weights, 16-bit activations and math) raises intensity by shrinking the bytes;
weight-and-activation quantization (W8A8 / FP8) also raises the compute roof (8-bit tensor math).
These are upper limits, not predictions: kernels reach a fraction of them (llama.cpp's Q4_K_M decodes 2.47x
faster than F16 for a 3.27x smaller file).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

from explorer.hardware import Hardware, MathDType
from explorer.memory import KV_FORMATS, Fit, Footprint, KVFormat, Overhead, fit, kv_cache_bytes
from explorer.model_configs import ModelConfig


class Bound(enum.Enum):
    MEMORY = "memory-bound"
    COMPUTE = "compute-bound"


@dataclass(frozen=True)
class Execution:
    """How the matmuls run: activation width in bits and the math dtype (whose peak is the compute roof)."""

    label: str
    act_bits: int
    math: MathDType

    def __post_init__(self) -> None:
        if self.act_bits not in (4, 8, 16, 32):
            raise ValueError(f"act_bits={self.act_bits!r} is not allowed; choose one of [4, 8, 16, 32]")
        if not isinstance(self.math, MathDType):
            raise ValueError(f"math={self.math!r} is not allowed; choose one of {[d.value for d in MathDType]}")


WEIGHT_ONLY = Execution("weight-only (activations and math in bf16)", 16, MathDType.BF16)
W8A8_INT8 = Execution("W8A8 int8 (int8 activations and math)", 8, MathDType.INT8)
W8A8_FP8 = Execution("FP8 (fp8 activations and math)", 8, MathDType.FP8)

# Weight formats whose GPUs also run the activations and the math in 8 bits (W8A8). Everything else runs
# weight-only: low-bit weights are widened to bf16 for the math.
W8A8_FOR_FORMAT: dict[str, Execution] = {"int8": W8A8_INT8, "fp8_e4m3": W8A8_FP8, "fp8_e5m2": W8A8_FP8}


def _peak(hw: Hardware, math: MathDType) -> float:
    peak = hw.peak(math)
    if peak is None:
        raise ValueError(f"{hw.name} has no {math.value} peak FLOP/s ({hw.peak_figure(math).source}); choose a "
                         f"math dtype it has: {[d.value for d, f in hw.peaks if f.value is not None]}")
    return peak


def _bandwidth(hw: Hardware) -> float:
    bw = hw.bandwidth.value
    if bw is None:
        raise ValueError(f"{hw.name} has no known bandwidth ({hw.bandwidth.source})")
    return bw


def tokens_per_s_bound(bandwidth: float, bytes_per_token: float) -> float:
    """tokens/s <= bandwidth / bytes read per token (e.g. 3.35e12 / 16.06e9 = 209)."""
    if not bandwidth > 0 or not bytes_per_token > 0:
        raise ValueError(f"bandwidth={bandwidth!r}, bytes_per_token={bytes_per_token!r}: both must be > 0")
    return bandwidth / bytes_per_token


def flops_per_token(fp: Footprint, config: ModelConfig | None = None, context: int = 0) -> float:
    """2 FLOPs per weight of every matmul (Linear, lm_head; an embedding lookup costs none) plus, with a config,
    attention over `context` cached tokens: QK^T and AV, 2 x 2 x layers x heads x head_dim x context."""
    attention = 4 * config.layers * config.q_dim * context if config is not None else 0
    return 2.0 * fp.matmul_params + attention


@dataclass(frozen=True)
class DecodeBound:
    hardware: str
    batch: int
    context: int
    weight_bytes_read: float   # per step (shared by the batch)
    kv_bytes_read: float       # per step (all sequences)
    flops_per_step: float
    math: MathDType
    memory_time_s: float
    compute_time_s: float | None  # None when the hardware has no peak for `math`

    @property
    def step_time_s(self) -> float:
        return max(self.memory_time_s, self.compute_time_s or 0.0)

    @property
    def tokens_per_s(self) -> float:
        """Upper bound on generated tokens per second, all sequences of the batch together."""
        return self.batch / self.step_time_s

    @property
    def tokens_per_s_per_sequence(self) -> float:
        return 1.0 / self.step_time_s

    @property
    def bound(self) -> Bound:
        return Bound.COMPUTE if (self.compute_time_s or 0.0) > self.memory_time_s else Bound.MEMORY


def decode_bound(hw: Hardware, fp: Footprint, config: ModelConfig | None = None, context: int = 0, batch: int = 1,
                 kv: KVFormat = KV_FORMATS["fp16"], math: MathDType = MathDType.BF16,
                 embedding_rows_only: bool = True) -> DecodeBound:
    """Bounds for one decode step of `batch` sequences at `context` cached tokens each.

    Weight bytes: `fp.read_bytes_per_token` (a lookup table costs one row) or, with embedding_rows_only=False,
    all of `fp.weight_bytes` (the usual back-of-envelope convention). KV bytes need `config` (0 without it)."""
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch={batch!r} is not allowed; choose an integer >= 1")
    weights = fp.read_bytes_per_token if embedding_rows_only else fp.weight_bytes
    kv_read = kv_cache_bytes(config, context, batch, kv) if config is not None and context else 0.0
    flops = batch * flops_per_token(fp, config, context)
    peak = hw.peak(math)
    return DecodeBound(hw.name, batch, context, weights, kv_read, flops, math,
                       (weights + kv_read) / _bandwidth(hw), flops / peak if peak else None)


@dataclass(frozen=True)
class RooflinePoint:
    """The matmuls of one decode step at `batch` on the roofline (attention and KV excluded)."""

    batch: int
    flops: float
    bytes: float
    peak_flops: float
    bandwidth: float

    @property
    def intensity(self) -> float:
        """FLOPs per byte moved."""
        return self.flops / self.bytes

    @property
    def ridge_intensity(self) -> float:
        """Where the roof bends: peak / bandwidth. Below it: memory-bound."""
        return self.peak_flops / self.bandwidth

    @property
    def attainable_flops(self) -> float:
        return min(self.peak_flops, self.intensity * self.bandwidth)

    @property
    def bound(self) -> Bound:
        return Bound.MEMORY if self.intensity < self.ridge_intensity else Bound.COMPUTE

    @property
    def step_time_s(self) -> float:
        return self.flops / self.attainable_flops

    @property
    def tokens_per_s(self) -> float:
        return self.batch / self.step_time_s


def roofline_point(hw: Hardware, fp: Footprint, execution: Execution, batch: int) -> RooflinePoint:
    """FLOPs = 2 x batch x matmul params; bytes = matmul weight bytes (as `fp` stores them) + batch x (in + out
    activations) at `execution.act_bits`; the roof is `hw`'s dense peak for `execution.math`."""
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch={batch!r} is not allowed; choose an integer >= 1")
    flops = 2.0 * batch * fp.matmul_params
    moved = fp.matmul_bytes + batch * fp.matmul_io * execution.act_bits / 8
    return RooflinePoint(batch, flops, moved, _peak(hw, execution.math), _bandwidth(hw))


def roofline(hw: Hardware, fp: Footprint, execution: Execution,
             batches: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)) -> tuple[RooflinePoint, ...]:
    return tuple(roofline_point(hw, fp, execution, b) for b in batches)


def attainable_flops(hw: Hardware, math: MathDType, intensity: float) -> float:
    """The roof itself, for drawing it: min(peak, intensity x bandwidth)."""
    if not intensity > 0:
        raise ValueError(f"intensity={intensity!r} is not allowed; choose a number > 0")
    return min(_peak(hw, math), intensity * _bandwidth(hw))


@dataclass(frozen=True)
class Deployment:
    """One weight scheme on one accelerator: memory fit (weights + KV + overhead) and the decode bound."""

    hardware_key: str
    fit: Fit
    decode: DecodeBound

    @property
    def bytes_per_step(self) -> float:
        """Bytes one decode step reads: weights (once, shared by the batch) + the KV cache of every sequence."""
        return self.decode.weight_bytes_read + self.decode.kv_bytes_read


def deployment(hw: Hardware, fp: Footprint, config: ModelConfig | None = None, context: int = 0, batch: int = 1,
               kv: KVFormat = KV_FORMATS["fp16"], overhead: Overhead = Overhead(),
               math: MathDType = MathDType.BF16) -> Deployment:
    """`fit` and `decode_bound` of `fp` on `hw`, serving `batch` sequences of `context` tokens.

    The KV cache (kv_cache_bytes(config, context, batch, kv)) is counted in memory and read per step only for a
    decoder config; an encoder or a bare tensor listing (config None) keeps none."""
    cfg = config if config is not None and config.causal else None
    kv_bytes = kv_cache_bytes(cfg, context, batch, kv) if cfg is not None else 0.0
    return Deployment(hw.key, fit(hw, fp.weight_bytes, kv_bytes, overhead),
                      decode_bound(hw, fp, cfg, context if cfg is not None else 0, batch, kv, math))
