"""Windows and time units, for the configuration, drift, performance and the pages: hour, day or week by
timestamp (UTC, weeks from Monday), or blocks of N rows.

:func:`parse_window` is the one check of a window's text; :func:`assign_windows` puts rows in
windows; :func:`window_start` and :func:`range_start` align times to window boundaries;
:func:`row_count` and :func:`describe_window` are what the pages need to show one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

WINDOW_SECONDS = {"hour": 3600.0, "day": 86_400.0, "week": 604_800.0}
WEEK_ORIGIN = 4 * 86_400.0
"""1970-01-05T00:00Z, a Monday: weeks run Monday to Monday (UTC)."""


@dataclass(frozen=True)
class Windows:
    """Which window each row falls in.

    Attributes
    ----------
    spec : str or int
        ``"hour"``, ``"day"``, ``"week"`` or a number of rows.
    index : ndarray of intp, shape (n_rows,)
        Window of each row, 0 .. n_windows - 1; rows without a timestamp (time windows only)
        get ``n_windows`` (an overflow window that is counted and then dropped).
    start, end : ndarray of float, shape (n_windows,)
        Unix seconds. Time windows: the window's bounds, end excluded. Row windows: the
        first and last timestamp in the block (NaN without a timestamp column).
    n_rows : ndarray of int64, shape (n_windows,)
    n_unassigned : int
        Rows without a timestamp, left out of every window.
    """

    spec: str | int
    index: np.ndarray
    start: np.ndarray
    end: np.ndarray
    n_rows: np.ndarray
    n_unassigned: int

    @property
    def n_windows(self) -> int:
        """Number of windows (non-empty ones only)."""
        return len(self.n_rows)

    @property
    def n_slots(self) -> int:
        """Windows plus the overflow window when some rows have no timestamp."""
        return self.n_windows + (1 if self.n_unassigned else 0)


def parse_window(window: object) -> str | int:
    """Validate a window: ``"hour"``, ``"day"``, ``"week"``, or a positive number of rows (int or digits).

    Parameters
    ----------
    window : str or int

    Returns
    -------
    str or int

    Raises
    ------
    ValueError
        Naming the accepted forms and the value received.
    """
    if isinstance(window, str):
        text = window.strip().lower()
        if text in WINDOW_SECONDS:
            return text
        if text.isdigit() and int(text) > 0:
            return int(text)
    elif isinstance(window, int | np.integer) and not isinstance(window, bool) and window > 0:
        return int(window)
    raise ValueError(f"window must be 'hour', 'day', 'week' or a positive number of rows such as 10000; "
                     f"got {window!r}")


def timestamps_as_seconds(values: pd.Series) -> np.ndarray:
    """Unix seconds (float64) from a numeric or datetime column; NaN where missing."""
    if pd.api.types.is_datetime64_any_dtype(values):
        stamps = values.dt.tz_localize("UTC") if values.dt.tz is None else values
        seconds = (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
        return seconds.to_numpy(dtype=float, na_value=np.nan)
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.to_numpy(dtype=float, na_value=np.nan)
    raise ValueError(f"timestamp column {values.name!r} must hold Unix seconds or datetimes; got dtype {values.dtype}")


def as_unix_seconds(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Times as Unix seconds (NaN where none is given) and whether each one could be read.

    Accepts Unix seconds, datetimes, and text holding either (ISO 8601 for dates).
    """
    present = values.notna().to_numpy()
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        seconds = values.to_numpy(dtype=float)
    elif isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(values):
        stamps = pd.to_datetime(values, utc=True)
        seconds = ((stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds()).to_numpy(dtype=float)
    else:
        objects = values.astype(object)
        seconds = pd.to_numeric(objects, errors="coerce").to_numpy(dtype=float, copy=True)
        text = present & np.isnan(seconds)
        if text.any():
            parsed = pd.to_datetime(objects[text].astype(str), utc=True, errors="coerce", format="ISO8601")
            seconds[text] = ((parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds()).to_numpy(dtype=float)
    readable = ~present | np.isfinite(seconds)
    return np.where(present, seconds, np.nan), readable


def assign_windows(n_rows: int, spec: str | int, *, ts: np.ndarray | None) -> Windows:
    """Assign each of ``n_rows`` rows to a window.

    Parameters
    ----------
    n_rows : int
    spec : str or int
        Output of :func:`parse_window`.
    ts : ndarray of float, shape (n_rows,), or None
        Unix seconds; required for time windows. Hours, days and weeks are aligned on UTC
        (weeks start on Monday). Row windows follow the rows' order: rows 0 .. N-1 are the
        first window, the last one may be shorter.

    Returns
    -------
    Windows
        Only windows holding at least one row.
    """
    if isinstance(spec, int):
        index = np.arange(n_rows, dtype=np.intp) // spec
        n_windows = -(-n_rows // spec)
        counts = np.full(n_windows, spec, dtype=np.int64)
        if n_windows:
            counts[-1] = n_rows - spec * (n_windows - 1)
        if ts is None or n_windows == 0:
            start = end = np.full(n_windows, np.nan)
        else:
            starts = np.arange(n_windows) * spec
            with np.errstate(invalid="ignore"):
                start = np.fmin.reduceat(ts, starts) if n_rows else np.array([])
                end = np.fmax.reduceat(ts, starts) if n_rows else np.array([])
        return Windows(spec=spec, index=index, start=start, end=end, n_rows=counts, n_unassigned=0)
    if ts is None:
        raise ValueError(f"window {spec!r} needs a timestamp column; use a number of rows instead")
    width = WINDOW_SECONDS[spec]
    origin = WEEK_ORIGIN if spec == "week" else 0.0
    finite = np.isfinite(ts)
    n_unassigned = int(n_rows - finite.sum())
    if n_unassigned == n_rows:
        empty = np.array([], dtype=float)
        return Windows(spec=spec, index=np.zeros(n_rows, dtype=np.intp), start=empty, end=empty,
                       n_rows=np.array([], dtype=np.int64), n_unassigned=n_unassigned)
    raw = np.floor((np.where(finite, ts, np.nan) - origin) / width)
    first = np.nanmin(raw)
    slot = np.nan_to_num(raw - first, nan=-1.0).astype(np.intp)  # -1: no timestamp
    occupied = np.bincount(slot[slot >= 0] if n_unassigned else slot)
    present = np.flatnonzero(occupied)
    renumber = np.full(len(occupied) + 1, len(present), dtype=np.intp)  # the last entry (slot -1): overflow
    renumber[present] = np.arange(len(present))
    index = renumber[slot]
    start = origin + (first + present) * width
    return Windows(spec=spec, index=index, start=start, end=start + width, n_rows=occupied[present].astype(np.int64),
                   n_unassigned=n_unassigned)


def row_count(window: object) -> int | None:
    """The number of rows of a row window (``"10000"`` or 10000), None for a time window.

    Raises
    ------
    ValueError
        As :func:`parse_window`.
    """
    spec = parse_window(window)
    return spec if isinstance(spec, int) else None


def describe_window(window: object, *, rows: str = "predictions") -> str:
    """``"per day"``, or ``"per 10,000 predictions"`` for a row window."""
    spec = parse_window(window)
    return f"per {spec:,} {rows}" if isinstance(spec, int) else f"per {spec}"


def window_start(ts: np.ndarray | float, spec: str) -> np.ndarray | float:
    """Start of the ``"hour"``, ``"day"`` or ``"week"`` that holds each time (Unix seconds, UTC)."""
    width = WINDOW_SECONDS[spec]
    origin = WEEK_ORIGIN if spec == "week" else 0.0
    return np.floor((np.asarray(ts, dtype=float) - origin) / width) * width + origin


def range_start(now: float, days: float | None, *, window: str | int = "day") -> float | None:
    """Start of the last ``days`` days before ``now``, moved back to a window boundary (None = no limit).

    Parameters
    ----------
    now : float
        Unix seconds.
    days : float or None
        Length of the range; None means everything.
    window : {"hour", "day", "week"} or int, default="day"
        Time windows align the start to their boundary, so the first window is whole.

    Raises
    ------
    ValueError
        For ``days`` <= 0 or a window :func:`parse_window` refuses.
    """
    if days is None:
        return None
    if days <= 0:
        raise ValueError(f"days must be > 0, or None for everything; got {days!r}")
    since = now - days * 86400.0
    spec = parse_window(window)
    return since if isinstance(spec, int) else float(window_start(since, spec))
