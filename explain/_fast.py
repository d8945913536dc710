"""A numpy re-implementation of common fitted preprocessing, for explaining one row fast.

scikit-learn's ColumnTransformer spends a few milliseconds per call on validation and pandas
indexing, which is most of the cost of explaining a single row. :func:`compile_transform`
turns a fitted ColumnTransformer made of SimpleImputer, StandardScaler, OneHotEncoder (and
Pipelines of them), ``passthrough`` and ``drop`` into plain numpy operations; anything else
returns None and scikit-learn's own ``transform`` is used. The caller checks the compiled
function against ``transform`` on sample rows before trusting it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

Step = Callable[[np.ndarray], np.ndarray]


def _compile_step(step) -> Step | None:
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    if isinstance(step, str):
        return (lambda x: x) if step == "passthrough" else None
    if isinstance(step, Pipeline):
        parts = [_compile_step(s) for _, s in step.steps]
        if any(p is None for p in parts):
            return None

        def chained(x, parts=parts):
            for part in parts:
                x = part(x)
            return x
        return chained
    if isinstance(step, SimpleImputer):
        if step.add_indicator or not np.all(np.isfinite(np.asarray(step.statistics_, dtype=float))):
            return None
        fill = np.asarray(step.statistics_, dtype=float)
        if not (isinstance(step.missing_values, float) and np.isnan(step.missing_values)):
            return None

        def impute(x, fill=fill):
            x = np.asarray(x, dtype=float)
            return np.where(np.isnan(x), fill, x)
        return impute
    if isinstance(step, StandardScaler):
        mean = step.mean_ if step.with_mean and step.mean_ is not None else 0.0
        scale = step.scale_ if step.with_std and step.scale_ is not None else 1.0

        def standardize(x, mean=mean, scale=scale):
            return (np.asarray(x, dtype=float) - mean) / scale
        return standardize
    if isinstance(step, OneHotEncoder):
        if step.drop is not None or step.handle_unknown not in ("ignore", "infrequent_if_exist"):
            return None
        if getattr(step, "_infrequent_enabled", False):
            return None
        categories = [np.asarray(c, dtype=object) for c in step.categories_]
        if any(pd.isna(c).any() for c in categories):
            return None

        def one_hot(x, categories=categories):
            x = np.asarray(x, dtype=object)
            blocks = [(x[:, j:j + 1] == c[None, :]).astype(float) for j, c in enumerate(categories)]
            return np.hstack(blocks)
        return one_hot
    return None


def compile_transform(preprocessor, features: tuple[str, ...]) -> Callable[[pd.DataFrame], np.ndarray] | None:
    """A fast ``preprocessor.transform`` for DataFrames with the columns ``features``, or None.

    Parameters
    ----------
    preprocessor : fitted ColumnTransformer, or a Pipeline holding only one
    features : tuple of str
        Raw feature names.

    Returns
    -------
    callable or None
        ``f(X) -> ndarray`` giving the same dense matrix as ``preprocessor.transform(X)``.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    if isinstance(preprocessor, Pipeline):
        if len(preprocessor.steps) != 1:
            return None
        preprocessor = preprocessor.steps[0][1]
    if not isinstance(preprocessor, ColumnTransformer):
        return None
    index = {f: i for i, f in enumerate(features)}
    names_in = list(getattr(preprocessor, "feature_names_in_", []))
    blocks = []
    for name, step, columns in preprocessor.transformers_:
        if step == "drop" or name not in preprocessor.output_indices_:
            continue
        block = preprocessor.output_indices_[name]
        if block.stop == block.start:
            continue
        if isinstance(columns, str):
            columns = [columns]
        columns = list(np.asarray(columns).reshape(-1))
        if columns and isinstance(columns[0], int | np.integer) and names_in:
            columns = [names_in[int(c)] for c in columns]
        if columns and isinstance(columns[0], bool | np.bool_):
            return None
        if any(str(c) not in index for c in columns):
            return None
        compiled = _compile_step(step)
        if compiled is None:
            return None
        blocks.append((block, [index[str(c)] for c in columns], compiled))
    width = max((b.stop for b, _, _ in blocks), default=0)

    def transform(X: pd.DataFrame) -> np.ndarray:
        values = X.to_numpy(dtype=object)
        out = np.empty((len(X), width))
        for block, positions, compiled in blocks:
            out[:, block] = compiled(values[:, positions])
        return out
    return transform
