"""The model-source interface: what every model to explain answers, in the service's raw feature space.

Every kind of source (:class:`~explain._local.LocalModel`, a fitted estimator in this process;
:class:`~explain._remote.RemoteModel`, the service as a black box) answers the same questions:
``predict(X) -> (labels, probabilities or None)``, ``output(X, space=...)`` (the number an
explanation decomposes), ``task`` (``classification`` or ``regression``), ``classes`` and
``features``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import pandas as pd

from explain._errors import ExplainError
from monitoring.labels import TASKS  # "classification" or "regression", the one vocabulary

SPACES = ("probability", "log_odds", "value")

_EPS = 1e-12


def logit(p: np.ndarray) -> np.ndarray:
    """Log-odds of probabilities, clipped away from 0 and 1."""
    p = np.clip(np.asarray(p, dtype=float), _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


class ModelSource(ABC):
    """A model to explain, in the raw feature space of its service.

    Attributes
    ----------
    kind : {"local", "remote"}
    features : tuple of str
        Raw input columns, in the order the model takes them.
    feature_kinds : dict of str to {"numeric", "categorical"}
    task : {"classification", "regression"}
    classes : tuple or None
        Class labels in the order of the probability columns (None for regression); two make
        the model :attr:`binary`.
    version : str or None
        Artifact hash (local) or the version the service reports (remote).
    description : str
        One line saying where the model comes from.
    """

    kind = "base"

    def __init__(self, *, features: Sequence[str], feature_kinds: dict[str, str] | None, task: str,
                 classes: Sequence | None, version: str | None, description: str):
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}; got {task!r}")
        self.features = tuple(features)
        self.feature_kinds = {f: (feature_kinds or {}).get(f, "numeric") for f in self.features}
        self.task = task
        self.classes = None if classes is None else tuple(classes)
        self.version = version
        self.description = description

    max_rows = 50_000
    """Rows of one call of :meth:`frame_outputs` (a remote model: those of one request)."""
    sends_requests = False
    """Whether each frame of :meth:`frame_outputs` is a request to the service."""
    black_box_reason = ""
    """Why explanations are model-agnostic whatever the model is ("" when its estimator can be looked into)."""
    estimator = None
    """The fitted model object (scikit-learn's partial dependence runs on it); None for a black box."""
    final_estimator = None
    """The fitted estimator after any preprocessing, for the Tree and Linear explainers; None for a black box."""

    def learn_task(self, X: pd.DataFrame) -> None:
        """Make sure the task and classes are known before an explanation plans its outputs (known here)."""
        del X

    def prepare_fast_transform(self, X: pd.DataFrame) -> bool:
        """Get ready to transform rows like ``X`` quickly; False when there is nothing to prepare."""
        del X
        return False

    def frame_outputs(self, frames, *, space: str, report=None):
        """:meth:`output` of each frame of ``frames`` (a sequence of DataFrames) in turn, as a generator.

        ``report(share, text)``, when given, is told the progress before each frame. A remote model
        sends one request per frame within its traffic budget (refused before anything is sent when
        the whole exceeds it).
        """
        for k in range(len(frames)):
            if report is not None:
                report(k / len(frames), f"model call {k + 1} of {len(frames)}")
            yield self.output(frames[k], space=space)

    @property
    def binary(self) -> bool:
        """Whether the model decides between two classes (its outputs are the second class's probability)."""
        return self.task == "classification" and self.classes is not None and len(self.classes) == 2

    def task_text(self) -> str:
        """The task in words: "binary classification", "classification into 3 classes" or "regression"."""
        if self.task == "regression":
            return "regression"
        return "binary classification" if self.binary else f"classification into {len(self.classes or ())} classes"

    @property
    def has_probabilities(self) -> bool:
        """Whether ``predict`` returns class probabilities."""
        return self.task != "regression"

    def conform(self, X: pd.DataFrame) -> pd.DataFrame:
        """The model's columns of ``X`` in model order, numeric ones as float.

        Raises
        ------
        ExplainError
            When ``X`` lacks some of the model's features.
        """
        if not isinstance(X, pd.DataFrame):
            raise ExplainError(f"X must be a pandas DataFrame; got {type(X).__name__}")
        missing = [f for f in self.features if f not in X.columns]
        if missing:
            raise ExplainError(f"X lacks the model's features {missing}; it has {list(X.columns)}")
        columns = {f: X[f] for f in self.features}
        cast = {f for f, k in self.feature_kinds.items() if k == "numeric" and columns[f].dtype.kind != "f"}
        if not cast and list(X.columns) == list(self.features):
            return X
        return pd.DataFrame({f: (c.astype(float) if f in cast else c) for f, c in columns.items()}, index=X.index)

    @abstractmethod
    def predict(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """Predicted labels (or values) and class probabilities (None for regression).

        Parameters
        ----------
        X : DataFrame of shape (n_rows, n_features)

        Returns
        -------
        labels : ndarray of shape (n_rows,)
        probabilities : ndarray of shape (n_rows, n_classes) or None
        """

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Class probabilities, shape (n_rows, n_classes).

        Raises
        ------
        ExplainError
            For a regression model.
        """
        if self.task == "regression":
            raise ExplainError(f"{self.description} is a regression model: it has no class probabilities")
        _, proba = self.predict(X)
        return proba

    def predict_value(self, X: pd.DataFrame) -> np.ndarray:
        """Predicted value (regression) or label (classification), shape (n_rows,)."""
        labels, _ = self.predict(X)
        return labels

    def output_names(self) -> tuple[str, ...]:
        """Names of the outputs :meth:`output` returns, e.g. ``("class 1",)`` for a binary model."""
        if self.task == "regression":
            return ("predicted value",)
        if self.binary:
            return (f"class {self.classes[1]}",)
        return tuple(f"class {c}" for c in self.classes)

    def output(self, X: pd.DataFrame, *, space: str = "probability") -> np.ndarray:
        """The numbers an explanation decomposes, shape (n_rows, n_outputs).

        Parameters
        ----------
        X : DataFrame of shape (n_rows, n_features)
        space : {"probability", "log_odds", "value"}, default="probability"
            Probability of each output class (binary: the positive class only), its log-odds,
            or (regression) the predicted value; ``value`` is the only space of a regression.

        Returns
        -------
        ndarray of shape (n_rows, n_outputs)
        """
        return self.outputs_from(*self.predict(X), space=space)

    def outputs_from(self, labels: np.ndarray, proba: np.ndarray | None, *, space: str) -> np.ndarray:
        """Turn a ``predict`` answer into :meth:`output`'s numbers."""
        if self.task == "regression" or proba is None:
            return np.asarray(labels, dtype=float).reshape(-1, 1)
        if space not in ("probability", "log_odds"):
            raise ValueError(f"space must be 'probability' or 'log_odds' for a classifier; got {space!r}")
        chosen = proba[:, 1:2] if self.binary else proba
        return logit(chosen) if space == "log_odds" else np.asarray(chosen, dtype=float)
