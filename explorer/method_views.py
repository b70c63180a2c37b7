"""What the AWQ, GPTQ and Compare-methods pages and the command line's `--method` compute, on one layer W [out, in]
with its real inputs X [tokens, in] (explorer.methods does the methods themselves):

- `holdout_split`: calibrate on the first tokens, measure on the last ones (never seen by the method);
- `evaluate`: one method, its output error in-sample and held out (SmoothQuant: W·A8 with INT8 activations);
- `awq_view`, `gptq_view`, `compare_methods`: what a page draws, reduced to small numpy arrays;
- `extrapolate_gptq`: GPTQ's measured seconds scaled by FLOP counts to the real Linear shapes of a 7B and a 70B
  model (explorer.model_configs): an extrapolation from this machine, not a measurement.
Papers: AWQ arXiv 2306.00978, GPTQ arXiv 2210.17323, SmoothQuant arXiv 2211.10438.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from explorer.formats import get_format, make_spec
from explorer.methods import AWQResult, GPTQResult, Method, MethodResult, hessian_from, gptq_quantize, run_method
from explorer.methods.awq import apply_clip, awq_scales, clip_search
from explorer.methods.common import check_activations, clock
from explorer.methods.smoothquant import default_act_spec, w8a8_error
from explorer.metrics import output_rel_error
from explorer.model_configs import TensorKind, get_model_config, model_tensors
from explorer.outliers import AWQ_FRACTION, top_channels
from explorer.quantize import check_weight, fake_quantize
from explorer.specs import Kind, QuantSpec
from explorer.storage import storage

DEFAULT_HOLDOUT = 0.25
LABELS = {Method.RTN: "RTN", Method.AWQ: "AWQ", Method.GPTQ: "GPTQ", Method.AWQ_GPTQ: "AWQ+GPTQ",
          Method.SMOOTHQUANT: "SmoothQuant W·A8"}
COMPARE_METHODS = (Method.RTN, Method.AWQ, Method.GPTQ, Method.AWQ_GPTQ, Method.SMOOTHQUANT)
COMPARE_FORMATS = ("int3", "int4", "int8", "fp8_e4m3", "nf4")
REFERENCE_TOKENS = 128 * 2048  # IST-DASLab/gptq calibrates on 128 random 2048-token segments of C4
EXTRAPOLATE_MODELS = ("mistral_7b_v01", "llama31_70b")  # a 7B and a 70B model of explorer.model_configs
MIN_SALIENT = 8  # channels shown at least, where 1% of a small layer would be 4
# Measured on the bundled layers (re-measured by tests/test_method_views.py): GPTQ at 1% damping against RTN on the
# held-out 25% of each layer's 512 tokens, INT4 g128 symmetric: worse on this many of them, by up to this factor.
OVERFIT_LAYERS, OVERFIT_OF, OVERFIT_WORST = 6, 19, 1.21


def holdout_split(x: torch.Tensor, fraction: float = DEFAULT_HOLDOUT) -> tuple[torch.Tensor, torch.Tensor]:
    """X [tokens, in] -> (calibration X[:k], held-out X[k:]): the last round(fraction * tokens) tokens, at least
    one on each side. The bundled inputs run passage by passage, so the held-out tokens come from later text."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise ValueError(f"holdout={fraction!r} is not allowed; choose a fraction 0 < holdout < 1 (default 0.25)")
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[0] < 2:
        raise ValueError(f"activations must be a 2-D [tokens >= 2, in] tensor to split, got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    n = x.shape[0]
    held = min(max(int(round(n * fraction)), 1), n - 1)
    return x[:n - held], x[n - held:]


@dataclass(frozen=True, eq=False)
class Evaluation:
    """One method on one layer. Errors are ||X W^T - X Ŵ^T|| / ||X W^T||; for SmoothQuant the W·A8 error
    ||X W^T - Q(X/s) Q(W s)^T|| / ||X W^T|| with INT8 per-tensor activations, and `unsmoothed_error` the same
    without smoothing (s = 1) on the held-out tokens. result: the library's MethodResult (w_hat, detail)."""

    method: Method
    spec: QuantSpec
    calib_error: float
    holdout_error: float
    seconds: float
    alpha: float | None
    calib_tokens: int
    holdout_tokens: int
    result: MethodResult
    unsmoothed_error: float | None = None

    @property
    def label(self) -> str:
        return LABELS[self.method]


def evaluate(method: Method, w: torch.Tensor, x: torch.Tensor, spec: QuantSpec, *,
             holdout: float = DEFAULT_HOLDOUT, damp: float = 0.01, act_order: bool = False, clip: bool = False,
             smooth_alpha: float = 0.5) -> Evaluation:
    """Run `method` on W [out, in] calibrated on the first tokens of X [tokens, in]; measure on the rest."""
    check_weight(w)
    check_activations(x, w.shape[1], "activations")
    calib, held = holdout_split(x.to(w.device), holdout)
    r = run_method(method, w, spec, calib, damp=damp, act_order=act_order, clip=clip, smooth_alpha=smooth_alpha)
    unsmoothed = None
    if r.method is Method.SMOOTHQUANT:
        s, act = r.detail.scales, default_act_spec()
        w32, h32 = w.float(), held.float()
        calib_err = r.detail.output_error_after
        held_err = w8a8_error(h32, w32, fake_quantize(h32 / s, act), fake_quantize(w32 * s, spec))
        unsmoothed = w8a8_error(h32, w32, fake_quantize(h32, act), fake_quantize(w32, spec))
    else:
        calib_err = r.extras["calib_output_rel_error"]
        held_err = output_rel_error(held, w, r.w_hat)
    return Evaluation(r.method, spec, calib_err, held_err, r.seconds, r.alpha, calib.shape[0], held.shape[0], r,
                      unsmoothed)


# ---- AWQ page ----

def awq_at_alpha(w: torch.Tensor, x: torch.Tensor, spec: QuantSpec, alpha: float,
                 clip: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """AWQ's (scales [in] float32, Ŵ [out, in] in W's dtype) at a fixed alpha, as `awq_search` builds them at its
    chosen alpha: Q(W diag(s)) diag(s)^-1, clipped first when `clip`."""
    x32 = x.to(w.device).float()
    s = awq_scales(x32.abs().mean(dim=0), alpha)
    ws = w.float() * s
    if clip:
        ws = apply_clip(ws, clip_search(ws, x32 / s, spec), spec)
    return s, (fake_quantize(ws, spec).float() / s).to(w.dtype)


def column_rel_error(w: torch.Tensor, w_hat: torch.Tensor) -> torch.Tensor:
    """||W[:, j] - Ŵ[:, j]|| / ||W[:, j]|| per input channel j: [in] float32 (0 for an all-zero column)."""
    num = (w.float() - w_hat.float()).norm(dim=0)
    den = w.float().norm(dim=0)
    return torch.where(den > 0, num / den.clamp(min=1e-30), torch.zeros_like(num))


@dataclass(frozen=True, eq=False)
class AWQView:
    """Everything the AWQ page draws. Arrays over input channels are [in]; `salient`: the channels with the
    largest mean|x| (1%, at least MIN_SALIENT), largest first. index: the inspected grid point (best_index when
    the visitor kept the searched alpha); errors: output errors by name (rtn/awq x calib/holdout)."""

    spec: QuantSpec
    act_mean: np.ndarray
    alphas: np.ndarray
    losses: np.ndarray
    best_index: int
    index: int
    scales: np.ndarray
    salient: np.ndarray
    col_err_rtn: np.ndarray
    col_err_awq: np.ndarray
    errors: dict
    seconds: float
    calib_tokens: int
    holdout_tokens: int
    grid_dtype: str = "float32"  # the matmul dtype that ranked the grid (see explorer.methods.awq)

    @property
    def alpha(self) -> float:
        return float(self.alphas[self.index])


def awq_view(w: torch.Tensor, x: torch.Tensor, spec: QuantSpec, *, holdout: float = DEFAULT_HOLDOUT,
             index: int = -1, clip: bool = False) -> AWQView:
    """AWQ's 20-point search on the calibration tokens, then the inspected grid point (index -1: the searched one)."""
    ev = evaluate(Method.AWQ, w, x, spec, holdout=holdout, clip=clip)
    res: AWQResult = ev.result.detail
    n = len(res.alphas)
    best = res.alphas.index(res.alpha)
    if not (isinstance(index, int) and -1 <= index < n):
        raise ValueError(f"index={index!r} is not allowed; choose -1 (the searched alpha) or 0..{n - 1}")
    index = best if index == -1 else index
    calib, held = holdout_split(x.to(w.device), holdout)
    s, w_awq = awq_at_alpha(w, calib, spec, res.alphas[index], clip)
    w_rtn = fake_quantize(w, spec)
    act_mean = calib.float().abs().mean(dim=0)
    salient = top_channels(act_mean, min(1.0, max(AWQ_FRACTION, MIN_SALIENT / act_mean.numel())))
    errors = {"rtn_calib": output_rel_error(calib, w, w_rtn), "rtn_holdout": output_rel_error(held, w, w_rtn),
              "awq_calib": output_rel_error(calib, w, w_awq), "awq_holdout": output_rel_error(held, w, w_awq)}
    return AWQView(spec, _np(act_mean), np.asarray(res.alphas), np.asarray(res.losses), best, index, _np(s),
                   _np(salient), _np(column_rel_error(w, w_rtn)), _np(column_rel_error(w, w_awq)), errors,
                   ev.seconds, ev.calib_tokens, ev.holdout_tokens, str(res.grid_dtype).removeprefix("torch."))


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


# ---- GPTQ page ----

@dataclass(frozen=True)
class GPTQTiming:
    """Measured seconds of GPTQ on one layer [out, in] with `tokens` calibration tokens: building H, and the rest
    (damping, the Cholesky factor, the column sweep). `what` says which layer it was."""

    what: str
    out_features: int
    in_features: int
    tokens: int
    hessian_seconds: float
    quantize_seconds: float


@dataclass(frozen=True)
class Score:
    """An Evaluation without its tensors: what a page shows of one method."""

    label: str
    calib_error: float
    holdout_error: float
    seconds: float
    alpha: float | None
    calib_tokens: int
    holdout_tokens: int


@dataclass(frozen=True, eq=False)
class GPTQView:
    """What the GPTQ page draws: per-column losses in processing order without act-order (= column order) and
    with it, the columns act-order took at each step, one Score per compared method (RTN, GPTQ, GPTQ act-order,
    AWQ, AWQ+GPTQ), and GPTQ's timing (this layer's column-order run)."""

    spec: QuantSpec
    damp: float
    losses_order: np.ndarray
    losses_act: np.ndarray
    perm_act: np.ndarray
    rows: tuple[Score, ...]
    timing: GPTQTiming


def gptq_view(w: torch.Tensor, x: torch.Tensor, spec: QuantSpec, *, holdout: float = DEFAULT_HOLDOUT,
              damp: float = 0.01, on_progress: Callable[[int, int, str], None] | None = None) -> GPTQView:
    """RTN, GPTQ, GPTQ act-order, AWQ and AWQ+GPTQ on W [out, in], calibrated and measured on X's split."""
    plan = [("RTN", Method.RTN, False), ("GPTQ", Method.GPTQ, False), ("GPTQ act-order", Method.GPTQ, True),
            ("AWQ", Method.AWQ, False), ("AWQ+GPTQ", Method.AWQ_GPTQ, False)]
    rows = []
    for i, (label, method, act_order) in enumerate(plan):
        if on_progress is not None:
            on_progress(i, len(plan), label)
        rows.append(evaluate(method, w, x, spec, holdout=holdout, damp=damp, act_order=act_order))
    plain: GPTQResult = rows[1].result.detail
    act: GPTQResult = rows[2].result.detail
    timing = GPTQTiming(f"this layer {tuple(w.shape)}", w.shape[0], w.shape[1], rows[1].calib_tokens,
                        max(rows[1].seconds - plain.seconds, 0.0), plain.seconds)
    scores = tuple(Score(label, e.calib_error, e.holdout_error, e.seconds, e.alpha, e.calib_tokens, e.holdout_tokens)
                   for (label, _, _), e in zip(plan, rows))
    return GPTQView(spec, damp, _np(plain.losses_processing), _np(act.losses_processing), _np(act.perm), scores,
                    timing)


def gptq_probe(device: torch.device | str = "cpu", out_features: int = 4096, in_features: int = 4096,
               tokens: int = 2048, spec: QuantSpec | None = None) -> GPTQTiming:
    """Time GPTQ on a random [out, in] layer with `tokens` random inputs here (closer to a 7B model's shapes than
    a small sample layer, whose time is mostly per-column overhead). Only the seconds mean anything."""
    spec = spec or make_spec("int4", "group", 128)
    g = torch.Generator(device="cpu").manual_seed(0)
    w = (torch.randn(out_features, in_features, generator=g) * 0.02).to(device)
    x = torch.randn(tokens, in_features, generator=g).to(device)
    start = clock(w.device)
    h = hessian_from(x)
    h_seconds = clock(w.device) - start
    r = gptq_quantize(w, h, spec)
    return GPTQTiming(f"a random {out_features} x {in_features} layer", out_features, in_features, tokens,
                      h_seconds, r.seconds)


def gptq_fma(out_features: int, in_features: int, tokens: int) -> tuple[float, float]:
    """Multiply-adds of GPTQ on one layer: (H = 2 X^T X: tokens * in^2, the rest: out * in^2 / 2 for the column
    sweep's updates + in^3 / 3 for the Cholesky factor and its triangular inverse)."""
    n = float(in_features)
    return tokens * n * n, out_features * n * n / 2 + n ** 3 / 3


@dataclass(frozen=True)
class GPTQEstimate:
    """Extrapolated GPTQ time for every block Linear of a model (one H per Linear, as the reference does; the
    forward passes that capture X and the lm_head are not counted)."""

    model: str
    linears: int
    tokens: int
    hessian_seconds: float
    quantize_seconds: float

    @property
    def total_seconds(self) -> float:
        return self.hessian_seconds + self.quantize_seconds


def extrapolate_gptq(basis: GPTQTiming, model_key: str, tokens: int = REFERENCE_TOKENS) -> GPTQEstimate:
    """basis seconds x (multiply-adds of each real Linear / multiply-adds of the basis layer), summed."""
    cfg = get_model_config(model_key)
    shapes = [t.shape for t in model_tensors(cfg) if t.kind is TensorKind.LINEAR]
    h_basis, q_basis = gptq_fma(basis.out_features, basis.in_features, basis.tokens)
    h_s = q_s = 0.0
    for out, n_in in shapes:
        h, q = gptq_fma(out, n_in, tokens)
        h_s += basis.hessian_seconds * h / h_basis
        q_s += basis.quantize_seconds * q / q_basis
    return GPTQEstimate(cfg.display_name, len(shapes), tokens, h_s, q_s)


# ---- Compare methods page ----

def compare_specs(formats, granularity: str, group_size: int, symmetric: bool) -> list[QuantSpec]:
    """One spec per format: block formats in their block, others at `granularity`; zero points for INT only."""
    out = []
    for name in formats:
        fmt = get_format(name)
        out.append(make_spec(name, None if fmt.is_block else granularity, group_size,
                             symmetric or fmt.kind is not Kind.INT))
    return out


@dataclass(frozen=True)
class CompareRow:
    """One (method, format) cell; `skipped` holds the reason when the method cannot run this spec."""

    method: str
    format: str
    spec: str
    bits_per_weight: float
    calib_error: float | None
    holdout_error: float | None
    seconds: float | None
    alpha: float | None
    unsmoothed_error: float | None = None
    skipped: str = ""


def compare_methods(w: torch.Tensor, x: torch.Tensor, specs, *, holdout: float = DEFAULT_HOLDOUT,
                    damp: float = 0.01, smooth_alpha: float = 0.5, methods=COMPARE_METHODS,
                    on_progress: Callable[[int, int, str], None] | None = None) -> list[CompareRow]:
    """Every method x spec on W [out, in] with X's split; rows ordered by spec, then method. on_progress(done,
    total, label) is called before each cell."""
    rows, total = [], len(specs) * len(methods)
    for i, spec in enumerate(specs):
        bpw = storage(spec, tuple(w.shape)).bits_per_weight
        for j, method in enumerate(methods):
            if on_progress is not None:
                on_progress(i * len(methods) + j, total, f"{LABELS[method]} · {spec.label}")
            try:
                e = evaluate(method, w, x, spec, holdout=holdout, damp=damp, smooth_alpha=smooth_alpha)
            except ValueError as err:  # e.g. GPTQ with NVFP4's dynamic groups, a group wider than the row
                rows.append(CompareRow(LABELS[method], spec.format.name, spec.label, bpw, None, None, None, None,
                                       skipped=str(err)))
                continue
            rows.append(CompareRow(LABELS[method], spec.format.name, spec.label, bpw, e.calib_error,
                                   e.holdout_error, e.seconds, e.alpha, e.unsmoothed_error))
    return rows
