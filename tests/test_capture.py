"""Capture for servers that do not log through Vantage, with real processes on 127.0.0.1.

- The capturing proxy (``python -m monitoring.capture``) in front of the template service
  (the demo model, logging nothing itself) over v2 and REST, and in front of MLflow's scoring
  server: answers unchanged, rows in the prediction log with the id the proxy names.
- The KServe payload-logger endpoint (``python -m monitoring.collector --capture-port``) fed
  binary-mode CloudEvents shaped as KServe's logger posts them (the response may come first).
- Every bad input: a CloudEvent without an id, a response without its request, a body that is
  not JSON, a 50 MB body, an upstream that is down, a store that is locked; each counted.
- The data pages (AppTest) of a service whose only data is what the proxy captured.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests

from monitoring.clock import parse_time
from monitoring.config import load_config
from monitoring.store import Store
from tests.helpers import page_text
from tests.servers import free_port, server_process

integration = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "dashboard" / "app.py")
NOW = parse_time("2026-11-20T08:00:00Z")
"""The proxies' clock (``VANTAGE_NOW``): every captured row has this time."""
DEADLINE_S = 30.0
ID_HEADER = "X-Vantage-Prediction-Id"
REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
FIFTY_MB = 50 * 1024 * 1024


# -- servers (subprocess entry points) ---------------------------------------------------------


def serve_template(port: int, model_dir: str) -> None:
    """The template service on the demo model, logging nothing (the proxy does)."""
    import uvicorn

    from demo.model import load_or_train
    from demo.service import ServedModel, create_app

    model = load_or_train(model_dir)
    app = create_app(ServedModel(model.pipeline, model.version, model.features, name="credit-risk"), store=None)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def serve_odd(port: int) -> None:
    """A v2 server that answers 200 with text that is not JSON, and counts what it receives."""
    import uvicorn

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        size = 0
        while True:
            message = await receive()
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        if scope["path"] == "/stream":  # an answer of unknown length, in parts (chunked)
            await send({"type": "http.response.start", "status": 207, "headers": [(b"content-type", b"text/plain"),
                                                                                  (b"x-odd", b"1")]})
            for part in (b"first ", b"second ", b"third"):
                await send({"type": "http.response.body", "body": part, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return
        if scope["path"] == "/big":
            body = bytes(range(256)) * 8192  # 2 MB with a length: streamed through, not read whole
        elif scope["path"] == "/v2/health/live":
            body = b'{"live": true}'
        elif scope["path"] == "/v2/models/odd/infer" and size < 1024 * 1024:
            body = b"<html>this is not JSON</html>"
        else:
            body = json.dumps({"received_bytes": size}).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """Set environment variables while a server process is started (it copies the environment)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def started(name: str, command, health_path: str, log_dir: Path, **env: str):
    with environment(**env), server_process(name, command, health_path=health_path,
                                            log_path=log_dir / f"{name}.log", cwd=ROOT) as server:
        yield server


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("capture")


@pytest.fixture(scope="module")
def template(demo_model, work):
    model_dir = str(demo_model.artifact_path.parent)
    with started("template", lambda port: [sys.executable, "-c",
                                           f"from tests.test_capture import serve_template; "
                                           f"serve_template({port}, {model_dir!r})"],
                 "/health", work) as server:
        yield server


@pytest.fixture(scope="module")
def odd(work):
    with started("odd", lambda port: [sys.executable, "-c",
                                      f"from tests.test_capture import serve_odd; serve_odd({port})"],
                 "/v2/health/live", work) as server:
        yield server


@pytest.fixture(scope="module")
def config(demo_model, template, odd, work) -> Path:
    """One store; the template service over v2 and REST, the odd server, and one whose upstream is down."""
    features = ", ".join(f'"{f}"' for f in demo_model.features)
    common = f'reference = "{demo_model.reference_path}"\ntarget = "default"\nfeatures = [{features}]\n'
    path = work / "vantage.toml"
    path.write_text(f"""
[store]
url = "sqlite:///{work / 'store.db'}"

[[services]]
name = "credit"
url = "{template.url}"
protocol = "v2"
model = "credit-risk"
{common}
[[services]]
name = "credit-rest"
url = "{template.url}"
protocol = "rest"
{common}
[[services]]
name = "odd"
url = "{odd.url}"
protocol = "v2"
model = "odd"
{common}
[[services]]
name = "gone"
url = "http://127.0.0.1:{free_port()}"
protocol = "v2"
model = "credit-risk"
{common}""")
    return path


def proxy_for(service: str, config: Path, work: Path, upstream: str | None = None):
    def command(port: int) -> list:
        args = [sys.executable, "-m", "monitoring.capture", "--config", str(config), "--service", service,
                "--listen", f"127.0.0.1:{port}"]
        return args + (["--upstream", upstream] if upstream else [])

    return started(f"proxy-{service}", command, "/capture/stats", work, VANTAGE_NOW=str(NOW))


@pytest.fixture(scope="module")
def v2_proxy(config, work):
    with proxy_for("credit", config, work) as server:
        yield server


@pytest.fixture(scope="module")
def rest_proxy(config, work):
    with proxy_for("credit-rest", config, work) as server:
        yield server


@pytest.fixture(scope="module")
def odd_proxy(config, work):
    with proxy_for("odd", config, work) as server:
        yield server


@pytest.fixture(scope="module")
def store(config) -> Iterator[Store]:
    store = Store.from_config(load_config(config))  # as the proxy opens it: the log where the config says
    yield store
    store.dispose()


@pytest.fixture(scope="module")
def rows(demo_model) -> pd.DataFrame:
    """Reference rows to send, missing values included."""
    reference = pd.read_parquet(demo_model.reference_path)
    return reference[list(demo_model.features)].iloc[:40].reset_index(drop=True)


# -- helpers -----------------------------------------------------------------------------------


def cell(value):
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    return value.item() if hasattr(value, "item") else value


def v2_columns(frame: pd.DataFrame, features: dict[str, str], **extra) -> dict:
    inputs = [{"name": name, "shape": [len(frame)], "datatype": "FP64" if kind == "numeric" else "BYTES",
               "data": [cell(v) for v in frame[name]]} for name, kind in features.items()]
    return {"inputs": inputs, "outputs": [{"name": "predict"}, {"name": "predict_proba"}], **extra}


def records(frame: pd.DataFrame) -> list[dict]:
    return [{k: cell(v) for k, v in row.items()} for row in frame.to_dict("records")]


def wait_for(condition, what: str, deadline_s: float = DEADLINE_S):
    deadline = time.monotonic() + deadline_s
    while True:
        value = condition()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {deadline_s:g} s")
        time.sleep(0.1)


def logged(store: Store, service: str, ids: list[str]) -> pd.DataFrame:
    """The rows of ``ids``, once all are in the prediction log."""
    def found():
        try:
            frame = store.read_prediction_log(service)
        except KeyError:
            return None
        frame = frame[frame["id"].isin(ids)]
        return frame if len(frame) == len(ids) else None

    return wait_for(found, f"{len(ids)} rows {ids[:3]}... in the prediction log of {service}").set_index("id")


def stats(server) -> dict:
    return requests.get(f"{server.url}/capture/stats", timeout=5).json()


def counts(server, service: str) -> dict:
    return stats(server)["counts"].get(service, {})


def infer_path(model: str = "credit-risk") -> str:
    return f"/v2/models/{model}/infer"


# -- the proxy ---------------------------------------------------------------------------------


@integration
def test_proxy_forwards_v2_unchanged_and_logs_each_row_under_the_request_id(template, v2_proxy, store, rows,
                                                                           demo_model):
    body = v2_columns(rows.iloc[:3], demo_model.features, id="loan-7")
    direct = requests.post(template.url + infer_path(), json=body, timeout=10)
    proxied = requests.post(v2_proxy.url + infer_path(), json=body, timeout=10)
    assert proxied.status_code == direct.status_code == 200
    assert proxied.headers[ID_HEADER] == "loan-7"
    assert proxied.headers["content-type"] == direct.headers["content-type"]
    assert proxied.json()["outputs"] == direct.json()["outputs"]
    for path in ("/v2/models/credit-risk", "/v2/health/ready", "/model"):  # not predictions: forwarded only
        assert requests.get(v2_proxy.url + path, timeout=5).content == requests.get(template.url + path,
                                                                                    timeout=5).content
    outputs = {o["name"]: o["data"] for o in proxied.json()["outputs"]}
    frame = logged(store, "credit", ["loan-7-0", "loan-7-1", "loan-7-2"])
    assert frame.loc[["loan-7-0", "loan-7-1", "loan-7-2"], "prediction"].tolist() == outputs["predict"]
    proba = np.asarray(outputs["predict_proba"]).reshape(3, 2)
    np.testing.assert_allclose(frame.loc[["loan-7-0", "loan-7-1", "loan-7-2"], "score"], proba[:, 1])
    assert (frame["ts"] == NOW).all()
    assert frame["model_version"].astype(str).eq(demo_model.version).all()
    for name, kind in demo_model.features.items():
        sent = rows[name].iloc[:3].tolist()
        got = frame.loc[["loan-7-0", "loan-7-1", "loan-7-2"], name].tolist()
        if kind == "numeric":
            np.testing.assert_allclose(np.asarray(got, float), np.asarray(sent, float))
        else:
            assert [None if pd.isna(v) else str(v) for v in got] == [None if pd.isna(v) else str(v) for v in sent]


@integration
def test_proxy_names_a_generated_id_or_the_callers_and_takes_a_2d_tensor(v2_proxy, store, rows, demo_model):
    features = demo_model.features
    one = v2_columns(rows.iloc[3:4], features)
    answer = requests.post(v2_proxy.url + infer_path(), json=one, timeout=10)
    generated = answer.headers[ID_HEADER]
    assert answer.status_code == 200 and len(generated) == 32
    chosen = requests.post(v2_proxy.url + infer_path(), json=one, headers={ID_HEADER: "chosen-1"}, timeout=10)
    assert chosen.headers[ID_HEADER] == "chosen-1"
    table = rows.iloc[4:6][list(features)]
    tensor = {"inputs": [{"name": "input-0", "shape": [2, len(features)], "datatype": "BYTES",
                          "data": [[cell(v) for v in row] for row in table.itertuples(index=False)]}]}
    answer_2d = requests.post(v2_proxy.url + infer_path(), json=tensor, timeout=10)
    assert answer_2d.status_code == 200, answer_2d.text
    frame = logged(store, "credit", [generated, "chosen-1"])
    assert frame.loc[generated, "prediction"] == answer.json()["outputs"][0]["data"][0]
    base = answer_2d.headers[ID_HEADER]
    from_2d = logged(store, "credit", [f"{base}-0", f"{base}-1"])
    np.testing.assert_allclose(from_2d.loc[[f"{base}-0", f"{base}-1"], "income"], table["income"])
    assert from_2d.loc[[f"{base}-0", f"{base}-1"], "prediction"].tolist() == answer_2d.json()["outputs"][0]["data"]


@integration
def test_proxy_logs_rest_records_with_probabilities(template, rest_proxy, store, rows):
    body = {"instances": records(rows.iloc[10:14])}
    direct = requests.post(template.url + "/predict", json=body, timeout=10).json()
    answer = requests.post(rest_proxy.url + "/predict", json=body, timeout=10)
    assert answer.status_code == 200
    assert answer.json()["predictions"] == direct["predictions"]
    base = answer.headers[ID_HEADER]
    ids = [f"{base}-{i}" for i in range(4)]
    frame = logged(store, "credit-rest", ids)
    assert frame.loc[ids, "prediction"].tolist() == answer.json()["predictions"]
    np.testing.assert_allclose(frame.loc[ids, "score"], np.asarray(answer.json()["probabilities"])[:, 1])
    np.testing.assert_allclose([json.loads(p) for p in frame.loc[ids, "probabilities"]],
                               answer.json()["probabilities"])


@integration
def test_proxy_in_front_of_mlflow_logs_dataframe_split_and_records(mlflow_server, work):
    reference = work / "mlflow-reference.parquet"
    mlflow_server.X.to_parquet(reference)
    config = work / "mlflow.toml"
    config.write_text(f"""
[store]
url = "sqlite:///{work / 'mlflow.db'}"

[[services]]
name = "churn"
url = "{mlflow_server.url}"
protocol = "mlflow"
reference = "{reference}"
features = {json.dumps(list(mlflow_server.X.columns))}
""")
    X = mlflow_server.X
    split = {"dataframe_split": {"columns": list(X.columns), "data": [[cell(v) for v in r] for r in X.iloc[:5].values]}}
    as_records = {"dataframe_records": records(X.iloc[5:8])}
    with proxy_for("churn", config, work) as proxy:
        first = requests.post(proxy.url + "/invocations", json=split, timeout=20)
        second = requests.post(proxy.url + "/invocations", json=as_records, timeout=20)
        assert first.status_code == second.status_code == 200
        assert first.json() == requests.post(mlflow_server.url + "/invocations", json=split, timeout=20).json()
        store = Store.from_config(load_config(config))
        try:
            ids = [f"{first.headers[ID_HEADER]}-{i}" for i in range(5)] + \
                  [f"{second.headers[ID_HEADER]}-{i}" for i in range(3)]
            frame = logged(store, "churn", ids)
        finally:
            store.dispose()
    np.testing.assert_allclose(frame.loc[ids, "prediction"].to_numpy(float),
                               np.asarray(mlflow_server.predictions[:8], float))
    assert frame.loc[ids, "region"].astype(str).tolist() == X["region"].iloc[:8].astype(str).tolist()


@integration
def test_proxy_in_front_of_mlserver_logs_its_probabilities(mlserver_server, work):
    X = mlserver_server.X
    reference = work / "mlserver-reference.parquet"
    X.to_parquet(reference)
    config = work / "mlserver.toml"
    config.write_text(f"""
[store]
url = "sqlite:///{work / 'mlserver.db'}"

[[services]]
name = "credit-mlserver"
url = "{mlserver_server.url}"
protocol = "v2"
model = "{mlserver_server.model}"
reference = "{reference}"
features = {json.dumps(list(X.columns))}
""")
    inputs = [{"name": c, "shape": [5], "datatype": "BYTES" if X[c].dtype == object else "FP64",
               "data": [cell(v) for v in X[c].iloc[:5]]} for c in X.columns]
    body = {"id": "mls-1", "inputs": inputs, "parameters": {"content_type": "pd"},
            "outputs": [{"name": "predict_proba"}]}
    path = f"/v2/models/{mlserver_server.model}/infer"
    with proxy_for("credit-mlserver", config, work) as proxy:
        answer = requests.post(proxy.url + path, json=body, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.headers[ID_HEADER] == "mls-1"
        assert answer.json()["outputs"] == requests.post(mlserver_server.url + path, json=body,
                                                         timeout=30).json()["outputs"]
        store = Store.from_config(load_config(config))
        try:
            ids = [f"mls-1-{i}" for i in range(5)]
            frame = logged(store, "credit-mlserver", ids)
        finally:
            store.dispose()
    np.testing.assert_allclose(frame.loc[ids, "score"], mlserver_server.probabilities[:5, 1])
    np.testing.assert_allclose(frame.loc[ids, "prediction"], mlserver_server.probabilities[:5].argmax(axis=1))


@integration
def test_proxy_counts_what_it_cannot_log_and_still_forwards_it(odd, odd_proxy, store, rows, demo_model):
    body = v2_columns(rows.iloc[:1], demo_model.features)
    garbled = requests.post(odd_proxy.url + infer_path("odd"), json=body, timeout=10)
    assert garbled.status_code == 200 and garbled.text == "<html>this is not JSON</html>"
    not_json = wait_for(lambda: counts(odd_proxy, "odd").get("not_json", 0) >= 1 and counts(odd_proxy, "odd"),
                        "the answer that is not JSON to be counted")
    assert not_json["rows_logged"] == 0
    assert "not JSON" in stats(odd_proxy)["last_problem"]["odd"]

    big = b'{"inputs": [{"name": "x", "shape": [1], "datatype": "BYTES", "data": ["' + b"a" * FIFTY_MB + b'"]}]}'

    def chunks():  # streamed: the proxy forwards it as it comes, without a length
        for start in range(0, len(big), 1024 * 1024):
            yield big[start:start + 1024 * 1024]

    for data in (big, chunks()):
        answer = requests.post(odd_proxy.url + infer_path("odd"), data=data, timeout=60,
                               headers={"Content-Type": "application/json"})
        assert answer.status_code == 200
        assert answer.json() == {"received_bytes": len(big)}  # forwarded whole
    wait_for(lambda: counts(odd_proxy, "odd")["oversized"] == 2, "both 50 MB bodies to be counted as oversized")
    assert counts(odd_proxy, "odd")["rows_logged"] == 0
    with pytest.raises(KeyError):
        store.read_prediction_log("odd")


@integration
def test_proxy_streams_answers_of_unknown_or_large_length_unchanged(odd, odd_proxy):
    for path in ("/stream", "/big?x=1&y=%20"):
        direct = requests.get(odd.url + path, timeout=30)
        proxied = requests.get(odd_proxy.url + path, timeout=30)
        assert proxied.status_code == direct.status_code
        assert proxied.content == direct.content
        for header in ("content-type", "x-odd", "content-length", "transfer-encoding"):
            assert proxied.headers.get(header) == direct.headers.get(header), header
    assert requests.get(odd_proxy.url + "/stream", timeout=30).status_code == 207


@integration
def test_proxy_answers_502_with_a_reason_when_the_upstream_is_down(config, work, rows, demo_model):
    with proxy_for("gone", config, work) as proxy:
        answer = requests.post(proxy.url + infer_path(), json=v2_columns(rows.iloc[:1], demo_model.features),
                               timeout=30)
        assert answer.status_code == 502
        assert answer.headers["content-type"].startswith("text/plain")
        assert "cannot be reached" in answer.text and "127.0.0.1" in answer.text
        assert requests.get(proxy.url + "/v2/health/live", timeout=30).status_code == 502
        wait_for(lambda: counts(proxy, "gone")["upstream_down"] == 2, "both 502s to be counted")


@integration
def test_a_locked_store_neither_fails_nor_loses_requests(config, rows, demo_model, work):
    """The prediction log in the SQL store's tables (``log = "store"``), its SQLite file locked for a while."""
    variant = work / "vantage-sql-log.toml"
    variant.write_text(config.read_text().replace("[store]\n", '[store]\nlog = "store"\n', 1)
                       .replace("store.db", "sql-log.db"))
    body = v2_columns(rows.iloc[20:21], demo_model.features)
    with proxy_for("credit", variant, work) as proxy:
        store = Store.from_config(load_config(variant))
        lock = sqlite3.connect(work / "sql-log.db", timeout=30, isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
        try:
            ids = []
            for i in range(20):
                answer = requests.post(proxy.url + infer_path(), json=body, headers={ID_HEADER: f"locked-{i}"},
                                       timeout=10)
                assert answer.status_code == 200
                ids.append(answer.headers[ID_HEADER])
            wait_for(lambda: stats(proxy)["store_state"] == "locked", "the proxy to see the store locked")
            assert counts(proxy, "credit")["rows_pending"] >= 1
        finally:
            lock.rollback()
            lock.close()
        try:
            logged(store, "credit", ids)
        finally:
            store.dispose()
        wait_for(lambda: stats(proxy)["store_state"] == "ok", "the proxy to see the store back")
        assert counts(proxy, "credit")["rows_dropped"] == 0


@integration
def test_a_prediction_log_that_cannot_be_written_neither_fails_nor_loses_requests(rest_proxy, store, rows, work):
    """The default log (Parquet files): its directory replaced by a file for a while, then put back."""
    body = {"instances": records(rows.iloc[21:23])}

    def send(request_id: str) -> list[str]:
        answer = requests.post(rest_proxy.url + "/predict", json=body, headers={ID_HEADER: request_id}, timeout=10)
        assert answer.status_code == 200
        return [f"{answer.headers[ID_HEADER]}-{i}" for i in range(2)]

    logged(store, "credit-rest", send("before-outage"))  # the service's log directory exists
    directory = work / "var" / "log" / "credit-rest" / "predictions"
    aside = directory.with_name("predictions-aside")
    directory.rename(aside)
    directory.write_text("not a directory")
    try:
        ids = [i for n in range(5) for i in send(f"outage-{n}")]
        wait_for(lambda: stats(rest_proxy)["store_state"] != "ok", "the proxy to see the log refuse writes")
        assert counts(rest_proxy, "credit-rest")["rows_pending"] >= 1
    finally:
        directory.unlink()
        aside.rename(directory)
    logged(store, "credit-rest", ids)
    wait_for(lambda: stats(rest_proxy)["store_state"] == "ok", "the proxy to see the log back")
    assert counts(rest_proxy, "credit-rest")["rows_dropped"] == 0


@integration
def test_probe_calls_and_error_answers_are_forwarded_not_logged(v2_proxy, store, rows, demo_model):
    before = counts(v2_proxy, "credit")
    probe = requests.post(v2_proxy.url + infer_path(), json=v2_columns(rows.iloc[:1], demo_model.features),
                          headers={"X-Vantage-Probe": "1"}, timeout=10)
    assert probe.status_code == 200 and ID_HEADER not in probe.headers
    wrong = requests.post(v2_proxy.url + infer_path(), json={"inputs": "no"}, timeout=10)
    assert wrong.status_code == 400
    wait_for(lambda: counts(v2_proxy, "credit")["error_answers"] == before["error_answers"] + 1,
             "the error answer to be counted")
    assert counts(v2_proxy, "credit")["exchanges"] == before["exchanges"]


# -- the KServe payload logger -----------------------------------------------------------------


@pytest.fixture(scope="module")
def collector(config, work):
    """``python -m monitoring.collector --capture-port``: the logger endpoint in the collector's process."""
    def command(port: int) -> list:
        return [sys.executable, "-m", "monitoring.collector", "--config", str(config), "--capture-port", str(port)]

    with started("collector", command, "/health", work) as server:
        yield server


def cloud_event(kind: str, event_id: str | None, body: bytes, *, service: str = "credit") -> dict:
    """Headers as KServe's logger sends them (CloudEvents 1.0, binary mode, Go's header casing)."""
    headers = {
        "Ce-Specversion": "1.0", "Ce-Type": kind, "Ce-Source": "http://localhost:9081/",
        "Ce-Time": "2026-11-20T07:59:30.123456789Z", "Ce-Inferenceservicename": service,
        "Ce-Namespace": "default", "Ce-Component": "predictor", "Ce-Endpoint": "default", "Ce-Metadata": "{}",
        "Content-Type": "application/json", "Content-Length": str(len(body)),
    }
    if event_id is not None:
        headers["Ce-Id"] = event_id
    return headers


def post_event(collector, kind: str, event_id: str | None, payload, *, service: str = "credit", path: str = "/"):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return requests.post(collector.url + path, data=body, headers=cloud_event(kind, event_id, body, service=service),
                         timeout=30)


@integration
def test_logger_joins_v1_and_v2_events_by_id_in_either_order(collector, store, rows, demo_model):
    v1_id, v2_id = str(uuid.uuid4()), str(uuid.uuid4())
    instances = [[cell(v) for v in r] for r in rows.iloc[30:33][list(demo_model.features)].itertuples(index=False)]
    assert post_event(collector, RESPONSE_TYPE, v1_id, {"predictions": [1, 0, 1]}).status_code == 200  # first
    assert post_event(collector, REQUEST_TYPE, v1_id, {"instances": instances}).status_code == 200
    request = v2_columns(rows.iloc[33:35], demo_model.features)
    response = {"model_name": "credit-risk", "model_version": "7", "id": v2_id, "outputs": [
        {"name": "predict", "datatype": "INT64", "shape": [2], "data": [0, 1]},
        {"name": "predict_proba", "datatype": "FP64", "shape": [2, 2], "data": [0.8, 0.2, 0.3, 0.7]}]}
    assert post_event(collector, REQUEST_TYPE, v2_id, request).status_code == 200
    assert post_event(collector, RESPONSE_TYPE, v2_id, response, path="/services/credit").status_code == 200
    v1 = logged(store, "credit", [f"{v1_id}-{i}" for i in range(3)])
    assert v1.loc[[f"{v1_id}-{i}" for i in range(3)], "prediction"].tolist() == [1.0, 0.0, 1.0]
    assert (v1["ts"] == parse_time("2026-11-20T07:59:30.123456Z")).all()
    v2 = logged(store, "credit", [f"{v2_id}-0", f"{v2_id}-1"])
    assert v2.loc[f"{v2_id}-1", "score"] == pytest.approx(0.7)
    assert v2["model_version"].astype(str).eq("7").all()
    np.testing.assert_allclose(v2.loc[[f"{v2_id}-0", f"{v2_id}-1"], "age"], rows["age"].iloc[33:35])


@integration
def test_logger_refuses_bad_events_with_a_reason_and_counts_them(collector):
    before = counts(collector, "credit")
    no_id = post_event(collector, REQUEST_TYPE, None, {"instances": [[1]]})
    assert no_id.status_code == 400 and "ce-id" in no_id.text
    garbled = post_event(collector, REQUEST_TYPE, str(uuid.uuid4()), b"this is not JSON")
    assert garbled.status_code == 400 and "JSON" in garbled.text
    huge = post_event(collector, REQUEST_TYPE, str(uuid.uuid4()), b"[" + b"1," * (FIFTY_MB // 2) + b"1]")
    assert huge.status_code == 413 and "MB" in huge.text
    unknown = post_event(collector, REQUEST_TYPE, str(uuid.uuid4()), {"instances": []}, service="nobody")
    assert unknown.status_code == 404 and "nobody" in unknown.text
    named = post_event(collector, REQUEST_TYPE, str(uuid.uuid4()), {"instances": []}, path="/services/nobody")
    assert named.status_code == 404 and "nobody" in named.text
    lonely = post_event(collector, RESPONSE_TYPE, str(uuid.uuid4()), {"predictions": [1]})
    assert lonely.status_code == 200
    after = counts(collector, "credit")
    assert after["without_id"] == before["without_id"] + 1
    assert after["not_json"] == before["not_json"] + 1
    assert after["oversized"] == before["oversized"] + 1
    assert stats(collector)["unpaired"] >= 1  # counted once its pairing time has passed (see the next test)
    assert requests.get(collector.url + "/health", timeout=5).status_code == 200


@integration
def test_logger_takes_the_bodies_a_real_kserve_model_server_sees_and_sends(kserve_server, work):
    """KServe's ModelServer answers V1 and v2; its real bodies are posted as its logger posts them."""
    X = kserve_server.X.iloc[:4]
    config = work / "kserve.toml"
    config.write_text(f"""
[store]
url = "sqlite:///{work / 'kserve.db'}"

[[services]]
name = "wine"
url = "{kserve_server.url}"
protocol = "v2"
model = "{kserve_server.model}"
reference = "{kserve_server.reference}"
target = "target"
""")
    v1_request = {"instances": X.to_numpy().tolist()}
    v1_answer = requests.post(f"{kserve_server.url}/v1/models/{kserve_server.model}:predict", json=v1_request,
                              timeout=30)
    v2_request = {"inputs": [{"name": "input-0", "shape": list(X.shape), "datatype": "FP64",
                              "data": X.to_numpy().ravel().tolist()}]}
    v2_answer = requests.post(f"{kserve_server.url}/v2/models/{kserve_server.model}/infer", json=v2_request,
                              timeout=30)
    assert v1_answer.status_code == v2_answer.status_code == 200

    def command(port: int) -> list:
        return [sys.executable, "-m", "monitoring.collector", "--config", str(config), "--capture-port", str(port)]

    with started("collector-kserve", command, "/health", work) as collector:
        for event_id, request, answer in (("v1-event", v1_request, v1_answer), ("v2-event", v2_request, v2_answer)):
            assert post_event(collector, REQUEST_TYPE, event_id, request, service="wine").status_code == 200
            assert post_event(collector, RESPONSE_TYPE, event_id, answer.content, service="wine").status_code == 200
        store = Store.from_config(load_config(config))
        try:
            v1 = logged(store, "wine", [f"v1-event-{i}" for i in range(4)])
            v2 = logged(store, "wine", [f"v2-event-{i}" for i in range(4)])
        finally:
            store.dispose()
    ids = [f"v2-event-{i}" for i in range(4)]
    np.testing.assert_allclose([json.loads(p) for p in v2.loc[ids, "probabilities"]], kserve_server.probabilities[:4])
    np.testing.assert_allclose(v2.loc[ids, "prediction"], kserve_server.probabilities[:4].argmax(axis=1))
    np.testing.assert_allclose(v2.loc[ids, "alcohol"], X["alcohol"])
    assert len(v1) == 4 and v1["prediction"].notna().all()


@integration
def test_logger_counts_halves_whose_other_half_never_comes(store, demo_model, tmp_path):
    """In-process, with a pairing time of 0.3 s: the endpoint is the same app, served by uvicorn."""
    from monitoring.capture import CaptureWriter, KServeLoggerEndpoint, service_capture
    from monitoring.capture import serve_in_thread as serve
    from monitoring.clock import FrozenClock
    from monitoring.config import parse_config

    features = ", ".join(f'"{f}"' for f in demo_model.features)
    config = parse_config(f"""
[store]
url = "sqlite:///{tmp_path / 'pairs.db'}"
[[services]]
name = "credit"
url = "http://127.0.0.1:9"
protocol = "v2"
model = "credit-risk"
reference = "{demo_model.reference_path}"
target = "default"
features = [{features}]
""")
    local = Store(config.store.url)
    capture = service_capture(config.services[0], local)
    writer = CaptureWriter(local, {"credit": capture}, source="test", clock=FrozenClock(NOW))
    app = KServeLoggerEndpoint({"credit": capture}, writer, clock=FrozenClock(NOW), pair_timeout=0.3)
    port = free_port()
    server = serve(app, "127.0.0.1", port, name="test-logger")
    try:
        class Endpoint:
            url = server.url

        assert post_event(Endpoint, RESPONSE_TYPE, "r-1", {"predictions": [1]}).status_code == 200
        assert post_event(Endpoint, REQUEST_TYPE, "q-1", {"instances": [[1] * len(demo_model.features)]}).ok
        found = wait_for(lambda: (c := writer.stats().service("credit"))["responses_without_request"] == 1
                         and c["requests_without_response"] == 1 and c, "both halves to be counted")
        assert found["rows_logged"] == 0
    finally:
        server.stop()
        local.dispose()


# -- the data pages of a captured service ------------------------------------------------------


@pytest.fixture(scope="module")
def captured(v2_proxy, store, demo_model):
    """300 predictions captured through the proxy, and labels for half of them sent by their ids."""
    reference = pd.read_parquet(demo_model.reference_path)
    sample = reference[list(demo_model.features)].sample(300, random_state=0).reset_index(drop=True)
    ids = []
    for start in range(0, 300, 50):
        answer = requests.post(v2_proxy.url + infer_path(), json=v2_columns(sample.iloc[start:start + 50],
                                                                               demo_model.features), timeout=30)
        assert answer.status_code == 200
        ids += [f"{answer.headers[ID_HEADER]}-{i}" for i in range(50)]
    frame = logged(store, "credit", ids)
    truth = reference["default"].sample(300, random_state=0).to_numpy()
    store.write_labels("credit", pd.DataFrame({"prediction_id": ids[:150], "ts": NOW + 30.0,
                                               "label": truth[:150].astype(float)}))
    return frame


@pytest.fixture
def pages(captured, demo_model, work, monkeypatch):
    from streamlit.testing.v1 import AppTest

    features = ", ".join(f'"{f}"' for f in demo_model.features)
    explain = (f'artifact = "{demo_model.skops_path}"' if demo_model.skops_path is not None else
               f'artifact = "{demo_model.artifact_path}"\ntrust_pickle = true')
    config = work / "pages.toml"
    config.write_text(f"""
[store]
url = "sqlite:///{work / 'store.db'}"

[[services]]
name = "credit"
url = "http://127.0.0.1:9"
protocol = "v2"
model = "credit-risk"
reference = "{demo_model.reference_path}"
target = "default"
features = [{features}]

[services.explain]
source = "local"
{explain}
""")
    monkeypatch.setenv("VANTAGE_CONFIG", str(config))
    monkeypatch.setenv("VANTAGE_NOW", str(NOW + 3600.0))
    yield AppTest.from_file(APP, default_timeout=180)
    from dashboard import state

    state.stop_runtime()


@integration
@pytest.mark.parametrize("page", ["overview", "drift", "performance", "segments", "explain", "whatif"])
def test_data_pages_open_for_a_captured_service(pages, page, captured, store):
    at = pages.run()
    if page != "overview":
        at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    text = page_text(at)
    n_rows = store.count_predictions("credit")
    metrics = {m.label: m.value for m in at.metric}
    if page == "overview":
        assert metrics["Predictions, last 7 days"] == f"{n_rows:,}", metrics
        assert metrics["Predictions with a known outcome"] == "150", metrics
    elif page == "drift":
        assert f"prediction log in Parquet ({n_rows:,} rows)" in text, text  # the default engine
    elif page == "performance":
        assert "150 predictions have a label" in text and metrics["Labelled predictions"] == "150", metrics
    elif page == "segments":
        assert "segments** over the last 30 days" in text and "Demographic parity ratio" in metrics, text
    elif page == "explain":
        assert "Local artifact" in text, text
    elif page == "whatif":  # the prediction it starts from is a captured one, named by its id
        shown = [i for i in captured.index if f"Prediction `{i}`" in text]
        assert shown, text


@integration
def test_service_health_shows_what_capture_counted(pages, captured, store):
    from monitoring.capture import capture_summary

    def stored():
        summary = capture_summary(store, "credit")
        return summary if summary and summary["counts"]["rows_logged"] >= len(captured) else None

    summary = wait_for(stored, "the proxy's counts to be stored")
    at = pages.run()
    at.switch_page("views/health.py").run()
    assert not at.exception, [e.value for e in at.exception]
    lines = [str(e.value) for e in [*at.info, *at.warning, *at.caption] if "Capture of credit" in str(e.value)]
    assert len(lines) == 1, page_text(at)
    assert f"{summary['counts']['rows_logged']:,} rows logged" in lines[0] or "rows logged" in lines[0]
    assert "proxy 127.0.0.1:" in lines[0]


# -- parsing, with known answers (no servers) --------------------------------------------------


def context(protocol: str, **kwargs):
    from monitoring.capture import ParseContext

    return ParseContext(protocol=protocol, features=("age", "channel"), categorical=frozenset({"channel"}), **kwargs)


def parse(protocol: str, request, response, **kwargs):
    from monitoring.capture import parse_exchange

    return parse_exchange(context(protocol, **kwargs), request, response, exchange_id="e", ts=5.0)


def test_v2_columns_nested_data_and_an_output_named_by_kserve():
    request = {"inputs": [{"name": "age", "shape": [2, 1], "datatype": "FP64", "data": [[30], [40.5]]},
                          {"name": "channel", "shape": [2], "datatype": "BYTES", "data": ["web", "branch"]},
                          {"name": "ignored", "shape": [2], "datatype": "FP64", "data": [1, 2]}]}
    response = {"model_name": "m", "outputs": [{"name": "output-0", "shape": [2], "datatype": "INT64",
                                                "data": [1, 0]}]}
    rows = parse("v2", request, response, model_version="9")
    assert [(r["id"], r["age"], r["channel"], r["prediction"], r["score"], r["model_version"]) for r in rows] == [
        ("e-0", 30.0, "web", 1.0, None, "9"), ("e-1", 40.5, "branch", 0.0, None, "9")]


def test_v2_probabilities_alone_give_the_most_likely_class_and_the_score():
    request = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "BYTES", "data": [[41, "web"]]}]}
    response = {"model_version": "3", "outputs": [{"name": "predict_proba", "shape": [1, 3], "datatype": "FP64",
                                                   "data": [0.2, 0.5, 0.3]}]}
    (row,) = parse("v2", request, response)
    assert (row["id"], row["prediction"], row["score"], row["probabilities"], row["model_version"]) == (
        "e", 1.0, None, [0.2, 0.5, 0.3], "3")  # multiclass: no single positive-class score
    assert (row["age"], row["channel"]) == (41.0, "web")


def test_mlflow_inputs_instances_and_answers_as_records_or_probabilities():
    columns = {"inputs": {"age": [30, 31], "channel": ["web", None]}}
    as_records = {"predictions": [{"predict": 1, "predict_proba": [0.3, 0.7]}, {"predict": 0,
                                                                                "predict_proba": [0.9, 0.1]}]}
    rows = parse("mlflow", columns, as_records)
    assert [(r["age"], r["channel"], r["prediction"], r["score"]) for r in rows] == [
        (30.0, "web", 1.0, 0.7), (31.0, None, 0.0, 0.1)]
    rows = parse("mlflow", {"instances": [{"age": 5, "channel": "x"}]}, {"predictions": [[0.6, 0.4]]})
    assert (rows[0]["prediction"], rows[0]["score"]) == (0.0, 0.4)
    split = {"dataframe_split": {"columns": ["channel", "age"], "data": [["web", 7]]}}
    assert parse("mlflow", split, {"predictions": {"predict": [1]}})[0]["age"] == 7.0


def test_rest_reads_the_configured_keys():
    rows = parse("rest", {"rows": [[20, "web"]]}, {"out": [1], "p": [[0.25, 0.75]]}, records_key="rows",
                 predictions_key="out", probabilities_key="p")
    assert (rows[0]["age"], rows[0]["prediction"], rows[0]["score"]) == (20.0, 1.0, 0.75)


@pytest.mark.parametrize(("request_body", "response_body", "message"), [
    ({"instances": [[1, "a"], [2, "b"]]}, {"predictions": [1]}, "2 records but the response 1 predictions"),
    ({"instances": [{"age": 1}]}, {"predictions": [1]}, "lacks features ['channel']"),
    ({"instances": [["old", "a"]]}, {"predictions": [1]}, "feature 'age' must be a number; got 'old'"),
    ({"instances": [[1, "a", 3]]}, {"predictions": [1]}, "a record has 3 values but the service has 2 features"),
    ({"rows": []}, {"predictions": []}, "has none of 'dataframe_split', 'dataframe_records', 'instances'"),
    ({"instances": [[1, "a"]]}, {"answer": 1}, "the response has no 'predictions'"),
])
def test_a_shape_the_protocol_does_not_have_is_named(request_body, response_body, message):
    from monitoring.capture import CaptureParseError

    with pytest.raises(CaptureParseError, match=re.escape(message)) as raised:
        parse("mlflow", request_body, response_body)
    assert raised.value.reason == "unparsed"


def test_bodies_that_are_not_json_and_ids_that_do_not_fit():
    import gzip

    from monitoring.capture import CaptureParseError, decode_json, row_ids

    assert decode_json(gzip.compress(b'{"a": 1}'), encoding="gzip") == {"a": 1}
    with pytest.raises(CaptureParseError, match="is not JSON") as raised:
        decode_json(b"<html>", what="response body")
    assert raised.value.reason == "not_json"
    assert row_ids("abc", 2) == ["abc-0", "abc-1"]
    long = row_ids("x" * 70, 3)
    assert len({len(i) for i in long}) == 1 and all(len(i) <= 64 for i in long)
    assert long == row_ids("x" * 70, 3)  # stable: labels sent for the same id join
