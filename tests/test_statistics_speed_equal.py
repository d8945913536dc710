"""The fast metrics of :mod:`monitoring.statistics` equal the scikit-learn computation they replace.

``reference_row`` is the per-group computation as it was written on scikit-learn's metrics
and a full stable ``argsort`` of the scores; the module computes the same values from
confusion counts and one sort, and picks the same bootstrap subsample without sorting every
row. Both must agree on the awkward groups (one class, nothing decided positive, NaN or
tied scores, three classes, scores outside [0, 1]) and through the whole Performance path.
"""

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import accuracy_score, log_loss, precision_recall_fscore_support, roc_auc_score

from monitoring import statistics
from monitoring.labels import join_labels
from monitoring.performance import Baseline, judged_verdict, performance_over_time
from monitoring.statistics import (
    _bootstrap,
    _row_log_loss,
    _subsample,
    _weighted_auc,
    _weighted_f1_binary,
    _weighted_macro,
    group_metrics,
    metrics_for,
    wilson_interval,
)

TOLERANCE = 1e-12
DAY = 86400.0
START = 1_700_006_400.0  # a midnight UTC


def _quiet(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            return float(function(*args, **kwargs))
        except ValueError:
            return math.nan


def _prfs(y, decided, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        precision, recall, f1, _ = precision_recall_fscore_support(y, decided, zero_division=np.nan, **kwargs)
    return float(precision), float(recall), float(f1)


def reference_row(y, decided, score, *, classes, metrics, confidence=0.95, n_resamples=200, rng=None,
                  max_bootstrap_rows=2000):
    """The classification row on scikit-learn's metrics and a stable argsort of every score."""
    row = dict.fromkeys(metrics, math.nan)
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
        precision, recall, f1 = _prfs(y, decided, labels=labels, average="binary", pos_label=positive)
        tp = int(((y == positive) & (decided == positive)).sum())
        intervals = {"accuracy": (correct, n), "precision": (tp, int((decided == positive).sum())),
                     "recall": (tp, int((y == positive).sum()))}
    else:
        precision, recall, f1 = _prfs(y, decided, labels=labels, average="macro")
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
    order = np.argsort(score, kind="stable")
    y, decided, score = y[order], decided[order], score[order]
    rows, scale = _subsample(n, max_bootstrap_rows, rng)
    if rows is not None:
        y, decided, score = y[rows], decided[rows], score[rows]
    n_scored = int(np.isfinite(score).sum())
    stats = {}
    if binary:
        is_positive, decided_positive = y == labels[1], decided == labels[1]
        stats["f1"] = lambda W: _weighted_f1_binary(W, is_positive, decided_positive)
        if "roc_auc" in metrics and n_scored >= 2:
            scored_positive, scored_score = is_positive[:n_scored], score[:n_scored]
            losses = _row_log_loss(scored_positive, scored_score)
            stats["roc_auc"] = lambda W: _weighted_auc(W[:, :n_scored], scored_positive, scored_score)
            stats["log_loss"] = lambda W: (W[:, :n_scored] @ losses) / W[:, :n_scored].sum(axis=1)
    else:
        for metric in ("precision", "recall", "f1"):
            stats[metric] = lambda W, kind=metric: _weighted_macro(W, y, decided, labels, kind)
    for metric, (low, high) in _bootstrap(stats, len(y), n_resamples=n_resamples, rng=rng, confidence=confidence,
                                          estimates=row, scale=scale).items():
        row[f"{metric}_low"], row[f"{metric}_high"] = low, high
    return row


def assert_rows_equal(got, expected):
    assert set(got) == set(expected)
    for key, value in expected.items():
        if isinstance(value, float) and math.isnan(value):
            assert isinstance(got[key], float) and math.isnan(got[key]), key
        else:
            assert got[key] == pytest.approx(value, rel=TOLERANCE, abs=TOLERANCE), key


def _binary(n, seed, *, decimals=3):
    rng = np.random.default_rng(seed)
    score = rng.beta(2, 3, n)
    score = score.round(decimals) if decimals is not None else score
    y = (rng.random(n) < score).astype(float)
    return y, (score >= 0.5).astype(float), score


def _cases():
    """(name, y, decided, score, classes) of the awkward groups."""
    y, decided, score = _binary(3000, 1)
    one = np.ones(3000)
    nan_scores = score.copy()
    nan_scores[::7] = np.nan
    three = np.random.default_rng(2).integers(0, 3, 3000).astype(float)
    guessed = np.where(np.random.default_rng(3).random(3000) < 0.6, three,
                       np.random.default_rng(4).integers(0, 3, 3000))
    two_of_three = np.where(three == 2, 1.0, three)
    odd_scores = score.copy()
    odd_scores[:5] = [1.5, -0.2, 0.0, 1.0, -0.0]
    signed_zeros = np.where(score < 0.3, np.where(np.arange(3000) % 2, 0.0, -0.0), score)
    infinite = score.copy()
    infinite[[3, 50, 700]] = [np.inf, -np.inf, np.inf]
    return [
        ("binary with ties", y, decided, score, (0.0, 1.0)),
        ("continuous scores", *_binary(3000, 5, decimals=None), (0.0, 1.0)),
        ("one class of label", one, decided, score, (0.0, 1.0)),
        ("no label of the positive class", 0 * one, decided, score, (0.0, 1.0)),
        ("nothing decided positive", y, 0 * one, score, (0.0, 1.0)),
        ("everything decided positive", y, one, score, (0.0, 1.0)),
        ("some NaN scores", y, decided, nan_scores, (0.0, 1.0)),
        ("no score", y, decided, np.full(3000, np.nan), (0.0, 1.0)),
        ("one score value", y, decided, np.full(3000, 0.4), (0.0, 1.0)),
        ("two score values", y, decided, np.where(score > 0.4, 0.9, 0.1), (0.0, 1.0)),
        ("scores outside [0, 1] and at its ends", y, decided, odd_scores, (0.0, 1.0)),
        ("signed zeros tied", y, decided, signed_zeros, (0.0, 1.0)),
        ("infinite scores", y, decided, infinite, (0.0, 1.0)),
        ("classes 1 and 2", y + 1, decided + 1, score, (1.0, 2.0)),
        ("classes -1 and 1", 2 * y - 1, 2 * decided - 1, score, (-1.0, 1.0)),
        ("three classes", three, guessed.astype(float), np.full(3000, np.nan), (0.0, 1.0, 2.0)),
        ("three classes, two seen", two_of_three, two_of_three[::-1].copy(), np.full(3000, np.nan), (0.0, 1.0, 2.0)),
        ("three classes, one seen", 0 * one, 0 * one, np.full(3000, np.nan), (0.0, 1.0, 2.0)),
        ("one row", y[:1], decided[:1], score[:1], (0.0, 1.0)),
        ("two rows", y[:2], decided[:2], score[:2], (0.0, 1.0)),
    ]


@pytest.mark.parametrize("max_rows", [2000, 500, 3000])
@pytest.mark.parametrize(("name", "y", "decided", "score", "classes"), _cases(), ids=[c[0] for c in _cases()])
def test_a_group_equals_the_scikit_learn_computation(name, y, decided, score, classes, max_rows):
    metrics = metrics_for("classification", classes, has_score=True)
    options = {"classes": classes, "metrics": metrics, "n_resamples": 60, "max_bootstrap_rows": max_rows}
    expected = reference_row(y, decided, score, rng=np.random.default_rng(7), **options)
    got = statistics._classification_row(y, decided, score, rng=np.random.default_rng(7), confidence=0.95, **options)
    assert_rows_equal(got, expected)
    assert_rows_equal(statistics._classification_row(y, decided, score, rng=None, confidence=0.95, **options),
                      reference_row(y, decided, score, rng=None, **options))


def test_an_empty_group_and_classes_scikit_learn_refuses():
    metrics = metrics_for("classification", (0.0, 1.0))
    empty = np.array([])
    assert_rows_equal(group_metrics(empty, empty, empty, task="classification", classes=(0.0, 1.0), metrics=metrics,
                                    rng=np.random.default_rng(0)),
                      {**reference_row(empty, empty, empty, classes=(0.0, 1.0), metrics=metrics),
                       "label_rate": math.nan, "mean_score": math.nan})
    halves = np.array([0.5, 1.5, 0.5, 1.5])
    with pytest.raises(ValueError, match="continuous"):
        group_metrics(halves, halves[::-1], np.full(4, 0.5), task="classification", classes=(0.5, 1.5),
                      metrics=metrics, rng=np.random.default_rng(0))


def _frame_log(n, days, *, seed=0, labelled_share=0.8, nan_score_share=0.05, decimals=3):
    rng = np.random.default_rng(seed)
    ts = np.sort(START + rng.uniform(0, days * DAY, n))
    score = rng.beta(2, 3, n).round(decimals)
    label = (rng.random(n) < score).astype(float)
    ids = [f"p{i}" for i in range(n)]
    score_logged = np.where(rng.random(n) < nan_score_share, np.nan, score)
    predictions = pd.DataFrame({"id": ids, "ts": ts, "prediction": (score >= 0.5).astype(float),
                                "score": score_logged})
    keep = rng.random(n) < labelled_share
    labels = pd.DataFrame({"prediction_id": np.asarray(ids)[keep], "ts": ts[keep] + 3600, "label": label[keep]})
    return join_labels(predictions, labels, now=START + days * DAY - 5 * 3600)


@pytest.mark.parametrize("metric", ["accuracy", "f1", "roc_auc", "log_loss", "precision"])
def test_performance_over_time_and_the_verdict_equal_the_scikit_learn_computation(monkeypatch, metric):
    labeled = _frame_log(40_000, 9, seed=3)
    baseline = Baseline(values={"accuracy": 0.8, "precision": 0.7, "f1": 0.7, "roc_auc": 0.8, "log_loss": 0.5},
                        source="test")
    options = {"window": "day", "max_bootstrap_rows": 700, "n_bootstrap": 40, "since": START + DAY / 3}

    def run():
        performance = performance_over_time(labeled, baseline=baseline, **options)
        verdict = judged_verdict(labeled, performance, metric=metric, baseline=baseline, n_bootstrap=40)
        return performance, verdict

    performance, verdict = run()

    def reference(y, decided, score, *, metrics, group_size=None, **options):
        assert group_size is None  # every row of the group is given
        if len(metrics) == 1:  # the verdict asks for its metric only; it used to compute every one
            metrics = metrics_for("classification", options["classes"], has_score=bool(np.isfinite(score).any()))
        return reference_row(y, decided, score, metrics=metrics, **options)

    monkeypatch.setattr(statistics, "_classification_row", reference)
    expected_performance, expected_verdict = run()
    pd.testing.assert_frame_equal(performance.windows, expected_performance.windows, rtol=TOLERANCE, atol=TOLERANCE)
    assert_rows_equal({k: float(v) for k, v in performance.overall.items()},
                      {k: float(v) for k, v in expected_performance.overall.items()})
    assert verdict.state == expected_verdict.state and verdict.worse_since == expected_verdict.worse_since
    assert verdict.message == expected_verdict.message
    for field in ("value", "low", "high", "n_labelled"):
        assert getattr(verdict, field) == pytest.approx(getattr(expected_verdict, field), rel=TOLERANCE,
                                                        abs=TOLERANCE, nan_ok=True)


def _awkward_scores():
    rng = np.random.default_rng(11)
    continuous = rng.beta(2, 3, 20_000)
    close = 0.5 + rng.integers(0, 40, 20_000) * 1e-13  # distinct scores that share their high bits
    mixed = np.where(rng.random(20_000) < 0.1, np.nan, rng.beta(2, 3, 20_000).round(2))
    mixed[rng.random(20_000) < 0.05] = -0.0
    return {"continuous": continuous, "tied": continuous.round(3), "close": close,
            "close and continuous": np.where(rng.random(20_000) < 0.5, close, continuous),
            "NaN and signed zeros": mixed, "all NaN": np.full(20_000, np.nan),
            "negative": rng.normal(size=20_000), "infinite": np.r_[continuous[:-3], np.inf, -np.inf, np.nan]}


@pytest.mark.parametrize("name", list(_awkward_scores()))
@pytest.mark.parametrize("max_rows", [300, 5000, 30_000])
def test_rows_to_bootstrap_are_those_of_a_stable_argsort(name, max_rows):
    score = _awkward_scores()[name]
    expected_rows, expected_scale = _subsample(len(score), max_rows, np.random.default_rng(5))
    order = np.argsort(score, kind="stable")
    expected = order if expected_rows is None else order[expected_rows]
    chosen, scale = statistics._rows_in_score_order(score, max_rows, np.random.default_rng(5))
    np.testing.assert_array_equal(chosen, expected)
    assert scale == expected_scale
    finite = score[np.isfinite(score)]
    if len(finite) and finite.min() >= 0:
        _, ranked = statistics._roc_auc(np.arange(len(finite)) % 3 == 0, finite)
        chosen, _ = statistics._rows_in_score_order(score, max_rows, np.random.default_rng(5), ranked=ranked)
        np.testing.assert_array_equal(chosen, expected)


@pytest.mark.parametrize("classes", [(0.0, 1.0), (0.0, 1.0, 2.0)])
@pytest.mark.parametrize("max_rows", [400, 5000])
def test_asking_for_one_metric_gives_its_values_of_the_full_row_on_the_same_draws(classes, max_rows):
    if len(classes) == 2:
        y, decided, score = _binary(3000, 9)
    else:
        rng = np.random.default_rng(9)
        y, decided, score = rng.integers(0, 3, 3000).astype(float), rng.integers(0, 3, 3000).astype(float), \
            np.full(3000, np.nan)
    metrics = metrics_for("classification", classes, has_score=True)
    options = {"task": "classification", "classes": classes, "n_resamples": 50, "max_bootstrap_rows": max_rows}
    full_rng = np.random.default_rng(3)
    full = group_metrics(y, decided, score, metrics=metrics, rng=full_rng, **options)
    for metric in metrics:
        one_rng = np.random.default_rng(3)
        one = group_metrics(y, decided, score, metrics=(metric,), rng=one_rng, **options)
        for key in (metric, f"{metric}_low", f"{metric}_high"):
            assert one[key] == full[key] or (math.isnan(one[key]) and math.isnan(full[key])), key
        assert one_rng.bit_generator.state == full_rng.bit_generator.state  # a shared generator goes on alike


def test_the_roc_auc_of_one_sort_equals_scikit_learns_however_the_scores_tie():
    rng = np.random.default_rng(0)
    for trial in range(200):
        n = int(rng.integers(2, 2000))
        distinct = int(rng.choice([1, 2, 3, 10, 100, n, 10 * n]))
        score = rng.random(n) if trial % 3 == 0 else rng.integers(0, distinct, n) / distinct
        y = rng.random(n) < rng.random()
        auc, ranked = statistics._roc_auc(y, score)
        np.testing.assert_array_equal(ranked, np.sort(score))
        if y.all() or not y.any():
            assert math.isnan(auc)
        else:
            assert auc == pytest.approx(roc_auc_score(y, score), rel=TOLERANCE, abs=TOLERANCE)
