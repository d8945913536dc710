"""The Overview's results from sums per day (monitoring.label_summary) equal those from every labelled row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitoring.baseline import Baseline
from monitoring.label_queries import summarize_labeled, summarize_labels_in_engine
from monitoring.label_summary import (
    SLICE_COLUMNS,
    summary_decisions,
    summary_performance,
    summary_verdict,
)
from monitoring.labels import LabeledPredictions, LabelQuality, join_labels
from monitoring.log_engines import LogEngine
from monitoring.log_queries import log_traffic
from monitoring.performance import BusinessValues, decisions_over_time, judged_verdict, performance_over_time
from tests.test_label_engine import DAY, START, _log

NOW = START + 3.5 * DAY  # predictions are logged until START + 4 days: some after now
JUDGED_DAYS = 2.0  # the judged period starts at START + 1.5 days, inside a day


def _summaries(root, *, kind: str, sample_rows: int = 2000, threshold: float | None = 0.5):
    """The engine's summary, the summary of the join in memory, and that join."""
    predictions, _ = _log(root, kind=kind)
    engine = LogEngine(f"duckdb:{root}")
    written = engine.table("svc", "labels", in_order=True).table
    pushed = summarize_labels_in_engine(engine.connect(), engine.table("svc", in_order=True).table, written,
                                        now=NOW, judged_days=JUDGED_DAYS, threshold=threshold,
                                        sample_rows=sample_rows)
    ordered = engine.execute(written.order_by(["filename", "file_row_number"]))[["prediction_id", "ts", "label"]]
    joined = join_labels(predictions, ordered, now=NOW)
    return pushed, summarize_labeled(joined, judged_days=JUDGED_DAYS, threshold=threshold,
                                     sample_rows=sample_rows), joined


def test_slices_are_days_cut_at_the_judged_periods_start_and_at_now():
    cut, now = START + 1.5 * DAY, START + 3.25 * DAY
    ts = np.array([START + 0.2 * DAY, START + 1.4 * DAY, cut, START + 1.9 * DAY, START + 2.1 * DAY, now - 1, now,
                   now + 5])
    frame = pd.DataFrame({"id": [f"p{i}" for i in range(len(ts))], "ts": ts, "prediction": 1.0, "score": np.nan,
                          "label": 1.0, "label_ts": np.nan})
    labeled = LabeledPredictions(frame=frame, quality=LabelQuality(), task="classification", classes=(0.0, 1.0),
                                 now=now)
    slices = summarize_labeled(labeled, judged_days=(now - cut) / DAY).slices
    assert np.repeat(slices["slice_start"], slices["n"]).tolist() == [START, START + DAY, cut, cut, START + 2 * DAY,
                                                                      START + 3 * DAY, now, now]


@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression"])
def test_the_engines_sums_equal_those_of_the_join_in_memory(tmp_path, kind):
    pushed, direct, joined = _summaries(tmp_path, kind=kind)
    assert (pushed.task, pushed.classes, pushed.quality) == (direct.task, direct.classes, direct.quality)
    assert pushed.n_labelled == joined.n_labelled > 0
    pd.testing.assert_frame_equal(pushed.slices, direct.slices, check_dtype=False)
    assert NOW - JUDGED_DAYS * DAY in set(pushed.slices["slice_start"])  # the judged period's start cuts its day
    # every slice has fewer rows than the sample keeps: the samples hold every labelled row, in the same order
    columns = ["slice_start", "id", "ts", "label", "prediction", "score"]
    in_order = [frame.sort_values(["ts", "id"]).reset_index(drop=True)[columns] for frame in (pushed.sample,
                                                                                             direct.sample)]
    pd.testing.assert_frame_equal(*in_order, check_dtype=False)
    assert len(pushed.sample) == pushed.n_labelled
    assert pushed.served_hours["n"].sum() == direct.served_hours["n"].sum()


@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression"])
def test_the_overviews_metric_verdict_and_decisions_equal_those_from_every_row(tmp_path, kind):
    pushed, _, joined = _summaries(tmp_path, kind=kind)
    metric = "mae" if kind == "regression" else "accuracy"
    baseline = Baseline(values={metric: 0.7 if metric == "accuracy" else 6.0}, source="configured")
    since = START
    from_sums = summary_performance(pushed, baseline=baseline, min_labels=30, since=since)
    from_rows = performance_over_time(joined, window="day", baseline=baseline, min_labels=30, since=since)
    assert from_sums.metrics == (metric,) and from_rows.metrics[0] == metric
    shown = list(from_sums.windows.columns)
    pd.testing.assert_frame_equal(from_sums.windows, from_rows.windows[shown], check_dtype=False, rtol=1e-9)
    for column in ("n_predictions", "n_labelled", metric, f"{metric}_low", f"{metric}_high"):
        assert from_sums.overall[column] == pytest.approx(from_rows.overall[column], rel=1e-9), column
    verdict = summary_verdict(pushed, from_sums, baseline=baseline, days=JUDGED_DAYS)
    expected = judged_verdict(joined, from_rows, metric=metric, baseline=baseline, days=JUDGED_DAYS)
    assert (verdict.state, verdict.message, verdict.n_labelled) == (expected.state, expected.message,
                                                                    expected.n_labelled)
    assert verdict.value == pytest.approx(expected.value, rel=1e-12)
    if kind == "binary":
        business = BusinessValues(cost_false_positive=2.0, cost_false_negative=5.0, value_correct=1.0)
        decided = summary_decisions(pushed, business=business, since=since)
        counted = decisions_over_time(joined, window="day", threshold=0.5, business=business, since=since)
        pd.testing.assert_frame_equal(decided.windows, counted.windows, check_dtype=False)
        assert decided.threshold == counted.threshold == 0.5
    else:
        with pytest.raises(ValueError, match="two-class model"):
            summary_decisions(pushed)


def test_a_large_day_brings_back_only_its_sample_of_least_key(tmp_path):
    pushed, direct, joined = _summaries(tmp_path, kind="regression", sample_rows=40)
    per_slice = pushed.sample.groupby("slice_start").size()
    expected = pushed.slices.set_index("slice_start")["n"].clip(upper=40)
    pd.testing.assert_series_equal(per_slice, expected, check_names=False, check_dtype=False)
    for frame in (pushed.sample, direct.sample):  # each slice's rows of least key, whatever the hash
        ranks = frame.groupby("slice_start")["key"].rank(method="first")
        assert ranks.max() <= 40
    found = summary_performance(pushed, since=START)
    closed = found.windows[found.windows["n_labelled"] > 40]
    assert len(closed) >= 3
    assert (closed["mae_low"] < closed["mae"]).all() and (closed["mae"] < closed["mae_high"]).all()
    rows = performance_over_time(joined, window="day", since=START)
    pd.testing.assert_series_equal(found.windows["mae"], rows.windows["mae"], rtol=1e-9)
    spread = found.windows["mae_high"] - found.windows["mae_low"]
    width = spread / (rows.windows["mae_high"] - rows.windows["mae_low"])
    assert width[closed.index].between(0.4, 2.5).all()  # a bootstrap of 40 rows narrowed to the day: the same spread
    with pytest.raises(ValueError, match="sample's 40 rows"):
        summary_performance(pushed, since=START, max_bootstrap_rows=100)


def test_without_labels_the_summary_is_empty_and_the_verdict_unknown(tmp_path):
    predictions, _ = _log(tmp_path, kind="binary")
    engine = LogEngine(f"duckdb:{tmp_path}")
    pushed = summarize_labels_in_engine(engine.connect(), engine.table("svc", in_order=True).table, None, now=NOW,
                                        judged_days=JUDGED_DAYS)
    assert list(pushed.slices.columns) == list(SLICE_COLUMNS) and pushed.slices.empty and pushed.n_labelled == 0
    assert pushed.served_hours["n"].sum() == len(predictions)
    traffic = log_traffic(engine.connect(), engine.table("svc").table, now=NOW, since=START, max_values=20)
    pd.testing.assert_frame_equal(traffic.hours, pushed.served_hours, check_dtype=False)  # what the Overview passes
    found = summary_performance(pushed, since=START)
    assert found.windows["n_labelled"].sum() == 0 and found.windows["n_predictions"].sum() > 0
    assert summary_verdict(pushed, found, baseline=Baseline(), days=JUDGED_DAYS).state == "unknown"
    with pytest.raises(ValueError, match="cut for a judged period"):
        summary_verdict(pushed, found, baseline=Baseline(), days=7.0)


def test_spark_sums_what_duckdb_sums(tmp_path):
    import shutil

    if shutil.which("java") is None:  # a missing Java must not pass as a skipped test
        pytest.fail("Spark local mode needs Java: run tests/install.sh (Debian's openjdk-17-jre-headless)")
    pushed, _, _ = _summaries(tmp_path, kind="binary", sample_rows=40)
    spark = LogEngine(f"spark:local[2]?path={tmp_path}")
    try:
        backend = spark.connect()
        spark.session.conf.set("spark.sql.shuffle.partitions", "2")  # a small log: seconds, not a minute
        summed = summarize_labels_in_engine(backend, spark.table("svc").table, spark.table("svc", "labels").table,
                                            now=NOW, judged_days=JUDGED_DAYS, sample_rows=40)
    finally:
        if spark.session is not None:
            spark.session.stop()
    assert summed.quality.used == pushed.quality.used
    pd.testing.assert_frame_equal(summed.slices, pushed.slices, check_dtype=False)
    pd.testing.assert_series_equal(summed.sample.groupby("slice_start").size(),
                                   pushed.sample.groupby("slice_start").size())  # its own hash, the same sizes
