"""Mergeable histograms: exact counts, data-following range, exact merges."""
import numpy as np
import pytest
import torch

from explorer.histogram import CellCounts, histogram, merge


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


# ---- CellCounts: binning by bit patterns, exact once the range is known ----

def _tricky(seed: int, n: int = 4000) -> torch.Tensor:
    """Random values plus values exactly on bin edges of both signs, +-0.0 and subnormals."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, generator=g) * 10 ** float(torch.empty(1).uniform_(-5, 3, generator=g))
    r = 2.0 ** np.ceil(np.log2(float(x.abs().max())))
    x[:512] = torch.arange(-256, 256).float() / 256 * r  # every edge of a 512-bin histogram, and more
    x[512:520] = torch.tensor([0.0, -0.0, 0.0, -0.0, 1e-42, -1e-42, 3e-44, -3e-44])
    return x


@pytest.mark.parametrize("bins", [2, 8, 256, 512])
@pytest.mark.parametrize("seed", range(4))
def test_cell_counts_rebin_exactly_into_the_histogram(bins, seed):
    x = _tricky(seed)
    cells = CellCounts()
    for part in x.split(777):  # chunks, as explorer.analysis adds them
        cells.add(part)
    h = cells.histogram(float(x.abs().max()), bins)
    assert h.half_range == histogram(x, bins).half_range and h.total == x.numel()
    # numpy compares every value with the float64 edges: the exact assignment of edge values to [a, b) bins
    assert np.array_equal(h.counts, np.histogram(x.numpy().astype(np.float64), h.edges)[0])


def test_cell_counts_take_strided_views_and_a_scratch_buffer():
    x = torch.randn(40, 30, generator=torch.Generator().manual_seed(5))
    a, b = CellCounts(), CellCounts()
    a.add(x[1::3])  # every third row: a strided view
    b.add(x[1::3].contiguous(), scratch=torch.empty(2000, dtype=torch.int32))
    assert torch.equal(a.counts, b.counts) and int(a.counts.sum()) == x[1::3].numel()
    amax = float(x[1::3].abs().max())
    assert np.array_equal(a.histogram(amax, 64).counts, histogram(x[1::3], 64).counts)


def test_cell_counts_bad_arguments():
    with pytest.raises(ValueError, match=r"bins=1024 is not allowed; choose a power of two in 2\.\.512"):
        CellCounts().histogram(1.0, 1024)
    with pytest.raises(ValueError, match="bins=100 is not allowed"):
        CellCounts().histogram(1.0, 100)
    with pytest.raises(ValueError, match="mantissa_bits=20 is not allowed"):
        CellCounts(mantissa_bits=20)
    assert CellCounts(mantissa_bits=9).histogram(1.0, 1024).bins == 1024


def test_cell_counts_count_non_zero_values_below_a_power_of_two():
    v = 2.0 ** -37
    x = torch.tensor([0.0, -0.0, 0.0, 2.0 ** -40, -(2.0 ** -40), v, 1e-45, -1e-45, 1.0, -3.0, v * 1.0001, v * 0.9999])
    c = CellCounts()
    c.add(x)
    truth = int(((x.abs() < v) & (x != 0)).sum())
    assert c.nonzero_below(v, zeros=3) == truth == 5
    c.add(torch.tensor([-v]))  # a negative cell holds magnitudes (a, b]: -v is counted, conservatively
    assert c.nonzero_below(v, zeros=3) == 6
    assert c.nonzero_below(2.0 ** -126, zeros=3) == 2 and c.nonzero_below(2.0 ** 127, zeros=3) == 10
    for bad in (3.0, 2.0 ** -127, 0.0):
        with pytest.raises(ValueError, match=r"is not allowed; allowed: a power of two in \[2\^-126, 2\^127\]"):
            c.nonzero_below(bad, zeros=0)
