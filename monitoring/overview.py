"""The Overview page's plain-language summary of one service, from results computed elsewhere.

Nothing here reads the store or computes drift or metrics: :func:`prediction_volume` and
:func:`prediction_mix` count the production rows already in memory, and
:func:`service_alerts` turns a service status, a drift report, a baseline verdict and label
counts into sentences a business reader can act on, with one recommendation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from monitoring.drift import DriftReport
from monitoring.labels import LabelQuality
from monitoring.performance import LOWER_IS_BETTER, METRIC_LABELS, BaselineVerdict

DAY = 86400.0

PLAIN_METRICS = {"accuracy": "accuracy", "precision": "precision", "recall": "recall", "f1": "the F1 score",
                 "roc_auc": "the ranking quality (ROC AUC)", "log_loss": "the log loss",
                 "mae": "the average error", "rmse": "the typical error (RMSE)",
                 "r2": "the share of variation explained (R²)"}
"""Metric names as a business reader meets them in a sentence."""

FRACTION_METRICS = frozenset({"accuracy", "precision", "recall", "f1", "roc_auc", "r2"})
"""Metrics between 0 and 1, whose gaps read best in percentage points."""

RECOMMENDATIONS = {
    "fix_service": "Fix the service first: it is not answering properly.",
    "retrain": "Retraining recommended.",
    "investigate": "Investigate: results got worse although the inputs look the same.",
    "watch": "Keep watching: the inputs changed, but results have not (yet) got worse.",
    "none": "No action needed.",
    "unknown": "Nothing can be judged yet: see why below.",
}


@dataclass(frozen=True)
class Volume:
    """How many predictions a service served.

    Attributes
    ----------
    today : int
        Since midnight UTC of ``now``'s day.
    last_7_days : int
        In ``[now - 7 days, now)``.
    previous_7_days : int
        In ``[now - 14 days, now - 7 days)``.
    trend : float
        ``last_7_days / previous_7_days - 1``; NaN when the previous week had none.
    """

    today: int
    last_7_days: int
    previous_7_days: int
    trend: float

    def trend_text(self) -> str:
        """The trend in words, e.g. ``"12% more than the 7 days before"``."""
        if not math.isfinite(self.trend):
            return "no predictions in the 7 days before to compare with"
        if abs(self.trend) < 0.005:
            return "about the same as the 7 days before"
        return f"{abs(self.trend):.0%} {'more' if self.trend > 0 else 'fewer'} than the 7 days before"


@dataclass(frozen=True)
class Alert:
    """One plain-language finding.

    Attributes
    ----------
    level : {"error", "warning", "info"}
    message : str
    """

    level: str
    message: str


@dataclass(frozen=True)
class ServiceAlerts:
    """Findings about one service and what to do about them.

    Attributes
    ----------
    alerts : tuple of Alert
        Most serious first.
    action : {"fix_service", "retrain", "investigate", "watch", "none", "unknown"}
        ``unknown`` when neither drift nor results could be judged.
    recommendation : str
        The headline: the findings that matter joined in one sentence, ending with the
        action, e.g. ``"accuracy is 6 points below baseline since 12 Nov and 3 features
        drifted: retraining recommended"``.
    n_drifted : int
        Features that drifted in at least one window of the drift report.
    """

    alerts: tuple[Alert, ...]
    action: str
    recommendation: str
    n_drifted: int


def prediction_volume(ts, *, now: float) -> Volume:
    """Count predictions today, over the last 7 days and over the 7 days before.

    Parameters
    ----------
    ts : array-like of float
        Prediction times (Unix seconds), in any order.
    now : float
        Unix seconds.

    Returns
    -------
    Volume
    """
    ts = np.asarray(ts, dtype=float)
    midnight = datetime.fromtimestamp(now, tz=UTC).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    today = int(np.count_nonzero((ts >= midnight) & (ts <= now)))
    last = int(np.count_nonzero((ts >= now - 7 * DAY) & (ts <= now)))
    previous = int(np.count_nonzero((ts >= now - 14 * DAY) & (ts < now - 7 * DAY)))
    trend = last / previous - 1.0 if previous else math.nan
    return Volume(today, last, previous, trend)


def prediction_mix(frame: pd.DataFrame, *, task: str, classes: tuple[float, ...] = (), since: float | None = None,
                   bucket_seconds: float = DAY) -> pd.DataFrame:
    """The share of positive decisions (two classes) or the mean prediction, per time bucket.

    Parameters
    ----------
    frame : DataFrame
        ``ts`` and ``prediction`` columns.
    task : {"classification", "regression"}
    classes : tuple of float, default=()
        Sorted classes; with two, the larger is the positive one.
    since : float, optional
        Rows before this time are left out.
    bucket_seconds : float, default=86400
        Bucket width, aligned on multiples of it (UTC days by default).

    Returns
    -------
    DataFrame
        ``bucket_ts`` (Unix seconds of the bucket's start), ``n`` (predictions) and ``value``
        (positive share, or mean prediction), one row per non-empty bucket, oldest first.
        ``attrs["measure"]`` names the value: ``"positive rate"`` or ``"mean prediction"``.
    """
    ts = frame["ts"].to_numpy(dtype=float)
    predicted = pd.to_numeric(frame["prediction"], errors="coerce").to_numpy(dtype=float)
    keep = np.isfinite(ts) & np.isfinite(predicted)
    if since is not None:
        keep &= ts >= since
    ts, predicted = ts[keep], predicted[keep]
    binary = task == "classification" and len(classes) == 2
    values = (predicted == classes[-1]).astype(float) if binary else predicted
    measure = "positive rate" if binary else "mean prediction"
    if not len(ts):
        out = pd.DataFrame({"bucket_ts": [], "n": [], "value": []})
        out.attrs["measure"] = measure
        return out
    bucket = np.floor(ts / bucket_seconds).astype(np.int64)
    first = bucket.min()
    index = bucket - first
    n = np.bincount(index)
    sums = np.bincount(index, weights=values)
    present = n > 0
    out = pd.DataFrame({"bucket_ts": (np.flatnonzero(present) + first) * bucket_seconds,
                        "n": n[present].astype(np.int64), "value": sums[present] / n[present]})
    out.attrs["measure"] = measure
    return out


def model_age(frame: pd.DataFrame, *, now: float) -> tuple[str | None, float]:
    """The model version of the newest logged prediction and how long it has been serving.

    Parameters
    ----------
    frame : DataFrame
        ``ts`` and, optionally, ``model_version``.
    now : float

    Returns
    -------
    version : str or None
        None when the log does not record versions.
    age_seconds : float
        Time since the first logged prediction of that version; NaN when unknown.
    """
    if "model_version" not in frame or not len(frame):
        return None, math.nan
    versions = frame["model_version"]
    ts = frame["ts"].to_numpy(dtype=float)
    newest = int(np.nanargmax(ts))
    version = versions.iloc[newest]
    if pd.isna(version):
        return None, math.nan
    same = (versions == version).to_numpy(dtype=bool)
    return str(version), float(now - ts[same].min())


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%-d %b")


def _gap_text(verdict: BaselineVerdict) -> str:
    """E.g. ``"accuracy is 6 points below baseline"`` or ``"the average error is 2.1 above baseline"``."""
    name = PLAIN_METRICS.get(verdict.metric, METRIC_LABELS.get(verdict.metric, verdict.metric))
    gap = verdict.value - verdict.baseline
    side = "above" if gap > 0 else "below"
    if verdict.metric in FRACTION_METRICS:
        points = abs(gap) * 100
        amount = f"{points:.0f} point{'s' if round(points) != 1 else ''}"
    else:
        amount = f"{abs(gap):.3g}"
    return f"{name} is {amount} {side} baseline"


def drifted_features(report: DriftReport | None) -> list[str]:
    """Features that drifted in at least one window of ``report`` (none without a report)."""
    if report is None or report.features.empty:
        return []
    drifted = report.features[report.features["drifted"]]
    return list(dict.fromkeys(drifted["feature"]))


def service_alerts(*, state: str, reason: str = "", drift: DriftReport | None = None,
                   drift_problem: str | None = None, verdict: BaselineVerdict | None = None,
                   performance_problem: str | None = None, quality: LabelQuality | None = None,
                   volume: Volume | None = None) -> ServiceAlerts:
    """Turn already computed results into plain findings and one recommendation.

    Parameters
    ----------
    state : {"up", "degraded", "down", "unknown"}
        The service's current status (:func:`monitoring.health.current_status`).
    reason : str, default=""
        Why it is in that state.
    drift : DriftReport, optional
        Drift over the period the overview covers.
    drift_problem : str, optional
        Why drift could not be measured.
    verdict : BaselineVerdict, optional
        The newest judged window against the baseline (:func:`monitoring.performance.baseline_verdict`).
    performance_problem : str, optional
        Why performance could not be measured.
    quality : LabelQuality, optional
        What happened to the labels; problems are reported as sentences.
    volume : Volume, optional
        Predictions served; a week without any is reported.

    Returns
    -------
    ServiceAlerts
    """
    alerts: list[Alert] = []
    if state == "down":
        alerts.append(Alert("error", f"The service is down{': ' + reason if reason else ''}."))
    elif state == "degraded":
        alerts.append(Alert("warning", f"The service is degraded{': ' + reason if reason else ''}."))
    elif state == "unknown":
        alerts.append(Alert("info", "The service's status is not known yet: it has not been checked recently."))

    worse = verdict is not None and verdict.state == "worse"
    gap = ""
    if worse:
        since = verdict.worse_since if verdict.worse_since is not None else verdict.window_start
        gap = _gap_text(verdict) + (f" since {_day(since)}" if since is not None else "")
        alerts.append(Alert("error", f"Results got worse: {gap} (measured on the predictions whose real outcome "
                                     "is known)."))
    elif verdict is not None and verdict.state == "unknown":
        alerts.append(Alert("info", f"Results cannot be judged yet: {verdict.message}"))
    elif performance_problem:
        alerts.append(Alert("info", f"Results cannot be measured: {performance_problem}"))

    names = drifted_features(drift)
    drift_text = ""
    if names:
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        drift_text = f"{len(names)} feature{'s' if len(names) != 1 else ''} drifted"
        alerts.append(Alert("warning", f"The data the model receives has changed: {drift_text} ({shown})."))
    elif drift_problem:
        alerts.append(Alert("info", f"Changes in the incoming data cannot be checked: {drift_problem}"))

    if volume is not None and volume.last_7_days == 0:
        alerts.append(Alert("warning", "The service made no predictions in the last 7 days."))
    if quality is not None and quality.problems:
        alerts.extend(Alert("warning", s) for s in quality.sentences()[:-1])

    if worse and names:
        data_action = "retrain"
    elif worse:
        data_action = "investigate"
    elif names:
        data_action = "watch"
    else:
        data_action = "none"
    findings = " and ".join(part for part in (gap, drift_text) if part)
    if findings:
        verb = {"retrain": "retraining recommended", "investigate": "worth investigating before retraining",
                "watch": "keep watching, no retraining needed yet"}[data_action]
        headline = f"{findings[0].upper()}{findings[1:]}: {verb}."
    elif drift is None and (verdict is None or verdict.state == "unknown"):
        data_action = "unknown"
        headline = RECOMMENDATIONS["unknown"]
    else:
        headline = RECOMMENDATIONS["none"]
    action = data_action
    if state == "down":
        action = "fix_service"
        headline = RECOMMENDATIONS["fix_service"] + ("" if data_action in ("none", "unknown") else f" Then: {headline}")
    order = {"error": 0, "warning": 1, "info": 2}
    return ServiceAlerts(tuple(sorted(alerts, key=lambda a: order[a.level])), action, headline, len(names))


def performance_sentence(verdict: BaselineVerdict) -> str:
    """The latest performance against its baseline, without jargon."""
    name = PLAIN_METRICS.get(verdict.metric, verdict.metric)
    if verdict.state == "unknown":
        return verdict.message
    value = (f"{verdict.value:.0%}" if verdict.metric in FRACTION_METRICS and verdict.metric != "r2"
             else f"{verdict.value:.3g}")
    if not math.isfinite(verdict.baseline):
        return f"Latest {name}: {value}."
    relation = {"worse": "worse than", "better": "better than", "in line": "in line with"}[verdict.state]
    sign = " (lower is better)" if verdict.metric in LOWER_IS_BETTER else ""
    base = (f"{verdict.baseline:.0%}" if verdict.metric in FRACTION_METRICS and verdict.metric != "r2"
            else f"{verdict.baseline:.3g}")
    return f"Latest {name}: {value}, {relation} the expected {base}{sign}."
