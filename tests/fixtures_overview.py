"""The Overview's store (28 days of demo traffic with drift and labels) and the dashboard on it.

Shared by the Overview and Segments page tests; registered as a pytest plugin in ``conftest.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from tests.helpers import APP

DAY = 86400.0


@pytest.fixture
def overview_config(tmp_path, demo_model, monkeypatch):
    """A store with 28 days of demo traffic (drift from day 14), labels for most, and bad labels, seen by a
    dashboard whose clock is frozen at 07:55 UTC (the hour a fresh clone once saw other verdicts)."""
    from demo.data import FEATURES
    from demo.replayer import scored_history
    from demo.runtime import offline_config_text
    from monitoring.store import Store

    store_path = tmp_path / "overview.db"
    store = Store(f"sqlite:///{store_path}")
    store.prediction_table("credit", dict(FEATURES))
    now = datetime(2026, 11, 20, 7, 55, tzinfo=UTC).timestamp()
    monkeypatch.setenv("VANTAGE_NOW", str(now))
    rows = scored_history(demo_model, 14_000, history_start=now - 28 * DAY, random_state=3, model_version="7")
    store.log_predictions("credit", rows)
    arrived = rows["ts"] + rows["label_delay_days"] * DAY
    labels = pd.DataFrame({"prediction_id": rows["id"], "ts": arrived, "label": rows["default"].astype(float)})
    labels = labels[arrived < now]
    bad = pd.DataFrame({"prediction_id": ["ghost-1", "ghost-2"], "ts": [now - DAY] * 2, "label": [1.0, 0.0]})
    store.write_labels("credit", pd.concat([labels, bad], ignore_index=True))
    store.dispose()
    path = tmp_path / "vantage.toml"
    path.write_text(offline_config_text(store_path=store_path, model=demo_model, extra=f"""
[services.performance]
baseline = {{accuracy = 0.97}}
cost_false_positive = 5
cost_false_negative = 50
value_correct = 1
currency = "EUR"

[services.explain]
source = "local"
artifact = "{demo_model.artifact_path}"
trust_pickle = true

[[services]]
name = "unlogged"
url = "http://127.0.0.1:9"
protocol = "rest"
poll_interval = 3600
"""))
    return path


@pytest.fixture
def app(overview_config, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("VANTAGE_CONFIG", str(overview_config))
    yield AppTest.from_file(APP, default_timeout=120)
    from dashboard import state

    state.stop_runtime()
