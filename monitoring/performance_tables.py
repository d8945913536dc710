"""The Performance page's choices from its results: the periods to pick, each window's status, a threshold."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd


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
    labeled : LabeledPredictions

    Returns
    -------
    bool
    """
    return bool(result.task == "classification" and len(result.classes) == 2 and labeled.frame["score"].notna().any())
