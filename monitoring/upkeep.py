"""The prediction log's upkeep beyond compaction: drift counts and label joins kept ahead of any page view.

What the holder of the collector's maintenance lease runs after downsampling and the log's
compaction (:meth:`monitoring.collector.Collector.upkeep`). It lives apart from the collector
because it needs the analytical engines (DuckDB, Ibis, the drift methods), whose import takes
longer than the interpreter's start-up: a collector restarted after a crash imports none of it
before it has taken its lease over and polled.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from monitoring.config import ServiceConfig
from monitoring.engine_mirror import EngineMirror
from monitoring.labels import label_source
from monitoring.performance_sums import KeptLabels
from monitoring.production import (
    UPKEEP_TALLY_ROWS,
    KeptTallies,
    ProductionDataError,
    keep_file_tallies,
    production_source,
)
from monitoring.reference import ReferenceDataError
from monitoring.schema import ServiceSchema
from monitoring.service_reference import logged_service_profile
from monitoring.store import Store
from monitoring.store_log import STORE_UPKEEP_TALLY_ROWS, StoreLogMirror

log = logging.getLogger(__name__)


def keep_drift_tallies(store: Store, services: Sequence[ServiceConfig], schemas: Mapping[str, ServiceSchema], *,
                       now: float, max_rows: int = UPKEEP_TALLY_ROWS) -> dict[str, KeptTallies]:
    """Count and keep the drift counts of the prediction log's files of past days, so that no page view does.

    For each service with a reference whose log is the store's Parquet log, against the
    profile the Drift page uses (:func:`monitoring.service_reference.logged_service_profile`),
    by :func:`monitoring.production.keep_file_tallies`: day and week counts of every file
    without them, newest first, at most ``max_rows`` predictions in all (the next run goes on).
    A log in the store's tables (PostgreSQL or SQLite) is counted the same way per past UTC day
    (:meth:`monitoring.store_log.StoreLogMirror.keep_day_tallies`).
    A service without a reference, with one that cannot be used, or without a log is passed
    over; one whose counting fails is logged and the others are still counted.

    Parameters
    ----------
    store : Store
    services : sequence of ServiceConfig
    schemas : mapping of str to ServiceSchema
        Each service's resolved schema, by service name (the pollers').
    now : float
        Unix seconds: the days over by then are counted.
    max_rows : int, default=UPKEEP_TALLY_ROWS
        Predictions counted at most in this run, over every service.

    Returns
    -------
    dict of str to KeptTallies
        What was counted, per service counted.
    """
    prediction_log = store.predictions
    kept: dict[str, KeptTallies] = {}
    budget = max_rows
    for service in services:
        if budget <= 0:
            break
        if service.prediction_log is not None or not service.reference or service.name not in schemas:
            continue  # its drift is counted from a file of its own, or against nothing
        mirror = production_source(store, service)
        try:
            if not mirror.has_rows():
                continue
            profile = logged_service_profile(service, schemas[service.name], store)
        except (ReferenceDataError, ProductionDataError) as exc:
            log.debug("drift counts of %s not kept: %s", service.name, exc)
            continue
        try:
            if isinstance(mirror, StoreLogMirror):  # counted by the store's database, kept in its kept_tallies
                done = mirror.keep_day_tallies(profile, now=now, max_rows=min(budget, STORE_UPKEEP_TALLY_ROWS))
            else:
                done = keep_file_tallies(prediction_log, service.log_name, profile, now=now, max_rows=budget)
        except Exception:
            log.warning("drift counts of %s's prediction log could not be kept", service.name, exc_info=True)
            continue
        if done.files:
            log.info("prediction log of %s: drift counts kept for %d file(s), %s predictions (%d file(s) left)",
                     service.name, len(done.files), f"{done.rows:,}", done.left)
        kept[service.name] = done
        budget -= done.rows
    return kept


KEEP_LABELS_EVERY = 120.0
"""Seconds between two joins of a service's labels by the upkeep (the dashboard's labels tick); longer when a
join takes more than a twentieth of that (``monitoring.performance_sums.JOIN_SHARE``)."""


def keep_service_labels(store: Store, services: Sequence[ServiceConfig], schemas: Mapping[str, ServiceSchema], *,
                        now: float, every: float = KEEP_LABELS_EVERY) -> dict[str, KeptLabels]:
    """Join and keep the labels of each service whose labels the store's prediction log's engine joins (beside the
    Parquet log, in the store's tables, or a label file, staged there first), so that no first page view
    joins them (the Performance page counts the kept rows; the Overview reads their summary).

    A service whose newest kept labels are less than ``every`` seconds old (or twenty times their
    join's duration, if longer) is passed over; one whose join fails is logged and the others are
    still joined.

    Parameters
    ----------
    store : Store
    services : sequence of ServiceConfig
    schemas : mapping of str to ServiceSchema
        Each service's resolved schema (its task), by service name.
    now : float
        Unix seconds: the labels arrived by then are joined.
    every : float, default=KEEP_LABELS_EVERY

    Returns
    -------
    dict of str to KeptLabels
        What was joined, per service joined.
    """
    joined: dict[str, KeptLabels] = {}
    for service in services:
        if service.prediction_log is not None:
            continue
        mirror = production_source(store, service)
        if not isinstance(mirror, EngineMirror) or not mirror.has_rows():
            continue
        labels = label_source(store, service)
        if not mirror.keeps_labels(labels) or mirror.latest_kept(now=now, max_age=every) is not None:
            continue
        schema = schemas.get(service.name)
        try:
            joined[service.name] = mirror.keep_labels(
                labels, now=now, task=(schema.task if schema is not None else None) or "auto",
                judged_days=service.performance.judged_days, threshold=service.performance.threshold)
        except ProductionDataError as exc:  # nothing logged yet
            log.debug("labels of %s not joined: %s", service.name, exc)
        except Exception:
            log.warning("labels of %s could not be joined and kept", service.name, exc_info=True)
    return joined
