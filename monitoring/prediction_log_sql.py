"""The prediction log in SQL: each service's logged predictions, their labels and what capture processes counted.

One table per service (``predictions__<service>``, :func:`monitoring.store_schema.new_prediction_table`),
created on the first write with the service's features and read back from the database after
that. These tables are not in the migrations (:mod:`monitoring.migrations`): their columns are
data. Their creation holds the store's schema lock (:func:`monitoring.migrations.schema_lock`)
and looks again under it, so two processes creating one table at the same moment both go on
with the one table. Personal columns are sealed on the way in and opened on the way out by the store's
:class:`~monitoring.sealing.Sealer`. :class:`SqlPredictionLog` works over a
:class:`~monitoring.store.Store` (its engine, its sealer, its schema that survives a replaced
SQLite file); the store delegates its prediction-log methods to it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import pandas as pd
import sqlalchemy as sa

from monitoring.migrations import schema_lock
from monitoring.store_schema import (
    PREDICTION_COLUMNS,
    capture_stats,
    dialect_insert,
    insert_ignoring_duplicates,
    labels,
    new_prediction_table,
    prediction_table_name,
    read_frame,
    typed_log_columns,
)

if TYPE_CHECKING:
    from monitoring.store import Store


class SqlPredictionLog:
    """The prediction log of every service, in the store's database.

    Parameters
    ----------
    store : Store
        Gives the engine, the sealer of personal columns, and the schema (:meth:`Store.ensure_schema`
        runs before every write).
    """

    def __init__(self, store: Store):
        self.store = store
        self.tables: dict[str, sa.Table] = {}
        """The prediction-log tables opened so far, by service."""

    def create_tables(self) -> None:
        """Create again every table opened so far that the database lacks (the store's file was recreated)."""
        if not self.tables:
            return
        with schema_lock(self.store.engine) as conn:
            for table in self.tables.values():
                table.create(conn, checkfirst=True)

    def prediction_table(self, service: str, features: Mapping[str, str] | None = None) -> sa.Table:
        """Return (creating if needed) the prediction log table of ``service``.

        Parameters
        ----------
        service : str
            Service name.
        features : mapping of str to {"numeric", "categorical"}, optional
            Feature columns; needed the first time, read back from the database afterwards.
        """
        if service in self.tables:
            return self.tables[service]
        engine = self.store.engine
        name = prediction_table_name(service)
        if sa.inspect(engine).has_table(name):
            table = sa.Table(name, sa.MetaData(), autoload_with=engine)
        else:
            if not features:
                raise KeyError(f"service {service!r} has no prediction log yet and no features were given")
            table = new_prediction_table(service, features, sealed=self.store.sealer.columns(service))
            with schema_lock(engine) as conn:  # another process may be creating it right now: one of them does
                if sa.inspect(conn).has_table(name):
                    table = sa.Table(name, sa.MetaData(), autoload_with=conn)
                else:
                    table.create(conn)
        self.tables[service] = table
        return table

    def prediction_features(self, service: str) -> dict[str, str]:
        """Feature columns of the prediction log of ``service`` and their kinds (numeric / categorical)."""
        table = self.prediction_table(service)
        sealed = self.store.sealer.columns(service)  # their kind is the reference's: the table only holds text
        return {c.name: "numeric" if isinstance(c.type, sa.Float) else "categorical"
                for c in table.columns if c.name not in PREDICTION_COLUMNS and c.name not in sealed}

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
        with self.store.engine.connect() as conn:
            frame = read_frame(conn.execute(query.order_by(table.c.seq)), names)
        return typed_log_columns(self.store.sealer.open_frame(service, frame), self.prediction_features(service))

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
            if column in self.store.sealer.columns(service):  # sealed values compare as equal or not, nothing else
                if op not in ("==", "!=", "in"):
                    raise ValueError(f"column {column!r} is personal and sealed: only ==, != and in can be asked")
                value = ([self.store.sealer.seal(column, v) for v in value] if op == "in"
                         else self.store.sealer.seal(column, value))
            query = query.where(getattr(table.c[column], operators[op])(list(value) if op == "in" else value))
        order = table.c.ts.desc() if newest_first else table.c.ts.asc()
        with self.store.engine.connect() as conn:
            found = read_frame(conn.execute(query.order_by(order).limit(limit)), list(table.c.keys()))
        return self.store.sealer.open_frame(service, found)

    def log_predictions(self, service: str, frame: pd.DataFrame) -> int:
        """Append rows to the prediction log of ``service``; rows whose id exists are skipped.

        ``frame`` has ``id``, ``ts``, ``prediction`` and optionally ``model_version``,
        ``score``, ``probabilities`` (lists, stored as JSON) and feature columns.
        """
        if frame.empty:
            return 0
        table = self.prediction_table(service)
        records = self.store.sealer.seal_frame(service, frame.copy())  # personal columns never stored in clear
        if "probabilities" in records:
            records["probabilities"] = [None if p is None else json.dumps(list(map(float, p)))
                                        for p in records["probabilities"]]
        known = [c for c in records.columns if c in table.c and c != "seq"]
        rows = records[known].astype(object).where(records[known].notna(), None).to_dict("records")
        self.store.ensure_schema()
        insert_ignoring_duplicates(self.store.engine, table, rows)
        return len(rows)

    def maintain(self, *, now: float, keep_days: float | None = None) -> dict[str, list[str]]:
        """Nothing to compact or delete: the store's own retention covers its tables (the Parquet log has work here)."""
        del now, keep_days
        return {"compacted": [], "deleted": []}

    def count_predictions(self, service: str, *, since: float = 0.0) -> int:
        """Number of logged predictions of ``service`` since ``since``."""
        try:
            table = self.prediction_table(service)
        except KeyError:
            return 0
        with self.store.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(table)
                                    .where(table.c.ts >= since)).scalar())

    def newest_prediction_ts(self, service: str) -> float | None:
        """Time of the newest logged prediction of ``service``, or None when there is none."""
        try:
            table = self.prediction_table(service)
        except KeyError:
            return None
        with self.store.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.max(table.c.ts))).scalar()

    def write_capture_stats(self, source: str, service: str, stats: Mapping, *, ts: float) -> None:
        """Replace what capture process ``source`` counted for ``service`` (a JSON-ready mapping) at ``ts``."""
        self.store.ensure_schema()
        statement = dialect_insert(self.store.dialect, capture_stats).values(
            source=source, service=service, ts=float(ts), stats=json.dumps(stats))
        with self.store.engine.begin() as conn:
            conn.execute(statement.on_conflict_do_update(index_elements=["source", "service"],
                                                         set_={"ts": statement.excluded.ts,
                                                               "stats": statement.excluded.stats}))

    def read_capture_stats(self, service: str) -> list[dict]:
        """What every capture process counted for ``service``: its stored mappings, newest first."""
        with self.store.engine.connect() as conn:
            rows = conn.execute(sa.select(capture_stats.c.stats).where(capture_stats.c.service == service)
                                .order_by(capture_stats.c.ts.desc())).all()
        return [json.loads(r.stats) for r in rows]

    def write_labels(self, service: str, frame: pd.DataFrame) -> int:
        """Append ground-truth labels (``prediction_id, ts, label``) of ``service``."""
        if frame.empty:
            return 0
        rows = [{"service": service, "prediction_id": str(r.prediction_id), "ts": float(r.ts),
                 "label": None if pd.isna(r.label) else float(r.label)}
                for r in frame.itertuples(index=False)]
        self.store.ensure_schema()
        with self.store.engine.begin() as conn:
            conn.execute(labels.insert(), rows)
        return len(rows)

    def count_labels(self, service: str) -> int:
        """Number of stored labels of ``service``."""
        self.store.ensure_schema()
        with self.store.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(labels)
                                    .where(labels.c.service == service)).scalar_one())

    def read_labels(self, service: str) -> pd.DataFrame:
        """Every stored label of ``service`` (``prediction_id, ts, label``) in the order written."""
        self.store.ensure_schema()
        with self.store.engine.connect() as conn:
            rows = conn.execute(sa.select(labels.c.prediction_id, labels.c.ts, labels.c.label)
                                .where(labels.c.service == service).order_by(labels.c.id)).all()
        return pd.DataFrame([tuple(r) for r in rows], columns=["prediction_id", "ts", "label"]).astype(
            {"prediction_id": object, "ts": float, "label": float})
