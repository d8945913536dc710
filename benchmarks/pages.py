"""Page render times with a large prediction log, measured through Streamlit's AppTest.

Usage::

    python benchmarks/pages.py [--quick] [--rows 1000000]

Builds (once, under ``var/bench/``) a SQLite store whose service logged ``--rows`` demo
predictions over 28 days (the scripted drift included), then renders pages the way a
browser session would: the first render (cold: the prediction log is read into memory and
the reference profile built or loaded) and the median of three warm renders (what a user
waits for on every later visit or rerun). Targets: the Drift page renders within 2 s warm with
1,000,000 logged predictions (issue 3); the Overview within 1.5 s warm with 1,000,000 logged
predictions and 500,000 labels (issue 6; half the predictions get their label 3 days later).
Pages are opened by their file, as ``st.switch_page`` does, not by which one is the landing page.

``--quick`` uses 20,000 rows (seconds once its store is built; ``.ci/run`` runs it so). No
peers. Prints a table and writes the ``pages`` section of ``benchmarks/results.md``; a quick run
writes it to the git-ignored ``var/bench/results-quick.md`` instead (see :mod:`benchmarks`).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import Size, markdown_table, parse_args, print_table, write_section  # noqa: E402
from demo.data import FEATURES  # noqa: E402
from demo.model import load_or_train  # noqa: E402
from demo.replayer import scored_history  # noqa: E402
from demo.runtime import offline_config_text  # noqa: E402
from monitoring.store import Store  # noqa: E402
from monitoring.store_schema import labels  # noqa: E402

DAY = 86400.0
BENCH_DIR = ROOT / "var" / "bench"


def _label_count(store: Store, service: str) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(labels)
                                .where(labels.c.service == service)).scalar_one())


def _generate(model, rows: int, history_start: float) -> pd.DataFrame:
    return scored_history(model, rows, history_start=history_start, random_state=1, id_prefix="p")


def add_labels(store: Store, frame: pd.DataFrame) -> None:
    """Write ground truth for every other prediction, arriving 3 days after it (some still pending).

    Parameters
    ----------
    store : Store
        The benchmark's store.
    frame : pandas.DataFrame
        The logged predictions with their ``id``, ``ts`` and true ``default``.
    """
    half = frame.iloc[::2]
    started = time.perf_counter()
    for begin in range(0, len(half), 100_000):
        part = half.iloc[begin:begin + 100_000]
        store.write_labels("credit", pd.DataFrame({"prediction_id": part["id"], "ts": part["ts"] + 3 * DAY,
                                                   "label": part["default"].astype(float)}))
    print(f"added {len(half):,} labels in {time.perf_counter() - started:.0f} s")


def build_store(rows: int) -> tuple[Path, Path]:
    """Build a store with ``rows`` logged demo predictions, labels for half, and its config; reuse a built one.

    Parameters
    ----------
    rows : int
        Logged predictions.

    Returns
    -------
    tuple of (Path, Path)
        The store's file and the configuration watching it (offline: its health polls fail).
    """
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    model = load_or_train(ROOT / "var" / "demo")
    store_path = BENCH_DIR / f"pages-{rows}.db"
    store = Store(f"sqlite:///{store_path}")
    if store.count_predictions("credit") != rows:
        store.dispose()
        store_path.unlink(missing_ok=True)
        store = Store(f"sqlite:///{store_path}")
        store.prediction_table("credit", dict(FEATURES))
        started = time.perf_counter()
        generated = _generate(model, rows, time.time() - 28 * DAY)
        for begin in range(0, rows, 100_000):
            store.log_predictions("credit", generated.iloc[begin:begin + 100_000])
        print(f"built {store_path} with {rows:,} predictions in {time.perf_counter() - started:.0f} s")
        add_labels(store, generated)
    elif _label_count(store, "credit") != (rows + 1) // 2:
        with store.engine.begin() as conn:
            conn.execute(labels.delete().where(labels.c.service == "credit"))
        logged = store.read_prediction_log("credit", after_seq=0)[["id", "ts"]]
        generated = _generate(model, rows, 0.0)  # same rows and labels (same seed); times from the log
        add_labels(store, generated[["default"]].assign(id=logged["id"].to_numpy(), ts=logged["ts"].to_numpy()))
    store.dispose()
    config = BENCH_DIR / f"pages-{rows}.toml"
    config.write_text(offline_config_text(store_path=store_path, model=model))
    return store_path, config


def _settle(timeout: float = 60.0) -> None:
    """Wait for the background work a first view starts (the explanation libraries' import, a second of
    interpreter time that the dashboard begins once the first page is drawn): warm views are the
    server's steady state."""
    import threading

    for thread in threading.enumerate():
        if thread.name == "vantage-explain-import":
            thread.join(timeout)


def render_times(config: Path, page: str) -> tuple[float, float]:
    """Render ``page`` in a fresh AppTest (caches cleared), then three times more.

    Parameters
    ----------
    config : Path
        The configuration (``VANTAGE_CONFIG``).
    page : str
        The view's file relative to ``dashboard/``, e.g. ``"views/drift.py"``.

    Returns
    -------
    tuple of (float, float)
        Cold and warm (median of 3, once the first view's background import is done) render time in seconds.
    """
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    os.environ["VANTAGE_CONFIG"] = str(config)
    st.cache_data.clear()  # each page starts cold, as in a fresh server
    st.cache_resource.clear()
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=600)
    started = time.perf_counter()
    at.switch_page(page).run()  # the first run of a fresh app, straight to the page
    cold = time.perf_counter() - started
    if at.exception:
        raise RuntimeError(f"{page} raised: {at.exception}")
    _settle()
    warm = []
    for _ in range(3):
        started = time.perf_counter()
        at.run()
        warm.append(time.perf_counter() - started)
    return cold, statistics.median(warm)


def main() -> None:
    """Build (or reuse) the store, render both pages, print the table and write the ``pages`` section."""
    args = parse_args(__doc__, {"rows": Size(1_000_000, 20_000, "logged predictions")})
    _, config = build_store(args.rows)
    rows = []
    for page, title, target in (("views/drift.py", "Drift", 2.0), ("views/overview.py", "Overview", 1.5)):
        cold, warm = render_times(config, page)
        extra = f" and {(args.rows + 1) // 2:,} labels" if title == "Overview" else ""
        rows.append((f"{title} page, {args.rows:,} logged predictions{extra}", f"{cold:.2f} s", f"{warm:.2f} s",
                     f"≤ {target:g} s warm", "yes" if warm <= target else "NO"))
    header = ("page", "cold (first view)", "warm (median of 3)", "target", "met")
    print_table(rows, header)
    write_section("pages", "Page render times with a large prediction log", "\n".join([
        f"A SQLite store with {args.rows:,} "
        f"logged demo predictions over 28 days and labels for {(args.rows + 1) // 2:,} of them (every other "
        "prediction, arriving 3 days after it); pages rendered through Streamlit's AppTest. Cold = first view of "
        "the page in a fresh server (every cache cleared: the collector starts and the prediction log and labels "
        "are read into memory while the page renders; it varies by a few seconds from run to run on this machine); "
        "warm = later views and reruns.", "",
        markdown_table(rows, header),
    ]), args=args)


if __name__ == "__main__":
    main()
