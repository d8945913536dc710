"""The Performance page from the kept labels file (monitoring.performance_sums) equals it from every labelled row."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from monitoring.baseline import Baseline
from monitoring.label_queries import join_labels_in_engine, keep_labels_in_engine, kept_rows
from monitoring.log_engines import LogEngine
from monitoring.performance import (
    BusinessValues,
    decisions_over_time,
    judged_verdict,
    performance_detail,
    performance_over_time,
)
from monitoring.performance_sums import (
    kept_detail,
    stays_fresh,
    sums_performance,
    sums_verdict,
    window_decisions,
    window_sums,
    write_kept,
)
from monitoring.store import Store
from tests.test_label_engine import DAY, START, _log

NOW = START + 3.5 * DAY  # predictions are logged until START + 4 days: some after now
JUDGED_DAYS = 2.0  # the judged period starts at START + 1.5 days, inside a day


def _kept(root, *, kind: str, n: int = 3_000):
    """The kept labels of the log at ``root``, the engine that reads them, and the same join as rows."""
    _log(root, kind=kind, n=n)
    engine = LogEngine(f"duckdb:{root}")
    predictions = engine.table("svc", in_order=True).table
    labels = engine.table("svc", "labels", in_order=True).table
    kept = keep_labels_in_engine(engine.connect(), predictions, labels, now=NOW, path=str(root / "kept.parquet"))
    joined = join_labels_in_engine(engine.connect(), predictions, labels, now=NOW)
    return kept, engine, joined


def _baseline(kind: str) -> Baseline:
    values = {"mae": 6.0, "rmse": 8.0, "r2": 0.1} if kind == "regression" else {
        "accuracy": 0.5, "precision": 0.5, "recall": 0.5, "f1": 0.5, "roc_auc": 0.5, "log_loss": 0.7}
    return Baseline(values=values, source="configured")


@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression"])
@pytest.mark.parametrize("window", ["hour", "day", "week"])
def test_every_window_metric_and_interval_equals_the_rows_path(tmp_path, kind, window):
    kept, engine, joined = _kept(tmp_path, kind=kind)
    assert kept.n_labelled == joined.n_labelled > 0 and kept.quality == joined.quality
    assert kept.median_delay_seconds == pytest.approx(joined.median_delay_seconds)
    since = START if window != "week" else None
    sums = window_sums(engine.connect(), kept_rows(engine.connect(), kept.path), task=kept.task,
                       classes=kept.classes, window=window, now=NOW, judged_days=JUDGED_DAYS, since=since)
    baseline = _baseline(kind)
    from_sums = sums_performance(sums, kept, baseline=baseline, min_labels=30)
    from_rows = performance_over_time(joined, window=window, baseline=baseline, min_labels=30, since=since)
    assert from_sums.metrics == from_rows.metrics
    # windows of at most 2,000 labels: every interval is the rows path's own, on the same draws
    pd.testing.assert_frame_equal(from_sums.windows, from_rows.windows, check_dtype=False, rtol=1e-9)
    for metric in from_rows.metrics:
        assert from_sums.overall[metric] == pytest.approx(from_rows.overall[metric], rel=1e-9), metric
    for column in ("n_predictions", "n_labelled", "coverage", "window_start", "window_end", "partial"):
        assert from_sums.overall[column] == from_rows.overall[column], column
    for metric in from_rows.metrics:
        verdict = sums_verdict(sums, kept, from_sums, metric=metric, baseline=baseline, days=JUDGED_DAYS)
        expected = judged_verdict(joined, from_rows, metric=metric, baseline=baseline, days=JUDGED_DAYS)
        assert (verdict.state, verdict.message, verdict.n_labelled) == (expected.state, expected.message,
                                                                        expected.n_labelled), metric
        assert verdict.value == pytest.approx(expected.value, rel=1e-9, nan_ok=True), metric


def test_large_groups_get_exact_values_and_their_samples_interval(tmp_path):
    kept, engine, joined = _kept(tmp_path, kind="binary", n=6_000)
    sums = window_sums(engine.connect(), kept_rows(engine.connect(), kept.path), task=kept.task,
                       classes=kept.classes, window="day", now=NOW, judged_days=JUDGED_DAYS, sample_rows=100)
    assert sums.sample.groupby("slice_start").size().max() == 100
    found = sums_performance(sums, kept, max_bootstrap_rows=100)
    rows = performance_over_time(joined, window="day", max_bootstrap_rows=100)
    for metric in ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "label_rate", "mean_score"):
        pd.testing.assert_series_equal(found.windows[metric], rows.windows[metric], rtol=1e-9)
    for metric in ("accuracy", "precision", "recall"):  # Wilson: exact from counts
        for bound in ("low", "high"):
            pd.testing.assert_series_equal(found.windows[f"{metric}_{bound}"], rows.windows[f"{metric}_{bound}"],
                                           rtol=1e-9)
    big = found.windows["n_labelled"] > 100
    assert big.sum() >= 3
    for metric in ("f1", "roc_auc", "log_loss"):  # bootstrap of a uniform sample narrowed to the window
        low, high = found.windows.loc[big, f"{metric}_low"], found.windows.loc[big, f"{metric}_high"]
        assert ((low < found.windows.loc[big, metric]) & (found.windows.loc[big, metric] < high)).all(), metric
        width = (high - low) / (rows.windows.loc[big, f"{metric}_high"] - rows.windows.loc[big, f"{metric}_low"])
        assert width.between(0.4, 2.5).all(), metric
    with pytest.raises(ValueError, match="sample's 100 rows"):
        sums_performance(sums, kept)


@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression"])
def test_decisions_and_the_detail_of_a_period_equal_the_rows_path(tmp_path, kind):
    kept, engine, joined = _kept(tmp_path, kind=kind)
    backend, rows = engine.connect(), kept_rows(engine.connect(), kept.path)
    business = BusinessValues(cost_false_positive=2.0, cost_false_negative=5.0, value_correct=1.0)
    since, until = START + DAY, START + 3 * DAY
    detail = kept_detail(backend, rows, kept, since=since, until=until, threshold=0.3, business=business)
    expected = performance_detail(joined, since=since, until=until, threshold=0.3, business=business)
    assert detail.n_labelled == expected.n_labelled > 0
    if kind == "regression":
        assert len(detail.residuals) == expected.n_labelled  # fewer than max_residuals: every row
        pd.testing.assert_frame_equal(detail.residuals.sort_values("ts").reset_index(drop=True),
                                      expected.residuals.sort_values("ts").reset_index(drop=True), check_dtype=False)
        with pytest.raises(ValueError, match="two-class model"):
            window_decisions(backend, rows, kept, window="day")
        return
    np.testing.assert_array_equal(detail.confusion.matrix, expected.confusion.matrix)
    assert detail.confusion.threshold == expected.confusion.threshold
    assert detail.money == expected.money
    if kind == "binary":
        pd.testing.assert_frame_equal(detail.calibration, expected.calibration, check_dtype=False, rtol=1e-12)
        for window, threshold in (("day", 0.3), ("hour", None), ("week", 0.8)):
            decided = window_decisions(backend, rows, kept, window=window, since=START if window == "day" else None,
                                       threshold=threshold, business=business)
            counted = decisions_over_time(joined, window=window, threshold=threshold, business=business,
                                          since=START if window == "day" else None)
            pd.testing.assert_frame_equal(decided.windows, counted.windows, check_dtype=False)
            assert decided.threshold == counted.threshold == threshold
    else:
        assert detail.calibration is None


def test_without_labels_nothing_is_kept_and_every_window_is_empty(tmp_path):
    _log(tmp_path, kind="binary")
    engine = LogEngine(f"duckdb:{tmp_path}")
    kept = keep_labels_in_engine(engine.connect(), engine.table("svc", in_order=True).table, None, now=NOW,
                                 path=str(tmp_path / "kept.parquet"))
    assert kept.path is None and kept.n_labelled == 0 and not (tmp_path / "kept.parquet").exists()
    sums = window_sums(engine.connect(), kept_rows(engine.connect(), kept.path), task=kept.task,
                       classes=kept.classes, window="day", now=NOW, judged_days=JUDGED_DAYS)
    found = sums_performance(sums, kept)
    assert found.windows["n_labelled"].sum() == 0 and found.windows["n_predictions"].sum() > 0
    verdict = sums_verdict(sums, kept, found, metric="accuracy", baseline=Baseline(), days=JUDGED_DAYS)
    assert verdict.state == "unknown"
    with pytest.raises(ValueError, match="cut for a judged period"):
        sums_verdict(sums, kept, found, metric="accuracy", baseline=Baseline(), days=7.0)


def test_spark_keeps_and_sums_what_duckdb_does(tmp_path):
    import shutil

    if shutil.which("java") is None:  # a missing Java must not pass as a skipped test
        pytest.fail("Spark local mode needs Java: run tests/install.sh (Debian's openjdk-17-jre-headless)")
    kept, engine, _ = _kept(tmp_path, kind="binary")
    duck = window_sums(engine.connect(), kept_rows(engine.connect(), kept.path), task=kept.task,
                       classes=kept.classes, window="day", now=NOW, judged_days=JUDGED_DAYS)
    spark = LogEngine(f"spark:local[2]?path={tmp_path}")
    try:
        backend = spark.connect()
        spark.session.conf.set("spark.sql.shuffle.partitions", "2")
        theirs = keep_labels_in_engine(backend, spark.table("svc").table, spark.table("svc", "labels").table,
                                       now=NOW, path=str(tmp_path / "kept-spark"))
        summed = window_sums(backend, kept_rows(backend, theirs.path), task=theirs.task, classes=theirs.classes,
                             window="day", now=NOW, judged_days=JUDGED_DAYS)
    finally:
        if spark.session is not None:
            spark.session.stop()
    assert (theirs.n_labelled, theirs.quality.used, theirs.has_score) == (kept.n_labelled, kept.quality.used,
                                                                         kept.has_score)
    pd.testing.assert_frame_equal(summed.slices, duck.slices, check_dtype=False, rtol=1e-9)
    order = ["slice_start", "label", "prediction"]
    pd.testing.assert_frame_equal(summed.confusion.sort_values(order).reset_index(drop=True),
                                  duck.confusion.sort_values(order).reset_index(drop=True), check_dtype=False)
    order = ["kind", "start"]
    pd.testing.assert_frame_equal(summed.auc.sort_values(order).reset_index(drop=True),
                                  duck.auc.sort_values(order).reset_index(drop=True), check_dtype=False)


def test_the_upkeep_keeps_the_labels_that_the_pages_then_read_without_joining(tmp_path, monkeypatch):
    from monitoring.collector import Collector
    from monitoring.label_queries import summarize_kept
    from monitoring.production import KEPT_FILES, production_source
    from monitoring.upkeep import KEEP_LABELS_EVERY
    from tests.test_upkeep_tallies import FEATURES, _config, _rows
    from tests.test_upkeep_tallies import START as DAY_ONE

    store = Store(f"sqlite:///{tmp_path / 'store.db'}", log=f"duckdb:{tmp_path / 'log'}")
    try:
        store.prediction_table("svc", FEATURES)
        logged = pd.concat([_rows(300, seed=day, begin=DAY_ONE + day * DAY) for day in range(3)])
        store.log_predictions("svc", logged)
        store.write_labels("svc", pd.DataFrame({"prediction_id": logged["id"].iloc[::2],
                                                "ts": logged["ts"].iloc[::2] + 3_600, "label": 1.0}))
        now = DAY_ONE + 3 * DAY + 2 * 3_600  # every label has arrived
        collector = Collector(_config(tmp_path), store)
        service = collector.config.services[0]
        mirror = production_source(store, service)
        done = collector.upkeep(now=now)["labels"]["svc"]
        assert done.n_labelled == 450 and done.summary is not None and done.summary.n_labelled == 450
        assert collector.upkeep(now=now + KEEP_LABELS_EVERY - 1)["labels"] == {}  # fresh: not joined again
        found = mirror.latest_kept(now=now + 60, max_age=120)
        assert found is not None and found.path == done.path
        for name in ("quality", "task", "classes", "now", "n_labelled", "has_score", "source"):
            assert getattr(found, name) == getattr(done, name), name
        pd.testing.assert_frame_equal(found.served_hours, done.served_hours, check_dtype=False)
        pd.testing.assert_frame_equal(found.summary.slices, done.summary.slices)
        pd.testing.assert_frame_equal(found.summary.sample, done.summary.sample, check_dtype=False)
        again = summarize_kept(store.predictions.engine.connect(), found, judged_days=service.performance.judged_days,
                               threshold=service.performance.threshold)
        pd.testing.assert_frame_equal(again.slices, found.summary.slices)
        assert mirror.latest_kept(now=now + 121, max_age=120) is None  # stale
        assert mirror.latest_kept(now=now - 1, max_age=120) is None  # kept after that time
        for later in range(1, 5):  # each run past the interval joins again; the newest KEPT_FILES are left
            collector.upkeep(now=now + later * KEEP_LABELS_EVERY)
        assert len(list((tmp_path / "log" / "svc" / "labelled").iterdir())) == KEPT_FILES
        assert mirror.latest_kept(now=now + 4 * KEEP_LABELS_EVERY, max_age=1).now == now + 4 * KEEP_LABELS_EVERY
        # a join that took long is made again less often, and a page takes it for longer
        slow = dataclasses.replace(found, seconds=30.0)
        assert stays_fresh(slow, every=120) == 600 and stays_fresh(slow, every=240, stretch=2) == 1200
        assert stays_fresh(dataclasses.replace(found, seconds=float("nan")), every=120) == 120
        assert 0 < found.seconds == done.seconds < 120
        newest = mirror.latest_kept(now=now + 4 * KEEP_LABELS_EVERY, max_age=1)
        write_kept(dataclasses.replace(newest, seconds=30.0), Path(newest.path).parent)
        later = newest.now + 500  # within twenty times its 30 s: still fresh, for the upkeep too
        assert mirror.latest_kept(now=later, max_age=KEEP_LABELS_EVERY).now == newest.now
        assert collector.upkeep(now=later)["labels"] == {}
        assert mirror.latest_kept(now=newest.now + 700, max_age=KEEP_LABELS_EVERY) is None
        # windows of a number of predictions: the rows are placed once per join, size and range, then read
        import monitoring.engine_mirror as engine_mirror

        placings = []
        place = engine_mirror.row_windows
        monkeypatch.setattr(engine_mirror, "row_windows", lambda *a, **kw: placings.append(kw) or place(*a, **kw))
        options = {"window": "100", "now": newest.now, "judged_days": 1.0, "since": DAY_ONE + DAY}
        first = mirror.kept_sums(newest, **options)
        again = mirror.kept_sums(newest, **options)
        decided = mirror.kept_decisions(newest, window="100", since=DAY_ONE + DAY, threshold=0.5)
        assert len(placings) == 1 and len(first.windows) == len(decided.windows) > 2
        pd.testing.assert_frame_equal(again.slices, first.slices)
        pd.testing.assert_frame_equal(again.windows, first.windows)
        backend = store.predictions.engine.connect()
        rows, windows = place(backend, store.predictions.engine.table("svc", in_order=True).table,
                              kept_rows(backend, newest.path), size=100, since=DAY_ONE + DAY)
        direct = window_sums(backend, rows, task=newest.task, classes=newest.classes, window="100",
                             now=newest.now, judged_days=1.0, since=DAY_ONE + DAY, windows=windows)
        pd.testing.assert_frame_equal(first.slices, direct.slices)
        with pytest.raises(ValueError, match="not where its log is"):
            mirror.keep_labels(SimpleNamespace(source="a file"), now=now)
    finally:
        store.dispose()


@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression"])
def test_the_largest_errors_are_those_of_every_labelled_row(tmp_path, kind):
    from explain.starting_points import prediction_error
    from monitoring.performance_sums import largest_errors

    kept, engine, joined = _kept(tmp_path, kind=kind)
    found = largest_errors(engine.connect(), kept_rows(engine.connect(), kept.path), task=kept.task, limit=25)
    known = joined.frame[joined.frame["label"].notna()]
    error = prediction_error(known, task=joined.task)
    expected = known.loc[error.sort_values(ascending=False, kind="stable").index[:25], "id"]
    assert found["id"].tolist() == expected.tolist()
    assert list(found.columns) == ["id", "ts", "prediction", "score", "label"]


@pytest.mark.parametrize("kind", ["binary", "regression"])
@pytest.mark.parametrize("since", [None, START + 0.7 * DAY])
def test_windows_of_a_number_of_predictions_equal_those_of_every_row(tmp_path, kind, since):
    from monitoring.labels import join_labels
    from monitoring.performance_sums import row_windows

    kept, engine, _ = _kept(tmp_path, kind=kind)
    backend = engine.connect()
    logged = engine.execute(engine.table("svc", in_order=True).table.order_by(["ts", "filename", "file_row_number"]))
    written = engine.table("svc", "labels", in_order=True).table
    labels = engine.execute(written.order_by(["filename", "file_row_number"]))[["prediction_id", "ts", "label"]]
    every_row = join_labels(logged.drop(columns=["filename", "file_row_number"]), labels, now=NOW)
    rows, windows = row_windows(backend, engine.table("svc", in_order=True).table, kept_rows(backend, kept.path),
                                size=250, since=since)
    sums = window_sums(backend, rows, task=kept.task, classes=kept.classes, window="250", now=NOW,
                       judged_days=JUDGED_DAYS, since=since, windows=windows)
    baseline = _baseline(kind)
    from_sums = sums_performance(sums, kept, baseline=baseline)
    from_rows = performance_over_time(every_row, window=250, baseline=baseline, since=since)
    assert len(from_rows.windows) >= 8 and from_rows.windows["partial"].iloc[-1]
    pd.testing.assert_frame_equal(from_sums.windows, from_rows.windows, check_dtype=False, rtol=1e-9)
    metric = from_rows.metrics[0]
    verdict = sums_verdict(sums, kept, from_sums, metric=metric, baseline=baseline, days=JUDGED_DAYS)
    expected = judged_verdict(every_row, from_rows, metric=metric, baseline=baseline, days=JUDGED_DAYS)
    assert (verdict.state, verdict.message, verdict.n_labelled) == (expected.state, expected.message,
                                                                    expected.n_labelled)
    if kind == "binary":
        decided = window_decisions(backend, rows, kept, window="250", since=since, threshold=0.4, windows=windows)
        counted = decisions_over_time(every_row, window=250, threshold=0.4, since=since)
        pd.testing.assert_frame_equal(decided.windows, counted.windows, check_dtype=False)
    with pytest.raises(ValueError, match="row_windows"):
        window_sums(backend, kept_rows(backend, kept.path), task=kept.task, classes=kept.classes, window="250",
                    now=NOW, judged_days=JUDGED_DAYS)
    # at most max_windows: the newest, as if the range started at the first of them
    rows, newest = row_windows(backend, engine.table("svc", in_order=True).table, kept_rows(backend, kept.path),
                               size=250, since=since, max_windows=3)
    pd.testing.assert_frame_equal(newest, windows.iloc[-3:].reset_index(drop=True))
    first = float(newest["window_start"].iloc[0])
    capped = sums_performance(window_sums(backend, rows, task=kept.task, classes=kept.classes, window="250",
                                          now=NOW, judged_days=JUDGED_DAYS, since=first, windows=newest), kept)
    pd.testing.assert_frame_equal(capped.windows, from_rows.windows.iloc[-3:].reset_index(drop=True),
                                  check_dtype=False, rtol=1e-9)
