"""Page render times with a large prediction log, measured through Streamlit's AppTest.

Usage::

    python benchmarks/pages.py [--rows 1000000]

Builds (once, under ``var/bench/``) a SQLite store whose service logged ``--rows`` demo
predictions over 28 days (the scripted drift included), then renders pages the way a
browser session would: the first render (cold: the prediction log is read into memory and
the reference profile built or loaded) and the median of three warm renders (what a user
waits for on every later visit or rerun). Target from issue 3: the Drift page renders within
2 s warm with 1,000,000 logged predictions.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.report import machine, markdown_table, print_table, write_section  # noqa: E402
from demo.data import FEATURES, generate  # noqa: E402
from demo.model import load_or_train  # noqa: E402
from monitoring.store import Store  # noqa: E402

DAY = 86400.0
BENCH_DIR = ROOT / "var" / "bench"


def build_store(rows: int) -> tuple[Path, Path]:
    """A store with ``rows`` logged demo predictions, and a config for it; reused when already built."""
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
        frame = generate(rows, start_day=0, end_day=28, history_start=time.time() - 28 * DAY, random_state=1)
        proba = model.pipeline.predict_proba(frame[list(FEATURES)])[:, 1]
        frame = frame[["ts", *FEATURES]].assign(id=[f"p{i}" for i in range(rows)], score=proba,
                                                prediction=(proba > 0.5).astype(float), model_version=model.version)
        for column in frame.columns:
            if isinstance(frame[column].dtype, pd.CategoricalDtype):
                frame[column] = frame[column].astype(object)
        for begin in range(0, rows, 100_000):
            store.log_predictions("credit", frame.iloc[begin:begin + 100_000])
        print(f"built {store_path} with {rows:,} predictions in {time.perf_counter() - started:.0f} s")
    store.dispose()
    features = ", ".join(f'"{f}"' for f in FEATURES)
    config = BENCH_DIR / f"pages-{rows}.toml"
    config.write_text(f"""
[store]
url = "sqlite:///{store_path}"

[[services]]
name = "credit"
url = "http://127.0.0.1:9"
protocol = "rest"
poll_interval = 3600
reference = "{model.reference_path}"
features = [{features}]
""")
    return store_path, config


def render_times(config: Path, page: str) -> tuple[float, float]:
    """Cold and warm (median of 3) render time of ``page`` in seconds."""
    from streamlit.testing.v1 import AppTest

    os.environ["VANTAGE_CONFIG"] = str(config)
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=600)
    at.run()
    started = time.perf_counter()
    at.switch_page(page).run()
    cold = time.perf_counter() - started
    if at.exception:
        raise RuntimeError(f"{page} raised: {at.exception}")
    warm = []
    for _ in range(3):
        started = time.perf_counter()
        at.run()
        warm.append(time.perf_counter() - started)
    return cold, statistics.median(warm)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    _, config = build_store(args.rows)
    rows = []
    for page, title, target in (("views/drift.py", "Drift", 2.0),):
        cold, warm = render_times(config, page)
        rows.append((f"{title} page, {args.rows:,} logged predictions", f"{cold:.2f} s", f"{warm:.2f} s",
                     f"≤ {target:g} s warm", "yes" if warm <= target else "NO"))
    header = ("page", "cold (first view)", "warm (median of 3)", "target", "met")
    print_table(rows, header)
    write_section("pages", "\n".join([
        "## Page render times with a large prediction log", "",
        f"`python benchmarks/pages.py --rows {args.rows}` ({machine()}). A SQLite store with {args.rows:,} "
        "logged demo predictions over 28 days; pages rendered through Streamlit's AppTest. Cold = first view of "
        "the page in a fresh server (reads the prediction log into memory); warm = later views and reruns.", "",
        markdown_table(rows, header),
    ]))


if __name__ == "__main__":
    main()
