"""Cross-checks against llm-compressor where it is installed (the bench environment, `.venv-bench`; CI skips this
file): its GPTQ `quantize_weight` given the same Hessian and its min-max group scales is reproduced bit for bit by
ours with static groups and float32 scales, on a seeded layer and on a real sample layer with its real inputs.

    OMP_NUM_THREADS=1 .venv-bench/bin/python -m pytest -q tests/test_peer_methods.py
"""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("llmcompressor", reason="llm-compressor is a bench-only peer (requirements-bench.txt)")

from compressed_tensors.quantization import QuantizationArgs  # noqa: E402
from compressed_tensors.quantization.utils.helpers import calculate_qparams  # noqa: E402
from llmcompressor.modifiers.gptq.gptq_quantize import quantize_weight  # noqa: E402

from explorer import samples  # noqa: E402
from explorer.formats import make_spec  # noqa: E402
from explorer.methods import gptq_quantize, hessian_from  # noqa: E402

torch.set_num_threads(1)


def theirs_gptq(w: torch.Tensor, h: torch.Tensor, bits: int, group: int) -> torch.Tensor:
    """llm-compressor's GPTQ on W [out, in] with Hessian H: min-max asymmetric group scales of the original W
    (its observer's rule, calculate_qparams), 1% damping, block 128 - its defaults."""
    args = QuantizationArgs(num_bits=bits, type="int", symmetric=False, strategy="group", group_size=group)
    g = w.float().reshape(w.shape[0], -1, group)
    scale, zero = calculate_qparams(g.amin(-1), g.amax(-1), args)
    out = quantize_weight(w.float()[None].clone(), h.float()[None].clone(), scale[None], zero[None], None, args)
    return out[0][0]


def assert_agree(ours: torch.Tensor, theirs: torch.Tensor, w: torch.Tensor, bits: int) -> None:
    """Bit-identical but for rare ties that float32 rounding in the error feedback decides differently (measured:
    INT4 / INT3 identical; INT8 3 of 98,304 weights one step apart): under 1e-4 of the weights, by one step."""
    differ = ours != theirs
    assert float(differ.float().mean()) < 1e-4
    if differ.any():
        step = float(w.amax(1).sub(w.amin(1)).max()) / (2 ** bits - 1)  # the largest group step there can be
        assert float((ours - theirs).abs().max()) <= step * 1.001


def ours_gptq(w: torch.Tensor, h: torch.Tensor, bits: int, group: int) -> torch.Tensor:
    spec = make_spec(f"int{bits}", "group", group, symmetric=False, scale_dtype="fp32")
    return gptq_quantize(w, h, spec, static_groups=True).w_hat.float()


@pytest.mark.parametrize("bits, group", [(4, 128), (3, 64), (8, 128)])
def test_gptq_equals_llmcompressor_on_a_seeded_layer(bits, group):
    g = torch.Generator().manual_seed(bits * 1000 + group)
    w = torch.randn(192, 512, generator=g) * 0.02
    x = torch.randn(1024, 512, generator=g)
    x[:, :4] *= 20.0  # outlier input channels make H far from diagonal
    h = hessian_from(x)
    ours, theirs = ours_gptq(w, h, bits, group), theirs_gptq(w, h, bits, group)
    assert_agree(ours, theirs, w, bits)
    if bits == 4:
        assert torch.equal(ours, theirs)


def test_gptq_equals_llmcompressor_on_a_real_layer():
    name = "blocks.11.down"
    if "smollm2" not in samples.sample_models() or name not in samples.linear_names("smollm2"):
        pytest.skip("SmolLM2 sample not built")
    w = samples.load_weight("smollm2", name).float()
    x = samples.load_inputs("smollm2", name).float()
    h = hessian_from(x)
    assert_agree(ours_gptq(w, h, 4, 128), theirs_gptq(w, h, 4, 128), w, 4)


def test_awq_matches_llmcompressor_search():
    """Its AWQ modifier (x-only scales, as llm-awq) on a two-module model (scripts/peer_awq.py) against ours with
    float32 scales and a float32 grid: the same 20 losses, the same alpha, the same weights but for rare ties."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from peer_awq import llmcompressor_awq

    from explorer.methods import awq_search
    g = torch.Generator().manual_seed(3)
    w = torch.randn(256, 512, generator=g) * 0.02
    x = torch.randn(768, 512, generator=g)
    x[:, [7, 100, 300]] *= 30.0
    spec = make_spec("int4", "group", 128, symmetric=False, scale_dtype="fp32")
    ours = awq_search(w, x, spec, grid_dtype=torch.float32)
    theirs = llmcompressor_awq(w, x, 4, 128, False, duo_scaling=False)
    assert theirs["ratio"] == pytest.approx(ours.alpha)
    assert list(theirs["losses"]) == pytest.approx(list(ours.losses), rel=1e-4)
    assert float((ours.w_hat != theirs["w_hat"]).float().mean()) < 1e-4
