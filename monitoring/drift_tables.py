"""The Drift page's tables from a ``DriftReport``: window names, the newest closed window, one window's rows."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from monitoring.drift import DriftReport, get_method

STATUS_ORDER = {"drifted": 0, "close": 1, "stable": 2, "too small": 3, "cannot judge": 4}
"""The order a window's features are listed in: drifted first."""

DRIFTED_WHEN = {"p_value": "p-value below threshold",
                "distance": "distance at or above threshold and above noise"}
"""When a method's score counts as drift, by the kind of score it gives."""


def window_labels(report: DriftReport) -> dict[int, str]:
    """Each window's name: its start (``"03 Mar 2025 00:00"``, or ``"window 3"`` without one), ``" (so far)"``
    for a window still open.

    Parameters
    ----------
    report : DriftReport

    Returns
    -------
    dict of int to str
        Window number to name, oldest first.
    """
    dataset = report.dataset
    return {int(w): (f"{s:%d %b %Y %H:%M}" if pd.notna(s) else f"window {int(w)}") + (" (so far)" if p else "")
            for w, s, p in zip(dataset["window"], dataset["window_start"], dataset["partial"], strict=True)}


def newest_closed_window(report: DriftReport) -> int:
    """The newest window that is closed (the open one is one click away), else the newest window.

    Raises
    ------
    IndexError
        For a report without windows.
    """
    dataset = report.dataset
    closed = dataset.loc[~dataset["partial"], "window"]
    return int(closed.iloc[-1]) if len(closed) else int(dataset["window"].iloc[-1])


def window_features(report: DriftReport, window: int) -> pd.DataFrame:
    """The feature rows of ``window`` (``report.features``' columns), drifted first, then by name."""
    rows = report.features[report.features["window"] == window]
    order = rows["status"].map(STATUS_ORDER)
    return rows.assign(order=order).sort_values(["order", "feature"]).drop(columns="order")


def feature_table(rows: pd.DataFrame, *, text: Callable[[str], str] = str) -> pd.DataFrame:
    """The table of one window's features as the page shows it.

    Parameters
    ----------
    rows : DataFrame
        :func:`window_features`' rows.
    text : callable, default=str
        Applied to each reason a feature was not judged (the page masks personal values with it).

    Returns
    -------
    DataFrame
        ``Feature, Status, Method, Score, Threshold, Noise level, Drifted when, Rows, Missing, Unseen,
        Why not judged``, indexed from 0.
    """
    return pd.DataFrame({
        "Feature": rows["feature"],
        "Status": rows["status"],
        "Method": rows["method"],
        "Score": rows["score"],
        "Threshold": rows["threshold"],
        "Noise level": rows["noise"],
        "Drifted when": [DRIFTED_WHEN[get_method(m).score_kind] for m in rows["method"]],
        "Rows": rows["n"],
        "Missing": rows["n_missing"],
        "Unseen": rows["n_unseen"],
        "Why not judged": [text(reason) for reason in rows["reason"]],
    }).reset_index(drop=True)
