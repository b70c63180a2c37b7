"""GPTQ (Frantar et al. 2022, arXiv 2210.17323; IST-DASLab/gptq `gptq.py`, GPTQ.add_batch and fasterquant).

Quantizes W [out, in] one input column at a time and spreads each column's rounding error over the columns
not yet quantized, weighted by the inverse Hessian of the layer's output error, H = 2 X^T X / tokens:
- H is accumulated in streaming batches as a running mean (`HessianAccumulator`); the reference counts
  sequences, this counts tokens, which scales H by a constant: the same Ŵ, losses in per-token units;
- dead inputs (H_ii = 0) get H_ii = 1 and W[:, i] = 0; damping adds `damp` x mean(diag H) to the diagonal;
- H^-1 enters through its upper Cholesky factor U (U^T U = H^-1), here computed as J L^-1 J with L the lower
  Cholesky factor of J H J (J reverses the order): one factorisation and one triangular inverse instead of
  the reference's three factorisations, the same matrix up to float rounding;
- columns go in blocks of 128 with lazy batch updates of the columns after the block;
- scales: per tensor or per row from the whole matrix up front; per group either dynamic (computed when the
  first column of a group comes up, from the error-updated weights, in processing order) or static (computed
  once from the original W; with act-order each column keeps its original group);
- act-order: columns processed by descending diag(H), the permutation undone at the end.
Scales come from `explorer.quantize.quantize` on the group's columns, and each column is rounded with them by
`round_with_scales`, so the result is stored exactly as RTN stores it. float32 inside, on W's device.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from explorer.formats import format_names, get_format
from explorer.methods.common import check_activations, check_count, clock, round_with_scales, slice_spec
from explorer.quantize import QuantResult, check_weight, quantize, span_of
from explorer.specs import Granularity, QuantSpec, ScaleEncoding


class HessianAccumulator:
    """Streams calibration inputs into H = 2/N sum_t x_t x_t^T [in, in] float32 without keeping them.

    `add(x_batch)` takes [tokens, in] (or [..., in]); H lives on the first batch's device.
    """

    def __init__(self, in_features: int):
        self.in_features = check_count(in_features, "in_features")
        self.n_tokens = 0
        self._h: torch.Tensor | None = None

    def add(self, x_batch: torch.Tensor) -> "HessianAccumulator":
        if not isinstance(x_batch, torch.Tensor) or x_batch.dim() < 1:
            raise ValueError(f"x_batch must be a tensor [tokens, {self.in_features}]")
        x = x_batch.reshape(-1, x_batch.shape[-1]) if x_batch.dim() != 2 else x_batch
        check_activations(x, self.in_features, "x_batch")
        if self._h is None:
            self._h = torch.zeros(self.in_features, self.in_features, dtype=torch.float32, device=x.device)
        elif x.device != self._h.device:
            raise ValueError(f"x_batch is on {x.device} but H is on {self._h.device}; allowed: {self._h.device}")
        t = x.shape[0]
        self._h.mul_(self.n_tokens / (self.n_tokens + t))  # the running mean: old tokens' weight shrinks
        self.n_tokens += t
        xs = x.float() * math.sqrt(2.0 / self.n_tokens)
        self._h.addmm_(xs.T, xs)
        return self

    @property
    def hessian(self) -> torch.Tensor:
        """A copy of H [in, in] float32."""
        if self._h is None:
            raise ValueError("no calibration tokens were added; call add(x_batch) first")
        return self._h.clone()


def hessian_from(x: torch.Tensor, batch_tokens: int = 4096) -> torch.Tensor:
    """H = 2 X^T X / tokens [in, in] for X [tokens, in], streamed `batch_tokens` at a time."""
    check_count(batch_tokens, "batch_tokens")
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        raise ValueError(f"x must be a 2-D tensor [tokens, in], got {getattr(x, 'shape', type(x).__name__)}")
    acc = HessianAccumulator(x.shape[1])
    for start in range(0, x.shape[0], batch_tokens):
        acc.add(x[start:start + batch_tokens])
    return acc.hessian


def inverse_hessian_factor(h: torch.Tensor) -> torch.Tensor:
    """Upper-triangular U [n, n] with U^T U = H^-1, for a symmetric positive-definite H [n, n] float32."""
    low, info = torch.linalg.cholesky_ex(h.flip(0, 1))
    if int(info) != 0:
        raise ValueError("the damped Hessian is not positive definite; increase damp (e.g. 0.01 -> 0.1)")
    return _lower_inverse(low).flip(0, 1)


def _lower_inverse(low: torch.Tensor) -> torch.Tensor:
    """L^-1 for lower-triangular L [n, n], by halves: [[A, 0], [B, C]]^-1 = [[A^-1, 0], [-C^-1 B A^-1, C^-1]].

    n^3/3 multiply-adds in matrix products, where a triangular solve against the identity does n^3.
    """
    n = low.shape[0]
    if n <= 256:
        return torch.linalg.solve_triangular(low, torch.eye(n, dtype=low.dtype, device=low.device), upper=False)
    h = n // 2
    a_inv, c_inv = _lower_inverse(low[:h, :h]), _lower_inverse(low[h:, h:])
    out = torch.zeros_like(low)
    out[:h, :h] = a_inv
    out[h:, h:] = c_inv
    out[h:, :h] = -(c_inv @ (low[h:, :h] @ a_inv))
    return out


@dataclass(frozen=True, eq=False)
class GPTQResult:
    """GPTQ's output for W [out, in].

    quant: QuantResult in the project's format (dequantize(quant) == w_hat), or None for act-order with dynamic
      groups, whose groups are not contiguous inputs (stored with g_idx, as GPTQ checkpoints do);
    w_hat [out, in] in W's dtype; codes [out, in]; scales / zeros [rows, n_groups] (zeros: asymmetric INT only);
    g_idx [in] int64: the scale column of each input; losses [in] float32: GPTQ's per-column loss
      sum_rows (w - q)^2 / (2 [U]_jj^2) in original column order, losses_processing the same in processing
      order; perm [in] int64: position k processed column perm[k]; dead [in] bool: inputs with H_ii = 0.
    """

    quant: QuantResult | None
    w_hat: torch.Tensor
    codes: torch.Tensor
    scales: torch.Tensor
    zeros: torch.Tensor | None
    g_idx: torch.Tensor
    losses: torch.Tensor
    losses_processing: torch.Tensor
    perm: torch.Tensor
    dead: torch.Tensor
    seconds: float

    @property
    def total_loss(self) -> float:
        return float(self.losses.double().sum())


def dynamic_formats() -> list[str]:
    """Formats GPTQ takes with dynamic groups (all but those with a whole-matrix tensor scale: NVFP4)."""
    return [n for n in format_names() if get_format(n).scale_encoding is not ScaleEncoding.E4M3]


def _check_args(w, hessian, spec, block_size, damp) -> torch.Tensor:
    if not isinstance(spec, QuantSpec):
        raise ValueError(f"spec must be a QuantSpec, got {type(spec).__name__}")
    check_weight(w)
    check_count(block_size, "block_size")
    if isinstance(damp, bool) or not isinstance(damp, (int, float)) or not 0 <= damp < math.inf:
        raise ValueError(f"damp={damp!r} is not allowed; choose a finite number >= 0 (default 0.01)")
    h = hessian.hessian if isinstance(hessian, HessianAccumulator) else hessian
    n_in = w.shape[1]
    if not isinstance(h, torch.Tensor) or tuple(h.shape) != (n_in, n_in) or not h.is_floating_point():
        raise ValueError(f"hessian must be a float tensor [{n_in}, {n_in}] (or a HessianAccumulator), got "
                         f"{tuple(h.shape) if isinstance(h, torch.Tensor) else type(h).__name__}")
    if not bool(torch.isfinite(h).all()):
        raise ValueError("hessian holds NaN or Inf values; allowed: finite values only")
    return h


def gptq_quantize(w: torch.Tensor, hessian: torch.Tensor | HessianAccumulator, spec: QuantSpec, *,
                  block_size: int = 128, damp: float = 0.01, act_order: bool = False,
                  static_groups: bool = False) -> GPTQResult:
    """GPTQ-quantize W [out, in] with H [in, in] (a tensor or a HessianAccumulator). Never mutates inputs."""
    h = _check_args(w, hessian, spec, block_size, damp)
    n_in = w.shape[1]
    span = span_of(spec, n_in)
    dynamic = spec.granularity in (Granularity.GROUP, Granularity.BLOCK) and not static_groups
    if dynamic and spec.format.scale_encoding is ScaleEncoding.E4M3:
        raise ValueError(f"{spec.format.name} needs static_groups=True with GPTQ (its FP32 tensor scale is set "
                         f"once from the whole matrix); formats allowed with dynamic groups: {dynamic_formats()}")
    device = w.device
    start = clock(device)
    W = w.detach().to(torch.float32, copy=True)
    H = h.detach().to(device=device, dtype=torch.float32, copy=True)
    dead = H.diagonal() == 0
    H.diagonal()[dead] = 1.0
    W[:, dead] = 0.0
    fixed = None if dynamic else quantize(W, spec)  # static / per-row / per-tensor scales, from W up front
    if act_order:
        perm = torch.argsort(H.diagonal(), descending=True, stable=True)
        H = H[perm][:, perm]
    else:
        perm = torch.arange(n_in, device=device)
    H.diagonal().add_(damp * float(H.diagonal().mean()))
    U = inverse_hessian_factor(H)
    # W^T in processing order: each column of W becomes a contiguous row, so the per-column work is on
    # contiguous vectors and the rank-1 updates are row-major (the reference works on strided columns)
    Wt = W.T[perm].contiguous()
    Qt, Ct, losses, groups = _sweep(Wt, U, spec, span, block_size, fixed, (perm // span).tolist())

    inv = torch.argsort(perm)
    Q, codes = Qt[inv].T.contiguous(), Ct[inv].T.contiguous()
    natural = torch.arange(n_in, device=device) // span
    if fixed is not None:
        quant = QuantResult(spec, codes, fixed.scales, fixed.zeros, w.dtype, fixed.span, fixed.scale_codes,
                            fixed.tensor_scale)
        g_idx = natural  # span = in for TENSOR / CHANNEL: all zeros
    else:
        scales = torch.cat([g.scales for g in groups], dim=1)
        zeros = None if groups[0].zeros is None else torch.cat([g.zeros for g in groups], dim=1)
        sc_codes = None if groups[0].scale_codes is None else torch.cat([g.scale_codes for g in groups], dim=1)
        quant = None if act_order else QuantResult(spec, codes, scales, zeros, w.dtype, span, sc_codes)
        g_idx = natural[inv]  # processing position k belongs to group k // span
    return GPTQResult(
        quant=quant, w_hat=Q.to(w.dtype), codes=codes,
        scales=quant.scales if quant is not None else scales, zeros=quant.zeros if quant is not None else zeros,
        g_idx=g_idx, losses=losses[inv], losses_processing=losses, perm=perm, dead=dead,
        seconds=clock(device) - start)


def _sweep(Wt: torch.Tensor, U: torch.Tensor, spec: QuantSpec, span: int, block_size: int,
           fixed: QuantResult | None, group_of: list[int]):
    """The blocked GPTQ sweep over Wt [in, out] (W^T in processing order, updated in place).

    fixed: scales set up front (scale column of position j: group_of[j]), or None for dynamic groups, which
    are quantized here as their first column comes up. Returns (Q^T [in, out] float32, codes^T [in, out],
    losses [in] in processing order, the dynamic groups' QuantResults).
    """
    n_in = Wt.shape[0]
    Qt = torch.empty_like(Wt)
    Ct = None
    losses = torch.empty(n_in, dtype=torch.float32, device=Wt.device)
    groups: list[QuantResult] = []
    if fixed is not None:
        st = fixed.scales.T.contiguous()  # [n_spans, rows]: row `col` holds that scale column
        zt = None if fixed.zeros is None else fixed.zeros.T.contiguous()
    sc = zc = None
    for i1 in range(0, n_in, block_size):
        i2 = min(i1 + block_size, n_in)
        W1 = Wt[i1:i2].clone()
        E1 = torch.empty_like(W1)
        U1 = U[i1:i2, i1:i2]
        for i in range(i2 - i1):
            j = i1 + i
            if fixed is None and j % span == 0:
                g2 = min(j + span, n_in)
                rows = W1[i:g2 - i1]
                if g2 > i2:  # the group runs past this block: bring those columns up to date first
                    rows = torch.cat([rows, Wt[i2:g2] - U[i1:j, i2:g2].T @ E1[:i]])
                g = quantize(rows.T.contiguous(), slice_spec(spec))
                groups.append(g)
                sc, zc = g.scales[:, 0], None if g.zeros is None else g.zeros[:, 0]
            elif fixed is not None:
                col = group_of[j]
                sc, zc = st[col], None if zt is None else zt[col]
            wj = W1[i]
            c, q = round_with_scales(wj, sc, zc, spec)
            if Ct is None:
                Ct = torch.empty(Wt.shape, dtype=c.dtype, device=Wt.device)
            e = (wj - q).div_(U1[i, i])
            W1[i + 1:].addr_(U1[i, i + 1:], e, alpha=-1.0)  # error feedback inside the block (rank 1)
            E1[i] = e
            Qt[j] = q
            Ct[j] = c
        losses[i1:i2] = E1.square().sum(dim=1) / 2
        Wt[i2:].addmm_(U[i1:i2, i2:].T, E1, alpha=-1.0)  # lazy batch update of every later column
    return Qt, Ct, losses, groups
