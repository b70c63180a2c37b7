"""explorer.outliers: stats matrices, recurring channels, LLM.int8()'s threshold, AWQ saliency; real MiniLM data."""
import math

import pytest
import torch

from explorer import samples
from explorer.outliers import LLM_INT8_THRESHOLD, Stat, input_group_rows, over_threshold, recurring_channels, \
    saliency, stats_matrix, top_channels, weight_channel_range


def _stats():
    return {"a": (torch.tensor([1.0, 2.0, 3.0]), torch.tensor([4.0, 5.0, 6.0])),
            "b": (torch.tensor([0.5, 0.5, 0.5]), torch.tensor([7.0, 8.0, 9.0])),
            "wide": (torch.ones(5), torch.ones(5))}


def test_stats_matrix_stacks_the_chosen_statistic():
    m, names = stats_matrix(_stats(), ["b", "a"], Stat.MEAN)
    assert names == ["b", "a"]
    assert torch.equal(m, torch.tensor([[0.5, 0.5, 0.5], [1.0, 2.0, 3.0]]))
    m, _ = stats_matrix(_stats(), ["a", "b"], Stat.MAX)
    assert torch.equal(m, torch.tensor([[4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]))
    assert m.dtype == torch.float32


def test_stats_matrix_error_paths():
    with pytest.raises(ValueError, match="no statistics for"):
        stats_matrix(_stats(), ["a", "nope"])
    with pytest.raises(ValueError, match="different input widths"):
        stats_matrix(_stats(), ["a", "wide"])
    with pytest.raises(ValueError, match="different input widths"):
        stats_matrix(_stats())  # None = every Linear, and they differ here
    with pytest.raises(ValueError, match="empty"):
        stats_matrix(_stats(), [])
    with pytest.raises(ValueError, match="stat="):
        stats_matrix(_stats(), ["a"], "max")


def test_recurring_channels_finds_a_planted_outlier():
    g = torch.Generator().manual_seed(0)
    m = torch.rand(8, 64, generator=g)
    m[[0, 1, 2, 4, 5, 7], 17] = 50.0  # channel 17 huge in 6 of 8 layers
    m[[2, 6], 40] = 30.0              # channel 40 in 2 layers
    m[3, 9] = 99.0                    # channel 9 in one layer only: not recurring
    found = recurring_channels(m, k=1)
    assert [(r.channel, r.layers, r.of_layers) for r in found] == [(17, 6, 8)]
    found = recurring_channels(m, k=2)
    assert [r.channel for r in found][:2] == [17, 40] and found[1].layers == 2
    assert 9 not in [r.channel for r in found]
    assert found[0].peak == 50.0
    assert found[0].peak_ratio == pytest.approx(float((50.0 / m[[0, 1, 2, 4, 5, 7]].median(1).values).max()))
    # min_layers=1: every top-1 channel; 9 (99x) before 40 (30x, the top-1 of row 6) by peak ratio
    assert [r.channel for r in recurring_channels(m, k=1, min_layers=1)] == [17, 9, 40]


def test_recurring_channels_error_paths():
    with pytest.raises(ValueError, match="k="):
        recurring_channels(torch.ones(2, 4), k=5)
    with pytest.raises(ValueError, match="min_layers"):
        recurring_channels(torch.ones(2, 4), min_layers=0)
    with pytest.raises(ValueError, match="shape"):
        recurring_channels(torch.ones(4))


def test_over_threshold_is_inclusive_at_6():
    v = torch.tensor([0.0, 5.99, 6.0, 100.0, 1.0])
    assert over_threshold(v).tolist() == [2, 3]
    assert over_threshold(v, 1.0).tolist() == [1, 2, 3, 4]
    assert LLM_INT8_THRESHOLD == 6.0
    with pytest.raises(ValueError, match="negative"):
        over_threshold(torch.tensor([-1.0]))
    with pytest.raises(ValueError, match="1-D"):
        over_threshold(torch.ones(2, 2))
    with pytest.raises(ValueError, match="threshold"):
        over_threshold(v, 0.0)


def test_saliency_ranks_by_activation_times_weight_magnitude(device):
    w = torch.tensor([[1.0, -2.0, 0.1, 0.0], [3.0, 2.0, -0.1, 0.0]], device=device)
    x = torch.tensor([1.0, 1.0, 100.0, 1e6])
    before = w.clone()
    s = saliency(x, w)
    # mean|W[:, j]| = [2, 2, 0.1, 0]; scores = [2, 2, 10, 0]; ties keep channel order (stable)
    assert s.channels.tolist() == [2, 0, 1, 3]
    assert torch.allclose(s.scores.cpu(), torch.tensor([2.0, 2.0, 10.0, 0.0]))
    assert s.scores.device == w.device and torch.equal(w, before)
    assert s.top(0.25).tolist() == [2] and s.top(0.5).tolist() == [2, 0]


def test_saliency_top_one_percent_sizes_and_errors():
    s = saliency(torch.rand(384), torch.randn(8, 384))
    assert s.top().numel() == 4  # ceil(3.84)
    assert saliency(torch.rand(300), torch.randn(2, 300)).top().numel() == 3  # 0.01 * 300 is 3, not 4
    with pytest.raises(ValueError, match="fraction"):
        s.top(0)
    with pytest.raises(ValueError, match="channels but W"):
        saliency(torch.rand(10), torch.randn(4, 12))


def test_top_channels():
    v = torch.tensor([0.5, 3.0, 1.0, 3.0, 2.0])
    assert top_channels(v, 0.4).tolist() == [1, 3]  # ties keep channel order
    assert top_channels(v, 0.01).tolist() == [1]    # at least one
    assert top_channels(torch.arange(300.0)).tolist() == [299, 298, 297]
    with pytest.raises(ValueError, match="fraction"):
        top_channels(v, 1.5)
    with pytest.raises(ValueError, match="fraction"):
        top_channels(v, True)


def test_weight_channel_range():
    w = torch.tensor([[1.0, -5.0], [-3.0, 2.0]], dtype=torch.float16)
    assert weight_channel_range(w).tolist() == [3.0, 5.0]
    with pytest.raises(ValueError, match="dimension"):
        weight_channel_range(torch.ones(3))


def test_input_group_rows_follow_the_registry():
    groups = input_group_rows("minilm")
    assert [g.name for g in groups] == ["attention.self", "attention.output.dense", "intermediate.dense",
                                        "output.dense"]
    attn = groups[0]
    assert attn.label == "input of attention.self.{query, key, value}"
    assert len(attn.rows) == 6 and attn.rows[2] == "encoder.layer.2.attention.self.query"
    assert attn.linears[2] == ("encoder.layer.2.attention.self.query", "encoder.layer.2.attention.self.key",
                               "encoder.layer.2.attention.self.value")
    smol = {g.name: g for g in input_group_rows("smollm2")}
    assert smol["qkv"].label == "input of {q, k, v}" and len(smol["down"].rows) == 30
    with pytest.raises(ValueError, match="unknown model"):
        input_group_rows("gpt2")


def test_real_minilm_channel_99_recurs():
    stats = samples.activation_stats("minilm")
    attn = input_group_rows("minilm")[0]
    m, _ = stats_matrix(stats, attn.rows, Stat.MAX)
    assert m.shape == (6, 384)
    found = {r.channel: r for r in recurring_channels(m, k=3)}
    assert 99 in found and found[99].layers >= 5
    ffn = next(g for g in input_group_rows("minilm") if g.name == "intermediate.dense")
    m, _ = stats_matrix(stats, ffn.rows, Stat.MAX)
    assert {99, 223, 63} <= {r.channel for r in recurring_channels(m, k=3)}


@pytest.mark.skipif("smollm2" not in samples.sample_models(), reason="SmolLM2 sample not built")
def test_real_smollm2_massive_activation_on_down_inputs():
    stats = samples.activation_stats("smollm2")
    mean, mx = stats["blocks.11.down"]
    assert float(mx.max()) > 1000 and float(mx.max() / mx.median()) > 1000
    assert over_threshold(mx).numel() >= 1
    assert math.isfinite(float(mean.sum()))
