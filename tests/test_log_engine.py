"""The prediction log as Parquet partitions read by DuckDB: exact pushed-down drift counts, writers in parallel."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import duckdb
import ibis
import numpy as np
import pandas as pd
import pytest

from monitoring.drift import build_profile, compute_drift, compute_drift_from_counts
from monitoring.log_queries import edge_grid, tally_windows, value_counts, window_rows
from monitoring.partitions import DAY_SECONDS, PartitionedLog, PartitionError

START = 1_767_225_600.0  # 2026-01-01 00:00 UTC


@pytest.fixture(scope="module")
def reference_and_log():
    rng = np.random.default_rng(7)
    n_reference, n = 8_000, 30_000
    reference = pd.DataFrame({
        "income": rng.lognormal(10, 0.6, n_reference), "age": rng.integers(18, 80, n_reference).astype(float),
        "channel": rng.choice(["web", "store", "phone"], n_reference, p=[0.6, 0.3, 0.1]),
        "prediction": rng.integers(0, 2, n_reference), "score": rng.uniform(size=n_reference)})
    profile = build_profile(reference, {"income": "numeric", "age": "numeric", "channel": "categorical"})
    current = pd.DataFrame({
        "ts": START + np.sort(rng.uniform(0, 4 * DAY_SECONDS, n)), "id": [f"p{i}" for i in range(n)],
        "income": rng.lognormal(10.2, 0.7, n), "age": rng.integers(10, 95, n).astype(float),
        "channel": rng.choice(["web", "store", "phone", "kiosk", None], n),
        "prediction": rng.integers(0, 2, n), "score": rng.uniform(size=n)})
    current.loc[::89, "income"] = np.nan
    current.loc[::97, "income"] = np.inf
    current.loc[3, "income"] = -1e308
    current.loc[4, "income"] = profile.columns["income"].fine_edges[5]  # exactly on an edge
    current.loc[::13, "age"] = 40.0  # a value the reference has many times: ties on a fine edge
    return profile, current


@pytest.fixture(scope="module")
def duckdb_log(reference_and_log, tmp_path_factory):
    _, current = reference_and_log
    log = PartitionedLog(tmp_path_factory.mktemp("log"))
    for rows in np.array_split(np.arange(len(current)), 7):  # several files in each day partition
        log.append("credit", "predictions", current.iloc[rows])
    backend = ibis.duckdb.connect()
    return log, backend, backend.read_parquet(list(log.snapshot("credit", "predictions").files))


@pytest.mark.parametrize("window", ["day", "hour", "week", 5_000])
@pytest.mark.parametrize("method", ["auto", "ks", "wasserstein", "psi", "hellinger"])
def test_drift_from_pushed_down_counts_equals_drift_from_rows(reference_and_log, duckdb_log, window, method):
    profile, current = reference_and_log
    _, backend, table = duckdb_log
    methods = None if method == "auto" else {"income": method, "age": method}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from_rows = compute_drift(profile, current, window=window, methods=methods, now=START + 3.5 * DAY_SECONDS)
        from_counts = compute_drift_from_counts(profile, tally_windows(backend, table, profile, window=window),
                                                methods=methods, now=START + 3.5 * DAY_SECONDS)
    for name in ("features", "prediction", "dataset"):
        pd.testing.assert_frame_equal(getattr(from_rows, name), getattr(from_counts, name), check_exact=False,
                                      rtol=1e-9)
    assert from_counts.features["n_missing"].sum() == from_rows.features["n_missing"].sum() > 0


def test_window_rows_and_prediction_mix(duckdb_log, reference_and_log):
    _, current = reference_and_log
    _, backend, table = duckdb_log
    windows = window_rows(backend, table, window="day", since=START + DAY_SECONDS)
    expected = current[current["ts"] >= START + DAY_SECONDS]
    assert windows.n_rows.tolist() == expected.groupby(expected["ts"] // DAY_SECONDS).size().tolist()
    assert windows.start[0] == START + DAY_SECONDS
    mix = value_counts(backend, table, "prediction", window="day")
    assert mix["n"].sum() == len(current)
    assert set(mix["value"]) == {0, 1}


def test_edge_grid_bins_exactly_like_searchsorted():
    rng = np.random.default_rng(3)
    edges = np.unique(np.concatenate([rng.normal(size=500), [0.0, 1e-12, 2e-12], np.linspace(5, 5 + 1e-9, 6)]))
    grid = edge_grid(edges)
    x = np.concatenate([rng.normal(size=20_000) * 2, edges, np.nextafter(edges, -np.inf), [edges[0] - 1, 1e300]])
    cells = np.clip(np.floor(np.clip((x - grid.low) * grid.scale + 1, 0, grid.n_cells + 1)), 0, grid.n_cells + 1)
    table = grid.table.set_index("cell").loc[cells.astype(int)]
    candidates = table[[f"e{k + 1}" for k in range(grid.n_candidates)]].to_numpy(dtype=float, na_value=np.nan)
    bins = table["below"].to_numpy() + np.sum(x[:, None] >= candidates, axis=1)
    assert np.array_equal(bins, np.searchsorted(edges, x, side="right"))


WRITER = """
import sys
import numpy as np
import pandas as pd
from monitoring.partitions import PartitionedLog

root, writer, n_batches, rows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
log = PartitionedLog(root)
for batch in range(n_batches):
    ids = [f"w{writer}-{batch}-{i}" for i in range(rows)]
    log.append("svc", "predictions", pd.DataFrame({
        "ts": 1_767_225_600.0 + np.arange(rows) * 60.0 + batch, "id": ids, "x": np.arange(rows, dtype=float)}))
"""


def test_two_writer_processes_and_a_compactor_lose_and_duplicate_nothing(tmp_path):
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(w), "40", "50"],
                                cwd=Path(__file__).resolve().parents[1], stderr=subprocess.PIPE, text=True)
               for w in range(2)]
    log = PartitionedLog(tmp_path)
    seen_duplicates = 0
    for _ in range(200):  # bounded: read and compact while the writers run
        snapshot = log.snapshot("svc", "predictions")
        if snapshot.files:
            ids = duckdb.sql(f"select id from read_parquet({list(snapshot.files)!r}, union_by_name=true)").df()["id"]
            seen_duplicates += int(ids.duplicated().sum())
        log.compact("svc", "predictions", min_files=4)
        if all(process.poll() is not None for process in writers):
            break
    for process in writers:
        _, errors = process.communicate(timeout=60)
        assert process.returncode == 0, errors
    log.compact("svc", "predictions", min_files=2)
    snapshot = log.snapshot("svc", "predictions")
    ids = duckdb.sql(f"select id from read_parquet({list(snapshot.files)!r})").df()["id"]
    assert seen_duplicates == 0
    assert len(ids) == 2 * 40 * 50 and ids.is_unique
    assert len(snapshot.files) == 1 and not snapshot.problems


def test_damaged_files_are_left_out_with_a_message_naming_them(tmp_path):
    log = PartitionedLog(tmp_path)
    for batch in range(3):
        log.append("svc", "predictions", pd.DataFrame({"ts": [START + batch], "x": [float(batch)]}))
    partition = log.partitions("svc", "predictions")[0]
    good = sorted(partition.glob("*.parquet"))
    truncated = good[0]
    truncated.write_bytes(truncated.read_bytes()[:40])
    wrong = partition / "part-99999999999999999999-1-deadbeef.parquet"
    pd.DataFrame({"ts": [START + 9], "x": ["not a number"]}).to_parquet(wrong)
    snapshot = log.snapshot("svc", "predictions")
    assert sorted(snapshot.files) == sorted(str(p) for p in good[1:])
    assert any(truncated.name in problem and "cannot be read" in problem for problem in snapshot.problems)
    assert any(wrong.name in problem and "'x'" in problem for problem in snapshot.problems)
    assert log.compact("svc", "predictions", min_files=2) == [partition.name]
    after = log.snapshot("svc", "predictions")
    assert duckdb.sql(f"select sum(x) from read_parquet({list(after.files)!r})").fetchall()[0][0] == 3.0  # 1 + 2


def test_retention_deletes_whole_days_older_than_kept(tmp_path):
    log = PartitionedLog(tmp_path)
    log.append("svc", "predictions", pd.DataFrame({"ts": START + np.arange(5) * DAY_SECONDS, "x": np.arange(5.0)}))
    log.append("svc", "labels", pd.DataFrame({"ts": [START], "label": [1]}))
    deleted = log.apply_retention("svc", keep_days=2, now=START + 5 * DAY_SECONDS)
    assert deleted == ["predictions/date=2026-01-01", "predictions/date=2026-01-02",
                       "predictions/date=2026-01-03", "labels/date=2026-01-01"]
    assert [p.name for p in log.partitions("svc", "predictions")] == ["date=2026-01-04", "date=2026-01-05"]
    with pytest.raises(PartitionError, match="keep_days"):
        log.apply_retention("svc", keep_days=0, now=START)


def test_bad_names_are_refused_with_what_is_accepted(tmp_path):
    log = PartitionedLog(tmp_path)
    with pytest.raises(PartitionError, match="table must be one of"):
        log.append("svc", "probes", pd.DataFrame({"ts": [START]}))
    with pytest.raises(PartitionError, match="service name"):
        log.append("../etc", "predictions", pd.DataFrame({"ts": [START]}))
    with pytest.raises(PartitionError, match="'ts' column"):
        log.append("svc", "predictions", pd.DataFrame({"x": [1.0]}))


def test_compaction_clears_what_a_dead_writer_left_half_written_and_keeps_a_live_ones(tmp_path):
    log = PartitionedLog(tmp_path)
    for batch in range(2):
        log.append("svc", "predictions", pd.DataFrame({"ts": [START + batch], "x": [float(batch)]}))
    partition = log.partitions("svc", "predictions")[0]
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    abandoned = partition / f".part-1-2-3.parquet.{int(dead.stdout)}.tmp"
    in_progress = partition / f".part-4-5-6.parquet.{os.getpid()}.tmp"
    abandoned.write_bytes(b"half")
    in_progress.write_bytes(b"half")
    log.compact("svc", "predictions", min_files=2)
    assert not abandoned.exists() and in_progress.exists()


def test_a_read_whose_files_a_compaction_deletes_under_it_is_run_again_on_a_new_listing(tmp_path):
    from monitoring.log_engines import LogEngine, survives_compaction

    log = PartitionedLog(tmp_path)
    frame = pd.DataFrame({"ts": np.arange(400, dtype=float), "prediction": np.arange(400) % 2})
    for part in np.array_split(np.arange(len(frame)), 8):  # eight files in one day: compacted into one
        log.append("svc", "predictions", frame.iloc[part])
    engine = LogEngine(f"duckdb:{tmp_path}")
    listings = []

    @survives_compaction
    def count_twice():
        table = engine.table("svc").table  # the files of this moment
        listings.append(len(log.snapshot("svc", "predictions").files))
        first = int(engine.execute(table.count()))
        if len(listings) == 1:  # the collector's upkeep, between two queries of one read:
            assert log.compact("svc", "predictions")  # merged; the inputs stay, so this read can still go on
            assert int(engine.execute(table.count())) == 400
            assert log.compact("svc", "predictions") == []  # the next run deletes them
        return first, int(engine.execute(table.filter(table.prediction == 1).count()))

    assert count_twice() == (400, 200)
    assert listings == [8, 1]  # the read ran again, on the merged file
    assert len(list((tmp_path / "svc" / "predictions").rglob("*.parquet"))) == 1
