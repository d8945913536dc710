"""The prediction log in Parquet partitions (the default engine), behind the SQL log's interface.

:class:`ParquetPredictionLog` is what :attr:`monitoring.store.Store.predictions` holds when the
config's ``[store] log`` names a DuckDB directory (the default, ``duckdb:var/log``): every
writer that logs through the store (the template service, the capture proxy, the KServe
logger endpoint) appends files to :class:`monitoring.partitions.PartitionedLog`, and readers
ask DuckDB. Labels are kept the same way beside the predictions, so that the label join runs
in the engine; capture statistics stay in the SQL store (they are small), and so do probes,
incidents and leases.

Each service's feature kinds are declared once in ``<service>/features.json`` (what the SQL
log keeps as its table's columns); personal columns are sealed on the way in and opened on
the way out by the store's :class:`~monitoring.sealing.Sealer`, exactly as in SQL.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from monitoring.log_engines import LogEngine, survives_compaction
from monitoring.prediction_log_sql import SqlPredictionLog
from monitoring.store_schema import PREDICTION_COLUMNS, typed_log_columns

if TYPE_CHECKING:
    from monitoring.store import Store

_OPERATORS = ("==", "!=", "<", "<=", ">", ">=", "in")


class ParquetPredictionLog:
    """Predictions and labels in Parquet partitions read by DuckDB; capture statistics in the SQL store.

    Parameters
    ----------
    store : Store
        Its sealer seals personal columns; its database keeps labels and capture statistics.
    engine : LogEngine
        A ``duckdb:`` engine over the partitions' directory.
    """

    def __init__(self, store: Store, engine: LogEngine):
        self.store = store
        self.sql = SqlPredictionLog(store)
        """The store's own prediction log: labels, capture statistics, and logs written there before."""
        if engine.log is None:
            raise ValueError(f"the prediction log {engine.url!r} is not a local directory; writers need one")
        self.engine = engine
        self.log = engine.log
        self._features: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()

    # -- the declared features ----------------------------------------------------------------------

    def _features_file(self, service: str):
        return self.log.root / service / "features.json"

    def prediction_table(self, service: str, features: Mapping[str, str] | None = None) -> dict[str, str]:
        """Declare (on the first write) or read the feature kinds of ``service``'s log.

        Raises
        ------
        KeyError
            When ``service`` has no log and no ``features`` are given.
        """
        with self._lock:
            known = self._features.get(service)
            if known is None:
                path = self._features_file(service)
                if path.exists():
                    known = json.loads(path.read_text())
                elif features is None:
                    raise KeyError(service)
                else:
                    known = {name: kind for name, kind in features.items() if name not in PREDICTION_COLUMNS}
                    path.parent.mkdir(parents=True, exist_ok=True)
                    temporary = path.with_name(f".features-{uuid.uuid4().hex[:8]}.tmp")
                    temporary.write_text(json.dumps(known))
                    os.replace(temporary, path)  # two writers declaring at once write the same text
                self._features[service] = known
            return known

    def prediction_features(self, service: str) -> dict[str, str]:
        """Feature columns of ``service``'s log and their kinds (personal columns excluded, as in SQL)."""
        sealed = self.store.sealer.columns(service)
        return {name: kind for name, kind in self.prediction_table(service).items() if name not in sealed}

    def create_tables(self) -> None:
        """Create again the SQL tables opened so far (predictions need none: files are made by the first write)."""
        self.sql.create_tables()

    def has_log(self, service: str) -> bool:
        """Whether ``service`` has a prediction log here (declared features or files)."""
        try:
            self.prediction_table(service)
        except KeyError:
            return False
        return True

    def write_labels(self, service: str, frame: pd.DataFrame) -> int:
        """Append ground-truth labels (``prediction_id, ts, label``) as Parquet files beside the predictions.

        The label join then runs where both live (:mod:`monitoring.label_queries`). A service whose
        labels were kept in the SQL store before (an older Vantage) keeps them there, so that its
        labels are never split between two places.
        """
        if frame.empty:
            return 0
        if self.labels_in_sql(service):
            return self.sql.write_labels(service, frame)
        rows = pd.DataFrame({
            "prediction_id": [None if pd.isna(v) else str(v) for v in frame["prediction_id"]],
            "ts": pd.to_numeric(frame["ts"], errors="coerce").astype(float).to_numpy(),
            "label": pd.to_numeric(frame["label"], errors="coerce").astype(float).to_numpy()})
        return self.log.append(service, "labels", rows)

    def labels_in_sql(self, service: str) -> bool:
        """Whether ``service``'s labels are kept in the SQL store's table (written there by an older Vantage)."""
        return self.sql.count_labels(service) > 0

    def label_table(self, service: str):
        """``service``'s labels as an engine table (``prediction_id, ts, label``, with ``filename`` and
        ``file_row_number`` on DuckDB: the order they were written in), or None when it has none in Parquet."""
        return self.engine.table(service, "labels", in_order=self.engine.scheme == "duckdb").table

    @survives_compaction
    def read_labels(self, service: str) -> pd.DataFrame:
        """Every stored label of ``service`` (``prediction_id, ts, label``) in the order written."""
        if self.labels_in_sql(service):
            return self.sql.read_labels(service)
        table = self.label_table(service)
        if table is None:
            return pd.DataFrame({"prediction_id": pd.Series(dtype=object), "ts": pd.Series(dtype=float),
                                 "label": pd.Series(dtype=float)})
        keys = ["filename", "file_row_number"] if "filename" in table.columns else []
        frame = self.engine.execute(table.order_by(keys) if keys else table)
        return frame[["prediction_id", "ts", "label"]].astype({"ts": float, "label": float})

    def write_capture_stats(self, source: str, service: str, stats: Mapping, *, ts: float) -> None:
        """Keep a capture process's counts in the SQL store (:meth:`SqlPredictionLog.write_capture_stats`)."""
        self.sql.write_capture_stats(source, service, stats, ts=ts)

    def read_capture_stats(self, service: str) -> list[dict]:
        """What capture processes counted, from the SQL store (:meth:`SqlPredictionLog.read_capture_stats`)."""
        return self.sql.read_capture_stats(service)

    # -- writing ------------------------------------------------------------------------------------

    def log_predictions(self, service: str, frame: pd.DataFrame) -> int:
        """Append rows to ``service``'s log as new Parquet files (personal columns sealed first).

        ``frame`` has ``id``, ``ts``, ``prediction`` and optionally ``model_version``,
        ``score``, ``probabilities`` (lists, stored as JSON text) and feature columns.
        """
        if frame.empty:
            return 0
        kinds = self.prediction_table(service, {  # declared by the writer first; else the rows' types decide
            c: "numeric" if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
            else "categorical" for c in frame.columns})
        records = self.store.sealer.seal_frame(service, frame.copy())
        if "probabilities" in records:
            records["probabilities"] = [None if p is None else json.dumps(list(map(float, p)))
                                        for p in records["probabilities"]]
        keep = [c for c in records.columns if c in PREDICTION_COLUMNS or c in kinds]
        records = records[keep]
        sealed = set(self.store.sealer.columns(service))
        for name in records.columns:
            if name in ("ts", "score", "prediction") or (kinds.get(name) == "numeric" and name not in sealed):
                records[name] = pd.to_numeric(records[name], errors="coerce").astype(float)
            elif name != "ts":
                records[name] = records[name].astype(object).where(records[name].notna(), None)
                records[name] = records[name].map(lambda v: v if v is None else str(v))
        return self.log.append(service, "predictions", records)

    # -- reading ------------------------------------------------------------------------------------

    def _query(self, service: str, *, since: float | None = None, until: float | None = None,
               in_order: bool = False):
        table = self.engine.table(service, since=since, until=until, in_order=in_order).table
        if table is None:
            raise KeyError(service)
        if since is not None:
            table = table.filter(table.ts >= since)
        if until is not None:
            table = table.filter(table.ts < until)
        return table

    def shape(self, service: str, frame: pd.DataFrame) -> pd.DataFrame:
        """Rows as read from a file, with personal columns opened and each column's type (categoricals for text)."""
        return typed_log_columns(self.store.sealer.open_frame(service, frame), self.prediction_table(service))

    @survives_compaction
    def read_prediction_log(self, service: str, *, after_seq: int = 0, since: float | None = None,
                            until: float | None = None, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Logged predictions of ``service`` in time order (``after_seq`` must be 0: files have no sequence).

        Prefer the aggregations of :mod:`monitoring.log_queries`: this reads every row asked for.
        """
        if after_seq:
            raise ValueError("a Parquet prediction log has no sequence numbers: read by time (since/until)")
        try:
            table = self._query(service, since=since, until=until)
        except KeyError:  # declared, no file yet: no rows, every column (a service with no log at all raises)
            names = [*PREDICTION_COLUMNS, *self.prediction_table(service)]
            names = names if columns is None else ["seq", *dict.fromkeys(["ts", *columns])]
            return self.shape(service, pd.DataFrame({name: pd.Series(dtype=object) for name in names}))
        if columns is not None:
            unknown = [c for c in columns if c not in table.columns]
            if unknown:
                raise ValueError(f"prediction log of {service!r} has no columns {unknown}; "
                                 f"it has {list(table.columns)}")
            table = table.select(*columns) if "ts" in columns else table.select("ts", *columns)
        frame = self.engine.execute(table.order_by("ts"))
        frame.insert(0, "seq", np.arange(1, len(frame) + 1, dtype=np.int64))
        return self.shape(service, frame)

    @survives_compaction
    def find_predictions(self, service: str, *, prediction_id: str | None = None, since: float | None = None,
                         until: float | None = None, filters: Mapping[str, tuple[str, object]] | None = None,
                         newest_first: bool = True, limit: int = 50) -> pd.DataFrame:
        """A few logged predictions by id, time and feature conditions (a bounded query)."""
        if not 1 <= limit <= 10_000:
            raise ValueError(f"limit must be between 1 and 10000; got {limit}")
        ordered = self.engine.scheme == "duckdb"
        try:
            table = self._query(service, since=since, until=until, in_order=ordered)
        except KeyError:
            return self.read_prediction_log(service).head(0) if self.has_log(service) else pd.DataFrame()
        if prediction_id is not None:
            table = table.filter(table.id == str(prediction_id))
        sealed = self.store.sealer.columns(service)
        for column, (op, value) in (filters or {}).items():
            if column not in table.columns:
                raise ValueError(f"no column {column!r} in the prediction log of {service!r}")
            if op not in _OPERATORS:
                raise ValueError(f"filter operator must be one of {list(_OPERATORS)}; got {op!r}")
            if column in sealed:
                if op not in ("==", "!=", "in"):
                    raise ValueError(f"column {column!r} is personal and sealed: only ==, != and in can be asked")
                value = ([self.store.sealer.seal(column, v) for v in value] if op == "in"
                         else self.store.sealer.seal(column, value))
            field = table[column]
            table = table.filter({"==": field == value, "!=": field != value, "<": field < value,
                                  "<=": field <= value, ">": field > value, ">=": field >= value}[op]
                                 if op != "in" else field.isin(list(value)))
        keys = [table.ts, *((table.filename, table.file_row_number) if ordered else ())]  # ties: as written
        order = [key.desc() if newest_first else key.asc() for key in keys]
        found = self.engine.execute(table.order_by(order).limit(limit))
        return self.shape(service, found.drop(columns=["filename", "file_row_number"], errors="ignore"))

    @survives_compaction
    def count_predictions(self, service: str, *, since: float = 0.0) -> int:
        """Number of logged predictions of ``service`` since ``since``."""
        try:
            table = self._query(service, since=since)
        except KeyError:
            return 0
        return int(self.engine.execute(table.count()))

    @survives_compaction
    def newest_prediction_ts(self, service: str) -> float | None:
        """Time of the newest logged prediction of ``service``, or None when there is none."""
        try:
            table = self._query(service)
        except KeyError:
            return None
        newest = self.engine.execute(table.ts.max())
        return None if newest is None or pd.isna(newest) else float(newest)

    # -- upkeep ---------------------------------------------------------------------------------------

    def maintain(self, *, now: float, keep_days: float | None = None) -> dict[str, list[str]]:
        """Compact every service's partitions and delete those older than ``keep_days`` (None keeps all).

        Run by the collector that holds the maintenance lease; safe with writers and readers at work
        (see :mod:`monitoring.partitions`).

        Parameters
        ----------
        now : float
            Unix seconds, the caller's clock.
        keep_days : float, optional

        Returns
        -------
        dict
            ``{"compacted": [...], "deleted": [...]}``, each ``service/table/date=…``.
        """
        done: dict[str, list[str]] = {"compacted": [], "deleted": []}
        for service in self.log.services():
            if keep_days is not None:
                done["deleted"] += [f"{service}/{name}" for name in
                                    self.log.apply_retention(service, keep_days=keep_days, now=now)]
            for table in ("predictions", "labels"):
                done["compacted"] += [f"{service}/{table}/{name}" for name in self.log.compact(service, table)]
        return done
