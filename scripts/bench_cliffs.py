"""Benchmark of the per-task cliff sweep on MiniLM (not a test).

    python scripts/bench_cliffs.py [--threads N] [--schemes int8_ch,fp8_t,...] [--device cpu] [--json out.json]

Runs explorer.cliffs.run_sweep on the full MiniLM task set (4 tasks, 200-216 items each) with the default six
schemes (INT8 per-channel, FP8 E4M3 per-tensor, INT4 g128 RTN, INT4 g128 GPTQ, INT4 per-tensor, NF4 g64), the
unquantized evaluation included, and prints the scores table, the wall time, the process CPU time and the thread
count. The target (issue 6): under 60 s on a 2-core machine. These machines are shared: when another process
takes a core, wall time grows while CPU time does not, so with one thread the CPU time is what the sweep costs
on an idle machine. Model loading is not timed (the app loads it once per server).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from explorer.cliffs import CATALOG, DEFAULT_SCHEMES, run_sweep  # noqa: E402
from explorer.tasks.score_embed import task_sentences  # noqa: E402
from explorer.whole_model import load_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--schemes", default=",".join(DEFAULT_SCHEMES), help=f"comma list of {list(CATALOG)}")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", default="", help="also write the table as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    schemes = [CATALOG[k] for k in args.schemes.split(",")]
    base = load_model("minilm", args.device)
    stages: list[tuple[str, float]] = []
    last = [time.perf_counter(), ""]

    def progress(f: float, msg: str) -> None:
        head = msg.split(":")[0]
        if head != last[1]:
            now = time.perf_counter()
            if last[1]:
                stages.append((last[1], now - last[0]))
            last[0], last[1] = now, head
    wall0, cpu0 = time.perf_counter(), time.process_time()
    sweep = run_sweep("minilm", schemes, base=base, on_progress=progress)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    stages.append((last[1], time.perf_counter() - last[0]))

    tasks = sweep.tasks
    n_sent = len(task_sentences(tasks))
    print(f"MiniLM sweep: {len(schemes)} schemes x {len(tasks)} tasks ({', '.join(f'{t.key} {t.size}' for t in tasks)};"
          f" {n_sent} distinct sentences), device {args.device}, torch threads {torch.get_num_threads()}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, os.cpu_count()={os.cpu_count()}")
    print(f"wall {wall:.1f} s, process CPU {cpu:.1f} s (target: < 60 s)\n")
    head = f"{'scheme':<28}{'bits/w':>7}{'cos mean':>9}{'cos min':>9}  " + "".join(f"{t.key:>24}" for t in tasks)
    print(head)
    print(f"{'unquantized (fp32)':<28}{32:>7}{1:>9}{1:>9}  " +
          "".join(f"{sweep.base.outcome(t.key).score:>24.3f}" for t in tasks))
    rows = []
    for r in sweep.results:
        w = r.evaluation.whole
        cells = []
        for t in tasks:
            c = r.change(t.key)
            cells.append(f"{c.score:.3f} ({c.change:+5.1f}, {len(c.flipped):>3} fl)")
            rows.append({"scheme": r.label, "task": t.key, "unquantized": c.base_score, "score": c.score,
                         "change_points": c.change, "flips": len(c.flipped), "decisions": c.n})
        print(f"{r.label:<28}{r.bits_per_weight:>7.3f}{w.mean:>9.4f}{w.worst:>9.4f}  " +
              "".join(f"{x:>24}" for x in cells) + f"   quantize {r.quantize_seconds:.1f} s")
    print("\nstages (wall s): " + ", ".join(f"{n} {s:.1f}" for n, s in stages))
    if args.json:
        Path(args.json).write_text(json.dumps({"wall_s": wall, "cpu_s": cpu, "threads": torch.get_num_threads(),
                                               "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
