"""explorer.compare: the scheme list, the sweep (against explorer.metrics, spec by spec), the Pareto front."""
import math

import numpy as np
import pytest
import torch

from explorer import FORMATS, Granularity, ScaleDType, make_spec
from explorer.compare import ErrorAxis, SweepRow, all_specs, find_row, fitting_specs, pareto_front, sweep, usual_rows
from explorer.histogram import histogram
from explorer.metrics import WeightMetrics, output_rel_error, weight_metrics
from explorer.quantize import dequantize, quantize


def _w(out=24, n_in=64, seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(out, n_in, generator=g) * 0.05
    w[3, 7] = 1.5  # one outlier, so per-tensor and per-channel differ
    return w.to(device)


def test_all_specs_covers_every_format_and_granularity():
    specs = all_specs(32)
    assert len(specs) == 7 * 3 * 2 + 4 * 3 + 4 == 58
    assert len(set(specs)) == 58
    assert {s.format.name for s in specs} == set(FORMATS)
    for s in specs:
        if s.format.is_block:
            assert s.granularity is Granularity.BLOCK
        elif s.granularity is Granularity.GROUP:
            assert s.group_size == 32
    assert make_spec("int4", "group", 32, symmetric=False) in specs
    assert sum(1 for s in specs if not s.symmetric) == 21  # only integers get a zero point
    assert all(s.scale_dtype is ScaleDType.FP16 for s in specs)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "128"])
def test_all_specs_rejects_bad_group(bad):
    with pytest.raises(ValueError, match="group_size"):
        all_specs(bad)


def test_sweep_rows_match_metrics_spec_by_spec():
    w = _w()
    x = torch.randn(40, 64, generator=torch.Generator().manual_seed(1))
    specs = all_specs(16)
    rows = sweep(w, specs, x)
    assert [r.spec for r in rows] == specs
    for r in rows:
        result = quantize(w, r.spec)
        w_hat = dequantize(result)
        assert r.metrics == weight_metrics(w, result, w_hat)
        assert r.output_error == pytest.approx(output_rel_error(x, w, w_hat), rel=1e-9, abs=1e-15)
        ref = histogram(w_hat.float() - w.float(), 256)
        assert r.error_hist.half_range == ref.half_range
        np.testing.assert_array_equal(r.error_hist.counts, ref.counts)


def test_sweep_without_inputs_and_progress_reports_each_spec():
    w = _w()
    before = w.clone()
    seen = []
    specs = all_specs(32)[:5]
    rows = sweep(w, specs, on_progress=lambda d, n, label: seen.append((d, n, label)))
    assert seen == [(i + 1, 5, s.label) for i, s in enumerate(specs)]
    assert all(r.output_error is None for r in rows)
    assert torch.equal(w, before)  # never mutated
    with pytest.raises(ValueError, match="no output error"):
        rows[0].error(ErrorAxis.OUTPUT)


def test_sweep_follows_device(device):
    w = _w(device=device)
    rows = sweep(w, [make_spec("int4", "group", 32)], torch.ones(4, 64, device=device))
    ref = sweep(w.cpu(), [make_spec("int4", "group", 32)], torch.ones(4, 64))
    assert rows[0].metrics.rel_error == pytest.approx(ref[0].metrics.rel_error, rel=1e-5)


def test_sweep_error_paths():
    w = _w()
    with pytest.raises(ValueError, match="empty"):
        sweep(w, [])
    with pytest.raises(ValueError, match="not a QuantSpec"):
        sweep(w, ["int4"])
    with pytest.raises(ValueError, match="wider than the row"):
        sweep(w, all_specs(128))
    with pytest.raises(ValueError, match="do not fit"):
        sweep(w, all_specs(32)[:1], torch.ones(3, 63))
    with pytest.raises(ValueError, match="NaN or Inf"):
        sweep(torch.full((4, 32), math.nan), all_specs(32)[:1])


def test_fitting_specs_drops_groups_wider_than_the_row():
    ok, dropped = fitting_specs(all_specs(128), 64)
    assert len(dropped) == 7 * 2 + 4 and all(s.granularity is Granularity.GROUP for s in dropped)
    assert len(ok) == 58 - len(dropped)
    assert fitting_specs(all_specs(64), 64) == (all_specs(64), [])


def _row(bits, err, out=None, name="int4"):
    spec = make_spec(name, "channel")
    m = WeightMetrics(mse=0, rel_error=err, sqnr_db=0, max_abs_error=0, cosine=1, clipped_frac=0, zeroed_frac=0,
                      bits_per_weight=bits, packed_bytes=0)
    return SweepRow(spec, m, out, histogram(torch.zeros(4)))


def test_pareto_front_on_a_hand_made_set():
    a, b, c, d = _row(2, 0.5), _row(3, 0.3), _row(3, 0.4), _row(4, 0.3)
    e, f, g, h = _row(4, 0.1), _row(2, 0.6), _row(4, 0.1), _row(8, 0.1)
    front = pareto_front([c, a, d, b, e, f, g, h])
    # c: beaten by b (same bits, less error); d: by b (fewer bits, same error); f: by a; h: by e; e and g tie.
    assert front == [a, b, e, g]


def test_pareto_front_on_the_output_axis_uses_output_error():
    a, b = _row(2, 0.1, out=0.5), _row(4, 0.2, out=0.1)
    assert pareto_front([a, b], ErrorAxis.WEIGHT) == [a]
    assert pareto_front([a, b], ErrorAxis.OUTPUT) == [a, b]
    with pytest.raises(ValueError, match="no output error"):
        pareto_front([a, _row(3, 0.1)], ErrorAxis.OUTPUT)
    with pytest.raises(ValueError, match="NaN"):
        pareto_front([_row(2, math.nan)])


def test_find_row_ignores_scale_dtype_and_usual_rows_use_the_sweep_group():
    rows = sweep(_w(), all_specs(32))
    row = find_row(rows, make_spec("int4", "group", 32, symmetric=False, scale_dtype="fp32"))
    assert row is not None and row.label == "int4 g32 asym"
    assert find_row(rows, make_spec("int4", "group", 16)) is None
    usual = usual_rows(rows)
    assert set(usual) == set(FORMATS)
    assert usual["int4"].label == "int4 g32"
    assert usual["int8"].label == "int8 per-channel"
    assert usual["fp8_e4m3"].label == "fp8_e4m3 per-tensor"
    assert usual["nvfp4"].label == "nvfp4 (block 16)"
    assert usual["int4"].granularity_label == "group 32" and usual["int8"].granularity_label == "per-channel"


def test_finer_granularity_never_loses_to_per_tensor_on_an_outlier_layer():
    rows = {r.label: r for r in sweep(_w(), all_specs(32))}
    assert rows["int4 g32"].metrics.rel_error < rows["int4 per-channel"].metrics.rel_error \
        < rows["int4 per-tensor"].metrics.rel_error


def test_big_layers_sweep_through_the_fused_analysis(monkeypatch):
    """A layer of 2^20 weights or more on CPU is swept by analyze_layer's fused kernels: the same metrics, output
    error and (at 2^20 weights: every row) error histogram as the reference path, spec by spec."""
    import explorer.compare as C
    from explorer import fused

    g = torch.Generator().manual_seed(3)
    w = torch.randn(1024, 1024, generator=g) * 0.02
    w[:, 7] *= 25  # outlier column: clipping under per-tensor and MX scales
    x = torch.randn(64, 1024, generator=g)
    specs = [make_spec("int4", "group", 128, symmetric=False), make_spec("nf4"), make_spec("mxfp4"),
             make_spec("fp8_e4m3", "tensor"), make_spec("int8", "channel"), make_spec("nvfp4")]
    assert w.numel() >= fused.MIN_WEIGHTS
    fast = sweep(w, specs, x)
    monkeypatch.setattr(C, "worthwhile", lambda t: False)
    ref = sweep(w, specs, x)
    for a, b in zip(fast, ref):
        assert a.spec == b.spec and a.hist_stride == 1
        for name in ("rel_error", "sqnr_db", "cosine", "max_abs_error", "clipped_frac", "zeroed_frac", "mse",
                     "bits_per_weight"):
            assert getattr(a.metrics, name) == pytest.approx(getattr(b.metrics, name), rel=1e-6), (a.label, name)
        assert a.output_error == pytest.approx(b.output_error, rel=1e-6)
        assert np.array_equal(a.error_hist.counts, b.error_hist.counts) and np.array_equal(a.error_hist.edges,
                                                                                           b.error_hist.edges)
