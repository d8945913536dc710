"""The collector against real servers on 127.0.0.1: the demo service, a hanging one, a refused port."""

import socket
import subprocess
import sys
import threading
import time

import pytest

from monitoring.collector import Collector, ServicePoller
from monitoring.config import parse_config

pytestmark = pytest.mark.integration


@pytest.fixture
def hanging_url():
    """A server that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


@pytest.fixture
def refused_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def make_config(demo_runtime, store_path, extra=""):
    demo = demo_runtime.config.service("credit-risk")
    features = ", ".join(f'"{f}"' for f in demo.features)
    return parse_config(f"""
[store]
url = "sqlite:///{store_path}"

[[services]]
name = "demo"
url = "{demo.url}"
protocol = "v2"
model = "{demo.model}"
poll_interval = 1
v2_outputs = ["predict", "predict_proba"]
reference = "{demo.reference}"
features = [{features}]
[services.metrics]
url = "{demo.url}/metrics"
path_regex = ".*infer|.*predict"
{extra}""")


def test_poll_records_every_check_the_verdict_and_metrics(demo_runtime, tmp_path):
    config = make_config(demo_runtime, tmp_path / "s.db")
    collector = Collector(config)
    poller = collector.pollers["demo"]
    demo_runtime.flush_predictions()
    logged_before = demo_runtime.store.count_predictions("credit-risk")
    outcome = poller.poll()
    assert outcome.state == "up", outcome.reason
    probes = collector.store.read_probes("demo", since=0)
    assert set(probes["check"]) == {"live", "ready", "model_ready", "predict", "metrics", "poll"}
    assert probes["ok"].all()
    assert probes.loc[probes["check"] == "predict", "latency_ms"].iloc[0] > 0
    samples = collector.store.read_metric_samples("demo", since=0)
    assert {"requests", "errors", "latency_bucket", "latency_count"} <= set(samples["series"])
    # the canary carries the probe header, so the demo service did not log it as a prediction
    demo_runtime.flush_predictions()
    assert demo_runtime.store.count_predictions("credit-risk") == logged_before


def test_hanging_and_refusing_services_do_not_delay_the_others(demo_runtime, tmp_path, hanging_url, refused_url):
    extra = f"""
[[services]]
name = "hangs"
url = "{hanging_url}"
protocol = "rest"
poll_interval = 1
timeout = 1.5
retries = 0

[[services]]
name = "refuses"
url = "{refused_url}"
protocol = "mlflow"
poll_interval = 1
"""
    config = make_config(demo_runtime, tmp_path / "s.db", extra)
    collector = Collector(config).start()
    time.sleep(4.5)
    collector.stop()
    store = collector.store
    demo_polls = store.read_probes("demo", since=0, checks=["poll"])
    assert len(demo_polls) >= 4, "the demo service must be polled every second despite the hanging one"
    assert set(demo_polls["state"]) == {"up"}
    hang = store.read_probes("hangs", since=0, checks=["poll"])
    assert len(hang) >= 1 and set(hang["state"]) == {"down"}
    assert "no answer within 1.5 s" in hang["error"].iloc[0]
    refused = store.read_probes("refuses", since=0, checks=["poll"])
    assert set(refused["state"]) == {"down"}
    assert "connection refused" in refused["error"].iloc[0]
    incidents = store.read_incidents("refuses")
    assert list(incidents["state"]) == ["down"]  # one change, not one per poll


def test_two_collectors_on_one_store_do_not_double_record(demo_runtime, tmp_path):
    config = make_config(demo_runtime, tmp_path / "s.db")
    first, second = Collector(config, holder="first"), Collector(config, holder="second")
    first.start()
    second.start()
    time.sleep(3.5)
    first.stop()
    second.stop()
    polls = first.store.read_probes("demo", since=0, checks=["poll"])
    assert 3 <= len(polls) <= 5  # one poll per second, not two
    assert not second.last_outcomes or not first.last_outcomes  # only one of them polled


def test_rows_kept_when_the_store_fails_are_written_with_the_next_poll(demo_runtime, tmp_path, monkeypatch):
    config = make_config(demo_runtime, tmp_path / "s.db")
    collector = Collector(config)
    poller: ServicePoller = collector.pollers["demo"]
    original = collector.store.write_probes
    calls = {"n": 0}

    def flaky(rows):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("database is locked")
        original(rows)

    monkeypatch.setattr(collector.store, "write_probes", flaky)
    poller.poll()
    assert collector.store.read_probes("demo", since=0).empty
    time.sleep(0.01)
    poller.poll()
    polls = collector.store.read_probes("demo", since=0, checks=["poll"])
    assert len(polls) == 2


def test_command_line_polls_once(demo_runtime, tmp_path):
    config_path = tmp_path / "c.toml"
    demo = demo_runtime.config.service("credit-risk")
    config_path.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "c.db"}"\n[[services]]\nname = "demo"\n'
                           f'url = "{demo.url}"\nprotocol = "v2"\nmodel = "{demo.model}"\n')
    result = subprocess.run([sys.executable, "-m", "monitoring.collector", "--config", str(config_path), "--once"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "demo: up" in result.stdout


def test_command_line_reports_an_invalid_file(tmp_path):
    config_path = tmp_path / "bad.toml"
    config_path.write_text('[[services]]\nname = "a"\nurl = "http://x"\nprotocol = "grpc"\n')
    result = subprocess.run([sys.executable, "-m", "monitoring.collector", "--config", str(config_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "services[0].protocol" in result.stderr and "Traceback" not in result.stderr
