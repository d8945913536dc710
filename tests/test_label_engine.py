"""The label join where the log lives gives what the join in memory gives, holding only the labelled rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitoring.label_queries import join_labels_in_engine
from monitoring.labels import join_labels
from monitoring.log_engines import LogEngine
from monitoring.partitions import PartitionedLog

START = 1_767_225_600.0  # 2026-01-01 00:00 UTC
DAY = 86_400.0


def _log(root, *, kind: str, n: int = 3_000, seed: int = 0):
    """Predictions over four days, and labels with every problem the join counts."""
    rng = np.random.default_rng(seed)
    ts = START + np.sort(rng.uniform(0, 4 * DAY, n))
    if kind == "regression":
        prediction, score = rng.normal(40.0, 8.0, n), np.full(n, np.nan)
    elif kind == "multiclass":
        prediction, score = rng.integers(0, 3, n).astype(float), np.full(n, np.nan)
    else:
        score = rng.uniform(size=n)
        prediction = (score >= 0.5).astype(float)
    predictions = pd.DataFrame({"id": [f"p{i}" for i in range(n)], "ts": ts, "prediction": prediction,
                                "score": score, "amount": rng.gamma(2.0, 30.0, n)})
    again = predictions.iloc[[7]].assign(ts=ts[7] + DAY, prediction=prediction[8])  # an id logged twice
    predictions = pd.concat([predictions, again]).sort_values("ts", kind="stable").reset_index(drop=True)
    chosen = np.append(rng.choice(np.arange(8, n), n // 2, replace=False), 7)
    truth = (rng.normal(40.0, 8.0, len(chosen)) if kind == "regression"
             else rng.integers(0, 3 if kind == "multiclass" else 2, len(chosen)).astype(float))
    labels = pd.DataFrame({"prediction_id": [f"p{i}" for i in chosen],
                           "ts": ts[chosen] + rng.uniform(60, 2 * DAY, len(chosen)), "label": truth})
    free = [f"p{i}" for i in sorted(set(range(n)) - set(chosen.tolist()) - {7})[:5]]  # no label yet
    extra = pd.DataFrame({  # unmatched twice, no id, padded id, twice the same, pending, too long, no time, odd class
        "prediction_id": ["nobody-1", "nobody-2", None, f"  {free[0]}  ", free[1], free[1], free[2], "x" * 70,
                          free[3], free[4]],
        "ts": [START + DAY, START + DAY, START + DAY, START + DAY, START + 2 * DAY, START + 3 * DAY,
               START + 9 * DAY, START + DAY, np.nan, START + DAY],
        "label": [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 7.0 if kind != "regression" else np.nan]})
    labels = pd.concat([labels, extra], ignore_index=True)
    log = PartitionedLog(root)
    for part in np.array_split(np.arange(len(predictions)), 3):
        log.append("svc", "predictions", predictions.iloc[part])
    for part in np.array_split(np.arange(len(labels)), 4):
        log.append("svc", "labels", labels.iloc[part])
    return predictions, labels


def _both_joins(root, *, kind: str, now: float):
    """The engine's join and the join in memory of the same log; and the logged predictions."""
    predictions, _ = _log(root, kind=kind)
    engine = LogEngine(f"duckdb:{root}")
    written = engine.table("svc", "labels", in_order=True).table
    pushed = join_labels_in_engine(engine.connect(), engine.table("svc", in_order=True).table, written, now=now)
    ordered = engine.execute(written.order_by(["filename", "file_row_number"]))[["prediction_id", "ts", "label"]]
    return pushed, join_labels(predictions, ordered, now=now), predictions


@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression"])
def test_the_engines_label_join_equals_the_join_in_memory(tmp_path, kind):
    pushed, direct, predictions = _both_joins(tmp_path, kind=kind, now=START + 5 * DAY)
    assert (pushed.task, pushed.classes) == (direct.task, direct.classes)
    assert pushed.quality == direct.quality
    quality = pushed.quality
    assert quality.unmatched == 2 and quality.duplicates == 1 and quality.pending >= 1
    assert (quality.invalid, quality.unknown_class) == ((3, 0) if kind == "regression" else (2, 1))  # NaN label
    labelled = direct.frame[direct.frame["label"].notna()].reset_index(drop=True)
    pd.testing.assert_frame_equal(pushed.frame, labelled, check_dtype=False)
    assert pushed.served_hours["n"].sum() == len(predictions)
    assert pushed.n_labelled == direct.n_labelled
    assert pushed.median_delay_seconds == pytest.approx(direct.median_delay_seconds)


def test_without_labels_the_engine_counts_the_served_predictions_only(tmp_path):
    predictions, _ = _log(tmp_path, kind="binary")
    engine = LogEngine(f"duckdb:{tmp_path}")
    joined = join_labels_in_engine(engine.connect(), engine.table("svc").table, None, now=START + 5 * DAY)
    assert joined.n_labelled == 0 and joined.quality.received == 0 and joined.classes == (0.0, 1.0)
    assert joined.served_hours["n"].sum() == len(predictions)


@pytest.mark.parametrize("window", ["hour", "day", "week"])
def test_performance_from_the_engines_join_equals_performance_from_every_row(tmp_path, window):
    from monitoring.performance import Baseline, decisions_over_time, judged_verdict, performance_over_time

    pushed, direct, predictions = _both_joins(tmp_path, kind="binary", now=START + 5 * DAY)
    for since in (None, START + DAY):
        engine_result = performance_over_time(pushed, window=window, since=since, n_bootstrap=20)
        memory_result = performance_over_time(direct, window=window, since=since, n_bootstrap=20)
        pd.testing.assert_frame_equal(engine_result.windows, memory_result.windows)
        pd.testing.assert_series_equal(engine_result.overall, memory_result.overall)
        assert engine_result.windows["n_predictions"].sum() < len(predictions) or since is None
    pd.testing.assert_frame_equal(decisions_over_time(pushed, window=window).windows,
                                  decisions_over_time(direct, window=window).windows)
    verdicts = [judged_verdict(joined, performance_over_time(joined, window="day", n_bootstrap=20), metric="accuracy",
                               baseline=Baseline(values={"accuracy": 0.5}), days=3) for joined in (pushed, direct)]
    assert verdicts[0] == verdicts[1]


def test_windows_of_a_number_of_predictions_say_they_need_every_row(tmp_path):
    from monitoring.performance import performance_over_time

    _log(tmp_path, kind="binary")
    engine = LogEngine(f"duckdb:{tmp_path}")
    pushed = join_labels_in_engine(engine.connect(), engine.table("svc").table, engine.table("svc", "labels").table,
                                   now=START + 5 * DAY)
    with pytest.raises(ValueError, match="need every logged row"):
        performance_over_time(pushed, window=500)
