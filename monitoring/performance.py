"""Model performance over time, as ground-truth labels arrive.

Predictions are grouped in windows of *prediction* time (an hour, a day, a week) or of a
number of predictions, and each window is scored with the labels that have arrived so far
(:func:`monitoring.labels.join_labels` keeps only labels whose arrival time is ``<= now``):
a label arriving days later fills in the window its prediction belongs to. A window still
open at ``now`` is marked ``partial``: it holds only part of its predictions and never
decides a verdict on its own.

Every window carries its labelled count, its coverage (labelled / predicted) and a
confidence interval per metric (:mod:`monitoring.statistics`), so that a window of twelve
labels is not read like one of twelve thousand. Besides the windows: confusion counts per
window at a decision threshold and what they are worth (:func:`decisions_over_time`), and
the calibration curve, confusion matrix and residuals of one period
(:func:`performance_detail`).

The baseline lives in :mod:`monitoring.baseline` and the verdicts against it in
:mod:`monitoring.verdict`; their public names are importable from here too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.metrics import confusion_matrix

from monitoring.baseline import Baseline, baseline_for, reference_metrics
from monitoring.config import PerformanceConfig
from monitoring.labels import LabeledPredictions
from monitoring.statistics import (
    CLASSIFICATION_METRICS,
    LOWER_IS_BETTER,
    METRIC_LABELS,
    REGRESSION_METRICS,
    SCORE_METRICS,
    bootstrap_weights,
    confusion_counts,
    group_metrics,
    metrics_for,
    wilson_interval,
)
from monitoring.validation import Interval, Nullable, validate_params
from monitoring.verdict import BaselineVerdict, baseline_verdict, change_point, judged_verdict
from monitoring.windows import WINDOW_SECONDS, parse_window, window_start

__all__ = [
    "CLASSIFICATION_METRICS",
    "LOWER_IS_BETTER",
    "METRIC_LABELS",
    "REGRESSION_METRICS",
    "SCORE_METRICS",
    "Baseline",
    "BaselineVerdict",
    "BusinessValues",
    "ConfusionMatrix",
    "DecisionsOverTime",
    "PerformanceDetail",
    "PerformanceOverTime",
    "baseline_for",
    "baseline_verdict",
    "bootstrap_weights",
    "calibration_table",
    "change_point",
    "decisions_over_time",
    "judged_verdict",
    "metrics_for",
    "performance_detail",
    "performance_over_time",
    "reference_metrics",
    "wilson_interval",
]

"""Time windows and their width in seconds; a window may also be a number of predictions."""



# -- small results ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BusinessValues:
    """Money per decision, to turn confusion counts into money.

    Attributes
    ----------
    cost_false_positive, cost_false_negative, value_correct : float
        Cost of one false positive, of one false negative, value of one correct decision.
    currency : str
        Unit shown with amounts.
    """

    cost_false_positive: float = 0.0
    cost_false_negative: float = 0.0
    value_correct: float = 0.0
    currency: str = ""

    @classmethod
    def from_config(cls, config: PerformanceConfig) -> BusinessValues | None:
        """The configured values, or None when none of the three is set."""
        if not config.has_business_values:
            return None
        return cls(cost_false_positive=config.cost_false_positive or 0.0,
                   cost_false_negative=config.cost_false_negative or 0.0,
                   value_correct=config.value_correct or 0.0, currency=config.currency)

    def money(self, tn, fp, fn, tp):
        """Value of correct decisions minus the cost of wrong ones (scalars or arrays)."""
        return self.value_correct * (np.asarray(tp) + np.asarray(tn)) - (
            self.cost_false_positive * np.asarray(fp) + self.cost_false_negative * np.asarray(fn))


@dataclass(frozen=True)
class ConfusionMatrix:
    """Counts of true (rows) against decided (columns) classes.

    Attributes
    ----------
    matrix : ndarray of int of shape (n_classes, n_classes)
        ``matrix[i, j]`` = predictions of class ``classes[j]`` whose label is ``classes[i]``.
    classes : tuple of float
    threshold : float or None
        Score from which the positive class was decided; None = the logged decisions.
    """

    matrix: np.ndarray
    classes: tuple[float, ...]
    threshold: float | None

    def to_frame(self) -> pd.DataFrame:
        """The matrix with ``true …`` row and ``predicted …`` column names."""
        names = [f"{c:g}" for c in self.classes]
        return pd.DataFrame(self.matrix, index=[f"true {n}" for n in names],
                            columns=[f"predicted {n}" for n in names])


@dataclass(frozen=True)
class PerformanceOverTime:
    """Metrics per window of prediction time, as labels have arrived by ``now``.

    Attributes
    ----------
    windows : DataFrame
        One row per window with predictions, oldest first. Columns: ``window_start``,
        ``window_end`` (Unix seconds), ``n_predictions``, ``n_labelled``, ``coverage``
        (labelled / predicted), ``enough_labels`` (``n_labelled >= min_labels``),
        ``partial`` (the window is still open at ``now``: a time window ending after
        ``now``, or the last window of N predictions while it has fewer than N); per
        metric of :attr:`metrics` the value and its interval ``<metric>_low``,
        ``<metric>_high``; for two classes ``label_rate`` (share of positive labels) and
        ``mean_score``; for regression ``mean_residual`` (mean of label − prediction).
    overall : Series
        The same columns over every prediction in the range (``partial``: whether the
        range holds a partial window).
    task : {"classification", "regression"}
    metrics : tuple of str
        The metric columns, in display order.
    classes : tuple of float
    positive_class : float or None
        For two classes, the class the score is the probability of.
    window : str
    confidence : float
    min_labels : int
    now : float
    baseline : Baseline
    """

    windows: pd.DataFrame
    overall: pd.Series
    task: str
    metrics: tuple[str, ...]
    classes: tuple[float, ...]
    positive_class: float | None
    window: str
    confidence: float
    min_labels: int
    now: float
    baseline: Baseline = field(default_factory=Baseline)

    def latest(self) -> pd.Series | None:
        """The newest closed (not partial) window with at least ``min_labels`` labels, or None."""
        judged = self.windows[self.windows["enough_labels"] & ~self.windows["partial"]]
        return None if judged.empty else judged.iloc[-1]

    def to_frame(self, decisions: DecisionsOverTime | None = None) -> pd.DataFrame:
        """The windows for export: times as UTC datetimes, baseline columns, and the decision counts if given."""
        frame = self.windows.copy()
        for metric in self.metrics:
            if metric in self.baseline.values:
                frame[f"{metric}_baseline"] = self.baseline.get(metric)
        if decisions is not None:
            counts = decisions.windows.drop(columns=["window_end", "n_labelled"])
            frame = frame.merge(counts, on="window_start", how="left")
        for column in ("window_start", "window_end"):
            frame[column] = pd.to_datetime(frame[column], unit="s", utc=True)
        return frame


@dataclass(frozen=True)
class DecisionsOverTime:
    """Confusion counts per window at one decision threshold, and what they are worth.

    Attributes
    ----------
    windows : DataFrame
        ``window_start``, ``window_end``, ``n_labelled``, ``tn``, ``fp``, ``fn``, ``tp`` and,
        with business values, ``money``; the windows of :func:`performance_over_time` for
        the same ``window``, ``since`` and ``until``.
    threshold : float or None
        Score from which a positive decision is counted; None = the logged decisions.
    classes : tuple of float
        Negative and positive class.
    business : BusinessValues or None
    """

    windows: pd.DataFrame
    threshold: float | None
    classes: tuple[float, ...]
    business: BusinessValues | None = None

    @property
    def total_money(self) -> float:
        """Money over every window (NaN without business values)."""
        return float(self.windows["money"].sum()) if "money" in self.windows else math.nan


@dataclass(frozen=True)
class PerformanceDetail:
    """Calibration, confusion matrix and residuals over one period of prediction time.

    Attributes
    ----------
    task : str
    n_labelled : int
    since, until : float or None
        The period (Unix seconds, ``until`` excluded); None = open.
    calibration : DataFrame or None
        Two classes with a score: ``mean_predicted``, ``fraction_positive`` (from
        :func:`sklearn.calibration.calibration_curve`) and ``n`` per non-empty bin.
    confusion : ConfusionMatrix or None
        Classification.
    residuals : DataFrame or None
        Regression: ``ts, prediction, label, residual`` (label − prediction), a random
        sample of at most ``max_residuals`` rows.
    money : float or None
        The confusion counts in money, when business values are given.
    """

    task: str
    n_labelled: int
    since: float | None
    until: float | None
    calibration: pd.DataFrame | None = None
    confusion: ConfusionMatrix | None = None
    residuals: pd.DataFrame | None = None
    money: float | None = None



# -- windows ---------------------------------------------------------------------------------


def require_two_classes(task: str, classes: tuple[float, ...]) -> None:
    """Raise the ValueError of decision counts asked of a model that does not decide between two classes."""
    if task != "classification" or len(classes) != 2:
        raise ValueError(f"decision counts need a two-class model; this one is {task} with classes {list(classes)}")


def check_window(window: str | int) -> str:
    """A window's text (``"day"``, ``"1000"``), checked by :func:`monitoring.windows.parse_window`."""
    return str(parse_window(window))


def _assign_windows(ts: np.ndarray, window: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Window index of each row (``ts`` sorted) and each window's start and end."""
    if window in WINDOW_SECONDS:
        starts, index = _sorted_unique(window_start(ts, window))
        return index, starts, starts + WINDOW_SECONDS[window]
    size = int(window)
    index = np.arange(len(ts)) // size
    n_windows = int(index[-1]) + 1 if len(ts) else 0
    starts = ts[np.arange(n_windows) * size] if n_windows else np.array([])
    ends = np.r_[starts[1:], ts[-1]] if n_windows else np.array([])
    return index, starts, ends


def _sorted_unique(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True)``, without its sort when ``values`` are finite and ascending."""
    if len(values) == 0 or not (np.isfinite(values[0]) and np.isfinite(values[-1])
                                and np.all(values[1:] >= values[:-1])):
        return np.unique(values, return_inverse=True)
    new = np.empty(len(values), dtype=bool)
    new[0] = True
    np.not_equal(values[1:], values[:-1], out=new[1:])
    return values[new], np.cumsum(new) - 1


def _served_windows(labeled: LabeledPredictions, ts: np.ndarray, window: str, *, since: float | None,
                    until: float | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Window index of each row of ``labeled.frame`` in range (``ts`` sorted), each window's start, end and
    number of logged predictions, labelled or not.

    When the join ran where the log lives, the frame holds only labelled predictions and the
    windows come from ``labeled.served_hours`` (hours in ``[since, until)``): exact for hour,
    day and week windows; windows of a number of predictions need every row.
    """
    if labeled.served_hours is None:
        index, starts, ends = _assign_windows(ts, window)
        return index, starts, ends, np.bincount(index, minlength=len(starts))
    if window not in WINDOW_SECONDS:
        raise ValueError(f"windows of {window} predictions need every logged row; this join kept only the "
                         "labelled ones (join the labels in memory for row windows)")
    starts, n_predictions = served_of_hours(labeled.served_hours, window, since=since, until=until)
    index = np.searchsorted(starts, window_start(ts, window))
    return index, starts, starts + WINDOW_SECONDS[window], n_predictions


def served_of_hours(hours: pd.DataFrame, window: str, *, since: float | None,
                    until: float | None) -> tuple[np.ndarray, np.ndarray]:
    """The hour, day or week windows that hold predictions made in ``[since, until)``, and how many each holds.

    Parameters
    ----------
    hours : DataFrame
        ``hour_start`` and ``n``: every logged prediction counted per UTC hour
        (:attr:`monitoring.labels.LabeledPredictions.served_hours`).
    window : {"hour", "day", "week"}
    since, until : float or None

    Returns
    -------
    starts : ndarray of float
        Window starts, ascending.
    n_predictions : ndarray of int64
    """
    hour_start = hours["hour_start"].to_numpy(dtype=float)
    keep = np.ones(len(hours), dtype=bool)
    if since is not None:
        keep &= hour_start >= math.floor(since / 3600.0) * 3600.0
    if until is not None:
        keep &= hour_start < until
    starts, inverse = np.unique(window_start(hour_start[keep], window), return_inverse=True)
    n_predictions = np.bincount(inverse, weights=hours["n"].to_numpy(dtype=float)[keep],
                                minlength=len(starts)).astype(np.int64)
    return starts, n_predictions


def _decisions(logged: np.ndarray, score: np.ndarray, *, classes: tuple[float, ...],
               threshold: float | None) -> np.ndarray:
    """Decided class per row: the score against ``threshold`` for two classes, else the logged prediction."""
    if threshold is None or len(classes) != 2:
        return logged
    return np.where(np.isfinite(score), np.where(score >= threshold, classes[1], classes[0]), logged)


def _window_confusions(index: np.ndarray, n_windows: int, y: np.ndarray, decided: np.ndarray,
                       classes: tuple[float, ...]) -> np.ndarray | None:
    """``tn, fp, fn, tp`` per window (rows of window ``index``) in one count, as ``confusion_matrix`` per window.

    None when scikit-learn would read the rows otherwise (see
    :func:`monitoring.statistics.confusion_counts`); rows of no window (``index >= n_windows``)
    are left out.
    """
    if confusion_counts(y, decided, classes) is None:
        return None
    inside = index < n_windows
    cells = 4 * index[inside] + 2 * (y[inside] == classes[1]) + (decided[inside] == classes[1])
    return np.bincount(cells, minlength=4 * n_windows).reshape(n_windows, 4)


# -- performance over time -------------------------------------------------------------------


@validate_params(min_labels=Interval(int, 1), n_bootstrap=Interval(int, 0), max_bootstrap_rows=Interval(int, 2))
def performance_over_time(labeled: LabeledPredictions, *, window: str | int = "day",
                          baseline: Baseline | None = None, min_labels: int = 30, confidence: float = 0.95,
                          n_bootstrap: int = 200, max_bootstrap_rows: int = 2000, random_state: int = 0,
                          since: float | None = None, until: float | None = None) -> PerformanceOverTime:
    """Metrics per window of prediction time, with intervals, labelled counts and coverage.

    Parameters
    ----------
    labeled : LabeledPredictions
        From :func:`monitoring.labels.join_labels`; its ``now`` decides which labels count and
        which windows are still open (``partial``).
    window : {"hour", "day", "week"} or int, default="day"
        Windows of prediction time (UTC; weeks start on Monday), or of this many predictions.
    baseline : Baseline, optional
        Kept in the result for charts, verdicts and exports.
    min_labels : int, default=30
        Windows with fewer labelled predictions are marked ``enough_labels = False``.
    confidence : float, default=0.95
        Coverage of the intervals.
    n_bootstrap : int, default=200
        Bootstrap resamples per window; 0 leaves the bootstrap intervals NaN.
    max_bootstrap_rows : int, default=2000
        A window with more labelled rows is bootstrapped on a random subsample of this many,
        its interval narrowed by sqrt(max_bootstrap_rows / rows) (an m-out-of-n bootstrap),
        so the cost per window is bounded.
    random_state : int, default=0
        Seed of the bootstrap; the same data and seed give the same intervals.
    since, until : float, optional
        Only predictions made in ``[since, until)``.

    Returns
    -------
    PerformanceOverTime
    """
    window = check_window(window)
    wilson_interval(0, 1, confidence=confidence)  # validates confidence
    data = _range_columns(labeled.frame, since, until, ("ts", "label", "prediction", "score"))
    task, classes = labeled.task, labeled.classes
    has_score = task == "classification" and bool(np.isfinite(data["score"]).any())
    metrics = metrics_for(task, classes, has_score=has_score)
    binary = task == "classification" and len(classes) == 2

    ts = data["ts"]
    index, starts, ends, n_predictions = _served_windows(labeled, ts, window, since=since, until=until)
    labelled = _labelled(data)
    options = {"task": task, "classes": classes, "metrics": metrics, "confidence": confidence,
               "n_resamples": n_bootstrap, "max_bootstrap_rows": max_bootstrap_rows}
    # Rows are in prediction-time order, so the labelled rows of each window are one slice.
    y, predicted, score = (data[c][labelled] for c in ("label", "prediction", "score"))
    bounds = np.searchsorted(index[labelled], np.arange(len(starts) + 1))
    rows = []
    for i, start in enumerate(starts):
        part = slice(bounds[i], bounds[i + 1])
        row = {"window_start": float(start), "window_end": float(ends[i]), "n_predictions": int(n_predictions[i]),
               "n_labelled": int(bounds[i + 1] - bounds[i])}
        # One seed per window start: a window's intervals do not move when other windows change.
        rng = np.random.default_rng([random_state, int(abs(start)) % (2**32)])
        row.update(group_metrics(y[part], predicted[part], score[part], rng=rng, **options))
        rows.append(row)
    windows, columns = windows_frame(rows, metrics=metrics, task=task, binary=binary, min_labels=min_labels,
                                     window=window, now=labeled.now)

    served = int(n_predictions.sum())
    overall = {"window_start": float(ts.min()) if len(ts) else math.nan,
               "window_end": float(ts.max()) if len(ts) else math.nan,
               "n_predictions": served, "n_labelled": int(labelled.sum()),
               "coverage": labelled.sum() / served if served else math.nan,
               "enough_labels": bool(labelled.sum() >= min_labels), "partial": bool(windows["partial"].any())}
    overall.update(group_metrics(y, predicted, score, rng=np.random.default_rng([random_state, 1]), **options))
    return PerformanceOverTime(
        windows=windows, overall=pd.Series(overall, dtype=object).reindex(columns), task=task, metrics=metrics,
        classes=classes, positive_class=classes[1] if binary else None, window=window, confidence=confidence,
        min_labels=min_labels, now=labeled.now, baseline=baseline or Baseline())


@validate_params(threshold=Nullable(Interval(float, 0, 1)))
def decisions_over_time(labeled: LabeledPredictions, *, window: str | int = "day", threshold: float | None = 0.5,
                        business: BusinessValues | None = None, since: float | None = None,
                        until: float | None = None) -> DecisionsOverTime:
    """Confusion counts per window at a decision threshold, and their value in money.

    Parameters
    ----------
    labeled : LabeledPredictions
        Of a two-class model.
    window : {"hour", "day", "week"} or int, default="day"
        As for :func:`performance_over_time`.
    threshold : float or None, default=0.5
        Score from which a positive decision is counted (rows without a score keep their
        logged decision). None = the logged decisions.
    business : BusinessValues, optional
        Adds a ``money`` column.
    since, until : float, optional
        Only predictions made in ``[since, until)``.

    Returns
    -------
    DecisionsOverTime

    Raises
    ------
    ValueError
        For regression or more than two classes, or a threshold outside [0, 1].
    """
    window = check_window(window)
    require_two_classes(labeled.task, labeled.classes)
    data = _range_columns(labeled.frame, since, until, ("ts", "label", "prediction", "score"))
    classes = labeled.classes
    labelled = _labelled(data)
    y = data["label"][labelled]
    decided = _decisions(data["prediction"], data["score"], classes=classes, threshold=threshold)[labelled]
    index, starts, ends, _ = _served_windows(labeled, data["ts"], window, since=since, until=until)
    index = index[labelled]
    n_labelled = np.bincount(index[index < len(starts)], minlength=len(starts))
    by_window = _window_confusions(index, len(starts), y, decided, classes)
    rows = []
    for i, start in enumerate(starts):
        if by_window is not None:
            counts = by_window[i]
        else:
            chosen = index == i
            counts = (confusion_matrix(y[chosen], decided[chosen], labels=list(classes)).ravel() if chosen.any()
                      else np.zeros(4, dtype=int))
        row = {"window_start": float(start), "window_end": float(ends[i]), "n_labelled": int(n_labelled[i]),
               "tn": int(counts[0]), "fp": int(counts[1]), "fn": int(counts[2]), "tp": int(counts[3])}
        if business is not None:
            row["money"] = float(business.money(*counts))
        rows.append(row)
    columns = ["window_start", "window_end", "n_labelled", "tn", "fp", "fn", "tp"] + (
        ["money"] if business is not None else [])
    has_score = bool(np.isfinite(data["score"]).any())
    return DecisionsOverTime(windows=pd.DataFrame(rows, columns=columns),
                             threshold=threshold if has_score else None, classes=classes, business=business)


def windows_frame(rows: list[dict], *, metrics: tuple[str, ...], task: str, binary: bool, min_labels: int,
                  window: str, now: float) -> tuple[pd.DataFrame, list[str]]:
    """:attr:`PerformanceOverTime.windows` from one dict per window (start, end, counts, metrics), and its columns.

    Coverage, ``enough_labels`` and ``partial`` are added here, the same way for every path
    that scores windows (rows, or sums where the log lives).
    """
    columns = ["window_start", "window_end", "n_predictions", "n_labelled", "coverage", "enough_labels", "partial"]
    for metric in metrics:
        columns += [metric, f"{metric}_low", f"{metric}_high"]
    columns += ["mean_residual"] if task == "regression" else ["label_rate", "mean_score"] if binary else []
    windows = pd.DataFrame(rows, columns=columns)
    windows["coverage"] = _ratio(windows["n_labelled"], windows["n_predictions"])
    windows["enough_labels"] = windows["n_labelled"] >= min_labels
    windows["partial"] = _partial(windows, window, now=now)
    windows = windows.astype({"n_predictions": int, "n_labelled": int, "enough_labels": bool, "partial": bool})
    return windows, columns


def _partial(windows: pd.DataFrame, window: str, *, now: float) -> np.ndarray:
    """Whether each window is still open at ``now``."""
    if window in WINDOW_SECONDS:
        return windows["window_end"].to_numpy(dtype=float) > now
    partial = np.zeros(len(windows), dtype=bool)
    if len(windows):
        partial[-1] = int(windows["n_predictions"].iloc[-1]) < int(window)
    return partial


def _range_columns(frame: pd.DataFrame, since: float | None, until: float | None,
                   names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Columns ``names`` (as float) of the rows predicted in ``[since, until)``, in prediction-time order,
    without copying the frame's other columns."""
    ts = frame["ts"].to_numpy()
    order = np.argsort(ts, kind="stable") if len(ts) > 1 and not np.all(ts[1:] >= ts[:-1]) else None
    if order is not None:
        ts = ts[order]
    keep = None
    if since is not None or until is not None:
        keep = np.ones(len(ts), dtype=bool)
        if since is not None:
            keep &= ts >= since
        if until is not None:
            keep &= ts < until
        if keep.all():
            keep = None
    columns = {}
    for name in names:
        values = frame[name].to_numpy(dtype=float)
        values = values if order is None else values[order]
        columns[name] = values if keep is None else values[keep]
    return columns


def _labelled(data: dict[str, np.ndarray]) -> np.ndarray:
    """Rows of :func:`_range_columns` with both a label and a logged prediction."""
    return ~np.isnan(data["label"]) & ~np.isnan(data["prediction"])


def _ratio(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    return (numerator / denominator.where(denominator > 0)).astype(float)



# -- detail of one period --------------------------------------------------------------------


@validate_params(n_bins=Interval(int, 2), max_residuals=Interval(int, 1), threshold=Nullable(Interval(float, 0, 1)))
def performance_detail(labeled: LabeledPredictions, *, since: float | None = None, until: float | None = None,
                       threshold: float | None = 0.5, n_bins: int = 10, business: BusinessValues | None = None,
                       max_residuals: int = 5000, random_state: int = 0) -> PerformanceDetail:
    """Calibration curve, confusion matrix and residuals of the labelled predictions of one period.

    Parameters
    ----------
    labeled : LabeledPredictions
    since, until : float, optional
        Prediction time range ``[since, until)``; open when None.
    threshold : float or None, default=0.5
        Two classes with a score: the score from which the confusion matrix counts a
        positive decision. None = the logged decisions.
    n_bins : int, default=10
        Bins of the calibration curve (uniform over [0, 1]).
    business : BusinessValues, optional
        Turns the confusion counts into money (two classes).
    max_residuals : int, default=5000
        At most this many residuals are kept (a random sample), enough for a chart.
    random_state : int, default=0
        Seed of that sample.

    Returns
    -------
    PerformanceDetail
    """
    if labeled.task != "regression":
        return _classification_detail(labeled, since=since, until=until, threshold=threshold, n_bins=n_bins,
                                      business=business)
    data = _range_columns(labeled.frame, since, until, ("ts", "prediction", "label"))
    frame = pd.DataFrame(data)[_labelled(data)]
    detail = {"task": labeled.task, "n_labelled": len(frame), "since": since, "until": until}
    sample = frame.sample(n=min(len(frame), max_residuals), random_state=random_state).sort_values("ts")
    residuals = pd.DataFrame({"ts": sample["ts"], "prediction": sample["prediction"], "label": sample["label"],
                              "residual": sample["label"] - sample["prediction"]}).reset_index(drop=True)
    return PerformanceDetail(**detail, residuals=residuals)


def _classification_detail(labeled: LabeledPredictions, *, since: float | None, until: float | None,
                           threshold: float | None, n_bins: int, business: BusinessValues | None) -> PerformanceDetail:
    """:func:`performance_detail` of a classifier: its calibration and confusion matrix."""
    data = _range_columns(labeled.frame, since, until, ("label", "prediction", "score"))
    labelled = _labelled(data)
    y, logged, score = (data[name][labelled] for name in ("label", "prediction", "score"))
    detail = {"task": labeled.task, "n_labelled": len(y), "since": since, "until": until}
    classes = labeled.classes
    binary = len(classes) == 2
    decided = _decisions(logged, score, classes=classes, threshold=threshold if binary else None)
    matrix = confusion_counts(y, decided, classes) if len(y) else np.zeros((len(classes), len(classes)), dtype=int)
    if matrix is None:
        matrix = confusion_matrix(y, decided, labels=list(classes))
    confusion = ConfusionMatrix(matrix=matrix, classes=classes,
                                threshold=threshold if binary and (~np.isnan(score)).any() else None)
    calibration = None
    scored = np.isfinite(score)
    if binary and scored.any():
        calibration = calibration_table(y[scored] == classes[1], score[scored], n_bins=n_bins)
    money = float(business.money(*matrix.ravel())) if business is not None and binary else None
    return PerformanceDetail(**detail, calibration=calibration, confusion=confusion, money=money)


def calibration_table(y_true: np.ndarray, score: np.ndarray, *, n_bins: int = 10) -> pd.DataFrame:
    """Observed frequency against mean score per bin, from :func:`sklearn.calibration.calibration_curve`.

    Parameters
    ----------
    y_true : array-like of bool or 0/1 of shape (n_rows,)
    score : array-like of float of shape (n_rows,)
        Probabilities of the positive class, in [0, 1].
    n_bins : int, default=10
        Uniform bins over [0, 1]; empty bins are left out.

    Returns
    -------
    DataFrame
        ``mean_predicted``, ``fraction_positive`` and ``n`` (rows in the bin), one row per
        non-empty bin.
    """
    y_true = np.asarray(y_true).astype(int)
    score = np.clip(np.asarray(score, dtype=float), 0.0, 1.0)
    if len(y_true) == 0:
        return pd.DataFrame(columns=["mean_predicted", "fraction_positive", "n"])
    fraction_positive, mean_predicted = calibration_curve(y_true, score, n_bins=n_bins, strategy="uniform")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    counts = np.bincount(np.searchsorted(edges[1:-1], score), minlength=n_bins)  # the bins calibration_curve uses
    return pd.DataFrame({"mean_predicted": mean_predicted, "fraction_positive": fraction_positive,
                         "n": counts[counts > 0]})


