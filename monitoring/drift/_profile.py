"""Reference statistics, computed once per reference file and kept on disk."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import pickle
import tempfile
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from monitoring.drift._binning import EdgeIndex, build_edge_index
from monitoring.drift._methods import KINDS

PROFILE_VERSION = "1"
"""Bump when the profile's contents change: cached profiles of another version are rebuilt."""
DEFAULT_BINS = 20
"""Quantile bins of numeric columns for the binned distances and the histograms."""
MAX_FINE_EDGES = 1024
"""Numeric columns with at most this many distinct reference values keep every one as a fine edge
(exact KS); others keep this many quantiles (Wasserstein stays within ~2e-4 of scipy's)."""
QUANTILE_SAMPLE = 25_000
"""Quantile edges of larger references come from every k-th value (about this many): a sort of
100,000 values per column would be a third of a benchmark's time, for edges that need not be exact."""
PREDICTION_COLUMNS = ("prediction", "score")
DEFAULT_CACHE_DIR = Path("var") / "drift-profiles"
_MAX_CACHE_FILES = 64
_MAX_DISCRETE_PREDICTIONS = 20
"""An integer-valued prediction column with at most this many values is a class label (categorical)."""


class DriftWarning(UserWarning):
    """Drift could not be measured for something (an all-missing column, rows without a timestamp)."""


@dataclass(frozen=True)
class ColumnProfile:
    """Reference statistics of one column.

    Attributes
    ----------
    name : str
    kind : {"numeric", "categorical"}
    role : {"feature", "prediction"}
    n_rows, n_missing : int
        Reference rows, and how many of them are missing (NaN, None, ±inf).
    n_distinct : int
        Distinct non-missing values: exact up to :data:`MAX_FINE_EDGES`; above, the count in
        the sample the quantiles come from (a lower bound).
    mean, std, minimum, maximum : float
        Moments (std with ddof=0) and range of the non-missing values; NaN for categorical.
    edges : ndarray
        Numeric: quantile bin edges (of every k-th sorted value when the reference has more
        than 50,000, see :data:`QUANTILE_SAMPLE`), the reference minimum first and the next float above the
        maximum last; bins are ``np.searchsorted(edges, x, side="right")``: 0 below the
        minimum, ``len(edges)`` above the maximum. Empty for categorical columns.
    categories : tuple
        Categorical: the reference categories; code ``i`` is ``categories[i]``, code
        ``len(categories)`` is "unseen". Empty for numeric columns.
    labels : tuple of str
        One label per bin (without "missing"), e.g. ``"< 18"``, ``"[18, 23)"``, ``"> 85"``,
        ``"web"``, ``"(unseen)"``.
    bin_kinds : tuple of str
        Per bin: ``"below"``, ``"bin"``, ``"above"`` (numeric) or ``"category"``, ``"unseen"``.
    counts : ndarray of int64
        Reference count per bin (missing values excluded).
    fine_edges : ndarray
        Numeric: every distinct value when there are at most :data:`MAX_FINE_EDGES` (with the
        gaps between them cut into equal parts, up to about twice that many edges), else half
        as many quantiles plus evenly spaced values where the quantiles are sparser (long
        tails); the coarse edges are among them. Like ``edges``, ``top`` last.
    fine_exact : bool
        Whether every distinct reference value is a fine edge (then KS is exact).
    step_counts : ndarray of int64, shape (2 * len(fine_edges) + 1,)
        Reference counts per position: below the first fine edge, equal to it, between it and
        the next, equal to the next, ... ; the basis of the empirical CDF.
    step_sums : ndarray of float, same shape
        Sums of the reference values per position.
    coarse_starts : ndarray of intp
        First step position of each coarse bin (for ``np.add.reduceat``).
    fine_starts : ndarray of intp
        First step position of each fine bin.
    coarse_index, fine_index : EdgeIndex or None
        Lookup tables that bin values against ``edges`` and ``fine_edges``.
    """

    name: str
    kind: str
    role: str
    n_rows: int
    n_missing: int
    n_distinct: int
    mean: float
    std: float
    minimum: float
    maximum: float
    edges: np.ndarray
    categories: tuple
    labels: tuple[str, ...]
    bin_kinds: tuple[str, ...]
    counts: np.ndarray
    fine_edges: np.ndarray
    fine_exact: bool
    step_counts: np.ndarray
    step_sums: np.ndarray
    coarse_starts: np.ndarray
    fine_starts: np.ndarray
    coarse_index: EdgeIndex | None
    fine_index: EdgeIndex | None

    @property
    def n_values(self) -> int:
        """Non-missing reference values."""
        return self.n_rows - self.n_missing

    @property
    def n_bins(self) -> int:
        """Bins, without "missing"."""
        return len(self.counts)

    @property
    def bin_left(self) -> np.ndarray:
        """Left edge of each bin (−inf for "below"; NaN for categorical columns)."""
        if self.kind != "numeric" or not len(self.edges):
            return np.full(self.n_bins, np.nan)
        return np.concatenate([[-np.inf], self.edges[:-1], [self.maximum]])

    @property
    def bin_right(self) -> np.ndarray:
        """Right edge of each bin (+inf for "above"; the last inner bin ends at the maximum, included)."""
        if self.kind != "numeric" or not len(self.edges):
            return np.full(self.n_bins, np.nan)
        return np.concatenate([[self.minimum], self.edges[1:-1], [self.maximum, np.inf]])


@dataclass(frozen=True)
class ReferenceProfile:
    """Reference statistics of a service's features and prediction columns, built once.

    Attributes
    ----------
    columns : mapping of str to ColumnProfile
        Features in order, then the prediction columns the reference has.
    features : tuple of str
    prediction_columns : tuple of str
        Prediction columns found in the reference (a subset of those asked for).
    n_rows : int
        Reference rows (``auto`` picks p-value tests up to 1,000).
    n_bins : int
        Quantile bins asked for per numeric column.
    source : str
        Where the reference came from (a file path, or ``"DataFrame"``).
    fingerprint : str
        sha256 of the file and the settings when loaded from a file; otherwise of the settings.
    version : str
        :data:`PROFILE_VERSION` when it was built.
    built_at : float
        Unix time it was built (a cached profile keeps its original time).
    warnings : tuple of str
        Problems met while building it (all-missing columns).
    """

    columns: Mapping[str, ColumnProfile]
    features: tuple[str, ...]
    prediction_columns: tuple[str, ...]
    n_rows: int
    n_bins: int
    source: str = "DataFrame"
    fingerprint: str = ""
    version: str = PROFILE_VERSION
    built_at: float = field(default_factory=time.time)
    warnings: tuple[str, ...] = ()

    @property
    def kinds(self) -> dict[str, str]:
        """Kind of every profiled column."""
        return {name: column.kind for name, column in self.columns.items()}


def build_profile(reference: pd.DataFrame, features: Mapping[str, str], *,
                  prediction_columns: Sequence[str] | Mapping[str, str] = PREDICTION_COLUMNS,
                  n_bins: int = DEFAULT_BINS) -> ReferenceProfile:
    """Compute the reference statistics that every drift computation reuses.

    Parameters
    ----------
    reference : DataFrame
        Reference (training) data: every feature of ``features`` as a column.
    features : mapping of str to {"numeric", "categorical"}
        Feature names and kinds, in order.
    prediction_columns : sequence of str or mapping of str to kind, default=("prediction", "score")
        Prediction columns to profile when the reference has them (others are skipped). A
        sequence lets the kind be inferred: integer-valued with at most 20 values, text,
        boolean or categorical → categorical; other numbers → numeric.
    n_bins : int, default=20
        Quantile bins per numeric column (fewer when the column has fewer distinct values),
        plus an open bin below the reference minimum and one above its maximum.

    Returns
    -------
    ReferenceProfile

    Raises
    ------
    ValueError
        Not a DataFrame, no rows, a feature column missing, an unknown kind, text in a numeric
        column, or ``n_bins`` out of range.

    Warns
    -----
    DriftWarning
        For each column with no non-missing value (its drift scores will be NaN).
    """
    if not isinstance(reference, pd.DataFrame):
        raise ValueError(f"reference must be a pandas DataFrame; got {type(reference).__name__}")
    if len(reference) == 0:
        raise ValueError("reference has no rows")
    features = _check_kinds(features, "features")
    if isinstance(n_bins, bool) or not isinstance(n_bins, int | np.integer) or not 2 <= n_bins <= 1000:
        raise ValueError(f"n_bins must be an integer from 2 to 1000; got {n_bins!r}")
    missing = [name for name in features if name not in reference.columns]
    if missing:
        raise ValueError(f"reference lacks feature column(s) {missing}; it has {list(reference.columns)}")
    if isinstance(prediction_columns, Mapping):
        predictions = {name: kind for name, kind in _check_kinds(prediction_columns, "prediction_columns").items()
                       if name in reference.columns and name not in features}
    else:
        if isinstance(prediction_columns, str):
            raise ValueError(f"prediction_columns must be a sequence of names or a mapping; got {prediction_columns!r}")
        predictions = {name: _infer_prediction_kind(reference[name]) for name in prediction_columns
                       if name in reference.columns and name not in features}
    columns: dict[str, ColumnProfile] = {}
    problems: list[str] = []
    for role, kinds in (("feature", features), ("prediction", predictions)):
        for name, kind in kinds.items():
            builder = _numeric_profile if kind == "numeric" else _categorical_profile
            column = builder(name, reference[name], role=role, n_bins=int(n_bins))
            if column.n_values == 0:
                problems.append(f"reference column {name!r} has no values (all {column.n_rows} missing): "
                                "its drift scores will be NaN")
            columns[name] = column
    for message in problems:
        warnings.warn(message, DriftWarning, stacklevel=2)
    settings = {"features": list(features.items()), "predictions": list(predictions.items()), "n_bins": int(n_bins),
                "version": PROFILE_VERSION, "rows": len(reference)}
    return ReferenceProfile(columns=columns, features=tuple(features), prediction_columns=tuple(predictions),
                            n_rows=len(reference), n_bins=int(n_bins),
                            fingerprint=hashlib.sha256(json.dumps(settings).encode()).hexdigest(),
                            warnings=tuple(problems))


def _check_kinds(kinds: Mapping[str, str], parameter: str) -> dict[str, str]:
    if not isinstance(kinds, Mapping):
        raise ValueError(f"{parameter} must be a mapping of column name to kind; got {type(kinds).__name__}")
    bad = {name: kind for name, kind in kinds.items() if kind not in KINDS}
    if bad:
        raise ValueError(f"{parameter}: kinds must be one of {KINDS}; got {bad}")
    return dict(kinds)


def _infer_prediction_kind(values: pd.Series) -> str:
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return "categorical"
    present = values.dropna().to_numpy(dtype=float)
    present = present[np.isfinite(present)]
    if len(present) and np.all(present == np.round(present)) and len(np.unique(present)) <= _MAX_DISCRETE_PREDICTIONS:
        return "categorical"
    return "numeric"


def numeric_values(values: pd.Series, *, column: str, source: str) -> np.ndarray:
    """A column as float64 (NaN for missing), or ValueError naming the column when it holds text."""
    if pd.api.types.is_bool_dtype(values) or (pd.api.types.is_numeric_dtype(values)
                                               and not isinstance(values.dtype, pd.CategoricalDtype)):
        if values.dtype == np.float64:
            return values.to_numpy()
        return values.to_numpy(dtype=float, na_value=np.nan)
    parsed = pd.to_numeric(values, errors="coerce")
    stray = values[parsed.isna() & values.notna()]
    if len(stray):
        examples = ", ".join(repr(v) for v in pd.unique(stray.astype(str))[:3])
        raise ValueError(f"{source} column {column!r} is numeric but holds text: {len(stray)} value(s) such as "
                         f"{examples}")
    return parsed.to_numpy(dtype=float, na_value=np.nan)


def _numeric_profile(name: str, values: pd.Series, *, role: str, n_bins: int) -> ColumnProfile:
    x = numeric_values(values, column=name, source="reference")
    finite = x[np.isfinite(x)]
    n_rows, n_values = len(x), len(finite)
    empty = np.array([], dtype=float)
    if n_values == 0:
        return ColumnProfile(
            name=name, kind="numeric", role=role, n_rows=n_rows, n_missing=n_rows, n_distinct=0, mean=np.nan,
            std=np.nan, minimum=np.nan, maximum=np.nan, edges=empty, categories=(), labels=("(unseen)",),
            bin_kinds=("unseen",), counts=np.array([0], dtype=np.int64), fine_edges=empty, fine_exact=False,
            step_counts=np.array([], dtype=np.int64), step_sums=empty, coarse_starts=np.array([], dtype=np.intp),
            fine_starts=np.array([], dtype=np.intp), coarse_index=None, fine_index=None)
    minimum, maximum = float(finite.min()), float(finite.max())
    top = np.nextafter(maximum, np.inf)
    stride = max(n_values // QUANTILE_SAMPLE, 1)
    ordered = np.sort(finite[::stride]) if stride > 1 else np.sort(finite)
    distinct = _distinct(ordered)
    if stride > 1 and len(distinct) <= MAX_FINE_EDGES:  # few values in the sample: maybe few in all
        distinct = np.sort(pd.unique(finite))
    n_distinct = len(distinct)
    coarse = _quantile_edges(ordered, distinct, n_bins, minimum, top)
    fine_exact = len(distinct) <= MAX_FINE_EDGES
    fine = (np.append(_subdivided(distinct), top) if fine_exact
            else _spread_edges(ordered, distinct, minimum, maximum, top, coarse))
    n_sample = len(ordered)
    core = (float(ordered[int(0.005 * (n_sample - 1))]), float(ordered[int(np.ceil(0.995 * (n_sample - 1)))]))
    fine_index = build_edge_index(fine, core=core)
    # Step positions: 0 below fine[0], 2j - 1 equal to fine[j - 1], 2j between fine[j - 1] and fine[j].
    steps = _step_positions(finite, fine_index)
    n_steps = 2 * len(fine) + 1
    step_counts = np.bincount(steps, minlength=n_steps).astype(np.int64)
    step_sums = np.bincount(steps, weights=finite, minlength=n_steps)
    fine_starts = np.concatenate([[0], 2 * np.arange(1, len(fine) + 1) - 1]).astype(np.intp)
    coarse_positions = np.searchsorted(fine, coarse)  # coarse edges are fine edges
    coarse_starts = np.concatenate([[0], 2 * (coarse_positions + 1) - 1]).astype(np.intp)
    counts = np.add.reduceat(step_counts, coarse_starts)
    labels = ("< " + _number(minimum),
              *(f"[{_number(a)}, {_number(b)})" for a, b in itertools.pairwise(coarse[:-1])),
              f"[{_number(coarse[-2])}, {_number(maximum)}]",
              "> " + _number(maximum))
    bin_kinds = ("below", *("bin",) * (len(coarse) - 1), "above")
    return ColumnProfile(
        name=name, kind="numeric", role=role, n_rows=n_rows, n_missing=n_rows - n_values, n_distinct=n_distinct,
        mean=float(finite.mean()), std=float(finite.std()), minimum=minimum, maximum=maximum, edges=coarse,
        categories=(), labels=labels, bin_kinds=bin_kinds, counts=counts, fine_edges=fine, fine_exact=fine_exact,
        step_counts=step_counts, step_sums=step_sums, coarse_starts=coarse_starts, fine_starts=fine_starts,
        coarse_index=build_edge_index(coarse, core=core), fine_index=fine_index)


def _quantile_edges(ordered: np.ndarray, distinct: np.ndarray, n_bins: int, minimum: float,
                    top: float) -> np.ndarray:
    """Edges at the quantiles k / n_bins of ``ordered`` (actual values, deduplicated), the
    minimum first and ``top`` (just above the maximum) last; every distinct value when there
    are at most ``n_bins``."""
    if len(distinct) <= n_bins:
        inner = distinct
    else:
        n = len(ordered)
        positions = np.ceil(np.arange(1, n_bins) * n / n_bins).astype(np.intp) - 1  # inverted-CDF quantiles
        inner = np.unique(ordered[np.clip(positions, 0, n - 1)])
        inner = np.concatenate([[minimum], inner[inner > minimum]])
    return np.append(inner[inner < top], top)


def _spread_edges(ordered: np.ndarray, distinct: np.ndarray, minimum: float, maximum: float, top: float,
                  coarse: np.ndarray) -> np.ndarray:
    """Fine edges of a column with many distinct values: quantiles (dense where the data is),
    plus evenly spaced values where the quantiles are further apart than the even spacing
    (long tails), about :data:`MAX_FINE_EDGES` in all."""
    half = MAX_FINE_EDGES // 2
    quantiles = np.union1d(_quantile_edges(ordered, distinct, half, minimum, top), coarse)
    step = (maximum - minimum) / half
    even = np.linspace(minimum, maximum, half + 1)[1:-1]
    after = np.searchsorted(quantiles, even)
    nearest = np.minimum(np.abs(even - quantiles[np.maximum(after - 1, 0)]),
                         np.abs(quantiles[np.minimum(after, len(quantiles) - 1)] - even))
    return np.union1d(quantiles, even[nearest >= step / 2])


def _subdivided(distinct: np.ndarray) -> np.ndarray:
    """The distinct reference values with the gaps between them cut into equal parts, about
    :data:`MAX_FINE_EDGES` edges in all. The reference CDF is flat in each gap, so the extra
    edges change no KS statistic; they let Wasserstein follow the current data inside the gaps
    of a small reference (at least two parts per gap)."""
    parts = 2 * MAX_FINE_EDGES // max(len(distinct), 1)
    if parts < 2 or len(distinct) < 2:
        return distinct
    gaps = np.diff(distinct)
    inner = distinct[:-1, None] + gaps[:, None] * (np.arange(parts) / parts)[None, :]
    edges = np.unique(np.append(inner.ravel(), distinct[-1]))
    return edges[np.isfinite(edges)]


def _distinct(ordered: np.ndarray) -> np.ndarray:
    return ordered[np.concatenate([[True], ordered[1:] != ordered[:-1]])] if len(ordered) else ordered


def step_positions(x: np.ndarray, index: EdgeIndex) -> np.ndarray:
    """Position of each finite value among the fine edges: 0 below the first, 2j - 1 at edge j - 1,
    2j strictly between edges j - 1 and j (so ``2 * len(edges)`` above the last)."""
    return _step_positions(x, index)


def _step_positions(x: np.ndarray, index: EdgeIndex) -> np.ndarray:
    bins = index.bin(x)
    at_edge = x == index.padded[bins - 1]  # bins - 1 = -1 reads the NaN padding: never equal
    positions = bins * 2
    positions -= at_edge
    return positions


def _categorical_profile(name: str, values: pd.Series, *, role: str, n_bins: int) -> ColumnProfile:
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes = values.cat.codes.to_numpy()
        uniques = list(values.cat.categories)
    else:
        codes, uniques_index = pd.factorize(values, use_na_sentinel=True)
        uniques = list(uniques_index)
    n_rows = len(values)
    observed = np.bincount(codes[codes >= 0], minlength=len(uniques))
    if isinstance(values.dtype, pd.CategoricalDtype):
        order = [i for i in range(len(uniques)) if observed[i] > 0]  # declared order, observed categories
    else:
        order = sorted((i for i in range(len(uniques)) if observed[i] > 0), key=lambda i: (-observed[i], i))
    categories = tuple(_plain(uniques[i]) for i in order)
    counts = np.append(observed[order], 0).astype(np.int64)  # the last bin: categories unseen in the reference
    n_missing = n_rows - int(observed.sum())
    empty = np.array([], dtype=float)
    return ColumnProfile(
        name=name, kind="categorical", role=role, n_rows=n_rows, n_missing=n_missing, n_distinct=len(categories),
        mean=np.nan, std=np.nan, minimum=np.nan, maximum=np.nan, edges=empty, categories=categories,
        labels=(*(str(c) for c in categories), "(unseen)"), bin_kinds=(*("category",) * len(categories), "unseen"),
        counts=counts, fine_edges=empty, fine_exact=False, step_counts=np.array([], dtype=np.int64), step_sums=empty,
        coarse_starts=np.array([], dtype=np.intp), fine_starts=np.array([], dtype=np.intp), coarse_index=None,
        fine_index=None)


def _plain(value: object) -> object:
    """numpy scalars as Python ones, so that categories pickle, hash and compare simply."""
    return value.item() if isinstance(value, np.generic) else value


def _number(value: float) -> str:
    return f"{value:.4g}" if abs(value) < 1e6 else f"{value:.3e}"


# -- the on-disk cache ---------------------------------------------------------------------------

_DIGESTS: dict[tuple[str, int, int], str] = {}
_MEMORY: OrderedDict[str, ReferenceProfile] = OrderedDict()
_MEMORY_SIZE = 16
_LOCK = threading.Lock()


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, remembered per (path, size, modification time) for this process."""
    file = Path(path).resolve()
    stat = file.stat()
    key = (str(file), stat.st_size, stat.st_mtime_ns)
    digest = _DIGESTS.get(key)
    if digest is None:
        sha = hashlib.sha256()
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                sha.update(block)
        digest = sha.hexdigest()
        _DIGESTS[key] = digest
    return digest


def load_or_build_profile(path: str | Path, features: Mapping[str, str], *,
                          prediction_columns: Sequence[str] | Mapping[str, str] = PREDICTION_COLUMNS,
                          n_bins: int = DEFAULT_BINS,
                          cache_dir: str | Path | None = DEFAULT_CACHE_DIR) -> ReferenceProfile:
    """The profile of a reference file: from the cache when the file has not changed, else built and cached.

    The cache key is the sha256 of the file's bytes, the features and their kinds, the
    prediction columns, ``n_bins`` and :data:`PROFILE_VERSION`; a changed file gets a new
    profile. Profiles are pickled under ``cache_dir`` (written to a temporary file, then
    renamed, so readers never see half a file); the newest 64 are kept. Within one process
    the file's hash and the profile are also remembered, so a rerun costs one ``stat``.

    Parameters
    ----------
    path : str or Path
        Reference file, CSV or Parquet (read by :func:`monitoring.reference.read_reference`).
    features : mapping of str to {"numeric", "categorical"}
    prediction_columns : sequence of str or mapping, default=("prediction", "score")
        As for :func:`build_profile`.
    n_bins : int, default=20
    cache_dir : str or Path or None, default="var/drift-profiles"
        Created when missing. Keep it under the git-ignored ``var/``. None = remembered in
        this process only, never written (a profile lists the values of categorical columns).

    Returns
    -------
    ReferenceProfile
        With ``source`` the file path and ``fingerprint`` the cache key.

    Raises
    ------
    monitoring.reference.ReferenceDataError
        The file is missing, unreadable, empty, lacks feature columns or has text in a numeric
        column; the message names the file and the columns.
    """
    from monitoring.reference import ReferenceDataError, read_reference

    features = _check_kinds(features, "features")
    file = Path(path)
    if not file.exists():
        raise ReferenceDataError(f"reference file {file} does not exist")
    try:
        digest = file_sha256(file)
    except OSError as exc:
        raise ReferenceDataError(f"reference file {file} cannot be read: {exc.strerror or exc}") from None
    predictions = (sorted(prediction_columns.items()) if isinstance(prediction_columns, Mapping)
                   else list(prediction_columns))
    key = hashlib.sha256(json.dumps({"file": digest, "features": list(features.items()), "predictions": predictions,
                                     "n_bins": n_bins, "version": PROFILE_VERSION}).encode()).hexdigest()
    with _LOCK:
        if key in _MEMORY:
            _MEMORY.move_to_end(key)
            return _MEMORY[key]
    cached = Path(cache_dir) / f"profile-{key[:40]}.pkl" if cache_dir is not None else None
    profile = _read_cached(cached, key) if cached is not None else None
    if profile is None:
        frame = read_reference(file, kinds=features)
        absent = [name for name in features if name not in frame.columns]
        if absent:
            raise ReferenceDataError(f"reference file {file} lacks columns {absent}; it has {list(frame.columns)}")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", DriftWarning)
                built = build_profile(frame, features, prediction_columns=prediction_columns, n_bins=n_bins)
        except ValueError as exc:
            raise ReferenceDataError(f"reference file {file}: {exc}") from None
        for warning in caught:
            warnings.warn(f"reference file {file}: {warning.message}", DriftWarning, stacklevel=2)
        profile = ReferenceProfile(
            columns=built.columns, features=built.features, prediction_columns=built.prediction_columns,
            n_rows=built.n_rows, n_bins=built.n_bins, source=str(file), fingerprint=key, built_at=built.built_at,
            warnings=tuple(f"reference file {file}: {message}" for message in built.warnings))
        if cached is not None:
            _write_cached(cached, profile)
    with _LOCK:
        _MEMORY[key] = profile
        while len(_MEMORY) > _MEMORY_SIZE:
            _MEMORY.popitem(last=False)
    return profile


def _read_cached(cached: Path, key: str) -> ReferenceProfile | None:
    try:
        with open(cached, "rb") as handle:
            profile = pickle.load(handle)  # our own cache under var/, written by _write_cached
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError, TypeError, ValueError):
        return None
    if not isinstance(profile, ReferenceProfile) or profile.version != PROFILE_VERSION or profile.fingerprint != key:
        return None
    return profile


def _write_cached(cached: Path, profile: ReferenceProfile) -> None:
    """Write atomically; a cache that cannot be written only costs a rebuild next time."""
    temporary = None
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=cached.parent, prefix=f".{cached.name}.", delete=False) as handle:
            temporary = Path(handle.name)
            pickle.dump(profile, handle, protocol=pickle.HIGHEST_PROTOCOL)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, cached)
    except OSError as exc:
        if temporary is not None:
            temporary.unlink(missing_ok=True)
        warnings.warn(f"drift profile cache {cached} could not be written: {exc}", DriftWarning, stacklevel=3)
        return
    _prune(cached.parent)


def _prune(cache: Path) -> None:
    """Keep the newest cached profiles only."""
    stamped = []
    for path in cache.glob("profile-*.pkl"):
        with contextlib.suppress(OSError):  # removed meanwhile by another process
            stamped.append((path.stat().st_mtime, path))
    for _, old in sorted(stamped, reverse=True)[_MAX_CACHE_FILES:]:
        old.unlink(missing_ok=True)
