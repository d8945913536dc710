"""The Performance page's choices and sentences from its results: the periods to pick, each window's status, a
threshold, the verdict's numbers."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd

from monitoring.health import format_duration

HOURLY_RANGE_DAYS = 7.0
"""Hourly windows cover at most this many days."""

CONFUSION_COLUMNS = ("tn", "fp", "fn", "tp", "money")
"""The decision columns the table of every window shows when the model has them."""


def day_text(ts: float) -> str:
    """A moment as the page writes it: ``"03 Mar 2025"`` at midnight UTC, else ``"03 Mar 2025 14:00"``."""
    moment = datetime.fromtimestamp(ts, tz=UTC)
    return moment.strftime("%d %b %Y") if moment.hour == moment.minute == 0 else moment.strftime("%d %b %Y %H:%M")


def window_periods(windows: pd.DataFrame) -> dict[str, tuple[float | None, float | None]]:
    """The periods the detail below the chart can cover: the whole range, then each window, newest first.

    Parameters
    ----------
    windows : DataFrame
        ``PerformanceOverTime.windows`` (``window_start``, ``n_labelled``, ``partial``), oldest first.

    Returns
    -------
    dict of str to (float or None, float or None)
        Name (``"Window from 03 Mar 2025 (120 labels, so far)"``) to ``(since, until)``; None is open-ended.
    """
    periods = {"The whole range": (float(windows["window_start"].iloc[0]) if len(windows) else None, None)}
    for i in range(len(windows) - 1, -1, -1):
        start = float(windows["window_start"].iloc[i])
        until = float(windows["window_start"].iloc[i + 1]) if i + 1 < len(windows) else None
        so_far = ", so far" if windows["partial"].iloc[i] else ""
        periods[f"Window from {day_text(start)} ({windows['n_labelled'].iloc[i]:,} labels{so_far})"] = (start, until)
    return periods


def window_status(table: pd.DataFrame) -> list[str]:
    """Each window's status: ``"so far"`` (still open), ``"too few labels"`` (not judged), both, or ``""``.

    Parameters
    ----------
    table : DataFrame
        ``PerformanceOverTime.to_frame()`` (``partial``, ``enough_labels``).

    Returns
    -------
    list of str
    """
    return [", ".join((["so far"] if partial else []) + ([] if enough else ["too few labels"]))
            for partial, enough in zip(table["partial"], table["enough_labels"], strict=True)]


def has_decision_threshold(result, labeled) -> bool:
    """Whether a decision threshold applies: a two-class model whose predictions carry a score.

    Parameters
    ----------
    result : PerformanceOverTime
    labeled : LabeledPredictions or KeptLabels

    Returns
    -------
    bool
    """
    return bool(result.task == "classification" and len(result.classes) == 2 and labeled.has_score)


def number_text(value: float | None, *, digits: int = 3) -> str:
    """A metric as the page writes it, ``"0.912"``, or ``"–"`` when unknown (None, NaN or infinite).

    Parameters
    ----------
    value : float or None
    digits : int, default=3
        Decimals shown.

    Returns
    -------
    str
    """
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def range_for_window(window: str, range_days: float | None) -> float | None:
    """The range the page scores: hourly windows cover at most :data:`HOURLY_RANGE_DAYS` days.

    Parameters
    ----------
    window : str
        ``"hour"``, ``"day"``, ``"week"`` or a number of predictions.
    range_days : float or None
        The picked range in days; None for everything.

    Returns
    -------
    float or None
    """
    if window == "hour" and (range_days is None or range_days > HOURLY_RANGE_DAYS):
        return HOURLY_RANGE_DAYS
    return range_days


def ground_truth_heading(labeled) -> str:
    """The Markdown heading of the ground-truth box: where the labels come from, the task and its classes.

    Parameters
    ----------
    labeled : LabeledPredictions or KeptLabels

    Returns
    -------
    str
    """
    classes = f" of classes {', '.join(f'{c:g}' for c in labeled.classes)}" if labeled.classes else ""
    return f"**Ground truth** ({labeled.source}; the model is treated as **{labeled.task}**{classes})"


def label_delay_sentence(delay_seconds: float) -> str:
    """How late labels arrive, ``" Labels arrive a median of 2 h after …"``, or ``""`` when unknown (NaN).

    Parameters
    ----------
    delay_seconds : float
        ``LabeledPredictions.median_delay_seconds``.

    Returns
    -------
    str
        Led by a space, to follow the label quality's last sentence.
    """
    if not math.isfinite(delay_seconds):
        return ""
    return (f" Labels arrive a median of {format_duration(delay_seconds)} after their prediction, so the newest "
            "windows are still filling up.")


@dataclass(frozen=True)
class VerdictNumbers:
    """The judged period's metric as the page shows it.

    Attributes
    ----------
    value : str
        The judged value (``"–"`` when unknown).
    delta : str or None
        ``"+0.012 against the baseline"``; None without a judged value or a baseline.
    help : str
        The period, its labels and interval; or why it is not judged.
    """

    value: str
    delta: str | None
    help: str


def verdict_numbers(verdict) -> VerdictNumbers:
    """The judged period's value, its change against the baseline and what it covers.

    Parameters
    ----------
    verdict : BaselineVerdict
        ``monitoring.verdict.judged_verdict``.

    Returns
    -------
    VerdictNumbers
    """
    judged = math.isfinite(verdict.value)
    delta = (f"{verdict.value - verdict.baseline:+.3f} against the baseline"
             if judged and math.isfinite(verdict.baseline) else None)
    help_text = (f"Every labelled prediction made since {day_text(verdict.period_start)}, today's included: "
                 f"{verdict.n_labelled:,} labels, {verdict.confidence:.0%} interval {number_text(verdict.low)}–"
                 f"{number_text(verdict.high)}." if judged else verdict.reason)
    return VerdictNumbers(number_text(verdict.value), delta, help_text)


def overall_help(overall, metric: str, *, confidence: float) -> str:
    """The whole range's metric help: its interval over every labelled prediction of the range.

    Parameters
    ----------
    overall : mapping
        ``PerformanceOverTime.overall`` (``{metric}_low``, ``{metric}_high``).
    metric : str
    confidence : float
        Coverage of the interval.

    Returns
    -------
    str
    """
    return (f"{confidence:.0%} interval {number_text(overall[f'{metric}_low'])}–"
            f"{number_text(overall[f'{metric}_high'])}, over every labelled prediction in the range.")


def coverage_text(coverage: float) -> str:
    """The share of predictions with a label, ``"83%"``, or ``"–"`` when unknown."""
    return "–" if not math.isfinite(coverage) else f"{coverage:.0%}"


def baseline_caption(baseline, verdict, *, judged_days: float) -> str | None:
    """The caption under the verdict: where the baseline comes from and how the verdict pools; without a
    baseline, why there is none (unless the verdict already said it); else None.

    Parameters
    ----------
    baseline : Baseline
    verdict : BaselineVerdict
    judged_days : float
        ``[services.performance] judged_days``.

    Returns
    -------
    str or None
    """
    if baseline.values:
        return (f"Baseline from {baseline.source}. The verdict pools the last {judged_days:g} days "
                "(`[services.performance] judged_days`); \"worse since\" is where the chart's closed windows with "
                "enough labels turned worse.")
    return baseline.reason if baseline.reason != verdict.reason else None


def has_open_window_value(windows: pd.DataFrame, metric: str) -> bool:
    """Whether a window still open has a value of ``metric`` (the chart then draws its hollow diamond).

    Parameters
    ----------
    windows : DataFrame
        ``PerformanceOverTime.windows`` (``partial`` and the metric's column).
    metric : str

    Returns
    -------
    bool
    """
    return bool((windows["partial"] & windows[metric].notna()).any())


def business_caption(business) -> str:
    """What each decision is worth, as configured: ``"Each correct decision is worth 5, a false positive costs …"``.

    Parameters
    ----------
    business : BusinessValues

    Returns
    -------
    str
    """
    currency = f" {business.currency}" if business.currency else ""
    return (f"Each correct decision is worth {business.value_correct:,g}, a false positive costs "
            f"{business.cost_false_positive:,g} and a false negative {business.cost_false_negative:,g}"
            f"{currency} (`[services.performance]`).")


def window_columns(table: pd.DataFrame, metrics: Sequence[str]) -> list[str]:
    """The columns the table of every window shows, in order: when, status, counts, metrics, then the decision
    counts and money the table has.

    Parameters
    ----------
    table : DataFrame
        ``PerformanceOverTime.to_frame()`` with its ``status``.
    metrics : sequence of str

    Returns
    -------
    list of str
    """
    return ["window_start", "status", "n_predictions", "n_labelled", "coverage", *metrics,
            *(c for c in CONFUSION_COLUMNS if c in table)]
