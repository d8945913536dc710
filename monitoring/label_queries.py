"""The label join where the log lives: predictions and their ground truth joined by the engine that holds both.

:func:`join_labels_in_engine` gives what :func:`monitoring.labels.join_labels` gives in memory —
the latest usable label of each prediction, and every label left out counted by reason with
examples — written once as Ibis expressions, so DuckDB (or Spark) joins the rows where they
are. Only the labelled predictions come back; every logged prediction is counted per hour
instead (:attr:`monitoring.labels.LabeledPredictions.served_hours`), which keeps the coverage
of hour, day and week windows exact without holding the rows.

:func:`summarize_labels_in_engine` makes the same join and brings back less: sums per day and
a bounded sample (:class:`monitoring.label_summary.LabelledSummary`), all the Overview needs.
"""

from __future__ import annotations

import contextlib
import math
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from monitoring.label_summary import DAY, SAMPLE_COLUMNS, SAMPLE_ROWS, SLICE_COLUMNS, LabelledSummary, cut_of
from monitoring.labels import (
    MAX_CLASSES,
    MAX_ID_LENGTH,
    TASKS,
    LabeledPredictions,
    LabelQuality,
    classes_of_values,
    task_of_values,
)
from monitoring.log_queries import finite, infinite, prediction_values, window_rows
from monitoring.performance_sums import KEPT_COLUMNS, KeptLabels, engine_hash, id_key, least_key_rows

_EXAMPLES = 3
_NO_ARRIVAL = -1e308
"""Sort key of a label without an arrival time: before every timed one, as in memory."""
_WHITESPACE = list(string.whitespace)
"""What Ibis's ``strip`` takes off both ends of a text."""


_EMPTY = pd.DataFrame({"id": pd.Series(dtype=object), "ts": pd.Series(dtype=float),
                       "prediction": pd.Series(dtype=float), "score": pd.Series(dtype=float),
                       "label": pd.Series(dtype=float), "label_ts": pd.Series(dtype=float)})


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
    pending = timed & ~infinite(ts) & (ts > now)
    unreadable_time = timed & infinite(ts)
    unusable = bad_id | ~finite(label) | unreadable_time
    order = ["filename", "file_row_number"] if "filename" in labels.columns else []
    # labels typed beforehand (monitoring.labels.typed_labels) say how an invalid one is shown
    shown = {"shown": labels.shown} if "shown" in labels.columns else {
        "raw_id": labels.prediction_id, "raw_ts": labels.ts, "raw_label": labels.label}
    return labels.select(
        *order, prediction_id=prediction_id, **shown,
        label=label, label_ts=timed.ifelse(ts, ibis.null("float64")),
        arrival=timed.ifelse(ts, _NO_ARRIVAL), pending=pending, invalid=~pending & unusable)


@contextlib.contextmanager
def _kept(backend, expression: ir.Table, *, key: str | None = None):
    """The engine keeps ``expression``'s rows as a temporary table while the block runs, so the counts and
    the join that read them compute them once. (Raw SQL: Ibis's own DDL fails on this DuckDB.)

    On SQLite the table is declared with ``expression``'s types (an empty one has no rows to take
    them from) and indexed on ``key``: SQLite joins by looking rows up, and a join on a column of
    an unindexed table compares every row with every row (14,000 predictions with 12,000 labels
    took two minutes).
    """
    name = f"vantage_kept_{uuid.uuid4().hex[:12]}"
    spark = backend.name == "pyspark"
    if backend.name == "sqlite":
        backend.create_table(name, obj=expression, temp=True)
        if key is not None:
            backend.raw_sql(f'CREATE INDEX temp."{name}_key" ON "{name}" ("{key}")')
    else:
        query = backend.compile(expression)
        backend.raw_sql(f"CACHE TABLE {name} AS {query}" if spark else f'CREATE TEMP TABLE "{name}" AS {query}')
    try:
        yield backend.table(name, database="temp") if backend.name == "sqlite" else backend.table(name)
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
    def fetch(used: ir.Table | None, task: str, classes: tuple[float, ...]) -> tuple[pd.DataFrame, int]:
        if used is None:
            return _EMPTY.copy(), 0
        frame = backend.execute(used).astype(
            {"ts": float, "prediction": float, "score": float, "label": float, "label_ts": float})
        return (_in_time_order(frame) if len(frame) else _EMPTY.copy()), len(frame)

    joined = join_in_engine(backend, predictions, labels, now=now, task=task, finish=fetch)
    return LabeledPredictions(frame=joined.result, quality=joined.quality, task=joined.task,
                              classes=joined.classes, now=now, source=source, served_hours=joined.served)


def summarize_labels_in_engine(backend, predictions: ir.Table, labels: ir.Table | None, *, now: float,
                               task: str = "auto", judged_days: float = 7.0, threshold: float | None = 0.5,
                               sample_rows: int = SAMPLE_ROWS, source: str = "",
                               served_hours: pd.DataFrame | None = None) -> LabelledSummary:
    """The :class:`~monitoring.label_summary.LabelledSummary` of the labels arrived by ``now``, counted in the engine.

    The same join as :func:`join_labels_in_engine` (the same labels used, the same counts of
    those left out), but only sums per slice and at most ``sample_rows`` rows per slice come
    back: what the Overview needs, in memory that does not grow with the log.

    Parameters
    ----------
    backend, predictions, labels, now, task, source
        As for :func:`join_labels_in_engine`.
    judged_days : float, default=7
        The judged period, whose start cuts its day in two slices.
    threshold : float or None, default=0.5
        Decision threshold of the counts (two classes); None = the logged decisions.
    sample_rows : int, default=SAMPLE_ROWS
    served_hours : DataFrame, optional
        Every logged prediction per UTC hour when the caller has counted them already
        (:attr:`monitoring.log_queries.LogTraffic.hours`); counted here otherwise.

    Returns
    -------
    LabelledSummary
    """
    cut = cut_of(now, judged_days)

    def summed(used: ir.Table | None, task: str, classes: tuple[float, ...]) -> tuple[tuple, int]:
        if used is None:
            return (_no_slices(), _no_sample()), 0
        slices, sample = _slice_sums(backend, used, task=task, classes=classes, now=now, cut=cut,
                                     threshold=threshold, sample_rows=sample_rows)
        return (slices, sample), int(slices["n"].sum())

    joined = join_in_engine(backend, predictions, labels, now=now, task=task, finish=summed, served=served_hours)
    slices, sample = joined.result
    return LabelledSummary(slices=slices, sample=sample, quality=joined.quality, task=joined.task,
                           classes=joined.classes, now=float(now), cut=cut, threshold=threshold,
                           served_hours=joined.served, source=source, sample_rows=sample_rows)


def keep_labels_in_engine(backend, predictions: ir.Table, labels: ir.Table | None, *, now: float, path: str,
                          task: str = "auto", source: str = "", served_hours: pd.DataFrame | None = None) -> KeptLabels:
    """Make :func:`join_labels_in_engine`'s join and keep its labelled predictions in a Parquet file at ``path``.

    The engine writes the rows (``KEPT_COLUMNS``: with ``key``, the id's hash in ``[0,
    KEY_MODULUS)``); only the counts of the join come back. The Performance page's views are
    then queries of that file (:mod:`monitoring.performance_sums`).

    Parameters
    ----------
    backend, predictions, labels, now, task, source
        As for :func:`join_labels_in_engine`.
    path : str
        The file to write (a folder of files on Spark), where the engine can write and read; on PostgreSQL the
        name of the (unlogged) table to create.
    served_hours : DataFrame, optional
        Every logged prediction per UTC hour when the caller has counted them already.

    Returns
    -------
    KeptLabels
        ``path`` is None when no label is stored.
    """
    spark = backend.name == "pyspark"

    def write(used: ir.Table | None, task: str, classes: tuple[float, ...]) -> tuple[tuple, int]:
        if used is None:
            return (None, 0, False, math.nan), 0
        key = id_key(used.id).cast("int32")
        # in time order: a third of the size (times, ids and labels compress), and a range reads only its row groups
        keyed = used.mutate(key=key).select(*KEPT_COLUMNS).order_by("ts")
        query = backend.compile(keyed)
        where = path.replace("'", "''")
        if backend.name == "postgres":  # a table of the server's (it writes no file the dashboard could read)
            backend.raw_sql(f'CREATE UNLOGGED TABLE "{path}" AS {query}')
        elif backend.name == "sqlite":  # a table of the store's file, beside the log
            backend.raw_sql(f'CREATE TABLE "{path}" AS {query}')
        elif spark:
            backend.raw_sql(f"INSERT OVERWRITE DIRECTORY '{where}' USING parquet OPTIONS (compression 'zstd') {query}")
        else:
            backend.raw_sql(f"COPY ({query}) TO '{where}' (FORMAT parquet, COMPRESSION zstd)")
        rows = kept_rows(backend, path)
        delay = rows.label_ts - rows.ts
        scored = rows.score.notnull() & ~rows.score.isnan()
        stats = backend.execute(rows.aggregate(n=rows.count(), scored=scored.ifelse(1, 0).sum(),
                                               delay=delay.median())).iloc[0]
        n = int(stats["n"] or 0)
        median = float(stats["delay"]) if n and pd.notna(stats["delay"]) else math.nan
        return (path, n, bool(int(stats["scored"] or 0)), median), n

    joined = join_in_engine(backend, predictions, labels, now=now, task=task, finish=write, served=served_hours)
    kept_path, n, has_score, median = joined.result
    return KeptLabels(path=kept_path, quality=joined.quality, task=joined.task, classes=joined.classes,
                      now=float(now), served_hours=joined.served, n_labelled=n, has_score=has_score,
                      median_delay_seconds=median, source=source)


def summarize_kept(backend, kept: KeptLabels, *, judged_days: float = 7.0, threshold: float | None = 0.5,
                   sample_rows: int = SAMPLE_ROWS) -> LabelledSummary:
    """:func:`summarize_labels_in_engine`'s summary of labels kept by :func:`keep_labels_in_engine` (no join again).

    Parameters
    ----------
    backend
        The Ibis backend that reads ``kept.path``.
    kept : KeptLabels
    judged_days, threshold, sample_rows
        As for :func:`summarize_labels_in_engine`.

    Returns
    -------
    LabelledSummary
    """
    now, cut = float(kept.now), cut_of(kept.now, judged_days)
    slices, sample = _no_slices(), _no_sample()
    if kept.path is not None and kept.n_labelled:
        slices, sample = _slice_sums(backend, kept_rows(backend, kept.path), task=kept.task, classes=kept.classes,
                                     now=now, cut=cut, threshold=threshold, sample_rows=sample_rows)
    return LabelledSummary(slices=slices, sample=sample, quality=kept.quality, task=kept.task, classes=kept.classes,
                           now=now, cut=cut, threshold=threshold, served_hours=kept.served_hours, source=kept.source,
                           sample_rows=sample_rows)


def kept_rows(backend, path: str | None) -> ir.Table:
    """The kept labels file at ``path`` (None: no labels; on PostgreSQL and SQLite a table's name) as a table of
    ``backend`` (``KEPT_COLUMNS``)."""
    if path is None:
        return ibis.memtable(pd.DataFrame({c: pd.Series(dtype=object if c == "id" else "int64" if c == "key" else float)
                                           for c in KEPT_COLUMNS}))
    return backend.table(path) if backend.name in ("postgres", "sqlite") else backend.read_parquet(path)


def summarize_labeled(labeled: LabeledPredictions, *, judged_days: float = 7.0, threshold: float | None = 0.5,
                      sample_rows: int = SAMPLE_ROWS) -> LabelledSummary:
    """:func:`summarize_labels_in_engine`'s summary of predictions already joined in memory (a label file, the SQL
    store's table): the same query, run by DuckDB over the labelled rows, as ``tally_frame`` and
    ``traffic_frame`` do for a log in memory.

    Parameters
    ----------
    labeled : LabeledPredictions
    judged_days : float, default=7
    threshold : float or None, default=0.5
        Decision threshold of the counts (two classes); None = the logged decisions.
    sample_rows : int, default=SAMPLE_ROWS

    Returns
    -------
    LabelledSummary
    """
    frame = labeled.frame
    now, cut = float(labeled.now), cut_of(labeled.now, judged_days)
    rows = frame.loc[frame["label"].notna(), ["id", "ts", "prediction", "score", "label"]].astype(
        {"id": str, "ts": float, "prediction": float, "score": float, "label": float})
    slices, sample = _no_slices(), _no_sample()
    if len(rows):
        backend = ibis.duckdb.connect()
        try:
            slices, sample = _slice_sums(backend, ibis.memtable(rows), task=labeled.task, classes=labeled.classes,
                                         now=now, cut=cut, threshold=threshold, sample_rows=sample_rows)
        finally:
            backend.disconnect()
    served = labeled.served_hours
    if served is None:
        hours, counts = np.unique(np.floor(frame["ts"].to_numpy(dtype=float) / 3600.0) * 3600.0, return_counts=True)
        served = pd.DataFrame({"hour_start": hours, "n": counts})
    return LabelledSummary(slices=slices, sample=sample, quality=labeled.quality, task=labeled.task,
                           classes=labeled.classes, now=now, cut=cut, threshold=threshold, served_hours=served,
                           source=labeled.source, sample_rows=sample_rows)


@dataclass(frozen=True)
class JoinedLabels:
    """What the join found: ``result`` of the caller's finishing step, the labels' quality, task and hours."""

    result: Any
    quality: LabelQuality
    task: str
    classes: tuple[float, ...]
    served: pd.DataFrame


def join_in_engine(backend, predictions: ir.Table, labels: ir.Table | None, *, now: float, task: str,
                   finish: Callable[[ir.Table | None, str, tuple[float, ...]], tuple[Any, int]],
                   served: pd.DataFrame | None = None) -> JoinedLabels:
    """The label join every engine query builds on (:func:`join_labels_in_engine`'s rules), finished by the caller.

    Parameters
    ----------
    backend, predictions, labels, now, task
        As for :func:`join_labels_in_engine`.
    finish : callable
        ``finish(used, task, classes)`` turns the used rows' expression (``id, ts, prediction,
        score, label, label_ts``; None without labels), valid while it runs, into the result and
        says how many rows were used.
    served : DataFrame, optional
        Every logged prediction per UTC hour when the caller has counted them; counted here otherwise.

    Returns
    -------
    JoinedLabels
    """
    if task not in ("auto", *TASKS):
        raise ValueError(f"task must be 'auto', 'classification' or 'regression'; got {task!r}")
    found = prediction_values(backend, predictions, max_values=MAX_CLASSES)
    resolved = task_of_values(has_score=found.has_score, values=found.values, whole=found.whole) \
        if task == "auto" else task
    classes = classes_of_values(values=found.values, has_score=found.has_score) \
        if resolved == "classification" else ()
    if served is None:
        hours = window_rows(backend, predictions, window="hour")
        served = pd.DataFrame({"hour_start": hours.start, "n": hours.n_rows})
    if labels is None:
        result, _ = finish(None, resolved, classes)
        return JoinedLabels(result, LabelQuality(), resolved, classes, served)

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
    with contextlib.ExitStack() as stack:
        if backend.name == "sqlite":  # looked up by id in an indexed copy, not compared with every prediction
            candidates = stack.enter_context(_kept(backend, candidates, key="prediction_id"))
        pairs = candidates.inner_join(logged, candidates.prediction_id == logged.pid).select(
            "prediction_id", "label", "label_ts", "pts", "prediction", "score")
        pairs = stack.enter_context(_kept(backend, pairs, key="prediction_id"))
        result, quality = _joined(backend, rows, pairs, written=written, candidates=candidates, logged=logged,
                                  order_keys=list(order_keys), task=resolved, classes=classes, finish=finish)
    return JoinedLabels(result, quality, resolved, classes, served)


def _joined(backend, rows: ir.Table, pairs: ir.Table, *, written: list[str], candidates: ir.Table,
            logged: ir.Table, order_keys: list[str], task: str, classes: tuple[float, ...],
            finish: Callable) -> tuple[Any, LabelQuality]:
    """The counts, examples and (through ``finish``) labelled rows of :func:`join_in_engine`, from the kept pairs."""
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
    # Commonly every id has one pair: then no two pairs share an id's hash either, which one count of
    # distinct 64-bit hashes tells sooner than grouping millions of texts; the texts are grouped only
    # when two pairs share a hash (a repeated id, or, once in billions, two ids with one hash).
    hashed = backend.execute(pairs.aggregate(
        pairs=pairs.count(), hashes=engine_hash(pairs.prediction_id).nunique(),
        **({"unknown": (~known(pairs)).ifelse(1, 0).sum()} if classification else {}))).iloc[0]
    if int(hashed["pairs"] or 0) == int(hashed["hashes"] or 0):
        kept = {"ids": hashed["pairs"], "repeated": 0, "unknown": hashed.get("unknown", 0)}
    else:
        kept = backend.execute(per_id.aggregate(
            ids=per_id.count(), repeated=(per_id.n > 1).ifelse(1, 0).sum(),
            **({"unknown": (per_id.n == 1).ifelse(per_id.unknown, 0).sum()} if classification else {}))).iloc[0]
    n_candidates, n_ids, n_repeated = int(counts["candidates"] or 0), int(kept["ids"] or 0), int(kept["repeated"] or 0)
    n_unknown = int(kept["unknown"] or 0) if classification else 0
    examples: dict[str, tuple[str, ...]] = {}
    if int(counts["invalid"] or 0):
        bad = _first(backend, rows.filter(rows.invalid), written)
        examples["invalid"] = tuple(bad["shown"]) if "shown" in bad.columns else tuple(
            f"id {_plain(r.raw_id)!r} label {_plain(r.raw_label)!r} arrived {_plain(r.raw_ts)!r}"
            for r in bad.itertuples(index=False))
    with contextlib.ExitStack() as stack:
        n_matched, single, latest = n_ids, pairs, None
        if n_repeated:  # ids with more than one label, or logged more than once: ranked as in memory
            repeated = stack.enter_context(_kept(backend, per_id.filter(per_id.n > 1).select("prediction_id"),
                                                 key="prediction_id"))
            single = pairs.anti_join(repeated, "prediction_id")
            theirs = candidates.semi_join(repeated, "prediction_id")
            # each label ranked among its prediction's, newest first (0 = the one used)
            ranked = stack.enter_context(_kept(backend, theirs.mutate(newest=ibis.row_number().over(
                group_by="prediction_id", order_by=[ibis.desc("arrival"), *(ibis.desc(k) for k in written)])),
                key="prediction_id"))
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
            lost = candidates.anti_join(pairs, "prediction_id")  # the pairs hold every id a prediction has
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
        result, n_used = finish(used, task, classes)
    quality = LabelQuality(received=int(counts["received"] or 0), used=n_used,
                           unmatched=n_candidates - n_matched, duplicates=n_matched - n_ids,
                           invalid=int(counts["invalid"] or 0), unknown_class=n_unknown,
                           pending=int(counts["pending"] or 0), examples=examples)
    return result, quality


def _no_slices() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=float) for c in SLICE_COLUMNS})


def _no_sample() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object if c == "id" else float) for c in SAMPLE_COLUMNS})


def _slice_sums(backend, used: ir.Table, *, task: str, classes: tuple[float, ...], now: float, cut: float,
                threshold: float | None, sample_rows: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The sums per slice of the used rows and, per slice, the ``sample_rows`` rows of least key (two queries)."""
    t = used.filter(used.prediction.notnull() & ~used.prediction.isnan() & used.ts.notnull() & ~used.ts.isnan())
    day = ((t.ts / DAY).floor() * DAY).cast("float64")
    cut_day_end = math.floor(cut / DAY) * DAY + DAY
    t = t.mutate(slice_start=ibis.cases((t.ts >= now, ibis.literal(float(now))),
                                        ((t.ts >= cut) & (t.ts < cut_day_end), ibis.literal(float(cut))),
                                        else_=day))
    error = t.label - t.prediction
    sums = {"n": t.count(), "correct": (t.label == t.prediction).ifelse(1, 0).sum(),
            "ts_min": t.ts.min(), "ts_max": t.ts.max()}
    if task == "classification" and len(classes) == 2:
        negative, positive = (ibis.literal(float(c)) for c in classes)
        scored = finite(t.score)
        decided = t.prediction if threshold is None else scored.ifelse(
            (t.score >= threshold).ifelse(positive, negative), t.prediction)
        is_positive, decided_positive = t.label == positive, decided == positive
        sums.update(positives=is_positive.ifelse(1, 0).sum(), n_scored=scored.ifelse(1, 0).sum(),
                    score_sum=scored.ifelse(t.score, 0.0).sum(),
                    tn=(~is_positive & ~decided_positive).ifelse(1, 0).sum(),
                    fp=(~is_positive & decided_positive).ifelse(1, 0).sum(),
                    fn=(is_positive & ~decided_positive).ifelse(1, 0).sum(),
                    tp=(is_positive & decided_positive).ifelse(1, 0).sum())
    if task == "regression":
        sums.update(abs_error_sum=error.abs().sum(), error_sum=error.sum())
    counted = backend.execute(t.group_by("slice_start").aggregate(**sums))
    slices = pd.DataFrame({c: counted.get(c, 0) for c in SLICE_COLUMNS})
    slices = slices.fillna({c: 0 for c in SLICE_COLUMNS if c not in ("ts_min", "ts_max")})
    slices = slices.astype({c: float if c in ("slice_start", "score_sum", "abs_error_sum", "error_sum", "ts_min",
                                              "ts_max") else np.int64 for c in SLICE_COLUMNS})
    slices = slices.sort_values("slice_start").reset_index(drop=True)
    # (x % m + m) % m: in [0, m) for an unsigned hash (DuckDB) and a signed one (Spark) alike
    keyed = t if "key" in t.columns else t.mutate(  # a kept labels file holds its key already
        key=id_key(t.id))
    sample = least_key_rows(backend, keyed, dict(zip(slices["slice_start"].astype(float),
                                                     slices["n"].astype(int), strict=True)), sample_rows)
    return slices, sample


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
