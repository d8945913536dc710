"""Everything the Service-health page shows, assembled from the store in a few queries.

:func:`service_health` gives the live panel of one service (status, heartbeat, uptime, SLO
budgets, burn-rate alerts, incidents); :func:`time_series` the charts over a chosen time
range; :func:`fleet_overview` one row per service for the fleet table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import pandas as pd

from monitoring.config import ServiceConfig
from monitoring.health import (
    LATENCY_COLUMNS,
    ServiceStatus,
    UptimeResult,
    current_status,
    format_duration,
    heartbeat,
    incident_table,
    latency_over_time,
    latency_percentiles,
    uptime_windows,
)
from monitoring.metrics import traffic_over_time
from monitoring.prometheus import PrometheusClient, error_rate_from_prometheus, traffic_from_prometheus
from monitoring.slo import BurnRateAlerts, ErrorBudget, slo_burn_alerts, slo_error_budgets
from monitoring.store import Store

TIME_WINDOWS: Mapping[str, tuple[float, float]] = MappingProxyType({
    "1h": (3600.0, 60.0),
    "24h": (86400.0, 15 * 60.0),
    "7d": (7 * 86400.0, 2 * 3600.0),
    "30d": (30 * 86400.0, 6 * 3600.0),
})
"""Chart time ranges: label → (length in seconds, bucket width in seconds)."""

HEARTBEAT_POLLS = 60


MIN_SLO_HISTORY_SHARE = 0.1
"""An error budget is judged once the history covers a tenth of the SLO period (3 days of 30): before, a few
bad polls would read as a spent budget."""


@dataclass(frozen=True)
class ServiceHealth:
    """The live panel of one service.

    Attributes
    ----------
    service : str
    status : ServiceStatus
        State now, its reason and since when.
    heartbeat : DataFrame
        The last :data:`HEARTBEAT_POLLS` polls (``ts, state, reason, label, color``).
    uptime : dict of str to UptimeResult
        Over ``24h``, ``7d`` and ``30d``.
    budgets : dict of str to ErrorBudget
        ``availability`` and ``latency`` over the SLO period.
    burn : dict of str to BurnRateAlerts
        Multi-window burn-rate alerts per SLI.
    incidents : DataFrame
        State periods, newest first (:func:`monitoring.health.incident_table`).
    recent_latency : dict
        p50/p95/p99 (ms) of the canary predictions in the heartbeat's span.
    history_since : float or None
        Time of the oldest poll kept: windows longer than the history cover only it.
    slo_window_s, slo_covered_s : float
        The SLO period and how much of it the history covers (seconds).
    metrics_problem : str or None
        Why the newest scrape of the service's metrics gave nothing (the series named or
        recognised not exposed, the endpoint down); None when it worked or none is configured.
    """

    service: str
    status: ServiceStatus
    heartbeat: pd.DataFrame
    uptime: dict[str, UptimeResult]
    budgets: dict[str, ErrorBudget]
    burn: dict[str, BurnRateAlerts]
    incidents: pd.DataFrame
    recent_latency: dict[str, float]
    history_since: float | None
    slo_window_s: float = 30 * 86400.0
    slo_covered_s: float = 30 * 86400.0
    metrics_problem: str | None = None

    @property
    def slo_judgeable(self) -> bool:
        """Whether the history covers enough of the SLO period (:data:`MIN_SLO_HISTORY_SHARE`) for a budget verdict."""
        return self.slo_covered_s >= MIN_SLO_HISTORY_SHARE * self.slo_window_s

    def slo_history_note(self) -> str | None:
        """``"not enough history to judge (35 min of 30 d)"`` when the budget cannot be judged yet, else None."""
        if self.slo_judgeable:
            return None
        return (f"not enough history to judge ({format_duration(self.slo_covered_s)} of "
                f"{format_duration(self.slo_window_s)}; budgets are judged from "
                f"{format_duration(MIN_SLO_HISTORY_SHARE * self.slo_window_s)} on)")


@dataclass(frozen=True)
class TimeSeries:
    """The charts of one service over a time range.

    Attributes
    ----------
    window : str
        Label from :data:`TIME_WINDOWS`.
    since, until : float
        The time range shown (Unix seconds).
    bucket_seconds : float
    probe_latency : DataFrame
        Canary latency per bucket: ``bucket_ts, n, p50_ms, p95_ms, p99_ms``.
    states : DataFrame
        Polls per state per bucket: ``bucket_ts, up, degraded, down``.
    traffic : DataFrame or None
        Real traffic from the scraped metrics or from Prometheus (``bucket_ts, requests, errors,
        request_rate, error_rate, p50_ms, p95_ms, p99_ms``); None when no metrics are configured
        or Prometheus could not be read.
    traffic_source : str or None
        Where the traffic comes from, in words (``"scraped from http://…/metrics"``,
        ``"from Prometheus at http://…:9090 for {job="…"}"``); None without metrics.
    traffic_problem : str or None
        Why Prometheus gave nothing to chart (down, a query refused, no series for the selector);
        scrape problems are :attr:`ServiceHealth.metrics_problem`.
    traffic_queries : tuple of str
        The PromQL sent, when the traffic comes from Prometheus.
    """

    window: str
    since: float
    until: float
    bucket_seconds: float
    probe_latency: pd.DataFrame
    states: pd.DataFrame
    traffic: pd.DataFrame | None
    traffic_source: str | None = None
    traffic_problem: str | None = None
    traffic_queries: tuple[str, ...] = ()


@dataclass(frozen=True)
class FleetRow:
    """One line of the fleet table."""

    service: str
    protocol: str
    state: str
    reason: str
    last_poll_ts: float | None
    uptime_24h: float
    p95_ms: float
    error_rate_1h: float
    has_metrics: bool


def service_health(store: Store, service: ServiceConfig, *, now: float) -> ServiceHealth:
    """Assemble the live panel of ``service`` at ``now``.

    Parameters
    ----------
    store : Store
    service : ServiceConfig
    now : float
        Unix seconds.

    Returns
    -------
    ServiceHealth
    """
    polls = store.last_polls(service.name, limit=HEARTBEAT_POLLS)
    since = float(polls["ts"].min()) if len(polls) else now - HEARTBEAT_POLLS * service.poll_interval
    canaries = store.read_probes(service.name, since=since, checks=["predict"], columns=LATENCY_COLUMNS)
    history_since = store.first_poll_ts(service.name)
    window = service.slo.window_days * 86400.0
    metrics_problem = None
    if service.metrics is not None and service.metrics.url is not None:  # scraped by the collector
        scrapes = store.read_probes(service.name, since=since, checks=["metrics"], columns=("ts", "ok", "error"))
        if len(scrapes) and not bool(scrapes["ok"].iloc[-1]):
            metrics_problem = str(scrapes["error"].iloc[-1] or "the metrics endpoint did not answer")
    return ServiceHealth(
        service=service.name,
        status=current_status(polls, now=now, poll_interval=service.poll_interval),
        heartbeat=heartbeat(polls),
        uptime=uptime_windows(store, service.name, now=now),
        budgets=slo_error_budgets(store, service.name, slo=service.slo, now=now),
        burn=slo_burn_alerts(store, service.name, slo=service.slo, now=now),
        incidents=incident_table(store.read_incidents(service.name, since=now - 30 * 86400.0), now=now,
                                 states=("degraded", "down", "unknown")),
        recent_latency=latency_percentiles(canaries["latency_ms"].dropna().to_numpy()),
        history_since=history_since,
        slo_window_s=window,
        slo_covered_s=min(max(now - history_since, 0.0), window) if history_since is not None else 0.0,
        metrics_problem=metrics_problem,
    )


def time_series(store: Store, service: ServiceConfig, *, window: str, now: float) -> TimeSeries:
    """Charts of ``service`` over the time range ``window`` ending at ``now``.

    Parameters
    ----------
    store : Store
    service : ServiceConfig
    window : {"1h", "24h", "7d", "30d"}
    now : float

    Returns
    -------
    TimeSeries
    """
    if window not in TIME_WINDOWS:
        raise ValueError(f"window must be one of {list(TIME_WINDOWS)}; got {window!r}")
    length, bucket = TIME_WINDOWS[window]
    since = now - length
    probes = store.read_probes(service.name, since=since, checks=["predict"], columns=LATENCY_COLUMNS)
    rollups = store.read_rollups(service.name, since=since, checks=["predict"])
    traffic, source, problem, queries = None, None, None, ()
    metrics = service.metrics
    if metrics is not None and metrics.prometheus is not None:
        with PrometheusClient.for_metrics(metrics, max_response_mb=service.max_response_mb) as client:
            read = traffic_from_prometheus(client, metrics, since=since, until=now, bucket_seconds=bucket)
        traffic, source, problem, queries = read.traffic, f"from {metrics.source}", read.problem, read.queries
        if read.names is not None:
            source += f" (names of {read.names.server})"
    elif metrics is not None:
        traffic = traffic_over_time(store.read_metric_samples(service.name, since=since - bucket),
                                    store.read_metric_rollups(service.name, since=since),
                                    bucket_seconds=bucket)
        source = f"scraped from {metrics.url}"
    if traffic is not None:
        traffic = traffic[traffic["bucket_ts"] >= np.floor(since / bucket) * bucket]
    return TimeSeries(
        window=window,
        since=since,
        until=now,
        bucket_seconds=bucket,
        probe_latency=latency_over_time(probes, rollups, bucket_seconds=bucket),
        states=store.poll_states_over_time(service.name, since=since, bucket_seconds=bucket),
        traffic=traffic,
        traffic_source=source,
        traffic_problem=problem,
        traffic_queries=queries,
    )


def fleet_overview(store: Store, services: Sequence[ServiceConfig], *, now: float) -> list[FleetRow]:
    """One row per service: state, uptime over 24 h, canary p95 and the error rate of its real traffic over 1 h.

    The error rate comes from the scraped metrics, or from Prometheus (NaN when it cannot be read).
    """
    rows = []
    for service in services:
        polls = store.last_polls(service.name, limit=HEARTBEAT_POLLS)
        status = current_status(polls, now=now, poll_interval=service.poll_interval)
        day = uptime_windows(store, service.name, now=now, windows={"24h": 86400.0})["24h"]
        canaries = store.read_probes(service.name, since=now - 3600.0, checks=["predict"], columns=LATENCY_COLUMNS)
        p95 = latency_percentiles(canaries["latency_ms"].dropna().to_numpy())["p95_ms"]
        error_rate = math.nan
        if service.metrics is not None and service.metrics.prometheus is not None:
            with PrometheusClient.for_metrics(service.metrics, max_response_mb=service.max_response_mb) as client:
                error_rate, _ = error_rate_from_prometheus(client, service.metrics, now=now)
        elif service.metrics is not None:
            traffic = traffic_over_time(store.read_metric_samples(service.name, since=now - 3600.0),
                                        store.read_metric_rollups(service.name, since=now - 3600.0),
                                        bucket_seconds=3600.0)
            requests, errors = traffic["requests"].sum(), traffic["errors"].sum()
            error_rate = errors / requests if requests else math.nan
        rows.append(FleetRow(service.name, service.protocol, status.state, status.reason,
                             status.last_poll_ts, day.fraction, p95, error_rate, service.metrics is not None))
    return rows
