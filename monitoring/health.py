"""Service health: poll verdicts, current status, uptime and latency (SLO budgets and burn rates: ``monitoring.slo``).

Pure computations over what the store returns (DataFrames and counts), plus a few helpers
that take a :class:`~monitoring.store.Store` and make the handful of cheap queries the
Service-health page needs. Nothing here imports streamlit.

States
------
``up``
    Every check passed and the canary prediction was within the latency SLO.
``degraded``
    The service is live but not fully healthy: a readiness check or the canary prediction
    failed, or the canary was slower than the SLO.
``down``
    The live check failed, or the canary prediction and readiness both failed.
``unknown``
    No data: no poll yet, or none recent enough to trust.

Service-level indicators
------------------------
availability
    Share of polls that are not ``down`` (``degraded`` counts as available).
latency
    Share of canary predictions whose latency is at most ``slo.latency_ms``. Every canary
    with a latency counts, failed ones included (their failure already counts against
    availability; a timeout counts as slow).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from monitoring.metrics import (
    DEFAULT_QUANTILES,
    _check_bucket_seconds,
    _check_frame,
    _check_quantiles,
    histogram_quantile,
    quantile_column,
)
from monitoring.store import LATENCY_BUCKETS_MS, latency_histogram

if TYPE_CHECKING:
    from monitoring.clients import CallResult
    from monitoring.config import SloConfig
    from monitoring.store import Store

# -- states -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StateStyle:
    """How a state is shown: a short label and a colour (hex)."""

    label: str
    color: str


STATE_STYLES: Mapping[str, StateStyle] = MappingProxyType({
    "up": StateStyle("Up", "#16a34a"),
    "degraded": StateStyle("Degraded", "#d97706"),
    "down": StateStyle("Down", "#dc2626"),
    "unknown": StateStyle("Unknown", "#9ca3af"),
})
"""State → label and colour, from best to worst then unknown; the one place the UI reads them."""

STATES = tuple(STATE_STYLES)
"""Every state a service can be in: ``up, degraded, down, unknown``."""

POLL_STATES = ("up", "degraded", "down")
"""States a poll can record (``unknown`` means no poll)."""

STALE_POLLS = 2
"""A status older than this many poll intervals is shown as ``unknown``."""

_CHECK_NAMES = {
    "live": "live check",
    "ready": "ready check",
    "model_ready": "model ready check",
    "predict": "canary prediction",
    "metadata": "metadata call",
}
_READINESS = ("ready", "model_ready")
LATENCY_COLUMNS = ("ts", "check", "latency_ms")  # all that latency computations read from raw probes


def format_duration(seconds: float) -> str:
    """Plain-language duration: ``45 s``, ``5 min``, ``2 h 5 min``, ``3 d 4 h``.

    Parameters
    ----------
    seconds : float
        Non-negative duration; NaN gives ``"–"``.

    Returns
    -------
    str
    """
    if seconds is None or not math.isfinite(seconds):
        return "–"
    seconds = max(0.0, float(seconds))
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def _check_positive(value: float, name: str, unit: str) -> float:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number of {unit}; got {value!r}")
    return float(value)


def check_objective(objective: float) -> float:
    if not (isinstance(objective, int | float) and 0 < objective < 1):
        raise ValueError(f"objective must be a fraction strictly between 0 and 1 (e.g. 0.999); got {objective!r}")
    return float(objective)


# -- one poll ---------------------------------------------------------------------------------


def _failure(result: CallResult) -> str:
    """``"<check> failed: <error>"``, naming the check in words."""
    what = _CHECK_NAMES.get(result.check, f"{result.check} check")
    detail = result.error or (f"HTTP {result.status}" if result.status is not None else "no detail")
    return f"{what} failed: {detail}"


def poll_state(report_checks: Sequence[CallResult], predict_check: CallResult | None, *,
               slo: SloConfig) -> tuple[str, str]:
    """Decide the state of one poll from its checks.

    Rules, first match wins:

    1. ``down`` when the live check failed (connection refused, timeout, 5xx...);
    2. ``down`` when the canary prediction failed and a readiness check (``ready`` or
       ``model_ready``) failed too;
    3. ``degraded`` when a readiness check failed, the canary prediction failed, or the
       canary took longer than ``slo.latency_ms``;
    4. ``up`` otherwise.

    Other checks (``metadata``) are informational and never change the state. A poll
    without a canary (``predict_check`` None: no reference rows to send) is judged on its
    health checks alone.

    Parameters
    ----------
    report_checks : sequence of CallResult
        The health checks of the poll (``HealthReport.checks``): one with check ``live``,
        optionally ``ready`` and ``model_ready``.
    predict_check : CallResult or None
        The canary prediction (check ``predict``), or None when none was sent.
    slo : SloConfig
        Objectives; ``slo.latency_ms`` bounds the canary's latency.

    Returns
    -------
    state : {"up", "degraded", "down"}
    reason : str
        Plain language naming each failing check and its error, e.g.
        ``"canary prediction failed: HTTP 500: model crashed"`` or
        ``"canary prediction took 812 ms (SLO 500 ms)"``; ``"all checks passed"`` when up.

    Raises
    ------
    ValueError
        When ``report_checks`` has no ``live`` check.
    """
    live = next((c for c in report_checks if c.check == "live"), None)
    if live is None:
        raise ValueError(
            "report_checks must include the 'live' check; got checks "
            f"{[c.check for c in report_checks]!r}"
        )
    if not live.ok:
        return "down", _failure(live)
    not_ready = [c for c in report_checks if c.check in _READINESS and not c.ok]
    if predict_check is not None and not predict_check.ok and not_ready:
        return "down", "; ".join(_failure(c) for c in [predict_check, *not_ready])
    problems = [_failure(c) for c in not_ready]
    if predict_check is not None:
        if not predict_check.ok:
            problems.append(_failure(predict_check))
        elif predict_check.latency_ms > slo.latency_ms:
            problems.append(f"canary prediction took {predict_check.latency_ms:.0f} ms (SLO {slo.latency_ms:g} ms)")
    if problems:
        return "degraded", "; ".join(problems)
    return "up", "all checks passed"


# -- status now -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceStatus:
    """What state a service is in now.

    Attributes
    ----------
    state : {"up", "degraded", "down", "unknown"}
    reason : str
        Plain language: the newest poll's reason (a traceback cut to its last line), or why the
        state is unknown.
    since_ts : float or None
        Start of the current run of this state among the polls given (Unix seconds): the
        state has held at least since then. For a stale status, the last poll's time.
    last_poll_ts : float or None
        Time of the newest poll, None when there is none.
    details : str
        The newest poll's whole reason when ``reason`` had to be cut; empty otherwise.
    """

    state: str
    reason: str
    since_ts: float | None
    last_poll_ts: float | None
    details: str = ""


MAX_REASON_CHARS = 200
"""A reason shown in a status line is cut to this many characters (the whole text stays in ``details``)."""


def short_reason(text: str, *, limit: int = MAX_REASON_CHARS) -> str:
    """The part of a service's error text a status line shows: the last line of a traceback, at most ``limit``.

    A server that answers with its whole Python traceback (MLServer, KServe) gives a reason of
    hundreds of lines; the last non-empty line (``ValueError: X has 14 features, …``) is what
    went wrong. Text up to the first line break is kept otherwise.

    Parameters
    ----------
    text : str
    limit : int, default=200

    Returns
    -------
    str
    """
    text = str(text or "").strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    if len(lines) > 1 and any(line.startswith("Traceback") or line.startswith('File "') for line in lines):
        prefix = lines[0].split("Traceback", 1)[0].strip() if "Traceback" in lines[0] else ""
        short = f"{prefix} {lines[-1]}".strip() if prefix else lines[-1]
    elif "Traceback (most recent call last)" in text:
        head, _, tail = text.partition("Traceback (most recent call last)")  # a traceback inside a JSON string
        head = re.sub(r'[{\[]?\s*"[^"]*"\s*:\s*"?\s*$', "", head.strip()).strip()
        last = tail.strip().split("\\n")[-1] if "\\n" in tail else tail.strip()
        last = re.sub(r'"\s*[}\]]*\s*$', "", last).strip()  # the JSON string's closing quote and braces
        short = f"{head} {last}".strip()
    else:
        short = lines[0] + (" …" if len(lines) > 1 else "")
    return short if len(short) <= limit else short[: limit - 1].rstrip() + "…"


def _poll_frame(last_polls: pd.DataFrame) -> pd.DataFrame:
    """Polls sorted by time with a clean ``state`` and ``reason``."""
    _check_frame(last_polls, "last_polls", ("ts", "state", "error"))
    polls = last_polls.sort_values("ts", kind="stable")
    state = polls["state"].where(polls["state"].isin(POLL_STATES), "unknown")
    reason = polls["error"].where(polls["error"].notna(), "")
    reason = reason.where((reason != "") | (state != "up"), "all checks passed")
    return pd.DataFrame({"ts": polls["ts"].astype(float).to_numpy(), "state": state.astype(str).to_numpy(),
                         "reason": reason.astype(str).to_numpy()})


def current_status(last_polls: pd.DataFrame, *, now: float, poll_interval: float) -> ServiceStatus:
    """The state of a service now, from its latest poll verdicts.

    Parameters
    ----------
    last_polls : DataFrame
        Poll verdicts as :meth:`~monitoring.store.Store.last_polls` returns them:
        ``ts, state, error`` (the error column holds the reason).
    now : float
        Current time (Unix seconds).
    poll_interval : float
        Seconds between polls of this service (``ServiceConfig.poll_interval``).

    Returns
    -------
    ServiceStatus
        The newest poll's state and its reason, cut by :func:`short_reason` (the whole text in
        ``details`` when it was cut); ``unknown`` when there is no poll, or when the newest is
        older than :data:`STALE_POLLS` poll intervals (``"last poll 23 s ago, …"``): a hung
        service can hold a poll open, so an old poll is never read as "up".
    """
    poll_interval = _check_positive(poll_interval, "poll_interval", "seconds")
    polls = _poll_frame(last_polls)
    if polls.empty:
        return ServiceStatus("unknown", "no poll recorded yet: is the collector running?", None, None)
    last = polls.iloc[-1]
    last_ts = float(last["ts"])
    age = now - last_ts
    if age > STALE_POLLS * poll_interval:
        return ServiceStatus("unknown", f"last poll {format_duration(age)} ago, more than {STALE_POLLS} poll "
                             "intervals: the service may be hung, or the collector stopped", last_ts, last_ts)
    states = polls["state"].to_numpy()
    changes = np.flatnonzero(states != last["state"])
    start = changes[-1] + 1 if len(changes) else 0
    full = str(last["reason"])
    return ServiceStatus(str(last["state"]), short_reason(full), float(polls["ts"].iloc[start]), last_ts,
                         details=full if short_reason(full) != full else "")


def heartbeat(last_polls: pd.DataFrame) -> pd.DataFrame:
    """The recent polls, ready to draw as a row of coloured bars.

    Parameters
    ----------
    last_polls : DataFrame
        Poll verdicts as :meth:`~monitoring.store.Store.last_polls` returns them:
        ``ts, state, error``.

    Returns
    -------
    DataFrame
        One row per poll, oldest first, with columns ``ts`` (Unix seconds), ``state``
        (``up``/``degraded``/``down``, ``unknown`` for a poll without a valid state),
        ``reason`` (``"all checks passed"`` for up polls without one), ``label`` and
        ``color`` from :data:`STATE_STYLES`.
    """
    polls = _poll_frame(last_polls).reset_index(drop=True)
    polls["label"] = [STATE_STYLES[s].label for s in polls["state"]]
    polls["color"] = [STATE_STYLES[s].color for s in polls["state"]]
    return polls


def incident_table(incidents: pd.DataFrame, *, now: float, states: Sequence[str] | None = None) -> pd.DataFrame:
    """State changes as periods: when each state began, ended and how long it lasted.

    Parameters
    ----------
    incidents : DataFrame
        State changes as :meth:`~monitoring.store.Store.read_incidents` returns them:
        ``ts, state, previous_state, reason``, in any order.
    now : float
        Current time (Unix seconds); the newest period is ongoing until now.
    states : sequence of str, optional
        Keep only periods in these states (e.g. ``("degraded", "down")``), after their end
        has been found from the next change. Default: all.

    Returns
    -------
    DataFrame
        One row per period, newest first, with columns ``start`` and ``end`` (Unix seconds;
        ``end`` is the next change, NaN while ongoing), ``duration_s`` (to ``now`` while
        ongoing), ``ongoing`` (bool), ``state``, ``previous_state`` and ``reason``.
    """
    _check_frame(incidents, "incidents", ("ts", "state", "reason"))
    if states is not None:
        unknown = sorted(set(states) - set(STATES))
        if unknown:
            raise ValueError(f"states must be among {list(STATES)}; got {list(states)!r}")
    rows = incidents.sort_values("ts", kind="stable").reset_index(drop=True)
    start = rows["ts"].astype(float)
    end = start.shift(-1)
    ongoing = end.isna()
    table = pd.DataFrame({
        "start": start,
        "end": end,
        "duration_s": end.fillna(float(now)) - start,
        "ongoing": ongoing,
        "state": rows["state"],
        "previous_state": rows.get("previous_state"),
        "reason": rows["reason"],
    })
    if states is not None:
        table = table[table["state"].isin(list(states))]
    return table.iloc[::-1].reset_index(drop=True)


# -- uptime -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class UptimeResult:
    """Share of polls in which the service was available (not down).

    Attributes
    ----------
    fraction : float
        ``(up + degraded) / n``; NaN when ``n`` is 0.
    n : int
        Number of polls.
    up, degraded, down : int
        Polls per state.
    """

    fraction: float
    n: int
    up: int
    degraded: int
    down: int


UPTIME_WINDOWS: Mapping[str, float] = MappingProxyType({"24h": 86400.0, "7d": 7 * 86400.0, "30d": 30 * 86400.0})
"""Windows the health page shows uptime over: label → seconds."""


def uptime(state_counts: Mapping[str, int]) -> UptimeResult:
    """Uptime from counts of poll verdicts; degraded polls count as up.

    Parameters
    ----------
    state_counts : mapping of str to int
        Polls per state, as :meth:`~monitoring.store.Store.poll_state_counts` returns them;
        keys among ``up``, ``degraded``, ``down`` (a missing key is 0).

    Returns
    -------
    UptimeResult
    """
    unknown = sorted(set(state_counts) - set(POLL_STATES))
    if unknown:
        raise ValueError(f"state_counts keys must be among {list(POLL_STATES)}; got {sorted(state_counts)!r}")
    counts = {s: int(state_counts.get(s, 0)) for s in POLL_STATES}
    if any(c < 0 for c in counts.values()):
        raise ValueError(f"state_counts must be non-negative counts; got {dict(state_counts)!r}")
    n = sum(counts.values())
    fraction = (counts["up"] + counts["degraded"]) / n if n else math.nan
    return UptimeResult(fraction=fraction, n=n, **counts)


def uptime_windows(store: Store, service: str, *, now: float,
                   windows: Mapping[str, float] = UPTIME_WINDOWS) -> dict[str, UptimeResult]:
    """Uptime of ``service`` over each window ending now (raw and downsampled polls together).

    Parameters
    ----------
    store : Store
    service : str
    now : float
        End of the windows (Unix seconds).
    windows : mapping of str to float, default=UPTIME_WINDOWS
        Label → window length in seconds (24h, 7d, 30d).

    Returns
    -------
    dict of str to UptimeResult
        Keyed by the labels of ``windows``. One count query per window.
    """
    return {label: uptime(poll_counts(store, service, now=now, seconds=seconds))
            for label, seconds in windows.items()}


def poll_counts(store: Store, service: str, *, now: float, seconds: float) -> dict[str, int]:
    since, until = window_bounds(now, seconds)
    return store.poll_state_counts(service, since=since, until=until)


def window_bounds(now: float, seconds: float) -> tuple[float, float]:
    """``since, until`` of the window of ``seconds`` ending at ``now``: ``[now - seconds, now)``.

    Closed on the left like the store's queries, so a rollup bucket that starts on the edge
    of the window is counted whole, and raw and downsampled history give the same counts.
    """
    return now - seconds, now


# -- latency ----------------------------------------------------------------------------------


def latency_percentiles(latencies_ms: Sequence[float], *,
                        quantiles: Sequence[float] = DEFAULT_QUANTILES) -> dict[str, float]:
    """Exact percentiles of raw latencies (numpy's linear interpolation).

    Parameters
    ----------
    latencies_ms : array-like of float
        Latencies in milliseconds; NaN and None are ignored.
    quantiles : sequence of float, default=(0.5, 0.95, 0.99)

    Returns
    -------
    dict
        ``n`` (int, latencies used) and one key per quantile named by
        :func:`~monitoring.metrics.quantile_column` (``p50_ms``, ``p95_ms``, ``p99_ms``);
        NaN when there is no latency.
    """
    quantiles = _check_quantiles(quantiles)
    values = pd.to_numeric(pd.Series(latencies_ms, dtype=object), errors="coerce").dropna().to_numpy(dtype=float)
    result: dict[str, float] = {"n": len(values)}
    points = np.percentile(values, [q * 100 for q in quantiles]) if len(values) else [math.nan] * len(quantiles)
    result.update({quantile_column(q): float(p) for q, p in zip(quantiles, points, strict=True)})
    return result


def latency_over_time(probes: pd.DataFrame, rollups: pd.DataFrame, *, bucket_seconds: float,
                      check: str = "predict", quantiles: Sequence[float] = DEFAULT_QUANTILES) -> pd.DataFrame:
    """Latency percentiles of one check per time bucket, from raw and downsampled probes.

    A bucket holding raw probes only gets exact percentiles (numpy, linear). A bucket that
    holds downsampled probes gets them from the latency histogram over
    :data:`~monitoring.store.LATENCY_BUCKETS_MS` (raw latencies in the same bucket are
    counted into that histogram first), interpolated as
    :func:`~monitoring.metrics.histogram_quantile` does, so within one histogram bucket of
    the exact answer. Buckets are aligned on the Unix epoch; every probe with a latency
    counts, failed ones included, as in the rollups.

    Parameters
    ----------
    probes : DataFrame
        Raw probes as :meth:`~monitoring.store.Store.read_probes` returns them (at least
        ``ts, check, latency_ms``).
    rollups : DataFrame
        Downsampled probes as :meth:`~monitoring.store.Store.read_rollups` returns them (at
        least ``bucket_ts, check, latency_hist``; the histogram holds per-bucket counts,
        not cumulative ones).
    bucket_seconds : float
        Width of the time buckets.
    check : str, default="predict"
        The check whose latency to show.
    quantiles : sequence of float, default=(0.5, 0.95, 0.99)

    Returns
    -------
    DataFrame
        One row per bucket with at least one latency, ascending, with columns
        ``bucket_ts`` (start, Unix seconds), ``n`` (latencies) and one column per quantile
        (``p50_ms``, ``p95_ms``, ``p99_ms`` by default).
    """
    bucket_seconds = _check_bucket_seconds(bucket_seconds)
    quantiles = _check_quantiles(quantiles)
    _check_frame(probes, "probes", ("ts", "check", "latency_ms"))
    _check_frame(rollups, "rollups", ("bucket_ts", "check", "latency_hist"))
    columns = ["bucket_ts", "n", *(quantile_column(q) for q in quantiles)]

    raw = probes[(probes["check"] == check) & probes["latency_ms"].notna()]
    raw_groups = dict(iter(raw["latency_ms"].astype(float).groupby(
        np.floor(raw["ts"].astype(float) / bucket_seconds) * bucket_seconds)))
    folded = rollups[rollups["check"] == check]
    hist_groups: dict[float, np.ndarray] = {}
    for bucket_ts, hist in zip(np.floor(folded["bucket_ts"].astype(float) / bucket_seconds) * bucket_seconds,
                               folded["latency_hist"], strict=True):
        hist_groups[bucket_ts] = hist_groups.get(bucket_ts, 0) + np.asarray(hist, dtype=float)

    rows = []
    for bucket_ts in sorted(set(raw_groups) | set(hist_groups)):
        latencies = raw_groups.get(bucket_ts, pd.Series(dtype=float)).to_numpy()
        if bucket_ts not in hist_groups:
            row = latency_percentiles(latencies, quantiles=quantiles)
        else:
            counts = hist_groups[bucket_ts] + np.asarray(latency_histogram(latencies.tolist()), dtype=float)
            cumulative = np.cumsum(counts)
            row = {"n": int(cumulative[-1])}
            row.update({quantile_column(q): histogram_quantile(q, LATENCY_BUCKETS_MS, cumulative)
                        for q in quantiles})
        if row["n"]:
            rows.append({"bucket_ts": float(bucket_ts), **row})
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=int if c == "n" else float) for c in columns})
    return pd.DataFrame(rows, columns=columns)


def latency_good_total(probes: pd.DataFrame, rollups: pd.DataFrame, *, threshold_ms: float,
                       check: str = "predict") -> tuple[float, int]:
    """How many latencies of one check were at most ``threshold_ms``, out of how many.

    Raw probes are counted exactly. Downsampled probes are counted from their histogram:
    whole buckets up to the threshold, plus a linear share of the bucket the threshold
    falls in (exact when the threshold is one of
    :data:`~monitoring.store.LATENCY_BUCKETS_MS`, such as the default 500 ms).

    Parameters
    ----------
    probes : DataFrame
        Raw probes (``check, latency_ms``), as :meth:`~monitoring.store.Store.read_probes`.
    rollups : DataFrame
        Downsampled probes (``check, latency_hist``), as
        :meth:`~monitoring.store.Store.read_rollups`.
    threshold_ms : float
        Latency a good event does not exceed.
    check : str, default="predict"

    Returns
    -------
    good : float
        Latencies ≤ ``threshold_ms`` (fractional when interpolated).
    total : int
        Latencies counted.
    """
    threshold_ms = _check_positive(threshold_ms, "threshold_ms", "milliseconds")
    _check_frame(probes, "probes", ("check", "latency_ms"))
    _check_frame(rollups, "rollups", ("check", "latency_hist"))
    raw = probes.loc[probes["check"] == check, "latency_ms"].dropna().astype(float)
    good, total = float((raw <= threshold_ms).sum()), len(raw)
    hists = [np.asarray(h, dtype=float) for h in rollups.loc[rollups["check"] == check, "latency_hist"]]
    if hists:
        counts = np.sum(hists, axis=0)
        bounds = np.asarray(LATENCY_BUCKETS_MS)
        lower = np.concatenate([[0.0], bounds[:-1]])
        share = np.clip((threshold_ms - lower) / (bounds - lower), 0.0, 1.0)  # 0 for the +Inf bucket
        good += float((counts * share).sum())
        total += int(counts.sum())
    return good, total
