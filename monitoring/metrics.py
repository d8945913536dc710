"""Prometheus metrics: counter increases across resets (more to come in this module)."""

from __future__ import annotations

import numpy as np


def counter_increases(ts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Increase of a cumulative counter between consecutive samples, resets handled.

    A value lower than the one before means the process restarted and the counter began
    again from zero, so the increase over that interval is the new value itself (as
    Prometheus's ``increase()`` assumes).

    Parameters
    ----------
    ts : ndarray of shape (n_samples,)
        Sample times, ascending.
    values : ndarray of shape (n_samples,)
        Cumulative counter values.

    Returns
    -------
    ndarray of shape (n_samples - 1,)
        Increase from sample ``i`` to sample ``i + 1``.
    """
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return np.zeros(0)
    diff = np.diff(values)
    return np.where(diff < 0, values[1:], diff)
