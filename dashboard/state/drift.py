"""The Drift page's caches: the reference profile of a service and its drift report."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading

from dashboard.state.caching import cache_data, cache_resource
from dashboard.state.lifecycle import Runtime, var_dir
from monitoring.drift import (
    DriftReport,
    ReferenceProfile,
    compute_drift_from_counts,
    known_noise_levels,
    remember_noise_levels,
)
from monitoring.service_reference import logged_service_profile

log = logging.getLogger(__name__)
_noise_lock = threading.Lock()
_noise_saved = {"count": -1}


@cache_resource(max_entries=32, show_spinner="Reading the reference data…")
def drift_profile(runtime: Runtime, *, service: str) -> ReferenceProfile:
    """Reference statistics of ``service``'s features (``monitoring.service_reference.logged_service_profile``: the
    profile the collector's upkeep counts the log against too),
    built once per reference file and kept on disk (in memory only for a service with personal columns).

    Raises
    ------
    ReferenceDataError
        No reference configured, or a file that is missing, unreadable, empty, lacks the
        service's columns or has text in a numeric column (not cached: fixed files are
        picked up at the next rerun).
    """
    recall_noise_levels()
    return logged_service_profile(runtime.config.service(service), runtime.schema(service), runtime.store,
                                  cache_dir=var_dir() / "drift-profiles")


@cache_data(ttl=900, max_entries=64)
def cached_drift(runtime: Runtime, *, service: str, window: str | int, since: float | None, until: float | None,
                 rows_seen: int) -> DriftReport:
    """Drift of every feature and window of ``service`` between ``since`` and ``until``
    (``monitoring.drift.compute_drift_from_counts`` over the counts its production source computes where
    the rows are: ``tallies``).

    ``rows_seen`` (the number of production rows) is part of the key only: new rows give a
    new report.
    """
    del rows_seen
    config = runtime.config.service(service)
    profile = drift_profile(runtime, service=service)
    tallies = runtime.mirror(service).tallies(profile, window=window, since=since, until=until)
    report = compute_drift_from_counts(profile, tallies, methods=config.drift.methods,
                                       thresholds=config.drift.thresholds, drift_share=config.drift.drift_share,
                                       service=service, now=runtime.now())
    keep_noise_levels()
    return report


def _noise_file():
    return var_dir() / "drift-profiles" / "noise-levels.json"


def recall_noise_levels() -> None:
    """Take the noise levels an earlier process kept (``var/drift-profiles/noise-levels.json``), if any.

    A level is a deterministic result of a reference's counts (``monitoring.drift.noise_level``),
    simulated in a few tenths of a second per column and size: kept, a fresh server's first drift
    view needs no simulation. A missing or unreadable file is simply simulated again.
    """
    with _noise_lock:
        if _noise_saved["count"] >= 0:
            return
        with contextlib.suppress(OSError, ValueError):  # missing or unreadable: simulated again
            remember_noise_levels(json.loads(_noise_file().read_text()))
        _noise_saved["count"] = len(known_noise_levels())


def keep_noise_levels() -> None:
    """Write the memoised noise levels to disk when this process simulated new ones (:func:`recall_noise_levels`)."""
    levels = known_noise_levels()
    with _noise_lock:
        if len(levels) == _noise_saved["count"]:
            return
        path = _noise_file()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            temporary.write_text(json.dumps(levels))
            os.replace(temporary, path)
            _noise_saved["count"] = len(levels)
        except OSError:
            log.warning("could not keep the drift noise levels in %s", path, exc_info=True)
