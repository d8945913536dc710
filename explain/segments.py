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


def _feature_labels(values: pd.Series, name: str, *, n_bins: int, edges: np.ndarray | None,
                    with_name: bool = True) -> pd.Series:
    if not _is_numeric(values) or values.nunique(dropna=True) <= n_bins:
        text = values.astype(object).where(values.notna(), MISSING).astype(str)
        return f"{name} = " + text if with_name else text
    numbers = values.to_numpy(dtype=float)
    edges = _bin_edges(numbers, n_bins) if edges is None else edges
    inner = edges[1:-1]
    index = np.searchsorted(inner, numbers, side="right")
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
    labels = np.asarray(names, dtype=object)[index]
    labels[~np.isfinite(numbers)] = f"{name} {MISSING}" if with_name else MISSING
    return pd.Series(labels, index=values.index, dtype=object)


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
    """Volume, prediction rate, performance and share drift per segment.

    Parameters
    ----------
    frame : DataFrame
        Production rows: the features, ``prediction`` and ``label`` (NaN while unknown).
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
    from monitoring.statistics import group_metrics

    edges = segment_edges(reference, features, n_bins=n_bins) if reference is not None else None
    segments = assign_segments(frame, features, n_bins=n_bins, edges=edges)
    predicted = pd.to_numeric(frame["prediction"], errors="coerce").to_numpy(dtype=float)
    label = (pd.to_numeric(frame["label"], errors="coerce").to_numpy(dtype=float) if "label" in frame
             else np.full(len(frame), np.nan))
    classification = task == "classification"
    if classification:
        seen = np.unique(predicted[np.isfinite(predicted)]).tolist()
        classes = tuple(sorted({float(c) for c in classes} | set(seen)))
    else:
        classes = ()
    binary = classification and len(classes) == 2
    class_columns = {class_column(c): c for c in classes} if classification and not binary else {}
    metrics = ("mae", "rmse") if task == "regression" else ("accuracy", "f1") if binary else ("accuracy",)
    ref_share = pd.Series(dtype=float)
    if reference is not None and all(f in reference for f in features):
        ref_share = assign_segments(reference, features, n_bins=n_bins, edges=edges).value_counts(normalize=True)
    score = (pd.to_numeric(frame["score"], errors="coerce").to_numpy(dtype=float) if "score" in frame
             else np.full(len(frame), np.nan))
    rng = np.random.default_rng(random_state)
    rows = []
    codes, uniques = pd.factorize(segments, sort=True)
    for code, name in enumerate(uniques):
        member = codes == code
        y_pred = predicted[member]
        y_true = label[member]
        known = np.isfinite(y_true) & np.isfinite(y_pred)
        row = {"segment": name, "n": int(member.sum()), "n_labelled": int(known.sum())}
        decided = np.isfinite(y_pred)
        if task == "regression":
            row["mean_prediction"] = float(np.mean(y_pred[decided])) if decided.any() else math.nan
        elif binary:
            row["prediction_rate"] = float(np.mean(y_pred[decided] == classes[-1])) if decided.any() else math.nan
        for column, value in class_columns.items():
            row[column] = float(np.mean(y_pred[decided] == value)) if decided.any() else math.nan
        # the Performance page's metrics and intervals (monitoring.statistics), one path for both pages
        values = group_metrics(y_true[known], y_pred[known], score[member][known], task=task, classes=classes,
                               metrics=metrics, confidence=confidence, n_resamples=n_resamples,
                               rng=rng if known.any() else None)
        for metric in metrics:
            row[metric] = values.get(metric, math.nan)
            row[f"{metric}_low"] = values.get(f"{metric}_low", math.nan)
            row[f"{metric}_high"] = values.get(f"{metric}_high", math.nan)
        rows.append(row)
    table = pd.DataFrame(rows)
    table["share"] = table["n"] / max(len(frame), 1)
    table["reference_share"] = table["segment"].map(ref_share).astype(float) if len(ref_share) else math.nan
    if len(ref_share):
        table["reference_share"] = table["reference_share"].fillna(0.0)
    table["share_change"] = table["share"] - table["reference_share"]
    labelled = table["n_labelled"].sum() > 0
    table["too_small"] = (table["n"] < min_rows) | ((table["n_labelled"] < min_rows) if labelled else False)
    rate = list(class_columns) if class_columns else ["prediction_rate"] if binary else ["mean_prediction"]
    bounds = [f"{m}_{b}" for m in metrics for b in ("low", "high")]
    order = ["segment", "n", "share", "reference_share", "share_change", *rate, "n_labelled", *metrics, *bounds,
             "too_small"]
    table = table[order].sort_values("n", ascending=False, kind="stable").reset_index(drop=True)
    return SegmentTable(table, tuple(features), task, metrics, min_rows, classes, class_columns)


def segment_drift(frame: pd.DataFrame, reference: pd.DataFrame, features: Sequence[str], kinds: Mapping[str, str], *,
                  n_bins: int = 4, min_rows: int = 30) -> pd.DataFrame:
    """Feature drift inside each segment: its production rows against its own training rows.

    Each segment is compared with the same segment of the reference (training) data, every
    feature with the method ``auto`` picks (:func:`monitoring.drift.compute_drift`, one
    window), so a segment whose inputs moved shows even when its share of traffic did not.

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
    from monitoring.drift import build_profile, compute_drift

    edges = segment_edges(reference, features, n_bins=n_bins)
    current_segments = assign_segments(frame, features, n_bins=n_bins, edges=edges)
    reference_segments = assign_segments(reference, features, n_bins=n_bins, edges=edges)
    checked = {name: kind for name, kind in kinds.items() if name in frame and name in reference}
    rows = []
    for segment in sorted(current_segments.unique()):
        current = frame[(current_segments == segment).to_numpy()]
        training = reference[(reference_segments == segment).to_numpy()]
        if len(current) < min_rows or len(training) < min_rows:
            rows.append({"segment": segment, "n_drifted": math.nan, "drifted_features": ""})
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an all-missing column in a small segment is just not scored
            profile = build_profile(training[list(checked)], checked, prediction_columns=())
            report = compute_drift(profile, current[list(checked)], window=len(current))
        drifted = report.features[report.features["drifted"]]
        drifted = drifted.assign(excess=(drifted["score"] / drifted["threshold"]))
        names = drifted.sort_values("excess", ascending=False)["feature"].tolist()
        rows.append({"segment": segment, "n_drifted": float(len(names)), "drifted_features": ", ".join(names)})
    return pd.DataFrame(rows, columns=["segment", "n_drifted", "drifted_features"])


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
    the selection rate is the share of the group's predictions that decided that class.

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
    from fairlearn.metrics import (
        MetricFrame,
        count,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )
    from sklearn.metrics import accuracy_score

    predicted = np.asarray(y_pred, dtype=float)
    found_classes = {float(c) for c in classes} | set(np.unique(predicted[np.isfinite(predicted)]).tolist())
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
    groups = pd.Series(sensitive).astype(object)
    groups = groups.where(groups.notna(), MISSING).astype(str).to_numpy()
    frame = MetricFrame(metrics={"n": count, "selection_rate": selection_rate}, y_true=decided, y_pred=decided,
                        sensitive_features=pd.Series(groups, name="group"))
    by_group = frame.by_group.reset_index()
    by_group["n"] = by_group["n"].astype(int)
    by_group["too_small"] = by_group["n"] < min_rows
    large = set(by_group.loc[~by_group["too_small"], "group"])
    keep = np.isin(groups, list(large))
    dp_difference = dp_ratio = eo_difference = math.nan
    if len(large) >= 2:
        judged = MetricFrame(metrics=selection_rate, y_true=decided[keep], y_pred=decided[keep],
                             sensitive_features=groups[keep])
        dp_difference, dp_ratio = float(judged.difference()), float(judged.ratio())
    for column in ("n_labelled", "true_positive_rate", "false_positive_rate", "accuracy"):
        by_group[column] = 0 if column == "n_labelled" else math.nan
    if y_true is not None:
        truth = np.asarray(y_true, dtype=float)
        known = np.isfinite(truth)
        if known.any():
            actual = (truth[known] == positive_label).astype(int)
            labelled = MetricFrame(metrics={"n_labelled": count, "true_positive_rate": true_positive_rate,
                                            "false_positive_rate": false_positive_rate},
                                   y_true=actual, y_pred=decided[known],
                                   sensitive_features=pd.Series(groups[known], name="group"))
            found = labelled.by_group.assign(accuracy=math.nan)
            scored = known & np.isfinite(predicted)
            if scored.any():
                right = MetricFrame(metrics={"accuracy": accuracy_score}, y_true=truth[scored],
                                    y_pred=predicted[scored],
                                    sensitive_features=pd.Series(groups[scored], name="group"))
                found["accuracy"] = right.by_group["accuracy"].reindex(found.index)
            by_group = by_group.drop(columns=list(found.columns)).merge(found.reset_index(), on="group", how="left")
            by_group["n_labelled"] = by_group["n_labelled"].fillna(0).astype(int)
            both = known & keep
            if len(set(groups[both])) >= 2:
                odds = MetricFrame(metrics={"tpr": true_positive_rate, "fpr": false_positive_rate},
                                   y_true=(truth[both] == positive_label).astype(int), y_pred=decided[both],
                                   sensitive_features=groups[both])
                eo_difference = float(odds.difference().max())
    ok = None if not math.isfinite(dp_ratio) else bool(dp_ratio >= FOUR_FIFTHS)
    columns = ["group", "n", "selection_rate", "n_labelled", "true_positive_rate", "false_positive_rate", "accuracy",
               "too_small"]
    return FairnessReport(sensitive_feature, by_group[columns], dp_difference, dp_ratio, eo_difference, ok,
                          min_rows, positive_label, classes)


# -- one period's logged predictions, as the Segments page and the report read them ----------------


@dataclass(frozen=True)
class SegmentRows:
    """Logged predictions of one period with their labels, and what the model decides.

    Attributes
    ----------
    frame : DataFrame
        Production rows of the period (``ts``, the features, ``id``, ``prediction``,
        ``score``) with ``label`` (NaN while unknown).
    task : {"classification", "regression"}
    classes : tuple of float
        Classes of a classifier (sorted), else empty.
    """

    frame: pd.DataFrame
    task: str
    classes: tuple = ()


def segment_rows(frame: pd.DataFrame, *, now: float, days: float, labeled=None, task: str = "auto") -> SegmentRows:
    """The predictions of the ``days`` before ``now``, each with its label where one arrived.

    Parameters
    ----------
    frame : DataFrame
        The service's logged predictions (``ts``, ``id``, ``prediction``, the features).
    now : float
        End of the period (Unix seconds).
    days : float
    labeled : monitoring.labels.LabeledPredictions, optional
        The predictions joined to their labels; None when the service has no labels (then
        the task is inferred from the predictions, or taken from ``task``).
    task : {"auto", "classification", "regression"}, default="auto"
        Used when ``labeled`` is None.
    """
    from monitoring.labels import infer_task, predicted_classes

    period = frame[frame["ts"].to_numpy() >= now - days * 86400.0]
    if labeled is None:
        task = infer_task(period) if task == "auto" else task
        classes = predicted_classes(period) if task == "classification" else ()
        return SegmentRows(period.assign(label=np.nan), task, classes)
    labels = pd.Series(labeled.frame["label"].to_numpy(), index=labeled.frame["id"].astype(str))
    labels = labels[~labels.index.duplicated()]
    ids = period["id"].astype(str) if "id" in period else pd.Series("", index=period.index)
    label = pd.to_numeric(ids.map(labels), errors="coerce").to_numpy(dtype=float)
    return SegmentRows(period.assign(label=label), labeled.task, tuple(labeled.classes))


def segments_report(rows: SegmentRows, features: Sequence[str], *, reference: pd.DataFrame | None = None,
                    kinds: Mapping[str, str] | None = None, n_bins: int = 4, min_rows: int = 30) -> SegmentTable:
    """:func:`segment_metrics` of ``rows`` with, when a reference is given, the drift inside each segment.

    Parameters
    ----------
    rows : SegmentRows
    features : sequence of str
        One or two segmenting features.
    reference : DataFrame, optional
        Training rows (their features); bin edges, training shares and in-segment drift come from it.
    kinds : mapping of str to {"numeric", "categorical"}, optional
        Kind of each feature for the drift (the service's schema); inferred from the reference otherwise.
    n_bins, min_rows : int

    Returns
    -------
    SegmentTable
        With ``n_drifted`` and ``drifted_features`` columns when a reference is given.
    """
    import dataclasses

    from monitoring.reference import MODEL_OUTPUTS, infer_kinds

    result = segment_metrics(rows.frame, features, task=rows.task, classes=rows.classes, n_bins=n_bins,
                             min_rows=min_rows, reference=reference)
    if reference is None:
        return result
    kinds = dict(kinds) if kinds else infer_kinds(reference.drop(columns=[c for c in reference.columns
                                                                          if c in MODEL_OUTPUTS]))
    drift = segment_drift(rows.frame, reference, features, kinds, n_bins=n_bins, min_rows=min_rows)
    return dataclasses.replace(result, table=result.table.merge(drift, on="segment", how="left"))


def segments_fairness(rows: SegmentRows, sensitive: str, *, n_bins: int = 4, min_rows: int = 30,
                      positive: float | None = None) -> FairnessReport | None:
    """Fairness of the decisions across the groups of ``sensitive`` (:func:`fairness_metrics`).

    With more than two classes, one class against the rest: ``positive`` is the class counted as
    the positive decision (by default, and when it is not one of the classes, the last class).

    Returns
    -------
    FairnessReport or None
        None for a regression model (it makes no decisions to compare).
    """
    if rows.task != "classification":
        return None
    frame = rows.frame
    predicted = pd.to_numeric(frame["prediction"], errors="coerce").dropna().to_numpy(dtype=float)
    classes = tuple(sorted({float(c) for c in rows.classes} | set(np.unique(predicted).tolist())))
    if positive is None or float(positive) not in classes:
        positive = classes[-1] if classes else None
    groups = assign_segments(frame, [sensitive], n_bins=n_bins, with_names=False)
    return fairness_metrics(frame["prediction"].to_numpy(dtype=float), groups, y_true=frame["label"],
                            positive_label=positive, classes=classes, min_rows=min_rows, sensitive_feature=sensitive)


def first_categorical(frame: pd.DataFrame, features: Sequence[str]) -> str | None:
    """The first of ``features`` that holds categories in ``frame`` (the report's segmenting feature), or None."""
    for name in features:
        if name in frame.columns and not _is_numeric(frame[name]):
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
