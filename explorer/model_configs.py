"""Real architecture configs as data, and the tensor list (name, shape, kind) they imply.

Each `ModelConfig` copies the numbers from the model's config.json on its Hugging Face model card (named in
`source`), plus the published parameter count. `model_tensors(config)` derives the full list of stored tensors
with Hugging Face names from a per-architecture template table, and `tensors_from_listing(pairs)` builds the
same kind of list from a real checkpoint's own (name, shape[, dtype]) listing, e.g. `explorer.loader.list_tensors`.

Kinds: LINEAR (a 2-D matmul weight, the thing weight quantization targets), EMBEDDING (lookup tables), LM_HEAD
(the output projection; stored only when embeddings are untied), NORM (norm weights and biases), BIAS (Linear
biases), BUFFER (not a parameter: position ids, RoPE tables), OTHER (kept parameters of other ranks).
"""
from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass
from typing import Iterable, Sequence


class Arch(enum.Enum):
    """Architecture family; each has a tensor template below."""

    LLAMA = "llama"  # decoder: RMSNorm, SwiGLU MLP, RoPE, GQA (Llama, Mistral, Qwen2, SmolLM2)
    BERT = "bert"    # encoder: LayerNorm, GELU MLP, learned positions, biases everywhere


class TensorKind(enum.Enum):
    LINEAR = "linear"
    EMBEDDING = "embedding"
    LM_HEAD = "lm_head"
    NORM = "norm"
    BIAS = "bias"
    BUFFER = "buffer"
    OTHER = "other"


@dataclass(frozen=True)
class ModelConfig:
    """Architecture numbers of one real model (config.json field names in comments)."""

    key: str
    display_name: str
    hf_id: str
    arch: Arch
    hidden: int           # hidden_size
    intermediate: int     # intermediate_size
    layers: int           # num_hidden_layers
    heads: int            # num_attention_heads
    kv_heads: int         # num_key_value_heads (= heads without GQA)
    head_dim: int         # head_dim, else hidden_size / num_attention_heads
    vocab: int            # vocab_size
    tied_embeddings: bool  # tie_word_embeddings
    published_params: float
    params_source: str
    source: str
    qkv_bias: bool = False       # Qwen2: q/k/v projections carry biases
    max_positions: int = 0       # BERT: learned position table rows (max_position_embeddings)
    type_vocab: int = 0          # BERT: token_type_embeddings rows (type_vocab_size)

    def __post_init__(self) -> None:
        for field in ("hidden", "intermediate", "layers", "heads", "kv_heads", "head_dim", "vocab"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{self.key}: {field}={value!r} is not allowed; choose an integer >= 1")
        if self.heads % self.kv_heads:
            raise ValueError(f"{self.key}: kv_heads={self.kv_heads} must divide heads={self.heads}")
        if not isinstance(self.arch, Arch):
            raise ValueError(f"{self.key}: arch={self.arch!r} is not allowed; choose one of {[a.value for a in Arch]}")

    @property
    def causal(self) -> bool:
        """True for decoders (they generate token by token and keep a KV cache)."""
        return self.arch is Arch.LLAMA

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim


@dataclass(frozen=True)
class TensorSpec:
    """One stored tensor. `tied_lm_head`: this embedding also serves as the output projection."""

    name: str
    shape: tuple[int, ...]
    kind: TensorKind
    tied_lm_head: bool = False

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def is_parameter(self) -> bool:
        return self.kind is not TensorKind.BUFFER


_HF = "config.json on the Hugging Face model card"
_L = TensorKind.LINEAR
_N = TensorKind.NORM
_B = TensorKind.BIAS
_E = TensorKind.EMBEDDING

# Templates: (name with {i} for the block index, shape as config attribute names, kind, condition attribute).
_LLAMA_TOP = (("model.embed_tokens.weight", ("vocab", "hidden"), _E, ""),
              ("model.norm.weight", ("hidden",), _N, ""))
_LLAMA_BLOCK = (
    ("input_layernorm.weight", ("hidden",), _N, ""),
    ("self_attn.q_proj.weight", ("q_dim", "hidden"), _L, ""),
    ("self_attn.q_proj.bias", ("q_dim",), _B, "qkv_bias"),
    ("self_attn.k_proj.weight", ("kv_dim", "hidden"), _L, ""),
    ("self_attn.k_proj.bias", ("kv_dim",), _B, "qkv_bias"),
    ("self_attn.v_proj.weight", ("kv_dim", "hidden"), _L, ""),
    ("self_attn.v_proj.bias", ("kv_dim",), _B, "qkv_bias"),
    ("self_attn.o_proj.weight", ("hidden", "q_dim"), _L, ""),
    ("post_attention_layernorm.weight", ("hidden",), _N, ""),
    ("mlp.gate_proj.weight", ("intermediate", "hidden"), _L, ""),
    ("mlp.up_proj.weight", ("intermediate", "hidden"), _L, ""),
    ("mlp.down_proj.weight", ("hidden", "intermediate"), _L, ""),
)
_BERT_TOP = (("embeddings.word_embeddings.weight", ("vocab", "hidden"), _E, ""),
             ("embeddings.position_embeddings.weight", ("max_positions", "hidden"), _E, ""),
             ("embeddings.token_type_embeddings.weight", ("type_vocab", "hidden"), _E, ""),
             ("embeddings.LayerNorm.weight", ("hidden",), _N, ""),
             ("embeddings.LayerNorm.bias", ("hidden",), _N, ""),
             ("pooler.dense.weight", ("hidden", "hidden"), _L, ""),
             ("pooler.dense.bias", ("hidden",), _B, ""))
_BERT_LINEARS = (("attention.self.query", "q_dim", "hidden"), ("attention.self.key", "q_dim", "hidden"),
                 ("attention.self.value", "q_dim", "hidden"), ("attention.output.dense", "hidden", "q_dim"),
                 ("intermediate.dense", "intermediate", "hidden"), ("output.dense", "hidden", "intermediate"))
_BERT_BLOCK = tuple(
    item for lin, out, inp in _BERT_LINEARS
    for item in ((f"{lin}.weight", (out, inp), _L, ""), (f"{lin}.bias", (out,), _B, ""))
) + tuple((f"{ln}.LayerNorm.{p}", ("hidden",), _N, "")
          for ln in ("attention.output", "output") for p in ("weight", "bias"))

_TEMPLATES = {Arch.LLAMA: (_LLAMA_TOP, "model.layers.{i}.", _LLAMA_BLOCK),
              Arch.BERT: (_BERT_TOP, "encoder.layer.{i}.", _BERT_BLOCK)}


def model_tensors(config: ModelConfig) -> tuple[TensorSpec, ...]:
    """Every stored tensor of `config`, with Hugging Face names and [out, in] shapes for Linear weights.

    Untied decoders add lm_head.weight [vocab, hidden]; tied ones mark the token embedding `tied_lm_head`."""
    top, prefix, block = _TEMPLATES[config.arch]
    out = []

    def add(name: str, dims: tuple[str, ...], kind: TensorKind, cond: str) -> None:
        if cond and not getattr(config, cond):
            return
        tied = kind is _E and config.causal and config.tied_embeddings and dims[0] == "vocab"
        out.append(TensorSpec(name, tuple(getattr(config, d) for d in dims), kind, tied))

    for item in top:
        add(*item)
    for i in range(config.layers):
        for name, dims, kind, cond in block:
            add(prefix.format(i=i) + name, dims, kind, cond)
    if config.causal and not config.tied_embeddings:
        add("lm_head.weight", ("vocab", "hidden"), TensorKind.LM_HEAD, "")
    return tuple(out)


# Listing classification, first match wins; patterns are searched in the full tensor name.
_BUFFER_NAMES = re.compile(r"(position_ids|inv_freq|masked_bias)$")
_LM_HEAD_NAMES = re.compile(r"(^|\.)lm_head\.weight$|^output\.weight$")  # HF / GGUF
_EMBED_NAMES = re.compile(r"embed|(^|\.)(wte|wpe|token_embd|tok_embeddings)\.")
_NORM_NAMES = re.compile(r"norm|(^|\.)ln_|(^|\.)ln\d*\.|layer_norm", re.IGNORECASE)
_INT_DTYPES = re.compile(r"^(u?int\d+|I\d+|U\d+|BOOL|bool)$")


def classify(name: str, shape: Sequence[int], dtype: str | None = None) -> TensorKind:
    """The kind of one listed tensor: integer/bool dtypes and id buffers are BUFFER; 0/1-D tensors are NORM
    (by name) or BIAS; 2-D lm_head / embeddings by name; any other 2-D tensor is a LINEAR weight; N-D is OTHER."""
    dtype_name = str(dtype).replace("torch.", "") if dtype is not None else ""
    if _BUFFER_NAMES.search(name) or (dtype_name and _INT_DTYPES.match(dtype_name)):
        return TensorKind.BUFFER
    if len(shape) <= 1:  # before the name rules: 'embeddings.LayerNorm.weight' is a norm
        return TensorKind.NORM if _NORM_NAMES.search(name) else TensorKind.BIAS
    if _LM_HEAD_NAMES.search(name):
        return TensorKind.LM_HEAD
    if _EMBED_NAMES.search(name):
        return TensorKind.EMBEDDING
    return TensorKind.LINEAR if len(shape) == 2 else TensorKind.OTHER


def tensors_from_listing(listing: Iterable[Sequence], tied_embeddings: bool = False) -> tuple[TensorSpec, ...]:
    """(name, shape) or (name, shape, dtype) items -> TensorSpecs. With `tied_embeddings`, the largest embedding
    (the token table) is marked as doubling as lm_head; ValueError if there is none."""
    specs = []
    for item in listing:
        if len(item) not in (2, 3):
            raise ValueError(f"listing item {item!r} is not allowed; give (name, shape) or (name, shape, dtype)")
        name, shape = str(item[0]), tuple(int(d) for d in item[1])
        specs.append(TensorSpec(name, shape, classify(name, shape, item[2] if len(item) == 3 else None)))
    if tied_embeddings:
        emb = [s for s in specs if s.kind is TensorKind.EMBEDDING]
        if not emb:
            raise ValueError("tied_embeddings=True but the listing holds no embedding table")
        token = max(emb, key=lambda s: s.numel)
        specs = [TensorSpec(s.name, s.shape, s.kind, s is token) for s in specs]
    return tuple(specs)


def param_count(tensors: Iterable[TensorSpec]) -> int:
    """Parameters: elements of every tensor except buffers."""
    return sum(t.numel for t in tensors if t.is_parameter)


def _llama(key, name, hf_id, hidden, inter, layers, heads, kv, vocab, tied, params, params_src, **kw) -> ModelConfig:
    return ModelConfig(key, name, hf_id, Arch.LLAMA, hidden, inter, layers, heads, kv, hidden // heads, vocab, tied,
                       params, params_src, f"{hf_id} {_HF}", **kw)


MODEL_CONFIGS: dict[str, ModelConfig] = {c.key: c for c in (
    _llama("llama31_8b", "Llama-3.1-8B", "meta-llama/Llama-3.1-8B", 4096, 14336, 32, 32, 8, 128256, False,
           8.03e9, "Llama 3.1 model card: 8B (8.03B in the Hub's safetensors parameter count)"),
    _llama("llama31_70b", "Llama-3.1-70B", "meta-llama/Llama-3.1-70B", 8192, 28672, 80, 64, 8, 128256, False,
           70.6e9, "Llama 3.1 model card: 70B (70.6B in the Hub's safetensors parameter count)"),
    _llama("llama31_405b", "Llama-3.1-405B", "meta-llama/Llama-3.1-405B", 16384, 53248, 126, 128, 8, 128256,
           False, 405e9, "Llama 3.1 model card: 405B"),
    _llama("mistral_7b_v01", "Mistral-7B-v0.1", "mistralai/Mistral-7B-v0.1", 4096, 14336, 32, 32, 8, 32000, False,
           7.24e9, "Mistral 7B model card / Hub parameter count: 7.24B"),
    _llama("mistral_7b_v03", "Mistral-7B-v0.3", "mistralai/Mistral-7B-v0.3", 4096, 14336, 32, 32, 8, 32768, False,
           7.25e9, "Mistral 7B v0.3 model card / Hub parameter count: 7.25B (vocabulary extended to 32768)"),
    _llama("qwen25_7b", "Qwen2.5-7B", "Qwen/Qwen2.5-7B", 3584, 18944, 28, 28, 4, 152064, False,
           7.61e9, "Qwen2.5-7B model card: 7.61B parameters (6.53B non-embedding)", qkv_bias=True),
    _llama("smollm2_135m", "SmolLM2-135M", "HuggingFaceTB/SmolLM2-135M", 576, 1536, 30, 9, 3, 49152, True,
           134.5e6, "shared/facts/real-weights.md: 134.5M parameters (counted in the GGUF file)"),
    ModelConfig("minilm_l6_v2", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", Arch.BERT,
                384, 1536, 6, 12, 12, 32, 30522, True, 22.7e6,
                "shared/facts/real-weights.md: 22.7M parameters (counted in model.safetensors)",
                f"sentence-transformers/all-MiniLM-L6-v2 {_HF}", max_positions=512, type_vocab=2),
)}


def model_names() -> list[str]:
    return list(MODEL_CONFIGS)


def get_model_config(key: str) -> ModelConfig:
    """The table row for `key`; ValueError naming the allowed set otherwise."""
    try:
        return MODEL_CONFIGS[key]
    except (KeyError, TypeError):
        raise ValueError(f"unknown model {key!r}; choose one of {model_names()}") from None
