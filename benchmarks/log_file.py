"""Prediction-log file: DuckDB over the file staged beside the Parquet log against the whole file in memory.

Builds (once, under ``var/bench/``) a CSV prediction-log file of the demo service's history
(``--rows`` predictions over 28 days, ISO 8601 times, as ``[services.prediction_log]`` names
one) and a configuration whose store keeps its log in Parquet (the default). Then, each in a
fresh process, what the Drift page's first view asks of the file: its row count and span, and
its feature counts per day against the reference profile:

* **in memory** (the baseline, what a prediction-log file got before): the whole file read into
  the process (:class:`monitoring.production.FileMirror`) and counted there;
* **staged, first**: the file staged a chunk at a time beside the log
  (:mod:`monitoring.staged_log`), then counted by DuckDB (:class:`monitoring.production.LogFileMirror`);
* **staged copy there**: the same once another process (the dashboard's warm-up) staged it.

Each row gives the seconds, the process's own peak memory and the ratio to the baseline; every
row must find the same rows and the same drift scores. A full run replaces the ``log-file``
section of ``benchmarks/results.md``.
"""

from __future__ import annotations

import json
import shutil
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
from benchmarks.log_pages import own_peak_mb  # noqa: E402
from benchmarks.pages import BENCH_DIR, DAY, _generate  # noqa: E402

CHUNK = 500_000
MODES = {"memory": "in memory (the whole file read; baseline)", "first": "staged beside the log, then counted",
         "staged": "staged copy there, counted"}


def build(rows: int) -> Path:
    """The prediction-log file of ``rows`` predictions and its configuration; reused when built."""
    folder = BENCH_DIR / f"log-file-{rows}"
    config, done = folder / "vantage.toml", folder / "built.json"
    if done.exists():
        return config
    import pandas as pd

    from demo.model import load_or_train
    from demo.runtime import offline_config_text

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    model = load_or_train(ROOT / "var" / "demo")
    generated = _generate(model, rows, time.time() - 28 * DAY).drop(columns=["default"], errors="ignore")
    path = folder / "predictions.csv"
    for begin in range(0, rows, CHUNK):
        chunk = generated.iloc[begin:begin + CHUNK].copy()
        chunk["ts"] = pd.to_datetime(chunk["ts"], unit="s", utc=True).dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        chunk.to_csv(path, index=False, mode="a", header=begin == 0)
    config.write_text(offline_config_text(store_path=folder / "store.db", model=model, extra=f"""
[services.prediction_log]
path = "{path}"
score = "score"
""").replace("[store]\n", f'[store]\nlog = "duckdb:{folder / "log"}"\n', 1))
    done.write_text(json.dumps({"rows": rows}))
    return config


def child(mode: str, config_path: str) -> None:
    """One mode in this process: prints its seconds, peak memory, rows and a digest of the drift scores as JSON."""
    from monitoring.config import load_config
    from monitoring.drift import compute_drift_from_counts
    from monitoring.production import FileMirror, production_source
    from monitoring.schema import resolve_schema
    from monitoring.service_reference import logged_service_profile
    from monitoring.store import Store

    config = load_config(config_path)
    store = Store.from_config(config)
    service = config.services[0]
    schema = resolve_schema(service)
    profile = logged_service_profile(service, schema, store)
    mirror = (FileMirror(service, features=schema.features) if mode == "memory"
              else production_source(store, service, features=schema.features))
    if mode == "staged":
        mirror.has_rows()  # the staged copy is there before the clock starts
    started = time.perf_counter()
    summary = mirror.summary()
    drift = compute_drift_from_counts(profile, mirror.tallies(profile, window="day"))
    seconds = time.perf_counter() - started
    scores = drift.features.select_dtypes("number").round(9)
    print(json.dumps({"seconds": seconds, "peak_mb": own_peak_mb(), "rows": summary.rows,
                      "scores": float(scores.abs().sum().sum())}))


def main() -> None:
    """Build, run each mode in a fresh process, print the table and write the results section."""
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
        return
    args = parse_args(__doc__, {"rows": Size(4_000_000, 100_000, "predictions in the file")})
    config = build(args.rows)
    def fresh(mode: str) -> None:
        if mode == "first":
            shutil.rmtree(config.parent / "log", ignore_errors=True)

    results = child_results(__file__, MODES, str(config), before=fresh)
    expected = (results["memory"]["rows"], results["memory"]["scores"])
    for mode, found in results.items():
        if found["rows"] != expected[0] or abs(found["scores"] - expected[1]) > 1e-6 * max(1.0, abs(expected[1])):
            raise SystemExit(f"{mode} found {found['rows']} rows and scores {found['scores']}, "
                             f"the file in memory {expected[0]} and {expected[1]}")
    header = ("Drift's first view of the file", *RATIO_HEADER)
    rows = ratio_rows(MODES, results, baseline="memory")
    print_table(rows, header)
    file = config.parent / "predictions.csv"
    staged = sum(p.stat().st_size for p in (config.parent / "log").rglob("*.parquet"))
    write_section("log-file", "Prediction-log file staged beside the Parquet log", "\n".join([
        f"A CSV prediction-log file of {args.rows:,} predictions ({file.stat().st_size / 1e6:.0f} MB; its staged "
        f"Parquet copy {staged / 1e6:.0f} MB): the row count, span and daily drift counts the Drift page starts "
        "from, each in a fresh process; every row found the same rows and drift scores.", "",
        markdown_table(rows, header)]), args=args)


if __name__ == "__main__":
    main()
