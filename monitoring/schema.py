"""One service's columns, decided in one place: features in model order, their kinds, target, outputs, task, classes.

Every part of Vantage that needs to know which columns are features (the canary, drift,
performance, explanations, What-if, Segments, the report) takes them from the
:class:`ServiceSchema` that :func:`resolve_schema` builds, never from the configuration or a
file's columns directly. The features come from, in this order:

1. the configuration's ``features``;
2. the server's v2 metadata, when it names one input per feature;
3. the reference file's columns minus the target, the model's outputs and the log's own
   columns (``id``, ``ts``, ...).

Where those sources disagree (a configured feature the reference lacks, a server that names
inputs the reference does not have, a server that takes 13 columns when the reference offers
14), the schema carries a message naming the columns; the pages show it.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from monitoring.config import ServiceConfig
from monitoring.labels import MAX_CLASSES
from monitoring.reference import MODEL_OUTPUTS, OUTPUT_COLUMNS, infer_kinds

LOG_COLUMNS = ("seq", "id", "ts", "model_version", "prediction", "score", "probabilities", "label")
"""Columns a prediction log or label join adds; never features."""

FEATURES_FROM = ("config", "server metadata", "reference", "none")
"""Where a schema's features came from, in order of precedence."""


@dataclass(frozen=True)
class ServiceSchema:
    """The columns of one service, as every page uses them.

    Attributes
    ----------
    service : str
        The service's name.
    features : tuple of str
        The model's inputs, in the order the model takes them.
    kinds : tuple of (str, str)
        ``(feature, "numeric" | "categorical")`` per feature, in feature order.
    target : str or None
        The reference column holding the true class or value.
    outputs : tuple of str
        Model-output columns of the reference (``prediction``, ``score``), never sent to the model.
    task : {"classification", "regression"} or None
        From ``[services.performance] task`` when set, else from the reference's target; None
        when neither tells (the prediction log decides later).
    classes : tuple
        The target's classes for a classification task (sorted), else empty.
    features_from : str
        One of :data:`FEATURES_FROM`.
    problems : tuple of str
        Disagreements between the configuration, the server's metadata and the reference,
        each naming the columns concerned.
    """

    service: str
    features: tuple[str, ...]
    kinds: tuple[tuple[str, str], ...] = ()
    target: str | None = None
    outputs: tuple[str, ...] = ()
    task: str | None = None
    classes: tuple = ()
    features_from: str = "none"
    problems: tuple[str, ...] = field(default=())

    @property
    def feature_kinds(self) -> dict[str, str]:
        """``{feature: kind}`` in feature order."""
        return dict(self.kinds)

    @property
    def not_features(self) -> frozenset[str]:
        """Columns that are never features: the target, the outputs and the log's own columns."""
        return frozenset({*LOG_COLUMNS, *OUTPUT_COLUMNS, *self.outputs, *([self.target] if self.target else [])})

    @functools.cached_property
    def digest(self) -> str:
        """A short text that changes when the features, their order, kinds, target or task change (a cache key)."""
        text = repr((self.features, self.kinds, self.target, self.outputs, self.task, self.classes))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def categorical(self) -> tuple[str, ...]:
        """The categorical features, in feature order."""
        return tuple(name for name, kind in self.kinds if kind == "categorical")

    def present_in(self, columns: Sequence[str]) -> tuple[str, ...]:
        """The features found among ``columns`` (of a prediction log, say), in feature order.

        A schema that knows no features (no configuration, metadata or reference) takes every
        column that is not one of :attr:`not_features`.
        """
        if not self.features:
            return tuple(str(c) for c in columns if c not in self.not_features)
        have = set(columns)
        return tuple(f for f in self.features if f in have)

    def describe(self) -> str:
        """One sentence for the Services page: what the features are and where they came from."""
        n = len(self.features)
        if not n:
            return "No features known: set features, or reference to the training data."
        source = {"config": "as configured", "server metadata": "as the server's metadata names them",
                  "reference": "the reference's columns but the target and the model's outputs"}[self.features_from]
        task = {"classification": f"classification into {len(self.classes)} classes" if self.classes
                else "classification", "regression": "regression"}.get(self.task or "", "task not yet known")
        target = f"target {self.target}" if self.target else "no target"
        return f"{n} feature{'s' if n != 1 else ''}: {source}; {target}; {task}."


def _metadata_names(inputs: Sequence[Mapping]) -> tuple[list[str], int | None]:
    """Feature names a v2 server declares (one input per feature), or the width of its one tensor input."""
    names = [str(item.get("name")) for item in inputs if isinstance(item, Mapping) and item.get("name")]
    if len(inputs) == 1 and isinstance(inputs[0], Mapping):
        shape = inputs[0].get("shape")
        if isinstance(shape, list) and len(shape) == 2 and isinstance(shape[1], int) and shape[1] > 1:
            return [], shape[1]  # one tensor of shape [-1, k]: k columns, not their names
    return names, None


def _task_of(target: pd.Series | None, configured: str) -> tuple[str | None, tuple]:
    if configured in ("classification", "regression"):
        task = configured
    elif target is None:
        return None, ()
    else:
        values = target.dropna()
        numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
        if not numeric:
            task = "classification"
        else:
            array = values.to_numpy(dtype=float)
            whole = bool(np.all(np.isfinite(array) & (array == np.round(array))))
            task = "classification" if whole and len(np.unique(array)) <= MAX_CLASSES else "regression"
    if task != "classification" or target is None:
        return task, ()
    values = target.dropna()
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return task, tuple(float(v) for v in np.unique(values.to_numpy(dtype=float)))
    return task, tuple(sorted({str(v) for v in values}))


def resolve_schema(service: ServiceConfig, *, reference: pd.DataFrame | None = None,
                   metadata_inputs: Sequence[Mapping] = (), known_kinds: Mapping[str, str] | None = None,
                   reference_problem: str | None = None) -> ServiceSchema:
    """Decide ``service``'s features, kinds, target, outputs, task and classes.

    Parameters
    ----------
    service : ServiceConfig
    reference : DataFrame, optional
        The whole reference file as read (every column); None when there is none or it cannot
        be read.
    metadata_inputs : sequence of mapping, default=()
        The ``inputs`` of the server's v2 (or REST) model metadata, each ``{"name", "datatype",
        "shape"}``; empty when the server declares none or was not asked.
    known_kinds : mapping of str to {"numeric", "categorical"}, optional
        Kinds already fixed elsewhere (the prediction log's columns); they win over the
        reference's dtypes.
    reference_problem : str, optional
        Why there is no reference (kept among the problems).

    Returns
    -------
    ServiceSchema
        Never raises for disagreeing sources: each disagreement is one of its ``problems``.
    """
    problems: list[str] = [reference_problem] if reference_problem else []
    columns = list(reference.columns) if reference is not None else []
    target = service.target
    if target and reference is not None and target not in columns:
        problems.append(f"the target `{target}` is not a column of the reference {service.reference} "
                        f"(it has {', '.join(map(str, columns[:30]))}{', …' if len(columns) > 30 else ''})")
    outputs = tuple(c for c in MODEL_OUTPUTS if c in columns and c != target)
    never = {*LOG_COLUMNS, *OUTPUT_COLUMNS, *outputs, *([target] if target else [])}
    candidates = [c for c in columns if c not in never]
    declared, width = _metadata_names(metadata_inputs)

    if service.features:
        features, source = list(service.features), "config"
        if declared and set(declared) != set(features):
            problems.append(_differ("the configured features", features, "the server's inputs", declared))
        elif declared and declared != features:
            problems.append("the configured features are in another order than the server's inputs ("
                            + ", ".join(declared[:20]) + (", …" if len(declared) > 20 else "") + ")")
        elif width is not None and width != len(features):
            problems.append(f"the server's input takes {width} columns but {len(features)} features are configured")
    elif declared and (reference is None or set(declared) <= set(columns)):
        features, source = declared, "server metadata"
        if target and target in features:
            problems.append(f"the server declares the target `{target}` as an input")
    else:
        features, source = candidates, "reference" if columns else "none"
        if declared:
            problems.append(_differ("the reference's feature columns", candidates, "the server's inputs", declared)
                            + "; using the reference's (set `features` to choose)")
        elif width is not None and width != len(candidates):
            problems.append(f"the server's input takes {width} columns but the reference offers {len(candidates)} "
                            f"feature columns ({', '.join(candidates[:20])}{', …' if len(candidates) > 20 else ''}); "
                            "set `features` to the model's inputs in order")
    if reference is not None:
        missing = [f for f in features if f not in columns]
        if missing:
            problems.append(f"the reference {service.reference} lacks the feature column(s) {', '.join(missing)}")
        if target and target in features:
            problems.append(f"the target `{target}` is also named as a feature")
    present = [f for f in features if f in columns]
    kinds = infer_kinds(reference[present], known=known_kinds) if reference is not None else dict(known_kinds or {})
    target_values = reference[target] if reference is not None and target in columns else None
    task, classes = _task_of(target_values, service.performance.task)
    return ServiceSchema(
        service=service.name, features=tuple(features),
        kinds=tuple((f, kinds.get(f, "numeric")) for f in features),
        target=target, outputs=outputs, task=task, classes=classes, features_from=source,
        problems=tuple(problems))


def read_schema_reference(service: ServiceConfig, *, known_kinds: Mapping[str, str] | None = None
                          ) -> tuple[pd.DataFrame | None, str | None]:
    """``service``'s reference file with every column the schema may need, or None and why not.

    A reference that lacks the configured target is still read (without it), so that the
    other sources can be checked against its columns; the missing target becomes one of the
    schema's problems.
    """
    from monitoring.reference import ReferenceDataError, read_reference

    if not service.reference:
        return None, None
    try:
        return read_reference(service.reference, target=service.target, kinds=known_kinds), None
    except ReferenceDataError as exc:
        if service.target:
            try:
                return read_reference(service.reference, kinds=known_kinds), None
            except ReferenceDataError:
                pass
        return None, str(exc)


def load_schema(service: ServiceConfig, *, metadata_inputs: Sequence[Mapping] = (),
                known_kinds: Mapping[str, str] | None = None) -> ServiceSchema:
    """Read ``service``'s reference (:func:`read_schema_reference`) and :func:`resolve_schema` with it."""
    reference, problem = read_schema_reference(service, known_kinds=known_kinds)
    return resolve_schema(service, reference=reference, metadata_inputs=metadata_inputs, known_kinds=known_kinds,
                          reference_problem=problem)


def _differ(left_name: str, left: Sequence[str], right_name: str, right: Sequence[str]) -> str:
    only_left = [c for c in left if c not in set(right)]
    only_right = [c for c in right if c not in set(left)]
    parts = []
    if only_left:
        parts.append(f"{', '.join(only_left)} only in {left_name}")
    if only_right:
        parts.append(f"{', '.join(only_right)} only in {right_name}")
    return f"{left_name} and {right_name} differ: " + "; ".join(parts)
