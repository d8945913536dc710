"""A prediction log in the store's tables (PostgreSQL or SQLite) is counted by the database and answers as the rows
in memory do.

The tests on ``filled`` run on both: a SQLite file, and the real PostgreSQL server the test set-up
starts (:mod:`tests.fixtures_postgres`). The in-memory mirror of the same tables
(:class:`monitoring.production.PredictionLogMirror`, what a SQLite store used before) is the
reference: the database's counts must give the pages the same drift, traffic, label join,
Performance page and segments.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import warnings

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from monitoring.baseline import Baseline
from monitoring.config import parse_config
from monitoring.drift import build_profile, compute_drift_from_counts
from monitoring.engine_mirror import KEPT_FILES, ProductionDataError
from monitoring.labels import StoreLabelMirror, label_source
from monitoring.overview import counts_of_traffic, traffic_options
from monitoring.performance import decisions_over_time, performance_over_time
from monitoring.performance_sums import sums_performance
from monitoring.production import PredictionLogMirror, production_source
from monitoring.segment_queries import segment_counts
from monitoring.store import Store
from monitoring.store_log import KEPT_TABLE_PREFIX, StoreLogMirror, connection_lost

START = 1_767_225_600.0  # 2026-01-01 00:00 UTC
DAY = 86_400.0
NOW = START + 3.5 * DAY
N = 6_000


def _config(url: str):
    return parse_config(_config_text(url))


def _config_text(url: str) -> str:
    return f"""
[store]
url = "{url}"
log = "store"

[[services]]
name = "shop"
url = "http://127.0.0.1:9"
protocol = "rest"
features = ["amount", "segment"]
"""


def _fill(store: Store, *, seed: int = 3) -> pd.DataFrame:
    """Four days of a binary model's predictions and labels for a third of them (some late, one unknown id)."""
    rng = np.random.default_rng(seed)
    score = rng.uniform(size=N)
    rows = pd.DataFrame({"id": [f"s{i}" for i in range(N)], "ts": START + np.sort(rng.uniform(0, 4 * DAY, N)),
                         "prediction": (score >= 0.5).astype(float), "score": score,
                         "amount": rng.gamma(2.0, 50.0, N), "segment": rng.choice(["a", "b", "c", None], N)})
    rows.loc[::37, "amount"] = np.nan
    store.prediction_table("shop", {"amount": "numeric", "segment": "categorical"})
    for part in np.array_split(np.arange(N), 4):
        store.log_predictions("shop", rows.iloc[part])
    chosen = rng.choice(N, N // 3, replace=False)
    truth = np.where(rng.uniform(size=len(chosen)) < 0.8, rows["prediction"].to_numpy()[chosen],
                     1.0 - rows["prediction"].to_numpy()[chosen])
    labels = pd.DataFrame({"prediction_id": [f"s{i}" for i in chosen],
                           "ts": rows["ts"].to_numpy()[chosen] + rng.uniform(60, DAY, len(chosen)), "label": truth})
    labels = pd.concat([labels, pd.DataFrame({"prediction_id": ["nobody", "s1", "s1"], "ts": [START, START + DAY,
                                                                                             START + 2 * DAY],
                                              "label": [1.0, 0.0, 1.0]})], ignore_index=True)
    store.write_labels("shop", labels)
    return rows


@pytest.fixture
def filled(store_url):
    config = _config(store_url)
    store = Store.from_config(config)
    rows = _fill(store)
    yield config, store, rows
    store.dispose()


def _both(config, store):
    service = config.services[0]
    pushed = production_source(store, service)
    in_memory = PredictionLogMirror(store, service.log_name)
    return service, pushed, in_memory, label_source(store, service)


def test_a_postgresql_store_log_is_counted_by_the_server_with_the_answers_of_the_rows_in_memory(filled):
    config, store, rows = filled
    _, pushed, in_memory, labels = _both(config, store)
    assert isinstance(pushed, StoreLogMirror) and isinstance(labels, StoreLabelMirror) and pushed.keeps_labels(labels)
    assert pushed.summary().rows == in_memory.summary().rows == N
    assert pushed.summary().first_ts == in_memory.summary().first_ts
    assert set(pushed.columns()) >= {"id", "ts", "prediction", "score", "amount", "segment"}
    profile = build_profile(rows.iloc[:2_000], {"amount": "numeric", "segment": "categorical"})
    for window in ("day", "hour", 1_000):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server = compute_drift_from_counts(profile, pushed.tallies(profile, window=window))
            memory = compute_drift_from_counts(profile, in_memory.tallies(profile, window=window))
        pd.testing.assert_frame_equal(server.features, memory.features, check_exact=False, rtol=1e-9)
    traffic = [counts_of_traffic(source.traffic(**traffic_options(NOW))) for source in (pushed, in_memory)]
    assert traffic[0].n_rows > 0 and traffic[0].volume == traffic[1].volume
    pd.testing.assert_frame_equal(traffic[0].mix, traffic[1].mix, check_exact=False, rtol=1e-12)
    joined, reference = pushed.join_labels(labels, now=NOW), in_memory.join_labels(labels, now=NOW)
    assert joined.n_labelled == reference.n_labelled > 1_000 and joined.quality == reference.quality
    columns = ["id", "ts", "prediction", "score", "label", "label_ts"]
    labelled = reference.frame[reference.frame["label"].notna()]  # the rows in memory keep the unlabelled too
    pd.testing.assert_frame_equal(joined.frame[columns].sort_values("id").reset_index(drop=True),
                                  labelled[columns].sort_values("id").reset_index(drop=True), check_dtype=False)
    summed = pushed.summarize_labels(labels, now=NOW, judged_days=2.0)
    expected = in_memory.summarize_labels(labels, now=NOW, judged_days=2.0)
    pd.testing.assert_frame_equal(summed.slices, expected.slices, check_dtype=False, rtol=1e-9)
    found = pushed.find(prediction_id="s17")
    assert found["id"].tolist() == ["s17"]


def test_the_kept_join_is_a_table_of_the_server_that_every_process_finds_and_the_oldest_are_dropped(filled):
    config, store, _ = filled
    service, pushed, in_memory, labels = _both(config, store)
    kept = pushed.keep_labels(labels, now=NOW, judged_days=2.0)
    assert kept.path.startswith(KEPT_TABLE_PREFIX) and kept.summary is not None
    reference = in_memory.join_labels(labels, now=NOW)
    assert kept.n_labelled == reference.n_labelled and kept.quality == reference.quality
    baseline = Baseline(values={"accuracy": 0.5, "roc_auc": 0.5, "log_loss": 0.7}, source="configured")
    for window in ("day", "hour", "500"):
        sums = pushed.kept_sums(kept, window=window, now=NOW, judged_days=2.0, since=START)
        from_sums = sums_performance(sums, kept, baseline=baseline, min_labels=30)
        joined = in_memory.join_labels(labels, now=NOW, every_row=True)
        rows = performance_over_time(joined, window=int(window) if window.isdigit() else window, baseline=baseline,
                                     min_labels=30, since=START)
        for metric in rows.metrics:
            assert from_sums.overall[metric] == pytest.approx(rows.overall[metric], rel=1e-9), (window, metric)
        # windows of at most 2,000 labels: every interval is the rows path's own, on the same draws
        pd.testing.assert_frame_equal(from_sums.windows, rows.windows, check_dtype=False, rtol=1e-9)
    decided = pushed.kept_decisions(kept, window="day", threshold=0.5)
    expected = decisions_over_time(in_memory.join_labels(labels, now=NOW), window="day", threshold=0.5)
    pd.testing.assert_frame_equal(decided.windows, expected.windows, check_dtype=False)
    assert len(pushed.kept_errors(kept, limit=5)) == 5
    # another process (a new mirror of a new store object) finds the same join without joining again
    other = Store.from_config(config)
    again = production_source(other, service).latest_kept(now=NOW + 60, max_age=240)
    assert again is not None and again.path == kept.path and again.summary.slices.equals(kept.summary.slices)
    other.dispose()
    for later in range(1, 5):
        pushed.keep_labels(labels, now=NOW + 300 * later)
    with store.engine.connect() as conn:
        tables = [t for t in sa.inspect(conn).get_table_names() if t.startswith(KEPT_TABLE_PREFIX)]
        records = conn.execute(sa.text("SELECT count(*) FROM kept_labels")).scalar_one()
    assert records == KEPT_FILES and len([t for t in tables if "_p" not in t.rsplit("__", 1)[1]]) == KEPT_FILES
    assert kept.path not in tables  # the oldest join is dropped, its placed rows with it
    assert not [t for t in tables if t.startswith(f"{kept.path}_p")]


def test_segments_are_counted_by_the_server_as_from_the_rows_in_memory(filled):
    config, store, _ = filled
    _, pushed, in_memory, labels = _both(config, store)
    kept = pushed.keep_labels(labels, now=NOW)
    for features in (["segment"], ["amount", "segment"]):
        server = segment_counts(pushed, labels, features, now=NOW, days=3.0, kept=kept)
        memory = segment_counts(in_memory, labels, features, now=NOW, days=3.0)
        assert server.n_rows == memory.n_rows > 0 and server.specs == memory.specs
        keys = [*server.keys, "prediction", "label"]
        pd.testing.assert_frame_equal(server.cells.sort_values(keys).reset_index(drop=True),
                                      memory.cells.sort_values(keys).reset_index(drop=True), check_dtype=False)


def test_a_label_file_is_staged_in_a_table_of_the_server_and_joined_there_as_in_memory(filled, tmp_path,
                                                                                        monkeypatch):
    from monitoring.labels import LabelFileMirror, join_labels, read_label_file
    from monitoring.staged_labels import STAGED_COPIES, STAGED_TABLE_PREFIX
    from tests.test_staged_labels import _label_file

    config, store, rows = filled
    path = tmp_path / "labels.csv"
    _label_file(path, rows[["id", "ts", "prediction", "score"]])
    filed = parse_config(_config_text(config.store.url) + f"""
[services.labels]
path = "{path}"
id = "order"
label = "truth"
ts = "arrived"
""")
    service = filed.services[0]
    pushed, labels = production_source(store, service), label_source(store, service)
    assert isinstance(labels, LabelFileMirror) and pushed.keeps_labels(labels)
    monkeypatch.setattr(pushed, "read", lambda **kwargs: pytest.fail("the log's rows were read into the process"))
    for now in (START + 1.5 * DAY, NOW, START + 10 * DAY):
        joined = pushed.join_labels(labels, now=now)
        direct = join_labels(rows, read_label_file(labels.config), now=now, source=labels.source)
        assert joined.quality == direct.quality and joined.quality.invalid == (1 if now < START + 2 * DAY else 4)
        pd.testing.assert_frame_equal(joined.frame, direct.frame[direct.frame["label"].notna()].reset_index(drop=True),
                                      check_dtype=False)
    kept = pushed.keep_labels(labels, now=NOW, judged_days=2.0)
    assert kept.quality == join_labels(rows, read_label_file(labels.config), now=NOW).quality
    for turn in range(STAGED_COPIES + 1):  # a changed file is staged again; the newest copies stay
        path.write_text(path.read_text() + f"s{turn},{START + DAY},1\n")
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + (turn + 1) * 10**9))
        assert pushed.join_labels(labels, now=NOW).quality == join_labels(rows, read_label_file(labels.config),
                                                                          now=NOW).quality
    with store.engine.connect() as conn:
        staged = [t for t in sa.inspect(conn).get_table_names() if t.startswith(STAGED_TABLE_PREFIX)]
    assert len(staged) == STAGED_COPIES


def test_an_unreachable_server_is_a_message_naming_it_and_the_log_is_counted_again_once_it_is_back(private_postgres):
    url = private_postgres.url(private_postgres.create_database())
    config = _config(url)
    store = Store.from_config(config)
    _fill(store)
    source = production_source(store, config.services[0])
    assert source.summary().rows == N
    private_postgres.stop()
    try:
        with pytest.raises(ProductionDataError, match=rf"127\.0\.0\.1:{private_postgres.port} could not be reached"):
            source.summary()
        with pytest.raises(ProductionDataError, match=f"127.0.0.1:{private_postgres.port}"):
            source.traffic(**traffic_options(NOW))
    finally:
        private_postgres.start()
    assert source.summary().rows == N
    store.dispose()


def test_a_sqlite_store_log_is_counted_by_sqlite_and_its_rows_stay_there(tmp_path, monkeypatch):
    config = _config(f"sqlite:///{tmp_path / 'store.db'}")
    store = Store.from_config(config)
    rows = _fill(store)
    source = production_source(store, config.services[0])
    assert isinstance(source, StoreLogMirror) and source.summary().rows == N
    assert source.summary().source == f"prediction log in the store's SQLite ({N:,} rows)"
    monkeypatch.setattr(source, "read", lambda **kwargs: pytest.fail("the log's rows were read into the process"))
    assert source.traffic(**traffic_options(NOW)).n_rows == (rows["ts"] <= NOW).sum()
    from_a_session = []  # the dashboard asks from its sessions' threads, not the one that connected
    asking = threading.Thread(target=lambda: from_a_session.append(source.summary().rows))
    asking.start()
    asking.join(timeout=60)
    assert from_a_session == [N]
    (tmp_path / "store.db").unlink()  # deleted under the dashboard: what is counted is the file created again
    store.prediction_table("shop", {"amount": "numeric", "segment": "categorical"})
    store.log_predictions("shop", rows.iloc[:100])
    assert source.summary().rows == 100
    # a file SQLite cannot read now is a state the pages show; a query that was wrong stays an error
    assert connection_lost(sqlite3.OperationalError("database is locked"))
    assert not connection_lost(sqlite3.OperationalError("no such function: hash"))
    store.dispose()


def _labelled_sqlite_store(path, n: int) -> Store:
    """``n`` predictions, labels for half of them (one given twice), and a label of an id never logged."""
    store = Store(f"sqlite:///{path}")
    rng = np.random.default_rng(5)
    ids = [f"p{i}" for i in range(n)]
    score = rng.uniform(size=n)
    store.prediction_table("shop", {"amount": "numeric", "segment": "categorical"})
    store.log_predictions("shop", pd.DataFrame({
        "id": ids, "ts": START + np.linspace(0, DAY, n), "prediction": (score >= 0.5).astype(float), "score": score,
        "amount": rng.gamma(2.0, 50.0, n), "segment": rng.choice(["a", "b"], n)}))
    labelled = [*ids[::2], "p0", "nobody"]
    store.write_labels("shop", pd.DataFrame({"prediction_id": labelled, "ts": START + 2 * DAY,
                                             "label": rng.integers(0, 2, len(labelled)).astype(float)}))
    return store


def _sqlite_steps(connection: sqlite3.Connection, action, *args, **kwargs):
    """What ``action(*args, **kwargs)`` returns, and the thousands of steps SQLite's virtual machine took on
    ``connection`` for it."""
    steps = []

    def step() -> int:
        steps.append(1)
        return 0  # go on

    connection.set_progress_handler(step, 1_000)
    try:
        return action(*args, **kwargs), len(steps)
    finally:
        connection.set_progress_handler(None, 0)


def test_a_sqlite_label_join_grows_with_the_log_not_with_its_square(tmp_path):
    """SQLite joins by looking rows up: counted in SQLite's own steps (the same on any machine), joining 4 times
    the rows takes about 4 times the steps, not 16 (two minutes for the Overview's 14,000 predictions, once)."""
    steps = {}
    for n in (2_000, 8_000):
        store = _labelled_sqlite_store(tmp_path / f"{n}.db", n)
        service = _config(f"sqlite:///{tmp_path / f'{n}.db'}").services[0]
        source, labels = production_source(store, service), label_source(store, service)
        joined, steps[n] = _sqlite_steps(source.log.engine.connect().con, source.join_labels, labels, now=NOW)
        assert joined.n_labelled == n // 2
        assert (joined.quality.unmatched, joined.quality.duplicates) == (1, 1)
        assert joined.quality.examples["unmatched"] == ("'nobody'",)
        everything_pending = source.join_labels(labels, now=START)  # no label had arrived: none to join, no error
        assert everything_pending.n_labelled == 0 and everything_pending.quality.pending == n // 2 + 2
        store.dispose()
    assert steps[8_000] < 8 * steps[2_000], steps


def test_day_counts_are_kept_in_the_store_and_counted_again_only_for_a_day_that_grew(filled, monkeypatch):
    import monitoring.store_log as store_log

    config, store, rows = filled
    _, pushed, in_memory, _ = _both(config, store)
    profile = build_profile(rows.iloc[:2_000], {"amount": "numeric", "segment": "categorical"})
    counted = []
    count = store_log.tally_windows
    monkeypatch.setattr(store_log, "tally_windows", lambda *a, **kw: counted.append(kw.get("by")) or count(*a, **kw))

    def same(source_options: dict) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server = compute_drift_from_counts(profile, pushed.tallies(profile, **source_options))
            memory = compute_drift_from_counts(profile, in_memory.tallies(profile, **source_options))
        pd.testing.assert_frame_equal(server.features, memory.features, check_exact=False, rtol=1e-9)

    done = pushed.keep_day_tallies(profile, now=START + 3.5 * DAY)  # the upkeep: the three days over by then
    assert done.files == ("2026-01-03", "2026-01-02", "2026-01-01") and done.left == 0
    assert counted == ["day", "day"]  # one pass per window kind over every day
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM kept_tallies")).scalar_one() == 6
    store_log._DAY_TALLIES.clear()  # a fresh process: the kept counts are read from the store
    counted.clear()
    for window in ("day", "week"):
        same({"window": window, "since": START + 0.5 * DAY, "until": START + 3.5 * DAY})
    assert counted == [None, None]  # only the rows of the cut days were counted, once per window kind
    late = pd.DataFrame({"id": ["late-1"], "ts": [START + 1.5 * DAY], "prediction": [1.0], "score": [0.9],
                         "amount": [1e6], "segment": ["a"]})
    store.log_predictions("shop", late)  # a prediction logged late into a past day: that day is counted again
    counted.clear()
    same({"window": "day"})
    assert counted.count("day") == 1  # the grown day's day counts; its week counts are the upkeep's next
    assert pushed.keep_day_tallies(profile, now=START + 3.5 * DAY).files == ("2026-01-02",)
    assert pushed.keep_day_tallies(profile, now=START + 3.5 * DAY).files == ()
    same({"window": "week"})


def test_the_collectors_upkeep_keeps_the_labels_and_the_day_counts_of_a_store_log(filled, tmp_path):
    from monitoring.schema import resolve_schema
    from monitoring.upkeep import keep_drift_tallies, keep_service_labels

    config, store, rows = filled
    reference = tmp_path / "reference.csv"
    rows.iloc[:2_000][["amount", "segment", "prediction"]].to_csv(reference, index=False)
    service = config.services[0].model_copy(update={"reference": str(reference)})
    schemas = {service.name: resolve_schema(service, reference=pd.read_csv(reference))}
    kept = keep_drift_tallies(store, [service], schemas, now=NOW)
    assert kept[service.name].files and kept[service.name].left == 0
    joined = keep_service_labels(store, [service], schemas, now=NOW)
    assert joined[service.name].path.startswith(KEPT_TABLE_PREFIX)
    assert production_source(store, service).latest_kept(now=NOW + 1, max_age=240).path == joined[service.name].path
    assert keep_service_labels(store, [service], schemas, now=NOW + 60) == {}  # fresh: not joined again


def test_personal_columns_are_sealed_in_a_postgresql_log_and_counted_as_in_memory(postgres_url):
    from monitoring.sealing import Sealer

    config = parse_config(_config_text(postgres_url) + 'personal = ["segment"]\n')
    store = Store(postgres_url, sealer=Sealer({"shop": ("segment",)}, b"k" * 32), log="store")  # as from_config
    try:
        rows = _fill(store)
        with store.engine.connect() as conn:  # no value of the personal column is in the table in clear
            stored = conn.exec_driver_sql('SELECT segment FROM "predictions__shop" WHERE segment IS NOT NULL').scalars()
            assert not {"a", "b", "c"} & set(stored)
        _, pushed, in_memory, labels = _both(config, store)
        assert isinstance(pushed, StoreLogMirror)
        profile = build_profile(rows.iloc[:2_000], {"amount": "numeric", "segment": "categorical"})
        for window in ("day", 1_000):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                server = compute_drift_from_counts(profile, pushed.tallies(profile, window=window))
                memory = compute_drift_from_counts(profile, in_memory.tallies(profile, window=window))
            pd.testing.assert_frame_equal(server.features, memory.features, check_exact=False, rtol=1e-9)
        opened = pushed.find(prediction_id="s17")
        assert opened["segment"].tolist() == rows.loc[rows["id"] == "s17", "segment"].tolist()
        kept = pushed.keep_labels(labels, now=NOW)
        server_cells = segment_counts(pushed, labels, ["segment"], now=NOW, days=3.0, kept=kept)
        memory_cells = segment_counts(in_memory, labels, ["segment"], now=NOW, days=3.0)
        assert server_cells.n_rows == memory_cells.n_rows > 0 and server_cells.specs == memory_cells.specs
        keys = [*server_cells.keys, "prediction", "label"]
        pd.testing.assert_frame_equal(server_cells.cells.sort_values(keys).reset_index(drop=True),
                                      memory_cells.cells.sort_values(keys).reset_index(drop=True), check_dtype=False)
        assert set(server_cells.cells[server_cells.keys[0]].dropna()) <= {"a", "b", "c"}  # opened, not sealed text
    finally:
        store.dispose()
