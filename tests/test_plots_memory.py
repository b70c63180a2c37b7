"""Figure builders of the Memory & bandwidth page: traces, stacking, axis types, titles, lines per GPU, the roof
geometry, and the cited hardware rows."""
from __future__ import annotations

import math

import pytest

from explorer.hardware import HARDWARE, get_hardware, this_machine
from explorer.plots import memory as figs


def test_memory_bars_stack_three_parts_with_one_line_per_memory_size():
    fig = figs.memory_bars(["bf16", "int4"], [14.96, 4.58], [1.0, 1.0], [2.6, 1.6],
                           [("H100", 80.0), ("A100", 80.0), ("L4", 24.0)], "Llama: memory", presenter=False)
    bars = [t for t in fig.data if t.type == "bar"]
    assert [t.name for t in bars] == ["weights", "KV cache", "overhead"]
    assert fig.layout.barmode == "stack"
    assert list(bars[0].y) == [14.96, 4.58] and list(bars[2].y) == [2.6, 1.6]
    totals = next(t for t in fig.data if t.type == "scatter")
    assert list(totals.text) == ["18.6", "7.2"]                # 14.96 + 1 + 2.6, 4.58 + 1 + 1.6
    # GPUs of equal memory share a line; one dashed line per distinct size, labelled with the names
    assert sorted(s.y0 for s in fig.layout.shapes) == [24.0, 80.0]
    texts = [a.text for a in fig.layout.annotations]
    assert any("H100 / A100" in t and "80 GiB" in t for t in texts)
    assert fig.layout.title.text == "Llama: memory"
    assert "GiB" in fig.layout.yaxis.title.text
    assert fig.layout.yaxis.range[1] >= 80                     # the largest GPU line is on the chart


def test_memory_bars_presenter_is_taller_and_lengths_are_checked():
    small = figs.memory_bars(["a"], [1.0], [0.0], [0.1], [], "t")
    big = figs.memory_bars(["a"], [1.0], [0.0], [0.1], [], "t", presenter=True)
    assert big.layout.height > small.layout.height and big.layout.font.size > small.layout.font.size
    with pytest.raises(ValueError, match="equal lengths"):
        figs.memory_bars(["a", "b"], [1.0], [0.0], [0.1], [], "t")


def test_tokens_bars_group_one_trace_per_format_with_values_as_text():
    fig = figs.tokens_bars(["H100", "L4"], ["bf16", "int4"], [[208.3, 18.7], [574.3, None]], "bound")
    assert fig.layout.barmode == "group"
    assert [t.name for t in fig.data] == ["bf16", "int4"]
    assert list(fig.data[0].x) == ["H100", "L4"]
    assert list(fig.data[0].text) == ["208", "19"] and list(fig.data[1].text) == ["574", ""]
    assert fig.layout.yaxis.title.text.startswith("tokens/s")
    with pytest.raises(ValueError, match=r"tokens must be \[2 formats\]\[2 GPUs\]"):
        figs.tokens_bars(["H100", "L4"], ["bf16", "int4"], [[1.0, 2.0]], "bound")


def test_tokens_bars_hatch_what_does_not_fit_on_one_device():
    fig = figs.tokens_bars(["H100", "L4"], ["bf16", "int4"], [[20.0, 2.0], [60.0, 6.0]], "bound",
                           fits=[[True, False], [True, True]])
    assert list(fig.data[0].marker.pattern.shape) == ["", "/"]
    assert list(fig.data[1].marker.pattern.shape) == ["", ""]
    with pytest.raises(ValueError, match=r"fits must be \[2 formats\]\[2 GPUs\]"):
        figs.tokens_bars(["H100", "L4"], ["bf16", "int4"], [[1.0, 2.0], [1.0, 2.0]], "bound", fits=[[True]])


def test_roofline_is_log_log_and_each_roof_bends_at_its_ridge():
    roof = figs.Roof("H100 BF16", 989.5e12, 3.35e12)
    traj = figs.Trajectory("bf16, weight-only", [1.0, 64.0, 4096.0], [3.35e12, 214.4e12, 989.5e12], [1, 64, 4096])
    w8 = figs.Trajectory("fp8, W8A8", [2.0, 4096.0], [6.7e12, 1979e12], [1, 4096], w8a8=True, color=1)
    fig = figs.roofline_chart([roof], [traj, w8], "roofline")
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    line = fig.data[0]
    ridge = 989.5e12 / 3.35e12
    assert len(line.x) == 3 and line.x[1] == pytest.approx(ridge)
    # left of the ridge the roof is intensity x bandwidth, right of it the flat peak (in TFLOP/s)
    assert line.y[0] == pytest.approx(line.x[0] * 3.35)
    assert line.y[1] == pytest.approx(989.5) and line.y[2] == pytest.approx(989.5)
    pts = fig.data[1]
    assert list(pts.y) == pytest.approx([3.35, 214.4, 989.5])
    assert pts.marker.symbol == "circle" and fig.data[2].marker.symbol == "diamond"
    assert list(pts.text) == ["batch 1", "batch 64", "batch 4096"] and "text" not in fig.data[2].mode
    crowded = figs.Trajectory("x", [1.0, 500.0, 4096.0], [1e12, 989.5e12, 989.5e12], [1, 1024, 4096])
    assert list(figs.roofline_chart([roof], [crowded], "r").data[1].text) == ["batch 1", "", "batch 4096"]
    # the axes cover every point and the ridge
    lo, hi = fig.layout.xaxis.range
    assert 10 ** lo < 1.0 and 10 ** hi > 4096
    assert fig.layout.title.text == "roofline" and "intensity" in fig.layout.xaxis.title.text


def test_roofline_needs_something_positive():
    with pytest.raises(ValueError, match="at least one roof"):
        figs.roofline_chart([], [], "empty")
    with pytest.raises(ValueError, match="intensities > 0"):
        figs.roofline_chart([], [figs.Trajectory("x", [0.0], [1.0], [1])], "zero")


def test_measured_bars_put_bytes_beside_speedups_on_a_log_axis():
    fig = figs.measured_bars(["fp32", "bf16", "4-bit"], [1.0, 2.0, 7.5],
                             [("batch 1", [1.0, 1.2, 0.3]), ("batch 64", [1.0, 1.5, None])], "measured")
    assert [t.name for t in fig.data] == ["bytes: × smaller than fp32", "batch 1", "batch 64"]
    assert fig.layout.yaxis.type == "log"
    assert list(fig.data[2].text) == ["1.00×", "1.50×", "n/a"]
    assert [s.y0 for s in fig.layout.shapes] == [1.0]
    with pytest.raises(ValueError, match="3 values"):
        figs.measured_bars(["a", "b", "c"], [1.0, 2.0], [], "m")


def test_hardware_rows_put_a_source_beside_every_number():
    rows = figs.hardware_rows([get_hardware("h100_sxm"), this_machine()])
    h100 = [r for r in rows if r["device"] == "NVIDIA H100 SXM 80GB"]
    assert len(h100) == len(get_hardware("h100_sxm").figures()) == 7
    assert all(r["source"].strip() for r in rows)
    by = {r["quantity"]: r for r in h100}
    assert by["memory bandwidth"]["value"] == "3.35 TB/s"
    assert by["memory"]["value"] == "80.00 GiB"
    assert by["BF16/FP16 tensor (dense)"]["value"] == "989.5 TFLOP/s"     # 1,979 with sparsity, halved
    assert by["INT8 tensor (dense)"]["value"] == "1,979.0 TOPS"
    assert by["FP4 tensor (dense)"]["value"] == "—" and "not supported" in by["FP4 tensor (dense)"]["source"]
    mine = [r for r in rows if r["device"].startswith("This machine")]
    assert next(r for r in mine if r["quantity"] == "memory bandwidth")["source"].startswith("measure here")
    assert len(figs.hardware_rows(list(HARDWARE.values()))) == 7 * len(HARDWARE)


def test_payloads_stay_tiny():
    fig = figs.roofline_chart([figs.Roof("r", 1e15, 3e12)],
                              [figs.Trajectory(f"f{i}", [2.0 ** k for k in range(12)], [1e12] * 12,
                                               list(range(12)), color=i) for i in range(8)], "big")
    assert len(fig.to_json()) < 50_000
    assert not math.isnan(fig.layout.yaxis.range[0])


def test_table_rows_from_the_library_results():
    from explorer.bounds import deployment
    from explorer.memory import KV_FORMATS, StoreDType, WeightScheme, kv_cache_bytes, model_footprint
    from explorer.model_configs import get_model_config
    from explorer.units import GiB
    llama = get_model_config("llama31_8b")
    fps = [model_footprint(llama, WeightScheme(None, StoreDType.BF16)),
           model_footprint(llama, WeightScheme(__import__("explorer").make_spec("int4", symmetric=False)))]
    hws = [get_hardware("h100_sxm"), get_hardware("l4")]
    kv = kv_cache_bytes(llama, 131072, 1, KV_FORMATS["fp16"])                     # 16 GiB: bf16 misses the L4
    deps = [[deployment(h, f, llama, 131072, 1) for h in hws] for f in fps]
    sizes = figs.size_rows(["bf16", "int4"], fps, deps, kv)
    assert sizes[0]["bits/weight (Linear)"] == 16 and sizes[1]["bits/weight (Linear)"] == 4.25
    assert sizes[0]["weights GiB"] == 14.96 and sizes[0]["KV cache GiB"] == 16.0
    fits = figs.fit_rows(["bf16", "int4"], ["H100", "L4"], deps)
    assert fits[0]["H100"].startswith("✓ fits") and fits[0]["L4"] == "✗ needs 2 (2 with TP)"
    assert fits[0]["L4"] == f"✗ needs {deps[0][1].fit.gpus_needed} (2 with TP)"
    speed = figs.speed_rows(["bf16", "int4"], ["H100", "L4"], deps)
    assert speed[1]["H100 tok/s"] == round(deps[1][0].decode.tokens_per_s, 1)
    assert speed[0]["H100 tok/s"] < speed[1]["H100 tok/s"]
    assert speed[0]["KV per step"] == "17.18 GB" and round(kv / GiB) == 16


def test_timing_rows():
    from explorer.measure import LayerTiming, Variant, VariantTiming
    cells = (VariantTiming(Variant.FP32, 1, 2e-3, 5, 4000, 1.0, 0.5, "median of 5 runs"),
             VariantTiming(Variant.INT8, 1, None, 0, 1000, None, None, "unsupported here: no"))
    rows = figs.timing_rows(LayerTiming("cpu x", "cpu", 1, (10, 100), 1.0, 0.5, "int4 g128 asym", cells))
    assert rows[0]["median ms"] == 2.0 and rows[0]["speed-up vs bf16"] == 0.5
    assert rows[1]["median ms"] is None and rows[1]["× smaller than fp32"] == 4.0
    assert rows[1]["note"].startswith("unsupported")
