"""A service's reference data as the pages need it: its features, its drift profile, its rows."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from monitoring.drift import ReferenceProfile, load_or_build_profile
from monitoring.reference import MODEL_OUTPUTS, ReferenceDataError, infer_kinds, read_reference
from monitoring.schema import ServiceSchema

if TYPE_CHECKING:
    from monitoring.config import ServiceConfig
    from monitoring.store import Store

_PROFILES: OrderedDict[tuple, ReferenceProfile] = OrderedDict()
_PROFILES_SIZE = 32
_PROFILES_LOCK = threading.Lock()


def service_features(schema: ServiceSchema, *, service: str) -> tuple[str, ...]:
    """The features of ``service``'s schema; a schema without any is an error that says why.

    Parameters
    ----------
    schema : ServiceSchema
        The service's resolved schema.
    service : str
        Its name, for the message.

    Returns
    -------
    tuple of str
        The features, in model order.

    Raises
    ------
    ReferenceDataError
        When the schema has no features: the message gives the schema's problems, or how to
        name the features.
    """
    if not schema.features:
        raise ReferenceDataError(f"service {service!r} has no features: " + (
            "; ".join(schema.problems) or "set `features`, or a reference with feature columns besides the target"))
    return schema.features


def service_profile(reference: str | None, *, service: str, features: tuple[str, ...],
                    known_kinds: Mapping[str, str], personal: bool,
                    cache_dir: str | Path | None) -> ReferenceProfile:
    """The drift profile of ``service``'s reference file (``monitoring.drift.load_or_build_profile``).

    Parameters
    ----------
    reference : str or None
        The reference file (CSV or Parquet), as configured.
    service : str
        The service's name, for messages.
    features : tuple of str
        Its features (:func:`service_features`).
    known_kinds : mapping of str to str
        Column kinds the prediction log already knows; they win over the reference's dtypes.
    personal : bool
        Whether the service has personal columns: a profile lists a categorical column's values,
        so it then stays in memory and is never written to ``cache_dir``.
    cache_dir : str, Path or None
        Where profiles are kept on disk.

    Returns
    -------
    ReferenceProfile

    Raises
    ------
    ReferenceDataError
        No reference configured, or a file that is missing, unreadable, empty, lacks the
        service's columns or has text in a numeric column.
    """
    if not reference:
        raise ReferenceDataError(f"service {service!r} has no reference data: set `reference` (a CSV or Parquet "
                                 "file of the training data) in its [[services]] table")
    try:  # the same file, unchanged, asked the same: the profile already made (the upkeep asks every minute)
        stat = Path(reference).stat()
    except OSError:
        stat = None
    key = (str(Path(reference).resolve()), stat and (stat.st_size, stat.st_mtime_ns), tuple(features),
           tuple(sorted(known_kinds.items())), personal, str(cache_dir))
    with _PROFILES_LOCK:
        if stat is not None and key in _PROFILES:
            _PROFILES.move_to_end(key)
            return _PROFILES[key]
    frame = read_reference(reference, features=features, kinds=known_kinds)
    kinds = infer_kinds(frame.drop(columns=[c for c in frame.columns if c in MODEL_OUTPUTS]), known=known_kinds)
    profile = load_or_build_profile(reference, kinds, cache_dir=None if personal else cache_dir)
    with _PROFILES_LOCK:
        _PROFILES[key] = profile
        while len(_PROFILES) > _PROFILES_SIZE:
            _PROFILES.popitem(last=False)
    return profile


def logged_service_profile(service: ServiceConfig, schema: ServiceSchema, store: Store, *,
                           cache_dir: str | Path | None = None) -> ReferenceProfile:
    """The drift profile the Drift page counts ``service``'s prediction log against (:func:`service_profile`
    with the schema's features and the kinds the log already knows).

    Parameters
    ----------
    service : ServiceConfig
    schema : ServiceSchema
        Its resolved schema (the poller's).
    store : Store
        Whose prediction log knows the kinds of the logged features.
    cache_dir : str, Path or None, default=None
        Where profiles are kept on disk (none: in this process only); the profile is the same.

    Returns
    -------
    ReferenceProfile
        The page's: the same :func:`monitoring.production.tally_folder` for the kept counts.

    Raises
    ------
    ReferenceDataError
        As :func:`service_features` and :func:`service_profile` raise it.
    """
    try:
        known = store.prediction_features(service.log_name)
    except KeyError:  # nothing logged yet: the reference's dtypes decide
        known = {}
    return service_profile(service.reference, service=service.name,
                           features=service_features(schema, service=service.name), known_kinds=known,
                           personal=bool(service.personal), cache_dir=cache_dir)


def service_reference_rows(reference: str | None, *, schema: ServiceSchema,
                           drop: tuple[str, ...] = ()) -> tuple[pd.DataFrame | None, str | None]:
    """A service's reference rows, or why there are none (a state to show, not an exception).

    Parameters
    ----------
    reference : str or None
        The reference file, as configured.
    schema : ServiceSchema
        The service's schema: the file must have its features (:func:`service_features`).
    drop : tuple of str, default=()
        Columns left out of the rows (the target, for explanations).

    Returns
    -------
    rows : DataFrame or None
        The reference's columns but ``drop``; None when there is no usable reference.
    problem : str or None
        Why ``rows`` is None: none configured, a schema without features, or a file that
        cannot be used.
    """
    if not reference:
        return None, f"service {schema.service} has no reference data configured ([[services]] reference)"
    try:
        rows = read_reference(reference, features=service_features(schema, service=schema.service))
    except ReferenceDataError as exc:
        return None, str(exc)
    return rows[[c for c in rows.columns if c not in drop]], None
