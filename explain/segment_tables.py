"""The Segments page's and the report's choices and tables, from ``explain.segments``' results."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence

import pandas as pd

from explain.segments import (
    FOUR_FIFTHS,
    first_categorical,
    rows_per_segment,
    segment_importance,
    segment_names,
)

SEGMENT_DAYS = (7, 30, 90)
"""Periods of logged predictions the Segments page can look at."""

SEGMENT_EXPLAIN_ROWS = 400
"""At most this many rows are explained for the per-segment importance, spread over the segments."""


def categorical_features(kinds: pd.DataFrame | Mapping[str, str], features: Sequence[str]) -> list[str]:
    """The ``features`` that hold categories, in order.

    Parameters
    ----------
    kinds : DataFrame or mapping of str to {"numeric", "categorical"}
        Rows (text or categorical columns hold categories), or each feature's kind (the service's schema,
        so that no row has to be read).
    features : sequence of str
        Feature columns.

    Returns
    -------
    list of str
    """
    if not isinstance(kinds, pd.DataFrame):
        return [c for c in features if kinds.get(c) == "categorical"]
    return [c for c in features if not pd.api.types.is_numeric_dtype(kinds[c])
            or isinstance(kinds[c].dtype, pd.CategoricalDtype)]


def report_feature(kinds: pd.DataFrame | Mapping[str, str], features: Sequence[str], *,
                   personal: Collection[str] = ()) -> str | None:
    """The feature the report segments by: the first categorical one that is not personal (one segment per
    person says nothing), or None.

    Parameters
    ----------
    kinds : DataFrame or mapping of str to {"numeric", "categorical"}
        Logged predictions, or each feature's kind (the service's schema).
    features : sequence of str
        The service's features present in the log, in model order.
    personal : collection of str, default=()
        The service's personal columns.

    Returns
    -------
    str or None
    """
    return first_categorical(kinds, [c for c in features if c not in personal])


def interval_texts(table: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """``table`` with a ``{metric}_interval`` text column ("0.830–0.860", "–" when unknown) for every metric
    that has ``{metric}_low`` and ``{metric}_high`` columns.

    Parameters
    ----------
    table : DataFrame
        A segment table (``explain.segments.SegmentTable.table``).
    metrics : sequence of str
        Its metrics.

    Returns
    -------
    DataFrame
        A copy with the interval columns added.
    """
    shown = table.copy()
    for metric in metrics:
        if f"{metric}_low" in shown:
            shown[f"{metric}_interval"] = [
                f"{low:.3f}–{high:.3f}" if math.isfinite(low) and math.isfinite(high) else "–"
                for low, high in zip(shown[f"{metric}_low"], shown[f"{metric}_high"], strict=True)]
    return shown


def judged_text(too_small: pd.Series) -> pd.Series:
    """"too small to judge" or "yes" for each segment or group, from its ``too_small`` flag."""
    return too_small.map({True: "too small to judge", False: "yes"})


def segments_headline(n_segments: int, *, days: int, too_small: int) -> str:
    """The line above the segment table: how many segments over which period, and how many are too small to judge.

    Parameters
    ----------
    n_segments : int
        Segments in the table.
    days : int
        The period's length in days.
    too_small : int
        Segments too small to judge.

    Returns
    -------
    str
        ``"**12 segments** over the last 30 days; 2 too small to judge (…)."``, ``"**1 segment** …"``.
    """
    noun = "segment" if n_segments == 1 else "segments"
    small = (f"; {too_small} too small to judge (marked, their numbers are shown but should not be read into)."
             if too_small else ".")
    return f"**{n_segments} {noun}** over the last {days} days{small}"


def segment_columns(table: pd.DataFrame, *, decision_columns: Sequence[str], metrics: Sequence[str]) -> list[str]:
    """The columns the segment table shows, in order: the segment and whether it is judged, its counts and
    shares, its decisions, its metrics each with its interval, and its drift when measured.

    Parameters
    ----------
    table : DataFrame
        The segment table with :func:`interval_texts` and a ``judged`` column.
    decision_columns : sequence of str
        ``SegmentTable.decision_columns`` (the positive rate, one share per class, or the mean predicted value).
    metrics : sequence of str
        ``SegmentTable.metrics``.

    Returns
    -------
    list of str
        Only columns ``table`` has among the metrics, intervals and drift.
    """
    drift = ["n_drifted", "drifted_features"] if "n_drifted" in table else []
    return ["segment", "judged", "n", "share", "reference_share", "share_change", *decision_columns, "n_labelled",
            *(c for m in metrics for c in (m, f"{m}_interval") if c in table), *drift]


def four_fifths_verdict(four_fifths_ok: bool | None, *, sensitive: str) -> tuple[str, str] | None:
    """Whether the four-fifths rule holds for a sensitive feature, as an alert's kind and its sentence.

    Parameters
    ----------
    four_fifths_ok : bool or None
        ``FairnessReport.four_fifths_ok``; None when the ratio cannot be computed.
    sensitive : str
        The sensitive feature.

    Returns
    -------
    (str, str) or None
        ``("error", "Four-fifths rule failed for …")`` or ``("success", "Four-fifths rule met for …")``; None when
        it cannot be told.
    """
    if four_fifths_ok is None:
        return None
    if four_fifths_ok:
        return "success", f"Four-fifths rule met for {sensitive}."
    return "error", f"Four-fifths rule failed for {sensitive}: the ratio is under {FOUR_FIFTHS:g}."


def top_features(importance: pd.DataFrame) -> pd.DataFrame:
    """One row per segment of ``explain.segments.segment_importance``'s result, features joined by rank.

    Parameters
    ----------
    importance : DataFrame
        ``segment``, ``rank``, ``feature``, ``mean_abs_shap``, ``n_explained``, in rank order per segment.

    Returns
    -------
    DataFrame
        ``segment``, ``top_features`` ("income, age, city"), ``explained`` (rows explained), segments in
        their order of appearance.
    """
    return (importance.groupby("segment", sort=False)
            .agg(top_features=("feature", ", ".join), explained=("n_explained", "first")).reset_index())


def explained_segments(explainer, sample, *, model_features: Sequence[str], model_rows_budget: int | None,
                       at_most: int = SEGMENT_EXPLAIN_ROWS, progress=None) -> pd.DataFrame:
    """Top three features by mean |SHAP| per segment (``explain.segments.segment_importance``), on a sample
    sized to ``at_most`` rows in all and to the service's budget when explained through it.

    Parameters
    ----------
    explainer : ShapExplainer
        The service's explainer.
    sample : monitoring.segment_queries.SegmentSample
        The period's predictions of least id hash per segment (at least as many per segment as are explained).
    model_features : sequence of str
        The model's features, in its order.
    model_rows_budget : int or None
        ``[services.explain] max_rows_per_computation``.
    at_most : int, default=SEGMENT_EXPLAIN_ROWS
        Rows explained in all, at most.
    progress : callable, optional
        ``progress(fraction, text)``.

    Returns
    -------
    DataFrame
        As ``explain.segments.segment_importance``.
    """
    frame = sample.frame
    segments = segment_names(sample, frame)
    X = frame[list(model_features)]
    per_segment = rows_per_segment(
        segments.nunique(), at_most=at_most,
        model_rows_per_row=explainer.model_rows_needed(X.head(1)) if len(frame) else 0,
        model_rows_budget=model_rows_budget)
    return segment_importance(explainer, X, segments, n_rows=per_segment, top=3, progress=progress)
