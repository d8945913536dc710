"""The collector: polls every configured service and records what it sees.

Each service is polled by its own thread, so a service that hangs until its timeout never
delays the others. One poll is: the health checks of the protocol, one small canary
prediction drawn from the reference data (skipped while the service is not live), and, when
a metrics URL is configured, one scrape of the Prometheus endpoint. Every check becomes a
row in ``probes``; the poll's verdict (up / degraded / down and why) is one more row, and a
change of verdict is an ``incidents`` row.

Guarantees
----------
Nothing is lost while the store is out. Polling never waits for the store: each poll is
handed to one bounded in-memory buffer (:data:`MAX_PENDING_ROWS` rows) that a writer thread
empties in time order, one transaction per batch of whole polls. A store that is locked,
full, read-only or unreachable keeps the rows in the buffer and is a visible state with its
cause (:meth:`Collector.store_health`, a :class:`~monitoring.store.StoreHealth`); the rows
are written as soon as it takes writes again. Past the buffer's bound the oldest polls are
dropped, and counted. A SQLite file deleted while in use is created again (schema included)
before the next write. Rows buffered when the process is killed are lost with it.

No poll is recorded twice. Two collectors may share one store (two dashboards, or a
dashboard and ``python -m monitoring.collector``): a lease per service decides which one
polls it; the holder renews it every third of a poll interval and it lasts one and a half.
A collector on the same machine takes over at once when the holder's process is gone
(killed, crashed), and any collector takes over once the lease has expired (a holder on
another machine, or a frozen one): within two poll intervals. While the store cannot be
reached, whoever held the lease keeps polling (so does everybody when nobody is known to hold
it, and collectors on other machines once the holder's lease has run out); when the store is
back, a poll less than half an interval from one already stored is skipped, so nothing is
recorded twice either. An incident is written when a poll's state differs from the last one
recorded in the store, so a take-over or a delayed write never invents a state change.

Run it alone with::

    python -m monitoring.collector --config my.toml

``--capture-port N`` also takes the CloudEvents of KServe's payload logger on that port
(:mod:`monitoring.capture`).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import logging
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from monitoring.clients import PROBE_HEADER, CallResult, ServiceClient, ServiceError, make_client
from monitoring.clock import Clock, SystemClock
from monitoring.config import ConfigError, ServiceConfig, VantageConfig, load_config, parse_command_line
from monitoring.health import format_duration, poll_state
from monitoring.metrics import parse_scrape
from monitoring.redact import Redactor, service_secrets
from monitoring.schema import ServiceSchema, read_schema_reference, resolve_schema
from monitoring.store import Lease, PollRecord, Probe, ProcessIdentity, Store, StoreHealth

log = logging.getLogger(__name__)


MAX_PENDING_ROWS = 50_000
"""Unwritten rows (probes and metric samples) kept in memory while the store is unavailable."""

WRITE_TIMEOUT_S = 2.0
"""How long one write waits for another connection's lock before the store counts as locked."""

RETRY_MAX_S = 2.0
"""Longest pause between two attempts to write buffered rows to a store that refused them."""

LEASE_TTL_INTERVALS = 1.5
"""A lease lasts this many poll intervals after its last renewal."""

LEASE_RENEW_INTERVALS = 1 / 3
"""The holder renews its lease every this many poll intervals."""

LEASE_TICK_S = 0.2
"""How often the lease thread looks at its leases (a dead local holder is noticed this fast)."""

LEASE_FAILURE_GRACE_S = 2.0
"""Lease writes must fail this long before the store is reported unhealthy on their account alone."""

HEALTH_FILE_EVERY_S = 5.0
"""The health file is rewritten at least this often while the collector runs, even when nothing changed."""

RECREATED_NOTICE_S = 24 * 3600.0
"""How long :meth:`Collector.store_health` reports a SQLite file that was deleted and created again."""


@dataclass(frozen=True)
class PollOutcome:
    """What one poll of one service found."""

    service: str
    ts: float
    state: str
    reason: str
    checks: tuple[CallResult, ...]
    scraped_series: int = 0


class WriteBuffer:
    """Polls waiting to be written, and what the store did with the last attempt.

    Thread-safe. :meth:`add` never touches the store; :meth:`flush` writes what is waiting,
    oldest first, in batches of whole polls. With :meth:`start`, a writer thread flushes
    whenever something is added and retries after a failure (at most every
    :data:`RETRY_MAX_S`).

    Parameters
    ----------
    store : Store
    max_rows : int, default=MAX_PENDING_ROWS
        Bound of the buffer in rows; past it the oldest polls are dropped and counted.
    write_timeout : float, default=WRITE_TIMEOUT_S
        Seconds one write waits for a lock.
    health_file : path, optional
        A JSON file rewritten with :meth:`health` whenever it changes (for tools outside
        the process); a failure to write it is ignored.
    """

    def __init__(self, store: Store, *, max_rows: int = MAX_PENDING_ROWS, write_timeout: float = WRITE_TIMEOUT_S,
                 health_file: str | os.PathLike | None = None):
        if max_rows < 1:
            raise ValueError(f"max_rows must be at least 1; got {max_rows}")
        self.store = store
        self.max_rows = int(max_rows)
        self.write_timeout = float(write_timeout)
        self.health_file = Path(health_file) if health_file else None
        self._records: collections.deque[PollRecord] = collections.deque()
        self._rows = 0
        self._in_flight: set[int] = set()
        self._dropped = 0
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure: tuple[str, str] | None = None
        self._failure_since: float | None = None
        self._lease_failure: tuple[str, str] | None = None
        self._lease_failure_since: float | None = None
        self._written_file_state: dict | None = None
        self._written_file_at = 0.0

    # -- filling -------------------------------------------------------------------------------

    def add(self, record: PollRecord) -> None:
        """Queue one poll; drop the oldest queued polls (not being written) past the bound."""
        with self._lock:
            self._records.append(record)
            self._rows += record.n_rows
            dropped = 0
            while self._rows > self.max_rows:
                victim = next((r for r in self._records if id(r) not in self._in_flight and r is not record), None)
                if victim is None:
                    break
                self._records.remove(victim)
                self._rows -= victim.n_rows
                dropped += victim.n_rows
            self._dropped += dropped
        if dropped:
            log.error("store buffer full (%d rows): dropped %d rows of the oldest polls, %d dropped so far",
                      self.max_rows, dropped, self._dropped)
        self._wake.set()

    @property
    def buffered(self) -> int:
        """Rows waiting to be written."""
        return self._rows

    @property
    def dropped(self) -> int:
        """Rows given up because the buffer was full, since this buffer was made."""
        return self._dropped

    @property
    def running(self) -> bool:
        """Whether a writer thread flushes this buffer."""
        return self._thread is not None and self._thread.is_alive()

    # -- writing -------------------------------------------------------------------------------

    def flush(self, *, batch_rows: int = 5000) -> bool:
        """Write everything waiting; False (and the rows kept) when the store refuses them."""
        with self._flush_lock:
            while True:
                with self._lock:
                    batch, rows = [], 0
                    for record in self._records:
                        if batch and rows + record.n_rows > batch_rows:
                            break
                        batch.append(record)
                        rows += record.n_rows
                    self._in_flight = {id(r) for r in batch}
                if not batch:
                    self._succeeded()
                    return True
                try:
                    self.store.write_polls(batch, timeout=self.write_timeout)
                except (sa.exc.IntegrityError, sa.exc.DataError):
                    # rows the database will never take: write the others, give these up
                    self._write_one_by_one(batch)
                except Exception as exc:
                    with self._lock:
                        self._in_flight = set()
                    self._failed(exc)
                    return False
                else:
                    self._forget(batch)

    def _forget(self, batch: list[PollRecord]) -> None:
        done = {id(r) for r in batch}
        with self._lock:
            kept = [r for r in self._records if id(r) not in done]
            self._rows -= sum(r.n_rows for r in self._records if id(r) in done)
            self._records = collections.deque(kept)
            self._in_flight = set()

    def _write_one_by_one(self, batch: list[PollRecord]) -> None:
        for record in batch:
            try:
                self.store.write_polls([record], timeout=self.write_timeout)
            except (sa.exc.IntegrityError, sa.exc.DataError) as exc:
                log.error("the store refuses the poll of %s at %s; its %d rows are dropped: %s",
                          record.service, record.ts, record.n_rows, exc)
                with self._lock:
                    self._dropped += record.n_rows
            except Exception:
                break  # the store went away meanwhile: the rest stays buffered
            self._forget([record])

    def _failed(self, exc: BaseException) -> None:
        state, cause = self.store.diagnose(exc)
        if state != "locked":
            self.store.dispose()  # a connection opened read-only or after an I/O error stays so: open new ones
        with self._lock:
            changed = self._failure is None or self._failure[0] != state
            if self._failure is None:
                self._failure_since = time.time()
            self._failure = (state, cause)
        if changed:
            log.error("store %s: %s; %d rows kept in memory until it takes writes again", state, cause, self._rows)

    def _succeeded(self) -> None:
        with self._lock:
            failure, since = self._failure, self._failure_since
            self._failure = self._failure_since = None
        if failure is not None:
            log.warning("store takes writes again after %s %s; every buffered row is written (%d dropped in all)",
                        format_duration(time.time() - (since or time.time())), failure[0], self._dropped)

    def lease_failed(self, exc: BaseException) -> None:
        """A lease write failed: counts against the store's health once it lasts."""
        state, cause = self.store.diagnose(exc)
        with self._lock:
            if self._lease_failure is None:
                self._lease_failure_since = time.time()
            self._lease_failure = (state, cause)

    def lease_succeeded(self) -> None:
        """A lease write went through."""
        with self._lock:
            self._lease_failure = self._lease_failure_since = None

    # -- what to show ----------------------------------------------------------------------------

    def health(self) -> StoreHealth:
        """Whether the store takes writes, the cause when not, and the rows buffered and dropped."""
        now = time.time()
        with self._lock:
            buffered, dropped = self._rows, self._dropped
            if self._failure is not None:
                return StoreHealth(self._failure[0], self._failure[1], buffered, dropped, self._failure_since)
            if (self._lease_failure is not None and self._lease_failure_since is not None
                    and now - self._lease_failure_since >= LEASE_FAILURE_GRACE_S):
                return StoreHealth(self._lease_failure[0], self._lease_failure[1], buffered, dropped,
                                   self._lease_failure_since)
        recreated = self.store.recreated
        if recreated is not None and now - recreated[0] < RECREATED_NOTICE_S:
            return StoreHealth("recreated", recreated[1], buffered, dropped, recreated[0])
        return StoreHealth("ok", "", buffered, dropped, None)

    def write_health_file(self) -> None:
        """Rewrite :attr:`health_file` when the health changed, or every :data:`HEALTH_FILE_EVERY_S`.

        Atomically (a temporary file, then a rename); its ``updated`` field tells a reader how fresh it is.
        """
        if self.health_file is None:
            return
        state = self.health().as_dict()
        if state == self._written_file_state and time.monotonic() - self._written_file_at < HEALTH_FILE_EVERY_S:
            return
        try:
            temporary = self.health_file.with_name(f".{self.health_file.name}.{os.getpid()}.tmp")
            temporary.write_text(json.dumps({**state, "updated": time.time()}))
            os.replace(temporary, self.health_file)
        except OSError:
            log.debug("could not write the health file %s", self.health_file, exc_info=True)
            return
        self._written_file_state = state
        self._written_file_at = time.monotonic()

    # -- the writer thread ---------------------------------------------------------------------

    def start(self) -> WriteBuffer:
        """Start the writer thread; return self."""
        if self.running:
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True, name="vantage-store-writer")
        self._thread.start()
        return self

    def _run(self) -> None:
        pause = 0.25
        while not self._stop.is_set():
            self._wake.wait(timeout=1.0)
            self._wake.clear()
            if self._stop.is_set():
                break
            if self._rows and not self.flush():
                self.write_health_file()
                self._stop.wait(pause)  # let the store be for a moment, whatever arrives meanwhile
                pause = min(pause * 2, RETRY_MAX_S)
                self._wake.set()
                continue
            pause = 0.25
            self.write_health_file()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the writer thread, then try once more to write what is left (within ``timeout``)."""
        deadline = time.monotonic() + timeout
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))
            self._thread = None
        if self._rows:
            self.write_timeout = max(0.1, min(self.write_timeout, deadline - time.monotonic()))
            if not self.flush():
                log.error("stopping with %d rows the store did not take; they are lost", self._rows)
        self.write_health_file()


class ServicePoller:
    """Polls one service; owns its client and canary rows.

    Parameters
    ----------
    service : ServiceConfig
        The service.
    store : Store
        Where probes, metrics and incidents go.
    random_state : int, optional
        Seed for picking canary rows.
    buffer : WriteBuffer, optional
        Where polls wait to be written; a buffer of its own by default. When no writer
        thread empties the buffer, :meth:`poll` writes it before returning.
    """

    def __init__(self, service: ServiceConfig, store: Store, *, random_state: int | None = None,
                 buffer: WriteBuffer | None = None):
        self.service = service
        self.store = store
        self.redact = Redactor(service_secrets(service))  # a service may echo its token in an error body
        self.model_version: str | None = None  # as the newest canary answer reported it
        self.buffer = buffer if buffer is not None else WriteBuffer(store)
        self.client: ServiceClient = make_client(service)
        self.client.session.headers[PROBE_HEADER] = "1"
        self._rng = np.random.default_rng(random_state)
        self._reference, self._reference_problem = read_schema_reference(service)
        self.schema: ServiceSchema = resolve_schema(service, reference=self._reference,
                                                    reference_problem=self._reference_problem)
        """The service's columns (``monitoring.schema``); upgraded once the server's metadata is known."""
        self._metadata_asked = False
        self._canary_pool, self.canary_problem = self._load_canary_pool()

    def _load_canary_pool(self) -> tuple[pd.DataFrame | None, str | None]:
        if not self.service.reference:
            return None, "no reference data configured, so no canary prediction is sent"
        if self._reference is None:
            return None, f"canary disabled: {self._reference_problem}"
        # the model's inputs only (the schema's features): never the target or the model's own outputs
        features = self.schema.present_in(self._reference.columns)
        if not features or len(features) < len(self.schema.features):
            missing = [f for f in self.schema.features if f not in features]
            return None, (f"canary disabled: the reference {self.service.reference} lacks the feature column(s) "
                          f"{', '.join(missing) or 'the model needs'}")
        return self._reference[list(features)].head(1000).reset_index(drop=True), None

    def _learn_schema_from_metadata(self) -> None:
        """Ask the server once for its declared inputs, and let them decide the features when the config does not."""
        if self._metadata_asked or self.service.protocol == "mlflow":
            return
        try:
            meta = self.client.metadata()
        except ServiceError:
            return  # asked again at the next poll where the service is live
        self._metadata_asked = True
        if not meta.inputs:
            return
        schema = resolve_schema(self.service, reference=self._reference, metadata_inputs=meta.inputs,
                                reference_problem=self._reference_problem)
        if schema != self.schema:
            self.schema = schema
            self._canary_pool, self.canary_problem = self._load_canary_pool()

    def _canary(self) -> CallResult | None:
        if self._canary_pool is None:
            return None
        rows = self._canary_pool.sample(n=min(self.service.canary_rows, len(self._canary_pool)),
                                        random_state=int(self._rng.integers(2**31)))
        started = time.perf_counter()
        try:
            answer = self.client.predict(rows)
        except ServiceError as exc:
            return CallResult("predict", False, (time.perf_counter() - started) * 1000.0, exc.status,
                              f"{exc.call}: {exc.message}")
        if answer.model_version:  # servers whose metadata names no version often say it with every answer
            self.model_version = answer.model_version
        return CallResult("predict", True, (time.perf_counter() - started) * 1000.0, 200)

    def _scrape(self) -> tuple[CallResult, list[tuple[str, float, float]]]:
        metrics = self.service.metrics
        started = time.perf_counter()
        try:
            response = self.client.session.get(metrics.url, timeout=self.service.timeout,
                                               headers=self.client.request_headers())
            latency_ms = (time.perf_counter() - started) * 1000.0
            if response.status_code != 200:
                return CallResult("metrics", False, latency_ms, response.status_code,
                                  f"HTTP {response.status_code} from {metrics.url}"), []
            samples = parse_scrape(response.text, metrics)
        except ValueError as exc:
            return CallResult("metrics", False, (time.perf_counter() - started) * 1000.0, 200,
                              f"metrics not in Prometheus text format: {exc}"), []
        except Exception as exc:  # requests raises many kinds; all mean "no scrape this time"
            return CallResult("metrics", False, (time.perf_counter() - started) * 1000.0, None,
                              f"metrics scrape failed: {type(exc).__name__}: {exc}"), []
        return CallResult("metrics", True, latency_ms, 200), list(samples)

    def poll(self, *, now: Callable[[], float] = time.time) -> PollOutcome:
        """Poll once and hand the result to the buffer; never raises for a service or store problem."""
        ts = now()
        report = self.client.health()
        checks: list[CallResult] = list(report.checks)
        if report.live.ok:
            self._learn_schema_from_metadata()
        canary = self._canary() if report.live.ok else None
        if canary is not None:
            checks.append(canary)
        state, reason = poll_state(report.checks, canary, slo=self.service.slo)
        samples: list[tuple[str, float, float]] = []
        if self.service.metrics is not None and self.service.metrics.url is not None:  # else Prometheus scrapes it
            scrape, samples = self._scrape()
            checks.append(scrape)
        reason = self.redact(reason) if self.redact else reason
        checks = [dataclasses.replace(c, error=self.redact(c.error)) if self.redact and c.error else c
                  for c in checks]
        rows = [Probe(ts=ts, service=self.service.name, check=c.check, ok=c.ok, status=c.status,
                      latency_ms=round(c.latency_ms, 3), error=c.error) for c in checks]
        rows.append(Probe(ts=ts, service=self.service.name, check="poll", ok=state != "down",
                          latency_ms=round((now() - ts) * 1000.0, 3), error=reason, state=state))
        self.buffer.add(PollRecord(service=self.service.name, ts=ts, probes=tuple(rows),
                                   metric_samples=tuple(samples), min_gap=0.5 * self.service.poll_interval))
        if not self.buffer.running:
            self.buffer.flush()
        return PollOutcome(self.service.name, ts, state, reason, tuple(checks), len(samples))

    def close(self) -> None:
        """Close the client's connections."""
        self.client.close()


class ServiceLease:
    """This collector's view of the lease of one service: held or not, and whether to poll.

    :meth:`tick` is called by the collector's lease thread every :data:`LEASE_TICK_S`; it
    renews a held lease every :data:`LEASE_RENEW_INTERVALS` poll intervals, and tries to take
    one held by another collector as soon as that one's process is gone (same machine) or its
    lease has expired. Store errors never block it for long (each write waits at most a
    quarter interval, and one second).
    """

    def __init__(self, store: Store, name: str, holder: str, *, poll_interval: float, identity: ProcessIdentity,
                 buffer: WriteBuffer):
        self.store = store
        self.name = name
        self.holder = holder
        self.identity = identity
        self.buffer = buffer
        self.ttl = LEASE_TTL_INTERVALS * poll_interval
        self.renew_every = LEASE_RENEW_INTERVALS * poll_interval
        self.recheck_every = poll_interval
        self.timeout = min(1.0, poll_interval / 4)
        self.held = False
        self.expires_at = 0.0
        self.known: Lease | None = None
        self.store_ok: bool | None = None
        self.decided = threading.Event()
        """Set once the first attempt has been made (granted, refused or failed)."""
        self.wake = threading.Event()
        """Set when the lease was just taken over, so that the service is polled at once."""
        self._next_attempt = 0.0
        self._retry_after = 0.0

    def _due(self, mono: float, wall: float) -> bool:
        if mono >= self._next_attempt:
            return True
        known = self.known
        if self.held or known is None or known.holder == self.holder or mono < self._retry_after:
            return False
        return wall >= known.expires_at or known.holder_is_dead(self.identity)

    def tick(self) -> None:
        """Renew, take or check the lease when it is time to."""
        mono, wall = time.monotonic(), time.time()
        if not self._due(mono, wall):
            return
        try:
            claim = self.store.claim_lease(self.name, self.holder, self.ttl, now=wall, identity=self.identity,
                                           timeout=self.timeout)
        except Exception as exc:
            self.store_ok = False
            self.buffer.lease_failed(exc)
            self._retry_after = self._next_attempt = mono + min(1.0, self.renew_every)
            self.decided.set()
            return
        self.store_ok = True
        self.buffer.lease_succeeded()
        granted, lease = claim.granted, claim.lease
        if granted and not self.held:
            if claim.taken_from is not None:
                gone = claim.taken_from
                how = ("its process is gone" if gone.expires_at >= wall else
                       f"its lease expired {wall - gone.expires_at:.1f} s ago")
                log.info("took over %s from %s (pid %s on %s): %s", self.name, gone.holder, gone.pid, gone.host, how)
            self.wake.set()
        elif self.held and not granted:
            log.warning("%s is now held by %s (pid %s on %s); not polling it", self.name, lease.holder, lease.pid,
                        lease.host)
        self.held, self.known = granted, lease
        self.expires_at = lease.expires_at if granted else 0.0
        self._next_attempt = mono + (self.renew_every if granted else self.recheck_every)
        self.decided.set()

    def may_poll(self) -> bool:
        """Whether this collector should poll the service now.

        Yes while it holds a lease that has not run out. While the store cannot be reached,
        also when it held the lease last, when nobody is known to, when the known holder's
        process is gone, or when its lease has run out and it runs on another machine (a
        holder alive on this one goes on polling into its own buffer): the polls are
        buffered, and duplicates are skipped when they are written.
        """
        wall = time.time()
        if self.store_ok:
            return self.held and wall < self.expires_at
        if self.held:
            return True
        known = self.known
        if known is None or known.holder == self.holder or known.holder_is_dead(self.identity):
            return True
        if known.node == self.identity.node:
            return False
        return wall >= known.expires_at

    def release(self) -> None:
        """Give the lease up if this collector holds it."""
        if self.held:
            self.store.release_lease(self.name, self.holder, timeout=self.timeout)
            self.held = False


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
        Seconds between upkeep runs (:meth:`upkeep`: downsampling, the prediction log's
        compaction and retention, its drift counts), done by whichever collector holds that lease.
    max_buffered_rows : int, default=MAX_PENDING_ROWS
        Rows kept in memory while the store does not take writes.
    health_file : path, optional
        JSON file kept up to date with :meth:`store_health`.
    clock : Clock, optional
        The time the prediction log's retention is applied at; the system clock by default.
    """

    def __init__(self, config: VantageConfig, store: Store | None = None, *, holder: str | None = None,
                 maintenance_every: float = 60.0, max_buffered_rows: int = MAX_PENDING_ROWS,
                 health_file: str | os.PathLike | None = None, clock: Clock | None = None):
        self.config = config
        self.clock = clock or SystemClock()
        """What the prediction log's retention measures days against."""
        self.store = store or Store.from_config(config)
        self.identity = ProcessIdentity.current()
        self.holder = holder or f"{self.identity.host}:{self.identity.pid}:{uuid.uuid4().hex[:6]}"
        self.maintenance_every = maintenance_every
        self.buffer = WriteBuffer(self.store, max_rows=max_buffered_rows, health_file=health_file)
        self.pollers = {s.name: ServicePoller(s, self.store, buffer=self.buffer) for s in config.services}
        self.leases = {s.name: ServiceLease(self.store, self.lease_name(s.name), self.holder,
                                            poll_interval=s.poll_interval, identity=self.identity,
                                            buffer=self.buffer)
                       for s in config.services}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.last_outcomes: dict[str, PollOutcome] = {}

    @staticmethod
    def lease_name(service: str) -> str:
        """Name of the lease that decides who polls ``service``."""
        return f"collector:{service}"

    def store_health(self) -> StoreHealth:
        """Whether the store takes this collector's writes; the cause, and rows buffered and dropped."""
        return self.buffer.health()

    def _lease_loop(self) -> None:
        while not self._stop.is_set():
            for lease in self.leases.values():
                if self._stop.is_set():
                    break
                try:
                    lease.tick()
                except Exception:
                    log.exception("lease check of %s failed", lease.name)
            self._stop.wait(LEASE_TICK_S)

    def _service_loop(self, poller: ServicePoller, lease: ServiceLease) -> None:
        interval = poller.service.poll_interval
        lease.decided.wait(timeout=5.0)
        next_tick = time.monotonic()
        while not self._stop.is_set():
            if lease.may_poll():
                try:
                    self.last_outcomes[poller.service.name] = poller.poll()
                except Exception:
                    log.exception("poll of %s failed", poller.service.name)
            next_tick += interval
            delay = next_tick - time.monotonic()
            if delay < 0:  # the poll overran its interval: start the next one now, don't pile up
                next_tick = time.monotonic()
                delay = 0
            if lease.wake.wait(delay):  # just took the lease over (or stopping): poll at once
                lease.wake.clear()
                next_tick = time.monotonic()

    def _maintenance_loop(self) -> None:
        while not self._stop.wait(self.maintenance_every):
            try:
                if self.store.acquire_lease("collector:maintenance", self.holder,
                                            ttl_seconds=3 * self.maintenance_every):
                    self.upkeep(now=self.clock.now())
            except Exception:
                log.exception("downsampling or prediction-log upkeep failed")

    def upkeep(self, *, now: float) -> dict:
        """One run of the store's upkeep (what the holder of the maintenance lease does every
        ``maintenance_every`` seconds): downsampling, the prediction log's compaction and
        retention, then the drift counts of its files of past days
        (:func:`monitoring.upkeep.keep_drift_tallies`) and the labels joined beside it
        (:func:`monitoring.upkeep.keep_service_labels`).

        Parameters
        ----------
        now : float
            Unix seconds the log's retention and days are measured against.

        Returns
        -------
        dict
            The log's ``{"compacted": [...], "deleted": [...]}``
            (:meth:`~monitoring.parquet_log.ParquetPredictionLog.maintain`), ``"tallies"``:
            service name to :class:`~monitoring.production.KeptTallies`, and ``"labels"``: service
            name to the :class:`~monitoring.performance_sums.KeptLabels` joined in this run.
        """
        settings = self.config.store
        self.store.downsample(raw_retention_hours=settings.raw_retention_hours,
                              retention_days=settings.retention_days, rollup_minutes=settings.rollup_minutes)
        done = self.store.predictions.maintain(now=now, keep_days=settings.log_retention_days)
        if done["deleted"]:
            log.info("prediction log: deleted %s (older than %g days)", ", ".join(done["deleted"]),
                     settings.log_retention_days)
        # imported here, not at the top: the engines take longer to import than a restarted collector
        # may wait before it takes its lease over and polls
        from monitoring.upkeep import keep_drift_tallies, keep_service_labels

        schemas = {name: poller.schema for name, poller in self.pollers.items()}
        return {**done, "tallies": keep_drift_tallies(self.store, self.config.services, schemas, now=now),
                "labels": keep_service_labels(self.store, self.config.services, schemas, now=now)}

    def start(self) -> Collector:
        """Start the writer, the lease thread, one thread per service and one for downsampling; return self."""
        if self._threads:
            return self
        self._stop.clear()
        self.buffer.start()
        threads = [threading.Thread(target=self._lease_loop, daemon=True, name="vantage-leases")]
        threads += [threading.Thread(target=self._service_loop, args=(poller, self.leases[name]), daemon=True,
                                     name=f"vantage-poll-{name}") for name, poller in self.pollers.items()]
        threads.append(threading.Thread(target=self._maintenance_loop, daemon=True, name="vantage-maintenance"))
        for thread in threads:
            thread.start()
        self._threads = threads
        return self

    @property
    def running(self) -> bool:
        """Whether the polling threads are alive."""
        return bool(self._threads) and not self._stop.is_set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop polling, write what is buffered, release the leases and close connections."""
        self._stop.set()
        for lease in self.leases.values():
            lease.wake.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self.buffer.stop(timeout=max(0.5, deadline - time.monotonic()))
        for name, poller in self.pollers.items():
            try:
                self.leases[name].release()
            except Exception:
                log.exception("could not release the lease of %s", name)
            poller.close()
        self._threads = []


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: poll until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m monitoring.collector", description=__doc__.split("\n")[0])
    parser.add_argument("--config", help="TOML configuration (default: $VANTAGE_CONFIG)")
    parser.add_argument("--once", action="store_true", help="poll every service once and exit")
    parser.add_argument("--health-file", help="JSON file kept up to date with the store's health")
    parser.add_argument("--capture-port", type=int, help="also take KServe payload-logger CloudEvents on this port")
    parser.add_argument("--capture-host", default="127.0.0.1", help="address of the capture port (default 127.0.0.1)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args, path = parse_command_line(parser, argv)
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(f"invalid configuration {exc.source}:", *exc.problems, sep="\n  ", file=sys.stderr)
        return 2
    collector = Collector(config, health_file=args.health_file)
    if args.once:
        for poller in collector.pollers.values():
            outcome = poller.poll()
            print(f"{outcome.service}: {outcome.state} ({outcome.reason})")
        health = collector.store_health()
        collector.buffer.write_health_file()
        if health.buffered:
            print(f"not recorded: the store is {health.state}: {health.cause}", file=sys.stderr)
            return 1
        return 0
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    collector.start()
    log.info("polling %d service(s) into %s", len(collector.pollers), config.store.url)
    capture = None
    if args.capture_port is not None:
        from monitoring.capture import start_logger_endpoint
        from monitoring.clock import clock_from_environment

        try:
            capture = start_logger_endpoint(config, collector.store, host=args.capture_host, port=args.capture_port,
                                            clock=clock_from_environment())
        except OSError as exc:
            print(f"cannot take KServe logger events: {exc}", file=sys.stderr)
            collector.stop()
            return 2
    stopped.wait()
    if capture is not None:
        capture.stop()
    collector.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
