"""The Segments page's caches (and the report's segments): tables, fairness and importance per segment.

Each takes ``tick=tick(LABELS_TICK_SECONDS)`` (:mod:`dashboard.state.data`), the importance ``tick=tick(3600)``.
"""

from __future__ import annotations

import logging

from dashboard.state import lifecycle
from dashboard.state.caching import cache_data, cache_resource
from dashboard.state.data import LABELS_TICK_SECONDS, labeled_predictions
from dashboard.state.explain import explain_setup, explainer
from dashboard.state.lifecycle import Runtime
from monitoring.labels import LabelDataError
from monitoring.service_reference import service_reference_rows

log = logging.getLogger(__name__)


@cache_resource(ttl=900, max_entries=16)
def segment_reference(runtime: Runtime, *, service: str):
    """The reference rows of ``service`` whose quantiles bin numbers and whose segments shares are compared
    with (``monitoring.service_reference.service_reference_rows``), or None."""
    return service_reference_rows(runtime.config.service(service).reference, schema=runtime.schema(service))[0]


def segment_rows(runtime: Runtime, *, service: str, days: float, tick: int):
    """``explain.segments.segment_rows`` of the last ``days`` days, with labels when the service has them.

    Not cached itself: it joins two caches (the production mirror and the labelled predictions).
    """
    from explain.segments import segment_rows as rows_of

    frame = runtime.mirror(service).read().frame
    try:
        labeled = labeled_predictions(runtime, service=service, tick=tick)
    except LabelDataError:
        labeled = None
    return rows_of(frame, now=runtime.now(), days=days, labeled=labeled, task=runtime.schema(service).task or "auto")


@cache_data(ttl=300, max_entries=64)
def segments_table(runtime: Runtime, *, service: str, features: tuple, n_bins: int, days: float, min_rows: int,
                   tick: int):
    """Volume, prediction rate, performance and share drift per segment of the last ``days`` days
    (``explain.segments.segments_report``)."""
    from explain.segments import segments_report

    return segments_report(segment_rows(runtime, service=service, days=days, tick=tick), features,
                           reference=segment_reference(runtime, service=service),
                           kinds=runtime.schema(service).feature_kinds, n_bins=n_bins, min_rows=min_rows)


@cache_data(ttl=300, max_entries=64)
def segments_fairness(runtime: Runtime, *, service: str, sensitive: str, n_bins: int, days: float, min_rows: int,
                      positive: float | None, tick: int):
    """Fairness across the groups of ``sensitive`` (``explain.segments.segments_fairness``): ``positive`` is the
    class counted as the positive decision (None, or not one of the classes: the last class). None for a
    regression model."""
    from explain.segments import segments_fairness as fairness

    return fairness(segment_rows(runtime, service=service, days=days, tick=tick), sensitive, n_bins=n_bins,
                    min_rows=min_rows, positive=None if positive is None else float(positive))


@cache_data(ttl=3600, max_entries=32)
def segments_importance(runtime: Runtime, *, service: str, version: str | None, features: tuple, n_bins: int,
                        days: float, tick: int, _progress=None):
    """Top three features by mean |SHAP| per segment on a bounded sample
    (``explain.segment_tables.explained_segments``); raises ``ExplainError``."""
    from explain.segment_tables import explained_segments

    model = explain_setup(runtime, service=service).selected.model
    return explained_segments(
        explainer(runtime, service=service, version=version, space="auto"),
        segment_rows(runtime, service=service, days=days, tick=tick).frame, features,
        model_features=model.features, reference=segment_reference(runtime, service=service), n_bins=n_bins,
        model_rows_budget=runtime.config.service(service).explain.max_rows_per_computation, progress=_progress)


REPORT_DAYS = 30.0
"""The report's segments cover this many days, in four bins."""


def report_segments(runtime: Runtime, *, service: str) -> tuple:
    """Segments and fairness by the first non-personal categorical feature over :data:`REPORT_DAYS` days
    (``explain.segment_tables.report_feature``), for the report; (None, None) if there is none.

    Safe to call from the download button's worker thread; problems leave the sections out.
    """
    from explain.segment_tables import report_feature

    try:
        frame = runtime.mirror(service).read().frame
        config = runtime.config.service(service)
        feature = report_feature(frame, runtime.schema(service).present_in(frame.columns), personal=config.personal)
        if feature is None:
            return None, None
        tick = lifecycle.tick(LABELS_TICK_SECONDS)
        options = {"service": service, "n_bins": 4, "days": REPORT_DAYS, "min_rows": config.performance.min_labels,
                   "tick": tick}
        return (segments_table(runtime, features=(feature,), **options),
                segments_fairness(runtime, sensitive=feature, positive=None, **options))
    except Exception:  # the report is still useful without its segments
        log.info("no segments for the report of %s", service, exc_info=True)
        return None, None
