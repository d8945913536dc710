"""The Overview page's cache: what it says about one service's data (``monitoring.overview``)."""

from __future__ import annotations

import math

from dashboard.state import lifecycle
from dashboard.state.caching import cache_data
from dashboard.state.data import LABELS_TICK_SECONDS, baseline, labelled_summary, model_version
from dashboard.state.drift import drift_profile, keep_noise_levels
from dashboard.state.lifecycle import Runtime
from monitoring.labels import LabelDataError
from monitoring.overview import ServiceOverview, overview_since, service_overview, traffic_options
from monitoring.performance import BusinessValues
from monitoring.production import ProductionDataError
from monitoring.reference import ReferenceDataError

OVERVIEW_TICK_SECONDS = 60.0
"""The Overview is recomputed at least once a minute (and whenever rows arrive)."""


@cache_data(ttl=300, max_entries=32)
def overview(runtime: Runtime, *, service: str, rows_seen: int, tick: int) -> ServiceOverview:
    """``monitoring.overview.service_overview`` of ``service`` at the runtime's clock, from its traffic and
    drift counted where its rows are, its drift profile and its labelled predictions summed where they are
    (``labelled_summary``); a part that cannot be read is a problem in the result, not an exception.

    Pass ``rows_seen=rows_seen(runtime, service=...)`` and ``tick=tick(OVERVIEW_TICK_SECONDS)``.

    Raises
    ------
    ProductionDataError
        When the service has no prediction log.
    """
    del rows_seen, tick
    config = runtime.config.service(service)
    source = runtime.mirror(service)
    now = runtime.now()
    traffic = source.traffic(**traffic_options(now))  # volume, mix and versions, counted where the rows are
    profile, profile_problem, drift_counts = None, None, None
    try:
        profile = drift_profile(runtime, service=service)
        drift_counts = source.tallies(profile, window="day", since=overview_since(now),
                                      until=math.nextafter(now, math.inf))
    except (ReferenceDataError, ValueError) as exc:
        profile, profile_problem = None, str(exc)
    labelled, label_problem, found_baseline = None, None, None
    try:
        labelled = labelled_summary(runtime, service=service, tick=lifecycle.tick(LABELS_TICK_SECONDS),
                                    _served_hours=traffic.hours)
        found_baseline = baseline(runtime, service=service, task=labelled.task, classes=labelled.classes,
                                  model_version=model_version(runtime, service=service))
    except (ProductionDataError, LabelDataError) as exc:
        label_problem = str(exc)
    found = service_overview(service, traffic=traffic, now=now, task=config.performance.task, profile=profile,
                             profile_problem=profile_problem, drift_methods=config.drift.methods,
                             drift_thresholds=config.drift.thresholds, drift_share=config.drift.drift_share,
                             labelled=labelled, label_problem=label_problem, baseline=found_baseline,
                             judged_days=config.performance.judged_days, min_labels=config.performance.min_labels,
                             drift_counts=drift_counts, threshold=config.performance.threshold,
                             business=BusinessValues.from_config(config.performance))
    keep_noise_levels()
    return found
