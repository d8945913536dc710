"""Why the model predicts what it predicts: Shapley values, partial dependence and ICE.

Never imports Streamlit. Computations return frozen dataclasses and DataFrames; figures are
drawn from them by :mod:`explain.plots`.

Model sources (:class:`ModelSource`): :class:`LocalModel` (a skops/joblib file or an MLflow
model directory, via :func:`load_artifact`) and :class:`RemoteModel` (the service as a black
box); :func:`open_model_source` picks one as ``[services.explain]`` says and checks a local
artifact against the service (:func:`check_consistency`).

Shapley values: :class:`ShapExplainer` → :class:`ShapValues` (global: ``importance``,
``beeswarm``, ``dependence``; local: ``explanation`` → :class:`LocalExplanation`).

Partial dependence and ICE: :func:`partial_dependence` → :class:`PartialDependence`.
"""

from explain._artifacts import TRUSTED_SKOPS_TYPES, load_artifact
from explain._dependence import PartialDependence, feature_grid, partial_dependence
from explain._errors import ArtifactError, ExplainError, RemoteExplainError
from explain._local import LocalModel
from explain._permutation import permutation_shap
from explain._pipeline_columns import ColumnMap
from explain._remote import RemoteModel
from explain._selection import (
    ConsistencyCheck,
    SelectedSource,
    check_against_service,
    check_consistency,
    explains_through_service,
    open_model_source,
)
from explain._shap import DependenceData, LocalExplanation, ShapExplainer, ShapValues
from explain._source import ModelSource
from monitoring.clients import PROBE_HEADER
from monitoring.labels import TASKS

__all__ = [
    "PROBE_HEADER",
    "TASKS",
    "TRUSTED_SKOPS_TYPES",
    "ArtifactError",
    "ColumnMap",
    "ConsistencyCheck",
    "DependenceData",
    "ExplainError",
    "LocalExplanation",
    "LocalModel",
    "ModelSource",
    "PartialDependence",
    "RemoteExplainError",
    "RemoteModel",
    "SelectedSource",
    "ShapExplainer",
    "ShapValues",
    "check_against_service",
    "check_consistency",
    "explains_through_service",
    "feature_grid",
    "load_artifact",
    "open_model_source",
    "partial_dependence",
    "permutation_shap",
]
