"""Command line, in the spirit of llama.cpp's quantize-stats.

    python -m explorer formats
    python -m explorer stats PATH [--tensor REGEX] [--format NAME] [--granularity tensor|channel|group|block]
                                  [--group-size N] [--symmetric|--asymmetric] [--scale-dtype fp16|fp32|bf16]
                                  [--device auto|cpu|cuda] [--json]

`stats` prints, per 2-D tensor and per format, the error metrics and the effective bits per weight (every
registry format at its usual granularity unless --format is given). Tensors that cannot be quantized (1-D,
integer, NaN/Inf, ...) are listed with the reason. With --json each line is one JSON object:
  {"tensor", "shape", "dtype", "format", "granularity", "group_size", "symmetric", "scale_dtype", "mse",
   "rel_error", "sqnr_db", "max_abs_error", "cosine", "clipped_frac", "zeroed_frac", "bits_per_weight",
   "packed_bytes"}
(sqnr_db is null when the error is exactly zero), or {"tensor", "shape", "dtype", "skipped": reason}.
Errors exit with status 2 and a one-line message on stderr, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys

from explorer.device import DEVICE_CHOICES, resolve_device
from explorer.formats import FORMATS, format_names, make_spec
from explorer.loader import SafetensorsError, list_tensors, load_tensor
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
    return p


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


def cmd_stats(args, out) -> int:
    try:
        pattern = re.compile(args.tensor) if args.tensor else None
    except re.error as e:
        raise CliError(f"--tensor {args.tensor!r} is not a valid regular expression: {e}")
    if args.group_size < 1:
        raise CliError(f"--group-size {args.group_size} is not allowed; choose an integer >= 1")
    specs = specs_for(args)
    device = resolve_device(args.device)
    infos = [i for i in list_tensors(args.path) if pattern is None or pattern.search(i.name)]
    if not infos:
        raise CliError(f"no tensor in {args.path} matches --tensor {args.tensor!r}")
    if not args.json:
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
                result = quantize(w, spec)
            except ValueError as e:  # e.g. a group wider than this tensor's rows
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

