"""Reference (training) data: reading and checking the file a service's config names."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

READERS = {".csv": pd.read_csv, ".parquet": pd.read_parquet, ".pq": pd.read_parquet}


class ReferenceDataError(ValueError):
    """A reference data file that cannot be used; the message names the file and columns."""


def read_reference(path: str | Path, *, features: tuple[str, ...] = (), target: str | None = None) -> pd.DataFrame:
    """Read a reference data file and check it has the service's columns.

    Parameters
    ----------
    path : str or Path
        CSV or Parquet file.
    features : tuple of str, default=()
        Feature names the service expects; every one must be a column. Empty: all columns
        except ``target``.
    target : str, optional
        Target column; must exist when given.

    Returns
    -------
    DataFrame
        The features (in the given order) followed by the target when given.

    Raises
    ------
    ReferenceDataError
        When the file is missing, unreadable, empty or lacks columns.
    """
    file = Path(path)
    reader = READERS.get(file.suffix.lower())
    if reader is None:
        raise ReferenceDataError(
            f"reference file {file}: unsupported type {file.suffix!r}; accepted: {', '.join(READERS)}")
    if not file.exists():
        raise ReferenceDataError(f"reference file {file} does not exist")
    try:
        frame = reader(file)
    except Exception as exc:  # each reader raises its own family of errors
        raise ReferenceDataError(f"reference file {file} cannot be read: {exc}") from None
    if frame.empty:
        raise ReferenceDataError(f"reference file {file} has no rows")
    wanted = list(features) or [c for c in frame.columns if c != target]
    missing = [c for c in wanted if c not in frame.columns]
    if target and target not in frame.columns:
        missing.append(target)
    if missing:
        raise ReferenceDataError(
            f"reference file {file} lacks columns {missing}; it has {list(frame.columns)}")
    return frame[wanted + ([target] if target else [])]
