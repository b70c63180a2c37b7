"""Bounds: the worked decode bounds of the reference numbers, KV in the bound, compute bound, roofline."""
from __future__ import annotations

import pytest

from explorer.bounds import (
    W8A8_FP8, W8A8_INT8, WEIGHT_ONLY, Bound, Execution, attainable_flops, decode_bound, flops_per_token,
    roofline, roofline_point, tokens_per_s_bound,
)
from explorer.formats import make_spec
from explorer.hardware import MathDType, get_hardware
from explorer.memory import KV_FORMATS, StoreDType, WeightScheme, footprint_at_bpw, model_footprint
from explorer.model_configs import get_model_config, model_tensors

LLAMA8B = get_model_config("llama31_8b")
P8B = 8_030_261_248
H100 = get_hardware("h100_sxm")


@pytest.mark.parametrize(("bpw", "expected"), [(16, 209), (8.5, 393), (4.89, 682), (4.25, 785)])
def test_worked_bounds_from_the_reference_numbers(bpw, expected):
    # FP16, Q8_0, Q4_K_M, INT4 g128 + fp16 scale and zero; all weights read once per token, no KV
    fp = footprint_at_bpw(model_tensors(LLAMA8B), bpw)
    bound = decode_bound(H100, fp, embedding_rows_only=False)
    assert round(bound.tokens_per_s) == expected
    assert bound.tokens_per_s == pytest.approx(3.35e12 / (P8B * bpw / 8))
    assert round(tokens_per_s_bound(3.35e12, P8B * bpw / 8)) == expected
    assert bound.bound is Bound.MEMORY


def test_embedding_rows_only_and_kv_lower_or_raise_the_bound():
    fp = footprint_at_bpw(model_tensors(LLAMA8B), 16)
    rows_only = decode_bound(H100, fp)
    assert rows_only.weight_bytes_read == P8B * 2 - 128256 * 4096 * 2 + 4096 * 2
    assert rows_only.tokens_per_s > 209
    with_kv = decode_bound(H100, fp, LLAMA8B, context=8192, embedding_rows_only=False)
    assert with_kv.kv_bytes_read == 131072 * 8192
    assert with_kv.tokens_per_s == pytest.approx(3.35e12 / (P8B * 2 + 131072 * 8192))
    int4_kv = decode_bound(H100, fp, LLAMA8B, context=8192, kv=KV_FORMATS["int4"], embedding_rows_only=False)
    assert int4_kv.tokens_per_s > with_kv.tokens_per_s


def test_batching_amortizes_weights_until_compute_binds():
    fp = model_footprint(LLAMA8B, WeightScheme(None, StoreDType.BF16))
    one = decode_bound(H100, fp, batch=1)
    many = decode_bound(H100, fp, batch=64)
    assert many.memory_time_s == one.memory_time_s           # weights are read once per step, whatever the batch
    assert many.tokens_per_s == pytest.approx(64 * one.tokens_per_s)
    huge = decode_bound(H100, fp, batch=4096)
    assert huge.bound is Bound.COMPUTE
    assert huge.compute_time_s == pytest.approx(4096 * 2 * fp.matmul_params / 989.5e12)
    assert flops_per_token(fp, LLAMA8B, 1000) == 2 * fp.matmul_params + 4 * 32 * 4096 * 1000
    with pytest.raises(ValueError, match=r"batch=0 is not allowed"):
        decode_bound(H100, fp, batch=0)


def test_roofline_batch1_is_memory_bound_and_ridge_is_peak_over_bandwidth():
    bf16 = model_footprint(LLAMA8B, WeightScheme(None, StoreDType.BF16))
    p = roofline_point(H100, bf16, WEIGHT_ONLY, 1)
    assert p.flops == 2 * bf16.matmul_params
    assert p.bytes == bf16.matmul_bytes + bf16.matmul_io * 2
    assert p.intensity == pytest.approx(1.0, abs=0.01)                   # 2 FLOPs per 2-byte weight
    assert p.ridge_intensity == pytest.approx(989.5e12 / 3.35e12)
    assert p.attainable_flops == pytest.approx(p.intensity * 3.35e12)
    assert p.bound is Bound.MEMORY


def _first_compute_bound(points) -> int:
    return next(p.batch for p in points if p.bound is Bound.COMPUTE)


def test_weight_only_int4_reaches_the_roof_at_a_smaller_batch_than_bf16():
    bf16 = model_footprint(LLAMA8B, WeightScheme(None, StoreDType.BF16))
    w4 = model_footprint(LLAMA8B, WeightScheme(make_spec("int4", "group", 128, symmetric=False)))
    fp8 = model_footprint(LLAMA8B, WeightScheme(make_spec("fp8_e4m3")))
    p_bf16, p_w4 = roofline(H100, bf16, WEIGHT_ONLY), roofline(H100, w4, WEIGHT_ONLY)
    p_fp8 = roofline(H100, fp8, W8A8_FP8)
    assert p_w4[0].intensity > 3 * p_bf16[0].intensity
    assert _first_compute_bound(p_w4) < _first_compute_bound(p_bf16)
    # FP8 math doubles the roof: at the largest batch it attains twice the bf16 FLOP/s
    assert p_fp8[-1].attainable_flops == pytest.approx(2 * p_bf16[-1].attainable_flops)
    assert all(b.tokens_per_s <= a.tokens_per_s * 1.0000001 for a, b in zip(p_w4, p_bf16))


def test_roofline_errors_and_roof():
    a100 = get_hardware("a100_80gb_sxm")
    fp = footprint_at_bpw(model_tensors(LLAMA8B), 8)
    with pytest.raises(ValueError, match=r"has no fp8 peak FLOP/s .*not supported"):
        roofline_point(a100, fp, W8A8_FP8, 1)
    assert roofline_point(a100, fp, W8A8_INT8, 1).peak_flops == 624e12
    with pytest.raises(ValueError, match="has no known bandwidth"):
        decode_bound(__import__("explorer.hardware", fromlist=["x"]).this_machine(), fp)
    with pytest.raises(ValueError, match=r"act_bits=12 is not allowed"):
        Execution("x", 12, MathDType.BF16)
    assert attainable_flops(H100, MathDType.BF16, 1.0) == 3.35e12
    assert attainable_flops(H100, MathDType.BF16, 1e6) == pytest.approx(989.5e12)
    with pytest.raises(ValueError, match="both must be > 0"):
        tokens_per_s_bound(0, 1)


def test_deployment_combines_fit_and_decode_bound():
    from explorer.bounds import deployment
    from explorer.memory import Overhead, kv_cache_bytes
    bf16 = model_footprint(LLAMA8B, WeightScheme(None, StoreDType.BF16))
    d = deployment(H100, bf16, LLAMA8B, context=8192, batch=4, kv=KV_FORMATS["fp8"])
    kv = 2 * 32 * 8 * 128 * 8192 * 4 * 1                       # K and V, layers, kv_heads, head_dim, ctx, batch, 1 B
    assert kv_cache_bytes(LLAMA8B, 8192, 4, KV_FORMATS["fp8"]) == kv
    assert d.fit.kv_bytes == kv and d.decode.kv_bytes_read == kv
    assert d.fit.weight_bytes == bf16.weight_bytes
    assert d.bytes_per_step == pytest.approx(bf16.read_bytes_per_token + kv)
    assert d.decode.tokens_per_s == pytest.approx(4 * 3.35e12 / d.bytes_per_step)
    assert d.hardware_key == "h100_sxm" and d.fit.fits
    # an encoder keeps no cache; neither does a bare listing (config None)
    mini = get_model_config("minilm_l6_v2")
    enc = deployment(H100, model_footprint(mini, WeightScheme()), mini, context=512)
    assert enc.fit.kv_bytes == 0 and enc.decode.kv_bytes_read == 0
    # 405B in bf16 does not fit one H100: ceil(810 GB x 1.1 / (80 - 1) GiB) GPUs
    big = get_model_config("llama31_405b")
    w405 = model_footprint(big, WeightScheme())
    d405 = deployment(H100, w405, big, overhead=Overhead())
    assert not d405.fit.fits
    assert d405.fit.gpus_needed == -(-w405.weight_bytes * 1.1 // (79 * 2 ** 30)) == 11
    with pytest.raises(ValueError, match="has no known bandwidth"):
        deployment(__import__("explorer.hardware", fromlist=["x"]).this_machine(), bf16)
