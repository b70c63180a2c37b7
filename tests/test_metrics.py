"""Metrics against hand-computed values and their definitions."""
import math

import pytest
import torch

from explorer import make_spec
from explorer.metrics import channel_errors, clipped_mask, output_rel_error, weight_metrics
from explorer.quantize import dequantize, quantize


def test_hand_computed_metrics():
    w = torch.tensor([[1.0, -1.0, 0.5, 0.26]])
    r = quantize(w, make_spec("int2", "tensor", scale_dtype="fp32"))  # scale 1: levels -1, 0, 1
    m = weight_metrics(w, r)
    w_hat = torch.tensor([[1.0, -1.0, 0.0, 0.0]])  # 0.5 rounds half to even -> 0
    assert torch.equal(dequantize(r), w_hat)
    noise = 0.5 ** 2 + 0.26 ** 2
    sig = 1 + 1 + 0.25 + 0.26 ** 2
    assert m.mse == pytest.approx(noise / 4)
    assert m.rel_error == pytest.approx(math.sqrt(noise / sig))
    assert m.sqnr_db == pytest.approx(10 * math.log10(sig / noise))
    assert m.max_abs_error == pytest.approx(0.5)
    assert m.cosine == pytest.approx(2 / (math.sqrt(sig) * math.sqrt(2)))
    assert m.zeroed_frac == pytest.approx(0.5)
    assert m.clipped_frac == 0.0
    assert m.bits_per_weight == pytest.approx(2 + 32 / 4)


def test_exact_quantization_has_infinite_sqnr():
    w = torch.tensor([[127.0, -127.0, 0.0, 3.0]])  # scale exactly 1
    m = weight_metrics(w, quantize(w, make_spec("int8", "tensor")))
    assert m.sqnr_db == math.inf and m.rel_error == 0 and m.cosine == pytest.approx(1.0)


def test_clipping_is_counted_for_mx_saturation():
    # MXFP4: a block max of 7.9 lies in [4, 8): scale 1, so 7.9 saturates at 6 (beyond 6 + half a step of 2).
    w = torch.zeros(1, 32)
    w[0, 0], w[0, 1], w[0, 2] = 7.9, 6.5, 1.0
    r = quantize(w, make_spec("mxfp4"))
    mask = clipped_mask(w, r)
    assert mask[0, 0] and not mask[0, 1] and not mask[0, 2]
    assert weight_metrics(w, r).clipped_frac == pytest.approx(1 / 32)


def test_absmax_scaling_never_clips():
    w = torch.randn(64, 256, generator=torch.Generator().manual_seed(0))
    for spec in (make_spec("int4"), make_spec("int8", "tensor"), make_spec("nf4"), make_spec("fp8_e5m2")):
        assert weight_metrics(w, quantize(w, spec)).clipped_frac == 0.0


def test_channel_errors_shapes_and_values():
    w = torch.zeros(3, 4)
    w_hat = torch.zeros(3, 4)
    w_hat[1, 2] = 2.0
    rows, cols = channel_errors(w, w_hat)
    assert rows.tolist() == [0, 1.0, 0] and cols.tolist() == pytest.approx([0, 0, 4 / 3, 0])


def test_output_error_definition_and_chunking():
    g = torch.Generator().manual_seed(1)
    x, w = torch.randn(50, 8, generator=g), torch.randn(4, 8, generator=g)
    w_hat = w + 0.01 * torch.randn(4, 8, generator=g)
    ref = float((x @ w.T - x @ w_hat.T).norm() / (x @ w.T).norm())
    assert output_rel_error(x, w, w_hat) == pytest.approx(ref, rel=1e-5)
    assert output_rel_error(x, w, w_hat, chunk=7) == pytest.approx(ref, rel=1e-5)
    with pytest.raises(ValueError, match=r"activations of shape \(50, 8\) do not fit W \(4, 9\)"):
        output_rel_error(x, torch.ones(4, 9), torch.ones(4, 9))


def test_metric_sums_from_row_sums_equal_the_direct_sums():
    from explorer.metrics import MetricSums
    g = torch.Generator().manual_seed(3)
    w = torch.randn(64, 300, generator=g) * 0.05
    spec = make_spec("int4", "group", 32)
    w_hat = dequantize(quantize(w, spec))
    err = w_hat - w
    direct, rows = MetricSums(), MetricSums()
    direct.add(w, w_hat, err, (err * err).sum(1), 3, 5)
    rows.add_rows((w * w).sum(1).double(), (w * w_hat).sum(1).double(), (w_hat * w_hat).sum(1).double(),
                  (err * err).sum(1).double(), w.numel(), float(err.abs().max()), 3, 5)
    a, b = direct.metrics(spec, tuple(w.shape)), rows.metrics(spec, tuple(w.shape))
    for name, value in a.as_dict().items():
        assert getattr(b, name) == pytest.approx(value, rel=1e-6, abs=1e-12), name
    assert (b.max_abs_error, b.clipped_frac, b.zeroed_frac) == (a.max_abs_error, a.clipped_frac, a.zeroed_frac)
    assert b.cosine == pytest.approx(a.cosine, abs=2e-7)


def test_metrics_of_weights_far_beyond_the_scale_range_are_finite_and_right():
    """Weights of ~1e12 under FP16 scales (largest 65504) clip to ~5e5: Ŵ is ~1e-7 of W, where sums of W Ŵ and
    Ŵ^2 derived from W^2 would cancel to noise (a negative sum of squares once raised a math domain error)."""
    from explorer.analysis import analyze_layer
    g = torch.Generator().manual_seed(4)
    w = torch.randn(40, 256, generator=g) * 1e12
    spec = make_spec("int4", "group", 32)
    w_hat = dequantize(quantize(w, spec)).double()
    wd = w.double()
    cos = float((wd * w_hat).sum() / (wd.norm() * w_hat.norm()))
    m = analyze_layer(w, spec).metrics
    assert 0.5 < cos < 1 and m.cosine == pytest.approx(cos, abs=1e-6)
    assert m.rel_error == pytest.approx(float((w_hat - wd).norm() / wd.norm()), rel=1e-6)


@pytest.mark.parametrize("scale", [1e-25, 1e-12, 1e20])
def test_weight_metrics_of_tiny_and_huge_weights_follow_their_definitions(scale):
    """Squares of 1e-25 underflow float32 (a layer zeroed by FP16 scales once showed relative error 0 and SQNR
    inf) and row sums of 1e20^2 overflow it: such layers are summed in float64."""
    from explorer.analysis import analyze_layer
    from explorer.metrics import weight_metrics
    g = torch.Generator().manual_seed(5)
    w = torch.randn(48, 256, generator=g) * scale
    spec = make_spec("int4", "group", 32)
    r = quantize(w, spec)
    wd, hd = w.double(), dequantize(r).double()
    e = hd - wd
    want = dict(rel_error=float(e.norm() / wd.norm()), mse=float((e * e).mean()),
                cosine=float((wd * hd).sum() / (wd.norm() * hd.norm())) if float(hd.norm()) > 0 else 0.0)
    for m in (weight_metrics(w, r), analyze_layer(w, spec).metrics):
        for name, value in want.items():
            assert getattr(m, name) == pytest.approx(value, rel=1e-6, abs=1e-7 if name == "cosine" else 0), name
