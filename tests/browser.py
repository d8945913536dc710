"""Helpers of the browser tests: the dashboard as a real Streamlit server, and a walk over every page of the
navigation. The fixtures (one Chromium per session, a page in a fresh context per test, the shared demo
dashboard) are in ``tests/fixtures_browser.py``."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
BACKFILL_TEXT = "four weeks of history"
"""What the demo's pages say while it writes its history (``dashboard.components.demo_backfill``)."""


def wait_http(url: str, seconds: float) -> bool:
    """Whether ``url`` answers 200 within ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.3)
    return False


def copy_demo_model(demo_model, target: Path) -> Path:
    """Copy the trained demo model's files into ``target`` (a ``var/demo``), so the demo does not retrain."""
    target.mkdir(parents=True, exist_ok=True)
    for name in ("model.joblib", "model.json", "reference.parquet"):
        shutil.copy2(demo_model.artifact_path.parent / name, target / name)
    return target


@dataclass(frozen=True)
class Dashboard:
    """A ``streamlit run`` process serving the dashboard on ``url``, writing to ``log_path``."""

    url: str
    process: subprocess.Popen
    log_path: Path

    def log_tail(self, characters: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-characters:]

    def check_alive(self) -> None:
        """Fail the test, with the end of the log, unless the process runs and its health endpoint answers."""
        if self.process.poll() is not None:
            pytest.fail(f"the dashboard exited with {self.process.returncode}: {self.log_tail()}")
        if not wait_http(f"{self.url}/_stcore/health", 10):
            pytest.fail(f"the dashboard does not answer {self.url}/_stcore/health: {self.log_tail()}")


@contextlib.contextmanager
def running_dashboard(log_path: Path, *, config: str | os.PathLike | None = None, env: dict | None = None,
                      start_seconds: float = 60, args: tuple[str, ...] = ()) -> Iterator[Dashboard]:
    """``streamlit run dashboard/app.py`` on a free port of 127.0.0.1 (the demo, or ``config``); yield it.

    ``env`` is added to this process's environment (without ``VANTAGE_CONFIG``; demo faults off); ``args``
    are more ``streamlit run`` options. The server is stopped (its process group) when the block ends; a
    server that does not come up fails the test with the end of its log.
    """
    from demo.runtime import free_port

    port = free_port()
    environment = dict(os.environ, VANTAGE_DEMO_FAULTS="0")
    environment.pop("VANTAGE_CONFIG", None)
    environment.update(env or {})
    command = [sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "app.py"), "--server.headless",
               "true", "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats",
               "false", *args]
    if config is not None:
        command += ["--", "--config", str(config)]
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment, cwd=ROOT,
                                   start_new_session=True)
        try:
            if not wait_http(f"http://127.0.0.1:{port}/_stcore/health", start_seconds):
                pytest.fail("the dashboard did not start: " + log_path.read_text()[-2000:])
            yield Dashboard(f"http://127.0.0.1:{port}", process, log_path)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 15)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                process.wait(timeout=10)


def settled_text(page, *, min_text: int = 400, seconds: float = 60, unless: tuple[str, ...] = ()) -> str:
    """The text of the page's main block once it holds ``min_text`` characters, none of ``unless``, and has
    not changed for 1.5 s while its script was not running; or whatever it holds after ``seconds``.

    A page's text can stand still for seconds while its script computes (on a loaded machine, the Overview
    shows its introduction alone while it reads the log), so only text seen between runs counts as settled.
    """
    main = page.locator('[data-testid="stMain"]')
    running = page.locator('[data-testid="stApp"][data-test-script-state="running"]')
    deadline = time.monotonic() + seconds
    seen, same = "", 0
    while time.monotonic() < deadline and (len(seen) < min_text or same < 6  # filled in, then 1.5 s unchanged
                                           or any(text in seen for text in unless)):
        page.wait_for_timeout(250)
        text = main.inner_text()
        same, seen = (same + 1 if text == seen and running.count() == 0 else 0), text
    return main.inner_text()


def visit_every_page(page, url: str, *, first: str = "Overview", min_text: int = 400,
                     seconds_per_page: float = 60) -> dict[str, str]:
    """Open ``url`` and every page of its navigation in turn; return each page's text by title.

    A page is read once it holds ``min_text`` characters and its text has not changed for 1.5 s,
    or after ``seconds_per_page``. Fails the test when a page shows
    an exception element or stays nearly empty.
    """
    from playwright.sync_api import expect

    page.goto(url, wait_until="domcontentloaded")
    expect(page.get_by_role("heading", name=first)).to_be_visible(timeout=90_000)
    links = page.locator('[data-testid="stSidebarNavLink"]')
    titles = [links.nth(i).inner_text().strip().split("\n")[-1] for i in range(links.count())]
    texts = {}
    for title in titles:
        page.locator('[data-testid="stSidebarNavLink"]', has_text=title).click()
        expect(page.get_by_role("heading", name=title).first).to_be_visible(timeout=seconds_per_page * 1000)
        texts[title] = settled_text(page, min_text=min_text, seconds=seconds_per_page)
        assert page.locator('[data-testid="stException"]').count() == 0, f"{title} shows an exception"
        assert len(texts[title]) >= min_text, f"{title} is nearly empty: {texts[title]!r}"
    return texts
