"""The fast path (explorer.fast_paths) against the reference path, bit for bit: Ŵ, codes, scales, zero points.

"Bit for bit" is checked on the raw bits (a -0.0 where the reference has +0.0 fails), on weights built to hit
the hard cases: exact ties between grid values, values one ulp either side of a decision boundary or of a code
book cell edge, -0.0, float32 subnormals, saturation, padded last groups, NVFP4 blocks whose scale underflows,
MX blocks whose scale is near 2^-127, every input dtype, and each code path: with codes, without codes (the
scales only, as explorer.analysis asks), the 16-bit per-tensor table, NVFP4's two passes.
"""
import struct

import pytest
import torch

from explorer import FORMATS, Kind, format_names, make_spec
from explorer.compare import all_specs
from explorer.specs import Granularity, ScaleDType
from explorer.fast_kernels import MINIFLOATS, codebook_tables
from explorer.fast_paths import quantize_fast
from explorer.quantize import dequantize, fake_quantize, quantize, span_of


SPECS = list(dict.fromkeys(s for d in ScaleDType for s in all_specs(32, d)))  # and every scale dtype (blocks: once)


def bits(t: torch.Tensor) -> torch.Tensor:
    """Raw bit patterns, so that -0.0 != +0.0 and NaN payloads count."""
    t = t.contiguous()
    return t.view({1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()])


def assert_same(fast: torch.Tensor, ref: torch.Tensor, what: str) -> None:
    assert fast.dtype == ref.dtype and fast.shape == ref.shape, what
    diff = bits(fast) != bits(ref)
    assert not bool(diff.any()), f"{what}: {int(diff.sum())} differ, e.g. {fast[diff][:4]} vs {ref[diff][:4]}"


def hard_weights(out=24, n_in=200, seed=0) -> torch.Tensor:
    """Normal weights with an outlier, zeros, -0.0, subnormals and tiny rows mixed in."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(out, n_in, generator=g) * 0.02
    q = max(1, n_in // 5)
    w[3, min(17, n_in - 1)] = 0.4
    w[4, :q] = 0.0
    w[5, :q] = -0.0
    w[6, q:2 * q] = torch.randn(q, generator=g) * 1e-39  # float32 subnormals
    w[7] = torch.randn(n_in, generator=g) * 1e-30        # a tiny row: its scale hits the scale dtype's floor
    w[8, ::7] *= -1e3                                    # big values in one row
    return w


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.label} {s.scale_dtype.value}")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_every_spec_bit_for_bit_with_codes_and_scales(spec, dtype):
    w = hard_weights().to(dtype)
    ref = quantize(w, spec)
    ref_hat = dequantize(ref)
    for chunk in (1, 999, 1 << 17):
        w_hat, res = quantize_fast(w, spec, chunk, with_result=True)
        assert_same(w_hat, ref_hat, f"Ŵ chunk={chunk}")
        assert_same(res.codes, ref.codes, "codes")
        assert_same(res.scales, ref.scales, "scales")
        assert (res.zeros is None) == (ref.zeros is None)
        if ref.zeros is not None:
            assert_same(res.zeros, ref.zeros, "zeros")
        assert (res.scale_codes is None) == (ref.scale_codes is None)
        if ref.scale_codes is not None:
            assert_same(res.scale_codes, ref.scale_codes, "scale codes")
        assert res.tensor_scale == ref.tensor_scale and res.span == ref.span and res.dtype == ref.dtype
        assert_same(fake_quantize(w, spec, chunk_elements=chunk), ref_hat, "fake_quantize")
        # Without codes (explorer.analysis): a different path for 16-bit per-tensor weights (a table of all
        # 65536 bit patterns) and without the zero-span scale fix for symmetric formats.
        w_hat, res = quantize_fast(w, spec, chunk, with_result=True, codes=False)
        assert_same(w_hat, ref_hat, f"Ŵ without codes, chunk={chunk}")
        assert_same(res.scales, ref.scales, "scales without codes")
        assert res.codes.shape == ref.codes.shape and res.codes.dtype == ref.codes.dtype
        for name in ("zeros", "scale_codes"):
            a, b = getattr(res, name), getattr(ref, name)
            assert (a is None) == (b is None), name
            if b is not None:
                assert_same(a, b, f"{name} without codes")
        assert res.tensor_scale == ref.tensor_scale
        _check_sink(w, spec, chunk, ref, ref_hat)


def _check_sink(w, spec, chunk, ref, ref_hat):
    """With a sink: every chunk of rows in order, W and Ŵ (as stored in w's dtype) in float32, the rows' scales
    and zero points; nothing of W's size returned."""
    got = []
    keep = (lambda t: None if t is None else t.clone())  # the sink's buffers are reused
    none, res = quantize_fast(w, spec, chunk, with_result=True, codes=False,
                              sink=lambda r0, x, h, s, z, _: got.append((r0, x.clone(), h.clone(), s.clone(), keep(z))))
    assert none is None and res is not None
    assert_same(res.scales, ref.scales, "scales with a sink")
    starts = [g[0] for g in got]
    assert starts == sorted(starts) and starts[0] == 0 and len(got) > (chunk < w.numel())
    assert_same(torch.cat([g[1] for g in got]), w.float(), f"sink W, chunk={chunk}")
    assert_same(torch.cat([g[2] for g in got]), ref_hat.float(), f"sink Ŵ, chunk={chunk}")
    for r0, x, _, scales, zeros in got:
        rows = slice(r0, r0 + len(x)) if ref.scales.shape[0] > 1 else slice(0, 1)
        assert_same(scales, ref.scales[rows], "sink scales")
        assert (zeros is None) == (ref.zeros is None)
        if zeros is not None:
            assert_same(zeros, ref.zeros[rows], "sink zeros")


def _extremes(w: torch.Tensor, spec) -> tuple[torch.Tensor, torch.Tensor]:
    """W's min and max per span [out, n_spans] float32, by definition."""
    span = w.shape[1] if spec.granularity is Granularity.TENSOR else span_of(spec, w.shape[1])
    v = w.float().view(w.shape[0], -1, span)
    return v.amin(-1), v.amax(-1)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.label} {s.scale_dtype.value}")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_known_extremes_give_the_same_bits(spec, dtype):
    """Scales from W's known min and max per span (explorer.analysis passes its cached ones) instead of a pass:
    the same Ŵ, codes, scales, zero points and scale codes, with and without a sink."""
    w = hard_weights(n_in=192).to(dtype)  # spans divide the row
    ref = quantize(w, spec)
    ref_hat = dequantize(ref)
    ext = _extremes(w, spec)
    kept = [e.clone() for e in ext]
    for chunk in (999, 1 << 17):
        w_hat, res = quantize_fast(w, spec, chunk, with_result=True, extremes=ext)
        assert_same(w_hat, ref_hat, f"Ŵ chunk={chunk}")
        for name in ("codes", "scales", "zeros", "scale_codes"):
            a, b = getattr(res, name), getattr(ref, name)
            assert (a is None) == (b is None), name
            if b is not None:
                assert_same(a, b, name)
        assert res.tensor_scale == ref.tensor_scale
        got = []
        quantize_fast(w, spec, chunk, with_result=True, codes=False, extremes=ext,
                      sink=lambda r0, x, h, s, z, _: got.append(h.clone()))
        assert_same(torch.cat(got), ref_hat.float(), f"sink Ŵ, chunk={chunk}")
    assert all(torch.equal(a, b) for a, b in zip(ext, kept))  # not mutated


def test_extremes_of_the_wrong_shape_are_refused():
    w = hard_weights(n_in=192)
    lo, hi = _extremes(w, make_spec("int4", "group", 32))
    for bad in ((lo[:, :3], hi[:, :3]), (lo[:5], hi[:5]), (lo, hi[:, :2])):
        with pytest.raises(ValueError, match=r"do not fit W \(24, 192\) in spans of 32; allowed: two \[out, in"):
            quantize_fast(w, make_spec("int4", "group", 32), extremes=bad)
    with pytest.raises(ValueError, match=r"in spans of 32; allowed"):  # a padded last group has no such spans
        quantize_fast(hard_weights(n_in=200), make_spec("int4", "group", 32), extremes=(lo, hi))


def _around(values: torch.Tensor) -> torch.Tensor:
    """Each value and its float32 neighbours on either side."""
    up = torch.nextafter(values, torch.full_like(values, float("inf")))
    down = torch.nextafter(values, torch.full_like(values, -float("inf")))
    return torch.cat([values, up, down])


def boundary_weights(name: str, width: int, smallest: float = 0.0) -> torch.Tensor:
    """Rows of `width` weights: every midpoint between the format's grid values and every grid value, each with
    its float32 neighbours, both signs, and -0.0, 0.0 and +-1e-42 (those with 0 < |w| < smallest left out);
    padded with the grid's top value, so that a per-tensor fp32 scale is exactly 1."""
    fmt = FORMATS[name]
    top = fmt.max_value if fmt.kind is not Kind.INT else float(2 ** (fmt.bits - 1) - 1)
    grid = torch.tensor(fmt.grid, dtype=torch.float32)
    if fmt.kind is Kind.INT:
        grid = grid[grid >= -top]
    mids = (grid[1:] + grid[:-1]) / 2
    vals = torch.cat([_around(mids), _around(grid), -_around(mids), torch.tensor([top, -0.0, 0.0, 1e-42, -1e-42])])
    vals = vals[(vals.abs() <= top) & ((vals == 0) | (vals.abs() >= smallest))]
    return torch.cat([vals, torch.full(((-vals.numel()) % width,), top)]).reshape(-1, width)


@pytest.mark.parametrize("name", ["fp8_e4m3", "fp8_e5m2", "fp4_e2m1", "nf4", "int4", "int8", "int3"])
def test_ties_and_neighbours_of_every_decision_boundary(name):
    """With scale exactly 1 (fp32 scales, the grid's top value in W), W hits every midpoint between grid values
    (ties: to even for minifloats and integers, to the lower entry for code books) and its float32 neighbours."""
    w = boundary_weights(name, 8)
    spec = make_spec(name, "tensor", scale_dtype="fp32")
    ref = quantize(w, spec)
    assert float(ref.scales) == 1.0
    w_hat, res = quantize_fast(w, spec, with_result=True)
    assert_same(w_hat, dequantize(ref), "Ŵ")
    assert_same(res.codes, ref.codes, "codes")


@pytest.mark.parametrize("name", ["mxfp4", "mxfp8", "mxint8", "nvfp4"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_block_formats_at_saturation_ties_and_underflow(name, dtype):
    """MX blocks whose largest element lands anywhere in [1, 2) of its binade (MX saturates values in (6, 8)
    for FP4), exact ties after the power-of-two scale, NVFP4 blocks far below the tensor's largest (their
    E4M3 scale underflows to 0), and MX blocks whose scale is 2^-127 or just above (MXINT8 then cannot fold
    its factor 64 into the reciprocal scale: 2^133 overflows)."""
    g = torch.Generator().manual_seed(3)
    block = FORMATS[name].block_size
    rows = []
    for top in (4.0, 6.0, 6.5, 7.0, 7.999, 1.0, 1.75):
        r = torch.randn(block, generator=g)
        r = r / r.abs().max() * top
        r[1:8] = torch.tensor([0.25, 0.75, 2.5, 3.5, 5.0, -5.0, -0.0])  # FP4 ties (scale 2^0 or 2^-1 here)
        rows.append(r)
    w = torch.stack(rows).repeat(1, 2) * 2.0 ** -3
    w = torch.cat([w, w * 1e-30, w * 2.0 ** 100])  # NVFP4: the first rows' blocks underflow to scale 0
    if name != "nvfp4":  # (NVFP4 would lose them all to scale 0)
        w = torch.cat([w, w[:7] * 2.0 ** -122, w[:7] * 2.0 ** -118])  # scales 2^-127 .. 2^-119
    w = w.to(dtype)
    ref = quantize(w, make_spec(name))
    if name == "nvfp4":
        assert bool((ref.scales == 0).any())  # the case is really exercised
    else:
        assert float(ref.scales.min()) <= 2.0 ** -122
    for chunk in (7, 1 << 17):
        w_hat, res = quantize_fast(w, make_spec(name), chunk, with_result=True)
        assert_same(w_hat, dequantize(ref), "Ŵ")
        assert_same(res.codes, ref.codes, "codes")
        assert_same(res.scales, ref.scales, "scales")
        assert_same(res.scale_codes, ref.scale_codes, "scale codes")
        assert_same(fake_quantize(w, make_spec(name), chunk), dequantize(ref), "fake_quantize")


@pytest.mark.parametrize("n_in,group", [(200, 64), (33, 32), (130, 128), (7, 7)])
def test_padded_last_group_and_non_contiguous_input(n_in, group):
    w = hard_weights(out=17, n_in=n_in, seed=n_in)
    wt = w.T.contiguous().T  # same values, column-major
    for name in ("int4", "nf4", "fp4_e2m1", "fp8_e4m3"):
        spec = make_spec(name, "group", group)
        ref = dequantize(quantize(w, spec))
        assert_same(fake_quantize(wt, spec, chunk_elements=100), ref, f"{name} g{group}")
    assert torch.equal(wt, w)  # never mutated


@pytest.mark.parametrize("bad_value", [float("nan"), float("inf"), -float("inf")])
def test_fp8_input_dtype_and_nan_anywhere(bad_value):
    w = hard_weights().to(torch.float8_e4m3fn)
    spec = make_spec("nf4")
    assert_same(fake_quantize(w, spec), dequantize(quantize(w, spec)), "fp8 input")
    specs = [make_spec(n) for n in format_names()] + [make_spec("int4", "group", 32, symmetric=False),
                                                       make_spec("int8", "tensor"), make_spec("nf4", "channel")]
    for spec in specs:
        for dtype in (torch.float32, torch.bfloat16):
            for where in ((-1, -1), (0, 0), (9, 100)):
                bad = hard_weights()
                bad[where] = bad_value
                with pytest.raises(ValueError, match="NaN or Inf"):
                    fake_quantize(bad.to(dtype), spec, chunk_elements=300)


def test_codebook_cell_edges_and_their_neighbours():
    """Every edge of the code book's cell grid ((j + 1/2) 2^-p, where the cell rounding ties), its float32
    neighbours, and the boundaries', scaled by 1 (fp32 scales, the book's top value in W)."""
    book = codebook_tables(FORMATS["nf4"].grid, torch.device("cpu"))
    edges = (torch.arange(-40, 40, dtype=torch.float32) + 0.5) * book.step
    grid = torch.tensor(FORMATS["nf4"].grid)
    vals = torch.cat([_around(edges), _around((grid[1:] + grid[:-1]) / 2), torch.tensor([1.0, -0.0])])
    vals = vals[vals.abs() <= 1]
    w = torch.cat([vals, torch.ones((-vals.numel()) % 8)]).reshape(-1, 8)
    spec = make_spec("nf4", "tensor", scale_dtype="fp32")
    ref = quantize(w, spec)
    assert float(ref.scales) == 1.0
    w_hat, res = quantize_fast(w, spec, 64, with_result=True)
    assert_same(w_hat, dequantize(ref), "Ŵ")
    assert_same(res.codes, ref.codes, "codes")
    for dtype in (torch.float32, torch.bfloat16):  # per group and per channel, the cells see y = x / scale
        for gran in ("group", "channel"):
            spec = make_spec("nf4", gran, 8)
            assert_same(fake_quantize(w.to(dtype), spec, 64), dequantize(quantize(w.to(dtype), spec)), gran)


def test_minifloat_table_matches_torch_float8_and_the_fp4_grid():
    for name, (mant, emin, fmax, _) in MINIFLOATS.items():
        grid = FORMATS[name].grid
        assert max(grid) == fmax
        smallest_normal = min(v for v in grid if v > 0 and v >= 2.0 ** emin)
        assert smallest_normal == 2.0 ** emin
        assert min(v for v in grid if v > 0) == 2.0 ** (emin - mant)  # the subnormal step


def test_codebook_cells_hold_at_most_one_boundary():
    grid = FORMATS["nf4"].grid
    book = codebook_tables(grid, torch.device("cpu"))
    cells = book.boundary.numel()
    assert cells <= 256 and int(torch.isfinite(book.boundary).sum()) == len(grid) - 1
    assert torch.equal(torch.tensor(grid)[book.code.long()], book.value)  # value and code tables agree
    offset = struct.unpack("<i", struct.pack("<f", 1.0))[0] >> book.shift  # where a 1.0 (above) moves an index
    assert offset >= cells and book.value.numel() == offset + cells
    # Each cell's entry, below and above its boundary, is the reference's: bucketize just inside the cell.
    mids = (torch.tensor(grid[1:]) + torch.tensor(grid[:-1])) / 2
    half = cells // 2
    for j in range(-half, half + 1):
        centre = torch.tensor([j * book.step], dtype=torch.float32)
        b = float(book.boundary[j + half])
        if b == float("inf"):
            assert int(book.code[j + half]) == int(torch.bucketize(centre, mids))
        else:
            below, above = torch.tensor([b]), torch.nextafter(torch.tensor([b]), torch.tensor([2.0]))
            assert int(book.code[j + half]) == int(torch.bucketize(below, mids))
            assert int(book.code[offset + j + half]) == int(torch.bucketize(above, mids))
    assert 1.5 * max(abs(v) for v in grid) < book.cover  # |y| < 1.5 top: no clamp ever (_ScalePlan.unbounded)


# ---- explorer.analysis: the fused chunk loop against the straightforward whole-tensor definitions ----

def _straightforward_analysis(w, spec):
    """The definitions of LayerAnalysis, computed on whole tensors in float64 where it matters."""
    import torch.nn.functional as F

    from explorer.analysis import REL_LOG10_RANGE, code_space
    from explorer.histogram import fixed_histogram, histogram
    result = quantize(w, spec)
    w_hat = dequantize(result)
    wf = w.float()
    err = w_hat.float() - wf
    nz = (wf != 0) & (err != 0)
    rel, _ = fixed_histogram(torch.log10(err[nz].abs() / wf[nz].abs()), *REL_LOG10_RANGE, bins=160)
    y, _ = code_space(w, result)
    fy, fx = -(-w.shape[0] // 192), -(-w.shape[1] // 192)
    pool = lambda a: F.max_pool2d(a[None, None], (fy, fx), (fy, fx), ceil_mode=True)[0, 0].numpy()
    x, xh = w.double(), w_hat.double()
    e64 = xh - x
    return {"weight": histogram(wf).counts, "scaled": histogram(y, 512).counts, "error": histogram(err).counts,
            "rel": rel, "row": (e64 ** 2).mean(1).numpy(), "col": (e64 ** 2).mean(0).numpy(),
            "wpool": pool(wf.abs()), "epool": pool(err.abs()), "exact": float((err == 0).double().mean()),
            "sig": float((x * x).sum()), "noise": float((e64 * e64).sum()), "max": float(e64.abs().max()),
            "cos": float((x * xh).sum() / (x.norm() * xh.norm())),
            "zeroed": float(((w_hat == 0) & (w != 0)).double().mean())}


@pytest.mark.parametrize("spec", [make_spec("int4", "group", 48), make_spec("int3", "channel", symmetric=False),
                                  make_spec("nf4"), make_spec("mxfp4"), make_spec("nvfp4"),
                                  make_spec("fp8_e4m3", "tensor"), make_spec("int8", "tensor", symmetric=False)],
                         ids=lambda s: s.label)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_analysis_equals_the_whole_tensor_definitions(spec, dtype):
    import numpy as np

    from explorer.analysis import analyze_layer
    w = hard_weights(out=401, n_in=200, seed=5).to(dtype)  # 401 rows: blocks and pooling windows do not divide
    w[9, 3] = 3.0  # clips under MX / per-tensor scales
    a, ref = analyze_layer(w, spec), _straightforward_analysis(w, spec)
    for name, h in (("weight", a.weight_hist), ("scaled", a.scaled_hist), ("error", a.error_hist)):
        assert np.array_equal(h.counts, ref[name]), name  # exact, same range
    assert np.array_equal(a.rel_counts, ref["rel"])
    np.testing.assert_allclose(a.row_mse, ref["row"], rtol=1e-5, atol=1e-30)
    np.testing.assert_allclose(a.col_mse, ref["col"], rtol=1e-5, atol=1e-30)
    assert np.array_equal(a.w_pooled, ref["wpool"]) and np.array_equal(a.err_pooled, ref["epool"])
    m = a.metrics
    assert a.exact_frac == ref["exact"] and m.max_abs_error == ref["max"] and m.zeroed_frac == ref["zeroed"]
    assert m.mse == pytest.approx(ref["noise"] / w.numel(), rel=1e-6)
    assert m.rel_error == pytest.approx((ref["noise"] / ref["sig"]) ** 0.5, rel=1e-6)
    assert m.cosine == pytest.approx(ref["cos"], rel=0, abs=2e-7)  # float32 products: ~1e-8 relative each
