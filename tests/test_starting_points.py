"""What-if's starting points: most recent, most uncertain and largest error, from a real store's log."""

import numpy as np
import pandas as pd
import pytest

from explain.starting_points import prediction_error, starting_points, uncertainty
from monitoring.production import PredictionLogMirror

NOW = 1_800_000_000.0


def log(store, name: str, **columns) -> PredictionLogMirror:
    n = len(next(iter(columns.values())))
    frame = pd.DataFrame({"id": [f"p{i}" for i in range(n)], "ts": NOW - 3600.0 * (n - np.arange(n)),
                          "x": np.arange(n, dtype=float), **columns})
    store.prediction_table(name, {"x": "numeric"})
    store.log_predictions(name, frame)
    return PredictionLogMirror(store, name)


def test_most_recent_comes_first(store):
    logged = log(store, "svc", prediction=[0.0, 1.0, 0.0, 1.0])
    points = starting_points("recent", logged=logged, now=NOW, limit=2)
    assert list(points.rows["id"]) == ["p3", "p2"] and points.note is None


def test_most_uncertain_binary_is_the_score_nearest_a_half(store):
    logged = log(store, "svc", prediction=[1.0, 0.0, 1.0, 0.0], score=[0.97, 0.45, 0.52, 0.10])
    points = starting_points("uncertain", logged=logged, now=NOW, limit=3)
    assert list(points.rows["id"]) == ["p2", "p1", "p3"]  # |score - 0.5|: 0.02, 0.05, 0.40 (p0: 0.47)


def test_most_uncertain_multiclass_is_the_smallest_margin_between_the_two_likeliest_classes(store):
    logged = log(store, "svc", prediction=[0.0, 1.0, 2.0],
                 probabilities=[[0.8, 0.1, 0.1], [0.1, 0.45, 0.45], [0.2, 0.3, 0.5]])
    points = starting_points("uncertain", logged=logged, now=NOW, limit=3)
    assert list(points.rows["id"]) == ["p1", "p2", "p0"]
    frame = logged.find(limit=3, newest_first=False)
    np.testing.assert_allclose(uncertainty(frame), [0.3, 1.0, 0.8])


def test_uncertain_without_scores_and_for_regression_says_why(store):
    logged = log(store, "labels-only", prediction=[0.0, 1.0])
    points = starting_points("uncertain", logged=logged, now=NOW)
    assert points.rows.empty and "score or class probabilities" in points.note
    points = starting_points("uncertain", logged=logged, now=NOW, task="regression")
    assert points.rows.empty and "regression" in points.note


def test_largest_error_is_the_least_probable_true_class_or_the_largest_difference(store):
    logged = log(store, "svc", prediction=[1.0, 0.0, 1.0], score=[0.9, 0.4, 0.6])
    labeled = logged.read().frame.assign(label=[0.0, 0.0, 1.0])
    points = starting_points("error", logged=logged, now=NOW, labeled=labeled)
    assert list(points.rows["id"]) == ["p0", "p1", "p2"]  # P(true) 0.1, 0.6, 0.6
    np.testing.assert_allclose(prediction_error(labeled, task="classification"), [0.9, 0.4, 0.4])
    values = pd.DataFrame({"prediction": [10.0, 12.0], "label": [11.0, 20.0]})
    np.testing.assert_allclose(prediction_error(values, task="regression"), [1.0, 8.0])


def test_largest_error_without_labels_says_so(store):
    logged = log(store, "svc", prediction=[1.0])
    points = starting_points("error", logged=logged, now=NOW, labeled=logged.read().frame.assign(label=np.nan))
    assert points.rows.empty and "label" in points.note
    with pytest.raises(ValueError, match="kind must be one of"):
        starting_points("oldest", logged=logged, now=NOW)
