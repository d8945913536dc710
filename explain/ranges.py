"""The What-if feature space: each feature's observed range and seen categories in the reference, and edits checked
against it."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from explain._errors import ExplainError, WhatIfInputError


@dataclass(frozen=True)
class FeatureRanges:
    """What values each feature may take: the reference's observed range and seen categories.

    Attributes
    ----------
    features : tuple of str
    kinds : dict of str to {"numeric", "categorical"}
    low, high : dict of str to float
        Smallest and largest reference value of each numeric feature.
    scale : dict of str to float
        Spread used to measure a change (interquartile range, or the range when it is 0).
    integer : dict of str to bool
        Whether every reference value of a numeric feature is a whole number.
    median : dict of str to float
    categories : dict of str to tuple
        Categories seen in the reference, most frequent first.
    """

    features: tuple[str, ...]
    kinds: dict[str, str]
    low: dict[str, float]
    high: dict[str, float]
    scale: dict[str, float]
    integer: dict[str, bool]
    median: dict[str, float]
    categories: dict[str, tuple]

    def problems(self, row: Mapping, *, allow_missing: Sequence[str] = ()) -> list[str]:
        """One message per value of ``row`` outside the ranges (empty list when all are fine).

        Parameters
        ----------
        row : mapping of feature to value
        allow_missing : sequence of str, default=()
            Features whose value may be empty (e.g. because the original was).
        """
        out = []
        for name in self.features:
            value = row.get(name) if hasattr(row, "get") else None
            missing = value is None or (isinstance(value, float) and math.isnan(value)) or value == ""
            if self.kinds[name] == "numeric":
                accepted = f"a number between {number_text(self.low[name])} and {number_text(self.high[name])}"
                if missing:
                    if name not in allow_missing:
                        out.append(f"{name} is empty; accepted: {accepted}")
                    continue
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    out.append(f"{name} must be {accepted}; got {value!r}")
                    continue
                if not self.low[name] <= number <= self.high[name]:
                    out.append(f"{name} must be {accepted} (the reference range); got {number_text(number)}")
            else:
                accepted = f"one of {list(self.categories[name])}"
                if missing:
                    if name not in allow_missing:
                        out.append(f"{name} is empty; accepted: {accepted}")
                elif value not in self.categories[name]:
                    out.append(f"{name} must be {accepted} (the categories seen in the reference); got {value!r}")
        return out

    def check(self, row: Mapping, *, allow_missing: Sequence[str] = ()) -> None:
        """Raise :class:`WhatIfInputError` naming every value outside the ranges."""
        problems = self.problems(row, allow_missing=allow_missing)
        if problems:
            raise WhatIfInputError(problems)


def number_text(value: float) -> str:
    """A number as messages show it (six significant digits)."""
    return f"{value:.6g}"


def feature_ranges(reference: pd.DataFrame, *, features: Sequence[str] | None = None,
                   feature_kinds: Mapping[str, str] | None = None) -> FeatureRanges:
    """The observed range of every numeric feature and the seen categories of every categorical one.

    Parameters
    ----------
    reference : DataFrame
        Reference (training) rows.
    features : sequence of str, optional
        Default: the columns of ``reference``.
    feature_kinds : mapping, optional
        ``numeric`` or ``categorical`` per feature; default: from the column dtypes.

    Returns
    -------
    FeatureRanges

    Raises
    ------
    ExplainError
        When the reference is empty or lacks a feature.
    """
    features = tuple(features or reference.columns)
    missing = [f for f in features if f not in reference.columns]
    if missing:
        raise ExplainError(f"the reference data lacks the features {missing}; it has {list(reference.columns)}")
    if len(reference) == 0:
        raise ExplainError("the reference data has no rows, so the features have no accepted ranges")
    kinds, low, high, scale, integer, median, categories = {}, {}, {}, {}, {}, {}, {}
    for name in features:
        column = reference[name]
        kind = (feature_kinds or {}).get(name)
        if kind is None:
            numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
            kind = "numeric" if numeric else "categorical"
        kinds[name] = kind
        if kind == "numeric":
            values = pd.to_numeric(column, errors="coerce").dropna().to_numpy(dtype=float)
            if len(values) == 0:
                raise ExplainError(f"feature {name} has no numeric values in the reference data")
            low[name], high[name] = float(values.min()), float(values.max())
            q1, q3 = np.quantile(values, [0.25, 0.75])
            spread = float(q3 - q1) or (high[name] - low[name]) or 1.0
            scale[name] = spread
            integer[name] = bool(np.all(np.mod(values, 1) == 0))
            median[name] = float(np.median(values))
        else:
            counts = column.dropna().astype(object).value_counts()
            categories[name] = tuple(counts.index.tolist())
    return FeatureRanges(features, kinds, low, high, scale, integer, median, categories)


