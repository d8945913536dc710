"""The registry of drift methods: each scores every window of one column in one vectorised call.

A method is a function of :class:`ColumnCounts` (reference and per-window counts of one
column) returning one score per window, registered under a name with the column kinds it
accepts, its default threshold and whether its score is a p-value (drifted when below the
threshold) or a distance (drifted when at or above it)::

    @register_method("psi", kinds=("numeric", "categorical"), threshold=0.2, score="distance", ...)
    def _psi(counts: ColumnCounts) -> np.ndarray: ...
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

import numpy as np
import scipy  # scipy.stats and scipy.special load on first use: the registry alone is what config validation reads

KINDS = ("numeric", "categorical")
SCORE_KINDS = ("p_value", "distance")
AUTO = "auto"
AUTO_MAX_REFERENCE_ROWS = 1000
"""``auto`` uses p-value tests up to this many reference rows, distances above."""
KS_EXACT_MAX_N = 10_000
"""Like scipy's ``ks_2samp(method="auto")``: exact p-values when both samples are this small."""
KS_EXACT_MAX_WINDOWS = 31
"""scipy's KS p-values cost 0.3-5 ms per window (a Python loop or its exact routine): a column with
more windows than this (hourly windows over weeks) gets the Kolmogorov distribution with Stephens'
correction, vectorised, within a few percent of scipy's p-values below 0.1."""
PSI_MIN_SHARE = 1e-4
"""PSI replaces empty bins' shares with this (as Evidently does), so that log(q / p) is finite."""
WASSERSTEIN_MIN_STD = 1e-3
"""Wasserstein is divided by max(reference std, this), as Evidently does, so constants do not divide by 0."""


@dataclass(frozen=True)
class ColumnCounts:
    """Everything a method needs about one column: reference and per-window counts.

    Missing values are not in these counts (they are reported separately); bins for values
    the reference never had (numeric values outside its range, unseen categories) are.

    Attributes
    ----------
    name, kind : str
        Column name and kind (``"numeric"`` or ``"categorical"``).
    reference : ndarray of shape (n_bins,)
        Reference counts per bin: for numeric columns the quantile bins with an open bin
        below the reference minimum first and one above its maximum last; for categorical
        columns one bin per reference category, then one for unseen categories.
    current : ndarray of shape (n_windows, n_bins)
        The same per window.
    fine_edges : ndarray of shape (n_fine,) or None
        Numeric columns: the fine edges (every distinct reference value, or many quantiles).
    reference_fine, current_fine : ndarray of shape (n_fine + 1,) and (n_windows, n_fine + 1), or None
        Counts per fine bin (``np.searchsorted(fine_edges, x, side="right")``); present when
        the method asked for them.
    reference_fine_sums, current_fine_sums : ndarray or None
        Sums of the values per fine bin (same shapes).
    reference_steps, current_steps : ndarray of shape (2 * n_fine + 1,) and (n_windows, 2 * n_fine + 1), or None
        Counts per position on the line: below the first fine edge, at it, between it and the
        next, at the next, ... (what the empirical CDFs need).
    fine_exact : bool
        Whether the fine edges are every distinct reference value (then KS is exact).
    reference_std : float
        Standard deviation (ddof=0) of the reference's non-missing values; NaN for categorical.
    """

    name: str
    kind: str
    reference: np.ndarray
    current: np.ndarray
    fine_edges: np.ndarray | None = None
    reference_fine: np.ndarray | None = None
    current_fine: np.ndarray | None = None
    reference_fine_sums: np.ndarray | None = None
    current_fine_sums: np.ndarray | None = None
    reference_steps: np.ndarray | None = None
    current_steps: np.ndarray | None = None
    fine_exact: bool = False
    reference_std: float = float("nan")

    @property
    def n_reference(self) -> int:
        """Non-missing reference values."""
        return int(self.reference.sum())

    @property
    def n_current(self) -> np.ndarray:
        """Non-missing values per window, shape (n_windows,)."""
        return self.current.sum(axis=1)


Needs = Literal["bins", "fine", "steps"]


@dataclass(frozen=True)
class DriftMethod:
    """A registered drift method.

    Attributes
    ----------
    name : str
        Registry key, e.g. ``"ks"``.
    title : str
        Human name, e.g. ``"Kolmogorov–Smirnov"``.
    kinds : tuple of str
        Column kinds it accepts.
    default_threshold : float
        Threshold used unless the configuration sets one.
    score_kind : {"p_value", "distance"}
        ``p_value``: drifted when score < threshold; ``distance``: drifted when score >= threshold.
    description : str
        One plain line for tooltips and the README.
    needs : {"bins", "fine", "steps"}
        What counts it reads: the quantile bins / categories, the fine bins with sums
        (Wasserstein), or the step positions of the empirical CDFs (KS).
    compute : callable
        ``compute(counts: ColumnCounts) -> ndarray of shape (n_windows,)``.
    """

    name: str
    title: str
    kinds: tuple[str, ...]
    default_threshold: float
    score_kind: str
    description: str
    needs: str
    compute: Callable[[ColumnCounts], np.ndarray]

    def is_drifted(self, score: np.ndarray, threshold: float) -> np.ndarray:
        """Drifted flags: ``score < threshold`` for p-values, ``score >= threshold`` for distances (NaN: False)."""
        score = np.asarray(score, dtype=float)
        with np.errstate(invalid="ignore"):
            return score < threshold if self.score_kind == "p_value" else score >= threshold

    def is_near(self, score: np.ndarray, threshold: float) -> np.ndarray:
        """Amber band: p-value < 2 × threshold, or distance >= ½ × threshold (NaN: False)."""
        score = np.asarray(score, dtype=float)
        with np.errstate(invalid="ignore"):
            return score < 2 * threshold if self.score_kind == "p_value" else score >= threshold / 2


@functools.cache
def _exact_ks_probability() -> Callable | None:
    """scipy's exact two-sample KS probability, the one ks_2samp uses for samples up to 10,000."""
    try:
        from scipy.stats._stats_py import _attempt_exact_2kssamp
    except ImportError:  # pragma: no cover - a scipy that moved it: the asymptotic formula is used instead
        return None
    return _attempt_exact_2kssamp


_REGISTRY: dict[str, DriftMethod] = {}
METHODS: Mapping[str, DriftMethod] = MappingProxyType(_REGISTRY)
"""Registered methods by name (read-only)."""


def register_method(name: str, *, title: str, kinds: tuple[str, ...], threshold: float, score: str,
                    description: str, needs: Needs = "bins") -> Callable:
    """Decorator registering ``compute(counts) -> scores`` as drift method ``name``.

    Parameters
    ----------
    name : str
        Registry key; must be new.
    title : str
        Human name.
    kinds : tuple of {"numeric", "categorical"}
        Column kinds the method accepts.
    threshold : float
        Default threshold.
    score : {"p_value", "distance"}
        How the score compares with the threshold.
    description : str
        One plain line.
    needs : {"bins", "fine", "steps"}, default="bins"
        Which counts the method reads (see :class:`DriftMethod`).
    """
    if name in _REGISTRY or name == AUTO:
        raise ValueError(f"drift method {name!r} is already registered")
    if not kinds or any(kind not in KINDS for kind in kinds):
        raise ValueError(f"kinds must be a non-empty subset of {KINDS}; got {kinds!r}")
    if score not in SCORE_KINDS:
        raise ValueError(f"score must be one of {SCORE_KINDS}; got {score!r}")
    if needs not in ("bins", "fine", "steps"):
        raise ValueError(f"needs must be 'bins', 'fine' or 'steps'; got {needs!r}")

    def decorator(compute: Callable[[ColumnCounts], np.ndarray]) -> Callable[[ColumnCounts], np.ndarray]:
        _REGISTRY[name] = DriftMethod(name=name, title=title, kinds=tuple(kinds), default_threshold=float(threshold),
                                      score_kind=score, description=description, needs=needs, compute=compute)
        return compute

    return decorator


def method_names() -> tuple[str, ...]:
    """Names accepted in a configuration: ``"auto"`` and every registered method."""
    return (AUTO, *_REGISTRY)


def get_method(name: str) -> DriftMethod:
    """The registered method called ``name``.

    Parameters
    ----------
    name : str
        A registered name such as ``"ks"`` or ``"jensen_shannon"``.

    Returns
    -------
    DriftMethod

    Raises
    ------
    ValueError
        When ``name`` is not registered; the message lists the valid names.
    """
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown drift method {name!r}; valid methods: {', '.join(_REGISTRY)} "
                         f"(or {AUTO!r} to choose by column kind and reference size)") from None


def choose_method(kind: str, *, n_reference_rows: int, n_categories: int | None = None) -> str:
    """What ``auto`` picks for a column.

    Parameters
    ----------
    kind : {"numeric", "categorical"}
    n_reference_rows : int
        Rows in the reference data set.
    n_categories : int, optional
        Distinct reference values of a categorical column.

    Returns
    -------
    str
        Up to :data:`AUTO_MAX_REFERENCE_ROWS` reference rows, p-value tests: ``ks`` for
        numeric, ``z_test`` for a categorical column with at most two categories,
        ``chi_square`` for other categorical ones. Above, distances: ``wasserstein`` for
        numeric, ``jensen_shannon`` for categorical.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")
    if n_reference_rows <= AUTO_MAX_REFERENCE_ROWS:
        if kind == "numeric":
            return "ks"
        return "z_test" if n_categories is not None and n_categories <= 2 else "chi_square"
    return "wasserstein" if kind == "numeric" else "jensen_shannon"


def check_method_for_column(method: DriftMethod, *, column: str, kind: str, n_distinct: int) -> None:
    """Raise ValueError when ``method`` cannot score ``column``.

    Parameters
    ----------
    method : DriftMethod
    column : str
    kind : {"numeric", "categorical"}
    n_distinct : int
        Distinct non-missing reference values of the column.
    """
    if kind not in method.kinds:
        raise ValueError(f"drift method {method.name!r} accepts {' and '.join(method.kinds)} columns; "
                         f"column {column!r} is {kind}")
    if method.name == "z_test" and n_distinct > 2:
        raise ValueError(f"drift method 'z_test' needs a column with at most two values in the reference; "
                         f"column {column!r} has {n_distinct}")


def check_threshold(method: DriftMethod, threshold: object) -> float:
    """Validate a threshold for ``method``: p-values in (0, 1), distances > 0. Returns it as float."""
    if isinstance(threshold, bool) or not isinstance(threshold, int | float | np.integer | np.floating):
        raise ValueError(f"threshold of drift method {method.name!r} must be a number; got {threshold!r}")
    value = float(threshold)
    if method.score_kind == "p_value" and not 0 < value < 1:
        raise ValueError(f"threshold of drift method {method.name!r} is a p-value and must be in (0, 1); "
                         f"got {threshold!r}")
    if method.score_kind == "distance" and not (value > 0 and math.isfinite(value)):
        raise ValueError(f"threshold of drift method {method.name!r} is a distance and must be > 0; got {threshold!r}")
    return value


# -- helpers --------------------------------------------------------------------------------------


def _shares(reference: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reference shares (n_bins,), current shares (n_windows, n_bins) and a mask of windows with values."""
    n_current = current.sum(axis=1)
    has_values = (n_current > 0) & (reference.sum() > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = reference / reference.sum()
        q = current / n_current[:, None]
    return p, q, has_values


def _nan_where_empty(score: np.ndarray, has_values: np.ndarray) -> np.ndarray:
    return np.where(has_values, score, np.nan)


# -- p-value tests --------------------------------------------------------------------------------


@register_method(
    "ks", title="Kolmogorov–Smirnov", kinds=("numeric",), threshold=0.05, score="p_value", needs="steps",
    description="p-value of the two-sample Kolmogorov–Smirnov test: largest gap between the two cumulative "
                "distributions (small samples).")
def _ks(counts: ColumnCounts) -> np.ndarray:
    n_reference = counts.n_reference
    n_current = counts.current_steps.sum(axis=1)
    reference_cdf = np.cumsum(counts.reference_steps) / max(n_reference, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        current_cdf = np.cumsum(counts.current_steps, axis=1) / n_current[:, None]
    statistic = np.abs(current_cdf - reference_cdf).max(axis=1, initial=0.0)
    if len(statistic) <= KS_EXACT_MAX_WINDOWS:
        p_values = np.array([ks_p_value(d, n_reference, int(n)) for d, n in zip(statistic, n_current, strict=True)])
    else:
        p_values = ks_p_value_asymptotic(statistic, n_reference, n_current)
    return _nan_where_empty(p_values, (n_current > 0) & (n_reference > 0))


def ks_p_value(statistic: float, n1: int, n2: int) -> float:
    """Two-sided two-sample KS p-value, as ``scipy.stats.ks_2samp(method="auto")`` computes it.

    Exact when both samples have at most 10,000 values (scipy's own exact routine), else
    ``kstwo.sf(D, round(n1 n2 / (n1 + n2)))`` as scipy's ``method="asymp"``.
    """
    if n1 == 0 or n2 == 0 or not np.isfinite(statistic):
        return float("nan")
    exact = _exact_ks_probability()
    if max(n1, n2) <= KS_EXACT_MAX_N and exact is not None:
        success, _, probability = exact(n1, n2, math.gcd(n1, n2), float(statistic), "two-sided")
        if success:
            return float(probability)
    larger, smaller = float(max(n1, n2)), float(min(n1, n2))
    return float(np.clip(scipy.stats.kstwo.sf(statistic, np.round(larger * smaller / (larger + smaller))), 0.0, 1.0))


def ks_p_value_asymptotic(statistic: np.ndarray, n1: int, n2: np.ndarray) -> np.ndarray:
    """KS p-values of many windows at once: ``kolmogorov((sqrt(n) + 0.12 + 0.11 / sqrt(n)) D)``,
    ``n = n1 n2 / (n1 + n2)`` (Stephens' correction of the limiting distribution)."""
    n2 = np.asarray(n2, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        root = np.sqrt(n1 * n2 / (n1 + n2))
        p_values = np.clip(scipy.special.kolmogorov((root + 0.12 + 0.11 / root) * statistic), 0.0, 1.0)
    return np.where((n2 > 0) & (n1 > 0), p_values, np.nan)


@register_method(
    "chi_square", title="Chi-square", kinds=("categorical",), threshold=0.05, score="p_value",
    description="p-value of the chi-square test that reference and current share one category mix "
                "(small samples).")
def _chi_square(counts: ColumnCounts) -> np.ndarray:
    reference = counts.reference.astype(float)
    current = counts.current.astype(float)
    n_reference, n_current = reference.sum(), current.sum(axis=1)
    totals = reference + current  # (n_windows, n_bins)
    grand = n_reference + n_current
    kept = totals > 0  # categories empty in both samples are left out, as chi2_contingency needs
    with np.errstate(invalid="ignore", divide="ignore"):
        expected_reference = n_reference * totals / grand[:, None]
        expected_current = n_current[:, None] * totals / grand[:, None]
        terms = (reference - expected_reference) ** 2 / expected_reference + (current - expected_current) ** 2 / (
            expected_current)
    statistic = np.where(kept, terms, 0.0).sum(axis=1)
    dof = kept.sum(axis=1) - 1
    p_values = np.where(dof > 0, scipy.stats.chi2.sf(statistic, np.maximum(dof, 1)), 1.0)
    return _nan_where_empty(p_values, (n_current > 0) & (n_reference > 0))


@register_method(
    "z_test", title="Z-test for proportions", kinds=("categorical", "numeric"), threshold=0.05, score="p_value",
    description="p-value of the two-proportion z-test, for columns with two values (small samples).")
def _z_test(counts: ColumnCounts) -> np.ndarray:
    reference = counts.reference.astype(float)
    current = counts.current.astype(float)
    observed = np.flatnonzero(reference > 0)
    n_reference, n_current = reference.sum(), current.sum(axis=1)
    if len(observed) == 0:
        return np.full(len(current), np.nan)
    first = observed[0]  # the proportion of the first reference value; anything else counts as "not it"
    with np.errstate(invalid="ignore", divide="ignore"):
        p_reference = reference[first] / n_reference
        p_current = current[:, first] / n_current
        pooled = (reference[first] + current[:, first]) / (n_reference + n_current)
        spread = np.sqrt(pooled * (1 - pooled) * (1 / n_reference + 1 / n_current))
        z = (p_current - p_reference) / spread
    p_values = np.where(spread > 0, 2 * scipy.stats.norm.sf(np.abs(z)), 1.0)
    return _nan_where_empty(p_values, n_current > 0)


# -- distances ------------------------------------------------------------------------------------


@register_method(
    "wasserstein", title="Wasserstein (normed)", kinds=("numeric",), threshold=0.1, score="distance", needs="fine",
    description="Wasserstein distance (the average shift of values) divided by the reference standard "
                "deviation.")
def _wasserstein(counts: ColumnCounts) -> np.ndarray:
    # W1 = ∫ |F_ref - F_cur| dx. Per fine bin [e_j-1, e_j) the integral of each CDF is exact from
    # the count and the sum of the values in it; |∫(F_ref - F_cur)| equals ∫|F_ref - F_cur| except
    # in bins where the two CDFs cross. Below the reference minimum and above its maximum the
    # reference CDF is 0 and 1, so the tails are exact.
    edges = counts.fine_edges
    widths = np.diff(edges)  # interior bins 1 .. n_fine - 1

    def integrals(count: np.ndarray, sums: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = count.sum(axis=-1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            before = np.cumsum(count, axis=-1)[..., :-2]  # values below each interior bin
            interior = (before * widths + count[..., 1:-1] * edges[1:] - sums[..., 1:-1]) / n
            below = (count[..., 0] * edges[0] - sums[..., 0]) / n[..., 0]
            above = (sums[..., -1] - count[..., -1] * edges[-1]) / n[..., 0]
        return interior, below, above

    reference_interior, _, _ = integrals(counts.reference_fine.astype(float), counts.reference_fine_sums)
    current_interior, below, above = integrals(counts.current_fine.astype(float), counts.current_fine_sums)
    distance = np.abs(reference_interior - current_interior).sum(axis=1) + below + above
    norm = max(counts.reference_std, WASSERSTEIN_MIN_STD) if np.isfinite(counts.reference_std) else np.nan
    n_current = counts.current_fine.sum(axis=1)
    return _nan_where_empty(distance / norm, (n_current > 0) & (counts.n_reference > 0))


@register_method(
    "jensen_shannon", title="Jensen–Shannon", kinds=("numeric", "categorical"), threshold=0.1, score="distance",
    description="Jensen–Shannon distance (base 2, from 0 = same to 1 = disjoint) between the binned distributions.")
def _jensen_shannon(counts: ColumnCounts) -> np.ndarray:
    p, q, has_values = _shares(counts.reference, counts.current)
    middle = (p + q) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        divergence = (scipy.special.rel_entr(p, middle).sum(axis=1) + scipy.special.rel_entr(q, middle).sum(axis=1)) / 2
        distance = np.sqrt(np.maximum(divergence / np.log(2.0), 0.0))
    return _nan_where_empty(distance, has_values)


@register_method(
    "psi", title="Population stability index", kinds=("numeric", "categorical"), threshold=0.2, score="distance",
    description="Population stability index: sum of (current − reference share) × ln(current / reference share) "
                "over bins.")
def _psi(counts: ColumnCounts) -> np.ndarray:
    p, q, has_values = _shares(counts.reference, counts.current)
    p = np.where(p > 0, p, PSI_MIN_SHARE)
    q = np.where(q > 0, q, PSI_MIN_SHARE)
    with np.errstate(invalid="ignore", divide="ignore"):
        index = ((q - p) * np.log(q / p)).sum(axis=1)
    return _nan_where_empty(index, has_values)


@register_method(
    "hellinger", title="Hellinger", kinds=("numeric", "categorical"), threshold=0.1, score="distance",
    description="Hellinger distance (0 = same, 1 = disjoint) between the binned distributions.")
def _hellinger(counts: ColumnCounts) -> np.ndarray:
    p, q, has_values = _shares(counts.reference, counts.current)
    with np.errstate(invalid="ignore"):
        distance = np.sqrt(np.maximum(1.0 - np.sqrt(p * q).sum(axis=1), 0.0))
    return _nan_where_empty(distance, has_values)
