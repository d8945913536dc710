"""Known answers for the pure functions the dashboard's pages and caches call (moved out of dashboard/)."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from explain._errors import ExplainError
from explain.segment_tables import categorical_features, interval_texts, judged_text, report_feature, top_features
from explain.whatif_inputs import needs_labels, whatif_model
from explain.windows import available_windows, reference_sample, window_rows
from monitoring.drift_tables import feature_table, newest_closed_window, window_features, window_labels
from monitoring.labels import LabeledPredictions, LabelQuality
from monitoring.overview_lines import model_line, shows_money, status_line
from monitoring.performance_tables import day_text, has_decision_threshold, window_periods, window_status
from monitoring.reference import ReferenceDataError
from monitoring.schema import ServiceSchema
from monitoring.service_reference import service_features, service_reference_rows

DAY = 86400.0


def test_service_features_names_the_problem():
    assert service_features(ServiceSchema("s", ("a", "b")), service="s") == ("a", "b")
    with pytest.raises(ReferenceDataError, match="no features: target only"):
        service_features(ServiceSchema("s", (), problems=("target only",)), service="s")


def test_service_reference_rows_drops_the_target_and_says_why_none(tmp_path):
    path = tmp_path / "ref.csv"
    pd.DataFrame({"a": [1, 2], "b": ["x", "y"], "y": [0, 1]}).to_csv(path, index=False)
    rows, problem = service_reference_rows(str(path), schema=ServiceSchema("s", ("a", "b")), drop=("y",))
    assert problem is None and list(rows.columns) == ["a", "b"] and rows["a"].tolist() == [1, 2]
    assert service_reference_rows(None, schema=ServiceSchema("s", ("a",))) == (
        None, "service s has no reference data configured ([[services]] reference)")
    rows, problem = service_reference_rows(str(path), schema=ServiceSchema("s", ("missing",)))
    assert rows is None and "missing" in problem


def _report():
    dataset = pd.DataFrame({"window": [0, 1, 2], "window_start": pd.to_datetime([0, DAY, 2 * DAY], unit="s"),
                            "partial": [False, False, True]})
    features = pd.DataFrame({"window": [1, 1, 1], "feature": ["b", "a", "c"], "status": ["stable", "stable", "drifted"],
                             "method": ["psi", "ks", "psi"], "score": [0.01, 0.5, 0.4], "threshold": [0.1, 0.05, 0.1],
                             "noise": [0.02, np.nan, 0.02], "n": [10, 10, 10], "n_missing": [0, 1, 0],
                             "n_unseen": [0, 0, 2], "reason": ["", "", "x"]})
    return SimpleNamespace(dataset=dataset, features=features)


def test_drift_window_names_and_the_newest_closed_window():
    report = _report()
    assert window_labels(report) == {0: "01 Jan 1970 00:00", 1: "02 Jan 1970 00:00", 2: "03 Jan 1970 00:00 (so far)"}
    assert newest_closed_window(report) == 1


def test_drift_window_features_drifted_first_then_by_name():
    rows = window_features(_report(), 1)
    assert rows["feature"].tolist() == ["c", "a", "b"]
    table = feature_table(rows, text=str.upper)
    distance = "distance at or above threshold and above noise"
    assert table["Drifted when"].tolist() == [distance, "p-value below threshold", distance]
    assert table["Why not judged"].tolist() == ["X", "", ""] and table.index.tolist() == [0, 1, 2]


def test_overview_lines():
    assert status_line(state="down", reason=None, checked="5 s ago") == "Status: down (checked 5 s ago)."
    assert model_line(name="m", version=None, age_seconds=float("nan")) == "Model: m."
    assert model_line(name="m", version="3", age_seconds=None) == "Model: m, version 3."
    assert model_line(name="m", version="3", age_seconds=7200).startswith("Model: m, version 3, serving for 2")


def test_shows_money_only_for_two_classes_with_business_values():
    two = SimpleNamespace(task="classification", classes=(0.0, 1.0))
    three = SimpleNamespace(task="classification", classes=(0.0, 1.0, 2.0))
    priced, free = SimpleNamespace(has_business_values=True), SimpleNamespace(has_business_values=False)
    assert shows_money(priced, two) and not shows_money(priced, three)
    assert not shows_money(free, two) and not shows_money(priced, None)


def test_performance_periods_and_status():
    windows = pd.DataFrame({"window_start": [0.0, DAY + 3600], "n_labelled": [1200, 3], "partial": [False, True]})
    assert window_periods(windows) == {"The whole range": (0.0, None),
                                       "Window from 02 Jan 1970 01:00 (3 labels, so far)": (DAY + 3600, None),
                                       "Window from 01 Jan 1970 (1,200 labels)": (0.0, DAY + 3600)}
    assert window_periods(windows.iloc[:0]) == {"The whole range": (None, None)}
    table = pd.DataFrame({"partial": [True, True, False, False], "enough_labels": [True, False, False, True]})
    assert window_status(table) == ["so far", "so far, too few labels", "too few labels", ""]
    assert day_text(0.0) == "01 Jan 1970"


def test_decision_threshold_needs_two_classes_and_scores():
    result = SimpleNamespace(task="classification", classes=(0.0, 1.0))
    assert has_decision_threshold(result, SimpleNamespace(has_score=True))
    assert not has_decision_threshold(result, SimpleNamespace(has_score=False))
    assert not has_decision_threshold(SimpleNamespace(task="classification", classes=(0.0, 1.0, 2.0)),
                                      SimpleNamespace(has_score=True))
    for scores, scored in (([0.2, np.nan], True), ([np.nan, np.nan], False)):
        labeled = LabeledPredictions(frame=pd.DataFrame({"score": scores}), quality=LabelQuality(),
                                     task="classification", classes=(0.0, 1.0), now=0.0)
        assert labeled.has_score is scored


class _Log:
    def __init__(self, frame):
        self.frame = frame

    def has_rows(self):
        return len(self.frame) > 0

    def find(self, *, since=None, until=None, limit=50, newest_first=True, **_):
        rows = self.frame[(self.frame["ts"] >= since) & (self.frame["ts"] < until)]
        return rows.sort_values("ts", ascending=not newest_first).head(limit)


def test_explain_windows():
    reference = pd.DataFrame({"a": range(10)})
    assert reference_sample(reference, 3).index.tolist() == [0, 1, 2]
    assert len(reference_sample(reference, 50)) == 10
    assert len(window_rows("reference", reference=reference, reference_problem=None, logged=None, service="s",
                           now=0.0, n_rows=4)) == 4
    with pytest.raises(ExplainError, match="no reference data: none set"):
        window_rows("reference", reference=None, reference_problem="none set", logged=None, service="s", now=0.0,
                    n_rows=4)
    log = _Log(pd.DataFrame({"id": ["p1", "p2"], "ts": [10 * DAY - 60, 2 * DAY], "a": [1, 2]}))
    assert window_rows("24h", reference=None, reference_problem=None, logged=log, service="s", now=10 * DAY,
                       n_rows=10)["id"].tolist() == ["p1"]
    with pytest.raises(ExplainError, match="last 24 hours"):
        window_rows("24h", reference=None, reference_problem=None, logged=log, service="s", now=20 * DAY, n_rows=10)
    with pytest.raises(ValueError, match="window must be one of"):
        window_rows("1y", reference=None, reference_problem=None, logged=log, service="s", now=0.0, n_rows=1)
    assert list(available_windows(has_reference=True, has_log=False)) == ["reference"]
    assert list(available_windows(has_reference=False, has_log=True)) == ["24h", "7d", "30d"]


def test_whatif_model_keeps_the_service_or_the_local_artifact():
    remote = SimpleNamespace(kind="remote")
    local = SimpleNamespace(kind="local", features=("a",), feature_kinds={"a": "numeric"})
    assert whatif_model(remote, SimpleNamespace(explain=SimpleNamespace(source="auto")), reference=None) is remote
    assert whatif_model(local, SimpleNamespace(explain=SimpleNamespace(source="local")), reference=None) is local
    assert needs_labels("error") and not needs_labels("recent")


def test_segment_tables():
    frame = pd.DataFrame({"age": [30, 40], "city": ["a", "b"], "name": ["x", "y"],
                          "kind": pd.Categorical(["u", "v"])})
    assert categorical_features(frame, ["age", "city", "name", "kind"]) == ["city", "name", "kind"]
    assert report_feature(frame, ["age", "name", "city"], personal=("name",)) == "city"
    assert report_feature(frame, ["age"]) is None
    table = pd.DataFrame({"accuracy_low": [0.8, np.nan], "accuracy_high": [0.9, 0.5]})
    assert interval_texts(table, ["accuracy", "f1"])["accuracy_interval"].tolist() == ["0.800–0.900", "–"]
    assert judged_text(pd.Series([True, False])).tolist() == ["too small to judge", "yes"]
    importance = pd.DataFrame({"segment": ["s2", "s2", "s1"], "rank": [1, 2, 1], "feature": ["a", "b", "c"],
                               "mean_abs_shap": [0.3, 0.2, 0.1], "n_explained": [5, 5, 7]})
    assert top_features(importance).to_dict("records") == [
        {"segment": "s2", "top_features": "a, b", "explained": 5},
        {"segment": "s1", "top_features": "c", "explained": 7}]
