"""The peer libraries' versions of the same fake-quantize ops, for scripts/bench_quantize.py --peers (not a test).

Peers: torchao, optimum-quanto, bitsandbytes, hqq, compressed-tensors (pinned in requirements-bench.txt, installed
into a separate virtual environment, see the README's Performance section). Each op is a plain function W -> Ŵ in
W's dtype, registered as data next to the registry spec it is compared with; a peer that is not installed, or
fails on this machine, gets a row that says so instead of a time. Conventions differ (shared/facts/peers.md): the
agreement columns (max |Ŵ_peer - Ŵ_ours| and the share of elements that differ) say how much.
"""
from __future__ import annotations

import contextlib
import importlib
import io
import os
import warnings
from dataclasses import dataclass
from typing import Callable

import torch

os.environ.setdefault("TORCHAO_SKIP_LOADING_SO_FILES", "1")
warnings.filterwarnings("ignore")


@dataclass(frozen=True)
class PeerOp:
    library: str      # the import name
    label: str        # what the peer calls it
    fn: Callable[[torch.Tensor], torch.Tensor]


def _quiet_import(name: str):
    """Import a peer with its load-time chatter (CUDA-only extensions missing) silenced."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return importlib.import_module(name)


# ---- torchao ------------------------------------------------------------------------------------------------

def _torchao_affine(w, group: int | None, bits: int, symmetric: bool):
    qp = _quiet_import("torchao.quantization.quant_primitives")
    block = (1, w.shape[1] if group is None else group)
    if symmetric:
        qmin, qmax, dtype, mapping = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1, torch.int8, qp.MappingType.SYMMETRIC
    else:
        qmin, qmax, dtype, mapping = 0, 2 ** bits - 1, torch.uint8, qp.MappingType.ASYMMETRIC
    scale, zero = qp.choose_qparams_affine(w, mapping, block, dtype, qmin, qmax)
    q = qp.quantize_affine(w, block, scale, zero, dtype, qmin, qmax)
    return qp.dequantize_affine(q, block, scale, zero, dtype, qmin, qmax, output_dtype=w.dtype)


def _torchao_fp8(w, dtype):
    qp = _quiet_import("torchao.quantization.quant_primitives")
    scale = qp._choose_scale_float8(w, list(w.shape), dtype)
    return qp._dequantize_affine_float8(qp._quantize_affine_float8(w, scale, dtype), scale, w.dtype)


def _torchao_nf4(w):
    nf4 = _quiet_import("torchao.quantization.quantize_.workflows.nf4.nf4_tensor")
    return nf4.to_nf4(w, block_size=64, scaler_block_size=256).get_original_weight().to(w.dtype)


def _torchao_mx(w, elem):
    mx = _quiet_import("torchao.prototype.mx_formats.mx_tensor")
    return mx.MXTensor.to_mx(w, elem, block_size=32).dequantize(w.dtype)


def _torchao_nvfp4(w):
    nv = _quiet_import("torchao.prototype.mx_formats.nvfp4_tensor")
    per_tensor = w.abs().amax().float() / (448.0 * 6.0)
    return nv.NVFP4Tensor.to_nvfp4(w, 16, per_tensor_scale=per_tensor).dequantize(w.dtype)


# ---- optimum-quanto -----------------------------------------------------------------------------------------

def _quanto(w, qtype_name: str, group: int | None, optimizer: str):
    oq = _quiet_import("optimum.quanto")
    opt = _quiet_import("optimum.quanto.tensor.optimizers")
    qtype = getattr(oq, qtype_name)
    if optimizer == "absmax":  # per row, or per tensor for float8 (its one scale given to every row)
        per_tensor = qtype_name.startswith("qfloat8")
        scale = opt.AbsmaxOptimizer()(w, qtype=qtype, axis=None if per_tensor else 0)
        if per_tensor:
            scale = scale.reshape(1, 1).expand(w.shape[0], 1).contiguous()
        shift = None
    else:  # min-max with a shift, per group
        scale, shift = opt.MaxOptimizer()(w, qtype=qtype, axis=0, group_size=group)
    return oq.quantize_weight(w, qtype=qtype, axis=0, scale=scale, shift=shift, group_size=group).dequantize()


# ---- bitsandbytes -------------------------------------------------------------------------------------------

def _bnb_4bit(w, quant_type: str, block: int):
    F = _quiet_import("bitsandbytes.functional")
    q, state = F.quantize_4bit(w, blocksize=block, quant_type=quant_type)
    return F.dequantize_4bit(q, state).to(w.dtype)


def _bnb_int8(w):
    F = _quiet_import("bitsandbytes.functional")
    cb, scb, _ = F.int8_vectorwise_quant(w)
    return F.int8_vectorwise_dequant(cb, scb).to(w.dtype)


# ---- hqq ----------------------------------------------------------------------------------------------------

def _hqq_rtn(w, bits: int, group: int):
    hq = _quiet_import("hqq.core.quantize")
    q, meta = hq.Quantizer.quantize(w, nbits=bits, group_size=group, optimize=False, round_zero=True, axis=1,
                                    bitpack=False, compute_dtype=w.dtype, device=str(w.device))
    return hq.Quantizer.dequantize(q, meta).reshape(w.shape).to(w.dtype)


# ---- compressed-tensors -------------------------------------------------------------------------------------

def _ct(w, bits: int, kind: str, symmetric: bool, strategy: str, group: int | None = None):
    qa = _quiet_import("compressed_tensors.quantization")
    fwd = _quiet_import("compressed_tensors.quantization.lifecycle.forward")
    helpers = _quiet_import("compressed_tensors.quantization.utils.helpers")
    args = qa.QuantizationArgs(num_bits=bits, type=kind, symmetric=symmetric, strategy=strategy, group_size=group)
    if strategy == "tensor":
        lo, hi = w.amin().reshape(1), w.amax().reshape(1)
    elif strategy == "channel":
        lo, hi = w.amin(1, keepdim=True), w.amax(1, keepdim=True)
    else:
        g = w.reshape(w.shape[0], -1, group)
        lo, hi = g.amin(-1), g.amax(-1)
    scale, zero = helpers.calculate_qparams(lo, hi, args)
    return fwd.fake_quantize(w, scale, zero, args)


# ---- the registry: our spec (format, granularity, group, symmetric) -> the peers' versions of it ----------

PEERS: dict[tuple, list[PeerOp]] = {
    ("int8", "channel", 0, True): [
        PeerOp("torchao", "affine int8 symmetric per-row", lambda w: _torchao_affine(w, None, 8, True)),
        PeerOp("optimum.quanto", "qint8 absmax axis 0", lambda w: _quanto(w, "qint8", None, "absmax")),
        PeerOp("bitsandbytes", "int8_vectorwise_quant", _bnb_int8),
        PeerOp("compressed_tensors", "int8 symmetric channel", lambda w: _ct(w, 8, "int", True, "channel")),
    ],
    ("int4", "group", 128, False): [
        PeerOp("torchao", "affine uint4 asymmetric g128", lambda w: _torchao_affine(w, 128, 4, False)),
        PeerOp("hqq", "RTN 4-bit g128 (optimize=False)", lambda w: _hqq_rtn(w, 4, 128)),
        PeerOp("compressed_tensors", "int4 asymmetric group 128", lambda w: _ct(w, 4, "int", False, "group", 128)),
        PeerOp("optimum.quanto", "qint4 g128 (MaxOptimizer)", lambda w: _quanto(w, "qint4", 128, "max")),
    ],
    ("int4", "group", 128, True): [
        PeerOp("torchao", "affine int4 symmetric g128", lambda w: _torchao_affine(w, 128, 4, True)),
        PeerOp("compressed_tensors", "int4 symmetric group 128", lambda w: _ct(w, 4, "int", True, "group", 128)),
    ],
    ("fp8_e4m3", "tensor", 0, True): [
        PeerOp("torchao", "float8_e4m3fn per-tensor", lambda w: _torchao_fp8(w, torch.float8_e4m3fn)),
        PeerOp("optimum.quanto", "qfloat8 absmax", lambda w: _quanto(w, "qfloat8", None, "absmax")),
        PeerOp("compressed_tensors", "fp8 tensor", lambda w: _ct(w, 8, "float", True, "tensor")),
    ],
    ("fp8_e5m2", "tensor", 0, True): [
        PeerOp("torchao", "float8_e5m2 per-tensor", lambda w: _torchao_fp8(w, torch.float8_e5m2)),
        PeerOp("optimum.quanto", "qfloat8_e5m2 absmax", lambda w: _quanto(w, "qfloat8_e5m2", None, "absmax")),
    ],
    ("nf4", "group", 64, True): [
        PeerOp("bitsandbytes", "quantize_4bit nf4 blocksize 64", lambda w: _bnb_4bit(w, "nf4", 64)),
        PeerOp("torchao", "to_nf4 block 64 (int8 block scales)", _torchao_nf4),
    ],
    ("fp4_e2m1", "group", 64, True): [
        PeerOp("bitsandbytes", "quantize_4bit fp4 blocksize 64 (its own FP4 map)", lambda w: _bnb_4bit(w, "fp4", 64)),
    ],
    ("mxfp8", "block", 0, True): [
        PeerOp("torchao", "MXTensor float8_e4m3fn block 32", lambda w: _torchao_mx(w, torch.float8_e4m3fn)),
    ],
    ("mxfp4", "block", 0, True): [
        PeerOp("torchao", "MXTensor fp4_e2m1 block 32", lambda w: _torchao_mx(w, torch.float4_e2m1fn_x2)),
    ],
    ("nvfp4", "block", 0, True): [
        PeerOp("torchao", "NVFP4Tensor block 16", _torchao_nvfp4),
    ],
}


def key_of(spec) -> tuple:
    return (spec.format.name, spec.granularity.value, spec.group_size, spec.symmetric)


def agreement(ours: torch.Tensor, theirs: torch.Tensor) -> tuple[float, float]:
    """(max |theirs - ours|, share of elements that differ), compared in float32."""
    d = theirs.float().reshape(ours.shape) - ours.float()
    return float(d.abs().max()), float((d != 0).float().mean())


def run(w: torch.Tensor, spec, ours: torch.Tensor, repeats: int, timed) -> list[dict]:
    """One dict per peer op registered for `spec`: library, label, ratio (or None), agreement, or why not."""
    rows = []
    for op in PEERS.get(key_of(spec), []):
        row = {"library": op.library, "label": op.label}
        if importlib.util.find_spec(op.library.split(".")[0]) is None:
            rows.append({**row, "status": "not installed"})
            continue
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                out = op.fn(w)
                t_op, t_floor = timed(lambda: op.fn(w), repeats, w.clone)
        except Exception as e:  # a peer that cannot run here: the table says how it failed
            rows.append({**row, "status": f"fails on CPU: {type(e).__name__}: {str(e).splitlines()[0][:70]}"})
            continue
        if out.shape != w.shape:
            out = out.reshape(w.shape)
        max_diff, share = agreement(ours, out)
        rows.append({**row, "status": "ok", "ratio": t_op / t_floor, "max_diff": max_diff, "share_diff": share,
                     "dtype": str(out.dtype).replace("torch.", "")})
    return rows
