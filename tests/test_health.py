"""Known-answer tests of monitoring.health and monitoring.slo: poll verdicts, status, uptime, latency, SLOs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from monitoring.clients import CallResult
from monitoring.config import SloConfig
from monitoring.health import (
    STATE_STYLES,
    current_status,
    format_duration,
    heartbeat,
    incident_table,
    latency_good_total,
    latency_over_time,
    latency_percentiles,
    poll_state,
    uptime,
    uptime_windows,
)
from monitoring.slo import (
    BURN_RATE_WINDOWS,
    BurnRateRule,
    burn_rate,
    burn_rate_alerts,
    error_budget,
    slo_burn_alerts,
    slo_error_budgets,
    window_counts,
)
from monitoring.store import LATENCY_BUCKETS_MS, Probe, Store

SLO = SloConfig(latency_ms=500.0)
LIVE = CallResult("live", True, 3.0, 200)
READY = CallResult("ready", True, 4.0, 200)
MODEL_READY = CallResult("model_ready", True, 4.0, 200)
CANARY = CallResult("predict", True, 45.0, 200)
REFUSED = "connection refused (is the service running on this host and port?)"


def failed(check: str, error: str | None, status: int | None = None, latency_ms: float = 2.0) -> CallResult:
    return CallResult(check, False, latency_ms, status, error)


# -- poll_state -------------------------------------------------------------------------------


def test_poll_state_up_when_every_check_passes():
    assert poll_state([LIVE, READY, MODEL_READY], CANARY, slo=SLO) == ("up", "all checks passed")
    assert poll_state([LIVE, READY], None, slo=SLO) == ("up", "all checks passed")


def test_poll_state_down_when_live_fails():
    state, reason = poll_state([failed("live", REFUSED), failed("ready", REFUSED)], None, slo=SLO)
    assert state == "down"
    assert reason == f"live check failed: {REFUSED}"
    state, reason = poll_state([failed("live", "HTTP 502: bad gateway", 502), READY], CANARY, slo=SLO)
    assert (state, reason) == ("down", "live check failed: HTTP 502: bad gateway")


def test_poll_state_down_when_canary_and_readiness_fail():
    checks = [LIVE, READY, failed("model_ready", "HTTP 503: model loading", 503)]
    state, reason = poll_state(checks, failed("predict", "HTTP 500: model crashed", 500), slo=SLO)
    assert state == "down"
    assert reason == ("canary prediction failed: HTTP 500: model crashed; "
                      "model ready check failed: HTTP 503: model loading")


def test_poll_state_degraded_when_only_the_canary_fails():
    state, reason = poll_state([LIVE, READY], failed("predict", "HTTP 500: model crashed", 500), slo=SLO)
    assert (state, reason) == ("degraded", "canary prediction failed: HTTP 500: model crashed")


def test_poll_state_degraded_when_not_ready():
    state, reason = poll_state([LIVE, failed("ready", None, 503)], CANARY, slo=SLO)
    assert (state, reason) == ("degraded", "ready check failed: HTTP 503")


def test_poll_state_degraded_when_the_canary_is_slow():
    slow = CallResult("predict", True, 812.4, 200)
    assert poll_state([LIVE, READY], slow, slo=SLO) == ("degraded", "canary prediction took 812 ms (SLO 500 ms)")
    at_the_limit = CallResult("predict", True, 500.0, 200)
    assert poll_state([LIVE, READY], at_the_limit, slo=SLO)[0] == "up"


def test_poll_state_ignores_metadata_and_needs_live():
    assert poll_state([LIVE, READY, failed("metadata", "HTTP 404", 404)], CANARY, slo=SLO)[0] == "up"
    with pytest.raises(ValueError, match=r"report_checks must include the 'live' check; got checks \['ready'\]"):
        poll_state([READY], CANARY, slo=SLO)


# -- current status, heartbeat ----------------------------------------------------------------


def polls(rows: list[tuple[float, str, str | None]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["ts", "state", "error"])


def test_current_status_is_the_newest_poll_with_the_start_of_its_run():
    frame = polls([(100, "up", None), (110, "down", "live check failed: x"), (120, "degraded", "slow"),
                   (130, "degraded", "slower")])
    status = current_status(frame, now=135, poll_interval=10)
    assert (status.state, status.reason, status.since_ts, status.last_poll_ts) == ("degraded", "slower", 120.0, 130.0)
    status = current_status(polls([(100, "up", None), (110, "up", None)]), now=111, poll_interval=10)
    assert (status.state, status.reason, status.since_ts) == ("up", "all checks passed", 100.0)


def test_current_status_unknown_without_polls_or_when_stale():
    status = current_status(polls([]), now=1000, poll_interval=10)
    assert status.state == "unknown"
    assert status.last_poll_ts is None
    assert "collector" in status.reason
    stale = current_status(polls([(1000, "up", None)]), now=1023, poll_interval=10)  # a hung service: no new poll
    assert stale.state == "unknown"
    assert stale.reason == ("last poll 23 s ago, more than 2 poll intervals: the service may be hung, or the "
                            "collector stopped")
    assert stale.last_poll_ts == 1000.0
    # Two intervals is still fresh.
    assert current_status(polls([(1000, "up", None)]), now=1020, poll_interval=10).state == "up"


def test_current_status_rejects_a_bad_interval():
    with pytest.raises(ValueError, match="poll_interval must be a positive number of seconds; got 0"):
        current_status(polls([]), now=0, poll_interval=0)


def test_heartbeat_colours():
    frame = heartbeat(polls([(20, "down", "live check failed: x"), (10, "up", None), (30, None, None),
                             (40, "degraded", "slow")]))
    assert list(frame.columns) == ["ts", "state", "reason", "label", "color"]
    assert frame["ts"].tolist() == [10.0, 20.0, 30.0, 40.0]
    assert frame["state"].tolist() == ["up", "down", "unknown", "degraded"]
    assert frame["color"].tolist() == ["#16a34a", "#dc2626", "#9ca3af", "#d97706"]
    assert frame["reason"].tolist() == ["all checks passed", "live check failed: x", "", "slow"]
    assert frame["label"].tolist() == [STATE_STYLES[s].label for s in frame["state"]]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(45, "45 s"), (300, "5 min"), (7500, "2 h 5 min"), (7200, "2 h"), (3 * 86400 + 4 * 3600, "3 d 4 h"),
     (math.nan, "–")],
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


# -- incidents --------------------------------------------------------------------------------


def test_incident_table_durations():
    incidents = pd.DataFrame(
        [(1300, "up", "down", "all checks passed"), (1000, "down", "up", "live check failed: refused"),
         (400, "up", None, "all checks passed")],  # newest first, as the store gives them
        columns=["ts", "state", "previous_state", "reason"],
    )
    table = incident_table(incidents, now=2000)
    assert list(table.columns) == ["start", "end", "duration_s", "ongoing", "state", "previous_state", "reason"]
    assert table["start"].tolist() == [1300.0, 1000.0, 400.0]
    assert math.isnan(table["end"].iloc[0])
    assert table["end"].tolist()[1:] == [1300.0, 1000.0]
    assert table["duration_s"].tolist() == [700.0, 300.0, 600.0]
    assert table["ongoing"].tolist() == [True, False, False]
    bad = incident_table(incidents, now=2000, states=["down", "degraded"])
    assert bad[["start", "duration_s", "reason"]].values.tolist() == [[1000.0, 300.0, "live check failed: refused"]]
    with pytest.raises(ValueError, match="states must be among"):
        incident_table(incidents, now=2000, states=["broken"])


# -- uptime -----------------------------------------------------------------------------------


def test_uptime_counts_degraded_as_up():
    result = uptime({"up": 90, "degraded": 5, "down": 5})
    assert result.fraction == pytest.approx(0.95)
    assert (result.n, result.up, result.degraded, result.down) == (100, 90, 5, 5)
    assert uptime({"down": 3}).fraction == 0.0


def test_uptime_without_polls_is_nan():
    result = uptime({"up": 0, "degraded": 0, "down": 0})
    assert math.isnan(result.fraction)
    assert result.n == 0


def test_uptime_rejects_unknown_states():
    with pytest.raises(ValueError, match=r"state_counts keys must be among \['up', 'degraded', 'down'\]"):
        uptime({"up": 1, "broken": 2})


# -- latency ----------------------------------------------------------------------------------


def test_latency_percentiles_equal_numpy():
    rng = np.random.default_rng(1)
    values = rng.lognormal(4, 0.5, size=333)
    result = latency_percentiles([*values, None, math.nan])
    assert result["n"] == 333
    for q, key in ((50, "p50_ms"), (95, "p95_ms"), (99, "p99_ms")):
        assert result[key] == pytest.approx(np.percentile(values, q))
    empty = latency_percentiles([])
    assert empty["n"] == 0
    assert math.isnan(empty["p95_ms"])


def probes_frame(rows: list[tuple[float, str, float | None]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["ts", "check", "latency_ms"])
    frame["ok"] = True
    return frame


NO_ROLLUPS = pd.DataFrame(columns=["bucket_ts", "check", "latency_hist"])


def test_latency_over_time_from_raw_probes_equals_numpy():
    rng = np.random.default_rng(2)
    ts = np.sort(rng.uniform(0, 7200, size=500))
    latency = rng.lognormal(4, 0.6, size=500)
    frame = pd.concat([
        probes_frame(list(zip(ts, ["predict"] * 500, latency, strict=True))),
        probes_frame([(10.0, "live", 9999.0), (20.0, "predict", None)]),
    ])
    result = latency_over_time(frame, NO_ROLLUPS, bucket_seconds=3600)
    assert list(result.columns) == ["bucket_ts", "n", "p50_ms", "p95_ms", "p99_ms"]
    assert result["bucket_ts"].tolist() == [0.0, 3600.0]
    for row, inside in zip(result.itertuples(), [ts < 3600, ts >= 3600], strict=True):
        assert row.n == inside.sum()
        assert row.p50_ms == pytest.approx(np.percentile(latency[inside], 50))
        assert row.p95_ms == pytest.approx(np.percentile(latency[inside], 95))
        assert row.p99_ms == pytest.approx(np.percentile(latency[inside], 99))


def test_latency_over_time_from_a_rollup_histogram():
    # 10 in (0, 1], 40 in (1, 2], 50 in (2, 5]: p50 = 2 exactly, p95 = 2 + 3 * 45 / 50.
    hist = [10, 40, 50] + [0] * (len(LATENCY_BUCKETS_MS) - 3)
    rollups = pd.DataFrame([(600.0, "predict", hist), (600.0, "live", [0] * len(LATENCY_BUCKETS_MS))],
                           columns=["bucket_ts", "check", "latency_hist"])
    result = latency_over_time(probes_frame([]), rollups, bucket_seconds=3600)
    assert result["bucket_ts"].tolist() == [0.0]
    assert result["n"].tolist() == [100]
    assert result["p50_ms"].iloc[0] == pytest.approx(2.0)
    assert result["p95_ms"].iloc[0] == pytest.approx(2 + 3 * 45 / 50)


def test_latency_over_time_empty():
    result = latency_over_time(probes_frame([]), NO_ROLLUPS, bucket_seconds=60)
    assert result.empty
    assert list(result.columns) == ["bucket_ts", "n", "p50_ms", "p95_ms", "p99_ms"]


def test_latency_good_total_interpolates_inside_a_bucket():
    hist = [10, 40, 50] + [0] * (len(LATENCY_BUCKETS_MS) - 3)  # (0,1], (1,2], (2,5]
    rollups = pd.DataFrame([(0.0, "predict", hist)], columns=["bucket_ts", "check", "latency_hist"])
    raw = probes_frame([(1.0, "predict", 1.5), (2.0, "predict", 4.0), (3.0, "predict", None)])
    assert latency_good_total(raw, rollups, threshold_ms=2.0) == (10 + 40 + 1, 102)
    good, total = latency_good_total(raw, rollups, threshold_ms=3.5)
    assert (good, total) == (pytest.approx(50 + 50 * 1.5 / 3 + 1), 102)


# -- SLO --------------------------------------------------------------------------------------


def test_error_budget_arithmetic():
    spent = error_budget(9990, 10_000, objective=0.999)
    assert spent.allowed_bad == pytest.approx(10)
    assert spent.bad == 10
    assert spent.remaining_fraction == pytest.approx(0.0)
    assert error_budget(9995, 10_000, objective=0.999).remaining_fraction == pytest.approx(0.5)
    assert error_budget(9980, 10_000, objective=0.999).remaining_fraction == pytest.approx(-1.0)
    assert error_budget(10_000, 10_000, objective=0.999).remaining_fraction == pytest.approx(1.0)
    assert math.isnan(error_budget(0, 0, objective=0.999).remaining_fraction)


def test_error_budget_and_burn_rate_validate():
    with pytest.raises(ValueError, match=r"objective must be a fraction strictly between 0 and 1 .*got 99.9"):
        error_budget(1, 2, objective=99.9)
    with pytest.raises(ValueError, match="got good=3, total=2"):
        error_budget(3, 2, objective=0.9)
    with pytest.raises(ValueError, match="got bad=3, total=2"):
        burn_rate(3, 2, objective=0.9)


def test_burn_rate():
    assert burn_rate(2, 100, objective=0.999) == pytest.approx(20.0)
    assert burn_rate(1, 1000, objective=0.999) == pytest.approx(1.0)
    assert math.isnan(burn_rate(0, 0, objective=0.999))


NOW = 1_000_000.0


def polls_every(step: float, *, bad_between: tuple[float, float] = (0, 0), every: int = 0):
    """Poll times over the last 6 h, and whether each was good: bad every ``every`` s inside the window."""
    age = np.arange(step, 6 * 3600 + step, step)
    bad = (age > bad_between[0]) & (age <= bad_between[1]) & (age % every == 0) if every else age < 0
    return NOW - age, ~bad


def test_burn_rate_alerts_page_on_two_percent_errors_in_the_last_hour():
    ts, good = polls_every(1.0, bad_between=(0, 3600), every=50)
    counts = window_counts(ts, good, now=NOW)
    assert set(counts) == set(BURN_RATE_WINDOWS) == {300.0, 1800.0, 3600.0, 21600.0}
    alerts = burn_rate_alerts(counts, objective=0.999)
    page, ticket = alerts.windows
    assert (page.long_window, page.short_window, page.threshold, page.severity) == (3600, 300, 14.4, "page")
    assert page.long_rate == pytest.approx(20.0)
    assert page.short_rate == pytest.approx(20.0)
    assert page.firing
    assert page.label == "1 h / 5 min"
    # Over 6 h the same errors burn at 20 / 6 ≈ 3.3×: below 6, no ticket.
    assert ticket.long_rate == pytest.approx(20 / 6)
    assert not ticket.firing
    assert alerts.verdict == "page"
    assert "20.0× as fast as allowed over 1 h" in alerts.reason


def test_burn_rate_alerts_stop_once_the_errors_are_old():
    # 4 % errors between 30 and 60 min ago: the hour burns at 20×, the last 5 min not at all.
    ts, good = polls_every(1.0, bad_between=(1800, 3600), every=25)
    alerts = burn_rate_alerts(window_counts(ts, good, now=NOW), objective=0.999)
    page = alerts.windows[0]
    assert page.long_rate == pytest.approx(20.0)
    assert page.short_rate == 0.0
    assert not page.firing
    assert alerts.verdict == "ok"


def test_burn_rate_alerts_ticket_on_a_slow_burn():
    # 1 % errors over the whole 6 h with a 99.9 % objective: 10× everywhere.
    ts, good = polls_every(1.0, bad_between=(0, 6 * 3600), every=100)
    alerts = burn_rate_alerts(window_counts(ts, good, now=NOW), objective=0.999)
    assert [w.long_rate for w in alerts.windows] == [pytest.approx(10.0), pytest.approx(10.0)]
    assert [w.firing for w in alerts.windows] == [False, True]
    assert alerts.verdict == "ticket"


def test_burn_rate_alerts_without_data_and_with_missing_windows():
    empty = dict.fromkeys(BURN_RATE_WINDOWS, (0, 0))
    alerts = burn_rate_alerts(empty, objective=0.99)
    assert alerts.verdict == "no_data"
    assert all(math.isnan(w.long_rate) and not w.firing for w in alerts.windows)
    with pytest.raises(ValueError, match=r"missing \[300.0\]"):
        burn_rate_alerts({3600.0: (1, 1)}, objective=0.99, rules=[BurnRateRule(3600.0, 300.0, 14.4, "page")])


# -- against a real store ---------------------------------------------------------------------


def fill_store(store: Store, *, start: float, hours: float, step: float, seed: int = 3) -> None:
    """Polls every ``step`` seconds with a canary, mostly up, some degraded and down."""
    rng = np.random.default_rng(seed)
    rows = []
    for ts in np.arange(start, start + hours * 3600, step):
        state = rng.choice(["up", "degraded", "down"], p=[0.9, 0.06, 0.04])
        latency = float(rng.lognormal(4.5, 0.7))
        rows.append(Probe(float(ts), "svc", "predict", state != "down", 200, latency, None))
        rows.append(Probe(float(ts), "svc", "poll", state != "down", None, None,
                          None if state == "up" else "something", state=str(state)))
    store.write_probes(rows)


def bucket_width(latency_ms: float) -> float:
    """Width of the LATENCY_BUCKETS_MS bucket that holds ``latency_ms``."""
    bounds = np.asarray(LATENCY_BUCKETS_MS)
    i = int(np.searchsorted(bounds, latency_ms, side="left"))
    return bounds[i] - (bounds[i - 1] if i else 0.0)


def test_raw_and_rollups_combined_match_raw_only(store_url):
    store = Store(store_url)  # SQLite and PostgreSQL (tests/fixtures_postgres.py)
    start = 1_700_000_000.0 - 1_700_000_000.0 % 3600
    hours = 8
    fill_store(store, start=start, hours=hours, step=30)
    now = start + hours * 3600
    windows = {"all": hours * 3600.0 + 1, "last 3h": 3 * 3600.0}

    uptime_before = uptime_windows(store, "svc", now=now, windows=windows)
    latency_before = latency_over_time(store.read_probes("svc", since=0),
                                       store.read_rollups("svc", since=0), bucket_seconds=3600)
    budgets_before = slo_error_budgets(store, "svc", slo=SLO, now=now)

    folded = store.downsample(raw_retention_hours=2, retention_days=30, rollup_minutes=5, now=now)
    assert folded > 0
    assert not store.read_rollups("svc", since=0).empty

    assert uptime_windows(store, "svc", now=now, windows=windows) == uptime_before
    assert 0.9 < uptime_before["all"].fraction < 1.0
    # Latency as a SLO bound of 500 ms is a histogram bound, so the good count stays exact.
    assert slo_error_budgets(store, "svc", slo=SLO, now=now) == budgets_before

    latency_after = latency_over_time(store.read_probes("svc", since=0),
                                      store.read_rollups("svc", since=0), bucket_seconds=3600)
    pd.testing.assert_series_equal(latency_after["bucket_ts"], latency_before["bucket_ts"])
    pd.testing.assert_series_equal(latency_after["n"], latency_before["n"])
    for column in ("p50_ms", "p95_ms", "p99_ms"):
        exact = latency_before[column].to_numpy()
        approx = latency_after[column].to_numpy()
        # The histogram knows a latency to its bucket only; the exact percentile interpolates
        # between two observations that may sit in neighbouring buckets.
        widths = np.maximum([bucket_width(v) for v in exact], [bucket_width(v) for v in approx])
        assert np.all(np.abs(approx - exact) <= widths), column
    # The last two hours stay raw: exact there.
    pd.testing.assert_frame_equal(latency_after.tail(2).reset_index(drop=True),
                                  latency_before.tail(2).reset_index(drop=True))


def test_slo_burn_alerts_from_a_store(store_url):
    store = Store(store_url)  # SQLite and PostgreSQL (tests/fixtures_postgres.py)
    now = 2_000_100.0  # a multiple of the 5-min rollup width
    rows = []
    for i, ts in enumerate(np.arange(now - 6 * 3600 + 10, now + 1, 10.0)):
        down = now - ts < 3600 and i % 5 == 0  # 20 % down in the last hour
        slow = i % 2 == 0  # half the canaries are slower than the SLO, all along
        rows.append(Probe(float(ts), "svc", "poll", not down, state="down" if down else "up"))
        rows.append(Probe(float(ts), "svc", "predict", True, 200, 900.0 if slow else 100.0))
    store.write_probes(rows)
    slo = SloConfig(availability=0.99, latency_ms=500, latency_target=0.95)
    alerts = slo_burn_alerts(store, "svc", slo=slo, now=now)
    availability, latency = alerts["availability"], alerts["latency"]
    assert availability.windows[0].long_rate == pytest.approx(20.0, rel=0.02)  # 20 % / 1 %
    assert availability.windows[1].long_rate == pytest.approx(20.0 / 6, rel=0.02)
    assert availability.verdict == "page"
    assert latency.windows[0].long_rate == pytest.approx(10.0, rel=0.02)  # 50 % / 5 %
    assert [w.firing for w in latency.windows] == [False, True]
    assert latency.verdict == "ticket"
    # Once all but the last hour is downsampled, the same verdicts from raw and rollups.
    store.downsample(raw_retention_hours=1, retention_days=30, rollup_minutes=5, now=now)
    assert not store.read_rollups("svc", since=0).empty
    assert slo_burn_alerts(store, "svc", slo=slo, now=now) == alerts
