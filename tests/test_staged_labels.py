"""A label file is staged where the log is and joined by its engine, with the answers of the join in memory.

The join in memory of the file's raw rows (:func:`monitoring.labels.join_labels`) is the
reference: the same labels used, pending and left out, with the same examples, for any time.
The log's rows never come into the process: the mirror's ``read`` is made to fail.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from monitoring.config import parse_config
from monitoring.labels import LabelDataError, LabelFileMirror, join_labels, label_source, read_label_file
from monitoring.production import ParquetMirror, production_source
from monitoring.staged_labels import STAGED_COPIES, stage_label_file
from monitoring.store import Store

START = 1_767_225_600.0  # 2026-01-01 00:00 UTC
DAY = 86_400.0
N = 1_500


def _predictions(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    score = rng.uniform(size=N)
    return pd.DataFrame({"id": [f"p{i}" for i in range(N)], "ts": START + np.sort(rng.uniform(0, 3 * DAY, N)),
                         "prediction": (score >= 0.5).astype(float), "score": score,
                         "amount": rng.gamma(2.0, 30.0, N)})


def _label_file(path, predictions: pd.DataFrame, *, seed: int = 1) -> pd.DataFrame:
    """A CSV label file for ``predictions`` with every kind of bad row the join counts, arrival times as ISO text
    and as numbers."""
    rng = np.random.default_rng(seed)
    ids, ts = predictions["id"].to_numpy(), predictions["ts"].to_numpy()
    chosen = rng.choice(np.arange(20, len(ids)), len(ids) // 2, replace=False)
    arrived = ts[chosen] + rng.uniform(60, DAY, len(chosen))
    iso = pd.to_datetime(arrived, unit="s", utc=True).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    rows = pd.DataFrame({"order": ids[chosen], "arrived": np.where(np.arange(len(chosen)) % 2 == 0, iso,
                                                                   arrived.astype(str)),
                         "truth": rng.integers(0, 2, len(chosen)).astype(str)})
    at = pd.Timestamp(START + 2 * DAY, unit="s", tz="UTC").isoformat()
    odd = pd.DataFrame([  # file order matters: ties go to the row written last
        (ids[1], at, "1"), (ids[1], at, "0"),  # the same arrival twice: the last one
        (f"  {ids[2]} ", at, "1"),  # a padded id
        (ids[3], "", "1"),  # no arrival: arrived, before every timed label
        (ids[4], "soon", "1"),  # an arrival that cannot be read
        (ids[5], at, "yes"),  # a label that is not a number
        ("", at, "1"),  # no id
        ("x" * 70, at, "0"),  # an id too long
        (ids[6], str(START + 9 * DAY), "1"),  # still to arrive
        ("nobody", at, "1"),  # no such prediction
        (ids[7], at, "7"),  # a class the model never predicts
        (ids[8], "2026-01-02T03:04:05+02:00", " 1 "),  # an offset and a padded number
    ], columns=["order", "arrived", "truth"])
    rows = pd.concat([rows.iloc[:300], odd, rows.iloc[300:]], ignore_index=True)
    rows.to_csv(path, index=False)
    return rows


def _config(tmp_path, label_path) -> object:
    return parse_config(f"""
[store]
url = "sqlite:///{tmp_path / 'store.db'}"
log = "duckdb:{tmp_path / 'log'}"

[[services]]
name = "shop"
url = "http://127.0.0.1:9"
protocol = "rest"
features = ["amount"]

[services.labels]
path = "{label_path}"
id = "order"
label = "truth"
ts = "arrived"
""")


@pytest.fixture
def shop(tmp_path, monkeypatch):
    predictions = _predictions()
    label_path = tmp_path / "labels.csv"
    _label_file(label_path, predictions)
    config = _config(tmp_path, label_path)
    store = Store.from_config(config)
    store.prediction_table("shop", {"amount": "numeric"})
    for part in np.array_split(np.arange(N), 3):
        store.log_predictions("shop", predictions.iloc[part])
    service = config.services[0]
    mirror, labels = production_source(store, service), label_source(store, service)

    def no_rows(*args, **kwargs):
        raise AssertionError("the log's rows were read into the process")

    monkeypatch.setattr(mirror, "read", no_rows)
    yield predictions, service, store, mirror, labels
    store.dispose()


def _in_memory(predictions: pd.DataFrame, labels: LabelFileMirror, now: float):
    return join_labels(predictions, read_label_file(labels.config), now=now, source=labels.source)


@pytest.mark.parametrize("days", [1.5, 2.0, 5.0, 10.0])
def test_a_staged_label_file_joins_in_the_engine_as_in_memory(shop, days):
    predictions, _, _, mirror, labels = shop
    now = START + days * DAY
    assert isinstance(mirror, ParquetMirror) and isinstance(labels, LabelFileMirror) and mirror.keeps_labels(labels)
    pushed, direct = mirror.join_labels(labels, now=now), _in_memory(predictions, labels, now)
    assert pushed.quality == direct.quality  # every count and every example
    assert pushed.source == direct.source == labels.source
    labelled = direct.frame[direct.frame["label"].notna()].reset_index(drop=True)
    pd.testing.assert_frame_equal(pushed.frame, labelled, check_dtype=False)
    if days == 5.0:
        quality = pushed.quality
        assert (quality.invalid, quality.unmatched, quality.unknown_class, quality.pending) == (4, 1, 1, 1)
        assert quality.duplicates == 1 and len(quality.examples["invalid"]) == 3
        used = pushed.frame.set_index("id")["label"]
        assert (used["p1"], used["p2"], used["p3"], used["p8"]) == (0.0, 1.0, 1.0, 1.0)


def test_the_pages_sums_of_a_staged_label_file_equal_those_of_the_join_in_memory(shop):
    from monitoring.baseline import Baseline
    from monitoring.label_queries import summarize_labeled
    from monitoring.performance import performance_over_time
    from monitoring.performance_sums import sums_performance

    predictions, _, _, mirror, labels = shop
    now = START + 5 * DAY
    direct = _in_memory(predictions, labels, now)
    summed = mirror.summarize_labels(labels, now=now, judged_days=2.0)
    pd.testing.assert_frame_equal(summed.slices, summarize_labeled(direct, judged_days=2.0).slices,
                                  check_dtype=False, rtol=1e-9)
    kept = mirror.keep_labels(labels, now=now, judged_days=2.0)
    assert kept.quality == direct.quality and kept.source == labels.source
    assert mirror.latest_kept(now=now + 60, max_age=120).path == kept.path
    baseline = Baseline(values={"accuracy": 0.5, "roc_auc": 0.5}, source="configured")
    for window in ("day", "hour"):
        sums = mirror.kept_sums(kept, window=window, now=now, judged_days=2.0, since=START)
        from_sums = sums_performance(sums, kept, baseline=baseline, min_labels=30)
        rows = performance_over_time(direct, window=window, baseline=baseline, min_labels=30, since=START)
        for metric in rows.metrics:
            assert from_sums.overall[metric] == pytest.approx(rows.overall[metric], rel=1e-9), (window, metric)
        pd.testing.assert_frame_equal(from_sums.windows, rows.windows, check_dtype=False, rtol=1e-9)


def test_the_file_is_staged_once_per_change_and_the_newest_copies_stay(shop, monkeypatch):
    import monitoring.staged_labels as staged_labels

    predictions, _, _, mirror, labels = shop
    reads = []
    read = staged_labels.read_label_file
    monkeypatch.setattr(staged_labels, "read_label_file", lambda config: reads.append(1) or read(config))
    now = START + 5 * DAY
    for _ in range(3):
        mirror.join_labels(labels, now=now)
    assert len(reads) == 1  # staged by the first join, found by the others
    folder = mirror.log.engine.location + "/shop/label-files"
    path = labels.config.path
    for turn in range(STAGED_COPIES + 2):  # the file replaced: staged again, and what it now says is joined
        rows = pd.read_csv(path, dtype=str, keep_default_na=False)
        rows.loc[len(rows)] = [f"p{10 + turn}", str(START + DAY), "1"]
        rows.to_csv(path, index=False)
        os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + (turn + 1) * 10**9))
        assert mirror.join_labels(labels, now=now).quality == _in_memory(predictions, labels, now).quality
    assert len(reads) == 1 + STAGED_COPIES + 2
    assert len(list(mirror.log.engine.log.root.joinpath("shop", "label-files").glob("*.parquet"))) == STAGED_COPIES
    assert stage_label_file(labels.config, folder) == stage_label_file(labels.config, folder)


def test_a_label_file_in_parquet_with_true_and_false_labels_joins_as_in_memory(shop, tmp_path):
    predictions, _, _, mirror, _ = shop
    path = tmp_path / "labels.parquet"
    chosen = np.arange(0, N, 3)
    pd.DataFrame({"order": [f"p{i}" for i in chosen], "arrived": predictions["ts"].to_numpy()[chosen] + 600,
                  "truth": chosen % 2 == 0}).to_parquet(path)
    config = _config(tmp_path, path).services[0].labels
    labels = LabelFileMirror(config)
    now = START + 5 * DAY
    pushed = mirror.join_labels(labels, now=now)
    direct = join_labels(predictions, read_label_file(config), now=now)
    assert pushed.quality == direct.quality and pushed.quality.used > 400
    pd.testing.assert_frame_equal(pushed.frame, direct.frame[direct.frame["label"].notna()].reset_index(drop=True),
                                  check_dtype=False)


def test_a_missing_label_file_says_so_as_the_join_in_memory_does(shop):
    _, _, _, mirror, labels = shop
    os.remove(labels.config.path)
    with pytest.raises(LabelDataError) as in_memory:
        read_label_file(labels.config)
    with pytest.raises(LabelDataError) as staged:
        mirror.join_labels(labels, now=START + 5 * DAY)
    assert str(staged.value) == str(in_memory.value) and str(labels.config.path) in str(staged.value)


def test_the_collectors_upkeep_keeps_the_join_of_a_label_file(shop, tmp_path):
    from monitoring.collector import Collector

    predictions, _, store, mirror, labels = shop
    shop_config = _config(tmp_path, labels.config.path)
    collector = Collector(shop_config, store)
    now = START + 5 * DAY
    done = collector.upkeep(now=now)["labels"]["shop"]
    assert done.quality == _in_memory(predictions, labels, now).quality
    assert mirror.latest_kept(now=now + 60, max_age=120).path == done.path



def test_labels_an_older_vantage_kept_in_the_stores_table_join_in_the_engine_as_in_memory(tmp_path, monkeypatch):
    """A store whose labels an older Vantage wrote to its ``labels`` table beside the Parquet log: the labels are
    copied beside the log a chunk at a time (once per change) and joined by DuckDB, never with the log's rows."""
    import monitoring.staged_labels as staged_labels
    from monitoring.labels import StoreLabelMirror

    monkeypatch.setattr(staged_labels, "STORE_LABEL_CHUNK", 100)
    predictions = _predictions()
    config = _config(tmp_path, tmp_path / "unused.csv")
    service = config.services[0].model_copy(update={"labels": None})
    store = Store.from_config(config)
    try:
        store.prediction_table("shop", {"amount": "numeric"})
        store.log_predictions("shop", predictions)
        rng = np.random.default_rng(4)
        chosen = rng.choice(N, N // 3, replace=False)
        labels = pd.DataFrame({"prediction_id": predictions["id"].to_numpy()[chosen],
                               "ts": predictions["ts"].to_numpy()[chosen] + DAY,
                               "label": rng.integers(0, 2, len(chosen)).astype(float)})
        labels.loc[::50, "label"] = np.nan  # counted as invalid, both ways
        labels = pd.concat([labels, labels.iloc[:3].assign(label=1.0)], ignore_index=True)  # later arrivals win
        store.predictions.sql.write_labels("shop", labels)  # where an older Vantage wrote them
        mirror, source = production_source(store, service), label_source(store, service)
        assert isinstance(source, StoreLabelMirror) and mirror.keeps_labels(source)
        monkeypatch.setattr(mirror, "read", lambda **kwargs: pytest.fail("the log's rows were read into the process"))
        for days in (1.5, 5.0):
            now = START + days * DAY
            pushed = mirror.join_labels(source, now=now)
            direct = join_labels(predictions, source.read(), now=now, source=source.source)
            assert pushed.quality == direct.quality and pushed.n_labelled > 50
            labelled = direct.frame[direct.frame["label"].notna()].reset_index(drop=True)
            pd.testing.assert_frame_equal(pushed.frame, labelled, check_dtype=False)
        folder = tmp_path / "log" / "shop" / "store-labels"

        def copies():
            return sorted((p.name for p in folder.glob("*.parquet")), key=lambda name: int(name.split("-")[1]))

        first = len(labels)
        assert copies() == [f"store-0-{first}-{first}.parquet"]
        monkeypatch.setattr(staged_labels, "STORE_LABEL_PARTS", 3)
        for more in (1, 2):  # new labels: only they are copied
            store.predictions.sql.write_labels("shop", labels.iloc[:1])
            assert mirror.join_labels(source, now=START + 5 * DAY).quality.received == first + more
        assert copies() == [f"store-0-{first}-{first}.parquet", f"store-{first}-{first + 1}-1.parquet",
                            f"store-{first + 1}-{first + 2}-1.parquet"]
        store.predictions.sql.write_labels("shop", labels.iloc[:1])
        assert mirror.join_labels(source, now=START + 5 * DAY).quality.received == first + 3
        assert copies() == [f"store-0-{first + 3}-{first + 3}.parquet"]  # merged into one after three copies
        with store.engine.begin() as conn:  # labels deleted from the table: copied again, whole
            conn.exec_driver_sql("DELETE FROM labels WHERE id <= 10")
        pushed = mirror.join_labels(source, now=START + 5 * DAY)
        stored = StoreLabelMirror(store, "shop").read()
        assert pushed.quality == join_labels(predictions, stored, now=START + 5 * DAY).quality
        assert pushed.quality.received == first + 3 - 10
        assert copies() == [f"store-0-{first + 3}-{first + 3 - 10}.parquet"]
    finally:
        store.dispose()
