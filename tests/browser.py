"""Shared set-up of the browser tests: the dashboard as a real Streamlit server, one Chromium launcher,
and a walk over every page of the navigation."""

import contextlib
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def wait_http(url: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.3)
    return False


@contextlib.contextmanager
def running_dashboard(log_path: Path, *, config: str | os.PathLike | None = None, env: dict | None = None,
                      start_seconds: float = 60):
    """``streamlit run dashboard/app.py`` on a free port of 127.0.0.1 (the demo, or ``config``); yield its URL.

    The server is stopped (its process group) when the block ends; a server that does not come
    up fails the test with the end of its log.
    """
    from demo.runtime import free_port

    port = free_port()
    environment = dict(os.environ, VANTAGE_DEMO_FAULTS="0", **(env or {}))
    environment.pop("VANTAGE_CONFIG", None)
    command = [sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "app.py"), "--server.headless",
               "true", "--server.port", str(port), "--browser.gatherUsageStats", "false"]
    if config is not None:
        command += ["--", "--config", str(config)]
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment,
                                   start_new_session=True)
        try:
            if not wait_http(f"http://127.0.0.1:{port}/_stcore/health", start_seconds):
                pytest.fail("the dashboard did not start: " + log_path.read_text()[-2000:])
            yield f"http://127.0.0.1:{port}"
        finally:
            os.killpg(process.pid, 15)
            process.wait(timeout=20)


@pytest.fixture
def dashboard_url(demo_var, tmp_path):
    """``streamlit run dashboard/app.py`` on the embedded demo, on a free port."""
    with running_dashboard(tmp_path / "streamlit.log", env={"VANTAGE_VAR": str(demo_var)}) as url:
        yield url


@contextlib.contextmanager
def chromium_page(*, width: int = 1400, height: int = 1000):
    """A page of headless Chromium (Debian's, through Playwright); closed when the block ends."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": width, "height": height})
        finally:
            browser.close()


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
        main = page.locator('[data-testid="stMain"]')
        deadline = time.monotonic() + seconds_per_page
        seen, same = "", 0
        while time.monotonic() < deadline and (len(seen) < min_text or same < 3):  # filled in, then settled
            page.wait_for_timeout(500)
            text = main.inner_text()
            same, seen = (same + 1 if text == seen else 0), text
        assert page.locator('[data-testid="stException"]').count() == 0, f"{title} shows an exception"
        texts[title] = main.inner_text()
        assert len(texts[title]) >= min_text, f"{title} is nearly empty: {texts[title]!r}"
    return texts
