"""What-if analysis and counterfactuals for one prediction, through any model source.

Never imports Streamlit. Every function sends its rows to the model in a few batched calls
(for a :class:`~explain.RemoteModel`, in requests of the service's ``max_rows_per_request``
rows, paced by its traffic budget and reported through ``progress``):

* :func:`compare` re-predicts an edited row next to the original one (one request) and, with
  an explainer, gives the Shapley values of both.
* :func:`sensitivity` computes an ICE curve of every feature for the current point, over the
  reference's observed range (numeric) or seen categories, in one request, and ranks the
  features by how far each moves the prediction.
* :func:`counterfactuals` searches the smallest plausible changes that flip the decision (or
  bring a regression prediction into a target range): a DiCE-style random search that draws
  new values of 1 to ``max_changes`` allowed features from the reference distribution, plus
  the nearest reference rows with the other outcome (as the What-If Tool does) and sparse
  versions of them; the valid candidates are then pulled back towards the original and
  pruned of unneeded changes, a diverse set is chosen, and every answer is re-checked
  against the model. Values stay inside the reference range and the seen categories.

The feature space (ranges and seen categories) is in :mod:`explain.ranges`; scenarios (an
edited point with a name, shared in a URL) are in :mod:`explain.scenarios`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from explain._errors import WhatIfInputError
from explain._source import ModelSource
from explain.ranges import FeatureRanges, feature_ranges, number_text

# -- one prediction ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PointPrediction:
    """The model's answer for one row.

    Attributes
    ----------
    label : object
        Predicted class (decision at ``threshold`` for a binary model) or value.
    probabilities : tuple of float or None
        Class probabilities in the model's class order (None for regression).
    score : float
        Positive-class probability (binary), the probability of the compared class
        (multiclass: the ``output`` of :func:`compare`, :func:`sensitivity` or
        :func:`counterfactuals`, by default the predicted class of the original row) or the
        predicted value (regression).
    threshold : float or None
        Decision threshold of a binary model.
    """

    label: object
    probabilities: tuple[float, ...] | None
    score: float
    threshold: float | None = None


def _decisions(model: ModelSource, labels: np.ndarray, proba: np.ndarray | None,
               threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Decision (class index, or value) and score per row."""
    if model.task == "regression" or proba is None:
        values = np.asarray(labels, dtype=float)
        return values, values
    if proba.shape[1] == 2:
        return (proba[:, 1] >= threshold).astype(int), proba[:, 1]
    index = proba.argmax(axis=1)
    return index, proba[np.arange(len(proba)), index]


def _classes(model: ModelSource, proba: np.ndarray | None) -> tuple:
    """The model's classes in probability-column order."""
    if model.classes:
        return tuple(model.classes)
    return tuple(range(proba.shape[1])) if proba is not None else ()


def class_text(label) -> str:
    """A class as the pages name it: ``"class 2"`` (whole numbers without ``.0``)."""
    if isinstance(label, float | np.floating) and float(label).is_integer():
        label = int(label)
    return f"class {label}"


def _same_class(a, b) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)


def _output_column(model: ModelSource, proba: np.ndarray | None, output, *, row: int = 0) -> tuple[int | None, object]:
    """The probability column compared on every side, and its class.

    Regression: ``(None, None)``. Binary: the positive class (``output`` must be it or None).
    Multiclass: ``output``'s column, or the predicted class of ``proba[row]`` when None.
    """
    if model.task == "regression" or proba is None:
        if output is not None:
            raise ValueError(f"output must be None for a regression model (it predicts values); got {output!r}")
        return None, None
    classes = _classes(model, proba)
    if proba.shape[1] == 2:
        if output is not None and not _same_class(output, classes[1]):
            raise ValueError(f"a binary model compares the probability of its positive class {classes[1]!r}; "
                             f"output must be it or None, got {output!r}")
        return 1, classes[1]
    if output is None:
        column = int(proba[row].argmax())
        return column, classes[column]
    for column, label in enumerate(classes):
        if _same_class(label, output):
            return column, label
    raise ValueError(f"output must be one of the model's classes {list(classes)}; got {output!r}")


def _check_output(model: ModelSource, output) -> None:
    """Refuse an ``output`` that is not one of the model's known classes before anything is sent."""
    if output is not None and model.classes and not any(_same_class(c, output) for c in model.classes):
        raise ValueError(f"output must be one of the model's classes {list(model.classes)}; got {output!r}")


def _score_name(model: ModelSource, output=None) -> str:
    if model.task == "regression":
        return "predicted value"
    if model.binary:
        return f"probability of {class_text(model.classes[1] if model.classes else 1)}"
    return f"probability of {class_text(output)}" if output is not None else "probability of the predicted class"


def _points(model: ModelSource, labels, proba, threshold: float, *, column: int | None = None
            ) -> list[PointPrediction]:
    decision, score = _decisions(model, labels, proba, threshold)
    if column is not None and proba is not None and proba.shape[1] > 2:
        score = proba[:, column]
    out = []
    for i in range(len(decision)):
        if model.task == "regression" or proba is None:
            out.append(PointPrediction(float(labels[i]), None, float(score[i]), None))
        else:
            classes = model.classes or tuple(range(proba.shape[1]))
            out.append(PointPrediction(classes[int(decision[i])], tuple(float(p) for p in proba[i]),
                                       float(score[i]), threshold if proba.shape[1] == 2 else None))
    return out


def _frame(model: ModelSource, rows: Sequence[Mapping] | pd.DataFrame) -> pd.DataFrame:
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame([dict(r) for r in rows])
    frame = frame.reset_index(drop=True)
    for name, kind in model.feature_kinds.items():
        if name in frame.columns and kind == "categorical":
            frame[name] = frame[name].astype(object)
    return model.conform(frame)


def _predict(model: ModelSource, frame: pd.DataFrame, progress: Callable[[float, str], None] | None):
    """``model.predict(frame)``; a black box reports its model rows through ``progress`` as it goes."""
    if progress is not None and hasattr(model, "predict_batches"):
        return model.predict_batches([frame], progress=progress)[0]
    return model.predict(frame)


def _stage(progress: Callable[[float, str], None] | None, step: int, what: str):
    """The progress of round ``step`` (0-3) of the counterfactual search, as a share of the whole."""
    if progress is None:
        return None
    return lambda fraction, text: progress((step + fraction) / 4, f"step {step + 1} of 4 ({what}): {text}")


def _row_dict(row: Mapping | pd.Series | pd.DataFrame) -> dict:
    if isinstance(row, pd.DataFrame):
        if len(row) != 1:
            raise ValueError(f"row must be one row; got {len(row)} rows")
        row = row.iloc[0]
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in dict(row).items()}


@dataclass(frozen=True)
class WhatIfComparison:
    """The original row and an edited copy, predicted side by side.

    Attributes
    ----------
    original, edited : dict
        Feature values of the two rows.
    original_prediction, edited_prediction : PointPrediction
    differences : DataFrame
        ``feature, original, edited, change`` for the features that differ (``change``:
        edited minus original for numeric features, NaN for categorical ones), plus, when
        Shapley values were computed, ``shap_original, shap_edited, shap_change``.
    shap : ShapValues or None
        Shapley values of the two rows (row 0 original, row 1 edited), all outputs; the
        ``shap_*`` columns of ``differences`` are those of the compared class.
    requests : int
        HTTP requests made for the prediction (0 for a local model).
    seconds : float
    output : object or None
        The class whose probability both scores are (the positive class of a binary model);
        None for regression.
    score_name : str
        What both scores are, e.g. ``"probability of class 2"`` or ``"predicted value"``.
    classes : tuple
        The model's classes in the order of ``probabilities`` (empty for regression).
    """

    original: dict
    edited: dict
    original_prediction: PointPrediction
    edited_prediction: PointPrediction
    differences: pd.DataFrame
    shap: object = None
    requests: int = 0
    seconds: float = 0.0
    output: object = None
    score_name: str = "score"
    classes: tuple = ()

    @property
    def flipped(self) -> bool:
        """Whether the decision (class) changed; for regression whether the value changed."""
        return self.original_prediction.label != self.edited_prediction.label

    @property
    def score_change(self) -> float:
        """Edited score minus original score (of the same class)."""
        return self.edited_prediction.score - self.original_prediction.score

    def probabilities(self) -> pd.DataFrame:
        """``class, original, edited, change`` for every class (empty for regression), in the model's order."""
        before, after = self.original_prediction.probabilities, self.edited_prediction.probabilities
        if not before or not after:
            return pd.DataFrame(columns=["class", "original", "edited", "change"])
        frame = pd.DataFrame({"class": list(self.classes or range(len(before))), "original": list(before),
                              "edited": list(after)})
        return frame.assign(change=frame["edited"] - frame["original"])

    def for_output(self, output) -> WhatIfComparison:
        """The same comparison with both scores (and the SHAP columns) for class ``output``; no new prediction.

        Parameters
        ----------
        output : object
            One of :attr:`classes` (multiclass); for a binary model only its positive class,
            for regression only None.

        Raises
        ------
        ValueError
            When ``output`` is not a class the comparison can show.
        """
        if len(self.classes) <= 2 or self.original_prediction.probabilities is None:
            if output is None or (self.output is not None and _same_class(output, self.output)):
                return self
            raise ValueError(f"output must be {self.output!r} for this model; got {output!r}")
        column = next((i for i, c in enumerate(self.classes) if _same_class(c, output)), None)
        if column is None:
            raise ValueError(f"output must be one of the model's classes {list(self.classes)}; got {output!r}")
        before = dataclasses.replace(self.original_prediction,
                                     score=float(self.original_prediction.probabilities[column]))
        after = dataclasses.replace(self.edited_prediction, score=float(self.edited_prediction.probabilities[column]))
        differences = self.differences
        if self.shap is not None and "shap_original" in differences:
            position = {f: j for j, f in enumerate(self.shap.features)}
            j = differences["feature"].map(position).to_numpy(dtype=int)
            differences = differences.assign(shap_original=self.shap.values[0, j, column],
                                             shap_edited=self.shap.values[1, j, column])
            differences = differences.assign(shap_change=differences["shap_edited"] - differences["shap_original"])
        return dataclasses.replace(self, original_prediction=before, edited_prediction=after,
                                   differences=differences, output=self.classes[column],
                                   score_name=f"probability of {class_text(self.classes[column])}")


def value_changed(a, b) -> bool:
    """Whether an edited value differs from the original: missing (None, NaN) only equals missing, numbers
    within 1e-12 are equal (a value read back from a widget or a link is not an edit), text by equality."""
    a_missing = a is None or (isinstance(a, float) and math.isnan(a))
    b_missing = b is None or (isinstance(b, float) and math.isnan(b))
    if a_missing or b_missing:
        return a_missing != b_missing
    try:
        return not math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=1e-12)
    except (TypeError, ValueError):
        return a != b


def compare(model: ModelSource, original: Mapping | pd.DataFrame, edited: Mapping, *,
            ranges: FeatureRanges | None = None, explainer=None, threshold: float = 0.5,
            output=None) -> WhatIfComparison:
    """Predict an edited row next to the original one (one request), optionally with Shapley values.

    Parameters
    ----------
    model : ModelSource
        The model predicting (the service, or a local artifact).
    original : mapping or one-row DataFrame
        The row as it was predicted.
    edited : mapping
        New values of some or all features; features not given keep the original value.
    ranges : FeatureRanges, optional
        Accepted values; the edited row is checked against them first (an originally
        missing value may stay missing).
    explainer : ShapExplainer, optional
        When given, the Shapley values of both rows are computed too.
    threshold : float, default=0.5
        Positive-class probability from which a binary model decides the positive class.
    output : optional
        Multiclass: the class whose probability both scores are (and whose Shapley values
        the differences show), so the original and the edited row are compared on the same
        class; default the class predicted for the original row. Binary models compare
        their positive class, regression models the predicted value (leave it None).
        :meth:`WhatIfComparison.for_output` switches class without predicting again.

    Returns
    -------
    WhatIfComparison

    Raises
    ------
    WhatIfInputError
        When an edited value is outside ``ranges``; nothing is sent.
    RemoteExplainError
        When the service rejects the rows (its message is in ``reason``).
    ValueError
        When ``output`` is not one of the model's classes.
    """
    started = time.perf_counter()
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold must be between 0 and 1; got {threshold}")
    before = _row_dict(original)
    before = {f: before.get(f) for f in model.features}
    after = {**before, **{k: v for k, v in dict(edited).items() if k in model.features}}
    unknown = [k for k in edited if k not in model.features]
    if unknown:
        raise WhatIfInputError([f"{k} is not a feature of the model; its features are {list(model.features)}"
                                for k in unknown])
    if ranges is not None:
        missing_before = [f for f, v in before.items() if not value_changed(v, None)]
        ranges.check(after, allow_missing=missing_before)
    _check_output(model, output)
    frame = _frame(model, [before, after])
    requests_before = getattr(model, "requests", 0)
    labels, proba = model.predict(frame)
    column, compared = _output_column(model, proba, output)
    first, second = _points(model, labels, proba, threshold, column=column)
    shap_values = explainer.explain(frame) if explainer is not None else None
    k = column if proba is not None and proba.shape[1] > 2 else 0  # the compared output of the Shapley values
    rows = []
    for j, name in enumerate(model.features):
        if not value_changed(before[name], after[name]):
            continue
        change = float("nan")
        if model.feature_kinds.get(name) == "numeric" and before[name] is not None and after[name] is not None:
            change = float(after[name]) - float(before[name])
        entry = {"feature": name, "original": before[name], "edited": after[name], "change": change}
        if shap_values is not None:
            entry |= {"shap_original": float(shap_values.values[0, j, k]),
                      "shap_edited": float(shap_values.values[1, j, k])}
            entry["shap_change"] = entry["shap_edited"] - entry["shap_original"]
        rows.append(entry)
    columns = ["feature", "original", "edited", "change"]
    if shap_values is not None:
        columns += ["shap_original", "shap_edited", "shap_change"]
    differences = pd.DataFrame(rows, columns=columns)
    return WhatIfComparison(before, after, first, second, differences, shap_values,
                            getattr(model, "requests", 0) - requests_before, time.perf_counter() - started,
                            output=compared, score_name=_score_name(model, compared),
                            classes=_classes(model, proba) if proba is not None else ())


# -- sensitivity ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sensitivity:
    """How the prediction of one point moves when each feature alone moves over its range.

    Attributes
    ----------
    point : dict
        The point's feature values.
    score : float
        The point's own score (the probability of :attr:`output`, or the value).
    curves : dict of str to DataFrame
        Per feature, ``value, score`` over its grid (the reference's observed range or seen
        categories), in grid order.
    ranking : DataFrame
        ``feature, kind, current, lowest, highest, swing, best_value, worst_value`` where
        ``swing = highest - lowest``: how far the feature alone can move the score; largest
        first.
    score_name : str
        What the score is, e.g. ``"probability of class 1"``.
    requests : int
    model_rows : int
    seconds : float
    output : object or None
        The class whose probability every curve shows (None for regression).
    """

    point: dict
    score: float
    curves: dict[str, pd.DataFrame]
    ranking: pd.DataFrame
    score_name: str
    requests: int = 0
    model_rows: int = 0
    seconds: float = 0.0
    output: object = None


def _grid(ranges: FeatureRanges, name: str, grid_resolution: int) -> np.ndarray:
    if ranges.kinds[name] == "categorical":
        return np.asarray(ranges.categories[name], dtype=object)
    low, high = ranges.low[name], ranges.high[name]
    if ranges.integer[name] and high - low + 1 <= grid_resolution:
        return np.arange(low, high + 1)
    grid = np.linspace(low, high, grid_resolution)
    return np.unique(np.round(grid)) if ranges.integer[name] else grid


def _scores(model: ModelSource, labels, proba, *, column: int | None = None) -> np.ndarray:
    if model.task == "regression" or proba is None:
        return np.asarray(labels, dtype=float)
    if proba.shape[1] == 2:
        return proba[:, 1]
    return proba[:, column if column is not None else 0]


def sensitivity(model: ModelSource, point: Mapping | pd.DataFrame, ranges: FeatureRanges, *,
                features: Sequence[str] | None = None, grid_resolution: int = 20, output=None,
                progress: Callable[[float, str], None] | None = None) -> Sensitivity:
    """ICE curves of every feature for one point, from one batched request, and their ranking.

    Parameters
    ----------
    model : ModelSource
    point : mapping or one-row DataFrame
    ranges : FeatureRanges
        The grids: ``grid_resolution`` evenly spaced values over each numeric feature's
        observed range (whole numbers for integer features), every seen category.
    features : sequence of str, optional
        Default: every feature of the model.
    grid_resolution : int, default=20
    output : optional
        Multiclass: the class whose probability the curves show; default the class predicted
        for ``point``. Binary models show their positive class, regression the value.
    progress : callable, optional
        Called with (fraction done, text) while a black box is asked.

    Returns
    -------
    Sensitivity

    Raises
    ------
    RemoteExplainError
        When the request fails.
    ValueError
        When ``output`` is not one of the model's classes.
    """
    started = time.perf_counter()
    if grid_resolution < 2:
        raise ValueError(f"grid_resolution must be >= 2; got {grid_resolution}")
    names = tuple(features or model.features)
    unknown = [f for f in names if f not in model.features]
    if unknown:
        raise ValueError(f"features must be among the model's features {list(model.features)}; got {unknown}")
    _check_output(model, output)
    base = _row_dict(point)
    base = {f: base.get(f) for f in model.features}
    rows, spans, grids = [base], [], {}
    for name in names:
        grid = _grid(ranges, name, grid_resolution)
        grids[name] = grid
        spans.append((name, len(rows), len(rows) + len(grid)))
        rows.extend({**base, name: (v.item() if isinstance(v, np.generic) else v)} for v in grid)
    requests_before = getattr(model, "requests", 0)
    labels, proba = _predict(model, _frame(model, rows), progress)
    column, compared = _output_column(model, proba, output)
    scores = _scores(model, labels, proba, column=column)
    curves, ranking = {}, []
    for name, start, stop in spans:
        values = scores[start:stop]
        curves[name] = pd.DataFrame({"value": grids[name], "score": values})
        ranking.append({"feature": name, "kind": ranges.kinds[name], "current": base[name],
                        "lowest": float(values.min()), "highest": float(values.max()),
                        "swing": float(values.max() - values.min()),
                        "best_value": grids[name][int(values.argmin())],
                        "worst_value": grids[name][int(values.argmax())]})
    table = pd.DataFrame(ranking).sort_values("swing", ascending=False, kind="stable").reset_index(drop=True)
    return Sensitivity(base, float(scores[0]), curves, table, _score_name(model, compared),
                       getattr(model, "requests", 0) - requests_before, len(rows), time.perf_counter() - started,
                       compared)


# -- counterfactuals -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Counterfactual:
    """One set of changes that gives the desired outcome.

    Attributes
    ----------
    changes : DataFrame
        ``feature, original, new`` for each changed feature.
    row : dict
        The whole changed row.
    prediction : PointPrediction
        The model's answer for ``row``, re-checked after the search.
    cost : float
        Distance from the original: sum of |change| / interquartile range over numeric
        features plus 1 per changed category.
    origin : {"random", "neighbour"}
        Which part of the search found it.
    """

    changes: pd.DataFrame
    row: dict
    prediction: PointPrediction
    cost: float
    origin: str


@dataclass(frozen=True)
class CounterfactualResult:
    """Counterfactuals of one point.

    Attributes
    ----------
    original : dict
    original_prediction : PointPrediction
    goal : str
        What a counterfactual must achieve, in words.
    counterfactuals : tuple of Counterfactual
        Diverse answers, cheapest first (may be fewer than asked, or none).
    allowed : tuple of str
        Features that were allowed to change.
    candidates : int
        Candidate rows scored.
    requests : int
    seconds : float
    notes : tuple of str
    output : object or None
        The class whose probability is the score of the original and of every answer
        (None for regression, whose score is the predicted value).
    score_name : str
        What the scores are, e.g. ``"probability of class 0"``.
    """

    original: dict
    original_prediction: PointPrediction
    goal: str
    counterfactuals: tuple[Counterfactual, ...]
    allowed: tuple[str, ...]
    candidates: int
    requests: int = 0
    seconds: float = 0.0
    notes: tuple[str, ...] = field(default_factory=tuple)
    output: object = None
    score_name: str = "score"

    def to_frame(self) -> pd.DataFrame:
        """One row per counterfactual and changed feature: ``counterfactual, feature, original, new, score``."""
        rows = [{"counterfactual": i + 1, "feature": r["feature"], "original": r["original"], "new": r["new"],
                 "score": c.prediction.score, "label": c.prediction.label}
                for i, c in enumerate(self.counterfactuals) for r in c.changes.to_dict("records")]
        return pd.DataFrame(rows, columns=["counterfactual", "feature", "original", "new", "score", "label"])


def _check_bounds(ranges: FeatureRanges, allowed: Sequence[str], bounds: Mapping | None) -> dict:
    """Bounds of every allowed feature: (low, high) or a tuple of categories, inside the reference's."""
    out, problems = {}, []
    for name in allowed:
        wanted = (bounds or {}).get(name)
        if ranges.kinds[name] == "numeric":
            low, high = ranges.low[name], ranges.high[name]
            if wanted is not None:
                a, b = float(wanted[0]), float(wanted[1])
                if not (low <= a <= b <= high):
                    problems.append(f"bounds of {name} must satisfy {number_text(low)} <= low <= high <= "
                                    f"{number_text(high)} (the reference range); got ({number_text(a)}, "
                                    f"{number_text(b)})")
                    continue
                low, high = a, b
            out[name] = (low, high)
        else:
            seen = ranges.categories[name]
            chosen = tuple(seen) if wanted is None else tuple(wanted)
            unknown = [c for c in chosen if c not in seen]
            if unknown or not chosen:
                problems.append(f"bounds of {name} must be a non-empty subset of {list(seen)} (the categories seen "
                                f"in the reference); got {list(chosen)}")
                continue
            out[name] = chosen
    if problems:
        raise WhatIfInputError(problems)
    return out


def _cost(ranges: FeatureRanges, original: dict, rows: pd.DataFrame, allowed: Sequence[str]) -> np.ndarray:
    cost = np.zeros(len(rows))
    for name in allowed:
        column = rows[name]
        if ranges.kinds[name] == "numeric":
            new = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
            old = original[name]
            if old is None or (isinstance(old, float) and math.isnan(old)):
                cost += np.where(np.isnan(new), 0.0, 1.0)
            else:
                cost += np.nan_to_num(np.abs(new - float(old)) / ranges.scale[name], nan=1.0)
        else:
            cost += (column.astype(object).to_numpy() != original[name]).astype(float)
    return cost


def _n_changed(original: dict, rows: pd.DataFrame, allowed: Sequence[str]) -> np.ndarray:
    count = np.zeros(len(rows), dtype=int)
    for name in allowed:
        old = original[name]
        count += np.asarray([value_changed(old, v) for v in rows[name].to_numpy()], dtype=int)
    return count


def counterfactuals(model: ModelSource, point: Mapping | pd.DataFrame, reference: pd.DataFrame, *,
                    ranges: FeatureRanges | None = None, n_counterfactuals: int = 3,
                    allowed: Sequence[str] | None = None, bounds: Mapping | None = None,
                    target_range: tuple[float, float] | None = None, desired_class=None, threshold: float = 0.5,
                    max_changes: int = 3, n_candidates: int = 2000, n_neighbours: int = 20,
                    n_reference: int = 1000, random_state: int | None = 0, output=None,
                    progress: Callable[[float, str], None] | None = None) -> CounterfactualResult:
    """The smallest plausible changes of a point that flip its decision (or reach a target range).

    Parameters
    ----------
    model : ModelSource
    point : mapping or one-row DataFrame
    reference : DataFrame
        Reference rows: where new values are drawn from and neighbours are found.
    ranges : FeatureRanges, optional
        Default: :func:`feature_ranges` of ``reference``.
    n_counterfactuals : int, default=3
        Diverse answers wanted.
    allowed : sequence of str, optional
        Features that may change; default: every feature.
    bounds : mapping, optional
        Per allowed feature, ``(low, high)`` (numeric) or the allowed categories; inside the
        reference range and the seen categories.
    target_range : tuple of float, optional
        Regression only (required there): the range the prediction must reach.
    desired_class : optional
        Multiclass: the class wanted; default any class but the original one.
    threshold : float, default=0.5
        Binary decision threshold on the positive-class probability.
    max_changes : int, default=3
        Most features changed at once by the random search.
    n_candidates : int, default=2000
        Random candidates scored.
    n_neighbours : int, default=20
        Nearest reference rows with the desired outcome used as seeds.
    n_reference : int, default=1000
        Reference rows scored to find the neighbours.
    random_state : int or None, default=0
    output : optional
        Multiclass: the class whose probability is reported for the original and for every
        answer, so they are compared on the same class; default ``desired_class`` when given,
        else the class predicted for the original. Binary models report their positive class,
        regression the value.
    progress : callable, optional
        Called with (fraction done, text) while a black box is asked (four rounds of requests).

    Returns
    -------
    CounterfactualResult
        Every counterfactual in it was predicted again, on its own request, with the desired outcome.

    Raises
    ------
    WhatIfInputError
        For bounds outside the reference or unknown allowed features.
    RemoteExplainError
        When a request fails.
    ValueError
        When ``output`` or ``desired_class`` is not one of the model's classes.
    """
    started = time.perf_counter()
    if n_counterfactuals < 1:
        raise ValueError(f"n_counterfactuals must be >= 1; got {n_counterfactuals}")
    if max_changes < 1:
        raise ValueError(f"max_changes must be >= 1; got {max_changes}")
    rng = np.random.default_rng(random_state)
    ranges = ranges or feature_ranges(reference, features=model.features, feature_kinds=model.feature_kinds)
    allowed = tuple(allowed if allowed is not None else model.features)
    unknown = [f for f in allowed if f not in model.features]
    if unknown or not allowed:
        raise WhatIfInputError([f"allowed features must be a non-empty subset of {list(model.features)}; "
                                f"got {list(allowed)}"])
    limits = _check_bounds(ranges, allowed, bounds)
    original = _row_dict(point)
    original = {f: original.get(f) for f in model.features}
    if model.task == "regression" and target_range is None:
        raise ValueError("target_range is required for a regression model: the range the prediction must reach")
    _check_output(model, output)
    _check_output(model, desired_class)
    requests_before = getattr(model, "requests", 0)

    # request 1: the original, a reference sample (for neighbours) and the random candidates
    sample = reference[list(model.features)].sample(min(n_reference, len(reference)),
                                                    random_state=int(rng.integers(1 << 31)))
    sample = sample.reset_index(drop=True)
    randoms = _random_candidates(original, sample, ranges, limits, allowed, max_changes, n_candidates, rng)
    batch = pd.concat([_frame(model, [original]), _frame(model, sample), _frame(model, randoms)], ignore_index=True)
    labels, proba = _predict(model, batch, _stage(progress, 0, "random candidates"))
    desired_column = None
    if desired_class is not None and proba is not None:
        known = _classes(model, proba)
        desired_column = next((i for i, c in enumerate(known) if _same_class(c, desired_class)), None)
        if desired_column is None:
            raise ValueError(f"desired_class must be one of the model's classes {list(known)}; got {desired_class!r}")
        desired_class = known[desired_column]
    multiclass = proba is not None and proba.shape[1] > 2
    column, compared = _output_column(model, proba, output if output is not None or not multiclass
                                      else desired_class)
    first = _points(model, labels[:1], None if proba is None else proba[:1], threshold, column=column)[0]
    decision, score = _decisions(model, labels, proba, threshold)

    def wanted(decision_, score_):
        if model.task == "regression":
            return (score_ >= target_range[0]) & (score_ <= target_range[1])
        if desired_column is not None:
            return decision_ == desired_column
        return decision_ != decision[0]

    if model.task == "regression":
        goal = f"bring the predicted value into [{number_text(target_range[0])}, {number_text(target_range[1])}]"
    elif desired_column is not None:
        goal = f"predict {class_text(desired_class)}"
    else:
        goal = f"change the decision from {class_text(first.label)}"
    ok = wanted(decision, score)
    n_sample = len(sample)
    good_random = randoms[ok[1 + n_sample:]]

    # request 2: nearest reference rows with the desired outcome, copied on the allowed features, and sparse subsets
    others = sample[ok[1:1 + n_sample]]
    seeds = _neighbour_candidates(original, others, ranges, limits, allowed, n_neighbours, rng)
    notes = []
    pool = [good_random.assign(_origin="random")]
    candidates = len(randoms) + n_sample
    if len(seeds):
        labels2, proba2 = _predict(model, _frame(model, seeds), _stage(progress, 1, "neighbours"))
        d2, s2 = _decisions(model, labels2, proba2, threshold)
        pool.append(seeds[wanted(d2, s2)].assign(_origin="neighbour"))
        candidates += len(seeds)
    valid = pd.concat(pool, ignore_index=True)
    if valid.empty:
        return CounterfactualResult(original, first, goal, (), allowed, candidates,
                                    getattr(model, "requests", 0) - requests_before, time.perf_counter() - started,
                                    ("no candidate within the bounds reached the goal: allow more features or "
                                     "wider bounds",), compared, _score_name(model, compared))
    valid = valid.assign(_cost=_cost(ranges, original, valid, allowed))
    valid = valid.sort_values("_cost", kind="stable").head(60).reset_index(drop=True)

    # request 3: pull each valid candidate back towards the original, one feature at a time
    refined = _refinements(original, valid, ranges, allowed)
    if len(refined):
        labels3, proba3 = _predict(model, _frame(model, refined), _stage(progress, 2, "refinements"))
        d3, s3 = _decisions(model, labels3, proba3, threshold)
        valid = pd.concat([valid.drop(columns="_cost"), refined[wanted(d3, s3)]], ignore_index=True)
        candidates += len(refined)
        valid = valid.assign(_cost=_cost(ranges, original, valid, allowed))
    chosen = _diverse(original, valid, allowed, n_counterfactuals)

    # request 4: re-check every chosen answer against the model
    answers: list[Counterfactual] = []
    if len(chosen):
        rows = chosen[list(model.features)]
        labels4, proba4 = _predict(model, _frame(model, rows), _stage(progress, 3, "re-check"))
        d4, s4 = _decisions(model, labels4, proba4, threshold)
        keep = wanted(d4, s4)
        points = _points(model, labels4, proba4, threshold, column=column)
        for i in range(len(chosen)):
            if not keep[i]:
                notes.append("a candidate did not reach the goal when re-checked and was dropped")
                continue
            row = {f: _plain(chosen[f].iloc[i]) for f in model.features}
            changes = pd.DataFrame([{"feature": f, "original": original[f], "new": row[f]}
                                    for f in model.features if value_changed(original[f], row[f])],
                                   columns=["feature", "original", "new"])
            answers.append(Counterfactual(changes, row, points[i], float(chosen["_cost"].iloc[i]),
                                          str(chosen["_origin"].iloc[i])))
    if len(answers) < n_counterfactuals:
        notes.append(f"found {len(answers)} of the {n_counterfactuals} counterfactuals asked for")
    return CounterfactualResult(original, first, goal, tuple(answers), allowed, candidates,
                                getattr(model, "requests", 0) - requests_before, time.perf_counter() - started,
                                tuple(notes), compared, _score_name(model, compared))


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def _draw(name: str, sample: pd.DataFrame, ranges: FeatureRanges, limits: dict, size: int,
          rng: np.random.Generator) -> np.ndarray:
    """Values of ``name`` drawn from the reference distribution, kept inside the bounds."""
    if ranges.kinds[name] == "numeric":
        low, high = limits[name]
        pool = pd.to_numeric(sample[name], errors="coerce").dropna().to_numpy(dtype=float)
        pool = pool[(pool >= low) & (pool <= high)]
        if len(pool) == 0:
            values = rng.uniform(low, high, size)
            return np.round(values) if ranges.integer[name] else values
        return rng.choice(pool, size)
    allowed_categories = np.asarray(limits[name], dtype=object)
    pool = sample[name].astype(object).to_numpy()
    pool = pool[np.isin(pool, allowed_categories)]
    return rng.choice(pool if len(pool) else allowed_categories, size)


def _random_candidates(original, sample, ranges, limits, allowed, max_changes, n, rng) -> pd.DataFrame:
    frame = pd.DataFrame([original] * n)
    for name in allowed:
        frame[name] = frame[name].astype(object) if ranges.kinds[name] == "categorical" else frame[name]
    k = rng.integers(1, min(max_changes, len(allowed)) + 1, size=n)
    position = np.argsort(np.argsort(rng.random((n, len(allowed))), axis=1), axis=1)  # random rank of each feature
    for j, name in enumerate(allowed):
        mask = position[:, j] < k
        if mask.any():
            values = _draw(name, sample, ranges, limits, int(mask.sum()), rng)
            column = frame[name].to_numpy(dtype=object if ranges.kinds[name] == "categorical" else float).copy()
            column[mask] = values
            frame[name] = column
    return frame


def _neighbour_candidates(original, others, ranges, limits, allowed, n_neighbours, rng) -> pd.DataFrame:
    """The nearest reference rows with the desired outcome, copied onto the original on the allowed features
    (clipped to the bounds), and random sparse subsets of those copies."""
    if others.empty:
        return others
    inside = np.ones(len(others), dtype=bool)
    for name in allowed:
        if ranges.kinds[name] == "categorical":
            inside &= others[name].astype(object).isin(limits[name]).to_numpy()
    others = others[inside]
    if others.empty:
        return others
    distance = _cost(ranges, original, others, allowed)
    nearest = others.iloc[np.argsort(distance, kind="stable")[:n_neighbours]]
    rows = []
    for _, neighbour in nearest.iterrows():
        full = dict(original)
        differing = []
        for name in allowed:
            value = neighbour[name]
            if ranges.kinds[name] == "numeric":
                if value is None or (isinstance(value, float) and math.isnan(value)):
                    continue
                value = float(np.clip(value, *limits[name]))
            if value_changed(original[name], value):
                full[name] = _plain(value)
                differing.append(name)
        if not differing:
            continue
        rows.append(full)
        for _ in range(8):
            size = int(rng.integers(1, len(differing) + 1))
            subset = rng.choice(differing, size, replace=False)
            rows.append({**original, **{f: full[f] for f in subset}})
    return pd.DataFrame(rows, columns=list(original)) if rows else pd.DataFrame(columns=list(original))


def _refinements(original, valid, ranges, allowed) -> pd.DataFrame:
    """Each candidate with one changed feature put back, or a numeric change shrunk to 1/4, 1/2 or 3/4."""
    rows = []
    for _, row in valid.iterrows():
        base = row.to_dict()
        for name in allowed:
            if not value_changed(original[name], base[name]):
                continue
            rows.append({**base, name: original[name]})
            old = original[name]
            if ranges.kinds[name] == "numeric" and old is not None and not (isinstance(old, float) and math.isnan(old)):
                for fraction in (0.25, 0.5, 0.75):
                    value = float(old) + fraction * (float(base[name]) - float(old))
                    if ranges.integer[name]:
                        value = float(np.round(value))
                    rows.append({**base, name: value})
    if not rows:
        return pd.DataFrame(columns=valid.columns)
    return pd.DataFrame(rows).drop(columns="_cost", errors="ignore")


def _diverse(original, valid: pd.DataFrame, allowed, n: int) -> pd.DataFrame:
    """Cheapest first, skipping a candidate that changes the same features as one already chosen
    (unless too few differ)."""
    valid = valid.sort_values("_cost", kind="stable").reset_index(drop=True)
    sets = [frozenset(f for f in allowed if value_changed(original[f], valid[f].iloc[i])) for i in range(len(valid))]
    chosen, seen_sets, seen_rows = [], [], set()
    for i, changed in enumerate(sets):
        key = tuple(str(valid[f].iloc[i]) for f in sorted(changed))
        if not changed or (tuple(sorted(changed)), key) in seen_rows:
            continue
        if changed in seen_sets or any(changed > s for s in seen_sets):
            continue
        chosen.append(i)
        seen_sets.append(changed)
        seen_rows.add((tuple(sorted(changed)), key))
        if len(chosen) == n:
            break
    if len(chosen) < n:  # not enough different feature sets: allow repeats with different values
        for i, changed in enumerate(sets):
            key = (tuple(sorted(changed)), tuple(str(valid[f].iloc[i]) for f in sorted(changed)))
            if i in chosen or not changed or key in seen_rows:
                continue
            chosen.append(i)
            seen_rows.add(key)
            if len(chosen) == n:
                break
    return valid.iloc[chosen].reset_index(drop=True)
