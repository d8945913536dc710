"""Collector processes and the tiny service they poll, shared by the store-outage and lease tests.

Plain helpers (the ``tiny_service`` fixture that starts the service lives in ``conftest.py``).
"""

from __future__ import annotations

import collections
import json
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from monitoring.store import Store

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


def stop_process(process: subprocess.Popen, *, grace: float = 15.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=grace)


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
