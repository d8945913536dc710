"""Production data: what a service was asked and what it answered.

Three sources, one set of questions (:class:`monitoring.engine_mirror.EngineMirror` and the
in-memory mirrors below answer the same ones), rows in one shape (a DataFrame with ``ts``, the
feature columns and, where known, ``id``, ``prediction`` and ``score``):

* the prediction log in Parquet partitions (the default), counted where it lives by DuckDB or
  Spark (:class:`ParquetMirror`);
* the prediction log in the store's own tables, counted by PostgreSQL or SQLite
  (:class:`monitoring.store_log.StoreLogMirror`). :class:`PredictionLogMirror` holds the same
  tables' rows in memory (at most :data:`IN_MEMORY_LOG_ROWS`), reading only the rows appended
  since its last read: the rows the engines' answers are tested against;
* a prediction-log file named in the config (CSV, Parquet or JSON Lines), for services that
  do not log through Vantage: staged beside a Parquet log a chunk at a time when it changes and
  counted there by DuckDB (:class:`LogFileMirror`, :mod:`monitoring.staged_log`); beside a log in
  the store's tables, staged the same way in a folder of the dashboard's (``staging``). :class:`FileMirror`
  reads the file into memory again when it changes: the rows the staged copy is tested against.

:func:`production_source` picks one for a service.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import shutil
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from monitoring.config import PredictionLogConfig, ServiceConfig
from monitoring.drift import (
    ReferenceProfile,
    WindowTallies,
    tallies_from_arrays,
    tallies_to_arrays,
)
from monitoring.engine_mirror import KEPT_FILES, EngineMirror, ProductionDataError, join_in_memory, no_tallies
from monitoring.files import ChangedFile, read_table_file
from monitoring.label_queries import (
    kept_rows,
    summarize_labeled,
)
from monitoring.label_summary import LabelledSummary
from monitoring.labels import LabeledPredictions, LabelFileMirror, LogLabels, StoreLabelMirror
from monitoring.log_engines import survives_compaction
from monitoring.log_queries import (
    LogSummary,
    LogTraffic,
    log_traffic,
    summarize,
    tally_frame,
    tally_windows,
    traffic_frame,
)
from monitoring.parquet_log import ParquetPredictionLog
from monitoring.partitions import DAY_SECONDS, partition_start
from monitoring.performance_sums import (
    KeptLabels,
    read_kept,
    stays_fresh,
    write_kept,
)
from monitoring.staged_labels import stage_label_file, stage_store_labels, staged_folder, store_labels_folder
from monitoring.staged_log import log_file_stamp, prediction_log_rows, stage_log_file
from monitoring.store import Store
from monitoring.windows import parse_window

TRAFFIC_COLUMNS = ("ts", "prediction", "score", "model_version")
"""What the traffic counts read of each logged row."""


def _read_json_lines(path: Path) -> pd.DataFrame:
    return pd.read_json(path, lines=True)


LOG_READERS = {".csv": pd.read_csv, ".parquet": pd.read_parquet, ".pq": pd.read_parquet,
               ".jsonl": _read_json_lines, ".ndjson": _read_json_lines}


@dataclass(frozen=True)
class ProductionData:
    """Current production rows of one service and where they came from.

    Attributes
    ----------
    frame : DataFrame
        ``ts`` (Unix seconds), the features, and ``id``/``prediction``/``score`` when known,
        ordered as logged.
    source : str
        Plain description, e.g. ``"prediction log in the store (1,234,567 rows)"``.
    """

    frame: pd.DataFrame
    source: str


class _FrameQuestions:
    """Aggregates over a mirror's rows in memory: the same queries the engines answer where the rows live.

    A mirror that inherits it has ``read(*, columns=None) -> ProductionData``.
    """

    def problems(self) -> tuple[str, ...]:
        """Parts of the source left out, each named (none: a mirror reads its rows whole or fails)."""
        return ()

    def warm_up(self, personal: Sequence[str] = ()) -> pd.DataFrame:
        """Read every row once (every page's answer comes from them), so the first view finds them in memory."""
        del personal
        return self.read().frame

    def columns(self) -> tuple[str, ...]:
        """The columns logged (from the rows in memory)."""
        return tuple(self.read().frame.columns)

    def summary(self) -> LogSummary:
        """Rows and time span (see :class:`monitoring.log_queries.LogSummary`)."""
        data = self.read()
        ts = data.frame["ts"].to_numpy(dtype=float) if len(data.frame) else np.array([])
        finite = ts[np.isfinite(ts)]
        return LogSummary(rows=len(data.frame), first_ts=float(finite.min()) if len(finite) else np.nan,
                          last_ts=float(finite.max()) if len(finite) else np.nan, source=data.source)

    def tallies(self, profile: ReferenceProfile, *, window: str | int, since: float | None = None,
                until: float | None = None) -> WindowTallies:
        """Counts per window for :func:`monitoring.drift.compute_drift_from_counts` (:func:`tally_frame`)."""
        return tally_frame(self.read().frame, profile, window=window, since=since, until=until)

    def traffic(self, **options) -> LogTraffic:
        """The traffic up to ``now`` (``log_traffic``'s options), counted by :func:`traffic_frame`."""
        return traffic_frame(self.read(columns=TRAFFIC_COLUMNS).frame, **options)

    def join_labels(self, labels, *, now: float, task: str = "auto", every_row: bool = False) -> LabeledPredictions:
        """The rows joined to ``labels`` in memory (:func:`monitoring.labels.join_labels`); ``every_row`` is
        always true here."""
        del every_row
        return join_in_memory(self, labels, now=now, task=task)

    def summarize_labels(self, labels, *, now: float, task: str = "auto", judged_days: float = 7.0,
                         threshold: float | None = 0.5, served_hours: pd.DataFrame | None = None) -> LabelledSummary:
        """The labelled predictions summed per slice (:class:`monitoring.label_summary.LabelledSummary`), from
        the rows joined in memory (which count the served hours themselves)."""
        del served_hours
        return summarize_labeled(self.join_labels(labels, now=now, task=task), judged_days=judged_days,
                                 threshold=threshold)


IN_MEMORY_LOG_ROWS = 2_000_000
"""The most rows of a prediction log in the store's tables that the dashboard reads into memory (about
3.6 GB); a larger one is a message naming the Parquet log, never a dashboard taken down by its memory."""


class PredictionLogMirror(_FrameQuestions):
    """An in-memory copy of one service's prediction log in SQL, refreshed incrementally (at most
    :data:`IN_MEMORY_LOG_ROWS` rows).

    Parameters
    ----------
    store : Store or SqlPredictionLog
        Whatever answers ``read_prediction_log``, ``prediction_table`` and ``find_predictions``.
    service : str
    """

    def __init__(self, store: Store, service: str):
        self.store = store
        self.service = service
        self._chunks: list[pd.DataFrame] = []
        self._combined: pd.DataFrame | None = None
        self._last_seq = 0
        self._lock = threading.Lock()

    def read(self, *, columns: Sequence[str] | None = None) -> ProductionData:
        """All logged rows (only ``columns`` and ``ts`` when given), after fetching those appended since the last call.

        Raises
        ------
        ProductionDataError
            When the service has no prediction log in the store, or one of more than
            :data:`IN_MEMORY_LOG_ROWS` rows.
        """
        with self._lock:
            self._check_size()
            try:
                new = self.store.read_prediction_log(self.service, after_seq=self._last_seq)
            except KeyError:
                raise ProductionDataError(
                    f"service {self.service!r} has no prediction log in the store: log its predictions through "
                    "Vantage (see demo/service.py) or name a prediction-log file in [services.prediction_log]"
                ) from None
            if len(new):
                self._last_seq = int(new["seq"].iloc[-1])
                self._chunks.append(new)
                self._combined = None
            if self._combined is None:
                self._combined = (_concat_keeping_categories(self._chunks) if self._chunks
                                  else self.store.read_prediction_log(self.service, after_seq=0))
                self._chunks = [self._combined]
            return ProductionData(_columns(self._combined, columns),
                                  f"prediction log in the store ({len(self._combined):,} rows)")

    def _check_size(self) -> None:
        """Refuse to hold more than :data:`IN_MEMORY_LOG_ROWS`: count what a read would add first (the rows
        since the newest one held, by the store's time index)."""
        held = sum(len(chunk) for chunk in self._chunks)
        newest = float(self._chunks[-1]["ts"].max()) if held else 0.0
        coming = self.store.count_predictions(self.service, since=newest if math.isfinite(newest) else 0.0)
        if held + coming > IN_MEMORY_LOG_ROWS:
            raise ProductionDataError(
                f"the prediction log of {self.service!r} in the store's tables holds about {held + coming:,} "
                f"predictions, more than the {IN_MEMORY_LOG_ROWS:,} the dashboard reads into memory (about 1.8 GB "
                "a million): keep the log in Parquet, where it is counted without being read "
                '([store] log = "duckdb:var/log", the default, or a Spark log); see the README, "Where the '
                'prediction log lives"')

    def has_rows(self) -> bool:
        """Whether the store holds a prediction log for the service (the row finders can be offered)."""
        try:
            self.store.prediction_table(self.service)
        except KeyError:
            return False
        return True

    def find(self, *, prediction_id: str | None = None, since: float | None = None, until: float | None = None,
             filters: Mapping[str, tuple[str, object]] | None = None, newest_first: bool = True,
             limit: int = 50) -> pd.DataFrame:
        """A few logged predictions by id, time and feature conditions (the store's index-backed lookup).

        Same parameters and result as :meth:`monitoring.store.Store.find_predictions`.
        """
        return self.store.find_predictions(self.service, prediction_id=prediction_id, since=since, until=until,
                                           filters=filters, newest_first=newest_first, limit=limit)


def _columns(frame: pd.DataFrame, columns: Sequence[str] | None) -> pd.DataFrame:
    """``ts`` and the asked columns the frame has (all of them when none are asked)."""
    if columns is None:
        return frame
    return frame[[c for c in dict.fromkeys(["ts", *columns]) if c in frame.columns]]


def _concat_keeping_categories(chunks: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate chunks; categorical columns stay categorical (with the union of categories)."""
    if len(chunks) == 1:
        return chunks[0]
    categorical = [c for c in chunks[0].columns if isinstance(chunks[0][c].dtype, pd.CategoricalDtype)]
    combined = pd.concat(chunks, ignore_index=True)
    for column in categorical:
        if not isinstance(combined[column].dtype, pd.CategoricalDtype):
            combined[column] = combined[column].astype("category")
    return combined


def read_prediction_log_file(config: PredictionLogConfig, *, features: tuple[str, ...]) -> pd.DataFrame:
    """Read a prediction-log file into the production shape.

    Parameters
    ----------
    config : PredictionLogConfig
        The file and the names of its time, id, prediction and score columns.
    features : tuple of str
        Feature columns the file must have.

    Returns
    -------
    DataFrame
        ``ts`` (Unix seconds, float), ``id`` (the file's, as text, or ``row-N`` for its N-th row
        when it names none), the features, and ``prediction``/``score`` when the file has them,
        sorted by time.

    Raises
    ------
    ProductionDataError
        Missing or unreadable file, missing columns, unparseable timestamps.
    """
    raw = read_table_file(config.path, what="prediction-log file", readers=LOG_READERS, error=ProductionDataError)
    frame = prediction_log_rows(raw, config, features=features)
    return frame.sort_values("ts", kind="stable").reset_index(drop=True)


class FileMirror(_FrameQuestions):
    """A prediction-log file, read again only when its modification time or size changes.

    Parameters
    ----------
    service : ServiceConfig
    features : tuple of str, default=()
        Feature columns the file must have (the service's schema); empty = the configured ones.
    """

    def __init__(self, service: ServiceConfig, *, features: tuple[str, ...] = ()):
        self.service = service
        self.features = tuple(features) or tuple(service.features)
        self._file = ChangedFile(service.prediction_log.path, self._load)

    def _load(self) -> pd.DataFrame:
        return read_prediction_log_file(self.service.prediction_log, features=self.features)

    def read(self, *, columns: Sequence[str] | None = None) -> ProductionData:
        """The file's rows in the production shape (only ``columns`` and ``ts`` when given)."""
        frame = self._file.get()
        return ProductionData(_columns(frame, columns),
                              f"prediction-log file {self.service.prediction_log.path} ({len(frame):,} rows)")

    def has_rows(self) -> bool:
        """Whether the file can be read and holds predictions."""
        try:
            return len(self.read().frame) > 0
        except ProductionDataError:
            return False

    def find(self, *, prediction_id: str | None = None, since: float | None = None, until: float | None = None,
             filters: Mapping[str, tuple[str, object]] | None = None, newest_first: bool = True,
             limit: int = 50) -> pd.DataFrame:
        """A few of the file's predictions by id, time and feature conditions, as :meth:`PredictionLogMirror.find`.

        Raises
        ------
        ProductionDataError
            When the file cannot be read.
        ValueError
            For a filter on a column the file lacks or an unknown operator.
        """
        frame = self.read().frame
        found = find_in_frame(frame, prediction_id=prediction_id, since=since, until=until, filters=filters,
                              newest_first=newest_first, limit=limit, source=self.service.name)
        for column in ("prediction", "score"):  # the store's shape, whichever columns the file names
            if column not in found.columns:
                found[column] = np.nan
        return found


def rows_between(frame: pd.DataFrame, since: float | None = None, until: float | None = None) -> pd.DataFrame:
    """The rows of a production frame made in ``[since, until)`` (Unix seconds; None = no bound)."""
    if since is None and until is None:
        return frame
    ts = frame["ts"].to_numpy(dtype=float)
    keep = (ts >= (since if since is not None else -np.inf)) & (ts < (until if until is not None else np.inf))
    return frame[keep]


_OPERATORS = {"==": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal, ">": np.greater,
              ">=": np.greater_equal}


def find_in_frame(frame: pd.DataFrame, *, prediction_id: str | None = None, since: float | None = None,
                  until: float | None = None, filters: Mapping[str, tuple[str, object]] | None = None,
                  newest_first: bool = True, limit: int = 50, source: str = "the log") -> pd.DataFrame:
    """The rows of a production frame matching an id, a time range and conditions, newest first, at most ``limit``.

    The in-memory twin of :meth:`monitoring.store.Store.find_predictions` (same operators:
    ``==, !=, <, <=, >, >=, in``).
    """
    if not 1 <= limit <= 10_000:
        raise ValueError(f"limit must be between 1 and 10000; got {limit}")
    keep = np.ones(len(frame), dtype=bool)
    if prediction_id is not None:
        if "id" not in frame.columns:
            return frame.iloc[:0]
        keep &= (frame["id"].astype(str) == str(prediction_id)).to_numpy()
    ts = frame["ts"].to_numpy(dtype=float)
    if since is not None:
        keep &= ts >= since
    if until is not None:
        keep &= ts < until
    for column, (op, value) in (filters or {}).items():
        if column not in frame.columns:
            raise ValueError(f"no column {column!r} in the prediction log of {source!r}")
        if op == "in":
            keep &= frame[column].isin(list(value)).to_numpy()
        elif op in _OPERATORS:
            keep &= np.asarray(_OPERATORS[op](frame[column].to_numpy(), value), dtype=bool)
        else:
            raise ValueError(f"filter operator must be one of {[*_OPERATORS, 'in']}; got {op!r}")
    found = frame[keep]
    order = np.argsort(-found["ts"].to_numpy(dtype=float) if newest_first else found["ts"].to_numpy(dtype=float),
                       kind="stable")[:limit]
    return found.iloc[order].reset_index(drop=True)


CACHED_WINDOWS = ("day", "week")
"""Windows counted once per Parquet file and kept: a file lies in one UTC day, so in one day and one week."""
UPKEEP_TALLY_ROWS = 5_000_000
"""Predictions one upkeep run counts into kept files at most (beyond its first file); the next run goes on."""
_TALLY_CACHE: dict[tuple, WindowTallies] = {}
_TALLY_CACHE_SIZE = 4096
_TALLY_LOCK = threading.Lock()


def profile_key(profile: ReferenceProfile) -> str:
    """A short digest of what a tally is counted against: each column's fine edges or categories."""
    digest = hashlib.sha256()
    for name, column in profile.columns.items():
        digest.update(f"{name}|{column.kind}|{column.categories!r}|".encode())
        digest.update(np.asarray(column.fine_edges, dtype=float).tobytes())
    return digest.hexdigest()[:16]


def tally_folder(log: ParquetPredictionLog, service: str, profile: ReferenceProfile) -> Path:
    """Where the counts of ``service``'s files against ``profile`` are kept (one ``<file>.<window>.npz`` each).

    Parameters
    ----------
    log : ParquetPredictionLog
    service : str
        The log's name.
    profile : ReferenceProfile

    Returns
    -------
    Path
        ``<log root>/<service>/tallies/<profile key>``.
    """
    return Path(log.log.root) / service / "tallies" / profile_key(profile)


def _kept_path(folder: Path, path: str, spec: str) -> Path:
    return folder / f"{Path(path).stem}.{spec}.npz"


def _load_tallies(path: Path, columns: list[str]) -> WindowTallies | None:
    """Counts kept beside the log, or None when absent, unreadable or of other columns."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as arrays:
            tallies = tallies_from_arrays(arrays)
    except (OSError, ValueError, KeyError):
        return None
    return tallies if list(tallies.columns) == columns else None


def _save_tallies(path: Path, tallies: WindowTallies) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(temporary, **tallies_to_arrays(tallies))
    os.replace(temporary, path)


def _files_within(files: Sequence[str], since: float | None, until: float | None) -> tuple[list[str], list[str]]:
    """Files whose rows all lie in ``[since, until)`` — their UTC day does, or the day began in it and every
    row of the file precedes ``until`` (today's, written before now) — and those the range cuts through (or
    undated); files of days wholly outside the range are in neither."""
    whole, cut = [], []
    for path in files:
        day = partition_start(Path(path).parent.name)
        if day is not None and ((since is not None and day + DAY_SECONDS <= since)
                                or (until is not None and day >= until)):
            continue  # its day, so each of its rows, lies outside the range: nothing to count
        inside = day is not None and (since is None or day >= since) and (
            until is None or day + DAY_SECONDS <= until or (day < until and _newest_ts(path) < until))
        (whole if inside else cut).append(path)
    return whole, cut


@functools.lru_cache(maxsize=65_536)
def _file_span(path: str) -> tuple[int, float, float] | None:
    """Rows, first and last ``ts`` of a Parquet file from its metadata (the file never changes once written):
    ``(n, nan, nan)`` for a file without a time; None when a row group's statistics are missing or
    unreadable, or a time is infinite, and the file has to be read. A NaN time, which Parquet's
    statistics leave out, is no time, as a missing one is."""
    import pyarrow.parquet as pq

    try:
        metadata = pq.read_metadata(path)
        column = metadata.schema.names.index("ts")
        first, last = math.inf, -math.inf
        for group in range(metadata.num_row_groups):
            rows = metadata.row_group(group)
            statistics = rows.column(column).statistics
            if statistics is None:
                return None
            if not statistics.has_min_max:
                if statistics.null_count == rows.num_rows:  # no time in this group: nothing to span
                    continue
                return None
            first, last = min(first, float(statistics.min)), max(last, float(statistics.max))
    except (OSError, ValueError, TypeError):
        return None
    if not (math.isfinite(first) and math.isfinite(last)):  # no time at all, or a NaN or infinite one: read it
        return (metadata.num_rows, math.nan, math.nan) if first == math.inf and last == -math.inf else None
    return metadata.num_rows, first, last


def _newest_ts(path: str) -> float:
    """The newest ``ts`` in a Parquet file (:func:`_file_span`); infinity when unknown, so the file is counted
    row by row, and minus infinity when it holds no time."""
    span = _file_span(path)
    if span is None:
        return math.inf
    return -math.inf if math.isnan(span[2]) else span[2]


def _tallied_columns(log: ParquetPredictionLog, service: str, profile: ReferenceProfile,
                     snapshot) -> tuple[list[str], list[str]]:
    """The profile's columns the engine counts (in the files' schema, not personal), and the personal ones."""
    sealed = [c for c in log.store.sealer.columns(service) if c in profile.columns]
    present = set(snapshot.schema.names) if snapshot.schema is not None else set()
    plain = [c for c in [*profile.features, *profile.prediction_columns] if c in present and c not in sealed]
    return plain, sealed


def file_tallies(log: ParquetPredictionLog, service: str, profile: ReferenceProfile, files: Sequence[str],
                 spec: str, columns: list[str]) -> list[WindowTallies]:
    """Each file's counts of ``columns`` per ``spec`` window: kept ones from memory or disk, the others counted
    by DuckDB in one pass over all of them, then kept (in memory and under :func:`tally_folder`).

    The one counting of a file that both a page (:meth:`ParquetMirror.tallies`) and the upkeep
    (:func:`keep_file_tallies`) do, so that either finds what the other kept.

    Parameters
    ----------
    log : ParquetPredictionLog
        A ``duckdb:`` log.
    service : str
        The log's name.
    profile : ReferenceProfile
    files : sequence of str
        Files of ``service``'s predictions (each lies in one UTC day).
    spec : {"day", "week"}
        One of :data:`CACHED_WINDOWS`.
    columns : list of str
        The columns counted: the profile's that the files have, personal ones left out.

    Returns
    -------
    list of WindowTallies
        One per file that holds rows, in the order of ``files``.
    """
    folder = tally_folder(log, service, profile)
    against = folder.name
    found: dict[str, WindowTallies] = {}
    for path in files:
        key = (path, against, spec, tuple(columns))
        tallies = _TALLY_CACHE.get(key) or _load_tallies(_kept_path(folder, path, spec), columns)
        if tallies is not None:
            found[path] = tallies
    unseen = [path for path in files if path not in found]
    if unseen:
        with log.engine.lock:
            counted = tally_windows(log.engine.connect(), log.engine.table_of(unseen, with_file=True),
                                    profile, window=spec, columns=columns, by="filename")
        for path in unseen:
            tallies = counted.get(path)
            if tallies is None:  # a file without a row in the range: nothing to keep
                continue
            found[path] = tallies
            _save_tallies(_kept_path(folder, path, spec), tallies)
    with _TALLY_LOCK:
        for path, tallies in found.items():
            if len(_TALLY_CACHE) >= _TALLY_CACHE_SIZE:
                _TALLY_CACHE.pop(next(iter(_TALLY_CACHE)))
            _TALLY_CACHE[(path, against, spec, tuple(columns))] = tallies
    return [found[path] for path in files if path in found]


@dataclass(frozen=True)
class KeptTallies:
    """What one upkeep run counted of a service's log (:func:`keep_file_tallies`).

    Attributes
    ----------
    files : tuple of str
        The files counted and kept, for every window of :data:`CACHED_WINDOWS`.
    rows : int
        The predictions in them.
    left : int
        Files whose rows all precede ``now`` still without kept counts: the next run's.
    """

    files: tuple[str, ...] = ()
    rows: int = 0
    left: int = 0


def keep_file_tallies(log: ParquetPredictionLog, service: str, profile: ReferenceProfile, *, now: float,
                      max_rows: int = UPKEEP_TALLY_ROWS) -> KeptTallies:
    """Count and keep the day and week counts of ``service``'s files that have none yet (the log's upkeep).

    Only files whose rows all precede ``now`` are counted (a file never changes once written, and
    later rows come in new files): every file of a past day, and today's written before ``now``,
    so that a view counts only the files of the last minute; files a compaction replaced are
    not listed.
    The newest are counted first, up to ``max_rows`` predictions (one pass per window: the
    engine is held that long at most), and the next run goes on. Personal columns are never
    counted into a kept file (:meth:`ParquetMirror.tallies` opens them at each view). A page
    view then finds every file of a past day counted (:func:`file_tallies`).

    Parameters
    ----------
    log : ParquetPredictionLog
    service : str
        The log's name (``ServiceConfig.log_name``).
    profile : ReferenceProfile
        The profile the pages count against (same :func:`tally_folder`).
    now : float
        Unix seconds, the caller's clock.
    max_rows : int, default=UPKEEP_TALLY_ROWS
        Predictions to count at most in this run; its first file is counted whatever its size.

    Returns
    -------
    KeptTallies
        Nothing counted for a log on Spark, without files, or with every file kept.
    """
    if log.engine.scheme != "duckdb" or not log.has_log(service):
        return KeptTallies()
    snapshot = log.log.snapshot(service, "predictions")
    if snapshot.empty:
        return KeptTallies()
    columns, _ = _tallied_columns(log, service, profile, snapshot)
    folder = tally_folder(log, service, profile)
    over = [path for path in snapshot.files if (day := partition_start(Path(path).parent.name)) is not None
            and (day + DAY_SECONDS <= now or _newest_ts(path) <= now)]
    unkept = [path for path in reversed(over)
              if not all(_kept_path(folder, path, spec).exists() for spec in CACHED_WINDOWS)]
    counted: list[str] = []
    rows = 0
    for path in unkept:
        span = _file_span(path)  # the file's metadata, read once per file
        size = span[0] if span is not None else _file_rows(path)
        if counted and rows + size > max_rows:
            break
        counted.append(path)
        rows += size
    for spec in CACHED_WINDOWS:  # one pass over this run's files per window
        file_tallies(log, service, profile, counted, spec, columns)
    _forget_gone_files(folder.parent, snapshot.files)
    return KeptTallies(files=tuple(counted), rows=rows, left=len(unkept) - len(counted))


def _forget_gone_files(folder: Path, files: Sequence[str]) -> None:
    """Delete the kept counts of files no longer listed (merged by a compaction, or past the retention), under
    every profile's folder: a reader that still lists such a file counts it again."""
    listed = {Path(path).stem for path in files}
    for kept in folder.glob("*/*.npz"):
        if kept.name.split(".", 1)[0] not in listed and not kept.name.startswith("."):
            kept.unlink(missing_ok=True)


def _file_rows(path: str) -> int:
    import pyarrow.parquet as pq

    return pq.read_metadata(path).num_rows


class ParquetMirror(EngineMirror):
    """One service's prediction log in Parquet partitions: aggregates asked of DuckDB, rows read per file.

    :meth:`summary`, :meth:`traffic`, :meth:`tallies` and the kept label join's counts
    (:class:`monitoring.engine_mirror.EngineMirror`: :meth:`keep_labels`, :meth:`kept_sums`,
    :meth:`kept_decisions`, :meth:`kept_detail`) never bring rows into this process (but for
    personal columns, which are sealed in the files and opened here one column at a time);
    :meth:`find` brings a bounded few. A join is kept in a folder of its own under
    ``<log>/<service>/labelled/``; a label file is staged as Parquet under
    ``<log>/<service>/label-files/`` (labels an older Vantage kept in the store's table under
    ``store-labels/``) and joined by the engine as well. :meth:`read` still gives every row, for
    labels the engine cannot reach (beside a log on an object store) that join in memory, reading
    only the files that are new since its last call (files never change once written).

    Parameters
    ----------
    log : ParquetPredictionLog
    service : str
        The log's name (``ServiceConfig.log_name``).
    """

    _source_words = "prediction log in Parquet"
    """Where the rows are, in the words the pages show (with their count)."""

    def __init__(self, log: ParquetPredictionLog, service: str):
        super().__init__(log, service)
        self._frames: dict[tuple[str, tuple[str, ...] | None], pd.DataFrame] = {}
        self._combined: dict[tuple[str, ...] | None, tuple[tuple[str, ...], pd.DataFrame]] = {}
        self._lock = threading.Lock()

    def _snapshot(self):
        try:
            self.log.prediction_table(self.service)
        except KeyError:
            raise self._missing() from None
        return self.log.log.snapshot(self.service, "predictions")

    def keeps_labels(self, labels) -> bool:
        """Whether the log's engine joins ``labels`` (:meth:`keep_labels`): labels kept beside this log, a label
        file (staged beside it first; not on an object store), or labels an older Vantage kept in the store's table
        (copied beside it first), :mod:`monitoring.staged_labels`."""
        if isinstance(labels, LabelFileMirror):
            return staged_folder(self.log.engine.location, self.service) is not None
        if isinstance(labels, StoreLabelMirror):
            return labels.store is self.log.store
        return isinstance(labels, LogLabels) and labels.log is self.log

    def labels_table(self, labels):
        """``labels`` as a table of the log's engine (a label file, or the store's table, staged beside the log
        first), or None when none is stored."""
        if isinstance(labels, LabelFileMirror):
            staged = stage_label_file(labels.config, staged_folder(self.log.engine.location, self.service))
            return self.log.engine.file_table(staged)
        if isinstance(labels, StoreLabelMirror):
            copied = stage_store_labels(labels.store, labels.service,
                                        store_labels_folder(self.log.engine.location, self.service))
            return self.log.engine.file_table(*copied) if copied else None
        return labels.table()

    def _kept_folder(self) -> str:
        return f"{self.log.engine.location.rstrip('/')}/{self.service}/labelled"

    def _kept_place(self, now: float) -> tuple[str, object]:
        folder = self._kept_folder()
        name = f"{int(now):012d}-{uuid.uuid4().hex[:8]}"
        local = "://" not in folder
        if local:
            Path(folder, name).mkdir(parents=True, exist_ok=True)
        return f"{folder}/{name}/rows.parquet", Path(folder, name) if local else None

    def _kept_record(self, kept: KeptLabels, token: object) -> None:
        if token is not None:  # an object store's join is not recorded: each process makes its own
            write_kept(kept, token)
            _forget_old_files(token.parent, keep=KEPT_FILES)

    def latest_kept(self, *, now: float, max_age: float, stretch: float = 1.0) -> KeptLabels | None:
        """The newest labels kept (:meth:`keep_labels`, by this process or the collector's upkeep) at most
        ``max_age`` seconds before ``now`` (longer for a join that took long:
        :func:`monitoring.performance_sums.stays_fresh`), or None."""
        folder = Path(self._kept_folder())
        if not folder.is_dir():
            return None
        for entry in sorted(folder.iterdir(), reverse=True):  # newest first (folders are named by their time)
            kept = read_kept(entry) if entry.is_dir() else None
            if kept is None or kept.now > now:
                continue
            # the newest join up to now decides: an older one is staler still
            return kept if now <= kept.now + stays_fresh(kept, every=max_age, stretch=stretch) else None
        return None

    def _placed_files(self, kept: KeptLabels, size: int, since: float | None) -> tuple[Path, Path] | None:
        """Where the rows placed in windows of ``size`` from ``since`` are kept beside a local join on DuckDB
        (``placed-<size>-<since>.parquet`` and its windows); None elsewhere."""
        if kept.path is None or "://" in kept.path or self.log.engine.scheme != "duckdb":
            return None
        name = f"placed-{size}-{'all' if since is None else repr(float(since))}"
        folder = Path(kept.path).parent
        return folder / f"{name}.parquet", folder / f"{name}.windows.parquet"

    def _placed(self, kept: KeptLabels, size: int, since: float | None) -> tuple | None:
        files = self._placed_files(kept, size, since)
        if files is None or not files[1].exists():
            return None
        with self.log.engine.lock:
            return kept_rows(self.log.engine.connect(), str(files[0])), pd.read_parquet(files[1])

    def _keep_placed(self, kept: KeptLabels, size: int, since: float | None, placed, windows: pd.DataFrame) -> tuple:
        files = self._placed_files(kept, size, since)
        if files is None:
            return placed, windows
        placed_file, windows_file = files
        written = placed_file.with_name(f"{placed_file.stem}-{uuid.uuid4().hex[:8]}.part")
        backend = self.log.engine.connect()
        backend.raw_sql(f"COPY ({backend.compile(placed)}) TO '{str(written).replace(chr(39), chr(39) * 2)}' "
                        "(FORMAT parquet, COMPRESSION zstd)")
        written.replace(placed_file)
        windows.to_parquet(written, index=False)  # written last: a reader finds both or neither
        written.replace(windows_file)
        return kept_rows(backend, str(placed_file)), windows

    def problems(self) -> tuple[str, ...]:
        """Files of the log left out (truncated, or a column of the wrong type), each named."""
        try:
            return self._snapshot().problems
        except ProductionDataError:
            return ()

    def has_rows(self) -> bool:
        """Whether the service has a prediction log here (declared by its writer; the row finders can be offered)."""
        return self.log.has_log(self.service)

    def columns(self) -> tuple[str, ...]:
        """The columns logged, from the files' schema (no row is read)."""
        schema = self._snapshot().schema
        return tuple(schema.names) if schema is not None else ()

    @survives_compaction
    def summary(self) -> LogSummary:
        """Rows and time span, from the files' metadata (counted by DuckDB when a file's statistics lack them)."""
        snapshot = self._snapshot()
        source = self._source_words + " ({rows:,} rows)"
        if snapshot.empty:
            return LogSummary(rows=0, first_ts=np.nan, last_ts=np.nan, source=source.format(rows=0))
        spans = [_file_span(path) for path in snapshot.files]
        if all(span is not None for span in spans):
            timed = [span for span in spans if not math.isnan(span[1])]
            rows = sum(span[0] for span in spans)
            return LogSummary(rows=rows, first_ts=min((span[1] for span in timed), default=np.nan),
                              last_ts=max((span[2] for span in timed), default=np.nan),
                              source=source.format(rows=rows))
        table = self.log.engine.table(self.service).table
        with self.log.engine.lock:
            return summarize(self.log.engine.connect(), table, source=source)

    @survives_compaction
    def traffic(self, **options) -> LogTraffic:
        """The traffic up to ``now`` (``log_traffic``'s options), counted by the engine."""
        snapshot = self._snapshot()
        if snapshot.empty:
            return traffic_frame(pd.DataFrame({"ts": pd.Series(dtype=float)}), **options)
        table = self.log.engine.table(self.service).table
        with self.log.engine.lock:
            return log_traffic(self.log.engine.connect(), table, **options)

    def _kept_folder(self) -> str:
        return f"{self.log.engine.location.rstrip('/')}/{self.service}/labelled"

    @survives_compaction
    def tallies(self, profile: ReferenceProfile, *, window: str | int, since: float | None = None,
                until: float | None = None) -> WindowTallies:
        """Counts per window computed by DuckDB over the partitions that overlap ``[since, until)``.

        Day and week windows are counted once per file and kept (in memory and beside the log,
        per reference profile, by :func:`file_tallies`): a file never changes, so a view recounts
        only the files it has not seen and those the range cuts through (today's, usually). The
        collector's upkeep counts every file of a past day beforehand (:func:`keep_file_tallies`),
        so that no view pays for the first count.
        """
        snapshot = self._snapshot()
        spec = parse_window(window)
        plain, sealed = _tallied_columns(self.log, self.service, profile, snapshot)
        if snapshot.empty:
            return no_tallies(profile, spec)
        engine = self.log.engine
        whole, cut = _files_within(snapshot.files, since, until)
        if spec not in CACHED_WINDOWS or engine.scheme != "duckdb":
            whole, cut = [], list(snapshot.files)
        parts = file_tallies(self.log, self.service, profile, whole, spec, plain)
        if cut:
            table = (engine.table_of(cut) if engine.scheme == "duckdb"  # Spark lists the partitions itself
                     else engine.table(self.service, since=since, until=until).table)
            with engine.lock:
                parts.append(tally_windows(engine.connect(), table, profile, window=spec, since=since, until=until,
                                           columns=plain))
        return self._summed(parts, profile, spec, sealed=sealed, since=since, until=until)

    def read(self, *, columns: Sequence[str] | None = None) -> ProductionData:
        """Every logged row, in time order; only the files new since the last call are read.

        Parameters
        ----------
        columns : sequence of str, optional
            Read only these (``ts`` always) — e.g. the label join needs ``id``, ``ts``,
            ``prediction`` and ``score``, not the features. Columns the log lacks are left out.
        """
        snapshot = self._snapshot()
        wanted = None if columns is None else tuple(dict.fromkeys(["ts", *columns]))
        with self._lock:
            files = snapshot.files
            cached = self._combined.get(wanted)
            if cached is None or cached[0] != files:
                frames = []
                for path in files:
                    key = (path, wanted)
                    if key not in self._frames:
                        self._frames[key] = self._read_file(path, wanted)
                    frames.append(self._frames[key])
                for key in [k for k in self._frames if k[0] not in files]:
                    del self._frames[key]
                combined = (_concat_keeping_categories(frames) if frames
                            else pd.DataFrame({"ts": pd.Series(dtype=float)}))
                combined = combined.sort_values("ts", kind="stable").reset_index(drop=True)
                self._combined[wanted] = cached = (files, combined)
            frame = cached[1]
        return ProductionData(frame, f"{self._source_words} ({len(frame):,} rows)")

    def _read_file(self, path: str, columns: tuple[str, ...] | None) -> pd.DataFrame:
        import pyarrow.parquet as pq

        if columns is not None:
            present = set(pq.read_schema(path).names)
            columns = [c for c in columns if c in present]
        return self.log.shape(self.service, pq.read_table(path, columns=columns).to_pandas())


class LogFileMirror(ParquetMirror):
    """A prediction-log file, staged as Parquet partitions beside the store's log and asked like it.

    The file is staged when it changed (:func:`monitoring.staged_log.stage_log_file`, reading it a
    chunk at a time); every question is then the :class:`ParquetMirror`'s, asked of the staged
    copy on the store's log's DuckDB connection, so the file's rows never all come into this
    process, and labels beside the store's log join the copy where it is.

    Parameters
    ----------
    log : ParquetPredictionLog
        The store's log (a local directory), or a staging log of the store's
        (:func:`monitoring.staged_log.staging_log`), where the copy is staged.
    service : ServiceConfig
        With ``prediction_log`` set.
    features : tuple of str, default=()
        Feature columns the file must have (the service's schema); empty = the configured ones.
    """

    def __init__(self, log: ParquetPredictionLog, service: ServiceConfig, *, features: tuple[str, ...] = ()):
        self.config = service.prediction_log
        self.features = tuple(features) or tuple(service.features)
        self._staged: tuple[str, ParquetPredictionLog] | None = None
        self._stage_lock = threading.Lock()
        super().__init__(log, service.log_name)
        self._source_words = f"prediction-log file {self.config.path}"

    @property
    def log(self) -> ParquetPredictionLog:
        """The staged copy of the file as it is now (staged again when it changed), which every question reads.

        Raises
        ------
        ProductionDataError
            When the file cannot be read, lacks a column or has an unreadable time.
        """
        stamp = log_file_stamp(self.config, self.features)
        with self._stage_lock:
            if self._staged is None or self._staged[0] != stamp:
                self._staged = (stamp, stage_log_file(self.store_log, self.service, self.config,
                                                      features=self.features))
            return self._staged[1]

    @log.setter
    def log(self, value: ParquetPredictionLog) -> None:  # what EngineMirror.__init__ is given: the store's log
        self.store_log = value

    def _missing(self) -> ProductionDataError:
        return ProductionDataError(f"prediction-log file {self.config.path} holds no predictions")

    def keeps_labels(self, labels) -> bool:
        """Whether the engine joins ``labels``: a label file or the store's table (staged beside the copy), or labels
        beside the store's log (on the same connection)."""
        return super().keeps_labels(labels) or (isinstance(labels, LogLabels) and labels.log is self.store_log)

    def has_rows(self) -> bool:
        """Whether the file can be read and holds predictions."""
        try:
            return self.log.has_log(self.service)
        except ProductionDataError:
            return False


def _forget_old_files(folder: Path, *, keep: int) -> None:
    """Delete all but the ``keep`` newest entries of ``folder`` (files, or Spark's folders of files)."""
    entries = sorted(folder.iterdir(), key=lambda entry: entry.stat().st_mtime, reverse=True)
    for entry in entries[keep:]:
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def production_source(store: Store, service: ServiceConfig, *, features: tuple[str, ...] = (),
                      staging: ParquetPredictionLog | None = None) -> FileMirror | EngineMirror:
    """The mirror that serves ``service``'s production data: its file if configured (staged, :class:`LogFileMirror`),
    else the store's log (in Parquet; in the store's tables, counted by PostgreSQL or SQLite,
    :class:`monitoring.store_log.StoreLogMirror`).

    Parameters
    ----------
    store : Store
    service : ServiceConfig
    features : tuple of str, default=()
        The service's (its schema's), which a prediction-log file must have.
    staging : ParquetPredictionLog, optional
        Where a prediction-log file is staged when the store keeps its log in its own tables
        (:func:`monitoring.staged_log.staging_log`). Beside a Parquet log, the file is staged under
        that log. Without either, the file is read into memory (:class:`FileMirror`).
    """
    log = store.predictions if store is not None else None
    if service.prediction_log is not None:
        if isinstance(log, ParquetPredictionLog):  # staged beside it, asked of its engine
            return LogFileMirror(log, service, features=features)
        if staging is not None:
            return LogFileMirror(staging, service, features=features)
        return FileMirror(service, features=features)
    if isinstance(log, ParquetPredictionLog):
        if log.has_log(service.log_name) or not _has_sql_log(log.sql, service.log_name):
            return ParquetMirror(log, service.log_name)
        log = log.sql  # a log written to the store's tables before the Parquet log was the default
    from monitoring.store_log import StoreLogMirror, store_log

    return StoreLogMirror(store_log(log), service.log_name)  # counted by the database, as DuckDB counts Parquet


def _has_sql_log(log, service: str) -> bool:
    try:
        log.prediction_table(service)
    except KeyError:
        return False
    return True
