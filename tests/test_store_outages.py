"""Store outages with real processes: nothing the collector polls is lost, and the outage is visible.

A tiny FastAPI service runs under uvicorn in its own process; the collector runs as
``python -m monitoring.collector --config …`` in another; a third process (or the kernel)
makes the store unwritable for a while. Durations are scaled from the outages seen in
production (poll interval 2 s) to a poll interval of 1 s with the same number of polls in
the outage: a lock held 10 s (production: 20 s), a disk full for 15 s (30 s).
"""

from __future__ import annotations

import collections
import json
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitoring.store import Store
from tests.helpers import read_only

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
POLL_INTERVAL = 1.0

TINY_SERVICE = textwrap.dedent('''
    """A tiny prediction service: health, readiness, one prediction route and Prometheus metrics."""
    from fastapi import FastAPI
    from fastapi.responses import PlainTextResponse

    app = FastAPI()
    counts = {"requests": 0}

    @app.get("/health")
    def health():
        counts["requests"] += 1
        return {"status": "ok"}

    @app.get("/ready")
    def ready():
        counts["requests"] += 1
        return {"status": "ready"}

    @app.post("/predict")
    def predict(body: dict):
        counts["requests"] += 1
        return {"predictions": [0 for _ in body.get("instances", [])]}

    @app.get("/metrics")
    def metrics():
        n = counts["requests"]
        return PlainTextResponse(
            "# TYPE http_requests_total counter\\n"
            f'http_requests_total{{path="/predict",status="200"}} {n}\\n'
            "# TYPE http_request_duration_seconds histogram\\n"
            f'http_request_duration_seconds_bucket{{path="/predict",le="0.1"}} {n}\\n'
            f'http_request_duration_seconds_bucket{{path="/predict",le="+Inf"}} {n}\\n'
            f'http_request_duration_seconds_sum{{path="/predict"}} {n * 0.01}\\n'
            f'http_request_duration_seconds_count{{path="/predict"}} {n}\\n'
        )
''')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition: Callable[[], object], *, timeout: float, what: str, every: float = 0.1,
             details: Callable[[], str] | None = None):
    """Return the first truthy value (a non-empty frame) of ``condition()``, failing after ``timeout`` seconds.

    ``details`` gives text for the failure message (a collector's last log lines).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if (not value.empty) if isinstance(value, pd.DataFrame) else value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}" + (f"\n{details()}" if details else ""))
        time.sleep(every)


def stop_process(process: subprocess.Popen, *, grace: float = 15.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=grace)


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


def write_config(folder: Path, store_path: Path, url: str, *, poll_interval: float = POLL_INTERVAL) -> Path:
    """A configuration polling the tiny service (REST, health, readiness and metrics) into ``store_path``."""
    path = folder / "collector.toml"
    path.write_text(textwrap.dedent(f"""
        [store]
        url = "sqlite:///{store_path}"

        [[services]]
        name = "tiny"
        url = "{url}"
        protocol = "rest"
        poll_interval = {poll_interval}
        timeout = 1.0

        [services.rest]
        health = "/health"
        ready = "/ready"

        [services.metrics]
        url = "{url}/metrics"
    """))
    return path


class CollectorProcess:
    """``python -m monitoring.collector`` in its own process, its log lines kept as they come."""

    def __init__(self, config: Path, *, health_file: Path | None = None,
                 preexec_fn: Callable[[], None] | None = None):
        command = [sys.executable, "-m", "monitoring.collector", "--config", str(config)]
        if health_file is not None:
            command += ["--health-file", str(health_file)]
        self.health_file = health_file
        self.started_at = time.time()
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        text=True, preexec_fn=preexec_fn)
        self.lines: collections.deque[str] = collections.deque(maxlen=2000)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stderr:  # ends when the process closes its stderr
            self.lines.append(line.rstrip())

    @property
    def pid(self) -> int:
        return self.process.pid

    def tail(self, lines: int = 30) -> str:
        """The last log lines and health file, for failure messages."""
        return "\n".join([f"health file: {self.health()}", *list(self.lines)[-lines:]])

    def log_has(self, text: str) -> str | None:
        return next((line for line in list(self.lines) if text in line), None)

    def health(self) -> dict | None:
        if self.health_file is None:
            return None
        try:
            return json.loads(self.health_file.read_text())
        except (OSError, ValueError):
            return None

    def stop(self) -> None:
        stop_process(self.process)
        self._reader.join(timeout=5)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)
        self._reader.join(timeout=5)


def recorded_polls(store_path: Path, service: str = "tiny") -> pd.DataFrame:
    """Poll verdicts stored so far, oldest first (read from a separate connection each time)."""
    store = Store(f"sqlite:///{store_path}")
    try:
        return store.read_probes(service, since=0, checks=["poll"]).sort_values("ts").reset_index(drop=True)
    except Exception:  # the file is being created again or is still locked: nothing to count yet
        return pd.DataFrame(columns=["ts", "state"])
    finally:
        store.dispose()


def polls_between(store_path: Path, start: float, end: float) -> pd.DataFrame:
    polls = recorded_polls(store_path)
    return polls[(polls["ts"] >= start) & (polls["ts"] < end)]


def assert_no_duplicates(polls: pd.DataFrame, *, interval: float = POLL_INTERVAL) -> None:
    ts = polls["ts"].to_numpy()
    assert len(np.unique(ts)) == len(ts), "a poll was recorded twice"
    if len(ts) > 1:
        assert np.diff(np.sort(ts)).min() >= 0.5 * interval, "two polls closer than half an interval"


def assert_every_poll_kept(polls: pd.DataFrame, start: float, end: float, *, interval: float = POLL_INTERVAL):
    """One poll per interval across ``[start, end)``: no gap longer than 1.5 intervals, none missing."""
    ts = np.sort(polls["ts"].to_numpy())
    expected = int((end - start) / interval)
    assert len(ts) >= expected, f"{len(ts)} polls recorded in {end - start:.1f} s, expected {expected}"
    edges = np.concatenate([[start], ts, [end]])
    assert np.diff(edges).max() <= 1.5 * interval, f"a gap of {np.diff(edges).max():.2f} s without a poll"


@pytest.fixture
def store_folder(tmp_path) -> Path:
    folder = tmp_path / "var"
    folder.mkdir()
    return folder


def test_a_lock_held_for_ten_intervals_loses_no_poll(tiny_service, store_folder, tmp_path):
    store_path = store_folder / "vantage.db"
    collector = CollectorProcess(write_config(tmp_path, store_path, tiny_service), health_file=tmp_path / "h.json")
    try:
        wait_for(lambda: len(recorded_polls(store_path)) >= 2, timeout=30, what="the first polls")
        holder = subprocess.Popen(  # a second process holds the write lock for 10 s (10 poll intervals)
            [sys.executable, "-c", textwrap.dedent(f"""
                import sqlite3, sys, time
                conn = sqlite3.connect({str(store_path)!r}, isolation_level=None, timeout=30)
                conn.execute("BEGIN EXCLUSIVE")
                print(time.time(), flush=True)
                time.sleep(10.0)
                conn.rollback()
                print(time.time(), flush=True)
            """)], stdout=subprocess.PIPE, text=True)
        locked_at = float(holder.stdout.readline())
        health = wait_for(lambda: (h := collector.health()) and h["state"] == "locked" and h["buffered"] and h,
                          timeout=8, what="the health file to say 'locked'", details=collector.tail)
        assert "database is locked" in health["cause"] and health["dropped"] == 0
        released_at = float(holder.stdout.readline())
        holder.wait(timeout=10)
        assert released_at - locked_at >= 10.0
        wait_for(lambda: (h := collector.health()) and h["state"] == "ok" and h["buffered"] == 0,
                 timeout=15, what="the buffered polls to be written", details=collector.tail)
        during = polls_between(store_path, locked_at, released_at)
        print(f"lock held {released_at - locked_at:.1f} s: {len(during)} polls recorded afterwards")
        assert_every_poll_kept(during, locked_at, released_at)
        assert collector.log_has("store locked")
        assert collector.log_has("takes writes again")
    finally:
        collector.stop()
    polls = recorded_polls(store_path)
    assert_no_duplicates(polls)
    assert set(polls["state"]) == {"up"}
    store = Store(f"sqlite:///{store_path}")
    assert len(store.read_incidents("tiny")) == 1  # the first "up"; the outage made none up
    store.dispose()


def ignore_sigxfsz() -> None:
    """In the collector process, before it starts: a write past the file-size limit fails with EFBIG
    instead of killing the process (Python ignores SIGXFSZ too; this does not rely on it)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def test_a_disk_full_for_fifteen_intervals_loses_no_poll(tiny_service, store_folder, tmp_path):
    """The disk is "full" for the collector alone: its file-size limit (RLIMIT_FSIZE) is lowered to 0
    bytes from outside (``prlimit``) for 15 s, so every write of a file fails with EFBIG, and raised
    again. Its log goes to a pipe, which the limit does not cover."""
    store_path = store_folder / "vantage.db"
    collector = CollectorProcess(write_config(tmp_path, store_path, tiny_service), health_file=tmp_path / "h.json",
                                 preexec_fn=ignore_sigxfsz)
    try:
        wait_for(lambda: len(recorded_polls(store_path)) >= 2, timeout=30, what="the first polls")
        unlimited = resource.prlimit(collector.pid, resource.RLIMIT_FSIZE)
        full_at = time.time()
        resource.prlimit(collector.pid, resource.RLIMIT_FSIZE, (0, unlimited[1]))
        line = wait_for(lambda: collector.log_has("store full"), timeout=10,
                        what="the collector to log 'store full'", details=collector.tail)
        assert "RLIMIT_FSIZE" in line and "rows kept in memory" in line
        time.sleep(max(0.0, full_at + 15.0 - time.time()))  # the disk stays full for 15 poll intervals
        resource.prlimit(collector.pid, resource.RLIMIT_FSIZE, unlimited)
        freed_at = time.time()
        wait_for(lambda: (h := collector.health()) and h["state"] == "ok" and h["buffered"] == 0
                 and h["updated"] > freed_at, timeout=15, what="the buffered polls to be written",
                 details=collector.tail)
        during = polls_between(store_path, full_at, freed_at)
        print(f"disk full {freed_at - full_at:.1f} s: {len(during)} polls recorded afterwards")
        assert_every_poll_kept(during, full_at, freed_at)
        assert collector.process.poll() is None, "the collector must survive the full disk"
    finally:
        collector.stop()
    polls = recorded_polls(store_path)
    assert_no_duplicates(polls)
    with sqlite3.connect(store_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_store_read_only_at_start_is_shown_and_its_polls_kept_until_it_is_writable(
        tiny_service, store_folder, tmp_path):
    store_path = store_folder / "vantage.db"
    Store(f"sqlite:///{store_path}").dispose()  # an existing store, schema and all
    config = write_config(tmp_path, store_path, tiny_service)
    with read_only(store_folder):
        collector = CollectorProcess(config, health_file=tmp_path / "h.json")
        try:
            seen: list[int] = []

            def five_polls_buffered() -> bool:
                health = collector.health()
                if health and health["state"] == "read_only" and health["buffered"] not in seen:
                    seen.append(health["buffered"])
                return len(seen) >= 5

            wait_for(five_polls_buffered, timeout=30, what="five polls buffered while read-only")
            health = collector.health()
            assert "cannot be opened for writing" in health["cause"] or "not writable" in health["cause"]
            assert health["dropped"] == 0 and health["since"] >= collector.started_at - 1
            assert recorded_polls(store_path).empty
        except BaseException:
            collector.stop()
            raise
    writable_at = time.time()
    try:
        wait_for(lambda: (h := collector.health()) and h["state"] == "ok" and h["buffered"] == 0,
                 timeout=15, what="the buffered polls to be written", details=collector.tail)
        kept = polls_between(store_path, 0, writable_at)
        print(f"read-only for {writable_at - collector.started_at:.1f} s from the start: {len(kept)} polls recorded")
        assert len(kept) >= 5
        assert kept["ts"].min() <= collector.started_at + 5, "the polls from the read-only start are kept"
        assert_every_poll_kept(kept, kept["ts"].min(), writable_at)
    finally:
        collector.stop()
    assert_no_duplicates(recorded_polls(store_path))


@pytest.mark.parametrize("leftovers", ["db only", "db, -wal and -shm"])
def test_a_deleted_store_file_is_created_again_and_polling_goes_on_into_it(
        tiny_service, store_folder, tmp_path, leftovers):
    store_path = store_folder / "vantage.db"
    collector = CollectorProcess(write_config(tmp_path, store_path, tiny_service), health_file=tmp_path / "h.json")
    try:
        wait_for(lambda: len(recorded_polls(store_path)) >= 2, timeout=30, what="the first polls")
        deleted_at = time.time()
        store_path.unlink()
        if leftovers != "db only":
            for suffix in ("-wal", "-shm"):
                Path(f"{store_path}{suffix}").unlink(missing_ok=True)
        line = wait_for(lambda: collector.log_has("was deleted while in use"), timeout=10,
                        what="the collector to log the deletion", details=collector.tail)
        assert str(store_path) in line
        assert store_path.exists()
        wait_for(lambda: len(polls_between(store_path, deleted_at, time.time())) >= 3, timeout=15,
                 what="three polls in the new file")
        health = wait_for(lambda: (h := collector.health()) and h["state"] == "recreated" and h, timeout=5,
                          what="the health file to say 'recreated'", details=collector.tail)
        assert "history written before then is gone" in health["cause"]
    finally:
        collector.stop()
    polls = recorded_polls(store_path)
    assert polls["ts"].min() >= deleted_at - POLL_INTERVAL  # only what came after: a new file
    assert_every_poll_kept(polls, polls["ts"].min(), polls["ts"].max())
    assert_no_duplicates(polls)
    store = Store(f"sqlite:///{store_path}")
    incidents = store.read_incidents("tiny")
    store.dispose()
    assert list(incidents["state"]) == ["up"]
