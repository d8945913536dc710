"""The SQL store's prediction log read where it lives: PostgreSQL or SQLite answers the pages' questions itself.

With ``[store] log = "store"``, each service's predictions are the table ``predictions__<service>``
of the store and its labels rows of ``labels`` (:mod:`monitoring.prediction_log_sql`).
:class:`StoreLogEngine` gives those tables to the same Ibis queries that count a Parquet log
(:mod:`monitoring.log_queries`, :mod:`monitoring.label_queries`, :mod:`monitoring.performance_sums`,
:mod:`monitoring.segment_queries`), compiled to PostgreSQL's or SQLite's SQL: only counts and
bounded samples come back. The one function those queries need that PostgreSQL lacks,
``hash(text)``, is created by the store's migrations (``0003``); what SQLite lacks is given to its
connection (:mod:`monitoring.sqlite_engine`). A label join kept for the pages is a table of the
store's (unlogged on PostgreSQL; ``kept__<service's digest>__<time>_<id>``), recorded in the
``kept_labels`` table so that the collector's upkeep and every dashboard process find the same one.

:class:`StoreLog` is what :class:`StoreLogMirror` reads through: the engine, the feature kinds, the
opening of personal columns and the index-backed row lookups.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import math
import operator
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
import sqlalchemy as sa

from monitoring import sqlite_engine
from monitoring.drift import (
    ReferenceProfile,
    WindowTallies,
    tallies_from_arrays,
    tallies_to_arrays,
)
from monitoring.engine_mirror import KEPT_FILES, EngineMirror, ProductionDataError, no_tallies
from monitoring.labels import LabelFileMirror, StoreLabelMirror
from monitoring.log_engines import LogEngineError, LogTable
from monitoring.log_queries import (
    LogSummary,
    LogTraffic,
    log_traffic,
    summarize,
    tally_windows,
    traffic_frame,
)
from monitoring.partitions import DAY_SECONDS
from monitoring.performance_sums import KeptLabels, kept_from_record, kept_record, stays_fresh
from monitoring.prediction_log_sql import SqlPredictionLog
from monitoring.production import (
    CACHED_WINDOWS,
    KeptTallies,
    ProductionData,
    profile_key,
)
from monitoring.staged_labels import stage_label_table
from monitoring.store_schema import (
    dialect_insert,
    kept_labels,
    kept_tallies,
    prediction_table_name,
    service_table_prefix,
    typed_log_columns,
)
from monitoring.windows import parse_window

KEPT_TABLE_PREFIX = "kept__"
"""Tables of kept label joins start with it (the migrations leave them alone, as the prediction tables)."""


def kept_table_prefix(service: str) -> str:
    """The name every kept join of ``service`` starts with: a digest of its name keeps it within PostgreSQL's 63
    characters whatever the service is called."""
    return service_table_prefix(KEPT_TABLE_PREFIX, service)


_SQLITE_AWAY = ("database is locked", "unable to open database file", "disk I/O error", "database disk image")
"""What SQLite says when its file cannot be read now (a query that was wrong says something else)."""


def connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` says the server could not be reached or went away, or a SQLite file cannot be read now
    (not a query that was wrong)."""
    import sqlite3

    import psycopg

    cause = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the driver's error
    if isinstance(cause, sqlite3.Error):
        return any(words in str(cause) for words in _SQLITE_AWAY)
    return isinstance(exc, psycopg.OperationalError | sa.exc.OperationalError | LogEngineError)


class StoreLogEngine:
    """The store's database (PostgreSQL or SQLite) as an Ibis backend, with one service's tables as :class:`LogTable` s.

    Parameters
    ----------
    store : Store
        A store on PostgreSQL or SQLite; its URL says where (the password is never shown in a message).

    Notes
    -----
    One connection, opened on first use and used by one thread at a time (:attr:`lock`). A
    connection the server closed (a restart) is replaced on the next use. On SQLite, the
    backend of :mod:`monitoring.sqlite_engine`.
    """

    def __init__(self, store):
        self.store = store
        url = sa.engine.make_url(store.url)
        self.scheme = "sqlite" if store.dialect == "sqlite" else "postgres"
        """The Ibis backend's name: ``postgres`` or ``sqlite``."""
        self.words = "SQLite" if self.scheme == "sqlite" else "PostgreSQL"
        """The database's name in the pages' words."""
        if self.scheme == "sqlite":
            self.location = f"the store's SQLite file {url.database}"
        else:
            where = f"{url.host or 'localhost'}:{url.port or 5432}"
            self.location = f"the store's PostgreSQL database {url.database!r} at {where}"
        self.lock = threading.RLock()
        """Held around every use of the backend."""
        self.backend = None
        self._file: tuple[int, int] | None = None
        """The SQLite file the backend was opened on (``Store.file_id``)."""

    def connect(self):
        """The Ibis backend, connected on first use and again after the server closed the connection.

        Raises
        ------
        LogEngineError
            The server cannot be reached; the message names its host and port.
        """
        with self.lock:
            if self.scheme == "sqlite":
                return self._connect_sqlite()
            con = getattr(self.backend, "con", None)
            if con is not None and (con.closed or con.broken):
                self.backend = None
            if self.backend is None:
                url = sa.engine.make_url(self.store.url)
                options = {k: v for k, v in url.query.items() if isinstance(v, str)}
                options.setdefault("connect_timeout", max(1, round(self.store.busy_timeout)))
                try:
                    self.backend = ibis.postgres.connect(host=url.host, port=url.port or 5432, user=url.username,
                                                         password=url.password, database=url.database, **options)
                except Exception as exc:  # whatever the driver raised, the dashboard shows a state
                    raise LogEngineError(f"{self.location} could not be reached: {exc}") from exc
            return self.backend

    def _connect_sqlite(self):
        if self.backend is not None and self.store.file_id() != self._file:  # the file was deleted or replaced
            self.backend.con.close()
            self.backend = None
        if self.backend is None:
            self._file = self.store.file_id()
            try:
                self.backend = sqlite_engine.connect(sa.engine.make_url(self.store.url).database,
                                                     busy_timeout=self.store.busy_timeout)
            except Exception as exc:  # a file that cannot be opened is a state to show
                raise LogEngineError(f"{self.location} could not be opened: {exc}") from exc
        return self.backend

    def table(self, service: str, table: str = "predictions", *, since: float | None = None,
              until: float | None = None, in_order: bool = False) -> LogTable:
        """One service's predictions (``table="predictions"``) or labels (``"labels"``), within ``[since, until)``.

        ``in_order`` adds the columns the Parquet log names its written order by, ``filename`` (one
        value here) and ``file_row_number`` (the row's insertion number): ties between predictions
        made at the same time are broken as they were written, as on DuckDB.
        """
        backend = self.connect()
        with self.lock:
            if table == "labels":
                rows = backend.table("labels")
                rows = rows.filter(rows.service == service)
                order = {"filename": ibis.literal(""), "file_row_number": rows.id} if in_order else {}
                return LogTable(table=rows.select("prediction_id", "ts", "label", **order), problems=())
            name = prediction_table_name(service)
            if name not in backend.list_tables(like=name):
                return LogTable(table=None, problems=())
            rows = backend.table(name)
        if since is not None:
            rows = rows.filter(rows.ts >= since)
        if until is not None:
            rows = rows.filter(rows.ts < until)
        if in_order:
            rows = rows.mutate(filename=ibis.literal(""), file_row_number=rows.seq)
        return LogTable(table=rows, problems=())

    def execute(self, expression: ir.Expr):
        """Run an Ibis expression on the backend (one at a time) and return its pandas result."""
        backend = self.connect()
        with self.lock:
            return backend.execute(expression)


_READERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_READERS_LOCK = threading.Lock()


def store_log(sql: SqlPredictionLog) -> StoreLog:
    """The :class:`StoreLog` of ``sql``: one per store log, so that every service's mirror shares one connection."""
    with _READERS_LOCK:
        found = _READERS.get(sql)
        if found is None:
            found = _READERS[sql] = StoreLog(sql)
        return found


class StoreLog:
    """The reading side of the store's prediction log for :class:`monitoring.production.StoreLogMirror`.

    Parameters
    ----------
    sql : SqlPredictionLog
        The store's log (on PostgreSQL or SQLite).
    """

    def __init__(self, sql: SqlPredictionLog):
        self.sql = sql
        self.store = sql.store
        self.engine = StoreLogEngine(sql.store)

    def prediction_table(self, service: str) -> dict[str, str]:
        """The kinds of ``service``'s features (personal ones, stored sealed as text, are left out: their kind is
        told by their opened values).

        Raises
        ------
        KeyError
            When ``service`` has no prediction log in the store.
        """
        return self.sql.prediction_features(service)

    def has_log(self, service: str) -> bool:
        """Whether ``service`` has a prediction log table."""
        try:
            self.sql.prediction_table(service)
        except KeyError:
            return False
        return True

    def shape(self, service: str, frame: pd.DataFrame) -> pd.DataFrame:
        """Rows as the engine returned them, with personal columns opened and each column's type."""
        return typed_log_columns(self.store.sealer.open_frame(service, frame), self.prediction_table(service))

    def read_prediction_log(self, service: str, *, since: float | None = None, until: float | None = None,
                            columns: Sequence[str] | None = None) -> pd.DataFrame:
        """:meth:`SqlPredictionLog.read_prediction_log` (for the personal columns, opened here)."""
        return self.sql.read_prediction_log(service, since=since, until=until, columns=columns)

    def find_predictions(self, service: str, *, prediction_id: str | None = None, since: float | None = None,
                         until: float | None = None, filters: Mapping[str, tuple[str, object]] | None = None,
                         newest_first: bool = True, limit: int = 50) -> pd.DataFrame:
        """:meth:`SqlPredictionLog.find_predictions`: a few rows by the table's indexes."""
        return self.sql.find_predictions(service, prediction_id=prediction_id, since=since, until=until,
                                         filters=filters, newest_first=newest_first, limit=limit)


def _reached(method: Callable) -> Callable:
    """``method`` with a lost or refused connection to the server raised as a :class:`ProductionDataError` that
    names the server (a state the pages show, never a traceback)."""

    @functools.wraps(method)
    def reported(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:
            if not connection_lost(exc):
                raise
            raise ProductionDataError(f"the prediction log of {self.service!r} cannot be read: "
                                      f"{self.log.engine.location} could not be reached ({_first_line(exc)})"
                                      ) from exc

    return reported


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


STORE_UPKEEP_TALLY_ROWS = 1_000_000
"""Predictions of a log in the store's tables one upkeep run counts at most (PostgreSQL counts about ten times slower
than DuckDB: a run stays well within the maintenance lease; the next run, a minute later, goes on)."""

_DAY_TALLIES: dict[tuple, tuple[tuple[int, int], WindowTallies]] = {}
"""Day counts this process read or counted: ``(database, service, profile, spec, day) -> ((rows, last_seq),
tallies)``."""
_DAY_TALLIES_SIZE = 4096
_DAY_TALLIES_LOCK = threading.Lock()


def _remember(key: tuple, stamp: tuple[int, int], tallies: WindowTallies) -> None:
    with _DAY_TALLIES_LOCK:
        if len(_DAY_TALLIES) >= _DAY_TALLIES_SIZE:
            _DAY_TALLIES.pop(next(iter(_DAY_TALLIES)))
        _DAY_TALLIES[key] = (stamp, tallies)


def _day_of(table: ir.Table) -> ir.FloatingValue:
    """The UTC midnight each row's time falls in (Unix seconds)."""
    return (table.ts / DAY_SECONDS).floor() * DAY_SECONDS


@dataclass(frozen=True)
class _DayParts:
    parts: list
    counted: tuple[float, ...]
    rows: int
    left: int


class StoreLogMirror(EngineMirror):
    """One service's prediction log in the store's tables, counted by the store's PostgreSQL or SQLite.

    The same questions as :class:`monitoring.production.ParquetMirror`, answered by the same
    queries: :meth:`summary`, :meth:`traffic`, :meth:`tallies`, the label join and the kept
    join's counts return aggregates and bounded samples; :meth:`find` a few rows by the table's
    indexes. Labels in the store's ``labels`` table join there. A kept join is a table (unlogged on
    PostgreSQL; :func:`kept_table_prefix`) recorded in ``kept_labels``; the :data:`KEPT_FILES` newest of a
    service are left, older ones dropped. A server that cannot be reached is a
    :class:`ProductionDataError` naming its host and port.

    Parameters
    ----------
    log : StoreLog
    service : str
        The log's name (``ServiceConfig.log_name``).
    """

    def __init__(self, log: StoreLog, service: str):
        super().__init__(log, service)
        self._windows: dict[str, pd.DataFrame] = {}
        """Windows of a number of predictions placed by this process, by the table of their placed rows."""

    def _columns(self) -> list[str]:
        try:
            table = self.log.sql.prediction_table(self.service)
        except KeyError:
            raise self._missing() from None
        return [c.name for c in table.columns if c.name != "seq"]

    def keeps_labels(self, labels) -> bool:
        """Whether the store's database joins ``labels``: the store's own table (where the predictions are), or a
        label file, which is staged in a table of the store's (:func:`monitoring.staged_labels.stage_label_table`)."""
        return isinstance(labels, LabelFileMirror) or (
            isinstance(labels, StoreLabelMirror) and labels.store is self.log.store)

    def labels_table(self, labels) -> ir.Table:
        """The service's rows of the store's ``labels`` table, in the order written (or the staged label file)."""
        if isinstance(labels, LabelFileMirror):
            name = stage_label_table(labels.config, self.log.store.engine, self.service)
            return self.log.engine.connect().table(name)
        return self.log.engine.table(self.service, "labels", in_order=True).table

    def problems(self) -> tuple[str, ...]:
        """Nothing is left out of a table."""
        return ()

    def has_rows(self) -> bool:
        """Whether the service has a prediction log table (the row finders can be offered)."""
        return self.log.has_log(self.service)

    def columns(self) -> tuple[str, ...]:
        """The columns logged, from the table's definition (no row is read)."""
        return tuple(self._columns())

    def summary(self) -> LogSummary:
        """Rows and time span, in one query."""
        self._columns()
        table = self._table()
        source = f"prediction log in the store's {self.log.engine.words} ({{rows:,}} rows)"
        if table is None:
            return LogSummary(rows=0, first_ts=np.nan, last_ts=np.nan, source=source.format(rows=0))
        with self.log.engine.lock:
            return summarize(self.log.engine.connect(), table, source=source)

    def traffic(self, **options) -> LogTraffic:
        """The traffic up to ``now`` (``log_traffic``'s options), counted by the server."""
        self._columns()
        table = self._table()
        if table is None:
            return traffic_frame(pd.DataFrame({"ts": pd.Series(dtype=float)}), **options)
        with self.log.engine.lock:
            return log_traffic(self.log.engine.connect(), table, **options)

    def tallies(self, profile: ReferenceProfile, *, window: str | int, since: float | None = None,
                until: float | None = None) -> WindowTallies:
        """Counts per window of ``[since, until)`` for :func:`monitoring.drift.compute_drift_from_counts`, counted
        by the server; personal columns, sealed in the table, are opened and counted here.

        Day and week windows are counted once per UTC day and kept (in memory and in the store's
        ``kept_tallies``, per reference profile): a view counts again only the days the range cuts
        through and those that grew since they were counted (one grouped count of each day's rows
        and last ``seq`` tells). The collector's upkeep counts every past day beforehand
        (:meth:`keep_day_tallies`).
        """
        spec = parse_window(window)
        plain, sealed = self._tallied_columns(profile)
        table = self.log.engine.table(self.service, since=since, until=until).table
        if table is None:
            return no_tallies(profile, spec)
        if spec in CACHED_WINDOWS:
            parts = self._day_parts(table, profile, spec, plain, since=since, until=until).parts
        else:
            with self.log.engine.lock:
                parts = [tally_windows(self.log.engine.connect(), table, profile, window=spec, since=since,
                                       until=until, columns=plain)]
        return self._summed(parts, profile, spec, sealed=sealed, since=since, until=until)

    def keep_day_tallies(self, profile: ReferenceProfile, *, now: float,
                         max_rows: int = STORE_UPKEEP_TALLY_ROWS) -> KeptTallies:
        """Count and keep the day and week counts of every UTC day over by ``now`` that has none (the upkeep's).

        The newest days first, up to ``max_rows`` predictions (its first day whatever its size);
        the next run goes on. Personal columns are never counted into kept counts.

        Returns
        -------
        KeptTallies
            ``files`` names the days counted (``YYYY-MM-DD``).
        """
        plain, _ = self._tallied_columns(profile)
        until = math.floor(float(now) / DAY_SECONDS) * DAY_SECONDS
        table = self.log.engine.table(self.service, until=until).table
        if table is None:
            return KeptTallies()
        days = self._days(table)  # one count of the days for both window kinds
        done = [self._day_parts(table, profile, spec, plain, since=None, until=until, max_rows=max_rows, days=days)
                for spec in CACHED_WINDOWS]
        days = sorted(set().union(*(d.counted for d in done)), reverse=True)
        return KeptTallies(files=tuple(time.strftime("%Y-%m-%d", time.gmtime(day)) for day in days),
                           rows=max(d.rows for d in done), left=max(d.left for d in done))

    def _days(self, table: ir.Table) -> pd.DataFrame:
        """Each UTC day of ``table`` with its rows and last ``seq`` (what tells whether kept counts are still the
        day's), newest first."""
        day = _day_of(table)
        with self.log.engine.lock:
            days = self.log.engine.connect().execute(table.group_by(day=day).agg(rows=table.count(),
                                                                                 last_seq=table.seq.max()))
        return days[days["day"].notna()].sort_values("day", ascending=False)

    def _day_parts(self, table: ir.Table, profile: ReferenceProfile, spec: str, columns: list[str], *,
                   since: float | None, until: float | None, max_rows: int | None = None,
                   days: pd.DataFrame | None = None) -> _DayParts:
        """The counts of ``[since, until)`` as parts to add: each whole UTC day's, kept or counted now (and kept),
        and those of the rows in days the range cuts through (with ``max_rows``: the upkeep's, whole days
        only, newest first up to that many rows). ``days``: :meth:`_days` of ``table``, when counted already."""
        engine = self.log.engine
        day = _day_of(table)
        days = self._days(table) if days is None else days
        low = -math.inf if since is None else float(since)
        high = math.inf if until is None else float(until)
        whole = days[(days["day"] >= low) & (days["day"] + DAY_SECONDS <= high)]
        if until is None and len(whole):  # the newest day may still grow: counted anew at each view
            whole = whole[whole["day"] < whole["day"].max()]
        against = profile_key(profile)
        found = self._kept_day_tallies(against, spec, columns, whole)
        unseen = whole[~whole["day"].isin(list(found))]
        left = 0
        if max_rows is not None:
            within = unseen["rows"].cumsum() - unseen["rows"] < max_rows  # the first day whatever its size
            left, unseen = int((~within).sum()), unseen[within]
        parts = [found[d] for d in sorted(found)]
        if len(unseen):
            chosen = [float(d) for d in unseen["day"]]
            rows = table.mutate(day=day)
            rows = rows.filter(rows.day.isin(chosen))
            with engine.lock:
                counted = tally_windows(engine.connect(), rows, profile, window=spec, columns=columns, by="day")
            kept = {float(d): counted[d] for d in counted}
            self._keep_day_tallies(against, spec, unseen[unseen["day"].isin(list(kept))], kept)
            parts.extend(kept[d] for d in sorted(kept))
        cut = (days["day"] + DAY_SECONDS > low) & (days["day"] < high) & ~days["day"].isin(list(whole["day"]))
        if max_rows is None and cut.any():
            # the cut days by their time ranges, which the table's time index finds (not a scan of every row)
            ranges = [(table.ts >= float(d)) & (table.ts < float(d) + DAY_SECONDS) for d in days.loc[cut, "day"]]
            rest = table.filter(functools.reduce(operator.or_, ranges))
            with engine.lock:
                parts.append(tally_windows(engine.connect(), rest, profile, window=spec, since=since, until=until,
                                           columns=columns))
        return _DayParts(parts=parts, counted=tuple(float(d) for d in unseen["day"]),
                         rows=int(unseen["rows"].sum()), left=left)

    def _tallied_columns(self, profile: ReferenceProfile) -> tuple[list[str], list[str]]:
        """The profile's columns the server counts (in the table, not personal), and the personal ones."""
        present = set(self._columns())
        sealed = [c for c in self.log.store.sealer.columns(self.service) if c in profile.columns and c in present]
        plain = [c for c in [*profile.features, *profile.prediction_columns] if c in present and c not in sealed]
        return plain, sealed

    def _day_key(self, against: str, spec: str, day: float) -> tuple:
        return self.log.engine.location, self.service, against, spec, day

    def _kept_day_tallies(self, against: str, spec: str, columns: list[str],
                          days: pd.DataFrame) -> dict[float, WindowTallies]:
        """The kept counts of ``days`` (``day, rows, last_seq``) that are still theirs: from memory, else the store."""
        found: dict[float, WindowTallies] = {}
        wanted = {float(r.day): (int(r.rows), int(r.last_seq)) for r in days.itertuples(index=False)}
        for day, stamp in wanted.items():
            cached = _DAY_TALLIES.get(self._day_key(against, spec, day))
            if cached is not None and cached[0] == stamp and list(cached[1].columns) == columns:
                found[day] = cached[1]
        missing = [day for day in wanted if day not in found]
        if not missing:
            return found
        t = kept_tallies
        with self.log.store.engine.connect() as conn:
            rows = conn.execute(sa.select(t.c.day, t.c.rows, t.c.last_seq, t.c.data).where(
                (t.c.service == self.service) & (t.c.profile == against) & (t.c.spec == spec)
                & t.c.day.in_(missing))).all()
        for row in rows:
            day = float(row.day)
            if (int(row.rows), int(row.last_seq)) != wanted[day]:
                continue  # the day grew since: counted again
            try:
                with np.load(io.BytesIO(row.data), allow_pickle=False) as arrays:
                    tallies = tallies_from_arrays(arrays)
            except (OSError, ValueError, KeyError):
                continue
            if list(tallies.columns) == columns:
                found[day] = tallies
                _remember(self._day_key(against, spec, day), wanted[day], tallies)
        return found

    def _keep_day_tallies(self, against: str, spec: str, days: pd.DataFrame,
                          counted: dict[float, WindowTallies]) -> None:
        """Keep the counts of ``days`` in memory and in the store (replacing older counts of a day)."""
        records = []
        for r in days.itertuples(index=False):
            day = float(r.day)
            buffer = io.BytesIO()
            np.savez(buffer, **tallies_to_arrays(counted[day]))
            records.append({"service": self.service, "profile": against, "spec": spec, "day": day,
                            "rows": int(r.rows), "last_seq": int(r.last_seq), "data": buffer.getvalue()})
            _remember(self._day_key(against, spec, day), (int(r.rows), int(r.last_seq)), counted[day])
        if not records:
            return
        store = self.log.store
        store.ensure_schema()
        statement = dialect_insert(store.dialect, kept_tallies)
        with store.engine.begin() as conn:
            conn.execute(statement.on_conflict_do_update(
                index_elements=["service", "profile", "spec", "day"],
                set_={"rows": statement.excluded.rows, "last_seq": statement.excluded.last_seq,
                      "data": statement.excluded.data}), records)

    def read(self, *, columns: Sequence[str] | None = None) -> ProductionData:
        """Every logged row (only ``columns`` and ``ts``), in insertion order: for the joins in this process that
        need every row (windows of a number of predictions without a kept join)."""
        present = self._columns()
        wanted = None if columns is None else [c for c in dict.fromkeys(["ts", *columns]) if c in present]
        frame = self.log.read_prediction_log(self.service, columns=wanted)
        frame = frame.drop(columns="seq", errors="ignore")
        return ProductionData(frame, f"prediction log in the store's {self.log.engine.words} ({len(frame):,} rows)")

    # -- where joins are kept -----------------------------------------------------------------

    def _kept_place(self, now: float) -> tuple[str, object]:
        name = f"{kept_table_prefix(self.service)}{int(now):012d}_{uuid.uuid4().hex[:8]}"
        return name, name

    def _kept_record(self, kept: KeptLabels, token: object) -> None:
        record, sample = kept_record(kept)
        data = None
        if sample is not None:
            buffer = io.BytesIO()
            sample.to_parquet(buffer, index=False)
            data = buffer.getvalue()
        store = self.log.store
        store.ensure_schema()
        with store.engine.begin() as conn:
            conn.execute(kept_labels.insert().values(name=str(token), service=self.service, now=float(kept.now),
                                                     record=json.dumps(record), sample=data))
            old = [r.name for r in conn.execute(
                sa.select(kept_labels.c.name).where(kept_labels.c.service == self.service)
                .order_by(kept_labels.c.now.desc(), kept_labels.c.name.desc()).offset(KEPT_FILES))]
            listed = (r"SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE :name ESCAPE '\'"
                      if store.dialect == "sqlite" else
                      "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename LIKE :name")
            for name in old:
                placed = [r[0] for r in conn.execute(sa.text(listed), {"name": name.replace("_", r"\_") + r"\_p%"})]
                for table in [name, *placed]:
                    conn.execute(sa.text(f'DROP TABLE IF EXISTS "{table}"'))
                conn.execute(kept_labels.delete().where(kept_labels.c.name == name))
        for name in [n for n in self._windows if n.startswith(tuple(f"{gone}_p" for gone in old))]:
            del self._windows[name]

    def latest_kept(self, *, now: float, max_age: float, stretch: float = 1.0) -> KeptLabels | None:
        """The newest labels kept (:meth:`keep_labels`, by this process or the collector's upkeep) at most
        ``max_age`` seconds before ``now`` (longer for a join that took long:
        :func:`monitoring.performance_sums.stays_fresh`), or None."""
        store = self.log.store
        store.ensure_schema()
        with store.engine.connect() as conn:
            row = conn.execute(sa.select(kept_labels.c.record, kept_labels.c.sample)
                               .where((kept_labels.c.service == self.service) & (kept_labels.c.now <= float(now)))
                               .order_by(kept_labels.c.now.desc(), kept_labels.c.name.desc()).limit(1)).first()
        if row is None:
            return None
        kept = kept_from_record(json.loads(row.record), lambda: pd.read_parquet(io.BytesIO(row.sample)))
        if kept is None:
            return None
        # the newest join up to now decides: an older one is staler still
        return kept if now <= kept.now + stays_fresh(kept, every=max_age, stretch=stretch) else None

    def _placed_table(self, kept: KeptLabels, size: int, since: float | None) -> str | None:
        if kept.path is None:
            return None
        digest = hashlib.sha1(repr(None if since is None else float(since)).encode()).hexdigest()[:8]
        return f"{kept.path}_p{size}_{digest}"

    def _placed(self, kept: KeptLabels, size: int, since: float | None) -> tuple | None:
        name = self._placed_table(kept, size, since)
        if name is None or name not in self._windows:
            return None
        with self.log.engine.lock:
            return self.log.engine.connect().table(name), self._windows[name]

    def _keep_placed(self, kept: KeptLabels, size: int, since: float | None, placed, windows: pd.DataFrame) -> tuple:
        name = self._placed_table(kept, size, since)
        if name is None:
            return placed, windows
        backend = self.log.engine.connect()
        with self.log.engine.lock:
            unlogged = "" if self.log.engine.scheme == "sqlite" else "UNLOGGED "
            backend.raw_sql(f'CREATE {unlogged}TABLE IF NOT EXISTS "{name}" AS {backend.compile(placed)}')
            self._windows[name] = windows
            return backend.table(name), windows


def _report_lost_connections(cls: type) -> type:
    """Wrap every public method of ``cls`` (its own and those it inherits) in :func:`_reached`."""
    for name in dir(cls):
        attribute = getattr(cls, name)
        if not name.startswith("_") and callable(attribute):
            setattr(cls, name, _reached(attribute))
    return cls


_report_lost_connections(StoreLogMirror)
