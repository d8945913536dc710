"""The reference FastAPI service, through real HTTP on 127.0.0.1 and through Vantage's clients."""

import time

import numpy as np
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from demo.data import FEATURES
from monitoring.clients import ServiceError, make_client
from monitoring.reference import read_reference

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def rows(demo_model):
    features = list(demo_model.features)
    return read_reference(demo_model.reference_path, features=tuple(features))[features].head(25)


@pytest.mark.parametrize("service", ["credit-risk", "credit-risk-rest"])
def test_clients_get_the_models_own_predictions(demo_runtime, demo_model, rows, service):
    client = make_client(demo_runtime.config.service(service))
    expected = demo_model.pipeline.predict_proba(rows)
    result = client.predict(rows)
    np.testing.assert_allclose(result.probabilities, expected, atol=1e-12)
    np.testing.assert_array_equal(result.predictions, expected.argmax(axis=1))
    assert result.model_version == demo_model.version
    health = client.health()
    assert all(c.ok for c in health.checks)
    assert client.metadata().version == demo_model.version


def test_v2_tensor_and_column_requests_agree(demo_runtime, rows):
    service = demo_runtime.config.service("credit-risk")
    columns = make_client(service).predict(rows)
    tensor_body = {"inputs": [{"name": "input-0", "shape": [len(rows), len(rows.columns)], "datatype": "BYTES",
                               "data": rows.astype(object).where(rows.notna(), None).to_numpy().ravel().tolist()}]}
    answer = requests.post(f"{service.url}/v2/models/{service.model}/infer", json=tensor_body, timeout=10).json()
    proba = np.asarray(answer["outputs"][1]["data"]).reshape(answer["outputs"][1]["shape"])
    np.testing.assert_allclose(proba, columns.probabilities, atol=1e-12)


def test_predictions_are_logged_but_probes_are_not(demo_runtime, rows):
    service = demo_runtime.config.service("credit-risk-rest")
    demo_runtime.flush_predictions()
    before = demo_runtime.store.count_predictions("credit-risk")
    client = make_client(service)
    client.predict(rows.head(3))
    client.session.headers["X-Vantage-Probe"] = "1"
    client.predict(rows.head(5))
    demo_runtime.flush_predictions()
    assert demo_runtime.store.count_predictions("credit-risk") == before + 3


@pytest.mark.parametrize(("body", "message"), [
    ({"instances": []}, "non-empty list"),
    ({"instances": [{"age": 30}]}, "missing features"),
    ({"nothing": 1}, "non-empty list"),
])
def test_bad_rest_input_gets_a_400_that_says_why(demo_runtime, body, message):
    url = demo_runtime.config.service("credit-risk-rest").url
    response = requests.post(f"{url}/predict", json=body, timeout=5)
    assert response.status_code == 400
    assert message in response.json()["detail"]


def test_text_in_a_numeric_feature_is_reported_through_the_client(demo_runtime, rows):
    service = demo_runtime.config.service("credit-risk")
    bad = rows.head(2).copy()
    numeric = next(f for f, kind in FEATURES.items() if kind == "numeric")
    bad[numeric] = bad[numeric].astype(object)
    bad.loc[bad.index[0], numeric] = "lots"
    with pytest.raises(ServiceError) as info:
        make_client(service).predict(bad)
    assert info.value.kind == "http" and info.value.status == 400
    assert numeric in info.value.message and "must be numeric" in info.value.message


def test_unknown_model_is_a_404(demo_runtime):
    url = demo_runtime.url
    response = requests.get(f"{url}/v2/models/other/ready", timeout=5)
    assert response.status_code == 404 and "not found" in response.json()["detail"]


def test_metrics_count_requests_by_route_and_status(demo_runtime, rows):
    service = demo_runtime.config.service("credit-risk-rest")
    make_client(service).predict(rows.head(2))
    requests.post(f"{service.url}/predict", json={"instances": []}, timeout=5)
    text = requests.get(f"{service.url}/metrics", timeout=5).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = [s for s in families["http_requests"].samples if s.name == "http_requests_total"]
    by_status = {(s.labels["path"], s.labels["status"]): s.value for s in samples}
    assert by_status[("/predict", "200")] >= 1
    assert by_status[("/predict", "400")] >= 1
    assert "http_request_duration_seconds" in families


def test_fault_schedule_plays_its_spells_at_the_documented_times():
    from demo.service import FaultSchedule

    faults = FaultSchedule(offset=0.0)
    assert not faults.not_ready(0.0) and faults.not_ready(875.0) and not faults.not_ready(905.0)
    assert faults.extra_latency_s(10.0) == 0.0
    assert faults.extra_latency_s(560.0) == pytest.approx(0.65)
    started = time.time()
    default = FaultSchedule()
    assert default.extra_latency_s(started + 125) > 0 and default.extra_latency_s(started + 60) == 0
    assert default.not_ready(started + 440)
