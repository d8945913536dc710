"""Subpopulations: how the model treats segments of its inputs, and fairness across a sensitive feature.

* :func:`assign_segments` cuts rows into segments by one or two features (categories as they
  are, numbers in quantile bins whose edges come from the reference when given).
* :func:`segment_metrics` gives per segment the volume, the prediction rate, the performance
  once labels exist, with intervals (the Performance page's ``monitoring.statistics``), and how
  the segment's share moved from the reference; segments with too few rows are marked, not hidden.
* :func:`segment_importance` gives the top features by mean |SHAP| per segment, on a bounded
  sample of each segment, with any explainer that has ``explain(X)`` (``ShapExplainer``).
* :func:`fairness_metrics` computes demographic parity difference and ratio and equalised odds
  difference with fairlearn's ``MetricFrame`` and flags the four-fifths rule.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from monitoring.validation import InstanceOf, Interval, Options, check_argument, validate_params

MISSING = "missing"
FOUR_FIFTHS = 0.8


@dataclass(frozen=True)
class SegmentTable:
    """Per-segment volume, prediction rate, performance and share against the reference.

    Attributes
    ----------
    table : DataFrame
        One row per segment, largest first: ``segment``, ``n`` (predictions), ``share``,
        ``reference_share`` (NaN without reference), ``share_change`` (share − reference
        share), the decisions — ``prediction_rate`` (positive share, two classes), one share
        column per class named by :func:`class_column` (``"class 0"``, ``"class 1"``, ...;
        more classes, or one) or ``mean_prediction`` (regression) —, ``n_labelled``, the
        metrics of :attr:`metrics`, and ``too_small`` (fewer than ``min_rows`` predictions, or,
        once labels exist, fewer than ``min_rows`` labels: its numbers are shown but should
        not be judged).
    features : tuple of str
    task : {"classification", "regression"}
    metrics : tuple of str
        ``accuracy`` and ``f1`` (two classes) or ``accuracy`` (more), or ``mae`` and ``rmse``.
    min_rows : int
    classes : tuple of float, default=()
        The classes (classification), sorted.
    class_columns : dict of str to float, default={}
        Each per-class share column of ``table`` and its class (empty unless more than two
        classes, or one).
    """

    table: pd.DataFrame
    features: tuple[str, ...]
    task: str
    metrics: tuple[str, ...]
    min_rows: int
    classes: tuple[float, ...] = ()
    class_columns: dict = field(default_factory=dict)

    @property
    def decision_columns(self) -> tuple[str, ...]:
        """The columns of ``table`` that say what was decided: the positive rate, the class shares or the mean."""
        if self.class_columns:
            return tuple(self.class_columns)
        return ("prediction_rate",) if "prediction_rate" in self.table else ("mean_prediction",)


@dataclass(frozen=True)
class FairnessReport:
    """Fairness across the groups of one sensitive feature, computed with fairlearn.

    Attributes
    ----------
    sensitive_feature : str
    by_group : DataFrame
        One row per group: ``group``, ``n``, ``selection_rate``, ``n_labelled``,
        ``true_positive_rate``, ``false_positive_rate``, ``accuracy`` (NaN without labels)
        and ``too_small`` (fewer than ``min_rows`` predictions; left out of the differences).
    demographic_parity_difference, demographic_parity_ratio : float
        Largest minus smallest selection rate, smallest over largest, among groups large enough.
    equalized_odds_difference : float
        The larger of the true- and false-positive-rate differences, on labelled rows of groups
        large enough; NaN without labels.
    four_fifths_ok : bool or None
        Whether the ratio is at least 0.8 (the four-fifths rule); None when it cannot be computed.
    min_rows : int
    positive_label : float, default=1.0
        The class counted as the positive decision.
    classes : tuple of float, default=()
        The model's classes; with more than two, the metrics are one-vs-rest: deciding
        ``positive_label`` against deciding any other class.
    """

    sensitive_feature: str
    by_group: pd.DataFrame
    demographic_parity_difference: float
    demographic_parity_ratio: float
    equalized_odds_difference: float
    four_fifths_ok: bool | None
    min_rows: int
    positive_label: float = 1.0
    classes: tuple[float, ...] = ()

    @property
    def one_vs_rest(self) -> bool:
        """Whether ``positive_label`` is one class of more than two, judged against all the others."""
        return len(self.classes) > 2

    @property
    def decision_name(self) -> str:
        """What a positive decision is, in words: ``"positive decisions"`` or ``"decisions of class 2"``."""
        return f"decisions of {class_column(self.positive_label)}" if self.one_vs_rest else "positive decisions"

    def sentences(self) -> list[str]:
        """The findings in plain words."""
        lines = []
        if self.one_vs_rest:
            lines.append(f"One class against the rest: a positive decision is {class_column(self.positive_label)}, "
                         "any other class counts as negative.")
        if math.isfinite(self.demographic_parity_ratio):
            rule = ("meets the four-fifths rule" if self.four_fifths_ok
                    else "fails the four-fifths rule (below 0.8)")
            name = self.decision_name
            lines.append(f"{name[0].upper()}{name[1:]} by {self.sensitive_feature}: the least favoured group gets "
                         f"them {self.demographic_parity_ratio:.0%} as often as the most favoured "
                         f"(difference {self.demographic_parity_difference:.1%}); this {rule}.")
        if math.isfinite(self.equalized_odds_difference):
            lines.append(f"Error rates differ between groups by up to {self.equalized_odds_difference:.1%} "
                         "(equalised odds difference, on predictions whose outcome is known"
                         + (f", {class_column(self.positive_label)} against the rest" if self.one_vs_rest else "")
                         + ").")
        small = self.by_group.loc[self.by_group["too_small"], "group"].tolist()
        if small:
            lines.append(f"Too small to judge (under {self.min_rows} predictions), left out of the comparison: "
                         + ", ".join(map(str, small)) + ".")
        return lines


def _is_numeric(values: pd.Series) -> bool:
    return (pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
            and not isinstance(values.dtype, pd.CategoricalDtype))


def class_column(label: float) -> str:
    """A class's name and share column, e.g. ``"class 2"`` (whole numbers without ``.0``)."""
    value = float(label)
    return f"class {int(value)}" if value.is_integer() else f"class {value:g}"


def _number(value: float) -> str:
    return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def _bin_edges(values: np.ndarray, n_bins: int) -> np.ndarray:
    finite = values[np.isfinite(values)]
    if not len(finite):
        return np.array([])
    return np.unique(np.quantile(finite, np.linspace(0, 1, n_bins + 1)))


def _bin_names(name: str, inner: np.ndarray, *, with_name: bool = True) -> list[str]:
    """The name of each bin among the ``inner`` edges (``searchsorted(inner, x, side="right")``), in bin order."""
    names = []
    for i in range(len(inner) + 1):
        if i == 0:
            names.append(f"{name} < {_number(inner[0])}" if len(inner) else f"{name} (all)")
        elif i == len(inner):
            names.append(f"{name} ≥ {_number(inner[-1])}")
        else:
            names.append(f"{name} {_number(inner[i - 1])}–{_number(inner[i])}")
    if not with_name:
        names = [n.removeprefix(f"{name} ").strip() for n in names]
    return names


def _feature_labels(values: pd.Series, name: str, *, n_bins: int, edges: np.ndarray | None,
                    with_name: bool = True) -> pd.Series:
    if not _is_numeric(values) or values.nunique(dropna=True) <= n_bins:
        text = values.astype(object).where(values.notna(), MISSING).astype(str)
        return f"{name} = " + text if with_name else text
    numbers = values.to_numpy(dtype=float)
    edges = _bin_edges(numbers, n_bins) if edges is None else edges
    inner = edges[1:-1]
    index = np.searchsorted(inner, numbers, side="right")
    labels = np.asarray(_bin_names(name, inner, with_name=with_name), dtype=object)[index]
    labels[~np.isfinite(numbers)] = f"{name} {MISSING}" if with_name else MISSING
    return pd.Series(labels, index=values.index, dtype=object)


def _is_missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float | np.floating) and math.isnan(value))


def _key_labels(spec, keys: pd.Series, *, with_name: bool) -> list[str]:
    """The label of each key of one feature (``monitoring.segment_queries.KeySpec``), as :func:`_feature_labels`."""
    name = spec.name
    if spec.inner is None:
        text = [MISSING if _is_missing(v) else str(v) for v in keys.astype(object).tolist()]
        return [f"{name} = {t}" for t in text] if with_name else text
    names = _bin_names(name, np.asarray(spec.inner, dtype=float), with_name=with_name)
    missing = f"{name} {MISSING}" if with_name else MISSING
    return [missing if _is_missing(k) or int(k) < 0 else names[int(k)] for k in keys.tolist()]


def segment_names(counts, frame: pd.DataFrame, *, with_names: bool = True) -> pd.Series:
    """The segment of each row of ``frame`` by its key columns ``k0`` (and ``k1``): the labels
    :func:`assign_segments` gives the rows those keys were counted from.

    Parameters
    ----------
    counts : SegmentCounts or SegmentSample
        What the keys were counted with (``monitoring.segment_queries``): one ``KeySpec`` per feature.
    frame : DataFrame
        With the key columns.
    with_names : bool, default=True

    Returns
    -------
    Series of str, aligned with ``frame``.
    """
    parts = [_key_labels(spec, frame[f"k{i}"], with_name=with_names) for i, spec in enumerate(counts.specs)]
    labels = parts[0] if len(parts) == 1 else [f"{a} & {b}" for a, b in zip(*parts, strict=True)]
    return pd.Series(labels, index=frame.index, dtype=object)


def segment_edges(reference: pd.DataFrame, features: Sequence[str], *, n_bins: int = 4) -> dict[str, np.ndarray]:
    """Quantile bin edges of the numeric ``features`` of ``reference``, so production is cut like training."""
    return {f: _bin_edges(reference[f].to_numpy(dtype=float), n_bins) for f in features
            if f in reference and _is_numeric(reference[f]) and reference[f].nunique(dropna=True) > n_bins}


@validate_params(X=InstanceOf(pd.DataFrame), n_bins=Interval(int, 2))
def assign_segments(X: pd.DataFrame, features: Sequence[str], *, n_bins: int = 4,
                    edges: dict[str, np.ndarray] | None = None, with_names: bool = True) -> pd.Series:
    """The segment of each row, e.g. ``"channel = web & income 2,000–3,500"``.

    Parameters
    ----------
    X : DataFrame
    features : sequence of str
        One or two column names of ``X``.
    n_bins : int, default=4
        Quantile bins of a numeric feature (one with more distinct values than bins).
    edges : dict of str to ndarray, optional
        Bin edges per numeric feature (:func:`segment_edges` of the reference); otherwise
        the quantiles of ``X``.
    with_names : bool, default=True
        Whether labels name their feature (``"channel = web"``) or give the group only
        (``"web"``, ``"2,000–3,500"``), as fairness tables show the groups of one feature.

    Returns
    -------
    Series of str, aligned with ``X``.
    """
    features = list(features)
    if not 1 <= len(features) <= 2:
        raise ValueError(f"features must name one or two columns; got {features!r}")
    missing = [f for f in features if f not in X]
    if missing:
        raise ValueError(f"features must be columns of X; {missing} are not (columns: {list(X.columns)})")
    edges = edges or {}
    parts = [_feature_labels(X[f], f, n_bins=n_bins, edges=edges.get(f), with_name=with_names) for f in features]
    return parts[0] if len(parts) == 1 else parts[0] + " & " + parts[1]


@validate_params(frame=InstanceOf(pd.DataFrame), task=Options("classification", "regression"),
                 n_bins=Interval(int, 2), min_rows=Interval(int, 1), confidence=Interval(float, 0, 1, "neither"),
                 n_resamples=Interval(int, 0))
def segment_metrics(frame: pd.DataFrame, features: Sequence[str], *, task: str,
                    classes: tuple[float, ...] = (), n_bins: int = 4, min_rows: int = 30,
                    reference: pd.DataFrame | None = None, confidence: float = 0.95, n_resamples: int = 200,
                    random_state: int = 0) -> SegmentTable:
    """Volume, prediction rate, performance and share drift per segment of rows in memory.

    The rows are counted by the same query as a log where it lives
    (``monitoring.segment_queries.frame_segment_counts``, run by DuckDB), then
    :func:`segments_from_counts` makes the table.

    Parameters
    ----------
    frame : DataFrame
        Production rows: the features, ``prediction`` and ``label`` (NaN while unknown); ``id``,
        ``ts`` and ``score`` when known.
    features : sequence of str
        One or two segmenting features.
    task : {"classification", "regression"}
    classes : tuple of float, default=()
        Sorted classes; with two, the larger is the positive one and each segment gets its
        ``prediction_rate``; with more (or one), each segment gets the share of its predictions
        that decided each class. Classes predicted but not listed are added.
    n_bins : int, default=4
    min_rows : int, default=30
    reference : DataFrame, optional
        Training data: bin edges come from it and each segment's share is compared with its
        share there.
    confidence : float, default=0.95
        Coverage of each metric's interval (``<metric>_low``, ``<metric>_high``): Wilson for
        accuracy, the bootstrap for F1 and the regression errors, as on the Performance page
        (``monitoring.statistics.group_metrics``).
    n_resamples : int, default=200
        Bootstrap resamples per segment.
    random_state : int, default=0
        Seed of the bootstrap.

    Returns
    -------
    SegmentTable
    """
    from monitoring.segment_queries import frame_segment_counts

    _check_features(frame, features)
    edges = segment_edges(reference, features, n_bins=n_bins) if reference is not None else None
    counts = frame_segment_counts(frame, features, task=task, classes=tuple(classes), n_bins=n_bins, edges=edges)
    return segments_from_counts(counts, reference=reference, n_bins=n_bins, min_rows=min_rows, confidence=confidence,
                                n_resamples=n_resamples, random_state=random_state)


def _check_features(X: pd.DataFrame | Sequence[str], features: Sequence[str]) -> None:
    features = list(features)
    if not 1 <= len(features) <= 2:
        raise ValueError(f"features must name one or two columns; got {features!r}")
    columns = list(X.columns) if isinstance(X, pd.DataFrame) else list(X)
    missing = [f for f in features if f not in columns]
    if missing:
        raise ValueError(f"features must be columns of X; {missing} are not (columns: {columns})")


def _labelled_cells(counts) -> pd.DataFrame:
    """The counts per cell, each with its ``segment``."""
    cells = counts.cells
    return cells.assign(segment=segment_names(counts, cells).to_numpy()) if len(cells) else cells.assign(segment=[])


def _classes_of(counts) -> tuple[float, ...]:
    if counts.task != "classification":
        return ()
    predicted = counts.cells["prediction"].to_numpy(dtype=float) if len(counts.cells) else np.array([])
    seen = set(np.unique(predicted[np.isfinite(predicted)]).tolist())
    return tuple(sorted({float(c) for c in counts.classes} | seen))


def segments_from_counts(counts, *, reference: pd.DataFrame | None = None, n_bins: int = 4, min_rows: int = 30,
                         confidence: float = 0.95, n_resamples: int = 200, random_state: int = 0) -> SegmentTable:
    """The :class:`SegmentTable` of segments counted where their rows are (``monitoring.segment_queries``).

    Volumes, decision shares, accuracy and F1, MAE and RMSE come from the counts and sums; Wilson
    intervals from the counts; a bootstrap interval from the segment's sample of labelled rows (its
    rows of least id hash): when the sample holds every labelled row of the segment, the interval is
    the rows' own, as ``monitoring.statistics.group_metrics`` gives it; otherwise the sample's,
    narrowed to the segment's size and moved to its value (``group_size``), as the Performance page
    narrows a subsample.

    Parameters
    ----------
    counts : monitoring.segment_queries.SegmentCounts
    reference : DataFrame, optional
        Training rows: each segment's share is compared with its share there.
    n_bins, min_rows, confidence, n_resamples, random_state
        As for :func:`segment_metrics`.

    Returns
    -------
    SegmentTable
    """
    from monitoring.statistics import group_metrics, wilson_interval

    task = counts.task
    features = [spec.name for spec in counts.specs]
    classification = task == "classification"
    classes = _classes_of(counts)
    binary = classification and len(classes) == 2
    class_columns = {class_column(c): c for c in classes} if classification and not binary else {}
    metrics = ("mae", "rmse") if task == "regression" else ("accuracy", "f1") if binary else ("accuracy",)
    edges = segment_edges(reference, features, n_bins=n_bins) if reference is not None else None
    ref_share = pd.Series(dtype=float)
    if reference is not None and all(f in reference for f in features):
        ref_share = assign_segments(reference, features, n_bins=n_bins, edges=edges).value_counts(normalize=True)
    cells = _labelled_cells(counts)
    sample = counts.sample
    sample = sample.assign(segment=segment_names(counts, sample).to_numpy()) if len(sample) else sample.assign(
        segment=pd.Series(dtype=object))
    rng = np.random.default_rng(random_state)
    rows = []
    for name, cell in cells.groupby("segment", sort=True):
        row = {"segment": name, "n": int(cell["n"].sum())}
        if classification:
            prediction = cell["prediction"].to_numpy(dtype=float)
            label = cell["label"].to_numpy(dtype=float)
            n = cell["n"].to_numpy(dtype=np.int64)
            decided = np.isfinite(prediction)
            n_decided = int(n[decided].sum())
            known = decided & np.isfinite(label)
            n_known = int(n[known].sum())
            correct = int(n[known & (label == prediction)].sum())
            said = {c: int(n[decided & (prediction == c)].sum()) for c in classes}
            if binary:
                row["prediction_rate"] = said[classes[-1]] / n_decided if n_decided else math.nan
            for column, value in class_columns.items():
                row[column] = said[value] / n_decided if n_decided else math.nan
        else:
            sums = cell[["n_decided", "prediction_sum", "n_labelled", "abs_error_sum", "squared_error_sum"]].sum()
            n_known = int(sums["n_labelled"])
            row["mean_prediction"] = (float(sums["prediction_sum"]) / float(sums["n_decided"])
                                      if sums["n_decided"] else math.nan)
        row["n_labelled"] = n_known
        picked = sample[sample["segment"] == name]
        if len(picked) > counts.sample_rows:  # several cells name this segment: their least keys
            picked = picked.sort_values("key", kind="stable").head(counts.sample_rows)
        picked = picked.sort_values(["ts", "id"], kind="stable")
        # the Performance page's metrics and intervals (monitoring.statistics), one path for both pages
        values = group_metrics(*(picked[c].to_numpy(dtype=float) for c in ("label", "prediction", "score")),
                               task=task, classes=classes, metrics=metrics, confidence=confidence,
                               n_resamples=n_resamples, rng=rng if n_known else None, group_size=n_known or None)
        if n_known and len(picked) < n_known:
            whole = {}
            if classification:
                whole["accuracy"] = correct / n_known
                low, high = wilson_interval(correct, n_known, confidence=confidence)
                if binary:
                    positive = classes[-1]
                    tp = int(n[known & (label == positive) & (prediction == positive)].sum())
                    n_true = int(n[known & (label == positive)].sum())
                    n_said = int(n[known & (prediction == positive)].sum())
                    whole["f1"] = 2.0 * tp / (n_true + n_said) if n_true + n_said else math.nan
            else:
                whole["mae"] = float(sums["abs_error_sum"]) / n_known
                whole["rmse"] = math.sqrt(float(sums["squared_error_sum"]) / n_known)
            for metric, value in whole.items():
                shift = value - values.get(metric, math.nan)  # the sample's interval, around the segment's value
                values[metric] = value
                values[f"{metric}_low"] = values.get(f"{metric}_low", math.nan) + shift
                values[f"{metric}_high"] = values.get(f"{metric}_high", math.nan) + shift
            if classification:
                values["accuracy_low"], values["accuracy_high"] = float(low), float(high)
        for metric in metrics:
            row[metric] = values.get(metric, math.nan)
            row[f"{metric}_low"] = values.get(f"{metric}_low", math.nan)
            row[f"{metric}_high"] = values.get(f"{metric}_high", math.nan)
        rows.append(row)
    rate = list(class_columns) if class_columns else ["prediction_rate"] if binary else ["mean_prediction"]
    bounds = [f"{m}_{b}" for m in metrics for b in ("low", "high")]
    order = ["segment", "n", "share", "reference_share", "share_change", *rate, "n_labelled", *metrics, *bounds,
             "too_small"]
    table = pd.DataFrame(rows, columns=[c for c in order if c not in ("share", "reference_share", "share_change",
                                                                     "too_small")])
    table["n"] = table["n"].astype(np.int64)
    table["n_labelled"] = table["n_labelled"].astype(np.int64)
    table["share"] = table["n"] / max(int(counts.n_rows), 1)
    table["reference_share"] = table["segment"].map(ref_share).astype(float) if len(ref_share) else math.nan
    if len(ref_share):
        table["reference_share"] = table["reference_share"].fillna(0.0)
    table["share_change"] = table["share"] - table["reference_share"]
    labelled = table["n_labelled"].sum() > 0
    table["too_small"] = (table["n"] < min_rows) | ((table["n_labelled"] < min_rows) if labelled else False)
    table = table[order].sort_values("n", ascending=False, kind="stable").reset_index(drop=True)
    return SegmentTable(table, tuple(features), task, metrics, min_rows, classes, class_columns)


@dataclass(frozen=True)
class DriftPlan:
    """What the in-segment drift counts where the rows are, made from the reference before the query.

    Attributes
    ----------
    profiles : dict of str to ReferenceProfile
        Per reference segment with at least ``min_rows`` training rows, the profile of its rows.
    edges : dict of str to ndarray
        Per numeric feature checked, every segment profile's fine edges together (sorted, unique): the
        engine counts each row's step among them once, and each segment's steps follow.
    categorical : tuple of str
        Categorical features checked (counted per value).
    min_rows : int
    """

    profiles: dict
    edges: dict
    categorical: tuple[str, ...]
    min_rows: int


def segment_drift_plan(reference: pd.DataFrame, features: Sequence[str], kinds: Mapping[str, str], *,
                       columns: Sequence[str], n_bins: int = 4, min_rows: int = 30) -> DriftPlan:
    """The profiles and edges :func:`segment_drift` compares each segment with.

    Parameters
    ----------
    reference : DataFrame
        Training rows with the features.
    features : sequence of str
        The segmenting features.
    kinds : mapping of str to {"numeric", "categorical"}
        Every model feature to check, and its kind.
    columns : sequence of str
        The columns production has (only features in both are checked).
    n_bins, min_rows : int

    Returns
    -------
    DriftPlan
    """
    from monitoring.drift import build_profile

    edges = segment_edges(reference, features, n_bins=n_bins)
    checked = {name: kind for name, kind in kinds.items() if name in columns and name in reference}
    segments = assign_segments(reference, features, n_bins=n_bins, edges=edges)
    profiles = {}
    for segment in sorted(segments.unique()):
        training = reference[(segments == segment).to_numpy()]
        if len(training) < min_rows:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an all-missing column in a small segment is just not scored
            profiles[segment] = build_profile(training[list(checked)], checked, prediction_columns=())
    numeric = [name for name, kind in checked.items() if kind != "categorical"]
    fine = {name: np.unique(np.concatenate([np.asarray(p.columns[name].fine_edges, dtype=float)
                                            for p in profiles.values()] or [np.array([])]))
            for name in numeric}
    return DriftPlan(profiles=profiles, edges=fine, categorical=tuple(n for n in checked if n not in numeric),
                     min_rows=min_rows)


def _steps_within(union: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """For each step position among ``union``'s edges, the step position among ``edges`` (a subset of them)."""
    positions = np.arange(2 * len(union) + 1)
    at_union_edge = positions % 2 == 1
    # the union's edge at the position (odd: the value is that edge) or just below it (even; -1 below all)
    index = np.where(at_union_edge, (positions - 1) // 2, positions // 2 - 1)
    value = union[np.maximum(index, 0)] if len(union) else np.zeros(len(positions))
    below = np.where(index >= 0, np.searchsorted(edges, value, side="right"), 0)
    at_edge = np.zeros(len(positions), dtype=bool)
    inside = at_union_edge & (below > 0)
    at_edge[inside] = edges[below[inside] - 1] == value[inside]
    return 2 * below - at_edge


def drift_from_counts(counts, plan: DriftPlan, sizes: Mapping[str, int]) -> pd.DataFrame:
    """Feature drift inside each segment from the counts of :class:`DriftPlan`'s columns (:func:`segment_drift`).

    Parameters
    ----------
    counts : monitoring.segment_queries.SegmentCounts
        Counted with ``drift_edges=plan.edges`` and ``drift_categorical=plan.categorical``.
    plan : DriftPlan
    sizes : mapping of str to int
        Production rows per segment.

    Returns
    -------
    DataFrame
        As :func:`segment_drift`.
    """
    from monitoring.drift import CategoryTally, NumericTally, WindowTallies, compute_drift_from_counts
    from monitoring.windows import Windows

    counted = {name: frame.assign(segment=segment_names(counts, frame).to_numpy()) if len(frame)
               else frame.assign(segment=pd.Series(dtype=object)) for name, frame in counts.drift.items()}
    rows = []
    for segment in sorted(sizes):
        n = int(sizes[segment])
        profile = plan.profiles.get(segment)
        if n < plan.min_rows or profile is None:
            rows.append({"segment": segment, "n_drifted": math.nan, "drifted_features": ""})
            continue
        tallies = {}
        for name in profile.features:
            mine = counted[name][counted[name]["segment"] == segment]
            if name in plan.edges:
                fine = np.asarray(profile.columns[name].fine_edges, dtype=float)
                step = mine["step"].to_numpy(dtype=np.int64)
                missing = step < 0
                within = _steps_within(plan.edges[name], fine)[step[~missing]]
                steps = np.zeros((1, 2 * len(fine) + 1), dtype=np.int64)
                sums = np.zeros((1, 2 * len(fine) + 1), dtype=float)
                np.add.at(steps[0], within, mine["n"].to_numpy(dtype=np.int64)[~missing])
                np.add.at(sums[0], within, mine["s"].to_numpy(dtype=float)[~missing])
                tallies[name] = NumericTally(steps=steps, sums=sums,
                                             missing=np.array([int(mine["n"].to_numpy()[missing].sum())]))
            else:
                absent = np.array([_is_missing(v) for v in mine["value"].tolist()], dtype=bool)
                present = mine[~absent].groupby("value", sort=True)["n"].sum()
                tallies[name] = CategoryTally(values=tuple(v.item() if isinstance(v, np.generic) else v
                                                           for v in present.index),
                                              counts=present.to_numpy(dtype=np.int64).reshape(1, -1),
                                              missing=np.array([int(mine["n"].to_numpy()[absent].sum())]))
        windows = Windows(spec=n, index=np.empty(0, dtype=np.intp), start=np.array([np.nan]),
                          end=np.array([np.nan]), n_rows=np.array([n], dtype=np.int64), n_unassigned=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an all-missing column in a small segment is just not scored
            report = compute_drift_from_counts(profile, WindowTallies(windows=windows, columns=tallies))
        drifted = report.features[report.features["drifted"]]
        drifted = drifted.assign(excess=(drifted["score"] / drifted["threshold"]))
        names = drifted.sort_values("excess", ascending=False)["feature"].tolist()
        rows.append({"segment": segment, "n_drifted": float(len(names)), "drifted_features": ", ".join(names)})
    return pd.DataFrame(rows, columns=["segment", "n_drifted", "drifted_features"])


def segment_drift(frame: pd.DataFrame, reference: pd.DataFrame, features: Sequence[str], kinds: Mapping[str, str], *,
                  n_bins: int = 4, min_rows: int = 30) -> pd.DataFrame:
    """Feature drift inside each segment: its production rows against its own training rows.

    Each segment is compared with the same segment of the reference (training) data, every
    feature with the method ``auto`` picks (:func:`monitoring.drift.compute_drift_from_counts`,
    one window), so a segment whose inputs moved shows even when its share of traffic did not.
    The rows are counted as a log is where it lives (:func:`drift_from_counts`).

    Parameters
    ----------
    frame : DataFrame
        Production rows with the features.
    reference : DataFrame
        Training rows with the features.
    features : sequence of str
        The segmenting features.
    kinds : mapping of str to {"numeric", "categorical"}
        Every model feature to check, and its kind.
    n_bins : int, default=4
    min_rows : int, default=30
        Segments with fewer production or reference rows are not checked (NaN).

    Returns
    -------
    DataFrame
        ``segment``, ``n_drifted`` (features that drifted; NaN when not checked) and
        ``drifted_features`` (their names, most drifted first, comma-separated).
    """
    from monitoring.segment_queries import frame_segment_counts

    plan = segment_drift_plan(reference, features, kinds, columns=list(frame.columns), n_bins=n_bins,
                              min_rows=min_rows)
    counts = frame_segment_counts(frame.assign(prediction=np.nan) if "prediction" not in frame else frame, features,
                                  task="regression", classes=(), n_bins=n_bins,
                                  edges=segment_edges(reference, features, n_bins=n_bins), sample_rows=0,
                                  drift_edges=plan.edges, drift_categorical=plan.categorical)
    cells = _labelled_cells(counts)
    return drift_from_counts(counts, plan, cells.groupby("segment")["n"].sum().to_dict())


def segment_importance(explainer, X: pd.DataFrame, segments: pd.Series, *, n_rows: int = 50, top: int = 3,
                       output: int | str = 0, random_state: int = 0,
                       progress: Callable[[float, str], None] | None = None) -> pd.DataFrame:
    """Top features by mean |SHAP| per segment, from one explanation of a bounded sample.

    Parameters
    ----------
    explainer : object with ``explain(X) -> ShapValues``
        E.g. :class:`explain.ShapExplainer`.
    X : DataFrame
        Rows in the model's raw feature space.
    segments : Series
        Segment of each row of ``X`` (:func:`assign_segments`).
    n_rows : int, default=50
        At most this many rows per segment are explained, so the cost is bounded by
        ``n_rows × number of segments``.
    top : int, default=3
    output : int or str, default=0
        Which model output (class) to explain.
    random_state : int, default=0
    progress : callable, optional
        ``progress(fraction, text)``, passed to the explainer (black-box explanations report
        the model rows sent so far).

    Returns
    -------
    DataFrame
        ``segment``, ``rank`` (1 = most important), ``feature``, ``mean_abs_shap``,
        ``n_explained``.
    """
    check_argument("n_rows", n_rows, Interval(int, 1))
    segments = pd.Series(np.asarray(segments, dtype=object), index=X.index)
    sample = (segments.groupby(segments, sort=True, group_keys=False)
              .apply(lambda g: g.sample(min(len(g), n_rows), random_state=random_state)))
    rows = X.loc[sample.index].reset_index(drop=True)
    values = explainer.explain(rows, progress=progress) if progress is not None else explainer.explain(rows)
    k = values.output_index(output)
    magnitude = pd.DataFrame(np.abs(values.values[:, :, k]), columns=list(values.features))
    magnitude["segment"] = sample.to_numpy()
    means = magnitude.groupby("segment", sort=True)
    counts = means.size()
    out = []
    for name, group in means.mean().iterrows():
        best = group.sort_values(ascending=False, kind="stable").head(top)
        for rank, (feature, value) in enumerate(best.items(), start=1):
            out.append({"segment": name, "rank": rank, "feature": feature, "mean_abs_shap": float(value),
                        "n_explained": int(counts[name])})
    return pd.DataFrame(out, columns=["segment", "rank", "feature", "mean_abs_shap", "n_explained"])


def fairness_metrics(y_pred, sensitive, *, y_true=None, positive_label: float | None = None,
                     classes: Sequence[float] = (), min_rows: int = 30,
                     sensitive_feature: str = "sensitive feature") -> FairnessReport:
    """Demographic parity and equalised odds across the groups of a sensitive feature, with fairlearn.

    With more than two classes the metrics are one-vs-rest: a decision of ``positive_label``
    is positive, a decision of any other class negative (and likewise for the labels), so
    the selection rate is the share of the group's predictions that decided that class. The
    rows are counted per group as a log is where it lives (:func:`fairness_from_counts`).

    Parameters
    ----------
    y_pred : array-like of shape (n_rows,)
        Decided classes.
    sensitive : array-like of shape (n_rows,)
        Group of each row (missing values form their own group).
    y_true : array-like of shape (n_rows,), optional
        Labels, NaN where unknown; equalised odds needs them.
    positive_label : float, optional
        The class counted as the positive decision; default the last (largest) class.
    classes : sequence of float, default=()
        The model's classes; the predicted ones are added (and 0 and 1 when every class is
        0 or 1, so a binary model that predicted one class so far is still binary).
    min_rows : int, default=30
        Groups with fewer predictions are marked too small and left out of the differences.
    sensitive_feature : str, default="sensitive feature"
        Its name, for the sentences.

    Returns
    -------
    FairnessReport
        ``accuracy`` per group is the share of right decisions over every class.

    Raises
    ------
    ValueError
        When ``positive_label`` is not one of the classes.
    """
    from monitoring.segment_queries import frame_segment_counts

    predicted = np.asarray(y_pred, dtype=float)
    groups = pd.Series(sensitive).astype(object).reset_index(drop=True)
    groups = groups.where(groups.notna(), MISSING).astype(str)
    truth = np.full(len(predicted), np.nan) if y_true is None else np.asarray(y_true, dtype=float)
    counts = frame_segment_counts(pd.DataFrame({"group": groups, "prediction": predicted, "label": truth}), ["group"],
                                  task="classification", classes=tuple(float(c) for c in classes), sample_rows=0)
    return fairness_from_counts(counts, positive_label=positive_label, min_rows=min_rows,
                                sensitive_feature=sensitive_feature)


def fairness_from_counts(counts, *, positive_label: float | None = None, min_rows: int = 30,
                         sensitive_feature: str | None = None) -> FairnessReport:
    """:func:`fairness_metrics` of the groups of one feature counted where their rows are.

    fairlearn's ``MetricFrame`` reads one row per group, decision and outcome, weighted by how many
    predictions it stands for (``sample_weight``): the same selection rates, true- and
    false-positive rates, differences and ratio as on the rows themselves.

    Parameters
    ----------
    counts : monitoring.segment_queries.SegmentCounts
        Of a classifier, counted by one feature (its groups).
    positive_label : float, optional
        The class counted as the positive decision; default the last (largest) class.
    min_rows : int, default=30
    sensitive_feature : str, optional
        Its name, for the sentences (default the feature counted by).

    Returns
    -------
    FairnessReport

    Raises
    ------
    ValueError
        When ``positive_label`` is not one of the classes.
    """
    from fairlearn.metrics import MetricFrame, false_positive_rate, selection_rate, true_positive_rate

    cells = counts.cells
    groups = segment_names(counts, cells, with_names=False).to_numpy(dtype=object) if len(cells) else np.array(
        [], dtype=object)
    predicted = cells["prediction"].to_numpy(dtype=float)
    truth = cells["label"].to_numpy(dtype=float)
    weight = cells["n"].to_numpy(dtype=np.int64)
    found_classes = {float(c) for c in counts.classes} | set(np.unique(predicted[np.isfinite(predicted)]).tolist())
    if found_classes <= {0.0, 1.0}:
        found_classes |= {0.0, 1.0}
    classes = tuple(sorted(found_classes))
    if positive_label is None:
        positive_label = classes[-1]
    elif float(positive_label) not in found_classes:
        raise ValueError(f"positive_label must be one of the classes {[class_column(c) for c in classes]}; "
                         f"got {positive_label!r}")
    positive_label = float(positive_label)
    decided = (predicted == positive_label).astype(int)
    actual = (truth == positive_label).astype(int)
    known = np.isfinite(truth)

    def weighted(rows: np.ndarray, **columns) -> pd.DataFrame:
        """One row per distinct (group, columns...) among ``rows``, weighted by its predictions."""
        frame = pd.DataFrame({"group": groups[rows], **{k: v[rows] for k, v in columns.items()},
                              "w": weight[rows]})
        frame = frame.groupby(["group", *columns], sort=True, as_index=False)["w"].sum()
        return frame[frame["w"] > 0]

    def metric_frame(frame: pd.DataFrame, metrics: dict, y_true: str, y_pred: str) -> MetricFrame:
        return MetricFrame(metrics=metrics, y_true=frame[y_true].to_numpy(), y_pred=frame[y_pred].to_numpy(),
                           sensitive_features=pd.Series(frame["group"].to_numpy(), name="group"),
                           sample_params={name: {"sample_weight": frame["w"].to_numpy(dtype=float)}
                                          for name in metrics})

    every = np.ones(len(cells), dtype=bool)
    sizes = pd.Series(weight, dtype=np.int64).groupby(pd.Series(groups, dtype=object)).sum()
    by_group = pd.DataFrame({"group": sizes.index.astype(str), "n": sizes.to_numpy(dtype=np.int64)})
    by_group = by_group[by_group["n"] > 0].reset_index(drop=True)
    decisions = weighted(every, decided=decided)
    by_group["selection_rate"] = by_group["group"].map(
        metric_frame(decisions, {"selection_rate": selection_rate}, "decided", "decided").by_group["selection_rate"]
    ).astype(float) if len(decisions) else math.nan
    by_group["too_small"] = by_group["n"] < min_rows
    large = set(by_group.loc[~by_group["too_small"], "group"])
    dp_difference = dp_ratio = eo_difference = math.nan
    judged = decisions[decisions["group"].isin(large)]
    if len(large) >= 2:
        frame = metric_frame(judged, {"selection_rate": selection_rate}, "decided", "decided")
        dp_difference, dp_ratio = float(frame.difference()["selection_rate"]), float(frame.ratio()["selection_rate"])
    for column in ("n_labelled", "true_positive_rate", "false_positive_rate", "accuracy"):
        by_group[column] = 0 if column == "n_labelled" else math.nan
    if known.any() and weight[known].sum() > 0:
        outcomes = weighted(known, actual=actual, decided=decided)
        rates = metric_frame(outcomes, {"true_positive_rate": true_positive_rate,
                                        "false_positive_rate": false_positive_rate}, "actual", "decided").by_group
        labelled = outcomes.groupby("group")["w"].sum()
        scored = known & np.isfinite(predicted)
        right = pd.Series(np.where(scored & (truth == predicted), weight, 0)).groupby(groups).sum()
        judged_rows = pd.Series(np.where(scored, weight, 0)).groupby(groups).sum()
        by_group["n_labelled"] = by_group["group"].map(labelled).fillna(0).astype(int)
        by_group["true_positive_rate"] = by_group["group"].map(rates["true_positive_rate"]).astype(float)
        by_group["false_positive_rate"] = by_group["group"].map(rates["false_positive_rate"]).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            accuracy = (right / judged_rows).where(judged_rows > 0)
        by_group["accuracy"] = by_group["group"].map(accuracy).astype(float)
        both = outcomes[outcomes["group"].isin(large)]
        if both["group"].nunique() >= 2:
            odds = metric_frame(both, {"tpr": true_positive_rate, "fpr": false_positive_rate}, "actual", "decided")
            eo_difference = float(odds.difference().max())
    ok = None if not math.isfinite(dp_ratio) else bool(dp_ratio >= FOUR_FIFTHS)
    columns = ["group", "n", "selection_rate", "n_labelled", "true_positive_rate", "false_positive_rate", "accuracy",
               "too_small"]
    name = sensitive_feature if sensitive_feature is not None else counts.specs[0].name
    return FairnessReport(name, by_group[columns], dp_difference, dp_ratio, eo_difference, ok, min_rows,
                          positive_label, classes)


def segments_report(counts, *, reference: pd.DataFrame | None = None, plan: DriftPlan | None = None,
                    n_bins: int = 4, min_rows: int = 30) -> SegmentTable:
    """:func:`segments_from_counts` with, when a drift plan is given, the drift inside each segment.

    Parameters
    ----------
    counts : monitoring.segment_queries.SegmentCounts
        Counted with the plan's ``edges`` and ``categorical`` as drift columns when there is a plan.
    reference : DataFrame, optional
        Training rows (their features); training shares come from it.
    plan : DriftPlan, optional
        :func:`segment_drift_plan` of the same reference.
    n_bins, min_rows : int

    Returns
    -------
    SegmentTable
        With ``n_drifted`` and ``drifted_features`` columns when a plan is given.
    """
    import dataclasses

    result = segments_from_counts(counts, reference=reference, n_bins=n_bins, min_rows=min_rows)
    if plan is None:
        return result
    drift = drift_from_counts(counts, plan, dict(zip(result.table["segment"], result.table["n"], strict=True)))
    return dataclasses.replace(result, table=result.table.merge(drift, on="segment", how="left"))


def segments_fairness(counts, *, min_rows: int = 30, positive: float | None = None) -> FairnessReport | None:
    """Fairness of the decisions across the groups of the one feature ``counts`` were counted by
    (:func:`fairness_from_counts`; counted with no reference edges, ``with_names=False`` groups).

    With more than two classes, one class against the rest: ``positive`` is the class counted as
    the positive decision (by default, and when it is not one of the classes, the last class).

    Returns
    -------
    FairnessReport or None
        None for a regression model (it makes no decisions to compare).
    """
    if counts.task != "classification":
        return None
    classes = _classes_of(counts)
    if positive is None or float(positive) not in classes:
        positive = classes[-1] if classes else None
    return fairness_from_counts(counts, positive_label=positive, min_rows=min_rows)


def first_categorical(kinds: pd.DataFrame | Mapping[str, str], features: Sequence[str]) -> str | None:
    """The first of ``features`` that holds categories (the report's segmenting feature), or None.

    ``kinds`` is a frame of rows (its columns' types tell) or each feature's kind (the service's schema).
    """
    for name in features:
        if isinstance(kinds, pd.DataFrame):
            if name in kinds.columns and not _is_numeric(kinds[name]):
                return name
        elif kinds.get(name) == "categorical":
            return name
    return None


def rows_per_segment(n_segments: int, *, at_most: int, model_rows_per_row: int, model_rows_budget: int | None,
                     at_least: int = 10) -> int:
    """How many predictions of each segment to explain: ``at_most`` in all, fewer when the service's budget says so.

    Parameters
    ----------
    n_segments : int
    at_most : int
        Rows to explain in all, at most.
    model_rows_per_row : int
        Model rows one explained row costs the service (0 for a local model: no limit but ``at_most``).
    model_rows_budget : int or None
        Model rows one computation may send (``[services.explain] max_rows_per_computation``).
    at_least : int, default=10
        Rows per segment wanted when the budget allows them.

    Returns
    -------
    int
        At least 1: a budget too small even for one row per segment is refused by the model source,
        with its message.
    """
    n_segments = max(int(n_segments), 1)
    wanted = max(at_least, at_most // n_segments)
    if model_rows_per_row <= 0 or model_rows_budget is None:
        return wanted
    affordable = model_rows_budget // (model_rows_per_row * n_segments)
    return max(1, min(wanted, affordable))
