"""Metrics of one group of labelled predictions, with confidence intervals.

The metrics are those of :mod:`sklearn.metrics`:

* classification: accuracy, precision, recall and F1 of the service's own decisions (for
  more than two classes, precision, recall and F1 are macro-averaged), ROC AUC and log loss
  of the logged positive-class ``score`` (two classes only);
* regression: MAE, RMSE and R².

A window holds up to millions of rows, so the classification metrics are computed the way
scikit-learn defines them but without its input checks (tested equal): accuracy, precision,
recall and F1 from the confusion counts (:func:`confusion_counts`), ROC AUC from one integer
sort of the scores (the area under scikit-learn's ROC curve, ties counted half), log loss
with scikit-learn's clipping. Groups scikit-learn would read differently (classes that are
not whole numbers, labels or decisions outside the classes, scores outside [0, 2) for the
ROC AUC) go to scikit-learn itself.

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
    if n_rows < 2 or n_resamples < 1:
        return dict.fromkeys(statistics, (math.nan, math.nan))
    chunk = max(1, min(n_resamples, _BOOTSTRAP_CELLS // n_rows))
    if not statistics:  # none wanted: the same draws all the same, for a generator shared with later groups
        for start in range(0, n_resamples, chunk):
            rng.integers(0, n_rows, size=(min(chunk, n_resamples - start), n_rows), dtype=np.int64)
        return {}
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


def _subsample(n_rows: int, max_rows: int, rng: np.random.Generator,
               group_size: int | None = None) -> tuple[np.ndarray | None, float]:
    """Rows to bootstrap (sorted, None = all) and the factor that rescales their interval to all rows.

    A group larger than ``max_rows`` is bootstrapped on a random subsample of ``max_rows``
    rows (an m-out-of-n bootstrap): the spread of a smooth statistic shrinks as one over the
    square root of the rows, so the subsample's interval is narrowed by sqrt(max_rows / n_rows).
    The cost per window stays bounded however many labels it has. ``group_size`` > ``n_rows``
    says the rows already are a uniform sample of a group that large (drawn where the log
    lives), and the interval is narrowed to it in the same way.
    """
    population = n_rows if group_size is None else max(int(group_size), n_rows)
    if n_rows <= max_rows:
        return None, (1.0 if population == n_rows else math.sqrt(n_rows / population))
    return np.sort(rng.choice(n_rows, size=max_rows, replace=False)), math.sqrt(max_rows / population)


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


# -- the metrics of scikit-learn on many rows ------------------------------------------------


def confusion_counts(y: np.ndarray, decided: np.ndarray, classes: tuple[float, ...]) -> np.ndarray | None:
    """Confusion counts of true (rows) against decided (columns) classes, as scikit-learn's ``confusion_matrix``.

    Parameters
    ----------
    y, decided : ndarray of float of shape (n_rows,)
        Labels and decisions.
    classes : tuple of float
        The classes, sorted: the order of the rows and columns.

    Returns
    -------
    ndarray of int64 of shape (n_classes, n_classes) or None
        None when scikit-learn would read the rows otherwise: a class that is not a whole
        number (it takes them for continuous values), or a label or decision outside
        ``classes``; the caller then asks scikit-learn.
    """
    labels = np.asarray(classes, dtype=float)
    k = len(labels)
    if k == 0 or not np.all(np.isfinite(labels) & (labels == np.round(labels))):
        return None
    if k == 2:
        y_positive, decided_positive = y == labels[1], decided == labels[1]
        n_true, n_decided = np.count_nonzero(y_positive), np.count_nonzero(decided_positive)
        if (n_true + np.count_nonzero(y == labels[0]) != len(y)
                or n_decided + np.count_nonzero(decided == labels[0]) != len(decided)):
            return None
        tp = np.count_nonzero(y_positive & decided_positive)
        fn, fp = n_true - tp, n_decided - tp
        return np.array([[len(y) - tp - fn - fp, fp], [fn, tp]], dtype=np.int64)
    y_code, decided_code = np.searchsorted(labels, y), np.searchsorted(labels, decided)
    if (y_code.max(initial=0) >= k or decided_code.max(initial=0) >= k or np.any(labels[y_code] != y)
            or np.any(labels[decided_code] != decided)):
        return None
    cells = y_code * k + decided_code
    return np.bincount(cells, minlength=k * k).reshape(k, k).astype(np.int64)


def _prf_from_counts(tp: np.ndarray, n_decided: np.ndarray, n_true: np.ndarray) -> tuple[np.ndarray, ...]:
    """Precision, recall and F1 per class as ``precision_recall_fscore_support(zero_division=nan)``."""
    with np.errstate(invalid="ignore", divide="ignore"):
        tp, n_decided, n_true = (np.asarray(v, dtype=float) for v in (tp, n_decided, n_true))
        precision = np.where(n_decided > 0, tp / np.where(n_decided > 0, n_decided, 1.0), np.nan)
        recall = np.where(n_true > 0, tp / np.where(n_true > 0, n_true, 1.0), np.nan)
        denominator = n_true + n_decided
        f1 = np.where(denominator > 0, 2.0 * tp / np.where(denominator > 0, denominator, 1.0), np.nan)
    return precision, recall, f1


def _nan_mean(values: np.ndarray) -> float:
    """Mean of the defined values (the macro average with ``zero_division=nan``); NaN when none is."""
    return float(np.nanmean(values)) if np.any(~np.isnan(values)) else math.nan


def _in_bit_order(values: np.ndarray) -> bool:
    """Whether ``values`` are all >= 0 (-0 included) and < 2: their bits, read as integers, are then in
    their order and fit in 62 bits."""
    return len(values) > 0 and bool(values.min() >= 0.0 and values.max() < 2.0)


def _roc_auc(is_positive: np.ndarray, score: np.ndarray) -> tuple[float, np.ndarray | None]:
    """ROC AUC as ``roc_auc_score`` (NaN with one class), and the scores sorted ascending (None if not sorted).

    The area under the ROC curve, whose trapezoids count tied scores half, is the
    Mann–Whitney statistic ``U / (n_positive * n_negative)`` with midranks for ties; ``U`` is
    computed in integers and divided once.
    """
    if not _in_bit_order(score):
        return _quiet(roc_auc_score, is_positive, score), None
    # One integer sort orders the scores and carries their labels in the spare low bit
    # (+ 0.0 turns -0.0 into 0.0, which it equals as a score).
    keys = np.add(score, 0.0).view(np.int64)
    keys <<= 1
    keys |= is_positive
    keys.sort()
    positive = keys & 1
    n = len(keys)
    n_positive = int(np.count_nonzero(positive))
    n_negative = n - n_positive
    keys >>= 1
    ranked = keys.view(np.float64)
    if n_positive == 0 or n_negative == 0:
        return math.nan, ranked
    tied = keys[1:] == keys[:-1]  # row i + 1 has the score of row i
    n_groups = n - int(np.count_nonzero(tied))
    if 4 * n_groups <= n:  # few distinct scores: count per score
        ends = np.append(np.flatnonzero(~tied), n - 1)  # last row of each score
        positive_up_to = np.cumsum(positive, out=positive)[ends]
        negative_up_to = ends + 1 - positive_up_to
        positive_at = np.diff(positive_up_to, prepend=0)
        twice_u = int(positive_at @ (negative_up_to + np.r_[0, negative_up_to[:-1]]))
    else:  # mostly distinct scores: twice the rank sum of the positives, midranks only where tied
        positive_rows = np.flatnonzero(positive)
        twice_ranks = 2 * int(positive_rows.sum())
        pairs = np.flatnonzero(tied)
        if len(pairs):
            rows = np.union1d(pairs, pairs + 1)  # the rows that share their score
            first = np.flatnonzero((rows == 0) | ~tied[np.maximum(rows - 1, 0)])  # each score's first row, in rows
            last = np.r_[first[1:], len(rows)] - 1
            in_group = np.add.reduceat(positive[rows], first)
            twice_ranks += int(in_group @ (rows[first] + rows[last])) - 2 * int(positive[rows] @ rows)
        twice_u = twice_ranks - n_positive * (n_positive - 1)  # exact: far below 2**63
    return twice_u / (2.0 * n_positive * n_negative), ranked


def _log_loss(is_positive: np.ndarray, score: np.ndarray) -> float:
    """Log loss as ``log_loss(labels=[False, True])``: NaN for scores outside [0, 1], each clipped to [eps, 1 - eps]."""
    if not (score.min() >= 0.0 and score.max() <= 1.0):
        return math.nan
    eps = np.finfo(float).eps
    chosen = np.subtract(1.0, score)
    np.copyto(chosen, score, where=is_positive)
    np.clip(chosen, eps, 1 - eps, out=chosen)
    return -float(np.mean(np.log(chosen, out=chosen)))


def _rows_in_score_order(score: np.ndarray, max_rows: int, rng: np.random.Generator, *,
                         ranked: np.ndarray | None = None, group_size: int | None = None) -> tuple[np.ndarray, float]:
    """Rows to bootstrap, in the order of a stable argsort of ``score`` (NaN last), and their interval's scale.

    The rows are ``np.argsort(score, kind="stable")[rows]`` with ``rows`` from
    :func:`_subsample` (the same draws), found without that argsort, which is slow on
    millions of rows: one integer sort of the scores' high bits with the row number in the
    low bits puts the rows in order, except among scores that share those high bits, and
    those few groups are sorted again. ``ranked`` (the finite scores ascending) tells which
    groups do.
    """
    n = len(score)
    rows, scale = _subsample(n, max_rows, rng, group_size)
    finite = np.isfinite(score)
    scored = None if finite.all() else np.flatnonzero(finite)  # None: every row
    unscored = np.flatnonzero(~finite) if scored is not None else np.array([], dtype=np.int64)
    values = score if scored is None else score[scored]
    if rows is None or not np.all(np.isnan(score[unscored])) or (len(values) and not _in_bit_order(values)):
        # small, or with infinite or negative scores
        order = np.argsort(score, kind="stable")
        return (order if rows is None else order[rows]), scale
    n_scored = len(values)
    chosen = np.empty(len(rows), dtype=np.int64)
    late = rows >= n_scored
    chosen[late] = unscored[rows[late] - n_scored]
    ranks = rows[~late]
    if len(ranks):
        if ranked is None:
            ranked = np.sort(values)
        shift = max(1, (n_scored - 1).bit_length())
        keys = np.add(values, 0.0).view(np.int64)
        keys >>= shift
        keys <<= shift
        keys |= np.arange(n_scored, dtype=np.int64)
        keys.sort()
        picked = keys[ranks] & ((1 << shift) - 1)
        high = keys[ranks] >> shift
        first = np.searchsorted(keys, high << shift)
        last = np.searchsorted(keys, (high + 1) << shift) - 1
        mixed = ranked[first] != ranked[last]  # distinct scores share these high bits: sort their rows again
        for start in np.unique(first[mixed]):
            group = keys[start:last[first == start][0] + 1] & ((1 << shift) - 1)
            group = group[np.argsort(values[group], kind="stable")]
            drawn = first == start
            picked[drawn] = group[ranks[drawn] - start]
        chosen[~late] = picked if scored is None else scored[picked]
    return chosen, scale


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
                        rng: np.random.Generator | None, max_bootstrap_rows: int = 2000,
                        group_size: int | None = None) -> dict[str, float]:
    """Metrics (and intervals when ``rng`` is given) of labelled rows ``y`` with decisions and scores.

    Accuracy, precision, recall and F1 are always in the row; ROC AUC, log loss and the
    bootstrap intervals only for ``metrics``. The generator draws the same numbers whichever
    metrics are asked for.
    """
    row: dict[str, float] = dict.fromkeys(metrics, math.nan)
    row.update({f"{m}_{b}": math.nan for m in metrics for b in ("low", "high")})
    n = len(y)
    if n == 0:
        return row
    binary = len(classes) == 2
    labels = np.asarray(classes, dtype=float)
    counts = confusion_counts(y, decided, classes)
    if counts is None:  # what scikit-learn would refuse or read otherwise: let it decide
        row["accuracy"] = accuracy_score(y, decided)
        correct = int((y == decided).sum())
    else:
        correct = int(np.trace(counts))
        row["accuracy"] = correct / n
    if binary:
        positive = labels[1]
        if counts is None:
            precision, recall, f1, _ = _quiet_prfs(y, decided, labels=labels, average="binary", pos_label=positive)
            tp = int(((y == positive) & (decided == positive)).sum())
            n_decided_positive, n_true_positive = int((decided == positive).sum()), int((y == positive).sum())
        else:
            tp, n_decided_positive, n_true_positive = int(counts[1, 1]), int(counts[:, 1].sum()), int(counts[1].sum())
            precision, recall, f1 = (float(v[0]) for v in _prf_from_counts(
                np.array([tp]), np.array([n_decided_positive]), np.array([n_true_positive])))
        intervals = {"accuracy": (correct, n), "precision": (tp, n_decided_positive),
                     "recall": (tp, n_true_positive)}
    else:
        if counts is None:
            precision, recall, f1, _ = _quiet_prfs(y, decided, labels=labels, average="macro")
        else:
            per_class = _prf_from_counts(np.diag(counts), counts.sum(axis=0), counts.sum(axis=1))
            precision, recall, f1 = (_nan_mean(v) for v in per_class)
        intervals = {"accuracy": (correct, n)}
    row.update(precision=precision, recall=recall, f1=f1)
    scored = np.isfinite(score)
    all_scored = bool(scored.all())
    ranked = None  # the scored scores in ascending order, once sorted for the ROC AUC
    score_metrics = [m for m in SCORE_METRICS if m in metrics]
    if score_metrics and (all_scored or scored.any()):
        is_positive = y == labels[1] if all_scored else y[scored] == labels[1]
        scores = score if all_scored else score[scored]
        if "roc_auc" in metrics:
            row["roc_auc"], ranked = _roc_auc(is_positive, scores)
        if "log_loss" in metrics:
            row["log_loss"] = _log_loss(is_positive, scores)
    if rng is None:
        return row
    for metric, (successes, trials) in intervals.items():
        low, high = wilson_interval(successes, trials, confidence=confidence)
        row[f"{metric}_low"], row[f"{metric}_high"] = float(low), float(high)
    bootstrapped = [m for m in (("f1", *score_metrics) if binary else ("precision", "recall", "f1")) if m in metrics]
    if not bootstrapped:
        _subsample(n, max_bootstrap_rows, rng, group_size)
        _bootstrap({}, min(n, max_bootstrap_rows), n_resamples=n_resamples, rng=rng, confidence=confidence)
        return row
    # Every statistic is invariant to the order of rows: they are taken in score order (unscored
    # last), so the ROC AUC of each resample is a cumulative sum over the scored prefix.
    chosen, scale = _rows_in_score_order(score, max_bootstrap_rows, rng, ranked=ranked, group_size=group_size)
    y, decided, score = y[chosen], decided[chosen], score[chosen]
    n_scored = int(np.isfinite(score).sum())
    statistics: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
    if binary:
        is_positive, decided_positive = y == labels[1], decided == labels[1]
        statistics["f1"] = lambda W: _weighted_f1_binary(W, is_positive, decided_positive)
        if n_scored >= 2:
            scored_positive, scored_score = is_positive[:n_scored], score[:n_scored]
            losses = _row_log_loss(scored_positive, scored_score)
            statistics["roc_auc"] = lambda W: _weighted_auc(W[:, :n_scored], scored_positive, scored_score)
            statistics["log_loss"] = lambda W: (W[:, :n_scored] @ losses) / W[:, :n_scored].sum(axis=1)
    else:
        for metric in ("precision", "recall", "f1"):
            statistics[metric] = lambda W, kind=metric: _weighted_macro(W, y, decided, labels, kind)
    intervals = _bootstrap({m: statistics[m] for m in bootstrapped if m in statistics}, len(y),
                           n_resamples=n_resamples, rng=rng, confidence=confidence, estimates=row, scale=scale)
    for metric, (low, high) in intervals.items():
        row[f"{metric}_low"], row[f"{metric}_high"] = low, high
    return row


def _quiet_prfs(y, decided, **kwargs) -> tuple[float, float, float, None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        precision, recall, f1, _ = precision_recall_fscore_support(y, decided, zero_division=np.nan, **kwargs)
    return float(precision), float(recall), float(f1), None


def _regression_row(y: np.ndarray, predicted: np.ndarray, *, confidence: float, n_resamples: int,
                    rng: np.random.Generator | None, max_bootstrap_rows: int = 2000,
                    group_size: int | None = None) -> dict[str, float]:
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
    rows, scale = _subsample(n, max_bootstrap_rows, rng, group_size)
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
                  rng: np.random.Generator | None = None, group_size: int | None = None) -> dict[str, float]:
    """Metrics of one group of labelled rows, with their intervals when ``rng`` is given.

    Parameters
    ----------
    y, predicted, score : ndarray of float of shape (n_rows,)
        Labels, logged predictions, and positive-class scores (NaN where not logged).
    task : {"classification", "regression"}
    classes : tuple of float
        Classes the model predicts (classification).
    metrics : tuple of str
        From :func:`metrics_for`, or some of them: ROC AUC, log loss and the bootstrap
        intervals are computed for these only (a metric's value and interval do not depend
        on the others asked for, and ``rng`` draws the same numbers whichever they are).
    confidence : float, default=0.95
        Coverage of the intervals.
    n_resamples : int, default=200
        Bootstrap resamples; 0 leaves the bootstrap intervals NaN.
    max_bootstrap_rows : int, default=2000
        Larger groups are bootstrapped on a subsample of this many rows, the interval rescaled.
    rng : numpy.random.Generator, optional
        Seeded generator of the bootstrap; None = values only, every interval NaN.
    group_size : int, optional
        When the rows are a uniform sample of a larger group (drawn where the log lives), that
        group's size: the bootstrap interval is narrowed to it as for a subsample. The values
        are still those of the rows given.

    Returns
    -------
    dict of str to float
        Per metric the value, ``<metric>_low`` and ``<metric>_high``; for two classes also
        ``label_rate`` (share of positive labels) and ``mean_score``; for regression
        ``mean_residual``.
    """
    if task == "regression":
        return _regression_row(y, predicted, confidence=confidence, n_resamples=n_resamples, rng=rng,
                               max_bootstrap_rows=max_bootstrap_rows, group_size=group_size)
    row = _classification_row(y, predicted, score, classes=classes, metrics=metrics, confidence=confidence,
                              n_resamples=n_resamples, rng=rng, max_bootstrap_rows=max_bootstrap_rows,
                              group_size=group_size)
    if len(classes) == 2:
        row["label_rate"] = float(np.mean(y == classes[1])) if len(y) else math.nan
        finite = np.isfinite(score)
        scored = score if finite.all() else score[finite]
        row["mean_score"] = float(scored.mean()) if len(scored) else math.nan
    return row
