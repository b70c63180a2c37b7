"""Shared pieces of the activation-aware methods: input checks, rounding with given scales, output error.

- `check_activations`: calibration activations X [tokens, in] must be 2-D, floating, finite and fit W.
- `round_with_scales`: round values to a format's grid with scales (and zero points) that were computed
  elsewhere, bit-identical to what `explorer.quantize.quantize` does with the same scales. GPTQ needs it: it
  rounds one column at a time with the scale of that column's group (IST-DASLab/gptq `quant.py` quantize()).
- `slice_spec`: the spec that gives a slice of columns the scale rule its group has in the full matrix.
- `OutputError`: ||X D^T||_F^2 of candidate weight errors D on fixed X, the objective of AWQ (arXiv 2306.00978) and GPTQ
  (arXiv 2210.17323), computed through X or through X^T X, whichever is cheaper, in float32 or (for a search that
  only ranks candidates) in bfloat16 matmuls with float32 accumulation.
- `fast_matmul_dtype`: bfloat16 where the CPU multiplies it in AMX tiles (about 6x float32 here), else float32.
"""
from __future__ import annotations

import time

import torch

from explorer import primitives as P
from explorer.specs import Granularity, Kind, QuantSpec, ScaleEncoding

_CHUNK = 4096  # tokens per matmul in OutputError: bounds the [tokens, out] buffer
_ACT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
MATMUL_DTYPES = (torch.float32, torch.bfloat16)


def fast_matmul_dtype(device: torch.device) -> torch.dtype:
    """The matmul dtype for ranking candidate weights on `device`: bfloat16 on a CPU with AMX bf16 tiles (a
    2048x4096x4096 product: 0.07 s against 0.44 s in float32, one thread, on these Xeons), float32 elsewhere
    (a GPU's float32 matmul is fast enough, and a CPU without AMX gains little or loses)."""
    if device.type != "cpu":
        return torch.float32
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)  # private in torch 2.x: absent -> no AMX path
    try:
        return torch.bfloat16 if probe is not None and probe() else torch.float32
    except Exception:  # pragma: no cover - a probe that fails means no fast path, not an error
        return torch.float32


def check_activations(x: torch.Tensor, in_features: int, name: str = "x_calib") -> None:
    """ValueError unless x is a finite, floating, 2-D [tokens >= 1, in_features] tensor."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor [tokens, {in_features}], got {type(x).__name__}")
    if x.dtype not in _ACT_DTYPES:
        raise ValueError(f"{name} has dtype {x.dtype}; allowed: floating-point activations "
                         f"(float32, float16, bfloat16, float64)")
    if x.dim() != 2:
        raise ValueError(f"{name} has {x.dim()} dimension(s) {tuple(x.shape)}; allowed: 2 ([tokens, "
                         f"{in_features}]); flatten [batch, seq, in] to [-1, in] first")
    if x.shape[1] != in_features:
        raise ValueError(f"{name} has {x.shape[1]} input channels {tuple(x.shape)}, but W has "
                         f"{in_features}; allowed: [tokens, {in_features}]")
    if x.shape[0] < 1:
        raise ValueError(f"{name} holds no tokens {tuple(x.shape)}; allowed: tokens >= 1")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} holds NaN or Inf values; allowed: finite values only")


def slice_spec(spec: QuantSpec) -> QuantSpec:
    """The spec whose rule, applied to a [out, k] slice holding one group's columns, gives that group's scales.

    GROUP -> CHANNEL over the slice (a group's scale is its row-wise absmax / range); BLOCK formats keep their
    own spec (the slice is one block); TENSOR and CHANNEL are returned as they are.
    """
    if spec.granularity is Granularity.GROUP:
        return QuantSpec(spec.format, Granularity.CHANNEL, 0, spec.symmetric, spec.scale_dtype)
    return spec


def _element_name(spec: QuantSpec) -> str:
    return spec.format.element if spec.format.is_block else spec.format.name


def round_with_scales(w: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor | None,
                      spec: QuantSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Round w to `spec`'s grid with given scales: (codes, dequantized values float32), both shaped like w.

    w: float32 [...]; scales and zeros: float32, broadcastable to w (e.g. [out, 1] for a column block), as
    `quantize()` returned them (already rounded to their storage dtype). zeros is required exactly for
    asymmetric integers. Same operations in the same order as `quantize()` / `dequantize()`, so the codes and
    values are bit-identical to theirs when the scales are theirs. A block scale of 0 (an NVFP4 block that
    underflowed) gives code 0, as in `quantize()`.
    """
    fmt = spec.format
    asym = fmt.kind is Kind.INT and not spec.symmetric
    if asym != (zeros is not None):
        raise ValueError(f"zeros must be given exactly for asymmetric integer specs; {spec.label} "
                         f"{'needs' if asym else 'takes no'} zero points")
    if asym:
        qmax = 2 ** fmt.bits - 1
        codes = P.round_int(w / scales + zeros, 0, qmax)
        return codes, (codes.float() - zeros) * scales
    underflow = fmt.scale_encoding is ScaleEncoding.E4M3
    safe = torch.where(scales > 0, scales, torch.ones_like(scales)) if underflow else scales
    y = w / safe
    name = _element_name(spec)
    if fmt.kind is Kind.INT:
        qmax = 2 ** (fmt.bits - 1) - 1
        codes = P.round_int(y, -qmax - 1, qmax)
        values = codes.float()
    elif name == "int8":  # MXINT8 element: implicit 2^-6 step, kept symmetric (see explorer.quantize)
        codes = P.round_int(y * 64.0, -127, 127)
        values = codes.float() * (1.0 / 64.0)
    elif name in P.FLOAT8_DTYPES:
        codes = P.round_fp8(y, name)
        values = P.fp8_values(codes, name)
    elif name == "fp4_e2m1":
        codes = P.round_fp4(y)
        values = P.table_values(codes, P.FP4_E2M1_VALUES)
    elif fmt.kind is Kind.CODEBOOK:
        codes = P.round_codebook(y, fmt.grid)
        values = P.table_values(codes, fmt.grid)
    else:  # pragma: no cover - the registry holds no other element kind
        raise ValueError(f"format {fmt.name!r} has no element rounding rule")
    if underflow:
        dead = (scales <= 0).expand_as(codes)
        codes = torch.where(dead, torch.zeros_like(codes), codes)
        values = torch.where(dead, torch.zeros_like(values), values)
    return codes, values * scales


class OutputError:
    """Squared output error ||X D^T||_F^2 of weight errors D [out, in] on fixed activations X [tokens, in].

    With more tokens than inputs it is cheaper as sum((D G) * D) with the Gram matrix G = X^T X (computed once,
    in float32); otherwise X D^T is formed in chunks of tokens. Either way X W^T is never recomputed per
    candidate: only the error D changes. Sums in float64.

    matmul_dtype float32 (default) is exact to float32 rounding. bfloat16 rounds X (or G) and D to 8 significant
    bits before the product (accumulated in float32): each output element moves by ~2^-9 relative, unbiased, so
    a sum over millions of them moves by ~1e-5 (4e-5 measured on a 4096x4096 layer, 2048 tokens) - enough to
    rank candidates that differ by more, not to report an error to full precision.
    """

    def __init__(self, x: torch.Tensor, matmul_dtype: torch.dtype = torch.float32):
        if matmul_dtype not in MATMUL_DTYPES:
            raise ValueError(f"matmul_dtype={matmul_dtype} is not allowed; choose one of {list(MATMUL_DTYPES)}")
        self.matmul_dtype = matmul_dtype
        self.x = x.float()
        self.tokens, self.in_features = self.x.shape
        self.xm = self.x.to(matmul_dtype)  # the same tensor for float32
        self.gram = (self.x.T @ self.x).to(matmul_dtype) if self.tokens > self.in_features else None

    def sse_rows(self, d: torch.Tensor) -> torch.Tensor:
        """d [out, in] float32 (or already matmul_dtype) -> squared output error per output channel [out] float64."""
        dm = d.to(self.matmul_dtype)
        if self.gram is not None:
            # each row is a quadratic form of a PSD matrix: >= 0 up to rounding, clamp that away
            return ((dm @ self.gram).float() * d).sum(dim=1, dtype=torch.float64).clamp_(min=0)
        total = torch.zeros(d.shape[0], dtype=torch.float64, device=d.device)
        for start in range(0, self.tokens, _CHUNK):
            # D X^T [out, tokens], normed along its contiguous rows (5x faster than down the columns of X D^T);
            # a float32 norm (cascaded sums) then float64: no float64 copy of the product
            total += torch.linalg.vector_norm(dm @ self.xm[start:start + _CHUNK].T, dim=1,
                                              dtype=torch.float32).double().square()
        return total

    def sse(self, d: torch.Tensor) -> float:
        return float(self.sse_rows(d).sum())


def clock(device: torch.device) -> float:
    """time.perf_counter() after the device's queued work is done (CUDA runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def check_count(value, name: str, low: int = 1) -> int:
    """An integer >= low (not a bool), else ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name}={value!r} is not allowed; choose an integer >= {low}")
    return value
