"""The pages' questions about a prediction log, written once as Ibis expressions and run by any engine.

Ibis compiles each expression to the engine's SQL (DuckDB, PostgreSQL, Spark SQL), so the
rows stay where they are and only counts come back:

* :func:`window_rows` — rows, first and last timestamp per window;
* :func:`tally_windows` — per window and column, the counts :func:`monitoring.drift.compute_drift_from_counts`
  needs: numeric values per *step position* of the reference's fine edges (with their sums),
  category values per category, missing values;
* :func:`value_counts` — the prediction mix, or any column's values, per window.

Numeric binning is exact and needs no per-engine function: the range of the fine edges is cut
into equal cells; a small table gives, per cell, how many edges lie below it and the few
edges inside it; one join and a handful of comparisons give ``searchsorted(edges, x, "right")``
and whether ``x`` equals an edge — what :func:`monitoring.drift.step_positions` computes in memory.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from monitoring.drift import CategoryTally, NumericTally, ReferenceProfile, WindowTallies
from monitoring.windows import WEEK_ORIGIN, WINDOW_SECONDS, Windows, parse_window

MAX_GRID_CELLS = 1 << 18
"""Largest cell table of one column (rows joined against)."""
_TARGET_CANDIDATES = 4
_SLACK = 1e-9
"""Cells' bounds are widened by this share of the edges' range when listing their candidate edges, so
rounding in the engine's arithmetic can only add a candidate, never drop one."""
_LARGEST = sys.float_info.max
"""The largest finite float: only an infinity is larger in magnitude."""


@dataclass(frozen=True)
class EdgeGrid:
    """Cells over a column's fine edges, for exact binning by a join.

    Attributes
    ----------
    low, scale : float
        The cell of ``x`` is ``floor((x - low) * scale) + 1`` clipped to ``0 .. n_cells + 1``: cell 0
        holds values below the first edge, cell ``n_cells + 1`` values at or above the last.
    n_cells : int
    table : DataFrame
        ``cell``, ``below`` (edges certainly <= every value of the cell) and ``e1 .. eP``, the
        edges that may fall inside it (NULL where a cell has fewer).
    n_candidates : int
        ``P``.
    """

    low: float
    scale: float
    n_cells: int
    table: pd.DataFrame
    n_candidates: int


def edge_grid(edges: np.ndarray) -> EdgeGrid:
    """The cell table of strictly increasing finite ``edges`` (at least one).

    Parameters
    ----------
    edges : ndarray

    Returns
    -------
    EdgeGrid
    """
    edges = np.asarray(edges, dtype=float)
    m = len(edges)
    low, high = float(edges[0]), float(edges[-1])
    n_cells = int(min(MAX_GRID_CELLS, max(64, 8 * m))) if high > low else 1
    while True:
        width = (high - low) / n_cells if high > low else 1.0
        scale = 1.0 / width
        slack = _SLACK * max(high - low, 1.0)
        starts = low + np.arange(n_cells) * width
        below = np.searchsorted(edges, starts - slack, side="right")
        top = np.searchsorted(edges, starts + width + slack, side="right")
        n_candidates = int((top - below).max()) if n_cells else 0
        if n_candidates <= _TARGET_CANDIDATES or n_cells >= MAX_GRID_CELLS or high == low:
            break
        n_cells = min(MAX_GRID_CELLS, n_cells * 4)
    n_candidates = max(n_candidates, 1)
    padded = np.append(edges, np.full(n_candidates, np.nan))
    inner = {f"e{k + 1}": padded[np.minimum(below + k, m + k)] for k in range(n_candidates)}
    for k in range(n_candidates):
        inner[f"e{k + 1}"] = np.where(below + k < top, inner[f"e{k + 1}"], np.nan)
    table = pd.DataFrame({"cell": np.arange(1, n_cells + 1, dtype=np.int64), "below": below.astype(np.int64), **inner})
    # cell 0: below the first edge, or at it after rounding; cell n_cells + 1: at or above the last
    first = {"cell": [0], "below": [0], "e1": [low], **{f"e{k + 1}": [np.nan] for k in range(1, n_candidates)}}
    last = {"cell": [n_cells + 1], "below": [m - 1], "e1": [high],
            **{f"e{k + 1}": [np.nan] for k in range(1, n_candidates)}}
    table = pd.concat([pd.DataFrame(first), table, pd.DataFrame(last)], ignore_index=True)
    for k in range(n_candidates):  # NULL, not NaN: a comparison with NULL is NULL, then 0 (None: SQLite binds it)
        column = table[f"e{k + 1}"]
        table[f"e{k + 1}"] = column.astype(object).where(column.notna(), None)
    return EdgeGrid(low=low, scale=scale, n_cells=n_cells, table=table, n_candidates=n_candidates)


def window_slot(table: ir.Table, window: str | int) -> ir.IntegerValue:
    """The window number of each row: UTC-aligned hours, days or Monday weeks, or blocks of rows in time order."""
    spec = parse_window(window)
    if isinstance(spec, int):
        return (ibis.row_number().over(order_by=[table.ts]) // spec).cast("int64")
    origin = WEEK_ORIGIN if spec == "week" else 0.0
    return ((table.ts - origin) / WINDOW_SECONDS[spec]).floor().cast("int64")


def _slotted(table: ir.Table, spec: str | int, since: float | None, until: float | None) -> ir.Table:
    """The rows made in ``[since, until)``, each with its window number as ``slot``."""
    rows = _in_range(table, since, until)
    return rows.mutate(slot=window_slot(rows, spec))


def _window_counts(rows: ir.Table, keys: list[str]) -> ir.Table:
    """Rows, first and last timestamp per window (and per any other key)."""
    return rows.group_by(keys).agg(n=rows.count(), first=rows.ts.min(), last=rows.ts.max())


def _in_range(table: ir.Table, since: float | None, until: float | None) -> ir.Table:
    if since is not None:
        table = table.filter(table.ts >= since)
    if until is not None:
        table = table.filter(table.ts < until)
    return table


def window_rows(backend, table: ir.Table, *, window: str | int, since: float | None = None,
                until: float | None = None) -> Windows:
    """Rows, start and end of every non-empty window.

    Parameters
    ----------
    backend
        An Ibis backend (``ibis.duckdb.connect()``, ``ibis.postgres.connect(...)``, ``ibis.pyspark.connect(...)``).
    table : ibis Table
        The log, with a float ``ts`` column (Unix seconds).
    window : str or int
        As :func:`monitoring.windows.parse_window` accepts.
    since, until : float, optional
        Unix seconds, ``until`` excluded.

    Returns
    -------
    Windows
        ``index`` empty (no rows were read); rows without a timestamp are ``n_unassigned``.
    """
    spec = parse_window(window)
    rows = _slotted(table, spec, since, until)
    return _windows(spec, backend.execute(_window_counts(rows, ["slot"])))


def _windows(spec: str | int, grouped: pd.DataFrame) -> Windows:
    unassigned = grouped["slot"].isna()
    n_unassigned = int(grouped.loc[unassigned, "n"].sum())
    present = grouped[~unassigned].sort_values("slot")
    slots = present["slot"].to_numpy(dtype=np.int64)
    if isinstance(spec, int):
        start = present["first"].to_numpy(dtype=float)
        end = present["last"].to_numpy(dtype=float)
    else:
        origin = WEEK_ORIGIN if spec == "week" else 0.0
        start = origin + slots * WINDOW_SECONDS[spec]
        end = start + WINDOW_SECONDS[spec]
    return Windows(spec=spec, index=np.empty(0, dtype=np.intp), start=np.asarray(start, dtype=float),
                   end=np.asarray(end, dtype=float), n_rows=present["n"].to_numpy(dtype=np.int64),
                   n_unassigned=n_unassigned)


def tally_windows(backend, table: ir.Table, profile: ReferenceProfile, *, window: str | int,
                  since: float | None = None, until: float | None = None,
                  columns: Sequence[str] | None = None, by: str | None = None):
    """Count every profiled column per window where the log lives, for :func:`compute_drift_from_counts`.

    Parameters
    ----------
    backend
        An Ibis backend.
    table : ibis Table
        The log: ``ts`` and the profile's features (prediction columns used when present).
    profile : ReferenceProfile
    window : str or int
    since, until : float, optional
        Unix seconds, ``until`` excluded.
    columns : sequence of str, optional
        Count only these; default every feature of the profile and the prediction columns
        the log has.
    by : str, optional
        A column to count apart by (e.g. the file each row is in): one query per column
        still, split afterwards.

    Returns
    -------
    WindowTallies, or dict of value to WindowTallies when ``by`` is given

    Raises
    ------
    ValueError
        The log lacks a feature of the profile.
    """
    spec = parse_window(window)
    present = set(table.columns)
    wanted = list(columns) if columns is not None else [
        *profile.features, *(c for c in profile.prediction_columns if c in present)]
    absent = [name for name in wanted if name not in present]
    if absent:
        raise ValueError(f"the prediction log lacks column(s) {absent}; it has {sorted(present)}")
    rows = _slotted(table, spec, since, until)
    keys = ["slot"] if by is None else [by, "slot"]
    windows = backend.execute(_window_counts(rows, keys))
    counted = {}
    for name in wanted:
        column = profile.columns[name]
        counted[name] = (_category_counts(backend, rows, name, keys) if column.kind == "categorical"
                         else step_counts(backend, rows, name, column.fine_edges, keys))
    if by is None:
        return _tallies(spec, windows, counted, profile)
    groups = windows[by].dropna().unique()
    return {group: _tallies(spec, windows[windows[by] == group],
                            {name: frame[frame[by] == group] for name, frame in counted.items()}, profile)
            for group in groups}


def _tallies(spec, windows: pd.DataFrame, counted: dict[str, pd.DataFrame], profile: ReferenceProfile
             ) -> WindowTallies:
    slots = np.sort(windows["slot"].dropna().to_numpy(dtype=np.int64))
    position = {int(slot): i for i, slot in enumerate(slots)}
    tallies = {}
    for name, grouped in counted.items():
        column = profile.columns[name]
        tallies[name] = (_category_tally(grouped, name, position) if column.kind == "categorical"
                         else _numeric_tally(grouped, len(column.step_counts), position))
    return WindowTallies(windows=_windows(spec, windows), columns=tallies)


def infinite(x: ir.FloatingValue) -> ir.BooleanValue:
    """Whether ``x`` is +inf or -inf, on every engine (Ibis compiles ``isinf`` to FALSE for Spark)."""
    return ~x.isnan() & (x.abs() > _LARGEST)


def finite(x: ir.FloatingValue) -> ir.BooleanValue:
    """Whether ``x`` is a finite number (not NULL, NaN or infinite), on every engine."""
    return x.notnull() & ~x.isnan() & (x.abs() <= _LARGEST)


def step_counts(backend, rows: ir.Table, name: str, edges: np.ndarray, keys: list[str]) -> pd.DataFrame:
    """Rows and sums of column ``name`` per key and step position among the sorted finite ``edges``, counted by
    ``backend`` (the exact binning of the drift counts; the Segments page's in-segment drift uses it too)."""
    x = rows[name].cast("float64")
    usable = finite(x)
    if len(edges) == 0:
        counted = rows.select(*keys, x=x, finite=usable, step=usable.ifelse(ibis.literal(0, type="int64"), -1))
    else:
        grid = edge_grid(edges)
        # floor((x - low) * scale) + 1, clipped as a float first so that huge values cannot overflow the cast
        cell = ibis.greatest(ibis.least((x - grid.low) * grid.scale + 1, grid.n_cells + 1.0), 0.0).floor()
        prepared = rows.select(*keys, x=x, finite=usable, cell=usable.ifelse(cell, 0))
        cells = ibis.memtable(grid.table)
        joined = prepared.inner_join(cells, prepared.cell == cells.cell)
        candidates = [joined[f"e{k + 1}"] for k in range(grid.n_candidates)]
        above = sum((joined.x >= edge).ifelse(1, 0).fill_null(0) for edge in candidates)
        at_edge = sum((joined.x == edge).ifelse(1, 0).fill_null(0) for edge in candidates)
        step = 2 * (joined.below + above) - at_edge
        counted = joined.select(*keys, "x", "finite", step=joined.finite.ifelse(step, -1))
    return backend.execute(counted.group_by([*keys, "step"]).agg(
        n=counted.count(), s=counted.finite.ifelse(counted.x, 0.0).sum()))


def _numeric_tally(grouped: pd.DataFrame, n_positions: int, position: dict[int, int]) -> NumericTally:
    steps = np.zeros((len(position), n_positions), dtype=np.int64)
    sums = np.zeros((len(position), n_positions), dtype=float)
    missing = np.zeros(len(position), dtype=np.int64)
    grouped = grouped[grouped["slot"].notna()]
    window = grouped["slot"].map(position).to_numpy(dtype=np.int64)
    step_of = grouped["step"].to_numpy(dtype=np.int64)
    counts = grouped["n"].to_numpy(dtype=np.int64)
    is_missing = step_of < 0
    np.add.at(missing, window[is_missing], counts[is_missing])
    kept = ~is_missing
    np.add.at(steps, (window[kept], step_of[kept]), counts[kept])
    np.add.at(sums, (window[kept], step_of[kept]), grouped["s"].to_numpy(dtype=float)[kept])
    return NumericTally(steps=steps, sums=sums, missing=missing)


def _category_counts(backend, rows: ir.Table, name: str, keys: list[str]) -> pd.DataFrame:
    return backend.execute(rows.group_by([*keys, rows[name].name(name)]).agg(n=rows.count()))


def _category_tally(grouped: pd.DataFrame, name: str, position: dict[int, int]) -> CategoryTally:
    grouped = grouped[grouped["slot"].notna()]
    is_missing = grouped[name].isna()
    missing = np.zeros(len(position), dtype=np.int64)
    np.add.at(missing, grouped.loc[is_missing, "slot"].map(position).to_numpy(dtype=np.int64),
              grouped.loc[is_missing, "n"].to_numpy(dtype=np.int64))
    present = grouped[~is_missing]
    values, codes = np.unique(present[name].astype(object).to_numpy(), return_inverse=True) if len(present) else (
        np.array([], dtype=object), np.array([], dtype=np.intp))
    counts = np.zeros((len(position), len(values)), dtype=np.int64)
    np.add.at(counts, (present["slot"].map(position).to_numpy(dtype=np.int64), codes),
              present["n"].to_numpy(dtype=np.int64))
    return CategoryTally(values=tuple(_plain(v) for v in values), counts=counts, missing=missing)


def value_counts(backend, table: ir.Table, column: str, *, window: str | int, since: float | None = None,
                 until: float | None = None) -> pd.DataFrame:
    """Rows per window and value of one column (the prediction mix when ``column`` is ``prediction``).

    Returns
    -------
    DataFrame
        ``window_start`` (Unix seconds), ``value`` and ``n``, sorted by both; missing values
        are a NaN ``value``.
    """
    spec = parse_window(window)
    rows = _slotted(table, spec, since, until)
    grouped = backend.execute(rows.group_by(["slot", rows[column].name("value")]).agg(
        n=rows.count(), first=rows.ts.min()))
    grouped = grouped[grouped["slot"].notna()]
    if isinstance(spec, int):
        starts = grouped.groupby("slot")["first"].transform("min")
    else:
        origin = WEEK_ORIGIN if spec == "week" else 0.0
        starts = origin + grouped["slot"].astype(float) * WINDOW_SECONDS[spec]
    out = pd.DataFrame({"window_start": starts.astype(float), "value": grouped["value"],
                        "n": grouped["n"].astype(np.int64)})
    return out.sort_values(["window_start", "value"], na_position="last").reset_index(drop=True)


def _plain(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value


def tally_frame(frame: pd.DataFrame, profile: ReferenceProfile, *, window: str | int, since: float | None = None,
                until: float | None = None, columns: Sequence[str] | None = None) -> WindowTallies:
    """:func:`tally_windows` over rows already in memory (a file's, or the SQL store's mirror), run by DuckDB.

    The same aggregation as for a log in an engine, so a service reads the same drift whichever
    source holds its rows.
    """
    backend = ibis.duckdb.connect()
    try:
        return tally_windows(backend, ibis.memtable(_plain_columns(frame)), profile, window=window, since=since,
                             until=until, columns=columns)
    finally:
        backend.disconnect()


def _plain_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Categoricals as text and ``ts`` as float: what every engine's tables hold."""
    out = frame.copy(deep=False)
    for name in out.columns:
        if isinstance(out[name].dtype, pd.CategoricalDtype):
            out[name] = out[name].astype(object).where(out[name].notna(), None)
    if "ts" in out.columns:
        out["ts"] = pd.to_numeric(out["ts"], errors="coerce").astype(float)
    return out


@dataclass(frozen=True)
class LogSummary:
    """How many rows a production source holds and the time they span.

    Attributes
    ----------
    rows : int
    first_ts, last_ts : float
        Unix seconds; NaN when there is no row with a time.
    source : str
        Plain description, e.g. ``"prediction log (Parquet, 1,234,567 rows)"``.
    """

    rows: int
    first_ts: float
    last_ts: float
    source: str


def summarize(backend, table: ir.Table, *, source: str) -> LogSummary:
    """Rows and time span of a log table, in one query."""
    row = backend.execute(table.aggregate(n=table.count(), first=table.ts.min(), last=table.ts.max()))
    n = int(row["n"].iloc[0]) if len(row) else 0
    first = float(row["first"].iloc[0]) if n and pd.notna(row["first"].iloc[0]) else float("nan")
    last = float(row["last"].iloc[0]) if n and pd.notna(row["last"].iloc[0]) else float("nan")
    return LogSummary(rows=n, first_ts=first, last_ts=last, source=source.format(rows=n))


@dataclass(frozen=True)
class LogTraffic:
    """What a prediction log says about its traffic up to ``now``, counted where it lives.

    The Overview's volume, prediction mix, task and model age come from these numbers, so no
    logged row has to enter the dashboard process.

    Attributes
    ----------
    now : float
        Unix seconds; rows made after it are not counted.
    n_rows : int
        Rows made at or before ``now``.
    today, last_7_days, previous_7_days : int
        Rows since midnight UTC of ``now``'s day, in ``[now - 7 d, now]`` and in
        ``[now - 14 d, now - 7 d)``.
    has_score : bool
        Whether any row logged a score.
    values : tuple of float
        The distinct predictions (NaN left out), sorted; at most ``max_values + 1`` of them.
    whole : bool
        Whether every prediction is a finite whole number.
    model_version : str or None
        The version of the newest row; None when the log records no versions.
    version_since : float
        Time of that version's first row; NaN when unknown.
    mix : DataFrame
        Rows made in ``[since, now]`` with a finite prediction, per bucket: ``bucket`` (the
        bucket's number, Unix seconds // ``bucket_seconds``), ``value`` (the prediction; NaN
        when not counted per value), ``n`` and ``total`` (the sum of the predictions).
    bucket_seconds : float
    hours : DataFrame or None
        Every logged row (``now`` or not) per UTC hour: ``hour_start`` and ``n``, as
        :attr:`monitoring.labels.LabeledPredictions.served_hours`.
    """

    now: float
    n_rows: int
    today: int
    last_7_days: int
    previous_7_days: int
    has_score: bool
    values: tuple[float, ...]
    whole: bool
    model_version: str | None
    version_since: float
    mix: pd.DataFrame
    bucket_seconds: float
    hours: pd.DataFrame | None = None


def log_traffic(backend, table: ir.Table, *, now: float, since: float, max_values: int,
                bucket_seconds: float = WINDOW_SECONDS["day"]) -> LogTraffic:
    """Count a log's traffic up to ``now`` in a few aggregate queries (see :class:`LogTraffic`).

    One grouped pass per hour (and per prediction, when there are few) gives the volumes, the
    mix, the score and the whole-number checks and every row per hour; the distinct values, the
    newest row's version and that version's first row take a small query each.

    Parameters
    ----------
    backend
        An Ibis backend.
    table : ibis Table
        The log: ``ts`` and ``prediction``; ``score`` and ``model_version`` when it has them.
    now : float
        Unix seconds.
    since : float
        Start of the prediction mix.
    max_values : int
        With at most this many distinct predictions, the mix is counted per value (classes);
        with more, per bucket only (a regression's mean).
    bucket_seconds : float, default=86400
        Width of the mix's buckets, aligned on multiples of it: a whole number of hours.

    Returns
    -------
    LogTraffic

    Raises
    ------
    ValueError
        For a ``bucket_seconds`` that is not a whole number of hours.
    """
    hour = WINDOW_SECONDS["hour"]
    if not (bucket_seconds >= hour and float(bucket_seconds) % hour == 0):
        raise ValueError(f"bucket_seconds must be a whole number of hours; got {bucket_seconds!r}")
    day = WINDOW_SECONDS["day"]
    midnight = (now // day) * day
    ts = table.ts
    prediction = table.prediction.cast("float64")
    known = prediction.notnull() & ~prediction.isnan()
    counted = ts <= now
    values = _distinct_values(backend, table.filter(counted), max_values)
    per_value = len(values) <= max_values
    mixed = counted & (ts >= since) & known & ~infinite(prediction)

    def count(condition: ir.BooleanValue) -> ir.IntegerScalar:
        return condition.ifelse(1, 0).sum()

    sums = {"n": table.count(), "counted": count(counted), "today": count(counted & (ts >= midnight)),
            "last": count(counted & (ts >= now - 7 * day)),
            "previous": count((ts >= now - 14 * day) & (ts < now - 7 * day)),
            "mixed": count(mixed), "mix_total": mixed.ifelse(prediction, 0.0).sum(),
            "not_whole": count(counted & known & (infinite(prediction) | (prediction != prediction.floor()))),
            "newest": counted.ifelse(ts, ibis.null("float64")).max()}
    if "score" in table.columns:
        score = table.score.cast("float64")
        sums["scored"] = count(counted & score.notnull() & ~score.isnan())
    keys = {"hour": (ts / hour).floor().cast("int64"), **({"value": prediction} if per_value else {})}
    grouped = backend.execute(table.group_by(**keys).aggregate(**sums))
    timed = grouped[grouped["hour"].notna()]
    hours = timed.groupby("hour", sort=True)["n"].sum()
    total = grouped.drop(columns=[c for c in ("hour", "value") if c in grouped]).sum(numeric_only=True)
    newest = float(grouped["newest"].max()) if grouped["newest"].notna().any() else math.nan
    version, version_since = None, math.nan
    if "model_version" in table.columns and math.isfinite(newest):
        found = backend.execute(table.filter(ts == newest).aggregate(version=table.model_version.max()))
        if len(found) and pd.notna(found["version"].iloc[0]):
            version = str(found["version"].iloc[0])
            first = backend.execute(table.filter(counted & (table.model_version == version))
                                    .aggregate(first=ts.min()))
            version_since = float(first["first"].iloc[0])
    mix = timed[timed["mixed"] > 0].assign(
        bucket=lambda f: (f["hour"].astype(np.int64) * int(hour)) // int(bucket_seconds),
        value=lambda f: f["value"] if per_value else np.nan)
    mix = (mix.groupby(["bucket", "value"], dropna=False, sort=True)[["mixed", "mix_total"]].sum().reset_index()
           .rename(columns={"mixed": "n", "mix_total": "total"}))
    mix = mix.astype({"bucket": np.int64, "n": np.int64, "total": float, "value": float})
    mix = mix[["bucket", "value", "n", "total"]].sort_values(["bucket", "value"]).reset_index(drop=True)
    return LogTraffic(now=float(now), n_rows=int(total.get("counted", 0)), today=int(total.get("today", 0)),
                      last_7_days=int(total.get("last", 0)), previous_7_days=int(total.get("previous", 0)),
                      has_score=bool(total.get("scored", 0)), values=values,
                      whole=not int(total.get("not_whole", 0)), model_version=version,
                      version_since=version_since, mix=mix, bucket_seconds=float(bucket_seconds),
                      hours=pd.DataFrame({"hour_start": hours.index.to_numpy(dtype=float) * hour,
                                          "n": hours.to_numpy(dtype=np.int64)}))


def _distinct_values(backend, rows: ir.Table, max_values: int) -> tuple[float, ...]:
    """The distinct predictions (NaN left out), sorted, at most ``max_values + 1`` of them."""
    prediction = rows.prediction.cast("float64")
    decided = rows.filter(prediction.notnull() & ~prediction.isnan()).select(value=prediction)
    # grouped, not DISTINCT: Spark returned one value repeatedly for a DISTINCT with a LIMIT
    found = backend.execute(decided.group_by("value").agg(n=decided.count()).order_by("value").limit(max_values + 1))
    return tuple(float(v) for v in found["value"])


@dataclass(frozen=True)
class PredictionValues:
    """What a log's predictions say about its task: :func:`monitoring.labels.task_of_values` reads these.

    Attributes
    ----------
    has_score : bool
    values : tuple of float
        Distinct predictions, sorted, at most ``max_values + 1``.
    whole : bool
        Every prediction (NaN left out) is a finite whole number.
    """

    has_score: bool
    values: tuple[float, ...]
    whole: bool


def prediction_values(backend, table: ir.Table, *, max_values: int) -> PredictionValues:
    """:class:`PredictionValues` of every row of a log (``prediction``, and ``score`` when it has one)."""
    prediction = table.prediction.cast("float64")
    known = prediction.notnull() & ~prediction.isnan()
    counts = {"not_whole": (known & (infinite(prediction) | (prediction != prediction.floor()))).ifelse(1, 0).sum()}
    if "score" in table.columns:
        score = table.score.cast("float64")
        counts["scored"] = (score.notnull() & ~score.isnan()).ifelse(1, 0).sum()
    totals = backend.execute(table.aggregate(**counts)).iloc[0]
    return PredictionValues(has_score=bool(totals.get("scored") or 0),
                            values=_distinct_values(backend, table, max_values),
                            whole=not int(totals["not_whole"] or 0))


def traffic_frame(frame: pd.DataFrame, **options) -> LogTraffic:
    """:func:`log_traffic` over rows already in memory, run by DuckDB (the same counts as an engine's)."""
    backend = ibis.duckdb.connect()
    try:
        wanted = [c for c in ("ts", "prediction", "score", "model_version") if c in frame.columns]
        rows = _plain_columns(frame[wanted])
        if "prediction" not in rows:
            rows["prediction"] = np.nan
        rows["prediction"] = pd.to_numeric(rows["prediction"], errors="coerce").astype(float)
        if "score" in rows:
            rows["score"] = pd.to_numeric(rows["score"], errors="coerce").astype(float)
        if "model_version" in rows:  # text, as the logs store it
            known = rows["model_version"].notna()
            rows["model_version"] = rows["model_version"].astype(str).astype(object).where(known, None)
        return log_traffic(backend, ibis.memtable(rows), **options)
    finally:
        backend.disconnect()
