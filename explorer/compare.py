"""Every format at every granularity on one layer: the sweep behind the "Formats side by side" page.

`all_specs(group_size)` lists the schemes worth comparing: every registry format; element formats per tensor,
per output channel and per group of `group_size` inputs; integers symmetric and asymmetric (a zero point, as in
GPTQ/AWQ checkpoints); block formats (OCP MX v1.0, NVFP4) at their own block. `sweep(w, specs, x)` quantizes W
[out, in] with each (round-to-nearest, explorer.quantize) and keeps the metrics of explorer.metrics, the output
error on real inputs X [tokens, in] when given, and a mergeable histogram of Ŵ - W (explorer.histogram).
`pareto_front(rows)` picks the schemes no other scheme beats on both effective bits per weight and error.
"""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from explorer.analysis import analyze_layer, weight_stats
from explorer.formats import FORMATS, make_spec, usual_spec
from explorer.fused import worthwhile
from explorer.histogram import Histogram, histogram
from explorer.metrics import WeightMetrics, weight_metrics
from explorer.quantize import check_weight, dequantize, quantize
from explorer.specs import Granularity, Kind, QuantSpec, ScaleDType

HIST_BINS = 256


class ErrorAxis(enum.Enum):
    """Which error a comparison ranks by."""

    WEIGHT = "weight"  # ||W - Ŵ||_F / ||W||_F
    OUTPUT = "output"  # ||X W^T - X Ŵ^T||_F / ||X W^T||_F on real inputs (GPTQ's and AWQ's objective)


@dataclass(frozen=True, eq=False)
class SweepRow:
    """One scheme applied to one layer."""

    spec: QuantSpec
    metrics: WeightMetrics          # explorer.metrics.weight_metrics of this spec on W
    output_error: float | None      # on X when given, else None
    error_hist: Histogram           # Ŵ - W, HIST_BINS bins over a power-of-two range (mergeable)
    hist_stride: int = 1            # error_hist counts rows 0, k, 2k, ... (1: every weight; see sweep)

    @property
    def label(self) -> str:
        return self.spec.label

    @property
    def granularity_label(self) -> str:
        """'per-tensor', 'per-channel', 'group 128' or 'block 32'."""
        g = self.spec.granularity
        if g is Granularity.GROUP:
            return f"group {self.spec.group_size}"
        if g is Granularity.BLOCK:
            return f"block {self.spec.format.block_size}"
        return f"per-{g.value}"

    def error(self, axis: ErrorAxis = ErrorAxis.WEIGHT) -> float:
        """The error `axis` ranks by (ValueError for OUTPUT when the sweep had no inputs)."""
        if axis is ErrorAxis.WEIGHT:
            return self.metrics.rel_error
        if self.output_error is None:
            raise ValueError(f"{self.label} has no output error: the sweep ran without inputs X; "
                             f"allowed axis: {ErrorAxis.WEIGHT}")
        return self.output_error


def all_specs(group_size: int = 128, scale_dtype: ScaleDType = ScaleDType.FP16) -> list[QuantSpec]:
    """Every registry format at every granularity it allows, in registry order.

    Element formats: per-tensor, per-channel, per-group of `group_size`; integer formats each symmetric and
    asymmetric. Block formats: their own block only. 7 int x 3 x 2 + 4 other element x 3 + 4 block = 58 specs.
    """
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
        raise ValueError(f"group_size={group_size!r} is not allowed; choose an integer >= 1")
    specs = []
    for name, fmt in FORMATS.items():
        if fmt.is_block:
            specs.append(make_spec(name))
            continue
        for sym in ((True, False) if fmt.kind is Kind.INT else (True,)):
            for gran in (Granularity.TENSOR, Granularity.CHANNEL, Granularity.GROUP):
                specs.append(QuantSpec(fmt, gran, group_size, sym, scale_dtype))
    return specs


def fitting_specs(specs: Sequence[QuantSpec], in_features: int) -> tuple[list[QuantSpec], list[QuantSpec]]:
    """(specs that fit a row of `in_features` inputs, specs whose group is wider than the row)."""
    ok = [s for s in specs if s.granularity is not Granularity.GROUP or s.group_size <= in_features]
    return ok, [s for s in specs if s not in ok]


def sweep(w: torch.Tensor, specs: Sequence[QuantSpec], x: torch.Tensor | None = None,
          on_progress: Callable[[int, int, str], None] | None = None) -> list[SweepRow]:
    """Quantize W [out, in] with each spec (RTN) and measure it; one SweepRow per spec, in the given order.

    x: real inputs [tokens, in] for the output error (optional). on_progress(done, total, label) is called
    after each spec, so a caller can draw a progress bar. Everything is computed on w's device; w and x are
    never mutated. ValueError before any work for a bad W, X or spec (e.g. a group wider than the row).
    """
    check_weight(w)
    specs = list(specs)
    if not specs:
        raise ValueError("specs is empty; allowed: at least one QuantSpec (see all_specs)")
    for s in specs:
        if not isinstance(s, QuantSpec):
            raise ValueError(f"spec {s!r} is not a QuantSpec; build specs with explorer.formats.make_spec")
    _, too_wide = fitting_specs(specs, w.shape[1])
    if too_wide:
        raise ValueError(f"{too_wide[0].label}: group_size={too_wide[0].group_size} is wider than the row "
                         f"({w.shape[1]} inputs); allowed: 1..{w.shape[1]} (drop them with fitting_specs)")
    if x is not None and (x.dim() != 2 or x.shape[1] != w.shape[1]):
        raise ValueError(f"inputs of shape {tuple(x.shape)} do not fit W {tuple(w.shape)}; "
                         f"allowed: [tokens, {w.shape[1]}]")
    if worthwhile(w):  # a big layer on CPU: one fused read of W per spec
        return _sweep_fused(w, specs, x, on_progress)
    wf = w.float()  # one float32 copy for the error histograms; the metrics take w itself
    ref = None if x is None else _output_norm2(x, wf)  # ||X W^T||^2 once, not once per spec
    rows = []
    for i, spec in enumerate(specs):
        result = quantize(w, spec)
        w_hat = dequantize(result)
        rows.append(SweepRow(
            spec=spec,
            metrics=weight_metrics(w, result, w_hat),
            output_error=None if x is None else _output_error(x, wf, w_hat, ref),
            error_hist=histogram(w_hat.float() - wf, HIST_BINS),
        ))
        if on_progress is not None:
            on_progress(i + 1, len(specs), spec.label)
    return rows


def _sweep_fused(w, specs, x, on_progress) -> list[SweepRow]:
    """sweep for a layer of 2^20 weights or more on CPU: each spec measured by analysis.analyze_layer (its numba
    kernels read W once per spec, from W's statistics taken once), the same metrics and output error over every
    weight (tests/test_compare.py checks them against the reference path); the error histogram over 1 row in k
    (analysis.default_hist_stride), as SweepRow.hist_stride says. ~0.1-0.2 s per spec on 4096 x 11008 instead of
    several seconds."""
    stats = weight_stats(w, x, HIST_BINS)
    rows = []
    for i, spec in enumerate(specs):
        a = analyze_layer(w, spec, x, bins=HIST_BINS, stats=stats)
        rows.append(SweepRow(spec=spec, metrics=a.metrics, output_error=a.output_error, error_hist=a.error_hist,
                             hist_stride=a.hist_stride))
        if on_progress is not None:
            on_progress(i + 1, len(specs), spec.label)
    return rows


def _output_norm2(x: torch.Tensor, wf: torch.Tensor, chunk: int = 4096) -> float:
    """||X M^T||_F^2 for X [tokens, in], M [out, in], float32 products summed in float64 (chunked over tokens)."""
    return sum(float((x[i:i + chunk].float() @ wf.T).double().square().sum()) for i in range(0, x.shape[0], chunk))


def _output_error(x: torch.Tensor, wf: torch.Tensor, w_hat: torch.Tensor, ref: float) -> float:
    """explorer.metrics.output_rel_error with its denominator ||X W^T||^2 computed once per sweep."""
    num = _output_norm2(x, wf - w_hat.float())  # X (W - Ŵ)^T: no cancellation between two big products
    if ref == 0:
        return 0.0 if num == 0 else math.inf
    return math.sqrt(num / ref)


def pareto_front(rows: Sequence[SweepRow], axis: ErrorAxis = ErrorAxis.WEIGHT) -> list[SweepRow]:
    """Rows that no other row dominates (fewer or equal bits per weight AND lower or equal error, one of them
    strictly), sorted by bits per weight. Exact ties both stay on the front."""
    pts = [(r.metrics.bits_per_weight, r.error(axis), r) for r in rows]
    if any(math.isnan(e) for _, e, _ in pts):
        raise ValueError("an error is NaN; allowed: finite or infinite errors only")
    front = [r for b, e, r in pts
             if not any(b2 <= b and e2 <= e and (b2 < b or e2 < e) for b2, e2, _ in pts)]
    return sorted(front, key=lambda r: (r.metrics.bits_per_weight, r.error(axis)))


def find_row(rows: Sequence[SweepRow], spec: QuantSpec) -> SweepRow | None:
    """The row of `spec` ignoring the scale dtype (the sweep stores fp16 scales), or None."""
    def key(s: QuantSpec):
        return s.format.name, s.granularity, s.group_size, s.symmetric
    return next((r for r in rows if key(r.spec) == key(spec)), None)


def usual_rows(rows: Sequence[SweepRow]) -> dict[str, SweepRow]:
    """Format name -> its row at the format's usual granularity (explorer.formats.usual_spec), symmetric.

    Usual per-group formats (int4 g128, nf4 g64, ...) take the sweep's own group size, so every format gets
    a row whatever group size the sweep used. Formats absent from `rows` are left out."""
    out = {}
    for name in FORMATS:
        usual = usual_spec(name)
        for r in rows:
            s = r.spec
            if s.format.name == name and s.granularity is usual.granularity and s.symmetric:
                out[name] = r
                break
    return out
