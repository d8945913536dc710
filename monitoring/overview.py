"""The Overview page's plain-language summary of one service: counts, judged results, one recommendation.

:func:`service_overview` gathers, at a given ``now``, what the Overview and the report say
about one service — predictions served (:func:`prediction_counts`), drift per day over the
last seven days (partial today included but never deciding), performance per day and the
verdict over the judged period (:func:`monitoring.verdict.judged_verdict`) — into a
:class:`ServiceOverview`. :func:`service_alerts` turns that and the service's live status
into sentences a business reader can act on, with one recommendation that never contradicts
them. Nothing here reads the clock or the store.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from monitoring.drift import (
    DriftReport,
    ReferenceProfile,
    WindowTallies,
    compute_drift,
    compute_drift_from_counts,
    drifted_features,
)
from monitoring.label_queries import summarize_labeled
from monitoring.label_summary import (
    LabelledSummary,
    summary_decisions,
    summary_performance,
    summary_verdict,
)
from monitoring.labels import (
    MAX_CLASSES,
    LabeledPredictions,
    LabelQuality,
    classes_of_values,
    task_of_values,
)
from monitoring.log_queries import LogTraffic, traffic_frame
from monitoring.performance import (
    LOWER_IS_BETTER,
    METRIC_LABELS,
    Baseline,
    BaselineVerdict,
    BusinessValues,
    DecisionsOverTime,
    PerformanceOverTime,
)
from monitoring.windows import range_start

DAY = 86400.0
OVERVIEW_DAYS = 7
"""The Overview judges drift over the last seven whole UTC days and today (today shown, never deciding)."""
MIN_TREND_PREDICTIONS = 100
"""A week-on-week change in percent is given only when both weeks have at least this many predictions."""
MIX_DAYS = 30
"""Days of the prediction-mix and performance charts."""

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
    "check": "Look into the warnings below; results and incoming data show no problem.",
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
        ``last_7_days / previous_7_days - 1``; NaN unless both weeks have at least
        :data:`MIN_TREND_PREDICTIONS` predictions (a change against a handful says nothing).
    """

    today: int
    last_7_days: int
    previous_7_days: int
    trend: float

    def trend_text(self) -> str:
        """The trend in words, e.g. ``"12% more than the 7 days before"`` or ``"new this week"``."""
        if self.previous_7_days < MIN_TREND_PREDICTIONS:
            if self.last_7_days == 0:
                return "no predictions in these 7 days or the 7 before"
            if self.previous_7_days == 0:
                return "new this week: no predictions in the 7 days before"
            return f"new this week: only {self.previous_7_days:,} predictions in the 7 days before"
        if not math.isfinite(self.trend):
            return (f"only {self.last_7_days:,} predictions in these 7 days, against "
                    f"{self.previous_7_days:,} in the 7 days before")
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
    action : {"fix_service", "retrain", "investigate", "watch", "check", "none", "unknown"}
        ``unknown`` when neither drift nor results could be judged; ``check`` when results
        and inputs are fine but other warnings stand (no traffic, label problems, a degraded
        service), so the headline never says "no action" beside a warning.
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
    return volume_of(today=int(np.count_nonzero((ts >= midnight) & (ts <= now))),
                     last_7_days=int(np.count_nonzero((ts >= now - 7 * DAY) & (ts <= now))),
                     previous_7_days=int(np.count_nonzero((ts >= now - 14 * DAY) & (ts < now - 7 * DAY))))


def volume_of(*, today: int, last_7_days: int, previous_7_days: int) -> Volume:
    """The :class:`Volume` of these counts, with its week-on-week trend (NaN on too few predictions)."""
    enough = min(last_7_days, previous_7_days) >= MIN_TREND_PREDICTIONS
    trend = last_7_days / previous_7_days - 1.0 if enough else math.nan
    return Volume(today, last_7_days, previous_7_days, trend)


def class_column(label: float) -> str:
    """A class's share column in :func:`prediction_mix`, e.g. ``"class 2"`` (whole numbers without ``.0``)."""
    value = float(label)
    return f"class {int(value)}" if value.is_integer() else f"class {value:g}"


def prediction_mix(frame: pd.DataFrame, *, task: str, classes: tuple[float, ...] = (), since: float | None = None,
                   bucket_seconds: float = DAY, now: float | None = None) -> pd.DataFrame:
    """What the model decided per time bucket: the positive rate, the share of each class, or the mean value.

    Parameters
    ----------
    frame : DataFrame
        ``ts`` and ``prediction`` columns (the decided class, or the predicted value).
    task : {"classification", "regression"}
    classes : tuple of float, default=()
        Sorted classes; with two, the larger is the positive one. Classes predicted but not
        listed are added; without any, the predicted ones are used.
    since : float, optional
        Rows before this time are left out.
    bucket_seconds : float, default=86400
        Bucket width, aligned on multiples of it (UTC days by default).
    now : float, optional
        Buckets ending after it are marked ``partial`` (still open); None marks none.

    Returns
    -------
    DataFrame
        One row per non-empty bucket, oldest first: ``bucket_ts`` (Unix seconds of the bucket's
        start), ``n`` (predictions), then

        * two classes: ``value``, the share of the positive (larger) class;
        * more (or one): one column per class, named by :func:`class_column` (``"class 0"``,
          ``"class 1"``, ...), the share of the bucket's predictions that decided it (the
          columns of a bucket sum to 1);
        * regression: ``value``, the mean predicted value;

        and ``partial``. ``attrs["measure"]`` names what is shown (``"positive rate"``,
        ``"class shares"`` or ``"mean predicted value"``); ``attrs["classes"]`` maps each share
        column to its class (empty unless class shares); ``attrs["bucket_seconds"]`` is the
        bucket width.

    Notes
    -----
    Shares come from the logged decisions (``prediction``), not from probabilities: the
    template service logs no per-class probabilities for more than two classes.
    """
    ts = frame["ts"].to_numpy(dtype=float)
    predicted = pd.to_numeric(frame["prediction"], errors="coerce").to_numpy(dtype=float)
    keep = np.isfinite(ts) & np.isfinite(predicted)
    if since is not None:
        keep &= ts >= since
    ts, predicted = ts[keep], predicted[keep]
    bucket = np.floor(ts / bucket_seconds).astype(np.int64)
    per_value = task == "classification"
    keys = pd.DataFrame({"bucket": bucket, "value": predicted if per_value else np.nan})
    counts = (keys.assign(n=1, total=predicted).groupby(["bucket", "value"], dropna=False, sort=True)
              .agg(n=("n", "sum"), total=("total", "sum")).reset_index())
    return mix_of_counts(counts, task=task, classes=classes, bucket_seconds=bucket_seconds, now=now)


def mix_of_counts(counts: pd.DataFrame, *, task: str, classes: tuple[float, ...] = (),
                  bucket_seconds: float = DAY, now: float | None = None) -> pd.DataFrame:
    """:func:`prediction_mix` from counts per bucket (and per predicted class), as an engine gives them.

    Parameters
    ----------
    counts : DataFrame
        ``bucket`` (Unix seconds // ``bucket_seconds``), ``value`` (the predicted class; for a
        regression NaN), ``n`` (predictions) and ``total`` (their sum), one row per bucket and
        value, finite predictions only (``LogTraffic.mix``).
    task, classes, bucket_seconds, now
        As :func:`prediction_mix`.

    Returns
    -------
    DataFrame
        As :func:`prediction_mix`.
    """
    classification = task == "classification"
    values = counts["value"].to_numpy(dtype=float)
    known = tuple(sorted({float(c) for c in classes} | (set(np.unique(values[np.isfinite(values)]).tolist())
                                                        if classification else set())))
    binary = classification and len(known) == 2
    shares = classification and not binary
    measure = "positive rate" if binary else "class shares" if shares else "mean predicted value"
    share_columns = {class_column(c): c for c in known} if shares else {}
    value_columns = list(share_columns) if shares else ["value"]
    if not len(counts):
        out = pd.DataFrame({"bucket_ts": [], "n": [], **{c: [] for c in value_columns},
                            "partial": pd.Series(dtype=bool)})
        out.attrs.update(measure=measure, classes=share_columns, bucket_seconds=bucket_seconds)
        return out
    buckets, index = np.unique(counts["bucket"].to_numpy(dtype=np.int64), return_inverse=True)
    rows = counts["n"].to_numpy(dtype=float)
    n = np.bincount(index, weights=rows)
    starts = buckets * bucket_seconds
    out = pd.DataFrame({"bucket_ts": starts.astype(float), "n": n.astype(np.int64)})
    if shares:
        for name, label in share_columns.items():
            out[name] = np.bincount(index, weights=rows * (values == label), minlength=len(buckets)) / n
    elif binary:
        out["value"] = np.bincount(index, weights=rows * (values == known[-1]), minlength=len(buckets)) / n
    else:
        out["value"] = np.bincount(index, weights=counts["total"].to_numpy(dtype=float), minlength=len(buckets)) / n
    out["partial"] = (starts + bucket_seconds > now) if now is not None else np.zeros(len(starts), bool)
    out.attrs.update(measure=measure, classes=share_columns, bucket_seconds=bucket_seconds)
    return out


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
        Results over the judged period against the baseline (:func:`monitoring.performance.judged_verdict`).
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
    elif verdict is not None and verdict.state in ("unknown", "uncertain"):
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
    elif drift is None and (verdict is None or verdict.state in ("unknown", "uncertain")):
        data_action = "unknown"
        headline = RECOMMENDATIONS["unknown"]
    elif any(alert.level in ("error", "warning") for alert in alerts):
        data_action = "check"
        headline = RECOMMENDATIONS["check"]
    else:
        headline = RECOMMENDATIONS["none"]
    action = data_action
    if state == "down":
        action = "fix_service"
        headline = RECOMMENDATIONS["fix_service"] + (
            "" if data_action in ("none", "unknown", "check") else f" Then: {headline}")
    order = {"error": 0, "warning": 1, "info": 2}
    return ServiceAlerts(tuple(sorted(alerts, key=lambda a: order[a.level])), action, headline, len(names))


def _metric_value(metric: str, value: float) -> str:
    return f"{value:.0%}" if metric in FRACTION_METRICS and metric != "r2" else f"{value:.3g}"


def performance_sentence(verdict: BaselineVerdict) -> str:
    """Results over the judged period against their baseline, without jargon.

    E.g. "Accuracy over the last 7 days: 79% (95% interval 78–80%, 3,412 predictions with a
    known outcome), 8 points below the expected 87% since 12 Nov." It gives the pooled value,
    its interval and the labels behind it, so a value is never called in line with a baseline
    it is far from.
    """
    name = PLAIN_METRICS.get(verdict.metric, verdict.metric)
    if verdict.state == "unknown" or not math.isfinite(verdict.value):
        return verdict.message
    span = verdict.period_end - verdict.period_start
    period = f" over the last {round(span / DAY):g} days" if math.isfinite(span) and span >= DAY else ""
    value = _metric_value(verdict.metric, verdict.value)
    n_labelled = verdict.n_labelled
    evidence = []
    if math.isfinite(verdict.low) and math.isfinite(verdict.high):
        evidence.append(f"95% interval {_metric_value(verdict.metric, verdict.low)}–"
                        f"{_metric_value(verdict.metric, verdict.high)}")
    if n_labelled:
        evidence.append(f"{n_labelled:,} predictions with a known outcome")
    detail = f" ({', '.join(evidence)})" if evidence else ""
    text = f"{name[0].upper()}{name[1:]}{period}: {value}{detail}"
    if not math.isfinite(verdict.baseline):
        return f"{text}; there is no baseline to compare with."
    base = _metric_value(verdict.metric, verdict.baseline)
    sign = " (lower is better)" if verdict.metric in LOWER_IS_BETTER else ""
    if verdict.state == "worse":
        since = f" since {_day(verdict.worse_since)}" if verdict.worse_since is not None else ""
        gap = _gap_text(verdict).split(" is ", 1)[1].replace("baseline", f"the expected {base}")
        return f"{text}, {gap}{since}{sign}."
    if verdict.state == "better":
        return f"{text}, better than the expected {base}{sign}."
    if verdict.state == "uncertain":
        return f"{text}: too few known outcomes to tell whether it differs from the expected {base}{sign}."
    return f"{text}, in line with the expected {base}{sign}."


@dataclass(frozen=True)
class PredictionCounts:
    """What one service's prediction log says about its traffic, at one moment.

    Attributes
    ----------
    volume : Volume
    mix : DataFrame
        :func:`prediction_mix` over the last :data:`MIX_DAYS` days.
    task : {"classification", "regression"}
    classes : tuple of float
    model_version : str or None
    model_age_seconds : float
    n_rows : int
        Logged predictions (every time).
    """

    volume: Volume
    mix: pd.DataFrame
    task: str
    classes: tuple[float, ...]
    model_version: str | None
    model_age_seconds: float
    n_rows: int


def prediction_counts(frame: pd.DataFrame, *, now: float, task: str = "auto") -> PredictionCounts:
    """Predictions served (today, 7 days, trend), the daily prediction mix and the model's age at ``now``.

    Parameters
    ----------
    frame : DataFrame
        The prediction log: ``ts``, ``prediction``, optionally ``model_version`` and ``score``.
    now : float
        Unix seconds; rows after it are not counted as served.
    task : {"auto", "classification", "regression"}, default="auto"

    Returns
    -------
    PredictionCounts
        Counted by the same queries as a log that lives in an engine (:func:`counts_of_traffic`).
    """
    return counts_of_traffic(traffic_frame(frame, **traffic_options(now)), task=task)


def traffic_options(now: float) -> dict:
    """What :func:`monitoring.log_queries.log_traffic` is asked for the Overview at ``now``."""
    return {"now": now, "since": now - MIX_DAYS * DAY, "max_values": MAX_CLASSES}


def counts_of_traffic(traffic: LogTraffic, *, task: str = "auto") -> PredictionCounts:
    """The Overview's :class:`PredictionCounts` from a log's counted traffic.

    Parameters
    ----------
    traffic : LogTraffic
        From ``log_traffic(..., **traffic_options(now))``, by the engine that holds the log.
    task : {"auto", "classification", "regression"}, default="auto"
        ``auto`` decides from the counted predictions (:func:`monitoring.labels.task_of_values`).

    Returns
    -------
    PredictionCounts
    """
    if task == "auto":
        task = task_of_values(has_score=traffic.has_score, values=traffic.values, whole=traffic.whole)
    classes = classes_of_values(values=traffic.values, has_score=traffic.has_score) if task == "classification" \
        else ()
    age = traffic.now - traffic.version_since if traffic.model_version is not None else math.nan
    return PredictionCounts(
        volume=volume_of(today=traffic.today, last_7_days=traffic.last_7_days,
                         previous_7_days=traffic.previous_7_days),
        mix=mix_of_counts(traffic.mix, task=task, classes=classes, bucket_seconds=traffic.bucket_seconds,
                          now=traffic.now),
        task=task, classes=classes, model_version=traffic.model_version, model_age_seconds=float(age),
        n_rows=traffic.n_rows)


def overview_since(now: float) -> float:
    """Midnight UTC :data:`OVERVIEW_DAYS` days before ``now``'s day: the start of the Overview's drift period."""
    return (now // DAY - OVERVIEW_DAYS) * DAY


@dataclass(frozen=True)
class ServiceOverview:
    """Everything the Overview and the report say about one service's data, at ``now``.

    Attributes
    ----------
    service : str
    now : float
    counts : PredictionCounts or None
        None when nothing is logged (``problem`` says why).
    problem : str or None
    drift : DriftReport or None
        Day windows since :func:`overview_since`; today's is partial.
    drift_problem : str or None
    performance : PerformanceOverTime or None
        The first metric (accuracy for classes, MAE for numbers) per day over the last
        :data:`MIX_DAYS` days.
    verdict : BaselineVerdict or None
        Over the judged period.
    decisions : DecisionsOverTime or None
        Two classes: the decisions per day over the last :data:`MIX_DAYS` days at the
        configured threshold, with their money when business values are configured.
    performance_problem : str or None
    quality : LabelQuality or None
    n_labelled : int
    """

    service: str
    now: float
    counts: PredictionCounts | None = None
    problem: str | None = None
    drift: DriftReport | None = None
    drift_problem: str | None = None
    performance: PerformanceOverTime | None = None
    verdict: BaselineVerdict | None = None
    performance_problem: str | None = None
    decisions: DecisionsOverTime | None = None
    quality: LabelQuality | None = None
    n_labelled: int = 0

    @property
    def since(self) -> float:
        """Start of the drift period."""
        return overview_since(self.now)

    def alerts(self, *, state: str, reason: str = "") -> ServiceAlerts:
        """The findings and the recommendation, with the service's live ``state`` and its ``reason``."""
        return service_alerts(state=state, reason=reason, drift=self.drift, drift_problem=self.drift_problem,
                              verdict=self.verdict, performance_problem=self.performance_problem,
                              quality=self.quality, volume=self.counts.volume if self.counts is not None else None)

    def sentences(self) -> list[str]:
        """Plain statements: results, incoming data, labels."""
        from monitoring.drift import summary

        sentences = []
        if self.verdict is not None:
            sentences.append(f"Results: {performance_sentence(self.verdict)}")
        if self.drift is not None and not self.drift.features.empty:
            sentences.append(f"Incoming data: {summary(self.drift, since_label=_day(self.since))}.")
        if self.quality is not None:
            sentences.append(" ".join(self.quality.sentences()))
        return sentences


def service_overview(service: str, *, now: float, frame: pd.DataFrame | None = None,
                     traffic: LogTraffic | None = None, task: str = "auto",
                     profile: ReferenceProfile | None = None, profile_problem: str | None = None,
                     drift_methods: dict | None = None, drift_thresholds: dict | None = None,
                     drift_share: float = 0.5, labeled: LabeledPredictions | None = None,
                     label_problem: str | None = None, baseline: Baseline | None = None,
                     judged_days: float = 7.0, min_labels: int = 30,
                     drift_counts: WindowTallies | None = None, labelled: LabelledSummary | None = None,
                     threshold: float | None = 0.5, business: BusinessValues | None = None) -> ServiceOverview:
    """What the Overview says about one service's data at ``now``.

    Parameters
    ----------
    service : str
    now : float
        Unix seconds: the moment the overview is made for. Nothing reads the clock.
    frame : DataFrame, optional
        The prediction log (``ts``, ``prediction``, optionally ``model_version``, ``score`` and the
        features); rows after ``now`` are ignored. Not needed when ``traffic`` and
        ``drift_counts`` are given.
    traffic : LogTraffic, optional
        The log's traffic counted where it lives (``log_traffic(..., **traffic_options(now))``);
        default: counted from ``frame``.
    task : {"auto", "classification", "regression"}, default="auto"
    profile : ReferenceProfile, optional
        The reference statistics; without it ``profile_problem`` is reported for drift.
    profile_problem : str, optional
    drift_methods, drift_thresholds : dict, optional
        ``[services.drift]`` methods and thresholds.
    drift_share : float, default=0.5
    labeled : LabeledPredictions, optional
        Predictions joined with the labels arrived by ``now``, summed here
        (:func:`monitoring.label_queries.summarize_labeled`); or give ``labelled``. Without
        either, ``label_problem``.
    label_problem : str, optional
    baseline : Baseline, optional
    judged_days : float, default=7
        The period the results verdict pools.
    min_labels : int, default=30
    drift_counts : WindowTallies, optional
        Day windows since :func:`overview_since` up to ``now``, counted where the log lives
        (``tally_windows``); without them drift is computed from ``frame``'s features.
    labelled : LabelledSummary, optional
        The labelled predictions summed where the log lives, with ``judged_days`` and
        ``threshold`` (``source.summarize_labels``).
    threshold : float or None, default=0.5
        Decision threshold of :attr:`ServiceOverview.decisions` (when summing ``labeled``).
    business : BusinessValues, optional
        Money per decision, for :attr:`ServiceOverview.decisions`.

    Returns
    -------
    ServiceOverview
    """
    if traffic is None and frame is None:
        raise ValueError("service_overview needs the prediction log's rows (frame) or its counted traffic")
    if frame is not None and len(frame):
        frame = frame[frame["ts"].to_numpy(dtype=float) <= now]
    counts = (counts_of_traffic(traffic, task=task) if traffic is not None
              else prediction_counts(frame, now=now, task=task))
    if not counts.n_rows:
        problem = "no predictions have been logged yet"
        return ServiceOverview(service, now, problem=problem, performance_problem=problem)
    drift, drift_problem = None, profile_problem
    if profile is not None:
        settings = {"methods": drift_methods or None, "thresholds": drift_thresholds or None,
                    "drift_share": drift_share, "service": service, "now": now}
        try:
            if drift_counts is not None:
                drift = compute_drift_from_counts(profile, drift_counts, **settings)
            elif frame is None:
                raise ValueError("the drift of a log known only by its counts needs its drift_counts")
            else:
                recent = frame[frame["ts"].to_numpy(dtype=float) >= overview_since(now)]
                drift = compute_drift(profile, recent, window="day", **settings)
        except ValueError as exc:
            drift, drift_problem = None, str(exc)
    performance, verdict, performance_problem, quality, n_labelled = None, None, label_problem, None, 0
    decisions = None
    if labelled is None and labeled is not None:
        labelled = summarize_labeled(labeled, judged_days=judged_days, threshold=threshold)
    if labelled is not None:
        quality, n_labelled = labelled.quality, labelled.n_labelled
        baseline = baseline if baseline is not None else Baseline()
        since = range_start(now, MIX_DAYS, window="day")
        performance = summary_performance(labelled, baseline=baseline, min_labels=min_labels, since=since)
        verdict = summary_verdict(labelled, performance, baseline=baseline, days=judged_days)
        if labelled.task == "classification" and len(labelled.classes) == 2:
            decisions = summary_decisions(labelled, business=business, since=since)
    return ServiceOverview(service, now, counts=counts, drift=drift, drift_problem=drift_problem,
                           performance=performance, verdict=verdict, performance_problem=performance_problem,
                           quality=quality, n_labelled=n_labelled, decisions=decisions)
