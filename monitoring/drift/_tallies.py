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


def add_tallies(parts: list[WindowTallies]) -> WindowTallies:
    """Counts of disjoint sets of rows added up, window by window (time windows: matched by their start).

    Parameters
    ----------
    parts : list of WindowTallies
        Counted over the same time window kind and columns (e.g. one per Parquet file).

    Returns
    -------
    WindowTallies

    Raises
    ------
    ValueError
        Row windows (their blocks depend on every row, they cannot be added) or no part.
    """
    if not parts:
        raise ValueError("there are no counts to add")
    spec = parts[0].windows.spec
    if isinstance(spec, int) or any(part.windows.spec != spec for part in parts):
        raise ValueError("only counts over the same time windows can be added; row windows are counted at once")
    starts = np.unique(np.concatenate([part.windows.start for part in parts]))
    width = {part.windows.start[i]: part.windows.end[i] - part.windows.start[i]
             for part in parts for i in range(part.windows.n_windows)}
    n_rows = np.zeros(len(starts), dtype=np.int64)
    rows_of = [np.searchsorted(starts, part.windows.start) for part in parts]
    for part, rows in zip(parts, rows_of, strict=True):
        np.add.at(n_rows, rows, part.windows.n_rows)
    windows = Windows(spec=spec, index=np.empty(0, dtype=np.intp), start=starts,
                      end=starts + np.array([width[s] for s in starts]), n_rows=n_rows,
                      n_unassigned=sum(part.windows.n_unassigned for part in parts))
    columns: dict[str, NumericTally | CategoryTally] = {}
    for name in parts[0].columns:
        tallies = [(part.columns[name], rows) for part, rows in zip(parts, rows_of, strict=True)]
        if isinstance(tallies[0][0], NumericTally):
            width_steps = tallies[0][0].steps.shape[1]
            steps = np.zeros((len(starts), width_steps), dtype=np.int64)
            sums = np.zeros((len(starts), width_steps), dtype=float)
            missing = np.zeros(len(starts), dtype=np.int64)
            for tally, rows in tallies:
                np.add.at(steps, rows, tally.steps)
                np.add.at(sums, rows, tally.sums)
                np.add.at(missing, rows, tally.missing)
            columns[name] = NumericTally(steps=steps, sums=sums, missing=missing)
        else:
            values = list(dict.fromkeys(v for tally, _ in tallies for v in tally.values))
            position = {value: i for i, value in enumerate(values)}
            counts = np.zeros((len(starts), len(values)), dtype=np.int64)
            missing = np.zeros(len(starts), dtype=np.int64)
            for tally, rows in tallies:
                if len(tally.values):
                    codes = np.array([position[v] for v in tally.values], dtype=np.intp)
                    np.add.at(counts, (rows[:, None], codes[None, :]), tally.counts)
                np.add.at(missing, rows, tally.missing)
            columns[name] = CategoryTally(values=tuple(values), counts=counts, missing=missing)
    return WindowTallies(windows=windows, columns=columns)


def tallies_to_arrays(tallies: WindowTallies) -> dict[str, np.ndarray]:
    """The tallies as plain arrays (for ``np.savez``; no pickled objects), read back by :func:`tallies_from_arrays`."""
    import json

    header = {"spec": tallies.windows.spec, "n_unassigned": tallies.windows.n_unassigned,
              "columns": {name: ("numeric" if isinstance(t, NumericTally) else list(t.values))
                          for name, t in tallies.columns.items()}}
    arrays = {"header": np.array(json.dumps(header)), "start": tallies.windows.start, "end": tallies.windows.end,
              "n_rows": tallies.windows.n_rows}
    for i, tally in enumerate(tallies.columns.values()):
        arrays[f"c{i}_missing"] = tally.missing
        if isinstance(tally, NumericTally):
            arrays[f"c{i}_steps"], arrays[f"c{i}_sums"] = tally.steps, tally.sums
        else:
            arrays[f"c{i}_counts"] = tally.counts
    return arrays


def tallies_from_arrays(arrays: Mapping[str, np.ndarray]) -> WindowTallies:
    """Tallies saved by :func:`tallies_to_arrays`."""
    import json

    header = json.loads(str(arrays["header"]))
    windows = Windows(spec=header["spec"], index=np.empty(0, dtype=np.intp), start=np.asarray(arrays["start"]),
                      end=np.asarray(arrays["end"]), n_rows=np.asarray(arrays["n_rows"]),
                      n_unassigned=int(header["n_unassigned"]))
    columns: dict[str, NumericTally | CategoryTally] = {}
    for i, (name, kind) in enumerate(header["columns"].items()):
        missing = np.asarray(arrays[f"c{i}_missing"])
        if kind == "numeric":
            columns[name] = NumericTally(steps=np.asarray(arrays[f"c{i}_steps"]),
                                         sums=np.asarray(arrays[f"c{i}_sums"]), missing=missing)
        else:
            columns[name] = CategoryTally(values=tuple(kind), counts=np.asarray(arrays[f"c{i}_counts"]),
                                          missing=missing)
    return WindowTallies(windows=windows, columns=columns)
