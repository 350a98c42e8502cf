"""Driving `vin demo` in a real headless browser (the end-to-end test and the docs' screenshots).

The page runs in Debian's Chromium (`apt-get install chromium`) through playwright's Python package
(`pip install playwright`, no browser download: `executable_path` points at the system binary). The
server is `vin demo` in a child process bound to 127.0.0.1 on a free port; it stops when the block ends,
when its time limit runs out, or when the process that started it dies. Every request the page makes
to anywhere but that server is refused.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
HOST = "127.0.0.1"


def find_chromium() -> str | None:
    """The system Chromium binary, or None (VIN_CHROMIUM overrides the search)."""
    if os.environ.get("VIN_CHROMIUM"):
        return os.environ["VIN_CHROMIUM"] if Path(os.environ["VIN_CHROMIUM"]).is_file() else None
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def browser_missing() -> str | None:
    """Why the browser cannot run here (a reason to skip), or None when it can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return 'playwright is not installed (pip install -e ".[test]" or pip install playwright)'
    if find_chromium() is None:
        return "no Chromium binary (apt-get install chromium; or set VIN_CHROMIUM to one)"
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent dies (Linux), so no server outlives its test."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


@contextmanager
def serve(args: Sequence[str], port: int, limit_s: int = 600, ready_s: float = 120, log: Path | None = None,
          env: dict | None = None, host: str = HOST) -> Iterator[str]:  # fmt: skip
    """Runs `vin demo ARGS --host HOST --port PORT` and yields its address on 127.0.0.1 once it answers there;
    stops it after. `host`: 127.0.0.1, or 0.0.0.0 to test a page that serves the network."""
    cmd = [sys.executable, "-m", "vin", "demo", *args, "--host", host, "--port", str(port)]
    if shutil.which("timeout"):
        cmd = ["timeout", "-k", "10", str(limit_s), *cmd]  # the server stops by itself past limit_s
    with ExitStack() as stack:
        out = stack.enter_context(open(log, "w")) if log is not None else subprocess.DEVNULL
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509 (one prctl call)
        )
        stack.callback(_stop, proc)
        yield _wait_ready(proc, f"http://{HOST}:{port}/", ready_s, log)


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM (the server exits cleanly), then SIGKILL if it has not within 20 s."""
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _wait_ready(proc: subprocess.Popen, url: str, ready_s: float, log: Path | None) -> str:
    """`url` once the server answers it; an error if the server exits or stays silent for `ready_s`."""
    deadline = time.monotonic() + ready_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"vin demo exited with {proc.returncode} before serving" +
                               (f"; its output: {Path(log).read_text()[-2000:]}" if log else ""))  # fmt: skip
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return url
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"vin demo did not answer on {url} within {ready_s:.0f} s")
        time.sleep(0.5)


@contextmanager
def local_page(url: str, width: int = 1400, height: int = 1000):
    """A playwright page of the system Chromium that may reach `url`'s server only (`page.context.new_page()`
    opens another session under the same rule)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=find_chromium(), headless=True)
        try:
            context = browser.new_context(viewport={"width": width, "height": height})
            context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(url.rstrip("/"))
                          else route.abort())  # fmt: skip
            yield context.new_page()
        finally:
            browser.close()
