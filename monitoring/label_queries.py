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
import string
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
_WHITESPACE = list(string.whitespace)
"""What Ibis's ``strip`` takes off both ends of a text."""


def _label_rows(labels: ir.Table, *, now: float) -> ir.Table:
    """Each label with its id as text and whether it is pending, invalid or a candidate for the join."""
    text = labels.prediction_id.cast("string")
    # Ibis repeats the id's expression wherever it is used, and DuckDB's TRIM costs about a second
    # of CPU per 5,000,000 labels each time: only an id that starts or ends with whitespace is
    # trimmed (the same id otherwise), and the id is checked by its length once.
    padded = text.left(1).isin(_WHITESPACE) | text.right(1).isin(_WHITESPACE)
    prediction_id = padded.ifelse(text.strip(), text)
    bad_id = ~prediction_id.length().between(1, MAX_ID_LENGTH).fill_null(False)
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
    candidates = rows.filter(~rows.pending & ~rows.invalid)
    order_keys = {f"p_{k}": predictions[k] for k in ("filename", "file_row_number") if k in predictions.columns}
    logged = predictions.select(
        pid=predictions.id.cast("string"), pts=predictions.ts.cast("float64"),
        prediction=predictions.prediction.cast("float64"),
        score=(predictions.score.cast("float64") if "score" in predictions.columns else ibis.null("float64")),
        **order_keys)
    # Every usable label with every prediction of its id, kept by the engine for the counts and the
    # rows that follow: commonly the only join of the whole log. Most ids have one label and one
    # prediction, and their pair is the answer as it is; only the few ids with more are ranked (a
    # window over every label was most of the join's time).
    pairs = candidates.inner_join(logged, candidates.prediction_id == logged.pid).select(
        "prediction_id", "label", "label_ts", "pts", "prediction", "score")
    with _kept(backend, pairs) as pairs:
        return _joined(backend, rows, pairs, written=written, candidates=candidates, logged=logged,
                       order_keys=list(order_keys), task=resolved, classes=classes, now=now, source=source,
                       served=served, empty=empty)


def _joined(backend, rows: ir.Table, pairs: ir.Table, *, written: list[str], candidates: ir.Table,
            logged: ir.Table, order_keys: list[str], task: str, classes: tuple[float, ...], now: float, source: str,
            served: pd.DataFrame, empty: pd.DataFrame) -> LabeledPredictions:
    """The counts, examples and labelled rows of :func:`join_labels_in_engine`, from the kept label-prediction pairs."""
    classification = task == "classification"

    def known(table: ir.Table) -> ir.BooleanValue:  # a class the model predicts (any value for a regression)
        return table.label.isin([float(c) for c in classes]) if classification else ibis.literal(True)

    def shown(table: ir.Table) -> ir.Table:
        return table.select(id="prediction_id", ts="pts", prediction="prediction", score="score", label="label",
                            label_ts="label_ts")

    counts = backend.execute(rows.aggregate(
        received=(~rows.pending).ifelse(1, 0).sum(), pending=rows.pending.ifelse(1, 0).sum(),
        invalid=rows.invalid.ifelse(1, 0).sum(), candidates=(~rows.pending & ~rows.invalid).ifelse(1, 0).sum(),
    )).iloc[0]
    per_id = pairs.group_by("prediction_id").agg(
        n=pairs.count(), **({"unknown": (~known(pairs)).ifelse(1, 0).sum()} if classification else {}))
    kept = backend.execute(per_id.aggregate(
        ids=per_id.count(), repeated=(per_id.n > 1).ifelse(1, 0).sum(),
        **({"unknown": (per_id.n == 1).ifelse(per_id.unknown, 0).sum()} if classification else {}))).iloc[0]
    n_candidates, n_ids, n_repeated = int(counts["candidates"] or 0), int(kept["ids"] or 0), int(kept["repeated"] or 0)
    n_unknown = int(kept["unknown"] or 0) if classification else 0
    examples: dict[str, tuple[str, ...]] = {}
    if int(counts["invalid"] or 0):
        bad = _first(backend, rows.filter(rows.invalid), written)
        examples["invalid"] = tuple(f"id {_plain(r.raw_id)!r} label {_plain(r.raw_label)!r} arrived "
                                    f"{_plain(r.raw_ts)!r}" for r in bad.itertuples(index=False))
    with contextlib.ExitStack() as stack:
        n_matched, single, latest = n_ids, pairs, None
        if n_repeated:  # ids with more than one label, or logged more than once: ranked as in memory
            repeated = stack.enter_context(_kept(backend, per_id.filter(per_id.n > 1).select("prediction_id")))
            single = pairs.anti_join(repeated, "prediction_id")
            theirs = candidates.semi_join(repeated, "prediction_id")
            # each label ranked among its prediction's, newest first (0 = the one used)
            ranked = stack.enter_context(_kept(backend, theirs.mutate(newest=ibis.row_number().over(
                group_by="prediction_id", order_by=[ibis.desc("arrival"), *(ibis.desc(k) for k in written)]))))
            latest = ranked.filter(ranked.newest == 0)
            theirs_kept = backend.execute(ranked.aggregate(
                labels=ranked.count(), unknown=((ranked.newest == 0) & ~known(ranked)).ifelse(1, 0).sum())).iloc[0]
            n_matched += int(theirs_kept["labels"] or 0) - n_repeated
            n_unknown += int(theirs_kept["unknown"] or 0) if classification else 0
            if n_matched > n_ids:
                later = ranked.filter(ranked.newest > 0)
                first_seen = later.mutate(seen=ibis.row_number().over(
                    group_by="prediction_id", order_by=["arrival", *written])).filter(lambda t: t.seen == 0)
                examples["duplicates"] = tuple(repr(i) for i in _first(backend, first_seen, ["arrival", *written])[
                    "prediction_id"])
        if n_candidates > n_matched:
            lost = candidates.anti_join(logged, candidates.prediction_id == logged.pid)
            examples["unmatched"] = tuple(repr(i) for i in _first(backend, lost, written)["prediction_id"])
        if n_unknown:
            odd = single.filter(~known(single)).select("label")
            if latest is not None:
                odd = odd.union(latest.filter(~known(latest)).select("label"))
            values = backend.execute(odd.group_by("label").agg(n=odd.count()).order_by("label").limit(_EXAMPLES))
            examples["unknown_class"] = tuple(f"{v:g}" for v in values["label"])

        used = shown(single.filter(known(single)))
        if latest is not None:
            theirs_used = latest.filter(known(latest))
            joined = theirs_used.inner_join(logged, theirs_used.prediction_id == logged.pid)
            # an id logged twice: its first prediction, as in memory (ranked among the joined rows only)
            joined = joined.mutate(first=ibis.row_number().over(group_by="prediction_id",
                                                                order_by=["pts", *order_keys]))
            used = used.union(shown(joined.filter(joined["first"] == 0)))
        frame = backend.execute(used)
    frame = frame.astype({"ts": float, "prediction": float, "score": float, "label": float, "label_ts": float})
    frame = _in_time_order(frame)
    quality = LabelQuality(received=int(counts["received"] or 0), used=len(frame),
                           unmatched=n_candidates - n_matched, duplicates=n_matched - n_ids,
                           invalid=int(counts["invalid"] or 0), unknown_class=n_unknown,
                           pending=int(counts["pending"] or 0), examples=examples)
    return LabeledPredictions(frame=frame if len(frame) else empty, quality=quality, task=task, classes=classes,
                              now=now, source=source, served_hours=served)


def _in_time_order(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows by prediction time, then id (as ``sort_values(["ts", "id"], kind="stable")``).

    Sorting millions of rows by a text column takes pandas seconds; when no two rows share a time
    (the common case) the order of the times alone is the same order, found in a fraction of that.
    """
    ts = frame["ts"].to_numpy(dtype=float)
    order = np.argsort(ts, kind="stable")
    in_order = ts[order]
    if np.isnan(in_order).sum() <= 1 and not (in_order[1:] == in_order[:-1]).any():
        return frame.take(order).reset_index(drop=True)
    return frame.sort_values(["ts", "id"], kind="stable").reset_index(drop=True)


def _plain(value):
    """A value as the in-memory join shows it: Python floats and text (NULL as NaN for numbers)."""
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return math.nan
    return value
