"""The Drift page through AppTest, on a store of demo traffic with the scripted drift."""

import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from demo.data import DRIFTED_FEATURES, FEATURES

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
DAY = 86400.0


@pytest.fixture
def drift_config(tmp_path, demo_model):
    """A config whose service logged 28 days of demo traffic (drift from day 14) into its store."""
    from demo.replayer import scored_history
    from demo.runtime import offline_config_text
    from monitoring.store import Store

    store_path = tmp_path / "drift.db"
    store = Store(f"sqlite:///{store_path}")
    store.prediction_table("credit", dict(FEATURES))
    rows = scored_history(demo_model, 14_000, history_start=time.time() - 28 * DAY, random_state=3)
    store.log_predictions("credit", rows)
    store.dispose()
    path = tmp_path / "vantage.toml"
    path.write_text(offline_config_text(store_path=store_path, model=demo_model))
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
