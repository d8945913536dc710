"""What the What-if page starts from: the model that re-predicts edited rows, and its lists of predictions."""

from __future__ import annotations

import pandas as pd

from explain._remote import RemoteModel
from explain.starting_points import StartingPoints, starting_points


def whatif_model(model, service, *, reference: pd.DataFrame | None):
    """The model the What-if page re-predicts with: the live service as a black box, or the local artifact
    when ``[services.explain] source = 'local'``.

    Parameters
    ----------
    model : ModelSource
        The service's model source for explanations (``explain.open_model_source``).
    service : ServiceConfig
        The service.
    reference : DataFrame or None
        Its reference features; five rows tell the remote model the columns' types.

    Returns
    -------
    ModelSource
        ``model`` itself when it is the service, or when the configuration asks for the local
        artifact; otherwise a :class:`~explain.RemoteModel` of the service with ``model``'s features.
    """
    if model.kind == "remote" or service.explain.source == "local":
        return model
    sample = None if reference is None else reference.head(5)
    return RemoteModel(service, features=model.features, feature_kinds=model.feature_kinds, X_sample=sample)


def needs_labels(kind: str) -> bool:
    """Whether the list ``kind`` of :func:`listed_points` needs the labelled predictions ("error" does)."""
    return kind == "error"


def listed_points(kind: str, *, logged, now: float, limit: int, labeled=None,
                  schema_task: str | None = None) -> StartingPoints:
    """``explain.starting_points.starting_points`` of list ``kind``, with the task the labels decided.

    Parameters
    ----------
    kind : {"recent", "uncertain", "error"}
    logged : PredictionLogMirror, FileMirror or ParquetMirror
        The service's logged predictions.
    now : float
        The time the lists are made for.
    limit : int
        Rows wanted.
    labeled : LabeledPredictions, optional
        The predictions joined to their labels (when :func:`needs_labels`); its task wins.
    schema_task : str, optional
        The service schema's task, used without labels; "classification" when unknown.

    Returns
    -------
    StartingPoints
    """
    task = labeled.task if labeled is not None else (schema_task or "classification")
    return starting_points(kind, logged=logged, now=now, limit=limit,
                           labeled=labeled.frame if labeled is not None else None, task=task)
