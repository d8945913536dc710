"""Benchmark of the prediction log in an engine: ingestion, disk, and drift counted where the rows live.

Usage::

    python benchmarks/log_engine.py [--quick] [--rows 10000000] [--skip-spark]

Data (seeded) is generated straight into the log, not through a service: ``--rows`` logged
predictions spread over 30 days, 16 numeric features (normal, log-normal, gamma, integer
counts) and 4 categorical ones, a prediction; from day 20 on three numeric features shift. A
reference of 20,000 rows gives the drift profile.

Measured, each in a fresh process (so "cold" includes the engine's start and its reading of
the files; peak memory is that process's ``ru_maxrss``):

* **ingestion** — predictions per second one writer appends in batches of 10,000 rows
  (:class:`monitoring.partitions.PartitionedLog`), and the disk size per million predictions
  after compaction;
* **pushed down (DuckDB)** — what the Drift page asks of the log's source
  (:class:`monitoring.production.ParquetMirror`): daily counts of every file
  (:func:`monitoring.log_queries.tally_windows`), then :func:`monitoring.drift.compute_drift_from_counts`;
  first in a process that counts every file (and keeps the counts beside it), then in a fresh
  one that finds them kept (a dashboard restarted over a log it has seen);
* **in memory (today's path)** — every row read into pandas (what the prediction-log mirror
  holds), then :func:`monitoring.drift.compute_drift` (skipped above 20,000,000 rows);
* **pushed down (Spark local)** — the same aggregation on Spark in local mode (``--skip-spark``
  leaves it out; it needs Java);
* **pushed down (PostgreSQL)** — the same rows loaded into one table of a PostgreSQL server
  started for the run (Debian's, as the tests start it; ``--skip-postgres`` leaves it out), the
  same aggregation compiled to its SQL; its ingestion is both the bulk load (``COPY``) and one
  writer logging 100,000 predictions through the store (``[store] log = "store"``).

Prints a table and writes the "log-engine" section of ``benchmarks/results.md``; ``--quick``
(100,000 rows, no Spark) writes ``var/bench/results-quick.md`` instead.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import Size, markdown_table, parse_args, print_table, write_section  # noqa: E402

START = 1_764_547_200.0  # 2025-12-01 00:00 UTC
DAYS = 30
NUMERIC = 16
CATEGORICAL = 4
BATCH = 10_000
IN_MEMORY_LIMIT = 20_000_000


def _features(rng: np.random.Generator, n: int, shift: np.ndarray | float = 0.0) -> dict[str, np.ndarray]:
    columns: dict[str, np.ndarray] = {}
    for i in range(NUMERIC):
        kind = i % 4
        moved = shift if i < 3 else 0.0
        if kind == 0:
            columns[f"n{i}"] = rng.normal(0.0, 1.0, n) + moved
        elif kind == 1:
            columns[f"n{i}"] = rng.lognormal(3.0, 0.5, n) * (1 + moved)
        elif kind == 2:
            columns[f"n{i}"] = rng.gamma(2.0, 2.0, n)
        else:
            columns[f"n{i}"] = rng.poisson(4.0, n).astype(float)
    for i in range(CATEGORICAL):
        levels = np.array([f"level{j}" for j in range(3 + 3 * i)])
        columns[f"c{i}"] = levels[rng.integers(0, len(levels), n)]
    return columns


def reference(seed: int = 1) -> pd.DataFrame:
    """The reference rows the profile is built from."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(_features(rng, 20_000))
    frame["prediction"] = rng.integers(0, 2, len(frame))
    return frame


def feature_kinds() -> dict[str, str]:
    """Feature name → kind."""
    return {**{f"n{i}": "numeric" for i in range(NUMERIC)}, **{f"c{i}": "categorical" for i in range(CATEGORICAL)}}


def generate(root: Path, rows: int) -> dict:
    """Append ``rows`` predictions to a fresh log under ``root``; returns the ingestion figures."""
    from monitoring.partitions import PartitionedLog

    log = PartitionedLog(root)
    rng = np.random.default_rng(2)
    spacing = DAYS * 86_400.0 / rows
    elapsed = 0.0
    for start in range(0, rows, BATCH):
        n = min(BATCH, rows - start)
        ts = START + (start + np.arange(n)) * spacing
        shift = np.where(ts >= START + 20 * 86_400.0, 0.3, 0.0)
        frame = pd.DataFrame({"ts": ts, "id": np.char.add("p", np.arange(start, start + n).astype(str)),
                              **_features(rng, n, shift), "prediction": rng.integers(0, 2, n)})
        began = time.perf_counter()
        log.append("bench", "predictions", frame)
        elapsed += time.perf_counter() - began
    began = time.perf_counter()
    log.compact("bench", "predictions", min_files=2)
    compact_seconds = time.perf_counter() - began
    log.compact("bench", "predictions", min_files=2)  # the next upkeep run deletes the merged files' inputs
    (root / "bench" / "features.json").write_text(json.dumps(feature_kinds()))  # as the store's log declares it
    return {"rows_per_second": rows / elapsed, "compact_seconds": compact_seconds,
            "bytes_per_million": log.total_bytes("bench") / rows * 1_000_000}


def _child(mode: str, root: str, profile_path: str) -> None:
    """Run one measurement in this (fresh) process and print its figures as JSON."""
    import resource
    import warnings

    began = time.perf_counter()
    import pickle

    from monitoring.drift import compute_drift, compute_drift_from_counts
    from monitoring.log_engines import LogEngine
    from monitoring.log_queries import tally_windows

    with open(profile_path, "rb") as handle:
        profile = pickle.load(handle)
    warnings.simplefilter("ignore")
    if mode == "in-memory":
        from monitoring.partitions import PartitionedLog

        files = PartitionedLog(root).snapshot("bench", "predictions").files
        frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
        report = compute_drift(profile, frame, window="day")
    elif mode.startswith("postgresql://"):
        import ibis

        backend = ibis.connect(mode.replace("postgresql://", "postgres://", 1))
        report = compute_drift_from_counts(profile, tally_windows(backend, backend.table("bench"), profile,
                                                                  window="day"))
    elif mode in ("duckdb", "duckdb-kept"):  # what the Drift page asks: the log's source, its per-file counts
        from monitoring.parquet_log import ParquetPredictionLog
        from monitoring.production import ParquetMirror
        from monitoring.store import Store

        store = Store(f"sqlite:///{Path(root).parent / 'store.db'}", log=f"duckdb:{root}")
        assert isinstance(store.predictions, ParquetPredictionLog)
        source = ParquetMirror(store.predictions, "bench")
        report = compute_drift_from_counts(profile, source.tallies(profile, window="day"))
    else:
        engine = LogEngine(f"spark:local[2]?path={root}")
        table = engine.table("bench").table
        report = compute_drift_from_counts(profile, tally_windows(engine.connect(), table, profile, window="day"))
    seconds = time.perf_counter() - began
    drifted = sorted(set(report.closed.loc[report.closed["drifted"], "feature"]))
    print(json.dumps({"seconds": seconds, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "windows": report.n_windows, "drifted": drifted}))


def load_postgres(server, root: Path) -> dict:
    """Bulk-load the log's files into table ``bench`` with COPY; then one writer through the store."""
    import io

    import psycopg
    import pyarrow.parquet as pq

    from monitoring.partitions import PartitionedLog
    from monitoring.store import Store
    from tests.fixtures_postgres import SUPERUSER

    files = PartitionedLog(root).snapshot("bench", "predictions").files
    columns = pq.read_schema(files[0]).names
    kinds = {name: ("text" if name == "id" or name.startswith("c") else "double precision") for name in columns}
    began = time.perf_counter()
    rows = 0
    with psycopg.connect(host="127.0.0.1", port=server.port, user=SUPERUSER, dbname="postgres",
                         autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench")
        conn.execute("CREATE TABLE bench (" + ", ".join(f'"{n}" {k}' for n, k in kinds.items()) + ")")
        for path in files:
            frame = pq.read_table(path).to_pandas()
            buffer = io.StringIO()
            frame.to_csv(buffer, index=False, header=False)
            with conn.cursor().copy(f"COPY bench ({', '.join(chr(34) + n + chr(34) for n in columns)}) "
                                    "FROM STDIN WITH (FORMAT csv)") as copy:
                copy.write(buffer.getvalue())
            rows += len(frame)
        conn.execute("ANALYZE bench")
    copy_rate = rows / (time.perf_counter() - began)
    store = Store(server.url(), log="store")
    sample = pq.read_table(files[0]).to_pandas().head(100_000)
    features = {n: ("categorical" if n.startswith("c") else "numeric") for n in columns
                if n not in ("ts", "id", "prediction")}
    store.prediction_table("writer", features)
    began = time.perf_counter()
    for begin in range(0, len(sample), BATCH):
        store.log_predictions("writer", sample.iloc[begin:begin + BATCH])
    writer_rate = len(sample) / (time.perf_counter() - began)
    store.dispose()
    return {"copy_rate": copy_rate, "writer_rate": writer_rate}


def measure(mode: str, root: Path, profile_path: Path) -> dict:
    """One measurement in a fresh interpreter."""
    out = subprocess.run([sys.executable, __file__, "--child", mode, str(root), str(profile_path)],
                         capture_output=True, text=True, timeout=1800, cwd=ROOT)
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(*sys.argv[2:5])
        return
    def flags(parser) -> None:
        parser.add_argument("--skip-spark", action="store_true", help="leave Spark local mode out")
        parser.add_argument("--skip-postgres", action="store_true", help="leave PostgreSQL out")

    args = parse_args(__doc__, {"rows": Size(10_000_000, 100_000, "logged predictions")}, extra=flags)
    import pickle

    from monitoring.drift import build_profile

    with tempfile.TemporaryDirectory(prefix="vantage-log-bench-") as scratch:
        root = Path(scratch) / "log"
        ingestion = generate(root, args.rows)
        profile_path = Path(scratch) / "profile.pkl"
        with open(profile_path, "wb") as handle:
            pickle.dump(build_profile(reference(), feature_kinds()), handle)
        modes = ["duckdb", "duckdb-kept"]
        if args.rows <= IN_MEMORY_LIMIT:
            modes.append("in-memory")
        if not args.quick and not args.skip_spark and shutil.which("java"):
            modes.append("spark")
        results = {mode: measure(mode, root, profile_path) for mode in modes}
        postgres_load = None
        if not args.quick and not args.skip_postgres:
            from tests.fixtures_postgres import SUPERUSER, postgres_bin_dir, postgres_server

            if postgres_bin_dir() is not None:
                with postgres_server() as server:
                    postgres_load = load_postgres(server, root)
                    url = f"postgresql://{SUPERUSER}@127.0.0.1:{server.port}/postgres"
                    results["postgresql"] = measure(url, root, profile_path)
    rows = [("ingestion, one writer", f"{ingestion['rows_per_second']:,.0f} predictions/s", "",
             f"{ingestion['bytes_per_million'] / 1e6:,.1f} MB per million after compaction "
             f"({ingestion['compact_seconds']:.1f} s to compact)")]
    if postgres_load is not None:
        rows.append(("ingestion, PostgreSQL", f"{postgres_load['copy_rate']:,.0f} predictions/s (COPY)", "",
                     f"one writer through the store: {postgres_load['writer_rate']:,.0f} predictions/s"))
    titles = {"duckdb": "drift, pushed down (DuckDB), first count of every file",
              "duckdb-kept": "drift, pushed down (DuckDB), fresh process, counts kept per file",
              "in-memory": "drift, every row in pandas (today)",
              "spark": "drift, pushed down (Spark local[2])", "postgresql": "drift, pushed down (PostgreSQL 15)"}
    for mode, result in results.items():
        if "error" in result:
            rows.append((titles[mode], "failed", "", result["error"]))
            continue
        rows.append((titles[mode], f"{result['seconds']:.2f} s", f"{result['peak_mb']:,.0f} MB",
                     f"{result['windows']} windows; drifted: {', '.join(result['drifted']) or 'none'}"))
    header = ("what", f"time ({args.rows:,} predictions)", "peak memory", "notes")
    print_table(rows, header)
    write_section("log-engine", "Prediction log in an engine: ingestion, disk, drift pushed down", "\n".join([
        f"{args.rows:,} logged predictions over {DAYS} days ({NUMERIC} numeric and {CATEGORICAL} categorical "
        "features), generated straight into Parquet partitions. Each drift figure is a fresh process: "
        "start, read, count, score (daily windows).", "", markdown_table(rows, header)]), args=args)


if __name__ == "__main__":
    main()
