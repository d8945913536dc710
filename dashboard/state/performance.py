"""The Performance page's caches: metrics, verdicts, decisions and detail over the labelled predictions.

Each takes ``tick=tick(LABELS_TICK_SECONDS)`` (:mod:`dashboard.state.data`): labels arrive slowly.
Labels the log's engine reaches (beside a Parquet log, a PostgreSQL store's table, a label file
staged where the log is) are joined there (by the collector's upkeep, or once per tick) and kept
there (:func:`performance_labels` gives a :class:`~monitoring.performance_sums.KeptLabels`): the
page's results are then counts of that join made by the log's engine, never its rows (windows of
a number of predictions: the newest ``MAX_ROW_WINDOWS``). Other sources (a SQLite store's log, the
SQL store's labels beside a Parquet log) are joined in memory and scored row by row.
"""

from __future__ import annotations

from dashboard.state.caching import cache_data
from dashboard.state.data import baseline, keeps_labels, kept_labels, labeled_predictions, model_version
from dashboard.state.lifecycle import Runtime
from monitoring.labels import LabeledPredictions
from monitoring.performance import (
    BaselineVerdict,
    BusinessValues,
    DecisionsOverTime,
    PerformanceDetail,
    PerformanceOverTime,
    decisions_over_time,
    judged_verdict,
    performance_detail,
    performance_over_time,
)
from monitoring.performance_sums import KeptLabels, WindowSums, sums_performance, sums_verdict
from monitoring.windows import range_start, row_count


def performance_labels(runtime: Runtime, *, service: str, tick: int) -> KeptLabels | LabeledPredictions:
    """What the page says of the ground truth (its quality, source, task, classes, delay, whether scored): the
    kept labels beside a Parquet log, else the labelled predictions joined in memory.

    Raises
    ------
    ProductionDataError, LabelDataError
        When the service has no prediction log or its labels cannot be read at all.
    """
    if keeps_labels(runtime, service):
        return kept_labels(runtime, service=service, tick=tick)
    return labeled_predictions(runtime, service=service, tick=tick)


@cache_data(ttl=300, max_entries=64)
def window_sums(runtime: Runtime, *, service: str, window: str, range_days: float | None, tick: int) -> WindowSums:
    """The kept labels of ``service`` summed per ``window`` over the last ``range_days`` days (None = all)
    (``ParquetMirror.kept_sums``)."""
    kept = kept_labels(runtime, service=service, tick=tick)
    return runtime.mirror(service).kept_sums(
        kept, window=window, now=kept.now, judged_days=runtime.config.service(service).performance.judged_days,
        since=range_start(kept.now, range_days, window=window))


def _baseline(runtime: Runtime, service: str, labels: KeptLabels | LabeledPredictions):
    return baseline(runtime, service=service, task=labels.task, classes=labels.classes,
                    model_version=model_version(runtime, service=service))


@cache_data(ttl=300, max_entries=64)
def cached_performance(runtime: Runtime, *, service: str, window: str, range_days: float | None,
                       tick: int) -> PerformanceOverTime:
    """Metrics per ``window`` over the last ``range_days`` days (None = all), against the baseline."""
    min_labels = runtime.config.service(service).performance.min_labels
    if keeps_labels(runtime, service):
        kept = kept_labels(runtime, service=service, tick=tick)
        sums = window_sums(runtime, service=service, window=window, range_days=range_days, tick=tick)
        return sums_performance(sums, kept, baseline=_baseline(runtime, service, kept), min_labels=min_labels)
    labeled = labeled_predictions(runtime, service=service, tick=tick, every_row=row_count(window) is not None)
    return performance_over_time(labeled, window=window, min_labels=min_labels,
                                 baseline=_baseline(runtime, service, labeled),
                                 since=range_start(labeled.now, range_days, window=window))


@cache_data(ttl=300, max_entries=64)
def cached_verdict(runtime: Runtime, *, service: str, window: str, range_days: float | None, metric: str,
                   tick: int) -> BaselineVerdict:
    """``metric`` over the judged period against the baseline (``judged_verdict``), dated by the chart's windows."""
    result = cached_performance(runtime, service=service, window=window, range_days=range_days, tick=tick)
    days = runtime.config.service(service).performance.judged_days
    if keeps_labels(runtime, service):
        sums = window_sums(runtime, service=service, window=window, range_days=range_days, tick=tick)
        return sums_verdict(sums, kept_labels(runtime, service=service, tick=tick), result, metric=metric,
                            baseline=result.baseline, days=days, confidence=result.confidence)
    labeled = labeled_predictions(runtime, service=service, tick=tick, every_row=row_count(window) is not None)
    return judged_verdict(labeled, result, metric=metric, baseline=result.baseline, days=days,
                          confidence=result.confidence)


@cache_data(ttl=300, max_entries=64)
def cached_decisions(runtime: Runtime, *, service: str, window: str, range_days: float | None,
                     threshold: float | None, tick: int) -> DecisionsOverTime:
    """Confusion counts (and money) per ``window`` at ``threshold``; two-class models only."""
    business = BusinessValues.from_config(runtime.config.service(service).performance)
    if keeps_labels(runtime, service):
        kept = kept_labels(runtime, service=service, tick=tick)
        return runtime.mirror(service).kept_decisions(kept, window=window, threshold=threshold, business=business,
                                                      since=range_start(kept.now, range_days, window=window))
    labeled = labeled_predictions(runtime, service=service, tick=tick, every_row=row_count(window) is not None)
    return decisions_over_time(labeled, window=window, threshold=threshold, business=business,
                               since=range_start(labeled.now, range_days, window=window))


@cache_data(ttl=300, max_entries=64)
def cached_performance_detail(runtime: Runtime, *, service: str, since: float | None, until: float | None,
                              threshold: float | None, tick: int) -> PerformanceDetail:
    """Calibration, confusion matrix at ``threshold`` and residuals of predictions made in ``[since, until)``."""
    business = BusinessValues.from_config(runtime.config.service(service).performance)
    if keeps_labels(runtime, service):
        return runtime.mirror(service).kept_detail(kept_labels(runtime, service=service, tick=tick), since=since,
                                                   until=until, threshold=threshold, business=business)
    labeled = labeled_predictions(runtime, service=service, tick=tick)
    return performance_detail(labeled, since=since, until=until, threshold=threshold, business=business)
