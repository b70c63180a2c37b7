"""Command line, in the spirit of llama.cpp's quantize-stats.

    python -m explorer formats
    python -m explorer stats PATH [--tensor REGEX] [--format NAME] [--granularity tensor|channel|group|block]
                                  [--group-size N] [--symmetric|--asymmetric] [--scale-dtype fp16|fp32|bf16]
                                  [--device auto|cpu|cuda] [--json]
                                  [--method rtn|awq|gptq|awq+gptq|smoothquant --calib FILE[:TENSOR]
                                   [--holdout FRACTION] [--damp D] [--act-order]]

`stats` prints, per 2-D tensor and per format, the error metrics and the effective bits per weight (every
registry format at its usual granularity unless --format is given). Tensors that cannot be quantized (1-D,
integer, NaN/Inf, ...) are listed with the reason. With --json each line is one JSON object:
  {"tensor", "shape", "dtype", "format", "granularity", "group_size", "symmetric", "scale_dtype", "mse",
   "rel_error", "sqnr_db", "max_abs_error", "cosine", "clipped_frac", "zeroed_frac", "bits_per_weight",
   "packed_bytes"}
(sqnr_db is null when the error is exactly zero), or {"tensor", "shape", "dtype", "skipped": reason}.
With --method the weight is quantized by that method (explorer.method_views.evaluate), calibrated on the first
tokens of the --calib activations [tokens, in_features] and measured on the last --holdout fraction; each row adds
  {"method", "output_rel_error" (held out), "calib_output_rel_error", "rtn_output_rel_error" (held out),
   "alpha" (AWQ's searched alpha, else null), "seconds", "calib_tokens", "holdout_tokens"}
(+ "damp", "act_order" for GPTQ methods; "smooth_alpha", "act_format", "output_rel_error_unsmoothed" for
SmoothQuant, whose output error includes INT8 per-tensor activations), and clipped_frac is null for methods
other than RTN (their scales are their own). --method rtn runs without --calib (no output errors then).
Errors exit with status 2 and a one-line message on stderr, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys

import torch

from explorer.device import DEVICE_CHOICES, resolve_device
from explorer.formats import FORMATS, format_names, make_spec
from explorer.loader import SafetensorsError, list_tensors, load_tensor
from explorer.method_views import DEFAULT_HOLDOUT, evaluate
from explorer.methods import Method, run_method
from explorer.metrics import weight_metrics
from explorer.quantize import check_weight, dequantize, quantize
from explorer.specs import Granularity, QuantSpec


class CliError(Exception):
    """A user error: printed as one line, exit status 2."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m explorer", description="What quantization does to real weights.")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("formats", help="list the format registry")
    s = sub.add_parser("stats", help="error metrics per tensor and format")
    s.add_argument("path", help="a .safetensors file or a Hugging Face model folder")
    s.add_argument("--tensor", default=None, help="regular expression selecting tensor names (re.search)")
    s.add_argument("--format", default=None, help=f"one of {format_names()} (default: all)")
    s.add_argument("--granularity", default=None, choices=[g.value for g in Granularity])
    s.add_argument("--group-size", type=int, default=128)
    sym = s.add_mutually_exclusive_group()
    sym.add_argument("--symmetric", dest="symmetric", action="store_true", default=True)
    sym.add_argument("--asymmetric", dest="symmetric", action="store_false")
    s.add_argument("--scale-dtype", default="fp16", choices=["fp16", "fp32", "bf16"])
    s.add_argument("--device", default="auto", choices=list(DEVICE_CHOICES))
    s.add_argument("--json", action="store_true", help="one JSON object per line")
    s.add_argument("--method", default=None, help=f"quantize by this method: {list(METHODS)}")
    s.add_argument("--calib", default=None, metavar="FILE[:TENSOR]",
                   help="a .safetensors file holding a tokens x in_features activation matrix (the layer's inputs)")
    s.add_argument("--holdout", default=None, metavar="FRACTION",
                   help=f"last fraction of the --calib tokens kept out of calibration and measured (default "
                        f"{DEFAULT_HOLDOUT})")
    s.add_argument("--damp", default=None, metavar="D", help="GPTQ damping, x mean diag(H) (default 0.01)")
    s.add_argument("--act-order", action="store_true", help="GPTQ: quantize columns by descending diag(H)")
    return p


METHODS = {"rtn": Method.RTN, "awq": Method.AWQ, "gptq": Method.GPTQ, "awq+gptq": Method.AWQ_GPTQ,
           "smoothquant": Method.SMOOTHQUANT}
_CALIB_DTYPES = ("F64", "F32", "F16", "BF16")


def _fraction(text: str | None, option: str, default: float, low_open: bool = True, high: float = 1.0) -> float:
    if text is None:
        return default
    try:
        v = float(text)
    except ValueError:
        raise CliError(f"{option} {text!r} is not a number") from None
    if not (0 < v < high if low_open else 0 <= v < high) or not math.isfinite(v):
        raise CliError(f"{option} {text} is not allowed; choose {'0 <' if low_open else '0 <='} {option[2:]} < "
                       f"{high:g}")
    return v


def load_calib(spec: str, device) -> tuple[torch.Tensor, str]:
    """`FILE[:TENSOR]` -> (activations [tokens, in] on `device`, 'FILE:TENSOR'). A FILE holding one float matrix
    needs no TENSOR; [..., in] tensors are flattened to [-1, in]."""
    path, name = spec, None
    if not os.path.exists(spec) and ":" in spec:
        path, name = spec.rsplit(":", 1)
    infos = list_tensors(path)
    floats = [i for i in infos if i.dtype in _CALIB_DTYPES and len(i.shape) >= 2]
    if name is None:
        if len(floats) != 1:
            names = [i.name for i in floats][:6]
            raise CliError(f"--calib {path} holds {len(floats)} activation matrices; name one as "
                           f"--calib {path}:TENSOR (e.g. {names})")
        name = floats[0].name
    info = next((i for i in infos if i.name == name), None)
    if info is None:
        raise CliError(f"--calib: no tensor {name!r} in {path}; it holds {[i.name for i in floats][:6]}"
                       f"{' ...' if len(floats) > 6 else ''}")
    if info not in floats:
        raise CliError(f"--calib {path}:{name} is {list(info.shape)} {info.dtype}; allowed: a floating-point "
                       f"tokens x in_features matrix")
    x = load_tensor(path, name, device=device)
    return x.reshape(-1, x.shape[-1]), f"{path}:{name}"


def specs_for(args) -> list[QuantSpec]:
    """The specs a `stats` run measures (ValueError for an impossible combination)."""
    names = [args.format] if args.format else format_names()
    gran = Granularity(args.granularity) if args.granularity else None
    specs = []
    for name in names:
        fmt = FORMATS.get(name)
        if fmt is None:
            raise CliError(f"unknown format {name!r}; choose one of {format_names()}")
        if args.format is None and gran is not None and fmt.is_block != (gran is Granularity.BLOCK):
            continue  # "all formats at granularity G": only those that allow G
        symmetric = args.symmetric if fmt.kind.value == "int" else True
        specs.append(make_spec(name, gran, args.group_size, symmetric, args.scale_dtype))
    return specs


def _number(v: float):
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _row(info, spec: QuantSpec, m) -> dict:
    return {"tensor": info.name, "shape": list(info.shape), "dtype": info.dtype, "format": spec.format.name,
            "granularity": spec.granularity.value, "group_size": spec.group_size, "symmetric": spec.symmetric,
            "scale_dtype": spec.scale_dtype.value, **{k: _number(v) for k, v in m.as_dict().items()}}


def cmd_formats(out) -> int:
    for f in FORMATS.values():
        block = f" block {f.block_size}" if f.is_block else ""
        out.write(f"{f.name:10s} {f.kind.value:8s} {f.bits} bits{block:9s} max {f.max_value:<10g} "
                  f"{len(f.grid):3d} values  {f.description}  [{f.source}]\n")
    return 0


def method_options(args) -> Method | None:
    """The --method (None without it), after checking that its options fit together."""
    if args.method is None:
        given = [o for o, v in (("--calib", args.calib), ("--holdout", args.holdout), ("--damp", args.damp),
                                ("--act-order", args.act_order or None)) if v is not None]
        if given:
            raise CliError(f"{', '.join(given)} {'takes' if len(given) == 1 else 'take'} effect only with --method; "
                           f"choose one of {list(METHODS)}")
        return None
    method = METHODS.get(args.method)
    if method is None:
        raise CliError(f"unknown method {args.method!r}; choose one of {list(METHODS)}")
    if method is not Method.RTN and args.calib is None:
        raise CliError(f"--method {args.method} needs calibration activations: --calib FILE[:TENSOR] (a tokens x "
                       f"in_features matrix, e.g. sample_weights/minilm/inputs.safetensors:<key>)")
    args.holdout_value = _fraction(args.holdout, "--holdout", DEFAULT_HOLDOUT)
    args.damp_value = _fraction(args.damp, "--damp", 0.01, low_open=False, high=math.inf)
    return method


def method_row(args, method: Method, info, w: torch.Tensor, spec: QuantSpec, x: torch.Tensor | None) -> dict:
    """One --method row: the weight metrics of Ŵ plus the method's fields (ValueError if it cannot run)."""
    rtn = quantize(w, spec)
    extra: dict = {"method": args.method}
    if x is None:  # RTN without activations: no output error to measure
        r = run_method(Method.RTN, w, spec)
        extra |= {"output_rel_error": None, "calib_output_rel_error": None, "rtn_output_rel_error": None,
                  "alpha": None, "seconds": r.seconds, "calib_tokens": 0, "holdout_tokens": 0}
    else:
        e = evaluate(method, w, x, spec, holdout=args.holdout_value, damp=args.damp_value, act_order=args.act_order)
        base = e if method is Method.RTN else evaluate(Method.RTN, w, x, spec, holdout=args.holdout_value)
        r = e.result
        extra |= {"output_rel_error": _number(e.holdout_error), "calib_output_rel_error": _number(e.calib_error),
                  "rtn_output_rel_error": _number(base.holdout_error),
                  "alpha": e.alpha if method in (Method.AWQ, Method.AWQ_GPTQ) else None, "seconds": e.seconds,
                  "calib_tokens": e.calib_tokens, "holdout_tokens": e.holdout_tokens}
        if method in (Method.GPTQ, Method.AWQ_GPTQ):
            extra |= {"damp": args.damp_value, "act_order": args.act_order}
        if method is Method.SMOOTHQUANT:
            extra |= {"smooth_alpha": e.alpha, "act_format": "int8 per-tensor",
                      "output_rel_error_unsmoothed": _number(e.unsmoothed_error)}
    row = _row(info, spec, weight_metrics(w, rtn, r.w_hat))
    if method is not Method.RTN:
        row["clipped_frac"] = None  # measured against RTN's ranges, which are not this method's
    return row | extra


def _method_text(row: dict) -> str:
    def num(v, fmt):
        return f"{v:{fmt}}" if v is not None else f"{'-':>{fmt.split('.')[0]}}"
    return (f"{row['tensor']:44s} {row['format']:10s} {row['method']:11s} {row['bits_per_weight']:7.3f} "
            f"{row['rel_error']:9.5f} {num(row['output_rel_error'], '9.5f')} "
            f"{num(row['rtn_output_rel_error'], '9.5f')} "
            f"{num(row['alpha'], '6.3f')} {row['seconds']:8.3f}")


def cmd_stats(args, out) -> int:
    try:
        pattern = re.compile(args.tensor) if args.tensor else None
    except re.error as e:
        raise CliError(f"--tensor {args.tensor!r} is not a valid regular expression: {e}")
    if args.group_size < 1:
        raise CliError(f"--group-size {args.group_size} is not allowed; choose an integer >= 1")
    specs = specs_for(args)
    method = method_options(args)
    device = resolve_device(args.device)
    infos = [i for i in list_tensors(args.path) if pattern is None or pattern.search(i.name)]
    if not infos:
        raise CliError(f"no tensor in {args.path} matches --tensor {args.tensor!r}")
    x = None
    if method is not None and args.calib is not None:
        x, label = load_calib(args.calib, device)
        bad = [i for i in infos if not i.reason and len(i.shape) == 2 and i.shape[1] != x.shape[1]]
        if bad:
            raise CliError(f"--calib {label} has {x.shape[1]} input features {list(x.shape)}, but "
                           f"{bad[0].name} {list(bad[0].shape)} needs {bad[0].shape[1]}"
                           f"{f' (and {len(bad) - 1} more tensors)' if len(bad) > 1 else ''}; select tensors "
                           f"that read these activations with --tensor")
        if x.shape[0] < 2:
            raise CliError(f"--calib {label} holds {x.shape[0]} token; at least 2 are needed to hold some out")
    if not args.json and method is not None:
        out.write(f"{'tensor':44s} {'format':10s} {'method':11s} {'bpw':>7s} {'rel_err':>9s} {'out_err':>9s} "
                  f"{'rtn_out':>9s} {'alpha':>6s} {'seconds':>8s}\n")
    elif not args.json:
        out.write(f"{'tensor':44s} {'format':24s} {'bpw':>7s} {'rel_err':>9s} {'sqnr_dB':>8s} {'max_abs':>9s} "
                  f"{'cosine':>8s} {'clip%':>7s} {'zero%':>7s}\n")
    for info in infos:
        reason = info.reason
        w = None
        if not reason:
            w = load_tensor(args.path, info.name, device=device)
            try:
                check_weight(w, info.name)
            except ValueError as e:
                reason = str(e)
        if reason:
            if args.json:
                out.write(json.dumps({"tensor": info.name, "shape": list(info.shape), "dtype": info.dtype,
                                      "skipped": reason}) + "\n")
            else:
                out.write(f"{info.name:44s} skipped: {reason}\n")
            continue
        for spec in specs:
            try:
                if method is not None:
                    row = method_row(args, method, info, w, spec, x)
                    out.write((json.dumps(row) if args.json else _method_text(row)) + "\n")
                    continue
                result = quantize(w, spec)
            except ValueError as e:  # e.g. a group wider than this tensor's rows, GPTQ with NVFP4's dynamic groups
                out.write((json.dumps({"tensor": info.name, "shape": list(info.shape), "dtype": info.dtype,
                                       "format": spec.format.name, "skipped": str(e)}) if args.json
                           else f"{info.name:44s} {spec.label:24s} skipped: {e}") + "\n")
                continue
            m = weight_metrics(w, result, dequantize(result))
            if args.json:
                out.write(json.dumps(_row(info, spec, m)) + "\n")
            else:
                out.write(f"{info.name:44s} {spec.label:24s} {m.bits_per_weight:7.3f} {m.rel_error:9.5f} "
                          f"{m.sqnr_db:8.2f} {m.max_abs_error:9.3g} {m.cosine:8.5f} {100 * m.clipped_frac:7.3f} "
                          f"{100 * m.zeroed_frac:7.3f}\n")
    return 0


def main(argv: list[str] | None = None, out=None) -> int:
    out = out or sys.stdout
    parser = _parser()
    args = parser.parse_args(argv)  # argparse exits 2 with a one-line usage error itself
    try:
        if args.command == "formats":
            return cmd_formats(out)
        return cmd_stats(args, out)
    except (CliError, SafetensorsError, ValueError) as e:
        sys.stderr.write(f"error: {e}\n")
        return 2
    except BrokenPipeError:  # e.g. `| head`
        return 0
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130

