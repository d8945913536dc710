"""The Overview's results from counts: labelled predictions summed per day where the log lives.

The Overview shows one metric per day (accuracy for classes, MAE for numbers), the verdict
on it over the judged period and, for two classes, the decisions per day at the threshold.
All of that is sums of the labelled predictions, so it travels as a
:class:`LabelledSummary` — a few numbers per *slice* (a UTC day; the day that holds the
judged period's start is cut there, and the predictions stamped at or after ``now`` are a
slice of their own) and a bounded sample for the MAE's bootstrap — instead of millions of
rows. :func:`monitoring.label_queries.summarize_labels_in_engine` counts it where the log
lives, and :func:`monitoring.label_queries.summarize_labeled` runs the same query over rows joined
in memory. From it:

* :func:`summary_performance` — the metric per day window with its interval, as
  :func:`monitoring.performance.performance_over_time` gives it for that metric;
* :func:`summary_verdict` — :func:`monitoring.verdict.judged_verdict` over the judged period;
* :func:`summary_decisions` — :func:`monitoring.performance.decisions_over_time` per day.

Accuracy, its Wilson interval, the decision counts, the label rate and the mean score are
the rows path's exactly. MAE's interval is the bootstrap of the same seeded draws on the
rows of the window when it has at most ``max_bootstrap_rows`` of them (the same interval);
a larger window is bootstrapped on its sample — the rows of least key, a hash of the
prediction id, which is a uniform sample without replacement — and narrowed to the whole
window (an m-out-of-n bootstrap, as the rows path does with its own random subsample).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from monitoring.baseline import Baseline
from monitoring.labels import LabelQuality
from monitoring.performance import (
    BusinessValues,
    DecisionsOverTime,
    PerformanceOverTime,
    require_two_classes,
    served_of_hours,
    windows_frame,
)
from monitoring.statistics import group_metrics, wilson_interval
from monitoring.verdict import BaselineVerdict, PeriodMeasure, _open_since, judge_period
from monitoring.windows import WINDOW_SECONDS, window_start

DAY = 86400.0
SAMPLE_ROWS = 2000
"""Rows of least key kept per slice: the bootstrap of any day, or of the judged period, finds its own
``max_bootstrap_rows`` (at most this many) among them."""
SLICE_COLUMNS = ("slice_start", "n", "correct", "positives", "n_scored", "score_sum", "tn", "fp", "fn", "tp",
                 "abs_error_sum", "error_sum", "ts_min", "ts_max")
"""Columns of :attr:`LabelledSummary.slices`."""
SAMPLE_COLUMNS = ("slice_start", "key", "id", "ts", "label", "prediction", "score")
"""Columns of :attr:`LabelledSummary.sample`."""
SUMMARY_METRICS = ("accuracy", "mae")
"""The metrics a summary answers: the first of :func:`monitoring.statistics.metrics_for` for each task."""


@dataclass(frozen=True)
class LabelledSummary:
    """The labelled predictions of one service summed per slice, with a bounded sample.

    Attributes
    ----------
    slices : DataFrame
        One row per slice holding a labelled prediction, by ``slice_start`` (Unix seconds):
        ``n`` labelled predictions, ``correct`` (label equal to the logged prediction),
        ``positives`` (label of the positive class; two classes), ``n_scored`` and
        ``score_sum`` (finite scores; two classes), ``tn, fp, fn, tp`` at ``threshold`` (two
        classes; rows without a score keep their logged decision), ``abs_error_sum`` and
        ``error_sum`` (label − prediction; regression); ``ts_min`` and ``ts_max``, the first and
        last prediction time. Other columns are 0.
    sample : DataFrame
        Per slice the at most :data:`SAMPLE_ROWS` labelled predictions of least ``key``:
        ``slice_start, key, id, ts, label, prediction, score``.
    quality : LabelQuality
    task : {"classification", "regression"}
    classes : tuple of float
    now : float
    cut : float
        Start of the judged period (``now - judged_days`` days): the slice boundary within its day.
    threshold : float or None
        Decision threshold of ``tn .. tp``; None = the logged decisions.
    served_hours : DataFrame
        Every logged prediction counted per UTC hour (``hour_start``, ``n``).
    source : str
    sample_rows : int
        The most rows :attr:`sample` keeps per slice.
    """

    slices: pd.DataFrame
    sample: pd.DataFrame
    quality: LabelQuality
    task: str
    classes: tuple[float, ...]
    now: float
    cut: float
    threshold: float | None
    served_hours: pd.DataFrame
    source: str = ""
    sample_rows: int = SAMPLE_ROWS

    @property
    def n_labelled(self) -> int:
        """Number of predictions that have a label."""
        return int(self.slices["n"].sum())

    @property
    def metric(self) -> str:
        """The metric this summary answers: accuracy for classes, MAE for numbers."""
        return "mae" if self.task == "regression" else "accuracy"


def cut_of(now: float, judged_days: float) -> float:
    """Start of the judged period: ``now`` minus ``judged_days`` days."""
    return float(now) - float(judged_days) * DAY


def _window_index(summary: LabelledSummary, starts: np.ndarray, window: str) -> np.ndarray:
    """Index in ``starts`` of the window of each slice (``len(starts)`` for a slice in none)."""
    slice_window = window_start(summary.slices["slice_start"].to_numpy(dtype=float), window)
    index = np.searchsorted(starts, slice_window)
    inside = index < len(starts)
    inside[inside] = starts[index[inside]] == slice_window[inside]
    return np.where(inside, index, len(starts))


def _sample_of(summary: LabelledSummary, chosen: np.ndarray, max_rows: int) -> pd.DataFrame:
    """The ``max_rows`` sampled rows of least key in the slices ``chosen`` (a mask over ``slices``), in time order."""
    starts = summary.slices["slice_start"].to_numpy(dtype=float)[chosen]
    sample = summary.sample[summary.sample["slice_start"].isin(starts)]
    picked = sample.sort_values("key", kind="stable").head(max_rows) if len(sample) > max_rows else sample
    return picked.sort_values(["ts", "id"], kind="stable")


def _measure(summary: LabelledSummary, chosen: np.ndarray, *, metric: str, confidence: float, n_bootstrap: int,
             max_bootstrap_rows: int, rng: np.random.Generator | None) -> tuple[float, float, float]:
    """The metric's value and interval over the slices ``chosen``."""
    sums = summary.slices.loc[chosen, ["n", "correct", "abs_error_sum"]].sum()
    n = int(sums["n"])
    if n == 0:
        return math.nan, math.nan, math.nan
    if metric == "accuracy":
        low, high = wilson_interval(int(sums["correct"]), n, confidence=confidence)
        return int(sums["correct"]) / n, float(low), float(high)
    value = float(sums["abs_error_sum"]) / n
    if rng is None:
        return value, math.nan, math.nan
    rows = _sample_of(summary, chosen, max_bootstrap_rows)
    row = group_metrics(*(rows[c].to_numpy(dtype=float) for c in ("label", "prediction", "score")),
                        task="regression", classes=(), metrics=("mae",), confidence=confidence,
                        n_resamples=n_bootstrap, max_bootstrap_rows=max_bootstrap_rows, rng=rng, group_size=n)
    shift = value - float(row["mae"])  # the sample's interval, around the whole group's value
    return value, float(row["mae_low"]) + shift, float(row["mae_high"]) + shift


def summary_performance(summary: LabelledSummary, *, baseline: Baseline | None = None, min_labels: int = 30,
                        confidence: float = 0.95, n_bootstrap: int = 200, max_bootstrap_rows: int | None = None,
                        random_state: int = 0, since: float | None = None) -> PerformanceOverTime:
    """The summary's metric per day window from ``since`` on, as :func:`performance_over_time` gives it.

    Parameters
    ----------
    summary : LabelledSummary
    baseline : Baseline, optional
    min_labels : int, default=30
    confidence : float, default=0.95
    n_bootstrap : int, default=200
    max_bootstrap_rows : int, optional
        At most the summary's ``sample_rows``; default 2,000 (the rows path's) or fewer when
        the sample is smaller.
    random_state : int, default=0
    since : float, optional
        A day boundary (``range_start(now, days, window="day")``).

    Returns
    -------
    PerformanceOverTime
        ``metrics`` holds the summary's one metric.

    Raises
    ------
    ValueError
        For ``since`` off a day boundary or ``max_bootstrap_rows`` above the sample's size.
    """
    if since is not None and since != window_start(since, "day"):
        raise ValueError(f"since must be the start of a UTC day; got {since!r}")
    max_bootstrap_rows = _bootstrap_rows(summary, max_bootstrap_rows)
    wilson_interval(0, 1, confidence=confidence)  # validates confidence
    metric, task, classes = summary.metric, summary.task, summary.classes
    binary = task == "classification" and len(classes) == 2
    starts, n_predictions = served_of_hours(summary.served_hours, "day", since=since, until=None)
    slices = summary.slices
    index = _window_index(summary, starts, "day")
    rows = []
    for i, start in enumerate(starts):
        chosen = index == i
        sums = slices.loc[chosen].sum(numeric_only=True)
        n = int(sums.get("n", 0))
        rng = None if n_bootstrap == 0 else np.random.default_rng([random_state, int(abs(start)) % (2**32)])
        value, low, high = _measure(summary, chosen, metric=metric, confidence=confidence, n_bootstrap=n_bootstrap,
                                    max_bootstrap_rows=max_bootstrap_rows, rng=rng)
        row = {"window_start": float(start), "window_end": float(start) + DAY, "n_predictions": int(n_predictions[i]),
               "n_labelled": n, metric: value, f"{metric}_low": low, f"{metric}_high": high}
        row.update(_extras(sums, task=task, binary=binary))
        rows.append(row)
    windows, columns = windows_frame(rows, metrics=(metric,), task=task, binary=binary, min_labels=min_labels,
                                     window="day", now=summary.now)

    in_range = index < len(starts)
    total = slices.loc[in_range].sum(numeric_only=True)
    n_total, served = int(total.get("n", 0)), int(n_predictions.sum())
    value, low, high = _measure(summary, in_range, metric=metric, confidence=confidence, n_bootstrap=n_bootstrap,
                                max_bootstrap_rows=max_bootstrap_rows,
                                rng=None if n_bootstrap == 0 else np.random.default_rng([random_state, 1]))
    overall = {"window_start": float(slices.loc[in_range, "ts_min"].min()) if n_total else math.nan,
               "window_end": float(slices.loc[in_range, "ts_max"].max()) if n_total else math.nan,
               "n_predictions": served, "n_labelled": n_total,
               "coverage": n_total / served if served else math.nan, "enough_labels": bool(n_total >= min_labels),
               "partial": bool(windows["partial"].any()), metric: value, f"{metric}_low": low,
               f"{metric}_high": high, **_extras(total, task=task, binary=binary)}
    return PerformanceOverTime(
        windows=windows, overall=pd.Series(overall, dtype=object).reindex(columns), task=task, metrics=(metric,),
        classes=classes, positive_class=classes[1] if binary else None, window="day", confidence=confidence,
        min_labels=min_labels, now=summary.now, baseline=baseline or Baseline())


def _bootstrap_rows(summary: LabelledSummary, wanted: int | None) -> int:
    """``wanted`` checked against the sample's size; by default 2,000 or the sample's size if smaller."""
    if wanted is None:
        return min(2000, summary.sample_rows)
    if not 2 <= wanted <= summary.sample_rows:
        raise ValueError(f"max_bootstrap_rows must be between 2 and the sample's {summary.sample_rows} rows per "
                         f"slice; got {wanted!r}")
    return int(wanted)


def _extras(sums: pd.Series, *, task: str, binary: bool) -> dict[str, float]:
    """``mean_residual`` (regression) or ``label_rate`` and ``mean_score`` (two classes) of summed slices."""
    n = float(sums.get("n", 0))
    if task == "regression":
        return {"mean_residual": float(sums["error_sum"]) / n if n else math.nan}
    if not binary:
        return {}
    n_scored = float(sums.get("n_scored", 0))
    return {"label_rate": float(sums["positives"]) / n if n else math.nan,
            "mean_score": float(sums["score_sum"]) / n_scored if n_scored else math.nan}


def summary_verdict(summary: LabelledSummary, performance: PerformanceOverTime, *, baseline: Baseline,
                    days: float = 7.0, confidence: float = 0.95, random_state: int = 0, n_bootstrap: int = 200,
                    tolerance: float | None = None) -> BaselineVerdict:
    """:func:`monitoring.verdict.judged_verdict` of the summary's metric over the last ``days`` days.

    Parameters
    ----------
    summary : LabelledSummary
        Summed with ``judged_days=days``.
    performance : PerformanceOverTime
        :func:`summary_performance` of the same summary.
    baseline : Baseline
    days, confidence, random_state, n_bootstrap, tolerance
        As for :func:`judged_verdict`.

    Returns
    -------
    BaselineVerdict

    Raises
    ------
    ValueError
        When the summary's slices were not cut at ``now - days`` days, or as :func:`judged_verdict`.
    """
    now = float(summary.now)
    if cut_of(now, days) != summary.cut:
        raise ValueError(f"this summary was cut for a judged period starting at {summary.cut!r}, not "
                         f"{days!r} days before now")
    metric = summary.metric
    starts = summary.slices["slice_start"].to_numpy(dtype=float)
    period = (starts >= summary.cut) & (starts < now)
    n = int(summary.slices.loc[period, "n"].sum())
    closed = period & (starts < _open_since(performance, now))

    def measure() -> tuple[float, float, float]:
        return _measure(summary, period, metric=metric, confidence=confidence, n_bootstrap=n_bootstrap,
                        max_bootstrap_rows=_bootstrap_rows(summary, None),
                        rng=None if n_bootstrap == 0 else np.random.default_rng([random_state, 2]))

    return judge_period(PeriodMeasure(n_labelled=n, n_counted=n, n_closed=int(summary.slices.loc[closed, "n"].sum()),
                                      measure=measure),
                        performance, metric=metric, baseline=baseline, task=summary.task, classes=summary.classes,
                        days=days, now=now, confidence=confidence, tolerance=tolerance)


def summary_decisions(summary: LabelledSummary, *, business: BusinessValues | None = None,
                      since: float | None = None) -> DecisionsOverTime:
    """:func:`monitoring.performance.decisions_over_time` per day at the summary's threshold.

    Parameters
    ----------
    summary : LabelledSummary
        Of a two-class model.
    business : BusinessValues, optional
    since : float, optional
        A day boundary.

    Returns
    -------
    DecisionsOverTime

    Raises
    ------
    ValueError
        When the model does not decide between two classes (:func:`~monitoring.performance.require_two_classes`).
    """
    require_two_classes(summary.task, summary.classes)
    starts, _ = served_of_hours(summary.served_hours, "day", since=since, until=None)
    index = _window_index(summary, starts, "day")
    counts = ["n", "tn", "fp", "fn", "tp"]
    summed = np.zeros((len(starts) + 1, len(counts)), dtype=np.int64)
    np.add.at(summed, index, summary.slices[counts].to_numpy(dtype=np.int64))
    windows = pd.DataFrame(summed[:len(starts)], columns=["n_labelled", "tn", "fp", "fn", "tp"])
    windows.insert(0, "window_end", starts + WINDOW_SECONDS["day"])
    windows.insert(0, "window_start", starts.astype(float))
    if business is not None:
        windows["money"] = [float(business.money(*row)) for row in windows[["tn", "fp", "fn", "tp"]].to_numpy()]
    has_score = int(summary.slices.loc[index < len(starts), "n_scored"].sum()) > 0
    return DecisionsOverTime(windows=windows, threshold=summary.threshold if has_score else None,
                             classes=summary.classes, business=business)


__all__ = ["SAMPLE_ROWS", "SUMMARY_METRICS", "LabelledSummary", "cut_of", "summary_decisions",
           "summary_performance", "summary_verdict"]
