"""AWQ-style activation-aware scaling (Lin et al. 2023, arXiv 2306.00978; mit-han-lab/llm-awq
`awq/quantize/auto_scale.py` and `auto_clip.py`).

Per input channel j, s_j = mean_t |X_tj|^alpha (clamped at 1e-4), normalised by sqrt(max(s) * min(s)).
W is quantized as Q(W diag(s)) and folded back to Ŵ = Q(W diag(s)) diag(s)^-1, a drop-in replacement for W
(in a model the 1/s would be folded into the op that produces X). alpha runs over a grid linspace(0, 1, n):
llm-awq's own grid is i/20 for i < 20 (it stops at 0.95); this one includes 1.0, as llm-compressor's does.
The alpha with the lowest output MSE mean((X W^T - X Ŵ^T)^2) on the calibration tokens wins (the first one on a
tie, as llm-awq). alpha = 0 gives s = 1: plain round-to-nearest, exactly.

Linears that read one input (q/k/v, gate/up) share one s, chosen by the MSE of their concatenated outputs
(= the summed squared error). llm-awq scales them together too but judges s by the output of the whole attention
or MLP block, which needs the model; this judges the Linears' own outputs. Optional clip search (llm-awq auto_clip): per
scale span (group / row / block) shrink max|W s| by i/20 for i < 10 (down to 55%), keep the threshold with the
lowest output MSE of that span, measured on every (tokens // 512)-th token of X / s (llm-awq's stride).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from explorer.methods.common import OutputError, check_activations, check_count, clock
from explorer.quantize import QuantResult, check_weight, dequantize, fake_quantize, quantize, span_of
from explorer.specs import Granularity, QuantSpec

SCALE_FLOOR = 1e-4  # llm-awq clamps mean|x|^alpha here, so a silent channel does not get s = 0
_CLIP_BUFFER = 1 << 24  # floats per clip-search matmul chunk (64 MB)


@dataclass(frozen=True, eq=False)
class AWQLayer:
    """One Linear of an AWQ group, scaled with the group's s.

    quant: the QuantResult of W diag(s) (clipped when the clip search ran); w_hat [out, in] = its dequantized
    value / s, in W's dtype; losses: this Linear's own output MSE at each alpha (its share of the group's);
    rtn_loss: its MSE with plain RTN; loss: its MSE with the chosen s (and clip); clip_max [out, n_spans]:
    the per-span clip thresholds applied to W diag(s), or None without clip search.
    """

    name: str
    quant: QuantResult
    w_hat: torch.Tensor
    losses: tuple[float, ...]
    rtn_loss: float
    loss: float
    clip_max: torch.Tensor | None


@dataclass(frozen=True, eq=False)
class AWQGroupResult:
    """AWQ on Linears sharing one input: scales [in] float32, the chosen alpha, the grid and the group's output
    MSE at every grid point, its RTN MSE and its final MSE (after clip), one AWQLayer per Linear, seconds."""

    names: tuple[str, ...]
    scales: torch.Tensor
    alpha: float
    alphas: tuple[float, ...]
    losses: tuple[float, ...]
    rtn_loss: float
    loss: float
    layers: tuple[AWQLayer, ...]
    seconds: float

    def layer(self, name: str) -> AWQLayer:
        for item in self.layers:
            if item.name == name:
                return item
        raise ValueError(f"no Linear {name!r} in this AWQ group; allowed: {list(self.names)}")


@dataclass(frozen=True, eq=False)
class AWQResult:
    """AWQ on one Linear: as AWQGroupResult, with the Linear's quant, w_hat and clip_max at top level."""

    scales: torch.Tensor
    alpha: float
    alphas: tuple[float, ...]
    losses: tuple[float, ...]
    rtn_loss: float
    loss: float
    quant: QuantResult
    w_hat: torch.Tensor
    clip_max: torch.Tensor | None
    seconds: float


def awq_scales(act_mean: torch.Tensor, alpha: float) -> torch.Tensor:
    """mean|x| per input channel [in] -> AWQ scales [in] float32 for one alpha (llm-awq auto_scale)."""
    s = act_mean.float().pow(alpha).clamp(min=SCALE_FLOOR)
    return s / (s.max() * s.min()).sqrt()


def _check_group(weights) -> list[tuple[str, torch.Tensor]]:
    if isinstance(weights, (str, torch.Tensor)) or not isinstance(weights, Sequence) or not weights:
        raise ValueError("weights must be a non-empty list of (name, W [out, in]) pairs sharing one input")
    pairs = []
    for item in weights:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
            raise ValueError(f"each entry of weights must be a (name, W) pair, got {item!r:.60}")
        check_weight(item[1], f"weight {item[0]!r}")
        pairs.append(item)
    names = [n for n, _ in pairs]
    if len(set(names)) != len(names):
        raise ValueError(f"weights repeat a name: {names}; allowed: distinct names")
    widths = {n: w.shape[1] for n, w in pairs}
    if len(set(widths.values())) != 1:
        raise ValueError(f"Linears sharing one input must have equal in_features, got {widths}")
    devices = {str(w.device) for _, w in pairs}
    if len(devices) != 1:
        raise ValueError(f"weights of one group sit on several devices {sorted(devices)}; allowed: one")
    return pairs


def awq_search_group(weights: Sequence[tuple[str, torch.Tensor]], x: torch.Tensor, spec: QuantSpec, *,
                     n_grid: int = 20, clip: bool = False, clip_grid: int = 20, max_shrink: float = 0.5,
                     clip_tokens: int = 512) -> AWQGroupResult:
    """AWQ for Linears W_i [out_i, in] that all read X [tokens, in]: one s for the group.

    Runs on the weights' device (X is moved there); never mutates its inputs.
    """
    if not isinstance(spec, QuantSpec):
        raise ValueError(f"spec must be a QuantSpec, got {type(spec).__name__}")
    pairs = _check_group(weights)
    n_in = pairs[0][1].shape[1]
    check_activations(x, n_in)
    check_count(n_grid, "n_grid")
    span_of(spec, n_in)  # ValueError now for a group wider than the row
    device = pairs[0][1].device
    start = clock(device)
    x32 = x.to(device).float()
    ws = [w.float() for _, w in pairs]
    outs = [w.shape[0] for w in ws]
    tokens = x32.shape[0]
    err = OutputError(x32)
    act_mean = x32.abs().mean(dim=0)  # llm-awq get_act_scale

    alphas = tuple(torch.linspace(0.0, 1.0, n_grid, dtype=torch.float64).tolist())
    per_layer: list[list[float]] = [[] for _ in ws]
    group: list[float] = []
    for alpha in alphas:
        s = awq_scales(act_mean, alpha)
        # minus the error of W diag(s) quantized and folded back (the sign does not matter: it is squared);
        # in place on fake_quantize's fresh output, and X W^T itself is never recomputed
        d = [fake_quantize(w * s, spec).float().div_(s).sub_(w) for w in ws]
        rows = err.sse_rows(d[0] if len(d) == 1 else torch.cat(d))
        for k, part in enumerate(rows.split(outs)):
            per_layer[k].append(float(part.sum()) / (tokens * outs[k]))
        group.append(float(rows.sum()) / (tokens * sum(outs)))
    best = min(range(len(alphas)), key=group.__getitem__)  # first minimum, as llm-awq's strict '<'
    s = awq_scales(act_mean, alphas[best])

    layers = []
    sse_total = 0.0
    xs = x32 / s
    for k, ((name, w_in), w) in enumerate(zip(pairs, ws)):
        w_s = w * s
        clip_max = clip_search(w_s, xs, spec, n_grid=clip_grid, max_shrink=max_shrink,
                               n_tokens=clip_tokens) if clip else None
        quant = quantize(apply_clip(w_s, clip_max, spec) if clip else w_s, spec)
        w_hat32 = dequantize(quant).float() / s
        sse = err.sse(w - w_hat32)
        sse_total += sse
        layers.append(AWQLayer(name, quant, w_hat32.to(w_in.dtype), tuple(per_layer[k]), per_layer[k][0],
                               sse / (tokens * outs[k]), clip_max))
    return AWQGroupResult(
        names=tuple(n for n, _ in pairs), scales=s, alpha=float(alphas[best]), alphas=alphas,
        losses=tuple(group), rtn_loss=group[0],  # alphas[0] == 0: s = 1, plain RTN
        loss=sse_total / (tokens * sum(outs)), layers=tuple(layers), seconds=clock(device) - start)


def awq_search(w: torch.Tensor, x: torch.Tensor, spec: QuantSpec, *, n_grid: int = 20, clip: bool = False,
               clip_grid: int = 20, max_shrink: float = 0.5, clip_tokens: int = 512) -> AWQResult:
    """AWQ for one Linear W [out, in] on calibration activations X [tokens, in]."""
    g = awq_search_group([("w", w)], x, spec, n_grid=n_grid, clip=clip, clip_grid=clip_grid,
                         max_shrink=max_shrink, clip_tokens=clip_tokens)
    layer = g.layers[0]
    return AWQResult(g.scales, g.alpha, g.alphas, g.losses, g.rtn_loss, g.loss, layer.quant, layer.w_hat,
                     layer.clip_max, g.seconds)


def _units(w: torch.Tensor, spec: QuantSpec) -> tuple[torch.Tensor, int]:
    """W [out, in] -> ([out, n_spans, span] zero-padded, span). TENSOR and CHANNEL: one span per row."""
    out, n_in = w.shape
    span = span_of(spec, n_in)
    pad = (-n_in) % span
    return torch.nn.functional.pad(w, (0, pad)).reshape(out, -1, span), span


def apply_clip(w: torch.Tensor, clip_max: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
    """Clamp W [out, in] to [-m, m] per scale span, m = clip_max [out, n_spans] (llm-awq apply_clip)."""
    units, _ = _units(w.float(), spec)
    m = clip_max.unsqueeze(-1)
    return units.clamp(-m, m).reshape(w.shape[0], -1)[:, :w.shape[1]]


def clip_search(w: torch.Tensor, x: torch.Tensor, spec: QuantSpec, *, n_grid: int = 20,
                max_shrink: float = 0.5, n_tokens: int = 512) -> torch.Tensor:
    """Per-span clip thresholds [out, n_spans] for W [out, in] on X [tokens, in] (llm-awq auto_clip_layer).

    Candidates max|W_span| * (1 - i / n_grid) for i < int(max_shrink * n_grid); a span keeps the one whose
    clipped, quantized weights give its partial output X_span W_span^T the lowest MSE on every
    (tokens // n_tokens)-th token. With TENSOR granularity the whole matrix shares one threshold.
    """
    check_count(n_grid, "clip_grid")
    check_count(n_tokens, "clip_tokens")
    if not 0.0 <= max_shrink < 1.0:
        raise ValueError(f"max_shrink={max_shrink!r} is not allowed; choose 0 <= max_shrink < 1")
    w32 = w.float()
    units, span = _units(w32, spec)
    xsub = x.float()[::max(1, x.shape[0] // n_tokens)]
    xu, _ = _units(xsub, spec)                   # [t, n_spans, span]
    xu = xu.permute(1, 0, 2)                     # [n_spans, t, span]
    amax = units.abs().amax(dim=-1)              # [out, n_spans]
    if spec.granularity is Granularity.TENSOR:
        amax = amax.max().expand_as(amax).clone()
    best_err = torch.full_like(amax, float("inf"), dtype=torch.float64)
    best_max = amax.clone()
    chunk = max(1, _CLIP_BUFFER // max(1, xu.shape[1] * w.shape[0]))
    for i in range(int(max_shrink * n_grid)):
        m = amax * (1 - i / n_grid)
        d, _ = _units(w32 - fake_quantize(apply_clip(w32, m, spec), spec).float(), spec)
        d = d.permute(1, 2, 0)                   # [n_spans, span, out]
        e = torch.cat([torch.bmm(xu[c:c + chunk], d[c:c + chunk]).double().square().mean(dim=1)
                       for c in range(0, d.shape[0], chunk)]).T  # [out, n_spans]
        if spec.granularity is Granularity.TENSOR:
            e = e.sum().expand_as(e)
        better = e < best_err
        best_err = torch.where(better, e, best_err)
        best_max = torch.where(better, m, best_max)
    return best_max
