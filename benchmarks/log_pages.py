"""The data pages with a large prediction log: Parquet + DuckDB (the default), PostgreSQL's tables, SQLite's.

Usage::

    python benchmarks/log_pages.py [--quick] [--rows 10000000] [--store-rows 1000000]

Builds (once, under ``var/bench/``) the demo service's history generated straight into each
engine, not through the service: ``--rows`` logged predictions over 28 days in the Parquet
log (compacted, one file per day, as the collector's upkeep leaves it), the same ``--rows``
in a PostgreSQL store's own tables (``log = "store"``, loaded with COPY into a server the run
starts, Debian's; counted by the server, :mod:`monitoring.store_log`) and ``--store-rows`` in
a SQLite store's own tables (counted by SQLite, :mod:`monitoring.sqlite_engine`; before, the
whole log was read into memory); labels for every other prediction, 3 days later (beside the
Parquet log, joined there; or in the store's table, joined by PostgreSQL or SQLite). Then, for each engine
and each page (Drift, the Overview, Performance, Segments), a fresh process (a fresh server)
opens the dashboard through Streamlit's AppTest on that page: its first view (every cache
cleared; before it, the collector's upkeep has run as it does every minute, counting and
keeping the drift counts of each past day and joining the labels where they are every two
minutes, which the first view after a restart reads) and the median of three warm views,
with the largest of the processes' own peak memory.

Targets (issue 12): with 10,000,000 predictions and 5,000,000 labels on the embedded engine,
Drift and Overview each ≤ 2 s on first view, ≤ 0.3 s warm, peak memory ≤ 1 GB.

``--quick`` uses 20,000 and 20,000 rows. Prints a table and writes the ``log-pages`` section of
``benchmarks/results.md`` (a quick run: ``var/bench/results-quick.md``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from benchmarks import Size, markdown_table, parse_args, print_table, write_section  # noqa: E402
from benchmarks.pages import BENCH_DIR, DAY, _generate, add_labels, render_times  # noqa: E402
from demo.data import FEATURES  # noqa: E402
from demo.model import load_or_train  # noqa: E402
from demo.runtime import offline_config_text  # noqa: E402
from monitoring.log_engines import DUCKDB_MEMORY_LIMIT  # noqa: E402
from monitoring.store import Store  # noqa: E402

CHUNK = 500_000
LAYOUT = "v2"
"""Bumped when what a built log holds changes (v2: labels beside the Parquet log), so it is built again."""


def build(rows: int, engine: str) -> Path:
    """The store (and log) with ``rows`` demo predictions and labels for half; returns its config. Reused when built."""
    folder = BENCH_DIR / f"log-pages-{engine}-{rows}-{LAYOUT}"
    config = folder / "vantage.toml"
    done = folder / "built.json"
    if done.exists():
        return config
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    model = load_or_train(ROOT / "var" / "demo")
    log = f"duckdb:{folder / 'log'}" if engine == "parquet" else "store"
    store = Store(f"sqlite:///{folder / 'store.db'}", log=log)
    store.prediction_table("credit", dict(FEATURES))
    started = time.perf_counter()
    history_start = time.time() - 28 * DAY
    generated = _generate(model, rows, history_start)
    for begin in range(0, rows, CHUNK):
        store.log_predictions("credit", generated.iloc[begin:begin + CHUNK])
    written = time.perf_counter() - started
    add_labels(store, generated)  # beside the predictions on the embedded engine, in the store's table otherwise
    if engine == "parquet":
        for _ in range(2):  # merges each day's files; the next run deletes what it merged, as the upkeep does
            store.predictions.maintain(now=time.time())
    store.dispose()
    config.write_text(offline_config_text(store_path=folder / "store.db", model=model,
                                          extra="").replace("[store]\n", f'[store]\nlog = "{log}"\n', 1))
    done.write_text(json.dumps({"rows": rows, "write_seconds": written}))
    return config


def build_postgres(rows: int, server) -> Path:
    """The demo history of :func:`build` in a PostgreSQL store's own tables (``log = "store"``), loaded with COPY
    into the server the run started; returns its config (the server and its data go with the run)."""
    import io

    import psycopg

    from tests.fixtures_postgres import SUPERUSER

    folder = BENCH_DIR / f"log-pages-postgres-{rows}-{LAYOUT}"
    folder.mkdir(parents=True, exist_ok=True)
    model = load_or_train(ROOT / "var" / "demo")
    url = server.url()
    store = Store(url, log="store")
    table = store.prediction_table("credit", dict(FEATURES))
    generated = _generate(model, rows, time.time() - 28 * DAY)
    columns = [c.name for c in table.columns if c.name in generated.columns]
    half = generated.iloc[::2]
    labels = pd.DataFrame({"service": "credit", "prediction_id": half["id"], "ts": half["ts"] + 3 * DAY,
                           "label": half["default"].astype(float)})
    started = time.perf_counter()
    with psycopg.connect(host="127.0.0.1", port=server.port, user=SUPERUSER, dbname="postgres",
                         autocommit=True) as conn:
        for name, frame, names in ((table.name, generated, columns), ("labels", labels, list(labels.columns))):
            quoted = ", ".join(f'"{n}"' for n in names)
            for begin in range(0, len(frame), CHUNK):
                buffer = io.StringIO()
                frame.iloc[begin:begin + CHUNK][names].to_csv(buffer, index=False, header=False)
                with conn.cursor().copy(f'COPY "{name}" ({quoted}) FROM STDIN WITH (FORMAT csv)') as copy:
                    copy.write(buffer.getvalue())
            conn.execute(f'ANALYZE "{name}"')
    print(f"loaded {rows:,} predictions and {len(labels):,} labels into PostgreSQL in "
          f"{time.perf_counter() - started:.0f} s")
    store.dispose()
    config = folder / "vantage.toml"
    config.write_text(offline_config_text(store_path=folder / "unused.db", model=model, extra="").replace(
        f'url = "sqlite:///{folder / "unused.db"}"', f'url = "{url}"\nlog = "store"', 1))
    return config


def upkeep(config: Path) -> int:
    """What the collector's upkeep has done by the time a dashboard opens: the log's files counted and kept
    (its real run, :meth:`monitoring.collector.Collector.upkeep`, until none is left; at most 200 runs).
    Returns the files it counted in this call (none once kept)."""
    from monitoring.collector import Collector
    from monitoring.config import load_config

    settings = load_config(config)
    store = Store.from_config(settings)
    counted = 0
    try:
        collector = Collector(settings, store)  # not started: only its upkeep runs
        for _ in range(200):
            done = collector.upkeep(now=time.time())["tallies"]
            counted += sum(len(kept.files) for kept in done.values())
            if not any(kept.files and kept.left for kept in done.values()):
                break
    finally:
        store.dispose()
    return counted


PAGES = {"views/drift.py": "Drift", "views/overview.py": "Overview", "views/performance.py": "Performance",
         "views/segments.py": "Segments"}
"""The pages measured, and their names in the table."""


def _child(config: str, page: str) -> None:
    """In a fresh process (a fresh server): the first and warm views of one page, and the peak memory."""
    cold, warm = render_times(Path(config), page)
    print(json.dumps({"cold": cold, "warm": warm, "peak_mb": own_peak_mb()}))


def own_peak_mb() -> float:
    """This process's peak resident memory since it started (``VmHWM``: unlike ``ru_maxrss``, not inherited from
    the parent that started it, which may have held the generated log)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(config: Path) -> dict:
    """Run :func:`_child` for each page in a fresh interpreter: each page is a fresh server's first view."""
    results: dict = {}
    for page in PAGES:
        out = subprocess.run([sys.executable, __file__, "--child", str(config), page], capture_output=True,
                             text=True, timeout=3600, cwd=ROOT, env={**os.environ, "VANTAGE_DEMO_FAULTS": "0"})
        if out.returncode != 0:
            return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1]}
        results[page] = json.loads(out.stdout.strip().splitlines()[-1])
    results["peak_mb"] = max(results[page]["peak_mb"] for page in PAGES)
    return results


def table_row(title: str, result: dict) -> tuple[str, ...]:
    """One engine's row of the table: each page's first and warm view, and the peak memory."""
    if "error" in result:
        return (title, "failed", *[""] * (2 * len(PAGES) - 1), result["error"][:120])
    views = [result[page] for page in PAGES]
    return (title, *(f"{view[kind]:.2f} s" for view in views for kind in ("cold", "warm")),
            f"{result['peak_mb']:,.0f} MB")


def measure_postgres(rows: int) -> tuple[str, ...]:
    """The pages on a PostgreSQL store's tables, counted by the server (a server of the run's own, Debian's
    ``postgresql``; none installed: a row that says so)."""
    from tests.fixtures_postgres import postgres_bin_dir, postgres_server

    title = f"PostgreSQL store's tables (counted by the server), {rows:,} predictions"
    if postgres_bin_dir() is None:
        return table_row(title, {"error": "no PostgreSQL server installed (tests/install.sh installs it)"})
    with postgres_server() as server:
        config = build_postgres(rows, server)
        upkeep(config)  # the collector's upkeep joins and keeps the labels there
        return table_row(title, measure(config))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3])
        return
    args = parse_args(__doc__, {"rows": Size(10_000_000, 20_000, "predictions in the Parquet log"),
                                "store_rows": Size(1_000_000, 20_000, "predictions in the SQL store's tables")})
    rows = []
    for engine, n in (("parquet", args.rows), ("postgres", args.rows), ("store", args.store_rows)):
        if engine == "postgres":
            rows.append(measure_postgres(n))
            continue
        config = build(n, engine)
        upkeep(config)  # the collector's upkeep counts the past days and joins the labels where they are
        title = (f"Parquet + DuckDB, {n:,} predictions" if engine == "parquet"
                 else f"SQLite store's tables (counted by SQLite), {n:,} predictions")
        rows.append(table_row(title, measure(config)))
    header = ("prediction log", *(f"{name} {kind}" for name in PAGES.values() for kind in ("first view", "warm")),
              "peak memory")
    print_table(rows, header)
    title = "The data pages with a large log: Parquet + DuckDB, PostgreSQL's tables, SQLite's"
    write_section("log-pages", title, "\n".join([
        "The demo's history generated straight into each engine, labels for every other prediction (3 days "
        f"later): beside the Parquet log and joined there by DuckDB (bounded to {DUCKDB_MEMORY_LIMIT}); in a "
        "PostgreSQL store's tables (Debian's PostgreSQL started for the run, loaded with COPY), joined and "
        "counted by the server; or in a SQLite store's tables, joined and counted by SQLite. "
        "Each page of each engine in a fresh process (a fresh server) through Streamlit's AppTest: its first "
        "view with every cache cleared (the collector's upkeep having run before, as it does every minute: the "
        "drift counts of each past day kept, beside the Parquet files or in PostgreSQL's kept_tallies, and the "
        "labels joined where they are and kept, with the Overview's summary of them, every two minutes), then, "
        "once the background import of the explanation libraries that the first view starts is done, the "
        "median of three warm views; peak memory: the largest of the processes' own (VmHWM). The Performance "
        "and Segments pages have no targets of their own; they read the same kept labels. Targets (issue 12, "
        "10,000,000 predictions, 5,000,000 labels, the embedded engine): first view ≤ 2 s, warm ≤ 0.3 s, "
        "≤ 1 GB; PostgreSQL's times are reported.", "",
        markdown_table(rows, header)]), args=args)


if __name__ == "__main__":
    main()
