"""The store: the SQL store of probes, scraped metrics, incidents, rollups and leases (the health store).

SQLAlchemy Core over SQLite (a file in WAL mode, the default) or PostgreSQL. The tables are in
:mod:`monitoring.store_schema`, created and upgraded by the Alembic migrations of
:mod:`monitoring.migrations` whenever a store opens a database; the prediction log, its labels
and the capture statistics in :mod:`monitoring.prediction_log_sql`, which :class:`Store` delegates
to (``store.log_predictions(...)``, ``store.read_prediction_log(...)``; ``store.predictions`` is
the :class:`~monitoring.prediction_log_sql.SqlPredictionLog` itself).

Outages
-------
A SQLite file that is deleted (or replaced) under a running store is noticed before every
write (its inode is compared with the one the connections opened): pooled connections to
the old file are closed and the schema is created again in a new file
(:attr:`Store.recreated` says when and why). :meth:`Store.diagnose` names what an error
means for the operator (locked, full, read-only, unreachable) for :class:`StoreHealth`; a
PostgreSQL server that is down or refuses the connection is named by host and port.

Run as ``python -m monitoring.store upgrade`` (``--url`` or ``--config``), it migrates a store by
hand; ``current`` prints its revision.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from monitoring import migrations
from monitoring.config import STORE_LOG
from monitoring.metrics import counter_increases
from monitoring.prediction_log_sql import SqlPredictionLog
from monitoring.sealing import Sealer
from monitoring.store_schema import (
    dialect_insert,
    incidents,
    insert_ignoring_duplicates,
    leases,
    metric_rollups,
    metric_samples,
    probe_rollups,
    probes,
    read_frame,
)

try:  # POSIX only: the file-size limit is one way a disk can be "full" for this process
    import resource
except ImportError:  # pragma: no cover - Windows
    resource = None

log = logging.getLogger(__name__)

LATENCY_BUCKETS_MS: tuple[float, ...] = (
    1, 2, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 10000,
    30000, float("inf"),
)
"""Upper bounds (ms) of the latency histogram kept for downsampled probes."""

PROBE_COLUMNS = ("ts", "check", "ok", "state", "status", "latency_ms", "error")
"""Columns :meth:`Store.read_probes` can return."""


@dataclass(frozen=True)
class Probe:
    """One check of one poll, as written to the ``probes`` table."""

    ts: float
    service: str
    check: str
    ok: bool
    status: int | None = None
    latency_ms: float | None = None
    error: str | None = None
    state: str | None = None

    def as_row(self) -> dict:
        """Return the probe as a column → value mapping."""
        return {
            "ts": self.ts,
            "service": self.service,
            "check": self.check,
            "ok": self.ok,
            "status": self.status,
            "latency_ms": self.latency_ms,
            "error": self.error,
            "state": self.state,
        }


@dataclass(frozen=True)
class PollRecord:
    """Everything one poll of one service writes, kept together until it is stored.

    Attributes
    ----------
    service : str
    ts : float
        When the poll started (Unix seconds); every probe of the poll carries it.
    probes : tuple of Probe
        The checks and, with check ``poll``, the verdict (exactly one).
    metric_samples : tuple of (series, le, value)
        One scrape of the service's metrics, if any.
    min_gap : float, default=0
        A poll of the same service already stored less than this many seconds away (at
        another time) means another collector recorded this moment: the record is skipped
        as a duplicate. Half the poll interval in the collector.
    """

    service: str
    ts: float
    probes: tuple[Probe, ...]
    metric_samples: tuple[tuple[str, float, float], ...] = ()
    min_gap: float = 0.0

    def __post_init__(self) -> None:
        verdicts = [p for p in self.probes if p.check == "poll"]
        if len(verdicts) != 1:
            raise ValueError(f"a poll record needs exactly one probe with check 'poll'; got {len(verdicts)}")

    @property
    def verdict(self) -> Probe:
        """The probe with check ``poll``: the poll's state and reason."""
        return next(p for p in self.probes if p.check == "poll")

    @property
    def n_rows(self) -> int:
        """Rows the record writes (probes and metric samples; an incident comes on top)."""
        return len(self.probes) + len(self.metric_samples)


@dataclass(frozen=True)
class PollWriteResult:
    """What :meth:`Store.write_polls` did: polls written, skipped as duplicates, incidents recorded."""

    written: int
    duplicates: int
    incidents: int


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _pid_namespace() -> str:
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return ""


def _process_start(pid: int) -> str | None:
    """Start time of ``pid`` in clock ticks after boot (``/proc/<pid>/stat`` field 22), None without /proc."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()[19]


@dataclass(frozen=True)
class ProcessIdentity:
    """Who a lease holder is: its host, the machine it runs on, its pid and when that process started.

    ``node`` is the host name, the kernel's boot id and the pid namespace: two processes with
    the same ``node`` see the same process table, so one can tell whether the other is alive.
    """

    host: str
    node: str
    pid: int
    started: str | None

    @classmethod
    def current(cls) -> ProcessIdentity:
        """The identity of this process."""
        pid = os.getpid()
        cached = _IDENTITY.get(pid)
        if cached is None:
            host = socket.gethostname()
            cached = cls(host=host, node=f"{host}|{_boot_id()}|{_pid_namespace()}", pid=pid,
                         started=_process_start(pid))
            _IDENTITY.clear()
            _IDENTITY[pid] = cached
        return cached


_IDENTITY: dict[int, ProcessIdentity] = {}


def process_alive(pid: int, started: str | None = None) -> bool:
    """Whether process ``pid`` (started at ``started`` clock ticks after boot, when known) is running.

    A zombie (killed, not yet reaped) counts as dead; so does a pid now used by a process that
    started at another time. Without ``/proc``, ``os.kill(pid, 0)`` decides.
    """
    if pid <= 0:
        return False
    if os.path.isdir("/proc/self"):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            return False
        except OSError:
            return True
        if fields[0] in ("Z", "X"):
            return False
        return started is None or fields[19] == started
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class Lease:
    """One row of the ``leases`` table."""

    name: str
    holder: str
    expires_at: float
    host: str | None = None
    node: str | None = None
    pid: int | None = None
    started: str | None = None
    acquired_at: float | None = None

    def holder_is_dead(self, identity: ProcessIdentity) -> bool:
        """True when the holder ran on ``identity``'s machine and its process is gone."""
        if self.node is None or self.pid is None or self.node != identity.node:
            return False
        if self.pid == identity.pid and self.started == identity.started:
            return False  # this process
        return not process_alive(self.pid, self.started)


@dataclass(frozen=True)
class LeaseClaim:
    """What :meth:`Store.claim_lease` did.

    Attributes
    ----------
    granted : bool
        Whether the claimant holds the lease now.
    lease : Lease
        The lease as it stands: the claimant's when granted, else the current holder's.
    taken_from : Lease or None
        The other holder's lease it replaced (dead, or expired), when it was just taken over.
    """

    granted: bool
    lease: Lease
    taken_from: Lease | None = None


STORE_STATES = ("ok", "locked", "full", "read_only", "recreated", "unreachable", "unavailable")
"""States :class:`StoreHealth` can report."""


@dataclass(frozen=True)
class StoreHealth:
    """Whether the store takes writes, and what is waiting in memory until it does.

    Attributes
    ----------
    state : {"ok", "locked", "full", "read_only", "recreated", "unreachable", "unavailable"}
        ``locked``: another connection holds the write lock for longer than the write
        timeout; ``full``: no space left (or the process's file-size limit); ``read_only``:
        the file, its folder or its file system refuses writes; ``recreated``: the SQLite
        file was deleted (or replaced) and created again, so older history is gone;
        ``unreachable``: the PostgreSQL server cannot be connected to (down, refusing, wrong
        host, port, database or credentials: the cause names host and port);
        ``unavailable``: any other error (the cause says which).
    cause : str
        Plain language: what is wrong and the database's own message; empty when ok.
    buffered : int
        Rows (probes and metric samples) kept in memory, to be written when the store is back.
    dropped : int
        Rows given up since the collector started, because the buffer was full.
    since : float or None
        When the store stopped taking writes (Unix seconds), or when it was recreated.
    """

    state: str
    cause: str = ""
    buffered: int = 0
    dropped: int = 0
    since: float | None = None

    @property
    def ok(self) -> bool:
        """True when there is nothing to tell: writable, nothing buffered, nothing dropped."""
        return self.state == "ok" and self.buffered == 0 and self.dropped == 0

    def as_dict(self) -> dict:
        """The fields as a JSON-ready mapping."""
        return {"state": self.state, "cause": self.cause, "buffered": self.buffered, "dropped": self.dropped,
                "since": self.since}


def _parse_histograms(texts: Sequence[str]) -> np.ndarray:
    """Comma-separated histogram counts → an int array of shape (len(texts), n_buckets)."""
    if len(texts) == 0:
        return np.zeros((0, len(LATENCY_BUCKETS_MS)), dtype=int)
    return np.asarray(",".join(texts).split(","), dtype=np.int64).reshape(len(texts), -1)


def latency_histogram(latencies_ms: Sequence[float]) -> list[int]:
    """Count latencies into :data:`LATENCY_BUCKETS_MS` (each bucket holds values ≤ its bound)."""
    values = np.asarray([v for v in latencies_ms if v is not None and np.isfinite(v)], dtype=float)
    edges = np.asarray(LATENCY_BUCKETS_MS)
    index = np.searchsorted(edges, values, side="left")
    return np.bincount(index, minlength=len(edges)).astype(int).tolist()


class Store:
    """Access to the Vantage database.

    Parameters
    ----------
    url : str
        SQLAlchemy URL, e.g. ``sqlite:///var/vantage.db`` or
        ``postgresql+psycopg://user@host/db``. Parent folders of a SQLite file are created.
    busy_timeout : float, default=10
        Seconds a SQLite statement waits for another connection's write lock before it fails
        with "database is locked".
    sealer : Sealer, optional
        Seals each prediction log's personal columns; none by default.
    log : str, optional
        Where the prediction log is kept: ``"store"`` (or None) in this database, else a log URL
        of :mod:`monitoring.log_engines` such as ``duckdb:/abs/var/log`` (the config's default);
        labels and capture statistics stay in this database either way.

    Notes
    -----
    Opening a database brings its schema to the newest migration (:mod:`monitoring.migrations`).
    Opening never fails for an unwritable or unreachable database: the migrations run before
    the first write that succeeds, and writes raise until then (:meth:`diagnose` says why).
    """

    def __init__(self, url: str, *, busy_timeout: float = 10.0, sealer: Sealer | None = None,
                 log: str | None = None):
        self.url = url
        self.sealer = sealer if sealer is not None else Sealer({}, None)
        """Seals the personal columns of each prediction log (``monitoring.sealing``); none by default."""
        self.busy_timeout = float(busy_timeout)
        self.path: Path | None = None
        kwargs: dict = {"future": True}
        if url.startswith("sqlite"):
            path = url.split("///", 1)[1] if "///" in url else ""
            if path and path != ":memory:" and not path.startswith("file:"):
                self.path = Path(path).absolute()
                with contextlib.suppress(OSError):  # a read-only parent is a state, reported on writes
                    self.path.parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": self.busy_timeout}
        else:
            kwargs["pool_pre_ping"] = True  # a connection the server closed (restart) is replaced, not used
            # a server that does not answer fails the connection within the busy timeout, not the OS's minutes
            kwargs["connect_args"] = {"connect_timeout": max(1, round(self.busy_timeout))}
        self.engine: Engine = sa.create_engine(url, **kwargs)
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", self._on_connect)
            if self.path is not None:
                sa.event.listen(self.engine, "checkout", self._on_checkout)
        self.predictions = SqlPredictionLog(self)
        if log is not None and log != STORE_LOG:  # the prediction log in an engine of its own (monitoring.log_engines)
            from monitoring.log_engines import LogEngine
            from monitoring.parquet_log import ParquetPredictionLog

            self.predictions = ParquetPredictionLog(self, LogEngine(log))
        """The prediction log of every service, its labels and the capture statistics (delegated to below)."""
        self._schema_lock = threading.RLock()
        self._schema_file: tuple[int, int] | None = None
        self._schema_ready = False
        self.recreated: tuple[float, str] | None = None
        """``(when, why)`` of the last time the SQLite file was found deleted or replaced, or None."""
        self.migrated: migrations.UpgradeResult | None = None
        """What the migrations did when the schema was last made ready, or None before then."""
        try:
            self.ensure_schema()
        except Exception as exc:  # read-only, full, locked or unreachable: retried by every write
            # (``log`` is the parameter here, not the module's logger)
            logging.getLogger(__name__).warning(
                "store %s not writable yet (%s); the schema is migrated on the first write that works",
                self._where(), exc)

    @classmethod
    def from_config(cls, config, **options) -> Store:
        """The store of a :class:`~monitoring.config.VantageConfig`, sealing each service's ``personal`` columns
        with ``VANTAGE_PERSONAL_KEY`` (``monitoring.sealing``)."""
        return cls(config.store.url, sealer=Sealer.from_config(config), log=config.store.log, **options)

    @property
    def dialect(self) -> str:
        """Name of the database dialect (``sqlite`` or ``postgresql``)."""
        return self.engine.dialect.name

    def dispose(self) -> None:
        """Close every pooled connection (new ones are opened on the next use)."""
        self.engine.dispose()

    def _where(self) -> str:
        return str(self.path) if self.path is not None else self.engine.url.render_as_string(hide_password=True)

    # -- the SQLite file ---------------------------------------------------------------------

    def file_id(self) -> tuple[int, int] | None:
        """``(device, inode)`` of the SQLite file now, None when there is no such file (or the store is not SQLite):
        a reader holding a connection of its own compares it to tell a file deleted or replaced under it."""
        return self._file_id()

    def _file_id(self) -> tuple[int, int] | None:
        """``(device, inode)`` of the SQLite file, None when there is no such file."""
        if self.path is None:
            return None
        try:
            stat = os.stat(self.path)
        except OSError:
            return None
        return stat.st_dev, stat.st_ino

    def _on_connect(self, dbapi_connection, record) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
        finally:
            cursor.close()
        record.info["vantage_file"] = self._file_id()

    def _on_checkout(self, _dbapi_connection, record, _proxy) -> None:
        # A connection opened on a file that has since been deleted or replaced would go on
        # reading and writing the old inode without an error: replace it with a new one.
        if record.info.get("vantage_file") != self._file_id():
            raise sa.exc.DisconnectionError(f"store file {self.path} was deleted or replaced")

    def ensure_schema(self) -> tuple[int, int] | None:
        """Bring the schema to the newest migration if needed, and again if the SQLite file was deleted or replaced.

        Called before every write (the prediction log's too).

        Returns
        -------
        tuple of (int, int) or None
            ``(device, inode)`` of the SQLite file the write goes to; None for another database.
        """
        current = self._file_id()
        if self._schema_ready and (self.path is None or current == self._schema_file):
            return current
        with self._schema_lock:
            current = self._file_id()
            if self._schema_ready and (self.path is None or current == self._schema_file):
                return current
            if self._schema_ready:  # the file went away or is another one now
                self.engine.dispose()  # connections to the old inode
                if current is None:
                    # what is left of the old file: a stale -shm would be shared with the new file
                    for suffix in ("-wal", "-shm", "-journal"):
                        with contextlib.suppress(OSError):
                            os.unlink(f"{self.path}{suffix}")
                    why = (f"the store file {self.path} was deleted while in use; it was created again, "
                           "empty, so the history written before then is gone")
                else:
                    why = f"the store file {self.path} was replaced by another file while in use; writing to that one"
                    if not sa.inspect(self.engine).has_table("probes"):
                        why += ", which had no Vantage tables: they were created, empty"
                self.recreated = (time.time(), why)
            self.migrated = migrations.upgrade(self.engine)
            if self._schema_ready:  # said once the file is there again, as the message says it is
                log.error("%s", self.recreated[1])
            if self.migrated.changed:
                log.info("store %s migrated from revision %s to %s%s", self._where(), self.migrated.before,
                         self.migrated.after, f" (adopted as {self.migrated.adopted})" if self.migrated.adopted else "")
            self.predictions.create_tables()
            self._schema_file = self._file_id()
            self._schema_ready = True
            return self._schema_file

    # -- what an error means ------------------------------------------------------------------

    def diagnose(self, exc: BaseException) -> tuple[str, str]:
        """What a failed write means for whoever runs the store.

        Parameters
        ----------
        exc : exception
            Raised by a write (a SQLAlchemy error wrapping the driver's, or the driver's own).

        Returns
        -------
        state : {"locked", "full", "read_only", "unreachable", "unavailable"}
        cause : str
            Plain language, ending with the database's own message; for PostgreSQL, the
            server's host and port and what failed (refused, no answer, shutting down, no such
            database, credentials refused).
        """
        original = getattr(exc, "orig", None) or exc
        message = str(original).strip().splitlines()[0] if str(original).strip() else type(original).__name__
        code = str(getattr(original, "sqlite_errorname", "") or "")
        sqlstate = str(getattr(original, "sqlstate", "") or getattr(original, "pgcode", "") or "")
        lowered = message.lower()
        where = self._where()
        if code.startswith("SQLITE_BUSY") or "database is locked" in lowered or sqlstate in ("55P03", "40P01"):
            return "locked", (f"the store {where} is locked by another connection for longer than the write "
                              f"timeout ({message})")
        if code == "SQLITE_FULL" or "disk is full" in lowered or sqlstate.startswith("53"):
            return "full", f"{self._space_problem() or f'no space left for the store {where}'} ({message})"
        if code.startswith("SQLITE_READONLY") or "readonly database" in lowered or sqlstate == "25006":
            return "read_only", f"{self._access_problem() or f'the store {where} is read-only'} ({message})"
        unreachable = self._connection_problem(lowered, sqlstate)
        if unreachable:
            return "unreachable", f"{unreachable} ({message})"
        if code.startswith(("SQLITE_CANTOPEN", "SQLITE_IOERR", "SQLITE_PERM")) or "unable to open" in lowered \
                or "disk i/o error" in lowered:
            access = self._access_problem()
            if access:
                return "read_only", f"{access} ({message})"
            space = self._space_problem()
            if space:
                return "full", f"{space} ({message})"
        return "unavailable", f"the store {where} refused the write: {type(original).__name__}: {message}"

    def _connection_problem(self, lowered: str, sqlstate: str) -> str | None:
        """Why this process cannot talk to the PostgreSQL server, in words naming its host and port, or None."""
        if self.dialect != "postgresql":
            return None
        url = self.engine.url
        server = f"the PostgreSQL server at {url.host or 'localhost'}:{url.port or 5432}"
        if sqlstate.startswith("28") or "password authentication failed" in lowered:
            return (f"{server} refused the credentials of user {url.username!r} (wrong password, or not allowed by "
                    "its pg_hba.conf)")
        if sqlstate == "3D000" or ("database" in lowered and "does not exist" in lowered):
            return f"{server} has no database {url.database!r} (create it, or fix [store] url)"
        if sqlstate in ("57P01", "57P02", "57P03") or "shutting down" in lowered or "starting up" in lowered \
                or "terminating connection" in lowered:
            return f"{server} is shutting down, restarting or starting up"
        if "refused" in lowered:
            return (f"{server} refuses connections: is it running, and listening on that address and port? "
                    "The store is unreachable")
        if "timeout expired" in lowered or "timed out" in lowered:
            return f"{server} did not answer within {round(self.busy_timeout)} s: the store is unreachable"
        if "resolve host" in lowered or "translate host name" in lowered or "name or service not known" in lowered:
            return f"the host name of {server} cannot be resolved"
        if sqlstate.startswith("08") or "server closed the connection" in lowered or "connection failed" in lowered \
                or "could not connect" in lowered or "consuming input failed" in lowered \
                or "the connection is closed" in lowered or "connection to server" in lowered:
            return f"{server} cannot be connected to, or dropped the connection"
        return None

    def _access_problem(self) -> str | None:
        """Why this process cannot write the SQLite file or its folder, or None."""
        if self.path is None:
            return None
        folder = self.path.parent
        with contextlib.suppress(OSError):
            if os.statvfs(folder).f_flag & os.ST_RDONLY:
                return f"the file system holding {folder} is mounted read-only"
        if self.path.exists():
            try:
                os.close(os.open(self.path, os.O_WRONLY))
            except OSError as exc:
                return f"the store file {self.path} cannot be opened for writing: {exc.strerror}"
        if not os.access(folder, os.W_OK):
            return (f"the folder {folder} is not writable by this process (SQLite needs to create its -wal and "
                    "-shm files there)")
        return None

    def _space_problem(self) -> str | None:
        """Why writes to the SQLite file run out of room, or None when nothing shows it."""
        if self.path is None:
            return None
        if resource is not None:
            soft, _hard = resource.getrlimit(resource.RLIMIT_FSIZE)
            if soft != resource.RLIM_INFINITY:
                sizes = [os.stat(f).st_size for f in (self.path, Path(f"{self.path}-wal")) if f.exists()]
                if soft == 0 or max(sizes, default=0) + 65536 >= soft:
                    return f"this process's file-size limit (RLIMIT_FSIZE, {soft} bytes) is reached"
        with contextlib.suppress(OSError):
            stat = os.statvfs(self.path.parent)
            free = stat.f_bavail * stat.f_frsize
            if free < 8 * 1024 * 1024:
                return f"the disk holding {self.path.parent} is full ({free // 1024} KiB free)"
        return None

    # -- writing -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _write_transaction(self, timeout: float | None = None, *, serialize: bool = False) -> Iterator[sa.Connection]:
        """A transaction that holds the write lock from its first statement.

        SQLite: ``BEGIN IMMEDIATE``, so a read-then-write inside it cannot race another
        writer; ``timeout`` (seconds) replaces the busy timeout for this transaction.
        PostgreSQL: ``lock_timeout``, and with ``serialize`` an advisory lock that orders the
        collectors' poll writes.
        """
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                raw = conn.connection.driver_connection
                if timeout is not None:
                    raw.execute(f"PRAGMA busy_timeout={max(int(timeout * 1000), 1)}")
                try:
                    with conn.begin():
                        conn.exec_driver_sql("BEGIN IMMEDIATE")
                        yield conn
                finally:
                    if timeout is not None:
                        with contextlib.suppress(Exception):
                            raw.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
            else:
                with conn.begin():
                    if timeout is not None:
                        conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{max(int(timeout * 1000), 1)}ms'")
                    if serialize:
                        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": 0x7661_6E74})
                    yield conn

    def _insert_ignoring_duplicates(self, table: sa.Table, rows: list[dict]) -> None:
        if not rows:
            return
        self.ensure_schema()
        insert_ignoring_duplicates(self.engine, table, rows)

    def write_probes(self, rows: Iterable[Probe]) -> None:
        """Write probes; a probe already stored (same service, check and ts) is skipped."""
        self._insert_ignoring_duplicates(probes, [p.as_row() for p in rows])

    def write_incident(self, *, ts: float, service: str, state: str, previous_state: str | None,
                       reason: str | None) -> None:
        """Record that ``service`` changed to ``state`` at ``ts``."""
        self._insert_ignoring_duplicates(incidents, [{
            "ts": ts, "service": service, "state": state, "previous_state": previous_state,
            "reason": reason,
        }])

    def write_metric_samples(self, service: str, ts: float,
                             samples: Sequence[tuple[str, float, float]]) -> None:
        """Write one scrape: ``(series, le, value)`` triples (``le`` is -1 for non-buckets)."""
        self._insert_ignoring_duplicates(metric_samples, [
            {"ts": ts, "service": service, "series": series, "le": le, "value": value}
            for series, le, value in samples
        ])

    def write_polls(self, records: Sequence[PollRecord], *, timeout: float | None = None) -> PollWriteResult:
        """Write whole polls in one transaction: probes, metric samples and the incidents they make.

        Each record is written unless it is a duplicate: the same poll already stored (a
        retried write whose commit had gone through) or, with ``min_gap``, a poll of the same
        service less than ``min_gap`` seconds away (another collector recorded that moment).
        An incident is recorded when the poll's state differs from the state of the newest
        poll stored before it (or, when raw polls have been downsampled, from the newest
        incident), so a take-over by another collector or a write delayed by an outage never
        makes one up. When the SQLite file is deleted or replaced while the transaction runs,
        the records are written again into the new file.

        Parameters
        ----------
        records : sequence of PollRecord
            In time order per service.
        timeout : float, optional
            Seconds to wait for the write lock (the store's busy timeout when omitted).

        Returns
        -------
        PollWriteResult
        """
        if not records:
            return PollWriteResult(0, 0, 0)
        result = PollWriteResult(0, 0, 0)
        for _attempt in range(3):
            target = self.ensure_schema()
            with self._write_transaction(timeout, serialize=True) as conn:
                result = self._write_polls(conn, records)
            if self._file_id() == target:
                return result
            log.warning("store file %s was deleted or replaced during a write; writing %d polls again",
                        self.path, len(records))
        return result

    def _write_polls(self, conn: sa.Connection, records: Sequence[PollRecord]) -> PollWriteResult:
        written = duplicates = changes = 0
        for record in records:
            verdict = record.verdict
            if record.min_gap > 0:
                near = conn.execute(
                    sa.select(probes.c.ts).where(
                        probes.c.service == record.service, probes.c.check == "poll",
                        probes.c.ts > record.ts - record.min_gap, probes.c.ts < record.ts + record.min_gap,
                        probes.c.ts != record.ts).limit(1)
                ).first()
                if near is not None:
                    duplicates += 1
                    continue
            previous = self._state_before(conn, record.service, record.ts)
            # RETURNING says whether the row went in (psycopg's rowcount is -1 with it, so not that)
            inserted = conn.execute(dialect_insert(self.dialect, probes).values(**verdict.as_row())
                                    .on_conflict_do_nothing().returning(probes.c.id)).first()
            if inserted is None:  # already stored by an earlier attempt of this write
                duplicates += 1
                continue
            others = [p.as_row() for p in record.probes if p.check != "poll"]
            if others:
                conn.execute(dialect_insert(self.dialect, probes).on_conflict_do_nothing(), others)
            if record.metric_samples:
                conn.execute(dialect_insert(self.dialect, metric_samples).on_conflict_do_nothing(), [
                    {"ts": record.ts, "service": record.service, "series": series, "le": le, "value": value}
                    for series, le, value in record.metric_samples
                ])
            if verdict.state != previous:
                conn.execute(dialect_insert(self.dialect, incidents).values(
                    ts=record.ts, service=record.service, state=verdict.state, previous_state=previous,
                    reason=verdict.error).on_conflict_do_nothing())
                changes += 1
            written += 1
        return PollWriteResult(written, duplicates, changes)

    @staticmethod
    def _state_before(conn: sa.Connection, service: str, ts: float) -> str | None:
        """State of the newest poll of ``service`` stored before ``ts`` (else of the newest incident)."""
        state = conn.execute(
            sa.select(probes.c.state).where(probes.c.service == service, probes.c.check == "poll",
                                            probes.c.ts < ts).order_by(probes.c.ts.desc()).limit(1)
        ).scalar()
        if state is None:
            state = conn.execute(
                sa.select(incidents.c.state).where(incidents.c.service == service, incidents.c.ts < ts)
                .order_by(incidents.c.ts.desc()).limit(1)
            ).scalar()
        return state

    # -- leases ------------------------------------------------------------------------------

    @staticmethod
    def _lease(row) -> Lease:
        return Lease(name=row.name, holder=row.holder, expires_at=float(row.expires_at), host=row.host,
                     node=row.node, pid=row.pid, started=row.started, acquired_at=row.acquired_at)

    def read_lease(self, name: str) -> Lease | None:
        """The lease row ``name`` as stored (expired or not), or None."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(leases).where(leases.c.name == name)).first()
        return None if row is None else self._lease(row)

    def claim_lease(self, name: str, holder: str, ttl_seconds: float, *, now: float | None = None,
                    identity: ProcessIdentity | None = None, timeout: float | None = None) -> LeaseClaim:
        """Take or renew the lease ``name`` for ``holder``; say whether it did and who holds it now.

        ``holder`` gets it when nobody has it, when it is already theirs, when it has expired,
        or at once when its holder ran on this machine and its process is gone.

        Parameters
        ----------
        name, holder : str
        ttl_seconds : float
            The lease expires this long after ``now`` unless renewed.
        now : float, optional
            Unix seconds; the system clock by default.
        identity : ProcessIdentity, optional
            Who ``holder`` is (this process by default), recorded with the lease.
        timeout : float, optional
            Seconds to wait for the write lock.

        Returns
        -------
        LeaseClaim
        """
        identity = identity or ProcessIdentity.current()
        now = time.time() if now is None else now
        mine = {"holder": holder, "expires_at": now + ttl_seconds, "host": identity.host, "node": identity.node,
                "pid": identity.pid, "started": identity.started}
        self.ensure_schema()
        replaced = None
        with self._write_transaction(timeout) as conn:
            row = conn.execute(sa.select(leases).where(leases.c.name == name)).first()
            if row is None:
                conn.execute(dialect_insert(self.dialect, leases).values(name=name, acquired_at=now, **mine)
                             .on_conflict_do_nothing())
            else:
                current = self._lease(row)
                if current.holder == holder or current.expires_at < now or current.holder_is_dead(identity):
                    acquired = current.acquired_at if current.holder == holder else now
                    replaced = None if current.holder == holder else current
                    conn.execute(leases.update().where(leases.c.name == name, leases.c.holder == current.holder,
                                                       leases.c.expires_at == current.expires_at)
                                 .values(acquired_at=acquired, **mine))
            row = conn.execute(sa.select(leases).where(leases.c.name == name)).first()
        lease = self._lease(row)
        granted = lease.holder == holder
        return LeaseClaim(granted, lease, replaced if granted else None)

    def acquire_lease(self, name: str, holder: str, ttl_seconds: float, *, now: float | None = None,
                      timeout: float | None = None) -> bool:
        """Take or renew the lease ``name`` for ``holder``; False while another live holder has it."""
        return self.claim_lease(name, holder, ttl_seconds, now=now, timeout=timeout).granted

    def release_lease(self, name: str, holder: str, *, timeout: float | None = None) -> None:
        """Give up ``name`` if ``holder`` has it."""
        self.ensure_schema()
        with self._write_transaction(timeout) as conn:
            conn.execute(leases.delete().where(leases.c.name == name).where(leases.c.holder == holder))

    def lease_holder(self, name: str, *, now: float | None = None) -> str | None:
        """Return who holds the lease ``name`` now, or None."""
        now = time.time() if now is None else now
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(leases.c.holder).where(leases.c.name == name).where(leases.c.expires_at >= now)
            ).scalar()

    # -- reading probes ----------------------------------------------------------------------

    def _read_time_range(self, table: sa.Table, time_column: str, columns: Sequence[str], service: str, *,
                         since: float, until: float | None, checks: Sequence[str] | None = None) -> pd.DataFrame:
        """``columns`` of the rows of ``service`` whose ``time_column`` is in ``[since, until)``, by time.

        The one range read of the raw and downsampled tables; ``checks`` (probe tables only) keeps
        only those checks.
        """
        ts = table.c[time_column]
        query = sa.select(*(table.c[c] for c in columns)).where(table.c.service == service, ts >= since)
        if until is not None:
            query = query.where(ts < until)
        if checks:
            query = query.where(table.c.check.in_(list(checks)))
        with self.engine.connect() as conn:
            return read_frame(conn.execute(query.order_by(ts)), list(columns))

    def read_probes(self, service: str, *, since: float, until: float | None = None,
                    checks: Sequence[str] | None = None, columns: Sequence[str] = PROBE_COLUMNS) -> pd.DataFrame:
        """Return raw probes of ``service`` in ``[since, until)`` ordered by time.

        Parameters
        ----------
        service : str
        since, until : float
            Time range (Unix seconds); ``until`` open when None.
        checks : sequence of str, optional
            Only these checks.
        columns : sequence of str, default=PROBE_COLUMNS
            Columns to read, among ``ts, check, ok, state, status, latency_ms, error``;
            reading fewer is faster over long ranges.
        """
        unknown = sorted(set(columns) - set(PROBE_COLUMNS))
        if unknown:
            raise ValueError(f"columns must be among {PROBE_COLUMNS}; got {unknown}")
        frame = self._read_time_range(probes, "ts", columns, service, since=since, until=until, checks=checks)
        if "ok" in frame:
            frame["ok"] = frame["ok"].astype(bool)
        return frame

    def last_polls(self, service: str, limit: int = 60) -> pd.DataFrame:
        """Return the latest ``limit`` poll verdicts (``ts, state, error``), oldest first."""
        query = (
            sa.select(probes.c.ts, probes.c.state, probes.c.error)
            .where(probes.c.service == service, probes.c.check == "poll")
            .order_by(probes.c.ts.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            frame = read_frame(conn.execute(query), ["ts", "state", "error"])
        return frame.iloc[::-1].reset_index(drop=True)

    def read_rollups(self, service: str, *, since: float, until: float | None = None,
                     checks: Sequence[str] | None = None) -> pd.DataFrame:
        """Return downsampled probe buckets of ``service`` starting in ``[since, until)``.

        Columns: ``bucket_ts, check, n, n_ok, n_degraded, latency_sum_ms, latency_max_ms`` and
        ``latency_hist`` (a list of counts per :data:`LATENCY_BUCKETS_MS`).
        """
        frame = self._read_time_range(
            probe_rollups, "bucket_ts",
            ["bucket_ts", "check", "n", "n_ok", "n_degraded", "latency_sum_ms", "latency_max_ms", "latency_hist"],
            service, since=since, until=until, checks=checks)
        frame["latency_hist"] = list(_parse_histograms(frame["latency_hist"]))
        return frame

    def _time_bucket(self, column: sa.ColumnElement, width: float) -> sa.ColumnElement:
        """SQL expression for the start of the ``width``-second bucket holding ``column``."""
        if self.dialect == "postgresql":
            return sa.func.floor(column / width) * width
        return sa.cast(column / width, sa.Integer) * width  # SQLite's CAST truncates; times are positive

    def poll_states_over_time(self, service: str, *, since: float, bucket_seconds: float,
                              until: float | None = None) -> pd.DataFrame:
        """Poll verdicts per state per time bucket, counted in the database (raw and downsampled).

        Returns
        -------
        DataFrame
            ``bucket_ts, up, degraded, down`` (counts), one row per bucket with polls.
        """
        raw_bucket = self._time_bucket(probes.c.ts, bucket_seconds).label("bucket_ts")
        raw = (sa.select(raw_bucket, probes.c.state, sa.func.count())
               .where(probes.c.service == service, probes.c.check == "poll", probes.c.ts >= since)
               .group_by(raw_bucket, probes.c.state))
        t = probe_rollups
        folded_bucket = self._time_bucket(t.c.bucket_ts, bucket_seconds).label("bucket_ts")
        folded = (sa.select(folded_bucket, sa.func.sum(t.c.n), sa.func.sum(t.c.n_ok), sa.func.sum(t.c.n_degraded))
                  .where(t.c.service == service, t.c.check == "poll", t.c.bucket_ts >= since)
                  .group_by(folded_bucket))
        if until is not None:
            raw = raw.where(probes.c.ts < until)
            folded = folded.where(t.c.bucket_ts < until)
        counts: dict[float, dict[str, int]] = {}
        with self.engine.connect() as conn:
            for bucket, state, count in conn.execute(raw):
                if state in ("up", "degraded", "down"):
                    counts.setdefault(float(bucket), {"up": 0, "degraded": 0, "down": 0})[state] += int(count)
            for bucket, n, n_ok, n_degraded in conn.execute(folded):
                row = counts.setdefault(float(bucket), {"up": 0, "degraded": 0, "down": 0})
                row["up"] += int(n_ok) - int(n_degraded)
                row["degraded"] += int(n_degraded)
                row["down"] += int(n) - int(n_ok)
        frame = pd.DataFrame([{"bucket_ts": b, **c} for b, c in sorted(counts.items())],
                             columns=["bucket_ts", "up", "degraded", "down"])
        return frame.astype({"up": int, "degraded": int, "down": int})

    def poll_state_counts(self, service: str, *, since: float, until: float | None = None) -> dict[str, int]:
        """Count poll verdicts by state in ``[since, until)``, raw and downsampled together."""
        # Downsampling folds whole buckets and deletes their raw rows in one transaction,
        # so raw rows and rollups never cover the same time and can simply be added.
        counts = {"up": 0, "degraded": 0, "down": 0}
        with self.engine.connect() as conn:
            query = (
                sa.select(probes.c.state, sa.func.count())
                .where(probes.c.service == service, probes.c.check == "poll",
                       probes.c.ts >= since)
                .group_by(probes.c.state)
            )
            if until is not None:
                query = query.where(probes.c.ts < until)
            for state, count in conn.execute(query):
                if state in counts:
                    counts[state] += int(count)
            t = probe_rollups
            query = sa.select(
                sa.func.coalesce(sa.func.sum(t.c.n), 0),
                sa.func.coalesce(sa.func.sum(t.c.n_ok), 0),
                sa.func.coalesce(sa.func.sum(t.c.n_degraded), 0),
            ).where(t.c.service == service, t.c.check == "poll", t.c.bucket_ts >= since)
            if until is not None:
                query = query.where(t.c.bucket_ts < until)
            n, n_ok, n_degraded = conn.execute(query).one()
        counts["down"] += int(n) - int(n_ok)
        counts["degraded"] += int(n_degraded)
        counts["up"] += int(n_ok) - int(n_degraded)
        return counts

    def first_poll_ts(self, service: str) -> float | None:
        """Time of the oldest poll kept for ``service`` (raw or downsampled), or None."""
        with self.engine.connect() as conn:
            raw = conn.execute(sa.select(sa.func.min(probes.c.ts)).where(
                probes.c.service == service, probes.c.check == "poll")).scalar()
            folded = conn.execute(sa.select(sa.func.min(probe_rollups.c.bucket_ts)).where(
                probe_rollups.c.service == service, probe_rollups.c.check == "poll")).scalar()
        known = [t for t in (raw, folded) if t is not None]
        return float(min(known)) if known else None

    def read_incidents(self, service: str, *, since: float = 0.0, limit: int = 200) -> pd.DataFrame:
        """Return state changes of ``service`` since ``since``, newest first."""
        query = (
            sa.select(incidents.c.ts, incidents.c.state, incidents.c.previous_state, incidents.c.reason)
            .where(incidents.c.service == service, incidents.c.ts >= since)
            .order_by(incidents.c.ts.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return read_frame(conn.execute(query), ["ts", "state", "previous_state", "reason"])

    def last_state(self, service: str) -> str | None:
        """Return the state recorded by the newest incident row of ``service``."""
        query = (sa.select(incidents.c.state).where(incidents.c.service == service)
                 .order_by(incidents.c.ts.desc()).limit(1))
        with self.engine.connect() as conn:
            return conn.execute(query).scalar()

    # -- reading metrics ---------------------------------------------------------------------

    def read_metric_samples(self, service: str, *, since: float, until: float | None = None) -> pd.DataFrame:
        """Return raw scraped values (``ts, series, le, value``) ordered by time."""
        return self._read_time_range(metric_samples, "ts", ["ts", "series", "le", "value"], service, since=since,
                                     until=until)

    def read_metric_rollups(self, service: str, *, since: float, until: float | None = None) -> pd.DataFrame:
        """Return downsampled metric increases (``bucket_ts, series, le, increase``)."""
        return self._read_time_range(metric_rollups, "bucket_ts", ["bucket_ts", "series", "le", "increase"], service,
                                     since=since, until=until)

    def services_with_data(self) -> list[str]:
        """Names of services that have probes stored."""
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(sa.select(probes.c.service).distinct())]

    # -- retention ---------------------------------------------------------------------------

    def downsample(self, *, raw_retention_hours: float, retention_days: float, rollup_minutes: int,
                   now: float | None = None) -> int:
        """Fold raw probes and metric samples older than the raw retention into buckets.

        Whole buckets only: a bucket is folded once every raw row in it is older than
        ``now - raw_retention_hours``. Rollups older than ``retention_days`` are deleted.

        Returns
        -------
        int
            Number of raw rows folded.
        """
        now = time.time() if now is None else now
        width = rollup_minutes * 60.0
        cutoff = np.floor((now - raw_retention_hours * 3600.0) / width) * width
        folded = 0
        self.ensure_schema()
        with self.engine.begin() as conn:
            raw = read_frame(
                conn.execute(sa.select(probes.c.service, probes.c.check, probes.c.ts, probes.c.ok,
                                       probes.c.state, probes.c.latency_ms).where(probes.c.ts < cutoff)),
                ["service", "check", "ts", "ok", "state", "latency_ms"],
            )
            if not raw.empty:
                raw["bucket_ts"] = np.floor(raw["ts"] / width) * width
                rows = []
                for (service, check, bucket), group in raw.groupby(["service", "check", "bucket_ts"]):
                    latencies = group["latency_ms"].dropna()
                    rows.append({
                        "service": service, "check": check, "bucket_ts": float(bucket),
                        "n": len(group), "n_ok": int(group["ok"].astype(bool).sum()),
                        "n_degraded": int((group["state"] == "degraded").sum()),
                        "latency_sum_ms": float(latencies.sum()),
                        "latency_max_ms": float(latencies.max()) if len(latencies) else None,
                        "latency_hist": ",".join(map(str, latency_histogram(latencies.tolist()))),
                    })
                self._merge_probe_rollups(conn, rows)
                conn.execute(probes.delete().where(probes.c.ts < cutoff))
                folded += len(raw)
            folded += self._downsample_metrics(conn, cutoff, width)
            oldest = now - retention_days * 86400.0
            conn.execute(probe_rollups.delete().where(probe_rollups.c.bucket_ts < oldest))
            conn.execute(metric_rollups.delete().where(metric_rollups.c.bucket_ts < oldest))
            conn.execute(incidents.delete().where(incidents.c.ts < oldest))
        return folded

    def _merge_probe_rollups(self, conn, rows: list[dict]) -> None:
        """Insert rollup rows, adding to a bucket that already exists (a late probe)."""
        t = probe_rollups
        for row in rows:
            existing = conn.execute(
                sa.select(t.c.n, t.c.n_ok, t.c.n_degraded, t.c.latency_sum_ms, t.c.latency_max_ms,
                          t.c.latency_hist).where(t.c.service == row["service"], t.c.check == row["check"],
                                                  t.c.bucket_ts == row["bucket_ts"])
            ).first()
            if existing is None:
                conn.execute(t.insert().values(**row))
                continue
            hist = [a + int(b) for a, b in zip(map(int, row["latency_hist"].split(",")),
                                                existing.latency_hist.split(","), strict=True)]
            maxima = [m for m in (row["latency_max_ms"], existing.latency_max_ms) if m is not None]
            conn.execute(
                t.update().where(t.c.service == row["service"], t.c.check == row["check"],
                                 t.c.bucket_ts == row["bucket_ts"]).values(
                    n=existing.n + row["n"], n_ok=existing.n_ok + row["n_ok"],
                    n_degraded=existing.n_degraded + row["n_degraded"],
                    latency_sum_ms=existing.latency_sum_ms + row["latency_sum_ms"],
                    latency_max_ms=max(maxima) if maxima else None,
                    latency_hist=",".join(map(str, hist)),
                )
            )

    def _downsample_metrics(self, conn, cutoff: float, width: float) -> int:
        t = metric_samples
        raw = read_frame(
            conn.execute(sa.select(t.c.service, t.c.series, t.c.le, t.c.ts, t.c.value)
                         .where(t.c.ts < cutoff).order_by(t.c.ts)),
            ["service", "series", "le", "ts", "value"],
        )
        if raw.empty:
            return 0
        rows = []
        for (service, series, le), group in raw.groupby(["service", "series", "le"]):
            # Keep the newest sample of each series raw: the first increase after the cutoff
            # needs it as its starting point.
            increases = counter_increases(group["ts"].to_numpy(), group["value"].to_numpy())
            buckets = np.floor(group["ts"].to_numpy()[1:] / width) * width
            for bucket, total in pd.Series(increases).groupby(buckets).sum().items():
                rows.append({"service": service, "series": series, "le": float(le),
                             "bucket_ts": float(bucket), "increase": float(total)})
        for row in rows:
            statement = dialect_insert(self.dialect, metric_rollups).values(**row)
            conn.execute(statement.on_conflict_do_update(
                index_elements=["service", "series", "le", "bucket_ts"],
                set_={"increase": metric_rollups.c.increase + statement.excluded.increase},
            ))
        newest = raw.groupby(["service", "series", "le"])["ts"].transform("max")
        keep = raw[raw["ts"] == newest]
        conn.execute(t.delete().where(t.c.ts < cutoff))
        if not keep.empty:
            conn.execute(t.insert(), keep[["service", "series", "le", "ts", "value"]].to_dict("records"))
        return len(raw) - len(keep)

    # -- the prediction log, its labels and capture statistics (monitoring.prediction_log_sql) ---------

    def prediction_table(self, service: str, features: Mapping[str, str] | None = None) -> sa.Table:
        """The prediction log table of ``service``: :meth:`SqlPredictionLog.prediction_table`."""
        return self.predictions.prediction_table(service, features)

    def prediction_features(self, service: str) -> dict[str, str]:
        """Feature columns of the prediction log of ``service``: :meth:`SqlPredictionLog.prediction_features`."""
        return self.predictions.prediction_features(service)

    def read_prediction_log(self, service: str, *, after_seq: int = 0, since: float | None = None,
                            until: float | None = None, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Logged predictions of ``service`` in insertion order: :meth:`SqlPredictionLog.read_prediction_log`."""
        return self.predictions.read_prediction_log(service, after_seq=after_seq, since=since, until=until,
                                                    columns=columns)

    def find_predictions(self, service: str, *, prediction_id: str | None = None, since: float | None = None,
                         until: float | None = None, filters: Mapping[str, tuple[str, object]] | None = None,
                         newest_first: bool = True, limit: int = 50) -> pd.DataFrame:
        """A few logged predictions by id, time and feature conditions: :meth:`SqlPredictionLog.find_predictions`."""
        return self.predictions.find_predictions(service, prediction_id=prediction_id, since=since, until=until,
                                                 filters=filters, newest_first=newest_first, limit=limit)

    def log_predictions(self, service: str, frame: pd.DataFrame) -> int:
        """Append rows to the prediction log of ``service``: :meth:`SqlPredictionLog.log_predictions`."""
        return self.predictions.log_predictions(service, frame)

    def count_predictions(self, service: str, *, since: float = 0.0) -> int:
        """Number of logged predictions of ``service`` since ``since``: :meth:`SqlPredictionLog.count_predictions`."""
        return self.predictions.count_predictions(service, since=since)

    def newest_prediction_ts(self, service: str) -> float | None:
        """Time of the newest logged prediction of ``service``: :meth:`SqlPredictionLog.newest_prediction_ts`."""
        return self.predictions.newest_prediction_ts(service)

    def write_capture_stats(self, source: str, service: str, stats: Mapping, *, ts: float) -> None:
        """Replace what ``source`` counted for ``service``: :meth:`SqlPredictionLog.write_capture_stats`."""
        self.predictions.write_capture_stats(source, service, stats, ts=ts)

    def read_capture_stats(self, service: str) -> list[dict]:
        """What every capture process counted for ``service``: :meth:`SqlPredictionLog.read_capture_stats`."""
        return self.predictions.read_capture_stats(service)

    def write_labels(self, service: str, frame: pd.DataFrame) -> int:
        """Append ground-truth labels (``prediction_id, ts, label``): :meth:`SqlPredictionLog.write_labels`."""
        return self.predictions.write_labels(service, frame)


# -- by hand: python -m monitoring.store upgrade ----------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m monitoring.store {upgrade,current} [--url URL | --config FILE]``: migrate a store by hand.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments (``sys.argv[1:]`` by default).

    Returns
    -------
    int
        The exit status: 0 when done, 1 when the store cannot be reached or migrated.
    """
    parser = argparse.ArgumentParser(prog="python -m monitoring.store",
                                     description="Bring the Vantage store to the newest schema revision "
                                                 "(the dashboard and the collector also do it when they start).")
    parser.add_argument("action", choices=("upgrade", "current"),
                        help="upgrade: run the migrations the store lacks; current: print its revision")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--url", help="SQLAlchemy URL of the store, e.g. postgresql+psycopg://user@host/vantage")
    where.add_argument("--config", help="a Vantage TOML file whose [store] url is used "
                                        "(default: $VANTAGE_CONFIG, else the default store)")
    args = parser.parse_args(argv)
    from monitoring.config import CONFIG_ENV_VAR, DEFAULT_STORE_URL, load_config

    config_path = args.config or os.environ.get(CONFIG_ENV_VAR)
    url = args.url or (load_config(config_path).store.url if config_path else DEFAULT_STORE_URL)
    shown = sa.engine.make_url(url).render_as_string(hide_password=True)
    if args.action == "current":
        engine = sa.create_engine(url)
        try:
            with engine.connect() as conn:
                revision = migrations.current_revision(conn) or migrations.legacy_revision(conn)
        except sa.exc.SQLAlchemyError as exc:
            print(f"{shown}: {Store(url).diagnose(exc)[1]}", file=sys.stderr)
            return 1
        finally:
            engine.dispose()
        print(f"{shown}: revision {revision or 'none (empty)'}; newest {migrations.head()}")
        return 0
    logging.basicConfig(level=logging.ERROR)
    store = Store(url)  # opening migrates; an error is kept for the message below
    try:
        store.ensure_schema()
    except sa.exc.SQLAlchemyError as exc:
        state, cause = store.diagnose(exc)
        print(f"{shown}: not migrated, the store is {state.replace('_', ' ')}: {cause}", file=sys.stderr)
        return 1
    finally:
        store.dispose()
    result = store.migrated
    if not result.changed:
        print(f"{shown}: at revision {result.after} already")
    else:
        adopted = f" (a store from before the migrations, recognised as {result.adopted})" if result.adopted else ""
        print(f"{shown}: migrated from {result.before or 'nothing'} to {result.after}{adopted}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
