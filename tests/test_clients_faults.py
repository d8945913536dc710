"""The protocol clients against a server that misbehaves on purpose.

A small threaded ``http.server`` on 127.0.0.1 answers every request according to its current
behaviour: refuse (a closed port), hang past the timeout, 4xx/5xx with the server's own message,
200 with HTML, 200 with truncated JSON, drop the connection before or in the middle of the
answer, answer the protocol correctly but with the wrong number of predictions, drip its answer
a byte at a time (a slow-loris service: every byte well within a per-read timeout), or send a
20 MB answer (chunked, or with its Content-Length). For each protocol: health checks report the
problem and never raise; ``metadata`` and ``predict`` raise :class:`ServiceError` of the right
kind; GETs are retried at most ``retries`` times, within the call's timeout, and POSTs never;
timeouts hold for the whole call, not per read; answers larger than ``max_response_mb`` are an
error after reading at most that much; the auth header is read from the environment on every
call.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pandas as pd
import pytest

from monitoring.clients import DeadlineExceeded, ResponseTooLarge, ServiceError, make_client
from monitoring.config import AuthConfig, MetricsConfig, RestPaths, ServiceConfig
from tests.servers import free_port

PROTOCOLS = ("v2", "mlflow", "rest")
HANG_S = 5.0
MARGIN_S = 0.5
"""How much longer than its timeout a call may take (scheduling on a busy 2-core machine)."""
DRIP_S = 0.03
"""A dripping server sends one byte this often: ten times inside any per-read timeout of the tests."""
HUGE_BYTES = 20 * 1024 * 1024
_HUGE_CHUNK = b"1, " * (64 * 1024 // 3)
SERVER_DETAIL = "model exploded: out of memory in layer 3"

X = pd.DataFrame({"region": ["north", "south", "east"], "age": [30.0, 41.5, 58.0], "tenure": [1, 12, 30]})


@dataclass(frozen=True)
class Hit:
    """One request the fault server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class FaultServer:
    """A threaded HTTP server whose answers follow ``behaviour``; it records every request."""

    def __init__(self) -> None:
        self.behaviour = "ok"
        self.hits: list[Hit] = []
        self._lock = threading.Lock()
        self.release = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _FaultHandler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        """Base URL of the server."""
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def set(self, behaviour: str) -> None:
        """Switch to ``behaviour``, release requests still hanging and forget the hits so far."""
        self.release.set()
        with self._lock:
            self.behaviour = behaviour
            self.hits = []
        self.release.clear()

    def record(self, hit: Hit) -> None:
        """Remember one request."""
        with self._lock:
            self.hits.append(hit)

    def count(self, method: str | None = None, path: str | None = None) -> int:
        """Number of requests received, optionally only those with this method and path."""
        with self._lock:
            return sum(1 for h in self.hits if method in (None, h.method) and path in (None, h.path))

    def __enter__(self) -> FaultServer:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def _rows_in(path: str, body: bytes) -> int:
    """Number of rows a prediction request carries, whatever the protocol."""
    request = json.loads(body)
    if path.endswith("/infer"):
        return request["inputs"][0]["shape"][0]
    if path == "/invocations":
        return len(request["dataframe_split"]["data"])
    return len(request["instances"])


def _correct_answer(method: str, path: str, body: bytes, *, extra_rows: int = 0) -> tuple[str, bytes]:
    """What a well-behaved server of the protocol that owns ``path`` would answer."""
    if method == "POST":
        n = _rows_in(path, body) + extra_rows
        if path.endswith("/infer"):
            output = {"name": "predict", "shape": [n], "datatype": "INT64", "data": [1] * n}
            answer = {"model_name": "m", "model_version": "7", "outputs": [output]}
            return "application/json", json.dumps(answer).encode()
        return "application/json", json.dumps({"predictions": [1] * n}).encode()
    if path == "/version":
        return "application/json", b"3.17.2"  # MLflow's answer: plain text under a JSON content type
    if path == "/v2":
        return "application/json", json.dumps({"name": "fault", "version": "0.0", "extensions": []}).encode()
    if path.startswith("/v2/models/") and not path.endswith("/ready"):
        return "application/json", json.dumps({"name": "m", "versions": ["7"], "platform": "sklearn"}).encode()
    if path == "/metadata":
        return "application/json", json.dumps({"name": "m", "version": "7"}).encode()
    return "application/json", b"{}"


class _FaultHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ThreadingHTTPServer

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep the test output clean

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (ConnectionError, OSError):
            self.close_connection = True  # the client gave up; nothing to report

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _drip(self, data: bytes, release: threading.Event) -> None:
        """Send ``data`` one byte every DRIP_S seconds (until released or the client goes away)."""
        for i in range(len(data)):
            if release.wait(DRIP_S):
                break
            self.wfile.write(data[i:i + 1])
        self.close_connection = True

    def _huge(self, *, declared: bool, release: threading.Event) -> None:
        """A 200 answer of HUGE_BYTES bytes (a JSON list of 1s), chunked or with its Content-Length."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if declared:
            self.send_header("Content-Length", str(HUGE_BYTES))
        else:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.close_connection = True
        for _ in range(HUGE_BYTES // len(_HUGE_CHUNK) + 1):
            if release.is_set():
                break
            if declared:
                self.wfile.write(_HUGE_CHUNK)
            else:
                self.wfile.write(b"%x\r\n%b\r\n" % (len(_HUGE_CHUNK), _HUGE_CHUNK))

    def _drop(self) -> None:
        self.close_connection = True
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_RDWR)

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        owner: FaultServer = self.server.owner  # type: ignore[attr-defined]
        owner.record(Hit(self.command, self.path, dict(self.headers.items()), body))
        behaviour = owner.behaviour
        if behaviour == "hang":
            owner.release.wait(HANG_S)
            self._drop()
        elif behaviour == "http500":
            self._send(500, "application/json", json.dumps({"detail": SERVER_DETAIL}).encode())
        elif behaviour == "http422":
            detail = [{"loc": ["body", "instances"], "msg": "Field required: instances", "type": "missing"}]
            self._send(422, "application/json", json.dumps({"detail": detail}).encode())
        elif behaviour == "http503_text":
            self._send(503, "text/plain", b"upstream model pod is restarting")
        elif behaviour == "html":
            self._send(200, "text/html", b"<html><body><h1>Welcome to nginx!</h1></body></html>")
        elif behaviour == "truncated":
            self._send(200, "application/json", b'{"predictions": [1, 0, 1')
        elif behaviour == "drop":
            self._drop()
        elif behaviour == "drop_midway":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "400")
            self.end_headers()
            self.wfile.write(b'{"predictions": [1, 0')
            self._drop()
        elif behaviour == "drip_headers":
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Padding: " + b"x" * 400
            self._drip(head + b"\r\nContent-Length: 2\r\n\r\n{}", owner.release)
        elif behaviour == "drip_body":
            content_type, answer = _correct_answer(self.command, self.path, body)
            answer = answer + b" " * 400  # JSON may end in spaces
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self._drip(answer, owner.release)
        elif behaviour in ("huge", "huge_declared"):
            self._huge(declared=behaviour == "huge_declared", release=owner.release)
        elif behaviour == "wrong_count":
            self._send(200, *_correct_answer(self.command, self.path, body, extra_rows=1))
        else:
            self._send(200, *_correct_answer(self.command, self.path, body))


@pytest.fixture(scope="module")
def _fault_server_running() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


@pytest.fixture
def fault_server(_fault_server_running: FaultServer) -> Iterator[FaultServer]:
    """The fault server, reset to well-behaved with no hits recorded."""
    _fault_server_running.set("ok")
    yield _fault_server_running
    _fault_server_running.set("ok")


def _config(protocol: str, url: str, **overrides) -> ServiceConfig:
    settings = {
        "name": f"fault-{protocol}", "url": url, "protocol": protocol, "timeout": 0.5, "predict_timeout": 0.5,
        "retries": 0, "rest": RestPaths(metadata="/metadata"),
    }
    if protocol == "v2":
        settings["model"] = "m"
    return ServiceConfig(**(settings | overrides))


def _client(protocol: str, url: str, **overrides):
    return make_client(_config(protocol, url, **overrides))


# What each misbehaviour is reported as: the ServiceError kind and a pattern the message must match.
FAILURES = {
    "refuse": ("connection", r"refused"),
    "hang": ("timeout", r"no answer within 0\.5 s"),
    "http500": ("http", re.escape(f"HTTP 500: {SERVER_DETAIL}")),
    "http422": ("http", r"HTTP 422: .*Field required: instances"),
    "http503_text": ("http", r"HTTP 503: upstream model pod is restarting"),
    "drop": ("connection", r"closed the connection without answering"),
    "drop_midway": ("connection", r"cut in the middle of the answer \(IncompleteRead\(21 bytes read"),
}
# Answers that are 2xx but not what the protocol promises.
GARBLED = {
    "html": r"text/html.*(not JSON|not an MLflow version)",
    "truncated": r"not JSON|not an MLflow version",  # MLflow /version is text, not JSON
}


def _url_for(behaviour: str, server: FaultServer) -> str:
    if behaviour == "refuse":
        return f"http://127.0.0.1:{free_port()}"
    server.set(behaviour)
    return server.url


def test_fault_server_well_behaved_baseline(fault_server):
    for protocol in PROTOCOLS:
        client = _client(protocol, fault_server.url)
        assert all(check.ok for check in client.health().checks), protocol
        assert client.metadata().name == ("m" if protocol != "mlflow" else "fault-mlflow")
        answer = client.predict(X)
        np.testing.assert_array_equal(answer.predictions, [1.0, 1.0, 1.0])
        assert answer.requests == 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("behaviour", list(FAILURES))
def test_health_reports_the_problem_and_never_raises(fault_server, protocol, behaviour):
    kind, pattern = FAILURES[behaviour]
    client = _client(protocol, _url_for(behaviour, fault_server))
    report = client.health()
    assert report.checks, "health made no check"
    for check in report.checks:
        assert check.ok is False, (check.check, behaviour)
        assert check.error and re.search(pattern, check.error), (check.check, check.error)
        assert check.latency_ms >= 0
        if kind == "http":
            assert check.status == int(behaviour[4:7])
        else:
            assert check.status is None


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("behaviour", list(GARBLED))
def test_health_relies_on_status_codes_not_bodies(fault_server, protocol, behaviour):
    fault_server.set(behaviour)
    report = _client(protocol, fault_server.url).health()
    assert all(check.ok and check.status == 200 for check in report.checks)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("behaviour", list(FAILURES))
def test_metadata_and_predict_raise_service_error_of_the_right_kind(fault_server, protocol, behaviour):
    kind, pattern = FAILURES[behaviour]
    client = _client(protocol, _url_for(behaviour, fault_server))
    for call in (client.metadata, lambda: client.predict(X)):
        with pytest.raises(ServiceError) as raised:
            call()
        error = raised.value
        assert error.kind == kind, (error.call, error.message)
        assert re.search(pattern, error.message), error.message
        assert error.call in str(error)
        if kind == "http":
            assert error.status == int(behaviour[4:7])


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("behaviour", list(GARBLED))
def test_garbled_answers_raise_garbled(fault_server, protocol, behaviour):
    fault_server.set(behaviour)
    client = _client(protocol, fault_server.url)
    for call in (client.metadata, lambda: client.predict(X)):
        with pytest.raises(ServiceError) as raised:
            call()
        assert raised.value.kind == "garbled", raised.value.message
        assert re.search(GARBLED[behaviour], raised.value.message), raised.value.message
        assert raised.value.status == 200


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_wrong_number_of_predictions_is_garbled(fault_server, protocol):
    fault_server.set("wrong_count")
    with pytest.raises(ServiceError) as raised:
        _client(protocol, fault_server.url).predict(X)
    assert raised.value.kind == "garbled"
    assert "sent 3 rows but got 4 predictions" in raised.value.message


LIVE_PATHS = {"v2": "/v2/health/live", "mlflow": "/ping", "rest": "/health"}


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(("behaviour", "retries"), [("drop", 2), ("drop", 0)])
def test_gets_are_retried_at_most_retries_times(fault_server, protocol, behaviour, retries):
    fault_server.set(behaviour)
    client = _client(protocol, fault_server.url, retries=retries, timeout=0.25)
    live = client.health().live
    assert not live.ok
    assert fault_server.count("GET", LIVE_PATHS[protocol]) == 1 + retries


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_retries_fit_in_the_calls_timeout(fault_server, protocol):
    """``timeout`` is the budget of the whole call: a hang spends it, so no retry follows."""
    fault_server.set("hang")
    client = _client(protocol, fault_server.url, retries=3, timeout=0.25)
    started = time.perf_counter()
    live = client._check("live", LIVE_PATHS[protocol])
    assert time.perf_counter() - started < 0.25 + MARGIN_S
    assert not live.ok and "no answer within 0.25 s" in live.error
    assert fault_server.count("GET", LIVE_PATHS[protocol]) == 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_http_errors_are_not_retried(fault_server, protocol):
    fault_server.set("http500")
    client = _client(protocol, fault_server.url, retries=3)
    client.health()
    with pytest.raises(ServiceError):
        client.predict(X)
    assert fault_server.count("POST") == 1
    paths = {h.path for h in fault_server.hits if h.method == "GET"}
    assert all(fault_server.count("GET", path) == 1 for path in paths)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("behaviour", ["drop", "hang", "drop_midway"])
def test_posts_are_never_retried(fault_server, protocol, behaviour):
    fault_server.set(behaviour)
    client = _client(protocol, fault_server.url, retries=3)
    with pytest.raises(ServiceError):
        client.predict(X)
    assert fault_server.count("POST") == 1
    assert fault_server.count("GET") == 0


def _sent_rows(hit: Hit) -> list[list]:
    """The rows a prediction request carried, as lists in column order."""
    request = json.loads(hit.body)
    if hit.path.endswith("/infer"):
        return [list(row) for row in zip(*(i["data"] for i in request["inputs"]), strict=True)]
    if hit.path == "/invocations":
        return request["dataframe_split"]["data"]
    return [list(record.values()) for record in request["instances"]]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_predict_sends_the_values_exactly(fault_server, protocol):
    rows = pd.DataFrame({
        "ratio": [0.12345678901234567, 3e-12, np.nan, -1.5e300],
        "region": ["north", None, "east", "west"],
        "tenure": [1, 2, 3, 4],
    })
    _client(protocol, fault_server.url).predict(rows)
    (hit,) = fault_server.hits
    sent = _sent_rows(hit)
    assert sent == [
        [0.12345678901234567, "north", 1],
        [3e-12, None, 2],
        [None, "east", 3],
        [-1.5e300, "west", 4],
    ]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_values_json_cannot_carry_are_an_input_error(fault_server, protocol):
    with pytest.raises(ServiceError) as raised:
        _client(protocol, fault_server.url).predict(pd.DataFrame({"ratio": [1.0, np.inf]}))
    assert raised.value.kind == "input"
    assert "JSON" in raised.value.message
    assert fault_server.count() == 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_hang_is_abandoned_after_the_timeout(fault_server, protocol):
    fault_server.set("hang")
    client = _client(protocol, fault_server.url, timeout=0.5, predict_timeout=0.5, retries=0)
    for check in client.health().checks:
        assert check.latency_ms < 2000, check
    started = time.perf_counter()
    with pytest.raises(ServiceError, match=r"no answer within 0\.5 s"):
        client.predict(X)
    assert time.perf_counter() - started < 2.0
    started = time.perf_counter()
    with pytest.raises(ServiceError) as raised:
        client.metadata()
    assert raised.value.kind == "timeout"
    assert time.perf_counter() - started < 2.0 * 2  # v2 asks /v2 and then /v2/models/m


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_auth_header_read_from_the_environment_on_every_call(fault_server, protocol, monkeypatch):
    auth = AuthConfig(header="Authorization", env="VANTAGE_TEST_FAULT_TOKEN", prefix="Bearer ")
    client = _client(protocol, fault_server.url, auth=auth)

    monkeypatch.setenv("VANTAGE_TEST_FAULT_TOKEN", "first-token")
    client.health()
    client.metadata()
    client.predict(X)
    assert fault_server.count() >= 3
    assert {h.headers.get("Authorization") for h in fault_server.hits} == {"Bearer first-token"}

    fault_server.set("ok")
    monkeypatch.setenv("VANTAGE_TEST_FAULT_TOKEN", "rotated-token")  # read at call time, not at start
    client.predict(X)
    assert [h.headers.get("Authorization") for h in fault_server.hits] == ["Bearer rotated-token"]

    fault_server.set("ok")
    monkeypatch.delenv("VANTAGE_TEST_FAULT_TOKEN")
    client.health()
    client.metadata()
    client.predict(X)
    assert fault_server.count() >= 3
    assert all("authorization" not in {k.lower() for k in h.headers} for h in fault_server.hits)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_custom_auth_header_name(fault_server, protocol, monkeypatch):
    monkeypatch.setenv("VANTAGE_TEST_FAULT_KEY", "k-123")
    client = _client(protocol, fault_server.url, auth=AuthConfig(header="X-Api-Key", env="VANTAGE_TEST_FAULT_KEY"))
    client.health()
    client.predict(X)
    assert {h.headers.get("X-Api-Key") for h in fault_server.hits} == {"k-123"}
    assert all("Authorization" not in h.headers for h in fault_server.hits)


# -- whole-call deadlines and size limits ---------------------------------------------------------


def _timed(call):
    """Run ``call``; return (its ServiceError or result, seconds taken)."""
    started = time.perf_counter()
    try:
        outcome = call()
    except ServiceError as exc:
        outcome = exc
    return outcome, time.perf_counter() - started


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("behaviour", ["drip_headers", "drip_body"])
def test_a_dripping_service_is_a_timeout_after_timeout(fault_server, protocol, behaviour):
    """One byte every 30 ms never trips a per-read timeout; the whole-call deadline ends each call."""
    fault_server.set(behaviour)
    client = _client(protocol, fault_server.url, timeout=0.3, predict_timeout=0.4, retries=1)
    for check in client.health().checks:
        assert not check.ok and check.status is None, check
        assert "no answer within 0.3 s" in check.error, check
        assert check.latency_ms < (0.3 + MARGIN_S) * 1000, check
    for name, call, budget in (("predict", lambda: client.predict(X), 0.4), ("metadata", client.metadata, 0.3)):
        error, seconds = _timed(call)
        assert isinstance(error, ServiceError) and error.kind == "timeout", error
        assert re.search(rf"no answer within {budget:g} s", error.message), error.message
        calls = 2 if name == "metadata" and protocol == "v2" else 1  # v2 asks /v2, then /v2/models/m
        assert seconds < calls * (budget + MARGIN_S), (name, seconds)


def test_a_dripping_metrics_endpoint_is_abandoned_after_timeout(fault_server):
    """The collector scrapes through the client's session: the same deadline holds there."""
    fault_server.set("drip_body")
    client = _client("rest", fault_server.url, timeout=0.5)
    started = time.perf_counter()
    with pytest.raises(DeadlineExceeded):
        client.session.get(f"{fault_server.url}/metrics", timeout=0.5)
    assert time.perf_counter() - started < 0.5 + MARGIN_S


def test_a_slow_loris_service_is_down_after_its_timeout(fault_server, store):
    from monitoring.collector import ServicePoller

    fault_server.set("drip_headers")
    service = _config("rest", fault_server.url, timeout=0.5, retries=1,
                      metrics=MetricsConfig(url=f"{fault_server.url}/metrics"))
    poller = ServicePoller(service, store)
    try:
        started = time.perf_counter()
        outcome = poller.poll()
        seconds = time.perf_counter() - started
    finally:
        poller.close()
    assert outcome.state == "down" and "no answer within 0.5 s" in outcome.reason
    scrape = next(c for c in outcome.checks if c.check == "metrics")
    assert not scrape.ok and "DeadlineExceeded" in scrape.error
    assert seconds < 2 * (0.5 + MARGIN_S)  # the live check and the scrape; the canary is skipped when not live


def _peak_bytes(call) -> tuple[object, int]:
    """Run ``call`` under tracemalloc; return (its ServiceError or result, peak bytes allocated meanwhile)."""
    tracemalloc.start()
    try:
        outcome, _ = _timed(call)
        return outcome, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("behaviour", ["huge", "huge_declared"])
def test_a_huge_answer_is_an_error_read_no_further_than_the_limit(fault_server, protocol, behaviour):
    fault_server.set(behaviour)
    client = _client(protocol, fault_server.url, max_response_mb=1, predict_timeout=5, timeout=5)
    for call in (lambda: client.predict(X), client.metadata):
        error, peak = _peak_bytes(call)
        assert isinstance(error, ServiceError) and error.kind == "garbled", error
        assert error.status == 200
        assert "answer larger than 1 MB (max_response_mb = 1)" in error.message, error.message
        assert peak < 4 * 1024 * 1024, f"{peak / 2**20:.1f} MB allocated for a {HUGE_BYTES / 2**20:.0f} MB answer"


def test_the_default_limit_stops_a_20_mb_answer(fault_server):
    fault_server.set("huge")
    error, peak = _peak_bytes(lambda: _client("rest", fault_server.url, predict_timeout=5).predict(X))
    assert isinstance(error, ServiceError) and error.kind == "garbled"
    assert "answer larger than 16 MB" in error.message
    assert peak < 2.5 * 16 * 1024 * 1024  # the chunks read and their join, never the JSON of 20 MB


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_health_checks_judge_a_huge_answer_by_its_status(fault_server, protocol):
    fault_server.set("huge")
    client = _client(protocol, fault_server.url, timeout=5)
    report, peak = _peak_bytes(client.health)
    assert all(check.ok and check.status == 200 for check in report.checks), report
    assert peak < 1024 * 1024


def test_the_session_refuses_a_huge_metrics_page(fault_server):
    fault_server.set("huge_declared")
    client = _client("rest", fault_server.url, max_response_mb=2)
    with pytest.raises(ResponseTooLarge, match="answer larger than 2 MB"):
        client.session.get(f"{fault_server.url}/metrics", timeout=5)
    fault_server.set("ok")
    assert client.session.get(f"{fault_server.url}/metrics", timeout=5).json() == {}  # the session still works
