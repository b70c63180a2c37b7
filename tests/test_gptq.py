"""GPTQ: rounding with given scales, the inverse-Hessian factor, blocked == unblocked, H = I == RTN, streaming
Hessian, act-order / static groups, dead inputs, real samples held out, the dispatcher, error paths."""
from __future__ import annotations

import pytest
import torch

from explorer import samples
from explorer.formats import make_spec
from explorer.methods import Method, gptq_quantize, hessian_from, run_method
from explorer.methods.common import OutputError, round_with_scales, slice_spec
from explorer.methods.gptq import HessianAccumulator, inverse_hessian_factor
from explorer.metrics import output_rel_error
from explorer.quantize import dequantize, fake_quantize, quantize, span_of

torch.set_num_threads(1)

SPECS = {
    "int4 g32 asym": make_spec("int4", "group", 32, symmetric=False),
    "int3 g24 sym": make_spec("int3", "group", 24),
    "int8 channel": make_spec("int8", "channel"),
    "int4 tensor asym": make_spec("int4", "tensor", symmetric=False),
    "fp8_e4m3 tensor": make_spec("fp8_e4m3", "tensor"),
    "fp8_e5m2 g32": make_spec("fp8_e5m2", "group", 32),
    "fp4 g32": make_spec("fp4_e2m1", "group", 32),
    "nf4 g64": make_spec("nf4", "group", 64),
    "mxfp4": make_spec("mxfp4"),
    "mxfp8": make_spec("mxfp8"),
    "mxint8": make_spec("mxint8"),
    "nvfp4": make_spec("nvfp4"),
}


def layer(seed: int = 0, out: int = 48, n_in: int = 96, tokens: int = 512):
    """W [out, in] and correlated activations X [tokens, in] (a low-rank mix plus noise) with 3 outlier inputs."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(out, n_in, generator=g) * 0.02
    mix = torch.randn(n_in // 4, n_in, generator=g)
    x = torch.randn(tokens, n_in // 4, generator=g) @ mix / 4 + 0.3 * torch.randn(tokens, n_in, generator=g)
    x[:, [5, 17, n_in - 3]] *= 20.0
    return w, x


def per_column(result, n_in):
    """Scales (and zeros) of a QuantResult expanded to one column each: [rows, in]."""
    def expand(t):
        return None if t is None else t.repeat_interleave(result.span, dim=1)[:, :n_in]
    return expand(result.scales), expand(result.zeros)


@pytest.mark.parametrize("label", list(SPECS))
def test_round_with_scales_is_bit_identical_to_quantize(label):
    spec = SPECS[label]
    w, _ = layer(1, 16, 96)
    w[0, :40] *= 1e-3  # small groups, and for nvfp4 blocks whose E4M3 scale underflows
    w[1, 32:64] = 0.0
    r = quantize(w, spec)
    scales, zeros = per_column(r, w.shape[1])
    codes, values = round_with_scales(w, scales, zeros, spec)
    assert torch.equal(codes, r.codes)
    assert torch.equal(values, dequantize(r))


def test_round_with_scales_needs_zeros_exactly_for_asymmetric():
    w, _ = layer(2, 4, 32)
    with pytest.raises(ValueError, match="zeros must be given"):
        round_with_scales(w, torch.ones(4, 1), None, make_spec("int4", "channel", symmetric=False))
    with pytest.raises(ValueError, match="takes no zero points"):
        round_with_scales(w, torch.ones(4, 1), torch.zeros(4, 1), make_spec("int4", "channel"))


def test_inverse_hessian_factor_is_upper_cholesky_of_the_inverse():
    _, x = layer(3, n_in=64, tokens=256)
    h = hessian_from(x)
    h.diagonal().add_(0.01 * float(h.diagonal().mean()))
    u = inverse_hessian_factor(h)
    assert torch.equal(u, torch.triu(u)) and bool((u.diagonal() > 0).all())
    want = torch.linalg.inv(h.double())
    torch.testing.assert_close(u.double().T @ u.double(), want, rtol=0, atol=1e-5 * float(want.abs().max()))
    with pytest.raises(ValueError, match="not positive definite"):
        inverse_hessian_factor(-torch.eye(4))


def reference_gptq(w, h, spec, damp=0.01, act_order=False, static_groups=False):
    """The paper's algorithm without blocks or lazy updates: one column at a time, full error feedback to all
    later columns. Integer formats only; the rounding is written out here (scales from quantize())."""
    W, H = w.double().clone(), h.double().clone()
    dead = H.diagonal() == 0
    H.diagonal()[dead] = 1.0
    W[:, dead] = 0.0
    n = W.shape[1]
    span = span_of(spec, n)
    dynamic = spec.granularity.value == "group" and not static_groups
    fixed = None if dynamic else quantize(W.float(), spec)
    perm = torch.argsort(H.diagonal(), descending=True, stable=True) if act_order else torch.arange(n)
    W, H = W[:, perm], H[perm][:, perm]
    H.diagonal().add_(damp * float(H.diagonal().mean()))
    U = torch.linalg.cholesky(torch.linalg.inv(H), upper=True)  # textbook: Cholesky(H^-1)^T
    bits, sym = spec.format.bits, spec.symmetric
    Q = torch.zeros_like(W)
    for j in range(n):
        if dynamic and j % span == 0:
            g = quantize(W[:, j:j + span].float(), slice_spec(spec))
            s, z = g.scales.double(), None if g.zeros is None else g.zeros.double()
        elif not dynamic:
            col = int(perm[j]) // span
            s = fixed.scales[:, col:col + 1].double()
            z = None if fixed.zeros is None else fixed.zeros[:, col:col + 1].double()
        col_w = W[:, j:j + 1]
        if sym:
            qmax = 2 ** (bits - 1) - 1
            q = torch.round((col_w.float() / s.float()).double()).clamp(-qmax - 1, qmax) * s
        else:
            q = (torch.round((col_w.float() / s.float() + z.float()).double()).clamp(0, 2 ** bits - 1) - z) * s
        e = (col_w - q) / U[j, j]
        W[:, j:] -= e * U[j:j + 1, j:]
        Q[:, j:j + 1] = q
    return Q[:, torch.argsort(perm)].float()


@pytest.mark.parametrize("spec_label, act_order, static, block", [
    ("int4 g32 asym", False, False, 128),
    ("int4 g32 asym", False, False, 20),   # groups cross block boundaries
    ("int3 g24 sym", True, False, 16),
    ("int3 g24 sym", True, True, 16),
    ("int8 channel", True, False, 32),
    ("int4 tensor asym", False, False, 40),
])
def test_blocked_gptq_equals_unblocked_reference(spec_label, act_order, static, block):
    spec = SPECS[spec_label]
    w, x = layer(4)
    h = hessian_from(x)
    got = gptq_quantize(w, h, spec, block_size=block, act_order=act_order, static_groups=static)
    want = reference_gptq(w, h, spec, act_order=act_order, static_groups=static)
    torch.testing.assert_close(got.w_hat, want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("label", ["int4 g32 asym", "int8 channel", "fp8_e4m3 tensor", "nf4 g64", "fp4 g32",
                                   "mxfp4", "mxint8"])
def test_identity_hessian_gives_rtn_codes(label):
    spec = SPECS[label]
    w, _ = layer(5, 24, 128)
    r = gptq_quantize(w, torch.eye(128), spec, block_size=48)
    rtn = quantize(w, spec)
    assert torch.equal(r.codes, rtn.codes)
    assert torch.equal(r.w_hat, fake_quantize(w, spec))


@pytest.mark.parametrize("label", list(SPECS))
def test_quant_result_dequantizes_to_w_hat(label):
    spec = SPECS[label]
    w, x = layer(6)
    static = spec.format.name == "nvfp4"
    r = gptq_quantize(w.half(), hessian_from(x), spec, block_size=32, static_groups=static)
    assert r.w_hat.dtype == torch.float16 and r.quant is not None
    assert torch.equal(dequantize(r.quant), r.w_hat)
    assert output_rel_error(x, w, r.w_hat) <= output_rel_error(x, w, fake_quantize(w, spec))


def test_nvfp4_needs_static_groups():
    w, x = layer(7)
    with pytest.raises(ValueError, match="nvfp4 needs static_groups=True.*mxfp4"):
        gptq_quantize(w, hessian_from(x), SPECS["nvfp4"])


def test_act_order_and_static_groups_run_and_beat_rtn():
    spec = make_spec("int4", "group", 32, symmetric=False)
    w, x = layer(8, 64, 128, 1024)
    h = hessian_from(x)
    rtn = output_rel_error(x, w, fake_quantize(w, spec))
    for act_order in (False, True):
        for static in (False, True):
            r = gptq_quantize(w, h, spec, act_order=act_order, static_groups=static)
            assert output_rel_error(x, w, r.w_hat) < 0.9 * rtn
    r = gptq_quantize(w, h, spec, act_order=True)
    assert r.quant is None  # dynamic groups in act order are not contiguous: stored with g_idx
    assert torch.equal(r.perm, torch.argsort(h.diagonal(), descending=True, stable=True))
    assert sorted(r.g_idx.bincount().tolist()) == [32] * 4
    rebuilt = (r.codes.float() - r.zeros[:, r.g_idx]) * r.scales[:, r.g_idx]
    assert torch.equal(rebuilt, r.w_hat)
    torch.testing.assert_close(r.losses, r.losses_processing[torch.argsort(r.perm)])
    s = gptq_quantize(w, h, spec, act_order=True, static_groups=True)
    assert torch.equal(s.scales, quantize(w, spec).scales)  # static: scales from the original W


def test_dead_inputs_are_zeroed():
    spec = make_spec("int4", "group", 32, symmetric=False)
    w, x = layer(9)
    x[:, [0, 40, 41]] = 0.0
    h = hessian_from(x)
    h_before, w_before = h.clone(), w.clone()
    r = gptq_quantize(w, h, spec, act_order=True)
    assert r.dead.nonzero().flatten().tolist() == [0, 40, 41]
    assert bool((r.w_hat[:, [0, 40, 41]] == 0).all()) and bool(torch.isfinite(r.w_hat).all())
    assert torch.equal(h, h_before) and torch.equal(w, w_before)  # inputs untouched


def test_hessian_accumulator_streams_a_running_mean():
    _, x = layer(10, n_in=64, tokens=698)
    acc = HessianAccumulator(64)
    for batch in (x[:100], x[100:101], x[101:].reshape(3, 199, 64)):
        acc.add(batch)
    assert acc.n_tokens == 698
    want = 2 * x.double().T @ x.double() / 698
    torch.testing.assert_close(acc.hessian.double(), want, rtol=1e-5, atol=1e-4)
    assert hessian_from(x, batch_tokens=64).shape == (64, 64)
    with pytest.raises(ValueError, match="has 32 input channels"):
        acc.add(torch.zeros(5, 32))
    with pytest.raises(ValueError, match="no calibration tokens"):
        HessianAccumulator(8).hessian


@pytest.mark.parametrize("dtype, rtol", [(torch.float32, 1e-4), (torch.bfloat16, 2e-2)])
def test_output_error_gram_path_equals_direct_path(dtype, rtol):
    w, x = layer(11, 16, 32, 300)  # more tokens than inputs: the Gram path
    d = w - fake_quantize(w, make_spec("int3", "channel"))
    gram, direct = OutputError(x, dtype), OutputError(x[:, :], dtype)
    direct.gram = None
    assert gram.gram is not None
    torch.testing.assert_close(gram.sse_rows(d), direct.sse_rows(d), rtol=rtol, atol=1e-9)
    exact = ((x.double() @ d.double().T) ** 2).sum(0)
    torch.testing.assert_close(direct.sse_rows(d), exact, rtol=rtol, atol=1e-9)
    with pytest.raises(ValueError, match="matmul_dtype=torch.float16 is not allowed"):
        OutputError(x, torch.float16)


def _sample_layers():
    """(model, Linear) of every sample layer whose weight and input files are present."""
    try:
        models = [m for m in samples.sample_models()
                  if all((samples.SAMPLE_DIR / m / f).is_file() for f in ("weights.safetensors", "inputs.safetensors"))]
        return [(m, n) for m in models for n in samples.linear_names(m)]
    except (FileNotFoundError, ValueError):
        return []


@pytest.mark.skipif(not _sample_layers(), reason="sample_weights/ not built")
def test_gptq_beats_rtn_on_every_real_sample_layer():
    """Calibrate on the first 75% of each layer's 512 real tokens, measure on the last 25%.

    Measured: with only 384 calibration tokens, the default 1% damping overfits on 5 of 19 layers (held-out
    error up to 1.21x RTN on MiniLM layer 0 q/k/v; in-sample always 0.23-0.52x); 10% damping generalises on all.
    The reference calibrates on ~262k tokens (128 x 2048).
    """
    spec = make_spec("int4", "group", 128, symmetric=False)
    for model, name in _sample_layers():
        w = samples.load_weight(model, name).float()
        x = samples.load_inputs(model, name).float()
        k = x.shape[0] * 3 // 4
        h = hessian_from(x[:k])
        w_rtn = fake_quantize(w, spec)
        w_hat = gptq_quantize(w, h, spec, damp=0.1).w_hat
        assert output_rel_error(x[:k], w, w_hat) < 0.7 * output_rel_error(x[:k], w, w_rtn), (model, name)
        assert output_rel_error(x[k:], w, w_hat) <= output_rel_error(x[k:], w, w_rtn), (model, name)


def test_run_method_dispatches_every_method():
    spec = make_spec("int4", "group", 32, symmetric=False)
    w, x = layer(12)
    rtn = run_method(Method.RTN, w, spec, x)
    assert torch.equal(rtn.w_hat, fake_quantize(w, spec)) and rtn.alpha is None and rtn.detail is None
    for method in (Method.AWQ, Method.GPTQ, Method.AWQ_GPTQ, Method.SMOOTHQUANT):
        r = run_method(method, w, spec, x)
        assert r.w_hat.shape == w.shape and r.w_hat.dtype == w.dtype and r.seconds >= 0
        assert r.extras["calib_output_rel_error"] < rtn.extras["calib_output_rel_error"], method
        assert (r.alpha is None) == (method is Method.GPTQ)
    both = run_method("awq_gptq", w, spec, x).detail
    s = both.awq.scales
    torch.testing.assert_close(both.w_hat, both.gptq.w_hat / s)
    assert run_method(Method.RTN, w, spec).extras == {}


def test_error_paths():
    spec = make_spec("int4", "group", 32)
    w, x = layer(13)
    h = hessian_from(x)
    with pytest.raises(ValueError, match="method='bogus' is not allowed"):
        run_method("bogus", w, spec, x)
    with pytest.raises(ValueError, match="needs calibration activations"):
        run_method(Method.GPTQ, w, spec)
    with pytest.raises(ValueError, match="has 95 input channels"):
        run_method(Method.GPTQ, w, spec, x[:, :95])
    with pytest.raises(ValueError, match="has 3 dimension"):
        run_method(Method.AWQ, w, spec, x.reshape(2, 256, 96))
    bad = x.clone()
    bad[3, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN or Inf"):
        run_method(Method.GPTQ, w, spec, bad)
    with pytest.raises(ValueError, match=r"hessian must be a float tensor \[96, 96\]"):
        gptq_quantize(w, h[:10, :10], spec)
    with pytest.raises(ValueError, match="damp=-0.1 is not allowed"):
        gptq_quantize(w, h, spec, damp=-0.1)
    with pytest.raises(ValueError, match="block_size=0 is not allowed"):
        gptq_quantize(w, h, spec, block_size=0)
    with pytest.raises(ValueError, match="spec must be a QuantSpec"):
        gptq_quantize(w, h, "int4")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_gptq_follows_the_weight_device():
    spec = make_spec("int4", "group", 32, symmetric=False)
    w, x = layer(14)
    r = gptq_quantize(w.cuda(), hessian_from(x.cuda()), spec)
    assert r.w_hat.device.type == "cuda" and r.quant.codes.device.type == "cuda"
    cpu = gptq_quantize(w, hessian_from(x), spec)
    assert (r.w_hat.cpu() != cpu.w_hat).float().mean() < 0.01  # float rounding may flip a few codes


def test_inverse_hessian_factor_large_enough_to_split():
    _, x = layer(15, n_in=600, tokens=900)  # 600 > 256: the triangular inverse goes by halves
    h = hessian_from(x)
    h.diagonal().add_(0.01 * float(h.diagonal().mean()))
    u = inverse_hessian_factor(h)
    assert torch.equal(u, torch.triu(u))
    want = torch.linalg.inv(h.double())
    # float32 with cond(H) ~ 1e4: judge it against the reference's own float32 chain (Cholesky of H, inverse,
    # upper Cholesky of H^-1), which lands about 2e-5 (relative to max |H^-1|) from the float64 inverse
    textbook = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True).double()
    ref_err = float((textbook.T @ textbook - want).abs().max())
    assert float((u.double().T @ u.double() - want).abs().max()) <= 1.5 * ref_err
