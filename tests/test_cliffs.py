"""Whole-model quantization (Scheme, quantize_model) and the per-task cliff sweep on the real MiniLM.

Bounds asserted on a 1-in-3 subset of every MiniLM task (67-72 items each):
- INT8 per-channel flips at most 4% of the decisions of any task and moves no score by more than 3 points (measured
  on the full tasks: 0-5 flips of 200-216, i.e. <= 2.3%);
- the known cliff as an ordering: at INT4 per-tensor the fine negation task loses at least 25 points more than the
  coarse topic task, and flips at least twice its share of decisions (measured on the full tasks: -74.5 vs -21.5
  points, 75% vs 30% flipped).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from explorer.cliffs import CATALOG, catalog_scheme, find_cliffs, flip_examples, hidden_cliff, run_sweep, \
    summary_rows
from explorer.data import calibration_passages
from explorer.formats import make_spec
from explorer.methods import Method
from explorer.models.minilm import linear_names, load_minilm
from explorer.quantize import fake_quantize
from explorer.scheme import Override, Scheme, linear_shapes, scheme_bits_per_weight
from explorer.tasks import model_tasks
from explorer.whole_model import quantize_model, quantized_weights

torch.set_num_threads(1)
INT4_G128 = make_spec("int4", "group", 128)
FEW_TEXTS = calibration_passages()[:12]  # enough tokens for a positive-definite damped Hessian, and fast


@pytest.fixture(scope="module")
def minilm():
    return load_minilm()


@pytest.fixture(scope="module")
def small_tasks():
    return tuple(dataclasses.replace(t, items=t.items[::3]) for t in model_tasks("minilm"))


@pytest.fixture(scope="module")
def sweep(minilm, small_tasks):
    return run_sweep("minilm", [CATALOG["int8_ch"], CATALOG["int4_t"]], base=minilm, tasks=small_tasks)


def test_scheme_validation_and_labels():
    s = Scheme(INT4_G128, "gptq")
    assert s.method is Method.GPTQ and s.label == "int4 g128 · GPTQ"
    with pytest.raises(ValueError, match="not allowed for a whole model"):
        Scheme(INT4_G128, Method.SMOOTHQUANT)
    with pytest.raises(ValueError, match="spec must be a QuantSpec"):
        Scheme("int4", Method.RTN)
    with pytest.raises(ValueError, match="name a Linear twice"):
        Scheme(INT4_G128, overrides=(Override("a"), Override("a", INT4_G128)))
    with pytest.raises(ValueError, match="override spec must be a QuantSpec or None"):
        Override("a", "int8")
    t = s.with_overrides(["x", "y"], None).with_overrides(["y"], make_spec("int8", "channel"))
    assert t.spec_for("x") is None and t.spec_for("y").label == "int8 per-channel" and t.spec_for("z") == INT4_G128
    assert "+ 2 layers at fp16, int8 per-channel" in t.label
    with pytest.raises(ValueError, match="unknown Linears"):
        t.check_names(linear_names())
    with pytest.raises(ValueError, match="unknown scheme 'int5'"):
        catalog_scheme("int5")


def test_bits_per_weight_counts_scales_and_kept_layers(minilm):
    shapes = linear_shapes(minilm, linear_names())
    total = sum(a * b for a, b in shapes.values())
    assert total == 6 * (4 * 384 * 384 + 2 * 384 * 1536)
    assert scheme_bits_per_weight(Scheme(INT4_G128), shapes) == pytest.approx(4 + 16 / 128)  # fp16 scale per 128
    kept = "encoder.layer.0.output.dense"
    s = Scheme(INT4_G128).with_overrides([kept], None)
    want = (4.125 * (total - 384 * 1536) + 16 * 384 * 1536) / total
    assert scheme_bits_per_weight(s, shapes) == pytest.approx(want)


def test_rtn_model_equals_fake_quantize_per_layer_and_base_is_untouched(minilm):
    before = {k: v.clone() for k, v in minilm.state_dict().items()}
    kept = "encoder.layer.3.intermediate.dense"
    q = quantize_model("minilm", Scheme(INT4_G128).with_overrides([kept], None), minilm)
    for n in linear_names():
        w = minilm.get_submodule(n).weight
        want = w.half().float() if n == kept else fake_quantize(w, INT4_G128)
        assert torch.equal(q.model.get_submodule(n).weight, want), n
    for k, v in minilm.state_dict().items():
        assert torch.equal(v, before[k]), f"base tensor {k} changed"
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in minilm.modules())
    # untouched tensors are shared, not copied
    assert q.model.embeddings.word_embeddings.weight.data_ptr() == minilm.embeddings.word_embeddings.weight.data_ptr()
    assert q.calibration_tokens == 0 and q.n_weights == 6 * (4 * 384 * 384 + 2 * 384 * 1536)
    assert len(q.layers) == 36 and {layer.spec for layer in q.layers if layer.name == kept} == {None}


def _inputs_of(model, name, texts):
    """The real inputs X [tokens, in] of Linear `name` of the unquantized model on `texts` (independent capture)."""
    got = []
    h = model.get_submodule(name).register_forward_hook(lambda m, a, o: got.append(a[0].reshape(-1, a[0].shape[-1])))
    try:
        with torch.no_grad():
            for t in texts:
                model(*model.tokenize([t]))
    finally:
        h.remove()
    return torch.cat(got)


def test_gptq_whole_model_beats_rtn_on_the_calibration_inputs(minilm):
    """Block 0 sees the unquantized inputs in both settings, so GPTQ's output error there must be below RTN's."""
    names = [n for n in linear_names() if n.startswith("encoder.layer.0.")]
    gptq, layers, tokens = quantized_weights("minilm", minilm, Scheme(INT4_G128, Method.GPTQ), only=names,
                                             texts=FEW_TEXTS)
    assert tokens == sum(len(minilm.tokenizer.encode(t).ids) for t in FEW_TEXTS) and set(gptq) == set(names)
    for n in ("encoder.layer.0.attention.self.query", "encoder.layer.0.output.dense"):
        x, w = _inputs_of(minilm, n, FEW_TEXTS), minilm.get_submodule(n).weight
        err = lambda w_hat: ((x @ (w - w_hat).T).norm() / (x @ w.T).norm()).item()  # noqa: E731
        assert err(gptq[n]) < 0.9 * err(fake_quantize(w, INT4_G128)), n


def test_sequential_calibration_changes_later_blocks_only(minilm):
    names = [n for n in linear_names() if n.startswith(("encoder.layer.0.", "encoder.layer.1."))]
    s = Scheme(INT4_G128, Method.GPTQ)
    seq, _, _ = quantized_weights("minilm", minilm, s, only=names, texts=FEW_TEXTS, propagate=True)
    alone, _, _ = quantized_weights("minilm", minilm, s, only=names, texts=FEW_TEXTS, propagate=False)
    for n in names:
        same = torch.equal(seq[n], alone[n])
        assert same == n.startswith("encoder.layer.0."), n  # block 1 saw quantized block-0 outputs


@pytest.mark.parametrize("method", [Method.AWQ, Method.AWQ_GPTQ])
def test_awq_kinds_run_on_a_block_and_differ_from_rtn(minilm, method):
    names = [n for n in linear_names() if n.startswith("encoder.layer.5.")]
    w_hat, layers, _ = quantized_weights("minilm", minilm, Scheme(INT4_G128, method), only=names, texts=FEW_TEXTS)
    assert [layer.method for layer in layers] == [method] * 6
    differs = [not torch.equal(w_hat[n], fake_quantize(minilm.get_submodule(n).weight, INT4_G128)) for n in names]
    assert any(differs) and all(torch.isfinite(w).all() for w in w_hat.values())


def test_quantize_model_follows_the_device(device):
    base = load_minilm(device)
    q = quantize_model("minilm", Scheme(make_spec("int8", "channel")), base)
    assert q.model.get_submodule(linear_names()[0]).weight.device.type == device.type
    emb = q.model.encode(["A short test sentence."])
    assert emb.device.type == device.type and torch.isfinite(emb).all()


def test_int8_per_channel_flips_very_few_decisions(sweep):
    r = sweep.result("INT8 per-channel · RTN")
    assert r.evaluation.whole.mean > 0.999
    for t in sweep.tasks:
        c = r.change(t.key)
        assert c.flip_rate <= 0.04, (t.key, len(c.flipped), c.n)
        assert abs(c.change) <= 3.0, (t.key, c.change)


def test_the_cliff_fine_task_loses_much_more_than_coarse_at_int4_per_tensor(sweep):
    r = sweep.result("INT4 per-tensor · RTN")
    topic, negation = r.change("topic"), r.change("negation")
    assert sweep.base.outcome("negation").score > 0.7  # the unquantized model does this fine task
    assert negation.damage > topic.damage + 25.0, (negation.damage, topic.damage)
    assert negation.flip_rate > 2 * topic.flip_rate


def test_find_cliffs_flips_and_summary_agree(sweep):
    m = sweep.damage_matrix()
    assert m.shape == (2, 4)
    cliffs = find_cliffs(sweep, 5.0)
    assert len(cliffs) == int((m > 5.0).sum()) and [c.damage for c in cliffs] == sorted(m[m > 5.0], reverse=True)
    assert all(c.scheme == "INT4 per-tensor · RTN" for c in find_cliffs(sweep, 10.0))
    with pytest.raises(ValueError, match="tolerance=-1"):
        find_cliffs(sweep, -1)
    # the cliff behind the best-looking average (highest mean cosine), its worst task
    for tol in (0.0, 10.0):
        cl = find_cliffs(sweep, tol)
        best = max(c.whole_mean for c in cl)
        h = hidden_cliff(sweep, tol)
        assert h.whole_mean == best and h.damage == max(c.damage for c in cl if c.whole_mean == best)
    assert hidden_cliff(sweep, 10.0).scheme == "INT4 per-tensor · RTN"
    assert hidden_cliff(sweep, 1000.0) is None
    task = sweep.task("negation")
    r = sweep.result("INT4 per-tensor · RTN")
    ex = flip_examples(task, sweep.base, r, limit=5)
    assert 0 < len(ex) <= 5
    for e in ex:
        item = task.items[e.index]
        assert e.prompt == item.query and e.before != e.after and {e.before, e.after} == set(item.choices)
        assert np.sign(e.margin_before) != np.sign(e.margin_after)  # two choices: a flip crosses zero
    rows = summary_rows(sweep)
    # one fp16 scale per output row: 16 x 3456 rows / 1,769,472 weights per block = 0.03125 bits per weight
    assert len(rows) == 8 and rows[0]["bits_per_weight"] == pytest.approx(8.03125, abs=1e-4)


def test_run_sweep_errors(minilm, small_tasks):
    with pytest.raises(ValueError, match="non-empty list of Scheme"):
        run_sweep("minilm", [], base=minilm, tasks=small_tasks)
    s = CATALOG["int8_ch"]
    with pytest.raises(ValueError, match="share a label"):
        run_sweep("minilm", [s, s], base=minilm, tasks=small_tasks)
