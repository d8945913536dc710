"""Ground-truth labels: they arrive after the predictions and are joined to them by id.

Two sources, one shape (a DataFrame of raw label rows ``prediction_id, ts, label``, where
``ts`` is the time the label *arrived*):

* the ``labels`` table of the store, where the demo's replayer and the template service's
  ``POST /labels`` endpoint write them. :class:`StoreLabelMirror` keeps it in memory and
  reads only the rows added since its last read;
* a CSV or Parquet file named in ``[services.labels]``, read again when it changes
  (:class:`LabelFileMirror`).

:func:`join_labels` is the one place where raw labels are checked. Only labels that have
arrived by ``now`` count. Bad input is counted and reported, never silently dropped and
never an exception: labels whose id matches no prediction, duplicate labels of one
prediction (the latest arrival is kept), labels that are not numbers or whose arrival time
cannot be read, and classes the model never predicts. Every label that arrived falls in
exactly one of those groups or is used::

    received = used + unmatched + duplicates + invalid + unknown_class
"""

from __future__ import annotations

import math
import re
import reprlib
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from monitoring.config import LabelsConfig, ServiceConfig
from monitoring.files import ChangedFile, read_table_file
from monitoring.parquet_log import ParquetPredictionLog
from monitoring.store import Store
from monitoring.store_schema import labels as labels_table
from monitoring.windows import as_unix_seconds

LABEL_COLUMNS = ("prediction_id", "ts", "label")
"""Columns of a raw label frame: the prediction's id, the arrival time, the true class or value."""

TASKS = ("classification", "regression")
"""What a model predicts: classes or numbers."""

MAX_CLASSES = 20
"""With more distinct whole-number predictions than this, ``task="auto"`` means regression."""

MAX_ID_LENGTH = 64
"""Longest prediction id the store keeps."""

ID_PATTERN = re.compile(r"[!-~]{1,64}")
"""What a prediction id sent to the template service may be: 1 to 64 printable ASCII characters, no
spaces or control characters (uuid hex, ``order-17``, ``42``)."""

LABEL_FILE_READERS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}

_EXAMPLES = 3


class LabelDataError(ValueError):
    """Labels or predictions that cannot be joined at all; the message names the source and columns."""


@dataclass(frozen=True)
class LabelQuality:
    """What happened to the labels that arrived: how many were used, and why the others were not.

    Attributes
    ----------
    received : int
        Label rows that had arrived by ``now`` (or carry no arrival time).
    used : int
        Labels joined to a prediction; one per labelled prediction.
    unmatched : int
        Labels whose id matches no logged prediction.
    duplicates : int
        Older labels of a prediction that has a later one; the latest arrival is used.
    invalid : int
        Labels without an id, with a value that is not a number, or with an arrival time
        that cannot be read.
    unknown_class : int
        Labels holding a class the model never predicts (classification only).
    pending : int
        Labels stored with an arrival time after ``now``; they count once that time passes.
    examples : mapping of str to tuple of str
        Up to three examples per problem (``unmatched``, ``duplicates``, ``invalid``,
        ``unknown_class``), as text.
    """

    received: int = 0
    used: int = 0
    unmatched: int = 0
    duplicates: int = 0
    invalid: int = 0
    unknown_class: int = 0
    pending: int = 0
    examples: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def problems(self) -> int:
        """Labels that arrived but were not used."""
        return self.unmatched + self.duplicates + self.invalid + self.unknown_class

    def sentences(self) -> list[str]:
        """The counts as plain sentences, problems first, e.g. ``"412 labels matched no prediction ..."``."""

        def examples(kind: str) -> str:
            shown = self.examples.get(kind, ())
            return f" (such as {', '.join(shown)})" if shown else ""

        lines = []
        if self.unmatched:
            lines.append(f"{_count(self.unmatched, 'label')} matched no prediction{examples('unmatched')}; "
                         "they are left out.")
        if self.duplicates:
            lines.append(f"{_count(self.duplicates, 'label')} {'was' if self.duplicates == 1 else 'were'} "
                         f"superseded by a later label of the same prediction{examples('duplicates')}; only the "
                         "latest arrival of each prediction is used.")
        if self.invalid:
            lines.append(f"{_count(self.invalid, 'label')} could not be read{examples('invalid')}: the id is "
                         "missing, the label is not a number or the arrival time is not a time; they are left out.")
        if self.unknown_class:
            lines.append(f"{_count(self.unknown_class, 'label')} hold a class the model never predicts"
                         f"{examples('unknown_class')}; they are left out.")
        lines.append(f"{_count(self.used, 'prediction')} {'has' if self.used == 1 else 'have'} a label, "
                     f"from {_count(self.received, 'label')} received"
                     + (f"; {self.pending:,} more will arrive later." if self.pending else "."))
        return lines


@dataclass(frozen=True)
class LabeledPredictions:
    """Predictions with the ground truth that has arrived for them.

    Attributes
    ----------
    frame : DataFrame
        One row per logged prediction (per labelled one when ``served_hours`` is given), in
        prediction-time order: ``id``, ``ts`` (prediction
        time), ``prediction``, ``score`` (positive-class probability, NaN when not logged),
        ``label`` (float, NaN while no usable label has arrived) and ``label_ts`` (arrival
        time of the label, NaN when unknown or absent).
    quality : LabelQuality
        What happened to the labels.
    task : {"classification", "regression"}
    classes : tuple of float
        Classes the model predicts (classification), sorted; empty for regression.
    now : float
        Labels that arrived after this time are not in ``frame``.
    source : str
        Where the labels came from, in words.
    served_hours : DataFrame or None
        None when ``frame`` holds every logged prediction (the join ran in memory). When the
        join ran where the log lives (:func:`monitoring.label_queries.join_labels_in_engine`),
        ``frame`` holds only the labelled predictions and this counts every logged one per
        UTC hour: ``hour_start`` (Unix seconds) and ``n``, which is all that hour, day and
        week windows need of the unlabelled ones.
    """

    frame: pd.DataFrame
    quality: LabelQuality
    task: str
    classes: tuple[float, ...]
    now: float
    source: str = ""
    served_hours: pd.DataFrame | None = None

    @property
    def n_labelled(self) -> int:
        """Number of predictions that have a label."""
        return int(self.frame["label"].notna().sum())

    @property
    def has_score(self) -> bool:
        """Whether a prediction carries a score (a decision threshold can apply)."""
        return bool(self.frame["score"].notna().any())

    @property
    def median_delay_seconds(self) -> float:
        """Median time between a prediction and the arrival of its label (NaN when unknown)."""
        delay = (self.frame["label_ts"] - self.frame["ts"]).dropna()
        return float(delay.median()) if len(delay) else math.nan


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun if n == 1 else noun + 's'}"


# -- task ------------------------------------------------------------------------------------


def infer_task(predictions: pd.DataFrame) -> str:
    """Whether a prediction log holds classes or numbers (:func:`task_of_values` on its rows).

    Parameters
    ----------
    predictions : DataFrame
        With ``prediction`` and optionally ``score``.

    Returns
    -------
    {"classification", "regression"}
    """
    has_score = "score" in predictions and pd.to_numeric(predictions["score"], errors="coerce").notna().any()
    if "prediction" not in predictions:
        return "classification"
    values = pd.to_numeric(predictions["prediction"], errors="coerce").dropna().to_numpy(dtype=float)
    whole = bool(np.all(np.isfinite(values) & (values == np.round(values))))
    return task_of_values(has_score=bool(has_score), values=np.unique(values), whole=whole)


def task_of_values(*, has_score: bool, values, whole: bool) -> str:
    """Classification when a score was logged, or when every prediction is a whole number and there are
    at most :data:`MAX_CLASSES` distinct ones (or none yet); regression otherwise.

    Parameters
    ----------
    has_score : bool
        Whether any prediction logged a score.
    values : sequence of float
        The distinct predictions (NaN left out); more than :data:`MAX_CLASSES` may be cut short.
    whole : bool
        Whether every prediction is a finite whole number.

    Returns
    -------
    {"classification", "regression"}
    """
    if has_score or len(values) == 0:
        return "classification"
    return "classification" if whole and len(values) <= MAX_CLASSES else "regression"


def predicted_classes(predictions: pd.DataFrame) -> tuple[float, ...]:
    """Classes a classifier predicts: the logged predictions, plus 0 and 1 for a 0/1 or scored model
    (:func:`classes_of_values` on its rows)."""
    values = pd.to_numeric(predictions.get("prediction", pd.Series(dtype=float)), errors="coerce").dropna()
    has_score = "score" in predictions and pd.to_numeric(predictions["score"], errors="coerce").notna().any()
    return classes_of_values(values=np.unique(values.to_numpy(dtype=float)), has_score=bool(has_score))


def classes_of_values(*, values, has_score: bool) -> tuple[float, ...]:
    """The classes of a classifier that predicted ``values``, sorted.

    A binary model that has so far predicted only one class still knows both, so labels of
    the other class are not mistaken for classes it never predicts: 0 and 1 are added for a
    scored model or one whose predictions are all 0 or 1.
    """
    classes = {float(v) for v in values}
    if has_score or classes <= {0.0, 1.0}:
        classes |= {0.0, 1.0}
    return tuple(sorted(classes))


# -- joining ---------------------------------------------------------------------------------


def join_labels(predictions: pd.DataFrame, labels: pd.DataFrame, *, now: float | None = None,
                task: str = "auto", source: str = "") -> LabeledPredictions:
    """Join the labels that have arrived by ``now`` to their predictions, counting bad input.

    Parameters
    ----------
    predictions : DataFrame
        The prediction log: ``id``, ``ts``, ``prediction`` and optionally ``score``.
    labels : DataFrame
        Raw labels: ``prediction_id``, ``ts`` (arrival: Unix seconds, ISO 8601 text, or
        missing = arrived) and ``label`` (numbers, or text that parses as numbers).
    now : float, optional
        Only labels that arrived at or before this time count; default: the current time.
    task : {"auto", "classification", "regression"}, default="auto"
        ``auto`` decides from the predictions (:func:`infer_task`).
    source : str, default=""
        Where the labels came from, kept in the result.

    Returns
    -------
    LabeledPredictions

    Raises
    ------
    LabelDataError
        When the predictions have no ``id`` or ``ts`` column or the labels lack a column of
        :data:`LABEL_COLUMNS`: nothing could be joined.
    """
    now = time.time() if now is None else float(now)
    if task not in ("auto", *TASKS):
        raise ValueError(f"task must be 'auto', 'classification' or 'regression'; got {task!r}")
    missing = [c for c in ("id", "ts") if c not in predictions.columns]
    if missing:
        raise LabelDataError(
            f"the prediction log has no {' or '.join(repr(c) for c in missing)} column, so labels cannot be joined "
            f"to it; it has {list(predictions.columns)} (a prediction-log file names its id column in "
            "[services.prediction_log] id)")
    _check_label_columns(labels)
    resolved_task = infer_task(predictions) if task == "auto" else task
    classes = predicted_classes(predictions) if resolved_task == "classification" else ()

    ids = _as_ids(labels["prediction_id"])
    values, value_ok = _as_numbers(labels["label"])
    arrival, arrival_ok = as_unix_seconds(labels["ts"])
    pending = arrival_ok & (arrival > now)
    received = ~pending
    invalid = received & (ids.isna().to_numpy() | ~value_ok | ~arrival_ok)
    examples: dict[str, tuple[str, ...]] = {}
    if invalid.any():
        examples["invalid"] = tuple(_shown_labels(labels[invalid].head(_EXAMPLES)))

    prediction_ids = _prediction_ids(predictions["id"])
    label_ids = ids.to_numpy(dtype=object, na_value=None)
    candidate = received & ~invalid
    position = np.full(len(labels), -1, dtype=np.int64)  # row of each label's prediction, -1 = none
    if candidate.any():
        position[candidate] = _positions(prediction_ids, label_ids[candidate])
    unmatched = candidate & (position < 0)
    if unmatched.any():
        examples["unmatched"] = tuple(repr(i) for i in label_ids[unmatched][:_EXAMPLES])

    # The latest arrival wins; labels without an arrival time count in file order, before timed ones.
    rows = np.flatnonzero(position >= 0)
    rows = rows[np.lexsort((rows, np.nan_to_num(arrival[rows], nan=-np.inf)))]
    last_of_each = len(rows) - 1 - np.unique(position[rows][::-1], return_index=True)[1]
    is_latest = np.zeros(len(rows), dtype=bool)
    is_latest[last_of_each] = True
    repeated, latest = rows[~is_latest], rows[is_latest]
    if len(repeated):
        examples["duplicates"] = tuple(repr(i) for i in pd.unique(label_ids[repeated])[:_EXAMPLES])

    unknown = np.zeros(len(latest), dtype=bool)
    if resolved_task == "classification":
        unknown = ~np.isin(values[latest], np.asarray(classes, dtype=float))
        if unknown.any():
            examples["unknown_class"] = tuple(f"{v:g}" for v in np.unique(values[latest][unknown])[:_EXAMPLES])
    used = latest[~unknown]

    label = np.full(len(predictions), np.nan)
    label_ts = np.full(len(predictions), np.nan)
    label[position[used]] = values[used]
    label_ts[position[used]] = arrival[used]
    frame = pd.DataFrame({
        "id": pd.Series(prediction_ids, dtype=object, copy=False),
        "ts": pd.to_numeric(predictions["ts"], errors="coerce").to_numpy(dtype=float),
        "prediction": (pd.to_numeric(predictions["prediction"], errors="coerce").to_numpy(dtype=float)
                       if "prediction" in predictions else np.nan),
        "score": (pd.to_numeric(predictions["score"], errors="coerce").to_numpy(dtype=float)
                  if "score" in predictions else np.nan),
        "label": label, "label_ts": label_ts})
    ts = frame["ts"].to_numpy()
    if len(ts) > 1 and not np.all(ts[1:] >= ts[:-1]):
        frame = frame.iloc[np.argsort(ts, kind="stable")].reset_index(drop=True)

    quality = LabelQuality(
        received=int(received.sum()), used=len(used), unmatched=int(unmatched.sum()), duplicates=len(repeated),
        invalid=int(invalid.sum()), unknown_class=int(unknown.sum()), pending=int(pending.sum()), examples=examples)
    return LabeledPredictions(frame=frame, quality=quality, task=resolved_task, classes=classes, now=now,
                              source=source)


def _check_label_columns(labels: pd.DataFrame) -> None:
    missing = [c for c in LABEL_COLUMNS if c not in labels.columns]
    if missing:
        raise LabelDataError(f"labels must have the columns {list(LABEL_COLUMNS)}; missing {missing}")


def _shown_labels(labels: pd.DataFrame) -> list[str]:
    """Raw label rows as a report of left-out labels shows them."""
    return [f"id {row.prediction_id!r} label {row.label!r} arrived {row.ts!r}"
            for row in labels.itertuples(index=False)]


TYPED_LABEL_COLUMNS = ("filename", "file_row_number", "prediction_id", "ts", "label", "shown")
"""Columns of :func:`typed_labels`."""


def typed_labels(labels: pd.DataFrame) -> pd.DataFrame:
    """Raw label rows typed by :func:`join_labels`'s rules, for an engine to join where the log is.

    The engine's join (:func:`monitoring.label_queries.join_labels_in_engine`) then finds what
    :func:`join_labels` finds from the raw rows, for any ``now``: the same labels used, pending
    and left out, with the same examples.

    Parameters
    ----------
    labels : DataFrame
        Raw labels, as :func:`join_labels` takes them.

    Returns
    -------
    DataFrame
        ``filename`` (empty) and ``file_row_number`` (the rows' order), ``prediction_id`` (text;
        None where the id is missing, empty or too long), ``ts`` (arrival in Unix seconds; NaN
        when none is given, +inf when it cannot be read), ``label`` (NaN unless a finite number)
        and ``shown`` (how a label that is left out as invalid is reported; None for the others).
    """
    _check_label_columns(labels)
    labels = labels.reset_index(drop=True)
    ids = _as_ids(labels["prediction_id"])
    values, value_ok = _as_numbers(labels["label"])
    arrival, arrival_ok = as_unix_seconds(labels["ts"])
    bad = ids.isna().to_numpy() | ~value_ok | ~arrival_ok
    shown = np.full(len(labels), None, dtype=object)
    if bad.any():
        shown[bad] = _shown_labels(labels[bad])
    return pd.DataFrame({
        "filename": "", "file_row_number": np.arange(len(labels), dtype=np.int64),
        "prediction_id": ids.astype(object).where(ids.notna(), None).to_numpy(dtype=object),
        "ts": np.where(arrival_ok, arrival, np.inf), "label": np.where(value_ok, values, np.nan), "shown": shown})


def _prediction_ids(values: pd.Series) -> np.ndarray:
    """Prediction ids as an object array of text (no copy when they already are text)."""
    if values.dtype == object and pd.api.types.infer_dtype(values, skipna=True) == "string":
        return values.to_numpy(dtype=object)
    return values.astype(str).to_numpy(dtype=object)


def _positions(prediction_ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Row of each wanted id among the prediction ids (its first row when an id repeats), -1 when absent."""
    index = pd.Index(prediction_ids)
    if index.is_unique:
        return index.get_indexer(wanted)
    first = ~index.duplicated()
    found = index[first].get_indexer(wanted)
    return np.where(found >= 0, np.flatnonzero(first)[found], -1)


def _as_ids(values: pd.Series) -> pd.Series:
    """Ids as text; missing, empty and over-long ids become NA (whole-number floats lose their ``.0``)."""
    values = values.reset_index(drop=True)
    if pd.api.types.is_float_dtype(values):
        text = values.map(lambda v: None if math.isnan(v) else str(int(v)) if v.is_integer() else str(v))
        text = text.astype("string")
    else:
        text = values.astype("string")
    text = text.str.strip()
    return text.mask((text == "") | (text.str.len() > MAX_ID_LENGTH))


def _as_numbers(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Labels as floats, and whether each one is a finite number."""
    if pd.api.types.is_bool_dtype(values):
        numbers = values.astype(float).to_numpy()
    elif pd.api.types.is_numeric_dtype(values):
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    else:
        objects = values.astype(object)
        is_bool = objects.map(lambda v: isinstance(v, bool | np.bool_)).to_numpy(dtype=bool)
        numbers = pd.to_numeric(objects.where(~is_bool, None), errors="coerce").to_numpy(dtype=float, copy=True)
        numbers[is_bool] = objects[is_bool].astype(float).to_numpy()
    return numbers, np.isfinite(numbers)


# -- records from an API ---------------------------------------------------------------------

class _ShortRepr(reprlib.Repr):
    """Short reprs of whatever a client sent, however large or deep (integers of any size included)."""

    def __init__(self) -> None:
        super().__init__()
        self.maxstring, self.maxother, self.maxlevel = 60, 60, 3

    def repr(self, x: Any) -> str:
        text = super().repr(x)
        return text if len(text) <= 120 else text[:100] + "…" + text[-19:]

    def repr_int(self, x: int, level: int) -> str:
        return f"<an integer of {x.bit_length():,} bits>" if x.bit_length() > 192 else super().repr_int(x, level)


_SHORT = _ShortRepr()


def _finite(value: Any) -> float | None:
    """``value`` as a finite float when it is a number (true/false count), else None."""
    if not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer beyond the floats
        return None
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class LabelRecords:
    """Labels received as JSON records, after checking them one by one.

    Attributes
    ----------
    frame : DataFrame
        The acceptable ones: ``prediction_id`` (text), ``ts`` (arrival, float), ``label`` (float).
    rejected : list of dict
        One ``{"index": i, "reason": "..."}`` per record that was not acceptable.
    """

    frame: pd.DataFrame
    rejected: list[dict]


def label_records(records: Any, *, now: float | None = None) -> LabelRecords:
    """Check labels sent as ``[{"prediction_id": ..., "label": ..., "ts": ...}]``.

    Parameters
    ----------
    records : list of dict
        ``prediction_id`` (text or integer, at most :data:`MAX_ID_LENGTH` printable ASCII
        characters without spaces, :data:`ID_PATTERN`),
        ``label`` (a number; ``true``/``false`` count as 1/0) and optionally ``ts`` (arrival
        time in Unix seconds; default ``now``).
    now : float, optional
        Arrival time of records without ``ts``; default: the current time.

    Returns
    -------
    LabelRecords

    Raises
    ------
    ValueError
        When ``records`` is not a list.
    """
    if not isinstance(records, list):
        raise ValueError(f"'labels' must be a list of objects such as {{\"prediction_id\": \"abc\", \"label\": 1}}; "
                         f"got {type(records).__name__}")
    now = time.time() if now is None else float(now)
    accepted: list[tuple[str, float, float]] = []
    rejected: list[dict] = []
    for index, record in enumerate(records):
        reason = None
        if not isinstance(record, dict):
            reason = f"must be an object with prediction_id and label; got {type(record).__name__}"
        else:
            unknown = sorted(set(record) - {"prediction_id", "label", "ts"})
            identifier, label, arrival = record.get("prediction_id"), record.get("label"), record.get("ts", now)
            text = identifier.strip() if isinstance(identifier, str) else None
            if isinstance(identifier, int) and not isinstance(identifier, bool) and abs(identifier) < 10**MAX_ID_LENGTH:
                text = str(identifier)
            if unknown:
                reason = f"unknown keys {_SHORT.repr(unknown)}; accepted: prediction_id, label, ts"
            elif not text:
                reason = f"prediction_id must be a non-empty string or integer; got {_SHORT.repr(identifier)}"
            elif len(text) > MAX_ID_LENGTH:
                reason = f"prediction_id must have at most {MAX_ID_LENGTH} characters; got {len(text)}"
            elif not ID_PATTERN.fullmatch(text):
                reason = ("prediction_id must be printable ASCII without spaces or control characters; "
                          f"got {identifier!r}")
            elif _finite(label) is None:
                reason = f"label must be a finite number (true/false count as 1/0); got {_SHORT.repr(label)}"
            elif isinstance(arrival, bool) or _finite(arrival) is None:
                reason = f"ts must be the arrival time in Unix seconds; got {_SHORT.repr(arrival)}"
        if reason is None:
            accepted.append((text, float(arrival), float(label)))
        else:
            rejected.append({"index": index, "reason": reason})
    frame = pd.DataFrame(accepted, columns=["prediction_id", "ts", "label"])
    return LabelRecords(frame=frame.astype({"ts": float, "label": float}), rejected=rejected)


# -- sources ---------------------------------------------------------------------------------


class StoreLabelMirror:
    """An in-memory copy of one service's labels in the store, refreshed incrementally.

    Every stored label is kept, including those whose arrival time is still in the future:
    :func:`join_labels` decides which have arrived.

    Parameters
    ----------
    store : Store
    service : str
    """

    def __init__(self, store: Store, service: str):
        self.store = store
        self.service = service
        self._frame = pd.DataFrame({"prediction_id": pd.Series(dtype=object), "ts": pd.Series(dtype=float),
                                    "label": pd.Series(dtype=float)})
        self._last_row = 0
        self._lock = threading.Lock()

    @property
    def source(self) -> str:
        """Where the labels come from, in words."""
        return "labels in the store"

    def read(self) -> pd.DataFrame:
        """All stored labels of the service (``prediction_id, ts, label``), fetching only the new ones."""
        t = labels_table
        query = (sa.select(t.c.id, t.c.prediction_id, t.c.ts, t.c.label)
                 .where(t.c.service == self.service))
        with self._lock:
            with self.store.engine.connect() as conn:
                rows = conn.execute(query.where(t.c.id > self._last_row).order_by(t.c.id)).all()
            if rows:
                new = pd.DataFrame([tuple(r) for r in rows], columns=["row", *LABEL_COLUMNS])
                self._last_row = int(new["row"].iloc[-1])
                new = new.drop(columns="row").astype({"ts": float, "label": float})
                self._frame = new if self._frame.empty else pd.concat([self._frame, new], ignore_index=True)
            return self._frame


def read_label_file(config: LabelsConfig) -> pd.DataFrame:
    """Read a label file into raw label rows.

    Parameters
    ----------
    config : LabelsConfig
        The file and the names of its id, label and (optional) arrival-time columns.

    Returns
    -------
    DataFrame
        ``prediction_id`` (text), ``ts`` (as in the file; missing when no arrival column is
        configured) and ``label`` (as in the file), unchecked: :func:`join_labels` checks them.

    Raises
    ------
    LabelDataError
        Unsupported type, missing or unreadable file, missing columns.
    """
    readers = {suffix: (lambda file: pd.read_csv(file, dtype={config.id: str}, keep_default_na=True))
               if kind == "csv" else pd.read_parquet for suffix, kind in LABEL_FILE_READERS.items()}
    raw = read_table_file(config.path, what="label file", readers=readers, error=LabelDataError)
    file = Path(config.path)
    wanted = [config.id, config.label] + ([config.ts] if config.ts else [])
    missing = [c for c in wanted if c not in raw.columns]
    if missing:
        raise LabelDataError(
            f"label file {file} lacks columns {missing}; it has {list(raw.columns)} "
            "(name the columns with [services.labels] id, label and ts)")
    return pd.DataFrame({
        "prediction_id": raw[config.id].reset_index(drop=True),
        "ts": raw[config.ts].reset_index(drop=True) if config.ts else pd.Series(np.nan, index=range(len(raw))),
        "label": raw[config.label].reset_index(drop=True),
    })


class LabelFileMirror:
    """A label file, read again only when its modification time or size changes.

    Parameters
    ----------
    config : LabelsConfig
    """

    def __init__(self, config: LabelsConfig):
        self.config = config
        self._file = ChangedFile(config.path, lambda: read_label_file(config))

    @property
    def source(self) -> str:
        """Where the labels come from, in words."""
        return f"label file {self.config.path}"

    def read(self) -> pd.DataFrame:
        """The file's raw label rows."""
        return self._file.get()


class LogLabels:
    """One service's labels kept beside its prediction log in Parquet, joined where they live.

    Parameters
    ----------
    log : ParquetPredictionLog
    service : str
        The log's name (``ServiceConfig.log_name``).
    """

    def __init__(self, log: ParquetPredictionLog, service: str):
        self.log = log
        self.service = service

    @property
    def source(self) -> str:
        """Where the labels come from, in words."""
        return "labels beside the prediction log"

    def read(self) -> pd.DataFrame:
        """Every stored label (``prediction_id, ts, label``), for a join in memory."""
        return self.log.read_labels(self.service)

    def table(self):
        """The labels as a table of the log's engine, or None when none is stored yet."""
        return self.log.label_table(self.service)


def label_source(store: Store, service: ServiceConfig) -> StoreLabelMirror | LabelFileMirror | LogLabels:
    """What serves ``service``'s labels: its label file if configured, else the store (beside a Parquet
    prediction log, or in the store's table where an older Vantage kept them)."""
    if service.labels is not None:
        return LabelFileMirror(service.labels)
    log = store.predictions
    if isinstance(log, ParquetPredictionLog) and not log.labels_in_sql(service.log_name):
        return LogLabels(log, service.log_name)
    return StoreLabelMirror(store, service.log_name)
