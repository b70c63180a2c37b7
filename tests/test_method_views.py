"""explorer.method_views: the held-out split, evaluate() against the library's own numbers on the same split,
SmoothQuant's W·A8 error against a hand-written formula, the AWQ and GPTQ page views, the compare table, the GPTQ
extrapolation against hand-counted shapes, and the measured overfitting claim the GPTQ page makes."""
from __future__ import annotations

import math

import pytest
import torch

from explorer import samples
from explorer.formats import make_spec
from explorer.method_views import COMPARE_METHODS, LABELS, MIN_SALIENT, OVERFIT_LAYERS, OVERFIT_OF, OVERFIT_WORST, \
    REFERENCE_TOKENS, GPTQTiming, awq_at_alpha, awq_view, column_rel_error, compare_methods, compare_specs, \
    evaluate, extrapolate_gptq, gptq_fma, gptq_probe, gptq_view, holdout_split
from explorer.methods import Method, awq_search, gptq_quantize, hessian_from, run_method
from explorer.metrics import output_rel_error
from explorer.quantize import fake_quantize
from explorer.specs import Granularity

torch.set_num_threads(1)
SPEC = make_spec("int4", "group", 32, symmetric=False)


def layer(seed: int = 0, out: int = 24, n_in: int = 64, tokens: int = 96, device="cpu"):
    """W [out, in] and correlated activations X [tokens, in] with two outlier input channels."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(out, n_in, generator=g) * 0.02
    x = torch.randn(tokens, n_in // 4, generator=g) @ torch.randn(n_in // 4, n_in, generator=g) / 4 \
        + 0.3 * torch.randn(tokens, n_in, generator=g)
    x[:, [3, n_in - 5]] *= 25.0
    return w.to(device), x.to(device)


# ---- the split ----

def test_holdout_split_keeps_the_last_tokens_out():
    x = torch.arange(512 * 2, dtype=torch.float32).reshape(512, 2)
    calib, held = holdout_split(x)
    assert calib.shape[0] == 384 and held.shape[0] == 128
    assert torch.equal(calib, x[:384]) and torch.equal(held, x[384:])
    assert [holdout_split(x[:10], f)[1].shape[0] for f in (0.001, 0.25, 0.5, 0.999)] == [1, 2, 5, 9]


@pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.1, True, "0.25", math.nan])
def test_holdout_split_rejects_bad_fractions(fraction):
    with pytest.raises(ValueError, match=r"holdout=.* is not allowed; choose a fraction 0 < holdout < 1"):
        holdout_split(torch.zeros(8, 2), fraction)


def test_holdout_split_needs_two_tokens_and_a_matrix():
    with pytest.raises(ValueError, match=r"2-D \[tokens >= 2, in\].*\(1, 4\)"):
        holdout_split(torch.zeros(1, 4))
    with pytest.raises(ValueError, match=r"got \(8,\)"):
        holdout_split(torch.zeros(8))


# ---- evaluate ----

@pytest.mark.parametrize("method", [Method.RTN, Method.AWQ, Method.GPTQ, Method.AWQ_GPTQ])
def test_evaluate_equals_the_library_on_the_same_split(method, device):
    w, x = layer(1, device=device)
    e = evaluate(method, w, x, SPEC, holdout=0.25, damp=0.1)
    k = 72
    r = run_method(method, w, SPEC, x[:k], damp=0.1)
    assert torch.equal(e.result.w_hat, r.w_hat)
    assert e.holdout_error == pytest.approx(output_rel_error(x[k:], w, r.w_hat), rel=1e-12)
    assert e.calib_error == pytest.approx(output_rel_error(x[:k], w, r.w_hat), rel=1e-12)
    assert (e.calib_tokens, e.holdout_tokens, e.label) == (72, 24, LABELS[method])
    assert (e.alpha is None) == (method in (Method.RTN, Method.GPTQ)) and e.unsmoothed_error is None


def test_evaluate_smoothquant_is_the_w_a8_error_on_held_out_tokens():
    w, x = layer(2)
    spec = make_spec("int8", "channel")
    e = evaluate(Method.SMOOTHQUANT, w, x, spec, smooth_alpha=0.5)
    calib, held = x[:72], x[72:]
    s = (calib.abs().amax(0) ** 0.5 / w.abs().amax(0).clamp(min=1e-5) ** 0.5).clamp(min=1e-5)  # written out here
    act = make_spec("int8", "tensor")
    ref = held @ w.T

    def err(xq, wq):
        return float((ref - xq @ wq.T).norm() / ref.norm())
    assert e.holdout_error == pytest.approx(err(fake_quantize(held / s, act), fake_quantize(w * s, spec)), rel=1e-5)
    assert e.unsmoothed_error == pytest.approx(err(fake_quantize(held, act), fake_quantize(w, spec)), rel=1e-5)
    assert e.alpha == 0.5 and e.unsmoothed_error > e.holdout_error  # the outlier channels: smoothing helps here


def test_evaluate_error_paths():
    w, x = layer(3)
    with pytest.raises(ValueError, match=r"activations has 32 input channels"):
        evaluate(Method.GPTQ, w, x[:, :32], SPEC)
    with pytest.raises(ValueError, match=r"holdout=0 is not allowed"):
        evaluate(Method.AWQ, w, x, SPEC, holdout=0)
    with pytest.raises(ValueError, match=r"method='nope' is not allowed"):
        evaluate("nope", w, x, SPEC)


# ---- AWQ ----

@pytest.mark.parametrize("clip", [False, True])
def test_awq_at_the_searched_alpha_is_the_searchs_weight(clip):
    w, x = layer(4)
    r = awq_search(w, x, SPEC, clip=clip)
    s, w_hat = awq_at_alpha(w, x, SPEC, r.alpha, clip)
    assert torch.equal(s, r.scales) and torch.equal(w_hat, r.w_hat)
    s0, w0 = awq_at_alpha(w, x, SPEC, 0.0)
    assert torch.equal(s0, torch.ones_like(s0)) and torch.equal(w0, fake_quantize(w, SPEC))  # alpha 0 = RTN


def test_column_rel_error():
    w = torch.tensor([[3.0, 0.0, 1.0], [4.0, 0.0, 1.0]])
    w_hat = torch.tensor([[3.0, 1.0, 0.0], [1.0, 0.0, 1.0]])
    torch.testing.assert_close(column_rel_error(w, w_hat), torch.tensor([3 / 5, 0.0, 1 / math.sqrt(2)]))


def test_awq_view_searched_and_inspected_points():
    w, x = layer(5, n_in=128, tokens=128)
    v = awq_view(w, x, SPEC)
    calib, held = x[:96], x[96:]
    assert v.index == v.best_index and v.alpha == min(zip(v.losses, v.alphas))[1] and len(v.alphas) == 20
    e = evaluate(Method.AWQ, w, x, SPEC)
    assert v.errors["awq_holdout"] == pytest.approx(e.holdout_error, rel=1e-12)
    assert v.errors["rtn_holdout"] == pytest.approx(output_rel_error(held, w, fake_quantize(w, SPEC)), rel=1e-12)
    torch.testing.assert_close(torch.from_numpy(v.act_mean), calib.abs().mean(0))
    assert len(v.salient) == MIN_SALIENT and set(v.salient[:2].tolist()) == {3, 123}  # the outlier channels
    torch.testing.assert_close(torch.from_numpy(v.col_err_rtn), column_rel_error(w, fake_quantize(w, SPEC)))
    assert v.errors["awq_holdout"] < v.errors["rtn_holdout"]
    v0 = awq_view(w, x, SPEC, index=0)  # alpha 0: s = 1, AWQ's numbers are RTN's
    assert v0.best_index == v.best_index and v0.alpha == 0.0
    assert v0.errors["awq_holdout"] == v0.errors["rtn_holdout"] and (v0.scales == 1).all()
    with pytest.raises(ValueError, match=r"index=20 is not allowed; choose -1 \(the searched alpha\) or 0..19"):
        awq_view(w, x, SPEC, index=20)


# ---- GPTQ ----

def test_gptq_view_rows_and_losses(device):
    w, x = layer(6, device=device)
    v = gptq_view(w, x, SPEC, damp=0.05)
    assert [r.label for r in v.rows] == ["RTN", "GPTQ", "GPTQ act-order", "AWQ", "AWQ+GPTQ"]
    calib = x[:72]
    plain = gptq_quantize(w, hessian_from(calib), SPEC, damp=0.05)
    torch.testing.assert_close(torch.from_numpy(v.losses_order), plain.losses.cpu(), rtol=1e-5, atol=1e-9)
    h = hessian_from(calib).diagonal().cpu()
    assert (h[v.perm_act][:-1] >= h[v.perm_act][1:]).all()  # act-order: largest H_jj first
    act = gptq_quantize(w, hessian_from(calib), SPEC, damp=0.05, act_order=True)
    torch.testing.assert_close(torch.from_numpy(v.losses_act), act.losses_processing.cpu(), rtol=1e-5, atol=1e-9)
    e = evaluate(Method.GPTQ, w, x, SPEC, damp=0.05, act_order=True)
    assert v.rows[2].holdout_error == pytest.approx(e.holdout_error, rel=1e-12)
    t = v.timing
    assert (t.out_features, t.in_features, t.tokens) == (24, 64, 72) and t.hessian_seconds >= 0 < t.quantize_seconds


def test_gptq_probe_times_a_layer_of_the_given_shape():
    t = gptq_probe("cpu", 16, 256, 32)
    assert (t.out_features, t.in_features, t.tokens) == (16, 256, 32) and t.quantize_seconds > 0
    assert "16 x 256" in t.what


def test_gptq_fma():
    assert gptq_fma(10, 6, 100) == (100 * 36, 10 * 36 / 2 + 216 / 3)


def test_extrapolation_scales_by_the_real_shapes():
    # A basis of 1 s per multiply-add unit of a 4096 x 4096 layer: the totals are the shapes' own sums, by hand.
    basis = GPTQTiming("unit", 4096, 4096, REFERENCE_TOKENS, 1.0, 1.0)
    e = extrapolate_gptq(basis, "mistral_7b_v01")
    assert e.model == "Mistral-7B-v0.1" and e.linears == 32 * 7 and e.tokens == REFERENCE_TOKENS
    assert e.hessian_seconds == pytest.approx(32 * (6 + (14336 / 4096) ** 2))  # q k v o gate up read 4096, down 14336

    def q(out, n):
        return out * n * n / 2 + n ** 3 / 3
    block = 2 * q(4096, 4096) + 2 * q(1024, 4096) + 2 * q(14336, 4096) + q(4096, 14336)
    assert e.quantize_seconds == pytest.approx(32 * block / q(4096, 4096))
    assert e.total_seconds == e.hessian_seconds + e.quantize_seconds
    big = extrapolate_gptq(basis, "llama31_70b")
    assert big.linears == 80 * 7 and big.total_seconds > 10 * e.total_seconds
    half = extrapolate_gptq(GPTQTiming("u", 4096, 4096, REFERENCE_TOKENS, 0.5, 0.0), "mistral_7b_v01",
                            tokens=REFERENCE_TOKENS // 2)
    assert half.hessian_seconds == pytest.approx(e.hessian_seconds / 4) and half.quantize_seconds == 0
    with pytest.raises(ValueError, match="unknown model 'gpt5'"):
        extrapolate_gptq(basis, "gpt5")


# ---- compare ----

def test_compare_specs():
    specs = compare_specs(["int4", "nf4", "mxfp4", "int8"], "group", 64, False)
    assert [s.label for s in specs] == ["int4 g64 asym", "nf4 g64", "mxfp4 (block 32)", "int8 g64 asym"]
    assert compare_specs(["fp8_e4m3"], "channel", 64, True)[0].granularity is Granularity.CHANNEL


def test_compare_methods_rows_equal_evaluate_and_skips_with_a_reason():
    w, x = layer(7)
    specs = [make_spec("int4", "group", 32), make_spec("nvfp4")]
    seen = []
    rows = compare_methods(w, x, specs, damp=0.1, on_progress=lambda i, n, label: seen.append((i, n)))
    assert seen == [(i, 10) for i in range(10)]
    assert [(r.spec, r.method) for r in rows] == [(s.label, LABELS[m]) for s in specs for m in COMPARE_METHODS]
    for r, m in zip(rows[:5], COMPARE_METHODS):
        e = evaluate(m, w, x, specs[0], damp=0.1)
        assert r.holdout_error == pytest.approx(e.holdout_error, rel=1e-12) and r.bits_per_weight == 4.5
    gptq_nvfp4 = rows[7]
    assert gptq_nvfp4.method == "GPTQ" and gptq_nvfp4.holdout_error is None
    assert "needs static_groups=True" in gptq_nvfp4.skipped
    assert rows[5].skipped == "" and rows[5].holdout_error > 0


# ---- the claim on the GPTQ page ----

def _sample_layers():
    try:
        return [(m, n) for m in samples.sample_models() for n in samples.linear_names(m)]
    except (FileNotFoundError, ValueError):
        return []


@pytest.mark.slow
@pytest.mark.skipif(len(_sample_layers()) != OVERFIT_OF, reason="the bundled samples are not all built")
def test_gptq_overfitting_claim_on_the_bundled_layers():
    """The GPTQ page says: at 1% damping GPTQ loses to RTN on held-out tokens on OVERFIT_LAYERS of the OVERFIT_OF
    layers (INT4 g128, 25% held out), by up to OVERFIT_WORST, and on none at 10%. Measured again here."""
    spec = make_spec("int4", "group", 128)
    ratios = {0.01: [], 0.1: []}
    for model, name in _sample_layers():
        w, x = samples.load_weight(model, name), samples.load_inputs(model, name)
        rtn = evaluate(Method.RTN, w, x, spec).holdout_error
        for damp in ratios:
            ratios[damp].append(evaluate(Method.GPTQ, w, x, spec, damp=damp).holdout_error / rtn)
    assert sum(r > 1 for r in ratios[0.01]) == OVERFIT_LAYERS
    assert round(max(ratios[0.01]), 2) == OVERFIT_WORST
    assert max(ratios[0.1]) <= 1
