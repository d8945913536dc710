"""Ground-truth labels: sources, the join to predictions, bad input counted exactly, POST /labels."""

import time

import numpy as np
import pandas as pd
import pytest
import requests

from monitoring.config import ConfigError, parse_config
from monitoring.labels import (
    LabelDataError,
    LabelFileMirror,
    LabelQuality,
    LogLabels,
    StoreLabelMirror,
    infer_task,
    join_labels,
    label_records,
    label_source,
    predicted_classes,
    read_label_file,
)

NOW = 1_000_000.0


@pytest.fixture
def store(store_url):
    """An empty store, on SQLite and on PostgreSQL (``store_url``, tests/fixtures_postgres.py)."""
    from monitoring.store import Store

    store = Store(store_url)
    yield store
    store.dispose()


def predictions(n=10, *, score=True):
    frame = pd.DataFrame({"id": [f"p{i}" for i in range(n)], "ts": np.arange(n, dtype=float) * 100.0,
                          "prediction": np.arange(n) % 2 * 1.0})
    if score:
        frame["score"] = np.linspace(0.05, 0.95, n)
    return frame


def raw_labels(rows):
    """Rows of (prediction_id, arrival ts, label), kept as given (mixed types on purpose)."""
    ids, ts, values = zip(*rows, strict=True)
    return pd.DataFrame({"prediction_id": pd.Series(ids, dtype=object), "ts": pd.Series(ts, dtype=object),
                         "label": pd.Series(values, dtype=object)})


def service_config(extra=""):
    text = f'[[services]]\nname = "s"\nurl = "http://x"\nprotocol = "rest"\n{extra}'
    return parse_config(text).service("s")


def test_every_kind_of_bad_label_is_counted_exactly():
    labels = raw_labels([
        ("p0", 10.0, 0), ("p1", 11.0, 1), ("p2", 12.0, 1),           # used as they are
        ("p3", 13.0, 1), ("p3", 30.0, 0), ("p3", 20.0, 1),           # p3 three times: the latest (0) wins
        ("ghost-1", 10.0, 1), ("ghost-2", 10.0, 0), ("ghost-2", 11.0, 0),  # three labels of unknown ids
        (None, 10.0, 1), ("", 10.0, 1), ("p4", 10.0, "yes"), ("p5", "not a time", 1), ("p6", 10.0, None),
        ("p7", 10.0, 2), ("p8", 10.0, 7.0),                          # classes a 0/1 model never predicts
        ("p9", NOW + 1, 1),                                          # arrives after now
    ])
    result = join_labels(predictions(), labels, now=NOW)
    quality = result.quality
    assert (quality.received, quality.used, quality.unmatched, quality.duplicates, quality.invalid,
            quality.unknown_class, quality.pending) == (16, 4, 3, 2, 5, 2, 1)
    assert quality.received == quality.used + quality.problems
    labelled = result.frame.set_index("id")["label"]
    assert labelled[["p0", "p1", "p2", "p3"]].tolist() == [0.0, 1.0, 1.0, 0.0]
    assert labelled.drop(["p0", "p1", "p2", "p3"]).isna().all()
    assert result.frame.set_index("id").loc["p3", "label_ts"] == 30.0
    sentences = quality.sentences()
    assert sentences[0].startswith("3 labels matched no prediction (such as 'ghost-1', 'ghost-2', 'ghost-2')")
    assert any(s.startswith("2 labels were superseded by a later label") and "'p3'" in s for s in sentences)
    assert any(s.startswith("5 labels could not be read") for s in sentences)
    assert any(s.startswith("2 labels hold a class the model never predicts (such as 2, 7)") for s in sentences)
    assert sentences[-1] == "4 predictions have a label, from 16 labels received; 1 more will arrive later."


def test_clean_labels_report_one_sentence():
    result = join_labels(predictions(3), raw_labels([("p0", 1.0, 0), ("p1", 2.0, 1)]), now=NOW)
    assert result.quality == LabelQuality(received=2, used=2)
    assert result.quality.sentences() == ["2 predictions have a label, from 2 labels received."]
    assert result.n_labelled == 2


def test_labels_count_only_once_they_have_arrived():
    labels = raw_labels([("p0", 50.0, 1), ("p1", 150.0, 0), ("p2", 250.0, 1)])
    early, late = (join_labels(predictions(), labels, now=now) for now in (100.0, 1000.0))
    assert (early.n_labelled, early.quality.pending) == (1, 2)
    assert (late.n_labelled, late.quality.pending) == (3, 0)
    assert late.median_delay_seconds == pytest.approx(50.0)


def test_a_binary_model_knows_both_classes_even_when_it_predicted_one():
    only_zeros = predictions(4, score=False).assign(prediction=0.0)
    assert predicted_classes(only_zeros) == (0.0, 1.0)
    result = join_labels(only_zeros, raw_labels([("p0", 1.0, 1), ("p1", 1.0, 0)]), now=NOW)
    assert result.quality.unknown_class == 0 and result.n_labelled == 2


def test_task_is_inferred_from_the_predictions():
    assert infer_task(predictions()) == "classification"
    assert infer_task(pd.DataFrame({"prediction": [0.0, 2.0, 1.0, 2.0]})) == "classification"
    assert infer_task(pd.DataFrame({"prediction": [0.5, 12.25, 3.0]})) == "regression"
    regression = pd.DataFrame({"id": ["a", "b"], "ts": [1.0, 2.0], "prediction": [1.5, 2.5]})
    result = join_labels(regression, raw_labels([("a", 1.0, 1.7), ("b", 1.0, 99.0)]), now=NOW)
    assert result.task == "regression" and result.classes == ()
    assert result.quality.unknown_class == 0 and result.n_labelled == 2  # any number is a valid label
    assert join_labels(predictions(), raw_labels([("p0", 1.0, 1)]), now=NOW, task="regression").task == "regression"


def test_joining_needs_prediction_ids_and_says_so():
    with pytest.raises(LabelDataError, match=r"no 'id' column.*\[services.prediction_log\] id"):
        join_labels(predictions().drop(columns="id"), raw_labels([("p0", 1.0, 1)]), now=NOW)
    with pytest.raises(LabelDataError, match="missing"):
        join_labels(predictions(), pd.DataFrame({"prediction_id": ["p0"]}), now=NOW)
    with pytest.raises(ValueError, match="task must be"):
        join_labels(predictions(), raw_labels([("p0", 1.0, 1)]), task="ranking")


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_label_files_with_their_own_column_names(tmp_path, suffix):
    path = tmp_path / f"truth{suffix}"
    frame = pd.DataFrame({"pid": ["p0", "p1", "p2", "007"], "y": [1, 0, 1, 1],
                          "arrived": ["1970-01-01T00:00:10Z", "1970-01-01T00:00:20Z", "2100-01-01T00:00:00Z",
                                      "1970-01-01T00:00:10Z"]})
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)
    config = parse_config(
        f'[[services]]\nname = "s"\nurl = "http://x"\nprotocol = "rest"\n[services.labels]\npath = "{path.name}"\n'
        'id = "pid"\nlabel = "y"\nts = "arrived"\n', base_dir=tmp_path).service("s")
    assert config.labels.path == str(path)  # relative to the configuration file
    source = label_source(store=None, service=config)
    assert isinstance(source, LabelFileMirror) and source.source.startswith("label file")
    raw = source.read()
    assert raw["prediction_id"].tolist() == ["p0", "p1", "p2", "007"]  # leading zeros kept
    result = join_labels(predictions(3), raw, now=NOW)
    assert (result.n_labelled, result.quality.pending, result.quality.unmatched) == (2, 1, 1)
    assert result.frame["label_ts"].iloc[:2].tolist() == [10.0, 20.0]


def test_label_file_without_arrival_times_counts_every_label_as_arrived(tmp_path):
    path = tmp_path / "labels.csv"
    pd.DataFrame({"prediction_id": ["p0", "p1"], "label": [1, 0]}).to_csv(path, index=False)
    mirror = LabelFileMirror(service_config(f'[services.labels]\npath = "{path}"\n').labels)
    result = join_labels(predictions(3), mirror.read(), now=0.0)
    assert result.n_labelled == 2 and np.isnan(result.median_delay_seconds)
    pd.DataFrame({"prediction_id": ["p0", "p1", "p2"], "label": [1, 0, 1]}).to_csv(path, index=False)
    assert len(mirror.read()) == 3  # read again after the file changed


def test_label_file_problems_name_the_file_and_the_columns(tmp_path):
    path = tmp_path / "labels.csv"
    pd.DataFrame({"id": ["p0"], "label": [1]}).to_csv(path, index=False)
    with pytest.raises(LabelDataError, match=r"lacks columns \['prediction_id'\]; it has \['id', 'label'\]"):
        read_label_file(service_config(f'[services.labels]\npath = "{path}"\n').labels)
    with pytest.raises(LabelDataError, match=r"unsupported type '\.txt'; accepted: \.csv, \.parquet, \.pq"):
        read_label_file(service_config(f'[services.labels]\npath = "{tmp_path / "l.txt"}"\n').labels)
    with pytest.raises(LabelDataError, match="does not exist"):
        read_label_file(service_config(f'[services.labels]\npath = "{tmp_path / "none.csv"}"\n').labels)


def test_store_mirror_reads_only_new_labels(store):
    store.write_labels("svc", pd.DataFrame({"prediction_id": ["a", "b"], "ts": [1.0, 2.0], "label": [1, 0]}))
    store.write_labels("other", pd.DataFrame({"prediction_id": ["x"], "ts": [1.0], "label": [1]}))
    mirror = StoreLabelMirror(store, "svc")
    assert mirror.read()["prediction_id"].tolist() == ["a", "b"]
    first_row = mirror._last_row
    store.write_labels("svc", pd.DataFrame({"prediction_id": ["c"], "ts": [3.0], "label": [np.nan]}))
    frame = mirror.read()
    assert frame["prediction_id"].tolist() == ["a", "b", "c"] and mirror._last_row > first_row
    assert np.isnan(frame["label"].iloc[-1])
    assert isinstance(label_source(store, service_config()), StoreLabelMirror)


def test_labels_and_performance_settings_are_validated():
    service = service_config('[services.performance]\nbaseline = {accuracy = 0.87, roc_auc = 0.85}\n'
                             'cost_false_negative = 500\n')
    assert service.labels is None
    assert service.performance.baseline == {"accuracy": 0.87, "roc_auc": 0.85}
    assert service.performance.has_business_values and service.performance.threshold == 0.5
    assert not service_config().performance.has_business_values
    with pytest.raises(ConfigError) as info:
        service_config('[services.performance]\nbaseline = {acuracy = 0.9}\nwindow = "fortnight"\n')
    text = "\n".join(info.value.problems)
    assert "services[0].performance.baseline: metric names must be among accuracy, precision" in text
    assert "got acuracy" in text
    assert "services[0].performance.window: must be 'hour', 'day', 'week'" in text and "'fortnight'" in text
    with pytest.raises(ConfigError, match=r"services\[0\].labels.path: required key is missing"):
        service_config('[services.labels]\nid = "pid"\n')


def test_label_records_say_why_each_rejected_one_is_wrong():
    checked = label_records([
        {"prediction_id": "a", "label": 1}, {"prediction_id": 42, "label": True, "ts": 5.0},
        {"prediction_id": "b", "label": "yes"}, {"label": 1}, "nonsense", {"prediction_id": "c", "label": 1, "x": 1},
        {"prediction_id": "d" * 65, "label": 0}, {"prediction_id": "e", "label": 0, "ts": "today"},
    ], now=100.0)
    assert checked.frame.to_dict("list") == {"prediction_id": ["a", "42"], "ts": [100.0, 5.0], "label": [1.0, 1.0]}
    reasons = {r["index"]: r["reason"] for r in checked.rejected}
    assert reasons[2] == "label must be a finite number (true/false count as 1/0); got 'yes'"
    assert reasons[3].startswith("prediction_id must be a non-empty string or integer; got None")
    assert reasons[4] == "must be an object with prediction_id and label; got str"
    assert reasons[5] == "unknown keys ['x']; accepted: prediction_id, label, ts"
    assert reasons[6] == "prediction_id must have at most 64 characters; got 65"
    assert reasons[7] == "ts must be the arrival time in Unix seconds; got 'today'"
    with pytest.raises(ValueError, match="'labels' must be a list of objects"):
        label_records({"prediction_id": "a"})


@pytest.mark.integration
def test_post_labels_through_the_demo_service(demo_runtime, demo_model):
    from monitoring.reference import read_reference

    rows = read_reference(demo_model.reference_path, features=tuple(demo_model.features)).head(4)
    service = demo_runtime.config.service("credit-risk-rest")
    instances = rows.astype(object).where(rows.notna(), None).to_dict("records")
    answer = requests.post(f"{service.url}/predict", json={"instances": instances}, timeout=10).json()
    ids = answer["ids"]
    body = {"labels": [{"prediction_id": ids[0], "label": 1}, {"prediction_id": ids[1], "label": 0, "ts": 1.0},
                       {"prediction_id": ids[2], "label": "late"}, {"prediction_id": "no-such-id", "label": 1}]}
    response = requests.post(f"{service.url}/labels", json=body, timeout=10)
    assert response.status_code == 200
    assert response.json() == {"received": 4, "written": 3, "rejected": 1, "problems": [
        {"index": 2, "reason": "label must be a finite number (true/false count as 1/0); got 'late'"}]}

    demo_runtime.flush_predictions()
    from monitoring.production import production_source

    labels = label_source(demo_runtime.store, service)
    assert isinstance(labels, LogLabels)  # kept beside the Parquet log, joined there
    result = production_source(demo_runtime.store, service).join_labels(labels, now=time.time())
    labelled = result.frame.set_index("id")["label"]
    assert labelled[ids[0]] == 1.0 and labelled[ids[1]] == 0.0 and ids[2] not in labelled.index
    assert result.quality.unmatched >= 1 and "no-such-id" not in result.frame["id"].tolist()
    assert result.served_hours["n"].sum() >= 4

    bad = requests.post(f"{service.url}/labels", json={"label": []}, timeout=10)
    assert bad.status_code == 400 and "got keys ['label']" in bad.json()["detail"]
    not_a_list = requests.post(f"{service.url}/labels", json={"labels": "p1"}, timeout=10)
    assert not_a_list.status_code == 400 and "got str" in not_a_list.json()["detail"]
