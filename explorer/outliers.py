"""Activation outliers: which input channels of a model's Linears carry huge values, and which weights they hit.

Inputs are per-input-channel statistics of real activations (mean|x| and max|x| over calibration tokens, as
`explorer.samples.activation_stats` returns them) and weight matrices W [out, in]. Everything is a pure function.
- LLM.int8() (Dettmers et al. 2022, arXiv 2208.07339, section 3.2) treats features of magnitude >= 6.0 as
  outliers and keeps them in 16 bits: `over_threshold`.
- AWQ (Lin et al. 2023, arXiv 2306.00978, section 3.1) finds that protecting ~1% of salient input channels, picked
  by activation magnitude, recovers most of the error; `saliency` ranks channels by mean|x_j| * mean|W[:, j]|,
  the size of the channel's contribution to the output.
- Outlier channels recur: the same channel index is among the largest in many layers (MiniLM's 99, 157, 223, 63),
  because the residual stream carries them from block to block: `recurring_channels`.
Rows of a model-wide matrix follow the registry's input groups (explorer.models.registry): Linears that read one
shared input (q/k/v) have identical statistics, so each block contributes one row per group.
"""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import torch

from explorer.models.registry import model_info
from explorer.quantize import check_weight

LLM_INT8_THRESHOLD = 6.0  # LLM.int8(), arXiv 2208.07339: outlier features have magnitude >= 6.0
AWQ_FRACTION = 0.01       # AWQ, arXiv 2306.00978: keeping 1% of salient channels in fp16 recovers most error


class Stat(enum.Enum):
    """Which per-channel statistic of |x| (the index into activation_stats' (mean, max) pair)."""

    MEAN = "mean"
    MAX = "max"

    @property
    def index(self) -> int:
        return 0 if self is Stat.MEAN else 1


@dataclass(frozen=True)
class GroupRows:
    """One input group of a model, resolved for every block.

    name: the registry's group name ('qkv', 'attention.self', 'down', ...); label: 'input of {q, k, v}';
    fed_by: what computes the input; linears[b]: full names of the Linears of block b reading it; rows[b]: the
    one Linear whose statistics stand for block b (all of linears[b] share its input).
    """

    name: str
    label: str
    fed_by: str
    linears: tuple[tuple[str, ...], ...]

    @property
    def rows(self) -> tuple[str, ...]:
        return tuple(names[0] for names in self.linears)


def _short(names: Sequence[str]) -> str:
    """'attention.self.query', 'attention.self.key' -> 'attention.self.{query, key}'; one name stays itself."""
    if len(names) == 1:
        return names[0]
    parts = [n.split(".") for n in names]
    common = 0
    while all(len(p) > common + 1 and p[common] == parts[0][common] for p in parts):
        common += 1
    prefix = ".".join(parts[0][:common])
    tails = ", ".join(".".join(p[common:]) for p in parts)
    return f"{prefix + '.' if prefix else ''}{{{tails}}}"


def input_group_rows(model: str) -> list[GroupRows]:
    """The registry's input groups of `model` ('minilm', 'smollm2'), resolved for every block."""
    info = model_info(model)
    out = []
    for g in info.input_groups:
        per_block = tuple(tuple(info.block_prefix.format(i=b) + s for s in g.linears) for b in range(info.n_blocks))
        out.append(GroupRows(g.name, f"input of {_short(g.linears)}", g.fed_by, per_block))
    return out


def stats_matrix(stats: Mapping[str, tuple[torch.Tensor, torch.Tensor]], names: Sequence[str] | None = None,
                 stat: Stat = Stat.MAX) -> tuple[torch.Tensor, list[str]]:
    """Stack one statistic of the named Linears into matrix [layers, channels] float32 (row i = names[i]).

    stats: Linear name -> (mean|x| [in], max|x| [in]) as explorer.samples.activation_stats returns.
    names: the rows, in order (None: every Linear in `stats`); they must all have the same input width.
    """
    if not isinstance(stat, Stat):
        raise ValueError(f"stat={stat!r} is not allowed; choose one of {[s for s in Stat]}")
    names = list(stats) if names is None else list(names)
    if not names:
        raise ValueError("names is empty; allowed: at least one Linear name")
    missing = [n for n in names if n not in stats]
    if missing:
        raise ValueError(f"no statistics for {missing[:3]}; allowed names include {list(stats)[:4]} "
                         f"({len(stats)} in all)")
    rows = [stats[n][stat.index] for n in names]
    widths = sorted({r.numel() for r in rows})
    if len(widths) > 1 or any(r.dim() != 1 for r in rows):
        raise ValueError(f"the Linears have different input widths {widths}; allowed: names of one input "
                         f"width (one input group, see input_group_rows)")
    return torch.stack([r.float() for r in rows]), names


@dataclass(frozen=True)
class RecurringChannel:
    """An input channel that is among the k largest in several layers."""

    channel: int
    layers: int        # rows of the matrix where it is top-k
    of_layers: int     # rows in all
    peak: float        # its largest value over all rows
    peak_ratio: float  # largest value / that row's median channel


def recurring_channels(matrix: torch.Tensor, k: int = 3, min_layers: int = 2) -> list[RecurringChannel]:
    """Channels in the top k of at least `min_layers` rows of matrix [layers, channels] (all of them when the
    matrix has fewer rows), most layers first, then largest peak_ratio."""
    if matrix.dim() != 2 or matrix.numel() == 0:
        raise ValueError(f"matrix has shape {tuple(matrix.shape)}; allowed: [layers, channels], both >= 1")
    n_rows, n_ch = matrix.shape
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n_ch:
        raise ValueError(f"k={k!r} is not allowed; choose an integer in 1..{n_ch}")
    if isinstance(min_layers, bool) or not isinstance(min_layers, int) or min_layers < 1:
        raise ValueError(f"min_layers={min_layers!r} is not allowed; choose an integer >= 1")
    m = matrix.float()
    top = torch.topk(m, k, dim=1).indices                          # [layers, k]
    counts = torch.bincount(top.reshape(-1), minlength=n_ch)       # [channels]
    median = m.median(dim=1, keepdim=True).values
    ratio = torch.where(median > 0, m / median.clamp(min=torch.finfo(torch.float32).tiny),
                        torch.full_like(m, math.inf))
    peak, peak_ratio = m.amax(0), ratio.amax(0)
    need = min(min_layers, n_rows)
    found = [RecurringChannel(int(c), int(counts[c]), n_rows, float(peak[c]), float(peak_ratio[c]))
             for c in torch.nonzero(counts >= need).flatten().tolist()]
    return sorted(found, key=lambda r: (-r.layers, -r.peak_ratio, r.channel))


def _channel_vector(v: torch.Tensor, name: str) -> None:
    if not isinstance(v, torch.Tensor) or v.dim() != 1 or v.numel() == 0:
        raise ValueError(f"{name} must be a non-empty 1-D tensor [channels], got "
                         f"{tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__}")
    if not bool(torch.isfinite(v).all()) or bool((v < 0).any()):
        raise ValueError(f"{name} holds negative, NaN or Inf values; allowed: finite magnitudes >= 0")


def over_threshold(max_abs: torch.Tensor, threshold: float = LLM_INT8_THRESHOLD) -> torch.Tensor:
    """Indices [n] int64 (ascending) of channels whose max|x| >= threshold (LLM.int8()'s outlier rule)."""
    _channel_vector(max_abs, "max_abs")
    if not (isinstance(threshold, (int, float)) and math.isfinite(threshold) and threshold > 0):
        raise ValueError(f"threshold={threshold!r} is not allowed; choose a finite number > 0")
    return torch.nonzero(max_abs >= threshold).flatten()


def weight_channel_range(w: torch.Tensor) -> torch.Tensor:
    """max |W[:, j]| [in] float32: the range one per-input-channel scale would have to cover."""
    check_weight(w)
    return w.float().abs().amax(dim=0)


@dataclass(frozen=True, eq=False)
class Saliency:
    """AWQ-style saliency of every input channel of W [out, in].

    channels [in] int64, most salient first; scores, act, weight [in] float32 in channel order:
    scores = act * weight with act = mean|x_j| and weight = mean|W[:, j]|.
    """

    channels: torch.Tensor
    scores: torch.Tensor
    act: torch.Tensor
    weight: torch.Tensor

    def top(self, fraction: float = AWQ_FRACTION) -> torch.Tensor:
        """The ceil(fraction * in) most salient channels (at least one), most salient first."""
        return self.channels[:_count(fraction, self.channels.numel())]


def _count(fraction: float, n: int) -> int:
    """ceil(fraction * n), at least 1 (0.01 * 300 counts as 3, despite floating point)."""
    if isinstance(fraction, bool) or not (isinstance(fraction, (int, float)) and 0 < fraction <= 1):
        raise ValueError(f"fraction={fraction!r} is not allowed; choose a number in (0, 1]")
    return max(1, math.ceil(fraction * n - 1e-9))


def top_channels(values: torch.Tensor, fraction: float = AWQ_FRACTION) -> torch.Tensor:
    """Indices of the ceil(fraction * n) largest of values [n] (at least one), largest first."""
    _channel_vector(values, "values")
    return torch.argsort(values, descending=True, stable=True)[:_count(fraction, values.numel())]


def saliency(mean_abs_x: torch.Tensor, w: torch.Tensor) -> Saliency:
    """Rank the input channels of W [out, in] by mean|x_j| * mean|W[:, j]| (mean_abs_x [in], on w's device)."""
    _channel_vector(mean_abs_x, "mean_abs_x")
    check_weight(w)
    if mean_abs_x.numel() != w.shape[1]:
        raise ValueError(f"mean_abs_x has {mean_abs_x.numel()} channels but W {tuple(w.shape)} has "
                         f"{w.shape[1]} inputs; allowed: {w.shape[1]}")
    act = mean_abs_x.float().to(w.device)
    weight = w.float().abs().mean(dim=0)
    scores = act * weight
    order = torch.argsort(scores, descending=True, stable=True)
    return Saliency(order, scores, act, weight)
