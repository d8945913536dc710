"""A SQLite store's own prediction log: counted by SQLite against the whole log read into memory.

Builds (once, under ``var/bench/``, shared with ``benchmarks/log_pages.py``) the demo service's
history generated straight into a SQLite store's own tables (``[store] log = "store"``):
``--rows`` predictions over 28 days and labels for every other one, three days later. Then, each
in a fresh process at one fixed "now", what
the Drift page and the Overview ask first of the log:

* **in memory** (the baseline, what a SQLite store's log got before): every row read into the
  process (:class:`monitoring.production.PredictionLogMirror`) and counted there;
* **counted by SQLite**: the same Ibis queries as on DuckDB and PostgreSQL, run by SQLite over
  the store's tables (:class:`monitoring.store_log.StoreLogMirror`, :mod:`monitoring.sqlite_engine`);
* **after the upkeep**: the same, once the collector's upkeep has counted and kept each past UTC
  day's drift counts in the store (as it does every minute), so only today's rows are counted.

Each mode: the log's summary, its daily drift counts against the reference profile, and the
Overview's traffic counts; the seconds, the process's own peak memory and their ratios to the
baseline. Both must find the same rows and drift scores. Then, the same way, the Overview's
label join (the labels that have arrived joined to their predictions and summed per slice):
in memory, by SQLite, and found kept by the upkeep; all must count the same labels. A full run
replaces the ``sqlite-log`` section of ``benchmarks/results.md``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import (  # noqa: E402
    RATIO_HEADER,
    Size,
    child_results,
    markdown_table,
    parse_args,
    print_table,
    ratio_rows,
    write_section,
)
from benchmarks.log_pages import build, own_peak_mb  # noqa: E402

MODES = {"memory": "in memory (every row read; baseline)", "sqlite": "counted by SQLite",
         "upkept": "counted by SQLite after the collector's upkeep (past days' counts kept)"}
LABEL_MODES = {"labels-memory": "in memory (every row and label read; baseline)", "labels-sqlite": "joined by SQLite",
               "labels-upkept": "joined by SQLite in the collector's upkeep, found kept"}
JUDGED_DAYS = 7.0


def _opened(config_path: str, *, in_memory: bool):
    """The benchmark's store, its one service, and the mirror a mode reads the log with (every row read into the
    process, or counted by SQLite)."""
    from monitoring.config import load_config
    from monitoring.production import PredictionLogMirror, production_source
    from monitoring.store import Store

    config = load_config(config_path)
    store = Store.from_config(config)
    service = config.services[0]
    mirror = PredictionLogMirror(store, service.log_name) if in_memory else production_source(store, service)
    return store, service, mirror


def label_child(mode: str, config_path: str, now: float) -> None:
    """One label mode in this process: prints its seconds, peak memory and the labels it counted as JSON."""
    from monitoring.labels import label_source

    store, service, mirror = _opened(config_path, in_memory=mode == "labels-memory")
    labels = label_source(store, service)
    options = {"now": now, "judged_days": JUDGED_DAYS, "threshold": 0.5}
    if mode == "labels-upkept":
        mirror.keep_labels(labels, **options)  # before the clock starts, as the upkeep does
    started = time.perf_counter()
    if mode == "labels-memory":
        summary = mirror.summarize_labels(labels, **options)
    elif mode == "labels-upkept":
        kept = mirror.latest_kept(now=now, max_age=3600.0)
        if kept is None:
            raise SystemExit("the label join kept before the clock started was not found")
        summary = kept.summary
    else:
        summary = mirror.keep_labels(labels, **options).summary
    seconds = time.perf_counter() - started
    quality = summary.quality
    print(json.dumps({"seconds": seconds, "peak_mb": own_peak_mb(), "source": type(mirror).__name__,
                      "counted": [quality.received, quality.used, quality.unmatched, quality.duplicates,
                                  quality.pending, int(summary.slices["n"].sum())]}))


def child(mode: str, config_path: str, now: float) -> None:
    """One mode in this process: prints its seconds, peak memory, rows and a digest of the drift scores as JSON."""
    if mode in LABEL_MODES:
        label_child(mode, config_path, now)
        return
    import sqlalchemy as sa

    from monitoring.drift import compute_drift_from_counts
    from monitoring.overview import traffic_options
    from monitoring.schema import resolve_schema
    from monitoring.service_reference import logged_service_profile
    from monitoring.store_schema import kept_tallies

    store, service, mirror = _opened(config_path, in_memory=mode == "memory")
    profile = logged_service_profile(service, resolve_schema(service), store)
    with store.engine.begin() as conn:  # no day counts kept by an earlier run: each mode starts from none
        conn.execute(sa.delete(kept_tallies))
    if mode == "upkept":
        mirror.keep_day_tallies(profile, now=now, max_rows=10 * 10**9)  # before the clock starts, as the upkeep does
    started = time.perf_counter()
    summary = mirror.summary()
    drift = compute_drift_from_counts(profile, mirror.tallies(profile, window="day"))
    traffic = mirror.traffic(**traffic_options(now))
    seconds = time.perf_counter() - started
    scores = drift.features.select_dtypes("number").round(9)
    print(json.dumps({"seconds": seconds, "peak_mb": own_peak_mb(), "rows": summary.rows,
                      "traffic": traffic.n_rows, "scores": float(scores.abs().sum().sum()),
                      "source": type(mirror).__name__}))


def main() -> None:
    """Build, run each mode in a fresh process, print the table and write the results section."""
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], float(sys.argv[4]))
        return
    args = parse_args(__doc__, {"rows": Size(1_000_000, 50_000, "predictions in the SQLite store's tables")})
    config = build(args.rows, "store")  # log-pages' SQLite store, reused when built
    now = time.time()  # one "now" for every mode, after the history
    results = child_results(__file__, MODES, str(config), repr(now))
    expected = results["memory"]
    for mode in ("sqlite", "upkept"):
        found = results[mode]
        if found["source"] != "StoreLogMirror":
            raise SystemExit(f"a SQLite store's log was served by {found['source']}, not counted by SQLite")
        if (found["rows"], found["traffic"]) != (expected["rows"], expected["traffic"]) or abs(
                found["scores"] - expected["scores"]) > 1e-6 * max(1.0, abs(expected["scores"])):
            raise SystemExit(f"{mode} found {found}, the rows in memory {expected}")
    header = ("Drift and Overview counts of the log", *RATIO_HEADER)
    rows = ratio_rows(MODES, results, baseline="memory")
    print_table(rows, header)
    joined = child_results(__file__, LABEL_MODES, str(config), repr(now))
    for mode in ("labels-sqlite", "labels-upkept"):
        if joined[mode]["source"] != "StoreLogMirror" or joined[mode]["counted"] != joined["labels-memory"]["counted"]:
            raise SystemExit(f"{mode} found {joined[mode]}, the rows in memory {joined['labels-memory']}")
    label_header = ("The Overview's label join", *RATIO_HEADER)
    label_rows = ratio_rows(LABEL_MODES, joined, baseline="labels-memory")
    print_table(label_rows, label_header)
    size = (config.parent / "store.db").stat().st_size
    write_section("sqlite-log", "A SQLite store's own log counted by SQLite", "\n".join([
        f"{args.rows:,} predictions and {args.rows // 2:,} labels in a SQLite store's tables ({size / 1e6:.0f} MB): "
        "the log's summary, its daily drift counts and the Overview's traffic counts, each mode in a fresh "
        "process; every mode found the same rows, traffic and drift scores.", "",
        markdown_table(rows, header), "",
        f"The labels that have arrived joined to their predictions and summed per slice for the Overview (judged "
        f"over {JUDGED_DAYS:g} days), each mode in a fresh process; every mode counted the same labels, pairs and "
        "slices. SQLite looks each label's prediction up in an indexed copy of the labels (before, it compared "
        "every label with every prediction: 14,000 predictions took two minutes).", "",
        markdown_table(label_rows, label_header)]), args=args)


if __name__ == "__main__":
    main()
