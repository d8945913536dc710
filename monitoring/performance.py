"""Model performance over time, as ground-truth labels arrive.

Predictions are grouped in windows of *prediction* time (an hour, a day, a week) or of a
number of predictions, and each window is scored with the labels that have arrived so far
(:func:`monitoring.labels.join_labels` keeps only labels whose arrival time is ``<= now``):
a label arriving days later fills in the window its prediction belongs to.

Metrics come from :mod:`sklearn.metrics`:

* classification: accuracy, precision, recall and F1 of the service's own decisions (the
  logged ``prediction``; for more than two classes, precision, recall and F1 are
  macro-averaged), ROC AUC and log loss of the logged ``score`` (two classes only; the
  score is the probability of the larger class, 1 for 0/1 labels), a calibration curve, and
  confusion counts at a chosen threshold on the score (:func:`decisions_over_time`,
  :func:`performance_detail`);
* regression: MAE, RMSE, R² and the residuals (label − prediction).

Every window carries its labelled count, its coverage (labelled / predicted) and a
confidence interval per metric, so that a window of twelve labels is not read like one of
twelve thousand: the Wilson score interval for proportions (accuracy, and precision and
recall of two classes), a percentile bootstrap for the others. The bootstrap is vectorised:
each resample is a vector of multinomial row counts and each statistic is computed for all
resamples at once as a weighted sum, which gives what the scikit-learn metric returns with
those counts as ``sample_weight`` (tested), in a few milliseconds per window.

A baseline (what the model scored before production) comes from the configuration or from
the reference data when it holds the model's predictions (:func:`baseline_for`);
:func:`baseline_verdict` says whether the newest window is worse. An optional business
setting turns the confusion counts of each window into money.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import norm
from sklearn.calibration import calibration_curve
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    log_loss,
    mean_absolute_error,
    precision_recall_fscore_support,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)

from monitoring.config import PerformanceConfig, ServiceConfig
from monitoring.labels import LabeledPredictions
from monitoring.reference import READERS as REFERENCE_READERS

WINDOWS = {"hour": 3600.0, "day": 86400.0, "week": 7 * 86400.0}
"""Time windows and their width in seconds; a window may also be a number of predictions."""

CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
REGRESSION_METRICS = ("mae", "rmse", "r2")
METRIC_LABELS = {
    "accuracy": "Accuracy", "precision": "Precision", "recall": "Recall", "f1": "F1", "roc_auc": "ROC AUC",
    "log_loss": "Log loss", "mae": "MAE", "rmse": "RMSE", "r2": "R²",
}
"""Metric names as shown to people."""
LOWER_IS_BETTER = frozenset({"log_loss", "mae", "rmse"})
"""Metrics for which a smaller value is better."""
SCORE_METRICS = ("roc_auc", "log_loss")
"""Metrics that need the logged score (two classes only)."""

_MONDAY_OFFSET = 4 * 86400.0  # 1970-01-01 was a Thursday; weeks start on Monday 00:00 UTC
_BOOTSTRAP_CELLS = 2_000_000  # resamples × rows drawn at once, to bound memory


# -- small results ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Baseline:
    """What the model is expected to score: from the configuration or from the reference data.

    Attributes
    ----------
    values : mapping of str to float
        Metric name → expected value; empty when no baseline is available.
    source : str
        Where the values come from, in words.
    reason : str
        Why there is no baseline, when ``values`` is empty.
    """

    values: Mapping[str, float] = field(default_factory=dict)
    source: str = ""
    reason: str = ""

    def get(self, metric: str) -> float:
        """The baseline of ``metric``, NaN when it has none."""
        return float(self.values.get(metric, math.nan))


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
        (labelled / predicted), ``enough_labels`` (``n_labelled >= min_labels``); per
        metric of :attr:`metrics` the value and its interval ``<metric>_low``,
        ``<metric>_high``; for two classes ``label_rate`` (share of positive labels) and
        ``mean_score``; for regression ``mean_residual`` (mean of label − prediction).
    overall : Series
        The same columns over every prediction in the range.
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
        """The newest window with at least ``min_labels`` labels, or None."""
        judged = self.windows[self.windows["enough_labels"]]
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
class BaselineVerdict:
    """How the newest judged window compares with the baseline.

    Attributes
    ----------
    state : {"worse", "in line", "better", "unknown"}
        ``worse``/``better`` when the whole interval of the newest window with enough labels
        lies on that side of the baseline; ``unknown`` without a baseline or such a window.
    metric : str
    value, low, high, baseline : float
    window_start : float or None
        Start of the judged window.
    worse_since : float or None
        Start of the run of consecutive judged windows that are all worse, ending with the
        newest one.
    message : str
        The verdict in one plain sentence.
    """

    state: str
    metric: str
    value: float = math.nan
    low: float = math.nan
    high: float = math.nan
    baseline: float = math.nan
    window_start: float | None = None
    worse_since: float | None = None
    message: str = ""


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


# -- intervals -------------------------------------------------------------------------------


def wilson_interval(successes, n, *, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a proportion (Wilson 1927; Newcombe 1998, method 3).

    Parameters
    ----------
    successes : int or array-like of int
        Number of successes, ``0 <= successes <= n``.
    n : int or array-like of int
        Number of trials; NaN bounds where it is 0.
    confidence : float, default=0.95
        Two-sided coverage, in (0, 1).

    Returns
    -------
    low, high : ndarray of float
        Same shape as the broadcast inputs.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1 (exclusive); got {confidence!r}")
    successes = np.asarray(successes, dtype=float)
    n = np.asarray(n, dtype=float)
    if np.any(successes < 0) or np.any(successes > n):
        raise ValueError("successes must be between 0 and n")
    z = norm.ppf(0.5 + confidence / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = successes / n
        denominator = 1 + z * z / n
        center = (p + z * z / (2 * n)) / denominator
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    low = np.where(n > 0, np.clip(center - half, 0.0, 1.0), np.nan)
    high = np.where(n > 0, np.clip(center + half, 0.0, 1.0), np.nan)
    return low, high


def bootstrap_weights(n_rows: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Row counts of ``n_resamples`` bootstrap resamples: shape (n_resamples, n_rows), each row summing to n_rows."""
    draws = (rng.integers(0, n_rows, size=(n_resamples, n_rows), dtype=np.int64)
             + (np.arange(n_resamples, dtype=np.int64) * n_rows)[:, None])
    return np.bincount(draws.ravel(), minlength=n_resamples * n_rows).reshape(n_resamples, n_rows).astype(float)


def _bootstrap(statistics: Mapping[str, Callable[[np.ndarray], np.ndarray]], n_rows: int, *, n_resamples: int,
               rng: np.random.Generator, confidence: float, estimates: Mapping[str, float] | None = None,
               scale: float = 1.0) -> dict[str, tuple[float, float]]:
    """Percentile intervals of each ``statistic(weights)``, all computed on the same resamples.

    With ``scale`` < 1 the rows are a subsample of a larger group (see :func:`_subsample`): the
    interval is the subsample's spread around its own estimate, narrowed by ``scale`` and
    moved to the full group's ``estimates``.
    """
    if n_rows < 2 or n_resamples < 1 or not statistics:
        return dict.fromkeys(statistics, (math.nan, math.nan))
    chunk = max(1, min(n_resamples, _BOOTSTRAP_CELLS // n_rows))
    values: dict[str, list[np.ndarray]] = {name: [] for name in statistics}
    for start in range(0, n_resamples, chunk):
        W = bootstrap_weights(n_rows, min(chunk, n_resamples - start), rng)
        for name, statistic in statistics.items():
            values[name].append(statistic(W))
    alpha = (1 - confidence) / 2
    intervals = {}
    for name, parts in values.items():
        finite = np.concatenate(parts)
        finite = finite[np.isfinite(finite)]
        if len(finite) == 0:
            intervals[name] = (math.nan, math.nan)
            continue
        low, high = (float(q) for q in np.quantile(finite, [alpha, 1 - alpha]))
        if scale != 1.0:
            center = float(statistics[name](np.ones((1, n_rows)))[0])
            estimate = (estimates or {}).get(name, center)
            low, high = estimate + scale * (low - center), estimate + scale * (high - center)
        intervals[name] = (low, high)
    return intervals


def _subsample(n_rows: int, max_rows: int, rng: np.random.Generator) -> tuple[np.ndarray | None, float]:
    """Rows to bootstrap (sorted, None = all) and the factor that rescales their interval to all rows.

    A group larger than ``max_rows`` is bootstrapped on a random subsample of ``max_rows``
    rows (an m-out-of-n bootstrap): the spread of a smooth statistic shrinks as one over the
    square root of the rows, so the subsample's interval is narrowed by sqrt(max_rows / n_rows).
    The cost per window stays bounded however many labels it has.
    """
    if n_rows <= max_rows:
        return None, 1.0
    return np.sort(rng.choice(n_rows, size=max_rows, replace=False)), math.sqrt(max_rows / n_rows)


# Weighted statistics: ``W`` has shape (n_resamples, n_rows); each returns (n_resamples,).

def _weighted_f1_binary(W: np.ndarray, y: np.ndarray, decided: np.ndarray) -> np.ndarray:
    tp, fp, fn = W @ (y & decided), W @ (~y & decided), W @ (y & ~decided)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 2 * tp / (2 * tp + fp + fn)


def _weighted_macro(W: np.ndarray, y: np.ndarray, decided: np.ndarray, classes: np.ndarray, kind: str) -> np.ndarray:
    scores = []
    for k in classes:
        is_true, is_decided = y == k, decided == k
        tp, n_decided, n_true = W @ (is_true & is_decided), W @ is_decided, W @ is_true
        with np.errstate(invalid="ignore", divide="ignore"):
            if kind == "precision":
                scores.append(tp / n_decided)
            elif kind == "recall":
                scores.append(tp / n_true)
            else:
                scores.append(2 * tp / (n_decided + n_true))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a resample where every class is undefined
        return np.nanmean(np.vstack(scores), axis=0)


def _weighted_auc(W: np.ndarray, y: np.ndarray, score: np.ndarray) -> np.ndarray:
    """ROC AUC with weights; ``score`` sorted ascending, ties counted half (as the ROC curve's trapezoids)."""
    positive = W * y
    negative = W - positive
    if len(score) > 1 and np.any(score[1:] == score[:-1]):
        starts = np.flatnonzero(np.r_[True, score[1:] != score[:-1]])
        positive = np.add.reduceat(positive, starts, axis=1)
        negative = np.add.reduceat(negative, starts, axis=1)
    below_or_tied = np.cumsum(negative, axis=1) - negative / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.einsum("ij,ij->i", positive, below_or_tied) / (positive.sum(axis=1) * negative.sum(axis=1))


def _row_log_loss(y: np.ndarray, score: np.ndarray) -> np.ndarray:
    eps = np.finfo(float).eps  # what sklearn.metrics.log_loss clips to
    p = np.clip(score, eps, 1 - eps)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


# -- windows ---------------------------------------------------------------------------------


def check_window(window: str | int) -> str:
    """Validate a window: ``"hour"``, ``"day"``, ``"week"`` or a positive number of predictions."""
    text = str(window)
    if text in WINDOWS or (text.isdigit() and int(text) > 0):
        return text
    raise ValueError(f"window must be 'hour', 'day', 'week' or a positive number of predictions such as '1000'; "
                     f"got {window!r}")


def range_start(now: float, days: float | None, *, window: str | int = "day") -> float | None:
    """Start of the last ``days`` days before ``now``, moved back to a window boundary (None = no limit).

    Parameters
    ----------
    now : float
        Unix seconds.
    days : float or None
        Length of the range; None means everything.
    window : {"hour", "day", "week"} or int, default="day"
        Time windows align the start to their boundary, so the first window is whole.
    """
    if days is None:
        return None
    if days <= 0:
        raise ValueError(f"days must be > 0, or None for everything; got {days!r}")
    since = now - days * 86400.0
    window = check_window(window)
    if window in WINDOWS:
        offset = _MONDAY_OFFSET if window == "week" else 0.0
        since = math.floor((since - offset) / WINDOWS[window]) * WINDOWS[window] + offset
    return since


def _assign_windows(ts: np.ndarray, window: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Window index of each row (``ts`` sorted) and each window's start and end."""
    if window in WINDOWS:
        width = WINDOWS[window]
        offset = _MONDAY_OFFSET if window == "week" else 0.0
        starts_per_row = np.floor((ts - offset) / width) * width + offset
        starts, index = np.unique(starts_per_row, return_inverse=True)
        return index, starts, starts + width
    size = int(window)
    index = np.arange(len(ts)) // size
    n_windows = int(index[-1]) + 1 if len(ts) else 0
    starts = ts[np.arange(n_windows) * size] if n_windows else np.array([])
    ends = np.r_[starts[1:], ts[-1]] if n_windows else np.array([])
    return index, starts, ends


# -- metrics of one group of rows ------------------------------------------------------------


def metrics_for(task: str, classes: tuple[float, ...] = (0.0, 1.0), *, has_score: bool = True) -> tuple[str, ...]:
    """The metrics that can be computed for a task.

    Parameters
    ----------
    task : {"classification", "regression"}
    classes : tuple of float, default=(0.0, 1.0)
    has_score : bool, default=True
        Whether a positive-class score is logged (ROC AUC and log loss need it, and two classes).
    """
    if task == "regression":
        return REGRESSION_METRICS
    if len(classes) == 2 and has_score:
        return CLASSIFICATION_METRICS
    return tuple(m for m in CLASSIFICATION_METRICS if m not in SCORE_METRICS)


def _quiet(function, *args, **kwargs) -> float:
    """A scikit-learn metric as a float; NaN where it is undefined (one class only, too few rows)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            return float(function(*args, **kwargs))
        except ValueError:
            return math.nan


def _classification_row(y: np.ndarray, decided: np.ndarray, score: np.ndarray, *, classes: tuple[float, ...],
                        metrics: tuple[str, ...], confidence: float, n_resamples: int,
                        rng: np.random.Generator | None, max_bootstrap_rows: int = 2000) -> dict[str, float]:
    """Metrics (and intervals when ``rng`` is given) of labelled rows ``y`` with decisions and scores."""
    row: dict[str, float] = dict.fromkeys(metrics, math.nan)
    row.update({f"{m}_{b}": math.nan for m in metrics for b in ("low", "high")})
    n = len(y)
    if n == 0:
        return row
    binary = len(classes) == 2
    labels = np.asarray(classes, dtype=float)
    row["accuracy"] = accuracy_score(y, decided)
    correct = int((y == decided).sum())
    if binary:
        positive = labels[1]
        precision, recall, f1, _ = _quiet_prfs(y, decided, labels=labels, average="binary", pos_label=positive)
        tp = int(((y == positive) & (decided == positive)).sum())
        n_decided_positive, n_true_positive = int((decided == positive).sum()), int((y == positive).sum())
        intervals = {"accuracy": (correct, n), "precision": (tp, n_decided_positive),
                     "recall": (tp, n_true_positive)}
    else:
        precision, recall, f1, _ = _quiet_prfs(y, decided, labels=labels, average="macro")
        intervals = {"accuracy": (correct, n)}
    row.update(precision=precision, recall=recall, f1=f1)
    scored = np.isfinite(score)
    if "roc_auc" in metrics and scored.any():
        row["roc_auc"] = _quiet(roc_auc_score, y[scored] == labels[1], score[scored])
        row["log_loss"] = _quiet(log_loss, y[scored] == labels[1], score[scored], labels=[False, True])
    if rng is None:
        return row
    for metric, (successes, trials) in intervals.items():
        low, high = wilson_interval(successes, trials, confidence=confidence)
        row[f"{metric}_low"], row[f"{metric}_high"] = float(low), float(high)
    # Every statistic is invariant to the order of rows: sort them by score once (unscored last),
    # so the ROC AUC of each resample is a cumulative sum over the scored prefix.
    order = np.argsort(score, kind="stable")
    y, decided, score = y[order], decided[order], score[order]
    rows, scale = _subsample(n, max_bootstrap_rows, rng)
    if rows is not None:  # still sorted by score, unscored last
        y, decided, score = y[rows], decided[rows], score[rows]
    n_scored = int(np.isfinite(score).sum())
    statistics: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
    if binary:
        is_positive, decided_positive = y == labels[1], decided == labels[1]
        statistics["f1"] = lambda W: _weighted_f1_binary(W, is_positive, decided_positive)
        if "roc_auc" in metrics and n_scored >= 2:
            scored_positive, scored_score = is_positive[:n_scored], score[:n_scored]
            losses = _row_log_loss(scored_positive, scored_score)
            statistics["roc_auc"] = lambda W: _weighted_auc(W[:, :n_scored], scored_positive, scored_score)
            statistics["log_loss"] = lambda W: (W[:, :n_scored] @ losses) / W[:, :n_scored].sum(axis=1)
    else:
        for metric in ("precision", "recall", "f1"):
            statistics[metric] = lambda W, kind=metric: _weighted_macro(W, y, decided, labels, kind)
    intervals = _bootstrap(statistics, len(y), n_resamples=n_resamples, rng=rng, confidence=confidence,
                           estimates=row, scale=scale)
    for metric, (low, high) in intervals.items():
        row[f"{metric}_low"], row[f"{metric}_high"] = low, high
    return row


def _quiet_prfs(y, decided, **kwargs) -> tuple[float, float, float, None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        precision, recall, f1, _ = precision_recall_fscore_support(y, decided, zero_division=np.nan, **kwargs)
    return float(precision), float(recall), float(f1), None


def _regression_row(y: np.ndarray, predicted: np.ndarray, *, confidence: float, n_resamples: int,
                    rng: np.random.Generator | None, max_bootstrap_rows: int = 2000) -> dict[str, float]:
    row: dict[str, float] = dict.fromkeys(REGRESSION_METRICS, math.nan)
    row.update({f"{m}_{b}": math.nan for m in REGRESSION_METRICS for b in ("low", "high")})
    row["mean_residual"] = math.nan
    n = len(y)
    if n == 0:
        return row
    row["mae"] = _quiet(mean_absolute_error, y, predicted)
    row["rmse"] = _quiet(root_mean_squared_error, y, predicted)
    row["r2"] = _quiet(r2_score, y, predicted) if n >= 2 else math.nan
    row["mean_residual"] = float(np.mean(y - predicted))
    if rng is None:
        return row
    rows, scale = _subsample(n, max_bootstrap_rows, rng)
    if rows is not None:
        y, predicted = y[rows], predicted[rows]
    errors = y - predicted
    absolute, squared = np.abs(errors), errors**2

    def weighted_r2(W: np.ndarray) -> np.ndarray:
        total = W.sum(axis=1)
        spread = W @ y**2 - (W @ y) ** 2 / total
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(spread > 0, 1 - (W @ squared) / spread, np.nan)

    intervals = _bootstrap({"mae": lambda W: (W @ absolute) / W.sum(axis=1),
                            "rmse": lambda W: np.sqrt((W @ squared) / W.sum(axis=1)),
                            "r2": weighted_r2}, len(y), n_resamples=n_resamples, rng=rng, confidence=confidence,
                           estimates=row, scale=scale)
    for metric, (low, high) in intervals.items():
        row[f"{metric}_low"], row[f"{metric}_high"] = low, high
    return row


def _decisions(frame: pd.DataFrame, *, classes: tuple[float, ...], threshold: float | None) -> np.ndarray:
    """Decided class per row: the score against ``threshold`` for two classes, else the logged prediction."""
    logged = frame["prediction"].to_numpy(dtype=float)
    if threshold is None or len(classes) != 2:
        return logged
    score = frame["score"].to_numpy(dtype=float)
    return np.where(np.isfinite(score), np.where(score >= threshold, classes[1], classes[0]), logged)


# -- performance over time -------------------------------------------------------------------


def performance_over_time(labeled: LabeledPredictions, *, window: str | int = "day",
                          baseline: Baseline | None = None, min_labels: int = 30, confidence: float = 0.95,
                          n_bootstrap: int = 200, max_bootstrap_rows: int = 2000, random_state: int = 0,
                          since: float | None = None, until: float | None = None) -> PerformanceOverTime:
    """Metrics per window of prediction time, with intervals, labelled counts and coverage.

    Parameters
    ----------
    labeled : LabeledPredictions
        From :func:`monitoring.labels.join_labels`; its ``now`` decides which labels count.
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
    if isinstance(min_labels, bool) or not isinstance(min_labels, int | np.integer) or min_labels < 1:
        raise ValueError(f"min_labels must be an integer >= 1; got {min_labels!r}")
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int | np.integer) or n_bootstrap < 0:
        raise ValueError(f"n_bootstrap must be an integer >= 0; got {n_bootstrap!r}")
    wilson_interval(0, 1, confidence=confidence)  # validates confidence
    frame = _in_range(labeled.frame, since, until)
    task, classes = labeled.task, labeled.classes
    has_score = task == "classification" and bool(np.isfinite(frame["score"].to_numpy(dtype=float)).any())
    metrics = metrics_for(task, classes, has_score=has_score)
    binary = task == "classification" and len(classes) == 2

    ts = frame["ts"].to_numpy(dtype=float)
    index, starts, ends = _assign_windows(ts, window)
    labelled = _labelled(frame)
    n_predictions = np.bincount(index, minlength=len(starts))
    if isinstance(max_bootstrap_rows, bool) or not isinstance(max_bootstrap_rows, int | np.integer) \
            or max_bootstrap_rows < 2:
        raise ValueError(f"max_bootstrap_rows must be an integer >= 2; got {max_bootstrap_rows!r}")
    options = {"task": task, "classes": classes, "metrics": metrics, "confidence": confidence,
               "n_resamples": n_bootstrap, "max_bootstrap_rows": max_bootstrap_rows}
    # Rows are in prediction-time order, so the labelled rows of each window are one slice.
    y, predicted, score = (frame[c].to_numpy(dtype=float)[labelled] for c in ("label", "prediction", "score"))
    bounds = np.searchsorted(index[labelled], np.arange(len(starts) + 1))
    rows = []
    for i, start in enumerate(starts):
        part = slice(bounds[i], bounds[i + 1])
        row = {"window_start": float(start), "window_end": float(ends[i]), "n_predictions": int(n_predictions[i]),
               "n_labelled": int(bounds[i + 1] - bounds[i])}
        # One seed per window start: a window's intervals do not move when other windows change.
        rng = np.random.default_rng([random_state, int(abs(start)) % (2**32)])
        row.update(_group_metrics(y[part], predicted[part], score[part], rng=rng, **options))
        rows.append(row)
    columns = ["window_start", "window_end", "n_predictions", "n_labelled", "coverage", "enough_labels"]
    for metric in metrics:
        columns += [metric, f"{metric}_low", f"{metric}_high"]
    columns += ["mean_residual"] if task == "regression" else ["label_rate", "mean_score"] if binary else []
    windows = pd.DataFrame(rows, columns=columns)
    windows["coverage"] = _ratio(windows["n_labelled"], windows["n_predictions"])
    windows["enough_labels"] = windows["n_labelled"] >= min_labels
    windows = windows.astype({"n_predictions": int, "n_labelled": int, "enough_labels": bool})

    overall = {"window_start": float(ts.min()) if len(ts) else math.nan,
               "window_end": float(ts.max()) if len(ts) else math.nan,
               "n_predictions": len(frame), "n_labelled": int(labelled.sum()),
               "coverage": labelled.sum() / len(frame) if len(frame) else math.nan,
               "enough_labels": bool(labelled.sum() >= min_labels)}
    overall.update(_group_metrics(y, predicted, score, rng=np.random.default_rng([random_state, 1]), **options))
    return PerformanceOverTime(
        windows=windows, overall=pd.Series(overall, dtype=object).reindex(columns), task=task, metrics=metrics,
        classes=classes, positive_class=classes[1] if binary else None, window=window, confidence=confidence,
        min_labels=min_labels, now=labeled.now, baseline=baseline or Baseline())


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
    if labeled.task != "classification" or len(labeled.classes) != 2:
        raise ValueError(f"decision counts need a two-class model; this one is {labeled.task} with classes "
                         f"{list(labeled.classes)}")
    if threshold is not None and not 0 <= threshold <= 1:
        raise ValueError(f"threshold must be between 0 and 1, or None for the logged decisions; got {threshold!r}")
    frame = _in_range(labeled.frame, since, until)
    classes = labeled.classes
    decided = _decisions(frame, classes=classes, threshold=threshold)
    y = frame["label"].to_numpy(dtype=float)
    index, starts, ends = _assign_windows(frame["ts"].to_numpy(dtype=float), window)
    labelled = _labelled(frame)
    rows = []
    for i, start in enumerate(starts):
        chosen = (index == i) & labelled
        counts = (confusion_matrix(y[chosen], decided[chosen], labels=list(classes)).ravel() if chosen.any()
                  else np.zeros(4, dtype=int))
        row = {"window_start": float(start), "window_end": float(ends[i]), "n_labelled": int(chosen.sum()),
               "tn": int(counts[0]), "fp": int(counts[1]), "fn": int(counts[2]), "tp": int(counts[3])}
        if business is not None:
            row["money"] = float(business.money(*counts))
        rows.append(row)
    columns = ["window_start", "window_end", "n_labelled", "tn", "fp", "fn", "tp"] + (
        ["money"] if business is not None else [])
    has_score = bool(np.isfinite(frame["score"].to_numpy(dtype=float)).any())
    return DecisionsOverTime(windows=pd.DataFrame(rows, columns=columns),
                             threshold=threshold if has_score else None, classes=classes, business=business)


def baseline_verdict(result: PerformanceOverTime, metric: str) -> BaselineVerdict:
    """Compare the newest window with enough labels with the baseline of ``metric``.

    Parameters
    ----------
    result : PerformanceOverTime
    metric : str
        One of ``result.metrics``.

    Returns
    -------
    BaselineVerdict
    """
    if metric not in result.metrics:
        raise ValueError(f"metric must be one of {list(result.metrics)}; got {metric!r}")
    name = METRIC_LABELS[metric]
    baseline = result.baseline.get(metric)
    latest = result.latest()
    if latest is None:
        return BaselineVerdict("unknown", metric, baseline=baseline, message=(
            f"No window has {result.min_labels} labels yet, so {name} cannot be judged."))
    value, low, high = (float(latest[metric]), float(latest[f"{metric}_low"]), float(latest[f"{metric}_high"]))
    common = {"metric": metric, "value": value, "low": low, "high": high, "baseline": baseline,
              "window_start": float(latest["window_start"])}
    if not math.isfinite(baseline):
        return BaselineVerdict("unknown", **common, message=f"{name} has no baseline to compare with.")
    if not (math.isfinite(low) and math.isfinite(high)):
        low = high = value
    lower_is_better = metric in LOWER_IS_BETTER

    def worse(lo: float, hi: float) -> bool:
        return lo > baseline if lower_is_better else hi < baseline

    def better(lo: float, hi: float) -> bool:
        return hi < baseline if lower_is_better else lo > baseline

    gap = f"{value:.3f} against a baseline of {baseline:.3f}"
    if worse(low, high):
        judged = result.windows[result.windows["enough_labels"]]
        since = float(latest["window_start"])
        for row in judged.iloc[::-1].itertuples(index=False):
            lo, hi = getattr(row, f"{metric}_low"), getattr(row, f"{metric}_high")
            lo, hi = (lo, hi) if math.isfinite(lo) and math.isfinite(hi) else (getattr(row, metric),) * 2
            if not worse(lo, hi):
                break
            since = float(row.window_start)
        run = (f" It has been worse in every window since {_day_text(since)}."
               if since < float(latest["window_start"]) else "")
        return BaselineVerdict("worse", **common, worse_since=since, message=(
            f"{name} is worse than its baseline: {gap}, and the whole {result.confidence:.0%} interval "
            f"({low:.3f}–{high:.3f}) is on the worse side.{run}"))
    if better(low, high):
        return BaselineVerdict("better", **common, message=f"{name} is better than its baseline: {gap}.")
    return BaselineVerdict("in line", **common, message=(
        f"{name} is in line with its baseline: {gap}; the {result.confidence:.0%} interval "
        f"({low:.3f}–{high:.3f}) includes it."))


def _day_text(ts: float) -> str:
    moment = datetime.fromtimestamp(ts, tz=UTC)
    return moment.strftime("%d %b %Y") if moment.hour == moment.minute == 0 else moment.strftime("%d %b %Y %H:%M UTC")


def _labelled(frame: pd.DataFrame) -> np.ndarray:
    return frame["label"].notna().to_numpy() & frame["prediction"].notna().to_numpy()


def _in_range(frame: pd.DataFrame, since: float | None, until: float | None) -> pd.DataFrame:
    """Rows predicted in ``[since, until)``, in prediction-time order."""
    ts = frame["ts"].to_numpy()
    if len(ts) > 1 and not np.all(ts[1:] >= ts[:-1]):
        frame = frame.iloc[np.argsort(ts, kind="stable")].reset_index(drop=True)
    if since is None and until is None:
        return frame
    keep = np.ones(len(frame), dtype=bool)
    if since is not None:
        keep &= frame["ts"].to_numpy() >= since
    if until is not None:
        keep &= frame["ts"].to_numpy() < until
    return frame[keep].reset_index(drop=True)


def _ratio(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    return (numerator / denominator.where(denominator > 0)).astype(float)


def _group_metrics(y: np.ndarray, predicted: np.ndarray, score: np.ndarray, *, task: str,
                   classes: tuple[float, ...], metrics: tuple[str, ...], confidence: float, n_resamples: int,
                   max_bootstrap_rows: int, rng: np.random.Generator) -> dict[str, float]:
    """Metrics of one group of labelled rows (labels, logged predictions, scores)."""
    if task == "regression":
        return _regression_row(y, predicted, confidence=confidence, n_resamples=n_resamples, rng=rng,
                               max_bootstrap_rows=max_bootstrap_rows)
    row = _classification_row(y, predicted, score, classes=classes, metrics=metrics, confidence=confidence,
                              n_resamples=n_resamples, rng=rng, max_bootstrap_rows=max_bootstrap_rows)
    if len(classes) == 2:
        row["label_rate"] = float(np.mean(y == classes[1])) if len(y) else math.nan
        scored = score[np.isfinite(score)]
        row["mean_score"] = float(scored.mean()) if len(scored) else math.nan
    return row


# -- detail of one period --------------------------------------------------------------------


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
    if n_bins < 2:
        raise ValueError(f"n_bins must be >= 2; got {n_bins!r}")
    frame = _in_range(labeled.frame, since, until)
    frame = frame[frame["label"].notna() & frame["prediction"].notna()]
    detail = {"task": labeled.task, "n_labelled": len(frame), "since": since, "until": until}
    if labeled.task == "regression":
        sample = frame.sample(n=min(len(frame), max_residuals), random_state=random_state).sort_values("ts")
        residuals = pd.DataFrame({"ts": sample["ts"], "prediction": sample["prediction"], "label": sample["label"],
                                  "residual": sample["label"] - sample["prediction"]}).reset_index(drop=True)
        return PerformanceDetail(**detail, residuals=residuals)
    classes = labeled.classes
    binary = len(classes) == 2
    y = frame["label"].to_numpy(dtype=float)
    decided = _decisions(frame, classes=classes, threshold=threshold if binary else None)
    matrix = (confusion_matrix(y, decided, labels=list(classes)) if len(y)
              else np.zeros((len(classes), len(classes)), dtype=int))
    confusion = ConfusionMatrix(matrix=matrix, classes=classes,
                                threshold=threshold if binary and frame["score"].notna().any() else None)
    calibration = None
    score = frame["score"].to_numpy(dtype=float)
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


# -- baseline --------------------------------------------------------------------------------


def baseline_for(service: ServiceConfig, *, task: str, classes: tuple[float, ...] = (0.0, 1.0)) -> Baseline:
    """The baseline of a service: configured values, else metrics of the reference data's own predictions.

    The reference file (``reference``, with ``target``) gives a baseline when it holds the
    model's predictions on it in a ``prediction`` column (and, for ROC AUC and log loss, the
    positive-class probability in ``score``). The service itself is never called from here.

    Parameters
    ----------
    service : ServiceConfig
    task : {"classification", "regression"}
    classes : tuple of float, default=(0.0, 1.0)
        The classes the model predicts (classification).

    Returns
    -------
    Baseline
        With ``reason`` saying what to configure when no baseline is available.
    """
    configured = service.performance.baseline
    if configured:
        return Baseline(values=dict(configured), source="configuration ([services.performance] baseline)")
    how = ("set [services.performance] baseline (e.g. {accuracy = 0.87}), or add the model's predictions on the "
           "reference data to the reference file as a 'prediction' column (and 'score' for ROC AUC and log loss)")
    if not service.reference or not service.target:
        return Baseline(reason=f"No baseline: {how}; the reference file and its target column must be configured.")
    file = Path(service.reference)
    reader = REFERENCE_READERS.get(file.suffix.lower())
    if reader is None or not file.exists():
        problem = "does not exist" if reader is not None else f"has the unsupported type {file.suffix!r}"
        return Baseline(reason=f"No baseline: the reference file {file} {problem}.")
    try:
        reference = reader(file)
    except Exception as exc:  # each reader raises its own family of errors
        return Baseline(reason=f"No baseline: the reference file {file} cannot be read: {exc}.")
    if service.target not in reference.columns:
        return Baseline(reason=f"No baseline: the reference file {file} has no target column {service.target!r}; "
                               f"it has {list(reference.columns)}.")
    if "prediction" not in reference.columns:
        return Baseline(reason=f"No baseline: the reference file {file} has no 'prediction' column; {how}.")
    values = reference_metrics(reference, target=service.target, task=task, classes=classes)
    known = {m: v for m, v in values.items() if math.isfinite(v)}
    if not known:
        return Baseline(reason=f"No baseline: the reference file {service.reference} has no rows with both "
                               f"{service.target!r} and 'prediction'.")
    n = int(reference[[service.target, "prediction"]].notna().all(axis=1).sum())
    return Baseline(values=known, source=f"the reference data's own predictions ({n:,} rows)")


def reference_metrics(reference: pd.DataFrame, *, target: str, task: str,
                      classes: tuple[float, ...] = (0.0, 1.0)) -> dict[str, float]:
    """Metrics of the predictions stored in a reference frame (``prediction``, optional ``score``).

    Parameters
    ----------
    reference : DataFrame
        With ``target`` and ``prediction``, and ``score`` for ROC AUC and log loss.
    target : str
    task : {"classification", "regression"}
    classes : tuple of float, default=(0.0, 1.0)

    Returns
    -------
    dict of str to float
        Metric → value (NaN where undefined).
    """
    y = pd.to_numeric(reference[target], errors="coerce").to_numpy(dtype=float)
    predicted = pd.to_numeric(reference["prediction"], errors="coerce").to_numpy(dtype=float)
    score = (pd.to_numeric(reference["score"], errors="coerce").to_numpy(dtype=float) if "score" in reference
             else np.full(len(reference), np.nan))
    usable = np.isfinite(y) & np.isfinite(predicted)
    if task == "regression":
        row = _regression_row(y[usable], predicted[usable], confidence=0.95, n_resamples=0, rng=None)
        return {m: row[m] for m in REGRESSION_METRICS}
    metrics = metrics_for(task, classes, has_score=bool(np.isfinite(score[usable]).any()))
    row = _classification_row(y[usable], predicted[usable], score[usable], classes=classes, metrics=metrics,
                              confidence=0.95, n_resamples=0, rng=None)
    return {m: row[m] for m in metrics}
