"""Shared fixtures: a demo model trained once per session, the demo service on 127.0.0.1."""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser import copy_demo_model
from tests.collector_processes import TINY_SERVICE, free_port, stop_process
from tests.helpers import wait_for

pytest_plugins = ["tests.servers", "tests.fixtures_multiclass", "tests.fixtures_overview", "tests.fixtures_browser",
                  "tests.fixtures_postgres"]

os.environ.setdefault("VANTAGE_DEMO_FAULTS", "0")


@pytest.fixture(scope="session")
def var_dir(tmp_path_factory) -> Path:
    """A private ``var/`` for the whole session (store, demo model, written config)."""
    return tmp_path_factory.mktemp("var")


@pytest.fixture(scope="session")
def demo_model(var_dir):
    """The demo model, trained once per session."""
    from demo.model import load_or_train

    return load_or_train(var_dir / "demo")


@pytest.fixture(scope="session")
def demo_runtime(var_dir, demo_model):
    """The reference service serving the demo model on a free port (no faults, no replay)."""
    from demo.runtime import start_demo

    runtime = start_demo(var_dir, faults=False, replay=False, poll_interval=1.0)
    yield runtime
    runtime.stop()


@pytest.fixture
def demo_var(tmp_path, demo_model) -> Path:
    """A fresh ``var/`` holding a copy of the trained demo model (so no retraining), no store."""
    return copy_demo_model(demo_model, tmp_path / "var" / "demo").parent


@pytest.fixture
def fresh_runtime():
    """Stop the collector (and demo) the app started, after the test."""
    yield
    from dashboard import state

    state.stop_runtime()


@pytest.fixture
def store(tmp_path):
    """An empty SQLite store in a temporary folder."""
    from monitoring.store import Store

    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    yield store
    store.dispose()


@pytest.fixture(scope="module")
def tiny_service(tmp_path_factory) -> Iterator[str]:
    """The tiny service under uvicorn in its own process; yields its base URL."""
    folder = tmp_path_factory.mktemp("tiny")
    (folder / "tiny_service.py").write_text(TINY_SERVICE)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "tiny_service:app", "--app-dir", str(folder), "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning", "--no-access-log"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if process.poll() is not None:
            pytest.fail(f"the tiny service exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    wait_for(healthy, timeout=60, what="the tiny service to answer")
    yield url
    stop_process(process)


# -- two workers, and the tests that must run alone ---------------------------------------------------
#
# The suite runs on two pytest-xdist workers (pyproject.toml). A test marked ``exclusive`` measures real
# time (polls kept across SIGKILLs, a health check answered within 100 ms): it runs while the other worker
# runs nothing, so its figures are not the other worker's load. A readers-writer lock on a file shared by
# the run's workers: every test holds it shared; an exclusive one holds it alone, and the turnstile
# stops new tests from starting while it waits, so it cannot be starved.


@contextlib.contextmanager
def _run_lock(exclusive: bool) -> Iterator[None]:
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if not run:  # one process: nothing runs beside a test
        yield
        return
    folder = Path(tempfile.gettempdir())
    with open(folder / f"vantage-tests-{run}.turnstile", "a") as turnstile, \
            open(folder / f"vantage-tests-{run}.lock", "a") as lock:
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        finally:
            if not exclusive:
                fcntl.flock(turnstile, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            if exclusive:
                fcntl.flock(turnstile, fcntl.LOCK_UN)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    with _run_lock(item.get_closest_marker("exclusive") is not None):
        return (yield)
