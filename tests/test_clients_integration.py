"""The protocol clients against the real servers: MLflow's scoring server and Seldon MLServer.

Both serve the same kind of model (a scikit-learn Pipeline that one-hot encodes a categorical
column), trained inside the server's own venv, which also computed the predictions and
probabilities for the sample rows: the clients must give back exactly those answers.
"""

from __future__ import annotations

import numpy as np
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from monitoring.clients import ServiceError, make_client
from monitoring.config import ServiceConfig
from tests.servers import MLSERVER_METRICS, ModelServer

pytestmark = pytest.mark.integration


def _mlflow(server: ModelServer, **overrides) -> ServiceConfig:
    return ServiceConfig(**({"name": "it-mlflow", "url": server.url, "protocol": "mlflow", "model": server.model}
                            | overrides))


def _v2(server: ModelServer, **overrides) -> ServiceConfig:
    return ServiceConfig(**({"name": "it-mlserver", "url": server.url, "protocol": "v2", "model": server.model}
                            | overrides))


# -- MLflow ----------------------------------------------------------------------------------


def test_mlflow_health(mlflow_server):
    report = make_client(_mlflow(mlflow_server)).health()
    assert [(c.check, c.ok, c.status) for c in report.checks] == [("live", True, 200), ("ready", True, 200)]
    assert report.model_ready is None
    assert all(c.error is None for c in report.checks)


def test_mlflow_metadata_reports_the_mlflow_version(mlflow_server):
    metadata = make_client(_mlflow(mlflow_server, model_version="7")).metadata()
    assert metadata.server == {"mlflow_version": mlflow_server.server_version}
    assert metadata.name == mlflow_server.model
    assert metadata.version == "7"  # MLflow's server does not tell; the configured one is kept
    assert metadata.platform == "mlflow"


def test_mlflow_predict_gives_the_known_answers(mlflow_server):
    answer = make_client(_mlflow(mlflow_server)).predict(mlflow_server.X)
    np.testing.assert_array_equal(answer.predictions, mlflow_server.predictions)
    assert answer.probabilities is None  # the pyfunc flavour answers predict() only
    assert answer.requests == 1
    assert answer.latency_ms > 0


def test_mlflow_large_batches_are_split(mlflow_server):
    assert len(mlflow_server.X) == 20
    answer = make_client(_mlflow(mlflow_server, max_batch_rows=7)).predict(mlflow_server.X)
    assert answer.requests == 3
    np.testing.assert_array_equal(answer.predictions, mlflow_server.predictions)


def test_mlflow_single_row(mlflow_server):
    answer = make_client(_mlflow(mlflow_server)).predict(mlflow_server.X.iloc[[4]])
    np.testing.assert_array_equal(answer.predictions, mlflow_server.predictions[[4]])


def test_mlflow_schema_error_carries_the_servers_reason(mlflow_server):
    client = make_client(_mlflow(mlflow_server))
    with pytest.raises(ServiceError) as raised:
        client.predict(mlflow_server.X.drop(columns=["income", "tenure"]))
    error = raised.value
    assert (error.kind, error.status, error.call) == ("http", 400, "POST /invocations")
    # MLflow puts the reason at the end of a long message that starts by printing the rows.
    assert "missing inputs" in error.message
    assert "income" in error.message and "tenure" in error.message


# -- MLServer (Open Inference Protocol v2) ---------------------------------------------------


def test_mlserver_health(mlserver_server):
    report = make_client(_v2(mlserver_server)).health()
    assert [(c.check, c.ok, c.status) for c in report.checks] == [
        ("live", True, 200), ("ready", True, 200), ("model_ready", True, 200),
    ]


def test_mlserver_metadata(mlserver_server):
    metadata = make_client(_v2(mlserver_server)).metadata()
    assert metadata.name == mlserver_server.model
    assert metadata.server["name"] == "mlserver"
    assert metadata.server["version"] == mlserver_server.server_version
    # MLServer 1.7 lists no versions in model metadata even for a model whose settings give
    # one ("v1"); the version only comes back with each inference answer.
    assert metadata.version in (None, "v1")
    configured = make_client(_v2(mlserver_server, model_version="v1")).metadata()
    assert configured.version == "v1"


def test_mlserver_sends_columns_with_the_pandas_content_type(mlserver_server):
    client = make_client(_v2(mlserver_server, v2_inputs="columns"))
    request = client.build_request(mlserver_server.X)
    assert request["parameters"] == {"content_type": "pd"}
    assert [(i["name"], i["datatype"]) for i in request["inputs"]] == [
        ("region", "BYTES"), ("age", "FP64"), ("income", "FP64"), ("tenure", "INT64"),
    ]


def test_mlserver_predict_gives_the_known_answers(mlserver_server):
    answer = make_client(_v2(mlserver_server, v2_inputs="columns")).predict(mlserver_server.X)
    np.testing.assert_array_equal(answer.predictions, mlserver_server.predictions)
    assert answer.probabilities is None  # the sklearn runtime answers predict() unless asked
    assert answer.model_version == "v1"
    assert answer.requests == 1


def test_mlserver_predict_and_probabilities(mlserver_server):
    client = make_client(_v2(mlserver_server, v2_outputs=("predict", "predict_proba")))
    answer = client.predict(mlserver_server.X)
    np.testing.assert_array_equal(answer.predictions, mlserver_server.predictions)
    assert answer.probabilities.shape == (20, 2)
    np.testing.assert_allclose(answer.probabilities, mlserver_server.probabilities, rtol=0, atol=1e-6)
    np.testing.assert_allclose(answer.score, mlserver_server.probabilities[:, 1], rtol=0, atol=1e-6)


def test_mlserver_probabilities_only(mlserver_server):
    answer = make_client(_v2(mlserver_server, v2_outputs=("predict_proba",))).predict(mlserver_server.X)
    np.testing.assert_allclose(answer.probabilities, mlserver_server.probabilities, rtol=0, atol=1e-6)
    classes = np.asarray(mlserver_server.classes)
    np.testing.assert_array_equal(classes[answer.predictions], mlserver_server.predictions)


def test_mlserver_large_batches_are_split(mlserver_server):
    config = _v2(mlserver_server, max_batch_rows=7, v2_outputs=("predict", "predict_proba"))
    answer = make_client(config).predict(mlserver_server.X)
    assert answer.requests == 3
    np.testing.assert_array_equal(answer.predictions, mlserver_server.predictions)
    np.testing.assert_allclose(answer.probabilities, mlserver_server.probabilities, rtol=0, atol=1e-6)


def test_mlserver_tensor_inputs_refuse_a_categorical_column_before_sending(mlserver_server):
    client = make_client(_v2(mlserver_server, v2_inputs="tensor"))
    with pytest.raises(ServiceError) as raised:
        client.predict(mlserver_server.X)
    assert raised.value.kind == "input"
    assert "region" in raised.value.message


def test_mlserver_model_error_is_an_http_error(mlserver_server):
    client = make_client(_v2(mlserver_server))
    with pytest.raises(ServiceError) as raised:
        client.predict(mlserver_server.X[["region", "age"]])
    # MLServer answers a failing model with a bare 500 "Internal Server Error" (the reason,
    # "columns are missing", is only in its log).
    assert (raised.value.kind, raised.value.status) == ("http", 500)
    assert raised.value.message.startswith("HTTP 500")


def test_mlserver_unknown_model(mlserver_server):
    client = make_client(_v2(mlserver_server, model="no-such-model"))
    report = client.health()
    assert report.live.ok and report.ready.ok
    assert report.model_ready.ok is False
    assert report.model_ready.status == 404
    assert report.model_ready.error == "HTTP 404: Model no-such-model not found"
    for call in (client.metadata, lambda: client.predict(mlserver_server.X)):
        with pytest.raises(ServiceError) as raised:
            call()
        assert (raised.value.kind, raised.value.status) == ("http", 404)
        assert "Model no-such-model not found" in raised.value.message


def test_mlserver_stopped_model(mlserver_server):
    spare = mlserver_server.spare_model
    client = make_client(_v2(mlserver_server, model=spare))
    assert client.health().model_ready.ok
    repository = f"{mlserver_server.url}/v2/repository/models/{spare}"
    requests.post(f"{repository}/unload", timeout=30).raise_for_status()
    try:
        report = client.health()
        # An unloaded model is reported like an unknown one (404), while the server stays ready.
        assert report.live.ok and report.ready.ok
        assert report.model_ready.ok is False
        assert report.model_ready.status == 404
        assert f"Model {spare} not found" in report.model_ready.error
        with pytest.raises(ServiceError) as raised:
            client.predict(mlserver_server.X)
        assert raised.value.status == 404
    finally:
        requests.post(f"{repository}/load", timeout=60).raise_for_status()
    assert client.health().model_ready.ok
    np.testing.assert_array_equal(client.predict(mlserver_server.X).predictions, mlserver_server.predictions)


def test_mlserver_metrics_endpoint(mlserver_server):
    make_client(_v2(mlserver_server)).predict(mlserver_server.X)
    text = requests.get(mlserver_server.metrics_url, timeout=10).text
    families = {family.name: family for family in text_string_to_metric_families(text)}

    requests_family = families[MLSERVER_METRICS["requests"]]
    assert requests_family.type == "counter"
    status, path = MLSERVER_METRICS["status_label"], MLSERVER_METRICS["path_label"]
    infer = [s for s in requests_family.samples
             if s.labels.get(path) == "/v2/models/{model_name}/infer" and s.labels.get(status) == "200"
             and s.name.endswith("_total")]
    assert infer and infer[0].value >= 1
    assert not any("/v2/health" in s.labels.get(path, "") for s in requests_family.samples)

    latency = families[MLSERVER_METRICS["latency"]]
    assert latency.type == "histogram"
    assert any(s.name.endswith("_bucket") and s.labels["le"] == "+Inf" for s in latency.samples)

    success = families[MLSERVER_METRICS["infer_success"]]
    assert any(s.labels.get("model") == mlserver_server.model and s.value >= 1 for s in success.samples)


def test_servers_still_alive(mlflow_server, mlserver_server):
    assert mlflow_server.alive(), mlflow_server.process.log_tail()
    assert mlserver_server.alive(), mlserver_server.process.log_tail()


def test_a_classifier_named_without_outputs_is_explained_as_one(mlserver_server):
    """A config that names no v2 outputs: MLServer answers labels, the black box asks for predict_proba once."""
    from explain import RemoteModel

    config = _v2(mlserver_server, v2_inputs="columns")
    assert config.v2_outputs == ()
    kinds = {c: "categorical" if c == "region" else "numeric" for c in mlserver_server.X.columns}
    model = RemoteModel(config, features=list(mlserver_server.X.columns), feature_kinds=kinds,
                        X_sample=mlserver_server.X)
    assert model.task == "classification" and model.binary and model.classes == (0, 1)
    _, proba = model.predict(mlserver_server.X)
    np.testing.assert_allclose(proba, mlserver_server.probabilities, atol=1e-9)
    model.client.close()


def test_mlservers_metric_names_are_recognised_from_a_metrics_url_alone(mlserver_server):
    from monitoring.config import MetricsConfig
    from monitoring.metrics import parse_scrape

    make_client(_v2(mlserver_server, v2_inputs="columns")).predict(mlserver_server.X)
    text = requests.get(mlserver_server.metrics_url, timeout=10).text
    series = {(name, le): value for name, le, value in parse_scrape(
        text, MetricsConfig(url=mlserver_server.metrics_url, path_regex=".*infer"))}
    assert series[("requests", -1.0)] >= 1 and series[("latency_count", -1.0)] >= 1
    assert ("errors", -1.0) in series


def test_the_version_mlserver_reports_with_each_answer_is_used_when_its_metadata_has_none(mlserver_server, store):
    from explain import RemoteModel
    from monitoring.collector import ServicePoller

    config = _v2(mlserver_server, v2_inputs="columns")
    assert make_client(config).metadata().version is None  # its model metadata names no version ...
    kinds = {c: "categorical" if c == "region" else "numeric" for c in mlserver_server.X.columns}
    model = RemoteModel(config, features=list(mlserver_server.X.columns), feature_kinds=kinds,
                        X_sample=mlserver_server.X)
    assert model.version == "v1"  # ... its infer answers do
    model.client.close()
    poller = ServicePoller(config.model_copy(update={"reference": None}), store)
    poller._canary_pool = mlserver_server.X.head(5)
    poller.poll()
    assert poller.model_version == "v1"
