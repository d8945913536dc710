"""Service-level objectives: error budgets, burn rates and their multi-window alerts, over the store's polls.

Availability and latency indicators are defined in :mod:`monitoring.health` (what counts as a good
poll, a good canary); this module turns their counts over the SLO period and the alert windows into
budgets left and burn-rate alerts, pure over counts plus two helpers that read the store.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from monitoring.health import (
    LATENCY_COLUMNS,
    check_objective,
    latency_good_total,
    poll_counts,
    uptime,
    window_bounds,
)

if TYPE_CHECKING:
    from monitoring.config import SloConfig
    from monitoring.store import Store


# -- SLO: error budget and burn rates ---------------------------------------------------------


@dataclass(frozen=True)
class ErrorBudget:
    """How much of the error budget of an SLO period is left.

    Attributes
    ----------
    objective : float
        Target share of good events, e.g. 0.999.
    good, total : float
        Good events and all events in the period.
    allowed_bad : float
        ``(1 - objective) * total``: bad events the objective allows.
    bad : float
        ``total - good``.
    remaining_fraction : float
        ``1 - bad / allowed_bad``: 1 is untouched, 0 spent, negative overspent; NaN with no
        events.
    """

    objective: float
    good: float
    total: float
    allowed_bad: float
    bad: float
    remaining_fraction: float


def error_budget(good: float, total: float, *, objective: float) -> ErrorBudget:
    """Error budget of an SLO from good and total event counts.

    Parameters
    ----------
    good : float
        Good events (e.g. polls not down).
    total : float
        All events.
    objective : float
        Target share of good events, strictly between 0 and 1.

    Returns
    -------
    ErrorBudget
    """
    objective = check_objective(objective)
    if not (0 <= good <= total):
        raise ValueError(f"good and total must satisfy 0 <= good <= total; got good={good!r}, total={total!r}")
    allowed = (1.0 - objective) * total
    bad = total - good
    remaining = 1.0 - bad / allowed if total > 0 else math.nan
    return ErrorBudget(objective=objective, good=good, total=total, allowed_bad=allowed, bad=bad,
                       remaining_fraction=remaining)


def burn_rate(bad: float, total: float, *, objective: float) -> float:
    """How many times faster than allowed the error budget burns: ``(bad / total) / (1 - objective)``.

    1 spends exactly the budget over the SLO period; 14.4 spends 2 % of a 30-day budget in
    one hour. NaN when ``total`` is 0.

    Parameters
    ----------
    bad : float
        Bad events in the window.
    total : float
        All events in the window.
    objective : float
        Target share of good events, strictly between 0 and 1.

    Returns
    -------
    float
    """
    objective = check_objective(objective)
    if not (0 <= bad <= total):
        raise ValueError(f"bad and total must satisfy 0 <= bad <= total; got bad={bad!r}, total={total!r}")
    return (bad / total) / (1.0 - objective) if total > 0 else math.nan


@dataclass(frozen=True)
class BurnRateRule:
    """Fire when the burn rate over both windows reaches the threshold."""

    long_window: float
    short_window: float
    threshold: float
    severity: str


BURN_RATE_RULES: tuple[BurnRateRule, ...] = (
    BurnRateRule(3600.0, 300.0, 14.4, "page"),
    BurnRateRule(6 * 3600.0, 1800.0, 6.0, "ticket"),
)
"""Multi-window, multi-burn-rate alerts of the Google SRE workbook (chapter "Alerting on SLOs").

Page when 2 % of a 30-day budget burns in one hour (14.4×, confirmed over the last 5 min);
open a ticket when 5 % burns in six hours (6×, confirmed over the last 30 min).
"""

BURN_RATE_WINDOWS: tuple[float, ...] = tuple(sorted({w for r in BURN_RATE_RULES
                                                     for w in (r.long_window, r.short_window)}))
"""Window lengths (seconds) the default rules need counts for: 5 min, 30 min, 1 h, 6 h."""


def _window_label(seconds: float) -> str:
    if seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    return f"{seconds / 60:g} min"


@dataclass(frozen=True)
class BurnRateWindow:
    """One multi-window rule evaluated now.

    Attributes
    ----------
    long_window, short_window : float
        Window lengths in seconds.
    threshold : float
        Burn rate both windows must reach.
    long_rate, short_rate : float
        Burn rates over the two windows (NaN with no events).
    firing : bool
        Both rates ≥ threshold.
    severity : {"page", "ticket"}
    """

    long_window: float
    short_window: float
    threshold: float
    long_rate: float
    short_rate: float
    firing: bool
    severity: str

    @property
    def label(self) -> str:
        """The windows in words, e.g. ``"1 h / 5 min"``."""
        return f"{_window_label(self.long_window)} / {_window_label(self.short_window)}"


@dataclass(frozen=True)
class BurnRateAlerts:
    """Multi-window burn-rate alerts of one SLI.

    Attributes
    ----------
    sli : str
        What is measured, e.g. ``"availability"`` or ``"latency"``.
    objective : float
    windows : tuple of BurnRateWindow
        One per rule, in the order of the rules.
    verdict : {"page", "ticket", "ok", "no_data"}
        The most severe firing rule; ``no_data`` when no window has an event.
    reason : str
        The verdict in plain language.
    """

    sli: str
    objective: float
    windows: tuple[BurnRateWindow, ...]
    verdict: str
    reason: str


def window_counts(ts: Sequence[float], good: Sequence[bool], *, now: float,
                  windows: Sequence[float] = BURN_RATE_WINDOWS) -> dict[float, tuple[int, int]]:
    """Count good and all events in windows ending now.

    Parameters
    ----------
    ts : array-like of float
        Event times (Unix seconds).
    good : array-like of bool
        Whether each event was good.
    now : float
        End of every window (exclusive).
    windows : sequence of float, default=BURN_RATE_WINDOWS
        Window lengths in seconds; window ``w`` holds events with ``now - w <= ts < now``,
        as the store's queries select them.

    Returns
    -------
    dict of float to (good, total)
    """
    ts = np.asarray(ts, dtype=float)
    good = np.asarray(good, dtype=bool)
    if ts.shape != good.shape:
        raise ValueError(f"ts and good must have the same length; got {len(ts)} and {len(good)}")
    counts = {}
    for w in windows:
        inside = (ts >= now - w) & (ts < now)
        counts[float(w)] = (int(good[inside].sum()), int(inside.sum()))
    return counts


def burn_rate_alerts(counts: Mapping[float, tuple[float, float]], *, objective: float,
                     rules: Sequence[BurnRateRule] = BURN_RATE_RULES, sli: str = "availability") -> BurnRateAlerts:
    """Evaluate multi-window, multi-burn-rate alerts from event counts per window.

    A rule fires when the burn rate (:func:`burn_rate`) over its long window *and* over its
    short window both reach its threshold: the long window makes the alert significant,
    the short one makes it stop soon after the problem does. With the default rules:
    page at 14.4× over 1 h and 5 min, ticket at 6× over 6 h and 30 min.

    Parameters
    ----------
    counts : mapping of float to (good, total)
        Window length in seconds → good and total events in the window ending now, for
        every window the rules use (see :func:`window_counts`,
        :func:`availability_window_counts`).
    objective : float
        Target share of good events, strictly between 0 and 1.
    rules : sequence of BurnRateRule, default=BURN_RATE_RULES
    sli : str, default="availability"
        Name of the indicator, carried into the result.

    Returns
    -------
    BurnRateAlerts
    """
    objective = check_objective(objective)
    needed = sorted({w for r in rules for w in (r.long_window, r.short_window)})
    missing = [w for w in needed if w not in counts]
    if missing:
        raise ValueError(f"counts must have a (good, total) pair for every window {needed}; missing {missing}")

    rate = {w: burn_rate(counts[w][1] - counts[w][0], counts[w][1], objective=objective) for w in needed}
    evaluated = tuple(
        BurnRateWindow(long_window=r.long_window, short_window=r.short_window, threshold=r.threshold,
                       long_rate=rate[r.long_window], short_rate=rate[r.short_window],
                       firing=bool(rate[r.long_window] >= r.threshold and rate[r.short_window] >= r.threshold),
                       severity=r.severity)
        for r in rules
    )
    firing = [w for w in evaluated if w.firing]
    if firing:
        worst = next((w for w in firing if w.severity == "page"), firing[0])
        reason = (f"{sli} budget burning {worst.long_rate:.1f}× as fast as allowed over "
                  f"{_window_label(worst.long_window)} ({worst.short_rate:.1f}× over "
                  f"{_window_label(worst.short_window)}; threshold {worst.threshold:g}×): {worst.severity}")
        return BurnRateAlerts(sli, objective, evaluated, worst.severity, reason)
    if all(counts[w][1] == 0 for w in needed):
        return BurnRateAlerts(sli, objective, evaluated, "no_data",
                              f"no {sli} events in the last {_window_label(max(needed))}")
    rates = ", ".join(f"{w.long_rate:.1f}× over {_window_label(w.long_window)}" for w in evaluated
                      if not math.isnan(w.long_rate))
    return BurnRateAlerts(sli, objective, evaluated, "ok", f"{sli} budget within limits ({rates})")


def availability_window_counts(store: Store, service: str, *, now: float,
                               windows: Sequence[float] = BURN_RATE_WINDOWS) -> dict[float, tuple[int, int]]:
    """Polls not down and all polls of ``service`` per window ending now (one query each).

    Returns
    -------
    dict of float to (good, total)
    """
    counts = {}
    for w in windows:
        result = uptime(poll_counts(store, service, now=now, seconds=w))
        counts[float(w)] = (result.up + result.degraded, result.n)
    return counts


def latency_window_counts(probes: pd.DataFrame, rollups: pd.DataFrame, *, now: float, threshold_ms: float,
                          windows: Sequence[float] = BURN_RATE_WINDOWS,
                          check: str = "predict") -> dict[float, tuple[float, int]]:
    """Latencies at most ``threshold_ms`` and all latencies of one check per window ending now.

    Parameters
    ----------
    probes : DataFrame
        Raw probes (``ts, check, latency_ms``) covering the longest window.
    rollups : DataFrame
        Downsampled probes (``bucket_ts, check, latency_hist``) covering the longest window;
        a rollup bucket counts in a window when it starts in it.
    now : float
        End of every window (exclusive).
    threshold_ms : float
        Latency a good event does not exceed (``slo.latency_ms``).
    windows : sequence of float, default=BURN_RATE_WINDOWS
        Window lengths in seconds.
    check : str, default="predict"

    Returns
    -------
    dict of float to (good, total)
        As :func:`latency_good_total` counts them.
    """
    counts = {}
    for w in windows:
        since, until = window_bounds(now, w)
        counts[float(w)] = latency_good_total(
            probes[(probes["ts"] >= since) & (probes["ts"] < until)],
            rollups[(rollups["bucket_ts"] >= since) & (rollups["bucket_ts"] < until)],
            threshold_ms=threshold_ms, check=check,
        )
    return counts


def slo_burn_alerts(store: Store, service: str, *, slo: SloConfig, now: float,
                    rules: Sequence[BurnRateRule] = BURN_RATE_RULES) -> dict[str, BurnRateAlerts]:
    """Burn-rate alerts of both SLIs of ``service``: availability and canary latency.

    Four count queries for availability (one per window) and two reads of the canary
    probes of the longest window (raw and downsampled, so a raw retention shorter than the
    longest window is fine).

    Parameters
    ----------
    store : Store
    service : str
    slo : SloConfig
        ``availability`` and ``latency_target`` are the objectives; ``latency_ms`` the
        bound of a good canary.
    now : float
        End of the windows (Unix seconds, exclusive).
    rules : sequence of BurnRateRule, default=BURN_RATE_RULES

    Returns
    -------
    dict
        ``{"availability": BurnRateAlerts, "latency": BurnRateAlerts}``.
    """
    windows = sorted({w for r in rules for w in (r.long_window, r.short_window)})
    availability = availability_window_counts(store, service, now=now, windows=windows)
    since, until = window_bounds(now, max(windows))
    latency = latency_window_counts(
        store.read_probes(service, since=since, until=until, checks=["predict"], columns=LATENCY_COLUMNS),
        store.read_rollups(service, since=since, until=until, checks=["predict"]),
        now=now, threshold_ms=slo.latency_ms, windows=windows,
    )
    return {
        "availability": burn_rate_alerts(availability, objective=slo.availability, rules=rules, sli="availability"),
        "latency": burn_rate_alerts(latency, objective=slo.latency_target, rules=rules, sli="latency"),
    }


def slo_error_budgets(store: Store, service: str, *, slo: SloConfig, now: float) -> dict[str, ErrorBudget]:
    """Error budgets of ``service`` over the SLO period (``slo.window_days``) ending now.

    Parameters
    ----------
    store : Store
    service : str
    slo : SloConfig
    now : float

    Returns
    -------
    dict
        ``{"availability": ErrorBudget, "latency": ErrorBudget}``; availability from poll
        counts (one query), latency from raw and downsampled canary probes
        (:func:`latency_good_total`).
    """
    since, until = window_bounds(now, slo.window_days * 86400.0)
    polls = uptime(store.poll_state_counts(service, since=since, until=until))
    probes = store.read_probes(service, since=since, until=until, checks=["predict"], columns=LATENCY_COLUMNS)
    rollups = store.read_rollups(service, since=since, until=until, checks=["predict"])
    good, total = latency_good_total(probes, rollups, threshold_ms=slo.latency_ms)
    return {
        "availability": error_budget(polls.up + polls.degraded, polls.n, objective=slo.availability),
        "latency": error_budget(good, total, objective=slo.latency_target),
    }
