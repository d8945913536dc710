"""Production data, labels and baselines, the caches several pages share (Drift, Performance, Overview, ...)."""

from __future__ import annotations

import dataclasses

import pandas as pd

from dashboard.state.caching import cache_data, cache_resource
from dashboard.state.health import cached_metadata
from dashboard.state.lifecycle import Runtime, tick, var_dir
from monitoring.clients import PROBE_HEADER, make_client
from monitoring.engine_mirror import EngineMirror
from monitoring.label_summary import LabelledSummary, cut_of
from monitoring.labels import LabeledPredictions, LabelFileMirror, LogLabels, StoreLabelMirror, label_source
from monitoring.log_queries import LogSummary
from monitoring.performance import Baseline, baseline_for
from monitoring.performance_sums import KeptLabels
from monitoring.production import FileMirror

LABELS_TICK_SECONDS = 120.0
"""Labels arrive slowly: what is computed from them refreshes at most every two minutes."""
KEPT_FRESH_SECONDS = 2 * LABELS_TICK_SECONDS
"""Labels kept at most this long ago (by the collector's upkeep, every two minutes; longer after a long join:
``monitoring.performance_sums.stays_fresh``) are the pages'."""


def prediction_log_mirror(runtime: Runtime, *, service: str) -> FileMirror | EngineMirror:
    """The production source of ``service`` (:func:`monitoring.production.production_source`): its log where it
    lives, asked for counts and bounded samples, or a prediction-log file.

    The runtime owns one per service (not a cache of this package) and warms them up in the
    background when it starts.
    """
    return runtime.mirror(service)


@cache_resource(max_entries=32)
def label_mirror(runtime: Runtime, *, service: str) -> StoreLabelMirror | LabelFileMirror | LogLabels:
    """The ground-truth labels of ``service``: beside its Parquet log, the store's table, or its label file
    (which the log's engine joins once staged, :mod:`monitoring.staged_labels`)."""
    return label_source(runtime.store, runtime.config.service(service))


@cache_resource(ttl=120, max_entries=8)
def labeled_predictions(runtime: Runtime, *, service: str, tick: int, every_row: bool = False
                        ) -> LabeledPredictions:
    """Predictions of ``service`` joined to the labels that have arrived, where its log lives when it can
    (its source's ``join_labels``); ``every_row=True`` for windows of a number of predictions.

    Pass ``tick=tick(LABELS_TICK_SECONDS)``. Shared between sessions without copying: read it,
    never change it.

    Raises
    ------
    ProductionDataError, LabelDataError
        When the service has no prediction log or its labels cannot be read at all.
    """
    del tick
    return runtime.mirror(service).join_labels(label_mirror(runtime, service=service), now=runtime.now(),
                                               task=runtime.schema(service).task or "auto", every_row=every_row)


@cache_resource(ttl=120, max_entries=8)
def kept_labels(runtime: Runtime, *, service: str, tick: int) -> KeptLabels:
    """The labelled predictions of ``service`` joined and kept beside its Parquet log: the collector's upkeep's
    when they are fresh (at most :data:`KEPT_FRESH_SECONDS` old), else joined now (``ParquetMirror.keep_labels``,
    with the Overview's summary).

    Pass ``tick=tick(LABELS_TICK_SECONDS)``. Shared between sessions: read it, never change it.
    """
    del tick
    mirror, now = runtime.mirror(service), runtime.now()
    found = mirror.latest_kept(now=now, max_age=KEPT_FRESH_SECONDS, stretch=2.0)
    if found is not None:
        return found
    config = runtime.config.service(service).performance
    return mirror.keep_labels(label_mirror(runtime, service=service), now=now,
                              task=runtime.schema(service).task or "auto", judged_days=config.judged_days,
                              threshold=config.threshold)


def keeps_labels(runtime: Runtime, service: str) -> bool:
    """Whether the labels of ``service`` are where its log is (beside a Parquet log, or in a PostgreSQL store's
    tables), joined and counted there."""
    mirror = runtime.mirror(service)
    return isinstance(mirror, EngineMirror) and mirror.keeps_labels(label_mirror(runtime, service=service))


@cache_resource(ttl=120, max_entries=8)
def labelled_summary(runtime: Runtime, *, service: str, tick: int,
                     _served_hours: pd.DataFrame | None = None) -> LabelledSummary:
    """The labelled predictions of ``service`` summed per day where its log lives, cut at its judged period and
    counted at its decision threshold: the summary of its :func:`kept_labels` beside a Parquet log (the same rows
    and time as the Performance page's), else its source's ``summarize_labels``.

    Pass ``tick=tick(LABELS_TICK_SECONDS)``, and ``_served_hours`` when the log's predictions per
    hour are at hand (``LogTraffic.hours``; not part of the key). Shared between sessions: read
    it, never change it.

    Raises
    ------
    ProductionDataError, LabelDataError
        As :func:`labeled_predictions`.
    """
    config = runtime.config.service(service).performance
    if keeps_labels(runtime, service):  # the Performance page's rows, summed when they were kept
        kept = kept_labels(runtime, service=service, tick=tick)
        summary = kept.summary
        if summary is None or summary.cut != cut_of(kept.now, config.judged_days) \
                or summary.threshold != config.threshold:
            mirror = runtime.mirror(service)
            summary = mirror.kept_summary(kept, judged_days=config.judged_days, threshold=config.threshold)
        return summary if _served_hours is None else dataclasses.replace(summary, served_hours=_served_hours)
    del tick
    return runtime.mirror(service).summarize_labels(
        label_mirror(runtime, service=service), now=runtime.now(), task=runtime.schema(service).task or "auto",
        judged_days=config.judged_days, threshold=config.threshold, served_hours=_served_hours)


def model_version(runtime: Runtime, *, service: str) -> str | None:
    """The model version ``service`` reports (its metadata, cached a minute), else the configured one."""
    version = cached_metadata(runtime, service=service, tick=tick(60)).get("version")
    return version or runtime.config.service(service).model_version


@cache_data(ttl=600, max_entries=32)
def baseline(runtime: Runtime, *, service: str, task: str, classes: tuple[float, ...],
             model_version: str | None) -> Baseline:
    """The baseline of ``service`` (``monitoring.baseline.baseline_for``) for ``model_version``
    (:func:`model_version`): configured, from the reference's own predictions, or the service's
    predictions on a bounded reference sample (kept on disk per model version)."""
    from explain._budget import paced_predict

    config = runtime.config.service(service)
    client = make_client(config)
    client.session.headers[PROBE_HEADER] = "1"  # scoring the reference is not production traffic
    try:
        return baseline_for(config, task=task, classes=classes, features=runtime.schema(service).features,
                            predict=paced_predict(config, client.predict), model_version=model_version,
                            cache_dir=var_dir() / "baselines")
    finally:
        client.close()


@cache_data(ttl=5, max_entries=64)
def production_summary(runtime: Runtime, *, service: str) -> LogSummary:
    """Rows and time span of ``service``'s production data, counted where it lives (cached 5 s).

    Raises
    ------
    ProductionDataError
        When the service has no prediction log.
    """
    return runtime.mirror(service).summary()


def rows_seen(runtime: Runtime, *, service: str) -> int:
    """How many production rows ``service`` has, for the ``rows_seen=`` key of caches that follow new rows.

    Raises
    ------
    ProductionDataError
        When the service has no prediction log.
    """
    return production_summary(runtime, service=service).rows
