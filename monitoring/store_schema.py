"""The store's schema: the tables and their metadata, and a service's prediction-log table.

The database gets these tables through the versioned Alembic migrations of
:mod:`monitoring.migrations` (never ``create_all``); a test checks that the migrated schema and
:data:`metadata` agree. A change here needs a new revision in ``monitoring/migrations/versions/``.
The per-service prediction tables are data-dependent and created by the log code
(:mod:`monitoring.prediction_log_sql`).

Timestamps are Unix seconds (float, UTC) everywhere: cheap to index, compare and bucket in SQL
on SQLite and PostgreSQL alike. The helpers at the end (:func:`dialect_insert`,
:func:`insert_ignoring_duplicates`, :func:`read_frame`) are the SQL every part of the store shares: the health store
(:mod:`monitoring.store`) and the prediction log (:mod:`monitoring.prediction_log_sql`).

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
capture_stats
    What each capture process (the capturing proxy, the KServe logger endpoint) counted for
    one service, as JSON, replaced on every write: ``source, service, ts, stats``.
kept_labels
    Label joins kept for the pages when the prediction log is in a PostgreSQL store: the table
    each join was kept in (``kept__<digest>__<time>_<id>``, made and dropped by
    :mod:`monitoring.store_log`), the service, its time and its record.
kept_tallies
    Drift counts of each past UTC day of such a log, per reference profile and window kind,
    with the rows and last ``seq`` they were counted at (a day that grew is counted again).
leases
    Who polls which service, so two collectors on one store never double-record: the
    holder's name, host, pid (with the process's start time, so a reused pid is not taken
    for the holder) and when the lease expires. A holder on the same machine whose process
    is gone loses its lease at once; any other holder when it stops renewing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

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
    # who the holder is, so a dead holder on the same machine can be told from a live one
    sa.Column("host", sa.String(255)),
    sa.Column("node", sa.String(255)),
    sa.Column("pid", sa.Integer),
    sa.Column("started", sa.String(32)),
    sa.Column("acquired_at", sa.Float),
)

capture_stats = sa.Table(
    "capture_stats",
    metadata,
    sa.Column("source", sa.String(128), primary_key=True),
    sa.Column("service", sa.String(64), primary_key=True),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("stats", sa.Text, nullable=False),
)

kept_labels = sa.Table(
    "kept_labels",
    metadata,
    sa.Column("name", sa.String(63), primary_key=True),
    sa.Column("service", sa.String(64), nullable=False),
    sa.Column("now", sa.Float, nullable=False),
    sa.Column("record", sa.Text, nullable=False),
    sa.Column("sample", sa.LargeBinary),
    sa.Index("ix_kept_labels_service_now", "service", "now"),
)
"""Label joins kept for the pages in the store's own PostgreSQL (``monitoring.store_log``): the table ``name``
holds the rows, ``record`` what ``monitoring.performance_sums.write_kept`` records, ``sample`` the summary's
sample as Parquet."""

kept_tallies = sa.Table(
    "kept_tallies",
    metadata,
    sa.Column("service", sa.String(64), primary_key=True),
    sa.Column("profile", sa.String(16), primary_key=True),
    sa.Column("spec", sa.String(8), primary_key=True),
    sa.Column("day", sa.Float, primary_key=True),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("last_seq", sa.Integer, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
)
"""The drift counts of one UTC day of a prediction log in the store's PostgreSQL, against one reference profile
and per day or week window (``monitoring.store_log``): valid while the day holds ``rows`` rows up to ``last_seq``;
``data`` is ``monitoring.drift.tallies_to_arrays`` as ``.npz``."""


def service_table_prefix(kind: str, service: str) -> str:
    """The name every table of ``kind`` (e.g. ``kept__``) made for ``service`` starts with: a digest of the
    service's name keeps it within PostgreSQL's 63 characters whatever the service is called."""
    return f"{kind}{hashlib.sha1(service.encode()).hexdigest()[:16]}__"


def prediction_table_name(service: str) -> str:
    """Name of the prediction-log table of ``service``: ``predictions__<service>``."""
    return f"predictions__{service}"


def new_prediction_table(service: str, features: Mapping[str, str], *, sealed: Collection[str] = ()) -> sa.Table:
    """The prediction-log table of ``service`` (not created yet): the :data:`PREDICTION_COLUMNS` and its features.

    Parameters
    ----------
    service : str
    features : mapping of str to {"numeric", "categorical"}
        Feature columns, in order; they may not use the names of :data:`PREDICTION_COLUMNS`.
    sealed : collection of str, default=()
        Personal columns stored sealed: text, whatever their kind.

    Returns
    -------
    Table
        On its own ``MetaData``; ``seq`` counts insertions, ``id`` is unique, ``ts`` indexed.

    Raises
    ------
    ValueError
        When a feature name clashes with a prediction-log column.
    """
    clashes = sorted(set(features) & set(PREDICTION_COLUMNS))
    if clashes:
        raise ValueError(f"feature names {clashes} clash with prediction log columns {PREDICTION_COLUMNS}")
    return sa.Table(
        prediction_table_name(service),
        sa.MetaData(),
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(64), nullable=False, unique=True),
        sa.Column("ts", sa.Float, nullable=False, index=True),
        sa.Column("model_version", sa.String(64)),
        sa.Column("prediction", sa.Float),
        sa.Column("score", sa.Float),
        sa.Column("probabilities", sa.Text),
        *[sa.Column(f, sa.Text if f in sealed else sa.Float if kind == "numeric" else sa.String(128))
          for f, kind in features.items()],
    )


def typed_log_columns(frame: pd.DataFrame, kinds: Mapping[str, str]) -> pd.DataFrame:
    """``frame`` (logged predictions) with each column's type: categoricals for the categorical features and the
    model version, floats for the numeric features, ``ts``, ``prediction`` and ``score``.

    Parameters
    ----------
    frame : DataFrame
        Rows as a database or a file gave them (changed in place, and returned).
    kinds : mapping of str to {"numeric", "categorical"}
        The log's feature kinds.
    """
    for name in frame.columns:
        if kinds.get(name) == "categorical" or name == "model_version":
            frame[name] = frame[name].astype("category")
        elif kinds.get(name) == "numeric" or name in ("ts", "prediction", "score"):
            frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(float)
    return frame


# -- SQL shared by the store's parts ----------------------------------------------------------


def dialect_insert(dialect: str, table: sa.Table):
    """``INSERT`` into ``table`` in the dialect's own construct, which has ``on_conflict_do_nothing``/``_update``.

    Parameters
    ----------
    dialect : {"sqlite", "postgresql"}
    table : Table

    Returns
    -------
    Insert
    """
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(table)


def insert_ignoring_duplicates(engine: Engine, table: sa.Table, rows: list[dict]) -> None:
    """Insert ``rows`` into ``table`` in one transaction, skipping each row whose key is stored already.

    Parameters
    ----------
    engine : Engine
        Its schema is ready (the caller made sure).
    table : Table
    rows : list of dict
        Column → value mappings; nothing happens when empty.
    """
    if not rows:
        return
    with engine.begin() as conn:
        conn.execute(dialect_insert(engine.dialect.name, table).on_conflict_do_nothing(), rows)


def read_frame(result: sa.CursorResult, columns: list[str]) -> pd.DataFrame:
    """A query result as a DataFrame, built from the driver's own tuples.

    SQLAlchemy's row-by-row iteration and pandas' probing of Row objects each cost more than
    the query itself on large reads; the DBAPI cursor's ``fetchall`` gives plain tuples at C
    speed. Every column read this way is a plain number or text, so no type processing is lost.

    Parameters
    ----------
    result : CursorResult
    columns : list of str
        Names of the selected columns, in order.

    Returns
    -------
    DataFrame
    """
    rows = result.cursor.fetchall() if result.cursor is not None else []
    return pd.DataFrame(rows, columns=columns)
