"""The rows an explanation starts from: a reference sample, or logged predictions of a recent window."""

from __future__ import annotations

import pandas as pd

from explain._data import sample_prediction_log
from explain._errors import ExplainError

EXPLAIN_WINDOWS = {"reference": "Reference (training) data", "24h": "Last 24 hours of predictions",
                   "7d": "Last 7 days of predictions", "30d": "Last 30 days of predictions"}
"""The windows an explanation can be computed over, and how the page names them."""

WINDOW_SECONDS = {"24h": 86400.0, "7d": 7 * 86400.0, "30d": 30 * 86400.0}
"""The length of each window of logged predictions."""


def reference_sample(reference: pd.DataFrame, n_rows: int, *, random_state: int = 0) -> pd.DataFrame:
    """Up to ``n_rows`` rows of ``reference``, drawn without replacement, indexed from 0.

    Parameters
    ----------
    reference : DataFrame
        The reference's feature columns.
    n_rows : int
        Rows wanted; all of them when the reference has fewer.
    random_state : int, default=0
        The same rows for the same reference.

    Returns
    -------
    DataFrame
    """
    return reference.sample(min(n_rows, len(reference)), random_state=random_state).reset_index(drop=True)


def window_rows(window: str, *, reference: pd.DataFrame | None, reference_problem: str | None, logged,
                service: str, now: float, n_rows: int) -> pd.DataFrame:
    """Up to ``n_rows`` rows of ``window``: a reference sample, or logged predictions spread over the window.

    Parameters
    ----------
    window : {"reference", "24h", "7d", "30d"}
        See :data:`EXPLAIN_WINDOWS`.
    reference : DataFrame or None
        The reference's feature columns.
    reference_problem : str or None
        Why ``reference`` is None, for the message.
    logged : PredictionLogMirror, FileMirror or ParquetMirror
        The service's logged predictions (``explain._data.sample_prediction_log``).
    service : str
        The service's name, for messages.
    now : float
        The end of the window (Unix seconds).
    n_rows : int
        Rows wanted.

    Returns
    -------
    DataFrame
        Reference rows, or whole prediction-log rows (``id``, ``ts``, ... and the features).

    Raises
    ------
    ValueError
        For an unknown ``window``.
    ExplainError
        When there is no reference, or nothing was logged in the window.
    """
    if window == "reference":
        if reference is None:
            raise ExplainError(f"no reference data: {reference_problem}")
        return reference_sample(reference, n_rows)
    if window not in WINDOW_SECONDS:
        raise ValueError(f"window must be one of {list(EXPLAIN_WINDOWS)}; got {window!r}")
    frame = sample_prediction_log(logged, service, since=now - WINDOW_SECONDS[window], until=now, n_rows=n_rows)
    if frame.empty:
        raise ExplainError(f"no predictions of {service} were logged in the {EXPLAIN_WINDOWS[window].lower()}")
    return frame


def available_windows(*, has_reference: bool, has_log: bool) -> dict[str, str]:
    """The :data:`EXPLAIN_WINDOWS` a service can be explained over: the reference when it has one, the windows
    of logged predictions when its predictions are logged.

    Parameters
    ----------
    has_reference : bool
    has_log : bool

    Returns
    -------
    dict of str to str
        Window to name, in :data:`EXPLAIN_WINDOWS`' order; empty when there is nothing to explain.
    """
    return {k: v for k, v in EXPLAIN_WINDOWS.items() if (has_reference if k == "reference" else has_log)}
