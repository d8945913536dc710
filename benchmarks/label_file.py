"""Label-file join: the log's engine joining a staged label file against the join in memory, at one log size.

Builds (once, under ``var/bench/``) the demo service's history straight into the Parquet log
(``--rows`` predictions over 28 days, compacted as the collector's upkeep leaves it) and a CSV
label file for every other prediction (ISO 8601 arrival times three days later, five labels that
are not numbers), as ``[services.labels]`` names one. Then, each in a fresh process at one fixed
"now", the label join the Performance and Overview pages start from:

* **in memory** (the baseline, what a label file got before): the log's id, time, prediction and
  score read into the process and joined there (:func:`monitoring.engine_mirror.join_in_memory`);
* **engine, first**: the file typed and staged beside the log (:mod:`monitoring.staged_labels`),
  then joined by DuckDB; **engine, staged**: the same with the staged copy already there;
* **kept join**: what the collector's upkeep makes for the pages (:meth:`EngineMirror.keep_labels`
  with the Overview's summary), which returns counts only.

Each row gives the seconds, the process's own peak memory and the ratio to the baseline; every
row must find the same labelled predictions and label counts. A full run replaces the
``label-file`` section of ``benchmarks/results.md``.
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
from benchmarks.log_pages import own_peak_mb  # noqa: E402
from benchmarks.pages import BENCH_DIR, DAY, _generate  # noqa: E402

CHUNK = 500_000
MODES = {"memory": "in memory (the log's rows read; baseline)", "first": "engine, first (file staged, then joined)",
         "staged": "engine, staged copy there", "kept": "kept join with the Overview's summary (the upkeep's)"}


def build(rows: int) -> tuple[Path, float]:
    """The log and label file of ``rows`` predictions, and the "now" every mode joins at; reused when built."""
    folder = BENCH_DIR / f"label-file-{rows}"
    config, done = folder / "vantage.toml", folder / "built.json"
    if done.exists():
        return config, float(json.loads(done.read_text())["now"])
    import shutil

    import pandas as pd

    from demo.data import FEATURES
    from demo.model import load_or_train
    from demo.runtime import offline_config_text
    from monitoring.store import Store

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    model = load_or_train(ROOT / "var" / "demo")
    log = f"duckdb:{folder / 'log'}"
    store = Store(f"sqlite:///{folder / 'store.db'}", log=log)
    store.prediction_table("credit", dict(FEATURES))
    now = time.time()
    generated = _generate(model, rows, now - 28 * DAY)
    for begin in range(0, rows, CHUNK):
        store.log_predictions("credit", generated.iloc[begin:begin + CHUNK])
    for _ in range(2):  # merges each day's files; the next run deletes what it merged, as the upkeep does
        store.predictions.maintain(now=now)
    store.dispose()
    half = generated.iloc[::2]
    arrived = pd.to_datetime(half["ts"] + 3 * DAY, unit="s", utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    outcome = half["default"].astype(int).astype(object)
    outcome.iloc[:5] = "n/a"
    pd.DataFrame({"order_id": half["id"], "arrived_at": arrived, "outcome": outcome}).to_csv(
        folder / "labels.csv", index=False)
    config.write_text(offline_config_text(store_path=folder / "store.db", model=model, extra=f"""
[services.labels]
path = "{folder / 'labels.csv'}"
id = "order_id"
label = "outcome"
ts = "arrived_at"
""").replace("[store]\n", f'[store]\nlog = "{log}"\n', 1))
    done.write_text(json.dumps({"rows": rows, "now": now}))
    return config, now


def child(mode: str, config_path: str, now: float) -> None:
    """One mode in this process: prints its seconds, peak memory, labelled predictions and label counts as JSON."""
    from monitoring.config import load_config
    from monitoring.engine_mirror import join_in_memory
    from monitoring.labels import label_source
    from monitoring.production import production_source
    from monitoring.store import Store

    config = load_config(config_path)
    store = Store.from_config(config)
    service = config.services[0]
    mirror, labels = production_source(store, service), label_source(store, service)
    if mode == "staged":
        mirror.labels_table(labels)  # the staged copy is there before the clock starts
    started = time.perf_counter()
    if mode == "memory":
        joined = join_in_memory(mirror, labels, now=now, task="auto")
    elif mode == "kept":
        joined = mirror.keep_labels(labels, now=now, judged_days=service.performance.judged_days)
    else:
        joined = mirror.join_labels(labels, now=now)
    seconds = time.perf_counter() - started
    quality = joined.quality
    print(json.dumps({"seconds": seconds, "peak_mb": own_peak_mb(),
                      "labelled": joined.n_labelled, "counts": [quality.received, quality.used, quality.invalid,
                                                                quality.pending]}))


def clear_staged(config: Path) -> None:
    """Delete the staged copies and kept joins, so that "first" stages the file again."""
    import shutil

    for name in ("label-files", "labelled"):
        shutil.rmtree(config.parent / "log" / "credit" / name, ignore_errors=True)


def main() -> None:
    """Build, run each mode in a fresh process, print the table and write the results section."""
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], float(sys.argv[4]))
        return
    args = parse_args(__doc__, {"rows": Size(4_000_000, 100_000, "logged predictions (labels for half)")})
    config, now = build(args.rows)
    def fresh(mode: str) -> None:
        if mode == "first":
            clear_staged(config)

    results = child_results(__file__, MODES, str(config), repr(now), before=fresh, timeout=1_200)
    expected = (results["memory"]["labelled"], results["memory"]["counts"])
    for mode, found in results.items():
        if (found["labelled"], found["counts"]) != expected:
            raise SystemExit(f"{mode} found {found['labelled']} labelled and counts {found['counts']}, "
                             f"the join in memory {expected[0]} and {expected[1]}")
    header = ("join", *RATIO_HEADER)
    rows = ratio_rows(MODES, results, baseline="memory")
    print_table(rows, header)
    labels_file = config.parent / "labels.csv"
    staged = sum(p.stat().st_size for p in (config.parent / "log" / "credit" / "label-files").glob("*.parquet"))
    write_section("label-file", "Label file joined in the log's engine", "\n".join([
        f"{args.rows:,} predictions in the Parquet log, a CSV label file of {args.rows // 2:,} labels "
        f"({labels_file.stat().st_size / 1e6:.0f} MB; its staged Parquet copy {staged / 1e6:.1f} MB). Each join in "
        f"a fresh process at one fixed time; every row found the same {expected[0]:,} labelled predictions and "
        "label counts.", "", markdown_table(rows, header)]), args=args)


if __name__ == "__main__":
    main()
