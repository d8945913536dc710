"""The What-if page's caches: the re-predicting model, the reference ranges, and results per point and options.

Rows go in as tuples of (feature, value) pairs so that they hash cheaply and exactly.
"""

from __future__ import annotations

from dashboard.state import lifecycle
from dashboard.state.caching import cache_data, cache_resource
from dashboard.state.data import LABELS_TICK_SECONDS, keeps_labels, kept_labels, labeled_predictions
from dashboard.state.explain import explain_setup
from dashboard.state.lifecycle import Runtime
from monitoring.labels import LabeledPredictions


@cache_resource(ttl=900, max_entries=16)
def whatif_model(runtime: Runtime, *, service: str):
    """The model the What-if page re-predicts with (``explain.whatif_inputs.whatif_model``)."""
    from explain.whatif_inputs import whatif_model as choose

    setup = explain_setup(runtime, service=service)
    return choose(setup.selected.model, runtime.config.service(service), reference=setup.reference)


@cache_data(ttl=900, max_entries=16)
def whatif_ranges(runtime: Runtime, *, service: str):
    """The reference's observed range and seen categories of every feature (``explain.ranges.FeatureRanges``)."""
    from explain import ExplainError
    from explain.ranges import feature_ranges

    setup = explain_setup(runtime, service=service)
    if setup.reference is None:
        raise ExplainError(f"the What-if page needs reference data for the accepted ranges: {setup.reference_problem}")
    model = setup.selected.model
    return feature_ranges(setup.reference, features=model.features, feature_kinds=model.feature_kinds)


@cache_data(ttl=600, max_entries=256)
def whatif_compare(runtime: Runtime, *, service: str, original: tuple, edited: tuple, threshold: float):
    """The original and the edited row predicted side by side (one request); raises on bad input (not cached).

    Multiclass scores are the probability of the original row's predicted class; the page switches class with
    ``WhatIfComparison.for_output``, which needs no new request."""
    from explain.whatif import compare

    return compare(whatif_model(runtime, service=service), dict(original), dict(edited),
                   ranges=whatif_ranges(runtime, service=service), threshold=threshold)


@cache_data(ttl=600, max_entries=64)
def whatif_sensitivity(runtime: Runtime, *, service: str, point: tuple, grid_resolution: int, output=None,
                       _progress=None):
    """ICE curves of every feature for ``point`` from one batched request, and their ranking; multiclass curves
    show the probability of ``output`` (default the point's predicted class)."""
    from explain.whatif import sensitivity

    return sensitivity(whatif_model(runtime, service=service), dict(point), whatif_ranges(runtime, service=service),
                       grid_resolution=grid_resolution, output=output, progress=_progress)


@cache_data(ttl=600, max_entries=64)
def whatif_counterfactuals(runtime: Runtime, *, service: str, point: tuple, allowed: tuple, bounds: tuple,
                           n_counterfactuals: int, target_range: tuple | None, threshold: float,
                           desired_class=None, output=None, _progress=None):
    """Counterfactuals of ``point`` (see ``explain.whatif.counterfactuals``), a few batched requests; multiclass
    scores are the probability of ``output`` for the original and every answer."""
    from explain.whatif import counterfactuals

    return counterfactuals(whatif_model(runtime, service=service), dict(point),
                           explain_setup(runtime, service=service).reference,
                           ranges=whatif_ranges(runtime, service=service), n_counterfactuals=n_counterfactuals,
                           allowed=allowed, bounds=dict(bounds), target_range=target_range, threshold=threshold,
                           random_state=0, desired_class=desired_class, output=output, progress=_progress)


@cache_data(ttl=60, max_entries=32)
def whatif_listed(runtime: Runtime, *, service: str, kind: str, limit: int, tick: int):
    """Logged predictions to start from (``explain.whatif_inputs.listed_points``), refreshed with ``tick``."""
    from explain.whatif_inputs import listed_points, needs_labels

    del tick
    labeled = None
    labels_tick = lifecycle.tick(LABELS_TICK_SECONDS)
    if needs_labels(kind) and keeps_labels(runtime, service):  # the most wrong, found where the labels are kept
        kept = kept_labels(runtime, service=service, tick=labels_tick)
        labeled = LabeledPredictions(frame=runtime.mirror(service).kept_errors(kept, limit=limit),
                                     quality=kept.quality, task=kept.task, classes=kept.classes, now=kept.now,
                                     source=kept.source)
    elif needs_labels(kind):
        labeled = labeled_predictions(runtime, service=service, tick=labels_tick)
    return listed_points(kind, logged=runtime.mirror(service), now=runtime.now(), limit=limit, labeled=labeled,
                         schema_task=runtime.schema(service).task)
