"""The label join where the log lives: predictions and their ground truth joined by the engine that holds both.

:func:`join_labels_in_engine` gives what :func:`monitoring.labels.join_labels` gives in memory —
the latest usable label of each prediction, and every label left out counted by reason with
examples — written once as Ibis expressions, so DuckDB (or Spark) joins the rows where they
are. Only the labelled predictions come back; every logged prediction is counted per hour
instead (:attr:`monitoring.labels.LabeledPredictions.served_hours`), which keeps the coverage
of hour, day and week windows exact without holding the rows.
"""

from __future__ import annotations

import contextlib
import math
import uuid

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from monitoring.labels import (
    MAX_CLASSES,
    MAX_ID_LENGTH,
    TASKS,
    LabeledPredictions,
    LabelQuality,
    classes_of_values,
    task_of_values,
)
from monitoring.log_queries import prediction_values, window_rows

_EXAMPLES = 3
_NO_ARRIVAL = -1e308
"""Sort key of a label without an arrival time: before every timed one, as in memory."""


def _label_rows(labels: ir.Table, *, now: float) -> ir.Table:
    """Each label with its id as text and whether it is pending, invalid or a candidate for the join."""
    prediction_id = labels.prediction_id.cast("string").strip()
    bad_id = prediction_id.isnull() | (prediction_id == "") | (prediction_id.length() > MAX_ID_LENGTH)
    ts = labels.ts.cast("float64")
    label = labels.label.cast("float64")
    timed = ts.notnull() & ~ts.isnan()
    pending = timed & ~ts.isinf() & (ts > now)
    unreadable_time = timed & ts.isinf()
    unusable = bad_id | label.isnull() | label.isnan() | label.isinf() | unreadable_time
    order = ["filename", "file_row_number"] if "filename" in labels.columns else []
    return labels.select(
        *order, prediction_id=prediction_id, raw_id=labels.prediction_id, raw_ts=labels.ts, raw_label=labels.label,
        label=label, label_ts=timed.ifelse(ts, ibis.null("float64")),
        arrival=timed.ifelse(ts, _NO_ARRIVAL), pending=pending, invalid=~pending & unusable)


@contextlib.contextmanager
def _kept(backend, expression: ir.Table):
    """The engine keeps ``expression``'s rows as a temporary table while the block runs, so the counts and
    the join that read them compute them once. (Raw SQL: Ibis's own DDL fails on this DuckDB.)"""
    name = f"vantage_kept_{uuid.uuid4().hex[:12]}"
    query = backend.compile(expression)
    spark = backend.name == "pyspark"
    backend.raw_sql(f"CACHE TABLE {name} AS {query}" if spark else f'CREATE TEMP TABLE "{name}" AS {query}')
    try:
        yield backend.table(name)
    finally:
        backend.raw_sql(f"UNCACHE TABLE IF EXISTS {name}" if spark else f'DROP TABLE IF EXISTS "{name}"')
        if spark:
            backend.raw_sql(f"DROP VIEW IF EXISTS {name}")


def _first(backend, table: ir.Table, order: list, limit: int = _EXAMPLES) -> pd.DataFrame:
    return backend.execute(table.order_by(order).limit(limit)) if order else backend.execute(table.limit(limit))


def join_labels_in_engine(backend, predictions: ir.Table, labels: ir.Table | None, *, now: float,
                          task: str = "auto", source: str = "") -> LabeledPredictions:
    """Join the labels that arrived by ``now`` to their predictions in the engine, as :func:`join_labels` does.

    Parameters
    ----------
    backend
        The Ibis backend holding both tables.
    predictions : ibis Table
        The prediction log: ``id``, ``ts``, ``prediction``, optionally ``score`` (and, on
        DuckDB, ``filename`` and ``file_row_number``: the order written).
    labels : ibis Table or None
        ``prediction_id``, ``ts`` (arrival, Unix seconds; NULL = arrived) and ``label``
        (optionally ``filename`` and ``file_row_number``); None when none is stored.
    now : float
        Only labels that arrived at or before this time count.
    task : {"auto", "classification", "regression"}, default="auto"
    source : str, default=""

    Returns
    -------
    LabeledPredictions
        ``frame`` holds the labelled predictions only, in prediction-time order, and
        ``served_hours`` counts every logged prediction per hour.
    """
    if task not in ("auto", *TASKS):
        raise ValueError(f"task must be 'auto', 'classification' or 'regression'; got {task!r}")
    found = prediction_values(backend, predictions, max_values=MAX_CLASSES)
    resolved = task_of_values(has_score=found.has_score, values=found.values, whole=found.whole) \
        if task == "auto" else task
    classes = classes_of_values(values=found.values, has_score=found.has_score) \
        if resolved == "classification" else ()
    hours = window_rows(backend, predictions, window="hour")
    served = pd.DataFrame({"hour_start": hours.start, "n": hours.n_rows})
    empty = pd.DataFrame({"id": pd.Series(dtype=object), "ts": pd.Series(dtype=float),
                          "prediction": pd.Series(dtype=float), "score": pd.Series(dtype=float),
                          "label": pd.Series(dtype=float), "label_ts": pd.Series(dtype=float)})
    if labels is None:
        return LabeledPredictions(frame=empty, quality=LabelQuality(), task=resolved, classes=classes, now=now,
                                  source=source, served_hours=served)

    rows = _label_rows(labels, now=now)
    written = ["filename", "file_row_number"] if "filename" in rows.columns else []
    ids = predictions.select(pid=predictions.id.cast("string"))
    candidates = rows.filter(~rows.pending & ~rows.invalid)
    matched = candidates.semi_join(ids, candidates.prediction_id == ids.pid)
    # Each matched label ranked among its prediction's, newest first (0 = the one used), kept by the engine
    # for the counts and the join that follow: the costly step, computed once.
    ranked = matched.mutate(newest=ibis.row_number().over(
        group_by="prediction_id", order_by=[ibis.desc("arrival"), *(ibis.desc(k) for k in written)]))
    with _kept(backend, ranked) as ranked:
        return _joined(backend, predictions, rows, ranked, written=written, candidates=candidates, ids=ids,
                       task=resolved, classes=classes, now=now, source=source, served=served, empty=empty)


def _joined(backend, predictions: ir.Table, rows: ir.Table, ranked: ir.Table, *, written: list[str],
            candidates: ir.Table, ids: ir.Table, task: str, classes: tuple[float, ...], now: float, source: str,
            served: pd.DataFrame, empty: pd.DataFrame) -> LabeledPredictions:
    """The counts, examples and labelled rows of :func:`join_labels_in_engine`, from the ranked matched labels."""
    latest = ranked.filter(ranked.newest == 0)
    classification = task == "classification"

    def known(table: ir.Table) -> ir.BooleanValue:  # a class the model predicts (any value for a regression)
        return table.label.isin([float(c) for c in classes]) if classification else ibis.literal(True)

    counts = backend.execute(rows.aggregate(
        received=(~rows.pending).ifelse(1, 0).sum(), pending=rows.pending.ifelse(1, 0).sum(),
        invalid=rows.invalid.ifelse(1, 0).sum(), candidates=(~rows.pending & ~rows.invalid).ifelse(1, 0).sum(),
    )).iloc[0]
    kept = backend.execute(ranked.aggregate(
        matched=ranked.count(), latest=(ranked.newest == 0).ifelse(1, 0).sum(),
        unknown=((ranked.newest == 0) & ~known(ranked)).ifelse(1, 0).sum())).iloc[0]
    n_candidates = int(counts["candidates"] or 0)
    n_matched, n_latest = int(kept["matched"] or 0), int(kept["latest"] or 0)
    n_unknown = int(kept["unknown"] or 0) if classification else 0
    examples: dict[str, tuple[str, ...]] = {}
    if int(counts["invalid"] or 0):
        bad = _first(backend, rows.filter(rows.invalid), written)
        examples["invalid"] = tuple(f"id {_plain(r.raw_id)!r} label {_plain(r.raw_label)!r} arrived "
                                    f"{_plain(r.raw_ts)!r}" for r in bad.itertuples(index=False))
    if n_candidates > n_matched:
        lost = candidates.anti_join(ids, candidates.prediction_id == ids.pid)
        examples["unmatched"] = tuple(repr(i) for i in _first(backend, lost, written)["prediction_id"])
    if n_matched > n_latest:
        repeated = ranked.filter(ranked.newest > 0)
        first_seen = repeated.mutate(seen=ibis.row_number().over(
            group_by="prediction_id", order_by=["arrival", *written])).filter(lambda t: t.seen == 0)
        examples["duplicates"] = tuple(repr(i) for i in _first(backend, first_seen, ["arrival", *written])[
            "prediction_id"])
    if n_unknown:
        odd = latest.filter(~known(latest))
        values = backend.execute(odd.group_by("label").agg(n=odd.count()).order_by("label").limit(_EXAMPLES))
        examples["unknown_class"] = tuple(f"{v:g}" for v in values["label"])

    used = latest.filter(known(latest))
    order_keys = {f"p_{k}": predictions[k] for k in ("filename", "file_row_number") if k in predictions.columns}
    logged = predictions.select(
        pid=predictions.id.cast("string"), pts=predictions.ts.cast("float64"),
        prediction=predictions.prediction.cast("float64"),
        score=(predictions.score.cast("float64") if "score" in predictions.columns else ibis.null("float64")),
        **order_keys)
    joined = used.inner_join(logged, used.prediction_id == logged.pid)
    # an id logged twice: its first prediction, as in memory (ranked among the joined rows only)
    joined = joined.mutate(first=ibis.row_number().over(group_by="prediction_id",
                                                        order_by=["pts", *order_keys]))
    joined = joined.filter(joined["first"] == 0)
    frame = backend.execute(joined.select(id="prediction_id", ts="pts", prediction="prediction", score="score",
                                          label="label", label_ts="label_ts"))
    frame = frame.astype({"ts": float, "prediction": float, "score": float, "label": float, "label_ts": float})
    frame = frame.sort_values(["ts", "id"], kind="stable").reset_index(drop=True)
    quality = LabelQuality(received=int(counts["received"] or 0), used=len(frame),
                           unmatched=n_candidates - n_matched, duplicates=n_matched - n_latest,
                           invalid=int(counts["invalid"] or 0), unknown_class=n_unknown,
                           pending=int(counts["pending"] or 0), examples=examples)
    return LabeledPredictions(frame=frame if len(frame) else empty, quality=quality, task=task, classes=classes,
                              now=now, source=source, served_hours=served)


def _plain(value):
    """A value as the in-memory join shows it: Python floats and text (NULL as NaN for numbers)."""
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return math.nan
    return value
