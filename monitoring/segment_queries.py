"""The Segments page's counts where the log lives: per segment aggregates, bounded samples, per-segment drift counts.

One Ibis aggregation (:func:`count_segments`) serves every source: DuckDB (or Spark) over the
Parquet log, with the labels joined there (``monitoring.label_queries.join_in_engine``), and DuckDB
over an in-memory table of the rows of a prediction-log file or of the SQL store's mirror
(:func:`frame_segment_counts`). :func:`segment_counts` picks the path for a production source
and its labels; :func:`segment_sample` brings back a bounded sample of each segment's rows (for
the explanations).

A segmenting feature is keyed where the rows are, as ``explain.segments.assign_segments`` cuts
it (:func:`key_specs`): a category (or a number with at most ``n_bins`` distinct values in the
period) by its value, missing values (NULL, NaN) as NULL; any other number by its bin among the
inner quantile edges (``searchsorted(inner, x, side="right")``), -1 when it is not finite. The
edges are the reference's when given, else the period's own quantiles. A personal column,
sealed in the files, is grouped by its sealed text and opened here, then keyed the same way.
Only these keys come back, never a segment's name: ``explain.segments`` names them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from monitoring.log_queries import finite, step_counts
from monitoring.performance_sums import KEY_MODULUS, id_key
from monitoring.sqlite_engine import quantiles as sqlite_quantiles

SAMPLE_ROWS = 2000
"""Labelled rows of least id hash kept per segment: the bootstrap of a segment's metric runs on them."""
MAX_BOUNDED_CELLS = 256
"""With more cells than this, each cell's sample is ranked among all its rows instead of below a bound."""
DAY = 86400.0


@dataclass(frozen=True)
class KeySpec:
    """How one segmenting feature is keyed.

    Attributes
    ----------
    name : str
    inner : tuple of float or None
        Inner bin edges: the key is ``searchsorted(inner, x, side="right")`` (-1 when ``x`` is not
        finite); None: the key is the value itself (NULL when missing).
    sealed : bool, default=False
        Whether the column is sealed where it lives (grouped by its sealed text there, opened here).
    """

    name: str
    inner: tuple[float, ...] | None
    sealed: bool = False


@dataclass(frozen=True)
class SegmentCounts:
    """What the engine counted for the segments of one period, keyed by ``k0`` (and ``k1``), one per feature.

    Attributes
    ----------
    specs : tuple of KeySpec
        One per segmenting feature, in order; key column ``k{i}`` belongs to ``specs[i]``.
    task : {"classification", "regression"}
    classes : tuple of float
        The classes of the label join (classification), else empty.
    n_rows : int
        Predictions in the period.
    cells : DataFrame
        Classification: ``k0[, k1], prediction, label, n`` (prediction and label NULL/NaN when
        missing or unknown). Regression: ``k0[, k1], n, n_decided, prediction_sum, n_labelled,
        abs_error_sum, squared_error_sum`` (``n_decided``: finite predictions; ``n_labelled``:
        finite label and prediction).
    sample : DataFrame
        Per cell at most ``sample_rows`` labelled rows (finite label and prediction) of least
        ``key`` (a hash of the id): ``k0[, k1], key, id, ts, label, prediction, score``.
    drift : dict of str to DataFrame
        Per feature counted for the in-segment drift: ``k0[, k1], step, n, s`` (numeric, steps
        against the edges asked for: 0 below the first, ``2j - 1`` at edge ``j - 1``, ``2j``
        between edges ``j - 1`` and ``j``, -1 when missing) or ``k0[, k1], value, n`` (categorical).
    sample_rows : int
    """

    specs: tuple[KeySpec, ...]
    task: str
    classes: tuple[float, ...]
    n_rows: int
    cells: pd.DataFrame
    sample: pd.DataFrame
    drift: dict = field(default_factory=dict)
    sample_rows: int = SAMPLE_ROWS

    @property
    def keys(self) -> list[str]:
        """The key columns, ``k0`` (and ``k1``)."""
        return [f"k{i}" for i in range(len(self.specs))]


# -- keying --------------------------------------------------------------------------------------


def _numeric(column: ir.Column) -> bool:
    kind = column.type()
    return kind.is_numeric() and not kind.is_boolean()


def _key(rows: ir.Table, spec: KeySpec) -> ir.Value:
    x = rows[spec.name]
    if spec.sealed:
        return x
    if spec.inner is None:
        if x.type().is_floating():
            return x.isnan().ifelse(ibis.null(x.type()), x)
        return x
    x = x.cast("float64")
    position = sum(((x >= float(e)).ifelse(1, 0) for e in spec.inner), ibis.literal(0))
    return finite(x).ifelse(position, -1).cast("int64")


def keyed(rows: ir.Table, specs: Sequence[KeySpec]) -> ir.Table:
    """``rows`` with the key column ``k{i}`` of each spec."""
    return rows.mutate(**{f"k{i}": _key(rows, spec) for i, spec in enumerate(specs)})


def _bin_edges_of(values: np.ndarray, n_bins: int, weights: np.ndarray | None = None) -> np.ndarray:
    """``explain.segments._bin_edges`` of values given once each with their counts (``np.quantile`` of the rows)."""
    finite = np.isfinite(values)
    values = values[finite]
    if not len(values):
        return np.array([])
    if weights is None:
        return np.unique(np.quantile(values, np.linspace(0, 1, n_bins + 1)))
    return np.unique(np.quantile(np.repeat(values, weights[finite].astype(np.int64)), np.linspace(0, 1, n_bins + 1)))


def key_specs(backend, rows: ir.Table, features: Sequence[str], *, n_bins: int,
              edges: Mapping[str, np.ndarray] | None = None, sealed: Sequence[str] = ()) -> tuple[KeySpec, ...]:
    """How each of ``features`` is keyed in ``rows`` (the period's predictions), as ``assign_segments`` cuts it.

    Parameters
    ----------
    backend
        The Ibis backend holding ``rows``.
    rows : ibis Table
    features : sequence of str
        One or two columns of ``rows``.
    n_bins : int
        A number with more distinct values than this in ``rows`` is binned.
    edges : mapping of str to ndarray, optional
        Full quantile edges per feature (``explain.segments.segment_edges`` of the reference); a number
        without them is cut at the quantiles of ``rows`` (its finite values).
    sealed : sequence of str, default=()
        Columns sealed where they live: keyed by their sealed text here, decided once opened.

    Returns
    -------
    tuple of KeySpec
    """
    edges = edges or {}
    specs = []
    for name in features:
        if name in sealed:
            specs.append(KeySpec(name, None, sealed=True))
            continue
        x = rows[name]
        if not _numeric(x):
            specs.append(KeySpec(name, None))
            continue
        x = x.cast("float64")
        present = rows.filter(x.notnull() & ~x.isnan()).select(value=x)
        # A sketch of the distinct count first: grouping millions of distinct numbers only to learn that
        # there are more than a handful would cost a hash table of all of them; the sketch errs by a few
        # per cent, so above 100 there are surely more than n_bins (at most 10), and below, the exact
        # grouping is small.
        sketch = backend.execute(present.aggregate(d=present.value.approx_nunique()))
        many = len(sketch) and int(sketch["d"].iloc[0] or 0) > max(100, 4 * n_bins)
        if not many:
            # grouped, not DISTINCT: Spark returned one value repeatedly for a DISTINCT with a LIMIT
            found = backend.execute(present.group_by("value").agg(n=present.count()).limit(n_bins + 1))
            many = len(found) > n_bins
        if not many:
            specs.append(KeySpec(name, None))
            continue
        full = edges.get(name)
        if full is None:
            values = rows.filter(finite(x)).select(value=x)
            levels = [float(q) for q in np.linspace(0, 1, n_bins + 1)]
            if backend.name == "sqlite":
                found = sqlite_quantiles(backend, values, levels)
            else:  # one aggregate of every level: each exact quantile of its own would hold every value again
                qs = backend.execute(values.aggregate(q=values.value.quantile(levels)))
                found = qs["q"].iloc[0] if len(qs) else None
            full = np.unique(np.asarray([np.nan if v is None else v for v in found], dtype=float)) \
                if found is not None else np.array([])
            full = full[np.isfinite(full)]
        specs.append(KeySpec(name, tuple(float(e) for e in np.asarray(full, dtype=float)[1:-1])))
    return tuple(specs)


# -- the one aggregation -------------------------------------------------------------------------


def count_segments(backend, period: ir.Table, labelled: ir.Table, specs: Sequence[KeySpec], *, task: str,
                   classes: tuple[float, ...], sample_rows: int = SAMPLE_ROWS,
                   drift_edges: Mapping[str, np.ndarray] | None = None,
                   drift_categorical: Sequence[str] = ()) -> SegmentCounts:
    """Count the segments of a period where its rows are.

    Parameters
    ----------
    backend
        The Ibis backend holding both tables.
    period : ibis Table
        The period's predictions keyed by :func:`keyed` (``k0``...), with the drift's columns.
    labelled : ibis Table
        The same rows with ``label`` (NULL while unknown): ``k0``..., ``id``, ``ts``, ``prediction``,
        ``score``, ``label``.
    specs : sequence of KeySpec
    task : {"classification", "regression"}
    classes : tuple of float
    sample_rows : int, default=SAMPLE_ROWS
        Labelled rows of least key kept per cell (0: none).
    drift_edges : mapping of str to ndarray, optional
        Numeric columns to count per step position of these (sorted, finite) edges.
    drift_categorical : sequence of str, default=()
        Categorical columns to count per value.

    Returns
    -------
    SegmentCounts
        With the keys of sealed specs still sealed (:func:`open_sealed` opens them).
    """
    keys = [f"k{i}" for i in range(len(specs))]
    prediction = labelled.prediction.cast("float64")
    label = labelled.label.cast("float64")
    rows = labelled.mutate(prediction=prediction.isnan().ifelse(ibis.null("float64"), prediction),
                           label=label.isnan().ifelse(ibis.null("float64"), label))
    known = finite(rows.label) & finite(rows.prediction)
    if task == "classification":
        cells = backend.execute(rows.group_by([*keys, "prediction", "label"]).agg(n=rows.count()))
        labelled_per_cell = cells[np.isfinite(cells["label"].to_numpy(dtype=float))
                                  & np.isfinite(cells["prediction"].to_numpy(dtype=float))]
    else:
        decided = finite(rows.prediction)
        error = rows.label - rows.prediction
        cells = backend.execute(rows.group_by(keys).agg(
            n=rows.count(), n_decided=decided.ifelse(1, 0).sum(),
            prediction_sum=decided.ifelse(rows.prediction, 0.0).sum(), n_labelled=known.ifelse(1, 0).sum(),
            abs_error_sum=known.ifelse(error.abs(), 0.0).sum(),
            squared_error_sum=known.ifelse(error * error, 0.0).sum()))
        cells = cells.fillna(dict.fromkeys(("n_decided", "prediction_sum", "n_labelled", "abs_error_sum",
                                            "squared_error_sum"), 0))
        labelled_per_cell = cells.rename(columns={"n": "_n"}).rename(columns={"n_labelled": "n"})
    cells = cells.astype({"n": np.int64})
    n_rows = int(cells["n"].sum())
    sample = _no_sample(keys)
    if sample_rows > 0 and len(labelled_per_cell):
        sizes = labelled_per_cell.groupby(keys, dropna=False, sort=False)["n"].sum()
        sizes = sizes[sizes > 0]
        if len(sizes):
            sample = _sample(backend, rows.filter(known), keys, sizes, sample_rows)
    drift = {}
    for name, fine in (drift_edges or {}).items():
        drift[name] = step_counts(backend, period, name, np.asarray(fine, dtype=float), keys)
    for name in drift_categorical:
        drift[name] = backend.execute(period.group_by([*keys, period[name].name("value")]).agg(n=period.count()))
    return SegmentCounts(specs=tuple(specs), task=task, classes=tuple(classes), n_rows=n_rows, cells=cells,
                         sample=sample, drift=drift, sample_rows=sample_rows)


def _no_sample(keys: list[str]) -> pd.DataFrame:
    return pd.DataFrame({**{k: pd.Series(dtype=object) for k in keys}, "key": pd.Series(dtype=np.int64),
                         "id": pd.Series(dtype=object), "ts": pd.Series(dtype=float),
                         "label": pd.Series(dtype=float), "prediction": pd.Series(dtype=float),
                         "score": pd.Series(dtype=float)})


def _cell_condition(table: ir.Table, keys: list[str], cell: tuple) -> ir.BooleanValue:
    condition = ibis.literal(True)
    for name, value in zip(keys, cell, strict=True):
        condition &= table[name].isnull() if _missing(value) else table[name] == _plain(value)
    return condition


def _sample(backend, known: ir.Table, keys: list[str], sizes: pd.Series, sample_rows: int,
            columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Per cell the ``sample_rows`` rows of ``known`` of least key (label_queries' bound: about 1.5 times the sample
    below a key bound, every row of a small cell; a cell that came short is ranked whole). ``sizes``: rows per cell;
    ``columns``: what to bring back besides the keys (default the labelled rows' ``id, ts, label, prediction,
    score``)."""
    def _selected(table: ir.Table) -> ir.Table:
        id_text = table.id.cast("string")
        key = (table._label_key if "_label_key" in table.columns
               else id_key(id_text))
        score = table.score.cast("float64") if "score" in table.columns else ibis.null("float64")
        return table.select(*keys, key=key, id=id_text, ts=table.ts.cast("float64"), label=table.label,
                            prediction=table.prediction, score=score)

    id_text = known.id.cast("string")
    key = id_key(id_text)
    if columns is None:
        rows = _selected(known)
    else:
        rows = known.select(*keys, *[c for c in columns if c not in keys], key=key, _ts=known.ts)
    cells = [c if isinstance(c, tuple) else (c,) for c in sizes.index]
    n_of = dict(zip(cells, sizes.to_numpy(dtype=np.int64), strict=True))
    order = ["key", "ts" if columns is None else "_ts"]

    def least(bounds: dict[tuple, int] | None) -> pd.DataFrame:
        chosen = rows
        if bounds is not None:
            if "_label_key" in known.columns:  # the same key, known before the join: filtered there first
                chosen = known.filter(known._label_key < max(bounds.values()))
                chosen = chosen.select(*keys, *[c for c in rows.columns if c not in keys]) if columns is not None \
                    else _selected(chosen)
            bound = ibis.cases(*((_cell_condition(chosen, keys, cell), limit) for cell, limit in bounds.items()),
                               else_=0)
            chosen = chosen.filter(chosen.key < bound)
        ranked = chosen.mutate(rank=ibis.row_number().over(group_by=keys, order_by=order))
        return backend.execute(ranked.filter(ranked["rank"] < sample_rows).drop("rank"))

    if len(cells) > MAX_BOUNDED_CELLS:
        found = least(None)
    else:
        found = least({cell: int(KEY_MODULUS * min(1.0, (1.5 * sample_rows + 64) / n)) for cell, n in n_of.items()})
        got = found.groupby(keys, dropna=False, sort=False).size()
        got = {c if isinstance(c, tuple) else (c,): int(v) for c, v in got.items()}
        short = [cell for cell, n in n_of.items() if _got(got, cell) < min(n, sample_rows)]
        if short:
            again = least(dict.fromkeys(short, KEY_MODULUS))
            found = pd.concat([_without(found, keys, short), again], ignore_index=True)
    if columns is not None:
        return found.sort_values([*keys, "key"], kind="stable").drop(columns=["_ts"]).reset_index(drop=True)
    return found.astype({"ts": float, "label": float, "prediction": float, "score": float, "key": np.int64})


def _missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _same(a, b) -> bool:
    if _missing(a) or _missing(b):
        return _missing(a) and _missing(b)
    return bool(a == b)


def _got(got: dict[tuple, int], cell: tuple) -> int:
    return sum(n for c, n in got.items() if all(_same(x, y) for x, y in zip(c, cell, strict=True)))


def _without(frame: pd.DataFrame, keys: list[str], cells: list[tuple]) -> pd.DataFrame:
    drop = np.zeros(len(frame), dtype=bool)
    values = [frame[k].tolist() for k in keys]
    for i in range(len(frame)):
        row = tuple(v[i] for v in values)
        drop[i] = any(all(_same(x, y) for x, y in zip(row, cell, strict=True)) for cell in cells)
    return frame[~drop]


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


# -- sealed keys ---------------------------------------------------------------------------------


def open_sealed(counts: SegmentCounts, opener: Callable[[str, object], object], *, n_bins: int,
                edges: Mapping[str, np.ndarray] | None = None, kinds: Mapping[str, str] | None = None
                ) -> SegmentCounts:
    """``counts`` with the keys of sealed specs opened (``opener(column, text)``) and keyed as any other.

    A sealed column's distinct values come back from the engine (their counts with them), so it is
    cut here exactly as :func:`key_specs` cuts a plain one: its value, or its bin among the given
    edges or the quantiles of its values. Drift counts of sealed columns are opened the same way.
    """
    import dataclasses

    specs = list(counts.specs)
    frames = {"cells": counts.cells, "sample": counts.sample, **{f"drift:{k}": v for k, v in counts.drift.items()}}
    for i, spec in enumerate(counts.specs):
        if not spec.sealed:
            continue
        key = f"k{i}"
        raw = counts.cells[key]
        texts = pd.unique(raw.dropna().astype(object))
        opened = {text: opener(spec.name, text) for text in texts}
        kind = (kinds or {}).get(spec.name)
        values = [v for v in opened.values() if v is not None]
        numeric = kind == "numeric" or (kind is None and values and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in values))
        distinct = pd.Series(values, dtype=float if numeric else object).nunique(dropna=True)
        if not numeric or distinct <= n_bins:
            mapping, inner = opened, None
        else:
            full = (edges or {}).get(spec.name)
            if full is None:
                per_text = counts.cells.groupby(key, dropna=True)["n"].sum()
                numbers = np.array([_number_or_nan(opened[t]) for t in per_text.index], dtype=float)
                full = _bin_edges_of(numbers, n_bins, per_text.to_numpy(dtype=np.int64))
            inner = np.asarray(full, dtype=float)[1:-1]
            mapping = {text: (int(np.searchsorted(inner, x, side="right")) if math.isfinite(x) else -1)
                       for text, x in ((t, _number_or_nan(v)) for t, v in opened.items())}
        specs[i] = KeySpec(spec.name, None if inner is None else tuple(float(e) for e in inner))
        for name, frame in frames.items():
            if key in frame:
                missing_key = None if inner is None else -1
                frames[name] = frame.assign(**{key: [mapping.get(v, missing_key) if v is not None and v == v
                                                     else missing_key for v in frame[key].tolist()]})
    drift = {name: frames[f"drift:{name}"] for name in counts.drift}
    return dataclasses.replace(counts, specs=tuple(specs), cells=frames["cells"], sample=frames["sample"],
                               drift=drift)


def _number_or_nan(value) -> float:
    try:
        return float(value) if value is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


def steps_of_values(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Step positions of numbers against sorted ``edges`` (-1 when not finite), as the engine counts them."""
    values = np.asarray(values, dtype=float)
    finite = np.isfinite(values)
    bins = np.searchsorted(edges, np.where(finite, values, 0.0), side="right")
    at_edge = np.zeros(len(values), dtype=bool)
    inside = bins > 0
    at_edge[inside] = values[inside] == np.asarray(edges, dtype=float)[bins[inside] - 1]
    return np.where(finite, 2 * bins - at_edge, -1)


# -- sources -------------------------------------------------------------------------------------


def _plain_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Categoricals as text, ``ts``, ``prediction``, ``score`` and ``label`` as floats, ``id`` as text."""
    out = frame.copy(deep=False)
    for name in out.columns:
        if isinstance(out[name].dtype, pd.CategoricalDtype):
            out[name] = out[name].astype(object).where(out[name].notna(), None)
    for name in ("ts", "prediction", "score", "label"):
        out[name] = pd.to_numeric(out[name], errors="coerce").astype(float) if name in out else np.nan
    out["id"] = (out["id"].astype(str) if "id" in out
                 else pd.Series([f"row-{i + 1}" for i in range(len(out))], index=out.index))
    return out.reset_index(drop=True)


def frame_segment_counts(frame: pd.DataFrame, features: Sequence[str], *, task: str, classes: tuple[float, ...],
                         n_bins: int = 4, edges: Mapping[str, np.ndarray] | None = None,
                         sample_rows: int = SAMPLE_ROWS, drift_edges: Mapping[str, np.ndarray] | None = None,
                         drift_categorical: Sequence[str] = ()) -> SegmentCounts:
    """:func:`count_segments` over rows already in memory (a file's, the SQL store's mirror), run by DuckDB.

    Parameters
    ----------
    frame : DataFrame
        The period's rows: the features, ``prediction``, ``label`` (NaN while unknown), and ``id``,
        ``ts``, ``score`` when known (an id by row position, time in row order otherwise).
    features : sequence of str
    task, classes
        As the label join found them.
    n_bins, edges, sample_rows, drift_edges, drift_categorical
        As for :func:`key_specs` and :func:`count_segments`.

    Returns
    -------
    SegmentCounts
    """
    wanted = list(dict.fromkeys([*features, *(drift_edges or {}), *drift_categorical]))
    rows = _plain_frame(frame[[c for c in frame.columns if c in {*wanted, "id", "ts", "prediction", "score",
                                                                  "label"}]])
    if "ts" not in frame:
        rows["ts"] = np.arange(len(rows), dtype=float)
    backend = ibis.duckdb.connect()
    try:
        table = ibis.memtable(rows)
        specs = key_specs(backend, table, features, n_bins=n_bins, edges=edges)
        period = keyed(table, specs)
        return count_segments(backend, period, period, specs, task=task, classes=classes, sample_rows=sample_rows,
                              drift_edges=drift_edges, drift_categorical=drift_categorical)
    finally:
        backend.disconnect()


def segment_counts(source, labels, features: Sequence[str], *, now: float, days: float, n_bins: int = 4,
                   edges: Mapping[str, np.ndarray] | None = None, task: str = "auto",
                   sample_rows: int = SAMPLE_ROWS, drift_edges: Mapping[str, np.ndarray] | None = None,
                   drift_categorical: Sequence[str] = (), kept=None) -> SegmentCounts:
    """The segments of the predictions made in ``[now - days, now)``, each with its label where one arrived.

    A Parquet log with its labels beside it is counted by its engine, the labels joined there
    (as ``monitoring.label_queries.join_labels_in_engine`` joins them): only counts and bounded
    samples come back. Any other source (a prediction-log file, the SQL store's mirror) or labels
    (a label file, the store's table) join in memory (the source's ``join_labels``), and the same
    aggregation runs over those rows in DuckDB.

    Parameters
    ----------
    source : EngineMirror, FileMirror or PredictionLogMirror
    labels : LogLabels, LabelFileMirror, StoreLabelMirror or None
    features : sequence of str
        One or two segmenting features.
    now : float
        End of the period, Unix seconds (excluded).
    days : float
    n_bins, edges, sample_rows, drift_edges, drift_categorical
        As for :func:`frame_segment_counts`.
    task : {"auto", "classification", "regression"}, default="auto"
    kept : monitoring.performance_sums.KeptLabels, optional
        The label join already kept beside a Parquet log (``ParquetMirror.keep_labels``, the collector's
        upkeep's): the period's rows take their labels from it (one join by id), and its task and classes.

    Returns
    -------
    SegmentCounts

    Raises
    ------
    ProductionDataError
        When the service has no prediction log.
    """
    from monitoring.engine_mirror import EngineMirror
    from monitoring.labels import LabelDataError

    since, until = float(now) - float(days) * DAY, float(now)
    if isinstance(source, EngineMirror) and labels is not None and source.keeps_labels(labels):
        return _engine_counts(source, labels, features, now=float(now), since=since, until=until, n_bins=n_bins,
                              edges=edges, task=task, sample_rows=sample_rows, drift_edges=drift_edges,
                              drift_categorical=drift_categorical, kept=kept)
    frame = source.read().frame
    period = frame[(frame["ts"].to_numpy(dtype=float) >= since) & (frame["ts"].to_numpy(dtype=float) < until)]
    labeled = None
    if labels is not None:
        try:
            labeled = source.join_labels(labels, now=float(now), task=task)
        except LabelDataError:
            labeled = None
    return frame_segment_counts(_with_labels(period, labeled), features, n_bins=n_bins, edges=edges,
                                sample_rows=sample_rows, drift_edges=drift_edges, drift_categorical=drift_categorical,
                                **_task_of(period, labeled, task))


def _with_labels(period: pd.DataFrame, labeled) -> pd.DataFrame:
    """The period's rows with the label of their id (the first joined row of an id), NaN where none arrived."""
    if labeled is None or "id" not in period:
        return period.assign(label=np.nan)
    labels = pd.Series(labeled.frame["label"].to_numpy(), index=labeled.frame["id"].astype(str))
    labels = labels[~labels.index.duplicated()]
    return period.assign(label=pd.to_numeric(period["id"].astype(str).map(labels), errors="coerce")
                         .to_numpy(dtype=float))


def _task_of(period: pd.DataFrame, labeled, task: str) -> dict:
    from monitoring.labels import infer_task, predicted_classes

    if labeled is not None:
        return {"task": labeled.task, "classes": tuple(labeled.classes)}
    task = infer_task(period) if task == "auto" else task
    return {"task": task, "classes": tuple(predicted_classes(period)) if task == "classification" else ()}


def _engine_counts(source, labels, features: Sequence[str], *, now: float, since: float, until: float, n_bins: int,
                   edges, task: str, sample_rows: int, drift_edges, drift_categorical, kept=None) -> SegmentCounts:
    from monitoring.label_queries import join_in_engine, kept_rows

    engine = source.log.engine
    source.columns()  # raises ProductionDataError when the service has no log
    sealer = source.log.store.sealer
    sealed = tuple(sealer.columns(source.service))
    kinds = source.log.prediction_table(source.service)
    drift_edges = dict(drift_edges or {})
    sealed_numeric = {k: v for k, v in drift_edges.items() if k in sealed}
    drift_edges = {k: v for k, v in drift_edges.items() if k not in sealed}
    drift_categorical = [*drift_categorical, *sealed_numeric]
    table = engine.table(source.service, in_order=engine.scheme == "duckdb").table
    if table is None:
        return _empty_counts(features, task=task)
    with engine.lock:
        backend = engine.connect()
        in_period = table.filter((table.ts >= since) & (table.ts < until))
        specs = key_specs(backend, in_period, features, n_bins=n_bins, edges=edges, sealed=sealed)
        period = keyed(in_period, specs)

        def finish(used: ir.Table | None, resolved: str, classes: tuple[float, ...]):
            if used is None:
                labelled = period.mutate(label=ibis.null("float64"))
            else:
                # a kept join holds each id's key already: the sample's bound then filters the labels before
                # they are joined (a few thousand ids instead of millions)
                key = {"_label_key": used.key} if "key" in used.columns else {}
                known = used.select(_label_id=used.id, label=used.label, **key)
                labelled = period.left_join(known, period.id.cast("string") == known._label_id).select(
                    *period.columns, "label", *key)
            counted = count_segments(backend, period, labelled, specs, task=resolved, classes=classes,
                                     sample_rows=sample_rows, drift_edges=drift_edges,
                                     drift_categorical=drift_categorical)
            return counted, 0

        if kept is not None:
            used = kept_rows(backend, kept.path) if kept.path is not None and kept.n_labelled else None
            counts, _ = finish(used, kept.task, tuple(kept.classes))
        else:
            served = pd.DataFrame({"hour_start": pd.Series(dtype=float), "n": pd.Series(dtype=np.int64)})
            counts = join_in_engine(backend, table, source.labels_table(labels), now=now, task=task, finish=finish,
                                served=served).result
    if sealed:
        counts = open_sealed(counts, sealer.open, n_bins=n_bins, edges=edges, kinds=kinds)
        for name in [c for c in counts.drift if c in sealed]:
            values = counts.drift[name]
            values = values.assign(value=[sealer.open(name, v) for v in values["value"].tolist()])
            counts.drift[name] = (_steps_of_opened(values, counts.keys, np.asarray(sealed_numeric[name], dtype=float))
                                  if name in sealed_numeric else values)
    return counts


def _steps_of_opened(values: pd.DataFrame, keys: list[str], edges: np.ndarray) -> pd.DataFrame:
    """Per key and value counts of an opened numeric column, as step counts against ``edges``."""
    x = np.array([_number_or_nan(v) for v in values["value"].tolist()], dtype=float)
    steps = values[keys].assign(step=steps_of_values(x, edges), n=values["n"].to_numpy(dtype=np.int64),
                                s=np.where(np.isfinite(x), x, 0.0) * values["n"].to_numpy(dtype=float))
    return steps.groupby([*keys, "step"], dropna=False, as_index=False)[["n", "s"]].sum()


def _empty_counts(features: Sequence[str], *, task: str) -> SegmentCounts:
    keys = [f"k{i}" for i in range(len(features))]
    columns = ([*keys, "prediction", "label", "n"] if task != "regression" else
               [*keys, "n", "n_decided", "prediction_sum", "n_labelled", "abs_error_sum", "squared_error_sum"])
    return SegmentCounts(specs=tuple(KeySpec(f, None) for f in features),
                         task="regression" if task == "regression" else "classification", classes=(), n_rows=0,
                         cells=pd.DataFrame({c: pd.Series(dtype=float) for c in columns}), sample=_no_sample(keys))


@dataclass(frozen=True)
class SegmentSample:
    """A bounded sample of each segment's rows (for the explanations).

    Attributes
    ----------
    frame : DataFrame
        The rows: the key columns ``k0`` (and ``k1``), the segmenting features and the columns asked for,
        as the source's ``read`` gives them (personal values opened, text as categoricals), by key and id hash.
    specs : tuple of KeySpec
    n_cells : int
        Cells of the period (the rows per cell were sized to them).
    """

    frame: pd.DataFrame
    specs: tuple[KeySpec, ...]
    n_cells: int


def segment_sample(source, features: Sequence[str], *, now: float, days: float, columns: Sequence[str],
                   at_most: int, at_least: int = 10, n_bins: int = 4,
                   edges: Mapping[str, np.ndarray] | None = None) -> SegmentSample:
    """The predictions of least id hash of each segment of ``[now - days, now)``: ``at_most`` rows in all, spread
    over the cells, at least ``at_least`` of each.

    Parameters
    ----------
    source : EngineMirror, FileMirror or PredictionLogMirror
    features : sequence of str
        The segmenting features.
    now, days : float
    columns : sequence of str
        The columns to bring back (the model's features).
    at_most, at_least : int
    n_bins, edges
        As for :func:`key_specs`.

    Returns
    -------
    SegmentSample
    """
    from monitoring.engine_mirror import EngineMirror

    since, until = float(now) - float(days) * DAY, float(now)
    wanted = list(dict.fromkeys([*features, *columns]))
    if not isinstance(source, EngineMirror):
        frame = source.read().frame
        ts = frame["ts"].to_numpy(dtype=float)
        period = frame[(ts >= since) & (ts < until)].reset_index(drop=True)
        rows = _plain_frame(period[[c for c in period.columns if c in {*features, "id", "ts"}]])
        backend = ibis.duckdb.connect()
        try:
            table = ibis.memtable(rows.assign(_row=np.arange(len(rows), dtype=np.int64)))
            found, specs, n_cells = _least_per_cell(backend, table, features, ["_row"], at_most, at_least,
                                                    n_bins=n_bins, edges=edges)
        finally:
            backend.disconnect()
        picked = period.iloc[found["_row"].to_numpy(dtype=np.int64)].reset_index(drop=True)
        keys = found[[f"k{i}" for i in range(len(specs))]].reset_index(drop=True)
        return SegmentSample(pd.concat([keys, picked[[c for c in wanted if c in picked]]], axis=1), specs, n_cells)
    engine = source.log.engine
    source.columns()  # raises ProductionDataError when the service has no log
    table = engine.table(source.service, since=since, until=until).table
    if table is None:
        return SegmentSample(pd.DataFrame({c: pd.Series(dtype=object) for c in wanted}),
                             tuple(KeySpec(f, None) for f in features), 0)
    sealed = tuple(source.log.store.sealer.columns(source.service))
    with engine.lock:
        backend = engine.connect()
        in_period = table.filter((table.ts >= since) & (table.ts < until))
        found, specs, n_cells = _least_per_cell(backend, in_period, features,
                                                [c for c in wanted if c in table.columns], at_most, at_least,
                                                n_bins=n_bins, edges=edges, sealed=sealed)
    if any(spec.sealed for spec in specs):
        opened = open_sealed(SegmentCounts(specs, "classification", (), len(found), found.assign(n=1),
                                           _no_sample([])), source.log.store.sealer.open, n_bins=n_bins, edges=edges,
                             kinds=source.log.prediction_table(source.service))
        found, specs = opened.cells.drop(columns="n"), opened.specs
    keys = [f"k{i}" for i in range(len(specs))]
    shaped = source.log.shape(source.service, found.drop(columns=keys))
    return SegmentSample(pd.concat([found[keys], shaped[[c for c in wanted if c in shaped]]], axis=1), specs, n_cells)


def _least_per_cell(backend, table: ir.Table, features, columns, at_most: int, at_least: int, *, n_bins: int, edges,
                    sealed: Sequence[str] = ()) -> tuple[pd.DataFrame, tuple[KeySpec, ...], int]:
    specs = key_specs(backend, table, features, n_bins=n_bins, edges=edges, sealed=sealed)
    keys = [f"k{i}" for i in range(len(specs))]
    rows = keyed(table, specs)
    sizes = backend.execute(rows.group_by(keys).agg(n=rows.count()))
    sizes = sizes.set_index(keys)["n"] if len(sizes) else pd.Series(dtype=np.int64)
    if not len(sizes):
        return pd.DataFrame({c: pd.Series(dtype=object) for c in [*keys, *columns]}), specs, 0
    per_cell = max(at_least, at_most // len(sizes))
    return _sample(backend, rows, keys, sizes, per_cell, columns=columns), specs, len(sizes)
