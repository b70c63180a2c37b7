"""The load test's short form (4 sessions, 10 s against a real server on loopback): no errors, memory within the
README's bound; and the server-wide compute slots that bound memory under load are first come, first served."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_short_load_run_has_no_errors_and_bounded_memory():
    out = subprocess.run([sys.executable, "scripts/load_test.py", "--sessions", "4", "--duration", "10", "--json"],
                         cwd=REPO, capture_output=True, text=True, timeout=240)
    assert out.returncode in (0, 1), out.stderr[-2000:]  # 2: the server did not start
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["errors"] == 0, report["error_samples"]
    assert report["reruns"] >= 4 * 2, report  # every session got past Home and drove Layer Lab
    assert report["p50_s"] > 0 and report["p95_s"] >= report["p50_s"]
    assert 100 < report["peak_rss_mb"] <= report["rss_limit_mb"], report
    assert out.returncode == 0


def test_compute_slots_are_bounded_and_first_come_first_served():
    from ui.common import _FairSlots
    slots, order, running, peak, lock = _FairSlots(2), [], [0], [0], threading.Lock()

    def work(i: int) -> None:
        with slots.hold():
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
                order.append(i)
            time.sleep(0.01)
            with lock:
                running[0] -= 1

    threads = []
    for i in range(12):
        threads.append(threading.Thread(target=work, args=(i,)))
        threads[-1].start()
        deadline = time.monotonic() + 5
        while len(slots._line) + len(order) < i + 1 and time.monotonic() < deadline:
            time.sleep(0.0005)  # thread i is in line (or already working) before thread i+1 starts
    for t in threads:
        t.join(timeout=10)
    assert peak[0] == 2
    assert order == list(range(12))
    with pytest.raises(RuntimeError, match="boom"), slots.hold():  # a failing call gives its slot back
        raise RuntimeError("boom")
    with slots.hold(), slots.hold():
        pass  # both slots are free again


# --- the deploy recipe stays consistent with what is tested -------------------------------------------------

def _pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            name, version = line.split("==")
            out[name.lower()] = version
    return out


def test_deploy_requirements_keep_the_tested_pins_apart_from_torchs_source():
    tested, deploy = _pins(REPO / "requirements.txt"), _pins(REPO / "requirements-deploy.txt")
    assert deploy.pop("torch") == tested.pop("torch") + "+cpu"
    assert deploy == tested
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in (REPO / "requirements-deploy.txt").read_text()


def test_the_cpu_index_stays_out_of_what_ci_installs():
    for name in ("requirements.txt", "requirements-dev.txt", "scripts/test.sh", ".ci/run"):
        assert "download.pytorch.org" not in (REPO / name).read_text(), name


def test_dockerfile_essentials():
    text = (REPO / "Dockerfile").read_text()
    lines = [ln.strip() for ln in text.splitlines()]
    assert lines[[i for i, ln in enumerate(lines) if ln and not ln.startswith("#")][0]] == "FROM python:3.11-slim"
    assert "--uid 1000" in text and "USER 1000" in lines
    assert "pip install --index-url https://download.pytorch.org/whl/cpu torch==" + _pins(
        REPO / "requirements.txt")["torch"] in text
    assert "pip install -r requirements-deploy.txt" in text
    assert "HEALTHCHECK" in text and "/_stcore/health" in text and "EXPOSE 8501" in lines
    assert lines[-1] == 'CMD ["streamlit", "run", "app.py"]'
    assert text.index("USER 1000") < text.index("CMD [")  # the server never runs as root
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ".git" in ignored and "tests" in ignored and "sample_weights" not in ignored
