"""Metrics of one group of labelled predictions, with confidence intervals.

The metrics come from :mod:`sklearn.metrics`:

* classification: accuracy, precision, recall and F1 of the service's own decisions (for
  more than two classes, precision, recall and F1 are macro-averaged), ROC AUC and log loss
  of the logged positive-class ``score`` (two classes only);
* regression: MAE, RMSE and R².

Intervals: the Wilson score interval for proportions (accuracy, and precision and recall of
two classes), a percentile bootstrap for the others. The bootstrap is vectorised: each
resample is a vector of multinomial row counts and each statistic is computed for all
resamples at once as a weighted sum, which gives what the scikit-learn metric returns with
those counts as ``sample_weight`` (tested). A group larger than ``max_bootstrap_rows`` is
bootstrapped on a random subsample whose interval is rescaled (an m-out-of-n bootstrap), so
the cost per group is bounded.

Used by :mod:`monitoring.performance` (one group per window), :mod:`monitoring.verdict`
(the judged period) and :mod:`monitoring.baseline` (the reference data).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping

import numpy as np
from scipy.stats import norm
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (
    accuracy_score,
    log_loss,
    mean_absolute_error,
    precision_recall_fscore_support,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)

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

_BOOTSTRAP_CELLS = 2_000_000  # resamples × rows drawn at once, to bound memory


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



def group_metrics(y: np.ndarray, predicted: np.ndarray, score: np.ndarray, *, task: str,
                  classes: tuple[float, ...], metrics: tuple[str, ...], confidence: float = 0.95,
                  n_resamples: int = 200, max_bootstrap_rows: int = 2000,
                  rng: np.random.Generator | None = None) -> dict[str, float]:
    """Metrics of one group of labelled rows, with their intervals when ``rng`` is given.

    Parameters
    ----------
    y, predicted, score : ndarray of float of shape (n_rows,)
        Labels, logged predictions, and positive-class scores (NaN where not logged).
    task : {"classification", "regression"}
    classes : tuple of float
        Classes the model predicts (classification).
    metrics : tuple of str
        From :func:`metrics_for`.
    confidence : float, default=0.95
        Coverage of the intervals.
    n_resamples : int, default=200
        Bootstrap resamples; 0 leaves the bootstrap intervals NaN.
    max_bootstrap_rows : int, default=2000
        Larger groups are bootstrapped on a subsample of this many rows, the interval rescaled.
    rng : numpy.random.Generator, optional
        Seeded generator of the bootstrap; None = values only, every interval NaN.

    Returns
    -------
    dict of str to float
        Per metric the value, ``<metric>_low`` and ``<metric>_high``; for two classes also
        ``label_rate`` (share of positive labels) and ``mean_score``; for regression
        ``mean_residual``.
    """
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
