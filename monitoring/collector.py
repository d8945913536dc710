"""The collector: polls every configured service and records what it sees.

Each service is polled by its own thread, so a service that hangs until its timeout never
delays the others. One poll is: the health checks of the protocol, one small canary
prediction drawn from the reference data (skipped while the service is not live), and, when
a metrics URL is configured, one scrape of the Prometheus endpoint. Every check becomes a
row in ``probes``; the poll's verdict (up / degraded / down and why) is one more row, and a
change of verdict is an ``incidents`` row.

Two collectors may share one store (two dashboards, or a dashboard and
``python -m monitoring.collector``): a lease per service decides which one polls it, and
rows are unique on ``(service, check, ts)``, so nothing is recorded twice. Rows that could
not be written (database locked, disk full) stay in memory and are written with the next
poll, so nothing is lost either.

Run it alone with::

    python -m monitoring.collector --config my.toml
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from monitoring.clients import CallResult, ServiceClient, ServiceError, make_client
from monitoring.config import ConfigError, ServiceConfig, VantageConfig, config_path_from, load_config
from monitoring.health import poll_state
from monitoring.metrics import parse_scrape
from monitoring.reference import ReferenceDataError, read_reference
from monitoring.store import Probe, Store

log = logging.getLogger(__name__)

PROBE_HEADER = "X-Vantage-Probe"
"""Header sent with every call of the collector, so a service can leave its canary
predictions out of its own prediction log."""

MAX_PENDING_ROWS = 50_000
"""Unwritten probe rows kept in memory while the store is unavailable."""


@dataclass(frozen=True)
class PollOutcome:
    """What one poll of one service found."""

    service: str
    ts: float
    state: str
    reason: str
    checks: tuple[CallResult, ...]
    scraped_series: int = 0


class ServicePoller:
    """Polls one service; owns its client, canary rows and unwritten rows.

    Parameters
    ----------
    service : ServiceConfig
        The service.
    store : Store
        Where probes, metrics and incidents go.
    random_state : int, optional
        Seed for picking canary rows.
    """

    def __init__(self, service: ServiceConfig, store: Store, *, random_state: int | None = None):
        self.service = service
        self.store = store
        self.client: ServiceClient = make_client(service)
        self.client.session.headers[PROBE_HEADER] = "1"
        self._rng = np.random.default_rng(random_state)
        self._canary_pool, self.canary_problem = self._load_canary_pool()
        self._pending: list[Probe] = []
        self._last_state: str | None = store.last_state(service.name)

    def _load_canary_pool(self) -> tuple[pd.DataFrame | None, str | None]:
        if not self.service.reference:
            return None, "no reference data configured, so no canary prediction is sent"
        try:
            frame = read_reference(self.service.reference, features=self.service.features)
        except ReferenceDataError as exc:
            return None, f"canary disabled: {exc}"
        features = list(self.service.features) or list(frame.columns)
        return frame[features].head(1000).reset_index(drop=True), None

    def _canary(self) -> CallResult | None:
        if self._canary_pool is None:
            return None
        rows = self._canary_pool.sample(n=min(self.service.canary_rows, len(self._canary_pool)),
                                        random_state=int(self._rng.integers(2**31)))
        started = time.perf_counter()
        try:
            self.client.predict(rows)
        except ServiceError as exc:
            return CallResult("predict", False, (time.perf_counter() - started) * 1000.0, exc.status,
                              f"{exc.call}: {exc.message}")
        return CallResult("predict", True, (time.perf_counter() - started) * 1000.0, 200)

    def _scrape(self, ts: float) -> tuple[CallResult, int]:
        metrics = self.service.metrics
        started = time.perf_counter()
        try:
            response = self.client.session.get(metrics.url, timeout=self.service.timeout,
                                               headers=self.client.request_headers())
            latency_ms = (time.perf_counter() - started) * 1000.0
            if response.status_code != 200:
                return CallResult("metrics", False, latency_ms, response.status_code,
                                  f"HTTP {response.status_code} from {metrics.url}"), 0
            samples = parse_scrape(response.text, metrics)
        except ValueError as exc:
            return CallResult("metrics", False, (time.perf_counter() - started) * 1000.0, 200,
                              f"metrics not in Prometheus text format: {exc}"), 0
        except Exception as exc:  # requests raises many kinds; all mean "no scrape this time"
            return CallResult("metrics", False, (time.perf_counter() - started) * 1000.0, None,
                              f"metrics scrape failed: {type(exc).__name__}: {exc}"), 0
        self.store.write_metric_samples(self.service.name, ts, samples)
        return CallResult("metrics", True, latency_ms, 200), len(samples)

    def poll(self, *, now: Callable[[], float] = time.time) -> PollOutcome:
        """Poll once and record the result; never raises for a service problem."""
        ts = now()
        report = self.client.health()
        checks: list[CallResult] = list(report.checks)
        canary = self._canary() if report.live.ok else None
        if canary is not None:
            checks.append(canary)
        state, reason = poll_state(report.checks, canary, slo=self.service.slo)
        scraped = 0
        if self.service.metrics is not None:
            try:
                scrape, scraped = self._scrape(ts)
            except Exception as exc:  # the store refused the samples; they are not kept
                scrape = CallResult("metrics", False, 0.0, None, f"metrics not stored: {exc}")
            checks.append(scrape)
        rows = [Probe(ts=ts, service=self.service.name, check=c.check, ok=c.ok, status=c.status,
                      latency_ms=round(c.latency_ms, 3), error=c.error) for c in checks]
        rows.append(Probe(ts=ts, service=self.service.name, check="poll", ok=state != "down",
                          latency_ms=round((now() - ts) * 1000.0, 3), error=reason, state=state))
        self._write(rows, ts=ts, state=state, reason=reason)
        return PollOutcome(self.service.name, ts, state, reason, tuple(checks), scraped)

    def _write(self, rows: list[Probe], *, ts: float, state: str, reason: str) -> None:
        self._pending.extend(rows)
        try:
            self.store.write_probes(self._pending)
            self._pending = []
            if state != self._last_state:
                self.store.write_incident(ts=ts, service=self.service.name, state=state,
                                          previous_state=self._last_state, reason=reason)
                self._last_state = state
        except Exception:
            log.exception("store write failed for %s; %d rows kept for the next poll",
                          self.service.name, len(self._pending))
            del self._pending[:-MAX_PENDING_ROWS]

    def close(self) -> None:
        """Close the client's connections."""
        self.client.close()


class Collector:
    """Polls every service of a configuration in background threads.

    Parameters
    ----------
    config : VantageConfig
        Services to poll and the store settings.
    store : Store, optional
        Store to write to; opened from ``config.store.url`` when omitted.
    holder : str, optional
        Name of this collector in the leases; host, process and a random suffix by default.
    maintenance_every : float, default=60
        Seconds between downsampling runs (done by whichever collector holds that lease).
    """

    def __init__(self, config: VantageConfig, store: Store | None = None, *, holder: str | None = None,
                 maintenance_every: float = 60.0):
        self.config = config
        self.store = store or Store(config.store.url)
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.maintenance_every = maintenance_every
        self.pollers = {s.name: ServicePoller(s, self.store) for s in config.services}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.last_outcomes: dict[str, PollOutcome] = {}

    @staticmethod
    def lease_name(service: str) -> str:
        """Name of the lease that decides who polls ``service``."""
        return f"collector:{service}"

    def _service_loop(self, poller: ServicePoller) -> None:
        interval = poller.service.poll_interval
        lease = self.lease_name(poller.service.name)
        next_tick = time.monotonic()
        while not self._stop.is_set():
            try:
                if self.store.acquire_lease(lease, self.holder, ttl_seconds=max(3 * interval, 15.0)):
                    self.last_outcomes[poller.service.name] = poller.poll()
            except Exception:
                log.exception("poll of %s failed", poller.service.name)
            next_tick += interval
            delay = next_tick - time.monotonic()
            if delay < 0:  # the poll overran its interval: start the next one now, don't pile up
                next_tick = time.monotonic()
                delay = 0
            self._stop.wait(delay)

    def _maintenance_loop(self) -> None:
        settings = self.config.store
        while not self._stop.wait(self.maintenance_every):
            try:
                if self.store.acquire_lease("collector:maintenance", self.holder,
                                            ttl_seconds=3 * self.maintenance_every):
                    self.store.downsample(raw_retention_hours=settings.raw_retention_hours,
                                          retention_days=settings.retention_days,
                                          rollup_minutes=settings.rollup_minutes)
            except Exception:
                log.exception("downsampling failed")

    def start(self) -> Collector:
        """Start one thread per service and one for downsampling; return self."""
        if self._threads:
            return self
        for poller in self.pollers.values():
            thread = threading.Thread(target=self._service_loop, args=(poller,), daemon=True,
                                      name=f"vantage-poll-{poller.service.name}")
            thread.start()
            self._threads.append(thread)
        maintenance = threading.Thread(target=self._maintenance_loop, daemon=True, name="vantage-maintenance")
        maintenance.start()
        self._threads.append(maintenance)
        return self

    @property
    def running(self) -> bool:
        """Whether the polling threads are alive."""
        return bool(self._threads) and not self._stop.is_set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop polling, release the leases and close connections."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        for name, poller in self.pollers.items():
            try:
                self.store.release_lease(self.lease_name(name), self.holder)
            except Exception:
                log.exception("could not release the lease of %s", name)
            poller.close()
        self._threads = []


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: poll until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m monitoring.collector", description=__doc__.split("\n")[0])
    parser.add_argument("--config", help="TOML configuration (default: $VANTAGE_CONFIG)")
    parser.add_argument("--once", action="store_true", help="poll every service once and exit")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    path = args.config or config_path_from([], None)
    if not path:
        parser.error("give --config PATH or set VANTAGE_CONFIG")
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(f"invalid configuration {exc.source}:", *exc.problems, sep="\n  ", file=sys.stderr)
        return 2
    collector = Collector(config)
    if args.once:
        for poller in collector.pollers.values():
            outcome = poller.poll()
            print(f"{outcome.service}: {outcome.state} ({outcome.reason})")
        return 0
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    collector.start()
    log.info("polling %d service(s) into %s", len(collector.pollers), config.store.url)
    stopped.wait()
    collector.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
