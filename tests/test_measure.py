"""Measure here: sane positive timings within the budget, bytes per variant, progress, unsupported int8."""
from __future__ import annotations

import time

import pytest
import torch

from explorer import measure as M
from explorer.formats import make_spec
from explorer.measure import Variant, measure_copy_bandwidth, measure_layer

SHAPE = (256, 256)


def weight() -> torch.Tensor:
    return torch.randn(*SHAPE, generator=torch.Generator().manual_seed(0))


def test_timings_are_positive_and_within_budget():
    w = weight()
    before = w.clone()
    progress: list[tuple[float, str]] = []
    t0 = time.perf_counter()
    r = measure_layer(w, batches=(1, 16), budget_s=0.6, on_progress=lambda f, m: progress.append((f, m)))
    wall = time.perf_counter() - t0
    assert torch.equal(w, before)                                   # never mutates its input
    assert wall < 0.6 + 1.0 and r.elapsed_s <= wall                 # budget (+ slack for one over-running cell)
    assert len(r.timings) == 2 * len(Variant)
    for t in r.timings:
        if t.variant is Variant.INT8 and not t.supported:
            assert t.note.startswith("unsupported here")
            continue
        assert t.median_s > 0 and t.repeats >= 1 and t.median_s < 0.6
    assert r.get(Variant.FP32, 1).speedup_vs_fp32 == 1.0
    assert r.get(Variant.BF16, 16).speedup_vs_bf16 == 1.0
    fractions = [f for f, _ in progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(progress) == 2 * len(Variant) + 1
    assert r.threads == torch.get_num_threads() and r.hardware and r.device == "cpu"
    assert r.shape == SHAPE and r.four_bit == "int4 g128 asym"


def test_weight_bytes_per_variant():
    r = measure_layer(weight(), batches=(1,), budget_s=0.2)
    n = SHAPE[0] * SHAPE[1]
    assert r.get(Variant.FP32, 1).weight_bytes == 4 * n
    assert r.get(Variant.BF16, 1).weight_bytes == 2 * n
    assert r.get(Variant.INT8, 1).weight_bytes == n + 2 * SHAPE[0]            # codes + fp16 scale per row
    assert r.get(Variant.DEQUANT4, 1).weight_bytes == n * 4.25 / 8            # codes + fp16 scale and zero / 128


def test_speedups_are_ratios_of_medians():
    r = measure_layer(weight(), batches=(4,), budget_s=0.3)
    fp32, bf16 = r.get(Variant.FP32, 4), r.get(Variant.BF16, 4)
    d4 = r.get(Variant.DEQUANT4, 4)
    assert d4.speedup_vs_fp32 == pytest.approx(fp32.median_s / d4.median_s)
    assert bf16.speedup_vs_fp32 == pytest.approx(fp32.median_s / bf16.median_s)


def test_int8_reported_unsupported_when_int_mm_refuses(monkeypatch):
    def refuse(a, b):
        raise RuntimeError("_int_mm: not implemented for these shapes\nmore detail")

    monkeypatch.setattr(M.torch, "_int_mm", refuse)
    r = measure_layer(weight(), batches=(1,), budget_s=0.2)
    t = r.get(Variant.INT8, 1)
    assert not t.supported and t.median_s is None and t.repeats == 0
    assert t.note == "unsupported here: _int_mm: not implemented for these shapes"
    assert t.speedup_vs_fp32 is None and r.get(Variant.FP32, 1).supported


def test_errors():
    w = weight()
    with pytest.raises(ValueError, match=r"budget_s=0 is not allowed"):
        measure_layer(w, budget_s=0)
    with pytest.raises(ValueError, match=r"batches=\(\) is not allowed"):
        measure_layer(w, batches=())
    with pytest.raises(ValueError, match="allowed: 2"):
        measure_layer(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match="choose a 4-bit format spec"):
        measure_layer(w, four_bit=make_spec("int8", "channel"))
    with pytest.raises(ValueError, match="group_size=128 is larger than the row"):
        measure_layer(torch.randn(8, 64), budget_s=0.1)
    r = measure_layer(w, batches=(1,), budget_s=0.1)
    with pytest.raises(ValueError, match=r"no timing for .*batches measured: \[1\]"):
        r.get(Variant.FP32, 64)


def test_copy_bandwidth_is_positive():
    b = measure_copy_bandwidth("cpu", nbytes=1 << 20, budget_s=0.1)
    assert b.bytes_per_s > 1e6 and b.repeats >= 1 and b.nbytes == 1 << 20
    with pytest.raises(ValueError, match=r"nbytes=0 is not allowed"):
        measure_copy_bandwidth("cpu", nbytes=0)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_measure_follows_a_cuda_weight():
    w = weight().to("cuda")
    r = measure_layer(w, batches=(1, 32), budget_s=0.5)
    assert r.device.startswith("cuda") and r.hardware == torch.cuda.get_device_name(w.device)
    for t in r.timings:
        assert t.median_s is None and t.note.startswith("unsupported here") if not t.supported else t.median_s > 0
    assert r.get(Variant.FP32, 32).supported and r.get(Variant.DEQUANT4, 1).supported
