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


def _compare(root, predictions: pd.DataFrame, labels: pd.DataFrame, *, now: float, parts: int = 3):
    """The engine's join of these rows (written in ``parts`` files each) after checking it equals the join in memory."""
    log = PartitionedLog(root)
    for part in np.array_split(np.arange(len(predictions)), parts):
        log.append("svc", "predictions", predictions.iloc[part])
    for part in np.array_split(np.arange(len(labels)), parts):
        log.append("svc", "labels", labels.iloc[part])
    engine = LogEngine(f"duckdb:{root}")
    written = engine.table("svc", "labels", in_order=True).table
    pushed = join_labels_in_engine(engine.connect(), engine.table("svc", in_order=True).table, written, now=now)
    ordered = engine.execute(written.order_by(["filename", "file_row_number"]))[["prediction_id", "ts", "label"]]
    direct = join_labels(predictions, ordered, now=now)
    assert (pushed.task, pushed.classes) == (direct.task, direct.classes)
    assert pushed.quality == direct.quality
    labelled = direct.frame[direct.frame["label"].notna()].reset_index(drop=True)
    pd.testing.assert_frame_equal(pushed.frame, labelled, check_dtype=False)
    assert pushed.served_hours["n"].sum() == len(predictions)
    return pushed


def _served(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = START + np.sort(rng.uniform(0, 2 * DAY, n))
    return pd.DataFrame({"id": [f"p{i}" for i in range(n)], "ts": ts, "prediction": rng.integers(0, 3, n) * 1.0})


def test_labels_one_per_prediction_are_joined_without_ranking_them(tmp_path, monkeypatch):
    import monitoring.label_queries as label_queries

    predictions = _served(2_000, seed=3)
    rng = np.random.default_rng(4)
    chosen = rng.choice(len(predictions), 1_200, replace=False)
    labels = pd.DataFrame({"prediction_id": predictions["id"].to_numpy()[chosen],
                           "ts": predictions["ts"].to_numpy()[chosen] + rng.uniform(60, DAY, len(chosen)),
                           "label": rng.integers(0, 3, len(chosen)) * 1.0})
    labels.loc[:7, "ts"] = START + DAY
    labels.loc[:4, "label"] = 5.0  # a class the model never predicts
    labels.loc[5:7, "prediction_id"] = ["nobody-1", "nobody-2", None]  # unmatched twice, invalid once
    kept = []
    keep = label_queries._kept
    monkeypatch.setattr(label_queries, "_kept", lambda backend, expression, **options: kept.append(expression) or keep(
        backend, expression, **options))
    joined = _compare(tmp_path, predictions, labels, now=START + 2 * DAY)
    quality = joined.quality
    assert quality.duplicates == 0 and "duplicates" not in quality.examples
    assert (quality.unmatched, quality.invalid, quality.unknown_class) == (2, 1, 5) and quality.pending > 0
    assert len(kept) == 1  # the label-prediction pairs only: no ranking


def test_a_few_ids_with_more_than_one_label_are_ranked_as_in_memory(tmp_path):
    predictions = _served(3_000, seed=5)
    again = predictions.iloc[[11, 12]].assign(ts=lambda f: f["ts"] + 600.0, prediction=9.0)  # logged twice
    predictions = pd.concat([predictions, again]).sort_values("ts", kind="stable").reset_index(drop=True)
    rng = np.random.default_rng(6)
    ids = [f"p{i}" for i in rng.choice(np.arange(20, 3_000), 1_500, replace=False)]
    labels = pd.DataFrame({"prediction_id": ids, "ts": START + rng.uniform(DAY, 2 * DAY, len(ids)),
                           "label": rng.integers(0, 3, len(ids)) * 1.0})
    at = START + 1.5 * DAY
    extra = pd.DataFrame([  # each id's labels in the order written
        ("p1", at, 0.0), ("p1", at + 5, 1.0), ("p1", at - 5, 2.0),  # three: the latest wins
        ("p2", at, 0.0), ("p2", at, 2.0),  # the same arrival: the one written last wins
        ("p3", np.nan, 1.0), ("p3", at, 0.0), ("p3", np.nan, 2.0),  # without an arrival: before every timed one
        ("p4", np.nan, 1.0), ("p4", np.nan, 0.0),  # neither timed: the one written last
        ("p5", at, 0.0), ("p5", at + 9, 7.0),  # the latest of an unknown class: counted, not used
        ("p6", at, 7.0), ("p6", at + 9, 1.0),  # an unknown class replaced: used
        ("p11", at, 1.0), ("p11", at + 1, 2.0),  # logged twice and labelled twice: its first prediction
        ("p12", at, 2.0),  # logged twice, labelled once
        ("p7", at + 3 * DAY, 1.0), ("p7", at, 0.0),  # a second label still to arrive
    ], columns=["prediction_id", "ts", "label"])
    labels = pd.concat([labels.iloc[:700], extra, labels.iloc[700:]], ignore_index=True)
    joined = _compare(tmp_path, predictions, labels, now=START + 2.5 * DAY)
    quality = joined.quality
    assert quality.duplicates == 2 + 1 + 2 + 1 + 1 + 1 + 1 and quality.unknown_class == 1 and quality.pending == 1
    assert len(quality.examples["duplicates"]) == 3
    used = joined.frame.set_index("id")["label"]
    assert (used["p1"], used["p2"], used["p3"], used["p4"], used["p6"], used["p11"]) == (1.0, 2.0, 0.0, 0.0, 1.0,
                                                                                          2.0)
    assert "p5" not in used.index and used["p12"] == 2.0


def test_rows_are_put_in_time_then_id_order_as_pandas_sorts_them():
    from monitoring.label_queries import _in_time_order

    rng = np.random.default_rng(8)
    frame = pd.DataFrame({"id": [f"p{i}" for i in rng.permutation(500)], "ts": rng.uniform(0, 1e6, 500),
                          "label": rng.uniform(size=500)})
    for ts in (frame["ts"], frame["ts"].round(-5), frame["ts"].where(frame.index != 3),
               frame["ts"].where(frame.index % 100 != 0), frame["ts"].where(frame.index != 3, np.inf)):
        shuffled = frame.assign(ts=ts)
        pd.testing.assert_frame_equal(_in_time_order(shuffled),
                                      shuffled.sort_values(["ts", "id"], kind="stable").reset_index(drop=True))


def test_spark_ranks_the_few_repeated_labels_as_in_memory(tmp_path):
    import shutil

    if shutil.which("java") is None:  # a missing Java must not pass as a skipped test
        pytest.fail("Spark local mode needs Java: run tests/install.sh (Debian's openjdk-17-jre-headless)")
    predictions = _served(1_000, seed=9)
    again = predictions.iloc[[11]].assign(ts=lambda f: f["ts"] + 600.0, prediction=9.0)  # logged twice
    predictions = pd.concat([predictions, again]).sort_values("ts", kind="stable").reset_index(drop=True)
    rng = np.random.default_rng(10)
    ids = [f"p{i}" for i in rng.choice(np.arange(20, 1_000), 500, replace=False)]
    labels = pd.DataFrame({"prediction_id": ids, "ts": START + rng.uniform(DAY, 2 * DAY, len(ids)),
                           "label": rng.integers(0, 3, len(ids)) * 1.0})
    at = START + 1.5 * DAY  # Spark has no order written, so no two labels here arrive at once
    extra = pd.DataFrame([("p1", at, 0.0), ("p1", at + 5, 1.0), ("p1", at - 5, 2.0), ("p3", np.nan, 1.0),
                          ("p3", at + 1, 0.0), ("p5", at + 2, 0.0), ("p5", at + 9, 7.0), ("p11", at + 3, 1.0),
                          ("p11", at + 4, 2.0), ("nobody", at, 1.0), (None, at, 1.0)],
                         columns=["prediction_id", "ts", "label"])
    labels = pd.concat([labels.iloc[:200], extra, labels.iloc[200:]], ignore_index=True)
    log = PartitionedLog(tmp_path)
    log.append("svc", "predictions", predictions)
    log.append("svc", "labels", labels)
    spark = LogEngine(f"spark:local[2]?path={tmp_path}")
    try:
        backend = spark.connect()
        spark.session.conf.set("spark.sql.shuffle.partitions", "2")  # a small log: seconds, not a minute
        pushed = join_labels_in_engine(backend, spark.table("svc").table, spark.table("svc", "labels").table,
                                       now=START + 2.5 * DAY)
    finally:
        if spark.session is not None:
            spark.session.stop()
    direct = join_labels(predictions, labels, now=START + 2.5 * DAY)
    assert pushed.quality == direct.quality and pushed.quality.duplicates == 5 and pushed.quality.unknown_class == 1
    pd.testing.assert_frame_equal(pushed.frame, direct.frame[direct.frame["label"].notna()].reset_index(drop=True),
                                  check_dtype=False)
