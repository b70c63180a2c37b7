"""Fake-quantize speed as a multiple of the memory-copy floor (`w.clone()`), every registry format, and the peers.

    OMP_NUM_THREADS=1 python scripts/bench_quantize.py [--repeats 7] [--threads 1] [--shapes 4096x4096,4096x11008]
                                                       [--dtypes fp32,bf16] [--formats ...] [--reference] [--peers]
                                                       [--baseline old_fast_paths.py]
                                                       [--json out.json] [--from-json out.json]

Every registry format at its usual granularity (plus int4 g128 asymmetric and fp4_e2m1 g64, the forms the peers
offer) on the same seeded W ~ N(0, 0.02^2), fp32 and bf16. Each op is timed interleaved with `w.clone()` of the same
tensor in the same run (median of --repeats), and reported as the ratio op / clone: the machine is shared and noisy,
so compare ratios, never raw milliseconds from different runs. The script runs itself with glibc's
MALLOC_MMAP_THRESHOLD_ fixed at 64 KiB: every large tensor then gets fresh pages, as in a fresh process (glibc's
default threshold moves up after large frees, and a clone into recycled pages runs 2-3x faster than one that faults
its pages in, which would make the floor, and every ratio, depend on what ran before). --reference also times the
straightforward path dequantize(quantize(w)). --peers adds torchao, optimum-quanto, bitsandbytes, hqq and
compressed-tensors (scripts/bench_peers.py; run it with the bench environment's python, see README "Performance"),
with their agreement to our Ŵ computed with fp32 scales, as the peers keep them: the largest |difference| and the
share of elements that differ. --baseline times another version of explorer/fast_paths.py (a file, e.g.
`git show HEAD:explorer/fast_paths.py > /tmp/old.py`) against ours in the same run, the two interleaved with each
other and with the clone (alternating which goes first), its Ŵ checked bit-identical to ours: a before/after
comparison that the machine's drift between runs cannot blur."""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for `explorer`
sys.path.insert(0, str(Path(__file__).resolve().parent))      # scripts/, for bench_peers

from dataclasses import replace  # noqa: E402

from explorer import format_names, make_spec, usual_spec  # noqa: E402
from explorer.specs import ScaleDType  # noqa: E402
from explorer.quantize import dequantize, fake_quantize, quantize  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
TARGET = 3.0  # issue 8: every format <= 3x the clone floor


def _after_floor(fn, floor, times: list, floor_times: list) -> None:
    """Times the floor, then fn, appending each to its list: both see the same machine state."""
    t = time.perf_counter()
    floor()
    floor_times.append(time.perf_counter() - t)
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)


def timed(fn, repeats: int, floor) -> tuple[float, float]:
    """(median seconds of fn, median seconds of the floor), interleaved so both see the same machine state."""
    fn(), floor()  # warm up
    a, b = [], []
    for _ in range(repeats):
        _after_floor(fn, floor, a, b)
    return statistics.median(a), statistics.median(b)


def timed_pair(fn_a, fn_b, repeats: int, floor) -> tuple[float, float, float]:
    """(median seconds of fn_a, of fn_b, of the floor): each repeat times the floor before each of the two, and
    alternates which of fn_a and fn_b goes first."""
    fn_a(), fn_b(), floor()  # warm up
    a, b, c = [], [], []
    for i in range(repeats):
        for fn, out in ((fn_a, a), (fn_b, b)) if i % 2 == 0 else ((fn_b, b), (fn_a, a)):
            _after_floor(fn, floor, out, c)
    return statistics.median(a), statistics.median(b), statistics.median(c)


def load_baseline(path: str):
    """quantize_fast from another version of explorer/fast_paths.py (it imports explorer as ours does)."""
    spec = importlib.util.spec_from_file_location("baseline_fast_paths", path)
    if spec is None or spec.loader is None:
        raise ValueError(f"--baseline {path!r} is not a Python file; allowed: a copy of explorer/fast_paths.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.quantize_fast


def specs(names: list[str]):
    """The usual spec of each format, plus the forms the peers offer for comparison."""
    for name in names:
        yield usual_spec(name)
        if name == "int4":
            yield make_spec("int4", "group", 128, symmetric=False)
        if name == "fp4_e2m1":
            yield make_spec("fp4_e2m1", "group", 64)


def _fresh_pages() -> None:
    """Re-run this script with a fixed mmap threshold (see the module docstring), once."""
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") is None and sys.platform.startswith("linux"):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"})


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        _fresh_pages()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--shapes", default="4096x4096,4096x11008")
    ap.add_argument("--dtypes", default="fp32,bf16")
    ap.add_argument("--formats", default=",".join(format_names()))
    ap.add_argument("--reference", action="store_true")
    ap.add_argument("--peers", action="store_true")
    ap.add_argument("--baseline", help="another explorer/fast_paths.py to time against ours, interleaved")
    ap.add_argument("--json", help="also write every row to this JSON file")
    ap.add_argument("--from-json", help="only print the summary tables of a saved --json file")
    args = ap.parse_args(argv)
    if args.from_json:
        _summary(json.loads(Path(args.from_json).read_text()))
        return 0
    torch.set_num_threads(args.threads)
    peers = None
    if args.peers:
        import bench_peers
        peers = bench_peers
    baseline = load_baseline(args.baseline) if args.baseline else None
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); x = op time / w.clone() time "
          f"(median of {args.repeats}, interleaved); target <= {TARGET:g}x; "
          f"MALLOC_MMAP_THRESHOLD_={os.environ.get('MALLOC_MMAP_THRESHOLD_', 'glibc default')}\n")
    print("| op | shape | dtype | clone ms | ours x |" + (" baseline x |" if baseline else "")
          + (" reference x |" if args.reference else "")
          + (" peer | peer x | max abs diff | share differing |" if peers else ""))
    print("|---|---|---|---|---|" + ("---|" if baseline else "") + ("---|" if args.reference else "")
          + ("---|---|---|---|" if peers else ""))
    rows, pad = [], ("| | | | |" if peers else "")
    for shape_text in args.shapes.split(","):
        out, n_in = map(int, shape_text.split("x"))
        for dname in args.dtypes.split(","):
            g = torch.Generator().manual_seed(0)
            w = (torch.randn(out, n_in, generator=g) * 0.02).to(DTYPES[dname])
            for spec in specs(args.formats.split(",")):
                if baseline is not None:
                    old = baseline(w, spec)[0]
                    if not torch.equal(old.view(torch.uint8), fake_quantize(w, spec).view(torch.uint8)):
                        raise SystemExit(f"--baseline gives a different Ŵ for {spec.label} {shape_text} {dname}")
                    del old
                    t_op, t_base, t_floor = timed_pair(lambda: fake_quantize(w, spec), lambda: baseline(w, spec),
                                                       args.repeats, w.clone)
                else:
                    t_op, t_floor = timed(lambda: fake_quantize(w, spec), args.repeats, w.clone)
                row = {"op": spec.label, "shape": shape_text, "dtype": dname, "clone_ms": 1e3 * t_floor,
                       "ours": t_op / t_floor, "peers": []}
                line = f"| {spec.label} | {shape_text} | {dname} | {1e3 * t_floor:.1f} | {t_op / t_floor:.2f} |"
                if baseline is not None:
                    row["baseline"] = t_base / t_floor
                    line += f" {t_base / t_floor:.2f} |"
                if args.reference:
                    t_ref, t_floor2 = timed(lambda: dequantize(quantize(w, spec)), max(3, args.repeats // 2), w.clone)
                    row["reference"] = t_ref / t_floor2
                    line += f" {t_ref / t_floor2:.2f} |"
                if peers is not None:
                    # Agreement against ours with fp32 scales, as every peer keeps them (the usual specs store
                    # fp16 scales, which alone moves most elements by a little): what remains is convention.
                    fp32_scales = spec if spec.format.is_block else replace(spec, scale_dtype=ScaleDType.FP32)
                    ours = fake_quantize(w, fp32_scales)
                    row["peers"] = peers.run(w, spec, ours, args.repeats, timed)
                    del ours
                print(line + (pad if peers else ""), flush=True)
                for p in row["peers"]:
                    blank = "| | | | | |" + (" |" if args.reference else "") + (" |" if baseline else "")
                    if p["status"] != "ok":
                        print(f"{blank} {p['library']}: {p['label']} | {p['status']} | | |", flush=True)
                    else:
                        print(f"{blank} {p['library']}: {p['label']} | {p['ratio']:.2f} | {p['max_diff']:.3g} | "
                              f"{100 * p['share_diff']:.1f}% |", flush=True)
                rows.append(row)
    _summary(rows)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


def _compact(rows: list[dict]) -> None:
    """One line per op: ours in every shape/dtype, and the fastest peer of each (its x and agreement)."""
    cols = list(dict.fromkeys((r["dtype"], r["shape"]) for r in rows))
    print("\n| op | " + " | ".join(f"{d} {s}" for d, s in cols) + " | fastest peer, same cells (agreement) |")
    print("|---|" + "---|" * len(cols) + "---|")
    for op in dict.fromkeys(r["op"] for r in rows):
        by = {(r["dtype"], r["shape"]): r for r in rows if r["op"] == op}
        cells = [f"{by[c]['ours']:.2f}" if c in by else "" for c in cols]
        peer_cells = []
        for c in cols:
            ok = [p for p in by.get(c, {"peers": []})["peers"] if p["status"] == "ok"]
            if ok:
                p = min(ok, key=lambda p: p["ratio"])
                peer_cells.append(f"{p['library']} {p['ratio']:.1f} "
                                  f"({p['max_diff']:.2g}, {100 * p['share_diff']:.0f}%)")
        print(f"| {op} | " + " | ".join(cells) + " | " + "; ".join(peer_cells) + " |")


def _baseline_table(rows: list[dict]) -> None:
    """One line per op: baseline -> ours in every shape/dtype (rows timed with --baseline)."""
    cols = list(dict.fromkeys((r["dtype"], r["shape"]) for r in rows))
    print("\n| op (baseline -> ours) | " + " | ".join(f"{d} {s}" for d, s in cols) + " |")
    print("|---|" + "---|" * len(cols))
    for op in dict.fromkeys(r["op"] for r in rows):
        by = {(r["dtype"], r["shape"]): r for r in rows if r["op"] == op}
        cells = [f"{by[c]['baseline']:.2f} -> {by[c]['ours']:.2f}" if c in by else "" for c in cols]
        print(f"| {op} | " + " | ".join(cells) + " |")


def _summary(rows: list[dict]) -> None:
    _compact(rows)
    if rows and all("baseline" in r for r in rows):
        _baseline_table(rows)
    over = [r for r in rows if r["ours"] > TARGET]
    print(f"\n{len(rows) - len(over)}/{len(rows)} ops within {TARGET:g}x the clone floor"
          + ("; over: " + ", ".join(f"{r['op']} {r['shape']} {r['dtype']} {r['ours']:.2f}x" for r in over)
             if over else ""))
    timed_peers = [(r, p) for r in rows for p in r["peers"] if p["status"] == "ok"]
    if timed_peers:
        slower = [(r, p) for r, p in timed_peers if p["ratio"] <= r["ours"]]
        print(f"ours faster than the peer in {len(timed_peers) - len(slower)}/{len(timed_peers)} comparisons"
              + ("; not: " + ", ".join(f"{p['library']} {r['op']} {r['shape']} {r['dtype']} "
                                       f"({p['ratio']:.2f}x vs {r['ours']:.2f}x)" for r, p in slower)
                 if slower else ""))


if __name__ == "__main__":
    raise SystemExit(main())
