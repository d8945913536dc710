"""The store's schema comes from the Alembic migrations, on SQLite and on a real PostgreSQL.

A store made by the code before the migrations (the hand-written ``create_all`` + ``migrate()``) is
built here from that code's own DDL, filled, and opened by today's :class:`Store`: it is
recognised, stamped, upgraded and keeps every row. Processes that open a new store, or create
one prediction table, at the same moment all succeed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pandas as pd
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from monitoring import migrations
from monitoring.store import Lease, Store, main
from monitoring.store_schema import metadata
from tests.collector_processes import ROOT

# The DDL the previous code ran (metadata.create_all, then migrate() adding the lease identity columns),
# as SQLAlchemy compiled it for SQLite and PostgreSQL ({serial} is INTEGER on SQLite, SERIAL on PostgreSQL).
LEGACY_DDL = (
    "CREATE TABLE capture_stats ( source VARCHAR(128) NOT NULL, service VARCHAR(64) NOT NULL, ts FLOAT NOT NULL, "
    "stats TEXT NOT NULL, PRIMARY KEY (source, service) )",
    "CREATE TABLE incidents ( id {serial} NOT NULL, ts FLOAT NOT NULL, service VARCHAR(64) NOT NULL, "
    "state VARCHAR(16) NOT NULL, previous_state VARCHAR(16), reason TEXT, PRIMARY KEY (id), "
    "CONSTRAINT uq_incidents_service_ts UNIQUE (service, ts) )",
    "CREATE INDEX ix_incidents_service_ts ON incidents (service, ts)",
    "CREATE TABLE labels ( id {serial} NOT NULL, service VARCHAR(64) NOT NULL, prediction_id VARCHAR(64) NOT NULL, "
    "ts FLOAT NOT NULL, label FLOAT, PRIMARY KEY (id) )",
    "CREATE INDEX ix_labels_service_ts ON labels (service, ts)",
    "CREATE INDEX ix_labels_service_prediction ON labels (service, prediction_id)",
    "CREATE TABLE leases ( name VARCHAR(128) NOT NULL, holder VARCHAR(128) NOT NULL, expires_at FLOAT NOT NULL, "
    "PRIMARY KEY (name) )",
    "CREATE TABLE metric_rollups ( service VARCHAR(64) NOT NULL, series VARCHAR(32) NOT NULL, le FLOAT NOT NULL, "
    "bucket_ts FLOAT NOT NULL, increase FLOAT NOT NULL, PRIMARY KEY (service, series, le, bucket_ts) )",
    "CREATE TABLE metric_samples ( ts FLOAT NOT NULL, service VARCHAR(64) NOT NULL, series VARCHAR(32) NOT NULL, "
    "le FLOAT NOT NULL, value FLOAT NOT NULL, CONSTRAINT pk_metric_samples PRIMARY KEY (service, series, le, ts) )",
    "CREATE INDEX ix_metric_samples_service_ts ON metric_samples (service, ts)",
    'CREATE TABLE probe_rollups ( service VARCHAR(64) NOT NULL, "check" VARCHAR(32) NOT NULL, '
    "bucket_ts FLOAT NOT NULL, n INTEGER NOT NULL, n_ok INTEGER NOT NULL, n_degraded INTEGER NOT NULL, "
    "latency_sum_ms FLOAT NOT NULL, latency_max_ms FLOAT, latency_hist TEXT NOT NULL, "
    'PRIMARY KEY (service, "check", bucket_ts) )',
    'CREATE TABLE probes ( id {serial} NOT NULL, ts FLOAT NOT NULL, service VARCHAR(64) NOT NULL, '
    '"check" VARCHAR(32) NOT NULL, ok BOOLEAN NOT NULL, state VARCHAR(16), status INTEGER, latency_ms FLOAT, '
    'error TEXT, PRIMARY KEY (id), CONSTRAINT uq_probes_service_check_ts UNIQUE (service, "check", ts) )',
    "CREATE INDEX ix_probes_ts ON probes (ts)",
    # a service's prediction log, made by the log code
    "CREATE TABLE predictions__svc ( seq {serial} NOT NULL, id VARCHAR(64) NOT NULL, ts FLOAT NOT NULL, "
    "model_version VARCHAR(64), prediction FLOAT, score FLOAT, probabilities TEXT, age FLOAT, "
    "channel VARCHAR(128), PRIMARY KEY (seq), UNIQUE (id) )",
)
LEGACY_LEASE_IDENTITY = (  # what the previous code's migrate() added to an older leases table
    "ALTER TABLE leases ADD COLUMN host VARCHAR(255)", "ALTER TABLE leases ADD COLUMN node VARCHAR(255)",
    "ALTER TABLE leases ADD COLUMN pid INTEGER", "ALTER TABLE leases ADD COLUMN started VARCHAR(32)",
    "ALTER TABLE leases ADD COLUMN acquired_at FLOAT",
)
LEGACY_ROWS = (
    "INSERT INTO probes (ts, service, \"check\", ok, state, status, latency_ms, error) VALUES "
    "(10.0, 'svc', 'poll', {true}, 'up', NULL, NULL, NULL), (10.0, 'svc', 'live', {true}, NULL, 200, 3.5, NULL), "
    "(20.0, 'svc', 'poll', {false}, 'down', NULL, NULL, 'live: refused')",
    "INSERT INTO incidents (ts, service, state, previous_state, reason) VALUES (10.0, 'svc', 'up', NULL, NULL), "
    "(20.0, 'svc', 'down', 'up', 'live: refused')",
    "INSERT INTO labels (service, prediction_id, ts, label) VALUES ('svc', 'a', 30.0, 1.0)",
    "INSERT INTO leases (name, holder, expires_at) VALUES ('collector:svc', 'old', 5000.0)",
    "INSERT INTO predictions__svc (id, ts, prediction, age, channel) VALUES ('a', 5.0, 1.0, 30.0, 'web'), "
    "('b', 6.0, 0.0, 41.0, 'branch')",
)


def build_legacy_store(url: str, *, lease_identity: bool) -> None:
    """A store as the code before the migrations left it, with rows in it (no ``alembic_version``)."""
    engine = sa.create_engine(url)
    postgres = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        for statement in LEGACY_DDL:
            conn.exec_driver_sql(statement.format(serial="SERIAL" if postgres else "INTEGER"))
        if lease_identity:
            for statement in LEGACY_LEASE_IDENTITY:
                conn.exec_driver_sql(statement)
        for statement in LEGACY_ROWS:
            conn.exec_driver_sql(statement.format(true="TRUE" if postgres else "1", false="FALSE" if postgres else "0"))
    engine.dispose()


def schema_differences(engine: sa.Engine) -> list:
    """What Alembic's autogenerate finds between the database and :data:`metadata` (prediction tables aside)."""
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn, opts={"include_name": migrations.include_name}),
                                metadata)


def test_a_new_store_is_made_by_the_migrations_and_matches_the_tables(store_url):
    store = Store(store_url)
    try:
        assert store.migrated.before is None and store.migrated.after == migrations.head()
        with store.engine.connect() as conn:
            assert migrations.current_revision(conn) == migrations.head()
        assert schema_differences(store.engine) == []
        again = Store(store_url)  # the next open finds it at head: nothing runs
        assert not again.migrated.changed
        again.dispose()
    finally:
        store.dispose()


@pytest.mark.parametrize("lease_identity", [True, False], ids=["last-release", "first-release"])
def test_a_store_from_before_the_migrations_is_adopted_and_keeps_its_rows(store_url, lease_identity):
    build_legacy_store(store_url, lease_identity=lease_identity)
    store = Store(store_url)
    try:
        expected = migrations.LEASE_IDENTITY if lease_identity else migrations.BASELINE
        assert store.migrated.adopted == expected and store.migrated.after == migrations.head()
        assert schema_differences(store.engine) == []
        polls = store.read_probes("svc", since=0, checks=["poll"])
        assert list(polls["state"]) == ["up", "down"] and list(polls["ok"]) == [True, False]
        assert list(store.read_incidents("svc").sort_values("ts")["state"]) == ["up", "down"]
        assert store.read_lease("collector:svc") == Lease("collector:svc", "old", 5000.0)
        log = store.read_prediction_log("svc")
        assert list(log["id"]) == ["a", "b"] and store.prediction_features("svc") == {
            "age": "numeric", "channel": "categorical"}
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT prediction_id, label FROM labels").all() == [("a", 1.0)]
        # and it takes writes: the lease with its holder's identity, new polls after the old ones
        assert store.claim_lease("collector:svc", "me", 30, now=6000.0).lease.pid is not None
        from tests.test_store import poll_record

        assert store.write_polls([poll_record(30.0, "up")]).incidents == 1  # "down" before it, from the old rows
        store.log_predictions("svc", pd.DataFrame({"id": ["c"], "ts": [7.0], "prediction": [1.0], "age": [50.0],
                                                   "channel": ["web"]}))
        assert store.count_predictions("svc") == 3
    finally:
        store.dispose()


def test_migrating_by_hand_says_what_it_did(store_url, capsys):
    build_legacy_store(store_url, lease_identity=True)
    assert main(["current", "--url", store_url]) == 0
    assert f"revision {migrations.LEASE_IDENTITY}" in capsys.readouterr().out
    assert main(["upgrade", "--url", store_url]) == 0
    out = capsys.readouterr().out
    assert f"migrated from nothing to {migrations.head()}" in out and "recognised as" in out
    assert main(["upgrade", "--url", store_url]) == 0
    assert "already" in capsys.readouterr().out


OPEN_AND_LOG = """
import json, sys, time
import pandas as pd
from monitoring.store import Store
url, start, n = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
time.sleep(max(0.0, start - time.time()))
store = Store(url)                     # migrates the new database, if no other process has
store.ensure_schema()                  # raises when the migration failed
frame = pd.DataFrame({"id": [f"p{n}"], "ts": [float(n)], "prediction": [1.0], "age": [30.0], "channel": ["web"]})
store.prediction_table("svc", {"age": "numeric", "channel": "categorical"})  # the same table, in every process
store.log_predictions("svc", frame)
print(json.dumps({"migrated": store.migrated.changed}))
"""


def test_processes_opening_a_new_store_and_one_prediction_table_at_once_all_succeed(store_url):
    start = time.time() + 3.0  # every process imports first, then all go at this moment
    processes = [subprocess.Popen([sys.executable, "-c", OPEN_AND_LOG, store_url, str(start), str(n)], cwd=ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in range(4)]
    results = [process.communicate(timeout=120) for process in processes]
    for process, (_out, err) in zip(processes, results, strict=True):
        assert process.returncode == 0, err
    migrated = [json.loads(out.strip().splitlines()[-1])["migrated"] for out, _err in results]
    assert sum(migrated) == 1  # one process migrated, the others found it done
    store = Store(store_url)
    try:
        assert sorted(store.read_prediction_log("svc")["id"]) == ["p0", "p1", "p2", "p3"]
    finally:
        store.dispose()
