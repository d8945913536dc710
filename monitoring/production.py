"""Production data: what a service was asked and what it answered.

Two sources, one shape (a DataFrame with ``ts``, the feature columns and, where known,
``id``, ``prediction`` and ``score``):

* the prediction log in the store, for services that log through Vantage (the demo service
  and anything built from its template). :class:`PredictionLogMirror` keeps it in memory and
  reads only the rows appended since its last read, so a page rerun over a million logged
  predictions costs one small query;
* a prediction-log file named in the config (CSV, Parquet or JSON Lines), for services that
  do not; it is read again only when the file changes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from monitoring.config import PredictionLogConfig, ServiceConfig, check_path
from monitoring.store import Store


def _read_json_lines(path: Path) -> pd.DataFrame:
    return pd.read_json(path, lines=True)


LOG_READERS = {".csv": pd.read_csv, ".parquet": pd.read_parquet, ".pq": pd.read_parquet,
               ".jsonl": _read_json_lines, ".ndjson": _read_json_lines}


class ProductionDataError(ValueError):
    """Production data that cannot be used; the message names the source and the columns."""


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


class PredictionLogMirror:
    """An in-memory copy of one service's prediction log, refreshed incrementally.

    Parameters
    ----------
    store : Store
    service : str
    """

    def __init__(self, store: Store, service: str):
        self.store = store
        self.service = service
        self._chunks: list[pd.DataFrame] = []
        self._combined: pd.DataFrame | None = None
        self._last_seq = 0
        self._lock = threading.Lock()

    def read(self) -> ProductionData:
        """All logged rows, after fetching those appended since the last call.

        Raises
        ------
        ProductionDataError
            When the service has no prediction log in the store.
        """
        with self._lock:
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
            return ProductionData(self._combined, f"prediction log in the store ({len(self._combined):,} rows)")


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
        ``ts`` (Unix seconds, float), the features, and ``id``/``prediction``/``score`` when
        the file has them, sorted by time.

    Raises
    ------
    ProductionDataError
        Missing or unreadable file, missing columns, unparseable timestamps.
    """
    try:
        check_path(config.path)
    except ValueError as exc:
        raise ProductionDataError(f"prediction-log file {config.path!r} {exc}") from None
    file = Path(config.path)
    reader = LOG_READERS.get(file.suffix.lower())
    if reader is None:
        raise ProductionDataError(
            f"prediction-log file {file}: unsupported type {file.suffix!r}; accepted: {', '.join(LOG_READERS)}")
    try:
        found = file.exists()
    except OSError as exc:  # a name too long for the file system, a loop of links...
        raise ProductionDataError(f"prediction-log file {file} cannot be read: {exc}") from None
    if not found:
        raise ProductionDataError(f"prediction-log file {file} does not exist")
    try:
        raw = reader(file)
    except Exception as exc:  # each reader raises its own family of errors
        raise ProductionDataError(f"prediction-log file {file} cannot be read: {exc}") from None
    wanted = {"ts": config.timestamp, "id": config.id, "prediction": config.prediction, "score": config.score}
    missing = [c for c in [config.timestamp, *features] if c not in raw.columns]
    if missing:
        raise ProductionDataError(f"prediction-log file {file} lacks columns {missing}; it has {list(raw.columns)}")
    frame = pd.DataFrame({"ts": _unix_seconds(raw[config.timestamp], file, config.timestamp)})
    for name, column in wanted.items():
        if name != "ts" and column and column in raw.columns:
            frame[name] = raw[column].astype(str) if name == "id" else raw[column]
    for feature in features:
        frame[feature] = raw[feature]
    return frame.sort_values("ts", kind="stable").reset_index(drop=True)


def _unix_seconds(values: pd.Series, file: Path, column: str) -> pd.Series:
    seconds, readable = as_unix_seconds(values)
    if not readable.all():
        bad = values[~readable]
        raise ProductionDataError(
            f"prediction-log file {file}: column {column!r} must hold Unix seconds or ISO 8601 times; "
            f"{len(bad)} value(s) such as {bad.iloc[0]!r} are neither")
    return pd.Series(seconds, index=values.index)


def as_unix_seconds(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Times as Unix seconds (NaN where none is given) and whether each one could be read.

    Accepts Unix seconds, datetimes, and text holding either (ISO 8601 for dates).
    """
    present = values.notna().to_numpy()
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        seconds = values.to_numpy(dtype=float)
    elif isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(values):
        stamps = pd.to_datetime(values, utc=True)
        seconds = ((stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds()).to_numpy(dtype=float)
    else:
        objects = values.astype(object)
        seconds = pd.to_numeric(objects, errors="coerce").to_numpy(dtype=float, copy=True)
        text = present & np.isnan(seconds)
        if text.any():
            parsed = pd.to_datetime(objects[text].astype(str), utc=True, errors="coerce", format="ISO8601")
            seconds[text] = ((parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds()).to_numpy(dtype=float)
    readable = ~present | np.isfinite(seconds)
    return np.where(present, seconds, np.nan), readable


class FileMirror:
    """A prediction-log file, read again only when its modification time or size changes."""

    def __init__(self, service: ServiceConfig):
        self.service = service
        self._stamp: tuple[float, int] | None = None
        self._frame: pd.DataFrame | None = None
        self._lock = threading.Lock()

    def read(self) -> ProductionData:
        """The file's rows in the production shape."""
        config = self.service.prediction_log
        with self._lock:
            try:
                stat = Path(config.path).stat()
                stamp = (stat.st_mtime, stat.st_size)
            except OSError:
                stamp = None
            if self._frame is None or stamp is None or stamp != self._stamp:
                self._frame = read_prediction_log_file(config, features=self.service.features)
                self._stamp = stamp
            return ProductionData(self._frame, f"prediction-log file {config.path} ({len(self._frame):,} rows)")


def production_source(store: Store, service: ServiceConfig) -> PredictionLogMirror | FileMirror:
    """The mirror that serves ``service``'s production data: its file if configured, else the store."""
    if service.prediction_log is not None:
        return FileMirror(service)
    return PredictionLogMirror(store, service.log_name)
