"""Local models: a fitted scikit-learn estimator or Pipeline explained in this process.

For a Pipeline it also knows how to transform rows (with a fast numpy copy of the preprocessing
when one gives the same matrix, :mod:`explain._fast`) and which transformed columns come from
which raw feature (:mod:`explain._pipeline_columns`), so explanations can be summed back to raw
features.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from explain._errors import ExplainError
from explain._pipeline_columns import ColumnMap, guess_kind, map_columns
from explain._source import ModelSource


class LocalModel(ModelSource):
    """A fitted scikit-learn estimator (or Pipeline) loaded in this process.

    Parameters
    ----------
    estimator : object
        Fitted; has ``predict`` and, for a classifier, ``predict_proba``.
    features : sequence of str
        Raw input columns the estimator takes.
    feature_kinds : dict, optional
        ``"numeric"`` or ``"categorical"`` per feature; inferred from the estimator's
        ColumnTransformer when omitted (one-hot encoded columns are categorical).
    version : str, optional
        Shown on the page; the artifact's hash when loaded by :func:`load_artifact`.
    description : str, default="local model"
    """

    kind = "local"

    def __init__(self, estimator: Any, *, features: Sequence[str], feature_kinds: dict[str, str] | None = None,
                 version: str | None = None, description: str = "local model"):
        if not hasattr(estimator, "predict"):
            raise ExplainError(f"{description}: a {type(estimator).__name__} has no predict method, so it is not a "
                               "model")
        self.estimator = estimator
        classes = getattr(estimator, "classes_", None)
        if classes is not None and hasattr(estimator, "predict_proba"):
            task = "classification"
        else:
            task, classes = "regression", None
        kinds = dict(feature_kinds or {})
        for name in features:
            kinds.setdefault(name, guess_kind(estimator, name))
        super().__init__(features=features, feature_kinds=kinds, task=task,
                         classes=None if classes is None else list(np.asarray(classes).tolist()),
                         version=version, description=description)
        self._column_map: ColumnMap | bool | None = False  # False = not worked out yet
        self._fast_transform = None

    def predict(self, X):
        """Labels and probabilities from the estimator (``predict_proba`` for classifiers)."""
        frame = self.conform(X)
        if self.task == "regression":
            return np.asarray(self.estimator.predict(frame), dtype=float).reshape(-1), None
        proba = np.asarray(self.estimator.predict_proba(frame), dtype=float)
        return np.asarray(self.classes, dtype=object)[proba.argmax(axis=1)], proba

    @property
    def final_estimator(self) -> Any:
        """The last step of a Pipeline, or the estimator itself."""
        steps = getattr(self.estimator, "steps", None)
        return steps[-1][1] if steps else self.estimator

    @property
    def preprocessor(self) -> Any | None:
        """Every step of a Pipeline but the last (None for a bare estimator)."""
        steps = getattr(self.estimator, "steps", None)
        return self.estimator[:-1] if steps and len(steps) > 1 else None

    def prepare_fast_transform(self, X: pd.DataFrame) -> bool:
        """Use a numpy copy of the preprocessing (see :mod:`explain._fast`) if it gives the same
        matrix as scikit-learn on the rows ``X``; return whether it does."""
        from explain._fast import compile_transform

        self._fast_transform = None
        if self.preprocessor is None or len(X) == 0:
            return False
        fast = compile_transform(self.preprocessor, self.features)
        if fast is None:
            return False
        frame = self.conform(X)
        try:
            same = np.allclose(fast(frame), _dense(self.preprocessor.transform(frame)), equal_nan=True)
        except (TypeError, ValueError):
            same = False
        self._fast_transform = fast if same else None
        return same

    def transform(self, X: pd.DataFrame, *, conformed: bool = False) -> np.ndarray:
        """Rows as the final estimator sees them: a dense float matrix.

        Parameters
        ----------
        X : DataFrame
        conformed : bool, default=False
            ``X`` is already :meth:`conform`'s output (saves a copy).
        """
        frame = X if conformed else self.conform(X)
        if self._fast_transform is not None:
            return self._fast_transform(frame)
        if self.preprocessor is None:
            return _dense(frame.to_numpy(dtype=float) if all(k == "numeric" for k in self.feature_kinds.values())
                          else frame)
        return _dense(self.preprocessor.transform(frame))

    @property
    def column_map(self) -> ColumnMap | None:
        """Raw feature of each transformed column, or None when it cannot be worked out."""
        if self._column_map is False:
            self._column_map = map_columns(self.preprocessor, self.features)
        return self._column_map


def _dense(matrix: Any) -> np.ndarray:
    if hasattr(matrix, "toarray"):
        matrix = matrix.toarray()
    return np.asarray(matrix, dtype=float)
