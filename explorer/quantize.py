"""Round-to-nearest quantization of a weight matrix W [out, in] with any registry format.

`quantize(w, spec) -> QuantResult` (codes, scales, zero points), `dequantize(result) -> Ŵ`, and
`fake_quantize(w, spec) = dequantize(quantize(w, spec))`. Pure: inputs are never mutated; compute is
float32; Ŵ comes back in w's dtype on w's device.

Scales are shared along the input dimension (rows of W are output channels):
- TENSOR: one scale; CHANNEL: one per row; GROUP: one per `group_size` consecutive inputs of a row;
- BLOCK: the block format's own block (MX: 32, E8M0 power-of-two scale; NVFP4: 16, E4M3 scale x FP32 tensor scale).
When the group (or block) does not divide the row width, the last group of each row is shorter: it is padded
with zeros for the computation, which changes neither its absmax nor its zero-including [min, max] range, and
it costs a full scale in storage (`explorer.storage`).

Symmetric: scale = absmax / max_value. Asymmetric (integers only): the range [min(x, 0), max(x, 0)] (zero
always included, so 0.0 stays exactly 0.0, as in GPTQ's quantizer) maps to codes 0 .. 2^bits - 1 with an
integer zero point. Scales and zero points are rounded to `spec.scale_dtype` before use, so what is measured
is what would be stored.

Fake-quantizing twice equals once for symmetric, code-book and block formats whose scales stay in their
storage dtype's normal range. Two honest exceptions: asymmetric integers (a rounded zero point can leave the
top or bottom code unused, so a second pass sees a narrower range and may move values by up to one step),
and scales that fall into fp16's subnormal range (tiny rows; store scales as fp32 to avoid it).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from explorer import primitives as P
from explorer.specs import Granularity, Kind, QuantSpec, ScaleDType, ScaleEncoding

_SCALE_TORCH = {ScaleDType.FP32: torch.float32, ScaleDType.FP16: torch.float16, ScaleDType.BF16: torch.bfloat16}
_FLOAT_INPUTS = (torch.float32, torch.float16, torch.bfloat16, torch.float64,
                 torch.float8_e4m3fn, torch.float8_e5m2)


@dataclass(frozen=True, eq=False)
class QuantResult:
    """The stored form of a quantized W [out, in].

    codes:  [out, in] int8 (symmetric INT), uint8 (asymmetric INT; FP8/FP4 bit patterns; code-book indices)
    scales: [rows, n_spans] float32 effective scale per span (rows = 1 for TENSOR, else out), already
            rounded to what is stored (scale_dtype, E8M0 power of two, or E4M3 x tensor scale)
    zeros:  like scales (integer-valued float32) for asymmetric INT, else None
    scale_codes: [rows, n_spans] uint8 E8M0 exponents or E4M3 bit patterns for block formats, else None
    tensor_scale: NVFP4's FP32 per-tensor scale, else None
    span: inputs covered by one scale (in for TENSOR/CHANNEL, group or block size otherwise)
    """

    spec: QuantSpec
    codes: torch.Tensor
    scales: torch.Tensor
    zeros: torch.Tensor | None
    dtype: torch.dtype
    span: int
    scale_codes: torch.Tensor | None = None
    tensor_scale: float | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.codes.shape)

    def code_range(self) -> tuple[float, float]:
        """The lowest and highest element value (before scaling; after removing the zero point)."""
        fmt = self.spec.format
        if fmt.kind is Kind.INT and not self.spec.symmetric:
            return 0.0, float(2 ** fmt.bits - 1)
        return float(fmt.grid[0]), float(fmt.grid[-1])


def check_weight(w: torch.Tensor, name: str = "weight", finite: bool = True) -> None:
    """ValueError unless w is a non-empty, 2-D floating-point tensor (and finite, unless finite=False)."""
    if not isinstance(w, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(w).__name__}")
    if w.dtype not in _FLOAT_INPUTS:
        raise ValueError(f"{name} has dtype {w.dtype}; allowed: float32, float16, bfloat16, float64, "
                         f"float8_e4m3fn, float8_e5m2 (integer tensors are already quantized codes)")
    if w.dim() != 2:
        raise ValueError(f"{name} has {w.dim()} dimension(s) {tuple(w.shape)}; allowed: 2 ([out, in]); "
                         f"1-D tensors are biases or norms, reshape N-D weights to [out, -1] first")
    if w.numel() == 0:
        raise ValueError(f"{name} is empty {tuple(w.shape)}; allowed: both dimensions >= 1")
    if not finite:
        return
    if w.dtype in (torch.float8_e4m3fn, torch.float8_e5m2):
        ok = torch.isfinite(w.float()).all()
    else:
        ok = torch.isfinite(w).all()
    if not bool(ok):
        raise ValueError(f"{name} holds NaN or Inf values; allowed: finite values only")


def span_of(spec: QuantSpec, in_features: int) -> int:
    """Inputs per scale for a row of width `in_features` (ValueError if the group is wider than the row)."""
    if spec.granularity is Granularity.GROUP:
        if spec.group_size > in_features:
            raise ValueError(f"group_size={spec.group_size} is larger than the row ({in_features} inputs); "
                             f"allowed: 1..{in_features}")
        return spec.group_size
    if spec.granularity is Granularity.BLOCK:
        return spec.format.block_size
    return in_features


def _to_spans(x: torch.Tensor, spec: QuantSpec, span: int) -> torch.Tensor:
    """[out, in] -> [rows, n_spans, span_len], zero-padding a short last group."""
    out, n_in = x.shape
    if spec.granularity is Granularity.TENSOR:
        return x.reshape(1, 1, out * n_in)
    pad = (-n_in) % span
    if pad:
        x = torch.nn.functional.pad(x, (0, pad))
    return x.reshape(out, (n_in + pad) // span, span)


def _from_spans(x: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    out, n_in = shape
    return x.reshape(out, -1)[:, :n_in]


def quantize(w: torch.Tensor, spec: QuantSpec) -> QuantResult:
    """Quantize W [out, in] with `spec` by round-to-nearest. Never mutates w."""
    if not isinstance(spec, QuantSpec):
        raise ValueError(f"spec must be a QuantSpec, got {type(spec).__name__}")
    check_weight(w)
    span = span_of(spec, w.shape[1])
    return _quantize_spans(_to_spans(w.float(), spec, span), spec, tuple(w.shape), w.dtype, span)


def _span_stats(x: torch.Tensor, spec: QuantSpec):
    """The range statistic of each span of x [rows, n, span]: absmax [rows, n, 1], or (lo, hi) for asymmetric
    integers (zero always inside the range)."""
    if not spec.symmetric:
        return x.amin(-1, keepdim=True).clamp(max=0), x.amax(-1, keepdim=True).clamp(min=0)
    return x.abs().amax(-1, keepdim=True)


def _quantize_spans(x: torch.Tensor, spec: QuantSpec, shape: tuple[int, int], dtype: torch.dtype,
                    span: int) -> QuantResult:
    """x [rows, n, span] float32 -> QuantResult of a W of `shape`."""
    if spec.format.is_block:
        codes, scales, scale_codes, tensor_scale = _quantize_block(x, spec)
        zeros = None
    else:
        codes, scales, zeros = _quantize_elements(x, spec, _span_stats(x, spec))
        scale_codes, tensor_scale = None, None
    return QuantResult(spec, _from_spans(codes, shape).contiguous(), scales.squeeze(-1), zeros, dtype, span,
                       scale_codes, tensor_scale)


def element_scales(stats, spec: QuantSpec):
    """Per-span range statistics -> (scale [rows, n, 1], zero point [rows, n, 1] or None), rounded to what is
    stored. Shared by the reference path and the chunked fast path (explorer.fast_paths), so both use the same
    scale bit for bit."""
    fmt = spec.format
    store = _SCALE_TORCH[spec.scale_dtype]
    if not spec.symmetric:  # asymmetric integers
        qmax = 2 ** fmt.bits - 1
        lo, hi = stats
        scale = P.round_to_dtype(torch.where(hi > lo, (hi - lo) / qmax, torch.ones_like(hi)), store)
        return scale, torch.round(-lo / scale).clamp(0, qmax)
    amax = stats
    return P.round_to_dtype(torch.where(amax > 0, amax / fmt.max_value, torch.ones_like(amax)), store), None


def _quantize_elements(x: torch.Tensor, spec: QuantSpec, stats):
    """x [rows, n, span] -> (codes [rows, n, span], scales [rows, n, 1], zeros or None)."""
    fmt = spec.format
    scale, zero = element_scales(stats, spec)
    if zero is not None:  # asymmetric integers
        codes = P.round_int(x / scale + zero, 0, 2 ** fmt.bits - 1)
        return codes, scale, zero.squeeze(-1)
    y = x / scale
    if fmt.kind is Kind.INT:
        qmax = 2 ** (fmt.bits - 1) - 1
        codes = P.round_int(y, -qmax - 1, qmax)
    elif fmt.name in P.FLOAT8_DTYPES:
        codes = P.round_fp8(y, fmt.name)
    elif fmt.name == "fp4_e2m1":
        codes = P.round_fp4(y)
    elif fmt.kind is Kind.CODEBOOK:
        codes = P.round_codebook(y, fmt.grid)
    else:  # pragma: no cover - the registry holds no other element kind
        raise ValueError(f"format {fmt.name!r} has no element rounding rule")
    return codes, scale, None


def _round_element(y: torch.Tensor, element: str) -> torch.Tensor:
    """Block elements (already divided by their block scale) -> codes."""
    if element == "fp4_e2m1":
        return P.round_fp4(y)
    if element == "int8":
        # MXINT8: 8-bit two's complement with an implicit 2^-6 scale. Kept symmetric (+-127): code -128
        # (-2.0) would lift a block's absmax into the next binade, so a second pass would change its scale.
        return P.round_int(y * 64.0, -127, 127)
    return P.round_fp8(y, element)


def block_scales(amax: torch.Tensor, spec: QuantSpec, tensor_amax: float | None = None):
    """Block absmax [out, n, 1] -> (scales [out, n, 1] float32, scale_codes [out, n, 1] uint8, tensor_scale)."""
    fmt = spec.format
    if fmt.scale_encoding is ScaleEncoding.E8M0:
        scale_codes, scales = P.e8m0_scale(amax, fmt.element)
        return scales, scale_codes, None
    # NVFP4: FP32 tensor scale so that block scales (amax/6) fit E4M3's range, then E4M3 block scales
    e4m3_max = torch.finfo(torch.float8_e4m3fn).max
    t_amax = float(amax.max()) if tensor_amax is None else tensor_amax
    # Stored as FP32: round it to float32 so the measured result is the stored one.
    tensor_scale = float(torch.tensor(t_amax / (e4m3_max * fmt.max_value) if t_amax > 0 else 1.0,
                                      dtype=torch.float32))
    block = (amax / fmt.max_value / tensor_scale).clamp(max=e4m3_max).to(torch.float8_e4m3fn)
    return block.float() * tensor_scale, block.view(torch.uint8), tensor_scale


def _quantize_block(x: torch.Tensor, spec: QuantSpec):
    """x [out, n_blocks, block] -> (codes, scales [out, n, 1], scale_codes [out, n], tensor_scale)."""
    scales, scale_codes, tensor_scale = block_scales(x.abs().amax(-1, keepdim=True), spec)
    # A block whose E4M3 scale underflowed to 0 holds only values far below the tensor's largest: all codes 0.
    safe = torch.where(scales > 0, scales, torch.ones_like(scales))
    codes = _round_element(x / safe, spec.format.element)
    codes = torch.where(scales > 0, codes, torch.zeros_like(codes))
    return codes, scales, scale_codes.squeeze(-1), tensor_scale


def element_values(result: QuantResult) -> torch.Tensor:
    """codes [out, in] -> element values [out, in] float32, before scaling (zero point not yet removed)."""
    fmt, codes = result.spec.format, result.codes
    name = fmt.element if fmt.is_block else fmt.name
    if name in P.FLOAT8_DTYPES:
        return P.fp8_values(codes, name)
    if name == "fp4_e2m1":
        return P.table_values(codes, P.FP4_E2M1_VALUES)
    if fmt.kind is Kind.CODEBOOK:
        return P.table_values(codes, fmt.grid)
    if name == "int8" and fmt.is_block:
        return codes.float() * (1.0 / 64.0)
    return codes.float()


def dequantize(result: QuantResult) -> torch.Tensor:
    """QuantResult -> Ŵ [out, in] in the original dtype, on the codes' device."""
    values = element_values(result)
    spec = result.spec
    v = _to_spans(values, spec, result.span)
    if result.zeros is not None:
        v = v - result.zeros.unsqueeze(-1)
    v = v * result.scales.unsqueeze(-1)
    return _from_spans(v, result.shape).to(result.dtype)


def fake_quantize(w: torch.Tensor, spec: QuantSpec, chunk_elements: int = 1 << 17) -> torch.Tensor:
    """dequantize(quantize(w, spec)), bit for bit: W [out, in] -> Ŵ [out, in] in w's dtype.

    Fast paths (fake quantization is memory-bound: the floor is one read and one write of W): for a float32 or
    bfloat16 W of 2^20 weights or more on CPU, numba kernels that read each row once for its statistics and its
    values and write Ŵ once (explorer.fused); elsewhere, and for what those do not cover, rows in chunks of about
    `chunk_elements` on scratch buffers that stay in the CPU cache, with arithmetic rounding instead of searches
    and lookups (explorer.fast_paths). Both are bit-identical to the reference.
    A NaN/Inf anywhere raises the same ValueError.
    """
    if not isinstance(spec, QuantSpec):
        raise ValueError(f"spec must be a QuantSpec, got {type(spec).__name__}")
    check_weight(w, finite=False)
    span_of(spec, w.shape[1])
    from explorer import fused  # they build on this module
    from explorer.fast_paths import quantize_fast

    w = w.detach()  # a Parameter's values (the fast paths work in place on scratch, outside autograd)
    w_hat = fused.fake_quantize(w, spec) if fused.worthwhile(w, fused.Use.FAKE_QUANT) else None
    return w_hat if w_hat is not None else quantize_fast(w, spec, max(1, int(chunk_elements)))[0]
