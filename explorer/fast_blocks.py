"""Block formats in the fake-quantization fast path: OCP MX (E8M0 power-of-two scales per 32 elements, OCP MX
v1.0) and NVFP4 (FP8 E4M3 scales per 16 FP4 elements times one FP32 tensor scale), bit for bit as
explorer.quantize computes them (tests/test_fast_paths.py). Called per chunk by explorer.fast_paths.quantize_fast.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from explorer import fast_kernels as K
from explorer import primitives as P
from explorer.specs import QuantSpec

def block_amax(wk: K.Work) -> torch.Tensor:
    """The blocks' absmax [rows, n, 1] of a chunk: from their known extremes, else a pass (|x| left in wk.ts)."""
    if wk.amax is not None:
        return wk.amax
    r, n, block = wk.xs.shape
    torch.abs(wk.xs, out=wk.ts)
    if block == 16:  # a 16-wide max reduction runs ~2.5x faster as a max-pool than as amax(-1)
        return F.max_pool1d(wk.t_pool, block).view(r, n, 1)
    return wk.ts.amax(-1, keepdim=True)


def e8m0_scales(amax: torch.Tensor, element: str, codes: bool = False):
    """primitives.e8m0_scale of finite block absmax [...] float32 from amax's bits, bit for bit: (scales float32,
    E8M0 codes uint8 when asked, else None). 2^floor(log2 amax) is (bits & exponent mask); minus emax in the
    exponent field, clamped to 2^-127 .. 2^127. A subnormal or zero amax (exponent field 0) and any exponent below
    -127 land on the floor 2^-127 (bits 0x400000), as frexp + clamp does."""
    sb = torch.bitwise_and(amax.view(torch.int32), K.EXP_MASK).sub_(P.MX_EMAX[element] << 23)
    scales = sb.clamp_(0x400000, 254 << 23).view(torch.float32)
    return scales, (torch.bitwise_right_shift(sb, 23).to(torch.uint8) if codes else None)


def mx_values(wk: K.Work, spec: QuantSpec, n_in: int, with_result: bool):
    """wk.dest <- Ŵ of an MX format (E8M0 power-of-two block scales), codes when asked.
    Returns (scales [rows, n, 1], scale codes [rows, n, 1] uint8 when with_result)."""
    element = spec.format.element
    xs, ts = wk.xs, wk.ts
    amax = block_amax(wk)
    if not math.isfinite(float(amax.amax())):
        raise ValueError("weight holds NaN or Inf values; allowed: finite values only")
    scales, scale_codes = e8m0_scales(amax, element, with_result)
    inv = torch.reciprocal(scales)  # a power of two 2^-127 .. 2^127: x * 2^-e == x / 2^e exactly
    if element == "int8":  # MXINT8: codes are y * 64 rounded into [-127, 127] (see quantize._round_element)
        # (x * 2^-e) * 64 == x * 2^(6-e) unless x * 2^-e is subnormal, where both round to code 0;
        # (c / 64) * 2^e == c * 2^(e-6), exact for |c| <= 127 down to 2^-149.
        inv64 = inv * 64.0
        if math.isinf(float(inv64.amax())):  # a scale below 2^-121: keep the two steps
            torch.mul(xs, inv, out=ts).mul_(64.0)
        else:
            torch.mul(xs, inv64, out=ts)
        K.round_integer_(ts, -127, 127)
        K.store_codes(wk.codes, ts, n_in)
        torch.mul(ts, scales * (1.0 / 64.0), out=wk.dest)
        return scales, scale_codes
    torch.mul(xs, inv, out=ts)
    K.round_minifloat_(ts, wk.t_bits, wk.i, wk.i_float, element, sign_of=xs)
    if wk.codes is not None:
        K.store_codes(wk.codes, K.minifloat_codes(ts, element, wk.i), n_in)
    torch.mul(ts, scales, out=wk.dest)
    return scales, scale_codes


def nvfp4_scales(work, n_chunks: int, rows: int, out_rows: int, n_spans: int, device, with_result: bool,
                 amax: torch.Tensor | None = None):
    """NVFP4's scales for the whole tensor, as quantize.block_scales computes them, bit for bit: every block's
    absmax (their largest is the tensor's absmax, which sets the FP32 tensor scale), given as `amax` [out, n, 1]
    or taken in a first pass over the chunks, then the E4M3 block scales computed once for all blocks.
    Returns (scales [out, n, 1], divisors [out, n, 1], E4M3 codes [out, n, 1] or None, tensor scale)."""
    if amax is None:
        amax = torch.empty(out_rows, n_spans, 1, device=device)
        for k, a in enumerate(amax.split(rows)):
            a.copy_(block_amax(work(k)))
    t_amax = float(amax.amax())  # max-pool and amax propagate NaN
    if not math.isfinite(t_amax):
        raise ValueError("weight holds NaN or Inf values; allowed: finite values only")
    max_value = 6.0  # FP4 E2M1
    tensor_scale = float(torch.tensor(t_amax / (K.E4M3_MAX * max_value) if t_amax > 0 else 1.0, dtype=torch.float32))
    b = torch.div(amax, max_value).div_(tensor_scale).clamp_(max=K.E4M3_MAX)
    ci = torch.empty(b.shape, dtype=torch.int32, device=device)
    K.round_minifloat_(b, b.view(torch.int32), ci, ci.view(torch.float32), "fp8_e4m3",
                      clamp=False)  # b >= 0: the float8 cast's rounding, as float32
    scale_codes = b.to(torch.float8_e4m3fn).view(torch.uint8) if with_result else None  # exact: b is on the grid
    scales = torch.mul(b, tensor_scale)
    # A block whose scale is 0 gets code 0 everywhere (quantize._quantize_block): dividing it by +inf gives +-0,
    # which rounds to +0 (code 0), and 0 * 0 = +0 as the reference's value.
    safe = scales if float(scales.amin()) > 0 else torch.where(scales > 0, scales, math.inf)
    return scales, safe, scale_codes, tensor_scale


def nvfp4_values(wk: K.Work, scales, safe, n_in: int) -> None:
    """wk.dest <- Ŵ of NVFP4 given its scales and divisors for the chunk [rows, n, 1], codes when asked."""
    torch.div(wk.xs, safe, out=wk.ts)
    K.round_minifloat_(wk.ts, wk.t_bits, wk.i, wk.i_float, "fp4_e2m1")
    if wk.codes is not None:
        K.store_codes(wk.codes, K.minifloat_codes(wk.ts, "fp4_e2m1", wk.i), n_in)
    torch.mul(wk.ts, scales, out=wk.dest)
