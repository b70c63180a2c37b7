"""Real-browser fixtures: a live `streamlit run app.py` server per session, Debian's Chromium driven by
pytest-playwright, and screenshots kept under test-artifacts/screenshots/ (gitignored).

Never `playwright install` here: the launch points at /usr/bin/chromium (apt-get install chromium); the tests
skip with a reason when it is absent. See shared/facts/testing-here.md for the measured timings and pitfalls.
"""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = REPO_ROOT / "test-artifacts" / "screenshots"
LOGS = REPO_ROOT / "test-artifacts" / "logs"
CHROMIUM_ARGS = ["--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1400, "height": 1800}  # tall: full_page screenshots do not grow with Streamlit's layout
HEALTH_TIMEOUT_S = 60


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppServer:
    """One `streamlit run app.py` process started by this test session (and stopped only by it)."""

    def __init__(self, name: str):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        LOGS.mkdir(parents=True, exist_ok=True)
        self.log_path = LOGS / f"streamlit-{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.log"
        self._log = open(self.log_path, "w")
        env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless=true",
             "--server.address=127.0.0.1", f"--server.port={self.port}", "--browser.gatherUsageStats=false",
             "--server.fileWatcherType=none"],
            cwd=REPO_ROOT, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        self._wait_healthy()

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with {self.proc.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as r:
                    if r.read() == b"ok":
                        return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"streamlit not healthy after {HEALTH_TIMEOUT_S} s; see {self.log_path}")

    def alive(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=5) as r:
                return self.proc.poll() is None and r.read() == b"ok"
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()


def pytest_collection_modifyitems(config, items):
    """Skip this folder's tests, with the reason, where Debian's Chromium is not installed."""
    if os.path.exists(CHROMIUM):
        return
    skip = pytest.mark.skip(reason=f"{CHROMIUM} is absent: apt-get install chromium "
                                   f"(never `playwright install`: it downloads a browser)")
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def app_server():
    """The app served for the whole browser session; yields the AppServer (use `.url`)."""
    server = AppServer("session")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fresh_server(request):
    """A server of its own, for a test that must be the very first visitor of a freshly started app."""
    server = AppServer(request.node.name)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """pytest-playwright's launch options, pointed at Debian's Chromium (no browser download)."""
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args():
    """A tall viewport. (Replaces pytest-playwright's own fixture, which asks for a `device` fixture that the
    project's tests/conftest.py redefines per test.)"""
    return {"viewport": VIEWPORT}


@pytest.fixture
def screenshot():
    """screenshot(page, name): save test-artifacts/screenshots/<name>.png and return its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path
    return take
