"""SmoothQuant-style difficulty migration (Xiao et al. 2022, arXiv 2211.10438; mit-han-lab/smoothquant
`smoothquant/smooth.py` smooth_ln_fcs).

Per input channel j: s_j = max_t |X_tj|^a / max_o |W_oj|^(1-a), both maxima clamped at 1e-5 from below as the
reference does (the weight maximum over every Linear that reads X), a = 0.5 by default (published Llama runs use
0.8-0.9). X' = X diag(s)^-1 and W' = W diag(s) give X' W'^T = X W^T exactly in real arithmetic; the point is
that X' has flatter channels, so quantizing activations (W8A8: INT8 per-tensor activations, INT8 per-channel
weights) loses less. Reported, before and after: the activation and the weight error as the mean over input
channels of each channel's relative error (`channel_error`: unchanged by the rescaling itself, and not dominated
by the outlier channels), and the output error ||X W^T - Q(X) Q(W)^T|| / ||X W^T|| against the unsmoothed X W^T.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from explorer.formats import make_spec
from explorer.methods.common import check_activations, clock
from explorer.quantize import check_weight, fake_quantize
from explorer.specs import QuantSpec

FLOOR = 1e-5  # smoothquant clamps weight maxima and scales here
_CHUNK = 4096  # tokens per matmul when measuring output error


def default_act_spec() -> QuantSpec:
    """INT8 per-tensor activations (quantize() on X [tokens, in]: CHANNEL would mean per-token)."""
    return make_spec("int8", "tensor")


def default_weight_spec() -> QuantSpec:
    """INT8 per-output-channel weights."""
    return make_spec("int8", "channel")


@dataclass(frozen=True, eq=False)
class SmoothResult:
    """SmoothQuant for W [out, in] on X [tokens, in]: scales [in] float32, X' [tokens, in] in X's dtype,
    W' [out, in] in W's dtype, and the quantization errors before (X, W) and after (X', W') smoothing."""

    alpha: float
    scales: torch.Tensor
    x_smooth: torch.Tensor
    w_smooth: torch.Tensor
    act_spec: QuantSpec
    weight_spec: QuantSpec
    act_error_before: float
    act_error_after: float
    weight_error_before: float
    weight_error_after: float
    output_error_before: float
    output_error_after: float
    seconds: float


def smoothing_scales(x: torch.Tensor, weights: Sequence[torch.Tensor], alpha: float = 0.5) -> torch.Tensor:
    """s [in] float32 from X [tokens, in] and every W [out_i, in] that reads X (smoothquant smooth_ln_fcs)."""
    act_max = x.float().abs().amax(dim=0)
    w_max = torch.stack([w.float().abs().amax(dim=0) for w in weights]).amax(dim=0).clamp(min=FLOOR)
    return (act_max.pow(alpha) / w_max.pow(1 - alpha)).clamp(min=FLOOR)


def channel_error(a: torch.Tensor, a_q: torch.Tensor) -> float:
    """Mean over input channels j (columns) of ||A_j - Q(A)_j|| / ||A_j|| (all-zero channels skipped).

    Invariant to rescaling a channel, so X vs X' (and W vs W') compare like with like; and it weighs every
    channel equally, where a Frobenius ratio would be dominated by the few outlier channels smoothing targets.
    """
    norm = a.double().norm(dim=0)
    err = (a.double() - a_q.double()).norm(dim=0)
    live = norm > 0
    return float((err[live] / norm[live]).mean()) if bool(live.any()) else 0.0


def w8a8_error(x: torch.Tensor, w: torch.Tensor, x_q: torch.Tensor, w_q: torch.Tensor) -> float:
    """||X W^T - X_q W_q^T||_F / ||X W^T||_F for X, X_q [tokens, in] and W, W_q [out, in], chunked over tokens.

    X_q, W_q may be quantized smoothed tensors (X' and W'): the reference stays the unsmoothed X W^T.
    """
    return _output_errors(x, w, [(x_q, w_q)])[0]


def _output_errors(x, w, candidates) -> list[float]:
    """w8a8_error for several (X_q, W_q) pairs, computing each chunk of X W^T once."""
    w = w.float()
    num, den = [0.0] * len(candidates), 0.0
    for start in range(0, x.shape[0], _CHUNK):
        ref = x[start:start + _CHUNK].float() @ w.T
        den += float(torch.linalg.vector_norm(ref).double() ** 2)
        for k, (x_q, w_q) in enumerate(candidates):
            diff = ref - x_q[start:start + _CHUNK].float() @ w_q.float().T
            num[k] += float(torch.linalg.vector_norm(diff).double() ** 2)
    return [math.sqrt(n / den) if den > 0 else (0.0 if n == 0 else math.inf) for n in num]


def smoothquant(w: torch.Tensor, x: torch.Tensor, *, alpha: float = 0.5,
                act_spec: QuantSpec | None = None, weight_spec: QuantSpec | None = None,
                shared: Sequence[torch.Tensor] = ()) -> SmoothResult:
    """Smooth W [out, in] and X [tokens, in]; `shared`: other weights [out_k, in] that read the same X and so
    must share s (q/k/v, gate/up). Runs on W's device; never mutates its inputs."""
    check_weight(w)
    check_activations(x, w.shape[1])
    for k, other in enumerate(shared):
        check_weight(other, f"shared[{k}]")
        if other.shape[1] != w.shape[1]:
            raise ValueError(f"shared[{k}] has {other.shape[1]} inputs but W has {w.shape[1]}; allowed: equal")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha={alpha!r} is not allowed; choose 0 <= alpha <= 1 (default 0.5)")
    act_spec = default_act_spec() if act_spec is None else act_spec
    weight_spec = default_weight_spec() if weight_spec is None else weight_spec
    for name, spec in (("act_spec", act_spec), ("weight_spec", weight_spec)):
        if not isinstance(spec, QuantSpec):
            raise ValueError(f"{name} must be a QuantSpec, got {type(spec).__name__}")
    device = w.device
    start = clock(device)
    x32, w32 = x.to(device).float(), w.float()
    s = smoothing_scales(x32, [w32, *(o.to(device) for o in shared)], alpha)
    xs, ws = x32 / s, w32 * s
    qx, qw = fake_quantize(x32, act_spec).float(), fake_quantize(w32, weight_spec).float()
    qxs, qws = fake_quantize(xs, act_spec).float(), fake_quantize(ws, weight_spec).float()
    before, after = _output_errors(x32, w32, [(qx, qw), (qxs, qws)])  # both against the unsmoothed X W^T
    return SmoothResult(
        alpha=float(alpha), scales=s, x_smooth=xs.to(x.dtype), w_smooth=ws.to(w.dtype),
        act_spec=act_spec, weight_spec=weight_spec,
        act_error_before=channel_error(x32, qx), act_error_after=channel_error(xs, qxs),
        weight_error_before=channel_error(w32, qw), weight_error_after=channel_error(ws, qws),
        output_error_before=before, output_error_after=after,
        seconds=clock(device) - start)
