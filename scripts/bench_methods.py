"""Benchmark of the activation-aware methods on one seeded layer (not a test).

    python scripts/bench_methods.py [--out 4096 --in 4096 --tokens 2048 --threads N --spec int4:128]

W ~ N(0, 0.02^2) [out, in]; X [tokens, in] correlated like real activations (256 latent factors mixed into all
inputs, plus noise; --iid for plain N(0, 1)), with 8 outlier input channels scaled x50 (shared/facts/peers.md
measured llm-compressor there: ~4.8 s for GPTQ given H, ~17.7 s for the 20-point AWQ search, 2 threads).
Times: Hessian accumulation, GPTQ given H (also with llm-compressor's convention: static groups, fp32 scales), the
AWQ search (its grid in bfloat16 where the CPU has AMX, and all float32), AWQ's clip search, AWQ+GPTQ, SmoothQuant;
in the bench environment also llm-compressor's GPTQ and AWQ (scripts/peer_awq.py) on the same W, H and X. Errors:
||X W^T - X Ŵ^T|| / ||X W^T|| on the calibration tokens and on 512 held-out tokens. With iid X and fewer tokens
than inputs GPTQ overfits (held-out error above RTN): H has rank <= tokens and nothing ties the rest together.
The machine is shared: compare a row with the matmul reference line of the same run, not across runs.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # peer_awq, for the llm-compressor rows

from explorer.formats import make_spec  # noqa: E402
from explorer.methods import awq_gptq, awq_search, gptq_quantize, hessian_from, smoothquant  # noqa: E402
from explorer.methods.awq import clip_search  # noqa: E402
from explorer.metrics import output_rel_error  # noqa: E402
from explorer.quantize import fake_quantize  # noqa: E402


def layer(n_out: int, n_in: int, tokens: int, seed: int, iid: bool) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n_out, n_in, generator=g) * 0.02
    x = torch.randn(tokens + 512, n_in, generator=g)
    if not iid:
        mix = torch.randn(256, n_in, generator=g) / 16.0
        x = torch.randn(tokens + 512, 256, generator=g) @ mix + 0.5 * x
    outliers = torch.randperm(n_in, generator=g)[:8]
    x[:, outliers] *= 50.0
    return w, x[:tokens], x[tokens:]


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


class Clock:
    """Times a call and, around it, one reference matmul X W^T: on a shared machine the ratio of the two is
    steadier than either. `floor` is that matmul on an idle machine (2 threads here: ~0.25 s for 69 GFLOP)."""

    def __init__(self, x, w):
        self.x, self.w, self.refs = x, w, []

    def __call__(self, fn):
        _, before = timed(lambda: self.x @ self.w.T)
        out, t = timed(fn)
        _, after = timed(lambda: self.x @ self.w.T)
        self.refs.append((before + after) / 2)
        return out, t


def llmcompressor_rows(clock, w, h, x, spec) -> list[tuple[str, float, torch.Tensor]]:
    """Side-by-side rows from llm-compressor when it is installed (the bench environment, README "Performance";
    not the project's: it pulls transformers). GPTQ: its `quantize_weight` with this H and group scales / zero
    points from the same min-max rule (compressed-tensors' calculate_qparams), timed through `clock`. AWQ: its own
    modifier on a two-module model (scripts/peer_awq.py), with and without duo scaling; the seconds are its
    smoothing step (reference forward, 20-point grid, folding), the analog of our awq_search."""
    if importlib.util.find_spec("llmcompressor") is None:
        return []
    os.environ.setdefault("LLM_COMPRESSOR_LOG_DISABLED", "true")  # its INFO lines per step, read at import
    try:
        from compressed_tensors.quantization import QuantizationArgs
        from compressed_tensors.quantization.utils.helpers import calculate_qparams
        from llmcompressor.modifiers.gptq.gptq_quantize import quantize_weight
        from peer_awq import llmcompressor_awq
    except Exception as e:  # an incompatible install: say so, keep the rest of the table
        print(f"llm-compressor is installed but does not import here: {type(e).__name__}: {e}")
        return []
    group = spec.group_size
    args = QuantizationArgs(num_bits=spec.format.bits, type="int", symmetric=spec.symmetric, strategy="group",
                            group_size=group)
    g = w.float().reshape(w.shape[0], -1, group)
    scale, zero = calculate_qparams(g.amin(-1), g.amax(-1), args)
    out, t = clock(lambda: quantize_weight(w.float()[None].clone(), h.float()[None].clone(), scale[None],
                                           zero[None], None, args))
    rows = [("llm-compressor GPTQ quantize_weight (H given; static groups, fp32 scales)", t, out[0][0])]
    for duo in (False, True):
        with contextlib.redirect_stderr(io.StringIO()):  # its progress bars
            res, _ = clock(lambda: llmcompressor_awq(w, x, spec.format.bits, group, spec.symmetric, duo))
        label = "duo scaling, its grid" if duo else "x only, as llm-awq"
        rows.append((f"llm-compressor AWQ, 20 points, {label} (ratio {res['ratio']:.3f})", res["seconds"],
                     res["w_hat"]))
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=int, default=4096)
    p.add_argument("--in", dest="n_in", type=int, default=4096)
    p.add_argument("--tokens", type=int, default=2048)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--spec", default="int4:128", help="format:group_size, asymmetric (default int4:128)")
    p.add_argument("--clip", action="store_true", help="also time AWQ's clip search")
    p.add_argument("--iid", action="store_true", help="uncorrelated N(0, 1) activations")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    name, group = args.spec.split(":")
    spec = make_spec(name, "group", int(group), symmetric=False)
    w, x, x_test = layer(args.out, args.n_in, args.tokens, args.seed, args.iid)
    print(f"layer [{args.out}, {args.n_in}], {args.tokens} {'iid' if args.iid else 'correlated'} calibration "
          f"tokens + 512 held out, {spec.label}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    clock = Clock(x, w)
    gflop = 2 * args.tokens * args.out * args.n_in / 1e9

    rows = []
    w_rtn, t = clock(lambda: fake_quantize(w, spec))
    rows.append(("RTN", t, w_rtn))
    h, t = clock(lambda: hessian_from(x))
    rows.append((f"Hessian accumulation ({args.tokens} tokens)", t, None))
    g, t = clock(lambda: gptq_quantize(w, h, spec))
    rows.append(("GPTQ (H given)", t, g.w_hat))
    spec32 = make_spec(spec.format.name, "group", spec.group_size, symmetric=spec.symmetric, scale_dtype="fp32")
    g, t = clock(lambda: gptq_quantize(w, h, spec32, static_groups=True))
    rows.append(("GPTQ static groups, fp32 scales (llm-compressor's rule)", t, g.w_hat))
    g, t = clock(lambda: gptq_quantize(w, h, spec, act_order=True, static_groups=True))
    rows.append(("GPTQ act-order + static groups", t, g.w_hat))
    a, t = clock(lambda: awq_search(w, x, spec))
    rows.append((f"AWQ search, 20 points (alpha {a.alpha:.3f}; grid ranked in {a.grid_dtype})".replace("torch.", ""),
                 t, a.w_hat))
    a32, t = clock(lambda: awq_search(w, x, spec, grid_dtype=torch.float32))
    rows.append((f"AWQ search, 20 points, float32 grid (alpha {a32.alpha:.3f})", t, a32.w_hat))
    if args.clip:
        xs, ws = x / a.scales, w * a.scales
        _, t = clock(lambda: clip_search(ws, xs, spec))
        ac = awq_search(w, x, spec, clip=True)
        rows.append(("AWQ clip search alone (Ŵ: search + clip)", t, ac.w_hat))
    ag, t = clock(lambda: awq_gptq(w, x, spec))
    rows.append(("AWQ + GPTQ (incl. its Hessian)", t, ag.w_hat))
    sq, t = clock(lambda: smoothquant(w, x, weight_spec=spec))
    w_sq = fake_quantize(w * sq.scales, spec) / sq.scales
    rows.append(("SmoothQuant a=0.5 (weight side)", t, w_sq))
    rows += llmcompressor_rows(clock, w, h, x, spec)

    rtn_cal, rtn_test = output_rel_error(x, w, w_rtn), output_rel_error(x_test, w, w_rtn)
    print(f"\nmatmul units: seconds / one {gflop:.0f}-GFLOP X W^T matmul timed around the same row\n")
    print("| method | seconds | matmul units | output error (calib) | vs RTN | output error (held out) | vs RTN |")
    print("|---|---|---|---|---|---|---|")
    for (label, secs, w_hat), ref in zip(rows, clock.refs):
        if w_hat is None:
            print(f"| {label} | {secs:.2f} | {secs / ref:.1f} | | | | |")
            continue
        cal, test = output_rel_error(x, w, w_hat), output_rel_error(x_test, w, w_hat)
        print(f"| {label} | {secs:.2f} | {secs / ref:.1f} | {cal:.4f} | {cal / rtn_cal:.2f}x | {test:.4f} | "
              f"{test / rtn_test:.2f}x |")
    print(f"\nSmoothQuant W8A8 (INT8 per-tensor X, {spec.label} W): output error "
          f"{sq.output_error_before:.4f} -> {sq.output_error_after:.4f}; activation error "
          f"{sq.act_error_before:.4f} -> {sq.act_error_after:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
