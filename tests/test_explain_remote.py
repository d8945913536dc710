"""The service as a black box: batched requests, agreement with local explainers, failures."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import shap
from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor

from explain import (
    LocalModel,
    RemoteExplainError,
    RemoteModel,
    ShapExplainer,
    check_against_service,
    open_model_source,
    partial_dependence,
)
from explain._data import sample_prediction_log
from monitoring.clients import Predictions, ServiceError
from monitoring.config import ServiceConfig

BLACK_BOX_TOLERANCE = 0.05
"""Largest |difference| (log-odds) allowed between black-box permutation SHAP (10 permutations,
forward and back) and TreeExplainer's interventional values over the same background; the
values themselves reach about 1.5, and with 100 permutations the two agree to 0.005."""


class FakeClient:
    """A client answering from a local estimator; request ``fail_on`` (1-based) fails."""

    _predict_call = "POST /predict"

    def __init__(self, estimator, *, fail_on: int | None = None, regression: bool = False):
        self.estimator = estimator
        self.fail_on = fail_on
        self.regression = regression
        self.calls = 0
        self.session = type("Session", (), {"headers": {}})()

    def metadata(self):
        raise ServiceError("GET /model", "http", "HTTP 404: not found", status=404)

    def predict(self, X):
        self.calls += 1
        if self.fail_on == self.calls:
            raise ServiceError(self._predict_call, "http", "HTTP 503: model is reloading", status=503)
        if self.regression:
            return Predictions(self.estimator.predict(X), None, 1.0, 1)
        proba = self.estimator.predict_proba(X)
        return Predictions(proba.argmax(axis=1), proba, 1.0, 1)


def unpaced(service: ServiceConfig) -> ServiceConfig:
    """``service`` with a traffic budget large enough for one request per explanation (these tests count them)."""
    explain = service.explain.model_copy(update={"max_rows_per_request": 50_000, "max_rows_per_second": 1e6})
    return service.model_copy(update={"explain": explain})


def service_config(**kw) -> ServiceConfig:
    return ServiceConfig(name="fake", url="http://127.0.0.1:9", protocol="rest", **kw)


def numeric_frame(n=300, classes=3, random_state=0):
    rng = np.random.default_rng(random_state)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.normal(size=n)})
    y = np.digitize(X["a"] + 0.5 * X["b"] + rng.normal(0, 0.3, n), [-0.5, 0.5][: classes - 1])
    return X, y


# -- black box without a server ---------------------------------------------------------------


def test_multiclass_black_box_learns_the_task_and_explains_every_class():
    X, y = numeric_frame()
    estimator = GradientBoostingClassifier(n_estimators=20, random_state=0).fit(X, y)
    client = FakeClient(estimator)
    remote = RemoteModel(service_config(), features=list(X.columns), X_sample=X, client=client)
    assert remote.task_text() == "classification into 3 classes"
    assert remote.output_names() == ("class 0", "class 1", "class 2")
    explainer = ShapExplainer(remote, X, background_rows=30)
    values = explainer.explain(X.iloc[:2])
    assert values.values.shape == (2, 3, 3) and values.requests == 1  # background and rows in one request
    np.testing.assert_allclose(np.stack([values.outputs(k) for k in range(3)], 1), estimator.predict_proba(X.iloc[:2]))
    again = explainer.explain(X.iloc[[5]])
    assert again.requests == 1 and again.model_rows < values.model_rows  # the background's answers are kept
    local = ShapExplainer(LocalModel(estimator, features=list(X.columns)), X, method="permutation",
                          background_rows=30).explain(X.iloc[:2])
    np.testing.assert_allclose(values.values, local.values, atol=1e-12)


def test_regression_black_box_explains_the_predicted_value():
    X, _ = numeric_frame()
    estimator = GradientBoostingRegressor(n_estimators=20).fit(X, X["a"] ** 2 + X["b"])
    remote = RemoteModel(service_config(), features=list(X.columns), X_sample=X,
                         client=FakeClient(estimator, regression=True))
    assert remote.task == "regression"
    values = ShapExplainer(remote, X, background_rows=20).explain(X.iloc[:3])
    assert values.space == "value"
    np.testing.assert_allclose(values.outputs(), estimator.predict(X.iloc[:3]), atol=1e-12)
    result = partial_dependence(remote, X.iloc[:50], "a", grid_resolution=7)
    assert result.requests == 1 and result.average.shape == (1, 7)


def test_a_request_failing_mid_explanation_names_it_and_returns_nothing_partial():
    X, y = numeric_frame(classes=2)
    estimator = GradientBoostingClassifier(n_estimators=10).fit(X, y)
    client = FakeClient(estimator)
    remote = RemoteModel(service_config(), features=list(X.columns), client=client, max_rows=100)
    explainer = ShapExplainer(remote, X, background_rows=20)
    client.fail_on = client.calls + 3
    with pytest.raises(RemoteExplainError) as caught:
        explainer.explain(X.iloc[:4])
    error = caught.value
    assert error.request == 3 and error.n_requests > 3 and error.call == "POST /predict"
    assert "HTTP 503: model is reloading" in error.message and "no partial result" in error.message
    with pytest.raises(RemoteExplainError, match=r"request 1 of 10 \(POST /predict, 100 rows\) failed"):
        client.fail_on = client.calls + 1
        partial_dependence(remote, X.iloc[:50], "a", grid_resolution=20)


def test_open_model_source_reports_a_service_it_cannot_reach():
    X, _ = numeric_frame()
    from explain import ExplainError

    with pytest.raises(ExplainError, match=r"cannot be used as a black box: POST /predict: .*refused"):
        open_model_source(service_config(features=("a", "b", "c"), timeout=1), X)


# -- the real demo service ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_reference(demo_model):
    from demo.model import load_reference

    return load_reference(demo_model)[list(demo_model.features)]


@pytest.mark.integration
def test_black_box_shap_through_the_demo_service_agrees_with_local_tree_explainer(demo_runtime, demo_reference):
    service = unpaced(demo_runtime.config.service("credit-risk"))
    selected = open_model_source(service, demo_reference)
    remote = selected.model
    assert isinstance(remote, RemoteModel) and remote.binary and remote.version == demo_runtime.model.version
    explainer = ShapExplainer(remote, demo_reference, space="log_odds", background_rows=100)
    explainer.warm_up()
    before = remote.requests
    rows = demo_reference.iloc[[11, 12]]
    black_box = explainer.explain(rows)
    assert remote.requests - before == 1 and black_box.requests == 1  # both rows in one request
    local = LocalModel(demo_runtime.model.pipeline, features=list(demo_runtime.model.features))
    tree = shap.TreeExplainer(local.final_estimator, data=local.transform(explainer.background),
                              feature_perturbation="interventional", model_output="raw")
    expected = tree.shap_values(local.transform(rows)) @ local.column_map.matrix(len(local.features))
    difference = np.abs(black_box.values[:, :, 0] - expected)
    assert difference.max() < BLACK_BOX_TOLERANCE, difference.max()
    np.testing.assert_allclose(black_box.outputs(), tree.expected_value + expected.sum(axis=1), atol=1e-9)
    for i in range(2):
        assert np.argmax(np.abs(black_box.values[i, :, 0])) == np.argmax(np.abs(expected[i]))


@pytest.mark.integration
def test_explanation_requests_are_not_logged_as_predictions(demo_runtime, demo_reference):
    store, name = demo_runtime.store, "credit-risk"
    demo_runtime.flush_predictions()
    before = store.count_predictions(name)
    remote = open_model_source(demo_runtime.config.service(name), demo_reference).model
    ShapExplainer(remote, demo_reference, background_rows=20).explain(demo_reference.iloc[:1])
    time.sleep(0.6)
    demo_runtime.flush_predictions()
    assert store.count_predictions(name) == before


@pytest.mark.integration
def test_remote_partial_dependence_equals_sklearn_brute_force_in_one_request(demo_runtime, demo_reference):
    from sklearn.inspection import partial_dependence as sklearn_partial_dependence

    remote = open_model_source(unpaced(demo_runtime.config.service("credit-risk")), demo_reference).model
    X = demo_reference.iloc[:300]
    before = remote.requests
    result = partial_dependence(remote, X, "credit_utilization", grid_resolution=20, ice_lines=300,
                                highlight=demo_reference.iloc[[400]])
    assert remote.requests - before == 1 and result.requests == 1
    expected = sklearn_partial_dependence(demo_runtime.model.pipeline, X, ["credit_utilization"], method="brute",
                                          custom_values={"credit_utilization": result.grid[0]}, kind="both")
    np.testing.assert_allclose(result.average, expected["average"], atol=1e-12)
    np.testing.assert_allclose(result.individual, expected["individual"], atol=1e-12)
    categorical = partial_dependence(remote, X, "channel")
    local = partial_dependence(LocalModel(demo_runtime.model.pipeline, features=list(demo_reference.columns)), X,
                               "channel")
    np.testing.assert_allclose(categorical.average, local.average, atol=1e-12)


@pytest.mark.integration
def test_auto_source_checks_the_artifact_and_warns_when_it_is_another_model(demo_runtime, demo_reference, tmp_path):
    import skops.io

    from demo.data import TARGET, generate_reference
    from demo.model import train_model

    rest = demo_runtime.config.service("credit-risk-rest")
    selected = open_model_source(rest, demo_reference)
    assert selected.model.kind == "local" and selected.consistency.agrees
    assert "predicts what the service predicts" in selected.consistency.message
    other = train_model(generate_reference(3000, random_state=7), random_state=7)
    skops.io.dump(other, tmp_path / "other.skops")
    assert TARGET not in demo_reference.columns
    changed = rest.model_copy(update={"explain": rest.explain.model_copy(update={"artifact": str(tmp_path /
                                                                                                 "other.skops")})})
    selected = open_model_source(changed, demo_reference)
    assert selected.consistency.agrees is False
    assert "the artifact is not the model being served" in selected.consistency.message
    again = check_against_service(selected.model, changed, demo_reference.iloc[:20])
    assert again.rows == 20 and again.max_abs_diff > 1e-3
    later = open_model_source(rest, demo_reference, check=False)
    assert later.consistency is None and check_against_service(later.model, rest, demo_reference.iloc[:50]).agrees


def test_sample_of_the_prediction_log_is_spread_over_the_window(store):
    features = {"x": "numeric", "kind": "categorical"}
    store.prediction_table("svc", features)
    n = 5000
    frame = pd.DataFrame({"id": [f"p{i}" for i in range(n)], "ts": np.linspace(1000.0, 100_000.0, n),
                          "prediction": 0.0, "x": np.arange(n, dtype=float), "kind": "a"})
    store.log_predictions("svc", frame)
    sample = sample_prediction_log(store, "svc", since=1000.0, until=100_001.0, n_rows=100, n_slices=10)
    assert len(sample) == 100 and sample["ts"].is_monotonic_increasing
    assert sample["ts"].min() < 12_000 and sample["ts"].max() > 99_000
    from explain import ExplainError

    with pytest.raises(ExplainError, match="has no prediction log"):
        sample_prediction_log(store, "nobody", since=0.0, until=1.0)
