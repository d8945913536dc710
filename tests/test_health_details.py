"""Health details that hold: tracebacks cut to their last line, error budgets judged only with enough history."""

import pandas as pd

from monitoring.config import ServiceConfig
from monitoring.health import current_status, short_reason
from monitoring.service_health import service_health
from monitoring.store import Probe, Store

TRACEBACK = """predict failed: HTTP 500: Traceback (most recent call last):
  File "/opt/mlserver/mlserver/handlers/dataplane.py", line 112, in infer
    prediction = await model.predict(payload)
  File "/opt/mlserver_sklearn/models.py", line 40, in predict
    raise ValueError(message)
ValueError: The feature names should match those that were passed during fit. Feature names unseen at fit time: \
- target"""


def test_a_traceback_is_cut_to_its_last_line_and_kept_whole_in_details():
    assert short_reason(TRACEBACK) == ("predict failed: HTTP 500: ValueError: The feature names should match those "
                                       "that were passed during fit. Feature names unseen at fit time: - target")
    assert "\n" not in TRACEBACK.splitlines()[-1]
    polls = pd.DataFrame({"ts": [100.0], "state": ["degraded"], "error": [TRACEBACK]})
    status = current_status(polls, now=101.0, poll_interval=10)
    assert status.reason == short_reason(TRACEBACK) and status.details == TRACEBACK
    embedded = 'HTTP 500: {"detail": "Traceback (most recent call last):\\n  File \\"x.py\\"\\nKeyError: \'target\'"}'
    assert short_reason(embedded) == "HTTP 500: KeyError: 'target'"
    assert short_reason("connection refused") == "connection refused"
    assert short_reason("x" * 500).endswith("…") and len(short_reason("x" * 500)) == 200
    short = current_status(pd.DataFrame({"ts": [100.0], "state": ["down"], "error": ["timed out"]}), now=101.0,
                           poll_interval=10)
    assert short.reason == "timed out" and short.details == ""


def test_a_budget_is_not_judged_on_35_minutes_of_a_30_day_period(store_url):
    store = Store(store_url)  # SQLite and PostgreSQL (tests/fixtures_postgres.py)
    now = 2_000_000.0
    rows = []
    for ts in range(int(now - 35 * 60), int(now), 10):  # 35 minutes of polls, a third of them down
        down = ts % 30 == 0
        rows.append(Probe(float(ts), "svc", "poll", not down, state="down" if down else "up"))
    store.write_probes(rows)
    config = ServiceConfig(name="svc", url="http://127.0.0.1:9", protocol="rest", poll_interval=10)
    health = service_health(store, config, now=now)
    assert health.budgets["availability"].remaining_fraction < 0  # the arithmetic says "exhausted" ...
    assert not health.slo_judgeable  # ... but it cannot be judged yet
    assert health.slo_history_note() == ("not enough history to judge (35 min of 30 d; budgets are judged from "
                                         "3 d on)")
    later = service_health(store, config, now=now)  # the same store seen with 4 days of history is judged
    object.__setattr__(later, "slo_covered_s", 4 * 86400.0)
    assert later.slo_judgeable and later.slo_history_note() is None
    store.dispose()
