"""Hardware table: every number has a source, dense (not sparse) peaks, the datasheet values, this machine."""
from __future__ import annotations

import os

import pytest

from explorer.hardware import (
    HARDWARE, Figure, Hardware, MathDType, get_hardware, hardware_names, this_machine,
)
from explorer.units import GB, GiB, fmt_bytes, fmt_flops, fmt_rate

# Independent copy of shared/facts/reference-numbers.md (bandwidth, bytes/s) and the datasheets' capacities.
BANDWIDTH = {"h100_sxm": 3.35e12, "h100_pcie": 2.0e12, "h200": 4.8e12, "a100_80gb_sxm": 2.039e12,
             "a100_40gb": 1.555e12, "l4": 300e9, "rtx_4090": 1.008e12, "m2_ultra": 800e9}
CAPACITY_GB = {"h100_sxm": 80, "h100_pcie": 80, "h200": 141, "a100_80gb_sxm": 80, "a100_40gb": 40, "l4": 24,
               "rtx_4090": 24, "m2_ultra": 192}
# Datasheet tensor figures printed WITH sparsity (TFLOP/s); the table must hold half of them.
SPARSE_TFLOPS = {("h100_sxm", MathDType.BF16): 1979, ("h100_sxm", MathDType.FP8): 3958,
                 ("h100_sxm", MathDType.INT8): 3958, ("h100_pcie", MathDType.BF16): 1513,
                 ("h100_pcie", MathDType.FP8): 3026, ("h200", MathDType.BF16): 1979,
                 ("a100_80gb_sxm", MathDType.BF16): 624, ("a100_40gb", MathDType.INT8): 1248,
                 ("l4", MathDType.BF16): 242, ("l4", MathDType.FP8): 485}


def test_required_rows_present():
    assert set(BANDWIDTH) <= set(hardware_names())


@pytest.mark.parametrize("key", sorted(HARDWARE))
def test_every_number_has_a_source(key):
    hw = HARDWARE[key]
    figures = hw.figures()
    assert set(figures) == {"memory", "bandwidth"} | {f"peak_{d.value}" for d in MathDType}
    for label, fig in figures.items():
        assert isinstance(fig, Figure)
        assert fig.source.strip(), f"{key} {label} has no source"
        assert fig.value is None or fig.value > 0
    assert hw.memory_bytes.value and hw.bandwidth.value  # every table row knows both


@pytest.mark.parametrize("key", sorted(BANDWIDTH))
def test_bandwidth_and_capacity_match_the_datasheets(key):
    hw = get_hardware(key)
    assert hw.bandwidth.value == pytest.approx(BANDWIDTH[key], rel=1e-9)
    assert hw.memory_bytes.value == CAPACITY_GB[key] * GiB  # printed "GB" of HBM/GDDR is binary
    assert "GiB" in hw.memory_bytes.note


@pytest.mark.parametrize(("key", "dtype"), sorted(SPARSE_TFLOPS, key=str))
def test_peaks_are_dense_half_of_the_sparse_datasheet_figure(key, dtype):
    fig = get_hardware(key).peak_figure(dtype)
    assert fig.value == pytest.approx(SPARSE_TFLOPS[(key, dtype)] / 2 * 1e12)
    assert "NOT used" in fig.note and "sparsity" in fig.note


def test_unsupported_dtypes_are_none_with_a_reason():
    assert get_hardware("a100_80gb_sxm").peak(MathDType.FP8) is None
    assert "not supported" in get_hardware("a100_40gb").peak_figure(MathDType.FP8).source
    for key in ("h100_sxm", "h200", "l4", "rtx_4090"):
        assert get_hardware(key).peak(MathDType.FP4) is None
    apple = get_hardware("m2_ultra")
    assert apple.peak(MathDType.BF16) is None and "not published" in apple.peak_figure(MathDType.BF16).source


def test_h100_sxm_numbers():
    h = get_hardware("h100_sxm")
    assert h.peak(MathDType.FP32) == 67e12
    assert h.peak(MathDType.BF16) == pytest.approx(989.5e12)
    assert h.peak(MathDType.FP8) == pytest.approx(1979e12) == h.peak(MathDType.INT8)
    assert h.peak("bf16") == h.peak(MathDType.BF16)  # the enum value works too


def test_unconfirmed_or_secondhand_numbers_say_so():
    # numbers confirmed only through copies of the datasheet carry that in their source
    assert "confirmed via" in get_hardware("l4").bandwidth.source
    assert "confirmed via" in get_hardware("rtx_4090").peak_figure(MathDType.BF16).source


def test_figure_and_hardware_validation():
    with pytest.raises(ValueError, match="non-empty source"):
        Figure(1.0, "  ")
    with pytest.raises(ValueError, match=r"> 0 or None"):
        Figure(0.0, "datasheet")
    f = Figure(1.0, "x")
    with pytest.raises(ValueError, match="peaks must name each of"):
        Hardware("x", "X", f, f, ((MathDType.FP32, f),))
    with pytest.raises(ValueError, match=r"unknown hardware 'tpu'; choose one of \['h100_sxm'"):
        get_hardware("tpu")


def _proc_value(path: str, prefix: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def test_this_machine_reads_cpu_and_ram_and_invents_nothing():
    m = this_machine()
    model = _proc_value("/proc/cpuinfo", "model name")
    if model:
        assert model in m.name
    assert f"({os.cpu_count()} logical cores)" in m.name
    total = _proc_value("/proc/meminfo", "MemTotal")
    if total:
        assert m.memory_bytes.value == int(total.split()[0]) * 1024
    assert m.bandwidth.value is None and "measure here" in m.bandwidth.source
    assert all(f.value is None and "measure here" in f.source for _, f in m.peaks)
    measured = this_machine(12.5e9, "measured here: copy_ of 64 MiB")
    assert measured.bandwidth.value == 12.5e9 and "copy_" in measured.bandwidth.source


def test_units_are_explicit():
    assert fmt_bytes(16.06e9) == "16.06 GB"
    assert fmt_bytes(16.06e9, binary=True) == "14.96 GiB"
    assert fmt_bytes(512) == "512 B"
    assert fmt_rate(3.35e12) == "3.35 TB/s"
    assert fmt_flops(989.5e12) == "989.5 TFLOP/s"
    assert GB == 1e9 and GiB == 1073741824
    with pytest.raises(ValueError, match="must be >= 0"):
        fmt_bytes(-1)
