"""The What-if page's sentences, captions and table rows, from ``explain.whatif``'s results."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from explain.whatif import class_text

_MARKDOWN_SPECIALS = re.compile(r"([\\`*_\[\]()<>!#|~$])")


def is_missing(value) -> bool:
    """Whether a feature value is missing: None or a float NaN."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def point_key(source: str, source_id) -> str:
    """The key of a starting point in widget keys: ``"pred-<id>"`` for a logged prediction, ``"ref-<row>"`` for a
    reference row.

    Parameters
    ----------
    source : {"prediction", "reference"}
        Where the point comes from.
    source_id : object
        The prediction's id or the reference row's index.

    Returns
    -------
    str
    """
    return f"pred-{source_id}" if source == "prediction" else f"ref-{source_id}"


def finder_message(finder: str | None, *, searched: bool) -> tuple[str, str] | None:
    """What the prediction finder says when it lists nothing: a hint before a search, or why nothing matched.

    Parameters
    ----------
    finder : str or None
        The finder picked ("Most recent", "Most uncertain", "Largest error", "By id", "By feature").
    searched : bool
        Whether a search ran (an id was typed, a condition picked; the lists always run).

    Returns
    -------
    tuple of (str, str) or None
        ``("caption", text)`` for a hint, ``("info", text)`` when nothing matched; None when no
        finder is picked.
    """
    if finder == "By id" and not searched:
        return "caption", "Type the id of a logged prediction (the Explain page and the prediction log show them)."
    if finder == "By feature" and not searched:
        return "caption", ("Pick a feature and a condition, e.g. credit_utilization > 0.8; the newest 50 matches "
                           "are listed.")
    if finder is None:
        return None
    if finder == "Largest error":
        return "info", "No labelled prediction yet: the largest errors are listed once labels arrive."
    return "info", "No logged prediction matches."


def logged_predictions_table(found: pd.DataFrame, features: Sequence[str], *, seconds: bool = False) -> pd.DataFrame:
    """Logged predictions as the What-if and Explain pickers list them: ``id``, ``time (UTC)`` (``"03 Mar 14:02"``,
    with ``":10"`` seconds when asked), ``prediction``, ``score`` and the features.

    Parameters
    ----------
    found : DataFrame
        Logged predictions with ``id``, ``ts`` (Unix seconds), ``prediction``, ``score`` and the features.
    features : sequence of str
        The feature columns, in model order.
    seconds : bool, default=False
        Whether the time shows seconds.

    Returns
    -------
    DataFrame
    """
    shown = found[["id", "ts", "prediction", "score", *features]].copy()
    form = "%d %b %H:%M:%S" if seconds else "%d %b %H:%M"
    shown.insert(1, "time (UTC)", pd.to_datetime(shown.pop("ts"), unit="s", utc=True).dt.strftime(form))
    return shown


def ignored_personal_note(names: Sequence[str]) -> str:
    """What the page says when a link changes personal columns: those changes are ignored.

    Parameters
    ----------
    names : sequence of str
        The personal columns the link changes.

    Returns
    -------
    str
    """
    return (f"The link changes {', '.join(names)}, which is personal data and cannot be edited here; "
            "those changes are ignored.")


def ignored_values_warning(problems: Sequence[str]) -> str:
    """The warning for a link's values outside the accepted ranges, each problem Markdown-escaped (the values come
    from the link, anyone's to write: they show as typed, never as links or images).

    Parameters
    ----------
    problems : sequence of str
        ``FeatureRanges.problems`` of the link's values.

    Returns
    -------
    str
    """
    return ("Some of the link's values are outside the accepted ranges and were ignored: "
            + _MARKDOWN_SPECIALS.sub(r"\\\1", "; ".join(problems)))


def value_text(value) -> str:
    """A feature value as the editor shows the original: ``"missing"``, a float to six significant digits, or
    the value as text."""
    if is_missing(value):
        return "missing"
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def edit_caption(*, changed: bool, original: str) -> str:
    """The caption under an input: ``"original: 0.5"``, led by ``"**changed** · "`` once edited.

    Parameters
    ----------
    changed : bool
        Whether the input differs from the original.
    original : str
        The original value as :func:`value_text` writes it (or masked).

    Returns
    -------
    str
    """
    return f"{'**changed** · ' if changed else ''}original: {original}"


@dataclass(frozen=True)
class PredictionMetric:
    """One side of the comparison as a metric: its label, value, change and help.

    Attributes
    ----------
    label : str
        ``"Original: decided class 1"``, or ``"Edited: predicted value"`` without classes.
    value : str
        The compared score to four significant digits.
    delta : str or None
        The score minus the reference side's (``"+0.12"``), None without a reference.
    help : str
        What the number is.
    """

    label: str
    value: str
    delta: str | None
    help: str


def prediction_metric(prediction, side: str, *, score_name: str, reference=None) -> PredictionMetric:
    """The metric of one side of the comparison: the decided class (or "predicted value") and the compared score.

    Parameters
    ----------
    prediction : PointPrediction
        That side's prediction.
    side : str
        ``"Original"`` or ``"Edited"``.
    score_name : str
        What the score is (``WhatIfComparison.score_name``).
    reference : PointPrediction, optional
        The side the delta is measured from.

    Returns
    -------
    PredictionMetric
    """
    label = (f"{side}: decided {class_text(prediction.label)}" if prediction.probabilities
             else f"{side}: predicted value")
    delta = None if reference is None else f"{prediction.score - reference.score:+.4g}"
    return PredictionMetric(label, f"{prediction.score:.4g}", delta,
                            f"{score_name[0].upper()}{score_name[1:]} of the {side.lower()} row.")


def compared_class_index(result) -> int:
    """Where the compared class stands among the model's classes (its Shapley values' output), 0 for a model of
    two classes or none (the positive class's, or the value's, only output).

    Parameters
    ----------
    result : WhatIfComparison

    Returns
    -------
    int
    """
    if len(result.classes) <= 2:
        return 0
    return next(i for i, c in enumerate(result.classes) if c == result.output)


def decision_caption(result) -> str | None:
    """The caption under the edited side: the decision threshold (and whether the decision flips), or, without a
    threshold, from which class to which the decision changes; None when there is nothing to say.

    Parameters
    ----------
    result : WhatIfComparison

    Returns
    -------
    str or None
    """
    threshold = result.edited_prediction.threshold
    if threshold is not None:
        return (f"Decision threshold {threshold:g} on the {result.score_name}"
                + (" · **the decision flips**" if result.flipped else ""))
    if result.flipped and result.classes:
        return (f"**The decision changes** from {class_text(result.original_prediction.label)} to "
                f"{class_text(result.edited_prediction.label)}.")
    return None


def repredicted_caption(*, seconds: float, requests: int) -> str:
    """``"Re-predicted in 12 ms, 1 request"`` (``"2 requests"``), or ``"… (local model)"`` without requests.

    Parameters
    ----------
    seconds : float
        How long the prediction took.
    requests : int
        HTTP requests made (0 for a local model).

    Returns
    -------
    str
    """
    how = f", {requests} request{'' if requests == 1 else 's'}" if requests else " (local model)"
    return f"Re-predicted in {seconds * 1000:.0f} ms{how}"


def sensitivity_caption(sensitivity) -> str:
    """The caption under the sensitivity curves: its cost and what "swing" means.

    Parameters
    ----------
    sensitivity : Sensitivity

    Returns
    -------
    str
    """
    return (f"{sensitivity.model_rows:,} rows in {sensitivity.requests or 'no'} request(s), "
            f"{sensitivity.seconds:.2f} s. swing = how far the feature alone moves the "
            f"{sensitivity.score_name} over its reference range.")


def default_target_range(score: float) -> tuple[float, float]:
    """The target range a regression's counterfactual search starts with: from the current predicted value to
    10 % of it above (at least 1 above).

    Parameters
    ----------
    score : float
        The current predicted value.

    Returns
    -------
    (float, float)
    """
    return score, score + max(abs(score) * 0.1, 1.0)


def counterfactual_summary(found) -> str:
    """The line above the counterfactuals: the goal, how many answers from how many candidates, and the cost.

    Parameters
    ----------
    found : CounterfactualResult

    Returns
    -------
    str
    """
    return (f"Goal: **{found.goal}** — {len(found.counterfactuals)} answer(s) from "
            f"{found.candidates:,} candidates, {found.requests or 'no'} request(s), "
            f"{found.seconds:.2f} s. Every answer was predicted again by the model.")


def answer_heading(number: int, answer, *, found, regression: bool) -> str:
    """``"**Answer 1** → class 0, probability of class 1 0.31 (was 0.72; distance 1.20, random)"``; a
    regression's answer names no class.

    Parameters
    ----------
    number : int
        The answer's place, from 1.
    answer : Counterfactual
    found : CounterfactualResult
        The search it belongs to (the score's name and the original score).
    regression : bool
        Whether the model predicts values.

    Returns
    -------
    str
    """
    outcome = "" if regression else f"{class_text(answer.prediction.label)}, "
    return (f"**Answer {number}** → {outcome}{found.score_name} {answer.prediction.score:.4g} "
            f"(was {found.original_prediction.score:.4g}; distance {answer.cost:.2f}, {answer.origin})")


def scenario_row(name: str, scenario, *, compared=None, problem: str | None = None) -> dict:
    """One row of the kept scenarios' table: its name, starting point and changes, then what the comparison gave
    (or why it failed).

    Parameters
    ----------
    name : str
        The name it was kept under.
    scenario : Scenario
        Its starting point and changes.
    compared : WhatIfComparison, optional
        Its original and edited rows predicted again.
    problem : str, optional
        Why they could not be predicted.

    Returns
    -------
    dict
        ``scenario, from, changes`` (``"none"`` without changes), then ``compared, original, edited`` and, for a
        model with classes, ``class, flips``; or ``problem``.
    """
    row = {"scenario": name, "from": f"{scenario.source} {scenario.source_id}",
           "changes": ", ".join(f"{k} = {v}" for k, v in scenario.changes.items()) or "none"}
    if compared is not None:
        row |= {"compared": compared.score_name, "original": compared.original_prediction.score,
                "edited": compared.edited_prediction.score}
        if compared.classes:
            row |= {"class": class_text(compared.edited_prediction.label), "flips": compared.flipped}
    if problem is not None:
        row |= {"problem": problem}
    return row
