"""Store outages with real processes: nothing the collector polls is lost, and the outage is visible.

A tiny FastAPI service runs under uvicorn in its own process; the collector runs as
``python -m monitoring.collector --config …`` in another; a third process (or the kernel)
makes the store unwritable for a while. The lock and the full disk are the outages seen in
production, at their durations and poll interval (2 s): a lock held 20 s, a disk full for 30 s.

SQLite only, by nature: each outage is one of the SQLite file's (its write lock held by another
process, the file-size limit of the writer, a read-only folder, the file deleted). PostgreSQL's
outage, the server stopped and restarted, is in ``tests/test_postgres.py``.
"""

from __future__ import annotations

import resource
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from monitoring.store import Store
from tests.collector_processes import (
    POLL_INTERVAL,
    CollectorProcess,
    assert_every_poll_kept,
    assert_no_duplicates,
    polls_between,
    recorded_polls,
    write_config,
)
from tests.helpers import read_only, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OUTAGE_POLL_INTERVAL = 2.0
"""The issue's outages at their own durations: a lock held 20 s (10 polls), a disk full for 30 s (15 polls)."""

@pytest.fixture
def store_folder(tmp_path) -> Path:
    folder = tmp_path / "var"
    folder.mkdir()
    return folder


def test_a_lock_held_20_seconds_loses_none_of_its_10_polls(tiny_service, store_folder, tmp_path):
    store_path = store_folder / "vantage.db"
    config = write_config(tmp_path, store_path, tiny_service, poll_interval=OUTAGE_POLL_INTERVAL)
    collector = CollectorProcess(config, health_file=tmp_path / "h.json")
    try:
        wait_for(lambda: len(recorded_polls(store_path)) >= 2, timeout=30, what="the first polls")
        holder = subprocess.Popen(  # a second process holds the write lock for 20 s (10 poll intervals)
            [sys.executable, "-c", textwrap.dedent(f"""
                import sqlite3, sys, time
                conn = sqlite3.connect({str(store_path)!r}, isolation_level=None, timeout=30)
                conn.execute("BEGIN EXCLUSIVE")
                print(time.time(), flush=True)
                time.sleep(20.0)
                conn.rollback()
                print(time.time(), flush=True)
            """)], stdout=subprocess.PIPE, text=True)
        locked_at = float(holder.stdout.readline())
        health = wait_for(lambda: (h := collector.health()) and h["state"] == "locked" and h["buffered"] and h,
                          timeout=8, what="the health file to say 'locked'", details=collector.tail)
        assert "database is locked" in health["cause"] and health["dropped"] == 0
        released_at = float(holder.stdout.readline())
        holder.wait(timeout=10)
        assert released_at - locked_at >= 20.0
        wait_for(lambda: (h := collector.health()) and h["state"] == "ok" and h["buffered"] == 0,
                 timeout=15, what="the buffered polls to be written", details=collector.tail)
        during = polls_between(store_path, locked_at, released_at)
        print(f"lock held {released_at - locked_at:.1f} s: {len(during)} polls recorded afterwards")
        assert_every_poll_kept(during, locked_at, released_at, interval=OUTAGE_POLL_INTERVAL)
        assert len(during) >= 10
        assert collector.log_has("store locked")
        assert collector.log_has("takes writes again")
    finally:
        collector.stop()
    polls = recorded_polls(store_path)
    assert_no_duplicates(polls, interval=OUTAGE_POLL_INTERVAL)
    assert set(polls["state"]) == {"up"}
    store = Store(f"sqlite:///{store_path}")
    assert len(store.read_incidents("tiny")) == 1  # the first "up"; the outage made none up
    store.dispose()


def ignore_sigxfsz() -> None:
    """In the collector process, before it starts: a write past the file-size limit fails with EFBIG
    instead of killing the process (Python ignores SIGXFSZ too; this does not rely on it)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def test_a_disk_full_for_30_seconds_loses_none_of_its_15_polls(tiny_service, store_folder, tmp_path):
    """The disk is "full" for the collector alone: its file-size limit (RLIMIT_FSIZE) is lowered to 0
    bytes from outside (``prlimit``) for 30 s, so every write of a file fails with EFBIG, and raised
    again. Its log goes to a pipe, which the limit does not cover."""
    store_path = store_folder / "vantage.db"
    config = write_config(tmp_path, store_path, tiny_service, poll_interval=OUTAGE_POLL_INTERVAL)
    collector = CollectorProcess(config, health_file=tmp_path / "h.json", preexec_fn=ignore_sigxfsz)
    try:
        wait_for(lambda: len(recorded_polls(store_path)) >= 2, timeout=30, what="the first polls")
        unlimited = resource.prlimit(collector.pid, resource.RLIMIT_FSIZE)
        full_at = time.time()
        resource.prlimit(collector.pid, resource.RLIMIT_FSIZE, (0, unlimited[1]))
        line = wait_for(lambda: collector.log_has("store full"), timeout=10,
                        what="the collector to log 'store full'", details=collector.tail)
        assert "RLIMIT_FSIZE" in line and "rows kept in memory" in line
        time.sleep(max(0.0, full_at + 30.0 - time.time()))  # the disk stays full for 15 poll intervals
        resource.prlimit(collector.pid, resource.RLIMIT_FSIZE, unlimited)
        freed_at = time.time()
        wait_for(lambda: (h := collector.health()) and h["state"] == "ok" and h["buffered"] == 0
                 and h["updated"] > freed_at, timeout=15, what="the buffered polls to be written",
                 details=collector.tail)
        during = polls_between(store_path, full_at, freed_at)
        print(f"disk full {freed_at - full_at:.1f} s: {len(during)} polls recorded afterwards")
        assert_every_poll_kept(during, full_at, freed_at, interval=OUTAGE_POLL_INTERVAL)
        assert len(during) >= 15
        assert collector.process.poll() is None, "the collector must survive the full disk"
    finally:
        collector.stop()
    polls = recorded_polls(store_path)
    assert_no_duplicates(polls, interval=OUTAGE_POLL_INTERVAL)
    with sqlite3.connect(store_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_store_read_only_at_start_is_shown_and_its_polls_kept_until_it_is_writable(
        tiny_service, store_folder, tmp_path):
    store_path = store_folder / "vantage.db"
    Store(f"sqlite:///{store_path}").dispose()  # an existing store, schema and all
    config = write_config(tmp_path, store_path, tiny_service)
    with read_only(store_folder):
        collector = CollectorProcess(config, health_file=tmp_path / "h.json")
        try:
            seen: list[int] = []

            def five_polls_buffered() -> bool:
                health = collector.health()
                if health and health["state"] == "read_only" and health["buffered"] not in seen:
                    seen.append(health["buffered"])
                return len(seen) >= 5

            wait_for(five_polls_buffered, timeout=30, what="five polls buffered while read-only")
            health = collector.health()
            assert "cannot be opened for writing" in health["cause"] or "not writable" in health["cause"]
            assert health["dropped"] == 0 and health["since"] >= collector.started_at - 1
            assert recorded_polls(store_path).empty
        except BaseException:
            collector.stop()
            raise
    writable_at = time.time()
    try:
        wait_for(lambda: (h := collector.health()) and h["state"] == "ok" and h["buffered"] == 0,
                 timeout=15, what="the buffered polls to be written", details=collector.tail)
        kept = polls_between(store_path, 0, writable_at)
        print(f"read-only for {writable_at - collector.started_at:.1f} s from the start: {len(kept)} polls recorded")
        assert len(kept) >= 5
        assert kept["ts"].min() <= collector.started_at + 5, "the polls from the read-only start are kept"
        assert_every_poll_kept(kept, kept["ts"].min(), writable_at)
    finally:
        collector.stop()
    assert_no_duplicates(recorded_polls(store_path))


@pytest.mark.parametrize("leftovers", ["db only", "db, -wal and -shm"])
def test_a_deleted_store_file_is_created_again_and_polling_goes_on_into_it(
        tiny_service, store_folder, tmp_path, leftovers):
    store_path = store_folder / "vantage.db"
    collector = CollectorProcess(write_config(tmp_path, store_path, tiny_service), health_file=tmp_path / "h.json")
    try:
        wait_for(lambda: len(recorded_polls(store_path)) >= 2, timeout=30, what="the first polls")
        deleted_at = time.time()
        store_path.unlink()
        if leftovers != "db only":
            for suffix in ("-wal", "-shm"):
                Path(f"{store_path}{suffix}").unlink(missing_ok=True)
        line = wait_for(lambda: collector.log_has("was deleted while in use"), timeout=10,
                        what="the collector to log the deletion", details=collector.tail)
        assert str(store_path) in line
        assert store_path.exists()
        wait_for(lambda: len(polls_between(store_path, deleted_at, time.time())) >= 3, timeout=15,
                 what="three polls in the new file")
        health = wait_for(lambda: (h := collector.health()) and h["state"] == "recreated" and h, timeout=5,
                          what="the health file to say 'recreated'", details=collector.tail)
        assert "history written before then is gone" in health["cause"]
    finally:
        collector.stop()
    polls = recorded_polls(store_path)
    assert polls["ts"].min() >= deleted_at - POLL_INTERVAL  # only what came after: a new file
    assert_every_poll_kept(polls, polls["ts"].min(), polls["ts"].max())
    assert_no_duplicates(polls)
    store = Store(f"sqlite:///{store_path}")
    incidents = store.read_incidents("tiny")
    store.dispose()
    assert list(incidents["state"]) == ["up"]
