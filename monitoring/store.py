"""The store: probes, scraped metrics, incidents, the prediction log and labels.

SQLAlchemy Core over SQLite (a file in WAL mode, the default) or PostgreSQL. Timestamps are
Unix seconds (float, UTC) everywhere: cheap to index, compare and bucket in SQL on both
databases.

Tables
------
probes
    One row per check of one poll: ``ts, service, check, ok, status, latency_ms, error``.
    ``check`` is ``live``, ``ready``, ``model_ready``, ``metadata`` or ``predict``; the row
    with check ``poll`` is the verdict of the whole poll and carries ``state``
    (``up``/``degraded``/``down``) with the reason in ``error``. Unique on
    ``(service, check, ts)`` so a retried write never doubles a row.
probe_rollups
    Raw probes older than ``raw_retention_hours`` are folded into buckets of
    ``rollup_minutes``: counts, degraded count, latency sum/max and a latency histogram over
    :data:`LATENCY_BUCKETS_MS`.
incidents
    One row per change of a service's state, with the reason.
metric_samples / metric_rollups
    Cumulative Prometheus values per scrape (``series`` is ``requests``, ``errors``,
    ``latency_count``, ``latency_sum`` or ``latency_bucket`` with its ``le``); older ones
    folded into per-bucket increases with counter resets accounted for.
predictions__<service>
    The prediction log of one service: ``seq`` (insertion order, so readers can fetch only
    what is new), ``id`` (unique), ``ts, model_version, prediction, score, probabilities``
    and one column per feature.
labels
    Ground truth that arrives later, joined to predictions by ``prediction_id``.
leases
    Who polls which service, so two collectors on one store never double-record.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from monitoring.metrics import counter_increases

LATENCY_BUCKETS_MS: tuple[float, ...] = (
    1, 2, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 10000,
    30000, float("inf"),
)
"""Upper bounds (ms) of the latency histogram kept for downsampled probes."""

PROBE_COLUMNS = ("ts", "check", "ok", "state", "status", "latency_ms", "error")
"""Columns :meth:`Store.read_probes` can return."""

PREDICTION_COLUMNS = ("seq", "id", "ts", "model_version", "prediction", "score", "probabilities")
"""Columns every prediction table has; feature names may not use these."""

metadata = sa.MetaData()

probes = sa.Table(
    "probes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("service", sa.String(64), nullable=False),
    sa.Column("check", sa.String(32), nullable=False),
    sa.Column("ok", sa.Boolean, nullable=False),
    sa.Column("state", sa.String(16)),
    sa.Column("status", sa.Integer),
    sa.Column("latency_ms", sa.Float),
    sa.Column("error", sa.Text),
    sa.UniqueConstraint("service", "check", "ts", name="uq_probes_service_check_ts"),
    sa.Index("ix_probes_ts", "ts"),  # downsampling selects by age across services
)

probe_rollups = sa.Table(
    "probe_rollups",
    metadata,
    sa.Column("service", sa.String(64), primary_key=True),
    sa.Column("check", sa.String(32), primary_key=True),
    sa.Column("bucket_ts", sa.Float, primary_key=True),
    sa.Column("n", sa.Integer, nullable=False),
    sa.Column("n_ok", sa.Integer, nullable=False),
    sa.Column("n_degraded", sa.Integer, nullable=False),
    sa.Column("latency_sum_ms", sa.Float, nullable=False),
    sa.Column("latency_max_ms", sa.Float),
    sa.Column("latency_hist", sa.Text, nullable=False),
)

incidents = sa.Table(
    "incidents",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("service", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("previous_state", sa.String(16)),
    sa.Column("reason", sa.Text),
    sa.UniqueConstraint("service", "ts", name="uq_incidents_service_ts"),
    sa.Index("ix_incidents_service_ts", "service", "ts"),
)

metric_samples = sa.Table(
    "metric_samples",
    metadata,
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("service", sa.String(64), nullable=False),
    sa.Column("series", sa.String(32), nullable=False),
    sa.Column("le", sa.Float, nullable=False, default=-1.0),
    sa.Column("value", sa.Float, nullable=False),
    sa.PrimaryKeyConstraint("service", "series", "le", "ts", name="pk_metric_samples"),
    sa.Index("ix_metric_samples_service_ts", "service", "ts"),
)

metric_rollups = sa.Table(
    "metric_rollups",
    metadata,
    sa.Column("service", sa.String(64), primary_key=True),
    sa.Column("series", sa.String(32), primary_key=True),
    sa.Column("le", sa.Float, primary_key=True),
    sa.Column("bucket_ts", sa.Float, primary_key=True),
    sa.Column("increase", sa.Float, nullable=False),
)

labels = sa.Table(
    "labels",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("service", sa.String(64), nullable=False),
    sa.Column("prediction_id", sa.String(64), nullable=False),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("label", sa.Float),
    sa.Index("ix_labels_service_prediction", "service", "prediction_id"),
    sa.Index("ix_labels_service_ts", "service", "ts"),
)

leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("holder", sa.String(128), nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)


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


def _enable_sqlite_wal(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _frame(result: sa.CursorResult, columns: list[str]) -> pd.DataFrame:
    """A query result as a DataFrame, built from the driver's own tuples.

    SQLAlchemy's row-by-row iteration and pandas' probing of Row objects each cost more than
    the query itself on large reads; the DBAPI cursor's ``fetchall`` gives plain tuples at C
    speed. Every column read this way is a plain number or text, so no type processing is lost.
    """
    rows = result.cursor.fetchall() if result.cursor is not None else []
    return pd.DataFrame(rows, columns=columns)


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
    """

    def __init__(self, url: str):
        self.url = url
        kwargs: dict = {"future": True}
        if url.startswith("sqlite"):
            path = url.split("///", 1)[1] if "///" in url else ""
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs["pool_pre_ping"] = True
        self.engine: Engine = sa.create_engine(url, **kwargs)
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _enable_sqlite_wal)
        metadata.create_all(self.engine)
        self._prediction_tables: dict[str, sa.Table] = {}

    @property
    def dialect(self) -> str:
        """Name of the database dialect (``sqlite`` or ``postgresql``)."""
        return self.engine.dialect.name

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    # -- writing -----------------------------------------------------------------------------

    def _insert_ignoring_duplicates(self, table: sa.Table, rows: list[dict]) -> None:
        if not rows:
            return
        module = postgresql if self.dialect == "postgresql" else sqlite
        statement = module.insert(table).on_conflict_do_nothing()
        with self.engine.begin() as conn:
            conn.execute(statement, rows)

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

    # -- leases ------------------------------------------------------------------------------

    def acquire_lease(self, name: str, holder: str, ttl_seconds: float, *, now: float | None = None) -> bool:
        """Take or renew the lease ``name`` for ``holder``; False while another holder has it."""
        now = time.time() if now is None else now
        expires = now + ttl_seconds
        with self.engine.begin() as conn:
            updated = conn.execute(
                leases.update()
                .where(leases.c.name == name)
                .where(sa.or_(leases.c.holder == holder, leases.c.expires_at < now))
                .values(holder=holder, expires_at=expires)
            ).rowcount
            if updated:
                return True
            module = postgresql if self.dialect == "postgresql" else sqlite
            inserted = conn.execute(
                module.insert(leases)
                .values(name=name, holder=holder, expires_at=expires)
                .on_conflict_do_nothing()
            ).rowcount
            return bool(inserted)

    def release_lease(self, name: str, holder: str) -> None:
        """Give up ``name`` if ``holder`` has it."""
        with self.engine.begin() as conn:
            conn.execute(leases.delete().where(leases.c.name == name).where(leases.c.holder == holder))

    def lease_holder(self, name: str, *, now: float | None = None) -> str | None:
        """Return who holds the lease ``name`` now, or None."""
        now = time.time() if now is None else now
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(leases.c.holder).where(leases.c.name == name).where(leases.c.expires_at >= now)
            ).scalar()

    # -- reading probes ----------------------------------------------------------------------

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
        query = sa.select(*(probes.c[c] for c in columns)).where(probes.c.service == service, probes.c.ts >= since)
        if until is not None:
            query = query.where(probes.c.ts < until)
        if checks:
            query = query.where(probes.c.check.in_(list(checks)))
        with self.engine.connect() as conn:
            frame = _frame(conn.execute(query.order_by(probes.c.ts)), list(columns))
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
            frame = _frame(conn.execute(query), ["ts", "state", "error"])
        return frame.iloc[::-1].reset_index(drop=True)

    def read_rollups(self, service: str, *, since: float, until: float | None = None,
                     checks: Sequence[str] | None = None) -> pd.DataFrame:
        """Return downsampled probe buckets of ``service`` starting in ``[since, until)``.

        Columns: ``bucket_ts, check, n, n_ok, n_degraded, latency_sum_ms, latency_max_ms`` and
        ``latency_hist`` (a list of counts per :data:`LATENCY_BUCKETS_MS`).
        """
        t = probe_rollups
        query = sa.select(t.c.bucket_ts, t.c.check, t.c.n, t.c.n_ok, t.c.n_degraded,
                          t.c.latency_sum_ms, t.c.latency_max_ms, t.c.latency_hist).where(
            t.c.service == service, t.c.bucket_ts >= since)
        if until is not None:
            query = query.where(t.c.bucket_ts < until)
        if checks:
            query = query.where(t.c.check.in_(list(checks)))
        with self.engine.connect() as conn:
            frame = _frame(conn.execute(query.order_by(t.c.bucket_ts)),
                           ["bucket_ts", "check", "n", "n_ok", "n_degraded", "latency_sum_ms", "latency_max_ms",
                            "latency_hist"])
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
            return _frame(conn.execute(query), ["ts", "state", "previous_state", "reason"])

    def last_state(self, service: str) -> str | None:
        """Return the state recorded by the newest incident row of ``service``."""
        query = (sa.select(incidents.c.state).where(incidents.c.service == service)
                 .order_by(incidents.c.ts.desc()).limit(1))
        with self.engine.connect() as conn:
            return conn.execute(query).scalar()

    # -- reading metrics ---------------------------------------------------------------------

    def read_metric_samples(self, service: str, *, since: float, until: float | None = None) -> pd.DataFrame:
        """Return raw scraped values (``ts, series, le, value``) ordered by time."""
        t = metric_samples
        query = sa.select(t.c.ts, t.c.series, t.c.le, t.c.value).where(
            t.c.service == service, t.c.ts >= since)
        if until is not None:
            query = query.where(t.c.ts < until)
        with self.engine.connect() as conn:
            return _frame(conn.execute(query.order_by(t.c.ts)), ["ts", "series", "le", "value"])

    def read_metric_rollups(self, service: str, *, since: float, until: float | None = None) -> pd.DataFrame:
        """Return downsampled metric increases (``bucket_ts, series, le, increase``)."""
        t = metric_rollups
        query = sa.select(t.c.bucket_ts, t.c.series, t.c.le, t.c.increase).where(
            t.c.service == service, t.c.bucket_ts >= since)
        if until is not None:
            query = query.where(t.c.bucket_ts < until)
        with self.engine.connect() as conn:
            return _frame(conn.execute(query.order_by(t.c.bucket_ts)), ["bucket_ts", "series", "le", "increase"])

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
        with self.engine.begin() as conn:
            raw = _frame(
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
        raw = _frame(
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
        module = postgresql if self.dialect == "postgresql" else sqlite
        for row in rows:
            statement = module.insert(metric_rollups).values(**row)
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

    # -- prediction log ----------------------------------------------------------------------

    def prediction_table(self, service: str, features: Mapping[str, str] | None = None) -> sa.Table:
        """Return (creating if needed) the prediction log table of ``service``.

        Parameters
        ----------
        service : str
            Service name.
        features : mapping of str to {"numeric", "categorical"}, optional
            Feature columns; needed the first time, read back from the database afterwards.
        """
        if service in self._prediction_tables:
            return self._prediction_tables[service]
        name = f"predictions__{service}"
        inspector = sa.inspect(self.engine)
        if inspector.has_table(name):
            table = sa.Table(name, sa.MetaData(), autoload_with=self.engine)
        else:
            if not features:
                raise KeyError(f"service {service!r} has no prediction log yet and no features were given")
            clashes = sorted(set(features) & set(PREDICTION_COLUMNS))
            if clashes:
                raise ValueError(f"feature names {clashes} clash with prediction log columns {PREDICTION_COLUMNS}")
            table = sa.Table(
                name,
                sa.MetaData(),
                sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
                sa.Column("id", sa.String(64), nullable=False, unique=True),
                sa.Column("ts", sa.Float, nullable=False, index=True),
                sa.Column("model_version", sa.String(64)),
                sa.Column("prediction", sa.Float),
                sa.Column("score", sa.Float),
                sa.Column("probabilities", sa.Text),
                *[sa.Column(f, sa.Float if kind == "numeric" else sa.String(128))
                  for f, kind in features.items()],
            )
            table.create(self.engine, checkfirst=True)
        self._prediction_tables[service] = table
        return table

    def prediction_features(self, service: str) -> dict[str, str]:
        """Feature columns of the prediction log of ``service`` and their kinds (numeric / categorical)."""
        table = self.prediction_table(service)
        return {c.name: "numeric" if isinstance(c.type, sa.Float) else "categorical"
                for c in table.columns if c.name not in PREDICTION_COLUMNS}

    def read_prediction_log(self, service: str, *, after_seq: int = 0, since: float | None = None,
                            until: float | None = None, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Read logged predictions of ``service`` in insertion order.

        Parameters
        ----------
        service : str
        after_seq : int, default=0
            Only rows appended after this ``seq`` (pass the largest ``seq`` read so far to get
            what is new).
        since, until : float, optional
            Only predictions made in ``[since, until)`` (Unix seconds).
        columns : sequence of str, optional
            Columns to read besides ``seq``; all when omitted.

        Returns
        -------
        DataFrame
            ``seq`` and the requested columns; categorical features as pandas categoricals.
        """
        table = self.prediction_table(service)
        names = [c.name for c in table.columns] if columns is None else ["seq", *[c for c in columns if c != "seq"]]
        unknown = [c for c in names if c not in table.c]
        if unknown:
            raise ValueError(f"prediction log of {service!r} has no columns {unknown}; it has {list(table.c.keys())}")
        query = sa.select(*(table.c[c] for c in names)).where(table.c.seq > after_seq)
        if since is not None:
            query = query.where(table.c.ts >= since)
        if until is not None:
            query = query.where(table.c.ts < until)
        with self.engine.connect() as conn:
            frame = _frame(conn.execute(query.order_by(table.c.seq)), names)
        kinds = self.prediction_features(service)
        for name in names:
            if kinds.get(name) == "categorical" or name == "model_version":
                frame[name] = frame[name].astype("category")
            elif kinds.get(name) == "numeric" or name in ("ts", "prediction", "score"):
                frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(float)
        return frame

    def find_predictions(self, service: str, *, prediction_id: str | None = None, since: float | None = None,
                         until: float | None = None, filters: Mapping[str, tuple[str, object]] | None = None,
                         newest_first: bool = True, limit: int = 50) -> pd.DataFrame:
        """Look up a few logged predictions by id, time and feature conditions (index-backed).

        Parameters
        ----------
        service : str
        prediction_id : str, optional
            Exact id.
        since, until : float, optional
            Time range (Unix seconds).
        filters : mapping of str to (op, value), optional
            Conditions on columns, ``op`` among ``==, !=, <, <=, >, >=, in``.
        newest_first : bool, default=True
        limit : int, default=50
            At most this many rows (1-10,000).

        Returns
        -------
        DataFrame
            Whole rows of the prediction log.
        """
        if not 1 <= limit <= 10_000:
            raise ValueError(f"limit must be between 1 and 10000; got {limit}")
        table = self.prediction_table(service)
        query = sa.select(table)
        if prediction_id is not None:
            query = query.where(table.c.id == str(prediction_id))
        if since is not None:
            query = query.where(table.c.ts >= since)
        if until is not None:
            query = query.where(table.c.ts < until)
        operators = {"==": "__eq__", "!=": "__ne__", "<": "__lt__", "<=": "__le__", ">": "__gt__", ">=": "__ge__",
                     "in": "in_"}
        for column, (op, value) in (filters or {}).items():
            if column not in table.c:
                raise ValueError(f"no column {column!r} in the prediction log of {service!r}")
            if op not in operators:
                raise ValueError(f"filter operator must be one of {list(operators)}; got {op!r}")
            query = query.where(getattr(table.c[column], operators[op])(list(value) if op == "in" else value))
        order = table.c.ts.desc() if newest_first else table.c.ts.asc()
        with self.engine.connect() as conn:
            return _frame(conn.execute(query.order_by(order).limit(limit)), list(table.c.keys()))

    def log_predictions(self, service: str, frame: pd.DataFrame) -> int:
        """Append rows to the prediction log of ``service``; rows whose id exists are skipped.

        ``frame`` has ``id``, ``ts``, ``prediction`` and optionally ``model_version``,
        ``score``, ``probabilities`` (lists, stored as JSON) and feature columns.
        """
        if frame.empty:
            return 0
        table = self.prediction_table(service)
        records = frame.copy()
        if "probabilities" in records:
            records["probabilities"] = [None if p is None else json.dumps(list(map(float, p)))
                                        for p in records["probabilities"]]
        known = [c for c in records.columns if c in table.c and c != "seq"]
        rows = records[known].astype(object).where(records[known].notna(), None).to_dict("records")
        self._insert_ignoring_duplicates(table, rows)
        return len(rows)

    def count_predictions(self, service: str, *, since: float = 0.0) -> int:
        """Number of logged predictions of ``service`` since ``since``."""
        try:
            table = self.prediction_table(service)
        except KeyError:
            return 0
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(table)
                                    .where(table.c.ts >= since)).scalar())

    def newest_prediction_ts(self, service: str) -> float | None:
        """Time of the newest logged prediction of ``service``, or None when there is none."""
        try:
            table = self.prediction_table(service)
        except KeyError:
            return None
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.max(table.c.ts))).scalar()

    def write_labels(self, service: str, frame: pd.DataFrame) -> int:
        """Append ground-truth labels (``prediction_id, ts, label``) of ``service``."""
        if frame.empty:
            return 0
        rows = [{"service": service, "prediction_id": str(r.prediction_id), "ts": float(r.ts),
                 "label": None if pd.isna(r.label) else float(r.label)}
                for r in frame.itertuples(index=False)]
        with self.engine.begin() as conn:
            conn.execute(labels.insert(), rows)
        return len(rows)
