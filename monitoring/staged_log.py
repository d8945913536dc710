"""A prediction-log file staged as Parquet partitions beside the store's log, so that DuckDB answers its pages.

A service that does not log through Vantage names its own file in ``[services.prediction_log]``
(CSV, Parquet or JSON Lines). Rather than holding the whole file in the dashboard's memory, it
is read once per change, :data:`CHUNK_ROWS` rows at a time, put in the production shape by the
in-memory reader's rules (:func:`monitoring.production.prediction_log_rows`) and written by the
Parquet log's own writer (:meth:`monitoring.parquet_log.ParquetPredictionLog.log_predictions`,
so personal columns are sealed at rest as in the store's log) into a folder of its own::

    <log>/<service>/log-file/<stamp>/<service>/predictions/date=YYYY-MM-DD/part-….parquet

:class:`monitoring.production.LogFileMirror` then asks DuckDB of that copy exactly what it asks
of the store's log. A copy is named by the file's path, the columns read from it, its size and
its modification time, so every process finds the same copy and a changed file is staged again;
the :data:`STAGED_LOG_COPIES` newest stay (a reader may still be reading an older one).

A store that keeps its log in its own tables (``log = "store"``) has no Parquet log to stage
beside: the copy then goes under a staging log of its own (:func:`staging_log`), a folder of the
dashboard's, and the store's labels are copied beside it as they are beside a Parquet log.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd

from monitoring.config import PredictionLogConfig
from monitoring.engine_mirror import ProductionDataError
from monitoring.files import read_table_file
from monitoring.log_engines import LogEngine
from monitoring.parquet_log import ParquetPredictionLog
from monitoring.partitions import _alive, _writer_pid
from monitoring.windows import as_unix_seconds

CHUNK_ROWS = 250_000
"""Rows of the file read, shaped and written at a time: what staging holds in memory, whatever the file's size."""

STAGED_LOG_COPIES = 2
"""Staged copies of one service's prediction-log file kept."""


def log_file_stamp(config: PredictionLogConfig, features: tuple[str, ...]) -> str:
    """A name for the file as it is now: its path, the columns read from it, its size and modification time.

    Raises
    ------
    ProductionDataError
        When the file cannot be read (the message says why, as the in-memory reader's does).
    """
    path = Path(config.path)
    try:
        stat = path.stat()
    except (OSError, ValueError):
        _chunks(config)  # says what is wrong with the path, in the in-memory reader's words
        raise ProductionDataError(f"prediction-log file {path} cannot be read") from None
    what = "\0".join([str(path.resolve()), config.timestamp, config.id or "", config.prediction or "",
                      config.score or "", *features, str(stat.st_size), str(stat.st_mtime_ns)])
    return hashlib.sha1(what.encode()).hexdigest()[:16]


def _parquet_chunks(path: Path) -> Iterator[pd.DataFrame]:
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(path).iter_batches(batch_size=CHUNK_ROWS):
        yield batch.to_pandas()


_CHUNK_READERS: dict[str, Callable[[Path], Iterator[pd.DataFrame]]] = {
    ".csv": lambda path: pd.read_csv(path, chunksize=CHUNK_ROWS),
    ".parquet": _parquet_chunks,
    ".pq": _parquet_chunks,
    ".jsonl": lambda path: pd.read_json(path, lines=True, chunksize=CHUNK_ROWS),
    ".ndjson": lambda path: pd.read_json(path, lines=True, chunksize=CHUNK_ROWS),
}


def _chunks(config: PredictionLogConfig) -> Iterator[pd.DataFrame]:
    """The file's chunk reader (the path checked as :func:`monitoring.files.read_table_file` checks it)."""
    return read_table_file(config.path, what="prediction-log file", readers=_CHUNK_READERS,
                           error=ProductionDataError)


def staging_log(store, folder: str | Path) -> ParquetPredictionLog:
    """A Parquet log under ``folder`` that only stages prediction-log files, for a store whose log is in its tables.

    Parameters
    ----------
    store : Store
        Its sealer seals the copies' personal columns; its labels join them.
    folder : str or Path
        A local directory of the dashboard's (made on the first staging).

    Returns
    -------
    ParquetPredictionLog
        Given to :func:`monitoring.production.production_source` as ``staging``.
    """
    return ParquetPredictionLog(store, LogEngine(f"duckdb:{Path(folder).absolute()}"))


def staged_log_folder(location: str, service: str) -> Path:
    """Where the store's Parquet log at ``location`` keeps the staged copies of ``service``'s prediction-log file."""
    return Path(location) / service / "log-file"


def stage_log_file(log: ParquetPredictionLog, service: str, config: PredictionLogConfig, *,
                   features: tuple[str, ...]) -> ParquetPredictionLog:
    """The prediction-log file staged beside the store's Parquet log ``log`` (made when it changed), as a log.

    Parameters
    ----------
    log : ParquetPredictionLog
        The store's: the copy is written under its directory, sealed by its store's sealer, and
        read on its engine's connection (so that the labels beside it join the copy there).
    service : str
        The log's name (``ServiceConfig.log_name``).
    config : PredictionLogConfig
    features : tuple of str
        Feature columns the file must have (the service's schema).

    Returns
    -------
    ParquetPredictionLog
        Over the staged copy; ``service``'s rows in it, in the file's order.

    Raises
    ------
    ProductionDataError
        When the file cannot be read, lacks a column, or has a time that is neither Unix seconds
        nor ISO 8601 (named as the in-memory reader names them); nothing is staged then.
    """
    folder = staged_log_folder(log.engine.location, service)
    stamp = log_file_stamp(config, features)
    target = folder / stamp
    if not target.is_dir():
        part = folder / f".{stamp}-{uuid.uuid4().hex[:8]}.{os.getpid()}.tmp"  # names its writer
        try:
            _write_copy(log, service, config, features, part)
            try:
                part.rename(target)  # a reader finds the whole copy or none
            except OSError:  # another process staged the same file first: its copy holds the same rows
                if not target.is_dir():
                    raise
        finally:
            shutil.rmtree(part, ignore_errors=True)
        _forget_old_copies(folder, keep=target)
    return ParquetPredictionLog(log.store, log.engine.over(target))


def _write_copy(log: ParquetPredictionLog, service: str, config: PredictionLogConfig, features: tuple[str, ...],
                part: Path) -> None:
    part.mkdir(parents=True)
    copy = ParquetPredictionLog(log.store, LogEngine(f"duckdb:{part}"))
    file = Path(config.path)
    first_row = 0
    chunks = _chunks(config)
    while True:
        try:
            raw = next(chunks, None)
        except Exception as exc:  # each reader raises its own family of errors
            raise ProductionDataError(f"prediction-log file {file} cannot be read: {exc}") from None
        if raw is None:
            break
        rows = prediction_log_rows(raw, config, features=features, first_row=first_row)
        for column in ("prediction", "score"):  # the store's log's shape, whichever columns the file names
            if column not in rows.columns:
                rows[column] = float("nan")
        copy.log_predictions(service, rows)
        first_row += len(raw)
    for _ in range(2):  # a day's files merged into one; the second pass deletes the merged inputs
        copy.log.compact(service, "predictions", min_files=2)


def prediction_log_rows(raw: pd.DataFrame, config: PredictionLogConfig, *, features: tuple[str, ...],
                        first_row: int = 0) -> pd.DataFrame:
    """Rows of a prediction-log file (all of it, or a chunk starting at its row ``first_row``) in the production
    shape of :func:`monitoring.production.read_prediction_log_file`, in the file's order.

    Raises
    ------
    ProductionDataError
        Missing columns, unparseable timestamps (the message names the file and the column).
    """
    file = Path(config.path)
    wanted = {"id": config.id, "prediction": config.prediction, "score": config.score}
    missing = [c for c in [config.timestamp, *features] if c not in raw.columns]
    if missing:
        raise ProductionDataError(f"prediction-log file {file} lacks columns {missing}; it has {list(raw.columns)}")
    frame = pd.DataFrame({"ts": _unix_seconds(raw[config.timestamp], file, config.timestamp)})
    if config.id and config.id in raw.columns:
        frame["id"] = raw[config.id].astype(str)
    else:  # rows can still be picked (Explain, What-if): by their place in the file
        frame["id"] = [f"row-{first_row + i + 1}" for i in range(len(raw))]
    for name, column in wanted.items():
        if name != "id" and column and column in raw.columns:
            frame[name] = raw[column]
    for feature in features:
        frame[feature] = raw[feature]
    return frame


def _unix_seconds(values: pd.Series, file: Path, column: str) -> pd.Series:
    seconds, readable = as_unix_seconds(values)
    if not readable.all():
        bad = values[~readable]
        raise ProductionDataError(
            f"prediction-log file {file}: column {column!r} must hold Unix seconds or ISO 8601 times; "
            f"{len(bad)} value(s) such as {bad.iloc[0]!r} are neither")
    return pd.Series(seconds, index=values.index)


def _forget_old_copies(folder: Path, *, keep: Path) -> None:
    """Delete all but the newest copies, and what a staging process that died left half-written."""
    entries = [entry for entry in folder.iterdir() if entry.is_dir()]
    for left in entries:
        if left.name.startswith(".") and not _alive(_writer_pid(left)):
            shutil.rmtree(left, ignore_errors=True)
    copies = sorted((entry for entry in entries if not entry.name.startswith(".")),
                    key=lambda entry: entry.stat().st_mtime_ns, reverse=True)
    for old in copies[STAGED_LOG_COPIES:]:
        if old != keep:
            shutil.rmtree(old, ignore_errors=True)
