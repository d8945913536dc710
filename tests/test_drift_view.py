"""The Drift page through AppTest, on a store of demo traffic with the scripted drift."""

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from demo.data import DRIFTED_FEATURES, FEATURES

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
DAY = 86400.0


FROZEN_NOWS = {  # hours of the day at which a fresh clone once failed (07:5x), and others around the clock
    "00:20": datetime(2026, 11, 20, 0, 20, tzinfo=UTC).timestamp(),
    "07:55": datetime(2026, 11, 20, 7, 55, tzinfo=UTC).timestamp(),
    "13:30": datetime(2026, 11, 20, 13, 30, tzinfo=UTC).timestamp(),
    "23:50": datetime(2026, 11, 20, 23, 50, tzinfo=UTC).timestamp(),
}


@pytest.fixture(params=list(FROZEN_NOWS))
def frozen_now(request, monkeypatch):
    """The dashboard's clock frozen at one of several hours of the day."""
    now = FROZEN_NOWS[request.param]
    monkeypatch.setenv("VANTAGE_NOW", str(now))
    return now


@pytest.fixture
def drift_config(tmp_path, demo_model, frozen_now):
    """A config whose service logged 28 days of demo traffic (drift from day 14) into its store."""
    from demo.replayer import scored_history
    from demo.runtime import offline_config_text
    from monitoring.store import Store

    store_path = tmp_path / "drift.db"
    store = Store(f"sqlite:///{store_path}")
    store.prediction_table("credit", dict(FEATURES))
    rows = scored_history(demo_model, 14_000, history_start=frozen_now - 28 * DAY, random_state=3)
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

    state.stop_runtime()


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
    assert set(table["Status"]) <= {"drifted", "close", "stable", "too small", "cannot judge"}
    assert not at.info or "still open" not in at.info[0].value  # the newest closed window is shown first


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
