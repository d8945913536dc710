"""Logged predictions worth starting a what-if from: the most recent, the most uncertain, the largest errors.

The What-if page offers these lists; the functions here choose the rows, the dashboard only
caches them. ``logged`` is a service's logged predictions as
``monitoring.production.production_source`` gives them (the store's log or a prediction-log
file): anything with ``find(prediction_id=, since=, until=, limit=, newest_first=)`` and
``has_rows()``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from explain._data import sample_prediction_log

KINDS = {"recent": "Most recent", "uncertain": "Most uncertain (last 7 days)", "error": "Largest error (labelled)"}
"""The lists, by key, with the name the page shows."""

UNCERTAIN_DAYS = 7.0
UNCERTAIN_SAMPLE_ROWS = 2000


@dataclass(frozen=True)
class StartingPoints:
    """Rows to start a what-if from, and why there are none when there are none.

    Attributes
    ----------
    rows : DataFrame
        Whole prediction-log rows (``id, ts, prediction, score, ...`` and the features), best first.
    note : str or None
        Why the list is empty (no scores logged, no labels yet), in words for the page.
    """

    rows: pd.DataFrame
    note: str | None = None


def _probabilities(frame: pd.DataFrame) -> np.ndarray | None:
    """The logged class probabilities as an (n, k) array with NaN rows where absent, or None if none is logged."""
    if "probabilities" not in frame.columns or frame["probabilities"].isna().all():
        return None
    parsed = [json.loads(p) if isinstance(p, str) else p for p in frame["probabilities"]]
    width = max((len(p) for p in parsed if isinstance(p, list | tuple | np.ndarray)), default=0)
    if width < 2:
        return None
    out = np.full((len(parsed), width), np.nan)
    for i, p in enumerate(parsed):
        if isinstance(p, list | tuple | np.ndarray) and len(p) == width:
            out[i] = np.asarray(p, dtype=float)
    return out


def uncertainty(frame: pd.DataFrame) -> pd.Series:
    """How close each logged prediction was to going the other way (0 = sure, 1 = a coin toss).

    From the class probabilities when logged: one minus the margin between the two most
    likely classes; else from a binary model's ``score``: one minus twice its distance from
    0.5. NaN where neither was logged (regression, or a model that gives labels only).
    """
    proba = _probabilities(frame)
    if proba is not None:
        top_two = -np.sort(-proba, axis=1)[:, :2]
        return pd.Series(1.0 - (top_two[:, 0] - top_two[:, 1]), index=frame.index)
    if "score" in frame.columns:
        score = pd.to_numeric(frame["score"], errors="coerce")
        return 1.0 - 2.0 * (score - 0.5).abs()
    return pd.Series(np.nan, index=frame.index)


def prediction_error(labeled: pd.DataFrame, *, task: str) -> pd.Series:
    """How wrong each labelled prediction was: |label - prediction| for values, 1 - P(true class) for classes.

    A classifier that logged no probabilities scores 1 for a wrong class and 0 for a right one;
    a binary one with a ``score`` uses it as P(class 1).
    """
    label = labeled["label"]
    if task == "regression":
        return (pd.to_numeric(label, errors="coerce") - pd.to_numeric(labeled["prediction"], errors="coerce")).abs()
    wrong = (label.astype(str) != labeled["prediction"].astype(str)).astype(float)
    if "score" in labeled.columns and labeled["score"].notna().any():
        score = pd.to_numeric(labeled["score"], errors="coerce")
        as_float = pd.to_numeric(label, errors="coerce")
        binary = as_float.isin([0.0, 1.0]) & score.notna()
        p_true = np.where(as_float == 1.0, score, 1.0 - score)
        return pd.Series(np.where(binary, 1.0 - p_true, wrong), index=labeled.index)
    return wrong


def starting_points(kind: str, *, logged, now: float, limit: int = 50, labeled: pd.DataFrame | None = None,
                    task: str = "classification") -> StartingPoints:
    """The ``limit`` logged predictions of list ``kind`` (see :data:`KINDS`).

    Parameters
    ----------
    kind : {"recent", "uncertain", "error"}
    logged : PredictionLogMirror, FileMirror or ParquetMirror
        The service's logged predictions.
    now : float
        The time the lists are made for (Unix seconds): "uncertain" looks at the
        :data:`UNCERTAIN_DAYS` before it.
    limit : int, default=50
    labeled : DataFrame, optional
        Predictions joined to their labels (``id``, ``prediction``, ``score``, ``label``, NaN
        while unknown), for "error".
    task : {"classification", "regression"}, default="classification"

    Returns
    -------
    StartingPoints

    Raises
    ------
    ValueError
        For an unknown ``kind``.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)}; got {kind!r}")
    if kind == "recent":
        return StartingPoints(logged.find(limit=limit))
    if kind == "uncertain":
        if task == "regression":
            return StartingPoints(logged.find(limit=1).iloc[:0],
                                  "A regression model is never uncertain between classes: use Most recent or "
                                  "Largest error.")
        frame = sample_prediction_log(logged, since=now - UNCERTAIN_DAYS * 86400.0, until=now,
                                      n_rows=UNCERTAIN_SAMPLE_ROWS)
        doubt = uncertainty(frame)
        if frame.empty or doubt.isna().all():
            return StartingPoints(frame.iloc[:0], "No prediction of the last 7 days was logged with a score or class "
                                                  "probabilities, so none can be called uncertain.")
        order = doubt.sort_values(ascending=False, kind="stable").index[:limit]
        return StartingPoints(frame.loc[order].reset_index(drop=True))
    known = labeled[labeled["label"].notna()] if labeled is not None else pd.DataFrame()
    if known.empty:
        return StartingPoints(logged.find(limit=1).iloc[:0], "No logged prediction has its label yet.")
    error = prediction_error(known, task=task)
    ids = known.loc[error.sort_values(ascending=False, kind="stable").index[:limit], "id"]
    rows = [found for i in ids if len(found := logged.find(prediction_id=str(i), limit=1))]
    return StartingPoints(pd.concat(rows, ignore_index=True) if rows else logged.find(limit=1).iloc[:0])
