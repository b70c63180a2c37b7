"""AWQ: alpha = 0 is RTN, the chosen alpha is the argmin of the returned curve, losses match an independent
computation, planted outliers and SmolLM2's massive activations are protected, shared-input groups, clip search,
error paths."""
from __future__ import annotations

import pytest
import torch

from explorer import samples
from explorer.formats import make_spec
from explorer.methods import awq_search, awq_search_group
from explorer.methods.awq import apply_clip, awq_scales, clip_search
from explorer.methods.common import fast_matmul_dtype
from explorer.metrics import output_rel_error
from explorer.quantize import dequantize, fake_quantize

torch.set_num_threads(1)

INT4_G32 = make_spec("int4", "group", 32, symmetric=False)


def layer(seed: int = 0, out: int = 48, n_in: int = 96, tokens: int = 256, outliers=(5, 17, 60)):
    """W [out, in] ~ N(0, 0.02^2) and X [tokens, in] ~ N(0, 1) with a few planted outlier input channels x30."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(out, n_in, generator=g) * 0.02
    x = torch.randn(tokens, n_in, generator=g)
    x[:, list(outliers)] *= 30.0
    return w, x


def mse(x, w, w_hat) -> float:
    return float((x.double() @ (w.double() - w_hat.double()).T).square().mean())


def test_alpha_zero_is_rtn_exactly():
    w, x = layer(1)
    r = awq_search(w, x, INT4_G32, n_grid=1)
    assert r.alphas == (0.0,) and r.alpha == 0.0
    assert torch.equal(r.scales, torch.ones(96))
    assert torch.equal(r.w_hat, fake_quantize(w, INT4_G32))
    full = awq_search(w, x, INT4_G32)
    assert full.losses[0] == full.rtn_loss
    assert full.rtn_loss == pytest.approx(mse(x, w, fake_quantize(w, INT4_G32)), rel=1e-4)


def test_alpha_is_argmin_of_the_returned_curve_and_losses_are_real():
    w, x = layer(2)
    r = awq_search(w, x, INT4_G32, grid_dtype=torch.float32)
    assert r.grid_dtype == torch.float32
    assert len(r.alphas) == 20 and r.alphas[0] == 0.0 and r.alphas[-1] == 1.0
    assert r.alphas == pytest.approx(torch.linspace(0, 1, 20).tolist())
    best = min(range(20), key=lambda i: r.losses[i])
    assert r.alpha == r.alphas[best] and 0.0 < r.alpha < 1.0
    # the loss of the returned w_hat, computed independently in float64
    assert r.loss == pytest.approx(mse(x, w, r.w_hat), rel=1e-4)
    assert r.losses[best] == pytest.approx(r.loss, rel=1e-6)
    # every grid point, recomputed from the published formula
    for i in (3, 11, 19):
        s = x.abs().mean(0).pow(r.alphas[i]).clamp(min=1e-4)
        s = s / (s.max() * s.min()).sqrt()
        assert r.losses[i] == pytest.approx(mse(x, w, fake_quantize(w * s, INT4_G32) / s), rel=1e-4)


@pytest.mark.parametrize("tokens", [64, 256])  # X D^T through X (tokens < in) and through the Gram matrix
def test_bfloat16_grid_ranks_like_float32(tokens):
    w, x = layer(7, tokens=tokens)
    fast = awq_search(w, x, INT4_G32, grid_dtype=torch.bfloat16)
    exact = awq_search(w, x, INT4_G32, grid_dtype=torch.float32)
    assert fast.grid_dtype == torch.bfloat16
    assert fast.losses == pytest.approx(exact.losses, rel=5e-3)
    assert fast.alpha == exact.alpha and torch.equal(fast.w_hat, exact.w_hat)
    # RTN's point, the chosen one and the final loss are re-measured in float32
    best = exact.alphas.index(exact.alpha)
    assert fast.rtn_loss == exact.rtn_loss and fast.losses[best] == exact.losses[best]
    assert fast.loss == exact.loss


def test_default_grid_dtype_follows_the_machine_and_the_size():
    w, x = layer(8)
    assert awq_search(w, x, INT4_G32).grid_dtype == torch.float32  # small: exact, and fast anyway
    big = awq_search(torch.randn(512, 1024) * 0.02, torch.randn(512, 1024), INT4_G32, n_grid=2)
    assert big.grid_dtype == fast_matmul_dtype(torch.device("cpu"))
    with pytest.raises(ValueError, match="grid_dtype=torch.float16 is not allowed"):
        awq_search(w, x, INT4_G32, grid_dtype=torch.float16)


def test_scales_fold_back_and_quant_result_is_of_the_scaled_weight():
    w, x = layer(3)
    r = awq_search(w.to(torch.bfloat16), x, INT4_G32)
    assert r.w_hat.dtype == torch.bfloat16 and r.w_hat.shape == w.shape
    s = r.scales
    assert float(s.max() * s.min()) == pytest.approx(1.0, rel=1e-5)  # normalised by sqrt(max * min)
    torch.testing.assert_close(s, awq_scales(x.abs().mean(0), r.alpha))
    assert torch.equal(dequantize(r.quant).float(), fake_quantize(w.to(torch.bfloat16).float() * s, INT4_G32))
    assert torch.equal(r.w_hat, (dequantize(r.quant).float() / s).to(torch.bfloat16))


def test_planted_outliers_are_protected():
    w, x = layer(4, outliers=(2, 50, 90))
    r = awq_search(w, x, INT4_G32)
    assert r.loss < 0.6 * r.rtn_loss
    assert set(r.scales.topk(3).indices.tolist()) == {2, 50, 90}


def _has_sample(model, name):
    """True when the sample Linear and its weight and input files are present."""
    try:
        files = all((samples.SAMPLE_DIR / model / f).is_file() for f in ("weights.safetensors", "inputs.safetensors"))
        return files and name in samples.linear_names(model)
    except (FileNotFoundError, ValueError):
        return False


@pytest.mark.skipif(not _has_sample("smollm2", "blocks.11.down"), reason="SmolLM2 sample not built")
def test_awq_beats_rtn_on_smollm2_massive_activations():
    spec = make_spec("int4", "group", 128, symmetric=False)
    w = samples.load_weight("smollm2", "blocks.11.down").float()
    x = samples.load_inputs("smollm2", "blocks.11.down").float()
    k = x.shape[0] * 3 // 4
    r = awq_search(w, x[:k], spec)
    exact = awq_search(w, x[:k], spec, grid_dtype=torch.float32)
    # massive activations dominate single outputs, so bfloat16 rounding averages less: 0.5% measured
    assert r.alpha == exact.alpha and r.losses == pytest.approx(exact.losses, rel=1e-2)
    assert r.rtn_loss == exact.rtn_loss and r.loss == exact.loss
    rtn = output_rel_error(x[k:], w, fake_quantize(w, spec))
    assert output_rel_error(x[k:], w, r.w_hat) < 0.5 * rtn  # held out; measured about 0.05x
    assert r.loss < 0.1 * r.rtn_loss


def test_shared_input_group_uses_one_scale_for_all():
    g = torch.Generator().manual_seed(5)
    _, x = layer(5)
    weights = [(n, torch.randn(o, 96, generator=g) * 0.02) for n, o in (("q", 48), ("k", 16), ("v", 16))]
    r = awq_search_group(weights, x, INT4_G32)
    assert r.names == ("q", "k", "v") and len(r.layers) == 3
    best = min(range(20), key=lambda i: r.losses[i])
    assert r.alpha == r.alphas[best]
    s = r.scales
    for (name, w), lay in zip(weights, r.layers):
        assert lay.name == name and r.layer(name) is lay
        assert torch.equal(lay.w_hat, fake_quantize(w * s, INT4_G32) / s)
        assert lay.loss == pytest.approx(mse(x, w, lay.w_hat), rel=1e-4)
    # the group's MSE is that of the concatenated outputs
    w_all = torch.cat([w for _, w in weights])
    w_hat_all = torch.cat([lay.w_hat for lay in r.layers])
    assert r.loss == pytest.approx(mse(x, w_all, w_hat_all), rel=1e-4)
    for i in (0, 7):
        parts = sum(lay.losses[i] * w.shape[0] for (_, w), lay in zip(weights, r.layers)) / 80
        assert r.losses[i] == pytest.approx(parts, rel=1e-9)
    with pytest.raises(ValueError, match="no Linear 'o'"):
        r.layer("o")


@pytest.mark.skipif(not _has_sample("smollm2", "blocks.11.q"), reason="SmolLM2 sample not built")
def test_real_qkv_group_shares_scales():
    names = ("blocks.11.q", "blocks.11.k", "blocks.11.v")
    weights = [(n, samples.load_weight("smollm2", n).float()) for n in names]
    x = samples.load_inputs("smollm2", names[0]).float()
    r = awq_search_group(weights, x, make_spec("int4", "group", 128, symmetric=False))
    assert r.loss < r.rtn_loss
    assert all(lay.loss <= lay.rtn_loss * 1.05 for lay in r.layers)


def test_clip_search_keeps_the_best_threshold_per_span():
    w, x = layer(6)
    t = clip_search(w, x, INT4_G32, n_tokens=64)
    amax = w.abs().reshape(48, 3, 32).amax(-1)
    ratio = t / amax
    assert t.shape == (48, 3) and bool((ratio <= 1).all()) and bool((ratio >= 0.55 - 1e-6).all())
    assert bool((ratio < 1).any())  # INT4 clips some spans
    clipped = apply_clip(w, t, INT4_G32)
    assert bool((clipped.abs().reshape(48, 3, 32) <= t.unsqueeze(-1)).all())
    # each span's partial output error on the strided tokens is no worse than without clipping
    xs = x[::4]

    def span_err(w_q):
        d = (w - w_q).reshape(48, 3, 32)
        return torch.einsum("tgk,ogk->otg", xs.reshape(-1, 3, 32), d).square().mean(1)

    assert bool((span_err(fake_quantize(clipped, INT4_G32)) <= span_err(fake_quantize(w, INT4_G32)) + 1e-12).all())
    r = awq_search(w, x, INT4_G32, clip=True)
    assert r.clip_max is not None and r.loss == pytest.approx(mse(x, w, r.w_hat), rel=1e-4)
    tensor = clip_search(w, x, make_spec("int4", "tensor"))
    assert tensor.unique().numel() == 1  # one threshold for a per-tensor scale


def test_inputs_are_not_mutated():
    w, x = layer(7)
    w0, x0 = w.clone(), x.clone()
    awq_search(w, x, INT4_G32, clip=True)
    assert torch.equal(w, w0) and torch.equal(x, x0)


def test_error_paths():
    w, x = layer(8)
    with pytest.raises(ValueError, match="has 95 input channels"):
        awq_search(w, x[:, :95], INT4_G32)
    with pytest.raises(ValueError, match="has 1 dimension"):
        awq_search(w, x[0], INT4_G32)
    bad = x.clone()
    bad[0, 0] = float("inf")
    with pytest.raises(ValueError, match="NaN or Inf"):
        awq_search(w, bad, INT4_G32)
    with pytest.raises(ValueError, match="n_grid=0 is not allowed"):
        awq_search(w, x, INT4_G32, n_grid=0)
    with pytest.raises(ValueError, match="non-empty list"):
        awq_search_group([], x, INT4_G32)
    with pytest.raises(ValueError, match="repeat a name"):
        awq_search_group([("a", w), ("a", w)], x, INT4_G32)
    with pytest.raises(ValueError, match="equal in_features"):
        awq_search_group([("a", w), ("b", w[:, :64])], x, INT4_G32)
    with pytest.raises(ValueError, match="max_shrink=1.5 is not allowed"):
        awq_search(w, x, INT4_G32, clip=True, max_shrink=1.5)
    with pytest.raises(ValueError, match="group_size=128 is larger than the row"):
        awq_search(w, x, make_spec("int4", "group", 128))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_awq_follows_the_weight_device():
    w, x = layer(9)
    r = awq_search(w.cuda(), x, INT4_G32, clip=True)  # X is moved to W's device
    cpu = awq_search(w, x, INT4_G32, clip=True)
    assert r.w_hat.device.type == "cuda" and r.scales.device.type == "cuda"
    assert r.alpha == cpu.alpha and r.losses == pytest.approx(cpu.losses, rel=1e-3)
