"""Memory: what a model occupies (weights under a quantization scheme, KV cache) and whether it fits.

- Weights: Linear weights at `explorer.storage.storage(spec, shape).bits_per_weight` (codes + scales + zero points,
  so INT4 g128 asymmetric with fp16 scale and zero is 4.25 bits), everything else (embeddings, norms, biases) kept
  at a 16-bit dtype; lm_head quantized only on request; per-name overrides make mixes (e.g. down_proj at int8).
  `footprint_at_bpw` is the back-of-envelope convention "every parameter at X bits".
- KV cache: 2 (K and V) x layers x kv_heads x head_dim x context x batch x bytes per element (vLLM and HF size
  their caches this way), in fp16/bf16, fp8, int8 (one per-tensor scale) or int4 with an fp16 scale per group
  of 64 elements along head_dim (4 + 16/64 = 4.25 bits; KIVI, arXiv 2402.02750, quantizes the cache in groups).
- Fit: weights + KV + overhead vs GPU memory, and how many GPUs the weights and cache need when split evenly.
All functions are pure and return frozen dataclasses; sizes are bytes (floats: X bpw need not be whole bytes);
format them with `explorer.units`. Bandwidth and FLOP/s bounds live in `explorer.bounds`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

from explorer.hardware import Hardware
from explorer.model_configs import ModelConfig, TensorKind, TensorSpec, model_tensors
from explorer.specs import QuantSpec, ScaleDType
from explorer.storage import storage
from explorer.units import GiB


# The dtype unquantized tensors are kept in: the same three float dtypes (and widths) as a scale's storage.
StoreDType = ScaleDType


@dataclass(frozen=True)
class WeightScheme:
    """Which tensors are quantized, and how.

    linear: spec for every Linear weight (None keeps them at `keep`); keep: dtype of everything unquantized;
    quantize_lm_head: also store an untied lm_head with `linear` (a tied one is the embedding and stays kept);
    overrides: (name substring, spec or None) pairs checked first, in order, for any 2-D tensor (a mix)."""

    linear: QuantSpec | None = None
    keep: StoreDType = StoreDType.BF16
    quantize_lm_head: bool = False
    overrides: tuple[tuple[str, QuantSpec | None], ...] = ()

    def __post_init__(self) -> None:
        if self.linear is not None and not isinstance(self.linear, QuantSpec):
            raise ValueError(f"linear={self.linear!r} is not allowed; give a QuantSpec or None")
        if not isinstance(self.keep, StoreDType):
            allowed = [d.value for d in StoreDType]
            if self.keep not in allowed:
                raise ValueError(f"keep={self.keep!r} is not allowed; choose one of {allowed}")
            object.__setattr__(self, "keep", StoreDType(self.keep))
        if not isinstance(self.quantize_lm_head, bool):
            raise ValueError(f"quantize_lm_head={self.quantize_lm_head!r} must be True or False")
        for item in self.overrides:
            ok = (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str) and item[0]
                  and (item[1] is None or isinstance(item[1], QuantSpec)))
            if not ok:
                raise ValueError(f"override {item!r} is not allowed; give (non-empty name substring, QuantSpec "
                                 f"or None)")

    def spec_for(self, t: TensorSpec) -> QuantSpec | None:
        """The spec `t` is stored with, or None when it is kept at `keep`."""
        if len(t.shape) != 2:
            return None
        for pattern, spec in self.overrides:
            if pattern in t.name:
                return spec
        if t.kind is TensorKind.LINEAR or (t.kind is TensorKind.LM_HEAD and self.quantize_lm_head):
            return self.linear
        return None

    @property
    def label(self) -> str:
        base = self.linear.label if self.linear else self.keep.value
        extra = " + lm_head" if self.quantize_lm_head and self.linear else ""
        mix = f" (+{len(self.overrides)} overrides)" if self.overrides else ""
        return f"Linear {base}{extra}, rest {self.keep.value}{mix}"


@dataclass(frozen=True)
class TensorBytes:
    name: str
    kind: TensorKind
    shape: tuple[int, ...]
    numel: int
    bits_per_weight: float
    nbytes: float
    stored_as: str       # the QuantSpec label, or the kept dtype
    matmul: bool         # multiplied by activations every token (Linear, lm_head, a tied embedding)
    read_per_token: float  # bytes streamed per decode step: all of it, or one row of a lookup table


@dataclass(frozen=True)
class Footprint:
    """Weight storage of one model under one scheme. Buffers (position ids) are left out."""

    label: str
    tensors: tuple[TensorBytes, ...]

    @property
    def params(self) -> int:
        return sum(t.numel for t in self.tensors)

    @property
    def weight_bytes(self) -> float:
        return sum(t.nbytes for t in self.tensors)

    @property
    def bits_per_weight(self) -> float:
        """Effective bits per parameter over the whole model."""
        return 8 * self.weight_bytes / self.params

    @property
    def read_bytes_per_token(self) -> float:
        """Weight bytes one decode step reads: every matrix, but a single row of each lookup table."""
        return sum(t.read_per_token for t in self.tensors)

    @property
    def matmul_params(self) -> int:
        return sum(t.numel for t in self.tensors if t.matmul)

    @property
    def matmul_bytes(self) -> float:
        return sum(t.nbytes for t in self.tensors if t.matmul)

    @property
    def matmul_io(self) -> int:
        """Activation elements in + out of every matmul, per token (sum of in + out features)."""
        return sum(t.shape[0] + t.shape[1] for t in self.tensors if t.matmul)

    def bytes_by_kind(self) -> dict[TensorKind, float]:
        out: dict[TensorKind, float] = {}
        for t in self.tensors:
            out[t.kind] = out.get(t.kind, 0.0) + t.nbytes
        return out

    def bits_per_weight_of(self, kind: TensorKind) -> float | None:
        """Effective bits per parameter over the tensors of one kind (None when the model has none)."""
        numel = sum(t.numel for t in self.tensors if t.kind is kind)
        return 8 * sum(t.nbytes for t in self.tensors if t.kind is kind) / numel if numel else None


def _row(t: TensorSpec, bits: float, nbytes: float, stored_as: str) -> TensorBytes:
    matmul = t.kind in (TensorKind.LINEAR, TensorKind.LM_HEAD) or t.tied_lm_head
    lookup = t.kind is TensorKind.EMBEDDING and not t.tied_lm_head
    read = nbytes / t.shape[0] if lookup else nbytes
    return TensorBytes(t.name, t.kind, t.shape, t.numel, bits, nbytes, stored_as, matmul, read)


def footprint(tensors: Iterable[TensorSpec], scheme: WeightScheme) -> Footprint:
    """Storage of every parameter tensor under `scheme` (see `explorer.model_configs.model_tensors`)."""
    rows = []
    for t in tensors:
        if not t.is_parameter:
            continue
        spec = scheme.spec_for(t)
        if spec is None:
            bits, label = float(scheme.keep.bits), scheme.keep.value
            nbytes = t.numel * bits / 8
        else:
            s = storage(spec, t.shape)
            bits, label, nbytes = s.bits_per_weight, spec.label, s.total_bits / 8
        rows.append(_row(t, bits, nbytes, label))
    return Footprint(scheme.label, tuple(rows))


def footprint_at_bpw(tensors: Iterable[TensorSpec], bits_per_weight: float) -> Footprint:
    """Every parameter at `bits_per_weight` — the back-of-envelope convention (8.03e9 x 4.25 / 8 = 4.27 GB)."""
    if not bits_per_weight > 0:
        raise ValueError(f"bits_per_weight={bits_per_weight!r} is not allowed; choose a number > 0")
    rows = [_row(t, bits_per_weight, t.numel * bits_per_weight / 8, f"{bits_per_weight:g} bpw")
            for t in tensors if t.is_parameter]
    return Footprint(f"all weights at {bits_per_weight:g} bpw", tuple(rows))


def model_footprint(config: ModelConfig, scheme: WeightScheme) -> Footprint:
    return footprint(model_tensors(config), scheme)


@dataclass(frozen=True)
class KVFormat:
    """How KV-cache elements are stored: `bits` per element plus one `scale_bits` scale per `group_size`
    elements along head_dim (group_size 0: a single per-tensor scale, negligible)."""

    name: str
    bits: int
    group_size: int = 0
    scale_bits: int = 0
    note: str = ""

    def bits_per_element(self, head_dim: int) -> float:
        if not self.group_size:
            return float(self.bits)
        return self.bits + self.scale_bits * math.ceil(head_dim / self.group_size) / head_dim


KV_FORMATS: dict[str, KVFormat] = {k.name: k for k in (
    KVFormat("fp16", 16, note="the model's 16-bit dtype (fp16 or bf16): the default cache"),
    KVFormat("fp8", 8, note="FP8 E4M3 with one per-tensor scale, as vLLM's fp8 KV cache"),
    KVFormat("int8", 8, note="int8 with one per-tensor scale"),
    KVFormat("int4", 4, 64, 16, note="int4 with an fp16 scale per group of 64 elements along head_dim: 4.25 bits"),
)}


def get_kv_format(name: str) -> KVFormat:
    try:
        return KV_FORMATS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown KV format {name!r}; choose one of {list(KV_FORMATS)}") from None


def kv_cache_bytes(config: ModelConfig, context: int, batch: int = 1, kv: KVFormat = KV_FORMATS["fp16"]) -> float:
    """2 x layers x kv_heads x head_dim x context x batch x bytes/element. Llama-3.1-8B fp16: 131072 B/token."""
    if not config.causal:
        raise ValueError(f"{config.display_name} is an encoder ({config.arch.value}): it keeps no KV cache; "
                         f"allowed: decoder models")
    for name, v in (("context", context), ("batch", batch)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"{name}={v!r} is not allowed; choose an integer >= 0")
    elements = 2 * config.layers * config.kv_heads * config.head_dim * context * batch
    return elements * kv.bits_per_element(config.head_dim) / 8


@dataclass(frozen=True)
class Overhead:
    """Memory beyond weights and KV: a fixed part per GPU (CUDA context, cuBLAS workspace, allocator) and a
    fraction of weights + KV (activations, temporary buffers, fragmentation). The defaults, 1 GiB + 10%, are a
    stated rule of thumb, not a measurement (for scale: vLLM by default plans with 90% of GPU memory)."""

    fixed_bytes: float = 1.0 * GiB
    fraction: float = 0.10

    def __post_init__(self) -> None:
        if not self.fixed_bytes >= 0 or not 0 <= self.fraction < 1:
            raise ValueError(f"Overhead(fixed_bytes={self.fixed_bytes!r}, fraction={self.fraction!r}) is not "
                             f"allowed; fixed_bytes >= 0 and 0 <= fraction < 1")

    def describe(self) -> str:
        return f"{self.fixed_bytes / GiB:g} GiB per GPU + {self.fraction:.0%} of weights and KV cache"


@dataclass(frozen=True)
class Fit:
    hardware: str
    memory_bytes: float
    weight_bytes: float
    kv_bytes: float
    overhead_bytes: float   # on one GPU
    overhead: str           # the assumption, in words
    fits: bool              # on one GPU
    gpus_needed: int        # weights + KV split evenly over this many GPUs, each paying the fixed overhead
    gpus_tensor_parallel: int  # the next power of two: tensor parallelism usually runs on 1, 2, 4, 8 GPUs

    @property
    def total_bytes(self) -> float:
        return self.weight_bytes + self.kv_bytes + self.overhead_bytes

    @property
    def free_bytes(self) -> float:
        """Memory left on one GPU (negative: short by that much)."""
        return self.memory_bytes - self.total_bytes


def fit(hw: Hardware, weight_bytes: float, kv_bytes: float = 0.0, overhead: Overhead = Overhead()) -> Fit:
    """Does weights + KV + overhead fit in `hw`'s memory, and how many such GPUs would it take?"""
    mem = hw.memory_bytes.value
    if mem is None:
        raise ValueError(f"{hw.name} has no known memory size ({hw.memory_bytes.source})")
    if weight_bytes < 0 or kv_bytes < 0:
        raise ValueError(f"weight_bytes={weight_bytes!r}, kv_bytes={kv_bytes!r}: sizes must be >= 0")
    if mem <= overhead.fixed_bytes:
        raise ValueError(f"{hw.name}: memory {mem:.3g} B is not above the fixed overhead {overhead.fixed_bytes:.3g} B")
    scaled = (weight_bytes + kv_bytes) * (1 + overhead.fraction)
    n = max(1, math.ceil(scaled / (mem - overhead.fixed_bytes)))
    return Fit(hw.name, mem, weight_bytes, kv_bytes, scaled - weight_bytes - kv_bytes + overhead.fixed_bytes,
               overhead.describe(), n == 1, n, 1 << (n - 1).bit_length())


def max_context(hw: Hardware, weight_bytes: float, config: ModelConfig, batch: int = 1,
                kv: KVFormat = KV_FORMATS["fp16"], overhead: Overhead = Overhead()) -> int:
    """The longest context (tokens per sequence) whose KV cache still fits on one GPU next to the weights."""
    mem = hw.memory_bytes.value
    if mem is None:
        raise ValueError(f"{hw.name} has no known memory size ({hw.memory_bytes.source})")
    room = (mem - overhead.fixed_bytes) / (1 + overhead.fraction) - weight_bytes
    per_token = kv_cache_bytes(config, 1, batch, kv)
    return max(0, math.floor(room / per_token))
