"""Activation-aware quantization methods on real calibration activations, one module each:

- `awq`: AWQ-style per-input-channel scale search with optional clip search (arXiv 2306.00978, llm-awq);
- `gptq`: GPTQ with streaming Hessian, act-order and static/dynamic groups (arXiv 2210.17323, IST-DASLab/gptq);
- `smoothquant`: SmoothQuant-style migration of activation outliers into W (arXiv 2211.10438);
- `common`: checks, rounding with given scales, the output-error objective.
This file adds AWQ+GPTQ (AWQ's scales, then GPTQ on W diag(s) with X diag(s)^-1, folded back) and one dispatcher,
`run_method(Method.X, w, spec, x_calib)`, for the command line and the pages.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from types import MappingProxyType

import torch

from explorer.methods.awq import AWQGroupResult, AWQLayer, AWQResult, awq_search, awq_search_group
from explorer.methods.common import check_activations, clock, round_with_scales
from explorer.methods.gptq import GPTQResult, HessianAccumulator, gptq_quantize, hessian_from
from explorer.methods.smoothquant import SmoothResult, smoothquant
from explorer.metrics import output_rel_error
from explorer.quantize import check_weight, fake_quantize
from explorer.specs import QuantSpec


class Method(enum.Enum):
    RTN = "rtn"
    AWQ = "awq"
    GPTQ = "gptq"
    AWQ_GPTQ = "awq_gptq"
    SMOOTHQUANT = "smoothquant"


@dataclass(frozen=True, eq=False)
class AWQGPTQResult:
    """AWQ's scales s [in], then GPTQ on W diag(s) with H of X diag(s)^-1; w_hat = GPTQ's Ŵ diag(s)^-1."""

    awq: AWQResult
    gptq: GPTQResult
    w_hat: torch.Tensor
    seconds: float


@dataclass(frozen=True, eq=False)
class MethodResult:
    """What every method returns through `run_method`.

    w_hat [out, in] in W's dtype (a drop-in replacement for W); seconds: the method's own time; alpha: AWQ's
    chosen alpha or SmoothQuant's migration strength, else None; extras: headline numbers by name (read-only),
    always including `calib_output_rel_error` when calibration data was given; detail: the method's own result
    object (AWQResult, GPTQResult, AWQGPTQResult, SmoothResult) or None for RTN.
    """

    method: Method
    w_hat: torch.Tensor
    seconds: float
    alpha: float | None
    extras: MappingProxyType
    detail: object | None


def awq_gptq(w: torch.Tensor, x: torch.Tensor, spec: QuantSpec, *, n_grid: int = 20, block_size: int = 128,
             damp: float = 0.01, act_order: bool = False, static_groups: bool = False) -> AWQGPTQResult:
    """AWQ scale search (no clip: GPTQ sets its own scales), then GPTQ on the scaled problem, folded back."""
    a = awq_search(w, x, spec, n_grid=n_grid)
    start = clock(w.device)
    s = a.scales
    h = hessian_from(x.to(w.device).float() / s)
    g = gptq_quantize(w.float() * s, h, spec, block_size=block_size, damp=damp, act_order=act_order,
                      static_groups=static_groups)
    w_hat = (g.w_hat.float() / s).to(w.dtype)
    return AWQGPTQResult(a, g, w_hat, a.seconds + clock(w.device) - start)


def _method(value) -> Method:
    if isinstance(value, Method):
        return value
    allowed = [m.value for m in Method]
    if isinstance(value, str) and value in allowed:
        return Method(value)
    raise ValueError(f"method={value!r} is not allowed; choose one of {allowed}")


def run_method(method: Method, w: torch.Tensor, spec: QuantSpec, x_calib: torch.Tensor | None = None, *,
               n_grid: int = 20, clip: bool = False, block_size: int = 128, damp: float = 0.01,
               act_order: bool = False, static_groups: bool = False, smooth_alpha: float = 0.5) -> MethodResult:
    """Quantize W [out, in] with `spec` by `method`, calibrated on X [tokens, in] (RTN needs none).

    SMOOTHQUANT returns Q(W diag(s)) diag(s)^-1 as w_hat (the weight side of W8A8 with `spec` as the weight
    format) and the INT8 per-tensor activation errors before/after in extras.
    """
    method = _method(method)
    if not isinstance(spec, QuantSpec):
        raise ValueError(f"spec must be a QuantSpec, got {type(spec).__name__}")
    check_weight(w)
    if x_calib is None and method is not Method.RTN:
        raise ValueError(f"method {method.value!r} needs calibration activations x_calib [tokens, {w.shape[1]}]")
    if x_calib is not None:
        check_activations(x_calib, w.shape[1])
    alpha, detail, extras = None, None, {}
    if method is Method.RTN:
        start = clock(w.device)
        w_hat = fake_quantize(w, spec)
        seconds = clock(w.device) - start
    elif method is Method.AWQ:
        detail = awq_search(w, x_calib, spec, n_grid=n_grid, clip=clip)
        w_hat, seconds, alpha = detail.w_hat, detail.seconds, detail.alpha
        extras = {"rtn_loss": detail.rtn_loss, "loss": detail.loss}
    elif method is Method.GPTQ:
        start = clock(w.device)
        h = hessian_from(x_calib.to(w.device))
        detail = gptq_quantize(w, h, spec, block_size=block_size, damp=damp, act_order=act_order,
                               static_groups=static_groups)
        w_hat, seconds = detail.w_hat, clock(w.device) - start  # Hessian accumulation included
        extras = {"gptq_loss": detail.total_loss, "dead_inputs": float(detail.dead.sum())}
    elif method is Method.AWQ_GPTQ:
        detail = awq_gptq(w, x_calib, spec, n_grid=n_grid, block_size=block_size, damp=damp,
                          act_order=act_order, static_groups=static_groups)
        w_hat, seconds, alpha = detail.w_hat, detail.seconds, detail.awq.alpha
        extras = {"rtn_loss": detail.awq.rtn_loss, "awq_loss": detail.awq.loss,
                  "gptq_loss": detail.gptq.total_loss}
    else:
        start = clock(w.device)
        detail = smoothquant(w, x_calib, alpha=smooth_alpha, weight_spec=spec)
        s = detail.scales
        w_hat = (fake_quantize(w.float() * s, spec).float() / s).to(w.dtype)
        seconds, alpha = clock(w.device) - start, detail.alpha
        extras = {k: getattr(detail, k) for k in (
            "act_error_before", "act_error_after", "weight_error_before", "weight_error_after",
            "output_error_before", "output_error_after")}
    if x_calib is not None:
        extras["calib_output_rel_error"] = output_rel_error(x_calib.to(w.device), w, w_hat)
    return MethodResult(method, w_hat, seconds, alpha, MappingProxyType(dict(extras)), detail)


__all__ = ["AWQGPTQResult", "AWQGroupResult", "AWQLayer", "AWQResult", "GPTQResult", "HessianAccumulator",
           "Method", "MethodResult", "SmoothResult", "awq_gptq", "awq_search", "awq_search_group",
           "gptq_quantize", "hessian_from", "round_with_scales", "run_method", "smoothquant"]
