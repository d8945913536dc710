"""Production data: the store's prediction log mirrored incrementally, prediction-log files, reference checks."""

import pandas as pd
import pytest

from monitoring.config import parse_config
from monitoring.production import (
    FileMirror,
    PredictionLogMirror,
    ProductionDataError,
    production_source,
    read_prediction_log_file,
)
from monitoring.reference import ReferenceDataError, infer_kinds, read_reference

FEATURES = {"age": "numeric", "channel": "categorical"}


@pytest.fixture
def store(store_url):
    """An empty store, on SQLite and on PostgreSQL (``store_url``, tests/fixtures_postgres.py)."""
    from monitoring.store import Store

    store = Store(store_url)
    yield store
    store.dispose()


def rows(ids, ts, ages, channels):
    return pd.DataFrame({"id": ids, "ts": ts, "prediction": 0.0, "age": ages, "channel": channels})


def service_with_log(path, extra=""):
    text = (f'[[services]]\nname = "s"\nurl = "http://x"\nprotocol = "rest"\nfeatures = ["age", "channel"]\n'
            f'[services.prediction_log]\npath = "{path}"\n{extra}')
    return parse_config(text).service("s")


def test_mirror_reads_only_new_rows_and_keeps_categories(store):
    store.prediction_table("svc", FEATURES)
    store.log_predictions("svc", rows(["a", "b"], [1.0, 2.0], [30.0, 40.0], ["web", "branch"]))
    mirror = PredictionLogMirror(store, "svc")
    first = mirror.read()
    assert len(first.frame) == 2 and "2 rows" in first.source
    store.log_predictions("svc", rows(["c"], [3.0], [50.0], ["phone"]))
    calls = []
    original = store.read_prediction_log
    store.read_prediction_log = lambda *a, **kw: calls.append(kw) or original(*a, **kw)
    second = mirror.read().frame
    assert calls == [{"after_seq": 2}]
    assert list(second["id"]) == ["a", "b", "c"]
    assert isinstance(second["channel"].dtype, pd.CategoricalDtype)
    assert set(second["channel"].cat.categories) == {"web", "branch", "phone"}
    assert mirror.read().frame is second  # nothing new: the same frame, no copy


def test_mirror_refuses_a_log_larger_than_it_holds_in_memory_and_names_the_parquet_log(store, monkeypatch):
    import monitoring.production as production

    monkeypatch.setattr(production, "IN_MEMORY_LOG_ROWS", 3)
    store.prediction_table("svc", FEATURES)
    store.log_predictions("svc", rows(["a", "b"], [1.0, 2.0], [30.0, 40.0], ["web", "branch"]))
    mirror = PredictionLogMirror(store, "svc")
    assert len(mirror.read().frame) == 2
    store.log_predictions("svc", rows(["c", "d"], [3.0, 4.0], [50.0, 60.0], ["phone", "web"]))
    calls = []
    original = store.read_prediction_log
    store.read_prediction_log = lambda *a, **kw: calls.append(kw) or original(*a, **kw)
    with pytest.raises(ProductionDataError, match=r"more than the 3 the dashboard reads into memory.*duckdb:var/log"):
        mirror.read()
    assert calls == []  # counted, not read
    with pytest.raises(ProductionDataError, match="more than the 3"):
        PredictionLogMirror(store, "svc").read()  # a fresh process too


def test_mirror_of_a_service_without_log_says_what_to_do(store):
    with pytest.raises(ProductionDataError, match="no prediction log in the store"):
        PredictionLogMirror(store, "nothing").read()


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_prediction_log_files_in_every_format(tmp_path, suffix):
    frame = pd.DataFrame({"time": ["2026-11-01T10:00:00Z", "2026-11-01T09:00:00Z"], "age": [30, 40],
                          "channel": ["web", "phone"], "pred": [1, 0], "pid": ["x", "y"]})
    path = tmp_path / f"log{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_json(path, orient="records", lines=True)
    service = service_with_log(path, 'timestamp = "time"\nid = "pid"\nprediction = "pred"\n')
    source = production_source(None, service)
    assert isinstance(source, FileMirror)
    data = source.read()
    assert list(data.frame["id"]) == ["y", "x"]  # sorted by time
    assert data.frame["ts"].iloc[0] == pd.Timestamp("2026-11-01T09:00:00Z").timestamp()
    assert list(data.frame.columns) == ["ts", "id", "prediction", "age", "channel"]
    assert source.read().frame is data.frame  # unchanged file: not read again


def test_prediction_log_file_problems_name_the_file_and_columns(tmp_path):
    path = tmp_path / "log.csv"
    pd.DataFrame({"ts": ["yesterday"], "age": [1]}).to_csv(path, index=False)
    config = service_with_log(path).prediction_log
    with pytest.raises(ProductionDataError, match=r"lacks columns \['channel'\]"):
        read_prediction_log_file(config, features=("age", "channel"))
    with pytest.raises(ProductionDataError, match=r"Unix seconds or ISO 8601.*'yesterday'"):
        read_prediction_log_file(config, features=("age",))
    missing = config.model_copy(update={"path": str(tmp_path / "none.csv")})
    with pytest.raises(ProductionDataError, match="does not exist"):
        read_prediction_log_file(missing, features=())


def test_reference_checks_name_the_file_and_columns(tmp_path):
    good = tmp_path / "ref.csv"
    pd.DataFrame({"age": [30, 40], "channel": ["web", "phone"], "y": [0, 1]}).to_csv(good, index=False)
    frame = read_reference(good, features=("age", "channel"), target="y")
    assert infer_kinds(frame.drop(columns="y")) == FEATURES
    with pytest.raises(ReferenceDataError, match=r"lacks columns \['income'\]"):
        read_reference(good, features=("age", "income"))
    stray = tmp_path / "stray.csv"
    pd.DataFrame({"age": [str(v) for v in range(30)] + ["unknown"], "channel": ["web"] * 31}).to_csv(stray, index=False)
    stray_message = r"text in numeric column\(s\): 'age' \(1 value\(s\) such as 'unknown'\)"
    with pytest.raises(ReferenceDataError, match=stray_message):
        read_reference(stray, features=("age", "channel"))
    declared = tmp_path / "declared.csv"
    pd.DataFrame({"age": ["old", "young"], "channel": ["web", "web"]}).to_csv(declared, index=False)
    with pytest.raises(ReferenceDataError, match="'age'"):
        read_reference(declared, features=("age",), kinds={"age": "numeric"})
    empty = tmp_path / "empty.csv"
    empty.write_text("age,channel\n")
    with pytest.raises(ReferenceDataError, match="no rows"):
        read_reference(empty)
    with pytest.raises(ReferenceDataError, match=r"unsupported type '\.xlsx'"):
        read_reference(tmp_path / "ref.xlsx")


def test_a_changed_file_is_read_again_and_an_unchanged_one_is_not(tmp_path):
    import os

    from monitoring.files import ChangedFile, read_table_file

    path = tmp_path / "rows.csv"
    path.write_text("a\n1\n")
    reads = []

    def load():
        reads.append(1)
        return read_table_file(path, what="test file", readers={".csv": pd.read_csv})

    cached = ChangedFile(path, load)
    assert cached.get()["a"].tolist() == [1] and cached.get()["a"].tolist() == [1]
    assert len(reads) == 1
    path.write_text("a\n1\n2\n")
    os.utime(path, (1_000_000_000, 1_000_000_000))
    assert cached.get()["a"].tolist() == [1, 2] and len(reads) == 2
    with pytest.raises(ValueError, match=r"test file .*rows\.json: unsupported type '\.json'; accepted: \.csv"):
        read_table_file(tmp_path / "rows.json", what="test file", readers={".csv": pd.read_csv})
