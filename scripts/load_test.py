"""Load test: many visitors on one real server, measured.

Starts `streamlit run app.py` on 127.0.0.1 (loopback only, a free port), opens N concurrent sessions as raw
websocket clients speaking Streamlit's own protocol (the BackMsg/ForwardMsg protobufs a browser tab sends and
receives), and has each session change Layer Lab's settings through the page's link (format, group size,
symmetric, weight source) for the given duration, one rerun at a time, as fast as the server answers.

Reports p50/p95/max rerun latency (request sent -> script finished), reruns done, errors (an exception element,
an st.error, a run that did not finish successfully, a page not found, a dropped connection, a timeout, or a
traceback in the server log: must be 0) and the server's peak memory (VmHWM of the server process, and the
largest VmRSS sum over its process tree sampled every 0.2 s). Exits 1 when errors > 0 or the peak RSS exceeds
--rss-limit-mb (the bound stated in the README), 2 when the server does not start.

    python scripts/load_test.py                        # 20 sessions, 60 s
    python scripts/load_test.py --sessions 4 --duration 10 --json   # the CI form (tests/test_load.py)
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"          # loopback only: the load test never listens on or connects to anything else
PAGE = "layer_lab"
RERUN_TIMEOUT_S = 60.0      # one rerun slower than this counts as an error
START_TIMEOUT_S = 90.0
MAX_SESSIONS = 200
DEFAULT_RSS_LIMIT_MB = 1000  # the README's bound for 20 sessions (Hosting limits)

FORMATS = ["int8", "int4", "int3", "nf4", "fp8_e4m3", "fp4_e2m1", "mxfp4", "nvfp4"]
LINKS = [dict(fmt=f, gs=str(g), sym=s, src=src)
         for src in ("sample:minilm", "sample:smollm2") for g in (64, 128) for s in ("1", "0") for f in FORMATS]


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    first_runs: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def tree_rss_kb(pid: int) -> int:
    """VmRSS summed over `pid` and its descendants (from /proc), in kB; 0 once the process is gone."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, StopIteration, ValueError):
            continue
    return total


def vm_hwm_kb(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return 0


def start_server(port: int, log) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless=true",
           f"--server.address={HOST}", f"--server.port={port}", "--browser.gatherUsageStats=false",
           "--server.fileWatcherType=none"]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    # A session of its own, so stopping it (and only it) also stops anything it started.
    return subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def wait_healthy(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"no health answer within {START_TIMEOUT_S:.0f} s")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)


def rerun_msg(query: dict[str, str], page: str, page_hash: str) -> bytes:
    msg = BackMsg()
    msg.rerun_script.query_string = urlencode(query)
    msg.rerun_script.page_name = page
    msg.rerun_script.page_script_hash = page_hash
    return msg.SerializeToString()


def problem(fwd: ForwardMsg) -> str:
    """Why this message shows a failed run ('' when it does not)."""
    kind = fwd.WhichOneof("type")
    if kind == "page_not_found":
        return f"page not found: {fwd.page_not_found.page_name}"
    if kind == "delta" and fwd.delta.WhichOneof("type") == "new_element":
        el = fwd.delta.new_element
        if el.WhichOneof("type") == "exception":
            return f"exception: {el.exception.type}: {el.exception.message[:200]}"
        if el.WhichOneof("type") == "alert" and el.alert.format == el.alert.ERROR:
            return f"st.error: {el.alert.body[:200]}"
    return ""


async def one_run(ws, query: dict[str, str], page: str, page_hash: str) -> tuple[float, str, str]:
    """Send one rerun of `page` ('' = Home) and wait for its end: (seconds, page hash, problem or '')."""
    t0 = time.perf_counter()
    await ws.send(rerun_msg(query, page, page_hash))
    trouble = ""
    while True:
        fwd = ForwardMsg()
        fwd.ParseFromString(await ws.recv())
        kind = fwd.WhichOneof("type")
        if kind == "new_session":
            page_hash = fwd.new_session.page_script_hash or page_hash
        trouble = trouble or problem(fwd)
        if kind == "script_finished":
            status = fwd.script_finished
            if status != ForwardMsg.FINISHED_SUCCESSFULLY:
                trouble = trouble or f"script finished with status {ForwardMsg.ScriptFinishedStatus.Name(status)}"
            return time.perf_counter() - t0, page_hash, trouble


async def session(n: int, port: int, duration: float, links: list[dict], start: asyncio.Barrier,
                  tally: Tally) -> None:
    links = itertools.islice(itertools.cycle(links), n * 5, None)  # sessions start at different settings
    try:
        async with websockets.connect(f"ws://{HOST}:{port}/_stcore/stream", subprotocols=["streamlit"],
                                      max_size=None, open_timeout=30) as ws:
            # Each visitor lands on Home, as a browser opening the app does, then works in Layer Lab. (A deep link
            # as the very first visit of a fresh server fails: see the xfail in tests/browser/test_app_browser.py.)
            seconds, page_hash, trouble = await asyncio.wait_for(one_run(ws, {}, "", ""), RERUN_TIMEOUT_S)
            tally.first_runs.append(seconds)
            if trouble:
                tally.errors.append(f"session {n}, Home: {trouble}")
            page_hash = ""
            await asyncio.wait_for(start.wait(), START_TIMEOUT_S)  # the clock starts when every visitor is in
            until = time.monotonic() + duration
            while time.monotonic() < until:
                query = next(links)
                seconds, page_hash, trouble = await asyncio.wait_for(one_run(ws, query, PAGE, page_hash),
                                                                     RERUN_TIMEOUT_S)
                tally.latencies.append(seconds)
                if trouble:
                    tally.errors.append(f"session {n}, {urlencode(query)}: {trouble}")
    except asyncio.BrokenBarrierError:
        tally.errors.append(f"session {n}: stopped, another session failed before the start")
    except asyncio.TimeoutError:
        tally.errors.append(f"session {n}: a rerun took longer than {RERUN_TIMEOUT_S:.0f} s")
        await start.abort()  # never leave the others waiting for this one
    except (OSError, websockets.WebSocketException) as e:
        tally.errors.append(f"session {n}: connection failed: {e!r}")
        await start.abort()


async def drive(port: int, sessions: int, duration: float, links: list[dict], pid: int) -> tuple[Tally, int]:
    tally, peak = Tally(), 0
    start = asyncio.Barrier(sessions)
    tasks = [asyncio.create_task(session(n, port, duration, links, start, tally)) for n in range(sessions)]
    while not all(t.done() for t in tasks):
        peak = max(peak, tree_rss_kb(pid))
        await asyncio.sleep(0.2)
    return tally, peak


def percentile(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    return statistics.quantiles(xs, n=100, method="inclusive")[q - 1] if len(xs) > 1 else xs[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of driving, after the server is up")
    ap.add_argument("--rss-limit-mb", type=float, default=DEFAULT_RSS_LIMIT_MB)
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of a text report")
    ap.add_argument("--settings", type=int, default=len(LINKS),
                    help=f"how many distinct Layer Lab settings the sessions cycle through (1..{len(LINKS)}; "
                         f"fewer means more cache hits)")
    ap.add_argument("--server-log", type=Path, help="also write the server's output to this file")
    args = ap.parse_args(argv)
    if not 1 <= args.sessions <= MAX_SESSIONS or not 0 < args.duration <= 3600 or not 1 <= args.settings <= len(LINKS):
        ap.error(f"--sessions must be 1..{MAX_SESSIONS}, --duration 0..3600 s, --settings 1..{len(LINKS)}")

    port = free_port()
    with tempfile.TemporaryFile(mode="w+") as log:
        proc = start_server(port, log)
        try:
            t0 = time.monotonic()
            wait_healthy(port, proc)
            startup = time.monotonic() - t0
            idle_kb = tree_rss_kb(proc.pid)
            tally, peak_kb = asyncio.run(drive(port, args.sessions, args.duration, LINKS[:args.settings], proc.pid))
            hwm_kb = vm_hwm_kb(proc.pid)
        except RuntimeError as e:
            print(f"load test: the server did not start: {e}", file=sys.stderr)
            return 2
        finally:
            stop_server(proc)
            log.seek(0)
            server_log = log.read()
            if args.server_log:
                args.server_log.write_text(server_log)
    tracebacks = server_log.count("Traceback (most recent call last)")
    if tracebacks:
        first = server_log[server_log.index("Traceback (most recent call last)"):]
        tally.errors.insert(0, f"{tracebacks} traceback(s) in the server log; the first ends: "
                               f"{' | '.join(first.splitlines()[:40][-4:])}")
    peak_mb = max(peak_kb, hwm_kb) / 1024
    report = {
        "sessions": args.sessions, "duration_s": args.duration, "settings": args.settings,
        "startup_s": round(startup, 2),
        "reruns": len(tally.latencies) + len(tally.first_runs),
        "first_run_p50_s": round(percentile(tally.first_runs, 50), 3),
        "p50_s": round(percentile(tally.latencies, 50), 3), "p95_s": round(percentile(tally.latencies, 95), 3),
        "max_s": round(max(tally.latencies, default=float("nan")), 3),
        "errors": len(tally.errors), "error_samples": tally.errors[:5],
        "idle_rss_mb": round(idle_kb / 1024, 1), "peak_rss_mb": round(peak_mb, 1),
        "rss_limit_mb": args.rss_limit_mb,
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{report['sessions']} sessions for {report['duration_s']:g} s: {report['reruns']} reruns; "
              f"latency p50 {report['p50_s']} s, p95 {report['p95_s']} s, max {report['max_s']} s "
              f"(first run p50 {report['first_run_p50_s']} s); errors {report['errors']}; "
              f"server RSS idle {report['idle_rss_mb']} MB, peak {report['peak_rss_mb']} MB "
              f"(limit {args.rss_limit_mb:g} MB)")
        for e in report["error_samples"]:
            print("  error:", e)
    return 1 if report["errors"] or peak_mb > args.rss_limit_mb else 0


if __name__ == "__main__":
    sys.exit(main())
