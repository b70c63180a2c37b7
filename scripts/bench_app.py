"""App latency (not a test): Layer Lab's server time per widget change, cold start to first chart, memory.

    OMP_NUM_THREADS=1 python scripts/bench_app.py [--formats int4,nf4,fp8_e4m3,mxfp4,nvfp4] [--big 4096x11008]
                                                  [--dtypes float32,bfloat16] [--runs 3]

Runs the app in-process with Streamlit's AppTest (the script run a server does per rerun: widgets, the library
call, figure building; not the browser's drawing nor the websocket), in a fresh subprocess per measurement:
- cold start: from interpreter start to a finished first run of Layer Lab with its charts (imports, weight
  loading, the first analysis), and the process's resident memory (VmRSS) after it, bundled weights loaded;
- first view of the seeded 4096 x 11008 layer in each of --dtypes (written to a temporary .safetensors file and
  opened as a local path; real checkpoints ship bfloat16): loading it, its format-independent statistics
  (explorer.analysis.weight_stats, once per tensor) and the first analysis;
- rerun: the time of `.run()` after changing the format, on the largest bundled layer and on that big layer,
  each format a fresh spec (no cache hit); then the same change again (a cache hit); --runs fresh processes
  each, reported as the median and range (the shared machine drifts 20-30% between runs: each big-layer
  process also times a clone of the layer, as a yardstick).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

START = time.perf_counter()
REPO = Path(__file__).resolve().parents[1]
LAB = "pages/layer_lab.py"


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _app():
    sys.path.insert(0, str(REPO / "tests"))
    sys.path.insert(0, str(REPO))
    from app_helpers import open_page  # the same AppTest set-up as the page tests
    return open_page


def child_cold() -> dict:
    open_page = _app()
    at = open_page(LAB)
    first = time.perf_counter() - START
    charts = len(at.get("plotly_chart"))
    return {"cold_start_s": first, "charts": charts, "rss_mb": _rss_mb(), "exceptions": len(at.exception)}


def _largest_bundled_tensor() -> tuple[str, str, tuple[int, int]]:
    sys.path.insert(0, str(REPO))
    from ui.sources import builtin_sources, list_source
    best = None
    for src in builtin_sources():
        if not src.key.startswith("sample:"):
            continue
        for info in list_source(src):
            n = info.shape[0] * info.shape[1] if len(info.shape) == 2 else 0
            if info.quantizable and (best is None or n > best[0]):
                best = (n, src.key, info.name, tuple(info.shape))
    return best[1], best[2], best[3]


def child_rerun(formats: list[str], big: str | None) -> dict:
    open_page = _app()
    # The page opens in a format outside the list, so that every measured format is a change (int4, the
    # page's default, would otherwise be a cache hit).
    start = next(f for f in ("int3", "int2", "fp8_e5m2", "int5") if f not in formats)
    if big:
        out, n_in = map(int, big.split("x"))
        import torch
        from safetensors.torch import save_file
        folder = Path(os.environ["EXPLORER_LOCAL_DIRS"])
        g = torch.Generator().manual_seed(0)
        path = folder / "big.safetensors"
        w = (torch.randn(out, n_in, generator=g) * 0.02).to(getattr(torch, os.environ["BENCH_DTYPE"]))
        save_file({"model.layers.0.mlp.up_proj.weight": w}, str(path))
        del w
        at = open_page(LAB, {"src": "local", "fmt": start})
        t = time.perf_counter()
        at.text_input(key="local_path").set_value(str(path)).run()
        first = time.perf_counter() - t
        layer, shape = "model.layers.0.mlp.up_proj.weight", (out, n_in)
    else:
        src, layer, shape = _largest_bundled_tensor()
        at, first = open_page(LAB, {"src": src, "t": layer, "fmt": start}), None
    times = {}
    for name in formats:
        t = time.perf_counter()
        at.selectbox(key="w_fmt").set_value(name).run()
        times[name] = time.perf_counter() - t
    name = formats[0]
    at.selectbox(key="w_fmt").set_value(formats[1] if len(formats) > 1 else name).run()
    t = time.perf_counter()
    at.selectbox(key="w_fmt").set_value(name).run()
    cached = time.perf_counter() - t
    rss = _rss_mb()  # before the yardstick below allocates
    clone = None
    if big:  # the machine's memory-copy speed at the time (it drifts 20-30% on this shared host): a yardstick
        import torch
        w = torch.randn(out, n_in)
        clone = []
        for _ in range(5):
            t = time.perf_counter()
            w.clone()
            clone.append(time.perf_counter() - t)
        clone = min(clone)
    return {"layer": layer, "shape": list(shape), "dtype": os.environ.get("BENCH_DTYPE", ""), "first_view_s": first,
            "rerun_s": times, "cached_rerun_s": cached,
            "exceptions": len(at.exception), "rss_mb": rss, "clone_s": clone}


def _spawn(args: list[str], env: dict) -> dict:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=900)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"child {args} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--formats", default="int4,nf4,fp8_e4m3,mxfp4,nvfp4,int8")
    ap.add_argument("--big", default="4096x11008")
    ap.add_argument("--dtypes", default="float32,bfloat16", help="dtypes of the big layer (torch names)")
    ap.add_argument("--runs", type=int, default=3, help="fresh processes per layer (the machine drifts)")
    ap.add_argument("--child", choices=["cold", "rerun"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    formats = args.formats.split(",")
    if args.child == "cold":
        print(json.dumps(child_cold()))
        return 0
    if args.child == "rerun":
        print(json.dumps(child_rerun(formats, os.environ.get("BENCH_BIG") or None)))
        return 0
    env = dict(os.environ)
    threads = env.setdefault("OMP_NUM_THREADS", "1")
    cold = _spawn(["--child", "cold"], env)
    print(f"OMP_NUM_THREADS={threads}; the app sets one torch thread per server\n")
    print(f"cold start to Layer Lab's first charts: {cold['cold_start_s']:.2f} s ({cold['charts']} charts); "
          f"RSS after it (bundled weights loaded): {cold['rss_mb']:.0f} MB")
    dtypes = args.dtypes.split(",")
    runs = {"small": [], **{d: [] for d in dtypes}}
    for _ in range(args.runs):  # fresh processes: a rerun after a format change is measured once per process
        runs["small"].append(_spawn(["--child", "rerun", "--formats", args.formats], {**env, "BENCH_BIG": ""}))
        for d in dtypes:
            with tempfile.TemporaryDirectory() as tmp:
                runs[d].append(_spawn(["--child", "rerun", "--formats", args.formats],
                                      {**env, "BENCH_BIG": args.big, "BENCH_DTYPE": d, "EXPLORER_LOCAL_DIRS": tmp}))
    print(f"\nMedian of {args.runs} runs (fresh processes, one after the other), [min-max]:")
    print("\n| layer | shape | dtype | " + " | ".join(formats) + " | cache hit |")
    print("|---|---|---|" + "---|" * (len(formats) + 1))
    for rs in runs.values():
        cell = (lambda v: f"{1e3 * statistics.median(v):.0f} ms [{1e3 * min(v):.0f}-{1e3 * max(v):.0f}]")
        cells = " | ".join(cell([r["rerun_s"][f] for r in rs]) for f in formats)
        r = rs[0]
        print(f"| {r['layer']} | {r['shape'][0]} x {r['shape'][1]} | {r['dtype'] or 'as shipped'} | {cells} | "
              f"{cell([r['cached_rerun_s'] for r in rs])} |")
    for d in dtypes:
        big = runs[d]
        print(f"\n{args.big} {d}: first view (load, weight statistics, first analysis): "
              + ", ".join(f"{r['first_view_s']:.2f}" for r in big) + " s; RSS after the reruns: "
              + ", ".join(f"{r['rss_mb']:.0f}" for r in big) + " MB; w.clone() of a float32 layer of that shape "
              "in the same processes, after the reruns (the machine's memory-copy speed at the time): "
              + ", ".join(f"{1e3 * r['clone_s']:.0f}" for r in big) + " ms")
    print(f"exceptions: {cold['exceptions'] + sum(r['exceptions'] for rs in runs.values() for r in rs)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
