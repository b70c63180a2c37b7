"""explorer.analysis on small arrays: max-pooling keeps a single outlier row or column visible, the code space and
its levels (every dequantized weight lands on a drawn level), histogram totals, per-channel errors, the output
error against an independent reference, and the error paths."""
import math

import numpy as np
import pytest
import torch

from explorer import FORMATS, format_names, make_spec
from explorer.analysis import HEATMAP_CELLS, REL_LOG10_RANGE, analyze_layer, code_space, expand_scales, max_pool, top_k
from explorer.quantize import dequantize, quantize


def _w(out=48, n_in=256, seed=0, device="cpu", dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(out, n_in, generator=g) * 0.05).to(device=device, dtype=dtype)


def _all_specs():
    for name in format_names():
        fmt = FORMATS[name]
        if fmt.is_block:
            yield make_spec(name)
            continue
        for gran in ("tensor", "channel", "group"):
            yield make_spec(name, gran, 64)
        if fmt.kind.value == "int":
            yield make_spec(name, "group", 64, symmetric=False)


# ---- max pooling: one outlier stays visible ----

def test_max_pool_keeps_a_single_outlier_row_in_every_cell_of_its_row():
    a = torch.zeros(1000, 700)
    a[517] = 5.0
    pooled, (fy, fx) = max_pool(a)
    assert (fy, fx) == (math.ceil(1000 / HEATMAP_CELLS), math.ceil(700 / HEATMAP_CELLS)) == (6, 4)
    assert pooled.shape == (math.ceil(1000 / 6), math.ceil(700 / 4))
    assert np.all(pooled[517 // fy] == 5.0)  # the whole pooled row, not diluted like a mean would
    assert np.count_nonzero(pooled) == pooled.shape[1]


def test_max_pool_keeps_a_single_outlier_column_and_a_single_weight():
    a = torch.zeros(4096, 1100)
    a[:, 1099] = 3.0   # the very last column: a partial window (ceil_mode)
    a[4095, 0] = 7.0   # the very last row, first column: one weight
    pooled, (fy, fx) = max_pool(a)
    assert pooled.shape[0] <= HEATMAP_CELLS and pooled.shape[1] <= HEATMAP_CELLS
    assert np.all(pooled[:, 1099 // fx] == 3.0)
    assert pooled[4095 // fy, 0] == 7.0
    assert np.count_nonzero(pooled) == pooled.shape[0] + 1


def test_max_pool_leaves_small_arrays_alone():
    a = torch.arange(12.0).reshape(3, 4)
    pooled, pool = max_pool(a)
    assert pool == (1, 1)
    np.testing.assert_array_equal(pooled, a.numpy())


def test_analysis_heatmaps_show_the_outlier_column(device):
    w = _w(300, 1000, device=device)
    w[:, 613] *= 40  # an outlier input channel, like MiniLM's
    a = analyze_layer(w, make_spec("int4", "group", 128))
    fy, fx = a.pool
    assert a.w_pooled.shape == a.err_pooled.shape == (math.ceil(300 / fy), math.ceil(1000 / fx))
    col = 613 // fx
    assert np.all(a.w_pooled[:, col] == a.w_pooled.max(axis=1))  # the outlier column is the max of every row
    np.testing.assert_allclose(a.w_pooled.max(), float(w.abs().max()), rtol=1e-6)
    np.testing.assert_allclose(a.err_pooled.max(), a.metrics.max_abs_error, rtol=1e-5)


# ---- code space and levels ----

@pytest.mark.parametrize("spec", list(_all_specs()), ids=lambda s: s.label)
def test_every_dequantized_weight_lands_on_a_drawn_level(spec):
    w = _w()
    w[3, 7] = 0.9  # an outlier
    r = quantize(w, spec)
    y_hat, levels = code_space(dequantize(r), r)
    y, levels_w = code_space(w, r)
    np.testing.assert_array_equal(levels, levels_w)
    assert np.all(np.diff(levels) > 0)
    dist = np.abs(y_hat.numpy().reshape(-1, 1) - levels.reshape(1, -1)).min(axis=1)
    assert dist.max() <= 1e-5 * max(1.0, np.abs(levels).max())
    assert y.shape == w.shape


def test_code_space_levels_for_integers_symmetric_and_asymmetric():
    w = _w()
    _, sym = code_space(w, quantize(w, make_spec("int4", "channel")))
    np.testing.assert_array_equal(sym, np.arange(-7, 8))
    r = quantize(w, make_spec("int4", "channel", symmetric=False))
    y, asym = code_space(w, r)
    np.testing.assert_array_equal(asym, np.arange(16))
    # Asymmetric: the zero point shifts every row's range onto [0, 15] (half a step of slack for rounding).
    assert float(y.min()) >= -0.5 - 1e-4 and float(y.max()) <= 15.5 + 1e-4
    assert float(y.max()) > 14.5 and float(y.min()) < 0.5


def test_code_space_of_a_per_channel_scale_reaches_the_top_level_in_every_row():
    w = _w()
    y, _ = code_space(w, quantize(w, make_spec("int8", "channel", scale_dtype="fp32")))
    np.testing.assert_allclose(y.abs().amax(dim=1).numpy(), 127.0, rtol=1e-5)


def test_expand_scales_broadcasts_spans_including_a_short_last_group():
    w = _w(5, 100)
    r = quantize(w, make_spec("int4", "group", 32))
    s = expand_scales(r, r.scales)
    assert s.shape == (5, 100)
    assert torch.equal(s[:, 96:], r.scales[:, 3:4].expand(5, 4))  # the 4-wide last group has the 4th scale
    assert torch.equal(s[:, 32:64], r.scales[:, 1:2].expand(5, 32))
    rt = quantize(w, make_spec("int4", "tensor"))
    assert expand_scales(rt, rt.scales).shape == (5, 100)


# ---- histograms and channel errors ----

@pytest.mark.parametrize("spec", [make_spec("int4", "group", 32), make_spec("int3", "channel", symmetric=False),
                                  make_spec("nf4"), make_spec("mxfp4"), make_spec("fp8_e4m3", "tensor")],
                         ids=lambda s: s.label)
def test_histogram_totals_count_every_weight_once(spec):
    w = _w(40, 320)
    w[0, :10] = 0.0  # exact zeros
    a = analyze_layer(w, spec)
    n = w.numel()
    assert a.weight_hist.total == a.scaled_hist.total == a.error_hist.total == n
    err = dequantize(quantize(w, spec)).float() - w
    nonzero_with_error = int(((w != 0) & (err != 0)).sum())
    assert int(a.rel_counts.sum()) == nonzero_with_error
    assert a.rel_counts.size == len(a.rel_edges) - 1
    assert a.rel_edges[0] == REL_LOG10_RANGE[0] and a.rel_edges[-1] == REL_LOG10_RANGE[1]
    assert a.exact_frac == pytest.approx(float((err == 0).float().mean()))
    assert a.weight_hist.bins == 256 and a.scaled_hist.bins == 512


def test_per_channel_errors_match_an_independent_computation():
    w = _w(24, 96)
    w[5, 40] = 2.0  # row 5 and column 40 carry the largest error under per-tensor int4
    spec = make_spec("int4", "tensor")
    a = analyze_layer(w, spec)
    err = (dequantize(quantize(w, spec)).double() - w.double()) ** 2
    np.testing.assert_allclose(a.row_mse, err.mean(dim=1).numpy(), rtol=1e-5)
    np.testing.assert_allclose(a.col_mse, err.mean(dim=0).numpy(), rtol=1e-5)
    assert a.row_mse.mean() == pytest.approx(a.metrics.mse, rel=1e-5)
    assert a.row_mse.shape == (24,) and a.col_mse.shape == (96,)


def test_top_k_largest_first_and_k_clipped():
    v = np.array([0.1, 5.0, 0.3, 9.0, 0.2])
    np.testing.assert_array_equal(top_k(v, 2), [3, 1])
    np.testing.assert_array_equal(top_k(v, 10), [3, 1, 2, 4, 0])
    np.testing.assert_array_equal(top_k(v), [3, 1, 2, 4, 0])


# ---- output error, dtype, purity, errors ----

def test_output_error_matches_a_reference_and_is_absent_without_inputs(device):
    w = _w(32, 64, device=device)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(50, 64, generator=g).to(device)
    spec = make_spec("int3", "channel")
    a = analyze_layer(w, spec, x)
    w_hat = dequantize(quantize(w, spec))
    xd = x.double()
    ref = float(torch.linalg.norm(xd @ (w.double() - w_hat.double()).T) / torch.linalg.norm(xd @ w.double().T))
    assert a.output_error == pytest.approx(ref, rel=1e-4)
    assert a.tokens == 50
    b = analyze_layer(w, spec)
    assert b.output_error is None and b.tokens == 0


def test_half_precision_input_is_not_mutated_and_arrays_are_numpy(device):
    w = _w(16, 128, device=device, dtype=torch.float16)
    before = w.clone()
    a = analyze_layer(w, make_spec("nvfp4"))
    assert torch.equal(w, before)
    assert a.shape == (16, 128)
    for arr in (a.row_mse, a.col_mse, a.w_pooled, a.err_pooled, a.levels, a.rel_counts):
        assert isinstance(arr, np.ndarray)


def test_nan_weight_is_refused_with_a_message():
    w = _w()
    w[2, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        analyze_layer(w, make_spec("int4", "group", 64))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("n_in", [160, 150])  # extremes per 16 inputs (max-pooled) or whole blocks
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_non_finite_weights_anywhere_are_refused_by_the_statistics(bad, n_in, dtype):
    from explorer.analysis import weight_stats
    for pos in [(0, 0), (3, 17), (7, 31), (5, n_in - 1)]:
        w = _w(8, n_in).to(dtype)
        w[pos] = bad
        with pytest.raises(ValueError, match="weight holds NaN or Inf values; allowed: finite values only"):
            weight_stats(w)


def test_group_wider_than_the_row_is_refused_with_the_allowed_range():
    with pytest.raises(ValueError, match=r"larger than the row \(256 inputs\); allowed: 1\.\.256"):
        analyze_layer(_w(), make_spec("int4", "group", 512))


# ---- blocks, the weight-only split, sampled histograms ----

def _reference(w, spec, k=1):
    """LayerAnalysis by its definitions on whole tensors; the format-dependent histograms over rows 0, k, 2k..."""
    from explorer.histogram import fixed_histogram, histogram
    from explorer.metrics import clipped_mask
    r = quantize(w, spec)
    w_hat, wf = dequantize(r), w.float()
    err = w_hat.float() - wf
    y, _ = code_space(w, r)
    es, ws = err[::k], wf[::k]
    nz = (ws != 0) & (es != 0)
    rel, _ = fixed_histogram(torch.log10(es[nz].abs() / ws[nz].abs()), *REL_LOG10_RANGE, bins=160)
    e64 = w_hat.double() - w.double()
    return dict(weight=histogram(wf).counts, scaled=histogram(y[::k], 512).counts, error=histogram(es).counts,
                rel=rel, row=(e64 ** 2).mean(1).numpy(), col=(e64 ** 2).mean(0).numpy(),
                epool=max_pool(err.abs())[0], wpool=max_pool(wf.abs())[0], max=float(err.abs().max()),
                exact=float((err == 0).double().mean()), clipped=float(clipped_mask(w, r).double().mean()),
                zeroed=float(((w_hat == 0) & (w != 0)).double().mean()), mse=float((e64 ** 2).mean()))


BLOCK_SPECS = [  # (spec, in): cached per-16 extremes, spans that are not multiples of 16, a short last group
    (make_spec("int4", "group", 32), 208), (make_spec("int4", "group", 24), 216), (make_spec("int4", "group", 48), 200),
    (make_spec("int3", "channel", symmetric=False), 208), (make_spec("nf4", "tensor"), 208),
    (make_spec("int8", "tensor", symmetric=False), 200), (make_spec("fp8_e4m3", "tensor"), 208),
    (make_spec("mxfp4"), 224), (make_spec("nvfp4"), 208), (make_spec("int8", "group", 64, scale_dtype="bf16"), 192)]


@pytest.mark.parametrize("spec, n_in", BLOCK_SPECS, ids=lambda v: v.label if hasattr(v, "label") else str(v))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_many_blocks_and_sampled_rows_equal_the_definitions(monkeypatch, spec, n_in, dtype):
    import explorer.analysis_blocks as analysis_blocks
    # ~9 rows a chunk: many chunks, pooling windows across them, per-tensor scales across them; a few staged
    # batches for the sampled histograms, the clip gathers and the output error
    monkeypatch.setattr(analysis_blocks, "CHUNK_WEIGHTS", 1 << 11)
    monkeypatch.setattr(analysis_blocks, "BLOCK_WEIGHTS", 1 << 13)
    w = _w(203, n_in, seed=7)
    w[9, 3], w[150, 100], w[11, 0] = 3.0, -2.5, 0.0  # outliers (clip under MX and per-tensor scales), a zero
    w = w.to(dtype)
    for k in (1, 3):
        a, ref = analyze_layer(w, spec, hist_stride=k), _reference(w, spec, k)
        for name, h in (("weight", a.weight_hist), ("scaled", a.scaled_hist), ("error", a.error_hist)):
            assert np.array_equal(h.counts, ref[name]), (name, k)  # exact counts, same range
        assert np.array_equal(a.rel_counts, ref["rel"])
        assert a.hist_stride == k and a.hist_weights == len(range(0, 203, k)) * n_in
        m = a.metrics
        assert (a.exact_frac, m.max_abs_error, m.zeroed_frac, m.clipped_frac) == (
            ref["exact"], ref["max"], ref["zeroed"], ref["clipped"])
        assert np.array_equal(a.err_pooled, ref["epool"]) and np.array_equal(a.w_pooled, ref["wpool"])
        np.testing.assert_allclose(a.row_mse, ref["row"], rtol=1e-5, atol=1e-30)
        np.testing.assert_allclose(a.col_mse, ref["col"], rtol=1e-5, atol=1e-30)
        assert m.mse == pytest.approx(ref["mse"], rel=1e-6)
    if spec.format.name == "mxfp4":
        assert a.metrics.clipped_frac > 0  # the clip path was exercised


def test_the_split_path_equals_the_one_shot_path_and_stats_serve_every_format():
    from explorer.analysis import weight_stats
    w = _w(96, 256)
    x = torch.randn(40, 256, generator=torch.Generator().manual_seed(2))
    stats = weight_stats(w, x)
    for spec in (make_spec("int4", "group", 64), make_spec("nvfp4"), make_spec("int8", "tensor", symmetric=False)):
        a, b = analyze_layer(w, spec, x), analyze_layer(w, spec, x, stats=stats)
        for field in ("shape", "metrics", "exact_frac", "output_error", "tokens", "pool", "hist_stride"):
            assert getattr(a, field) == getattr(b, field), field
        for field in ("levels", "rel_counts", "rel_edges", "row_mse", "col_mse", "w_pooled", "err_pooled"):
            assert np.array_equal(getattr(a, field), getattr(b, field)), field
        for field in ("weight_hist", "scaled_hist", "error_hist"):
            ha, hb = getattr(a, field), getattr(b, field)
            assert np.array_equal(ha.counts, hb.counts) and ha.half_range == hb.half_range, field


def test_weight_stats_hold_what_w_alone_determines():
    from explorer.analysis import EXTREMES_SPAN, weight_stats
    from explorer.histogram import histogram
    w = _w(50, 160)
    w[4, :7] = 0.0
    s = weight_stats(w)
    np.testing.assert_allclose(s.row_sq.numpy(), (w.double() ** 2).sum(1).numpy(), rtol=1e-6)
    assert s.zeros == 7 and s.shape == (50, 160) and s.dtype == torch.float32 and s.tokens == 0 and s.out_sq is None
    assert s.extremes.tolist() == [float(w.min()), float(w.max())]
    spans = w.view(50, -1, EXTREMES_SPAN)
    assert torch.equal(s.span_min, spans.amin(-1)) and torch.equal(s.span_max, spans.amax(-1))
    assert np.array_equal(s.weight_hist.counts, histogram(w).counts)
    assert np.array_equal(s.w_pooled, max_pool(w.abs())[0])
    assert weight_stats(_w(8, 20)).span_min is None  # 16 does not divide 20: spans take their own extremes


def test_extremes_per_span_are_those_of_w_and_kept_per_span():
    from explorer.analysis import weight_stats
    w = _w(12, 192)
    s = weight_stats(w)
    for span in (16, 32, 64, 192):
        lo, hi = s.extremes_per(span)
        v = w.view(12, -1, span)
        assert torch.equal(lo, v.amin(-1)) and torch.equal(hi, v.amax(-1))
        assert s.extremes_per(span)[0] is lo  # computed once per span
    for bad in (24, 128):  # not a multiple of 16; does not divide 192
        with pytest.raises(ValueError, match=rf"span={bad} is not allowed; allowed: multiples of 16 dividing 192"):
            s.extremes_per(bad)
    with pytest.raises(ValueError, match=r"16 does not divide in=20\); allowed: a W whose in is a multiple of 16"):
        weight_stats(_w(8, 20)).extremes_per(16)


def test_stats_of_another_tensor_or_setting_are_refused():
    from explorer.analysis import weight_stats
    w, spec = _w(16, 64), make_spec("int4", "group", 32)
    x = torch.randn(5, 64)
    cases = [(weight_stats(_w(16, 32)), None, "(16, 32)"), (weight_stats(w.half()), None, "float16"),
             (weight_stats(w), x, "tokens"), (weight_stats(w, x), None, "tokens")]
    for stats, inputs, what in cases:
        with pytest.raises(ValueError, match=r"do not fit this call; allowed: \(\(16, 64\), torch.float32"):
            analyze_layer(w, spec, inputs, stats=stats)
    with pytest.raises(ValueError, match=r"hist_stride=0 is not allowed; allowed: None or an integer >= 1"):
        analyze_layer(w, spec, hist_stride=0)


def test_large_layers_sample_their_format_histograms_by_default(monkeypatch):
    import explorer.analysis as A
    assert A.default_hist_stride(576, 1536) == 1  # the bundled layers: every weight
    assert A.default_hist_stride(4096, 11008) == -(-4096 * 11008 // A.HIST_WEIGHTS) > 1
    monkeypatch.setattr(A, "HIST_WEIGHTS", 4000)
    a = analyze_layer(_w(100, 200), make_spec("int4", "group", 64))
    assert a.hist_stride == 5 and a.hist_weights == 20 * 200
    assert a.scaled_hist.total == a.error_hist.total == 4000 and a.weight_hist.total == 20000  # W: every weight


def test_a_strided_view_gives_the_analysis_of_its_copy():
    base = _w(130, 96)
    w = base.t()  # [96, 130], not contiguous
    spec = make_spec("int4", "group", 32)
    a, b = analyze_layer(w, spec), analyze_layer(w.contiguous(), spec)
    assert a.metrics == b.metrics and np.array_equal(a.error_hist.counts, b.error_hist.counts)
    assert np.array_equal(a.scaled_hist.counts, b.scaled_hist.counts) and np.array_equal(a.row_mse, b.row_mse)


def test_the_square_root_of_a_normal_square_is_the_magnitude_for_every_float32():
    # analysis_blocks.LayerReducer pools e^2 and takes sqrt: exact while e^2 is normal. Scaling e by 2 scales e^2 by
    # 4 exactly, so the binades [1, 2) and [2, 4) stand for every e with |e| in [2^-63, 2^64).
    mantissas = torch.arange(0, 1 << 23, dtype=torch.int32)
    for one in (1.0, 2.0):
        e = (mantissas + torch.tensor(one).view(torch.int32)).view(torch.float32)
        assert torch.equal(torch.sqrt(e * e), e)
    e = torch.tensor([2.0 ** -63, -(2.0 ** 63) * 1.9999999])
    assert torch.equal(torch.sqrt(e * e), e.abs())
    assert float(torch.sqrt(torch.tensor(2.0 ** -64 * 1.3) ** 2)) != 2.0 ** -64 * 1.3  # a subnormal square: inexact


@pytest.mark.parametrize("scale, squared", [(1.0, True), (2.0 ** -80, False), (2.0 ** 56, False), (None, False)])
@pytest.mark.parametrize("spec", [make_spec("int4", "group", 32), make_spec("fp8_e4m3", "tensor"), make_spec("mxfp4")],
                         ids=lambda s: s.label)
def test_pooled_errors_are_exact_for_tiny_and_huge_weights(monkeypatch, spec, scale, squared):
    """The heatmap pools e^2 only where squares_normal proves sqrt(max e^2) = max |e|; tiny or huge weights
    (and one tiny weight among normal ones: scale None) take the max and min of e instead. Both equal the
    definition bit for bit."""
    import explorer.analysis_blocks as analysis_blocks
    from explorer.analysis import weight_stats
    monkeypatch.setattr(analysis_blocks, "CHUNK_WEIGHTS", 1 << 11)  # windows across chunks
    w = _w(203, 224, seed=5)
    if scale is None:
        w[7, 9] = 3e-12  # below SMALL_WEIGHT = 2^-37
    else:
        w = w * scale
    stats = weight_stats(w)
    assert analysis_blocks.squares_normal(stats) is squared
    a, ref = analyze_layer(w, spec, stats=stats), _reference(w, spec, 1)
    assert np.array_equal(a.err_pooled, ref["epool"]) and a.metrics.max_abs_error == ref["max"]
    assert (a.exact_frac, a.metrics.zeroed_frac) == (ref["exact"], ref["zeroed"])
    # Sums of squares stay right where float32 squares would underflow or overflow (float64 then)
    wd = w.double()
    e = dequantize(quantize(w, spec)).double() - wd
    assert a.metrics.rel_error == pytest.approx(float(e.norm() / wd.norm()), rel=1e-6)
    assert a.metrics.mse == pytest.approx(float((e * e).mean()), rel=1e-6)
    np.testing.assert_allclose(a.row_mse, (e * e).mean(1).numpy(), rtol=1e-5, atol=0)
    np.testing.assert_allclose(a.col_mse, (e * e).mean(0).numpy(), rtol=1e-5, atol=0)


@pytest.mark.parametrize("spec", [make_spec("int4", "group", 32), make_spec("nf4", "group", 64), make_spec("mxfp4"),
                                  make_spec("int8", "group", 32, symmetric=False), make_spec("fp8_e4m3", "channel"),
                                  make_spec("int4", "group", 24)], ids=lambda s: s.label)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_clip_counts_equal_the_mask_on_both_sides(monkeypatch, spec, dtype):
    """Scales cut to 0.45 of their value clip on both sides: the count over the spans whose extremes pass a bound
    (mirrored bounds as |W| > hi, others as two compares; batches smaller than the spans flagged) equals the mask's."""
    import explorer.analysis_blocks as analysis_blocks
    from explorer.analysis import weight_stats
    from explorer.metrics import clipped_mask
    from explorer.quantize import QuantResult
    monkeypatch.setattr(analysis_blocks, "CHUNK_WEIGHTS", 1 << 10)
    w = _w(64, 192, seed=11).to(dtype)
    r = quantize(w, spec)
    cut = QuantResult(spec, r.codes, r.scales * 0.45, r.zeros, r.dtype, r.span, r.scale_codes, r.tensor_scale)
    span = r.span
    clips = analysis_blocks.Clips(w, spec, span, weight_stats(w))
    if not clips.cached:  # spans that are not multiples of 16 take their own extremes, chunk by chunk
        for r0 in range(0, 64, 8):
            clips.add(w[r0:r0 + 8].float(), cut.scales[r0:r0 + 8], None if cut.zeros is None else cut.zeros[r0:r0 + 8])
    want = int(clipped_mask(w, cut).sum())
    assert want > 500 and clips.total(cut) == want
