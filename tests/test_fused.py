"""explorer.fused: the numba chunk reduction against the torch path and against float64 sums of the exact error."""
import numpy as np
import pytest
import torch

from explorer import analysis_blocks as B
from explorer import fused
from explorer.analysis import analyze_layer, weight_stats
from explorer.fast_paths import quantize_fast
from explorer.formats import make_spec, usual_spec
from explorer.quantize import dequantize, quantize, span_of

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
    assert fused.available(torch.zeros(1)), "numba is missing or failed to compile explorer.fused_kernels"


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


@pytest.mark.parametrize("spec", [usual_spec("int4"), usual_spec("mxfp4")], ids=lambda s: s.label)
def test_analyze_layer_same_with_and_without_the_kernel(spec):
    w = _w((300, 512), torch.bfloat16, seed=1)
    x = torch.randn(64, 512, generator=torch.Generator().manual_seed(2))
    stats = weight_stats(w, x)
    a, b = (analyze_layer(w, spec, x, stats=stats, fused=f) for f in (True, False))
    assert np.array_equal(a.err_pooled, b.err_pooled) and a.exact_frac == b.exact_frac
    for name in ("rel_error", "sqnr_db", "cosine", "max_abs_error", "clipped_frac", "zeroed_frac"):
        assert getattr(a.metrics, name) == pytest.approx(getattr(b.metrics, name), rel=1e-5), name
    assert a.output_error == pytest.approx(b.output_error, rel=1e-6)
    np.testing.assert_allclose(a.row_mse, b.row_mse, rtol=1e-5)
    np.testing.assert_allclose(a.col_mse, b.col_mse, rtol=1e-5)


def test_no_numba_falls_back_to_torch(monkeypatch):
    w = _w((64, 256), torch.float32)
    want = analyze_layer(w, usual_spec("int4"))
    monkeypatch.setattr(fused, "_kernels", lambda: None)
    assert not fused.available(w)
    got = analyze_layer(w, usual_spec("int4"))
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
