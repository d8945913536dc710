"""The Performance page from counts: labelled predictions kept where the log lives, summed per window there.

The label join of a large log (:func:`monitoring.label_queries.keep_labels_in_engine`) writes
its labelled predictions to a Parquet file beside the log — a :class:`KeptLabels` — instead
of bringing them into the dashboard. Every view of the Performance page is then a query of
that file which returns only counts and bounded samples:

* :func:`window_sums` — per *slice* (a window of prediction time; the window holding the
  judged period's start is cut there, and predictions at or after ``now`` are a slice of
  their own) the sums every metric needs, the confusion counts of the logged decisions, the
  ROC AUC's rank sums per window, over the judged period and over the range, and at most
  ``sample_rows`` rows of least key per slice for the bootstrap;
* :func:`sums_performance` and :func:`sums_verdict` — from those sums,
  :func:`monitoring.performance.performance_over_time` and :func:`monitoring.verdict.judged_verdict`
  as the rows give them;
* :func:`window_decisions` — :func:`monitoring.performance.decisions_over_time`, counted;
* :func:`kept_detail` — :func:`monitoring.performance.performance_detail` of one period.

Values are the rows' exactly: accuracy, precision, recall and F1 from the confusion counts,
ROC AUC from the Mann–Whitney rank sums (ties counted half, as scikit-learn's trapezoids),
log loss, MAE, RMSE and R² from sums (R²'s spread pooled from each slice's mean and
variance). So are the Wilson intervals. A bootstrap interval is the rows path's own (the same
seeded draws on the same rows) for a group of at most ``sample_rows`` labels; a larger group
is bootstrapped on its rows of least key — a hash of the prediction id, a uniform sample —
narrowed to the whole group (an m-out-of-n bootstrap, as the rows path does with its own
subsample) and centred on the exact value.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from monitoring.baseline import Baseline
from monitoring.label_summary import SLICE_COLUMNS, LabelledSummary
from monitoring.labels import LabelQuality
from monitoring.log_queries import finite
from monitoring.performance import (
    BusinessValues,
    ConfusionMatrix,
    DecisionsOverTime,
    PerformanceDetail,
    PerformanceOverTime,
    check_window,
    require_two_classes,
    served_of_hours,
    windows_frame,
)
from monitoring.statistics import (
    SCORE_METRICS,
    _nan_mean,
    _prf_from_counts,
    group_metrics,
    metrics_for,
    wilson_interval,
)
from monitoring.verdict import BaselineVerdict, PeriodMeasure, _check_judging, _open_since, judge_period
from monitoring.windows import WEEK_ORIGIN, WINDOW_SECONDS, window_start

SAMPLE_ROWS = 2000
"""Rows of least key kept per slice: every group's bootstrap finds its ``max_bootstrap_rows`` among them."""
KEPT_COLUMNS = ("id", "ts", "prediction", "score", "label", "label_ts", "key")
"""Columns of a kept labels file: the labelled predictions, and ``key``, a hash of the id in ``[0, KEY_MODULUS)``."""
KEY_MODULUS = 1_073_741_789
"""The key is the id's hash modulo this prime (below 2**30, so that a key plus it fits Spark's 32-bit integers)."""
PART_COLUMNS = ("window_start", "slice_start", "n", "correct", "positives", "n_scored", "score_sum", "score_min",
                "score_max", "log_loss_sum", "abs_error_sum", "squared_error_sum",
                "error_sum", "label_mean", "label_m2", "ts_min", "ts_max")
"""Columns of :attr:`WindowSums.slices`."""
_EPS = float(np.finfo(float).eps)


@ibis.udf.scalar.builtin(name="hash", signature=((dt.string,), dt.int64))
def engine_hash(value):
    """The engine's own hash of a text (DuckDB's and Spark's ``hash``); Ibis's ``hash()`` casts it through
    bits, at a second per 5,000,000 ids."""


def id_key(id_text: ir.StringValue) -> ir.IntegerValue:
    """A prediction id's sample key: the engine's hash of it in ``[0, KEY_MODULUS)`` (``(x % m + m) % m``: the same
    range for DuckDB's unsigned hash and Spark's signed one). The rows of least key are a uniform sample."""
    return (engine_hash(id_text) % KEY_MODULUS + KEY_MODULUS) % KEY_MODULUS
"""What scikit-learn's ``log_loss`` clips scores to."""


@dataclass(frozen=True)
class KeptLabels:
    """The labelled predictions of one service, kept as a Parquet file where its log lives.

    Attributes
    ----------
    path : str
        The file (a folder of files on Spark) with :data:`KEPT_COLUMNS`.
    quality : LabelQuality
    task : {"classification", "regression"}
    classes : tuple of float
    now : float
        Labels that arrived after it are not in the file.
    served_hours : DataFrame
        Every logged prediction counted per UTC hour (``hour_start``, ``n``).
    n_labelled : int
        Rows of the file.
    has_score : bool
        Whether a labelled prediction carries a score (not NaN).
    median_delay_seconds : float
        Median time between a prediction and its label's arrival (NaN when unknown).
    source : str
    summary : LabelledSummary or None
        The Overview's summary of the same rows, when it was made with them
        (:func:`monitoring.label_queries.summarize_kept`).
    seconds : float
        How long the join took (NaN when unknown): how often it may be made again
        (:func:`stays_fresh`).
    """

    path: str
    quality: LabelQuality
    task: str
    classes: tuple[float, ...]
    now: float
    served_hours: pd.DataFrame
    n_labelled: int
    has_score: bool
    median_delay_seconds: float
    source: str = ""
    summary: LabelledSummary | None = None
    seconds: float = math.nan


JOIN_SHARE = 20
"""A label join is made again at most every this many times its own duration (the upkeep spends at most a
twentieth of its time on it: every two minutes at 10,000,000 predictions, less often beyond)."""


def stays_fresh(kept: KeptLabels, *, every: float, stretch: float = 1.0) -> float:
    """Seconds after its time that ``kept`` serves: ``every``, or longer for a join that took long
    (``stretch`` times :data:`JOIN_SHARE` its duration; a page passes 2, so that it takes the join the upkeep
    makes next rather than making its own)."""
    took = kept.seconds if math.isfinite(kept.seconds) else 0.0
    return max(float(every), stretch * JOIN_SHARE * took)


_KEPT_VERSION = 1
"""Bumped when what :func:`write_kept` writes changes: an older record is then not read."""


def kept_record(kept: KeptLabels) -> tuple[dict, pd.DataFrame | None]:
    """What records ``kept`` for another process: a JSON-ready mapping, and its summary's sample (None without a
    summary), which :func:`kept_from_record` reads back."""
    record = {"version": _KEPT_VERSION, "path": kept.path, "quality": dataclasses.asdict(kept.quality),
              "task": kept.task, "classes": list(kept.classes), "now": kept.now,
              "served_hours": {c: kept.served_hours[c].tolist() for c in ("hour_start", "n")},
              "n_labelled": kept.n_labelled, "has_score": kept.has_score,
              "median_delay_seconds": kept.median_delay_seconds, "source": kept.source, "summary": None,
              "seconds": kept.seconds}
    summary = kept.summary
    if summary is None:
        return record, None
    record["summary"] = {"cut": summary.cut, "threshold": summary.threshold, "sample_rows": summary.sample_rows,
                         "slices": {c: summary.slices[c].tolist() for c in summary.slices.columns}}
    return record, summary.sample


def kept_from_record(record: dict, sample: Callable[[], pd.DataFrame]) -> KeptLabels | None:
    """The :class:`KeptLabels` of a :func:`kept_record` mapping (None when it is of another version); ``sample``
    gives its summary's sample (raising OSError or ValueError when it cannot: the summary is then left out)."""
    if record.get("version") != _KEPT_VERSION:
        return None
    quality = dict(record["quality"])
    quality["examples"] = {k: tuple(v) for k, v in quality["examples"].items()}
    kept = KeptLabels(path=record["path"], quality=LabelQuality(**quality), task=record["task"],
                      classes=tuple(float(c) for c in record["classes"]), now=float(record["now"]),
                      served_hours=pd.DataFrame(record["served_hours"]).astype({"hour_start": float, "n": np.int64}),
                      n_labelled=int(record["n_labelled"]), has_score=bool(record["has_score"]),
                      median_delay_seconds=float(record["median_delay_seconds"]), source=record["source"],
                      seconds=float(record.get("seconds", math.nan)))
    found = record["summary"]
    if found is None:
        return kept
    try:
        rows = sample()
    except (OSError, ValueError):
        return kept
    floats = ("slice_start", "score_sum", "abs_error_sum", "error_sum", "ts_min", "ts_max")
    slices = pd.DataFrame(found["slices"], columns=list(SLICE_COLUMNS)).astype(
        {c: float if c in floats else np.int64 for c in SLICE_COLUMNS})
    summary = LabelledSummary(slices=slices, sample=rows, quality=kept.quality, task=kept.task,
                              classes=kept.classes, now=kept.now, cut=float(found["cut"]),
                              threshold=found["threshold"], served_hours=kept.served_hours, source=kept.source,
                              sample_rows=int(found["sample_rows"]))
    return dataclasses.replace(kept, summary=summary)


def write_kept(kept: KeptLabels, folder: Path) -> None:
    """Record ``kept`` (and its summary) in ``folder`` beside its rows: ``kept.json`` and ``sample.parquet``.

    Parameters
    ----------
    kept : KeptLabels
    folder : Path
        A local folder of its own; ``kept.json`` is written last, so a reader finds a whole record or none.
    """
    record, sample = kept_record(kept)
    if sample is not None:
        sample.to_parquet(folder / "sample.parquet", index=False)
    partial = folder / "kept.json.part"
    partial.write_text(json.dumps(record))
    partial.replace(folder / "kept.json")


def read_kept(folder: Path) -> KeptLabels | None:
    """The :class:`KeptLabels` recorded by :func:`write_kept` in ``folder``; None when there is no whole record of
    this version, or its rows are gone."""
    try:
        record = json.loads((folder / "kept.json").read_text())
    except (OSError, ValueError):
        return None
    if record.get("path") is not None and "://" not in record["path"] and not Path(record["path"]).exists():
        return None
    return kept_from_record(record, lambda: pd.read_parquet(folder / "sample.parquet"))


@dataclass(frozen=True)
class WindowSums:
    """Labelled predictions summed per slice of one kind of window, from ``since`` on.

    Attributes
    ----------
    slices : DataFrame
        :data:`PART_COLUMNS`, one row per slice holding a labelled prediction: its window's
        start and its own (the window's, the judged period's start or ``now``); ``n``,
        ``correct`` (label equal to the logged prediction); two classes: ``positives``,
        ``n_scored``, ``score_sum``, ``score_min``, ``score_max`` and ``log_loss_sum`` of the
        finite scores (clipped as ``log_loss`` clips them); regression: sums of absolute,
        squared and plain errors (label − prediction), the labels' mean and sum of squared
        deviations; the first and last prediction time.
    confusion : DataFrame
        Classification: ``slice_start, label, prediction, n``, the logged decisions.
    auc : DataFrame
        Two classes with a score, per group of rows — ``kind`` 0: the window starting at
        ``start``; 1: the judged period; 2: the range — ``positives``, ``negatives`` and
        ``twice_u``, twice the Mann–Whitney statistic of the finite scores.
    sample : DataFrame
        Per slice at most ``sample_rows`` rows of least key: ``slice_start, key, id, ts,
        label, prediction, score``.
    window : str
    since : float or None
    cut : float
        Start of the judged period.
    sample_rows : int
    windows : DataFrame or None
        Windows of a number of predictions (:func:`row_windows`): ``window_start``,
        ``window_end`` and ``n_predictions``; None for time windows, which come from the hours
        served.
    """

    slices: pd.DataFrame
    confusion: pd.DataFrame
    auc: pd.DataFrame
    sample: pd.DataFrame
    window: str
    since: float | None
    cut: float
    sample_rows: int = SAMPLE_ROWS
    windows: pd.DataFrame | None = None


# -- queries of the kept rows ----------------------------------------------------------------


def _window_of(ts: ir.FloatingValue, window: str) -> ir.FloatingValue:
    width = WINDOW_SECONDS[window]
    origin = WEEK_ORIGIN if window == "week" else 0.0
    return (((ts - origin) / width).floor() * width + origin).cast("float64")


def _usable(rows: ir.Table, since: float | None, until: float | None = None) -> ir.Table:
    """The rows with a prediction and a time, predicted in ``[since, until)``."""
    kept = rows.filter(rows.prediction.notnull() & ~rows.prediction.isnan() & rows.ts.notnull() & ~rows.ts.isnan()
                       & rows.label.notnull() & ~rows.label.isnan())
    if since is not None:
        kept = kept.filter(kept.ts >= since)
    if until is not None:
        kept = kept.filter(kept.ts < until)
    return kept


def _scored(t: ir.Table) -> ir.BooleanValue:
    return finite(t.score)


def _decided(t: ir.Table, classes: tuple[float, ...], threshold: float | None) -> ir.FloatingValue:
    """The decided class: the score against ``threshold`` for two classes, else the logged prediction."""
    if threshold is None or len(classes) != 2:
        return t.prediction
    negative, positive = (ibis.literal(float(c)) for c in classes)
    return _scored(t).ifelse((t.score >= threshold).ifelse(positive, negative), t.prediction)


def window_sums(backend, rows: ir.Table, *, task: str, classes: tuple[float, ...], window: str, now: float,
                judged_days: float, since: float | None = None, sample_rows: int = SAMPLE_ROWS,
                windows: pd.DataFrame | None = None) -> WindowSums:
    """The :class:`WindowSums` of kept labelled rows, counted by ``backend``.

    Parameters
    ----------
    backend
        The Ibis backend that reads ``rows``.
    rows : ibis Table
        A kept labels file (:data:`KEPT_COLUMNS`).
    task : {"classification", "regression"}
    classes : tuple of float
    window : {"hour", "day", "week"} or str of int
        A span of time, or a number of predictions (then ``rows`` and ``windows`` come from
        :func:`row_windows`).
    now : float
    judged_days : float
        The judged period ``[now - judged_days days, now)``.
    since : float, optional
        The range: windows from then on (a window boundary). The judged period is counted
        whole even when it starts earlier.
    sample_rows : int, default=SAMPLE_ROWS
    windows : DataFrame, optional
        The windows of a number of predictions (:func:`row_windows`).

    Returns
    -------
    WindowSums

    Raises
    ------
    ValueError
        For windows of a number of predictions without ``windows``.
    """
    window, timed = _checked_window(window, rows, windows)
    cut = float(now) - float(judged_days) * 86_400.0
    # the judged period is counted whole even when the range starts after it
    t = _usable(rows, None if since is None else min(float(since), float(window_start(cut, window)) if timed else cut))
    start = _window_of(t.ts, window) if timed else t.window_start
    cut_window_end = float(window_start(cut, window)) + WINDOW_SECONDS[window] if timed else _end_after(windows, cut)
    t = t.mutate(window_start=start, slice_start=ibis.cases(
        (t.ts >= now, ibis.literal(float(now))), ((t.ts >= cut) & (t.ts < cut_window_end), ibis.literal(cut)),
        else_=start))
    error = t.label - t.prediction
    sums = {"n": t.count(), "correct": (t.label == t.prediction).ifelse(1, 0).sum(), "ts_min": t.ts.min(),
            "ts_max": t.ts.max()}
    binary = task == "classification" and len(classes) == 2
    if binary:
        positive = float(classes[1])
        scored = _scored(t)
        is_positive = t.label == positive
        clipped = t.score.clip(lower=_EPS, upper=1 - _EPS)
        loss = -(is_positive.ifelse(clipped.ln(), (1 - clipped).ln()))
        sums.update(positives=is_positive.ifelse(1, 0).sum(), n_scored=scored.ifelse(1, 0).sum(),
                    score_sum=scored.ifelse(t.score, 0.0).sum(), score_min=scored.ifelse(t.score, ibis.null()).min(),
                    score_max=scored.ifelse(t.score, ibis.null()).max(),
                    log_loss_sum=scored.ifelse(loss, 0.0).sum())
    if task == "regression":
        sums.update(abs_error_sum=error.abs().sum(), squared_error_sum=(error * error).sum(), error_sum=error.sum(),
                    label_mean=t.label.mean(), label_m2=t.label.var(how="pop") * t.count())
    counted = backend.execute(t.group_by(["window_start", "slice_start"]).aggregate(**sums))
    slices = pd.DataFrame({c: counted.get(c, 0.0) for c in PART_COLUMNS})
    slices = slices.fillna({c: 0 for c in PART_COLUMNS if c not in ("ts_min", "ts_max", "score_min", "score_max")})
    slices = slices.astype({c: np.int64 if c in ("n", "correct", "positives", "n_scored")
                            else float for c in PART_COLUMNS})
    slices = slices.sort_values("slice_start").reset_index(drop=True)
    confusion = pd.DataFrame({"slice_start": [], "label": [], "prediction": [], "n": []})
    if task == "classification":
        confusion = backend.execute(t.group_by(["slice_start", "label", "prediction"]).aggregate(n=t.count()))
        confusion = confusion.astype({"slice_start": float, "label": float, "prediction": float, "n": np.int64})
    auc = _no_auc()
    if binary and int(slices["n_scored"].sum()):
        auc = _rank_sums(backend, t, positive=float(classes[1]), cut=cut, now=now, since=since)
    sample = least_key_rows(backend, t, dict(zip(slices["slice_start"], slices["n"], strict=True)), sample_rows)
    return WindowSums(slices=slices, confusion=confusion, auc=auc, sample=sample, window=window, since=since,
                      cut=cut, sample_rows=sample_rows, windows=None if timed else windows)


def _end_after(windows: pd.DataFrame, cut: float) -> float:
    """End of the window of a number of predictions that holds ``cut``: the next one's start (inf for the last)."""
    starts = windows["window_start"].to_numpy(dtype=float)
    i = int(np.searchsorted(starts, cut, side="right"))
    return float(starts[i]) if i < len(starts) else math.inf


MAX_ROW_WINDOWS = 500
"""Windows of a number of predictions shown at most: the newest (the samples' rows stay bounded)."""


def row_windows(backend, predictions: ir.Table, rows: ir.Table, *, size: int, since: float | None = None,
                max_windows: int = MAX_ROW_WINDOWS) -> tuple[ir.Table, pd.DataFrame]:
    """Windows of ``size`` logged predictions from ``since`` on, and the kept rows with their window's start.

    As :func:`monitoring.performance.performance_over_time` makes them of every logged row:
    predictions in time order (then in the order written), ``size`` per window, the last one
    partial; a window starts at the time of its first prediction and ends at the next one's
    start (the last, at its last prediction).

    Parameters
    ----------
    backend
    predictions : ibis Table
        The log (``id``, ``ts``; with ``filename`` and ``file_row_number`` the written order).
    rows : ibis Table
        The kept labels file.
    size : int
        Predictions per window.
    since : float, optional
        The range's start.
    max_windows : int, default=MAX_ROW_WINDOWS
        Only the newest windows are returned; the rows of older ones have no window (pass the
        first window's start as the range's ``since`` to the sums).

    Returns
    -------
    rows : ibis Table
        Every kept row with ``window_start`` (NULL before ``since`` or in an older window: the
        judged period is still counted whole).
    windows : DataFrame
        ``window_start``, ``window_end``, ``n_predictions``, oldest first.
    """
    p = predictions.mutate(pts=predictions.ts.cast("float64"))
    p = p.filter(p.pts.notnull() & ~p.pts.isnan())
    if since is not None:
        p = p.filter(p.pts >= since)
    order = [p.pts, *(p[c] for c in ("filename", "file_row_number") if c in p.columns)]
    p = p.mutate(window=((ibis.row_number().over(order_by=order)) // size).cast("int64"))
    p = p.mutate(window_start=p.pts.min().over(group_by="window"))
    counted = backend.execute(p.group_by("window").aggregate(window_start=p.window_start.min(), last=p.pts.max(),
                                                             n_predictions=p.count())).sort_values("window")
    starts = counted["window_start"].to_numpy(dtype=float)
    windows = pd.DataFrame({"window_start": starts,
                            "window_end": np.r_[starts[1:], counted["last"].to_numpy(dtype=float)[-1:]],
                            "n_predictions": counted["n_predictions"].to_numpy(dtype=np.int64)})
    dropped = counted["window"].to_numpy()[:-max_windows] if len(windows) > max_windows else []
    windows = windows.iloc[-max_windows:].reset_index(drop=True)
    if len(dropped):
        p = p.mutate(window_start=(p.window > int(dropped[-1])).ifelse(p.window_start, ibis.null("float64")))
    # an id logged twice at one time is one kept row: its first window
    placed = p.group_by([p.id.cast("string").name("pid"), "pts"]).aggregate(placed_start=p.window_start.min())
    joined = rows.left_join(placed, (rows.id == placed.pid) & (rows.ts == placed.pts))
    return joined.select(*KEPT_COLUMNS, window_start=joined.placed_start), windows


def served_windows(kept: KeptLabels, window: str, *, since: float | None = None) -> pd.DataFrame:
    """The hour, day or week windows from ``since`` on that hold logged predictions, from the hours served.

    Returns
    -------
    DataFrame
        ``window_start``, ``window_end``, ``n_predictions``, oldest first.
    """
    starts, n_predictions = served_of_hours(kept.served_hours, window, since=since, until=None)
    return pd.DataFrame({"window_start": starts.astype(float), "window_end": starts + WINDOW_SECONDS[window],
                         "n_predictions": n_predictions.astype(np.int64)})


def _checked_window(window: str, rows: ir.Table, windows: pd.DataFrame | None) -> tuple[str, bool]:
    """The window's text and whether it is a span of time; windows of a number of predictions need the rows and
    windows of :func:`row_windows`."""
    window = check_window(window)
    timed = window in WINDOW_SECONDS
    if not timed and (windows is None or "window_start" not in rows.columns):
        raise ValueError(f"windows of {window} predictions need the rows and windows of row_windows")
    return window, timed


def _no_auc() -> pd.DataFrame:
    return pd.DataFrame({"kind": pd.Series(dtype=np.int64), "start": pd.Series(dtype=float),
                         "positives": pd.Series(dtype=np.int64),
                         "negatives": pd.Series(dtype=np.int64), "twice_u": pd.Series(dtype=float)})


_WINDOW, _JUDGED, _RANGE = 0, 1, 2
"""Kinds of :attr:`WindowSums.auc` groups: a window (its start), the judged period, the range."""


def _rank_sums(backend, t: ir.Table, *, positive: float, cut: float, now: float,
               since: float | None) -> pd.DataFrame:
    """Twice the Mann–Whitney U of the finite scores per window, over the judged period and over the range.

    Each positive counts the negatives below its score once and those tied with it half:
    ``2U = Σ p·(2·at_or_below − tied)``, two running counts over the rows sorted by score
    (two sorts in all: by window and score, and by score).
    """
    scored = t.filter(_scored(t))
    scored = scored.mutate(p=(scored.label == positive).ifelse(1, 0))
    scored = scored.mutate(q=1 - scored.p, r=(ibis.literal(True) if since is None else scored.ts >= since).ifelse(1, 0),
                           j=((scored.ts >= cut) & (scored.ts < now)).ifelse(1, 0))
    # per window: sorted by window, then score, the running count also holds the earlier windows'
    # negatives, which each positive then takes off twice
    in_range = scored.filter(scored.r == 1)
    order = ["window_start", "score"]
    ranked = in_range.mutate(at_or_below=in_range.q.sum().over(ibis.window(order_by=order, range=(None, 0))),
                             tied=in_range.q.sum().over(ibis.window(order_by=order, range=(0, 0))))
    windows = backend.execute(ranked.group_by("window_start").aggregate(
        positives=ranked.p.sum(), negatives=ranked.q.sum(),
        twice=(ranked.p * (2 * ranked.at_or_below - ranked.tied)).sum())).sort_values("window_start")
    earlier = (windows["negatives"].cumsum() - windows["negatives"]).to_numpy(dtype=np.int64)
    twice_u = windows["twice"].to_numpy(dtype=np.int64) - 2 * windows["positives"].to_numpy(dtype=np.int64) * earlier
    found = [pd.DataFrame({"kind": _WINDOW, "start": windows["window_start"].to_numpy(dtype=float),
                           "positives": windows["positives"], "negatives": windows["negatives"],
                           "twice_u": twice_u.astype(float)})]
    upto, tie = ibis.window(order_by="score", range=(None, 0)), ibis.window(order_by="score", range=(0, 0))
    running = {}
    for flag in ("r", "j"):
        negative = scored.q * scored[flag]
        running |= {f"{flag}_le": negative.sum().over(upto), f"{flag}_tie": negative.sum().over(tie)}
    both = scored.mutate(**running)
    totals = backend.execute(both.aggregate(**{
        name: value for flag in ("r", "j") for name, value in (
            (f"{flag}_p", (both.p * both[flag]).sum()), (f"{flag}_q", (both.q * both[flag]).sum()),
            (f"{flag}_twice", (both.p * both[flag] * (2 * both[f"{flag}_le"] - both[f"{flag}_tie"])).sum()))})).iloc[0]
    for kind, flag in ((_JUDGED, "j"), (_RANGE, "r")):
        found.append(pd.DataFrame({"kind": [kind], "start": [0.0], "positives": [int(totals[f"{flag}_p"] or 0)],
                                   "negatives": [int(totals[f"{flag}_q"] or 0)],
                                   "twice_u": [float(totals[f"{flag}_twice"] or 0)]}))
    return pd.concat(found, ignore_index=True).astype({"kind": np.int64, "start": float, "positives": np.int64,
                                                       "negatives": np.int64, "twice_u": float})


def least_key_rows(backend, t: ir.Table, sizes: dict[float, int], sample_rows: int) -> pd.DataFrame:
    """Per slice the ``sample_rows`` rows of least key, by ``backend``.

    Ranking every row of a slice by its key is a sort of millions: the rows of least key are
    found among those below a bound that keeps about 1.5 times the sample (every row of a small
    slice), and a slice that came short of its sample is ranked whole.

    Parameters
    ----------
    backend
    t : ibis Table
        Rows with ``slice_start``, ``key`` (in ``[0, KEY_MODULUS)``), ``id``, ``ts``, ``label``,
        ``prediction`` and ``score``.
    sizes : dict of float to int
        Rows per slice start.
    sample_rows : int

    Returns
    -------
    DataFrame
        ``slice_start, key, id, ts, label, prediction, score``, by slice, key and time.
    """
    if not sizes:
        return _no_sample()
    wanted = {start: min(int(n), sample_rows) for start, n in sizes.items()}
    bounds = {start: int(KEY_MODULUS * min(1.0, (1.5 * sample_rows + 64) / max(int(n), 1)))
              for start, n in sizes.items()}
    sample = _least_keys(backend, t, bounds, sample_rows)
    short = [start for start, n in sample.groupby("slice_start").size().reindex(list(wanted), fill_value=0).items()
             if n < wanted[start]]
    if short:
        sample = pd.concat([sample[~sample["slice_start"].isin(short)],
                            _least_keys(backend, t, dict.fromkeys(short, KEY_MODULUS), sample_rows)])
    sample = sample.astype({"slice_start": float, "key": np.int64, "ts": float, "label": float, "prediction": float,
                            "score": float})
    return sample.sort_values(["slice_start", "key", "ts"], kind="stable").reset_index(drop=True)


_SAMPLED = ("slice_start", "key", "id", "ts", "label", "prediction", "score")


def _least_keys(backend, t: ir.Table, bounds: dict[float, int], sample_rows: int) -> pd.DataFrame:
    bound = ibis.cases(*((t.slice_start == start, limit) for start, limit in bounds.items()), else_=0)
    below = t.filter(t.key < bound)
    below = below.mutate(rank=ibis.row_number().over(group_by="slice_start", order_by=["key", "ts"]))
    return backend.execute(below.filter(below["rank"] < sample_rows).select(*_SAMPLED))


def _no_sample() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object if c == "id" else np.int64 if c == "key" else float)
                         for c in _SAMPLED})


# -- metrics of groups of slices -------------------------------------------------------------


def _in_time_order(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.sort_values(["ts", "id"], kind="stable")


def _group_sample(sums: WindowSums, chosen: np.ndarray, max_rows: int) -> pd.DataFrame:
    """The ``max_rows`` sampled rows of least key in the slices ``chosen``, in time order."""
    starts = sums.slices["slice_start"].to_numpy(dtype=float)[chosen]
    sample = sums.sample[sums.sample["slice_start"].isin(starts)]
    if len(sample) > max_rows:
        sample = sample.sort_values("key", kind="stable").head(max_rows)
    return _in_time_order(sample)


def _exact(sums: WindowSums, chosen: np.ndarray, *, task: str, classes: tuple[float, ...], metrics: tuple[str, ...],
           auc: pd.Series | None, confidence: float) -> dict[str, float]:
    """The metrics, Wilson intervals and extras of the slices ``chosen`` from their sums."""
    part = sums.slices.loc[chosen]
    n = int(part["n"].sum())
    row: dict[str, float] = {}
    if task == "regression":
        errors = part[["abs_error_sum", "squared_error_sum", "error_sum"]].sum()
        spread = _pooled_spread(part)
        squared = float(errors["squared_error_sum"])
        row.update(mae=float(errors["abs_error_sum"]) / n, rmse=math.sqrt(squared / n),
                   r2=(math.nan if n < 2 else (1.0 - squared / spread) if spread > 0 else 1.0 if squared == 0 else 0.0),
                   mean_residual=float(errors["error_sum"]) / n)
        return row
    starts = part["slice_start"].to_numpy(dtype=float)
    cells = sums.confusion[sums.confusion["slice_start"].isin(starts)]
    labels = np.asarray(classes, dtype=float)
    table = cells.groupby(["label", "prediction"])["n"].sum()
    counts = np.array([[int(table.get((a, b), 0)) for b in labels] for a in labels], dtype=np.int64)
    correct = int(part["correct"].sum())
    row["accuracy"] = correct / n
    low, high = wilson_interval(correct, n, confidence=confidence)
    row["accuracy_low"], row["accuracy_high"] = float(low), float(high)
    if len(classes) == 2:
        tp, n_decided, n_true = int(counts[1, 1]), int(counts[:, 1].sum()), int(counts[1].sum())
        precision, recall, f1 = (float(v[0]) for v in _prf_from_counts(np.array([tp]), np.array([n_decided]),
                                                                      np.array([n_true])))
        row.update(precision=precision, recall=recall, f1=f1)
        for metric, trials in (("precision", n_decided), ("recall", n_true)):
            low, high = wilson_interval(tp, trials, confidence=confidence)
            row[f"{metric}_low"], row[f"{metric}_high"] = float(low), float(high)
        n_scored = int(part["n_scored"].sum())
        row["label_rate"] = float(part["positives"].sum()) / n
        row["mean_score"] = float(part["score_sum"].sum()) / n_scored if n_scored else math.nan
        if "log_loss" in metrics:
            inside = n_scored and part["score_min"].min() >= 0.0 and part["score_max"].max() <= 1.0
            row["log_loss"] = float(part["log_loss_sum"].sum()) / n_scored if inside else math.nan
        if "roc_auc" in metrics:
            defined = auc is not None and auc["positives"] > 0 and auc["negatives"] > 0
            row["roc_auc"] = (float(auc["twice_u"]) / (2.0 * auc["positives"] * auc["negatives"]) if defined
                              else math.nan)
    else:
        per_class = _prf_from_counts(np.diag(counts), counts.sum(axis=0), counts.sum(axis=1))
        row.update(zip(("precision", "recall", "f1"), (_nan_mean(v) for v in per_class), strict=True))
    return row


def _pooled_spread(part: pd.DataFrame) -> float:
    """Sum of squared deviations of every label from their mean, pooled from each slice's mean and spread."""
    n = part["n"].to_numpy(dtype=float)
    means = part["label_mean"].to_numpy(dtype=float)
    mean = float((n * means).sum() / n.sum())
    return float(part["label_m2"].sum() + (n * (means - mean) ** 2).sum())


def _group_row(sums: WindowSums, chosen: np.ndarray, *, task: str, classes: tuple[float, ...],
               metrics: tuple[str, ...], auc: pd.Series | None, confidence: float, n_bootstrap: int,
               max_bootstrap_rows: int, rng: np.random.Generator) -> dict[str, float]:
    """What :func:`monitoring.statistics.group_metrics` gives for the rows of the slices ``chosen``."""
    n = int(sums.slices.loc[chosen, "n"].sum())
    if n <= sums.sample_rows:  # the sample holds every row: the rows path's own computation
        rows = _in_time_order(sums.sample[sums.sample["slice_start"].isin(
            sums.slices["slice_start"].to_numpy(dtype=float)[chosen])])
        return group_metrics(*(rows[c].to_numpy(dtype=float) for c in ("label", "prediction", "score")), task=task,
                             classes=classes, metrics=metrics, confidence=confidence, n_resamples=n_bootstrap,
                             max_bootstrap_rows=max_bootstrap_rows, rng=rng)
    row = dict.fromkeys(metrics, math.nan) | {f"{m}_{b}": math.nan for m in metrics for b in ("low", "high")}
    row.update(_exact(sums, chosen, task=task, classes=classes, metrics=metrics, auc=auc, confidence=confidence))
    rows = _group_sample(sums, chosen, max_bootstrap_rows)
    sampled = group_metrics(*(rows[c].to_numpy(dtype=float) for c in ("label", "prediction", "score")), task=task,
                            classes=classes, metrics=metrics, confidence=confidence, n_resamples=n_bootstrap,
                            max_bootstrap_rows=max_bootstrap_rows, rng=rng, group_size=n)
    wilson = ({"accuracy", "precision", "recall"} if len(classes) == 2 else {"accuracy"}) \
        if task == "classification" else set()
    for metric in metrics:
        if metric in wilson:
            continue
        shift = row[metric] - float(sampled[metric])  # the sample's interval, around the whole group's value
        row[f"{metric}_low"] = float(sampled[f"{metric}_low"]) + shift
        row[f"{metric}_high"] = float(sampled[f"{metric}_high"]) + shift
    return row


def _auc_of(sums: WindowSums, kind: int, start: float = 0.0) -> pd.Series | None:
    auc = sums.auc
    found = auc[(auc["kind"] == kind) & (auc["start"] == start)]
    return None if found.empty else found.iloc[0]


def sums_metrics(sums: WindowSums, *, task: str, classes: tuple[float, ...], has_score: bool) -> tuple[str, ...]:
    """The metrics of :func:`sums_performance` (``metrics_for`` the task, with a score when one is logged)."""
    return metrics_for(task, classes, has_score=has_score and int(sums.slices["n_scored"].sum()) > 0)


def sums_performance(sums: WindowSums, kept: KeptLabels, *, baseline: Baseline | None = None, min_labels: int = 30,
                     confidence: float = 0.95, n_bootstrap: int = 200, max_bootstrap_rows: int = 2000,
                     random_state: int = 0) -> PerformanceOverTime:
    """:func:`monitoring.performance.performance_over_time` of the kept labels from their window sums.

    Parameters
    ----------
    sums : WindowSums
        :func:`window_sums` of ``kept``'s file.
    kept : KeptLabels
    baseline, min_labels, confidence, n_bootstrap, random_state
        As for :func:`~monitoring.performance.performance_over_time`.
    max_bootstrap_rows : int, default=2000
        At most the sums' ``sample_rows``.

    Returns
    -------
    PerformanceOverTime

    Raises
    ------
    ValueError
        For ``max_bootstrap_rows`` above the sample's rows per slice.
    """
    if not 2 <= max_bootstrap_rows <= sums.sample_rows:
        raise ValueError(f"max_bootstrap_rows must be between 2 and the sample's {sums.sample_rows} rows per slice; "
                         f"got {max_bootstrap_rows!r}")
    wilson_interval(0, 1, confidence=confidence)  # validates confidence
    task, classes, window = kept.task, kept.classes, sums.window
    binary = task == "classification" and len(classes) == 2
    metrics = sums_metrics(sums, task=task, classes=classes, has_score=kept.has_score)
    served = sums.windows if sums.windows is not None else served_windows(kept, window, since=sums.since)
    starts, ends = served["window_start"].to_numpy(dtype=float), served["window_end"].to_numpy(dtype=float)
    n_predictions = served["n_predictions"].to_numpy(dtype=np.int64)
    slices = sums.slices
    slice_window = slices["window_start"].to_numpy(dtype=float)
    options = {"task": task, "classes": classes, "metrics": metrics, "confidence": confidence,
               "n_bootstrap": n_bootstrap, "max_bootstrap_rows": max_bootstrap_rows}
    rows = []
    for i, start in enumerate(starts):
        chosen = slice_window == start
        n = int(slices.loc[chosen, "n"].sum())
        row = {"window_start": float(start), "window_end": float(ends[i]), "n_predictions": int(n_predictions[i]),
               "n_labelled": n}
        rng = np.random.default_rng([random_state, int(abs(start)) % (2**32)])
        row.update(_group_row(sums, chosen, auc=_auc_of(sums, _WINDOW, float(start)), rng=rng, **options)
                   if n else group_metrics(np.array([]), np.array([]), np.array([]), rng=rng, task=task,
                                           classes=classes, metrics=metrics, confidence=confidence))
        rows.append(row)
    windows, columns = windows_frame(rows, metrics=metrics, task=task, binary=binary, min_labels=min_labels,
                                     window=window, now=kept.now)

    in_range = np.isin(slice_window, starts)
    n_total, served = int(slices.loc[in_range, "n"].sum()), int(n_predictions.sum())
    overall = {"window_start": float(slices.loc[in_range, "ts_min"].min()) if n_total else math.nan,
               "window_end": float(slices.loc[in_range, "ts_max"].max()) if n_total else math.nan,
               "n_predictions": served, "n_labelled": n_total,
               "coverage": n_total / served if served else math.nan, "enough_labels": bool(n_total >= min_labels),
               "partial": bool(windows["partial"].any())}
    rng = np.random.default_rng([random_state, 1])
    overall.update(_group_row(sums, in_range, auc=_auc_of(sums, _RANGE), rng=rng, **options) if n_total
                   else group_metrics(np.array([]), np.array([]), np.array([]), rng=rng, task=task, classes=classes,
                                      metrics=metrics, confidence=confidence))
    return PerformanceOverTime(
        windows=windows, overall=pd.Series(overall, dtype=object).reindex(columns), task=task, metrics=metrics,
        classes=classes, positive_class=classes[1] if binary else None, window=window, confidence=confidence,
        min_labels=min_labels, now=kept.now, baseline=baseline or Baseline())


def sums_verdict(sums: WindowSums, kept: KeptLabels, performance: PerformanceOverTime, *, metric: str,
                 baseline: Baseline, days: float = 7.0, confidence: float = 0.95, random_state: int = 0,
                 n_bootstrap: int = 200, tolerance: float | None = None) -> BaselineVerdict:
    """:func:`monitoring.verdict.judged_verdict` of ``metric`` over the last ``days`` days, from the window sums.

    Parameters
    ----------
    sums : WindowSums
        Counted with ``judged_days=days``.
    kept : KeptLabels
    performance : PerformanceOverTime
        :func:`sums_performance` of the same sums.
    metric, baseline, days, confidence, random_state, n_bootstrap, tolerance
        As for :func:`judged_verdict`.

    Returns
    -------
    BaselineVerdict

    Raises
    ------
    ValueError
        When the sums were cut for another judged period, or as :func:`judged_verdict`.
    """
    _check_judging(metric=metric, days=days, confidence=confidence, tolerance=tolerance)
    now = float(kept.now)
    if not math.isclose(sums.cut, now - float(days) * 86_400.0):
        raise ValueError(f"these sums were cut for a judged period starting at {sums.cut!r}, not the {days!r} days "
                         f"before {now!r}")
    slices = sums.slices
    starts = slices["slice_start"].to_numpy(dtype=float)
    period = (starts >= sums.cut) & (starts < now)
    counted = "n_scored" if metric in SCORE_METRICS else "n"
    closed = period & (slices["window_start"].to_numpy(dtype=float) < _open_since(performance, now))
    metrics = tuple(m for m in performance.metrics if m == metric) or (metric,)

    def measure() -> tuple[float, float, float]:
        row = _group_row(sums, period, task=kept.task, classes=kept.classes, metrics=metrics,
                         auc=_auc_of(sums, _JUDGED), confidence=confidence, n_bootstrap=n_bootstrap,
                         max_bootstrap_rows=min(2000, sums.sample_rows),
                         rng=np.random.default_rng([random_state, 2]))
        return float(row[metric]), float(row[f"{metric}_low"]), float(row[f"{metric}_high"])

    return judge_period(PeriodMeasure(n_labelled=int(slices.loc[period, "n"].sum()),
                                      n_counted=int(slices.loc[period, counted].sum()),
                                      n_closed=int(slices.loc[closed, counted].sum()), measure=measure),
                        performance, metric=metric, baseline=baseline, task=kept.task, classes=kept.classes,
                        days=days, now=now, confidence=confidence, tolerance=tolerance)


def window_decisions(backend, rows: ir.Table, kept: KeptLabels, *, window: str, since: float | None = None,
                     threshold: float | None = 0.5, business: BusinessValues | None = None,
                     windows: pd.DataFrame | None = None) -> DecisionsOverTime:
    """:func:`monitoring.performance.decisions_over_time` of the kept labels, counted by ``backend``.

    Parameters
    ----------
    backend
    rows : ibis Table
        The kept labels file.
    kept : KeptLabels
        Of a two-class model.
    window : {"hour", "day", "week"} or str of int
        A span of time, or a number of predictions (then ``rows`` and ``windows`` come from
        :func:`row_windows`).
    since : float, optional
        A window boundary.
    threshold : float or None, default=0.5
        Score from which a positive decision is counted (rows without a score keep their logged
        decision); None = the logged decisions.
    business : BusinessValues, optional
    windows : DataFrame, optional
        The windows of a number of predictions (:func:`row_windows`).

    Returns
    -------
    DecisionsOverTime

    Raises
    ------
    ValueError
        When the model does not decide between two classes, or for windows of a number of
        predictions without ``windows``.
    """
    require_two_classes(kept.task, kept.classes)
    window, timed = _checked_window(window, rows, windows)
    t = _usable(rows, since)
    positive = float(kept.classes[1])
    t = t.mutate(window_start=_window_of(t.ts, window) if timed else t.window_start,
                 truth=(t.label == positive).ifelse(1, 0),
                 decision=(_decided(t, kept.classes, threshold) == positive).ifelse(1, 0))
    counted = backend.execute(t.group_by("window_start").aggregate(
        n=t.count(), tp=(t.truth * t.decision).sum(), positives=t.truth.sum(), decided=t.decision.sum(),
        n_scored=_scored(t).ifelse(1, 0).sum()))
    served = windows if not timed else served_windows(kept, window, since=since)
    starts = served["window_start"].to_numpy(dtype=float)
    counted = counted.dropna(subset=["window_start"]).astype({"window_start": float}).set_index("window_start")
    counted = counted.reindex(starts, fill_value=0)
    n, tp = counted["n"].to_numpy(dtype=np.int64), counted["tp"].to_numpy(dtype=np.int64)
    fn, fp = counted["positives"].to_numpy(dtype=np.int64) - tp, counted["decided"].to_numpy(dtype=np.int64) - tp
    found = pd.DataFrame({"window_start": starts, "window_end": served["window_end"].to_numpy(dtype=float),
                          "n_labelled": n, "tn": n - tp - fn - fp, "fp": fp, "fn": fn, "tp": tp})
    if business is not None:
        found["money"] = [float(business.money(*row)) for row in found[["tn", "fp", "fn", "tp"]].to_numpy()]
    has_score = int(counted["n_scored"].sum()) > 0
    return DecisionsOverTime(windows=found, threshold=threshold if has_score else None, classes=kept.classes,
                             business=business)


# -- one period ------------------------------------------------------------------------------


def kept_detail(backend, rows: ir.Table, kept: KeptLabels, *, since: float | None = None, until: float | None = None,
                threshold: float | None = 0.5, n_bins: int = 10, business: BusinessValues | None = None,
                max_residuals: int = 5000) -> PerformanceDetail:
    """:func:`monitoring.performance.performance_detail` of the kept labels predicted in ``[since, until)``.

    The confusion matrix and the calibration bins are counted by ``backend``; the residuals are
    the ``max_residuals`` rows of least key (a uniform sample, as the rows path's random one).

    Parameters
    ----------
    backend
    rows : ibis Table
        The kept labels file.
    kept : KeptLabels
    since, until, threshold, n_bins, business, max_residuals
        As for :func:`~monitoring.performance.performance_detail`.

    Returns
    -------
    PerformanceDetail
    """
    t = _usable(rows, since, until)
    detail = {"task": kept.task, "since": since, "until": until}
    if kept.task == "regression":
        n = int(backend.execute(t.count()))
        picked = backend.execute(t.order_by(["key", "ts"]).limit(max_residuals).select("ts", "prediction", "label"))
        picked = picked.astype(float).sort_values("ts", kind="stable")
        residuals = pd.DataFrame({"ts": picked["ts"], "prediction": picked["prediction"], "label": picked["label"],
                                  "residual": picked["label"] - picked["prediction"]}).reset_index(drop=True)
        return PerformanceDetail(**detail, n_labelled=n, residuals=residuals)
    classes = kept.classes
    binary = len(classes) == 2
    decided = _decided(t, classes, threshold if binary else None)
    decisions = t.mutate(decided=decided)
    cells = backend.execute(decisions.group_by(["label", "decided"]).aggregate(n=decisions.count()))
    table = cells.astype({"label": float, "decided": float}).groupby(["label", "decided"])["n"].sum()
    labels = [float(c) for c in classes]
    matrix = np.array([[int(table.get((a, b), 0)) for b in labels] for a in labels], dtype=np.int64)
    n = int(cells["n"].sum())
    calibration = None
    scored = t.filter(_scored(t))
    has_score = False
    if binary:
        edges = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
        clipped = scored.score.clip(lower=0.0, upper=1.0)
        bin_of = sum(((clipped > float(edge)).ifelse(1, 0) for edge in edges), ibis.literal(0))
        binned = scored.mutate(bin=bin_of, clipped=clipped, positive=(scored.label == float(classes[1])).ifelse(1, 0))
        bins = backend.execute(binned.group_by("bin").aggregate(n=binned.count(), score_sum=binned.clipped.sum(),
                                                                 positives=binned.positive.sum()))
        has_score = bool(len(bins))
        if has_score:
            bins = bins.sort_values("bin")
            calibration = pd.DataFrame({"mean_predicted": bins["score_sum"].to_numpy(dtype=float) / bins["n"],
                                        "fraction_positive": bins["positives"].to_numpy(dtype=float) / bins["n"],
                                        "n": bins["n"].to_numpy(dtype=np.int64)}).reset_index(drop=True)
    confusion = ConfusionMatrix(matrix=matrix, classes=classes, threshold=threshold if binary and has_score else None)
    money = float(business.money(*matrix.ravel())) if business is not None and binary else None
    return PerformanceDetail(**detail, n_labelled=n, calibration=calibration, confusion=confusion, money=money)


def largest_errors(backend, rows: ir.Table, *, task: str, limit: int = 50) -> pd.DataFrame:
    """The ``limit`` kept labelled predictions the model was most wrong about, found by ``backend``.

    How wrong is ``explain.starting_points.prediction_error``'s: |label − prediction| for a
    regression; for classes 1 − P(true class) where a 0/1 label has a score (P(class 1)), else
    1 for a wrong class and 0 for a right one. Ties keep prediction-time order.

    Parameters
    ----------
    backend
    rows : ibis Table
        The kept labels file.
    task : {"classification", "regression"}
    limit : int, default=50

    Returns
    -------
    DataFrame
        ``id, ts, prediction, score, label``, most wrong first.
    """
    t = _usable(rows, None)
    if task == "regression":
        error = (t.label - t.prediction).abs()
    else:
        wrong = (t.label != t.prediction).ifelse(1.0, 0.0)
        scored = t.label.isin([0.0, 1.0]) & t.score.notnull() & ~t.score.isnan()
        error = scored.ifelse(1.0 - (t.label == 1.0).ifelse(t.score, 1.0 - t.score), wrong)
    found = backend.execute(t.mutate(error=error).order_by([ibis.desc("error"), "ts", "id"]).limit(limit).select(
        "id", "ts", "prediction", "score", "label"))
    return found.astype({"id": str, "ts": float, "prediction": float, "score": float, "label": float})


__all__ = [
    "KEPT_COLUMNS",
    "SAMPLE_ROWS",
    "KeptLabels",
    "WindowSums",
    "engine_hash",
    "id_key",
    "kept_detail",
    "kept_from_record",
    "kept_record",
    "largest_errors",
    "least_key_rows",
    "read_kept",
    "row_windows",
    "served_windows",
    "stays_fresh",
    "sums_metrics",
    "sums_performance",
    "sums_verdict",
    "window_decisions",
    "window_sums",
    "write_kept",
]
