"""The collector's upkeep counts the drift of the prediction log's past days, so that no page view does.

Real parts throughout: a Store over a Parquet log read by DuckDB, the collector's upkeep run, and
the Drift page's own profile function (``dashboard.state.drift.drift_profile``, unwrapped from its
Streamlit cache).
"""

from __future__ import annotations

import json
import warnings
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import monitoring.production as production
from monitoring.collector import Collector
from monitoring.config import parse_config
from monitoring.drift import compute_drift_from_counts, tallies_to_arrays
from monitoring.production import ParquetMirror, keep_file_tallies, tally_folder
from monitoring.sealing import Sealer
from monitoring.store import Store
from monitoring.upkeep import keep_drift_tallies

START = 1_767_225_600.0  # 2026-01-01 00:00 UTC
DAY = 86_400.0
PAST_DAYS = 4
NOW = START + PAST_DAYS * DAY + 10 * 3_600  # 10:00 on the fifth day: four days over, today's files open
KEY = "k" * 64
FEATURES = {"email": "categorical", "channel": "categorical", "balance": "numeric", "age": "numeric"}


def _rows(n: int, *, seed: int, begin: float, span: float = DAY) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "id": [f"p-{seed}-{i}" for i in range(n)], "ts": begin + np.sort(rng.uniform(0, span, n)),
        "prediction": rng.integers(0, 2, n).astype(float), "score": rng.uniform(size=n), "model_version": "v1",
        "email": rng.choice(["ann@example.org", "bob@example.org", None], n),
        "channel": rng.choice(["web", "store", "phone"], n), "balance": rng.normal(1000, 200, n),
        "age": rng.integers(18, 90, n).astype(float)})


def _config(tmp_path, extra: str = "", personal: str = '["email"]'):
    return parse_config(f"""
[store]
url = "sqlite:///{tmp_path / 'store.db'}"
log = "duckdb:{tmp_path / 'log'}"

[[services]]
name = "svc"
reference = "{tmp_path / 'reference.parquet'}"
features = ["email", "channel", "balance", "age"]
personal = {personal}
url = "http://127.0.0.1:9"
protocol = "rest"
{extra}""")


@pytest.fixture
def logged(tmp_path):
    """A store whose log holds four past days (the third compacted) and today's first hours, and its collector."""
    reference = _rows(2_000, seed=100, begin=START - 30 * DAY).drop(columns=["id", "ts", "model_version"])
    reference.to_parquet(tmp_path / "reference.parquet")
    store = Store(f"sqlite:///{tmp_path / 'store.db'}", sealer=Sealer({"svc": ("email",)}, KEY.encode()),
                  log=f"duckdb:{tmp_path / 'log'}")
    store.prediction_table("svc", FEATURES)
    for day in range(PAST_DAYS):
        for batch in range(9 if day == 2 else 2):  # nine files: the upkeep's compaction merges that day
            store.log_predictions("svc", _rows(150, seed=10 * day + batch, begin=START + day * DAY))
    # today's first file holds rows until 12:00, after the upkeep's now (a frozen clock's log): not yet counted
    store.log_predictions("svc", _rows(100, seed=99, begin=START + PAST_DAYS * DAY, span=12 * 3_600))
    collector = Collector(_config(tmp_path), store)
    yield store, collector
    store.dispose()


def _page_profile(collector: Collector, store: Store, tmp_path, monkeypatch):
    """The profile the Drift page builds (its own function, without Streamlit's cache)."""
    from dashboard.state.drift import drift_profile

    monkeypatch.setenv("VANTAGE_VAR", str(tmp_path / "var"))
    runtime = SimpleNamespace(config=collector.config, store=store,
                              schema=lambda service: collector.pollers[service].schema)
    return drift_profile.__wrapped__.__wrapped__(runtime, service="svc")


def _engine_file_counts(monkeypatch) -> list[int]:
    """Calls of the engine's per-file count (``by="filename"``) from now on, each the number of files."""
    calls: list[int] = []
    count = production.tally_windows

    def spy(backend, table, profile, **options):
        if options.get("by") == "filename":
            calls.append(1)
        return count(backend, table, profile, **options)

    monkeypatch.setattr(production, "tally_windows", spy)
    return calls


def _assert_same_tallies(got, expected) -> None:
    got, expected = tallies_to_arrays(got), tallies_to_arrays(expected)
    assert sorted(got) == sorted(expected)
    assert json.loads(str(got["header"])) == json.loads(str(expected["header"]))
    for name in expected:
        if name != "header":
            np.testing.assert_allclose(got[name], expected[name], rtol=1e-12, err_msg=name)


def _fresh_process() -> None:
    """What a new dashboard process starts with: nothing counted in memory."""
    production._TALLY_CACHE.clear()


def test_the_upkeep_keeps_what_the_drift_page_then_reads_without_counting(logged, tmp_path, monkeypatch):
    store, collector = logged
    profile = _page_profile(collector, store, tmp_path, monkeypatch)
    ranges = [(START, NOW), (START + DAY, START + 3 * DAY)]  # today's file cut by the first: counted at once
    # first, the counts as a page finds them with nothing kept (it counts and keeps every file itself) ...
    store.predictions.maintain(now=NOW)  # the same compaction as the upkeep's, so the same files
    expected = {(window, since): ParquetMirror(store.predictions, "svc").tallies(profile, window=window,
                                                                                 since=since, until=until)
                for window in ("day", "week") for since, until in ranges}
    folder = tally_folder(store.predictions, "svc", profile)
    for kept in folder.glob("*.npz"):
        kept.unlink()
    _fresh_process()

    # ... then the upkeep counts and keeps them ...
    done = collector.upkeep(now=NOW)
    assert done["compacted"] == [] and done["tallies"]["svc"].left == 0
    live = ParquetMirror(store.predictions, "svc")._snapshot().files
    past = [path for path in live if "date=2026-01-05" not in path]
    assert len(past) == 2 + 2 + 1 + 2  # day three's nine files merged into one
    assert sorted(done["tallies"]["svc"].files) == sorted(past)
    assert sorted(p.name for p in folder.glob("*.npz")) == sorted(
        f"{path.rsplit('/', 1)[1].removesuffix('.parquet')}.{spec}.npz" for path in past for spec in ("day", "week"))

    # ... under the very key the Drift page computes, so that a fresh page view counts none of them
    _fresh_process()
    counted = _engine_file_counts(monkeypatch)
    source = ParquetMirror(store.predictions, "svc")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for (window, since), wanted in expected.items():
            until = dict(ranges)[since]
            got = source.tallies(profile, window=window, since=since, until=until)
            _assert_same_tallies(got, wanted)
            # and the drift the page shows is the same
            pd.testing.assert_frame_equal(compute_drift_from_counts(profile, got).features,
                                          compute_drift_from_counts(profile, wanted).features)
    assert counted == []
    assert len(list(folder.glob("*.npz"))) == 2 * len(past)  # no file counted (nor kept) by the page
    assert [p.name for p in folder.parent.iterdir()] == [production.profile_key(profile)]
    next(folder.glob("*.day.npz")).unlink()  # and the spy does see a file the page has to count
    _fresh_process()
    source.tallies(profile, window="day", since=START, until=NOW)
    assert counted == [1]


def test_todays_files_written_before_now_are_kept_and_whole_for_a_view_until_now(logged, tmp_path, monkeypatch):
    store, collector = logged
    profile = _page_profile(collector, store, tmp_path, monkeypatch)
    later = NOW + 3 * 3_600  # 13:00: today's first file (rows until 12:00) is now written before now
    store.log_predictions("svc", _rows(50, seed=98, begin=START + PAST_DAYS * DAY + 12.5 * 3_600, span=600))
    expected = ParquetMirror(store.predictions, "svc").tallies(profile, window="day", since=START, until=later)
    for kept in tally_folder(store.predictions, "svc", profile).glob("*.npz"):
        kept.unlink()
    _fresh_process()
    done = collector.upkeep(now=later)["tallies"]["svc"]
    assert sum("date=2026-01-05" in path for path in done.files) == 2  # both of today's files
    _fresh_process()
    counted = _engine_file_counts(monkeypatch)
    got = ParquetMirror(store.predictions, "svc").tallies(profile, window="day", since=START, until=later)
    _assert_same_tallies(got, expected)
    assert counted == []  # the Overview's range ends now: today's files are whole in it, and kept
    store.log_predictions("svc", _rows(10, seed=97, begin=later - 60, span=30))  # written in the last minute
    _fresh_process()
    ParquetMirror(store.predictions, "svc").tallies(profile, window="day", since=START, until=later)
    assert counted == [1]  # only the newest file is counted by the view


def test_the_key_is_the_pages_whether_its_profile_was_read_from_its_disk_cache_or_built(logged, tmp_path,
                                                                                      monkeypatch):
    from monitoring import service_reference
    from monitoring.drift import _profile as profiles

    def forget() -> None:  # another process: nothing remembered in memory
        monkeypatch.setattr(profiles, "_MEMORY", type(profiles._MEMORY)())
        service_reference._PROFILES.clear()

    store, _ = logged
    collector = Collector(_config(tmp_path, personal="[]"), store)  # no personal column: the page caches its profile
    forget()
    page = _page_profile(collector, store, tmp_path, monkeypatch)
    assert list((tmp_path / "var" / "drift-profiles").glob("*.pkl"))
    forget()
    collector.upkeep(now=NOW)  # builds its own profile from the reference (it keeps none on disk)
    assert [p.name for p in (tmp_path / "log" / "svc" / "tallies").iterdir()] == [production.profile_key(page)]
    forget()
    assert production.profile_key(_page_profile(collector, store, tmp_path, monkeypatch)) == \
        production.profile_key(page)  # read back from the page's disk cache


def test_personal_columns_and_todays_files_are_never_kept(logged, tmp_path, monkeypatch):
    store, collector = logged
    profile = _page_profile(collector, store, tmp_path, monkeypatch)
    assert "email" in profile.columns  # the profile has it; the kept counts must not
    collector.upkeep(now=NOW)
    folder = tally_folder(store.predictions, "svc", profile)
    kept = sorted(folder.glob("*.npz"))
    assert kept
    for path in kept:
        with np.load(path, allow_pickle=False) as arrays:
            header = json.loads(str(arrays["header"]))
        assert "email" not in header["columns"]
        assert set(header["columns"]) == {"channel", "balance", "age", "prediction", "score"}
    today = [p for p in ParquetMirror(store.predictions, "svc")._snapshot().files if "date=2026-01-05" in p]
    assert today and not any(path.rsplit("/", 1)[1].removesuffix(".parquet") in k.name for path in today
                             for k in kept)
    # the files a compaction replaced (still on disk until the next one) are not counted either
    day_three = tmp_path / "log" / "svc" / "predictions" / "date=2026-01-03"
    stems = {p.stem for p in day_three.glob("*.parquet")}
    assert len(stems) == 10
    assert len([k for k in kept if k.name.split(".")[0] in stems]) == 2  # the merged file's day and week


def test_the_counts_of_files_a_compaction_merged_are_deleted_at_the_next_run(logged, tmp_path, monkeypatch):
    store, collector = logged
    profile = _page_profile(collector, store, tmp_path, monkeypatch)
    folder = tally_folder(store.predictions, "svc", profile)
    day_three = [path for path in ParquetMirror(store.predictions, "svc")._snapshot().files
                 if "date=2026-01-03" in path]
    assert len(day_three) == 9
    keep_file_tallies(store.predictions, "svc", profile, now=NOW)  # before any compaction: every file counted
    merged = {f"{path.rsplit('/', 1)[1].removesuffix('.parquet')}.{spec}.npz" for path in day_three
              for spec in ("day", "week")}
    assert merged <= {k.name for k in folder.glob("*.npz")}
    collector.upkeep(now=NOW)  # compacts (day three's nine files into one) and counts the new file
    collector.upkeep(now=NOW + 120)  # deletes what the compaction merged, and their kept counts
    kept = {k.name for k in folder.glob("*.npz")}
    assert not merged & kept
    listed = {path.rsplit("/", 1)[1].removesuffix(".parquet") for path in
              ParquetMirror(store.predictions, "svc")._snapshot().files}
    assert {name.split(".")[0] for name in kept} <= listed


def test_one_run_counts_a_bounded_share_newest_first_and_the_next_runs_go_on(logged, tmp_path, monkeypatch):
    store, collector = logged
    store.predictions.maintain(now=NOW)
    profile = _page_profile(collector, store, tmp_path, monkeypatch)
    schemas = {name: poller.schema for name, poller in collector.pollers.items()}
    first = keep_drift_tallies(store, collector.config.services, schemas, now=NOW, max_rows=1)["svc"]
    assert len(first.files) == 1 and first.rows == 150 and first.left == 6
    assert "date=2026-01-04" in first.files[0]  # the newest past day first: the one a page most likely shows
    second = keep_drift_tallies(store, collector.config.services, schemas, now=NOW, max_rows=300)["svc"]
    assert len(second.files) == 1 and second.files != first.files and second.left == 5  # next: 1,350 rows
    third = keep_drift_tallies(store, collector.config.services, schemas, now=NOW, max_rows=1_000)["svc"]
    assert len(third.files) == 1 and third.rows == 1_350 and third.left == 4  # a first file, past the bound
    rest = keep_file_tallies(store.predictions, "svc", profile, now=NOW)
    assert rest.left == 0 and len(rest.files) == 4
    assert keep_file_tallies(store.predictions, "svc", profile, now=NOW) == production.KeptTallies()
    # once a day is over, its files are counted the next run
    later = keep_file_tallies(store.predictions, "svc", profile, now=NOW + DAY)
    assert len(later.files) == 1 and "date=2026-01-05" in later.files[0] and later.rows == 100


def test_services_without_reference_or_rows_are_passed_over_without_raising(logged, tmp_path, caplog):
    store, _ = logged
    store.prediction_table("empty", {"age": "numeric"})  # declared, no file yet
    config = _config(tmp_path, extra=f"""
[[services]]
name = "no-reference"
url = "http://127.0.0.1:9"
protocol = "rest"
features = ["age"]

[[services]]
name = "missing-reference"
url = "http://127.0.0.1:9"
protocol = "rest"
reference = "{tmp_path / 'nowhere.parquet'}"
features = ["age"]

[[services]]
name = "empty"
url = "http://127.0.0.1:9"
protocol = "rest"
reference = "{tmp_path / 'reference.parquet'}"
features = ["age"]
""")
    store.log_predictions("no-reference", _rows(50, seed=7, begin=START))
    store.log_predictions("missing-reference", _rows(50, seed=8, begin=START))
    collector = Collector(config, store)
    with caplog.at_level("INFO", logger="monitoring"):
        done = collector.upkeep(now=NOW)
    assert set(done["tallies"]) == {"svc", "empty"} and done["tallies"]["empty"] == production.KeptTallies()
    assert not any(record.levelname in ("WARNING", "ERROR") for record in caplog.records)
    assert any("svc" in record.getMessage() and "7 file(s)" in record.getMessage() for record in caplog.records)
    for service in ("no-reference", "missing-reference", "empty"):
        assert not (tmp_path / "log" / service / "tallies").exists()


def test_a_log_kept_in_the_stores_tables_has_nothing_to_keep(tmp_path):
    config = _config(tmp_path)
    store = Store(f"sqlite:///{tmp_path / 'store.db'}", log="store")
    try:
        assert Collector(config, store).upkeep(now=NOW)["tallies"] == {}
    finally:
        store.dispose()


def test_the_logs_rows_and_time_span_come_from_the_files_metadata_as_duckdb_counts_them(logged, monkeypatch):
    from monitoring.log_queries import summarize

    store, _ = logged
    source = ParquetMirror(store.predictions, "svc")

    def counted():
        return summarize(store.predictions.engine.connect(), store.predictions.engine.table("svc").table,
                         source="{rows:,}")

    engine_calls = []
    monkeypatch.setattr(production, "summarize", lambda *a, **k: engine_calls.append(1) or counted())
    found, expected = source.summary(), counted()
    assert (found.rows, found.first_ts, found.last_ts) == (expected.rows, expected.first_ts, expected.last_ts)
    assert found.rows == 4 * 300 + 7 * 150 + 100 and engine_calls == []  # no row read
    odd = _rows(3, seed=7, begin=START - DAY)
    odd["ts"] = [START - DAY + 5.0, np.nan, None]  # a NaN time is no time, as a missing one
    store.predictions.log.append("svc", "predictions", odd)
    found = source.summary()
    assert engine_calls == [] and found.rows == expected.rows + 3
    assert (found.first_ts, found.last_ts) == (START - DAY + 5.0, expected.last_ts)
