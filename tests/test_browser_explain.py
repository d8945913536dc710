"""The Explain page in headless Chromium, as a user opens it (same fixture pattern as test_browser.py)."""

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.integration]

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


@pytest.fixture
def dashboard_url(demo_var, tmp_path):
    """``streamlit run dashboard/app.py`` on the embedded demo, on a free port."""
    from demo.runtime import free_port

    port = free_port()
    env = dict(os.environ, VANTAGE_VAR=str(demo_var), VANTAGE_DEMO_FAULTS="0")
    env.pop("VANTAGE_CONFIG", None)
    log_path = tmp_path / "streamlit.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "app.py"), "--server.headless", "true",
             "--server.port", str(port), "--browser.gatherUsageStats", "false"],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            if not wait_http(f"http://127.0.0.1:{port}/_stcore/health", 60):
                pytest.fail("the dashboard did not start: " + log_path.read_text()[-2000:])
            yield f"http://127.0.0.1:{port}"
        finally:
            os.killpg(process.pid, 15)
            process.wait(timeout=20)


def test_explain_page_opens_with_charts_and_no_exception(dashboard_url, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(f"{dashboard_url}/explain?service=credit-risk-rest", wait_until="domcontentloaded")
        expect(page.get_by_role("heading", name="Explain")).to_be_visible(timeout=120_000)
        expect(page.get_by_text("predicts what the service predicts").first).to_be_visible(timeout=60_000)
        expect(page.locator(".js-plotly-plot", has_text="Feature importance").first).to_be_visible(timeout=60_000)
        assert page.locator('[data-testid="stException"]').count() == 0
        page.get_by_role("tab", name="One prediction").click()
        expect(page.locator(".js-plotly-plot", has_text="Why").first).to_be_visible(timeout=60_000)
        page.get_by_role("tab", name="Partial dependence").click()
        expect(page.locator(".js-plotly-plot", has_text="Partial dependence of").first).to_be_visible(timeout=60_000)
        page.screenshot(path=str(tmp_path / "explain.png"), full_page=True)
        assert page.locator('[data-testid="stException"]').count() == 0
        browser.close()
