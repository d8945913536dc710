"""The Service health page's numbers as text, its tables and its captions, from ``monitoring.service_health``."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from monitoring.health import STATE_STYLES, format_duration

SHORT_HISTORY_SECONDS = 30 * 86400.0
"""A history younger than this is said: the page's longer windows cover only its span."""


def _unknown(value: float | None) -> bool:
    return value is None or math.isnan(value)


def percent_text(value: float | None, *, digits: int = 2) -> str:
    """A fraction as a percentage, ``"99.50 %"``, or ``"–"`` when unknown (None or NaN).

    Parameters
    ----------
    value : float or None
        The fraction (0.995 for 99.5 %).
    digits : int, default=2
        Decimals shown.

    Returns
    -------
    str
    """
    return "–" if _unknown(value) else f"{value * 100:.{digits}f} %"


def millis_text(value: float | None) -> str:
    """Milliseconds as ``"120 ms"``, or ``"–"`` when unknown (None or NaN)."""
    return "–" if _unknown(value) else f"{value:.0f} ms"


def rate_text(value: float) -> str:
    """A burn rate as ``"2.5×"``, or ``"–"`` when unknown (NaN)."""
    return "–" if math.isnan(value) else f"{value:.1f}×"


def fleet_table(rows: Sequence, *, reason_text: Callable[[str], str] = str,
                poll_text: Callable[[float | None], str] = str) -> pd.DataFrame:
    """The fleet table: one row per service, its status, why, uptime, canary latency, error rate and last poll.

    Parameters
    ----------
    rows : sequence of FleetRow
        ``monitoring.service_health.fleet_overview``.
    reason_text : callable, default=str
        Writes a reason (a reason may quote a canary row's personal value: the page masks it).
    poll_text : callable, default=str
        Writes the last poll's time.

    Returns
    -------
    DataFrame
        ``Service, Status, Why, Uptime 24 h`` (percent, None when unknown), ``Canary p95 (1 h)`` (ms),
        ``Error rate (1 h)`` (text: ``"no metrics URL"`` without metrics), ``Protocol, Last poll``.
    """
    return pd.DataFrame([{
        "Service": r.service,
        "Status": STATE_STYLES[r.state].label,
        "Why": reason_text(r.reason),
        "Uptime 24 h": r.uptime_24h * 100 if not math.isnan(r.uptime_24h) else None,
        "Canary p95 (1 h)": r.p95_ms,
        "Error rate (1 h)": percent_text(r.error_rate_1h) if r.has_metrics else "no metrics URL",
        "Protocol": r.protocol,
        "Last poll": poll_text(r.last_poll_ts),
    } for r in rows])


def poll_caption(service, *, last_poll: str, since: str | None = None) -> str:
    """The caption under the status: protocol, address, poll interval, last poll and since when in this state.

    Parameters
    ----------
    service : ServiceConfig
    last_poll : str
        When the service was last polled, as the page writes it.
    since : str, optional
        Since when it is in its state; left out when unknown.

    Returns
    -------
    str
    """
    return (f"{service.protocol} · {service.url} · polled every {service.poll_interval:g} s · last poll {last_poll}"
            + (f" · in this state since {since}" if since else ""))


def history_is_short(history_since: float | None, *, now: float) -> bool:
    """Whether the history is younger than :data:`SHORT_HISTORY_SECONDS` (and the page says when it starts).

    Parameters
    ----------
    history_since : float or None
        Time of the oldest poll kept; None without any.
    now : float

    Returns
    -------
    bool
    """
    return history_since is not None and now - history_since < SHORT_HISTORY_SECONDS


def uptime_help(result) -> str:
    """An uptime metric's help: over how many polls, how many down and degraded.

    Parameters
    ----------
    result : UptimeResult

    Returns
    -------
    str
    """
    return (f"Share of polls in which the service was not down, over {result.n} polls "
            f"({result.down} down, {result.degraded} degraded).")


def latency_help(latency: Mapping[str, float]) -> str:
    """The canary latency metric's help: its p50 and p99 (``"–"`` when unknown).

    Parameters
    ----------
    latency : mapping of str to float
        ``ServiceHealth.recent_latency`` (``p50_ms``, ``p95_ms``, ``p99_ms``; any may be missing).

    Returns
    -------
    str
    """
    return (f"p50 {millis_text(latency.get('p50_ms', math.nan))}, "
            f"p99 {millis_text(latency.get('p99_ms', math.nan))} over the polls shown in the heartbeat.")


def slo_caption(slo) -> str:
    """The caption under "Service-level objectives": the targets, the period, and what a burn rate is.

    Parameters
    ----------
    slo : SloConfig

    Returns
    -------
    str
    """
    return (f"Availability target {slo.availability * 100:g} % of polls not down; latency target "
            f"{slo.latency_target * 100:g} % of canary predictions within {slo.latency_ms:g} ms; "
            f"over {slo.window_days} days. Burn rate = how many times faster than allowed the error "
            "budget is being spent; alerts follow the multi-window rule (1 h and 5 min at 14.4× page, "
            "6 h and 30 min at 6× warn).")


@dataclass(frozen=True)
class BudgetDisplay:
    """An error budget as the page shows it.

    Attributes
    ----------
    value : str
        What is left (``"42.0 %"``), ``"exhausted"`` once overspent, ``"–"`` when unknown.
    delta : str or None
        How much of the budget is spent, once overspent (``"130 % of the budget spent"``).
    progress : float or None
        What is left, clamped to 0–1 for a progress bar; None when unknown.
    events : str
        The bad and total events, and the bad events the objective allows.
    """

    value: str
    delta: str | None
    progress: float | None
    events: str


def budget_display(budget) -> BudgetDisplay:
    """How the page shows an error budget.

    Parameters
    ----------
    budget : ErrorBudget

    Returns
    -------
    BudgetDisplay
    """
    remaining = budget.remaining_fraction
    exhausted = remaining < 0
    return BudgetDisplay(
        value="exhausted" if exhausted else percent_text(remaining, digits=1),
        delta=f"{percent_text(1 - remaining, digits=0)} of the budget spent" if exhausted else None,
        progress=None if math.isnan(remaining) else min(max(remaining, 0.0), 1.0),
        events=(f"{budget.bad:.0f} bad of {budget.total:.0f} events; "
                f"the objective allows {budget.allowed_bad:.1f} bad events in this period."))


def burn_table(alerts) -> pd.DataFrame:
    """The burn-rate windows of one objective as a table.

    Parameters
    ----------
    alerts : BurnRateAlerts

    Returns
    -------
    DataFrame
        ``Windows, Alert at`` (``"14.4×"``), ``Long, Short`` (the rates, ``"–"`` when unknown), ``Firing``
        (``"yes"``/``"no"``).
    """
    return pd.DataFrame([{
        "Windows": w.label, "Alert at": f"{w.threshold:g}×",
        "Long": rate_text(w.long_rate), "Short": rate_text(w.short_rate),
        "Firing": "yes" if w.firing else "no",
    } for w in alerts.windows], columns=["Windows", "Alert at", "Long", "Short", "Firing"])


def incidents_frame(incidents: pd.DataFrame, *, reason_text: Callable[[str], str] = str) -> pd.DataFrame:
    """The incidents as the page lists them.

    Parameters
    ----------
    incidents : DataFrame
        ``ServiceHealth.incidents`` (``start, state, duration_s, ongoing, reason``).
    reason_text : callable, default=str
        Writes a reason (the page masks personal values in it).

    Returns
    -------
    DataFrame
        ``Started`` (UTC times), ``State`` (its label; an unknown state reads as unknown), ``Lasted``
        (``"5 min (ongoing)"``), ``Reason``.
    """
    return pd.DataFrame({
        "Started": pd.to_datetime(incidents["start"], unit="s", utc=True),
        "State": [STATE_STYLES.get(s, STATE_STYLES["unknown"]).label for s in incidents["state"]],
        "Lasted": [format_duration(d) + (" (ongoing)" if o else "")
                   for d, o in zip(incidents["duration_s"], incidents["ongoing"], strict=True)],
        "Reason": [reason_text(reason) for reason in incidents["reason"]],
    })


def traffic_origin(series) -> str:
    """Where the real-traffic charts come from: ``"from Prometheus"`` or ``"from the service's metrics"``.

    Parameters
    ----------
    series : TimeSeries

    Returns
    -------
    str
    """
    return "from Prometheus" if series.traffic_queries else "from the service's metrics"


def buckets_caption(*, bucket_seconds: float, window_seconds: float) -> str:
    """The caption under the charts: bucket width, window length, and how accurate downsampled latencies are.

    Parameters
    ----------
    bucket_seconds : float
        The charts' bucket width.
    window_seconds : float
        How much time the window covers.

    Returns
    -------
    str
    """
    return (f"Buckets of {format_duration(bucket_seconds)}; the window covers {format_duration(window_seconds)}. "
            "Older than the raw retention, latencies come from downsampled histograms and are accurate to one "
            "histogram bucket.")
