"""The bundled sample_weights/ and the explorer.samples API that reads them."""

from __future__ import annotations

import hashlib
import shutil

import pytest
import torch

from explorer import samples
from explorer.models import registry

torch.set_num_threads(1)

has_smollm2 = pytest.mark.skipif(
    "smollm2" not in samples.sample_models(), reason="sample_weights/smollm2 was not built"
)


def test_manifest_hashes_match_files():
    assert samples.verify_manifest() == []
    man = samples.manifest()
    for model in samples.sample_models():
        for rel, meta in man["models"][model]["files"].items():
            data = (samples.SAMPLE_DIR / rel).read_bytes()
            assert hashlib.sha256(data).hexdigest() == meta["sha256"] and len(data) == meta["size"]
    total = sum(p.stat().st_size for p in samples.SAMPLE_DIR.rglob("*") if p.is_file())
    assert total < 30e6  # the sample must stay small enough to ship in the repository


def test_manifest_records_provenance():
    man = samples.manifest()
    assert "minilm" in samples.sample_models()
    for model in samples.sample_models():
        m, info = man["models"][model], registry.model_info(model)
        assert m["source"]["sha256"] == info.source_sha256 and m["source"]["version"] == info.package_version
        assert m["licence"] == "Apache-2.0" and (samples.SAMPLE_DIR / m["licence_file"]).is_file()
        assert any("float16" in c for c in m["changes"])
    lic = (samples.SAMPLE_DIR / "LICENSE-Apache-2.0.txt").read_text()
    assert "Apache License" in lic and "END OF TERMS AND CONDITIONS" in lic


def test_verify_manifest_reports_tampering(tmp_path, monkeypatch):
    copy = tmp_path / "sample_weights"
    shutil.copytree(samples.SAMPLE_DIR, copy)
    monkeypatch.setattr(samples, "SAMPLE_DIR", copy)
    assert samples.verify_manifest() == []
    target = copy / "minilm" / "inputs.safetensors"
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    (copy / "minilm" / "weights.safetensors").unlink()
    problems = samples.verify_manifest()
    assert "minilm/inputs.safetensors: sha256 differs from the manifest" in problems
    assert "missing file minilm/weights.safetensors" in problems


@pytest.mark.parametrize("model", samples.sample_models())
def test_sampled_linears_have_weights_and_inputs(model):
    info = registry.model_info(model)
    lins = samples.sampled_linears(model)
    expected = [
        n for b in info.sample_blocks for g in registry.block_groups(model, b) for n in g.linears
    ]
    assert list(lins) == expected
    assert samples.linear_names(model) == {n: f"{n}.weight" for n in expected}
    for name, lin in lins.items():
        w = samples.load_weight(model, lin.weight)
        assert w.dtype == torch.float16 and tuple(w.shape) == (lin.out_features, lin.in_features)
        x = samples.load_inputs(model, name)
        assert x.dtype == torch.float16 and tuple(x.shape) == (512, lin.in_features) == (lin.tokens, w.shape[1])
        assert torch.isfinite(x).all()
        assert torch.equal(samples.load_inputs(model, lin.weight), x)  # weight names resolve too
        assert lin.input_key == registry.group_of(model, name).input_key
    # the q/k/v of a group share one stored input
    first = registry.block_groups(model, info.sample_blocks[0])[0]
    assert len({lins[n].input_key for n in first.linears}) == 1


@pytest.mark.parametrize("model", samples.sample_models())
def test_activation_stats_cover_every_linear(model):
    stats = samples.activation_stats(model)
    assert list(stats) == registry.linear_names(model)
    tokens = samples.manifest()["models"][model]["activation_stats"]["tokens"]
    assert tokens > 2000
    sampled = samples.sampled_linears(model)
    for name, (mean, mx) in stats.items():
        mod_in = sampled[name].in_features if name in sampled else None
        assert mean.shape == mx.shape and mean.dtype == torch.float32
        assert mod_in is None or mean.shape == (mod_in,)
        assert (mean >= 0).all() and (mean <= mx * (1 + 1e-6)).all()
    # the 512 stored inputs are a subset of the tokens the statistics cover (allow for the float16 cast)
    for name, lin in sampled.items():
        x = samples.load_inputs(model, name).float().abs().amax(0)
        assert (x <= stats[name][1] * (1 + 2**-10) + 1e-6).all(), name


def test_minilm_stats_have_the_same_input_shapes_as_the_model():
    stats = samples.activation_stats("minilm")
    for name, (mean, _) in stats.items():
        assert mean.shape == ((1536,) if name.endswith(".output.dense") and "attention" not in name else (384,))


def test_minilm_recurring_outlier_channels():
    stats = samples.activation_stats("minilm")
    top3 = {n: mx.topk(3).indices.tolist() for n, (_, mx) in stats.items()}
    top5 = {n: mx.topk(5).indices.tolist() for n, (_, mx) in stats.items()}
    # measured: channel 99 is top-3 in 24 of 36 layers (every 384-wide input but attention.output.dense)
    assert sum(99 in t for t in top3.values()) >= 18
    for ch in (157, 63):
        assert sum(ch in t for t in top5.values()) >= 18, ch
    assert sum(223 in t for t in top5.values()) >= 9
    # FFN inputs (intermediate.dense) are the most skewed: max channel far above the median channel
    mx = stats["encoder.layer.1.intermediate.dense"][1]
    assert mx.max() > 10 * mx.median()


def test_minilm_sample_weights_are_the_real_weights():
    from explorer.models.minilm import load_minilm

    model = load_minilm()
    for name, lin in samples.sampled_linears("minilm").items():
        mod = model.get_submodule(name)
        assert torch.equal(samples.load_weight("minilm", lin.weight), mod.weight.half())
        assert torch.equal(samples.load_weight("minilm", lin.bias), mod.bias.half())
    w = samples.load_weight("minilm", "encoder.layer.0.output.dense").float()
    assert w.abs().max() / w.std() > 100  # the famous weight outlier (absmax/std about 175)


@has_smollm2
def test_smollm2_block11_down_has_massive_activations():
    _, mx = samples.activation_stats("smollm2")["blocks.11.down"]
    assert mx.max() > 1000 and mx.max() > 1000 * mx.median()
    x = samples.load_inputs("smollm2", "blocks.11.down").float()
    row_max = x.abs().amax(1)
    pos = samples.token_positions("smollm2")
    assert (pos[row_max > 500] == 0).float().mean() > 0.5  # mostly at a passage's first position
    assert "re-quantizing an already Q4_1 model" in samples.caveat("smollm2")


@has_smollm2
def test_smollm2_sample_weights_hold_at_most_16_values_per_block():
    for name in samples.linear_names("smollm2"):
        w = samples.load_weight("smollm2", name).float().reshape(-1, 32).sort(-1).values
        distinct = (w[:, 1:] != w[:, :-1]).sum(-1) + 1
        assert int(distinct.max()) <= 16, name


def test_unknown_names_raise():
    with pytest.raises(ValueError, match=r"unknown sample model 'gpt2'; allowed: \['minilm'"):
        samples.load_weight("gpt2", "x")
    with pytest.raises(ValueError, match="unknown sample model"):
        samples.activation_stats("MiniLM")
    with pytest.raises(ValueError, match="unknown Linear or tensor 'encoder.layer.1.output.dense' for 'minilm'"):
        samples.load_inputs("minilm", "encoder.layer.1.output.dense")
    with pytest.raises(ValueError, match="allowed: .*encoder.layer.0.attention.self.query"):
        samples.load_weight("minilm", "encoder.layer.0.attention.self.query.scale")


def test_caveats_and_paths():
    assert samples.weights_path("minilm") == samples.SAMPLE_DIR / "minilm" / "weights.safetensors"
    assert samples.weights_path("minilm").is_file()
    assert "fp16" in samples.caveat("minilm")
