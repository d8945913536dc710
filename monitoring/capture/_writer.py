"""The capture writer: captured exchanges → parsed rows → the store, off the request path.

:meth:`CaptureWriter.submit` only appends to a bounded in-memory queue and never waits: a
writer thread parses the bodies (:mod:`monitoring.capture._parsing`) and appends the rows to
the service's prediction log with :meth:`monitoring.store.Store.log_predictions`, in batches.
While the store refuses writes, parsed rows wait in memory (at most ``max_pending_rows``) and
are written once it is back; what does not fit is dropped and counted, never waited for.

Every outcome is counted per service (:data:`COUNTERS`); :meth:`CaptureWriter.stats` gives the
counts as a :class:`CaptureStats`, which the writer also stores every ``stats_every`` seconds
(:meth:`monitoring.store.Store.write_capture_stats`) for the Service-health page.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import sqlalchemy as sa

from monitoring.capture._parsing import CaptureParseError, ParseContext, decode_json, parse_exchange, request_id_of
from monitoring.sealing import Sealer
from monitoring.store import Store

log = logging.getLogger(__name__)

COUNTERS = (
    "exchanges",  # prediction calls captured (request and answer both seen)
    "rows_logged",  # prediction-log rows the store took
    "rows_dropped",  # rows given up: the queue was full while the store refused writes
    "exchanges_dropped",  # exchanges given up before parsing: the queue of raw bodies was full
    "not_json",  # a request or answer body that is not JSON
    "unparsed",  # JSON of a shape the protocol does not have (the last reason is kept)
    "oversized",  # a body over the capture cap: forwarded (proxy) or refused with 413 (logger), not logged
    "error_answers",  # the server answered an error (not 2xx): forwarded, not logged
    "upstream_down",  # the proxy could not reach the server, or it did not answer in time (502 / 504)
    "without_id",  # a CloudEvent with no id
    "responses_without_request",  # a response event whose request never came within the pairing time
    "requests_without_response",  # a request event whose response never came (KServe logs 200 answers only)
)
"""What is counted per service."""

MAX_PENDING_ROWS = 100_000
"""Parsed rows kept in memory while the store refuses writes."""

MAX_QUEUED_BYTES = 256 * 1024 * 1024
"""Raw bodies waiting to be parsed; past this the newest exchange is dropped (and counted)."""

SEND_EVERY_S = 0.02
"""How often the proxy hands what it captured to its writer process."""


@dataclass(frozen=True)
class ServiceCapture:
    """Where and how the traffic of one service is logged.

    Attributes
    ----------
    service : str
        Service name in the configuration.
    log_name : str
        Name of its prediction log in the store (``logged_as`` or the name).
    features : dict of str to {"numeric", "categorical"}
        Feature columns of the prediction log, in model order.
    context : ParseContext
        How its bodies are read.
    personal : tuple of str
        Its personal columns, sealed before they are stored (``monitoring.sealing``).
    """

    service: str
    log_name: str
    features: dict[str, str]
    context: ParseContext
    personal: tuple[str, ...] = ()


@dataclass(frozen=True)
class Exchange:
    """One captured request and its answer, still raw.

    Attributes
    ----------
    service : str
    ts : float
        When the request arrived (Unix seconds).
    exchange_id : str
        The id chosen for it (a header, a CloudEvent id, or generated).
    id_given : bool
        True when ``exchange_id`` was named by the caller (it then wins over a v2 request ``id``).
    request, response : bytes or parsed JSON
        Bodies; bytes are parsed by the writer thread.
    request_encoding, response_encoding : str or None
        Their ``Content-Encoding`` (``gzip``, ``deflate``), if any.
    protocol : str or None
        How to read the bodies when not the service's own protocol (KServe's logger posts v1
        or v2 bodies, whatever the service is polled with).
    """

    service: str
    ts: float
    exchange_id: str
    request: Any
    response: Any
    id_given: bool = False
    request_encoding: str | None = None
    response_encoding: str | None = None
    protocol: str | None = None

    @property
    def size(self) -> int:
        """Bytes it holds in memory (parsed bodies count as small)."""
        return sum(len(b) if isinstance(b, bytes | bytearray) else 1024 for b in (self.request, self.response))


@dataclass(frozen=True)
class CaptureStats:
    """What a capture source has seen, per service, and the state of its store writes.

    Attributes
    ----------
    source : str
        Which capture process (``proxy 127.0.0.1:8081``, ``kserve-logger 127.0.0.1:9000``).
    counts : dict of str to dict of str to int
        Per service, every counter of :data:`COUNTERS`, plus ``rows_pending`` (parsed rows
        waiting for the store).
    last_problem : dict of str to str
        Per service, the last reason an exchange was not logged, in words.
    store_state : str
        ``ok``, or what :meth:`monitoring.store.Store.diagnose` says about the last failed write.
    store_cause : str
    updated : float
        When these counts were taken (Unix seconds).
    """

    source: str
    counts: dict[str, dict[str, int]]
    last_problem: dict[str, str] = field(default_factory=dict)
    store_state: str = "ok"
    store_cause: str = ""
    updated: float = 0.0

    def as_dict(self) -> dict:
        """The fields as a JSON-ready mapping."""
        return {"source": self.source, "counts": self.counts, "last_problem": self.last_problem,
                "store_state": self.store_state, "store_cause": self.store_cause, "updated": self.updated}

    def service(self, name: str) -> dict[str, int]:
        """Counts of one service (zeros when it saw nothing)."""
        return self.counts.get(name, dict.fromkeys((*COUNTERS, "rows_pending"), 0))


class CaptureWriter:
    """Parses captured exchanges and writes them to the prediction log, in a background thread.

    Parameters
    ----------
    store : Store
    services : mapping of str to ServiceCapture
        The services traffic may belong to, by configuration name.
    source : str
        Name of the capture process in :class:`CaptureStats`.
    clock : object with ``now()``
        Gives the time stamped on the stored statistics.
    flush_every : float, default=0.25
        Seconds between writes.
    stats_every : float, default=5
        Seconds between two writes of the statistics to the store.
    max_pending_rows : int, default=MAX_PENDING_ROWS
    max_queued_bytes : int, default=MAX_QUEUED_BYTES
    """

    def __init__(self, store: Store, services: Mapping[str, ServiceCapture], *, source: str, clock,
                 flush_every: float = 0.25, stats_every: float = 5.0, max_pending_rows: int = MAX_PENDING_ROWS,
                 max_queued_bytes: int = MAX_QUEUED_BYTES):
        self.store = store
        self.services = dict(services)
        self.source = source
        self.clock = clock
        self.flush_every = float(flush_every)
        self.stats_every = float(stats_every)
        self.max_pending_rows = int(max_pending_rows)
        self.max_queued_bytes = int(max_queued_bytes)
        self._queue: collections.deque[Exchange] = collections.deque()
        self._queued_bytes = 0
        self._pending: dict[str, collections.deque[dict]] = {name: collections.deque() for name in self.services}
        self._counts = {name: dict.fromkeys(COUNTERS, 0) for name in self.services}
        self._problems: dict[str, str] = {}
        self._store_state: tuple[str, str] = ("ok", "")
        self._tables_ready: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stats_written_at = 0.0

    # -- from the request path (never blocks on the store) --------------------------------------

    def submit(self, exchange: Exchange) -> bool:
        """Queue an exchange for parsing and writing; False (and counted) when the queue is full."""
        size = exchange.size
        with self._lock:
            if self._queued_bytes + size > self.max_queued_bytes:
                self._bump(exchange.service, "exchanges_dropped", problem="the capture queue was full")
                return False
            self._queue.append(exchange)
            self._queued_bytes += size
        return True

    def count(self, service: str, counter: str, *, problem: str | None = None, n: int = 1) -> None:
        """Add ``n`` to ``counter`` of ``service``, keeping ``problem`` as its last reason in words."""
        with self._lock:
            self._bump(service, counter, n=n, problem=problem)

    def _bump(self, service: str, counter: str, *, n: int = 1, problem: str | None = None) -> None:
        counts = self._counts.setdefault(service, dict.fromkeys(COUNTERS, 0))
        counts[counter] += n
        if problem:
            self._problems[service] = problem

    # -- statistics ----------------------------------------------------------------------------

    def stats(self) -> CaptureStats:
        """The counts so far."""
        with self._lock:
            counts = {name: {**c, "rows_pending": len(self._pending.get(name, ()))} for name, c in self._counts.items()}
            return CaptureStats(self.source, counts, dict(self._problems), self._store_state[0],
                                self._store_state[1], self.clock.now())

    def write_stats(self) -> None:
        """Store the counts (the Service-health page reads them); a store that refuses is tried again later."""
        self._stats_written_at = time.monotonic()
        stats = self.stats()
        for name in stats.counts:
            try:
                self.store.write_capture_stats(self.source, name, stats.as_dict() | {"counts": stats.service(name)},
                                               ts=stats.updated)
            except Exception as exc:  # the store is out: the counts are written next time
                log.debug("capture statistics not stored: %s", exc)
                return

    # -- the writer thread ---------------------------------------------------------------------

    def start(self) -> CaptureWriter:
        """Start the writer thread; return self."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, daemon=True, name="vantage-capture-writer")
            self._thread.start()
        return self

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (within ``timeout`` seconds), store the counts and stop the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.write_stats()

    def _run(self) -> None:
        pause = self.flush_every
        while not self._stop.is_set():
            # a pause between writes, not a wake-up per exchange: rows are written in batches
            self._stop.wait(self.flush_every)
            ok = self.flush()
            if time.monotonic() - self._stats_written_at >= self.stats_every:
                self.write_stats()
            if not ok:  # leave the store be for a moment
                self._stop.wait(pause)
                pause = min(pause * 2, 2.0)
            else:
                pause = self.flush_every
        with contextlib.suppress(Exception):
            self.flush()

    def flush(self) -> bool:
        """Parse what is queued and write every pending row; False when the store refused them."""
        with self._lock:
            exchanges = list(self._queue)
            self._queue.clear()
            self._queued_bytes = 0
        for exchange in exchanges:
            self._parse(exchange)
        ok = True
        for name in list(self._pending):
            ok = self._write(name) and ok
        return ok

    def _parse(self, exchange: Exchange) -> None:
        capture = self.services.get(exchange.service)
        if capture is None:
            return
        context = capture.context
        if exchange.protocol is not None and exchange.protocol != context.protocol:
            context = dataclasses.replace(context, protocol=exchange.protocol)
        try:
            request = exchange.request
            if isinstance(request, bytes | bytearray):
                request = decode_json(bytes(request), encoding=exchange.request_encoding, what="request body")
            response = exchange.response
            if isinstance(response, bytes | bytearray):
                response = decode_json(bytes(response), encoding=exchange.response_encoding, what="response body")
            own_id = None if exchange.id_given else request_id_of(context.protocol, request)
            rows = parse_exchange(context, request, response, exchange_id=own_id or exchange.exchange_id,
                                  ts=exchange.ts)
        except CaptureParseError as exc:
            self.count(exchange.service, exc.reason, problem=str(exc))
            return
        with self._lock:
            self._bump(exchange.service, "exchanges")
            pending = self._pending.setdefault(exchange.service, collections.deque())
            pending.extend(rows)
            excess = len(pending) - self.max_pending_rows
            if excess > 0:
                for _ in range(excess):
                    pending.popleft()
                self._bump(exchange.service, "rows_dropped", n=excess,
                           problem=f"the store refused writes for so long that {self.max_pending_rows:,} rows "
                                   "waited in memory; the oldest were dropped")

    def _write(self, name: str) -> bool:
        capture = self.services[name]
        with self._lock:
            rows = list(self._pending[name])
        if not rows:
            return True
        try:
            if name not in self._tables_ready:
                self.store.prediction_table(capture.log_name, capture.features)
                self._tables_ready.add(name)
            frame = pd.DataFrame(rows, columns=["id", "ts", "model_version", "prediction", "score", "probabilities",
                                                *capture.features])
            self.store.log_predictions(capture.log_name, frame)
        except (sa.exc.IntegrityError, sa.exc.DataError) as exc:  # rows the database will never take
            with self._lock:
                for _ in rows:
                    self._pending[name].popleft()
                self._bump(name, "rows_dropped", n=len(rows), problem=f"the store refused these rows: {exc}")
            return True
        except Exception as exc:
            state, cause = self.store.diagnose(exc)
            with self._lock:
                changed = self._store_state[0] != state
                self._store_state = (state, cause)
            if changed:
                log.error("capture: store %s (%s); %d rows of %s wait in memory", state, cause, len(rows), name)
            if state != "locked":
                self.store.dispose()
            return False
        with self._lock:
            for _ in rows:
                self._pending[name].popleft()
            self._bump(name, "rows_logged", n=len(rows))
            if self._store_state[0] != "ok":
                log.warning("capture: the store takes writes again")
            self._store_state = ("ok", "")
        return True


class WriterProcess:
    """A :class:`CaptureWriter` in a child process, fed through a pipe.

    The capturing proxy must not share its interpreter with the parsing and the store writes:
    measured in one process, they held it long enough to add milliseconds to the proxy's p99.
    :meth:`submit` and :meth:`count` only append to a bounded queue; a sender thread pickles what
    is queued into the pipe every :data:`SEND_EVERY_S` (blocking in the write, not holding the
    interpreter), and a receiver
    thread keeps the counts the child reports every half second. Same interface as
    :class:`CaptureWriter`: ``submit``, ``count``, ``stats``, ``start``, ``close``.

    Parameters
    ----------
    store_url : str
        The child opens its own :class:`~monitoring.store.Store` on it.
    log_url : str, optional
        Where that store keeps the prediction log (``[store] log``); the store's own tables by default.
    services, source, clock
        As for :class:`CaptureWriter` (they are pickled to the child).
    max_queued_bytes : int, default=MAX_QUEUED_BYTES
        Raw bodies waiting for the pipe; past this an exchange is dropped and counted.
    """

    def __init__(self, store_url: str, services: Mapping[str, ServiceCapture], *, source: str, clock,
                 max_queued_bytes: int = MAX_QUEUED_BYTES, log_url: str | None = None):
        self.store_url = store_url
        self.log_url = log_url
        self.services = dict(services)
        self.source = source
        self.clock = clock
        self.max_queued_bytes = int(max_queued_bytes)
        self._queue: collections.deque[tuple] = collections.deque()
        self._queued_bytes = 0
        self._lost: dict[str, int] = {}
        self._counts: dict[tuple[str, str], list] = {}
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._closing = threading.Event()
        self._latest = CaptureStats(source, {name: dict.fromkeys((*COUNTERS, "rows_pending"), 0)
                                             for name in self.services})
        self._process = None
        self._threads: list[threading.Thread] = []
        self._dead: str | None = None

    def start(self) -> WriterProcess:
        """Start the child process and the two threads; return self."""
        if self._process is not None:
            return self
        import multiprocessing

        context = multiprocessing.get_context("spawn")  # never fork a process that runs an event loop
        inbox_read, self._inbox = context.Pipe(duplex=False)
        self._outbox, outbox_write = context.Pipe(duplex=False)
        self._process = context.Process(target=_child, name="vantage-capture-writer", daemon=True,
                                        args=(self.store_url, self.log_url, self.services, self.source,
                                              self.clock,
                                              inbox_read, outbox_write))
        self._process.start()
        inbox_read.close()
        outbox_write.close()
        self._threads = [threading.Thread(target=self._send_forever, daemon=True, name="vantage-capture-send"),
                         threading.Thread(target=self._receive_forever, daemon=True, name="vantage-capture-receive")]
        for thread in self._threads:
            thread.start()
        return self

    def submit(self, exchange: Exchange) -> bool:
        """Queue an exchange for the child; False (and counted) when the queue is full or the child is gone."""
        size = exchange.size
        with self._lock:
            if self._dead is not None or self._queued_bytes + size > self.max_queued_bytes:
                self._lost[exchange.service] = self._lost.get(exchange.service, 0) + 1
                return False
            self._queue.append(("exchange", exchange, size))
            self._queued_bytes += size
        return True

    def count(self, service: str, counter: str, *, problem: str | None = None, n: int = 1) -> None:
        """Add ``n`` to ``counter`` of ``service`` (in the child, which stores the counts)."""
        with self._lock:  # summed until sent: a flood of failures takes no more memory than one
            pending = self._counts.setdefault((service, counter), [0, None])
            pending[0] += n
            pending[1] = problem or pending[1]

    def stats(self) -> CaptureStats:
        """The counts the child reported last, with what was lost before reaching it."""
        latest = self._latest
        with self._lock:
            lost = dict(self._lost)
            dead = self._dead
        counts = {name: dict(c) for name, c in latest.counts.items()}
        for name, n in lost.items():
            counts.setdefault(name, dict.fromkeys((*COUNTERS, "rows_pending"), 0))["exchanges_dropped"] += n
        problems = dict(latest.last_problem)
        if dead is not None:
            problems = dict.fromkeys(counts, dead)
        return CaptureStats(latest.source, counts, problems, latest.store_state, latest.store_cause,
                            self.clock.now())

    def close(self, timeout: float = 15.0) -> None:
        """Hand over what is queued, let the child write it and store the counts, then stop."""
        self._closing.set()
        self._ready.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.1, deadline - time.monotonic()))
        if self._process is not None:
            self._process.join(max(0.1, deadline - time.monotonic()))
            if self._process.is_alive():
                self._process.terminate()

    def _send_forever(self) -> None:
        while True:
            # every SEND_EVERY_S, not woken per exchange: a few per write, fewer switches of the interpreter
            self._ready.wait(timeout=SEND_EVERY_S)
            with self._lock:
                batch = list(self._queue)
                self._queue.clear()
                lost, self._lost = self._lost, {}
                counts, self._counts = self._counts, {}
            try:
                for service, n in lost.items():  # tell the child, which stores the counts
                    self._inbox.send(("count", (service, "exchanges_dropped", "the capture queue was full", n)))
                for (service, counter), (n, problem) in counts.items():
                    self._inbox.send(("count", (service, counter, problem, n)))
                for kind, payload, size in batch:
                    self._inbox.send((kind, payload))
                    if size:
                        with self._lock:
                            self._queued_bytes -= size
                if self._closing.is_set() and not self._queue and not self._counts:
                    self._inbox.send(("close", None))
                    return
            except (OSError, ValueError) as exc:  # the child is gone: nothing more can be kept
                with self._lock:
                    self._dead = f"the capture writer process is gone ({type(exc).__name__}); nothing is logged"
                    self._queue.clear()
                    self._queued_bytes = 0
                log.error("%s", self._dead)
                return

    def _receive_forever(self) -> None:
        while True:
            try:
                message = self._outbox.recv()
            except (EOFError, OSError):
                return
            self._latest = message


def _child(store_url: str, log_url: str | None, services: dict, source: str, clock, inbox, outbox) -> None:
    """The writer process: a :class:`CaptureWriter` fed from ``inbox``, its counts sent to ``outbox``."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop, and says so
    sealer = Sealer.from_environment({c.log_name: c.personal for c in services.values()})
    writer = CaptureWriter(Store(store_url, sealer=sealer, log=log_url), services, source=source,
                           clock=clock).start()
    reported = 0.0
    try:
        while True:
            if inbox.poll(0.25):
                try:
                    kind, payload = inbox.recv()
                except EOFError:
                    break
                if kind == "exchange":
                    writer.submit(payload)
                elif kind == "count":
                    service, counter, problem, n = payload
                    writer.count(service, counter, problem=problem, n=n)
                elif kind == "close":
                    break
            if time.monotonic() - reported >= 0.5:
                outbox.send(writer.stats())
                reported = time.monotonic()
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            outbox.send(writer.stats())
