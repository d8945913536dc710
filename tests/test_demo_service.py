"""The reference FastAPI service, through real HTTP on 127.0.0.1 and through Vantage's clients."""

import json
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


def _one_row(rows) -> dict:
    return {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in rows.iloc[0].to_dict().items()}


def _v2_columns(row: dict) -> list[dict]:
    return [{"name": k, "shape": [1], "datatype": "FP64" if isinstance(v, float) else "BYTES", "data": [v]}
            for k, v in row.items()]


def _malformed(rows) -> dict[str, tuple[str, str, str]]:
    """Requests that once answered 500: name -> (path, raw body, what the 400's message must say)."""
    row = _one_row(rows)
    numeric = next(f for f, kind in FEATURES.items() if kind == "numeric")
    predict = "/predict"
    infer = "/v2/models/credit-risk/infer"
    inputs = _v2_columns(row)
    return {
        "labels nested 100,000 deep": ("/labels", '{"labels": ' + "[" * 100_000 + "]" * 100_000 + "}",
                                       "nested too deeply"),
        "Infinity in a feature": (predict, json.dumps({"instances": [{**row, numeric: float("inf")}]}),
                                  "Infinity is not JSON"),
        "1e400 in a feature": (predict, json.dumps({"instances": [row]}).replace(
            f'"{numeric}": {json.dumps(row[numeric])}', f'"{numeric}": 1e400'), "must be a finite number"),
        "a dict in a feature": (predict, json.dumps({"instances": [{**row, numeric: {"a": 1}}]}),
                                f"instances[0].{numeric}: must be a number, text, true/false or null; got an object"),
        "'inf' as text in a numeric feature": (predict, json.dumps({"instances": [{**row, numeric: "inf"}]}),
                                               f"feature '{numeric}' must be a finite number"),
        "timestamps: ['yesterday']": (predict, json.dumps({"instances": [row], "timestamps": ["yesterday"]}),
                                      "timestamps[0]: must be a number; got text"),
        "ts = 0": (predict, json.dumps({"instances": [row], "ids": ["p-1"], "timestamps": [0]}),
                   "timestamps[0]: must be a Unix time from 946684800"),
        "a 1,000-character id": (predict, json.dumps({"instances": [row], "ids": ["x" * 1000]}),
                                 "ids[0]: must be 1 to 64 printable ASCII characters without spaces; got 1,000"),
        "ids of the wrong length": (predict, json.dumps({"instances": [row], "ids": ["a", "b"]}),
                                    "ids must be a list of 1 ids, one per row; got 2"),
        "v2 inputs: ['a']": (infer, json.dumps({"inputs": ["a"]}), "inputs[0]: must be an object"),
        "v2 outputs: ['predict']": (infer, json.dumps({"inputs": inputs, "outputs": ["predict"]}),
                                    "outputs[0]: must be an object"),
        "v2 parameters: [1]": (infer, json.dumps({"inputs": inputs, "parameters": [1]}),
                               "parameters: must be an object"),
        "v2 shape of text": (infer, json.dumps({"inputs": [{**inputs[0], "shape": ["a"]}, *inputs[1:]]}),
                             "inputs[0].shape[0]: must be a whole number"),
        "v2 data holding objects": (infer, json.dumps({"inputs": [{**inputs[0], "data": [{"a": 1}]}, *inputs[1:]]}),
                                    "inputs[0].data: value 0: must be a number, text, true/false or null"),
        "v2 vantage_timestamps of text": (infer, json.dumps({"inputs": inputs,
                                                             "parameters": {"vantage_timestamps": ["now"]}}),
                                          "parameters.vantage_timestamps[0]: must be a number; got text"),
        "not JSON": (predict, "{'instances': []}", "not valid JSON"),
        "a list, not an object": (predict, "[1, 2]", "must be a JSON object"),
        "labels in a list": ("/labels", "[]", 'the body must be {"labels"'),
    }


def test_every_malformed_request_is_a_400_that_says_why(demo_runtime, rows):
    url = demo_runtime.url
    for name, (path, body, message) in _malformed(rows).items():
        response = requests.post(f"{url}{path}", data=body, timeout=10, headers={"Content-Type": "application/json"})
        assert response.status_code == 400, (name, response.status_code, response.text[:300])
        assert message in response.json()["detail"], (name, response.json()["detail"])
    assert requests.get(f"{url}/health", timeout=5).ok


def test_rows_of_the_right_types_the_model_cannot_take_are_422(demo_runtime, rows):
    row = _one_row(rows)
    categorical = next(f for f, kind in FEATURES.items() if kind == "categorical")
    response = requests.post(f"{demo_runtime.url}/predict", json={"instances": [{**row, categorical: 7}]},
                             timeout=10)
    assert response.status_code in (200, 422), response.text  # an encoder that ignores unknown categories answers
    if response.status_code == 422:
        assert response.json()["detail"].startswith("the model cannot predict these rows")
