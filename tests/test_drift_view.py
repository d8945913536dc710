"""The Drift page through AppTest, on a store of demo traffic with the scripted drift."""

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from demo.data import DRIFTED_FEATURES, FEATURES, generate

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
DAY = 86400.0


@pytest.fixture
def drift_config(tmp_path, demo_model):
    """A config whose service logged 28 days of demo traffic (drift from day 14) into its store."""
    from monitoring.store import Store

    store_path = tmp_path / "drift.db"
    store = Store(f"sqlite:///{store_path}")
    store.prediction_table("credit", dict(FEATURES))
    start = time.time() - 28 * DAY
    rows = generate(14_000, start_day=0, end_day=28, history_start=start, random_state=3)
    proba = demo_model.pipeline.predict_proba(rows[list(FEATURES)])[:, 1]
    logged = rows[["ts", *FEATURES]].assign(id=[f"r{i}" for i in range(len(rows))], score=proba,
                                            prediction=(proba > 0.5).astype(float))
    for column in logged.columns:
        if isinstance(logged[column].dtype, pd.CategoricalDtype):
            logged[column] = logged[column].astype(object)
    store.log_predictions("credit", logged)
    store.dispose()
    features = ", ".join(f'"{f}"' for f in FEATURES)
    path = tmp_path / "vantage.toml"
    path.write_text(f"""
[store]
url = "sqlite:///{store_path}"

[[services]]
name = "credit"
url = "http://127.0.0.1:9"
protocol = "rest"
poll_interval = 3600
reference = "{demo_model.reference_path}"
features = [{features}]
""")
    return path


@pytest.fixture
def app(drift_config, monkeypatch):
    monkeypatch.setenv("VANTAGE_CONFIG", str(drift_config))
    yield AppTest.from_file(APP, default_timeout=90)
    from dashboard import state

    state._start_runtime.clear()


def test_drift_page_names_the_drifted_features(app):
    at = app.run()
    at.switch_page("views/drift.py").run()
    assert not at.exception, at.exception
    headline = "\n".join(w.value for w in at.warning)
    assert "features drifted" in headline
    for feature in DRIFTED_FEATURES:
        assert feature in headline
    table = at.dataframe[0].value
    if hasattr(table, "data"):  # a Styler
        table = table.data
    drifted = set(table.loc[table["Status"] == "drifted", "Feature"])
    assert drifted == set(DRIFTED_FEATURES)
    assert not {"signup_weekday", "age"} & drifted
    assert np.all(table["Rows"] > 0)


def test_drift_page_reports_a_bad_reference_and_keeps_other_pages_working(app, drift_config, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("age,income\n30,unknown\n")
    drift_config.write_text(drift_config.read_text().replace(
        next(line for line in drift_config.read_text().splitlines() if line.startswith("reference")),
        f'reference = "{bad}"'))
    at = app.run()
    at.switch_page("views/drift.py").run()
    assert not at.exception
    message = "\n".join(e.value for e in at.error)
    assert str(bad) in message and "lacks columns" in message
    at.switch_page("views/health.py").run()
    assert not at.exception
