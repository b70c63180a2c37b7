"""SmoothQuant: X' W'^T == X W^T before quantization, the published scale formula, shared weights, less
activation and W8A8 output error on outlier data (synthetic and real), error paths."""
from __future__ import annotations

import math

import pytest
import torch

from explorer import samples
from explorer.formats import make_spec
from explorer.methods import smoothquant
from explorer.methods.smoothquant import channel_error, smoothing_scales, w8a8_error
from explorer.quantize import fake_quantize

torch.set_num_threads(1)


def layer(seed: int = 0, out: int = 32, n_in: int = 64, tokens: int = 200, outliers=(3, 40)):
    """W [out, in] ~ N(0, 0.02^2) and X [tokens, in] ~ N(0, 1) with planted outlier input channels x60."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(out, n_in, generator=g) * 0.02
    x = torch.randn(tokens, n_in, generator=g)
    x[:, list(outliers)] *= 60.0
    return w, x


def test_smoothing_leaves_the_product_unchanged():
    w, x = layer(1)
    r = smoothquant(w, x)
    ref = x.double() @ w.double().T
    got = r.x_smooth.double() @ r.w_smooth.double().T
    assert float((got - ref).norm() / ref.norm()) < 1e-6
    assert r.x_smooth.shape == x.shape and r.w_smooth.shape == w.shape


def test_scales_follow_the_published_formula():
    w, x = layer(2)
    for alpha in (0.0, 0.5, 0.85, 1.0):
        r = smoothquant(w, x, alpha=alpha)
        want = x.abs().amax(0).double() ** alpha / w.abs().amax(0).double() ** (1 - alpha)
        torch.testing.assert_close(r.scales.double(), want.clamp(min=1e-5), rtol=1e-5, atol=0)
        assert r.alpha == alpha
    # a silent input channel and an all-zero weight column are floored, not divided by zero
    x0, w0 = x.clone(), w.clone()
    x0[:, 7] = 0.0
    w0[:, 9] = 0.0
    s = smoothing_scales(x0, [w0])
    assert s[7] == pytest.approx(1e-5) and bool(torch.isfinite(s).all())


def test_shared_weights_enter_the_weight_maximum():
    w, x = layer(3)
    other = w.clone()
    other[:, 10] *= 100.0
    alone, shared = smoothquant(w, x), smoothquant(w, x, shared=[other])
    assert shared.scales[10] < alone.scales[10]
    mask = torch.ones(64, dtype=torch.bool)
    mask[10] = False
    assert torch.equal(shared.scales[mask], alone.scales[mask])


def test_outlier_activations_get_easier_to_quantize():
    w, x = layer(4)
    r = smoothquant(w, x)
    assert r.act_error_after < 0.5 * r.act_error_before
    assert r.output_error_after < 0.5 * r.output_error_before
    assert r.act_spec.label == "int8 per-tensor" and r.weight_spec.label == "int8 per-channel"
    # the W8A8 error, recomputed independently
    qx, qw = fake_quantize(x, r.act_spec), fake_quantize(w, r.weight_spec)
    ref = x.double() @ w.double().T
    want = float((ref - qx.double() @ qw.double().T).norm() / ref.norm())
    assert r.output_error_before == pytest.approx(want, rel=1e-5)
    assert w8a8_error(x, w, qx, qw) == pytest.approx(want, rel=1e-5)
    per_channel = (x - qx).norm(dim=0) / x.norm(dim=0)
    assert r.act_error_before == pytest.approx(float(per_channel.mean()), rel=1e-5)
    assert channel_error(x, qx) == pytest.approx(float(per_channel.mean()), rel=1e-5)


def test_no_outliers_means_little_to_gain():
    w, x = layer(5, outliers=())
    r = smoothquant(w, x)
    assert r.output_error_after < 2 * r.output_error_before and math.isfinite(r.output_error_after)


def _has(model, name):
    """True when the sample Linear and its weight and input files are present."""
    try:
        files = all((samples.SAMPLE_DIR / model / f).is_file() for f in ("weights.safetensors", "inputs.safetensors"))
        return files and name in samples.linear_names(model)
    except (FileNotFoundError, ValueError):
        return False


@pytest.mark.skipif(not _has("minilm", "encoder.layer.5.intermediate.dense"), reason="MiniLM sample not built")
def test_real_minilm_outlier_channels():
    name = "encoder.layer.5.intermediate.dense"
    w = samples.load_weight("minilm", name).float()
    x = samples.load_inputs("minilm", name).float()
    r = smoothquant(w, x)
    assert r.act_error_after < r.act_error_before
    assert r.output_error_after < r.output_error_before


def test_inputs_are_not_mutated_and_dtypes_are_kept():
    w, x = layer(6)
    w16, x16 = w.half(), x.bfloat16()
    w0, x0 = w16.clone(), x16.clone()
    r = smoothquant(w16, x16)
    assert torch.equal(w16, w0) and torch.equal(x16, x0)
    assert r.w_smooth.dtype == torch.float16 and r.x_smooth.dtype == torch.bfloat16


def test_error_paths():
    w, x = layer(7)
    with pytest.raises(ValueError, match="alpha=1.5 is not allowed"):
        smoothquant(w, x, alpha=1.5)
    with pytest.raises(ValueError, match="has 63 input channels"):
        smoothquant(w, x[:, :63])
    with pytest.raises(ValueError, match=r"shared\[0\] has 32 inputs"):
        smoothquant(w, x, shared=[w[:, :32]])
    with pytest.raises(ValueError, match="act_spec must be a QuantSpec"):
        smoothquant(w, x, act_spec="int8")
    with pytest.raises(ValueError, match="dtype torch.int64"):
        smoothquant(w, x.long())
    with pytest.raises(ValueError, match="holds no tokens"):
        smoothquant(w, x[:0])
    with pytest.raises(ValueError, match="weight_spec must be a QuantSpec"):
        smoothquant(w, x, weight_spec=make_spec)
