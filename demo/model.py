"""The demo's model: gradient-boosted trees on the synthetic credit-risk reference.

:func:`load_or_train` is what the demo service calls at start-up. The first call in a
directory generates the reference (:func:`demo.data.generate_reference`), trains the
pipeline, measures it on fresh pre-drift data and saves three files; later calls load them,
as long as they were made by the same :data:`demo.data.DEMO_DATA_VERSION` and the same
scikit-learn version. Files::

    model.joblib        the fitted sklearn Pipeline
    reference.parquet   the training data: features, target, and the model's prediction and
                        score on it (the drift reference)
    model.json          metadata: version (hash of model.joblib), features, target,
                        threshold, trained_at, metrics, demo_data_version, sklearn_version
    model.skops         the same pipeline saved with skops, which loads without unpickling
                        (the Explain page reads it; written again when missing)

The pipeline takes the raw features of :data:`demo.data.FEATURES` (a DataFrame, any column
order, extra columns ignored): numeric columns are median-imputed, categorical ones are
one-hot encoded with unknown levels ignored, then a ``GradientBoostingClassifier`` with
depth-3 trees, which ``shap.TreeExplainer`` explains exactly and fast (about 0.1 s for 1,000
rows). It was preferred to ``HistGradientBoostingClassifier``, which trains faster and which
shap also explains, because it predicts on one thread: the OpenMP pool of the latter made a
one-row prediction take about 90 ms instead of 6 ms on a two-core machine busy with other
work, and the demo service's latency is something Vantage charts.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import sklearn
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from demo.data import DEMO_DATA_VERSION, FEATURES, TARGET, generate_reference, ground_truth_probability

try:  # POSIX only; elsewhere concurrent first starts are not serialised.
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

__all__ = [
    "DEFAULT_THRESHOLD",
    "HOLDOUT_ROWS",
    "LOCK_FILENAME",
    "METADATA_FILENAME",
    "MODEL_FILENAME",
    "REFERENCE_FILENAME",
    "REFERENCE_ROWS",
    "SKOPS_FILENAME",
    "DemoModel",
    "load_or_train",
    "load_reference",
    "predict_frame",
    "train_model",
]

logger = logging.getLogger(__name__)

MODEL_FILENAME = "model.joblib"
REFERENCE_FILENAME = "reference.parquet"
METADATA_FILENAME = "model.json"
SKOPS_FILENAME = "model.skops"
LOCK_FILENAME = ".model.lock"
REFERENCE_ROWS = 20_000
HOLDOUT_ROWS = 10_000
DEFAULT_THRESHOLD = 0.5
_REFERENCE_SEED = 0
_HOLDOUT_SEED = 1
_TRAINING_SEED = 0
_VERSION_LENGTH = 12


@dataclass(frozen=True)
class DemoModel:
    """A trained demo model and where its files are.

    Two instances compare equal when they describe the same artifact (the pipeline object
    itself is left out of comparisons and of the repr).

    Attributes
    ----------
    pipeline : sklearn.pipeline.Pipeline
        Fitted; takes the raw features, ``predict_proba`` gives shape (n, 2).
    version : str
        First 12 hex digits of the SHA-256 of ``model.joblib``.
    features : dict of str to str
        Feature name → ``"numeric"`` or ``"categorical"``, in model order.
    target : str
        Name of the target column (``"default"``).
    reference_path : Path
        Parquet file of the training data, features and target.
    artifact_path : Path
        The joblib file of the pipeline.
    trained_at : float
        Unix time the pipeline was trained.
    metrics : dict
        Measured on fresh pre-drift data: ``roc_auc``, ``accuracy``, ``log_loss``, plus
        ``ground_truth_roc_auc`` (the best any model can do), ``positive_rate``,
        ``n_reference``, ``n_holdout`` and ``training_seconds``.
    threshold : float, default=0.5
        Probability of class 1 from which the predicted label is 1.
    skops_path : Path or None, default=None
        The pipeline saved with skops (``model.skops``), for loading without unpickling.
    """

    pipeline: Pipeline = field(compare=False, repr=False)
    version: str
    features: dict[str, str] = field(hash=False)
    target: str
    reference_path: Path
    artifact_path: Path
    trained_at: float
    metrics: dict[str, float] = field(hash=False)
    threshold: float = DEFAULT_THRESHOLD
    skops_path: Path | None = None


def train_model(reference: pd.DataFrame, *, random_state: int | None = 0) -> Pipeline:
    """Fit the demo pipeline on a reference frame.

    Parameters
    ----------
    reference : DataFrame
        Holds every column of :data:`demo.data.FEATURES` and the target ``default``
        (0/1, both classes present); other columns are ignored.
    random_state : int or None, default=0
        Seed of the gradient boosting's row subsampling.

    Returns
    -------
    pipeline : sklearn.pipeline.Pipeline
        Steps ``preprocess`` (a ColumnTransformer: ``numeric`` = SimpleImputer(median),
        ``categorical`` = OneHotEncoder(handle_unknown="ignore"), dense output) and
        ``classifier`` (GradientBoostingClassifier, 120 trees of depth 3, each fitted on half the rows).
    """
    required = [*FEATURES, TARGET]
    missing = [name for name in required if name not in reference.columns]
    if missing:
        raise ValueError(f"reference must have the columns {required}; missing: {missing}")
    classes = np.unique(reference[TARGET].to_numpy())
    if len(classes) != 2:
        raise ValueError(f"reference[{TARGET!r}] must hold both classes 0 and 1; got {classes.tolist()}")

    numeric = [name for name, kind in FEATURES.items() if kind == "numeric"]
    categorical = [name for name, kind in FEATURES.items() if kind == "categorical"]
    preprocess = ColumnTransformer(
        [
            ("numeric", SimpleImputer(strategy="median"), numeric),
            ("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical),
        ]
    )
    classifier = GradientBoostingClassifier(
        n_estimators=120, max_depth=3, learning_rate=0.1, subsample=0.5, random_state=random_state
    )
    pipeline = Pipeline([("preprocess", preprocess), ("classifier", classifier)])
    pipeline.fit(reference[list(FEATURES)], reference[TARGET].to_numpy())
    return pipeline


def predict_frame(model: DemoModel, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Labels and class probabilities for a frame of raw features.

    Parameters
    ----------
    model : DemoModel
    X : DataFrame
        Holds every feature of ``model.features``; numeric values may be NaN, categorical
        ones may be missing or unseen. Extra columns are ignored.

    Returns
    -------
    labels : ndarray of int of shape (n_rows,)
        1 where the probability of class 1 is >= ``model.threshold``.
    proba : ndarray of float of shape (n_rows, 2)
        Probabilities of class 0 and class 1.
    """
    missing = [name for name in model.features if name not in X.columns]
    if missing:
        raise ValueError(f"X must have the columns {list(model.features)}; missing: {missing}")
    proba = model.pipeline.predict_proba(X.loc[:, list(model.features)])
    labels = (proba[:, 1] >= model.threshold).astype(np.int64)
    return labels, proba


def load_reference(model: DemoModel) -> pd.DataFrame:
    """Read the model's training data (features and target) from its Parquet file.

    Parameters
    ----------
    model : DemoModel

    Returns
    -------
    reference : DataFrame
        The frame the pipeline was trained on; categorical features are pandas
        categoricals.
    """
    return pd.read_parquet(model.reference_path)


def load_or_train(directory: Path | str) -> DemoModel:
    """Load the demo model saved in ``directory``, or train and save it there.

    The saved files are reused when all three exist, ``model.json`` names the current
    :data:`demo.data.DEMO_DATA_VERSION` and scikit-learn version, and ``model.joblib``
    still has the recorded hash. Otherwise the reference is generated, the model trained
    and measured, and the files are written to temporary names and renamed into place
    (``model.json`` last). An exclusive lock on ``directory/.model.lock`` makes processes
    that start together train once: the others wait, then load.

    Parameters
    ----------
    directory : Path or str
        Created if needed.

    Returns
    -------
    model : DemoModel
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with _exclusive_lock(directory / LOCK_FILENAME):
        model, reason = _load_if_current(directory)
        if model is not None:
            logger.info(
                "Loaded demo model %s from %s in %.2f s", model.version, directory, time.perf_counter() - started
            )
            return model
        logger.info("Training the demo model in %s: %s", directory, reason)
        model = _train_and_save(directory)
    logger.info(
        "Trained and saved demo model %s in %.1f s (held-out ROC AUC %.3f, accuracy %.3f)",
        model.version,
        time.perf_counter() - started,
        model.metrics["roc_auc"],
        model.metrics["accuracy"],
    )
    return model


def _load_if_current(directory: Path) -> tuple[DemoModel | None, str]:
    """The saved model if it is usable, else None and the reason."""
    artifact_path = directory / MODEL_FILENAME
    reference_path = directory / REFERENCE_FILENAME
    metadata_path = directory / METADATA_FILENAME
    absent = [path.name for path in (artifact_path, reference_path, metadata_path) if not path.exists()]
    if absent:
        return None, f"no saved {', '.join(absent)}"
    try:
        metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return None, f"{metadata_path.name} is unreadable ({error})"
    if not isinstance(metadata, dict):
        return None, f"{metadata_path.name} holds {type(metadata).__name__}, not an object"
    if metadata.get("demo_data_version") != DEMO_DATA_VERSION:
        return None, (
            f"saved demo_data_version {metadata.get('demo_data_version')!r} is not the current {DEMO_DATA_VERSION!r}"
        )
    if metadata.get("sklearn_version") != sklearn.__version__:
        return None, f"saved by scikit-learn {metadata.get('sklearn_version')!r}, running {sklearn.__version__!r}"
    version = _file_version(artifact_path)
    if metadata.get("version") != version:
        return None, f"{artifact_path.name} has hash {version}, metadata says {metadata.get('version')!r}"
    try:
        pipeline = joblib.load(artifact_path)
        model = DemoModel(
            pipeline=pipeline,
            version=version,
            features=dict(metadata["features"]),
            target=str(metadata["target"]),
            reference_path=reference_path,
            artifact_path=artifact_path,
            trained_at=float(metadata["trained_at"]),
            metrics=dict(metadata["metrics"]),
            threshold=float(metadata["threshold"]),
            skops_path=_ensure_skops(directory, pipeline),
        )
    except Exception as error:  # a corrupt pickle can raise almost anything: retrain
        return None, f"the saved model could not be loaded ({type(error).__name__}: {error})"
    return model, "up to date"


def _ensure_skops(directory: Path, pipeline: Pipeline) -> Path:
    """``model.skops`` next to ``model.joblib``, written when missing (call with the lock held)."""
    import skops.io

    path = directory / SKOPS_FILENAME
    if not path.exists():
        _write_atomically(path, lambda target: skops.io.dump(pipeline, target))
    return path


def _train_and_save(directory: Path) -> DemoModel:
    started = time.perf_counter()
    reference = generate_reference(REFERENCE_ROWS, random_state=_REFERENCE_SEED)
    trained_at = time.time()
    pipeline = train_model(reference, random_state=_TRAINING_SEED)
    training_seconds = time.perf_counter() - started
    metrics = _holdout_metrics(pipeline)
    metrics.update(n_reference=len(reference), training_seconds=round(training_seconds, 3))

    artifact_path = directory / MODEL_FILENAME
    reference_path = directory / REFERENCE_FILENAME
    metadata_path = directory / METADATA_FILENAME
    # The model's own outputs on the reference, so prediction drift has something to compare with.
    scored = reference.assign(prediction=pipeline.predict(reference[list(FEATURES)]).astype(float),
                              score=pipeline.predict_proba(reference[list(FEATURES)])[:, 1])
    _write_atomically(reference_path, lambda path: scored.to_parquet(path, index=False))
    version = _write_atomically(artifact_path, lambda path: joblib.dump(pipeline, path))
    metadata = {
        "version": version,
        "demo_data_version": DEMO_DATA_VERSION,
        "sklearn_version": sklearn.__version__,
        "features": FEATURES,
        "target": TARGET,
        "threshold": DEFAULT_THRESHOLD,
        "trained_at": trained_at,
        "metrics": metrics,
        "reference_file": REFERENCE_FILENAME,
        "artifact_file": MODEL_FILENAME,
    }
    (directory / SKOPS_FILENAME).unlink(missing_ok=True)  # an older model's: replaced below
    skops_path = _ensure_skops(directory, pipeline)
    _write_atomically(metadata_path, lambda path: path.write_text(json.dumps(metadata, indent=2), encoding="utf-8"))
    return DemoModel(
        pipeline=pipeline,
        version=version,
        features=dict(FEATURES),
        target=TARGET,
        reference_path=reference_path,
        artifact_path=artifact_path,
        trained_at=trained_at,
        metrics=metrics,
        threshold=DEFAULT_THRESHOLD,
        skops_path=skops_path,
    )


def _holdout_metrics(pipeline: Pipeline) -> dict[str, float]:
    """ROC AUC, accuracy and log loss on fresh pre-drift data, with the ground truth's AUC."""
    holdout = generate_reference(HOLDOUT_ROWS, random_state=_HOLDOUT_SEED)
    y_true = holdout[TARGET].to_numpy()
    proba = pipeline.predict_proba(holdout[list(FEATURES)])[:, 1]
    clipped = np.clip(proba, 1e-12, 1 - 1e-12)
    log_loss = -np.mean(y_true * np.log(clipped) + (1 - y_true) * np.log(1 - clipped))
    return {
        "roc_auc": round(float(roc_auc_score(y_true, proba)), 4),
        "accuracy": round(float(accuracy_score(y_true, proba >= DEFAULT_THRESHOLD)), 4),
        "log_loss": round(float(log_loss), 4),
        "ground_truth_roc_auc": round(float(roc_auc_score(y_true, ground_truth_probability(holdout))), 4),
        "positive_rate": round(float(y_true.mean()), 4),
        "n_holdout": len(holdout),
    }


def _write_atomically(path: Path, write: Callable[[Path], object]) -> str:
    """Write ``path`` through a temporary sibling and a rename; return the content's short hash."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(descriptor)
    temporary_path = Path(temporary)
    try:
        write(temporary_path)
        version = _file_version(temporary_path)
        os.replace(temporary_path, path)
    except BaseException:
        temporary_path.unlink(missing_ok=True)
        raise
    return version


def _file_version(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:_VERSION_LENGTH]


@contextlib.contextmanager
def _exclusive_lock(lock_path: Path) -> Iterator[None]:
    if fcntl is None:  # pragma: no cover
        yield
        return
    with lock_path.open("a") as lock_file:
        fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)
