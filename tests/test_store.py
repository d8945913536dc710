"""The store: idempotent writes, leases, downsampling and the prediction log."""

import pandas as pd
import pytest

from monitoring.store import LATENCY_BUCKETS_MS, Probe, latency_histogram


def probe(ts, check="live", ok=True, **kw):
    return Probe(ts=ts, service="svc", check=check, ok=ok, **kw)


def test_probe_written_twice_is_stored_once(store):
    rows = [probe(100.0), probe(100.0, "ready"), probe(110.0)]
    store.write_probes(rows)
    store.write_probes(rows)  # a retried write after an error that happened after the commit
    assert len(store.read_probes("svc", since=0)) == 3


def test_sqlite_store_runs_in_wal_mode(store):
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
