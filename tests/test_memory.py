"""Memory: hand-computed footprints (Llama-3.1-8B), schemes and mixes, KV-cache bytes, does-it-fit."""
from __future__ import annotations

import pytest

from explorer.formats import make_spec
from explorer.hardware import get_hardware
from explorer.memory import (
    KV_FORMATS, Fit, Overhead, StoreDType, WeightScheme, fit, footprint, footprint_at_bpw, get_kv_format,
    kv_cache_bytes, max_context, model_footprint,
)
from explorer.model_configs import TensorKind, get_model_config, model_tensors
from explorer.units import GB, GiB

LLAMA8B = get_model_config("llama31_8b")
P8B = 8_030_261_248                                                   # all parameters
LINEAR8B = 32 * (2 * 4096 * 4096 + 2 * 1024 * 4096 + 3 * 4096 * 14336)  # 6,979,321,856 Linear weights
EMBED8B = 128256 * 4096                                               # one of embed_tokens / lm_head
INT4_G128_ASYM = make_spec("int4", "group", 128, symmetric=False)     # fp16 scale + fp16 zero: 4.25 bpw


def test_fp16_all_weights_16_06_gb():
    fp = footprint_at_bpw(model_tensors(LLAMA8B), 16)
    assert fp.weight_bytes == P8B * 2
    assert round(fp.weight_bytes / GB, 2) == 16.06
    assert round(fp.weight_bytes / GiB, 2) == 14.96  # llama.cpp's F16 row: 14.96 GiB
    # the same number through a scheme: nothing quantized, everything kept at fp16
    assert model_footprint(LLAMA8B, WeightScheme(None, StoreDType.FP16)).weight_bytes == P8B * 2


def test_all_weights_at_4_25_bpw_is_the_4_27_gb_convention():
    fp = footprint_at_bpw(model_tensors(LLAMA8B), 4.25)
    assert fp.weight_bytes == pytest.approx(P8B * 4.25 / 8)
    assert round(fp.weight_bytes / GB, 2) == 4.27
    assert fp.bits_per_weight == pytest.approx(4.25)


def test_realistic_int4_linear_with_fp16_embeddings():
    fp = model_footprint(LLAMA8B, WeightScheme(INT4_G128_ASYM, StoreDType.FP16))
    expected = LINEAR8B * 4.25 / 8 + (P8B - LINEAR8B) * 2
    assert fp.weight_bytes == expected == 5_809_643_520
    assert round(fp.weight_bytes / GB, 2) == 5.81          # vs 4.27 when embeddings were 4.25 bpw too
    assert fp.bits_per_weight == pytest.approx(5.7878, abs=1e-4)
    by_kind = fp.bytes_by_kind()
    assert by_kind[TensorKind.LINEAR] == LINEAR8B * 4.25 / 8
    assert by_kind[TensorKind.EMBEDDING] == by_kind[TensorKind.LM_HEAD] == EMBED8B * 2
    rows = {t.name: t for t in fp.tensors}
    assert rows["model.layers.0.mlp.down_proj.weight"].bits_per_weight == 4.25
    assert rows["model.layers.0.mlp.down_proj.weight"].stored_as == "int4 g128 asym"
    assert rows["model.norm.weight"].bits_per_weight == 16


def test_quantizing_lm_head_and_mixes():
    base = model_footprint(LLAMA8B, WeightScheme(INT4_G128_ASYM, StoreDType.FP16))
    with_head = model_footprint(LLAMA8B, WeightScheme(INT4_G128_ASYM, StoreDType.FP16, quantize_lm_head=True))
    assert base.weight_bytes - with_head.weight_bytes == EMBED8B * (2 - 4.25 / 8)
    int8 = make_spec("int8", "channel")  # 8 + 16/in bits: one fp16 scale per output row
    mix = model_footprint(LLAMA8B, WeightScheme(INT4_G128_ASYM, StoreDType.FP16, overrides=(("down_proj", int8),)))
    down = 32 * 4096 * 14336
    assert mix.weight_bytes - base.weight_bytes == pytest.approx(down * (8 + 16 / 14336) / 8 - down * 4.25 / 8)
    kept = model_footprint(LLAMA8B, WeightScheme(INT4_G128_ASYM, overrides=(("mlp.", None),)))
    assert {t.stored_as for t in kept.tensors if ".mlp." in t.name} == {"bf16"}
    fp32 = model_footprint(LLAMA8B, WeightScheme(None, "fp32"))
    assert fp32.weight_bytes == P8B * 4


def test_bytes_read_per_token():
    fp = model_footprint(LLAMA8B, WeightScheme(None, StoreDType.FP16))
    # the input embedding is a lookup (one 4096-wide row); lm_head is a full matmul
    assert fp.read_bytes_per_token == P8B * 2 - EMBED8B * 2 + 4096 * 2
    assert fp.matmul_params == LINEAR8B + EMBED8B
    smol = model_footprint(get_model_config("smollm2_135m"), WeightScheme(None, StoreDType.FP16))
    assert smol.read_bytes_per_token == smol.weight_bytes  # tied: the embedding is read whole as lm_head


def test_scheme_validation():
    with pytest.raises(ValueError, match=r"keep='fp8' is not allowed; choose one of \['fp32', 'fp16', 'bf16'\]"):
        WeightScheme(None, "fp8")
    with pytest.raises(ValueError, match="give a QuantSpec or None"):
        WeightScheme("int4")
    with pytest.raises(ValueError, match="non-empty name substring"):
        WeightScheme(INT4_G128_ASYM, overrides=(("", None),))
    with pytest.raises(ValueError, match="must be > 0|> 0"):
        footprint_at_bpw(model_tensors(LLAMA8B), 0)
    # a 1-D tensor never takes a spec, even if an override names it
    fp = footprint(model_tensors(LLAMA8B), WeightScheme(None, overrides=(("norm", INT4_G128_ASYM),)))
    assert {t.stored_as for t in fp.tensors if t.kind is TensorKind.NORM} == {"bf16"}


def test_kv_cache_bytes_by_hand():
    assert kv_cache_bytes(LLAMA8B, 1) == 32 * 8 * 128 * 2 * 2 == 131072   # per token at fp16
    assert kv_cache_bytes(LLAMA8B, 8192, 4) == 131072 * 8192 * 4
    assert kv_cache_bytes(get_model_config("llama31_70b"), 1) == 2 * 80 * 8 * 128 * 2
    assert kv_cache_bytes(LLAMA8B, 1, 1, get_kv_format("fp8")) == 65536
    assert kv_cache_bytes(LLAMA8B, 1, 1, KV_FORMATS["int8"]) == 65536
    # int4 with an fp16 scale per 64 elements: (4 + 16/64) / 16 of fp16
    assert kv_cache_bytes(LLAMA8B, 1, 1, KV_FORMATS["int4"]) == 131072 * 4.25 / 16
    assert kv_cache_bytes(LLAMA8B, 0) == 0


def test_kv_cache_errors():
    with pytest.raises(ValueError, match="is an encoder .* keeps no KV cache"):
        kv_cache_bytes(get_model_config("minilm_l6_v2"), 128)
    with pytest.raises(ValueError, match=r"context=-1 is not allowed"):
        kv_cache_bytes(LLAMA8B, -1)
    with pytest.raises(ValueError, match=r"unknown KV format 'int3'; choose one of \['fp16'"):
        get_kv_format("int3")


def test_fit_and_gpu_count():
    h100, l4 = get_hardware("h100_sxm"), get_hardware("l4")
    w8 = P8B * 2
    f = fit(l4, w8)
    assert isinstance(f, Fit) and f.fits and f.gpus_needed == 1
    assert f.overhead_bytes == pytest.approx(0.1 * w8 + GiB)
    assert f.free_bytes == pytest.approx(24 * GiB - 1.1 * w8 - GiB)
    w70 = model_footprint(get_model_config("llama31_70b"), WeightScheme(None, StoreDType.BF16)).weight_bytes
    f70 = fit(h100, w70)
    assert not f70.fits and f70.gpus_needed == 2 and f70.gpus_tensor_parallel == 2  # 141 GB x 1.1 / 79 GiB
    w405 = model_footprint(get_model_config("llama31_405b"), WeightScheme(None, StoreDType.BF16)).weight_bytes
    f405 = fit(h100, w405)
    assert f405.gpus_needed == 11 and f405.gpus_tensor_parallel == 16
    # without overhead the rule is exactly: fits iff weights + KV <= memory
    none = Overhead(0.0, 0.0)
    assert fit(h100, 80 * GiB, 0.0, none).fits and not fit(h100, 80 * GiB + 1, 0.0, none).fits
    assert "1 GiB per GPU + 10%" in f.overhead


def test_max_context_by_hand():
    h100 = get_hardware("h100_sxm")
    none = Overhead(0.0, 0.0)
    n = max_context(h100, P8B * 2, LLAMA8B, overhead=none)
    assert n == (80 * GiB - P8B * 2) // 131072
    assert max_context(h100, P8B * 2, LLAMA8B, batch=2, overhead=none) == n // 2
    assert max_context(get_hardware("l4"), 100 * GB, LLAMA8B) == 0


def test_fit_errors():
    with pytest.raises(ValueError, match=r"fixed_bytes >= 0 and 0 <= fraction < 1"):
        Overhead(0.0, 1.5)
    with pytest.raises(ValueError, match="sizes must be >= 0"):
        fit(get_hardware("l4"), -1.0)


def test_bits_per_weight_of_one_kind():
    fp = model_footprint(LLAMA8B, WeightScheme(INT4_G128_ASYM, StoreDType.FP16))
    assert fp.bits_per_weight_of(TensorKind.LINEAR) == pytest.approx(4.25)     # 4 + (16 + 16) / 128
    assert fp.bits_per_weight_of(TensorKind.EMBEDDING) == 16
    assert fp.bits_per_weight_of(TensorKind.BIAS) is None                    # Llama has no biases
    assert fp.bits_per_weight_of(TensorKind.LINEAR) < fp.bits_per_weight < 16
