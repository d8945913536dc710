"""Model sources: the model to explain, from a local artifact or the service as a black box.

Both kinds answer the same questions in the service's original (raw) feature space:
``predict(X) -> (labels, probabilities or None)``, ``output(X, space=...)`` (the number an
explanation decomposes), ``task`` (``binary``, ``multiclass`` or ``regression``),
``classes`` and ``features``.

* :class:`LocalModel` wraps a fitted scikit-learn estimator or Pipeline read from a skops
  file, a joblib/pickle file (only with ``trust_pickle``: unpickling runs code from the file)
  or an MLflow model directory (its ``MLmodel`` file is read with PyYAML; mlflow itself is not
  needed). For a Pipeline it also knows how to transform rows and which transformed columns
  come from which raw feature, so explanations can be summed back to raw features.
* :class:`RemoteModel` calls the service through its monitoring client, with requests of up
  to ``max_rows`` rows, flagged with the ``X-Vantage-Probe`` header so the service leaves them
  out of its prediction log, and counts the requests it makes.

Traffic budget: every request a black-box computation sends (Shapley values, partial dependence,
What-if, counterfactuals, the baseline's scoring of the reference) is paced by the service's
:class:`RowBudget`, a token bucket of model rows per second shared by every thread and session of
one process (:func:`service_budget`), in requests of at most ``max_rows_per_request`` rows, and a
computation that would send more than ``max_rows_per_computation`` rows in all is refused before
its first request (:class:`BudgetExceededError`), with its estimate. The keys are in
``[services.explain]``; the defaults are conservative (2,000 rows/s in requests of 500 rows).
"""

from __future__ import annotations

import hashlib
import pickle
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from explain._errors import ArtifactError, ExplainError, RemoteExplainError
from monitoring.clients import PROBE_HEADER, ServiceClient, ServiceError, make_client
from monitoring.config import ServiceConfig
from monitoring.labels import TASKS  # "classification" or "regression", the one vocabulary

SPACES = ("probability", "log_odds", "value")

TRUSTED_SKOPS_TYPES: tuple[str, ...] = (
    "numpy.dtype",
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
)
"""Types skops does not trust by default that hold only fitted data of scikit-learn models
(tree structures and dtypes); any other untrusted type in a skops file must be trusted
explicitly (``trust_pickle = true`` or ``trusted_types=``)."""


DEFAULT_MAX_ROWS = 50_000
"""Largest request of a black-box explanation: a body of about 10 MB for a dozen features, under the
template service's limit of 100,000 rows per request. ``[services.explain] max_rows_per_request``
(500 by default) decides the size actually sent; it may not exceed this."""

_EPS = 1e-12


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        with file.open("rb") as stream:
            for block in iter(lambda s=stream: s.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:12]


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


# -- the traffic budget of a service ------------------------------------------------------------


class BudgetExceededError(ExplainError):
    """A computation that would send the service more model rows than its budget allows; nothing was sent.

    Parameters
    ----------
    service : str
    rows : int
        Model rows the computation needs.
    limit : int
        ``[services.explain] max_rows_per_computation``.
    rate : float
        ``max_rows_per_second``, for the time the rows would take.
    """

    def __init__(self, service: str, rows: int, limit: int, rate: float):
        self.service = service
        self.rows = rows
        self.limit = limit
        super().__init__(
            f"This needs about {rows:,} model rows from service {service} ({duration_text(rows / rate)} at "
            f"{rate:,.0f} rows/s), more than the {limit:,} one computation may send "
            "([services.explain] max_rows_per_computation). Explain fewer rows, use a smaller background "
            "(background_rows), configure the model artifact to explain it locally, or raise the limit.")


def duration_text(seconds: float) -> str:
    """``"~30 s"``, ``"~4 min"`` or ``"~2.5 h"``."""
    if seconds < 90:
        return f"~{max(seconds, 1):.0f} s"
    if seconds < 5400:
        return f"~{seconds / 60:.0f} min"
    return f"~{seconds / 3600:.1f} h"


@dataclass(frozen=True)
class BudgetCounters:
    """What a :class:`RowBudget` has let through since it was made.

    Attributes
    ----------
    rows : int
        Model rows sent.
    requests : int
        Requests sent.
    waited_s : float
        Seconds callers spent waiting for the budget, added over callers.
    first_s, last_s : float or None
        Monotonic times of the first and the latest request let through.
    """

    rows: int = 0
    requests: int = 0
    waited_s: float = 0.0
    first_s: float | None = None
    last_s: float | None = None


class RowBudget:
    """A token bucket of model rows per second: the pace of every black-box request to one service.

    The bucket holds at most ``burst`` rows and refills at ``rows_per_second``; a request of ``n``
    rows takes ``n`` tokens and waits while the bucket is in debt, so over any interval of ``T``
    seconds at most ``burst + rows_per_second * T`` rows are let through, however many threads
    share the budget. Callers are served in the order they ask.

    Parameters
    ----------
    rows_per_second : float
    burst : int
        Bucket size; the largest request (``max_rows_per_request``) is the natural choice.
    monotonic, sleep : callable, optional
        The clock and the wait (tests pass a fake clock).
    """

    def __init__(self, rows_per_second: float, *, burst: int, monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        if not rows_per_second > 0:
            raise ValueError(f"rows_per_second must be > 0; got {rows_per_second!r}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1; got {burst!r}")
        self.rows_per_second = float(rows_per_second)
        self.burst = int(burst)
        self._monotonic = monotonic
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._updated = monotonic()
        self._counters = BudgetCounters()

    def wait_for(self, rows: int) -> float:
        """Seconds a request of ``rows`` rows would wait now (without taking anything)."""
        with self._lock:
            tokens = min(self.burst, self._tokens + (self._monotonic() - self._updated) * self.rows_per_second)
        return max(0.0, (rows - tokens) / self.rows_per_second)

    def acquire(self, rows: int) -> float:
        """Take ``rows`` tokens, waiting as long as the bucket needs to refill; return the seconds waited.

        Parameters
        ----------
        rows : int
            Rows of the request about to be sent (at least 1 counts).
        """
        rows = max(int(rows), 1)
        with self._lock:
            now = self._monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rows_per_second)
            self._updated = now
            self._tokens -= rows
            wait = max(0.0, -self._tokens / self.rows_per_second)
            counters = self._counters
            sent_at = now + wait
            self._counters = BudgetCounters(
                counters.rows + rows, counters.requests + 1, counters.waited_s + wait,
                sent_at if counters.first_s is None else counters.first_s, sent_at)
        if wait > 0:
            self._sleep(wait)
        return wait

    @property
    def counters(self) -> BudgetCounters:
        """Rows, requests and waiting let through so far."""
        with self._lock:
            return self._counters

    def seconds_for(self, rows: int) -> float:
        """Seconds ``rows`` model rows take at this budget's pace (from a full bucket)."""
        return max(0.0, rows - self.burst) / self.rows_per_second


_BUDGETS: dict[tuple, RowBudget] = {}
_BUDGETS_LOCK = threading.Lock()


def service_budget(service: ServiceConfig) -> RowBudget:
    """The one :class:`RowBudget` of ``service`` in this process (every session and thread shares it).

    Parameters
    ----------
    service : ServiceConfig
        Its ``[services.explain]`` gives ``max_rows_per_second`` and ``max_rows_per_request``; a
        service whose settings change gets a new budget.

    Returns
    -------
    RowBudget
    """
    settings = service.explain
    key = (service.name, service.url, float(settings.max_rows_per_second), int(settings.max_rows_per_request))
    with _BUDGETS_LOCK:
        budget = _BUDGETS.get(key)
        if budget is None:
            budget = _BUDGETS[key] = RowBudget(settings.max_rows_per_second, burst=settings.max_rows_per_request)
        return budget


def rows_estimate(service: ServiceConfig, rows: int) -> str:
    """``"about 60,000 model rows, ~30 s at 2,000 rows/s"``: what a computation will cost the service."""
    rate = service.explain.max_rows_per_second
    return f"about {rows:,} model rows, {duration_text(rows / rate)} at {rate:,.0f} rows/s"


def needs_confirmation(service: ServiceConfig, rows: int) -> bool:
    """Whether a computation of ``rows`` model rows should wait for the user's go-ahead
    (``[services.explain] confirm_rows_above``)."""
    return rows > service.explain.confirm_rows_above


def paced_predict(service: ServiceConfig, predict: Callable[[pd.DataFrame], Any]) -> Callable[[pd.DataFrame], Any]:
    """``predict`` behind the service's budget: each call first waits for its rows (the baseline's scoring).

    Parameters
    ----------
    service : ServiceConfig
    predict : callable
        ``predict(X)``, one request per call (keep ``X`` within ``max_rows_per_request`` rows).

    Returns
    -------
    callable
    """
    budget = service_budget(service)

    def paced(X: pd.DataFrame):
        budget.acquire(len(X))
        return predict(X)

    return paced


# -- local artifacts ----------------------------------------------------------------------------


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
            kinds.setdefault(name, _guess_kind(estimator, name))
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
            self._column_map = _column_map(self.preprocessor, self.features)
        return self._column_map


def _dense(matrix: Any) -> np.ndarray:
    if hasattr(matrix, "toarray"):
        matrix = matrix.toarray()
    return np.asarray(matrix, dtype=float)


def _guess_kind(estimator: Any, feature: str) -> str:
    """Categorical when a one-hot/ordinal encoder of the estimator's ColumnTransformer takes it."""
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


def _column_map(preprocessor: Any, features: tuple[str, ...]) -> ColumnMap | None:
    """Map the preprocessor's output columns to raw features (None when it cannot be done)."""
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


# -- the service as a black box -------------------------------------------------------------


class RemoteModel(ModelSource):
    """The service itself, called through its monitoring client, paced by the service's budget.

    Parameters
    ----------
    service : ServiceConfig
        The service; ``service.explain`` gives the budget (rows per second, per request and per
        computation).
    features : sequence of str
        Raw input columns (the service's features).
    feature_kinds : dict, optional
    X_sample : DataFrame, optional
        A few rows to ask the service once, to learn whether it gives probabilities and how
        many classes; without it the task is learnt on the first prediction.
    max_rows : int, optional
        Rows per request; default ``[services.explain] max_rows_per_request``, and never more
        than :data:`DEFAULT_MAX_ROWS`.
    timeout : float, default=120
        Seconds before one request is abandoned.
    client : ServiceClient, optional
        Client to use instead of making one (tests).
    budget : RowBudget, optional
        Pace of the requests; default the service's shared one (:func:`service_budget`).

    Attributes
    ----------
    requests, rows_sent : int
        Requests and model rows sent so far.
    waited_s : float
        Seconds spent waiting for the budget so far.
    max_rows_total : int
        Model rows one call of :meth:`predict_batches` may send (``max_rows_per_computation``).
    """

    kind = "remote"

    def __init__(self, service: ServiceConfig, *, features: Sequence[str], feature_kinds: dict[str, str] | None = None,
                 X_sample: pd.DataFrame | None = None, max_rows: int | None = None, timeout: float = 120.0,
                 client: ServiceClient | None = None, budget: RowBudget | None = None):
        if max_rows is None:
            max_rows = service.explain.max_rows_per_request
        if max_rows < 1:
            raise ValueError(f"max_rows must be >= 1; got {max_rows}")
        max_rows = min(int(max_rows), DEFAULT_MAX_ROWS)
        outputs = service.v2_outputs
        if "predict_proba" in outputs:
            outputs = ("predict_proba",)
        config = service.model_copy(update={"max_batch_rows": max_rows, "v2_outputs": outputs,
                                            "predict_timeout": max(service.predict_timeout, timeout)})
        self.service = service
        self.client = client or make_client(config)
        self.client.session.headers[PROBE_HEADER] = "explain"
        self.max_rows = max_rows
        self.max_rows_total = service.explain.max_rows_per_computation
        self.budget = budget or service_budget(service)
        self._lock = threading.Lock()
        self.requests = 0
        self.rows_sent = 0
        self.waited_s = 0.0
        try:
            version = self.client.metadata().version
        except ServiceError:
            version = service.model_version
        super().__init__(features=features, feature_kinds=feature_kinds, task="regression", classes=None,
                         version=version, description=f"service {service.name} ({service.protocol}, {service.url})")
        self._task_known = False
        if X_sample is not None and len(X_sample):
            if client is None and service.protocol == "v2" and not service.v2_outputs:
                self._ask_for_probabilities(config, X_sample.iloc[:5])
            self.predict(X_sample.iloc[:5])

    def _ask_for_probabilities(self, config: ServiceConfig, X: pd.DataFrame) -> None:
        """A v2 server answers with labels by default (MLServer's scikit-learn runtime does): ask it once for
        ``predict_proba``, and keep asking for it when it gives class probabilities, so a classifier is
        explained as one with a config that names no outputs. A server that refuses keeps its default."""
        trial = make_client(config.model_copy(update={"v2_outputs": ("predict_proba",)}))
        trial.session.headers[PROBE_HEADER] = "explain"
        waited = self.budget.acquire(len(X))
        try:
            answer = trial.predict(self.conform(X))
        except ServiceError:
            trial.close()
            return
        with self._lock:
            self.requests += answer.requests
            self.rows_sent += len(X)
            self.waited_s += waited
        if answer.probabilities is not None and np.ndim(answer.probabilities) == 2:
            self.client.close()
            self.client = trial
        else:
            trial.close()

    @property
    def call(self) -> str:
        """The HTTP call a prediction makes, e.g. ``POST /v2/models/m/infer``."""
        return str(getattr(self.client, "_predict_call", "predict"))

    def estimate(self, rows: int) -> str:
        """``"about 60,000 model rows, ~30 s at 2,000 rows/s"`` for a computation of ``rows`` model rows."""
        return rows_estimate(self.service, rows)

    sends_requests = True
    black_box_reason = "the service is a black box"

    def frame_outputs(self, frames, *, space: str, report=None):
        """:meth:`output` of each frame, one request per frame within the budget, refused whole when above it."""
        total = sum(getattr(frames, "row_counts", None) or (len(f) for f in frames))
        self.check_budget(total)  # refused before anything is sent
        if report is not None:
            report(0.0, self.estimate(total))
        for labels, proba in self.iter_predictions(frames, progress=report):
            yield self.outputs_from(labels, proba, space=space)

    def check_budget(self, rows: int) -> None:
        """Refuse a computation of ``rows`` model rows above ``max_rows_per_computation``.

        Raises
        ------
        BudgetExceededError
        """
        if rows > self.max_rows_total:
            raise BudgetExceededError(self.service.name, rows, self.max_rows_total, self.budget.rows_per_second)

    def predict(self, X):
        """One request per ``max_rows`` rows; raises :class:`RemoteExplainError` naming the failed one."""
        return self.predict_batches([X])[0]

    def predict_batches(self, frames: Sequence[pd.DataFrame], *,
                        progress: Callable[[float, str], None] | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Predict several frames (see :meth:`iter_predictions`), all answers at once."""
        return list(self.iter_predictions(frames, progress=progress))

    def iter_predictions(self, frames: Sequence[pd.DataFrame] | Iterable[pd.DataFrame], *,
                         row_counts: Sequence[int] | None = None,
                         progress: Callable[[float, str], None] | None = None
                         ) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """Predict frames one after the other, yielding each frame's answer as soon as it is complete.

        The frames' rows are sent in requests of ``max_rows`` rows (a request may hold the end of
        one frame and the start of the next), each when the service's budget lets it; a frame is
        read (a lazily built one is built) only when its turn comes, so memory holds about one
        frame and one request at a time.

        Parameters
        ----------
        frames : sequence or iterable of DataFrame
        row_counts : sequence of int, optional
            Rows of each frame, when ``frames`` cannot tell (``frames.row_counts`` or ``len``
            otherwise); used to refuse a computation above the budget before its first request
            and for the progress ("12,000 of 60,000 model rows").
        progress : callable, optional
            Called with (fraction done, text) before every request.

        Yields
        ------
        labels : ndarray of shape (n_rows,)
        probabilities : ndarray of shape (n_rows, n_classes) or None

        Raises
        ------
        BudgetExceededError
            Before any request, when the frames hold more than ``max_rows_total`` rows.
        RemoteExplainError
            On the first failed request, naming it (k of n), the call and the reason.
        """
        counts = row_counts if row_counts is not None else getattr(frames, "row_counts", None)
        if counts is None:
            frames = list(frames)
            counts = [len(f) for f in frames]
        total = int(sum(counts))
        self.check_budget(total)
        n_requests = max(1, -(-total // self.max_rows))
        state = {"k": 0, "sent": 0}
        pieces: list[tuple[int, pd.DataFrame]] = []  # rows waiting for the next request, by frame
        answers: dict[int, list] = {}
        missing: dict[int, int] = {}
        next_out = 0
        for index, frame in enumerate(frames):
            answers[index], missing[index] = [], len(frame)
            start = 0
            while start < len(frame):
                room = self.max_rows - sum(len(piece) for _, piece in pieces)
                pieces.append((index, frame.iloc[start:start + room]))
                start += room
                if sum(len(piece) for _, piece in pieces) >= self.max_rows:
                    self._send(pieces, answers, missing, state, total, n_requests, progress)
                    pieces = []
            while next_out in missing and missing[next_out] == 0 and next_out <= index:
                yield self._joined(answers.pop(next_out))
                del missing[next_out]
                next_out += 1
        if pieces:
            self._send(pieces, answers, missing, state, total, n_requests, progress)
        while next_out in missing:
            yield self._joined(answers.pop(next_out))
            del missing[next_out]
            next_out += 1
        if progress is not None:
            progress(1.0, f"{state['sent']:,} of {total:,} model rows, {state['k']} request(s)")

    def _send(self, pieces, answers, missing, state, total, n_requests, progress) -> None:
        """One request of ``pieces`` (rows of one or more frames), paced; its answer split back by frame."""
        chunk = pieces[0][1] if len(pieces) == 1 else pd.concat([p for _, p in pieces], ignore_index=True)
        state["k"] += 1
        if progress is not None:
            text = f"{state['sent']:,} of {total:,} model rows"
            wait = self.budget.wait_for(len(chunk))
            if wait >= 1:
                text += f", waiting {wait:.0f} s for the service's budget ({self.budget.rows_per_second:,.0f} rows/s)"
            progress(state["sent"] / max(total, 1), text)
        waited = self.budget.acquire(len(chunk))
        try:
            result = self.client.predict(self.conform(chunk))
        except ServiceError as exc:
            raise RemoteExplainError(exc.call, exc.message, request=state["k"], n_requests=n_requests,
                                     rows=len(chunk)) from None
        state["sent"] += len(chunk)
        with self._lock:
            self.requests += result.requests
            self.rows_sent += len(chunk)
            self.waited_s += waited
            if self.version is None and result.model_version:  # metadata named none; the answer does
                self.version = result.model_version
        self._learn_task(result.probabilities, result.predictions)
        labels = np.asarray(result.predictions)
        proba = None if result.probabilities is None else np.asarray(result.probabilities)
        offset = 0
        for index, piece in pieces:
            stop = offset + len(piece)
            answers[index].append((labels[offset:stop], None if proba is None else proba[offset:stop]))
            missing[index] -= len(piece)
            offset = stop

    def _joined(self, parts: list) -> tuple[np.ndarray, np.ndarray | None]:
        if not parts:  # a frame without rows
            width = 0 if self.classes is None else len(self.classes)
            return np.empty(0), (None if self.task == "regression" else np.empty((0, width)))
        labels = parts[0][0] if len(parts) == 1 else np.concatenate([p[0] for p in parts])
        probas = [p[1] for p in parts]
        if any(p is None for p in probas):
            return labels, None
        return labels, (probas[0] if len(probas) == 1 else np.vstack(probas))

    def learn_task(self, X: pd.DataFrame) -> None:
        """Ask the service about a few rows of ``X`` (one request) unless the task is already known."""
        if not self._task_known and len(X):
            self.predict(X.iloc[:5])

    def _learn_task(self, proba: np.ndarray | None, labels: np.ndarray) -> None:
        if self._task_known:
            return
        if proba is not None and proba.ndim == 2 and proba.shape[1] >= 2:
            self.task = "classification"
            self.classes = tuple(range(proba.shape[1]))
        self._task_known = True


# -- choosing the source ----------------------------------------------------------------------


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
