"""Shared set-up of the browser tests: the dashboard on the embedded demo, and Chromium's flags."""

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
