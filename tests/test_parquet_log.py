"""The store's prediction log in Parquet partitions: the writers' interface, sealing at rest, the readers' answers."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from monitoring.config import parse_config
from monitoring.drift import build_profile, compute_drift, compute_drift_from_counts
from monitoring.parquet_log import ParquetPredictionLog
from monitoring.production import ParquetMirror, ProductionDataError, production_source
from monitoring.sealing import Sealer
from monitoring.store import Store
from monitoring.store_log import StoreLogMirror

START = 1_767_225_600.0  # 2026-01-01 00:00 UTC
KEY = "k" * 64
FEATURES = {"email": "categorical", "channel": "categorical", "balance": "numeric", "age": "numeric"}


def _rows(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "id": [f"p-{seed}-{i}" for i in range(n)], "ts": START + np.sort(rng.uniform(0, 2 * 86_400, n)),
        "prediction": rng.integers(0, 2, n).astype(float), "score": rng.uniform(size=n),
        "model_version": "v1", "email": rng.choice(["ann@example.org", "bob@example.org", None], n),
        "channel": rng.choice(["web", "store"], n), "balance": rng.normal(1000, 200, n),
        "age": rng.integers(18, 90, n).astype(float)})


@pytest.fixture
def store(tmp_path):
    sealer = Sealer({"svc": ("email", "balance")}, KEY.encode())
    store = Store(f"sqlite:///{tmp_path / 'store.db'}", sealer=sealer, log=f"duckdb:{tmp_path / 'log'}")
    store.prediction_table("svc", FEATURES)
    yield store
    store.dispose()


def _service(tmp_path):
    config = parse_config(f"""
[store]
url = "sqlite:///{tmp_path / 'store.db'}"
log = "duckdb:{tmp_path / 'log'}"

[[services]]
name = "svc"
url = "http://127.0.0.1:9"
protocol = "rest"
features = ["email", "channel", "balance", "age"]
personal = ["email", "balance"]
""")
    return config.services[0]


def test_the_store_writes_its_log_to_parquet_with_personal_columns_sealed(store, tmp_path):
    rows = _rows(300)
    assert isinstance(store.predictions, ParquetPredictionLog)
    assert store.log_predictions("svc", rows) == 300
    assert store.count_predictions("svc") == 300
    assert store.newest_prediction_ts("svc") == pytest.approx(rows["ts"].max())
    files = list((tmp_path / "log").rglob("*.parquet"))
    assert files
    for path in files:  # decoded, not only as bytes: the files are compressed
        table = pq.read_table(path).to_pandas()
        assert not table["email"].astype(str).str.contains("@example.org").any()
        assert not table["balance"].astype(str).str.contains(r"^\d+\.\d+$").any()
    read = store.read_prediction_log("svc")
    assert sorted(read["email"].dropna().unique()) == ["ann@example.org", "bob@example.org"]
    np.testing.assert_allclose(np.sort(read["balance"].to_numpy()), np.sort(rows["balance"].to_numpy()))
    found = store.find_predictions("svc", filters={"email": ("==", "ann@example.org")}, limit=1000)
    assert len(found) == int((rows["email"] == "ann@example.org").sum()) and set(found["email"]) == {"ann@example.org"}
    with pytest.raises(ValueError, match="personal and sealed"):
        store.find_predictions("svc", filters={"balance": (">", 5.0)})
    assert store.prediction_features("svc") == {"channel": "categorical", "age": "numeric"}


def test_the_mirror_counts_drift_where_the_rows_are_and_equals_drift_from_rows(store, tmp_path):
    rows = _rows(4_000, seed=1)
    for part in np.array_split(np.arange(len(rows)), 4):
        store.log_predictions("svc", rows.iloc[part])
    mirror = production_source(store, _service(tmp_path))
    assert isinstance(mirror, ParquetMirror)
    reference = _rows(2_000, seed=2)
    profile = build_profile(reference, FEATURES)
    summary = mirror.summary()
    assert summary.rows == 4_000 and summary.first_ts == pytest.approx(rows["ts"].min())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pushed = compute_drift_from_counts(profile, mirror.tallies(profile, window="hour"))
        direct = compute_drift(profile, rows, window="hour")
    pd.testing.assert_frame_equal(pushed.features, direct.features, check_exact=False, rtol=1e-9)
    assert len(mirror.read().frame) == 4_000
    assert mirror.find(prediction_id="p-1-7")["id"].tolist() == ["p-1-7"]
    assert set(mirror.columns()) >= {"id", "ts", "prediction", "score", "email", "channel", "balance", "age"}


@pytest.mark.parametrize("kind", ["three classes", "numbers"])
def test_the_overviews_traffic_is_counted_where_the_rows_are_and_equals_counting_the_rows(store, tmp_path, kind):
    from monitoring.overview import counts_of_traffic, prediction_mix, prediction_volume, traffic_options

    rows = _rows(3_000, seed=3).assign(ts=lambda f: START + np.sort(np.random.default_rng(3).uniform(0, 20 * 86_400,
                                                                                                    len(f))))
    rng = np.random.default_rng(4)
    rows["prediction"] = (rng.integers(0, 3, len(rows)).astype(float) if kind == "three classes"
                          else rng.normal(50.0, 10.0, len(rows)))
    rows.loc[rows.index[::97], "prediction"] = np.nan  # not decided: counted as served, not in the mix
    rows["model_version"] = np.where(rows["ts"] < START + 12 * 86_400, "v1", "v2")
    rows = rows.drop(columns="score")
    for part in np.array_split(np.arange(len(rows)), 3):
        store.log_predictions("svc", rows.iloc[part])
    now = START + 15.5 * 86_400  # later rows are not served yet
    counts = counts_of_traffic(production_source(store, _service(tmp_path)).traffic(**traffic_options(now)))
    served = rows[rows["ts"] <= now]
    assert counts.n_rows == len(served)
    assert counts.task == ("classification" if kind == "three classes" else "regression")
    assert counts.classes == ((0.0, 1.0, 2.0) if kind == "three classes" else ())
    expected_volume = prediction_volume(rows["ts"].to_numpy(), now=now)
    assert (counts.volume.today, counts.volume.last_7_days, counts.volume.previous_7_days) == (
        expected_volume.today, expected_volume.last_7_days, expected_volume.previous_7_days)
    mix = prediction_mix(served, task=counts.task, classes=counts.classes, since=now - 30 * 86_400, now=now)
    pd.testing.assert_frame_equal(counts.mix, mix, check_exact=False, rtol=1e-12)
    assert counts.model_version == "v2"
    assert counts.model_age_seconds == pytest.approx(now - rows.loc[rows["model_version"] == "v2", "ts"].min())


def test_a_log_in_the_stores_tables_is_still_read_until_the_parquet_log_has_one(tmp_path):
    old = Store(f"sqlite:///{tmp_path / 'store.db'}")  # written before the Parquet log was the default
    old.prediction_table("svc", FEATURES)
    old.log_predictions("svc", _rows(50).drop(columns=["email", "balance"]))
    new = Store(f"sqlite:///{tmp_path / 'store.db'}", log=f"duckdb:{tmp_path / 'log'}")
    service = _service(tmp_path)
    mirror = production_source(new, service)
    assert isinstance(mirror, StoreLogMirror) and mirror.summary().rows == len(mirror.read().frame) == 50
    new.log_predictions("svc", _rows(5, seed=9).drop(columns=["email", "balance"]))
    assert isinstance(production_source(new, service), ParquetMirror)


def test_a_service_without_a_log_says_what_to_do(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'store.db'}", log=f"duckdb:{tmp_path / 'log'}")
    mirror = production_source(store, _service(tmp_path))
    with pytest.raises(ProductionDataError, match="no prediction log in the store yet"):
        mirror.summary()
    assert not mirror.has_rows()
    store.prediction_table("svc", FEATURES)  # a writer declares the log before its first rows
    assert mirror.has_rows() and mirror.summary().rows == 0


def test_a_damaged_file_is_named_and_the_rest_still_counts(store, tmp_path):
    store.log_predictions("svc", _rows(100, seed=3))
    store.log_predictions("svc", _rows(100, seed=4))
    victim = sorted((tmp_path / "log").rglob("*.parquet"))[0]
    victim.write_bytes(victim.read_bytes()[:64])
    mirror = production_source(store, _service(tmp_path))
    assert any(victim.name in problem for problem in mirror.problems())
    assert 0 < mirror.summary().rows < 200


@pytest.mark.parametrize("window", ["day", "week"])
def test_day_and_week_counts_kept_per_file_give_the_same_drift_on_any_range(store, tmp_path, window):
    rows = _rows(3_000, seed=5)
    for part in np.array_split(np.arange(len(rows)), 6):
        store.log_predictions("svc", rows.iloc[part])
    mirror = production_source(store, _service(tmp_path))
    profile = build_profile(_rows(2_000, seed=6), FEATURES)
    mid_second_day = START + 1.5 * 86_400  # cuts the second day's files: counted again, with the range
    for since, until in [(None, None), (START, START + 2 * 86_400), (START, mid_second_day)]:
        expected_rows = rows[(rows["ts"] >= (since or -np.inf)) & (rows["ts"] < (until or np.inf))]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            first = compute_drift_from_counts(profile, mirror.tallies(profile, window=window, since=since,
                                                                      until=until))
            again = compute_drift_from_counts(profile, mirror.tallies(profile, window=window, since=since,
                                                                      until=until))
            direct = compute_drift(profile, expected_rows, window=window)
        pd.testing.assert_frame_equal(first.features, direct.features, check_exact=False, rtol=1e-9)
        pd.testing.assert_frame_equal(again.features, first.features)
    kept = list((tmp_path / "log" / "svc" / "tallies").rglob(f"*.{window}.npz"))
    assert kept  # counted once per whole-day file, beside the log


def test_upkeep_merges_each_days_files_and_deletes_old_days(store, tmp_path):
    for seed in range(10):
        store.log_predictions("svc", _rows(20, seed=seed))
    before = store.count_predictions("svc")
    done = store.predictions.maintain(now=START + 10 * 86_400, keep_days=None)
    assert done["compacted"] and store.count_predictions("svc") == before
    partitions = store.predictions.log.partitions("svc", "predictions")
    assert all(len(list(p.glob("*.parquet"))) > 1 for p in partitions)  # the inputs wait for the next run
    assert not store.predictions.maintain(now=START + 10 * 86_400, keep_days=None)["compacted"]
    assert all(len(list(p.glob("*.parquet"))) == 1 for p in partitions) and store.count_predictions("svc") == before
    done = store.predictions.maintain(now=START + 10 * 86_400, keep_days=1)
    assert done["deleted"] and store.count_predictions("svc") == 0


def test_a_declared_log_without_rows_reads_as_empty_with_every_column(store):
    empty = store.read_prediction_log("svc")
    assert empty.empty and {"id", "ts", "prediction", "email", "age"} <= set(empty.columns)
    assert store.find_predictions("svc", prediction_id="nothing").empty
    assert store.count_predictions("svc") == 0 and store.newest_prediction_ts("svc") is None


def test_predictions_made_at_the_same_time_are_found_in_the_order_written(store):
    for name in ("first", "second", "third"):
        store.log_predictions("svc", _rows(1).assign(id=name, ts=START))
    assert store.find_predictions("svc", limit=1)["id"].tolist() == ["third"]
    assert store.find_predictions("svc", newest_first=False, limit=3)["id"].tolist() == ["first", "second", "third"]
