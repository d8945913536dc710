"""Benchmark of the prediction log in an engine: ingestion, disk, and drift counted where the rows live.

Usage::

    python benchmarks/log_engine.py [--quick] [--rows 10000000] [--skip-spark] [--skip-postgres]
                                    [--skip-peers | --with-peers]
    python benchmarks/log_engine.py --large   # 100,000,000 predictions, the embedded engine only

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
  first in a process that counts every file (and keeps the counts beside it: what a view paid
  before the upkeep kept them), then in a fresh one that finds them kept (a dashboard restarted
  over a log it has seen);
* **the upkeep** — those counts deleted, the collector's upkeep (:meth:`monitoring.collector.Collector.upkeep`,
  the real run, its :func:`~monitoring.upkeep.keep_drift_tallies` against the profile the Drift
  page builds from the reference file) run again and again until every file of a past day is
  counted, as its bound per run leaves them (:data:`monitoring.production.UPKEEP_TALLY_ROWS`): the
  time of those runs, in seconds and seconds per million predictions, and the process's peak
  memory; then the Drift page's question in a fresh process after the upkeep (the first view,
  which counts no file);
* **in memory (today's path)** — every row read into pandas (what the prediction-log mirror
  holds), then :func:`monitoring.drift.compute_drift` (skipped above 20,000,000 rows);
* **pushed down (Spark local)** — the same aggregation on Spark in local mode (``--skip-spark``
  leaves it out; it needs Java);
* **pushed down (PostgreSQL)** — the same rows loaded into one table of a PostgreSQL server
  started for the run (Debian's, as the tests start it; ``--skip-postgres`` leaves it out), the
  same aggregation compiled to its SQL; its ingestion is both the bulk load (``COPY``) and one
  writer logging 100,000 predictions through the store (``[store] log = "store"``);
* **NannyML and Evidently** — the same question (daily drift of every feature against the
  20,000 reference rows) asked of the peers on the same rows, each in its own process with the
  interpreter of its own venv (:func:`benchmarks.peer_python`, pins in ``benchmarks/peers/``),
  run as :mod:`benchmarks.drift` runs them (its runner and :func:`benchmarks.drift.run_tool`):
  the process imports its library and reads the reference and the log's day files into pandas,
  then only the computation is timed (import and read times are given beside it). NannyML:
  ``UnivariateDriftCalculator(timestamp_column_name="timestamp", chunk_period="D",
  continuous_methods=["wasserstein"], categorical_methods=["jensen_shannon"])``, ``fit`` on the
  reference (given timestamps over the 10 days before the log, as a period chunker needs them) and
  ``calculate`` on the current rows, the log's ``ts`` as its timestamp column. Evidently: one
  ``Report([DataDriftPreset(num_method="wasserstein", cat_method="jensenshannon")])`` per day
  (its API has no windows). Each peer runs at the largest size it completes within 10 minutes of
  computation (``signal.alarm`` in the process) and 20 GB (``RLIMIT_AS`` of the process): every
  day first, then the first 15, 6, 3 and 1 days (5,000,000, 2,000,000, 1,000,000 and 333,334 of
  10,000,000 predictions); the table names the size it completed and why the larger ones did not.
  ``--skip-peers`` leaves them out (such a run writes ``var/bench/results-quick.md``).

Prints a table and writes the "log-engine" section of ``benchmarks/results.md``; ``--quick``
(100,000 rows, no Spark, no PostgreSQL, no peers unless ``--with-peers``) writes
``var/bench/results-quick.md`` instead.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import (  # noqa: E402
    PEER_PACKAGES,
    Size,
    markdown_table,
    parse_args,
    peer_python,
    peer_version,
    print_table,
    write_section,
)
from benchmarks.drift import _EPILOGUE, _LOAD, _PROLOGUE, run_tool  # noqa: E402  (the peers' runner, shared)
from monitoring.log_engines import DUCKDB_MEMORY_LIMIT  # noqa: E402

START = 1_764_547_200.0  # 2025-12-01 00:00 UTC
DAYS = 30
NUMERIC = 16
CATEGORICAL = 4
BATCH = 10_000
IN_MEMORY_LIMIT = 20_000_000
PEER_SECONDS = 600
"""A peer's computation must end within this (10 minutes) ..."""
PEER_BYTES = 20 * 1024**3
"""... and its process within this address space (20 GB), else a smaller size is tried."""
PEER_DAYS = (DAYS, 15, 6, 3, 1)
"""The sizes a peer is tried at, largest first: the first this many days of the log."""


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
    elif mode in ("duckdb", "duckdb-kept", "duckdb-upkept"):  # what the Drift page asks: the log's source
        from monitoring.parquet_log import ParquetPredictionLog
        from monitoring.production import ParquetMirror
        from monitoring.store import Store

        kept_before = _kept_files(root)
        store = Store(f"sqlite:///{Path(root).parent / 'store.db'}", log=f"duckdb:{root}")
        assert isinstance(store.predictions, ParquetPredictionLog)
        source = ParquetMirror(store.predictions, "bench")
        report = compute_drift_from_counts(profile, source.tallies(profile, window="day"))
        counted = _kept_files(root) - kept_before  # the files this view counted (and kept)
    elif mode == "upkeep":
        print(json.dumps(_upkeep(root, profile, began)))
        return
    else:
        engine = LogEngine(f"spark:local[2]?path={root}")
        table = engine.table("bench").table
        report = compute_drift_from_counts(profile, tally_windows(engine.connect(), table, profile, window="day"))
    seconds = time.perf_counter() - began
    drifted = sorted(set(report.closed.loc[report.closed["drifted"], "feature"]))
    print(json.dumps({"seconds": seconds, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "windows": report.n_windows, "drifted": drifted,
                      **({"counted": counted} if mode.startswith("duckdb") else {})}))


def _kept_files(root: str | Path) -> int:
    """Files whose day counts are kept beside the log (``<service>/tallies/<profile>/<file>.day.npz``)."""
    return len(list((Path(root) / "bench" / "tallies").glob("*/*.day.npz")))


def _upkeep(root: str, profile, began: float) -> dict:
    """The collector's upkeep run until every file of a past day is counted; its time and what it counted.

    The collector is built over the benchmark's log with a service whose reference is the one the
    profile was built from (``reference.parquet`` beside it), so the upkeep builds the Drift page's
    profile itself; the counts must be kept under ``profile``'s key, or the figure would be of
    nothing a page reads.
    """
    import resource

    from monitoring.collector import Collector
    from monitoring.config import parse_config
    from monitoring.production import tally_folder
    from monitoring.store import Store

    folder = Path(root).parent
    store = Store(f"sqlite:///{folder / 'store.db'}", log=f"duckdb:{root}")
    config = parse_config(f"""
[[services]]
name = "bench"
reference = "{folder / 'reference.parquet'}"
features = [{", ".join(f'"{name}"' for name in feature_kinds())}]
url = "http://127.0.0.1:9"
protocol = "rest"
""")
    collector = Collector(config, store)  # over this store (its config's [store] is the default: unused)
    started = time.perf_counter() - began
    runs, files, rows = 0, 0, 0
    upkeep_began = time.perf_counter()
    while True:
        done = collector.upkeep(now=START + (DAYS + 1) * 86_400.0)["tallies"]["bench"]
        runs, files, rows = runs + 1, files + len(done.files), rows + done.rows
        if not done.files or not done.left:
            break
    seconds = time.perf_counter() - upkeep_began
    kept = len(list(tally_folder(store.predictions, "bench", profile).glob("*.day.npz")))
    if kept != files or done.left:
        raise SystemExit(f"the upkeep kept {kept} of {files} files under the page's profile ({done.left} left)")
    return {"seconds": seconds, "start_s": started, "runs": runs, "files": files, "rows": rows,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


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


# -- the peers: NannyML and Evidently, each in its own venv's interpreter -----------------------------

# benchmarks.drift's runner (argv: data folder, repeat, kinds; its _LOAD reads data/reference.parquet and
# data/current.parquet, then times compute()), with the limits of a size: argv 4 to 6.
_GUARD = """
import signal
import numpy as np
LIMIT_BYTES, LIMIT_SECONDS, DAY0 = int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
resource.setrlimit(resource.RLIMIT_AS, (LIMIT_BYTES, LIMIT_BYTES))  # 20 GB: past it, allocations fail
def timed(compute):
    def limited():
        signal.alarm(LIMIT_SECONDS)  # no handler: SIGALRM ends the process, even inside C code
        result = compute()
        signal.alarm(0)
        return result
    return limited
"""

NANNYML = _PROLOGUE + _GUARD + """
import nannyml as nml
import pandas as pd
@timed
def compute():
    # A period chunker needs a datetime column: the log's ts (Unix seconds) as one; the reference,
    # which has no time of its own, spread over the 10 days before the log's first.
    current["timestamp"] = pd.to_datetime(current["ts"], unit="s")
    spread = DAY0 - 10 * 86_400 + np.arange(len(reference)) * (10 * 86_400 / len(reference))
    reference["timestamp"] = pd.to_datetime(spread, unit="s")
    calculator = nml.UnivariateDriftCalculator(
        column_names=numeric + categorical, treat_as_categorical=categorical, timestamp_column_name="timestamp",
        chunk_period="D", continuous_methods=["wasserstein"], categorical_methods=["jensen_shannon"])
    calculator.fit(reference)
    return calculator.calculate(current)
def check(result):
    frame = result.filter(period="analysis").to_df()
    alerts = [c for c in frame.columns if c[-1] == "alert"]
    return {"windows": len(frame), "drifted": sorted({c[0] for c in alerts if frame[c].any()})}
""" + _LOAD + _EPILOGUE

EVIDENTLY = _PROLOGUE + _GUARD + """
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset
@timed
def compute():
    columns = numeric + categorical
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    baseline = Dataset.from_pandas(reference[columns], data_definition=definition)
    day = ((current["ts"].to_numpy() - DAY0) // 86_400).astype(int)
    snapshots = []
    for d in np.unique(day):  # one report per daily window: Evidently has no windows of its own
        report = Report([DataDriftPreset(num_method="wasserstein", cat_method="jensenshannon")])
        window = Dataset.from_pandas(current.loc[day == d, columns], data_definition=definition)
        snapshots.append(report.run(window, baseline))
    return snapshots
def check(snapshots):
    drifted = set()
    for snapshot in snapshots:
        for metric in snapshot.dict()["metrics"]:
            config = metric.get("config", {})
            if config.get("type", "").endswith("ValueDrift") and metric["value"] >= config["threshold"]:
                drifted.add(config["column"])
    return {"windows": len(snapshots), "drifted": sorted(drifted)}
""" + _LOAD + _EPILOGUE

PEERS = {"nannyml": (NANNYML, {"NML_DISABLE_USAGE_LOGGING": "1"}, '`UnivariateDriftCalculator`, chunk_period="D"'),
         "evidently": (EVIDENTLY, {"DO_NOT_TRACK": "1"}, "`DataDriftPreset`, one report per day")}
_MEMORY_SIGNS = ("memoryerror", "unable to allocate", "bad_alloc", "cannot allocate memory", "out of memory",
                 "outofmemory")
"""How a failed allocation under ``RLIMIT_AS`` shows in a process's last lines (lower case)."""


def peer_data(scratch: Path, root: Path, days: int) -> tuple[Path, int]:
    """The folder a peer reads: the reference and the log's files of its first ``days`` days.

    Returns the folder (``reference.parquet``, and ``current.parquet``, a directory of links to the
    day files, which pandas reads as one data set) and the predictions in it.
    """
    import pyarrow.parquet as pq

    from monitoring.partitions import PartitionedLog

    folder = scratch / f"peers-{days}d"
    current = folder / "current.parquet"
    current.mkdir(parents=True, exist_ok=True)
    reference().to_parquet(folder / "reference.parquet")
    files = PartitionedLog(root).snapshot("bench", "predictions", until=START + days * 86_400.0).files
    for number, path in enumerate(files):
        (current / f"{number:04d}.parquet").symlink_to(path)
    return folder, sum(pq.read_metadata(path).num_rows for path in files)


def _why(exc: BaseException) -> str:
    """A failed peer run in a few words: over 10 min, over 20 GB, or its last line."""
    text = str(exc)
    code = re.match(r"exit code (-?\d+): ", text)  # benchmarks.drift.run_tool's message
    if code and int(code.group(1)) == -signal.SIGALRM:
        return f"over {PEER_SECONDS / 60:g} min"
    if any(sign in text.lower() for sign in _MEMORY_SIGNS):
        return f"over {PEER_BYTES / 1024**3:g} GB"
    if isinstance(exc, subprocess.TimeoutExpired):
        return f"no result within {exc.timeout:.0f} s"
    last = (text[code.end() if code else 0:].strip().splitlines() or ["no output"])[-1]
    return f"failed ({'exit code ' + code.group(1) + ': ' if code else ''}{last[:160]})"


def run_peer(name: str, scratch: Path, root: Path, rows: int) -> dict:
    """Peer ``name`` at the largest size it completes within the limits (every day first, then fewer).

    Returns the run's figures with ``version``, ``rows`` and ``days`` (the size completed) and
    ``larger`` (each larger size tried and why it did not complete); or ``{"error": ...}`` when it
    could not be installed or run at any size.
    """
    code, env, _ = PEERS[name]
    try:
        version, python = peer_version(name), peer_python(name)
    except Exception as exc:  # a peer that cannot be installed or run is reported, not faked
        return {"error": f"not run: {type(exc).__name__}: {str(exc)[-300:]}"}
    larger: list[str] = []
    for days in PEER_DAYS:
        folder, size = peer_data(scratch, root, days)
        began = time.perf_counter()
        try:
            result = run_tool(python, code, folder, 1, feature_kinds(), str(PEER_BYTES), str(PEER_SECONDS),
                              str(START), env=env)
        except Exception as exc:
            why = _why(exc)
            print(f"{version}, {size:,} predictions ({days} days): {why} "
                  f"({time.perf_counter() - began:.0f} s in all)", flush=True)
            larger.append(f"{size:,}: {why}")
            continue
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        print(f"{version}, {size:,} predictions ({days} days): {result['times_s'][0]:.1f} s", flush=True)
        return {**result, "version": version, "rows": size, "days": days, "larger": larger}
    return {"error": "; ".join(larger), "version": version}


def _peer_row(name: str, result: dict) -> tuple[str, str, str, str]:
    """The table row of a peer: its size in the title, why larger sizes did not complete."""
    title = f"drift, {result.get('version', PEER_PACKAGES[name])} {PEERS[name][2]}"
    if "times_s" not in result:
        return (title, "not run" if result["error"].startswith("not run") else "failed at every size", "",
                result["error"])
    if result["larger"]:
        title += f", {result['rows']:,} predictions, first {result['days']} days ({'; '.join(result['larger'])})"
    else:
        title += f", {result['rows']:,} predictions (all {result['days']} days)"
    check = result["check"]
    return (title, f"{result['times_s'][0]:.2f} s (computation)", f"{result['peak_kb'] / 1024:,.0f} MB",
            f"+ {result['import_s']:.1f} s import, {result['load_s']:.1f} s reading the files; "
            f"{check['windows']} windows; drifted: {', '.join(check['drifted']) or 'none'}")


TITLES = {"duckdb": "drift, pushed down (DuckDB), first count of every file by the view (no counts kept yet)",
          "duckdb-kept": "drift, pushed down (DuckDB), fresh process, counts kept per file (by that view)",
          "upkeep": "the collector's upkeep counting every file of a past day (no page view waits for it)",
          "duckdb-upkept": "drift, pushed down (DuckDB), fresh process, after the upkeep",
          "in-memory": "drift, every row in pandas (today)",
          "spark": "drift, pushed down (Spark local[2])", "postgresql": "drift, pushed down (PostgreSQL 15)"}
"""The table's name of each measured mode."""


def table_rows(ingestion: dict, results: dict, *, postgres_load: dict | None = None) -> list[tuple[str, ...]]:
    """The table's rows: ingestion (and PostgreSQL's load when measured), then each mode's or peer's drift."""
    from monitoring.production import UPKEEP_TALLY_ROWS  # here: a child's cold start imports the engine itself

    rows = [("ingestion, one writer", f"{ingestion['rows_per_second']:,.0f} predictions/s", "",
             f"{ingestion['bytes_per_million'] / 1e6:,.1f} MB per million after compaction "
             f"({ingestion['compact_seconds']:.1f} s to compact)")]
    if postgres_load is not None:
        rows.append(("ingestion, PostgreSQL", f"{postgres_load['copy_rate']:,.0f} predictions/s (COPY)", "",
                     f"one writer through the store: {postgres_load['writer_rate']:,.0f} predictions/s"))
    for mode, result in results.items():
        if mode in PEERS:
            rows.append(_peer_row(mode, result))
        elif "error" in result:
            rows.append((TITLES[mode], "failed", "", result["error"]))
        elif mode == "upkeep":
            runs = f"{result['runs']} run{'s' * (result['runs'] != 1)}"
            rows.append((TITLES[mode], f"{result['seconds']:.2f} s ({result['seconds'] / result['rows'] * 1e6:.2f} s "
                         "per million predictions)", f"{result['peak_mb']:,.0f} MB",
                         f"{runs} of at most {UPKEEP_TALLY_ROWS:,} predictions (each run's first file whatever its "
                         f"size): {result['files']} files, {result['rows']:,} predictions, day and week counts; "
                         f"the process's start {result['start_s']:.1f} s besides"))
        else:
            counted = f"; {result['counted']} files counted by the view" if "counted" in result else ""
            rows.append((TITLES[mode], f"{result['seconds']:.2f} s", f"{result['peak_mb']:,.0f} MB",
                         f"{result['windows']} windows; drifted: {', '.join(result['drifted']) or 'none'}{counted}"))
    return rows


KEPT_MODES = ("duckdb", "duckdb-kept", "upkeep", "duckdb-upkept")
"""The DuckDB figures, in this order: a view's first count, a fresh view finding it kept, then (the counts
deleted) the upkeep counting them, and a fresh view after it."""


def measure_kept(root: Path, profile_path: Path) -> dict:
    """The :data:`KEPT_MODES`, each in a fresh process; ``reference.parquet`` is written beside ``profile_path``."""
    reference().to_parquet(profile_path.parent / "reference.parquet")
    results = {}
    for mode in KEPT_MODES:
        if mode == "upkeep":  # what the first view kept is deleted: the upkeep counts every file again
            shutil.rmtree(root / "bench" / "tallies", ignore_errors=True)
        results[mode] = measure(mode, root, profile_path)
    return results


LARGE_ROWS = 100_000_000
"""Rows of ``--large``: issue 12's second size (Drift ≤ 15 s cold, ≤ 2 GB, on the embedded engine)."""


def large(args) -> None:
    """``--large``: ingestion, disk and both DuckDB drift figures at :data:`LARGE_ROWS`, in the ``log-engine-large``
    section (a full run of its own: the in-memory path, Spark, PostgreSQL and the peers are measured at
    10,000,000 in the ``log-engine`` section)."""
    import argparse
    import pickle

    from monitoring.drift import build_profile
    from monitoring.production import UPKEEP_TALLY_ROWS

    rows_wanted = args.rows if args.quick else LARGE_ROWS
    with tempfile.TemporaryDirectory(prefix="vantage-log-bench-large-") as scratch:
        root = Path(scratch) / "log"
        ingestion = generate(root, rows_wanted)
        profile_path = Path(scratch) / "profile.pkl"
        with open(profile_path, "wb") as handle:
            pickle.dump(build_profile(reference(), feature_kinds()), handle)
        results = measure_kept(root, profile_path)
    rows = table_rows(ingestion, results)
    header = ("what", f"time ({rows_wanted:,} predictions)", "peak memory", "notes")
    print_table(rows, header)
    # a large run is a full run of its own section (its size is not the 10,000,000 of the main one)
    written = argparse.Namespace(**{**vars(args), "full_sizes": not args.quick, "has_peers": False})
    write_section("log-engine-large", "Prediction log in an engine: 100,000,000 predictions", "\n".join([
        f"The same generated log as above at {rows_wanted:,} predictions over {DAYS} days, on the embedded "
        f"engine only (Parquet + DuckDB, bounded to {DUCKDB_MEMORY_LIMIT}); each figure a fresh process. "
        "Target (issue 12): Drift ≤ 15 s cold, ≤ 2 GB.", "",
        "A view that finds no counts kept counts every file itself (the first drift row: what the first view "
        "paid before the upkeep did it) and keeps them; a fresh process then reads them (the second). The "
        "collector's upkeep now counts and keeps every file of a past day beforehand, newest first and a "
        f"bounded share per run (at most {UPKEEP_TALLY_ROWS:,} predictions, the next run a minute later going "
        "on); its row is those runs back to back over the whole log, the first view's counts deleted, against "
        "the profile the Drift page builds from the reference file. The last row is the first view after it: "
        "no page view pays a count but for the files a range cuts through (today's).", "",
        markdown_table(rows, header)]), args=written)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(*sys.argv[2:5])
        return
    def flags(parser) -> None:
        parser.add_argument("--skip-spark", action="store_true", help="leave Spark local mode out")
        parser.add_argument("--skip-postgres", action="store_true", help="leave PostgreSQL out")
        parser.add_argument("--large", action="store_true",
                            help=f"{LARGE_ROWS:,} predictions, the embedded engine only (its own section)")

    args = parse_args(__doc__, {"rows": Size(10_000_000, 100_000, "logged predictions")}, peers=True, extra=flags)
    if args.large:
        large(args)
        return
    import pickle

    from monitoring.drift import build_profile

    with tempfile.TemporaryDirectory(prefix="vantage-log-bench-") as scratch:
        root = Path(scratch) / "log"
        ingestion = generate(root, args.rows)
        profile_path = Path(scratch) / "profile.pkl"
        with open(profile_path, "wb") as handle:
            pickle.dump(build_profile(reference(), feature_kinds()), handle)
        modes = []
        if args.rows <= IN_MEMORY_LIMIT:
            modes.append("in-memory")
        if not args.quick and not args.skip_spark and shutil.which("java"):
            modes.append("spark")
        results = {**measure_kept(root, profile_path), **{mode: measure(mode, root, profile_path) for mode in modes}}
        postgres_load = None
        if not args.quick and not args.skip_postgres:
            from tests.fixtures_postgres import SUPERUSER, postgres_bin_dir, postgres_server

            if postgres_bin_dir() is not None:
                with postgres_server() as server:
                    postgres_load = load_postgres(server, root)
                    url = f"postgresql://{SUPERUSER}@127.0.0.1:{server.port}/postgres"
                    results["postgresql"] = measure(url, root, profile_path)
        if args.peers:
            for name in PEERS:
                results[name] = run_peer(name, Path(scratch), root, args.rows)
    rows = table_rows(ingestion, results, postgres_load=postgres_load)
    peer_versions = [results[name]["version"] for name in PEERS if "version" in results.get(name, {})]
    header = ("what", f"time ({args.rows:,} predictions)", "peak memory", "notes")
    print_table(rows, header)
    write_section("log-engine", "Prediction log in an engine: ingestion, disk, drift pushed down", "\n".join([
        f"{args.rows:,} logged predictions over {DAYS} days ({NUMERIC} numeric and {CATEGORICAL} categorical "
        "features), generated straight into Parquet partitions. Each drift figure is a fresh process: "
        "start, read, count, score (daily windows). The NannyML and Evidently rows ask the same question "
        "(daily drift of every feature against the 20,000 reference rows; Wasserstein for numeric, "
        "Jensen–Shannon for categorical features) of the same rows, each in its own process with its own venv "
        "(`benchmarks/peers/`): their time is the computation only, after the import and the reading of the "
        "reference and the log's day files into pandas (both given in the notes; add them to compare with the "
        "cold rows above), their peak memory the process's. NannyML's `UnivariateDriftCalculator` chunks by day "
        "(`chunk_period=\"D\"` on the log's `ts`), fitted on the reference; Evidently runs one "
        "`Report([DataDriftPreset()])` per day. Each peer runs at the largest size it completes within "
        f"{PEER_SECONDS / 60:g} minutes of computation and {PEER_BYTES / 1024**3:g} GB of address space "
        "(every day, then the first 15, 6, 3, 1 days); its row names that size and why larger ones did not "
        "complete. Their drifted features are their own verdicts (NannyML's alert thresholds from the "
        "reference's chunks, Evidently's 0.1 distance threshold), shown, not judged.", "",
        markdown_table(rows, header)]), args=args, peers=peer_versions)


if __name__ == "__main__":
    main()
