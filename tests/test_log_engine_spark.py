"""Spark local mode runs the log's aggregations and gets the embedded engine's answers on the same partitions."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pandas as pd
import pytest

from monitoring.drift import build_profile, compute_drift_from_counts
from monitoring.log_engines import LogEngine, LogEngineError
from monitoring.log_queries import tally_windows, value_counts, window_rows
from monitoring.partitions import DAY_SECONDS, PartitionedLog

START = 1_767_225_600.0  # 2026-01-01 00:00 UTC

@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    if shutil.which("java") is None:  # a missing Java must not pass as a skipped test
        pytest.fail("Spark local mode needs Java: run tests/install.sh (Debian's openjdk-17-jre-headless)")
    root = tmp_path_factory.mktemp("lake")
    rng = np.random.default_rng(11)
    reference = pd.DataFrame({"amount": rng.gamma(2.0, 50.0, 6_000), "segment": rng.choice(["a", "b", "c"], 6_000),
                              "prediction": rng.integers(0, 3, 6_000)})
    profile = build_profile(reference, {"amount": "numeric", "segment": "categorical"})
    n = 40_000
    current = pd.DataFrame({"ts": START + np.sort(rng.uniform(0, 3 * DAY_SECONDS, n)),
                            "amount": rng.gamma(2.2, 55.0, n), "segment": rng.choice(["a", "b", "c", "d", None], n),
                            "prediction": rng.integers(0, 3, n)})
    current.loc[::41, "amount"] = np.nan
    current.loc[5::97, "amount"] = np.inf  # counted as not finite by both (Ibis compiles isinf to FALSE for Spark)
    current["id"] = [f"s{i}" for i in range(n)]
    chosen = rng.choice(n, n // 3, replace=False)
    labels = pd.DataFrame({"prediction_id": [f"s{i}" for i in chosen], "label": rng.integers(0, 4, len(chosen)) * 1.0,
                           "ts": current["ts"].to_numpy()[chosen] + rng.uniform(60, DAY_SECONDS, len(chosen))})
    labels = pd.concat([labels, pd.DataFrame({"prediction_id": ["nobody", "s1"], "label": [1.0, 2.0],
                                              "ts": [START, START + 5 * DAY_SECONDS]})], ignore_index=True)
    log = PartitionedLog(root)
    for rows in np.array_split(np.arange(n), 5):
        log.append("shop", "predictions", current.iloc[rows])
    log.append("shop", "labels", labels)
    spark = LogEngine(f"spark:local[2]?path={root}")
    yield profile, LogEngine(f"duckdb:{root}"), spark
    if spark.session is not None:
        spark.session.stop()


@pytest.mark.parametrize("window", ["day", "hour", 7_000])
def test_spark_and_duckdb_give_the_same_drift(engines, window):
    profile, embedded, spark = engines
    reports = []
    for engine in (embedded, spark):
        table = engine.table("shop").table
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reports.append(compute_drift_from_counts(profile, tally_windows(engine.connect(), table, profile,
                                                                            window=window)))
    for name in ("features", "prediction", "dataset"):
        pd.testing.assert_frame_equal(getattr(reports[0], name), getattr(reports[1], name), check_exact=False,
                                      rtol=1e-9)
    assert reports[0].features["n"].sum() > 0


def test_spark_and_duckdb_count_the_same_windows_and_mix(engines):
    _, embedded, spark = engines
    counts = [window_rows(e.connect(), e.table("shop").table, window="day", since=START + DAY_SECONDS)
              for e in (embedded, spark)]
    assert counts[0].n_rows.tolist() == counts[1].n_rows.tolist() and counts[0].n_rows.sum() > 0
    mixes = [value_counts(e.connect(), e.table("shop").table, "prediction", window="day") for e in (embedded, spark)]
    pd.testing.assert_frame_equal(mixes[0], mixes[1], check_dtype=False)


def test_a_log_url_without_an_engine_names_the_accepted_ones():
    with pytest.raises(LogEngineError, match="duckdb:<directory>"):
        LogEngine("mysql://somewhere/log")
    with pytest.raises(LogEngineError, match=r"\?path="):
        LogEngine("spark://127.0.0.1:7077")


def test_the_pages_source_on_a_spark_log_answers_as_on_duckdb(engines, tmp_path):
    from monitoring.config import parse_config
    from monitoring.overview import counts_of_traffic, traffic_options
    from monitoring.production import production_source
    from monitoring.store import Store

    profile, embedded, _ = engines  # Spark started by the fixture: this test's engine joins its session
    root = embedded.location
    config = parse_config(f"""
[store]
url = "sqlite:///{tmp_path / 'store.db'}"

[[services]]
name = "shop"
url = "http://127.0.0.1:9"
protocol = "rest"
features = ["amount", "segment"]
""")
    service = config.services[0]
    now = START + 2.5 * DAY_SECONDS
    answers = []
    for log in (f"duckdb:{root}", f"spark:local[2]?path={root}"):
        store = Store(config.store.url, log=log)
        store.prediction_table("shop", {"amount": "numeric", "segment": "categorical"})  # declared once
        source = production_source(store, service)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report = compute_drift_from_counts(profile, source.tallies(profile, window="day"))
        traffic = counts_of_traffic(source.traffic(**traffic_options(now)))  # the Overview's numbers
        answers.append((source.summary().rows, report.features, traffic))
        store.dispose()
    assert answers[0][0] == answers[1][0] == 40_000
    pd.testing.assert_frame_equal(answers[0][1], answers[1][1], check_exact=False, rtol=1e-9)
    duckdb_traffic, spark_traffic = answers[0][2], answers[1][2]
    assert duckdb_traffic.n_rows > 0 and duckdb_traffic.volume == spark_traffic.volume
    pd.testing.assert_frame_equal(duckdb_traffic.mix, spark_traffic.mix, check_exact=False, rtol=1e-12)
    assert (duckdb_traffic.task, duckdb_traffic.classes, duckdb_traffic.model_version) == (
        spark_traffic.task, spark_traffic.classes, spark_traffic.model_version)


def test_spark_joins_the_labels_as_duckdb_does(engines):
    from monitoring.label_queries import join_labels_in_engine

    _, embedded, spark = engines
    now = START + 2.5 * DAY_SECONDS
    joined = [join_labels_in_engine(e.connect(), e.table("shop").table, e.table("shop", "labels").table, now=now)
              for e in (embedded, spark)]
    assert joined[0].quality == joined[1].quality
    assert joined[0].quality.unmatched == 1 and joined[0].quality.unknown_class > 0 and joined[0].quality.pending > 0
    pd.testing.assert_frame_equal(joined[0].frame, joined[1].frame, check_dtype=False)
    pd.testing.assert_frame_equal(joined[0].served_hours, joined[1].served_hours, check_dtype=False)
    assert (joined[0].task, joined[0].classes) == (joined[1].task, joined[1].classes) == ("classification",
                                                                                       (0.0, 1.0, 2.0))


def test_spark_joins_a_staged_label_file_as_duckdb_and_the_join_in_memory_do(engines, tmp_path):
    from monitoring.config import LabelsConfig
    from monitoring.label_queries import join_labels_in_engine
    from monitoring.labels import join_labels, read_label_file
    from monitoring.staged_labels import stage_label_file, staged_folder
    from tests.test_staged_labels import _label_file

    _, embedded, spark = engines
    predictions = embedded.execute(embedded.table("shop").table.select("id", "ts", "prediction").order_by("ts"))
    path = tmp_path / "labels.csv"
    _label_file(path, predictions)
    config = LabelsConfig(path=str(path), id="order", label="truth", ts="arrived")
    staged = stage_label_file(config, staged_folder(spark.location, "shop-file"))
    now = START + 2.5 * DAY_SECONDS
    joined = [join_labels_in_engine(e.connect(), e.table("shop").table, e.file_table(staged), now=now)
              for e in (embedded, spark)]
    direct = join_labels(predictions, read_label_file(config), now=now)
    print("QUALITY", joined[0].quality, joined[1].quality, direct.quality, sep="\n")
    assert joined[0].quality == joined[1].quality == direct.quality and direct.quality.invalid == 4
    pd.testing.assert_frame_equal(joined[0].frame, joined[1].frame, check_dtype=False)
