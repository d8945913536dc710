"""The store: idempotent writes, leases, downsampling, the prediction log, and outages of the file.

Every test taking ``store`` runs twice: on a SQLite file and on a fresh database of the session's
real PostgreSQL server (``tests/fixtures_postgres.py``). The outage tests at the end are about the
SQLite file itself (deleted, locked, in a read-only folder) and stay SQLite; PostgreSQL's outages
are in ``tests/test_postgres.py``.
"""

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from monitoring.store import (
    LATENCY_BUCKETS_MS,
    Lease,
    PollRecord,
    PollWriteResult,
    Probe,
    ProcessIdentity,
    Store,
    _process_start,
    latency_histogram,
    process_alive,
)
from tests.helpers import read_only


@pytest.fixture
def store(store_url):
    """An empty store, on SQLite and on PostgreSQL (``store_url``)."""
    store = Store(store_url)
    yield store
    store.dispose()


def probe(ts, check="live", ok=True, **kw):
    return Probe(ts=ts, service="svc", check=check, ok=ok, **kw)


def test_probe_written_twice_is_stored_once(store):
    rows = [probe(100.0), probe(100.0, "ready"), probe(110.0)]
    store.write_probes(rows)
    store.write_probes(rows)  # a retried write after an error that happened after the commit
    assert len(store.read_probes("svc", since=0)) == 3


def test_sqlite_store_runs_in_wal_mode(tmp_path):
    """SQLite only: WAL is SQLite's journal mode."""
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_lease_is_exclusive_until_it_expires(store):
    assert store.acquire_lease("collector:svc", "a", 30, now=1000)
    assert not store.acquire_lease("collector:svc", "b", 30, now=1010)
    assert store.acquire_lease("collector:svc", "a", 30, now=1020)  # renewal
    assert store.lease_holder("collector:svc", now=1021) == "a"
    assert store.acquire_lease("collector:svc", "b", 30, now=1051)  # a stopped renewing
    store.release_lease("collector:svc", "b")
    assert store.lease_holder("collector:svc", now=1052) is None


def test_latency_histogram_bounds_are_inclusive():
    counts = latency_histogram([1.0, 1.5, 2.0, 40000.0, None])
    assert sum(counts) == 4
    assert counts[0] == 1 and counts[1] == 2 and counts[-1] == 1
    assert len(counts) == len(LATENCY_BUCKETS_MS)


def test_downsample_keeps_counts_and_drops_raw(store):
    now = 10 * 86400.0
    states = ["up", "up", "degraded", "down"]
    rows = []
    for i in range(400):  # 400 polls, one every 10 s, all older than the raw retention
        ts = now - 5 * 86400 + i * 10
        state = states[i % 4]
        rows.append(probe(ts, "poll", ok=state != "down", state=state, latency_ms=5.0))
        rows.append(probe(ts, "predict", latency_ms=float(i % 50)))
    store.write_probes(rows)
    before = store.poll_state_counts("svc", since=0)
    hourly_before = store.poll_states_over_time("svc", since=0, bucket_seconds=3600)
    folded = store.downsample(raw_retention_hours=48, retention_days=30, rollup_minutes=5, now=now)
    assert folded == 800
    assert store.read_probes("svc", since=0).empty
    assert store.poll_state_counts("svc", since=0) == before == {"up": 200, "degraded": 100, "down": 100}
    hourly_after = store.poll_states_over_time("svc", since=0, bucket_seconds=3600)
    pd.testing.assert_frame_equal(hourly_after, hourly_before)
    assert hourly_after[["up", "degraded", "down"]].to_numpy().sum() == 400
    rollups = store.read_rollups("svc", since=0, checks=["predict"])
    assert rollups["n"].sum() == 400
    assert sum(map(sum, rollups["latency_hist"])) == 400
    # a late probe for an already folded bucket is merged, not lost
    store.write_probes([probe(now - 5 * 86400 + 1, "predict", latency_ms=7.0)])
    store.downsample(raw_retention_hours=48, retention_days=30, rollup_minutes=5, now=now)
    assert store.read_rollups("svc", since=0, checks=["predict"])["n"].sum() == 401
    # rollups older than the retention are deleted
    store.downsample(raw_retention_hours=48, retention_days=1, rollup_minutes=5, now=now)
    assert store.read_rollups("svc", since=0).empty


def test_metric_downsampling_preserves_increases_across_a_reset(store):
    now = 10 * 86400.0
    start = now - 5 * 86400
    values = [100, 110, 130, 5, 25]  # restart between the 3rd and 4th scrape
    for i, value in enumerate(values):
        store.write_metric_samples("svc", start + i * 60, [("requests", -1.0, float(value))])
    store.downsample(raw_retention_hours=48, retention_days=30, rollup_minutes=5, now=now)
    rollups = store.read_metric_rollups("svc", since=0)
    assert rollups["increase"].sum() == 10 + 20 + 5 + 20
    # the newest folded sample stays raw as the starting point of the next increase
    store.write_metric_samples("svc", start + 600, [("requests", -1.0, 40.0)])
    samples = store.read_metric_samples("svc", since=0)
    assert list(samples["value"]) == [25.0, 40.0]


def test_prediction_log_round_trip(store):
    store.prediction_table("svc", {"age": "numeric", "channel": "categorical"})
    frame = pd.DataFrame({"id": ["a", "b"], "ts": [1.0, 2.0], "prediction": [0.0, 1.0], "score": [0.2, 0.9],
                          "age": [30.0, None], "channel": ["web", None], "model_version": "v1",
                          "probabilities": [[0.8, 0.2], [0.1, 0.9]]})
    assert store.log_predictions("svc", frame) == 2
    store.log_predictions("svc", frame)  # same ids: skipped
    assert store.count_predictions("svc") == 2
    assert store.newest_prediction_ts("svc") == 2.0
    assert store.count_predictions("unknown") == 0


def test_prediction_table_rejects_reserved_feature_names(store):
    with pytest.raises(ValueError, match="clash"):
        store.prediction_table("svc2", {"score": "numeric"})


def test_prediction_log_reads_incrementally_and_finds_rows(store):
    store.prediction_table("svc", {"age": "numeric", "channel": "categorical"})
    first = pd.DataFrame({"id": ["a", "b", "c"], "ts": [10.0, 20.0, 30.0], "prediction": [0.0, 1.0, 1.0],
                          "age": [30.0, 41.0, 52.0], "channel": ["web", "branch", "web"]})
    store.log_predictions("svc", first)
    frame = store.read_prediction_log("svc")
    assert list(frame["id"]) == ["a", "b", "c"] and frame["channel"].dtype == "category"
    last_seq = int(frame["seq"].max())
    store.log_predictions("svc", pd.DataFrame({"id": ["d"], "ts": [5.0], "prediction": [0.0], "age": [60.0],
                                               "channel": ["phone"]}))
    new = store.read_prediction_log("svc", after_seq=last_seq, columns=["ts", "age"])
    assert list(new.columns) == ["seq", "ts", "age"] and list(new["ts"]) == [5.0]  # late rows are still new
    assert store.prediction_features("svc") == {"age": "numeric", "channel": "categorical"}

    assert list(store.find_predictions("svc", prediction_id="b")["id"]) == ["b"]
    assert list(store.find_predictions("svc", filters={"channel": ("==", "web")})["id"]) == ["c", "a"]
    assert list(store.find_predictions("svc", filters={"age": (">=", 41)}, newest_first=False)["id"]) == ["d", "b", "c"]
    assert list(store.find_predictions("svc", since=15, until=35, limit=1)["id"]) == ["c"]
    with pytest.raises(ValueError, match="no column 'income'"):
        store.find_predictions("svc", filters={"income": ("==", 1)})
    with pytest.raises(ValueError, match="operator must be one of"):
        store.find_predictions("svc", filters={"age": ("~", 1)})


# -- whole polls: incidents from the stored history, duplicates skipped ---------------------------


def poll_record(ts, state, *, service="svc", gap=0.0, samples=()):
    verdict = Probe(ts=ts, service=service, check="poll", ok=state != "down", state=state, error=f"{state} because")
    live = Probe(ts=ts, service=service, check="live", ok=state != "down")
    return PollRecord(service=service, ts=ts, probes=(live, verdict), metric_samples=tuple(samples), min_gap=gap)


def test_write_polls_records_incidents_against_the_stored_history(store):
    result = store.write_polls([poll_record(10.0, "up"), poll_record(20.0, "up"), poll_record(30.0, "down"),
                                poll_record(40.0, "up", samples=[("requests", -1.0, 5.0)])])
    assert result == PollWriteResult(written=4, duplicates=0, incidents=3)
    incidents = store.read_incidents("svc").sort_values("ts")
    previous = [None if pd.isna(v) else v for v in incidents["previous_state"]]
    assert list(zip(previous, incidents["state"], strict=True)) == [
        (None, "up"), ("up", "down"), ("down", "up")]
    # a second collector taking over writes "up" after "up": no incident, whatever it remembers
    assert store.write_polls([poll_record(50.0, "up")]).incidents == 0
    # a retried write whose commit had gone through changes nothing
    assert store.write_polls([poll_record(30.0, "down"), poll_record(40.0, "up")]) == PollWriteResult(0, 2, 0)
    assert len(store.read_probes("svc", since=0, checks=["poll"])) == 5
    assert len(store.read_incidents("svc")) == 3
    assert list(store.read_metric_samples("svc", since=0)["value"]) == [5.0]


def test_write_polls_skips_a_poll_of_the_same_moment_by_another_collector(store):
    store.write_polls([poll_record(100.0, "up", gap=0.5)])
    result = store.write_polls([poll_record(100.3, "up", gap=0.5), poll_record(101.0, "up", gap=0.5)])
    assert result == PollWriteResult(written=1, duplicates=1, incidents=0)
    assert list(store.read_probes("svc", since=0, checks=["poll"])["ts"]) == [100.0, 101.0]
    assert len(store.read_probes("svc", since=0, checks=["live"])) == 2  # the skipped poll's checks too


def test_incident_falls_back_to_the_newest_incident_once_raw_polls_are_downsampled(store):
    store.write_polls([poll_record(10.0, "down")])
    store.downsample(raw_retention_hours=1, retention_days=30, rollup_minutes=5, now=10 * 3600.0)
    assert store.read_probes("svc", since=0).empty
    assert store.write_polls([poll_record(9 * 3600.0, "down")]).incidents == 0


# -- leases -----------------------------------------------------------------------------------------


def short_lived_process():
    """A real process that has run and exited (reaped): its pid and start time."""
    process = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.readline()"], stdin=subprocess.PIPE)
    identity = ProcessIdentity(host=ProcessIdentity.current().host, node=ProcessIdentity.current().node,
                               pid=process.pid, started=_process_start(process.pid))
    return process, identity


def test_lease_of_a_dead_holder_on_this_machine_is_taken_at_once(store):
    process, other = short_lived_process()
    try:
        lease = store.claim_lease("collector:svc", "other", 300, now=1000.0, identity=other).lease
        assert lease.holder == "other" and lease.pid == process.pid and lease.node == other.node
        assert lease.started == other.started and lease.acquired_at == 1000.0
        # while it runs, nobody else gets the lease before it expires
        assert store.claim_lease("collector:svc", "me", 300, now=1001.0).lease.holder == "other"
    finally:
        process.stdin.close()
        process.wait(timeout=10)
    claim = store.claim_lease("collector:svc", "me", 300, now=1002.0)
    assert claim.granted and claim.taken_from == lease
    mine = claim.lease
    assert mine.holder == "me" and mine.pid == os.getpid() and mine.acquired_at == 1002.0
    renewed = store.claim_lease("collector:svc", "me", 300, now=1010.0)
    assert renewed.granted and renewed.taken_from is None
    assert renewed.lease.acquired_at == 1002.0 and renewed.lease.expires_at == 1310.0


def test_a_killed_holder_not_yet_reaped_counts_as_dead(store):
    process, other = short_lived_process()
    try:
        store.claim_lease("collector:svc", "other", 300, now=1000.0, identity=other)
        process.kill()
        deadline = time.monotonic() + 10
        while process_alive(other.pid, other.started) and time.monotonic() < deadline:
            time.sleep(0.02)  # until the kernel has made it a zombie
        assert store.acquire_lease("collector:svc", "me", 300, now=1001.0)
    finally:
        process.wait(timeout=10)


def test_a_reused_pid_or_another_machine_does_not_end_a_lease_early(store):
    me = ProcessIdentity.current()
    reused = ProcessIdentity(host=me.host, node=me.node, pid=me.pid, started="1")  # our pid, another start
    store.claim_lease("collector:svc", "old", 300, now=1000.0, identity=reused)
    assert store.acquire_lease("collector:svc", "me", 300, now=1001.0)  # its process is gone: pid reused
    remote = ProcessIdentity(host="elsewhere", node="elsewhere|boot|1", pid=999_999, started="5")
    store.claim_lease("collector:other", "remote", 30, now=1000.0, identity=remote)
    assert not store.acquire_lease("collector:other", "me", 30, now=1029.0)  # cannot see its processes
    assert store.acquire_lease("collector:other", "me", 30, now=1031.0)  # expired


def test_an_older_leases_table_gains_the_identity_columns(tmp_path):
    """A leases table of the first release (no holder identity) is migrated by revision 0002 (SQLite; the
    store-from-the-previous-code tests in tests/test_store_migrations.py run on both)."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE leases (name VARCHAR(128) PRIMARY KEY, holder VARCHAR(128) NOT NULL, "
                     "expires_at FLOAT NOT NULL)")
        conn.execute("INSERT INTO leases VALUES ('collector:svc', 'old', 5000.0)")
    store = Store(f"sqlite:///{path}")
    try:
        assert store.read_lease("collector:svc") == Lease("collector:svc", "old", 5000.0)
        assert store.claim_lease("collector:svc", "me", 30, now=6000.0).granted
    finally:
        store.dispose()


# -- outages ------------------------------------------------------------------------------------------


def test_a_deleted_sqlite_file_is_created_again_with_its_schema(tmp_path):
    """SQLite only: the file itself is deleted under the store."""
    path = tmp_path / "store.db"
    store = Store(f"sqlite:///{path}")
    try:
        store.prediction_table("svc", {"age": "numeric"})
        store.write_polls([poll_record(10.0, "up")])
        assert path.exists() and store.recreated is None
        os.unlink(path)  # rm var/vantage.db; its -wal and -shm stay behind
        assert Path(f"{path}-wal").exists()
        store.write_polls([poll_record(20.0, "down")])
        assert path.exists()
        assert store.recreated is not None and "was deleted" in store.recreated[1]
        assert list(store.read_probes("svc", since=0, checks=["poll"])["ts"]) == [20.0]
        assert store.read_incidents("svc")["previous_state"].isna().all()
        # the prediction log's table comes back too
        frame = pd.DataFrame({"id": ["a"], "ts": [1.0], "prediction": [1.0], "age": [30.0]})
        assert store.log_predictions("svc", frame) == 1 and store.count_predictions("svc") == 1
        with sqlite3.connect(path) as conn:  # what another process sees: the new file has it all
            assert conn.execute("SELECT count(*) FROM probes WHERE state = 'down'").fetchone() == (1,)
    finally:
        store.dispose()


def test_diagnose_names_a_locked_store(tmp_path):
    """SQLite only: the lock is SQLite's file lock (``BEGIN EXCLUSIVE`` from another connection)."""
    path = tmp_path / "store.db"
    store = Store(f"sqlite:///{path}")
    lock = sqlite3.connect(path, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(sa.exc.OperationalError) as caught:
            store.write_polls([poll_record(10.0, "up")], timeout=0.05)
        state, cause = store.diagnose(caught.value)
        assert state == "locked" and str(path) in cause and "database is locked" in cause
    finally:
        lock.rollback()
        lock.close()
        store.dispose()


def test_opening_an_unwritable_store_does_not_raise_and_the_first_good_write_creates_the_schema(tmp_path):
    """SQLite only: a read-only folder; PostgreSQL's equivalent (the server down at open) is in test_postgres.py."""
    folder = tmp_path / "ro"
    folder.mkdir()
    with read_only(folder) as how:
        store = Store(f"sqlite:///{folder / 'store.db'}")
        with pytest.raises(sa.exc.OperationalError) as caught:
            store.write_polls([poll_record(10.0, "up")])
        state, cause = store.diagnose(caught.value)
        assert state == "read_only", (how, cause)
        assert str(folder) in cause
    store.write_polls([poll_record(10.0, "up")])
    assert len(store.read_probes("svc", since=0)) == 2
    store.dispose()
