"""The Overview's status and model lines, and its choice of chart, from what the page has read."""

from __future__ import annotations

import math

from monitoring.health import format_duration


def status_line(*, state: str, reason: str | None, checked: str) -> str:
    """``"Status: <reason or state> (checked <when>)."``, the report's status line.

    Parameters
    ----------
    state : str
        The service's state (up, degraded, down, unknown).
    reason : str or None
        Why, when the poll says.
    checked : str
        When it was last polled, as the page writes it ("12 s ago").

    Returns
    -------
    str
    """
    return f"Status: {reason or state} (checked {checked})."


def model_line(*, name: str, version: str | None, age_seconds: float | None) -> str:
    """``"Model: <name>, version <v>, serving for <age>."``, leaving out what is not known.

    Parameters
    ----------
    name : str
        The model's name (its metadata, the configured model, or the service).
    version : str or None
        The model version that made the predictions, else the one the service reports.
    age_seconds : float or None
        How long this version has served (NaN or None when unknown).

    Returns
    -------
    str
    """
    age = (f", serving for {format_duration(age_seconds)}"
           if age_seconds is not None and math.isfinite(age_seconds) else "")
    return f"Model: {name}" + (f", version {version}" if version else "") + age + "."


def shows_money(settings, performance) -> bool:
    """Whether the Overview (and the report) chart what decisions were worth rather than a metric: business
    values are configured and the model decides between two classes.

    Parameters
    ----------
    settings : PerformanceConfig
        The service's ``[services.performance]``.
    performance : PerformanceOverTime or None
        The Overview's performance, None before labels.

    Returns
    -------
    bool
    """
    return bool(settings.has_business_values and performance is not None
                and performance.task == "classification" and len(performance.classes) == 2)
