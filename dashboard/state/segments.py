"""The Segments page's caches (and the report's segments): tables, fairness and importance per segment.

Each takes ``tick=tick(LABELS_TICK_SECONDS)`` (:mod:`dashboard.state.data`), the importance ``tick=tick(3600)``.
The counts are made where the log lives (``monitoring.segment_queries``): only aggregates and bounded
samples enter this process.
"""

from __future__ import annotations

import logging

from dashboard.state import lifecycle
from dashboard.state.caching import cache_data, cache_resource
from dashboard.state.data import LABELS_TICK_SECONDS, keeps_labels, kept_labels, label_mirror
from dashboard.state.explain import explain_setup, explainer
from dashboard.state.lifecycle import Runtime
from monitoring.service_reference import service_reference_rows

log = logging.getLogger(__name__)


@cache_resource(ttl=900, max_entries=16)
def segment_reference(runtime: Runtime, *, service: str):
    """The reference rows of ``service`` whose quantiles bin numbers and whose segments shares are compared
    with (``monitoring.service_reference.service_reference_rows``), or None."""
    return service_reference_rows(runtime.config.service(service).reference, schema=runtime.schema(service))[0]


def _edges(runtime: Runtime, *, service: str, features: tuple, n_bins: int) -> dict | None:
    from explain.segments import segment_edges

    reference = segment_reference(runtime, service=service)
    return segment_edges(reference, features, n_bins=n_bins) if reference is not None else None


@cache_resource(ttl=LABELS_TICK_SECONDS, max_entries=16)
def period_end(runtime: Runtime, *, service: str, tick: int) -> float:
    """The end of the page's periods during ``tick``: the time of the labels kept beside a Parquet log (the Overview's
    and the Performance page's), else the runtime's clock at the tick's first ask. One time for every table of the
    page, so the segments and the fairness groups count the same predictions."""
    if keeps_labels(runtime, service):
        return float(kept_labels(runtime, service=service, tick=tick).now)
    return float(runtime.now())


def _counts(runtime: Runtime, *, service: str, features: tuple, n_bins: int, days: float, edges: dict | None,
            tick: int, sample_rows: int | None = None, plan=None):
    """``monitoring.segment_queries.segment_counts`` of the last ``days`` days, with the service's labels: beside
    a Parquet log, the label join the Overview and the Performance page read too (``data.kept_labels``)."""
    from monitoring.segment_queries import SAMPLE_ROWS, segment_counts

    kept = kept_labels(runtime, service=service, tick=tick) if keeps_labels(runtime, service) else None
    return segment_counts(runtime.mirror(service), label_mirror(runtime, service=service), features,
                          now=period_end(runtime, service=service, tick=tick), days=days, n_bins=n_bins, edges=edges,
                          task=runtime.schema(service).task or "auto",
                          sample_rows=SAMPLE_ROWS if sample_rows is None else sample_rows,
                          drift_edges=None if plan is None else plan.edges,
                          drift_categorical=() if plan is None else plan.categorical, kept=kept)


@cache_data(ttl=300, max_entries=64)
def segments_table(runtime: Runtime, *, service: str, features: tuple, n_bins: int, days: float, min_rows: int,
                   tick: int):
    """Volume, prediction rate, performance and share drift per segment of the last ``days`` days
    (``explain.segments.segments_report``)."""
    from explain.segments import segment_drift_plan, segments_report
    from monitoring.reference import MODEL_OUTPUTS, infer_kinds

    reference = segment_reference(runtime, service=service)
    plan = None
    if reference is not None:
        kinds = runtime.schema(service).feature_kinds or infer_kinds(
            reference.drop(columns=[c for c in reference.columns if c in MODEL_OUTPUTS]))
        plan = segment_drift_plan(reference, features, kinds, columns=runtime.mirror(service).columns(),
                                  n_bins=n_bins, min_rows=min_rows)
    counts = _counts(runtime, service=service, features=features, n_bins=n_bins, days=days,
                     edges=_edges(runtime, service=service, features=features, n_bins=n_bins), tick=tick, plan=plan)
    return segments_report(counts, reference=reference, plan=plan, n_bins=n_bins, min_rows=min_rows)


@cache_data(ttl=300, max_entries=64)
def segments_fairness(runtime: Runtime, *, service: str, sensitive: str, n_bins: int, days: float, min_rows: int,
                      positive: float | None, tick: int):
    """Fairness across the groups of ``sensitive`` (``explain.segments.segments_fairness``; numbers in the
    segments table's quantile bins of the reference, or of the period's own values without one): ``positive``
    is the class counted as the positive decision (None, or not one of the classes: the last class). None for
    a regression model."""
    from explain.segments import segments_fairness as fairness

    # a number in the segments table's bins (the reference's quantiles), so both tables name the same groups
    counts = _counts(runtime, service=service, features=(sensitive,), n_bins=n_bins, days=days,
                     edges=_edges(runtime, service=service, features=(sensitive,), n_bins=n_bins), tick=tick,
                     sample_rows=0)
    return fairness(counts, min_rows=min_rows, positive=None if positive is None else float(positive))


@cache_data(ttl=3600, max_entries=32)
def segments_importance(runtime: Runtime, *, service: str, version: str | None, features: tuple, n_bins: int,
                        days: float, tick: int, _progress=None):
    """Top three features by mean |SHAP| per segment on a bounded sample of each
    (``explain.segment_tables.explained_segments``); raises ``ExplainError``."""
    from explain.segment_tables import SEGMENT_EXPLAIN_ROWS, explained_segments
    from monitoring.segment_queries import segment_sample

    model = explain_setup(runtime, service=service).selected.model
    sample = segment_sample(runtime.mirror(service), features, now=period_end(runtime, service=service, tick=tick),
                            days=days,
                            columns=model.features, at_most=SEGMENT_EXPLAIN_ROWS, n_bins=n_bins,
                            edges=_edges(runtime, service=service, features=features, n_bins=n_bins))
    return explained_segments(
        explainer(runtime, service=service, version=version, space="auto"), sample, model_features=model.features,
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
        config = runtime.config.service(service)
        schema = runtime.schema(service)
        feature = report_feature(schema.feature_kinds, schema.present_in(runtime.mirror(service).columns()),
                                 personal=config.personal)
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
