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

Speed: X W^T is never recomputed, only X D^T for each candidate's weight error D (OutputError). The grid only ranks
candidates, so on a large layer its matmuls run in bfloat16 where the CPU has AMX tiles (`fast_matmul_dtype`; ~6x
float32 here; points within 0.5% of float32 on SmolLM2's massive activations); RTN's point and every point within
2% of the lowest are then measured again in float32, so the chosen alpha, the RTN loss and the final loss are
float32 values. D is built in row blocks that stay in cache where rows are independent.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from explorer.methods.common import (MATMUL_DTYPES, OutputError, check_activations, check_count, clock,
                                     fast_matmul_dtype)
from explorer.quantize import QuantResult, check_weight, dequantize, fake_quantize, quantize, span_of
from explorer.specs import Granularity, QuantSpec, ScaleEncoding

SCALE_FLOOR = 1e-4  # llm-awq clamps mean|x|^alpha here, so a silent channel does not get s = 0
_CLIP_BUFFER = 1 << 24  # floats per clip-search matmul chunk (64 MB)
_BF16_MIN_MACS = 1 << 28  # smaller grids stay float32: a candidate costs < 50 ms there and averages fewer terms
_REFINE_MARGIN = 0.02  # bfloat16 grid points this close to the lowest are re-measured in float32 (max error seen: 0.5%)
_ROW_BLOCK = 1 << 18  # elements per row block when building a candidate's error D (1 MB of float32: in L2)


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
    grid_dtype: torch.dtype = torch.float32

    def layer(self, name: str) -> AWQLayer:
        for item in self.layers:
            if item.name == name:
                return item
        raise ValueError(f"no Linear {name!r} in this AWQ group; allowed: {list(self.names)}")


@dataclass(frozen=True, eq=False)
class AWQResult:
    """AWQ on one Linear: as AWQGroupResult, with the Linear's quant, w_hat and clip_max at top level.

    losses (the curve) were ranked in grid_dtype matmuls; loss (the chosen scales, clipped if asked) in float32."""

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
    grid_dtype: torch.dtype = torch.float32


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


def _weight_error(w: torch.Tensor, s: torch.Tensor, spec: QuantSpec, out: torch.Tensor) -> torch.Tensor:
    """Q(W diag(s)) diag(s)^-1 - W for W [out, in] float32, s [in], written into `out` [out, in] (float32 or
    bfloat16) in row blocks that stay in cache - one pass over memory instead of five - where rows are
    quantized independently (not TENSOR granularity, not NVFP4's tensor-wide scale)."""
    rows_apart = (spec.granularity is not Granularity.TENSOR
                  and spec.format.scale_encoding is not ScaleEncoding.E4M3)
    step = max(1, _ROW_BLOCK // w.shape[1]) if rows_apart else w.shape[0]
    for r in range(0, w.shape[0], step):
        part = w[r:r + step]
        out[r:r + step] = fake_quantize(part * s, spec).float().div_(s).sub_(part)
    return out


def _grid(ws: list[torch.Tensor], act_mean: torch.Tensor, alphas: tuple[float, ...], spec: QuantSpec,
          err: OutputError, grid_dtype: torch.dtype) -> tuple[list[list[float]], list[float]]:
    """Output MSE of every alpha: (per Linear [n_linears][n_grid], of the group [n_grid]).

    In bfloat16 every point is first ranked there; then RTN's point (alpha 0) and every point within
    _REFINE_MARGIN of the lowest are measured again in float32, until the lowest point is a float32 one - so the
    chosen alpha and the RTN loss are exact, and a near-tie is never decided by bfloat16 rounding.
    """
    outs = [w.shape[0] for w in ws]
    tokens = err.tokens
    d = torch.empty(sum(outs), ws[0].shape[1], dtype=grid_dtype, device=ws[0].device)  # errors, stacked
    bounds = [0, *torch.tensor(outs).cumsum(0).tolist()]
    per_layer = [[0.0] * len(alphas) for _ in ws]
    group = [0.0] * len(alphas)

    def measure(i: int, how: OutputError) -> None:
        s = awq_scales(act_mean, alphas[i])
        # the error of W diag(s) quantized and folded back; X W^T itself is never recomputed
        for k, w in enumerate(ws):
            _weight_error(w, s, spec, d[bounds[k]:bounds[k + 1]])
        rows = how.sse_rows(d)
        for k, part in enumerate(rows.split(outs)):
            per_layer[k][i] = float(part.sum()) / (tokens * outs[k])
        group[i] = float(rows.sum()) / (tokens * sum(outs))

    fast = OutputError(err.x, grid_dtype) if grid_dtype != torch.float32 else None
    for i in range(len(alphas)):
        measure(i, fast or err)
    if fast is not None:
        d = torch.empty_like(d, dtype=torch.float32)
        exact: set[int] = set()
        todo = {0}
        while todo:
            for i in sorted(todo):
                measure(i, err)
            exact |= todo
            low = min(group)
            todo = {i for i, v in enumerate(group) if i not in exact and v <= low * (1 + _REFINE_MARGIN)}
    return per_layer, group


def awq_search_group(weights: Sequence[tuple[str, torch.Tensor]], x: torch.Tensor, spec: QuantSpec, *,
                     n_grid: int = 20, clip: bool = False, clip_grid: int = 20, max_shrink: float = 0.5,
                     clip_tokens: int = 512, grid_dtype: torch.dtype | None = None) -> AWQGroupResult:
    """AWQ for Linears W_i [out_i, in] that all read X [tokens, in]: one s for the group.

    grid_dtype: the matmul dtype that ranks the grid (None: `fast_matmul_dtype` of the device - bfloat16 on an
    AMX CPU, else float32 - for products of at least 2^28 multiply-adds per candidate, float32 below). Runs on the weights' device (X is moved there); never mutates its inputs.
    """
    if not isinstance(spec, QuantSpec):
        raise ValueError(f"spec must be a QuantSpec, got {type(spec).__name__}")
    pairs = _check_group(weights)
    n_in = pairs[0][1].shape[1]
    check_activations(x, n_in)
    check_count(n_grid, "n_grid")
    span_of(spec, n_in)  # ValueError now for a group wider than the row
    device = pairs[0][1].device
    if grid_dtype is None:
        big = x.shape[0] * n_in * sum(w.shape[0] for _, w in pairs) >= _BF16_MIN_MACS
        grid_dtype = fast_matmul_dtype(device) if big else torch.float32
    elif grid_dtype not in MATMUL_DTYPES:
        raise ValueError(f"grid_dtype={grid_dtype} is not allowed; choose one of {list(MATMUL_DTYPES)} or None")
    start = clock(device)
    x32 = x.to(device).float()
    ws = [w.float() for _, w in pairs]
    outs = [w.shape[0] for w in ws]
    tokens = x32.shape[0]
    err = OutputError(x32)
    act_mean = x32.abs().mean(dim=0)  # llm-awq get_act_scale

    alphas = tuple(torch.linspace(0.0, 1.0, n_grid, dtype=torch.float64).tolist())
    per_layer, group = _grid(ws, act_mean, alphas, spec, err, grid_dtype)
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
        # without clipping this is the grid's own float32 point (fake_quantize is bit-identical to quantize)
        sse = err.sse(w - w_hat32) if clip else per_layer[k][best] * tokens * outs[k]
        sse_total += sse
        layers.append(AWQLayer(name, quant, w_hat32.to(w_in.dtype), tuple(per_layer[k]), per_layer[k][0],
                               sse / (tokens * outs[k]), clip_max))
    return AWQGroupResult(
        names=tuple(n for n, _ in pairs), scales=s, alpha=float(alphas[best]), alphas=alphas,
        losses=tuple(group), rtn_loss=group[0],  # alphas[0] == 0: s = 1, plain RTN
        loss=sse_total / (tokens * sum(outs)), layers=tuple(layers), seconds=clock(device) - start,
        grid_dtype=grid_dtype)


def awq_search(w: torch.Tensor, x: torch.Tensor, spec: QuantSpec, *, n_grid: int = 20, clip: bool = False,
               clip_grid: int = 20, max_shrink: float = 0.5, clip_tokens: int = 512,
               grid_dtype: torch.dtype | None = None) -> AWQResult:
    """AWQ for one Linear W [out, in] on calibration activations X [tokens, in] (see awq_search_group)."""
    g = awq_search_group([("w", w)], x, spec, n_grid=n_grid, clip=clip, clip_grid=clip_grid,
                         max_shrink=max_shrink, clip_tokens=clip_tokens, grid_dtype=grid_dtype)
    layer = g.layers[0]
    return AWQResult(g.scales, g.alpha, g.alphas, g.losses, g.rtn_loss, g.loss, layer.quant, layer.w_hat,
                     layer.clip_max, g.seconds, g.grid_dtype)


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
