"""Shapley values of a model source, with the explainer chosen for the model.

=================  ==============================================  ===========================
model              explainer                                       space
=================  ==============================================  ===========================
tree ensemble      ``shap.TreeExplainer`` on the final estimator,   raw (log-odds for gradient
                   on the Pipeline's transformed rows               boosting classifiers,
                   (path-dependent; fast)                           probability for forests,
                                                                    value for regressors);
                                                                    probability on request
                                                                    (interventional, over the
                                                                    background)
linear model       ``shap.LinearExplainer`` (over the background)   log-odds / value
anything else,     antithetic permutation sampling over the         probability (or log-odds)
or the service     background (:mod:`explain._permutation`),        / value
as a black box     evaluated in a few large batches
=================  ==============================================  ===========================

For a Pipeline, Tree and Linear explainers explain the final estimator on the transformed
matrix and the values of the columns that come from one raw feature (one-hot columns of a
category, say) are summed back to that feature, so the values stay additive in the raw
feature space: ``base_value + values.sum() == output`` for every row.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from explain._errors import ExplainError
from explain._permutation import permutation_shap
from explain._source import ModelSource

METHODS = ("auto", "tree", "linear", "permutation")
SPACE_CHOICES = ("auto", "probability", "log_odds", "raw")
SPACE_LABELS = {
    "probability": "probability",
    "log_odds": "log-odds (raw score)",
    "value": "predicted value",
    "raw": "raw model score",
}

_TREE_MODULES = ("sklearn.ensemble", "sklearn.tree", "xgboost", "lightgbm", "catboost")


def _is_tree_model(estimator) -> bool:
    module = type(estimator).__module__
    return module.startswith(_TREE_MODULES) and (
        hasattr(estimator, "estimators_") or hasattr(estimator, "tree_") or hasattr(estimator, "_predictors")
        or not module.startswith("sklearn"))


def _is_linear_model(estimator) -> bool:
    return type(estimator).__module__.startswith("sklearn.linear_model") and hasattr(estimator, "coef_")


@dataclass(frozen=True)
class LocalExplanation:
    """Why one row got its output: one Shapley value per raw feature.

    Attributes
    ----------
    values : Series
        Shapley value per feature (index: feature names), in ``space``.
    data : Series
        The row's raw feature values.
    base_value : float
        Expected output over the background (or training data, for path-dependent trees).
    prediction : float
        The row's output in ``space``: ``base_value + values.sum()``.
    output : str
        Which output, e.g. ``"class 1"``.
    space : str
        ``probability``, ``log_odds``, ``value`` or ``raw``.
    method : str
        ``tree``, ``linear`` or ``permutation``.
    row_id : str or None
        Prediction id, when the row came from the log.
    """

    values: pd.Series
    data: pd.Series
    base_value: float
    prediction: float
    output: str
    space: str
    method: str
    row_id: str | None = None

    def to_frame(self) -> pd.DataFrame:
        """``feature, value, shap_value`` sorted by |shap_value|, largest first."""
        frame = pd.DataFrame({"feature": self.values.index, "value": self.data.reindex(self.values.index).astype(str),
                              "shap_value": self.values.to_numpy()})
        return frame.reindex(frame["shap_value"].abs().sort_values(ascending=False).index).reset_index(drop=True)


@dataclass(frozen=True)
class DependenceData:
    """One feature's Shapley values against its values, coloured by a second feature.

    Attributes
    ----------
    feature : str
    values : Series
        The feature's raw values, one per explained row.
    shap_values : ndarray of shape (n_rows,)
    color_feature : str or None
    color_values : Series or None
    kind : {"numeric", "categorical"}
    output, space : str
    """

    feature: str
    values: pd.Series
    shap_values: np.ndarray
    color_feature: str | None
    color_values: pd.Series | None
    kind: str
    output: str
    space: str


@dataclass(frozen=True)
class ShapValues:
    """Shapley values of many rows, for every output of the model.

    Attributes
    ----------
    values : ndarray of shape (n_rows, n_features, n_outputs)
    base_values : ndarray of shape (n_outputs,)
    data : DataFrame of shape (n_rows, n_features)
        The explained rows' raw feature values.
    output_names : tuple of str
        E.g. ``("class 1",)`` for a binary classifier, one per class for multiclass,
        ``("predicted value",)`` for regression.
    space : str
        ``probability``, ``log_odds``, ``value`` or ``raw``.
    method : str
        ``tree``, ``linear`` or ``permutation``.
    note : str
        Which explainer and space were used and why.
    feature_kinds : dict
    requests : int
        HTTP requests made (0 for a local model).
    model_rows : int
        Rows the model was asked to predict (0 for Tree and Linear explainers).
    seconds : float
        Wall time of the computation.
    row_ids : tuple
        Prediction ids of the rows, when known.
    """

    values: np.ndarray
    base_values: np.ndarray
    data: pd.DataFrame
    output_names: tuple[str, ...]
    space: str
    method: str
    note: str
    feature_kinds: dict[str, str] = field(default_factory=dict)
    requests: int = 0
    model_rows: int = 0
    seconds: float = 0.0
    row_ids: tuple = ()

    @property
    def features(self) -> tuple[str, ...]:
        """Feature names, in column order."""
        return tuple(self.data.columns)

    @property
    def n_rows(self) -> int:
        """Number of explained rows."""
        return int(self.values.shape[0])

    def output_index(self, output: int | str = 0) -> int:
        """Position of ``output`` (an index or one of :attr:`output_names`)."""
        if isinstance(output, str):
            if output not in self.output_names:
                raise ValueError(f"output must be one of {list(self.output_names)}; got {output!r}")
            return self.output_names.index(output)
        if not -len(self.output_names) <= output < len(self.output_names):
            raise ValueError(f"output must be between 0 and {len(self.output_names) - 1}; got {output}")
        return int(output) % len(self.output_names)

    def outputs(self, output: int | str = 0) -> np.ndarray:
        """Model output of each row in :attr:`space`: base value plus the sum of the values."""
        k = self.output_index(output)
        return self.base_values[k] + self.values[:, :, k].sum(axis=1)

    def importance(self, output: int | str = 0) -> pd.DataFrame:
        """Mean |Shapley value| per feature.

        Returns
        -------
        DataFrame
            ``feature, mean_abs_shap``, largest first.
        """
        k = self.output_index(output)
        frame = pd.DataFrame({"feature": list(self.features), "mean_abs_shap": np.abs(self.values[:, :, k]).mean(0)})
        return frame.sort_values("mean_abs_shap", ascending=False, kind="stable").reset_index(drop=True)

    def beeswarm(self, output: int | str = 0) -> pd.DataFrame:
        """One point per row and feature, for a beeswarm (summary) plot.

        Returns
        -------
        DataFrame
            ``feature, shap_value, value`` (the raw value as text), ``color`` (the value's
            percentile rank within its feature, 0-1; NaN for categorical and missing values),
            ``row``; features ordered by importance.
        """
        k = self.output_index(output)
        parts = []
        for feature in self.importance(output)["feature"]:
            j = self.features.index(feature)
            raw = self.data[feature]
            if self.feature_kinds.get(feature, "numeric") == "numeric":
                color = pd.to_numeric(raw, errors="coerce").rank(pct=True).to_numpy()
            else:
                color = np.full(len(raw), np.nan)
            parts.append(pd.DataFrame({"feature": feature, "shap_value": self.values[:, j, k],
                                       "value": raw.astype(str).to_numpy(), "color": color,
                                       "row": np.arange(len(raw))}))
        return pd.concat(parts, ignore_index=True)

    def dependence(self, feature: str, *, output: int | str = 0, color_by: str | None = "auto") -> DependenceData:
        """A feature's values against its Shapley values, coloured by a second feature.

        Parameters
        ----------
        feature : str
        output : int or str, default=0
        color_by : str, "auto" or None, default="auto"
            Second feature; ``"auto"`` picks the most important other feature.

        Returns
        -------
        DependenceData
        """
        if feature not in self.features:
            raise ValueError(f"feature must be one of {list(self.features)}; got {feature!r}")
        k = self.output_index(output)
        if color_by == "auto":
            others = [f for f in self.importance(output)["feature"] if f != feature]
            color_by = others[0] if others else None
        if color_by is not None and color_by not in self.features:
            raise ValueError(f"color_by must be one of {list(self.features)}, 'auto' or None; got {color_by!r}")
        return DependenceData(
            feature=feature, values=self.data[feature].reset_index(drop=True),
            shap_values=self.values[:, self.features.index(feature), k], color_feature=color_by,
            color_values=None if color_by is None else self.data[color_by].reset_index(drop=True),
            kind=self.feature_kinds.get(feature, "numeric"), output=self.output_names[k], space=self.space)

    def explanation(self, row: int = 0, *, output: int | str = 0) -> LocalExplanation:
        """The explanation of one row (for a waterfall)."""
        if not 0 <= row < self.n_rows:
            raise ValueError(f"row must be between 0 and {self.n_rows - 1}; got {row}")
        k = self.output_index(output)
        values = pd.Series(self.values[row, :, k], index=list(self.features), name="shap_value")
        return LocalExplanation(values=values, data=self.data.iloc[row], base_value=float(self.base_values[k]),
                                prediction=float(self.outputs(k)[row]), output=self.output_names[k],
                                space=self.space, method=self.method,
                                row_id=str(self.row_ids[row]) if len(self.row_ids) > row else None)


class ShapExplainer:
    """Shapley values for a model source; chooses the explainer for the model.

    Build it once per model and background (it is cheap to keep) and call :meth:`explain`
    for the rows on screen.

    Parameters
    ----------
    model : ModelSource
    background : DataFrame
        Rows of the model's features (e.g. the reference data); a sample of
        ``background_rows`` of them is kept.
    method : {"auto", "tree", "linear", "permutation"}, default="auto"
        ``auto``: Tree for tree ensembles, Linear for linear models, permutation otherwise
        (and always for a remote model).
    space : {"auto", "probability", "log_odds", "raw"}, default="auto"
        ``auto``: the explainer's native space (Tree/Linear: the raw score; permutation:
        probability for classifiers). ``probability`` for a gradient-boosting model uses the
        interventional TreeExplainer; for a linear model, permutation sampling.
    background_rows : int, default=100
        Background sample size (1-1000; the permutation cost grows linearly with it).
    n_permutations : int, default=10
        Permutations per row of the permutation explainer.
    random_state : int or None, default=0
        Seed of the background sample and of the permutations.

    Attributes
    ----------
    method : str
        The explainer used.
    space : str
        The space of the values.
    note : str
        One sentence for the page: explainer, space and why.
    """

    def __init__(self, model: ModelSource, background: pd.DataFrame, *, method: str = "auto", space: str = "auto",
                 background_rows: int = 100, n_permutations: int = 10, random_state: int | None = 0):
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}; got {method!r}")
        if space not in SPACE_CHOICES:
            raise ValueError(f"space must be one of {SPACE_CHOICES}; got {space!r}")
        if not 1 <= background_rows <= 1000:
            raise ValueError(f"background_rows must be between 1 and 1000; got {background_rows}")
        if n_permutations < 1:
            raise ValueError(f"n_permutations must be >= 1; got {n_permutations}")
        if background is None or len(background) == 0:
            raise ExplainError("the explainer needs background rows (reference data); none were given")
        model.learn_task(background)  # a black box is asked about a few rows; a local model knows
        self.model = model
        self.random_state = random_state
        self.n_permutations = n_permutations
        frame = model.conform(background)
        if len(frame) > background_rows:
            frame = frame.sample(background_rows, random_state=random_state)
        self.background = frame.reset_index(drop=True)
        model.prepare_fast_transform(self.background)
        self._lock = threading.Lock()
        self._background_output: np.ndarray | None = None
        self._explainer = None
        self._groups: np.ndarray | None = None
        self.method, self.space, self.note = self._choose(method, space)

    # -- choosing ------------------------------------------------------------------------------

    def _choose(self, method: str, space: str) -> tuple[str, str, str]:
        model = self.model
        classifier = model.task != "regression"
        wanted = space if classifier and space != "raw" else ("auto" if classifier else "value")
        if model.final_estimator is not None and method in ("auto", "tree", "linear"):
            final = model.final_estimator
            mapping = model.column_map
            reason = ""
            if mapping is None:
                reason = ("the Pipeline's transformed columns cannot be traced back to raw features, so the "
                          "model-agnostic explainer is used")
            elif (method in ("auto", "tree")) and _is_tree_model(final):
                chosen = self._try_tree(final, wanted)
                if chosen is not None:
                    return chosen
                reason = "TreeExplainer does not support this model, so the model-agnostic explainer is used"
            elif method in ("auto", "linear") and _is_linear_model(final):
                if wanted in ("auto", "log_odds", "value"):
                    import shap

                    self._groups = mapping.matrix(len(model.features))
                    transformed = model.transform(self.background)
                    self._explainer = shap.LinearExplainer(final, transformed)
                    native = "log_odds" if classifier else "value"
                    return "linear", native, (f"LinearExplainer on {type(final).__name__}: exact Shapley values "
                                              f"of the {SPACE_LABELS[native]}, coef × (x − background mean), "
                                              "summed over each feature's encoded columns")
                reason = "LinearExplainer explains the log-odds only, so probabilities use the model-agnostic explainer"
            elif method in ("tree", "linear"):
                reason = f"{method} was asked for but {type(final).__name__} is not such a model"
            return self._permutation(wanted, reason)
        return self._permutation(wanted, model.black_box_reason)

    def _permutation(self, wanted: str, reason: str) -> tuple[str, str, str]:
        model = self.model
        if model.task == "regression" or not model.has_probabilities:
            space = "value"
        else:
            space = "log_odds" if wanted == "log_odds" else "probability"
        text = (f"Permutation Shapley values ({self.n_permutations} permutations forward and back, background of "
                f"{len(self.background)} rows) of the {SPACE_LABELS[space]}")
        return "permutation", space, text + (f"; {reason}" if reason else "")

    def _try_tree(self, final, wanted: str) -> tuple[str, str, str] | None:
        import shap

        try:
            explainer = shap.TreeExplainer(final)
        except Exception:
            return None
        tree_output = getattr(explainer.model, "tree_output", None)
        native = {"log_odds": "log_odds", "probability": "probability"}.get(
            tree_output, "value" if self.model.task == "regression" else "raw")
        self._groups = self.model.column_map.matrix(len(self.model.features))
        name = type(final).__name__
        if wanted in ("auto", native) or (wanted == "value" and native in ("value", "raw")):
            self._explainer = explainer
            return "tree", native, (f"TreeExplainer on {name} (path-dependent, exact and fast): Shapley values of the "
                                    f"{SPACE_LABELS[native]}, summed over each feature's encoded columns")
        if wanted == "probability" and native == "log_odds":
            try:
                transformed = self.model.transform(self.background)
                self._explainer = shap.TreeExplainer(final, data=transformed, model_output="probability",
                                                     feature_perturbation="interventional")
                return "tree", "probability", (
                    f"TreeExplainer on {name} (interventional over {len(self.background)} background rows, slower): "
                    "Shapley values of the probability, summed over each feature's encoded columns")
            except Exception:
                return None
        return None

    # -- computing -------------------------------------------------------------------------

    def warm_up(self) -> None:
        """Do the one-off work now (first explainer call; the background's outputs for the
        permutation explainer, one request for a black box), so the first page view does not."""
        self.explain(self.background.iloc[:1])

    def explain(self, X: pd.DataFrame, *, row_ids: tuple = (),
                progress: Callable[[float, str], None] | None = None) -> ShapValues:
        """Shapley values of the rows ``X``.

        Parameters
        ----------
        X : DataFrame of shape (n_rows, n_features)
            Rows with (at least) the model's features.
        row_ids : tuple, default=()
            Prediction ids of the rows, kept with the result.
        progress : callable, optional
            Called with (fraction done, text) during long computations.

        Returns
        -------
        ShapValues

        Raises
        ------
        RemoteExplainError
            When a request to the service fails; nothing partial is returned.
        """
        started = time.perf_counter()
        frame = self.model.conform(X).reset_index(drop=True)
        if len(frame) == 0:
            raise ExplainError("X has no rows to explain")
        requests = model_rows = 0
        if self.method in ("tree", "linear"):
            transformed = self.model.transform(frame, conformed=True)
            raw = np.asarray(self._explainer.shap_values(transformed), dtype=float)
            if raw.ndim == 2:
                raw = raw[:, :, None]
            base = np.atleast_1d(np.asarray(self._explainer.expected_value, dtype=float)).reshape(-1)
            values = np.einsum("ntk,tf->nfk", raw, self._groups)
            if self.model.binary and values.shape[2] == 2:
                values, base = values[:, :, 1:], base[1:]
        else:
            values, base, requests, model_rows = self._permutation_values(frame, progress)
        return ShapValues(values=values, base_values=base, data=frame, output_names=self.model.output_names(),
                          space=self.space, method=self.method, note=self.note,
                          feature_kinds=dict(self.model.feature_kinds), requests=requests, model_rows=model_rows,
                          seconds=time.perf_counter() - started, row_ids=tuple(row_ids))

    def model_rows_needed(self, X: pd.DataFrame) -> int:
        """Model rows :meth:`explain` will send for the rows ``X`` (0 for the Tree and Linear explainers).

        Exact for the permutation explainer (duplicates dropped, the background's rows counted only
        until its outputs are known); cheap next to the explanation itself, and nothing is sent.
        """
        if self.method in ("tree", "linear"):
            return 0
        from explain._permutation import plan_model_rows

        frame = self.model.conform(X).reset_index(drop=True)
        with self._lock:
            known = self._background_output is not None
        return plan_model_rows(frame, self.background, n_permutations=self.n_permutations,
                               random_state=self.random_state, include_background=not known)

    def _permutation_values(self, frame: pd.DataFrame, progress):
        model = self.model
        space = self.space
        sent = [0]

        def predict(frames, report):
            for outputs in model.frame_outputs(frames, space=space, report=report):
                sent[0] += model.sends_requests  # frames are at most max_rows: one request each
                yield outputs
        max_rows = model.max_rows

        with self._lock:
            known = self._background_output
        values, base, _, rows, background_output = permutation_shap(
            predict, frame, self.background, n_permutations=self.n_permutations, random_state=self.random_state,
            max_rows_per_call=max_rows, background_output=known, progress=progress)
        if known is None:
            with self._lock:  # later explanations skip the background's rows
                self._background_output = background_output
        return values, base, sent[0], rows
