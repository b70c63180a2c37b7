"""Error metrics of a quantized weight: what rounding did to W [out, in] and to the layer's output.

Definitions (elementwise work in float32, chunk by chunk; sums per row in float32, across rows in float64):
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

# Above it, float32 sums of squares along a row (up to 2^20 inputs) may overflow: such weights are summed in float64
# (weight_metrics here, explorer.analysis_blocks.squares_normal for Layer Lab).
LARGE_WEIGHT = 2.0 ** 50


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
    if float(result.scales.amin()) > 0:  # the usual case, and a pass cheaper than the masked fills
        return lo, hi
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


@dataclass
class MetricSums:
    """Running sums over chunks of rows: everything WeightMetrics needs, mergeable (explorer.analysis fuses it
    into its own chunk loop). Products are summed per row in float32 (pairwise, relative error ~1e-7 for
    real rows) and across rows in float64; counts and the maximum are exact."""

    sig: float = 0.0      # sum W^2
    noise: float = 0.0    # sum (W - Ŵ)^2
    cross: float = 0.0    # sum W Ŵ
    hat: float = 0.0      # sum Ŵ^2
    max_err: float = 0.0
    clipped: int = 0
    zeroed: int = 0
    count: int = 0

    def add(self, x: torch.Tensor, x_hat: torch.Tensor, err: torch.Tensor, err2_rows: torch.Tensor,
            clipped: int, zeroed: int) -> None:
        """One chunk: x, x_hat, err = x_hat - x [rows, n] float32, err2_rows [rows] = sum of err^2 per row, and
        the chunk's counts of clipped weights (count_clipped) and of zeroed ones ((Ŵ == 0) & (W != 0))."""
        self.sig += float(_row_dots(x, x).sum())
        self.cross += float(_row_dots(x, x_hat).sum())
        self.hat += float(_row_dots(x_hat, x_hat).sum())
        self.noise += float(err2_rows.double().sum())
        if err.numel():
            self.max_err = max(self.max_err, float(err.amax()), -float(err.amin()))
        self.clipped += clipped
        self.zeroed += zeroed
        self.count += x.numel()

    def add_rows(self, sig_rows: torch.Tensor, cross_rows: torch.Tensor, hat_rows: torch.Tensor,
                 err2_rows: torch.Tensor, count: int, max_err: float, clipped: int, zeroed: int) -> None:
        """`count` weights given by partial sums, float64 tensors of float32 sums (along a row, or a dot product
        over a chunk of rows): sig_rows = sum W^2, cross_rows = sum W Ŵ, hat_rows = sum Ŵ^2, err2_rows =
        sum (Ŵ - W)^2; their max |Ŵ - W| and counts. The caller chooses how to take W Ŵ and Ŵ^2: from W^2 and
        W (Ŵ - W) where Ŵ is close to W (more digits for 1 - cosine), directly where Ŵ is far smaller than W
        (weights beyond an FP16 scale's range, or below its smallest step: the derived sums cancel to noise,
        even below zero); explorer.analysis_blocks.products does both."""
        self.sig += float(sig_rows.sum())
        self.cross += float(cross_rows.sum())
        self.hat += float(hat_rows.sum())
        self.noise += float(err2_rows.sum())
        self.max_err = max(self.max_err, max_err)
        self.clipped += clipped
        self.zeroed += zeroed
        self.count += count

    def metrics(self, spec, shape: tuple[int, int]) -> WeightMetrics:
        sig, noise, n = self.sig, self.noise, self.count
        st = storage(spec, shape)
        nw = math.sqrt(self.hat)
        cos = self.cross / (math.sqrt(sig) * nw) if sig > 0 and nw > 0 else float(sig == 0 and nw == 0)
        return WeightMetrics(
            mse=noise / n,
            rel_error=math.sqrt(noise / sig) if sig > 0 else (0.0 if noise == 0 else math.inf),
            sqnr_db=10 * math.log10(sig / noise) if noise > 0 and sig > 0 else (math.inf if noise == 0 else -math.inf),
            max_abs_error=self.max_err,
            cosine=cos,
            clipped_frac=self.clipped / n,
            zeroed_frac=self.zeroed / n,
            bits_per_weight=st.bits_per_weight,
            packed_bytes=st.packed_bytes,
        )


def _row_dots(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """sum(a * b) per row [rows] float64: float32 products summed pairwise along the row (torch.sum), then
    widened; a relative error ~1e-7, against ~1e-3 between the quantities shown."""
    return (a * b).sum(1).double()


def count_zeroed(x: torch.Tensor, x_hat: torch.Tensor) -> int:
    """Weights that were non-zero and came back as exactly 0."""
    return int(torch.count_nonzero(x.masked_fill(x_hat != 0, 0.0)))


def count_clipped(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> int:
    """Weights of x below lo or above hi (bounds broadcastable to x: x may be a [rows, n_spans, span] view)."""
    return int(torch.count_nonzero(torch.lt(x, lo))) + int(torch.count_nonzero(torch.gt(x, hi)))


def clip_bounds(result: QuantResult) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-span clip bounds (lo, hi) [rows, n_spans]: see clipped_mask."""
    return _clip_bounds(result)


def weight_metrics(w: torch.Tensor, result: QuantResult, w_hat: torch.Tensor | None = None,
                   chunk_rows: int = 256) -> WeightMetrics:
    """Metrics of W [out, in] against its quantized form (Ŵ recomputed unless given)."""
    if w_hat is None:
        w_hat = dequantize(result)
    sums = MetricSums()
    clipped = int(clipped_mask(w, result).sum())
    # float32 squares underflow below ~1e-19 and row sums overflow above ~1e17: such weights take float64 (a row's
    # sums are dominated by its largest terms, which stay normal for any absmax in [2^-20, 2^50])
    lo, hi = (float(v) for v in torch.aminmax(w.float() if w.element_size() == 1 else w)) if w.numel() else (0, 0)
    amax = max(-lo, hi)
    dtype = torch.float64 if amax > 0 and not 2.0 ** -20 <= amax <= LARGE_WEIGHT else torch.float32
    for r0 in range(0, w.shape[0], chunk_rows):
        x, xh = w[r0:r0 + chunk_rows].to(dtype), w_hat[r0:r0 + chunk_rows].to(dtype)
        err = xh - x
        sums.add(x, xh, err, (err * err).sum(1), clipped if r0 == 0 else 0, count_zeroed(x, xh))
    return sums.metrics(result.spec, tuple(w.shape))


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
