"""Limits at the edges: the template service's request limits, against real uvicorn processes on
127.0.0.1, and What-if links that anyone can write, through the page itself (AppTest).

Each server runs in its own process (``python -c "from tests.test_limits import serve; ..."``), so
the client here never competes with it for the interpreter: ``/health`` latencies measured while
it stores labels are the server's own. One server has the default :class:`demo.service.RequestLimits`;
the other small ones (1 MB bodies, 50 rows, 100 labels) and takes the epoch as a timestamp.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests

from tests.servers import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
FEATURES = {"x": "numeric", "y": "numeric", "colour": "categorical"}
START_TIMEOUT_S = 60.0
LABELS_IN_TEST = 200_000
"""Labels posted while /health is timed: 200,000 keeps the test to seconds (the limit is 1,000,000)."""
HEALTH_BUDGET_MS = 100.0


def serve(port: int, store_url: str, limits: dict) -> None:
    """Run the template service on a small model (the subprocess's entry point)."""
    import pandas as pd
    import uvicorn
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    from demo.service import RequestLimits, ServedModel, create_app
    from monitoring.store import Store

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x": rng.normal(size=200), "y": rng.normal(size=200),
                      "colour": rng.choice(["red", "blue"], size=200)})
    pipeline = make_pipeline(
        make_column_transformer((OneHotEncoder(handle_unknown="ignore"), ["colour"]), remainder="passthrough"),
        LogisticRegression()).fit(X, (X["x"] > 0).astype(int))
    app = create_app(ServedModel(pipeline, "1", FEATURES, name="m"), store=Store(store_url),
                     service_name="limits", limits=RequestLimits(**limits))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _start(tmp_path: Path, name: str, limits: dict) -> Iterator[str]:
    port = free_port()
    store_url = f"sqlite:///{tmp_path / f'{name}.db'}"
    code = f"from tests.test_limits import serve; serve({port}, {store_url!r}, {limits!r})"
    log = (tmp_path / f"{name}.log").open("w")
    process = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while True:
            try:
                if requests.get(f"{url}/health", timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the {name} server did not start: {(tmp_path / f'{name}.log').read_text()}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


@pytest.fixture(scope="module")
def default_server(tmp_path_factory) -> Iterator[str]:
    yield from _start(tmp_path_factory.mktemp("limits"), "default", {})


@pytest.fixture(scope="module")
def small_server(tmp_path_factory) -> Iterator[str]:
    limits = {"max_body_mb": 1.0, "max_rows": 50, "max_labels": 100, "min_timestamp": 0.0}
    yield from _start(tmp_path_factory.mktemp("limits"), "small", limits)


def _records(n: int) -> list[dict]:
    return [{"x": float(i % 7), "y": 0.5, "colour": "red"} for i in range(n)]


def _tensor_request(n: int) -> dict:
    columns = {"x": [1.0] * n, "y": [0.5] * n, "colour": ["red"] * n}
    return {"inputs": [{"name": k, "shape": [n], "datatype": "BYTES" if k == "colour" else "FP64", "data": v}
                       for k, v in columns.items()]}


@pytest.mark.exclusive
def test_health_answers_within_100_ms_while_labels_are_written(default_server):
    body = json.dumps({"labels": [{"prediction_id": f"p{i}", "label": i % 2, "ts": 1.7e9 + i}
                                  for i in range(LABELS_IN_TEST)]}).encode()
    answer: dict = {}

    def post() -> None:
        response = requests.post(f"{default_server}/labels", data=body, timeout=120,
                                 headers={"Content-Type": "application/json"})
        answer.update(status=response.status_code, body=response.json())

    poster = threading.Thread(target=post)
    latencies_ms = []
    with requests.Session() as session:
        session.get(f"{default_server}/health", timeout=5)  # a warm connection, as a poller has
        poster.start()
        deadline = time.monotonic() + 120
        while poster.is_alive() and time.monotonic() < deadline:
            started = time.perf_counter()
            assert session.get(f"{default_server}/health", timeout=5).ok
            latencies_ms.append((time.perf_counter() - started) * 1000)
            time.sleep(0.02)
    poster.join(timeout=10)
    assert answer.get("status") == 200, answer
    assert answer["body"]["received"] == answer["body"]["written"] == LABELS_IN_TEST
    assert len(latencies_ms) >= 10, f"the labels were written in {len(latencies_ms)} health polls: too quick to judge"
    print(f"\n/health during {LABELS_IN_TEST:,} labels: {len(latencies_ms)} polls, median "
          f"{np.median(latencies_ms):.1f} ms, max {max(latencies_ms):.1f} ms")
    assert max(latencies_ms) < HEALTH_BUDGET_MS, sorted(latencies_ms)[-5:]


def test_a_body_over_the_limit_is_413_whether_declared_or_streamed(small_server):
    body = b'{"instances": [' + b" " * (2 * 1024 * 1024) + b"]}"
    declared = requests.post(f"{small_server}/predict", data=body, timeout=10,
                             headers={"Content-Type": "application/json"})
    assert declared.status_code == 413 and "at most 1,048,576" in declared.json()["detail"]

    def chunks():  # no Content-Length: the limit holds while the body streams in
        yield b'{"labels": ['
        for _ in range(40):
            yield b" " * 64 * 1024
        yield b"]}"

    streamed = requests.post(f"{small_server}/labels", data=chunks(), timeout=10)
    assert streamed.status_code == 413 and "larger than 1,048,576 bytes" in streamed.json()["detail"]
    assert requests.get(f"{small_server}/health", timeout=5).ok


@pytest.mark.parametrize(("path", "body", "message"), [
    ("/predict", {"instances": _records(51)}, "at most 50 rows per request; got 51"),
    ("/v2/models/m/infer", _tensor_request(51), "at most 50 rows per request; got 51"),
    ("/labels", {"labels": [{"prediction_id": f"p{i}", "label": 1} for i in range(101)]},
     "at most 100 labels per request; got 101"),
])
def test_too_many_rows_or_labels_are_413_with_the_limit(small_server, path, body, message):
    response = requests.post(f"{small_server}{path}", json=body, timeout=10)
    assert response.status_code == 413, response.text
    assert message in response.json()["detail"]


def test_requests_at_the_limits_are_answered(small_server):
    assert requests.post(f"{small_server}/predict", json={"instances": _records(50)}, timeout=10).ok
    answer = requests.post(f"{small_server}/v2/models/m/infer", json=_tensor_request(50), timeout=10)
    assert answer.ok and answer.json()["outputs"][0]["shape"] == [50]
    labels = {"labels": [{"prediction_id": f"p{i}", "label": 1} for i in range(100)]}
    assert requests.post(f"{small_server}/labels", json=labels, timeout=10).json()["written"] == 100


def test_the_epoch_is_a_timestamp_only_where_it_is_allowed(default_server, small_server):
    body = {"instances": _records(1), "ids": ["p-epoch"], "timestamps": [0]}
    refused = requests.post(f"{default_server}/predict", json=body, timeout=10)
    assert refused.status_code == 400
    assert refused.json()["detail"].startswith("timestamps[0]: must be a Unix time from 946684800")
    assert requests.post(f"{small_server}/predict", json=body, timeout=10).ok  # RequestLimits(min_timestamp=0)


# -- What-if links: any text is a message on the page, never a traceback ---------------------------


@pytest.fixture
def whatif_page(demo_var, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from dashboard import state

    monkeypatch.delenv("VANTAGE_CONFIG", raising=False)
    monkeypatch.setenv("VANTAGE_VAR", str(demo_var))
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=180).run()
    assert not at.exception, at.exception
    yield at
    state.stop_runtime()  # stop the demo and collector this app started


BAD_LINKS = {
    "a reference row that is text": ('{"s":"reference","i":"abc","c":{}}', "reference row must be a whole number"),
    "1,100 nested brackets": ("[" * 1100 + "]" * 1100, "nested too deeply"),
    "a reference row past the end": ('{"s":"reference","i":"99999999","c":{}}', "does not exist"),
    "a change that is an object": ('{"s":"reference","i":"1","c":{"age":{"x":1}}}', "change of 'age' must be"),
    "not JSON": ("{s:reference}", "must be JSON text"),
    "markdown in a value": ('{"s":"reference","i":"1","c":{"colour":"[x](http://evil)"}}',
                            "changes features ['colour'] the model does not have"),
}


def test_a_malformed_what_if_link_is_a_message_on_the_page(whatif_page):
    at = whatif_page
    for name, (link, message) in BAD_LINKS.items():
        at.query_params["scenario"] = link
        at.switch_page("views/whatif.py").run()
        assert not at.exception, (name, at.exception)
        assert any("cannot be used" in w.value for w in at.warning), name
        assert any(message in t.value for t in at.text), (name, [t.value for t in at.text])
    at.query_params["scenario"] = '{"s":"reference","i":"2","c":{"channel":"[x](http://evil)"}}'
    at.run()
    assert not at.exception, at.exception
    shown = [w.value for w in at.warning if "outside the accepted ranges" in w.value]
    assert shown and "\\[x\\]\\(http://evil\\)" in shown[0]  # shown as typed, not as a link
