"""The Performance page's caches: metrics, decisions and detail over the labelled predictions.

Each takes ``tick=tick(LABELS_TICK_SECONDS)`` (:mod:`dashboard.state.data`): labels arrive slowly.
"""

from __future__ import annotations

from dashboard.state.caching import cache_data
from dashboard.state.data import baseline, labeled_predictions, model_version
from dashboard.state.lifecycle import Runtime
from monitoring.performance import (
    BusinessValues,
    DecisionsOverTime,
    PerformanceDetail,
    PerformanceOverTime,
    decisions_over_time,
    performance_detail,
    performance_over_time,
)
from monitoring.windows import range_start, row_count


@cache_data(ttl=300, max_entries=64)
def cached_performance(runtime: Runtime, *, service: str, window: str, range_days: float | None,
                       tick: int) -> PerformanceOverTime:
    """Metrics per ``window`` over the last ``range_days`` days (None = all), against the baseline."""
    labeled = labeled_predictions(runtime, service=service, tick=tick, every_row=row_count(window) is not None)
    return performance_over_time(
        labeled, window=window, min_labels=runtime.config.service(service).performance.min_labels,
        baseline=baseline(runtime, service=service, task=labeled.task, classes=labeled.classes,
                          model_version=model_version(runtime, service=service)),
        since=range_start(labeled.now, range_days, window=window))


@cache_data(ttl=300, max_entries=64)
def cached_decisions(runtime: Runtime, *, service: str, window: str, range_days: float | None,
                     threshold: float | None, tick: int) -> DecisionsOverTime:
    """Confusion counts (and money) per ``window`` at ``threshold``; two-class models only."""
    labeled = labeled_predictions(runtime, service=service, tick=tick, every_row=row_count(window) is not None)
    return decisions_over_time(labeled, window=window, threshold=threshold,
                               business=BusinessValues.from_config(runtime.config.service(service).performance),
                               since=range_start(labeled.now, range_days, window=window))


@cache_data(ttl=300, max_entries=64)
def cached_performance_detail(runtime: Runtime, *, service: str, since: float | None, until: float | None,
                              threshold: float | None, tick: int) -> PerformanceDetail:
    """Calibration, confusion matrix at ``threshold`` and residuals of predictions made in ``[since, until)``."""
    labeled = labeled_predictions(runtime, service=service, tick=tick)
    return performance_detail(labeled, since=since, until=until, threshold=threshold,
                              business=BusinessValues.from_config(runtime.config.service(service).performance))
