"""Reference (training) data: reading the file a service's config names, and checking it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from monitoring.files import read_table_file

READERS = {".csv": pd.read_csv, ".parquet": pd.read_parquet, ".pq": pd.read_parquet}

MODEL_OUTPUTS = ("prediction", "score")
"""The model's outputs on the reference, which a reference file may carry for prediction drift."""
OUTPUT_COLUMNS = (*MODEL_OUTPUTS, "id", "ts")
"""Columns of a reference file that are never features."""

MOSTLY_NUMERIC = 0.9
"""A text column whose values parse as numbers this often is a numeric column with stray text."""


class ReferenceDataError(ValueError):
    """A reference data file that cannot be used; the message names the file and columns."""


def read_reference(path: str | Path, *, features: tuple[str, ...] = (), target: str | None = None,
                   kinds: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Read a reference data file and check it has the service's columns.

    Parameters
    ----------
    path : str or Path
        CSV or Parquet file.
    features : tuple of str, default=()
        Feature names the service expects; every one must be a column. Empty: all columns
        except ``target`` and :data:`OUTPUT_COLUMNS`.
    target : str, optional
        Target column; must exist when given.
    kinds : mapping of str to {"numeric", "categorical"}, optional
        Known kinds (e.g. from the prediction log); a feature known to be numeric must hold
        numbers.

    Returns
    -------
    DataFrame
        The features (in the given order), then the target when given, then the model's
        outputs on the reference (``prediction``, ``score``) when the file has them.

    Raises
    ------
    ReferenceDataError
        When the file is missing, unreadable or empty, lacks columns, or has text in a
        numeric column.
    """
    frame = read_table_file(path, what="reference file", readers=READERS, error=ReferenceDataError)
    file = Path(path)
    if frame.empty:
        raise ReferenceDataError(f"reference file {file} has no rows")
    repeated = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
    if repeated:
        raise ReferenceDataError(f"reference file {file} has the column(s) {repeated} more than once")
    asked = [*features, *([target] if target else [])]
    if len(set(asked)) != len(asked):
        twice = sorted({c for c in asked if asked.count(c) > 1})
        raise ReferenceDataError(f"features and target name {twice} more than once; each column may be named once")
    wanted = list(features) or [c for c in frame.columns if c != target and c not in OUTPUT_COLUMNS]
    missing = [c for c in wanted if c not in frame.columns]
    if target and target not in frame.columns:
        missing.append(target)
    if missing:
        raise ReferenceDataError(
            f"reference file {file} lacks columns {missing}; it has {list(frame.columns)}")
    outputs = [c for c in MODEL_OUTPUTS if c in frame.columns and c not in wanted and c != target]
    frame = frame[wanted + ([target] if target else []) + outputs]
    _check_numeric_columns(frame[wanted], file, kinds or {})
    return frame


def _check_numeric_columns(frame: pd.DataFrame, file: Path, kinds: Mapping[str, str]) -> None:
    problems = []
    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            continue
        present = values.dropna()
        parsed = pd.to_numeric(present, errors="coerce")
        stray = present[parsed.isna()]
        declared_numeric = kinds.get(column) == "numeric"
        if len(present) and (declared_numeric or parsed.notna().mean() >= MOSTLY_NUMERIC) and len(stray):
            examples = ", ".join(repr(v) for v in stray.astype(str).unique()[:3])
            problems.append(f"{column!r} ({len(stray)} value(s) such as {examples})")
    if problems:
        raise ReferenceDataError(f"reference file {file} has text in numeric column(s): {'; '.join(problems)}")


def infer_kinds(frame: pd.DataFrame, *, known: Mapping[str, str] | None = None) -> dict[str, str]:
    """Kind of each column: ``numeric`` for numbers, ``categorical`` for text, categories and booleans.

    Parameters
    ----------
    frame : DataFrame
    known : mapping, optional
        Kinds already known (e.g. from the prediction log); they win.
    """
    known = dict(known or {})
    return {column: known.get(column) or (
        "numeric" if pd.api.types.is_numeric_dtype(frame[column]) and not pd.api.types.is_bool_dtype(frame[column])
        else "categorical") for column in frame.columns}
