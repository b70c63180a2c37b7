"""Fake-quantize speed as a multiple of the memory-copy floor (`w.clone()`), every registry format.

    OMP_NUM_THREADS=1 python scripts/bench_quantize.py [--repeats 7] [--threads 1] [--shapes 4096x4096,4096x11008]
                                                       [--dtypes fp32,bf16] [--reference] [--peers]

Each op is timed interleaved with `w.clone()` of the same tensor in the same run (median of --repeats), and
reported as the ratio op / clone: the machine is shared and noisy, so compare ratios, never raw milliseconds from
different runs. --reference also times the straightforward path dequantize(quantize(w)) for comparison.
--peers adds the peer libraries (see scripts/bench_peers.py) where they are installed.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for `explorer`

from explorer import format_names, usual_spec
from explorer.quantize import dequantize, fake_quantize, quantize

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def timed(fn, repeats: int, floor) -> tuple[float, float]:
    """(median seconds of fn, median seconds of the floor), interleaved so both see the same machine state."""
    fn(), floor()  # warm up
    a, b = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        floor()
        b.append(time.perf_counter() - t)
        t = time.perf_counter()
        fn()
        a.append(time.perf_counter() - t)
    return statistics.median(a), statistics.median(b)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--shapes", default="4096x4096,4096x11008")
    ap.add_argument("--dtypes", default="fp32,bf16")
    ap.add_argument("--formats", default=",".join(format_names()))
    ap.add_argument("--reference", action="store_true")
    ap.add_argument("--peers", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); ratio = op time / w.clone() time "
          f"(median of {args.repeats}, interleaved)")
    peers = None
    if args.peers:
        import bench_peers  # scripts/ is on sys.path when run as a script
        peers = bench_peers
    header = f"{'format':26s} {'shape':>11s} {'dtype':>5s} {'clone ms':>9s} {'ours x':>7s}"
    if args.reference:
        header += f" {'reference x':>12s}"
    print(header)
    for shape_text in args.shapes.split(","):
        out, n_in = map(int, shape_text.split("x"))
        for dname in args.dtypes.split(","):
            g = torch.Generator().manual_seed(0)
            w = (torch.randn(out, n_in, generator=g) * 0.02).to(DTYPES[dname])
            for name in args.formats.split(","):
                spec = usual_spec(name)
                t_op, t_floor = timed(lambda: fake_quantize(w, spec), args.repeats, w.clone)
                line = f"{spec.label:26s} {shape_text:>11s} {dname:>5s} {1e3 * t_floor:9.2f} {t_op / t_floor:7.2f}"
                if args.reference:
                    t_ref, t_floor2 = timed(lambda: dequantize(quantize(w, spec)), max(3, args.repeats // 2), w.clone)
                    line += f" {t_ref / t_floor2:12.2f}"
                print(line, flush=True)
                if peers is not None:
                    for row in peers.compare(w, spec, args.repeats, timed):
                        print("    " + row, flush=True)


if __name__ == "__main__":
    main()
