"""PostgreSQL as the team store, against a real server: its outages are states, and the dashboard runs on it.

The server is stopped (``pg_ctl stop``) under a store, a collector process and the dashboard: the
store names the server's host and port and what failed, the banner says so in words, polls wait
in memory and none is lost once the server is back. These tests stop a server of their own
(``private_postgres``), never the session's.
"""

from __future__ import annotations

import textwrap
import time
import types

import pandas as pd
import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from dashboard.store_banner import store_message
from monitoring.store import Store, StoreHealth
from tests.collector_processes import CollectorProcess, assert_every_poll_kept, assert_no_duplicates
from tests.fixtures_postgres import wait_until_reachable
from tests.helpers import APP, page_text, wait_for
from tests.test_store import poll_record

pytestmark = [pytest.mark.integration]


def test_a_stopped_server_is_unreachable_with_its_host_and_port_and_writes_resume_once_it_is_back(private_postgres):
    server = private_postgres
    url = server.url()
    store = Store(url, busy_timeout=2)
    try:
        store.write_polls([poll_record(10.0, "up")])
        server.stop()
        with pytest.raises(sa.exc.OperationalError) as caught:
            store.write_polls([poll_record(20.0, "up")])
        state, cause = store.diagnose(caught.value)
        assert state == "unreachable", cause
        assert f"the PostgreSQL server at 127.0.0.1:{server.port} refuses connections" in cause
        assert "Connection refused" in cause  # the driver's own words, at the end
        level, text = store_message(StoreHealth(state, cause, buffered=12, since=time.time() - 5), now=time.time())
        assert level == "error" and "The store cannot be reached" in text
        assert f"127.0.0.1:{server.port}" in text and "12 rows" in text

        # opening a store while the server is down does not raise; it migrates on the first write that works
        late = Store(server.url(), busy_timeout=2)
        assert late.migrated is None
        server.start()
        wait_until_reachable(server)
        store.write_polls([poll_record(20.0, "up")])  # the pool's dead connections are replaced (pre-ping)
        late.write_polls([poll_record(30.0, "down")])
        assert list(store.read_probes("svc", since=0, checks=["poll"])["ts"]) == [10.0, 20.0, 30.0]
        late.dispose()
    finally:
        store.dispose()


def test_a_missing_database_and_refused_credentials_are_named(postgres):
    state, cause = _diagnose_open(postgres.url("no_such_database"))
    assert state == "unreachable" and "has no database 'no_such_database'" in cause
    assert f"127.0.0.1:{postgres.port}" in cause


def _diagnose_open(url: str) -> tuple[str, str]:
    store = Store(url, busy_timeout=2)
    try:
        with pytest.raises(sa.exc.OperationalError) as caught:
            store.ensure_schema()
        return store.diagnose(caught.value)
    finally:
        store.dispose()


def write_postgres_config(folder, store_url: str, service_url: str, *, poll_interval: float) -> object:
    path = folder / "collector.toml"
    path.write_text(textwrap.dedent(f"""
        [store]
        url = "{store_url}"

        [[services]]
        name = "tiny"
        url = "{service_url}"
        protocol = "rest"
        poll_interval = {poll_interval}
        timeout = 1.0

        [services.rest]
        health = "/health"
        ready = "/ready"

        [services.metrics]
        url = "{service_url}/metrics"
    """))
    return path


def polls_in(url: str):
    """Poll verdicts of the tiny service stored so far (an empty frame while the server is away)."""
    store = Store(url, busy_timeout=2)
    try:
        return store.read_probes("tiny", since=0, checks=["poll"]).sort_values("ts").reset_index(drop=True)
    except sa.exc.OperationalError:
        import pandas as pd

        return pd.DataFrame(columns=["ts", "state"])
    finally:
        store.dispose()


@pytest.mark.slow
def test_a_server_stopped_for_12_seconds_and_restarted_loses_no_poll(tiny_service, private_postgres, tmp_path):
    """The PostgreSQL counterpart of the SQLite lock and full-disk outages of tests/test_store_outages.py."""
    server = private_postgres
    interval = 1.0
    config = write_postgres_config(tmp_path, server.url(), tiny_service, poll_interval=interval)
    collector = CollectorProcess(config, health_file=tmp_path / "h.json")
    try:
        wait_for(lambda: len(polls_in(server.url())) >= 2, timeout=30, what="the first polls", details=collector.tail)
        stopped_at = time.time()
        server.stop()
        health = wait_for(lambda: (h := collector.health()) and h["state"] == "unreachable" and h["buffered"] and h,
                          timeout=15, what="the health file to say 'unreachable'", details=collector.tail)
        assert f"127.0.0.1:{server.port}" in health["cause"] and health["dropped"] == 0
        time.sleep(max(0.0, stopped_at + 12.0 - time.time()))
        server.start()
        started_at = time.time()
        wait_for(lambda: (h := collector.health()) and h["state"] == "ok" and h["buffered"] == 0
                 and h["updated"] > started_at, timeout=30, what="the buffered polls to be written",
                 details=collector.tail)
        polls = polls_in(server.url())
        during = polls[(polls["ts"] >= stopped_at) & (polls["ts"] < started_at)]
        print(f"server down {started_at - stopped_at:.1f} s: {len(during)} polls recorded afterwards")
        assert_every_poll_kept(during, stopped_at, started_at, interval=interval)
        assert collector.process.poll() is None
    finally:
        collector.stop()
    polls = polls_in(server.url())
    assert_no_duplicates(polls, interval=interval)
    assert set(polls["state"]) == {"up"}
    store = Store(server.url())
    assert len(store.read_incidents("tiny")) == 1  # the outage made no incident up
    store.dispose()


def demo_config_on(store_url: str, demo_runtime, demo_model) -> str:
    """The demo's own configuration, its store on ``store_url`` and its prediction log in that store."""
    from demo.runtime import demo_config_text

    text = demo_config_text(url=demo_runtime.url, store_url=store_url, model=demo_model, poll_interval=1.0)
    lines = [line for line in text.splitlines() if not line.startswith("log = ")]  # the log in the SQL store
    if len(lines) < len(text.splitlines()):
        lines.insert(lines.index(f'url = "{store_url}"') + 1, 'log = "store"')
    return "\n".join(lines) + "\n"


@pytest.fixture
def dashboard_on_postgres(demo_runtime, demo_model, private_postgres, tmp_path, monkeypatch, fresh_runtime):
    """The dashboard (AppTest) on the demo's configuration with its store on a real PostgreSQL, two weeks of
    demo predictions logged in it and the collector polling the demo service into it."""
    from demo.data import FEATURES
    from demo.replayer import scored_history
    from demo.runtime import SERVICE_NAME

    url = private_postgres.url()
    store = Store(url)
    store.prediction_table(SERVICE_NAME, dict(FEATURES))
    history = scored_history(demo_model, 4000, history_start=time.time() - 14 * 86400, random_state=3)
    store.log_predictions(SERVICE_NAME, history)
    labelled = history.iloc[::2]  # ground truth for every other prediction, a day later
    store.write_labels(SERVICE_NAME, pd.DataFrame({"prediction_id": labelled["id"], "ts": labelled["ts"] + 86400,
                                                   "label": labelled["default"].astype(float)}))
    store.dispose()
    config = tmp_path / "vantage.toml"
    config.write_text(demo_config_on(url, demo_runtime, demo_model))
    monkeypatch.setenv("VANTAGE_CONFIG", str(config))
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception, at.exception
    wait_for(lambda: not polls_of(url, SERVICE_NAME).empty, timeout=30, what="the collector's first poll")
    return at


@pytest.mark.slow
def test_the_dashboard_on_postgres_shows_the_demo_service_health_and_drift(dashboard_on_postgres):
    at = dashboard_on_postgres
    at.switch_page("views/health.py").run()
    assert not at.exception, at.exception
    text = page_text(at)
    assert "Service health" in text and ":material/check_circle: Up" in text and "last poll" in text, text
    at.switch_page("views/drift.py").run()
    assert not at.exception, at.exception
    assert "Drift" in page_text(at)


@pytest.mark.slow
def test_every_data_page_counts_a_log_in_postgresql_where_it_is(dashboard_on_postgres):
    at = dashboard_on_postgres
    texts = {}
    for page in ("views/overview.py", "views/drift.py", "views/performance.py", "views/segments.py"):
        at.switch_page(page).run()
        assert not at.exception, (page, at.exception)
        texts[page] = page_text(at)
        assert "cannot be read" not in texts[page] and "Traceback" not in texts[page], (page, texts[page])
    assert "prediction log in the store's PostgreSQL" in texts["views/drift.py"], texts["views/drift.py"]
    performance = texts["views/performance.py"]  # the labels joined by the server, the model's task told
    assert "labels in the store" in performance and "predictions have" in performance, performance


def show_read_failure(runtime, exc):
    """An AppTest script: what a page shows when its read of the store failed."""
    from dashboard.store_banner import show_store_read_failure

    show_store_read_failure(runtime, exc)


def test_a_failed_read_of_a_stopped_server_is_said_in_words(private_postgres):
    store = Store(private_postgres.url(), busy_timeout=2)
    private_postgres.stop()
    with pytest.raises(sa.exc.OperationalError) as caught:
        store.last_polls("svc")
    runtime = types.SimpleNamespace(store=store)
    at = AppTest.from_function(show_read_failure, args=(runtime, caught.value)).run()
    assert not at.exception
    text = page_text(at)
    assert "The store cannot be reached" in text and f"127.0.0.1:{private_postgres.port} refuses connections" in text
    store.dispose()


@pytest.mark.slow
def test_the_health_page_with_the_server_stopped_shows_the_state_not_a_traceback(dashboard_on_postgres,
                                                                                 private_postgres):
    at = dashboard_on_postgres
    private_postgres.stop()
    time.sleep(3.0)  # a few polls fail to be written
    at.switch_page("views/health.py").run()
    assert not at.exception, at.exception
    text = page_text(at)
    assert "The store cannot be reached" in text and f"127.0.0.1:{private_postgres.port}" in text, text
    at.switch_page("views/drift.py").run()  # the log in the stopped server: a message naming it
    assert not at.exception, at.exception
    text = page_text(at)
    assert f"127.0.0.1:{private_postgres.port}" in text, text


def polls_of(url: str, service: str):
    store = Store(url, busy_timeout=2)
    try:
        return store.read_probes(service, since=0, checks=["poll"])
    finally:
        store.dispose()
