"""Error metrics of a quantized weight: what rounding did to W [out, in] and to the layer's output.

Definitions (all computed in float32 or float64 from real tensors):
- mse = mean((W - Ŵ)^2); rel_error = ||W - Ŵ||_F / ||W||_F; sqnr_db = 10 log10(||W||^2 / ||W - Ŵ||^2)
  (inf when Ŵ == W); max_abs_error; cosine between W and Ŵ flattened;
- clipped: weights beyond the format's largest level by more than half a step (saturated, so their error
  exceeds what rounding alone gives); zeroed: non-zero weights that came back as exactly 0;
- per-output-channel (row) and per-input-channel (column) mean squared error;
- output_rel_error = ||X W^T - X Ŵ^T||_F / ||X W^T||_F on activations X [tokens, in] (GPTQ's and AWQ's
  objective, arXiv 2210.17323 / 2306.00978).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from explorer.quantize import QuantResult, dequantize
from explorer.storage import storage


@dataclass(frozen=True)
class WeightMetrics:
    mse: float
    rel_error: float
    sqnr_db: float
    max_abs_error: float
    cosine: float
    clipped_frac: float
    zeroed_frac: float
    bits_per_weight: float
    packed_bytes: int

    def as_dict(self) -> dict:
        return asdict(self)


def _clip_bounds(result: QuantResult) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-span (lo, hi) beyond which a weight is saturated: the extreme levels plus half a step. [rows, n]"""
    grid = result.spec.format.grid
    lo_code, hi_code = result.code_range()
    step_lo = grid[1] - grid[0] if len(grid) > 1 else 0.0
    step_hi = grid[-1] - grid[-2] if len(grid) > 1 else 0.0
    zero = result.zeros if result.zeros is not None else 0.0
    lo = (lo_code - step_lo / 2 - zero) * result.scales
    hi = (hi_code + step_hi / 2 - zero) * result.scales
    # A span whose scale underflowed to 0 (an NVFP4 block far below the tensor's max) loses its weights to
    # underflow, which `zeroed` counts; it clips nothing.
    dead = result.scales == 0
    return lo.masked_fill(dead, -math.inf), hi.masked_fill(dead, math.inf)


def clipped_mask(w: torch.Tensor, result: QuantResult) -> torch.Tensor:
    """Bool [out, in]: weights outside the representable range of their span (see module docstring)."""
    out, n_in = w.shape
    lo, hi = _clip_bounds(result)
    if lo.shape[0] == 1 and out > 1:  # per-tensor: one span for everything
        lo, hi = lo.expand(out, -1), hi.expand(out, -1)
    lo = lo.repeat_interleave(result.span, dim=1)[:, :n_in] if lo.shape[1] > 1 else lo
    hi = hi.repeat_interleave(result.span, dim=1)[:, :n_in] if hi.shape[1] > 1 else hi
    x = w.float()
    return (x < lo) | (x > hi)


def weight_metrics(w: torch.Tensor, result: QuantResult, w_hat: torch.Tensor | None = None) -> WeightMetrics:
    """Metrics of W [out, in] against its quantized form (Ŵ recomputed unless given)."""
    if w_hat is None:
        w_hat = dequantize(result)
    x = w.double()
    err = x - w_hat.double()
    sig = float((x * x).sum())
    noise = float((err * err).sum())
    st = storage(result.spec, tuple(w.shape))
    nw = float(w_hat.double().norm())
    cos = float((x * w_hat.double()).sum()) / (math.sqrt(sig) * nw) if sig > 0 and nw > 0 else float(sig == 0 and nw == 0)
    return WeightMetrics(
        mse=noise / w.numel(),
        rel_error=math.sqrt(noise / sig) if sig > 0 else (0.0 if noise == 0 else math.inf),
        sqnr_db=10 * math.log10(sig / noise) if noise > 0 and sig > 0 else (math.inf if noise == 0 else -math.inf),
        max_abs_error=float(err.abs().max()),
        cosine=cos,
        clipped_frac=float(clipped_mask(w, result).float().mean()),
        zeroed_frac=float(((w_hat == 0) & (w != 0)).float().mean()),
        bits_per_weight=st.bits_per_weight,
        packed_bytes=st.packed_bytes,
    )


def channel_errors(w: torch.Tensor, w_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(row_mse [out], col_mse [in]) float32: mean squared error per output and per input channel."""
    err2 = (w.float() - w_hat.float()).square()
    return err2.mean(dim=1), err2.mean(dim=0)


def output_rel_error(x: torch.Tensor, w: torch.Tensor, w_hat: torch.Tensor, chunk: int = 4096) -> float:
    """||X W^T - X Ŵ^T||_F / ||X W^T||_F for X [tokens, in], W and Ŵ [out, in] (float32, chunked over tokens)."""
    if x.dim() != 2 or x.shape[1] != w.shape[1]:
        raise ValueError(f"activations of shape {tuple(x.shape)} do not fit W {tuple(w.shape)}; "
                         f"allowed: [tokens, {w.shape[1]}]")
    wf, dw = w.float(), (w.float() - w_hat.float())
    num = den = 0.0
    for start in range(0, x.shape[0], chunk):
        xs = x[start:start + chunk].float()
        num += float((xs @ dw.T).double().square().sum())  # X (W - Ŵ)^T: no cancellation between two big products
        den += float((xs @ wf.T).double().square().sum())
    if den == 0:
        return 0.0 if num == 0 else math.inf
    return math.sqrt(num / den)
