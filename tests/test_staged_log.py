"""A prediction-log file staged beside the store's Parquet log: DuckDB's answers equal the file read into memory.

:class:`monitoring.production.LogFileMirror` (the file staged a chunk at a time, asked of DuckDB)
against :class:`monitoring.production.FileMirror` (the whole file in memory) on the same file: a
multiclass service with 32 features, no score column and no id column, times as ISO text. Time
is an input: ``NOW``.
"""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import monitoring.staged_log as staged_log
from monitoring.config import parse_config
from monitoring.drift import build_profile, compute_drift_from_counts
from monitoring.labels import label_source
from monitoring.production import FileMirror, LogFileMirror, ProductionDataError, production_source
from monitoring.sealing import Sealer
from monitoring.store import Store

START = 1_767_225_600.0  # 2026-01-01 00:00 UTC
NOW = START + 9 * 86_400.0
FEATURES = (*(f"x{i}" for i in range(30)), "channel", "email")
ROWS = 6_000


def _file_rows(seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = START + rng.uniform(0, 8 * 86_400, ROWS)  # not in time order: ids are places in the file
    frame = pd.DataFrame({f"x{i}": rng.normal(i, 1 + i / 10, ROWS).round(3) for i in range(30)})
    frame["channel"] = rng.choice(["web", "phone", "shop"], ROWS)
    frame["email"] = [f"user{i % 500}@example.org" for i in range(ROWS)]
    frame.insert(0, "when", pd.to_datetime(ts, unit="s", utc=True).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    frame["predicted"] = rng.integers(0, 3, ROWS)
    return frame


def _config(tmp_path, path, extra: str = ""):
    features = ", ".join(f'"{f}"' for f in FEATURES)
    return parse_config(f"""
[store]
url = "sqlite:///{tmp_path / 'store.db'}"
log = "duckdb:{tmp_path / 'log'}"

[[services]]
name = "wine"
url = "http://127.0.0.1:9"
protocol = "rest"
features = [{features}]
personal = ["email"]

[services.prediction_log]
path = "{path}"
timestamp = "when"
prediction = "predicted"
{extra}""")


@pytest.fixture
def staged(tmp_path, monkeypatch):
    """The file (CSV, staged 1,000 rows at a time), its config, the store, and both mirrors of it."""
    monkeypatch.setattr(staged_log, "CHUNK_ROWS", 1_000)
    path = tmp_path / "predictions.csv"
    _file_rows().to_csv(path, index=False)
    config = _config(tmp_path, path)
    store = Store(config.store.url, sealer=Sealer({"wine": ("email",)}, b"k" * 32), log=f"duckdb:{tmp_path / 'log'}")
    service = config.service("wine")
    engine = production_source(store, service, features=FEATURES)
    assert isinstance(engine, LogFileMirror)
    yield path, config, store, engine, FileMirror(service, features=FEATURES)
    store.dispose()


def _copies(tmp_path):
    return sorted(p.name for p in (tmp_path / "log" / "wine" / "log-file").iterdir())


def test_the_staged_file_answers_what_the_file_in_memory_answers(staged, tmp_path):
    path, _, _, engine, memory = staged
    assert engine.summary() == memory.summary()
    assert engine.summary().source == f"prediction-log file {path} (6,000 rows)"
    on_disk, in_memory = engine.read().frame, memory.read().frame
    assert list(on_disk["id"]) == list(in_memory["id"])  # "row-N": the file's N-th row, both ways
    assert in_memory["id"].iloc[0] != "row-1"  # the file is not in time order
    pd.testing.assert_frame_equal(on_disk[["ts", "x7"]], in_memory[["ts", "x7"]], check_dtype=False)
    counted, expected = (mirror.traffic(now=NOW, since=START, max_values=20) for mirror in (engine, memory))
    assert (counted.n_rows, counted.values, counted.whole, counted.has_score) == (
        expected.n_rows, expected.values, expected.whole, expected.has_score) == (ROWS, (0.0, 1.0, 2.0), True, False)
    pd.testing.assert_frame_equal(counted.mix.sort_values(["bucket", "value"]).reset_index(drop=True),
                                  expected.mix.sort_values(["bucket", "value"]).reset_index(drop=True),
                                  check_dtype=False)

    reference = _file_rows(seed=11)
    profile = build_profile(reference[list(FEATURES[:-1])], {**{f"x{i}": "numeric" for i in range(30)},
                                                              "channel": "categorical"}, prediction_columns=())
    for window in ("day", "hour", 500):
        counted = compute_drift_from_counts(profile, engine.tallies(profile, window=window))
        expected = compute_drift_from_counts(profile, memory.tallies(profile, window=window))
        assert len(counted.features) > 30 * 8
        pd.testing.assert_frame_equal(counted.features, expected.features, check_exact=False, rtol=1e-9)

    found = engine.find(prediction_id="row-17")
    assert list(found["id"]) == ["row-17"] and found["x3"].iloc[0] == pytest.approx(_file_rows()["x3"].iloc[16])
    assert engine.find(filters={"channel": ("==", "web")}, limit=5)["channel"].eq("web").all()


def test_staging_reads_the_file_a_chunk_at_a_time_and_leaves_one_file_per_day(staged, tmp_path, monkeypatch):
    _, _, _, engine, _ = staged
    chunks = []
    original = staged_log.prediction_log_rows
    monkeypatch.setattr(staged_log, "prediction_log_rows", lambda raw, *a, **kw: chunks.append(len(raw)) or
                        original(raw, *a, **kw))
    assert engine.has_rows()
    assert chunks == [1_000] * 6  # never more than CHUNK_ROWS rows in hand
    copy = tmp_path / "log" / "wine" / "log-file" / _copies(tmp_path)[0] / "wine" / "predictions"
    days = sorted(p.name for p in copy.iterdir())
    assert days == [f"date=2026-01-0{d}" for d in range(1, 9)]
    assert all(len(list((copy / day).glob("*.parquet"))) == 1 for day in days)  # merged, inputs deleted
    assert not list(copy.rglob("compaction-*"))


def test_personal_columns_are_sealed_in_the_staged_copy(staged, tmp_path):
    _, _, _, engine, memory = staged
    engine.has_rows()
    for file in (tmp_path / "log").rglob("*.parquet"):
        values = pq.read_table(file, columns=["email"]).column("email").to_pylist()
        assert not any("@example.org" in str(v) for v in values), file
    assert list(engine.read().frame["email"]) == list(memory.read().frame["email"])  # opened when read


def test_a_changed_file_is_staged_again_and_an_unchanged_one_is_not(staged, tmp_path, monkeypatch):
    path, _, _, engine, _ = staged
    assert engine.summary().rows == ROWS
    first = _copies(tmp_path)
    calls = []
    original = staged_log._write_copy
    monkeypatch.setattr(staged_log, "_write_copy", lambda *a: calls.append(1) or original(*a))
    assert engine.summary().rows == ROWS and calls == []
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True)
    left = tmp_path / "log" / "wine" / "log-file" / f".{first[0]}-dead.{finished.stdout.strip()}.tmp"
    left.mkdir()  # what a staging process killed half-way leaves
    for more in (1, 2):
        _file_rows().iloc[: ROWS - 100 * more].to_csv(path, index=False)
        assert engine.summary().rows == ROWS - 100 * more
    assert len(calls) == 2
    copies = _copies(tmp_path)
    assert len(copies) == staged_log.STAGED_LOG_COPIES and first[0] not in copies  # the oldest one deleted
    assert not left.exists()


def test_two_readers_staging_at_once_find_one_copy_with_every_row_once(staged, tmp_path):
    _, config, store, _, _ = staged
    mirrors = [production_source(store, config.service("wine"), features=FEATURES) for _ in range(2)]
    threads = [threading.Thread(target=mirror.has_rows) for mirror in mirrors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(_copies(tmp_path)) == 1
    for mirror in mirrors:
        ids = mirror.read().frame["id"]
        assert len(ids) == ROWS and ids.is_unique


def test_a_bad_file_is_a_message_naming_it_and_nothing_is_staged(tmp_path):
    path = tmp_path / "predictions.csv"
    rows = _file_rows()
    rows.loc[4_500, "when"] = "yesterday"
    rows.to_csv(path, index=False)
    config = _config(tmp_path, path)
    store = Store(config.store.url, log=f"duckdb:{tmp_path / 'log'}")
    try:
        mirror = production_source(store, config.service("wine"), features=FEATURES)
        with pytest.raises(ProductionDataError, match=r"predictions\.csv: column 'when' must hold Unix seconds.*"
                                                      r"'yesterday'"):
            mirror.summary()
        assert not mirror.has_rows()
        assert not (tmp_path / "log" / "wine" / "log-file").exists() or not _copies(tmp_path)  # no part left
        with pytest.raises(ProductionDataError, match=r"lacks columns \['extra'\]"):
            production_source(store, config.service("wine"), features=(*FEATURES, "extra")).summary()
        (tmp_path / "gone.csv").unlink(missing_ok=True)
        missing = _config(tmp_path, tmp_path / "gone.csv").service("wine")
        with pytest.raises(ProductionDataError, match=r"gone\.csv does not exist"):
            production_source(store, missing, features=FEATURES).summary()
    finally:
        store.dispose()


def test_labels_beside_the_store_log_and_a_label_file_join_the_staged_copy_in_the_engine(staged, tmp_path):
    path, _, store, engine, memory = staged
    ids = [f"row-{i}" for i in range(1, ROWS + 1, 3)]
    labels = pd.DataFrame({"prediction_id": ids, "ts": NOW - 3600.0,
                           "label": np.random.default_rng(5).integers(0, 3, len(ids)).astype(float)})
    store.write_labels("wine", labels)
    beside = label_source(store, _config(tmp_path, path).service("wine"))
    assert engine.keeps_labels(beside)
    kept = engine.keep_labels(beside, now=NOW, task="classification")
    joined = memory.join_labels(beside, now=NOW, task="classification")
    assert kept.n_labelled == joined.n_labelled == len(ids) and kept.quality == joined.quality

    labels.rename(columns={"label": "outcome"}).to_csv(tmp_path / "labels.csv", index=False)
    with_file = _config(tmp_path, path, f'\n[services.labels]\npath = "{tmp_path / "labels.csv"}"\nlabel = "outcome"\n')
    from_file = label_source(store, with_file.service("wine"))
    assert engine.keeps_labels(from_file)
    assert engine.keep_labels(from_file, now=NOW + 1, task="classification").n_labelled == len(ids)


def test_beside_a_log_in_the_stores_tables_the_file_is_staged_in_a_folder_of_its_own(tmp_path, monkeypatch):
    monkeypatch.setattr(staged_log, "CHUNK_ROWS", 2_000)
    path = tmp_path / "predictions.csv"
    _file_rows().to_csv(path, index=False)
    config = _config(tmp_path, path)
    store = Store(config.store.url, sealer=Sealer({"wine": ("email",)}, b"k" * 32), log="store")
    try:
        service = config.service("wine")
        assert isinstance(production_source(store, service, features=FEATURES), FileMirror)  # no staging given
        engine = production_source(store, service, features=FEATURES,
                                   staging=staged_log.staging_log(store, tmp_path / "staging"))
        memory = FileMirror(service, features=FEATURES)
        assert isinstance(engine, LogFileMirror) and engine.summary() == memory.summary()
        assert not (tmp_path / "log").exists()
        assert len(list((tmp_path / "staging" / "wine" / "log-file").iterdir())) == 1

        ids = [f"row-{i}" for i in range(2, ROWS + 1, 4)]
        store.write_labels("wine", pd.DataFrame({"prediction_id": ids, "ts": NOW - 60.0,
                                                 "label": np.random.default_rng(8).integers(0, 3, len(ids))}))
        labels = label_source(store, service)  # the store's table: the SQL log keeps its labels there
        assert engine.keeps_labels(labels)
        kept = engine.keep_labels(labels, now=NOW, task="classification")
        joined = memory.join_labels(labels, now=NOW, task="classification")
        assert kept.n_labelled == joined.n_labelled == len(ids) and kept.quality == joined.quality
    finally:
        store.dispose()
