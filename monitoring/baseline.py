"""The baseline: what a service's model is expected to score, and where that expectation comes from.

Three sources, in this order (:func:`baseline_for`):

1. the configuration (``[services.performance] baseline``);
2. the reference file's own model outputs (``prediction`` and, for ROC AUC and log loss,
   ``score`` columns next to the target);
3. the service itself: a bounded sample of the reference (at most :data:`BASELINE_ROWS`
   rows, stratified by the target for a classifier, drawn with ``random_state``) is sent
   through a ``predict`` callable the caller passes in (the dashboard passes its client's
   :meth:`monitoring.clients.ServiceClient.predict`, behind the service's traffic budget:
   ``explain._budget.paced_predict``), in batches of at most ``[services.explain]
   max_rows_per_request`` rows (and ``max_batch_rows``), and scored against the target. The
   result is kept as a small JSON file under a cache folder the caller names, keyed by the
   reference file's SHA-256, the feature list, the target, the model version, the task and
   classes and the sample settings, so the service is asked once per reference and model
   version.

The reference is usually the training data, so a baseline computed on it may be
optimistic; :attr:`Baseline.source` says so. Nothing here raises for data or service
problems: a baseline that cannot be had is a :class:`Baseline` whose ``reason`` says why in
a sentence. Nothing here reads the clock.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from monitoring.clients import ServiceError
from monitoring.config import ServiceConfig
from monitoring.reference import OUTPUT_COLUMNS
from monitoring.reference import READERS as REFERENCE_READERS
from monitoring.statistics import REGRESSION_METRICS, group_metrics, metrics_for

BASELINE_ROWS = 2000
"""Reference rows scored through the service for a baseline, at most."""

CACHE_FORMAT = 1
"""Version of the cache file's layout; files of another version are ignored."""

_HASH_CHUNK = 1 << 20


class BaselineScoringError(ValueError):
    """The service's answer on the reference rows cannot be scored; the message says what was wrong."""


@dataclass(frozen=True)
class Baseline:
    """What the model is expected to score: from the configuration, the reference data or the service.

    Attributes
    ----------
    values : mapping of str to float
        Metric name → expected value; empty when no baseline is available.
    source : str
        Where the values come from, in words, e.g. ``"the service's predictions on 2,000
        reference rows, model version 3 (training data: may be optimistic)"``.
    reason : str
        Why there is no baseline, in a sentence, when ``values`` is empty.
    n_rows : int
        Reference rows behind the values (0 for a configured baseline).
    model_version : str or None
        The model version the reference was scored with, when it was scored through the service.
    """

    values: Mapping[str, float] = field(default_factory=dict)
    source: str = ""
    reason: str = ""
    n_rows: int = 0
    model_version: str | None = None

    def get(self, metric: str) -> float:
        """The baseline of ``metric``, NaN when it has none."""
        return float(self.values.get(metric, math.nan))


# -- the baseline of a service ---------------------------------------------------------------


def baseline_for(service: ServiceConfig, *, task: str, classes: tuple[float, ...] = (0.0, 1.0),
                 features: Sequence[str] = (),
                 predict: Callable[[pd.DataFrame], Any] | None = None, model_version: str | None = None,
                 cache_dir: str | Path | None = None, max_rows: int = BASELINE_ROWS,
                 random_state: int = 0) -> Baseline:
    """The baseline of a service: configured values, else the reference's own predictions, else the service's.

    Parameters
    ----------
    service : ServiceConfig
    task : {"classification", "regression"}
    classes : tuple of float, default=(0.0, 1.0)
        The classes the model predicts (classification); with two, the score is the
        probability of the second.
    features : sequence of str, default=()
        The model's inputs in order (the service's ``monitoring.schema.ServiceSchema``);
        empty = the configured ones, else every reference column but the target and outputs.
    predict : callable, optional
        ``predict(X) -> Predictions`` (:class:`monitoring.clients.Predictions`, or anything
        with ``predictions`` and ``probabilities`` arrays), called with at most
        :func:`scoring_batch_rows` reference rows at a time when neither the configuration
        nor the reference file gives a baseline. None = never score the reference.
    model_version : str, optional
        Version of the model behind ``predict``: part of the cache key, so a new model is
        scored again, and named in the source. Without it the cache key says "unknown" and
        a changed model is not noticed.
    cache_dir : str or Path, optional
        Folder of the cached scoring results; None = no cache (the service is asked on every call).
    max_rows : int, default=2000
        Reference rows scored through the service, at most.
    random_state : int, default=0
        Seed of the sample of reference rows.

    Returns
    -------
    Baseline
        With ``reason`` saying what went wrong or what to configure when no baseline is available.
    """
    if isinstance(max_rows, bool) or not isinstance(max_rows, int | np.integer) or max_rows < 2:
        raise ValueError(f"max_rows must be an integer >= 2; got {max_rows!r}")
    configured = service.performance.baseline
    if configured:
        return Baseline(values=dict(configured), source="configuration ([services.performance] baseline)")
    how = ("set [services.performance] baseline (e.g. {accuracy = 0.87}), or add the model's predictions on the "
           "reference data to the reference file as a 'prediction' column (and 'score' for ROC AUC and log loss)")
    if not service.reference or not service.target:
        return Baseline(reason=f"No baseline: {how}; the reference file and its target column must be configured.")
    file = Path(service.reference)
    reader = REFERENCE_READERS.get(file.suffix.lower())
    if reader is None or not file.exists():
        problem = "does not exist" if reader is not None else f"has the unsupported type {file.suffix!r}"
        return Baseline(reason=f"No baseline: the reference file {file} {problem}.")
    try:
        reference = reader(file)
    except Exception as exc:  # each reader raises its own family of errors
        return Baseline(reason=f"No baseline: the reference file {file} cannot be read: {exc}.")
    target = service.target
    if target not in reference.columns:
        return Baseline(reason=f"No baseline: the reference file {file} has no target column {target!r}; "
                               f"it has {list(reference.columns)}.")
    if "prediction" in reference.columns:
        values = reference_metrics(reference, target=target, task=task, classes=classes)
        known = {m: v for m, v in values.items() if math.isfinite(v)}
        if not known:
            return Baseline(reason=f"No baseline: the reference file {file} has no rows with both {target!r} and "
                                   "'prediction'.")
        n = int(reference[[target, "prediction"]].notna().all(axis=1).sum())
        return Baseline(values=known, source=f"the reference data's own predictions ({n:,} rows)", n_rows=n)
    if predict is None:
        return Baseline(reason=f"No baseline: the reference file {file} has no 'prediction' column; {how}.")
    return _scored_baseline(service, reference, features=features, predict=predict, task=task, classes=classes,
                            model_version=model_version, cache_dir=cache_dir, max_rows=max_rows,
                            random_state=random_state)


def _scored_baseline(service: ServiceConfig, reference: pd.DataFrame, *, features: Sequence[str],
                     predict: Callable[[pd.DataFrame], Any],
                     task: str, classes: tuple[float, ...], model_version: str | None,
                     cache_dir: str | Path | None, max_rows: int, random_state: int) -> Baseline:
    """The baseline from the service's predictions on a sample of the reference, cached on disk."""
    file, target = Path(service.reference), service.target
    features = list(features or service.features) or [c for c in reference.columns
                                                       if c != target and c not in OUTPUT_COLUMNS]
    missing = [c for c in features if c not in reference.columns]
    if missing or not features:
        return Baseline(reason=f"No baseline: the reference file {file} lacks the feature columns {missing} the "
                               f"service expects; it has {list(reference.columns)}." if missing else
                               f"No baseline: the reference file {file} has no feature columns besides {target!r}.")
    try:
        digest = file_sha256(file)
    except OSError as exc:
        return Baseline(reason=f"No baseline: the reference file {file} cannot be read: {exc}.")
    key = _cache_key(digest=digest, features=features, target=target, model_version=model_version, task=task,
                     classes=classes, max_rows=max_rows, random_state=random_state)
    cache = Path(cache_dir) / f"baseline-{key[:32]}.json" if cache_dir is not None else None
    cached = _read_cache(cache, key) if cache is not None else None
    if cached is not None:
        values, n_rows, reported = cached
    else:
        sample = reference_sample(reference, target=target, task=task, max_rows=max_rows, random_state=random_state)
        if sample.empty:
            return Baseline(reason=f"No baseline: no row of the reference file {file} has a value in {target!r}.")
        try:
            scored, reported = score_reference(sample, predict, features=features, target=target, task=task,
                                               batch_rows=scoring_batch_rows(service))
        except Exception as exc:  # the callable is the caller's: a service error, a garbled answer, anything
            named = isinstance(exc, ServiceError | BaselineScoringError) and str(exc)
            detail = str(exc) if named else f"{type(exc).__name__}: {exc}".rstrip(": ")
            return Baseline(reason=f"No baseline: scoring {len(sample):,} reference rows through the service "
                                   f"failed: {detail.rstrip('.')}. It is tried again on a later refresh.")
        values = reference_metrics(scored, target=target, task=task, classes=classes)
        values = {m: v for m, v in values.items() if math.isfinite(v)}
        n_rows = int(np.isfinite(scored["prediction"].to_numpy(dtype=float)).sum())
        if not values:
            return Baseline(reason=f"No baseline: the service's predictions on {len(sample):,} reference rows give "
                                   "no metric (only one class among the labels, or no usable prediction).")
        if cache is not None:
            _write_cache(cache, {"format": CACHE_FORMAT, "key": key, "values": values, "n_rows": n_rows,
                                 "reported_version": reported, "model_version": model_version,
                                 "reference": str(file), "reference_sha256": digest, "features": features,
                                 "target": target, "task": task, "classes": list(classes)})
    version = model_version or reported
    named = f", model version {version}" if version else ", model version unknown"
    return Baseline(values=values, n_rows=n_rows, model_version=version,
                    source=f"the service's predictions on {n_rows:,} reference rows{named} "
                           "(training data: may be optimistic)")


# -- scoring the reference -------------------------------------------------------------------


def scoring_batch_rows(service: ServiceConfig) -> int:
    """Rows per call of the baseline's ``predict``: the service's batch size, within its explanation traffic
    budget's request size (``[services.explain] max_rows_per_request``)."""
    return min(service.max_batch_rows, service.explain.max_rows_per_request)



def reference_sample(reference: pd.DataFrame, *, target: str, task: str, max_rows: int = BASELINE_ROWS,
                     random_state: int = 0) -> pd.DataFrame:
    """A bounded sample of the reference rows that have a target value, in file order.

    Parameters
    ----------
    reference : DataFrame
    target : str
    task : {"classification", "regression"}
        A classifier's sample is stratified by the target (each class keeps its share).
    max_rows : int, default=2000
    random_state : int, default=0

    Returns
    -------
    DataFrame
        At most ``max_rows`` rows, the index of ``reference`` kept.
    """
    usable = reference[pd.to_numeric(reference[target], errors="coerce").notna()]
    if len(usable) <= max_rows:
        return usable
    if task == "classification":
        fraction = max_rows / len(usable)
        sample = usable.groupby(target, group_keys=False).sample(frac=fraction, random_state=random_state)
        if len(sample) > max_rows:  # per-class rounding can give a row or two more
            sample = sample.sample(n=max_rows, random_state=random_state)
    else:
        sample = usable.sample(n=max_rows, random_state=random_state)
    return sample.sort_index()


def score_reference(sample: pd.DataFrame, predict: Callable[[pd.DataFrame], Any], *, features: list[str],
                    target: str, task: str, batch_rows: int) -> tuple[pd.DataFrame, str | None]:
    """Send reference rows through ``predict`` in batches and keep its answers next to the target.

    Parameters
    ----------
    sample : DataFrame
        Reference rows with the feature columns and the target.
    predict : callable
        ``predict(X) -> Predictions`` (anything with ``predictions`` and optional
        ``probabilities`` and ``model_version``).
    features : list of str
        Columns sent, in the order the model expects.
    target : str
    task : {"classification", "regression"}
    batch_rows : int
        Rows per call of ``predict``.

    Returns
    -------
    scored : DataFrame
        ``target``, ``prediction`` and ``score`` (probability of the second class for a
        two-class model, NaN otherwise), one row per sample row.
    reported_version : str or None
        The model version the answers reported, if any.

    Raises
    ------
    BaselineScoringError
        When an answer is not one prediction per row, or not numbers. Whatever ``predict``
        raises is passed on.
    """
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be >= 1; got {batch_rows!r}")
    X = sample[features].reset_index(drop=True)
    predictions, scores, reported = [], [], None
    for start in range(0, len(X), batch_rows):
        batch = X.iloc[start:start + batch_rows]
        answer = predict(batch)
        labels = getattr(answer, "predictions", None)
        if labels is None:
            raise BaselineScoringError(f"the answer is a {type(answer).__name__}, not predictions")
        labels = np.asarray(labels).reshape(-1) if np.ndim(labels) else np.asarray([labels])
        if len(labels) != len(batch):
            raise BaselineScoringError(f"sent {len(batch)} rows but got {len(labels)} predictions")
        numbers = pd.to_numeric(pd.Series(labels), errors="coerce").to_numpy(dtype=float)
        if not np.isfinite(numbers).any():
            raise BaselineScoringError(f"the predictions are not numbers, such as {labels.tolist()[0]!r}")
        predictions.append(numbers)
        probabilities = getattr(answer, "probabilities", None)
        score = np.full(len(batch), np.nan)
        if task == "classification" and probabilities is not None:
            probabilities = np.asarray(probabilities, dtype=float)
            if probabilities.ndim == 2 and probabilities.shape == (len(batch), 2):
                score = probabilities[:, 1]
        scores.append(score)
        reported = reported or (str(answer.model_version) if getattr(answer, "model_version", None) else None)
    scored = pd.DataFrame({target: sample[target].to_numpy(), "prediction": np.concatenate(predictions),
                           "score": np.concatenate(scores)})
    return scored, reported


def reference_metrics(reference: pd.DataFrame, *, target: str, task: str,
                      classes: tuple[float, ...] = (0.0, 1.0)) -> dict[str, float]:
    """Metrics of the predictions stored in a reference frame (``prediction``, optional ``score``).

    Parameters
    ----------
    reference : DataFrame
        With ``target`` and ``prediction``, and ``score`` for ROC AUC and log loss.
    target : str
    task : {"classification", "regression"}
    classes : tuple of float, default=(0.0, 1.0)

    Returns
    -------
    dict of str to float
        Metric → value (NaN where undefined).
    """
    y = pd.to_numeric(reference[target], errors="coerce").to_numpy(dtype=float)
    predicted = pd.to_numeric(reference["prediction"], errors="coerce").to_numpy(dtype=float)
    score = (pd.to_numeric(reference["score"], errors="coerce").to_numpy(dtype=float) if "score" in reference
             else np.full(len(reference), np.nan))
    usable = np.isfinite(y) & np.isfinite(predicted)
    if task == "regression":
        row = group_metrics(y[usable], predicted[usable], score[usable], task=task, classes=(),
                            metrics=REGRESSION_METRICS)
        return {m: row[m] for m in REGRESSION_METRICS}
    metrics = metrics_for(task, classes, has_score=bool(np.isfinite(score[usable]).any()))
    row = group_metrics(y[usable], predicted[usable], score[usable], task=task, classes=classes, metrics=metrics)
    return {m: row[m] for m in metrics}


# -- the cache -------------------------------------------------------------------------------


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, computed once per path, modification time and size.

    Raises
    ------
    OSError
        When the file cannot be read.
    """
    stat = Path(path).stat()
    return _file_sha256(str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=64)
def _file_sha256(path: str, mtime_ns: int, size: int) -> str:
    del mtime_ns, size  # part of the cache key only
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _cache_key(*, digest: str, features: list[str], target: str, model_version: str | None, task: str,
               classes: tuple[float, ...], max_rows: int, random_state: int) -> str:
    parts = {"format": CACHE_FORMAT, "reference_sha256": digest, "features": list(features), "target": target,
             "model_version": model_version if model_version else "unknown", "task": task,
             "classes": [float(c) for c in classes], "max_rows": int(max_rows), "random_state": int(random_state)}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _read_cache(path: Path, key: str) -> tuple[dict[str, float], int, str | None] | None:
    """The cached values, rows and reported version, or None when the file is absent, stale or unreadable."""
    try:
        payload = json.loads(path.read_text())
        if payload.get("format") != CACHE_FORMAT or payload.get("key") != key:
            return None
        values = {str(m): float(v) for m, v in payload["values"].items()}
        if not values or not all(math.isfinite(v) for v in values.values()):
            return None
        reported = payload.get("reported_version")
        return values, int(payload["n_rows"]), str(reported) if reported else None
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def _write_cache(path: Path, payload: Mapping[str, Any]) -> None:
    """Write the cache file atomically; a folder that cannot be written only costs a later re-scoring."""
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(descriptor, "w") as handle:
            json.dump(payload, handle, indent=1, sort_keys=True)
        os.replace(temporary, path)
    except OSError:
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
