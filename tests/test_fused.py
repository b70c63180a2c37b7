"""explorer.fused: the numba kernels against the reference quantizer (Ŵ's values, scales, zero points, exactly)
and against the torch reduction (counts and heatmap exactly, sums to rounding), on weights built to hit the hard
cases: ties between grid values and their float32 neighbours, saturation, zeros of both signs, clipping outliers,
NVFP4 blocks whose scale underflows to 0, MX scales at their floor, bfloat16 rounding of Ŵ."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from explorer import analysis_blocks as B
from explorer import fused
from explorer.analysis import analyze_layer, weight_stats
from explorer.compare import all_specs
from explorer.fast_paths import quantize_fast
from explorer.formats import make_spec, usual_spec
from explorer.metrics import clipped_mask
from explorer.quantize import dequantize, quantize, span_of
from explorer.specs import ScaleDType

N_IN = 256  # spans of 16 .. 256 divide it: the fused quantizer needs the cached extremes per span
FUSED_SPECS = [s for d in ScaleDType for s in all_specs(32, d)
               if span_of(s, N_IN) % B.EXTREMES_SPAN == 0]
FUSED_SPECS = list(dict.fromkeys(FUSED_SPECS))

CASES = [  # (shape, dtype, spec): chunk rows that split heatmap windows, padded last groups, per-tensor scales
    ((700, 1000), torch.float32, usual_spec("int4")),
    ((700, 1000), torch.bfloat16, usual_spec("nf4")),
    ((333, 300), torch.float32, make_spec("int4", "group", 128, symmetric=False)),
    ((333, 300), torch.float16, make_spec("int3", "group", 128, symmetric=False)),
    ((150, 512), torch.bfloat16, usual_spec("fp8_e4m3")),
    ((257, 640), torch.float32, usual_spec("mxfp4")),
    ((200, 64), torch.float32, usual_spec("nvfp4")),
    ((1, 96), torch.float32, usual_spec("int8")),
]


def _w(shape, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(shape, generator=g) * 0.02
    w[:, 3] *= 40  # an outlier column: large errors, clipping
    w[5 % shape[0], :7] = 0  # exact zeros
    return w.to(dtype)


def _reduce(w, spec, fast: bool, chunk: int):
    stats = weight_stats(w)
    span = span_of(spec, w.shape[1])
    r = B.LayerReducer(w, stats, B.Clips(w, spec, span, stats), None, fused=fast)
    assert (r.fast is not None) == fast
    quantize_fast(w, spec, chunk_elements=chunk, with_result=True, codes=False, sink=r)
    r.finish()
    return r


def test_numba_kernels_are_available_here():
    # numba is pinned in requirements.txt: the suite must exercise the fused path, not silently skip it
    for use in fused.Use:
        assert fused.available(torch.zeros(1), use), f"numba is missing or failed to compile the {use.value} kernels"


@pytest.mark.parametrize("chunk", [1 << 17, 3000])
@pytest.mark.parametrize("shape,dtype,spec", CASES, ids=lambda v: getattr(v, "label", str(v)))
def test_fused_reduction_matches_torch_path_and_float64(shape, dtype, spec, chunk):
    w = _w(shape, dtype)
    a, b = _reduce(w, spec, True, chunk), _reduce(w, spec, False, chunk)
    # exact: counts and the heatmap (max of float32 squares, then sqrt)
    assert (a.nonzero_hat, a.nonzero_err) == (b.nonzero_hat, b.nonzero_err)
    assert np.array_equal(a.err_pooled(), b.err_pooled())
    # the sums against float64 sums of the float32 squares of the exact error
    x = w.float()
    e = (dequantize(quantize(w, spec)).float() - x)
    e2 = (e * e).double()
    assert a.nonzero_err == int((e != 0).sum()) and a.nonzero_hat == int((x + e != 0).sum())
    assert torch.equal(a.row_e2, e2.sum(1).float())  # float64 accumulation, rounded once
    torch.testing.assert_close(a.col_e2, e2.sum(0), rtol=1e-12, atol=0)
    assert a.dot == pytest.approx(float((x.double() * e.double()).sum()), rel=1e-12, abs=1e-300)
    torch.testing.assert_close(b.row_e2, a.row_e2, rtol=1e-5, atol=0)  # torch's float32 sums
    torch.testing.assert_close(b.col_e2, a.col_e2, rtol=1e-5, atol=0)
    assert b.dot == pytest.approx(a.dot, rel=1e-4)


def test_no_numba_falls_back_to_torch(monkeypatch):
    w = _w((64, 256), torch.float32)
    want = analyze_layer(w, usual_spec("int4"), fused=True)
    monkeypatch.setattr(fused, "_kernels", lambda *use: None)
    assert not fused.available(w) and fused.fake_quantize(w, usual_spec("int4")) is None
    got = analyze_layer(w, usual_spec("int4"), fused=True)  # asked for, not there: the torch path
    assert got.metrics.rel_error == pytest.approx(want.metrics.rel_error, rel=1e-6)
    assert np.array_equal(got.err_pooled, want.err_pooled)


def test_squares_outside_float32_take_the_torch_float64_path():
    w = _w((64, 256), torch.float32) * 1e-30  # squares underflow float32: analysis_blocks.squares_normal
    r = _reduce(w, usual_spec("int4"), False, 1 << 17)
    stats = weight_stats(w)
    fast_asked = B.LayerReducer(w, stats, B.Clips(w, usual_spec("int4"), 128, stats), None, fused=True)
    assert fast_asked.fast is None and r.row_e2.dtype == torch.float64


def test_not_on_other_devices():
    assert not fused.available(torch.zeros(1, device="meta"))


def test_padded_rows_views_and_copies():
    buf = torch.arange(40.0).view(4, 10)
    v = fused.padded_rows(buf[:, :6])  # padding travels along: a view of the same memory
    assert v.shape == (4, 10) and np.shares_memory(v, buf.numpy()) and np.array_equal(v[:, :6], buf[:, :6].numpy())
    tight = torch.arange(20.0).as_strided((3, 4), (8, 1))  # the last row's padding lies beyond the storage
    c = fused.padded_rows(tight)
    assert c.shape == (3, 4) and np.array_equal(c, tight.numpy())
    strided = buf[:, ::2]  # no unit column stride: a contiguous copy
    assert np.array_equal(fused.padded_rows(strided), strided.numpy())


def fused_weights(out=40, seed=0) -> torch.Tensor:
    """Normal weights with what the fused path must get right; every non-zero |W| in [2^-37, 2^50] (the fused
    path's domain: analysis_blocks.squares_normal)."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(out, N_IN, generator=g) * 0.02
    w[1, 5] = 0.9                                   # clips under per-tensor and MX scales
    w[2, :64] = 0.0
    w[3, :64] = -0.0
    w[4] *= 1e-6                                    # a tiny row
    w[5, ::7] *= -1e3                               # big values in one row
    w[6, :16] = 1e-9 * torch.randn(16, generator=g)  # NVFP4: this block's E4M3 scale underflows to 0
    w[7, 16] = 1e3
    w[8, :32] = torch.tensor([0.25, 0.75, 2.5, 3.5, 5.0, -5.0, 6.0, 7.0] * 4) * 2.0 ** -5  # FP4 ties, saturation
    return w


def fused_run(w, spec, rows=7):
    """RowReduction.quantize over w, its staged error rows and the result."""
    stats = weight_stats(w)
    span = span_of(spec, w.shape[1])
    red = fused.RowReduction(*w.shape, *stats.pool)
    staged = []
    res = red.quantize(w, spec, span, stats.extremes_per(span), rows, lambda e: staged.append(e.clone()))
    return red, res, torch.cat(staged)


def check_against_reference(w, spec, rows=7):
    red, res, e = fused_run(w, spec, rows)
    ref = quantize(w, spec)
    x = w.float()
    e_ref = dequantize(ref).float() - x  # float32, as the kernel subtracts
    assert res is not None
    assert torch.equal(res.scales, ref.scales), "scales"
    assert (res.zeros is None) == (ref.zeros is None) and (res.zeros is None or torch.equal(res.zeros, ref.zeros))
    bad = e != e_ref
    assert not bool(bad.any()), f"{int(bad.sum())} values of Ŵ differ, e.g. W={x[bad][:4]}: {e[bad][:4]} vs " \
                                f"{e_ref[bad][:4]}"
    e2 = e_ref * e_ref
    assert torch.equal(red.row_e2, e2.double().sum(1).float())
    torch.testing.assert_close(red.col_e2, e2.double().sum(0), rtol=1e-12, atol=0)
    assert red.dot == pytest.approx(float((x.double() * e_ref.double()).sum()), rel=1e-12, abs=1e-300)
    assert red.nonzero_err == int((e_ref != 0).sum()) and red.nonzero_hat == int((dequantize(ref) != 0).sum())
    assert red.clipped == int(clipped_mask(w, ref).sum())
    fy, fx = red.fy, red.fx
    pooled = F.max_pool2d(e_ref.abs()[None, None], (fy, fx), (fy, fx), ceil_mode=True)[0, 0].numpy()
    assert np.array_equal(red.heat, pooled)
    return ref


@pytest.mark.parametrize("spec", FUSED_SPECS, ids=lambda s: f"{s.label} {s.scale_dtype.value}")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_quantizer_equals_the_reference(spec, dtype):
    w = fused_weights().to(dtype)
    check_against_reference(w, spec)
    check_against_reference(w, spec, rows=1000)  # one chunk


@pytest.mark.parametrize("name", ["fp8_e4m3", "fp8_e5m2", "fp4_e2m1", "nf4", "int4", "int8", "int3"])
def test_fused_ties_and_neighbours_of_every_decision_boundary(name):
    """Scale exactly 1 (fp32 per-tensor scale, the grid's top value in W): W hits every midpoint between grid
    values and its float32 neighbours (ties to even for minifloats and integers, to the lower entry for NF4)."""
    from test_fast_paths import boundary_weights
    w = boundary_weights(name, N_IN, smallest=2.0 ** -37)  # the fused path's domain: squares_normal
    spec = make_spec(name, "tensor", scale_dtype="fp32")
    assert float(check_against_reference(w, spec).scales) == 1.0


def block_weights(name: str, dtype: torch.dtype) -> torch.Tensor:
    """Rows whose largest element lands anywhere in [1, 2) of its binade, FP4 ties, -0.0; copies 1e-8 and 2^40
    times as large (NVFP4: the small blocks' E4M3 scale underflows to 0) and, for MX, 2^-30 times."""
    g = torch.Generator().manual_seed(3)
    rows = []
    for top in (4.0, 6.0, 6.5, 7.0, 7.999, 1.0, 1.75):
        r = torch.randn(N_IN, generator=g)
        r = r / r.abs().max() * top
        r[1:8] = torch.tensor([0.25, 0.75, 2.5, 3.5, 5.0, -5.0, -0.0])
        rows.append(r)
    w = torch.stack(rows) * 2.0 ** -3
    return torch.cat([w, w * 1e-8, w * 2.0 ** 40] + ([w * 2.0 ** -30] if name != "nvfp4" else [])).to(dtype)


@pytest.mark.parametrize("name", ["mxfp4", "mxfp8", "mxint8", "nvfp4"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_block_formats_at_saturation_ties_and_underflow(name, dtype):
    """MX blocks whose largest element lands anywhere in [1, 2) of its binade, exact ties after the power-of-two
    scale, NVFP4 blocks far below the tensor's largest (E4M3 scale 0), MX scales down to 2^-122 or so."""
    ref = check_against_reference(block_weights(name, dtype), make_spec(name))
    if name == "nvfp4":
        assert bool((ref.scales == 0).any())  # the case is really exercised


@pytest.mark.parametrize("spec", [usual_spec(n) for n in ("int4", "int8", "fp8_e4m3", "nf4", "mxfp4", "nvfp4")]
                         + [make_spec("int4", "group", 128, symmetric=False), make_spec("int8", "tensor")],
                         ids=lambda s: s.label)
def test_analyze_layer_fused_and_torch_paths_agree(spec):
    w = fused_weights(out=300, seed=4).to(torch.bfloat16)
    x = torch.randn(48, N_IN, generator=torch.Generator().manual_seed(5))
    stats = weight_stats(w, x)
    a, b = (analyze_layer(w, spec, x, stats=stats, fused=f) for f in (True, False))
    assert np.array_equal(a.err_pooled, b.err_pooled) and a.exact_frac == b.exact_frac
    for h in ("scaled_hist", "error_hist"):
        assert np.array_equal(getattr(a, h).counts, getattr(b, h).counts), h
    for name in ("rel_error", "sqnr_db", "cosine", "max_abs_error", "clipped_frac", "zeroed_frac", "mse"):
        assert getattr(a.metrics, name) == pytest.approx(getattr(b.metrics, name), rel=1e-5), name
    assert a.output_error == pytest.approx(b.output_error, rel=1e-6)
    np.testing.assert_allclose(a.row_mse, b.row_mse, rtol=1e-5)


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().view({2: torch.int16, 4: torch.int32}[t.element_size()])


@pytest.mark.parametrize("spec", list(dict.fromkeys(s for d in ScaleDType for s in all_specs(32, d))),
                         ids=lambda s: f"{s.label} {s.scale_dtype.value}")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_fake_quantize_bit_for_bit(spec, dtype):
    """fused.fake_quantize against dequantize(quantize()) on the raw bits (-0.0 != +0.0), on weights with float32
    subnormals, rows at the scale dtype's floor, zeros of both signs, outliers; 16-bit W with one scale and spans
    that do not divide the row are left to explorer.fast_paths (None)."""
    from test_fast_paths import hard_weights  # the fast path's hard cases
    w = hard_weights(out=24, n_in=256, seed=7)
    w[9] = torch.tensor([1.0, -2.0, 0.0, 3.0]).repeat(64) * 2.0 ** -149  # amax / top underflows float32 to 0
    w = w.to(dtype)
    got = fused.fake_quantize(w, spec)
    if got is None:
        assert dtype != torch.float32 and span_of(spec, 256) == 256 and spec.granularity.value == "tensor"
        return
    assert_same_bits(got, dequantize(quantize(w, spec)), w)


def assert_same_bits(got, want, w):
    diff = _bits(got) != _bits(want)
    assert not bool(diff.any()), f"{int(diff.sum())} differ: W={w[diff][:4]} {got[diff][:4]} vs {want[diff][:4]}"


@pytest.mark.parametrize("name", ["mxfp4", "mxfp8", "mxint8", "nvfp4"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_fake_quantize_blocks_bit_for_bit(name, dtype):
    """Block saturation, ties and NVFP4 blocks with scale 0 (their Ŵ is +0.0 whatever W's signs)."""
    w = block_weights(name, dtype)
    assert_same_bits(fused.fake_quantize(w, make_spec(name)), dequantize(quantize(w, make_spec(name))), w)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_fake_quantize_refuses_nan_and_inf(bad, dtype):
    w = torch.randn(8, 256).to(dtype)
    w[5, 137] = bad
    specs = [usual_spec("int4"), usual_spec("nvfp4"), usual_spec("mxfp4")]
    if dtype == torch.float32:  # (a 16-bit W with one scale is the fast path's)
        specs.append(make_spec("fp8_e4m3", "tensor"))
    for spec in specs:
        with pytest.raises(ValueError, match="NaN or Inf"):
            fused.fake_quantize(w, spec)


def test_fused_fake_quantize_leaves_what_it_does_not_cover():
    w = torch.randn(8, 256)
    assert fused.fake_quantize(w.half(), usual_spec("int4")) is None  # fp16 W
    assert fused.fake_quantize(torch.randn(8, 100), make_spec("int4", "group", 64)) is None  # padded last group
    assert fused.fake_quantize(w.bfloat16(), make_spec("int8", "tensor")) is None  # the fast path's table
    assert fused.fake_quantize(torch.randn(8, 256, device="meta"), usual_spec("int4")) is None


def test_small_layers_keep_the_torch_paths_unless_asked(monkeypatch):
    """Below fused.MIN_WEIGHTS the callers that choose (fake_quantize, analyze_layer by default) never touch the
    kernels: a server that only sees small layers never compiles them."""
    w = torch.randn(64, 256)
    want = analyze_layer(w, usual_spec("int4"), fused=True)
    monkeypatch.setattr(fused, "_kernels", lambda *use: pytest.fail("the kernels were asked for"))
    got = analyze_layer(w, usual_spec("int4"))
    assert got.metrics.rel_error == pytest.approx(want.metrics.rel_error, rel=1e-6)
    from explorer.quantize import fake_quantize
    assert torch.equal(fake_quantize(w, usual_spec("nf4")), dequantize(quantize(w, usual_spec("nf4"))))
    assert w.numel() < fused.MIN_WEIGHTS


def test_big_layers_take_the_kernels(monkeypatch):
    w = torch.randn(1024, 1024) * 0.02  # fused.MIN_WEIGHTS weights
    calls = []
    real = fused.fake_quantize
    monkeypatch.setattr(fused, "fake_quantize", lambda *a: calls.append(1) or real(*a))
    from explorer.quantize import fake_quantize
    assert torch.equal(fake_quantize(w, usual_spec("int4")), dequantize(quantize(w, usual_spec("int4"))))
    assert calls and w.numel() == fused.MIN_WEIGHTS


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_parameters_and_views_go_through(dtype):
    """An nn.Parameter (requires grad) and a non-contiguous view quantize as their values do."""
    w = (torch.randn(1024, 1024) * 0.02).to(dtype)
    want = dequantize(quantize(w, usual_spec("int4")))
    param = torch.nn.Parameter(w.clone())
    assert torch.equal(fused.fake_quantize(param, usual_spec("int4")), want)
    assert torch.equal(fused.fake_quantize(w.T.contiguous().T, usual_spec("int4")), want)
    from explorer.quantize import fake_quantize
    assert torch.equal(fake_quantize(torch.nn.Parameter(w[:8].clone()), usual_spec("int4")), want[:8])  # torch path
    for fast in (True, False):
        a = analyze_layer(param, usual_spec("int4"), fused=fast)
        assert a.metrics.rel_error == pytest.approx(analyze_layer(w, usual_spec("int4")).metrics.rel_error, rel=1e-6)


def test_the_environment_can_keep_numba_out(monkeypatch):
    """EXPLORER_FUSED=0 (a host short of memory): every caller takes its torch path, with the same results."""
    w = torch.randn(1024, 1024) * 0.02
    want = analyze_layer(w, usual_spec("nf4"), fused=True)
    monkeypatch.setenv("EXPLORER_FUSED", "0")
    fused._kernels.cache_clear()
    try:
        assert not any(fused.available(w, use) for use in fused.Use)
        got = analyze_layer(w, usual_spec("nf4"))
        assert got.metrics.rel_error == pytest.approx(want.metrics.rel_error, rel=1e-6)
        from explorer.quantize import fake_quantize
        assert torch.equal(fake_quantize(w, usual_spec("nf4")), dequantize(quantize(w, usual_spec("nf4"))))
    finally:
        monkeypatch.delenv("EXPLORER_FUSED")
        fused._kernels.cache_clear()
    assert fused.available(w)


@pytest.mark.parametrize("shape", [(1024, 1024), (1000, 1056), (1100, 1000), (2100, 500)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_weight_statistics_equal_the_torch_reductions(shape, dtype):
    """fused.weight_statistics (one read) against analysis._weight_reductions (torch): cells, counts, extremes per
    16 inputs, pooled maxima and the overall extremes exactly; sums of squares to rounding; pooling windows that
    do not divide the rows or columns, 16 not dividing the row, zeros of both signs, subnormals, outliers."""
    from explorer.analysis import _weight_reductions
    from explorer.analysis_blocks import mantissa_bits, pool_factors
    from explorer.histogram import CellCounts
    g = torch.Generator().manual_seed(shape[0])
    w = torch.randn(shape, generator=g) * 0.02
    w[3, :40] = 0.0
    w[4, :40] = -0.0
    w[5, :40] = torch.randn(40, generator=g) * 1e-39
    w[7, 11] = -3.5
    w = w.to(dtype)
    fy, fx = pool_factors(*shape)
    a_cells, b_cells = CellCounts(None, mantissa_bits(256)), CellCounts(None, mantissa_bits(256))
    a, b = fused.weight_statistics(w, a_cells, fy, fx), _weight_reductions(w, b_cells, fy, fx)
    assert torch.equal(a_cells.counts, b_cells.counts) and a.nonzero == b.nonzero
    assert np.array_equal(a.pooled, b.pooled) and torch.equal(a.extremes.float(), b.extremes.float())
    assert (a.span_min is None) == (b.span_min is None) == (shape[1] % 16 != 0)
    if a.span_min is not None:
        assert torch.equal(a.span_min, b.span_min) and torch.equal(a.span_max, b.span_max)
    torch.testing.assert_close(a.row_sq, b.row_sq, rtol=2e-6, atol=0)
    torch.testing.assert_close(a.row_sq, (w.float() * w.float()).double().sum(1), rtol=1e-12, atol=0)  # float32 squares


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_weight_stats_refuses_nan_and_inf_on_the_fused_path(bad):
    w = torch.randn(1024, 1024) * 0.02
    w[700, 3] = bad
    with pytest.raises(ValueError, match="NaN or Inf"):
        weight_stats(w)
