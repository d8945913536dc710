"""Prometheus as a metrics source: the API answers read, PromQL built, and Debian's real ``prometheus``.

The integration tests start Debian's ``prometheus`` binary on 127.0.0.1 scraping, every second,
the demo template service (whose readiness answers 503, so it has errors) and a real MLServer;
drive traffic through both; and check the request rates, error rates and latency quantiles
Vantage reads from Prometheus's HTTP API against what the servers' own ``/metrics`` counters
say. The Service-health page is then opened (AppTest) on a configuration that names only the
Prometheus URL and a selector, and on one whose Prometheus is down.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
import shutil
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from monitoring.clients import ServiceError
from monitoring.config import ConfigError, MetricsConfig, ServiceConfig, check_selector, parse_config
from monitoring.metrics import KNOWN_SERVERS, histogram_quantile, parse_scrape
from monitoring.prometheus import (
    PrometheusClient,
    PrometheusError,
    Series,
    error_rate_from_prometheus,
    parse_api_answer,
    parse_label_values,
    parse_matrix,
    parse_vector,
    query_step,
    rate_range,
    traffic_frame,
    traffic_from_prometheus,
    traffic_queries,
)
from tests.servers import free_port, server_process

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
PROMETHEUS = shutil.which("prometheus")
DEADLINE_S = 60.0

SERVICE = """
[[services]]
name = "credit"
url = "http://127.0.0.1:8080"
protocol = "v2"
model = "credit-risk"
"""


# -- configuration ----------------------------------------------------------------------------


def problems(extra: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(SERVICE + "[services.metrics]\n" + extra)
    return info.value.problems


def test_a_prometheus_url_and_a_selector_are_enough():
    metrics = parse_config(SERVICE + '[services.metrics]\nprometheus = "http://prometheus:9090/"\n'
                           "selector = 'job=\"mlserver\", instance=~\"10\\\\.0\\\\..*\"'\n").services[0].metrics
    assert metrics.prometheus == "http://prometheus:9090" and metrics.url is None
    assert metrics.selector == '{job="mlserver", instance=~"10\\\\.0\\\\..*"}'
    assert metrics.rate_window == "5m" and metrics.query_timeout == 10
    assert metrics.source == 'Prometheus at http://prometheus:9090 for {job="mlserver", instance=~"10\\\\.0\\\\..*"}'


@pytest.mark.parametrize(("extra", "message"), [
    ('prometheus = "http://p:9090"\n', "prometheus needs selector"),
    ("selector = '{job=\"a\"}'\n", "selector is read with prometheus"),
    ('prometheus = "http://p:9090"\nurl = "http://h/metrics"\nselector = \'{job="a"}\'\n', "not both"),
    ('requests = "http_requests_total"\n', "set url (an endpoint Vantage scrapes"),
    ('prometheus = "http://p:9090"\nselector = \'{job=~".*"}\'\n', "does not match every series"),
    ('prometheus = "http://p:9090"\nselector = \'{job="a" instance="b"}\'\n', "with commas; after job=\"a\" comes"),
    ('prometheus = "http://p:9090"\nselector = \'{__name__="up"}\'\n', "must not name the metric"),
    ('prometheus = "http://p:9090"\nselector = \'{job="a"\'\n', "braces do not pair up"),
    ('prometheus = "http://p:9090/?x=1"\nselector = \'{job="a"}\'\n', "without ?query"),
    ('prometheus = "http://p:9090"\nselector = \'{job="a"}\'\nrate_window = "5"\n', "Prometheus duration"),
    ('prometheus = "http://p:9090"\nselector = \'{job="a"}\'\nquery_timeout = 0\n', "greater than 0"),
])
def test_prometheus_settings_are_validated_with_messages(extra, message):
    found = problems(extra)
    assert any(p.startswith("services[0].metrics") and message in p for p in found), found


# -- reading the API's answers ----------------------------------------------------------------


def test_api_answers_errors_and_garbage_are_messages():
    data = {"resultType": "matrix", "result": [
        {"metric": {}, "values": [[20.0, "2"], [10.0, "NaN"], [30.0, "+Inf"]]}]}
    [series] = parse_matrix(parse_api_answer({"status": "success", "data": data}, call="q"), call="q")
    np.testing.assert_array_equal(series.ts, [10.0, 20.0, 30.0])
    assert math.isnan(series.values[0]) and series.values[1] == 2.0 and math.isinf(series.values[2])
    with pytest.raises(PrometheusError, match=r"q: Prometheus answered bad_data: parse error at char 5"):
        parse_api_answer({"status": "error", "errorType": "bad_data", "error": "parse error at char 5"}, call="q")
    for body in (None, [], {"status": "maybe"}, "<html>"):
        with pytest.raises(PrometheusError, match="not a Prometheus API answer"):
            parse_api_answer(body, call="q")
    with pytest.raises(PrometheusError, match="expected a matrix result; got 'vector'"):
        parse_matrix({"resultType": "vector", "result": []}, call="q")
    with pytest.raises(PrometheusError, match="a sample that is not numbers"):
        parse_matrix({"resultType": "matrix", "result": [{"metric": {}, "values": [[1, "x"]]}]}, call="q")


JSON = st.recursive(st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)
PROPERTY = settings(max_examples=int(os.environ.get("VANTAGE_PROPERTY_EXAMPLES", "60")), deadline=None,
                    database=None, derandomize=bool(os.environ.get("CI")))


@PROPERTY
@given(body=JSON | st.fixed_dictionaries({"status": st.sampled_from(["success", "error"]), "data": JSON}))
def test_any_answer_is_data_or_a_prometheus_error(body):
    try:
        data = parse_api_answer(body, call="q")
    except PrometheusError:
        return
    for parse in (parse_matrix, parse_vector, parse_label_values):
        with contextlib.suppress(PrometheusError):
            parse(data, call="q")


@PROPERTY
@given(text=st.text(max_size=60) | st.builds(lambda label, op, value: f"{{{label}{op}{json.dumps(value)}}}",
                                             st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True),
                                             st.sampled_from(["=", "!=", "=~", "!~"]), st.text(max_size=10)))
def test_any_selector_is_accepted_as_matchers_or_refused_with_a_message(text):
    try:
        selector = check_selector(text)
    except ValueError as exc:
        assert str(exc).startswith("must "), exc
        return
    assert selector.startswith("{") and selector.endswith("}")
    assert check_selector(selector) == selector  # what it gives back reads the same again


# -- building PromQL --------------------------------------------------------------------------


def names_of(server: str):
    return next(known for known in KNOWN_SERVERS if server in known.server)


def test_promql_for_each_known_server():
    config = MetricsConfig(prometheus="http://p:9090", selector='{job="m"}', path_regex=".*infer")
    mlserver = traffic_queries(names_of("MLServer"), config, exposed={"rest_server_requests_total"}, window="60s",
                               quantiles=(0.5,))
    assert mlserver.request_rate == ('sum(rate(rest_server_requests_total{job="m", path=~"(?:.*infer)|"}[60s]))')
    assert mlserver.error_rate == ('sum(rate(rest_server_requests_total{job="m", path=~"(?:.*infer)|", '
                                   'status_code=~"5[0-9][0-9]|5xx|5XX"}[60s]))')
    assert mlserver.quantiles == ((0.5, 'histogram_quantile(0.5, sum by (le) (rate('
                                        'rest_server_request_duration_seconds_bucket{job="m", '
                                        'path=~"(?:.*infer)|"}[60s])))'),)
    kserve = traffic_queries(names_of("KServe"), config, exposed=set(), window="5m")
    assert kserve.request_rate == 'sum(rate(request_predict_seconds_count{job="m"}[5m]))'  # no path label
    assert kserve.error_rate is None and len(kserve.quantiles) == 3
    triton = traffic_queries(names_of("Triton"), config, exposed={"nv_inference_request_success",
                                                                  "nv_inference_request_failure"}, window="60s")
    assert triton.request_rate == ('sum(rate({job="m", __name__=~"nv_inference_request_success|'
                                   'nv_inference_request_failure"}[60s]))')  # successes and failures
    assert triton.error_rate == 'sum(rate(nv_inference_request_failure{job="m"}[60s]))'
    assert triton.quantiles == ()


def test_steps_windows_and_the_frame():
    assert query_step(0, 3600, 60) == 60 and query_step(0, 30 * 86400, 60) == 30 * 86400 / 500
    assert rate_range(60, "5m") == "300s" and rate_range(900, "5m") == "900s"
    frame = traffic_frame(60.0, [Series((), np.array([120.0, 180.0]), np.array([2.0, 0.5]))],
                          [Series((), np.array([180.0]), np.array([0.25]))],
                          [(0.5, [Series((), np.array([120.0, 180.0]), np.array([0.1, math.nan]))])])
    assert frame.columns.tolist() == ["bucket_ts", "requests", "errors", "request_rate", "error_rate", "p50_ms"]
    assert frame["bucket_ts"].tolist() == [60.0, 120.0]
    assert frame["requests"].tolist() == [120.0, 30.0] and frame["errors"].tolist() == [0.0, 15.0]
    assert frame["error_rate"].tolist() == [0.0, 0.5]
    assert frame["p50_ms"].iloc[0] == pytest.approx(100.0) and math.isnan(frame["p50_ms"].iloc[1])
    no_failures = traffic_frame(60.0, [Series((), np.array([60.0]), np.array([1.0]))], None, [])
    assert math.isnan(no_failures["errors"].iloc[0]) and math.isnan(no_failures["error_rate"].iloc[0])


def test_a_prometheus_that_is_down_is_a_message_not_an_exception():
    config = MetricsConfig(prometheus=f"http://127.0.0.1:{free_port()}", selector='{job="demo"}', query_timeout=2)
    with PrometheusClient.for_metrics(config) as client:
        read = traffic_from_prometheus(client, config, since=0.0, until=3600.0, bucket_seconds=60)
        rate, problem = error_rate_from_prometheus(client, config, now=3600.0)
    assert read.traffic is None and "connection refused (is Prometheus running at this address?)" in read.problem
    assert math.isnan(rate) and "connection refused" in problem


def test_a_prometheus_that_never_answers_is_one_wait_of_query_timeout_and_a_message():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # accepts connections (backlog), never answers
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        config = MetricsConfig(prometheus=f"http://127.0.0.1:{listener.getsockname()[1]}", selector='{job="demo"}',
                               query_timeout=0.5)
        with PrometheusClient.for_metrics(config) as client:
            read = traffic_from_prometheus(client, config, since=0.0, until=3600.0, bucket_seconds=60)
    finally:
        listener.close()
    assert read.traffic is None
    assert "no complete answer within query_timeout = 0.5 s (for all the queries of one chart together)" in read.problem


# -- against Debian's prometheus --------------------------------------------------------------


def _host_port(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}"


def wait_for(condition, what: str, deadline_s: float = DEADLINE_S):
    """Poll ``condition`` until it returns something truthy; fail naming ``what`` after ``deadline_s``."""
    deadline = time.monotonic() + deadline_s
    last = None
    while time.monotonic() < deadline:
        try:
            last = condition()
        except PrometheusError as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.2)
    raise AssertionError(f"{what} within {deadline_s:g} s; last: {last!r}")


@pytest.fixture(scope="module")
def demo_target(demo_model):
    """The demo template service on its own port; its readiness answers 503 (a reload that never ends)."""
    import uvicorn

    from demo.runtime import MODEL_NAME
    from demo.service import FaultSchedule, ServedModel, create_app

    served = ServedModel(demo_model.pipeline, demo_model.version, dict(demo_model.features), name=MODEL_NAME)
    never_ready = FaultSchedule(period=1e9, not_ready_for=1e9, slow_period=1e9, slow_for=0.0, slow_ms=0.0, offset=0.0)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(served, faults=never_ready), host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True, name="test-prometheus-demo")
    thread.start()
    wait_for(lambda: server.started, "the demo service started")
    X = pd.read_parquet(demo_model.reference_path)[list(demo_model.features)].head(5)
    yield {"url": f"http://127.0.0.1:{port}", "model": MODEL_NAME, "X": X}
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory, demo_target, mlserver_server):
    """Debian's prometheus on 127.0.0.1, scraping the demo service and MLServer every second."""
    if PROMETHEUS is None:
        pytest.fail("Debian's prometheus binary is not on PATH: run `bash tests/install.sh` (it installs the "
                    "Debian package prometheus when missing)")
    run_dir = tmp_path_factory.mktemp("prometheus")
    config = {  # JSON is YAML: no YAML writer needed
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {"job_name": "demo", "static_configs": [{"targets": [_host_port(demo_target["url"])]}]},
            {"job_name": "mlserver", "static_configs": [{"targets": [_host_port(mlserver_server.metrics_url)]}]},
        ],
    }
    (run_dir / "prometheus.yml").write_text(json.dumps(config, indent=1))

    def command(port: int) -> list:
        return [PROMETHEUS, f"--config.file={run_dir / 'prometheus.yml'}", f"--storage.tsdb.path={run_dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]

    with server_process("Prometheus", command, health_path="/-/ready", log_path=run_dir / "prometheus.log",
                        cwd=run_dir, startup_timeout=60) as server:
        yield server


def own_counters(metrics_url: str, path_regex: str = ".*") -> dict:
    """What the server's own /metrics says now: requests, errors and the latency buckets (parse_scrape's sums)."""
    text = requests.get(metrics_url, timeout=10).text
    return {(series, le): value for series, le, value in parse_scrape(
        text, MetricsConfig(url=metrics_url, path_regex=path_regex))}


def prometheus_caught_up(prom_url: str, config: MetricsConfig, own: dict) -> bool:
    """Whether the newest samples Prometheus holds for the selector (its /federate text, read the same way) give
    the server's own request and latency counts ``own``."""
    text = requests.get(prom_url + "/federate", params={"match[]": config.selector}, timeout=5).text
    try:
        held = {(series, le): value for series, le, value in parse_scrape(
            text, MetricsConfig(url=prom_url + "/federate", path_regex=config.path_regex))}
    except ValueError:  # nothing scraped yet
        return False
    keys = [key for key in (("requests", -1.0), ("latency_count", -1.0)) if key in own]
    return all(held.get(key) == own[key] for key in keys)


def burst_window(start: float, *, shortest: int = 120, longest: int = 4000) -> tuple[int, float]:
    """A step ``S`` and a multiple ``b`` of it 1.5-12 s after ``start`` (the first found): traffic sent after ``b``
    and before ``b + S`` falls in one bucket, and the bucket before holds none of it."""
    for boundary in range(math.ceil(start + 1.5), math.ceil(start + 12)):
        for step in range(shortest, longest):
            if boundary % step == 0:
                return step, float(boundary)
    raise AssertionError(f"no step between {shortest} and {longest} s divides a second 1.5-12 s after {start}")


def measure(prometheus, config: MetricsConfig, metrics_url: str, send) -> dict:
    """Send traffic in one bucket of a chosen step; return Prometheus's reading and the server's own counts."""
    send(1)  # every label set exists before the measured traffic, so no increase is lost to a new series
    before = own_counters(metrics_url, config.path_regex)
    wait_for(lambda: prometheus_caught_up(prometheus.url, config, before), "Prometheus saw the warm-up requests")
    step, boundary = burst_window(time.time())
    wait_for(lambda: time.time() > boundary + 1.5, "the bucket began", deadline_s=20)
    send(30)
    after = own_counters(metrics_url, config.path_regex)
    assert time.time() < boundary + step - 5, "the traffic took longer than one bucket"
    wait_for(lambda: prometheus_caught_up(prometheus.url, config, after), "Prometheus saw the traffic")
    wait_for(lambda: time.time() > boundary + 30, "enough samples in the bucket", deadline_s=40)
    with PrometheusClient.for_metrics(config) as client:
        read = traffic_from_prometheus(client, config, since=boundary - step + 1, until=time.time(),
                                       bucket_seconds=step)
        now = time.time()  # the fleet table's error rate, over the bucket's span only (the server may have
        # served requests before Prometheus began to scrape it)
        fleet_error_rate, problem = error_rate_from_prometheus(client, config, now=now, window_s=now - boundary)
    assert read.problem is None and problem is None, (read.problem, problem)
    burst = read.traffic.set_index("bucket_ts").loc[boundary]
    delta = {key: after[key] - before.get(key, 0.0) for key in after}
    return {"read": read, "burst": burst, "delta": delta, "after": after, "fleet_error_rate": fleet_error_rate}


def check_against_own_counters(measured: dict) -> None:
    burst, delta = measured["burst"], measured["delta"]
    sent = delta[("requests", -1.0)]
    # rate() extrapolates to the ends of its range: at most ~1.6 scrape intervals over ~28 s of samples
    assert sent * 0.97 <= burst["requests"] <= sent * 1.1, (burst["requests"], sent)
    if ("errors", -1.0) in delta:  # the same extrapolation on both sides of the ratio: it cancels
        assert burst["error_rate"] == pytest.approx(delta[("errors", -1.0)] / sent, abs=0.01)
        assert measured["fleet_error_rate"] == pytest.approx(delta[("errors", -1.0)] / sent, abs=0.01)
    buckets = sorted((le, value) for (series, le), value in delta.items() if series == "latency_bucket")
    les, counts = [le for le, _ in buckets], [value for _, value in buckets]
    # rate() extrapolates each bucket series on its own, and a bucket that was 0 when the range began is not
    # extrapolated back: the buckets' counts are off from one another by up to ~1 scrape interval over ~28 s of
    # samples (4 %). The median lies between the server's own quantiles at 0.4 and 0.6; the p95 between its
    # 0.85 quantile and its largest observation's bucket; the p99, in a tail of 0.3 requests, can move to any
    # bucket up to the largest that holds an observation since the server started.
    own = lambda q: histogram_quantile(q, les, counts) * 1000.0  # noqa: E731
    assert own(0.4) - 1e-6 <= burst["p50_ms"] <= own(0.6) + 1e-6, (own(0.4), burst["p50_ms"], own(0.6))
    assert own(0.85) - 1e-6 <= burst["p95_ms"] <= own(1.0) + 1e-6, (own(0.85), burst["p95_ms"], own(1.0))
    ever = sorted((le, value) for (series, le), value in measured["after"].items() if series == "latency_bucket")
    largest = histogram_quantile(1.0, [le for le, _ in ever], [value for _, value in ever]) * 1000.0
    assert burst["p95_ms"] - 1e-6 <= burst["p99_ms"] <= largest + 1e-6, (burst["p99_ms"], largest)


@pytest.mark.integration
def test_the_demo_services_rates_errors_and_quantiles_from_prometheus(prometheus, demo_target):
    client_config = ServiceConfig(name="demo", url=demo_target["url"], protocol="v2", model=demo_target["model"])
    from monitoring.clients import make_client

    client = make_client(client_config)

    def send(n: int) -> None:
        for _ in range(n):
            client.predict(demo_target["X"])
            if _ % 3 == 0:
                assert requests.get(demo_target["url"] + "/v2/health/ready", timeout=5).status_code == 503

    config = MetricsConfig(prometheus=prometheus.url, selector='{job="demo"}', rate_window="5s")
    measured = measure(prometheus, config, demo_target["url"] + "/metrics", send)
    client.close()
    assert measured["read"].names.server.startswith("a prometheus_client / FastAPI service")
    assert measured["delta"][("errors", -1.0)] == 10  # every readiness check of the burst answered 503
    check_against_own_counters(measured)


@pytest.mark.integration
def test_mlservers_infer_traffic_from_prometheus(prometheus, mlserver_server):
    from monitoring.clients import make_client

    mls_config = ServiceConfig(name="mls", url=mlserver_server.url, protocol="v2", model=mlserver_server.model,
                               v2_inputs="columns")
    client = make_client(mls_config)

    unseen = mlserver_server.X.head(3).drop(columns=["age"])  # a column the model needs is missing: 500

    def send(n: int) -> None:
        for i in range(n):
            client.predict(mlserver_server.X.head(3))
            if i % 5 == 0:  # on a connection of its own: MLServer drops the connection of a 500
                with pytest.raises(ServiceError) as failed, contextlib.closing(make_client(mls_config)) as one_off:
                    one_off.predict(unseen)
                assert failed.value.status == 500, failed.value

    config = MetricsConfig(prometheus=prometheus.url, selector='{job="mlserver"}', path_regex=".*infer",
                           rate_window="5s")
    measured = measure(prometheus, config, mlserver_server.metrics_url, send)
    client.close()
    assert measured["read"].names.server == "Seldon MLServer"
    assert measured["delta"][("requests", -1.0)] == 36 and measured["delta"][("errors", -1.0)] == 6
    check_against_own_counters(measured)
    assert any("rest_server_request_duration_seconds_bucket" in q for q in measured["read"].queries)


@pytest.mark.integration
def test_a_configured_name_prometheus_lacks_and_a_selector_with_no_series_are_messages(prometheus):
    missing = MetricsConfig(prometheus=prometheus.url, selector='{job="demo"}', requests="no_such_requests_total")
    nothing = MetricsConfig(prometheus=prometheus.url, selector='{job="nobody"}')
    refused = MetricsConfig(prometheus=prometheus.url, selector='{job="demo"}', path_regex="(")
    now = time.time()
    with PrometheusClient.for_metrics(missing) as client:
        wait_for(lambda: client.metric_names('{job="demo"}', start=now - 60, end=time.time()),
                 "Prometheus holds the demo's series")
        lacks = traffic_from_prometheus(client, missing, since=now - 3600, until=now, bucket_seconds=60)
        empty = traffic_from_prometheus(client, nothing, since=now - 3600, until=now, bucket_seconds=60)
        bad = traffic_from_prometheus(client, refused, since=now - 3600, until=now, bucket_seconds=60)
    assert lacks.traffic is None and "requests = 'no_such_requests_total' not found in Prometheus" in lacks.problem
    assert "http_requests_total" in lacks.problem  # what it holds is listed
    assert empty.traffic is None and 'no series matching {job="nobody"}' in empty.problem
    assert bad.traffic is None and "Prometheus answered bad_data" in bad.problem


# -- the Service-health page ------------------------------------------------------------------


@pytest.fixture
def fresh_runtime():
    """Stop the collector the app started, after the test."""
    yield
    from dashboard import state

    state.stop_runtime()


@pytest.mark.integration
def test_the_health_page_charts_prometheus_traffic_and_says_when_prometheus_is_down(
        prometheus, demo_target, tmp_path, monkeypatch, fresh_runtime):
    from streamlit.testing.v1 import AppTest

    from tests.helpers import page_text

    for _ in range(3):  # some traffic of its own, so that the page has a rate to chart
        assert requests.get(demo_target["url"] + "/v2/health/ready", timeout=5).status_code == 503
    source = MetricsConfig(prometheus=prometheus.url, selector='{job="demo"}', rate_window="5s")
    with PrometheusClient.for_metrics(source) as client:  # a rate needs two scrapes of the series
        wait_for(lambda: traffic_from_prometheus(client, source, since=time.time() - 3600, until=time.time(),
                                                 bucket_seconds=60).problem is None,
                 "Prometheus has a rate of the demo's requests")
    config = tmp_path / "vantage.toml"
    config.write_text(f"""
[store]
url = "sqlite:///{tmp_path / 'store.db'}"

[[services]]
name = "demo-via-prometheus"
url = "{demo_target['url']}"
protocol = "v2"
model = "{demo_target['model']}"
poll_interval = 1
[services.metrics]
prometheus = "{prometheus.url}"
selector = '{{job="demo"}}'
rate_window = "5s"

[[services]]
name = "prometheus-down"
url = "{demo_target['url']}"
protocol = "v2"
model = "{demo_target['model']}"
poll_interval = 1
[services.metrics]
prometheus = "http://127.0.0.1:{free_port()}"
selector = '{{job="demo"}}'
query_timeout = 2
""")
    monkeypatch.setenv("VANTAGE_CONFIG", str(config))
    at = AppTest.from_file(APP, default_timeout=90).run()
    assert not at.exception, at.exception
    at.switch_page("views/health.py").run()
    assert not at.exception, at.exception
    text = page_text(at).replace("\\", "")  # plain text: Markdown's characters come escaped
    host = prometheus.url.split("//")[1]  # plain() breaks "://" so that no address becomes a link
    assert "Real traffic from Prometheus at http:" in text and f'{host} for {{job="demo"}}' in text, text
    assert "names of a prometheus_client / FastAPI service" in text
    assert "Real traffic cannot be charted" not in text
    charts = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    titles = [chart["layout"].get("title", {}).get("text") for chart in charts]
    assert {"Real traffic (from Prometheus)", "Request latency (real traffic, from Prometheus)"} <= set(titles), titles
    traffic = next(c for c in charts if c["layout"].get("title", {}).get("text") == "Real traffic (from Prometheus)")
    rates = traffic["data"][0]["y"]  # plotly sends arrays as base64 typed arrays
    if isinstance(rates, dict):
        rates = np.frombuffer(base64.b64decode(rates["bdata"]), dtype=np.dtype(rates["dtype"]))
    assert np.nanmax(np.asarray(rates, dtype=float)) > 0, rates  # a rate was charted
    assert any("histogram_quantile" in code.value for code in at.code)

    at.selectbox(key="health_service").select("prometheus-down").run()
    assert not at.exception, at.exception
    warnings = "\n".join(str(w.value) for w in at.warning)
    assert "Real traffic cannot be charted" in warnings and "connection refused" in warnings, warnings
