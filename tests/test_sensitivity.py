"""Per-layer sensitivity on the real MiniLM: the ranking is reproducible and stable across probe sizes, a row
matches an independent one-layer measurement, and the mixed-precision plan's bits and effect are right."""
from __future__ import annotations

import pytest
import torch

from explorer.cliffs import CATALOG
from explorer.models.minilm import linear_names, load_minilm
from explorer.models.swap import with_weights
from explorer.quantize import fake_quantize
from explorer.scheme import linear_shapes
from explorer.sensitivity import EIGHT_BIT, EmbedProbe, LMProbe, layer_sensitivity, mixed_precision_plan
from explorer.storage import storage
from explorer.tasks import model_tasks
from explorer.whole_model import quantize_model

torch.set_num_threads(1)
INT4_T = CATALOG["int4_t"]


@pytest.fixture(scope="module")
def minilm():
    return load_minilm()


@pytest.fixture(scope="module")
def tasks():
    return model_tasks("minilm")


@pytest.fixture(scope="module")
def ranked(minilm, tasks):
    return layer_sensitivity("minilm", INT4_T, minilm, tasks, probe_size=24)


def test_ranking_is_reproducible_and_stable_across_probes(minilm, tasks, ranked):
    # every layer is measured alone, so re-running a subset of layers reproduces their part of the ranking exactly
    names = [n for n in linear_names() if n.startswith(("encoder.layer.0.", "encoder.layer.4."))]
    again = layer_sensitivity("minilm", INT4_T, minilm, tasks, names=names, probe_size=24)
    assert again.ranking() == [n for n in ranked.ranking() if n in names]
    assert [r.damage for r in again.layers] == [r.damage for r in ranked.layers if r.name in names]
    bigger = layer_sensitivity("minilm", INT4_T, minilm, tasks, names=names, probe_size=48)
    assert len(set(bigger.ranking()[:3]) & set(again.ranking()[:3])) >= 2
    assert len(set(bigger.ranking()[:6]) & set(again.ranking()[:6])) >= 5
    damages = [r.damage for r in ranked.layers]
    assert damages == sorted(damages, reverse=True) and sorted(ranked.ranking()) == sorted(linear_names())
    assert damages[0] > 10 * damages[-1]  # the ranking separates layers, it is not noise


def test_a_row_matches_an_independent_one_layer_measurement(minilm, tasks, ranked):
    top = ranked.layers[0]
    probe = EmbedProbe(minilm, tasks, 24)
    w = minilm.get_submodule(top.name).weight
    one = with_weights(minilm, {top.name: fake_quantize(w, INT4_T.spec)})
    cos = (one.encode(probe.sentences) * minilm.encode(probe.sentences)).sum(dim=1)
    assert top.damage == pytest.approx(float((1 - cos).mean()), rel=1e-5)
    assert top.numel == w.numel()


def test_plan_bits_and_effect(minilm, tasks, ranked):
    shapes = linear_shapes(minilm, linear_names())
    total = sum(a * b for a, b in shapes.values())
    none = mixed_precision_plan(ranked, 0, minilm)
    assert none.kept == () and none.bits_after == none.bits_before and none.scheme.overrides == ()
    plan = mixed_precision_plan(ranked, 3, minilm)
    assert plan.kept == tuple(ranked.ranking()[:3])
    extra = sum(storage(EIGHT_BIT, shapes[n]).total_bits - storage(INT4_T.spec, shapes[n]).total_bits
                for n in plan.kept)
    assert plan.bits_after == pytest.approx(plan.bits_before + extra / total)
    assert all(plan.scheme.spec_for(n) == EIGHT_BIT for n in plan.kept)
    probe = EmbedProbe(minilm, tasks, 48)
    plain = probe.damage(quantize_model("minilm", INT4_T, minilm).model).mean()
    planned = probe.damage(quantize_model("minilm", plan.scheme, minilm).model).mean()
    assert planned < 0.8 * plain  # keeping the 3 worst layers at 8 bits must visibly help


def test_errors(minilm, tasks, ranked):
    for k in (-1, 37, True, 2.0):
        with pytest.raises(ValueError, match=r"k=.* is not allowed"):
            mixed_precision_plan(ranked, k, minilm)
    with pytest.raises(ValueError, match="scheme must be a Scheme"):
        layer_sensitivity("minilm", INT4_T.spec, minilm, tasks)


def test_lm_probe_is_zero_for_the_same_model_and_positive_for_another():
    from test_tasks import ToyLM

    base, other = ToyLM(0), ToyLM(1)
    probe = LMProbe(base, (), n=16)
    assert probe.damage(base).max() == pytest.approx(0.0, abs=1e-6)
    assert probe.damage(other).mean() > 0.01
