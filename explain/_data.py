"""Rows to explain, read from a service's logged predictions (the store's log or a prediction-log file)."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pandas as pd

from explain._errors import ExplainError
from monitoring.store import Store
from monitoring.store_schema import PREDICTION_COLUMNS


def sample_prediction_log(log, service: str | None = None, *, since: float, until: float, n_rows: int = 1000,
                          n_slices: int = 10) -> pd.DataFrame:
    """About ``n_rows`` logged predictions spread over ``[since, until)``, cheaply.

    The window is cut into ``n_slices`` equal time slices and the newest
    ``n_rows / n_slices`` predictions of each slice are read with ``log.find`` (in the
    store, an index range scan each), so the cost does not grow with the size of the log.

    Parameters
    ----------
    log : PredictionLogMirror, FileMirror or Store
        The service's logged predictions (``monitoring.production.production_source``): an
        object with ``has_rows()`` and ``find(since=, until=, limit=, newest_first=)``; or a
        :class:`~monitoring.store.Store` with ``service``, the name of its log.
    service : str, optional
        With a Store only.
    since, until : float
        Time window (Unix seconds).
    n_rows : int, default=1000
        Rows wanted (1-10,000).
    n_slices : int, default=10

    Returns
    -------
    DataFrame
        Whole prediction-log rows (``id, ts, ...`` and the features), oldest first.

    Raises
    ------
    ExplainError
        When the service has no logged predictions.
    """
    if not 1 <= n_rows <= 10_000:
        raise ValueError(f"n_rows must be between 1 and 10000; got {n_rows}")
    if until <= since:
        raise ValueError(f"until must be after since; got since={since}, until={until}")
    if isinstance(log, Store):
        from monitoring.production import PredictionLogMirror

        log = PredictionLogMirror(log, service)
    if not log.has_rows():
        raise ExplainError(f"service {service or getattr(log, 'service', '')!r} has no prediction log to sample from")
    edges = np.linspace(since, until, n_slices + 1)
    per_slice = max(1, -(-n_rows // n_slices))
    parts = [log.find(since=float(a), until=float(b), limit=per_slice, newest_first=True)
             for a, b in pairwise(edges)]
    parts = [p for p in parts if len(p)]
    if not parts:
        return log.find(since=since, until=until, limit=1).iloc[:0]
    frame = pd.concat(parts, ignore_index=True).sort_values("ts", kind="stable").reset_index(drop=True)
    return frame


def features_of(frame: pd.DataFrame) -> list[str]:
    """The feature columns of a prediction-log frame (everything but the log's own columns)."""
    return [c for c in frame.columns if c not in PREDICTION_COLUMNS]
