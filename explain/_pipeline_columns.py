"""Pipeline column mapping: which raw feature each column of a fitted Pipeline's transformed matrix comes from.

Read from the fitted ColumnTransformer (and the steps around it), so explanations computed on
the transformed matrix can be summed back to the service's raw features, and so a feature one
of its encoders takes is known to be categorical.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ColumnMap:
    """Which raw feature each column of a Pipeline's transformed matrix comes from.

    Attributes
    ----------
    groups : ndarray of int of shape (n_transformed,)
        Index into the raw features for every transformed column.
    names : tuple of str
        Transformed column names.
    """

    groups: np.ndarray
    names: tuple[str, ...]

    def matrix(self, n_features: int) -> np.ndarray:
        """0/1 matrix of shape (n_transformed, n_features) that sums columns back to raw features."""
        result = np.zeros((len(self.groups), n_features))
        result[np.arange(len(self.groups)), self.groups] = 1.0
        return result


def guess_kind(estimator: Any, feature: str) -> str:
    """Categorical when a one-hot/ordinal encoder of the estimator's ColumnTransformer takes it.

    Parameters
    ----------
    estimator : object
        A fitted estimator or Pipeline.
    feature : str
        A raw input column.

    Returns
    -------
    {"categorical", "numeric"}
    """
    for transformer in _column_transformers(estimator):
        for _, step, columns in getattr(transformer, "transformers_", []):
            names = _column_names(columns, getattr(transformer, "feature_names_in_", None))
            if feature in names and _is_encoder(step):
                return "categorical"
    return "numeric"


def _is_encoder(step: Any) -> bool:
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, TargetEncoder

    inner = step.steps if hasattr(step, "steps") else [("", step)]
    return any(isinstance(s, OneHotEncoder | OrdinalEncoder | TargetEncoder) for _, s in inner)


def _column_transformers(estimator: Any) -> list:
    from sklearn.compose import ColumnTransformer

    steps = [s for _, s in getattr(estimator, "steps", [])] or [estimator]
    return [s for s in steps if isinstance(s, ColumnTransformer)]


def _column_names(columns: Any, feature_names_in: Any) -> list[str]:
    if isinstance(columns, str):
        return [columns]
    values = list(np.asarray(columns).reshape(-1)) if not callable(columns) else []
    names = list(feature_names_in) if feature_names_in is not None else None
    if values and isinstance(values[0], bool | np.bool_):
        return [n for n, keep in zip(names or [], values, strict=False) if keep]
    if values and isinstance(values[0], int | np.integer) and names is not None:
        return [names[int(i)] for i in values]
    return [str(v) for v in values]


def map_columns(preprocessor: Any, features: tuple[str, ...]) -> ColumnMap | None:
    """Map the preprocessor's output columns to raw features (None when it cannot be done).

    Parameters
    ----------
    preprocessor : object or None
        Every fitted step of a Pipeline but the last; None for a bare estimator (each column is
        its own feature).
    features : tuple of str
        Raw input columns, in model order.

    Returns
    -------
    ColumnMap or None
        None when a step's output names cannot be traced back to the raw features.
    """
    if preprocessor is None:
        return ColumnMap(np.arange(len(features)), features)
    from sklearn.compose import ColumnTransformer

    steps = [s for _, s in preprocessor.steps] if hasattr(preprocessor, "steps") else [preprocessor]
    column_transformers = [s for s in steps if isinstance(s, ColumnTransformer)]
    index = {f: i for i, f in enumerate(features)}
    try:
        out_names = [str(n) for n in preprocessor.get_feature_names_out()]
    except Exception:  # a step without get_feature_names_out: cannot map
        return None
    if not column_transformers:
        # Steps that keep one column per feature (scalers, imputers without indicators).
        if len(out_names) == len(features):
            return ColumnMap(np.arange(len(features)), tuple(out_names))
        return None
    after = len(column_transformers) > 1 or steps[-1] is not column_transformers[0]
    if after and len(out_names) != _n_outputs(column_transformers[0]):
        return None  # something after the ColumnTransformer changes the columns
    ct = column_transformers[0]
    groups = np.full(_n_outputs(ct), -1)
    for name, step, columns in ct.transformers_:
        if step == "drop" or name not in ct.output_indices_:
            continue
        block = ct.output_indices_[name]
        width = block.stop - block.start
        if width == 0:
            continue
        inputs = _column_names(columns, getattr(ct, "feature_names_in_", None))
        if any(c not in index for c in inputs):
            return None
        if len(inputs) == 1:
            groups[block] = index[inputs[0]]
        elif width == len(inputs):
            groups[block] = [index[c] for c in inputs]
        else:
            try:
                names = [str(n) for n in (step.get_feature_names_out(inputs) if step != "passthrough" else inputs)]
            except Exception:
                return None
            for offset, out in enumerate(names):
                out = out.removeprefix("missingindicator_")
                owners = [c for c in inputs if out == c or out.startswith(f"{c}_")]
                if not owners:
                    return None
                groups[block.start + offset] = index[max(owners, key=len)]
    if (groups < 0).any():
        return None
    return ColumnMap(groups, tuple(out_names[:len(groups)]))


def _n_outputs(ct: Any) -> int:
    return max((s.stop for s in ct.output_indices_.values()), default=0)
