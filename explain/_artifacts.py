"""Artifact loaders: a model file (skops, joblib/pickle) or an MLflow model directory as a :class:`LocalModel`.

A skops file is loaded with only trusted types (:data:`TRUSTED_SKOPS_TYPES`, plus those the
configuration names); unpickling (joblib, pickle, MLflow's pickled models) runs code from the
file and needs ``trust_pickle``. An MLflow directory's ``MLmodel`` file is read with PyYAML
(mlflow itself is not needed). The artifact must take the service's features.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from explain._errors import ArtifactError
from explain._local import LocalModel

TRUSTED_SKOPS_TYPES: tuple[str, ...] = (
    "numpy.dtype",
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
)
"""Types skops does not trust by default that hold only fitted data of scikit-learn models
(tree structures and dtypes); any other untrusted type in a skops file must be trusted
explicitly (``trust_pickle = true`` or ``trusted_types=``)."""


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        with file.open("rb") as stream:
            for block in iter(lambda s=stream: s.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:12]


def _check_features(artifact: str, model_features: Sequence[str] | None, service_features: Sequence[str]) -> None:
    if model_features is None or not service_features:
        return
    extra = [f for f in model_features if f not in service_features]
    unused = [f for f in service_features if f not in model_features]
    if extra or unused:
        parts = []
        if extra:
            parts.append(f"it expects columns the service does not have: {extra}")
        if unused:
            parts.append(f"it lacks the service's features {unused}")
        raise ArtifactError(artifact, "expects other features than the service: " + "; ".join(parts)
                            + f" (the service's features: {list(service_features)}). "
                              "Is this the artifact of another model?")


def _model_features(estimator: Any) -> list[str] | None:
    names = getattr(estimator, "feature_names_in_", None)
    return None if names is None else [str(n) for n in names]


def _load_skops(path: Path, artifact: str, *, trust_pickle: bool, trusted_types: Sequence[str]) -> Any:
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:
        raise ArtifactError(artifact, f"is not a readable skops file ({type(exc).__name__}: {exc})") from None
    trusted = set(TRUSTED_SKOPS_TYPES) | set(trusted_types)
    unknown = sorted(t for t in untrusted if t not in trusted)
    if unknown and not trust_pickle:
        raise ArtifactError(artifact, f"the skops file holds types that are not trusted: {unknown}. Loading them "
                                      "could run code; if you trust this file, set trust_pickle = true in "
                                      "[services.explain] (or pass trusted_types).")
    try:
        return sio.load(path, trusted=list(untrusted))
    except Exception as exc:
        raise ArtifactError(artifact, f"could not be loaded by skops ({type(exc).__name__}: {exc})") from None


def _load_pickle(path: Path, artifact: str, *, trust_pickle: bool, what: str) -> Any:
    if not trust_pickle:
        raise ArtifactError(artifact, f"is {what}, and loading a pickle runs code from the file. Set "
                                      "trust_pickle = true in [services.explain] only if you trust it, or save "
                                      "the model with skops (skops.io.dump) instead.")
    try:
        import joblib

        return joblib.load(path)
    except Exception as exc:
        try:
            with path.open("rb") as stream:
                return pickle.load(stream)
        except Exception:
            raise ArtifactError(artifact, f"is not a loadable model file ({type(exc).__name__}: {exc})") from None


def _load_mlflow(directory: Path, artifact: str, *, trust_pickle: bool,
                 trusted_types: Sequence[str]) -> tuple[Any, list[str] | None, str]:
    import json

    import yaml

    try:
        meta = yaml.safe_load((directory / "MLmodel").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ArtifactError(artifact, f"its MLmodel file cannot be read ({exc})") from None
    if not isinstance(meta, dict):
        raise ArtifactError(artifact, "its MLmodel file is not a YAML mapping")
    flavors = meta.get("flavors") or {}
    sklearn_flavor = flavors.get("sklearn")
    if not isinstance(sklearn_flavor, dict):
        raise ArtifactError(artifact, f"is an MLflow model without the sklearn flavor (flavors: {sorted(flavors)}); "
                                      "only scikit-learn models can be loaded without mlflow")
    model_file = directory / str(sklearn_flavor.get("pickled_model", "model.pkl"))
    if not model_file.is_file():
        raise ArtifactError(artifact, f"its MLmodel names {model_file.name}, which does not exist")
    serialization = str(sklearn_flavor.get("serialization_format", "cloudpickle"))
    if serialization == "skops":
        estimator = _load_skops(model_file, artifact, trust_pickle=trust_pickle, trusted_types=trusted_types)
    else:
        estimator = _load_pickle(model_file, artifact, trust_pickle=trust_pickle,
                                 what=f"an MLflow model saved as a {serialization} pickle")
    features = None
    signature = (meta.get("signature") or {}).get("inputs")
    if signature:
        try:
            features = [str(c["name"]) for c in json.loads(signature) if "name" in c] or None
        except (ValueError, TypeError, KeyError):
            features = None
    version = str(meta.get("model_uuid") or meta.get("run_id") or "")[:12] or None
    return estimator, features, version


def load_artifact(path: str | Path, *, features: Sequence[str] = (), trust_pickle: bool = False,
                  trusted_types: Sequence[str] = ()) -> LocalModel:
    """Load a model artifact: a skops file, a joblib/pickle file or an MLflow model directory.

    Parameters
    ----------
    path : str or Path
        ``*.skops`` file; ``*.joblib``/``*.pkl``/``*.pickle`` file; or a directory with an
        ``MLmodel`` file (MLflow, sklearn flavor).
    features : sequence of str, default=()
        The service's features; the artifact must take exactly these (any order). Empty:
        the artifact's own feature names are used.
    trust_pickle : bool, default=False
        Allow unpickling (joblib, pickle, MLflow's pickled models) and skops types outside
        :data:`TRUSTED_SKOPS_TYPES`. Unpickling runs code from the file.
    trusted_types : sequence of str, default=()
        More skops types to trust, by their full names.

    Returns
    -------
    LocalModel

    Raises
    ------
    ArtifactError
        Missing file, not a model, other features than the service's, an untrusted pickle
        or untrusted skops types; the message says which and how to fix it.
    """
    file = Path(path)
    artifact = str(file)
    if not file.exists():
        raise ArtifactError(artifact, "does not exist (check [services.explain] artifact; relative paths are "
                                      "relative to the configuration file)")
    declared: list[str] | None = None
    version = None
    if file.is_dir():
        if not (file / "MLmodel").is_file():
            raise ArtifactError(artifact, "is a directory without an MLmodel file; accepted: a .skops or .joblib "
                                          "file, or an MLflow model directory")
        estimator, declared, version = _load_mlflow(file, artifact, trust_pickle=trust_pickle,
                                                    trusted_types=trusted_types)
        form = "MLflow model directory"
    elif file.suffix.lower() == ".skops":
        estimator = _load_skops(file, artifact, trust_pickle=trust_pickle, trusted_types=trusted_types)
        form = "skops file"
    elif file.suffix.lower() in (".joblib", ".pkl", ".pickle"):
        estimator = _load_pickle(file, artifact, trust_pickle=trust_pickle, what="a joblib/pickle file")
        form = "joblib file"
    else:
        raise ArtifactError(artifact, f"has an unknown type {file.suffix!r}; accepted: .skops, .joblib, .pkl, "
                                      ".pickle, or an MLflow model directory")
    if not hasattr(estimator, "predict"):
        raise ArtifactError(artifact, f"holds a {type(estimator).__module__}.{type(estimator).__name__}, which has no "
                                      "predict method: it is not a model")
    own = _model_features(estimator) or declared
    _check_features(artifact, own, tuple(features))
    names = list(features) or own
    if not names:
        n = getattr(estimator, "n_features_in_", None)
        raise ArtifactError(artifact, f"does not name its features (trained on an array of {n} columns) and the "
                                      "service lists none: set features in [[services]]")
    if own is None:
        n = getattr(estimator, "n_features_in_", None)
        if n is not None and n != len(names):
            raise ArtifactError(artifact, f"expects {n} features; the service has {len(names)}: {names}")
    version = version or _file_digest(file)
    return LocalModel(estimator, features=names, version=version, description=f"{form} {file.name}")
