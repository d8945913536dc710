"""The collector against real servers on 127.0.0.1: the demo service, a hanging one, a refused port."""

import socket
import sqlite3
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.store_banner import store_message
from monitoring.collector import Collector, ServicePoller
from monitoring.config import parse_config
from monitoring.store import StoreHealth
from tests.helpers import wait_for

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


def make_config(demo_runtime, store, extra=""):
    """``store``: a SQLite file's path, or a store URL (``store_url``: SQLite or PostgreSQL)."""
    demo = demo_runtime.config.service("credit-risk")
    features = ", ".join(f'"{f}"' for f in demo.features)
    url = store if isinstance(store, str) else f"sqlite:///{store}"
    return parse_config(f"""
[store]
url = "{url}"

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


def test_poll_records_every_check_the_verdict_and_metrics(demo_runtime, store_url):
    config = make_config(demo_runtime, store_url)
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


@pytest.mark.exclusive
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
    store = collector.store
    try:  # the demo service is polled every second despite the hanging one: four polls while it hangs twice
        wait_for(lambda: len(store.read_probes("demo", since=0, checks=["poll"])) >= 4
                 and len(store.read_probes("hangs", since=0, checks=["poll"])) >= 1
                 and len(store.read_probes("refuses", since=0, checks=["poll"])) >= 1,
                 timeout=20, what="four polls of the demo service and one of each other")
        started = store.read_probes("hangs", since=0, checks=["poll"])["ts"].min()
    finally:
        collector.stop()
    demo_polls = store.read_probes("demo", since=0, checks=["poll"])
    assert (demo_polls["ts"] >= started).sum() >= 3, "the hanging service held up the demo service's polls"
    assert set(demo_polls["state"]) == {"up"}
    hang = store.read_probes("hangs", since=0, checks=["poll"])
    assert len(hang) >= 1 and set(hang["state"]) == {"down"}
    assert "no answer within 1.5 s" in hang["error"].iloc[0]
    refused = store.read_probes("refuses", since=0, checks=["poll"])
    assert set(refused["state"]) == {"down"}
    assert "connection refused" in refused["error"].iloc[0]
    incidents = store.read_incidents("refuses")
    assert list(incidents["state"]) == ["down"]  # one change, not one per poll


def poll_gaps(polls):
    """Seconds between consecutive recorded polls."""
    return np.diff(np.sort(polls["ts"].to_numpy()))


def test_two_collectors_on_one_store_do_not_double_record(demo_runtime, store_url):
    config = make_config(demo_runtime, store_url)
    first, second = Collector(config, holder="first"), Collector(config, holder="second")
    first.start()
    second.start()
    try:
        wait_for(lambda: len(first.store.read_probes("demo", since=0, checks=["poll"])) >= 4, timeout=20,
                 what="four polls of the demo service")
    finally:
        holder = first.store.lease_holder(Collector.lease_name("demo"))
        standby, active = (second, first) if holder == "first" else (first, second)
        standby.stop()  # the standby first, so that it cannot take over while the holder stops
        active.stop()
    polls = first.store.read_probes("demo", since=0, checks=["poll"])
    assert polls["ts"].is_unique and poll_gaps(polls).min() >= 0.5  # one poll per second, not two
    assert active.last_outcomes and not standby.last_outcomes  # only the holder polled


def test_rows_kept_while_the_store_is_locked_are_written_when_it_is_free(demo_runtime, tmp_path):
    path = tmp_path / "s.db"
    config = make_config(demo_runtime, path)
    collector = Collector(config)
    poller: ServicePoller = collector.pollers["demo"]
    lock = sqlite3.connect(path, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # another connection holds the write lock
    runtime = SimpleNamespace(collector=collector, store=collector.store)  # what the banner reads of a Runtime
    try:
        poller.poll()  # waits WRITE_TIMEOUT_S for the lock, then keeps the rows
        health = collector.store_health()
        assert health.state == "locked" and "database is locked" in health.cause
        assert health.buffered >= 6 and health.dropped == 0 and health.since is not None
        at = AppTest.from_function(show_banner, args=(runtime,)).run()
        assert not at.exception and not at.warning
        [error] = at.error
        assert error.value.startswith("**The store is locked** since ")
        assert f"**{health.buffered:,} rows** wait in memory" in error.value
        assert "Nothing has been dropped" in error.value
    finally:
        lock.rollback()
        lock.close()
    time.sleep(0.01)
    poller.poll()
    polls = collector.store.read_probes("demo", since=0, checks=["poll"])
    assert len(polls) == 2
    assert collector.store_health() == StoreHealth("ok")
    assert list(collector.store.read_incidents("demo")["state"]) == ["up"]  # one change: from none to up
    at = AppTest.from_function(show_banner, args=(runtime,)).run()
    assert not at.exception and not at.error and not at.warning and not at.markdown  # nothing when all is well


def show_banner(runtime):
    from dashboard.store_banner import store_banner

    store_banner(runtime)


def test_banner_warns_of_lost_history_once_the_store_takes_writes_again():
    now = 1_800_000_000.0
    assert store_message(StoreHealth("ok", buffered=12), now=now) is None  # waiting for the writer: no news
    level, text = store_message(StoreHealth("recreated", "the store file /v/x_y.db was deleted", since=now - 120),
                                now=now)
    assert level == "warning" and text.startswith("**The store file was deleted and created again** (")
    assert "2 min ago" in text and r"/v/x\_y.db" in text  # the cause is shown as text, not as Markdown
    level, text = store_message(StoreHealth("ok", dropped=300), now=now)
    assert level == "warning" and "**300 rows were dropped**" in text
    level, text = store_message(StoreHealth("full", "no space", buffered=50_000, dropped=1_200, since=now), now=now)
    assert level == "error" and "**50,000 rows** wait" in text and "**1,200 rows were dropped**" in text


def test_buffer_is_bounded_and_counts_what_it_drops(demo_runtime, tmp_path):
    path = tmp_path / "s.db"
    config = make_config(demo_runtime, path)
    collector = Collector(config, max_buffered_rows=40)
    poller = collector.pollers["demo"]
    lock = sqlite3.connect(path, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        collector.buffer.write_timeout = 0.1
        outcomes = [poller.poll() for _ in range(4)]
        health = collector.store_health()
    finally:
        lock.rollback()
        lock.close()
    per_poll = len(outcomes[0].checks) + 1 + outcomes[0].scraped_series
    assert per_poll > 20  # so 40 rows hold one poll, not two
    assert health.buffered == per_poll and health.dropped == 3 * per_poll
    collector.buffer.flush()
    polls = collector.store.read_probes("demo", since=0, checks=["poll"])
    assert list(polls["ts"]) == [outcomes[-1].ts]  # the newest poll was kept
    assert collector.store_health().state == "ok" and collector.store_health().dropped == 3 * per_poll


def test_command_line_polls_once(demo_runtime, tmp_path):
    config_path = tmp_path / "c.toml"
    demo = demo_runtime.config.service("credit-risk")
    config_path.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "c.db"}"\n[[services]]\nname = "demo"\n'
                           f'url = "{demo.url}"\nprotocol = "v2"\nmodel = "{demo.model}"\n')
    result = subprocess.run([sys.executable, "-m", "monitoring.collector", "--config", str(config_path), "--once"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "demo: up" in result.stdout


ENGINE_MODULES = ("ibis", "duckdb", "pyspark", "scipy.stats", "monitoring.engine_mirror", "monitoring.upkeep")
"""What the prediction log's readers need and a collector does not before its first poll."""


def test_a_collector_polls_and_logs_without_importing_the_engines(demo_runtime, tmp_path):
    """A collector restarted after a crash takes its lease over as soon as its interpreter is up
    (``tests/test_leases.py``): importing Ibis, DuckDB and scipy.stats would more than double that
    start-up, so none of them is imported until the first upkeep reads the log."""
    config_path = tmp_path / "c.toml"
    demo = demo_runtime.config.service("credit-risk")
    features = ", ".join(f'"{f}"' for f in demo.features)
    config_path.write_text(f"""
[store]
url = "sqlite:///{tmp_path / 'c.db'}"
log = "duckdb:{tmp_path / 'log'}"

[[services]]
name = "demo"
url = "{demo.url}"
protocol = "v2"
model = "{demo.model}"
v2_outputs = ["predict", "predict_proba"]
reference = "{demo.reference}"
features = [{features}]
[services.drift]
methods = {{age = "ks"}}
[services.metrics]
url = "{demo.url}/metrics"
""")
    script = ("import sys\n"
              "from monitoring.collector import Collector\n"
              "from monitoring.config import load_config\n"
              f"collector = Collector(load_config({str(config_path)!r}))\n"
              "outcome = collector.pollers['demo'].poll()\n"
              "collector.buffer.flush()\n"
              f"print(outcome.state, *[m for m in {ENGINE_MODULES!r} if m in sys.modules])\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["up"], result.stdout


def test_command_line_reports_an_invalid_file(tmp_path):
    config_path = tmp_path / "bad.toml"
    config_path.write_text('[[services]]\nname = "a"\nurl = "http://x"\nprotocol = "grpc"\n')
    result = subprocess.run([sys.executable, "-m", "monitoring.collector", "--config", str(config_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "services[0].protocol" in result.stderr and "Traceback" not in result.stderr
