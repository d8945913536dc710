"""Drift of every column in every window, in one vectorised pass per column."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from monitoring.drift._binning import Workspace
from monitoring.drift._methods import (
    AUTO,
    METHODS,
    ColumnCounts,
    DriftMethod,
    check_method_for_column,
    check_threshold,
    choose_method,
    get_method,
    method_names,
)
from monitoring.drift._noise import NOISE_QUANTILE, noise_levels
from monitoring.drift._profile import ColumnProfile, DriftWarning, ReferenceProfile, numeric_values, step_positions
from monitoring.drift._tallies import WindowTallies, counts_from_tally
from monitoring.validation import InstanceOf, Interval, Nullable, validate_params
from monitoring.windows import Windows, assign_windows, parse_window, timestamps_as_seconds

SEVERITIES = ("green", "amber", "red", "grey")
"""red: drifted; amber: within the margin of the threshold (p-value < 2 × threshold, distance ≥ ½ × threshold
and above the noise level); green: neither; grey: not judged (no score, too few rows, or a window too small
to tell a drift of the threshold's size from noise)."""
STATUSES = ("drifted", "close", "stable", "too small", "cannot judge")
"""Plain words for a feature-window: red, amber and green are drifted, close and stable; grey is one of the
last two, with the reason in the ``reason`` column."""
JUDGED_STATUSES = ("drifted", "close", "stable")
MIN_WINDOW_ROWS = 30
"""Windows with fewer non-missing values of a column are not judged for it ("cannot judge")."""
SEVERITY_COLORS = {"green": "#16a34a", "amber": "#d97706", "red": "#dc2626", "grey": "#9ca3af"}
"""Severity → colour (hex), the palette of the health page's states."""

RESULT_COLUMNS = ("window", "window_start", "window_end", "partial", "service", "feature", "kind", "method",
                  "score", "threshold", "noise", "drifted", "severity", "status", "reason", "n", "n_missing",
                  "n_unseen")
DATASET_COLUMNS = ("window", "window_start", "window_end", "partial", "service", "n", "n_features", "n_drifted",
                   "share", "drifted", "drifted_features")
DISTRIBUTION_COLUMNS = ("bin", "bin_kind", "left", "right", "reference_count", "reference_share", "current_count",
                        "current_share")


@dataclass(frozen=True)
class WindowedCounts:
    """One column's binned counts in every window, kept in the report for the distribution charts.

    Attributes
    ----------
    name, kind, role : str
    labels, bin_kinds : tuple of str
        As in :class:`ColumnProfile` (bins without "missing").
    left, right : ndarray of shape (n_bins,)
        Bin edges (numeric), NaN for categories.
    reference : ndarray of shape (n_bins,)
    reference_missing : int
    current : ndarray of shape (n_windows, n_bins)
    current_missing : ndarray of shape (n_windows,)
    """

    name: str
    kind: str
    role: str
    labels: tuple[str, ...]
    bin_kinds: tuple[str, ...]
    left: np.ndarray
    right: np.ndarray
    reference: np.ndarray
    reference_missing: int
    current: np.ndarray
    current_missing: np.ndarray


@dataclass(frozen=True)
class DriftReport:
    """Drift of a service's features and predictions per window.

    Attributes
    ----------
    features : DataFrame
        One row per feature and window, ordered by window then feature, with columns
        (:data:`RESULT_COLUMNS`):

        ============  ====================================================================
        window        window number, 0 .. n_windows - 1, in time order
        window_start  tz-aware UTC datetime: the window's start (time windows) or its first
                      timestamp (row windows; NaT without timestamps)
        window_end    the window's end, excluded (time windows) or its last timestamp
        partial       bool: the window is still open — a time window whose end is after
                      ``now``, or the last, short block of a row window; it is shown "so
                      far" and never decides a headline on its own
        service       the ``service`` given to :func:`compute_drift`
        feature       column name
        kind          ``numeric`` or ``categorical``
        method        registry name of the method used (``auto`` resolved)
        score         p-value or distance; NaN when the window (or the reference) has no
                      non-missing value
        threshold     the method's threshold
        noise         distances: the score a window of this size reaches from sampling
                      noise alone (the ``noise_quantile`` of no-change windows drawn from
                      the reference, :func:`monitoring.drift.noise_level`); NaN for
                      p-values, which account for the window's size themselves
        drifted       bool: p-value < threshold, or distance >= threshold and > noise; never
                      for a window that is not judged
        severity      ``red`` (drifted), ``amber`` (p-value < 2 × threshold, or distance >=
                      ½ × threshold and > noise), ``green``, or ``grey`` (not judged)
        status        ``drifted``, ``close``, ``stable``, ``too small`` (a distance within
                      the noise of a window whose noise exceeds the threshold: only drifts
                      larger than the noise can be told) or ``cannot judge``
        reason        why a window is ``too small`` or ``cannot judge``; "" otherwise
        n             rows in the window
        n_missing     of them missing (NaN, None, ±inf): left out of the score
        n_unseen      of them outside the reference: categories it never had, numbers
                      below its minimum or above its maximum (they take part in the score)
        ============  ====================================================================

    prediction : DataFrame
        The same for the prediction columns (``prediction``, ``score``) found in both the
        reference and the current data; empty when there are none.
    dataset : DataFrame
        One row per window (:data:`DATASET_COLUMNS`): ``window``, ``window_start``,
        ``window_end``, ``partial``, ``service``, ``n`` (rows), ``n_features`` (features judged),
        ``n_drifted``, ``share`` (n_drifted / n_features), ``drifted`` (share >=
        ``drift_share``), ``drifted_features`` (list of names).
    counts : mapping of str to WindowedCounts
        Binned counts per column, for :func:`feature_distribution`.
    window : str or int
        The window asked for.
    drift_share : float
    service : str
    noise_quantile : float
        Quantile of the no-change scores a distance must exceed (NaN when noise was not used).
    now : float or None
        The time windows were judged at (windows ending after it are partial).
    warnings : tuple of str
        What could not be measured (all-missing columns, rows without timestamps); each is
        also issued as a :class:`DriftWarning` through the ``warnings`` module.
    """

    features: pd.DataFrame
    prediction: pd.DataFrame
    dataset: pd.DataFrame
    counts: Mapping[str, WindowedCounts]
    window: str | int
    drift_share: float
    service: str = ""
    noise_quantile: float = NOISE_QUANTILE
    now: float | None = None
    warnings: tuple[str, ...] = field(default=())

    @property
    def n_windows(self) -> int:
        """Number of windows."""
        return len(self.dataset)

    @property
    def closed(self) -> pd.DataFrame:
        """The feature rows of windows that are not partial: what headlines are made of."""
        return self.features[~self.features["partial"].to_numpy(dtype=bool)]

    def false_alarm_bound(self) -> tuple[float, int]:
        """How many feature-windows of this report could be flagged by chance if nothing had changed.

        Returns
        -------
        expected : float
            At most this many false alarms are expected: each judged p-value row contributes
            its threshold (the chance a p-value falls below it with nothing changed), each
            judged distance row at most ``1 - noise_quantile`` (NaN when noise was not used:
            then a distance's false-alarm rate depends on the window's size and is unknown).
        n_judged : int
            Feature-windows that were judged.
        """
        rows = self.features[self.features["status"].isin(JUDGED_STATUSES)]
        if rows.empty:
            return 0.0, 0
        p_value = np.array([get_method(m).score_kind == "p_value" for m in rows["method"]], dtype=bool)
        per_distance = 1.0 - self.noise_quantile if math.isfinite(self.noise_quantile) else math.nan
        expected = float(rows.loc[p_value, "threshold"].sum()) + per_distance * int((~p_value).sum())
        return expected, len(rows)

    def to_csv(self, path_or_buffer=None, *, table: str = "features") -> str | None:
        """Export one table as CSV.

        Parameters
        ----------
        path_or_buffer : str, Path, file-like or None, default=None
            Where to write; None returns the text.
        table : {"features", "prediction", "dataset", "all"}, default="features"
            ``all`` is the feature rows followed by the prediction rows. In ``dataset`` the
            drifted features are joined with ", ".

        Returns
        -------
        str or None
        """
        tables = {"features": self.features, "prediction": self.prediction, "dataset": self.dataset}
        if table == "all":
            frame = pd.concat([self.features, self.prediction], ignore_index=True)
        elif table in tables:
            frame = tables[table]
        else:
            raise ValueError(f"table must be one of {[*tables, 'all']}; got {table!r}")
        if table == "dataset":
            frame = frame.assign(drifted_features=[", ".join(names) for names in frame["drifted_features"]])
        return frame.to_csv(path_or_buffer, index=False)


@validate_params(profile=InstanceOf(ReferenceProfile), current=InstanceOf(pd.DataFrame),
                 drift_share=Interval(float, 0, 1, "right"), noise_quantile=Interval(float, 0.5, 1, "neither"),
                 min_rows=Interval(int, 1), now=Nullable(Interval(float)))
def compute_drift(profile: ReferenceProfile, current: pd.DataFrame, *, window: str | int = "day",
                  methods: Mapping[str, str] | None = None, thresholds: Mapping[str, float] | None = None,
                  drift_share: float = 0.5, timestamp_column: str = "ts", service: str = "",
                  now: float | None = None, noise: bool = True, noise_quantile: float = NOISE_QUANTILE,
                  min_rows: int = MIN_WINDOW_ROWS) -> DriftReport:
    """Drift of every feature and prediction column in every window, against the reference profile.

    Each numeric column is binned once against the reference's edges (a lookup table
    equivalent to ``np.searchsorted``) and every window is counted with one ``np.bincount``
    over ``window * n_bins + bin``; categorical columns become integer codes against the
    reference categories. The methods then score all windows of a column at once.

    Parameters
    ----------
    profile : ReferenceProfile
        From :func:`build_profile` or :func:`load_or_build_profile`.
    current : DataFrame
        Production rows: every feature of the profile, ``timestamp_column`` for time
        windows, and optionally the prediction columns. Categorical columns are fastest as
        pandas categoricals.
    window : {"hour", "day", "week"} or int, default="day"
        Time windows aligned on UTC (weeks start on Monday), or blocks of this many rows in
        the order of ``current`` (the last one may be shorter). Digit strings such as
        ``"10000"`` count as rows.
    methods : mapping of str to str, optional
        Method per column name, overriding ``auto`` (see :func:`choose_method`).
    thresholds : mapping of str to float, optional
        Threshold per method name, overriding the method's default.
    drift_share : float, default=0.5
        A window's data set drifts when at least this share of its features drift; in (0, 1].
    timestamp_column : str, default="ts"
        Unix seconds (float) or datetimes.
    service : str, default=""
        Copied into every row.
    now : float, optional
        Unix seconds: time windows ending after it are marked partial. None marks none
        (the last short block of row windows is partial either way).
    noise : bool, default=True
        Whether a distance must also exceed the noise level of its window's size
        (:func:`monitoring.drift.noise_level`) to count as drifted.
    noise_quantile : float, default=0.999
        Quantile of the no-change scores that is the noise level; in (0.5, 1).
    min_rows : int, default=30
        Windows with fewer non-missing values of a column are not judged for it.

    Returns
    -------
    DriftReport

    Raises
    ------
    ValueError
        Bad window, unknown method or column names, a method that does not accept the
        column's kind, a bad threshold or drift_share, missing feature columns, text in a
        numeric column.

    Warns
    -----
    DriftWarning
        For columns with no value in some windows (NaN scores), and for rows without a
        timestamp (left out). The same messages are in ``DriftReport.warnings``.
    """
    spec = parse_window(window)
    threshold_of = _thresholds(thresholds)
    names, method_of = _columns(profile, list(current.columns), methods, source="current data")

    ts = timestamps_as_seconds(current[timestamp_column]) if timestamp_column in current.columns else None
    windows = assign_windows(len(current), spec, ts=ts)
    messages: list[str] = []
    if windows.n_unassigned:
        messages.append(f"{windows.n_unassigned} row(s) have no {timestamp_column!r} timestamp and are in no window")
    if len(current) == 0:
        messages.append("current data has no rows: nothing to compare")

    workspace = Workspace(len(current))

    def count(name: str, column: ColumnProfile, method: DriftMethod) -> tuple[ColumnCounts, np.ndarray]:
        return _count(column, current[name], windows, method.needs, workspace)

    return _report(profile, names, method_of, threshold_of, windows, count, messages, window=spec,
                   drift_share=drift_share, service=service, now=now, noise=noise, noise_quantile=noise_quantile,
                   min_rows=min_rows)


def _report(profile: ReferenceProfile, names: list[str], method_of: Mapping[str, DriftMethod],
            threshold_of: Mapping[str, float], windows: Windows,
            count: Callable[[str, ColumnProfile, DriftMethod], tuple[ColumnCounts, np.ndarray]], messages: list[str],
            *, window: str | int, drift_share: float, service: str, now: float | None, noise: bool,
            noise_quantile: float, min_rows: int) -> DriftReport:
    """Score and judge every column from its counts; shared by row data and counts pushed down to an engine."""
    results: dict[str, dict[str, np.ndarray]] = {}
    counts: dict[str, WindowedCounts] = {}
    for name in names:
        column = profile.columns[name]
        method = method_of[name]
        column_counts, missing = count(name, column, method)
        threshold = threshold_of.get(method.name, method.default_threshold)
        if column.n_values == 0 or windows.n_windows == 0:
            scores = np.full(windows.n_windows, np.nan)
        else:
            with np.errstate(all="ignore"):
                scores = np.asarray(method.compute(column_counts), dtype=float)
        empty = int(np.sum(np.isnan(scores)))
        if empty and column.n_values > 0:
            messages.append(f"{column.role} {name!r} has no values in {empty} of {windows.n_windows} window(s): "
                            "its score is NaN there")
        elif column.n_values == 0 and windows.n_windows:
            messages.append(f"{column.role} {name!r} has no values in the reference: its scores are NaN")
        n_values = column_counts.current.sum(axis=1)
        levels = (noise_levels(column, method, n_values, quantile=noise_quantile) if noise
                  else np.full(windows.n_windows, np.nan))
        judged = judge(scores, threshold=threshold, noise=levels, n_values=n_values, method=method, column=column,
                       min_rows=int(min_rows))
        unseen_bins = [i for i, kind in enumerate(column.bin_kinds) if kind in ("below", "above", "unseen")]
        results[name] = {
            "method": method.name, "threshold": threshold, "score": scores, "noise": levels, **judged,
            "n_missing": missing, "n_unseen": column_counts.current[:, unseen_bins].sum(axis=1),
        }
        counts[name] = WindowedCounts(
            name=name, kind=column.kind, role=column.role, labels=column.labels, bin_kinds=column.bin_kinds,
            left=column.bin_left, right=column.bin_right, reference=column.counts, reference_missing=column.n_missing,
            current=column_counts.current, current_missing=missing)

    for message in messages:
        warnings.warn(message, DriftWarning, stacklevel=3)
    starts = pd.to_datetime(windows.start, unit="s", utc=True)
    ends = pd.to_datetime(windows.end, unit="s", utc=True)
    partial = partial_windows(windows, now=now)
    feature_table = _table(profile.features, results, profile, windows, starts, ends, partial, service)
    prediction_table = _table([n for n in names if n not in profile.features], results, profile, windows, starts,
                              ends, partial, service)
    dataset = _dataset(feature_table, windows, starts, ends, partial, service, drift_share)
    return DriftReport(features=feature_table, prediction=prediction_table, dataset=dataset, counts=counts,
                       window=window, drift_share=float(drift_share), service=service,
                       noise_quantile=float(noise_quantile) if noise else math.nan, now=now,
                       warnings=tuple(messages))


@validate_params(profile=InstanceOf(ReferenceProfile), drift_share=Interval(float, 0, 1, "right"),
                 noise_quantile=Interval(float, 0.5, 1, "neither"), min_rows=Interval(int, 1),
                 now=Nullable(Interval(float)))
def compute_drift_from_counts(profile: ReferenceProfile, tallies: WindowTallies, *,
                              methods: Mapping[str, str] | None = None, thresholds: Mapping[str, float] | None = None,
                              drift_share: float = 0.5, service: str = "", now: float | None = None,
                              noise: bool = True, noise_quantile: float = NOISE_QUANTILE,
                              min_rows: int = MIN_WINDOW_ROWS) -> DriftReport:
    """Drift from counts an engine computed where the rows live (see :mod:`monitoring.logdata`).

    The same report as :func:`compute_drift` on the rows those counts came from: every
    method reads the same :class:`ColumnCounts`, derived here from step counts (numeric
    columns) and category counts instead of from the rows.

    Parameters
    ----------
    profile : ReferenceProfile
    tallies : WindowTallies
        Per window: rows, and per column the counts against ``profile``'s fine edges or the
        category counts. Must hold every feature of the profile; prediction columns are used
        when present.
    methods, thresholds, drift_share, service, now, noise, noise_quantile, min_rows
        As in :func:`compute_drift`.

    Returns
    -------
    DriftReport

    Raises
    ------
    ValueError
        Tallies lacking a feature, step counts of the wrong shape, or bad settings.
    """
    threshold_of = _thresholds(thresholds)
    names, method_of = _columns(profile, sorted(tallies.columns), methods, source="the counts")
    windows = tallies.windows
    messages: list[str] = []
    if windows.n_unassigned:
        messages.append(f"{windows.n_unassigned} row(s) have no 'ts' timestamp and are in no window")
    if windows.n_windows == 0:
        messages.append("current data has no rows: nothing to compare")

    def count(name: str, column: ColumnProfile, method: DriftMethod) -> tuple[ColumnCounts, np.ndarray]:
        return counts_from_tally(column, tallies.columns[name], method.needs)

    return _report(profile, names, method_of, threshold_of, windows, count, messages, window=windows.spec,
                   drift_share=drift_share, service=service, now=now, noise=noise, noise_quantile=noise_quantile,
                   min_rows=min_rows)


def partial_windows(windows: Windows, *, now: float | None) -> np.ndarray:
    """Which windows are still open: time windows ending after ``now``; the last, short block of row windows."""
    if isinstance(windows.spec, int):
        partial = np.zeros(windows.n_windows, dtype=bool)
        if windows.n_windows and windows.n_rows[-1] < windows.spec:
            partial[-1] = True
        return partial
    if now is None:
        return np.zeros(windows.n_windows, dtype=bool)
    return np.asarray(windows.end, dtype=float) > now


def judge(scores: np.ndarray, *, threshold: float, noise: np.ndarray, n_values: np.ndarray, method: DriftMethod,
          column: ColumnProfile, min_rows: int = MIN_WINDOW_ROWS) -> dict[str, np.ndarray]:
    """The decision for every window of one column: drifted, severity, status and the reason.

    Parameters
    ----------
    scores : ndarray of shape (n_windows,)
    threshold : float
    noise : ndarray of shape (n_windows,)
        Noise level per window (NaN for p-values, or when noise is not used).
    n_values : ndarray of shape (n_windows,)
        Non-missing values per window.
    method : DriftMethod
    column : ColumnProfile
    min_rows : int, default=30

    Returns
    -------
    dict
        ``drifted`` (bool), ``severity`` (:data:`SEVERITIES`), ``status`` (:data:`STATUSES`)
        and ``reason`` (str) arrays of shape (n_windows,).
    """
    scores = np.asarray(scores, dtype=float)
    n_values = np.asarray(n_values, dtype=np.int64)
    size = len(scores)
    reason = np.full(size, "", dtype=object)
    unjudged = np.zeros(size, dtype=bool)

    def cannot(mask: np.ndarray, text) -> None:
        fresh = mask & ~unjudged
        for i in np.flatnonzero(fresh):
            reason[i] = text(i) if callable(text) else text
        unjudged[fresh] = True

    if column.n_values == 0:
        cannot(np.ones(size, dtype=bool), "the reference has no values in this column")
    elif column.n_distinct < 2:
        cannot(np.ones(size, dtype=bool), "the column has one value in the reference: there is no distribution "
                                          "to compare with (other values are counted as unseen)")
    cannot(n_values == 0, "no values in this window")
    cannot(n_values < min_rows, lambda i: f"only {n_values[i]:,} value{'s' if n_values[i] != 1 else ''} in this "
                                          f"window; at least {min_rows} are needed")
    cannot(np.isnan(scores), "the score is undefined for this window")
    with np.errstate(invalid="ignore"):
        over = method.is_drifted(scores, threshold)
        near = method.is_near(scores, threshold)
        beyond_noise = ~(scores <= noise)  # True where noise is NaN (p-values, or noise not used)
    noisy = ~np.isnan(noise) & (noise >= threshold) & ~beyond_noise & ~unjudged
    for i in np.flatnonzero(noisy):
        reason[i] = (f"a window of {n_values[i]:,} values reaches {noise[i]:.3g} from noise alone, above the "
                     f"threshold {threshold:g}: only a larger drift can be told")
    drifted = over & beyond_noise & ~unjudged
    close = near & beyond_noise & ~drifted & ~unjudged & ~noisy
    status = np.select([unjudged, drifted, noisy, close], ["cannot judge", "drifted", "too small", "close"],
                       default="stable").astype(object)
    severity = np.select([unjudged | noisy, drifted, close], ["grey", "red", "amber"], default="green").astype(object)
    return {"drifted": drifted, "severity": severity, "status": status, "reason": reason}


def check_drift_settings(*, methods: Mapping[str, str] | None = None, thresholds: Mapping[str, float] | None = None,
                         kinds: Mapping[str, str] | None = None, window: str | int | None = None,
                         drift_share: float | None = None) -> None:
    """Validate drift settings from a configuration, before any data is read.

    Parameters
    ----------
    methods : mapping of column name to method name, optional
        Each name must be ``auto`` or registered; with ``kinds``, each column must be known
        and the method must accept its kind.
    thresholds : mapping of method name to float, optional
        Each key a registered method; p-values in (0, 1), distances > 0.
    kinds : mapping of column name to {"numeric", "categorical"}, optional
        The service's features (and prediction columns) with their kinds.
    window : str or int, optional
    drift_share : float, optional

    Raises
    ------
    ValueError
        The first problem found, naming the key, what is accepted and what was received.
    """
    for column, name in (methods or {}).items():
        if name == AUTO:
            continue
        method = get_method(name)
        if kinds is not None:
            if column not in kinds:
                raise ValueError(f"drift methods: column {column!r} is not a feature of the service; "
                                 f"features: {', '.join(kinds)}")
            if kinds[column] not in method.kinds:
                raise ValueError(f"drift methods: {name!r} accepts {' and '.join(method.kinds)} columns; "
                                 f"column {column!r} is {kinds[column]}")
    _thresholds(thresholds)
    if window is not None:
        parse_window(window)
    if drift_share is not None and (isinstance(drift_share, bool) or not isinstance(drift_share, int | float)
                                    or not 0 < drift_share <= 1):
        raise ValueError(f"drift_share must be a number in (0, 1]; got {drift_share!r}")


def _columns(profile: ReferenceProfile, available: list[str], methods: Mapping[str, str] | None, *,
             source: str) -> tuple[list[str], dict[str, DriftMethod]]:
    """The columns to judge (every feature, then the prediction columns ``available`` has) and their methods."""
    absent = [name for name in profile.features if name not in available]
    if absent:
        raise ValueError(f"{source} lacks feature column(s) {absent}; it has {available}")
    names = [*profile.features, *(c for c in profile.prediction_columns if c in available)]
    return names, _methods(profile, names, methods)


def _thresholds(thresholds: Mapping[str, float] | None) -> dict[str, float]:
    if thresholds is None:
        return {}
    if not isinstance(thresholds, Mapping):
        raise ValueError(f"thresholds must map method names to numbers; got {type(thresholds).__name__}")
    return {name: check_threshold(get_method(name), value) for name, value in thresholds.items()}


def _methods(profile: ReferenceProfile, names: list[str], methods: Mapping[str, str] | None) -> dict[str, DriftMethod]:
    methods = dict(methods or {})
    unknown = [column for column in methods if column not in profile.columns]
    if unknown:
        raise ValueError(f"methods name column(s) {unknown} that the reference profile does not have; "
                         f"columns: {', '.join(profile.columns)}")
    chosen = {}
    for name in names:
        column = profile.columns[name]
        wanted = methods.get(name, AUTO)
        if wanted == AUTO:
            wanted = choose_method(column.kind, n_reference_rows=profile.n_rows, n_categories=column.n_distinct)
        elif wanted not in METHODS:
            raise ValueError(f"method for column {name!r}: unknown drift method {wanted!r}; valid methods: "
                             f"{', '.join(method_names())}")
        method = get_method(wanted)
        check_method_for_column(method, column=name, kind=column.kind, n_distinct=column.n_distinct)
        chosen[name] = method
    return chosen


def _count(column: ColumnProfile, values: pd.Series, windows: Windows, needs: str,
           workspace: Workspace) -> tuple[ColumnCounts, np.ndarray]:
    """Bin one column and count every window with one bincount; returns the counts and missing per window."""
    n_windows, n_slots = windows.n_windows, windows.n_slots
    if column.kind == "categorical":
        flat, n_raw, lookup = _category_window_codes(column, values, windows.index, workspace)
        by_raw = np.bincount(flat, minlength=n_slots * n_raw).reshape(n_slots, n_raw)[:n_windows]
        n_codes = len(column.counts) + 1
        table = np.zeros((n_windows, n_codes), dtype=np.int64)
        np.add.at(table, (slice(None), lookup), by_raw)  # several raw codes may share a reference code
        return ColumnCounts(name=column.name, kind=column.kind, reference=column.counts, current=table[:, :-1],
                            reference_std=column.std), table[:, -1].copy()
    x = numeric_values(values, column=column.name, source="current")
    if column.n_values == 0:  # no reference values: one bin for any value, then missing
        n_codes = 2
        flat = windows.index * n_codes + (~np.isfinite(x))
    elif needs == "bins":
        n_codes = len(column.counts) + 1
        flat = column.coarse_index.window_codes(x, windows.index, n_codes, workspace=workspace)
    elif needs == "fine":
        n_codes = len(column.fine_edges) + 2
        flat = column.fine_index.window_codes(x, windows.index, n_codes, workspace=workspace)
    else:
        n_codes = len(column.step_counts) + 1
        codes = step_positions(x, column.fine_index)
        codes[~np.isfinite(x)] = n_codes - 1
        flat = windows.index * n_codes + codes
    table = np.bincount(flat, minlength=n_slots * n_codes).reshape(n_slots, n_codes)[:n_windows]
    missing = table[:, -1].copy()
    present = table[:, :-1]
    if column.n_values == 0:
        return ColumnCounts(name=column.name, kind=column.kind, reference=column.counts, current=present,
                            reference_std=column.std), missing
    if needs == "bins":
        return ColumnCounts(name=column.name, kind="numeric", reference=column.counts, current=present,
                            reference_std=column.std), missing
    if needs == "fine":
        sums = np.bincount(flat, weights=x, minlength=n_slots * n_codes).reshape(n_slots, n_codes)[:n_windows, :-1]
        steps_of_fine = column.fine_starts  # coarse bins from fine bins: fine bin j starts at step 2j - 1
        coarse = np.add.reduceat(present, _fine_bins_of(column.coarse_starts, steps_of_fine), axis=1)
        return ColumnCounts(
            name=column.name, kind="numeric", reference=column.counts, current=coarse, fine_edges=column.fine_edges,
            reference_fine=np.add.reduceat(column.step_counts, steps_of_fine),
            current_fine=present, reference_fine_sums=np.add.reduceat(column.step_sums, steps_of_fine),
            current_fine_sums=sums, fine_exact=column.fine_exact, reference_std=column.std), missing
    coarse = np.add.reduceat(present, column.coarse_starts, axis=1)
    return ColumnCounts(
        name=column.name, kind="numeric", reference=column.counts, current=coarse, fine_edges=column.fine_edges,
        reference_steps=column.step_counts, current_steps=present, fine_exact=column.fine_exact,
        reference_std=column.std), missing


def _fine_bins_of(coarse_starts: np.ndarray, fine_starts: np.ndarray) -> np.ndarray:
    """Coarse bin starts as fine-bin indices (both given as step positions)."""
    return np.searchsorted(fine_starts, coarse_starts)


def _category_window_codes(column: ColumnProfile, values: pd.Series, window: np.ndarray,
                           workspace: Workspace) -> tuple[np.ndarray, int, np.ndarray]:
    """Window codes of a categorical column, in the column's own codes (no pass to translate them).

    Returns ``(flat, n_raw, lookup)``: ``flat = window * n_raw + raw + 1`` with ``raw`` the
    column's code (-1 missing), and ``lookup`` mapping each of the ``n_raw`` raw codes to the
    reference's codes: 0 .. C-1, C for unseen, C + 1 for missing.
    """
    n_categories = len(column.categories)
    code_of = {category: code for code, category in enumerate(column.categories)}
    if isinstance(values.dtype, pd.CategoricalDtype):
        raw, uniques = values.cat.codes.to_numpy(), values.cat.categories
    else:
        raw, uniques = pd.factorize(values, use_na_sentinel=True)
    lookup = np.array([n_categories + 1] + [code_of.get(_plain(u), n_categories) for u in uniques], dtype=np.intp)
    n_raw = len(lookup)
    flat = workspace.flat[:len(raw)]
    np.multiply(window, n_raw, out=flat)
    flat += 1
    np.add(flat, raw, out=flat)
    return flat, n_raw, lookup


def _plain(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value


def _table(names: list[str], results: Mapping[str, Mapping], profile: ReferenceProfile, windows: Windows,
           starts: pd.DatetimeIndex, ends: pd.DatetimeIndex, partial: np.ndarray, service: str) -> pd.DataFrame:
    n_windows = windows.n_windows
    if not names or n_windows == 0:
        return _empty_results()
    window = np.tile(np.arange(n_windows), len(names))
    frame = pd.DataFrame({
        "window": window,
        "window_start": starts[window],
        "window_end": ends[window],
        "partial": partial[window],
        "service": service,
        "feature": np.repeat(names, n_windows),
        "kind": np.repeat([profile.columns[n].kind for n in names], n_windows),
        "method": np.repeat([results[n]["method"] for n in names], n_windows),
        "score": np.concatenate([results[n]["score"] for n in names]),
        "threshold": np.repeat([results[n]["threshold"] for n in names], n_windows).astype(float),
        "noise": np.concatenate([results[n]["noise"] for n in names]).astype(float),
        "drifted": np.concatenate([results[n]["drifted"] for n in names]).astype(bool),
        "severity": np.concatenate([results[n]["severity"] for n in names]),
        "status": np.concatenate([results[n]["status"] for n in names]),
        "reason": np.concatenate([results[n]["reason"] for n in names]),
        "n": np.tile(windows.n_rows, len(names)),
        "n_missing": np.concatenate([results[n]["n_missing"] for n in names]).astype(np.int64),
        "n_unseen": np.concatenate([results[n]["n_unseen"] for n in names]).astype(np.int64),
    })
    order = np.lexsort((np.repeat(np.arange(len(names)), n_windows), window))
    return frame.iloc[order].reset_index(drop=True)


def _empty_results() -> pd.DataFrame:
    return pd.DataFrame({
        "window": pd.Series(dtype=np.int64), "window_start": pd.Series(dtype="datetime64[ns, UTC]"),
        "window_end": pd.Series(dtype="datetime64[ns, UTC]"), "partial": pd.Series(dtype=bool),
        "service": pd.Series(dtype=object), "feature": pd.Series(dtype=object), "kind": pd.Series(dtype=object),
        "method": pd.Series(dtype=object), "score": pd.Series(dtype=float), "threshold": pd.Series(dtype=float),
        "noise": pd.Series(dtype=float), "drifted": pd.Series(dtype=bool), "severity": pd.Series(dtype=object),
        "status": pd.Series(dtype=object), "reason": pd.Series(dtype=object), "n": pd.Series(dtype=np.int64),
        "n_missing": pd.Series(dtype=np.int64), "n_unseen": pd.Series(dtype=np.int64)})


def _dataset(features: pd.DataFrame, windows: Windows, starts, ends, partial: np.ndarray, service: str,
             drift_share: float) -> pd.DataFrame:
    n_windows = windows.n_windows
    scored = np.zeros(n_windows, dtype=np.int64)
    drifted = np.zeros(n_windows, dtype=np.int64)
    names: list[list[str]] = [[] for _ in range(n_windows)]
    if len(features):
        window = features["window"].to_numpy()
        has_score = features["status"].isin(JUDGED_STATUSES).to_numpy()
        is_drifted = features["drifted"].to_numpy(dtype=bool)
        scored = np.bincount(window[has_score], minlength=n_windows)
        drifted = np.bincount(window[is_drifted], minlength=n_windows)
        for w, feature in zip(window[is_drifted], features["feature"].to_numpy()[is_drifted], strict=True):
            names[w].append(feature)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(scored > 0, drifted / np.maximum(scored, 1), np.nan)
    return pd.DataFrame({
        "window": np.arange(n_windows), "window_start": starts, "window_end": ends, "partial": partial,
        "service": service,
        "n": windows.n_rows, "n_features": scored, "n_drifted": drifted, "share": share,
        "drifted": np.nan_to_num(share, nan=0.0) >= drift_share, "drifted_features": names,
    })


# -- reading a report ------------------------------------------------------------------------------


def feature_distribution(report: DriftReport, feature: str, *,
                         windows: slice | Iterable[int] | None = None) -> pd.DataFrame:
    """Reference and current distribution of one column over some windows, tidy for plotting.

    Parameters
    ----------
    report : DriftReport
    feature : str
        A feature or prediction column of the report.
    windows : slice, iterable of int or None, default=None
        Window numbers (the ``window`` column) to add up; a slice selects by position (e.g.
        ``slice(-7, None)`` for the last seven); None takes every window.

    Returns
    -------
    DataFrame
        One row per bin, then one ``missing`` row (:data:`DISTRIBUTION_COLUMNS`): ``bin``
        (label), ``bin_kind`` (``below``, ``bin``, ``above`` for numeric; ``category``,
        ``unseen`` for categorical; ``missing``), ``left``/``right`` (numeric bin edges; the
        ``below``/``above`` bins are open, −inf/+inf; NaN otherwise), ``reference_count``,
        ``reference_share``, ``current_count``, ``current_share``. Shares are of all rows,
        missing included, so each share column sums to 1 (or is NaN without rows).
    """
    if feature not in report.counts:
        raise ValueError(f"feature must be one of the report's columns: {', '.join(report.counts)}; got {feature!r}")
    counts = report.counts[feature]
    n_windows = counts.current.shape[0]
    if windows is None:
        selected = np.arange(n_windows)
    elif isinstance(windows, slice):
        selected = np.arange(n_windows)[windows]
    else:
        selected = np.asarray(list(windows), dtype=np.intp)
        bad = selected[(selected < 0) | (selected >= n_windows)]
        if len(bad):
            raise ValueError(f"windows must be window numbers from 0 to {n_windows - 1}; got {bad.tolist()}")
    reference = np.append(counts.reference, counts.reference_missing).astype(np.int64)
    current = np.append(counts.current[selected].sum(axis=0), counts.current_missing[selected].sum()).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        reference_share = reference / reference.sum() if reference.sum() else np.full(len(reference), np.nan)
        current_share = current / current.sum() if current.sum() else np.full(len(current), np.nan)
    return pd.DataFrame({
        "bin": [*counts.labels, "(missing)"],
        "bin_kind": [*counts.bin_kinds, "missing"],
        "left": np.append(counts.left, np.nan),
        "right": np.append(counts.right, np.nan),
        "reference_count": reference,
        "reference_share": reference_share,
        "current_count": current,
        "current_share": current_share,
    })


def drifted_features(report: DriftReport | None) -> list[str]:
    """Features that drifted in at least one closed (not partial) window, most drifted windows first.

    A window still open never decides on its own: a feature that drifted only in it is not
    listed. None or an empty report gives an empty list.
    """
    if report is None or report.features.empty:
        return []
    closed = report.closed
    drifted = closed[closed["drifted"].to_numpy(dtype=bool)]
    windows_drifted = drifted.groupby("feature", sort=False).size()
    order = list(dict.fromkeys(report.features["feature"]))
    return sorted(windows_drifted.index, key=lambda name: (-windows_drifted[name], order.index(name)))


def summary(report: DriftReport, *, since_label: str | None = None) -> str:
    """One plain-language line for business users, e.g. "2 of 12 features drifted since 12 Nov: income, channel".

    A feature counts as drifted when it drifted in at least one closed window of the report
    (:func:`drifted_features`); names are listed by how many windows drifted (most first),
    five at most. A note is added when the predictions drifted too. When every window is
    still open, the line says it is too early to judge.

    Parameters
    ----------
    report : DriftReport
    since_label : str, optional
        What follows "since", e.g. ``"12 Nov"`` or ``"the last deployment"``. When omitted the
        period is the report's span: "in the last 7 days" (time windows), or "in the last
        100,000 predictions" (row windows without timestamps).

    Returns
    -------
    str
    """
    period = f"since {since_label}" if since_label else _period(report)
    features = report.features
    n_features = features["feature"].nunique() if len(features) else 0
    if n_features == 0:
        return f"No data to compare {period}"
    closed = report.closed
    if closed.empty:
        rows = int(report.dataset["n"].sum())
        return (f"Too early to judge {period}: the only window is still open ({rows:,} prediction"
                f"{'s' if rows != 1 else ''} so far)")
    if not closed["status"].isin(JUDGED_STATUSES).any():
        return f"Drift cannot be judged {period}: {_first_reason(closed)}"
    names = drifted_features(report)
    prediction_note = ""
    predictions = report.prediction
    if len(predictions) and predictions.loc[~predictions["partial"].to_numpy(dtype=bool), "drifted"].any():
        prediction_note = "; the model's predictions moved too"
    if not names:
        return f"No feature drifted {period}{prediction_note}"
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    noun = "feature" if n_features == 1 else "features"
    return f"{len(names)} of {n_features} {noun} drifted {period}: {shown}{prediction_note}"


def _first_reason(rows: pd.DataFrame) -> str:
    reasons = [r for r in rows["reason"] if r]
    return reasons[0] if reasons else "no window could be judged"


def _period(report: DriftReport) -> str:
    dataset = report.dataset
    if not len(dataset):
        return "in this period"
    first, last = dataset["window_start"].min(), dataset["window_end"].max()
    if pd.isna(first) or pd.isna(last):
        rows = int(dataset["n"].sum())
        return f"in the last {rows:,} prediction{'s' if rows != 1 else ''}"
    seconds = (last - first).total_seconds()
    if seconds >= 2 * 86_400:
        days = math.ceil(seconds / 86_400 - 1e-9)
        return f"in the last {days} days"
    hours = max(math.ceil(seconds / 3600 - 1e-9), 1)
    return f"in the last {hours} hour{'s' if hours != 1 else ''}"
