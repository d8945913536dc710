"""Counts computed where the rows live (an analytical engine), turned into what the drift methods read.

An engine cannot run :class:`~monitoring.drift.EdgeIndex` on its rows, but it can count them per
window and *step position* (below the first fine edge, equal to it, between it and the next,
...; see :func:`monitoring.drift.step_positions`) and per category. Every count the methods
need — coarse bins, fine bins with their sums, the empirical CDF's steps — is a sum of
adjacent step positions, so one pushed-down query per column serves every method, and the
scores equal those computed from the rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from monitoring.drift._methods import ColumnCounts
from monitoring.drift._profile import ColumnProfile
from monitoring.windows import Windows


@dataclass(frozen=True)
class NumericTally:
    """One numeric column's counts per window and step position of the reference's fine edges.

    Attributes
    ----------
    steps : ndarray of int64, shape (n_windows, 2 * n_fine_edges + 1)
        Finite values per window and step position.
    sums : ndarray of float, same shape
        Their sums.
    missing : ndarray of int64, shape (n_windows,)
        NULL, NaN and ±inf values per window.
    """

    steps: np.ndarray
    sums: np.ndarray
    missing: np.ndarray


@dataclass(frozen=True)
class CategoryTally:
    """One categorical column's counts per window and value.

    Attributes
    ----------
    values : tuple
        The distinct non-missing values seen, any of them possibly unknown to the reference.
    counts : ndarray of int64, shape (n_windows, len(values))
    missing : ndarray of int64, shape (n_windows,)
    """

    values: tuple
    counts: np.ndarray
    missing: np.ndarray


@dataclass(frozen=True)
class WindowTallies:
    """What an engine counted for one service: the windows and, per column, its tally.

    Attributes
    ----------
    windows : Windows
        Start, end and rows of every non-empty window (``index`` is empty: no rows were read).
    columns : mapping of str to NumericTally or CategoryTally
    """

    windows: Windows
    columns: Mapping[str, NumericTally | CategoryTally]


def counts_from_tally(column: ColumnProfile, tally: NumericTally | CategoryTally,
                      needs: str) -> tuple[ColumnCounts, np.ndarray]:
    """The :class:`ColumnCounts` a method reads, and missing values per window, from an engine's tally.

    Parameters
    ----------
    column : ColumnProfile
        The reference column the tally was counted against.
    tally : NumericTally or CategoryTally
    needs : {"bins", "fine", "steps"}
        What the method reads (:attr:`DriftMethod.needs`).

    Returns
    -------
    counts : ColumnCounts
    missing : ndarray of int64, shape (n_windows,)

    Raises
    ------
    ValueError
        A tally of the wrong kind or shape for the column.
    """
    if column.kind == "categorical":
        if not isinstance(tally, CategoryTally):
            raise ValueError(f"column {column.name!r} is categorical in the reference; its counts are numeric")
        return _category_counts(column, tally), np.asarray(tally.missing, dtype=np.int64)
    if not isinstance(tally, NumericTally):
        raise ValueError(f"column {column.name!r} is numeric in the reference; its counts are per category")
    steps = np.asarray(tally.steps, dtype=np.int64)
    sums = np.asarray(tally.sums, dtype=float)
    missing = np.asarray(tally.missing, dtype=np.int64)
    if column.n_values == 0:
        present = steps.sum(axis=1, keepdims=True)
        return ColumnCounts(name=column.name, kind=column.kind, reference=column.counts, current=present,
                            reference_std=column.std), missing
    if steps.shape[1] != len(column.step_counts) or sums.shape != steps.shape:
        raise ValueError(f"counts of {column.name!r} have {steps.shape[1]} step positions; its reference profile "
                         f"has {len(column.step_counts)} (were they counted against another profile?)")
    coarse = np.add.reduceat(steps, column.coarse_starts, axis=1)
    if needs == "bins":
        return ColumnCounts(name=column.name, kind="numeric", reference=column.counts, current=coarse,
                            reference_std=column.std), missing
    if needs == "fine":
        fine_starts = column.fine_starts
        return ColumnCounts(
            name=column.name, kind="numeric", reference=column.counts, current=coarse, fine_edges=column.fine_edges,
            reference_fine=np.add.reduceat(column.step_counts, fine_starts),
            current_fine=np.add.reduceat(steps, fine_starts, axis=1),
            reference_fine_sums=np.add.reduceat(column.step_sums, fine_starts),
            current_fine_sums=np.add.reduceat(sums, fine_starts, axis=1), fine_exact=column.fine_exact,
            reference_std=column.std), missing
    return ColumnCounts(
        name=column.name, kind="numeric", reference=column.counts, current=coarse, fine_edges=column.fine_edges,
        reference_steps=column.step_counts, current_steps=steps, fine_exact=column.fine_exact,
        reference_std=column.std), missing


def _category_counts(column: ColumnProfile, tally: CategoryTally) -> ColumnCounts:
    n_categories = len(column.categories)
    code_of = {category: code for code, category in enumerate(column.categories)}
    counts = np.asarray(tally.counts, dtype=np.int64).reshape(len(tally.missing), len(tally.values))
    table = np.zeros((counts.shape[0], n_categories + 1), dtype=np.int64)  # the last bin: unseen
    codes = np.array([code_of.get(_plain(value), n_categories) for value in tally.values], dtype=np.intp)
    np.add.at(table, (slice(None), codes), counts)
    return ColumnCounts(name=column.name, kind=column.kind, reference=column.counts, current=table,
                        reference_std=column.std)


def _plain(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value


def merge_tallies(first: WindowTallies, second: WindowTallies) -> WindowTallies:
    """The columns of two tallies of the same rows and windows, counted apart (e.g. by an engine and in memory).

    Raises
    ------
    ValueError
        When the two were counted over different windows.
    """
    if (first.windows.spec != second.windows.spec
            or not np.array_equal(first.windows.start, second.windows.start, equal_nan=True)):
        raise ValueError("tallies counted over different windows cannot be merged; count both over the same rows")
    return WindowTallies(windows=first.windows, columns={**first.columns, **second.columns})
