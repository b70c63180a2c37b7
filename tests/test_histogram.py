"""Mergeable histograms: exact counts, data-following range, exact merges."""
import numpy as np
import pytest
import torch

from explorer.histogram import histogram, merge


def test_counts_are_exact_and_range_is_the_next_power_of_two():
    x = torch.tensor([-3.0, -0.1, 0.0, 0.0, 0.5, 2.9])
    h = histogram(x, bins=8)
    assert h.half_range == 4.0 and h.total == 6
    assert h.edges.tolist() == [-4, -3, -2, -1, 0, 1, 2, 3, 4]
    assert h.counts.tolist() == [0, 1, 0, 1, 3, 0, 1, 0]
    assert histogram(torch.tensor([4.0]), bins=8).half_range == 4.0  # exactly a power of two: kept


def test_matches_numpy_on_random_data():
    x = torch.randn(100_000, generator=torch.Generator().manual_seed(0)) * 0.01
    h = histogram(x, bins=256)
    ref, _ = np.histogram(x.numpy().astype(np.float64), bins=h.edges)
    assert np.array_equal(h.counts, ref)


@pytest.mark.parametrize("signed", [True, False])
def test_merge_equals_the_histogram_of_the_union(signed):
    g = torch.Generator().manual_seed(1)
    parts = [torch.randn(5000, generator=g) * s for s in (1e-4, 0.3, 7.0)]
    if not signed:
        parts = [p.abs() for p in parts]
    hs = [histogram(p, bins=128, signed=signed) for p in parts]
    m = merge(merge(hs[0], hs[1]), hs[2])
    whole = histogram(torch.cat(parts), bins=128, signed=signed)
    assert m.half_range == whole.half_range
    assert np.array_equal(m.counts, whole.counts)


def test_empty_and_zero_histograms_merge_into_anything():
    x = torch.randn(1000, generator=torch.Generator().manual_seed(2))
    for z in (torch.zeros(10), torch.zeros(0)):
        assert np.array_equal(merge(histogram(z), histogram(x)).counts, histogram(torch.cat([z, x])).counts)


def test_bad_input():
    with pytest.raises(ValueError, match="bins=100 is not allowed"):
        histogram(torch.ones(3), bins=100)
    with pytest.raises(ValueError, match="NaN or Inf"):
        histogram(torch.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError, match="unsigned histogram needs non-negative"):
        histogram(torch.tensor([-1.0]), signed=False)
    with pytest.raises(ValueError, match="cannot merge"):
        merge(histogram(torch.ones(2), bins=8), histogram(torch.ones(2), bins=16))
