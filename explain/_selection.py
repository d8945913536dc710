"""Source selection: which model source explains a service, and whether a local artifact is the model served.

``[services.explain] source`` decides (:func:`open_model_source`): the artifact (``local``),
the service as a black box (``remote``), or (``auto``) the artifact when one is configured,
checked against the service on a sample of reference rows (:func:`check_consistency`), and
the service otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from explain._artifacts import load_artifact
from explain._errors import ExplainError, RemoteExplainError
from explain._remote import RemoteModel
from explain._source import ModelSource
from monitoring.config import ServiceConfig


@dataclass(frozen=True)
class ConsistencyCheck:
    """Whether a local artifact predicts what the service predicts, on a sample of rows.

    Attributes
    ----------
    rows : int
        Rows compared.
    agrees : bool or None
        True when outputs match within ``tolerance``; None when the check could not run.
    max_abs_diff : float
        Largest absolute difference of the outputs (probabilities or values).
    label_agreement : float
        Share of rows with the same predicted label.
    tolerance : float
    message : str
        One sentence for the page.
    """

    rows: int
    agrees: bool | None
    max_abs_diff: float
    label_agreement: float
    tolerance: float
    message: str


def check_consistency(local: ModelSource, remote: RemoteModel, X: pd.DataFrame, *,
                      tolerance: float = 1e-6) -> ConsistencyCheck:
    """Compare a local artifact's outputs with the service's on the rows ``X`` (one request).

    Parameters
    ----------
    local : ModelSource
    remote : RemoteModel
    X : DataFrame
        Rows to compare, e.g. a sample of the reference data.
    tolerance : float, default=1e-6
        Largest absolute difference of probabilities (or values) still counted as equal.

    Returns
    -------
    ConsistencyCheck
    """
    try:
        remote_labels, remote_proba = remote.predict(X)
    except RemoteExplainError as exc:
        return ConsistencyCheck(len(X), None, float("nan"), float("nan"), tolerance,
                                f"could not check the artifact against the service: {exc.call}: {exc.reason}")
    local_labels, local_proba = local.predict(X)
    if local_proba is not None and remote_proba is not None and local_proba.shape == remote_proba.shape:
        diff = float(np.max(np.abs(local_proba - remote_proba)))
    elif local_proba is None and remote_proba is None:
        diff = float(np.max(np.abs(np.asarray(local_labels, float) - np.asarray(remote_labels, float))))
    else:
        diff = float("inf")
    same = np.asarray([str(a) == str(b) or _same_number(a, b)
                       for a, b in zip(local_labels, remote_labels, strict=True)])
    if local.task != "regression" and remote_proba is not None and local_proba is not None:
        same = local_proba.argmax(axis=1) == remote_proba.argmax(axis=1)
    agreement = float(same.mean()) if len(same) else float("nan")
    agrees = bool(diff <= tolerance)
    if agrees:
        message = (f"the artifact predicts what the service predicts on {len(X)} reference rows "
                   f"(largest difference {diff:.1e})")
    else:
        message = (f"the artifact is not the model being served: on {len(X)} reference rows its outputs differ by up "
                   f"to {diff:.3g} and {agreement:.0%} of the predicted labels agree. Explanations below describe the "
                   "artifact, not the service")
    return ConsistencyCheck(len(X), agrees, diff, agreement, tolerance, message)


def _same_number(a: Any, b: Any) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return False


@dataclass(frozen=True)
class SelectedSource:
    """The model source chosen for a service, and what the page should say about it.

    Attributes
    ----------
    model : ModelSource
        Used for every explanation.
    remote : RemoteModel or None
        The service as a black box, when it was opened (``auto`` and ``remote``).
    consistency : ConsistencyCheck or None
        The artifact checked against the service (``auto`` with an artifact).
    reason : str
        Why this source was chosen.
    """

    model: ModelSource
    remote: RemoteModel | None = None
    consistency: ConsistencyCheck | None = None
    reason: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)


def check_against_service(local: ModelSource, service: ServiceConfig, X: pd.DataFrame | None, *,
                          max_rows: int | None = None) -> ConsistencyCheck:
    """Check a local artifact against the service on the rows ``X`` (one request), never raising.

    Parameters
    ----------
    local : ModelSource
    service : ServiceConfig
    X : DataFrame or None
        Rows to compare (a sample of the reference data); None: nothing is checked.
    max_rows : int, optional
        Rows per request; default ``[services.explain] max_rows_per_request``.

    Returns
    -------
    ConsistencyCheck
        ``agrees`` is None when the check could not run (no data, or the service failed).
    """
    if X is None or len(X) == 0:
        return ConsistencyCheck(0, None, float("nan"), float("nan"), 1e-6,
                                "no reference data configured, so the artifact was not checked against the service")
    remote = RemoteModel(service, features=local.features, feature_kinds=local.feature_kinds, max_rows=max_rows)
    try:
        return check_consistency(local, remote, X)
    finally:
        remote.client.close()


def explains_through_service(service: ServiceConfig) -> bool:
    """Whether :func:`open_model_source` would use the service as a black box (every explanation then costs
    the service model rows), decided from the configuration alone, without contacting anything."""
    explain = service.explain
    return not (explain.artifact and explain.source in ("local", "auto"))


def open_model_source(service: ServiceConfig, X_reference: pd.DataFrame | None, *, check: bool = True,
                      check_rows: int = 200, max_rows: int | None = None,
                      random_state: int | None = 0) -> SelectedSource:
    """Open the model source ``service.explain`` asks for.

    ``source = "local"``: the artifact. ``"remote"``: the service as a black box. ``"auto"``:
    the artifact when one is configured, checked against the service on ``check_rows``
    reference rows (one request); the service otherwise.

    Parameters
    ----------
    service : ServiceConfig
    X_reference : DataFrame or None
        Reference rows (the service's features); a sample is used for the check and to learn
        the remote model's task.
    check : bool, default=True
        Run the consistency check now (``auto`` with an artifact); with False, call
        :func:`check_against_service` later (the page does, after its first chart).
    check_rows : int, default=200
    max_rows : int, optional
        Rows per request of the black box; default ``[services.explain] max_rows_per_request``.
    random_state : int or None, default=0
        Seed of the check's sample.

    Returns
    -------
    SelectedSource

    Raises
    ------
    ArtifactError
        When the artifact cannot be used.
    ExplainError
        When ``source = "local"`` has no artifact, or the service cannot be used as a black box.
    """
    explain = service.explain
    features = tuple(service.features) or (tuple(X_reference.columns) if X_reference is not None else ())
    kinds = _kinds_of(X_reference, features)
    sample = None
    if X_reference is not None and len(X_reference):
        sample = X_reference.sample(min(check_rows, len(X_reference)), random_state=random_state)
    if explain.source == "local" and not explain.artifact:
        raise ExplainError(f"service {service.name}: [services.explain] source = 'local' needs artifact = "
                           "'<skops or joblib file, or MLflow model directory>'")
    if explain.artifact and explain.source in ("local", "auto"):
        local = load_artifact(explain.artifact, features=features, trust_pickle=explain.trust_pickle)
        local.feature_kinds.update({f: k for f, k in kinds.items() if f in local.feature_kinds})
        if explain.source == "local":
            return SelectedSource(local, reason="source = 'local': the artifact, without checking it against the "
                                                "service")
        reason = "source = 'auto': the local artifact (faster), checked against the service"
        if not check:
            return SelectedSource(local, reason=reason)
        return SelectedSource(local, None, check_against_service(local, service, sample, max_rows=max_rows),
                              reason=reason)
    if not features:
        raise ExplainError(f"service {service.name}: the black box needs the feature names: set features or "
                           "reference in [[services]]")
    try:
        remote = RemoteModel(service, features=features, feature_kinds=kinds, X_sample=sample, max_rows=max_rows)
    except RemoteExplainError as exc:
        raise ExplainError(f"service {service.name} cannot be used as a black box: {exc.call}: {exc.reason}") from None
    reason = ("source = 'remote'" if explain.source == "remote" else "source = 'auto' and no artifact configured")
    return SelectedSource(remote, remote, None, reason=f"{reason}: the service as a black box")


def _kinds_of(X: pd.DataFrame | None, features: Sequence[str]) -> dict[str, str]:
    if X is None:
        return {}
    kinds = {}
    for name in features:
        if name in X.columns:
            column = X[name]
            numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
            kinds[name] = "numeric" if numeric else "categorical"
    return kinds
