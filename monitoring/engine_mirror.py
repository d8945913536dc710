"""What a prediction log kept in an engine answers the pages: the questions every engine answers the same way.

:class:`EngineMirror` is the part of a mirror that only needs an Ibis backend over the log (its
``log.engine``): the label join, its summary, the kept label join and the Performance page's
counts of it (:mod:`monitoring.label_queries`, :mod:`monitoring.performance_sums`), and the
bounded row lookups. Two mirrors build on it:

* :class:`monitoring.production.ParquetMirror`: the log in Parquet partitions, counted by DuckDB
  or Spark; a kept join is a Parquet file beside the log;
* :class:`monitoring.store_log.StoreLogMirror`: the log in the tables of a PostgreSQL store,
  counted by PostgreSQL; a kept join is an unlogged table of the server's.

Each says where its labels must be to be joined where the log lives (:meth:`EngineMirror.keeps_labels`),
how it reads a table of its log, and where it keeps a join (the ``_kept_*`` and ``_placed``
methods). A label file, and labels an older Vantage kept in the store's table beside a Parquet
log, are staged where the log is first (:mod:`monitoring.staged_labels`) and joined there too;
only labels beside a log on an object store join in this process.
"""

from __future__ import annotations

import dataclasses
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence

import ibis.expr.types as ir
import pandas as pd

from monitoring.drift import ReferenceProfile, WindowTallies, add_tallies, merge_tallies
from monitoring.label_queries import (
    join_labels_in_engine,
    keep_labels_in_engine,
    kept_rows,
    summarize_kept,
    summarize_labeled,
    summarize_labels_in_engine,
)
from monitoring.label_summary import LabelledSummary
from monitoring.labels import LabeledPredictions, join_labels
from monitoring.log_engines import survives_compaction
from monitoring.log_queries import tally_frame
from monitoring.performance import DecisionsOverTime, PerformanceDetail
from monitoring.performance_sums import (
    KeptLabels,
    WindowSums,
    kept_detail,
    largest_errors,
    row_windows,
    window_decisions,
    window_sums,
)
from monitoring.windows import row_count

LABEL_JOIN_COLUMNS = ("id", "ts", "prediction", "score")
"""What the label join reads of each logged row (never the features)."""
KEPT_FILES = 3
"""Kept label joins of a service left where its log is: the newest, which sessions may still be reading."""


class ProductionDataError(ValueError):
    """Production data that cannot be used; the message names the source and the columns."""


def no_tallies(profile: ReferenceProfile, window) -> WindowTallies:
    """The counts of a log with no row (every column of ``profile``, no window)."""
    empty = {c: pd.Series(dtype=object if profile.columns[c].kind == "categorical" else float)
             for c in profile.features}
    return tally_frame(pd.DataFrame({"ts": pd.Series(dtype=float), **empty}), profile, window=window)


def join_in_memory(source, labels, *, now: float, task: str) -> LabeledPredictions:
    """The label join in this process: the rows' ids, times, predictions and scores (``source.read``), and every
    label (``labels.read``)."""
    return join_labels(source.read(columns=LABEL_JOIN_COLUMNS).frame, labels.read(), now=now, task=task,
                       source=labels.source)


class EngineMirror(ABC):
    """The engine-side questions of one service's prediction log (see the module).

    Parameters
    ----------
    log
        Has ``engine`` (``table``, ``connect``, ``lock``, ``scheme``, ``location``), ``store`` and
        ``find_predictions``.
    service : str
        The log's name (``ServiceConfig.log_name``).
    """

    def __init__(self, log, service: str):
        self.log = log
        self.service = service

    # -- what each mirror says about itself ---------------------------------------------------

    @abstractmethod
    def keeps_labels(self, labels) -> bool:
        """Whether ``labels`` are where this log is, so that its engine joins them (:meth:`keep_labels`)."""

    @abstractmethod
    def read(self, *, columns: Sequence[str] | None = None):
        """Every logged row (only ``columns`` and ``ts``): for labels that join in this process."""

    @abstractmethod
    def latest_kept(self, *, now: float, max_age: float, stretch: float = 1.0) -> KeptLabels | None:
        """The newest labels kept (:meth:`keep_labels`, by this process or the collector's upkeep) at most
        ``max_age`` seconds before ``now`` (longer for a join that took long:
        :func:`monitoring.performance_sums.stays_fresh`), or None."""

    def _missing(self) -> ProductionDataError:
        return ProductionDataError(
            f"service {self.service!r} has no prediction log in the store yet ({self.log.engine.location}): log its "
            "predictions through Vantage (see demo/service.py), capture them, or name a prediction-log file in "
            "[services.prediction_log]")

    def _table(self, *, since: float | None = None) -> ir.Table | None:
        """The log's predictions as a table of its engine, in their written order where the engine can tell it."""
        engine = self.log.engine
        return engine.table(self.service, in_order=engine.scheme in ("duckdb", "postgres"), since=since).table

    def labels_table(self, labels) -> ir.Table | None:
        """``labels`` (where :meth:`keeps_labels` says they are) as a table of the log's engine, or None when none
        is stored."""
        return labels.table()

    @abstractmethod
    def _kept_place(self, now: float) -> tuple[str, object]:
        """Where a join made at ``now`` is kept (the path or table ``keep_labels_in_engine`` writes), and a token
        for :meth:`_kept_record`."""

    @abstractmethod
    def _kept_record(self, kept: KeptLabels, token: object) -> None:
        """Record ``kept`` where :meth:`latest_kept` finds it, and forget the oldest joins."""

    def _placed(self, kept: KeptLabels, size: int, since: float | None) -> tuple[ir.Table, pd.DataFrame] | None:
        """The kept rows placed in windows of ``size`` predictions from ``since``, when kept already."""
        del kept, size, since
        return None

    def _keep_placed(self, kept: KeptLabels, size: int, since: float | None, placed: ir.Table,
                     windows: pd.DataFrame) -> tuple[ir.Table, pd.DataFrame]:
        """Keep what :func:`monitoring.performance_sums.row_windows` placed, for :meth:`_placed` to find; return
        it as a table to read."""
        del kept, size, since
        return placed, windows

    def _summed(self, parts: list[WindowTallies], profile: ReferenceProfile, spec, *, sealed: Sequence[str],
                since: float | None, until: float | None) -> WindowTallies:
        """The engine's counts (``parts``, of disjoint rows) added up, and the ``sealed`` (personal) columns, which
        the engine only holds sealed, opened and counted here."""
        if not parts:
            return no_tallies(profile, spec)
        counted = parts[0] if len(parts) == 1 else add_tallies(parts)
        if not sealed:
            return counted
        opened = self.log.read_prediction_log(self.service, since=since, until=until, columns=["ts", *sealed])
        return merge_tallies(counted, tally_frame(opened, profile, window=spec, columns=sealed))

    # -- the questions ------------------------------------------------------------------------

    def warm_up(self, personal: Sequence[str] = ()) -> pd.DataFrame | None:
        """Only the ``personal`` columns (for the privacy filter to learn their values), or nothing: the
        pages' answers are counted where the rows are, so there is nothing to hold in memory beforehand."""
        present = [c for c in personal if c != "ts"]
        return self.read(columns=present).frame if present else None

    @survives_compaction
    def join_labels(self, labels, *, now: float, task: str = "auto", every_row: bool = False) -> LabeledPredictions:
        """The predictions joined to the labels that arrived by ``now``.

        Labels where this log is are joined by its engine
        (:func:`monitoring.label_queries.join_labels_in_engine`): only the labelled predictions
        come back, with every prediction counted per hour. A label file is staged there first
        (:meth:`labels_table`). Other labels (the SQL store's table beside a Parquet log), or
        ``every_row`` (windows of a number of predictions need every row), join in memory.
        """
        table = None if every_row or not self.keeps_labels(labels) else self._table()
        if table is None:
            return join_in_memory(self, labels, now=now, task=task)
        with self.log.engine.lock:
            return join_labels_in_engine(self.log.engine.connect(), table, self.labels_table(labels), now=now,
                                         task=task, source=labels.source)

    @survives_compaction
    def summarize_labels(self, labels, *, now: float, task: str = "auto", judged_days: float = 7.0,
                         threshold: float | None = 0.5, served_hours: pd.DataFrame | None = None) -> LabelledSummary:
        """The labelled predictions summed per slice (:class:`monitoring.label_summary.LabelledSummary`).

        Labels where this log is are summed by its engine
        (:func:`monitoring.label_queries.summarize_labels_in_engine`): sums per day and a bounded
        sample come back, never the labelled rows. Other labels join in memory first.
        ``served_hours``: the log's predictions per hour when the caller counted them
        (``traffic(...).hours``).
        """
        table = self._table() if self.keeps_labels(labels) else None
        if table is None:
            return summarize_labeled(self.join_labels(labels, now=now, task=task), judged_days=judged_days,
                                     threshold=threshold)
        with self.log.engine.lock:
            return summarize_labels_in_engine(self.log.engine.connect(), table, self.labels_table(labels), now=now,
                                              task=task, judged_days=judged_days, threshold=threshold,
                                              source=labels.source, served_hours=served_hours)

    @survives_compaction
    def keep_labels(self, labels, *, now: float, task: str = "auto", served_hours: pd.DataFrame | None = None,
                    judged_days: float | None = None, threshold: float | None = 0.5) -> KeptLabels:
        """Join the labels that arrived by ``now`` where the log lives and keep the labelled predictions there.

        The engine writes them (:func:`monitoring.label_queries.keep_labels_in_engine`) where the
        mirror keeps joins (a Parquet file beside the log, or a table of the store's server; the
        :data:`KEPT_FILES` newest are kept, older ones deleted) and only the join's counts come
        back. With ``judged_days``, the Overview's summary of them (at ``threshold``) is made too
        and kept with them. Ask for counts of them with :meth:`kept_sums`, :meth:`kept_decisions`
        and :meth:`kept_detail`; :meth:`latest_kept` finds them again, from another process too.

        Raises
        ------
        ValueError
            When ``labels`` are not where this log is (:meth:`keeps_labels`).
        ProductionDataError
            When the log holds no prediction of the service.
        """
        if not self.keeps_labels(labels):
            raise ValueError(f"the labels of {self.service!r} ({labels.source}) are not where its log is")
        engine = self.log.engine
        table = self._table()
        if table is None:
            raise self._missing()
        path, token = self._kept_place(now)
        started = time.perf_counter()  # how long it took decides how often it is made again, not what it holds
        with engine.lock:
            backend = engine.connect()
            kept = keep_labels_in_engine(backend, table, self.labels_table(labels), now=now, task=task, path=path,
                                         source=labels.source, served_hours=served_hours)
            if judged_days is not None:
                kept = dataclasses.replace(kept, summary=summarize_kept(backend, kept, judged_days=judged_days,
                                                                        threshold=threshold))
        kept = dataclasses.replace(kept, seconds=time.perf_counter() - started)
        self._kept_record(kept, token)
        return kept

    def kept_sums(self, kept: KeptLabels, *, window: str, now: float, judged_days: float,
                  since: float | None = None, **options) -> WindowSums:
        """:func:`monitoring.performance_sums.window_sums` of ``kept``, counted by the log's engine (its options).

        Windows of a number of predictions place the kept rows among every logged one first
        (:meth:`_kept_windows`).
        """
        engine = self.log.engine
        rows, windows = self._kept_windows(kept, window, since=since)
        if windows is not None and len(windows):  # the newest windows only: the range starts at the first
            since = float(windows["window_start"].iloc[0])
        with engine.lock:
            return window_sums(engine.connect(), rows, task=kept.task, classes=kept.classes, window=window, now=now,
                               judged_days=judged_days, since=since, windows=windows, **options)

    def _kept_windows(self, kept: KeptLabels, window: str, *, since: float | None) -> tuple:
        """The kept rows as a table of the log's engine and, for windows of a number of predictions, the windows
        with each row's window start (:func:`monitoring.performance_sums.row_windows`).

        Placing the rows ranks every logged prediction: where the mirror can keep them, it is done once per kept
        join, window size and range (:meth:`_placed`, :meth:`_keep_placed`), so the sums' queries and the
        decisions read the placed rows instead of ranking again.
        """
        engine = self.log.engine
        size = row_count(window)
        with engine.lock:
            rows = kept_rows(engine.connect(), kept.path)
        if size is None:
            return rows, None
        found = self._placed(kept, int(size), since)
        if found is not None:
            return found
        table = self._table(since=since)
        if table is None:
            raise self._missing()
        with engine.lock:
            placed, windows = row_windows(engine.connect(), table, rows, size=int(size), since=since)
            return self._keep_placed(kept, int(size), since, placed, windows)

    def kept_summary(self, kept: KeptLabels, **options) -> LabelledSummary:
        """:func:`monitoring.label_queries.summarize_kept` of ``kept``, counted by the log's engine (its options)."""
        engine = self.log.engine
        with engine.lock:
            return summarize_kept(engine.connect(), kept, **options)

    def kept_errors(self, kept: KeptLabels, *, limit: int = 50) -> pd.DataFrame:
        """:func:`monitoring.performance_sums.largest_errors` of ``kept``, found by the log's engine."""
        engine = self.log.engine
        with engine.lock:
            backend = engine.connect()
            return largest_errors(backend, kept_rows(backend, kept.path), task=kept.task, limit=limit)

    def kept_decisions(self, kept: KeptLabels, *, window: str, since: float | None = None,
                       **options) -> DecisionsOverTime:
        """:func:`monitoring.performance_sums.window_decisions` of ``kept``, counted by the log's engine."""
        engine = self.log.engine
        rows, windows = self._kept_windows(kept, window, since=since)
        if windows is not None and len(windows):  # as kept_sums
            since = float(windows["window_start"].iloc[0])
        with engine.lock:
            return window_decisions(engine.connect(), rows, kept, window=window, since=since, windows=windows,
                                    **options)

    def kept_detail(self, kept: KeptLabels, **options) -> PerformanceDetail:
        """:func:`monitoring.performance_sums.kept_detail` of ``kept``, counted by the log's engine (its options)."""
        engine = self.log.engine
        with engine.lock:
            backend = engine.connect()
            return kept_detail(backend, kept_rows(backend, kept.path), kept, **options)

    def find(self, *, prediction_id: str | None = None, since: float | None = None, until: float | None = None,
             filters: Mapping[str, tuple[str, object]] | None = None, newest_first: bool = True,
             limit: int = 50) -> pd.DataFrame:
        """A few logged predictions by id, time and feature conditions (a bounded query)."""
        return self.log.find_predictions(self.service, prediction_id=prediction_id, since=since, until=until,
                                         filters=filters, newest_first=newest_first, limit=limit)
