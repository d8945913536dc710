"""Verdicts on performance against the baseline: over a judged period, and since when it is worse.

:func:`judged_verdict` pools every labelled prediction made in the judged period (by
default the last 7 days before ``now``, today's included) and compares the pooled value
and its interval (Wilson for proportions, the seeded bootstrap of
:mod:`monitoring.statistics` for the others) with the baseline:

* ``worse`` / ``better``: the whole interval lies on that side of the baseline;
* ``in line``: the interval contains the baseline and is narrow: its half-width is at
  most the tolerance (:func:`tolerance_for`: 0.05 for metrics on a 0–1 scale, 5 % of the
  baseline for log loss, MAE and RMSE), so a value called in line is within twice the
  tolerance of the baseline;
* ``uncertain``: the interval contains the baseline but is wider than the tolerance: too
  few labels to tell;
* ``unknown``: no baseline, fewer labelled predictions than ``min_labels``, or a metric
  that cannot be computed from them; ``reason`` says which.

When it is worse, :func:`change_point` dates the change from the per-window values of the
chart (judged windows only: enough labels and closed by ``now``), CUSUM-style: the start
of the suffix of windows with the largest sum of ``baseline − value − slack`` (the sign
flipped for lower-is-better metrics), with ``slack`` half the pooled gap. A window still
open at ``now`` (``partial``) never decides the date, and the sentence does not move with
the hour of the day. Nothing here reads the clock.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from monitoring.baseline import Baseline
from monitoring.labels import LabeledPredictions
from monitoring.statistics import (
    LOWER_IS_BETTER,
    METRIC_LABELS,
    SCORE_METRICS,
    group_metrics,
    metrics_for,
    wilson_interval,
)

if TYPE_CHECKING:
    from monitoring.performance import PerformanceOverTime

VERDICT_STATES = ("worse", "better", "in line", "uncertain", "unknown")
"""What a verdict can say."""

UNIT_SCALE_METRICS = frozenset({"accuracy", "precision", "recall", "f1", "roc_auc", "r2"})
"""Metrics on a 0–1 scale (R² at most 1), whose tolerance is absolute."""

DEFAULT_TOLERANCE = 0.05
"""Largest interval half-width that still allows ``in line``: absolute on a 0–1 scale, else relative."""

_DAY = 86400.0


@dataclass(frozen=True)
class BaselineVerdict:
    """How performance compares with the baseline, in a state and one plain sentence.

    Attributes
    ----------
    state : {"worse", "better", "in line", "uncertain", "unknown"}
        See :func:`judged_verdict`. :func:`baseline_verdict` (the newest window alone) says
        only ``worse``, ``better``, ``in line`` or ``unknown``.
    metric : str
    value, low, high : float
        The judged value and its interval (NaN when unknown).
    baseline : float
        NaN without one.
    window_start : float or None
        :func:`baseline_verdict`: start of the judged window; None for a judged period.
    worse_since : float or None
        Start of the first window of the worse run (:func:`change_point`), when worse.
    message : str
        The verdict in one plain sentence.
    n_labelled : int
        Labelled predictions behind the value (the scored ones, for ROC AUC and log loss).
    period_start, period_end : float
        The judged period ``[period_start, period_end)`` of prediction time (Unix seconds).
    reason : str
        Why the state is ``unknown`` or ``uncertain``; empty otherwise.
    confidence : float
        Coverage of the interval.
    tolerance : float
        Half-width above which an interval holding the baseline is ``uncertain`` (NaN when
        not applied).
    baseline_source : str
        Where the baseline comes from (:attr:`monitoring.baseline.Baseline.source`).
    """

    state: str
    metric: str
    value: float = math.nan
    low: float = math.nan
    high: float = math.nan
    baseline: float = math.nan
    window_start: float | None = None
    worse_since: float | None = None
    message: str = ""
    n_labelled: int = 0
    period_start: float = math.nan
    period_end: float = math.nan
    reason: str = ""
    confidence: float = 0.95
    tolerance: float = math.nan
    baseline_source: str = ""


def tolerance_for(metric: str, baseline: float) -> float:
    """Largest interval half-width at which a value holding ``baseline`` is called ``in line``.

    0.05 for metrics on a 0–1 scale (accuracy, precision, recall, F1, ROC AUC, R²); 5 % of
    the baseline for log loss, MAE and RMSE (NaN without a baseline).
    """
    if metric in UNIT_SCALE_METRICS:
        return DEFAULT_TOLERANCE
    return DEFAULT_TOLERANCE * abs(baseline) if math.isfinite(baseline) else math.nan


# -- the judged period -----------------------------------------------------------------------


def judged_verdict(labeled: LabeledPredictions, performance: PerformanceOverTime, *, metric: str,
                   baseline: Baseline, days: float = 7.0, confidence: float = 0.95, random_state: int = 0,
                   n_bootstrap: int = 200, tolerance: float | None = None) -> BaselineVerdict:
    """Judge ``metric`` over the labelled predictions of the last ``days`` days against the baseline.

    Parameters
    ----------
    labeled : LabeledPredictions
        Its ``now`` ends the period; predictions made in ``[now - days, now)`` with a label
        are pooled, today's included.
    performance : PerformanceOverTime
        The windows of the chart: its judged windows (enough labels, not partial) date the
        change (:func:`change_point`); its ``min_labels`` is the fewest labels judged.
    metric : str
        A name of :data:`monitoring.statistics.METRIC_LABELS`.
    baseline : Baseline
    days : float, default=7.0
        Length of the judged period (``[services.performance] judged_days``).
    confidence : float, default=0.95
        Coverage of the interval, in (0, 1).
    random_state : int, default=0
        Seed of the bootstrap (metrics without a Wilson interval).
    n_bootstrap : int, default=200
        Bootstrap resamples; 0 = no interval for those metrics (they are judged on the value).
    tolerance : float, optional
        Half-width above which an interval holding the baseline is ``uncertain``; default
        :func:`tolerance_for`.

    Returns
    -------
    BaselineVerdict
        Never raises for the data: no labels, one row, NaN scores or no baseline give
        ``unknown`` with a ``reason``.

    Raises
    ------
    ValueError
        For an unknown metric name, ``days`` not > 0, ``confidence`` outside (0, 1), or a
        ``tolerance`` not > 0.
    """
    _check_judging(metric=metric, days=days, confidence=confidence, tolerance=tolerance)
    now = float(labeled.now)
    start = now - float(days) * _DAY
    task, classes = labeled.task, labeled.classes
    frame = labeled.frame
    ts = frame["ts"].to_numpy(dtype=float)
    if len(ts) < 2 or np.all(ts[1:] >= ts[:-1]):  # in prediction-time order, as joined: the period is one slice
        rows = slice(*np.searchsorted(ts, [start, now]))
    else:
        rows = (ts >= start) & (ts < now)
    label, predicted, score = (frame[c].to_numpy(dtype=float)[rows] for c in ("label", "prediction", "score"))
    chosen = ~np.isnan(label) & ~np.isnan(predicted)
    y, predicted, score, chosen_ts = label[chosen], predicted[chosen], score[chosen], ts[rows][chosen]
    counted = np.isfinite(score) if metric in SCORE_METRICS else np.ones(len(y), dtype=bool)

    def measure() -> tuple[float, float, float]:
        # Only the judged metric: its value and interval are those of the full row on the same draws.
        row = group_metrics(y, predicted, score, task=task, classes=classes, metrics=(metric,),
                            confidence=confidence, n_resamples=n_bootstrap,
                            rng=np.random.default_rng([random_state, 2]))
        return float(row[metric]), float(row[f"{metric}_low"]), float(row[f"{metric}_high"])

    open_since = _open_since(performance, now)
    return judge_period(PeriodMeasure(n_labelled=len(y), n_counted=int(counted.sum()),
                                      n_closed=int((counted & (chosen_ts < open_since)).sum()), measure=measure),
                        performance, metric=metric, baseline=baseline, task=task, classes=classes, days=days,
                        now=now, confidence=confidence, tolerance=tolerance)


@dataclass(frozen=True)
class PeriodMeasure:
    """What a verdict needs of the labelled predictions of its judged period.

    Attributes
    ----------
    n_labelled : int
        Labelled predictions made in the period.
    n_counted : int
        Those the metric counts (the scored ones for ROC AUC and log loss).
    n_closed : int
        Those counted that were made before the first window still open.
    measure : callable
        Returns the metric's ``(value, low, high)`` over the period; called only when the
        period holds enough labels.
    """

    n_labelled: int
    n_counted: int
    n_closed: int
    measure: Callable[[], tuple[float, float, float]]


def _check_judging(*, metric: str, days: float, confidence: float, tolerance: float | None) -> None:
    """The arguments every verdict checks (see :func:`judged_verdict`'s Raises)."""
    if metric not in METRIC_LABELS:
        raise ValueError(f"metric must be one of {list(METRIC_LABELS)}; got {metric!r}")
    if isinstance(days, bool) or not isinstance(days, int | float) or not math.isfinite(days) or days <= 0:
        raise ValueError(f"days must be a number of days > 0; got {days!r}")
    wilson_interval(0, 1, confidence=confidence)  # validates confidence
    if tolerance is not None and not (math.isfinite(tolerance) and tolerance > 0):
        raise ValueError(f"tolerance must be a number > 0, or None for the default rule; got {tolerance!r}")


def judge_period(period_data: PeriodMeasure, performance: PerformanceOverTime, *, metric: str, baseline: Baseline,
                 task: str, classes: tuple[float, ...], days: float, now: float, confidence: float = 0.95,
                 tolerance: float | None = None) -> BaselineVerdict:
    """The verdict on ``metric`` over the judged period ``[now - days, now)``, from what was measured there.

    :func:`judged_verdict` measures the period from labelled rows,
    :func:`monitoring.label_summary.summary_verdict` from counts made where the log lives;
    both judge here. Parameters as :func:`judged_verdict`'s; ``period_data`` is the period's
    :class:`PeriodMeasure`.

    Returns
    -------
    BaselineVerdict
    """
    _check_judging(metric=metric, days=days, confidence=confidence, tolerance=tolerance)
    name = METRIC_LABELS[metric]
    start = float(now) - float(days) * _DAY
    period = _period_text(days)
    base = baseline.get(metric)
    common = {"metric": metric, "baseline": base, "period_start": start, "period_end": float(now),
              "confidence": confidence, "baseline_source": baseline.source}

    def unknown(reason: str, message: str | None = None, **values) -> BaselineVerdict:
        return BaselineVerdict("unknown", **common, **values, reason=reason, message=message or reason)

    if metric not in metrics_for(task, classes, has_score=True):
        kind = f"{task} model" + (f" with {len(classes)} classes" if task == "classification" else "")
        return unknown(f"{name} does not apply to a {kind}.")
    n_rows, n = period_data.n_labelled, period_data.n_counted
    if n_rows == 0:
        return unknown(f"No prediction made in {period} has a label yet, so {name} cannot be judged.")
    if metric in SCORE_METRICS and n == 0:
        return unknown(f"{name} needs the model's logged score, and none of the {n_rows:,} labelled predictions "
                       f"of {period} has one.")
    min_labels = int(performance.min_labels)
    if n < min_labels:
        return unknown(f"Only {_count(n, 'labelled prediction')} in {period}; {name} is judged from "
                       f"{min_labels:,} on.", n_labelled=n)
    open_since = _open_since(performance, now)
    n_closed = period_data.n_closed
    if n_closed < min_labels:
        return unknown(f"Of the {_count(n, 'labelled prediction')} in {period}, only {n_closed:,} are in closed "
                       f"windows; the window still open (since {_when(open_since, performance.window, now)}) does "
                       f"not decide alone, and {name} is judged once closed windows hold {min_labels:,}.",
                       n_labelled=n)
    value, low, high = period_data.measure()
    if not math.isfinite(value):
        return unknown(f"{name} cannot be computed from the {_count(n, 'labelled prediction')} of {period} "
                       "(for instance, all their labels are of one class).", n_labelled=n)
    if not (math.isfinite(low) and math.isfinite(high)):
        low = high = value
    numbers = {"value": value, "low": low, "high": high, "n_labelled": n}
    described = (f"{name} over {period}: {value:.3f} ({confidence:.0%} interval {low:.3f}–{high:.3f}, "
                 f"{_count(n, 'label')})")
    if not math.isfinite(base):
        reason = baseline.reason or f"{name} has no baseline to compare with."
        return unknown(reason, f"{described}. {reason}", **numbers)

    lower_is_better = metric in LOWER_IS_BETTER
    allowed = tolerance if tolerance is not None else tolerance_for(metric, base)
    numbers["tolerance"] = allowed
    gap = value - base
    gap_text = (f"{abs(gap):.3f} {'above' if gap > 0 else 'below'} the baseline of {base:.3f}"
                + (" (lower is better)" if lower_is_better else ""))
    worse = low > base if lower_is_better else high < base
    better = high < base if lower_is_better else low > base
    if worse:
        since, every = change_point(performance.windows, metric, baseline=base, slack=abs(gap) / 2,
                                    lower_is_better=lower_is_better, now=now)
        unit = {"hour": "hour", "day": "day", "week": "week"}.get(performance.window, "window")
        if since is None:
            run = f"worse over {period} as a whole"
        else:
            run = f"worse in every {unit} since {_when(since, unit, now)}" if every else \
                f"worse since {_when(since, unit, now)}"
        return BaselineVerdict("worse", **common, **numbers, worse_since=since,
                               message=f"{described}, {gap_text}; {run}.")
    if better:
        return BaselineVerdict("better", **common, **numbers, message=f"{described}, {gap_text}: better.")
    half = (high - low) / 2
    if half > allowed:
        return BaselineVerdict(
            "uncertain", **common, **numbers,
            reason=f"Too few labels to tell: the interval holds the baseline of {base:.3f} but is wider than "
                   f"±{allowed:.3g}.",
            message=f"{described}: too few labels to tell whether it differs from the baseline of {base:.3f} (the "
                    f"interval holds it but is wider than ±{allowed:.3g}).")
    side = "above" if gap > 0 else "below"
    return BaselineVerdict("in line", **common, **numbers, message=(
        f"{described}, in line with the baseline of {base:.3f} ({abs(gap):.3f} {side} it; the interval holds it "
        f"and is within ±{allowed:.3g})."))


def change_point(windows: pd.DataFrame, metric: str, *, baseline: float, slack: float,
                 lower_is_better: bool = False, now: float | None = None) -> tuple[float | None, bool]:
    """Start of the run of windows that made the metric worse (a one-sided CUSUM change point).

    Over the judged windows (``enough_labels``, not ``partial``, a finite value), oldest
    first, each window scores ``d = baseline − value − slack`` (``value − baseline − slack``
    when lower is better); the change is at the start of the suffix with the largest sum of
    ``d``, when that sum is positive. A window whose own value sits within ``slack`` of the
    baseline counts against the run, so an old dip does not reach across good windows.

    Parameters
    ----------
    windows : DataFrame
        :attr:`monitoring.performance.PerformanceOverTime.windows`.
    metric : str
        A metric column of ``windows``.
    baseline : float
    slack : float
        Allowance per window, >= 0; :func:`judged_verdict` uses half the pooled gap.
    lower_is_better : bool, default=False
    now : float, optional
        Windows ending after it count as partial when ``windows`` has no ``partial`` column.

    Returns
    -------
    since : float or None
        ``window_start`` of the first window of the run; None when no suffix is worse.
    every : bool
        Whether every closed window of the run was judged and is on the worse side of the baseline.
    """
    if metric not in windows.columns or windows.empty or not math.isfinite(baseline):
        return None, False
    if not (math.isfinite(slack) and slack >= 0):
        raise ValueError(f"slack must be a number >= 0; got {slack!r}")
    values = windows[metric].to_numpy(dtype=float)
    closed = np.ones(len(windows), dtype=bool)
    if "partial" in windows.columns:
        closed = ~windows["partial"].to_numpy(dtype=bool)
    elif now is not None:
        closed = windows["window_end"].to_numpy(dtype=float) <= now
    judged = closed & windows["enough_labels"].to_numpy(dtype=bool) & np.isfinite(values)
    rows = np.flatnonzero(judged)
    if len(rows) == 0:
        return None, False
    values = values[rows]
    shortfall = (values - baseline) if lower_is_better else (baseline - values)
    suffix = np.cumsum((shortfall - slack)[::-1])[::-1]
    first = int(np.argmax(suffix))
    if suffix[first] <= 0:
        return None, False
    start = rows[first]
    unjudged = bool((closed[start:] & ~judged[start:]).any())  # a closed window of the run that was not judged
    every = bool(np.all(shortfall[first:] > 0)) and not unjudged
    return float(windows["window_start"].iloc[start]), every


# -- the newest window alone -----------------------------------------------------------------


def baseline_verdict(result: PerformanceOverTime, metric: str) -> BaselineVerdict:
    """Compare the newest closed window with enough labels with the baseline of ``metric``.

    Early in a window this judges little data; prefer :func:`judged_verdict`, which pools a
    period and dates the change from the chart. A partial window (still open at ``now``)
    is never judged here.

    Parameters
    ----------
    result : PerformanceOverTime
    metric : str
        One of ``result.metrics``.

    Returns
    -------
    BaselineVerdict
        ``worse``/``better`` when the whole interval lies on that side, else ``in line``;
        ``unknown`` without a baseline or a judged window.
    """
    if metric not in result.metrics:
        raise ValueError(f"metric must be one of {list(result.metrics)}; got {metric!r}")
    name = METRIC_LABELS[metric]
    baseline = result.baseline.get(metric)
    latest = result.latest()
    if latest is None:
        return BaselineVerdict("unknown", metric, baseline=baseline, confidence=result.confidence, message=(
            f"No closed window has {result.min_labels} labels yet, so {name} cannot be judged."))
    value, low, high = (float(latest[metric]), float(latest[f"{metric}_low"]), float(latest[f"{metric}_high"]))
    common = {"metric": metric, "value": value, "low": low, "high": high, "baseline": baseline,
              "window_start": float(latest["window_start"]), "n_labelled": int(latest["n_labelled"]),
              "period_start": float(latest["window_start"]), "period_end": float(latest["window_end"]),
              "confidence": result.confidence, "baseline_source": result.baseline.source}
    if not math.isfinite(baseline):
        return BaselineVerdict("unknown", **common, message=f"{name} has no baseline to compare with.")
    if not (math.isfinite(low) and math.isfinite(high)):
        low = high = value
    lower_is_better = metric in LOWER_IS_BETTER

    def worse(lo: float, hi: float) -> bool:
        return lo > baseline if lower_is_better else hi < baseline

    def better(lo: float, hi: float) -> bool:
        return hi < baseline if lower_is_better else lo > baseline

    gap = f"{value:.3f} against a baseline of {baseline:.3f}"
    if worse(low, high):
        judged = result.windows[result.windows["enough_labels"]]
        if "partial" in judged.columns:
            judged = judged[~judged["partial"]]
        since = float(latest["window_start"])
        for row in judged.iloc[::-1].itertuples(index=False):
            lo, hi = getattr(row, f"{metric}_low"), getattr(row, f"{metric}_high")
            lo, hi = (lo, hi) if math.isfinite(lo) and math.isfinite(hi) else (getattr(row, metric),) * 2
            if not worse(lo, hi):
                break
            since = float(row.window_start)
        run = (f" It has been worse in every window since {_day_text(since)}."
               if since < float(latest["window_start"]) else "")
        return BaselineVerdict("worse", **common, worse_since=since, message=(
            f"{name} is worse than its baseline: {gap}, and the whole {result.confidence:.0%} interval "
            f"({low:.3f}–{high:.3f}) is on the worse side.{run}"))
    if better(low, high):
        return BaselineVerdict("better", **common, message=f"{name} is better than its baseline: {gap}.")
    return BaselineVerdict("in line", **common, message=(
        f"{name} is in line with its baseline: {gap}; the {result.confidence:.0%} interval "
        f"({low:.3f}–{high:.3f}) includes it."))


def _open_since(performance: PerformanceOverTime, now: float) -> float:
    """Start of the first window still open at ``now`` (``now`` when none is)."""
    windows = performance.windows
    if "partial" not in windows.columns or not windows["partial"].any():
        return now
    return float(windows.loc[windows["partial"].to_numpy(dtype=bool), "window_start"].min())


# -- words -----------------------------------------------------------------------------------


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun if n == 1 else noun + 's'}"


def _period_text(days: float) -> str:
    """``"the last 7 days"``, ``"the last day"``, ``"the last 12 hours"``."""
    if days == 1:
        return "the last day"
    if days < 1:
        hours = days * 24
        return "the last hour" if hours == 1 else f"the last {hours:g} hours"
    return f"the last {days:g} days"


def _when(ts: float, unit: str, now: float) -> str:
    """A window start as people read it: ``"12 Nov"`` for days and weeks, with the time otherwise."""
    moment = datetime.fromtimestamp(ts, tz=UTC)
    text = f"{moment.day} {moment:%b}"
    if moment.year != datetime.fromtimestamp(now, tz=UTC).year:
        text += f" {moment.year}"
    if unit in ("day", "week") and moment.hour == moment.minute == 0:
        return text
    return f"{text} {moment:%H:%M} UTC"


def _day_text(ts: float) -> str:
    moment = datetime.fromtimestamp(ts, tz=UTC)
    return moment.strftime("%d %b %Y") if moment.hour == moment.minute == 0 else moment.strftime("%d %b %Y %H:%M UTC")
