"""The Explain page's caches: one model source and explainer per service and model version, results per
service, model version, output space and data window.

Long computations take ``_progress`` and run under :func:`dashboard.state.progress.run_with_progress`;
nothing is computed before the page asks for it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from dashboard.state import lifecycle
from dashboard.state.caching import cache_data, cache_resource
from dashboard.state.lifecycle import Runtime
from monitoring.service_reference import service_reference_rows

log = logging.getLogger(__name__)

BACKGROUND_WINDOW = "30d"
"""Without reference data, the explainer's background is this window of logged predictions."""


@dataclass(frozen=True)
class ExplainSetup:
    """A service's model source for explanations, and the data they start from.

    Attributes
    ----------
    selected : explain.SelectedSource
        The model (local artifact or the service as a black box) and the consistency check.
    reference : DataFrame or None
        The reference data's features (the background of the explainers).
    reference_problem : str or None
        Why there is no reference data.
    has_log : bool
        Whether the service's predictions are logged in the store (the prediction picker).
    """

    selected: object
    reference: object
    reference_problem: str | None
    has_log: bool


@cache_resource(ttl=900, max_entries=16)
def explain_setup(runtime: Runtime, *, service: str) -> ExplainSetup:
    """Open the model source of ``service`` (see ``[services.explain]``) and read its reference data
    (``monitoring.service_reference.service_reference_rows``, without the target).

    Raises ``explain.ExplainError`` (not cached) when the artifact or the service cannot be used.
    """
    from explain import open_model_source

    config = runtime.config.service(service)
    reference, problem = service_reference_rows(config.reference, schema=runtime.schema(service),
                                                drop=(config.target,) if config.target else ())
    selected = open_model_source(config, reference, check=False)  # the page checks after its first chart
    return ExplainSetup(selected, reference, problem, runtime.mirror(service).has_rows())


@cache_data(ttl=600, max_entries=32)
def explain_consistency(runtime: Runtime, *, service: str, version: str | None):
    """Whether the local artifact predicts what the service predicts, on 200 reference rows (one request)."""
    del version
    from explain import check_against_service
    from explain.windows import reference_sample

    setup = explain_setup(runtime, service=service)
    sample = None if setup.reference is None else reference_sample(setup.reference, 200)
    return check_against_service(setup.selected.model, runtime.config.service(service), sample)


def _explain_warm_up(explainer) -> None:
    try:
        explainer.warm_up()
    except Exception:  # a failing service is shown when the page asks; here it only stays cold
        log.info("explainer warm-up failed", exc_info=True)


@cache_resource(ttl=3600, max_entries=16)
def explainer(runtime: Runtime, *, service: str, version: str | None, space: str):
    """The Shapley explainer of ``service``'s model in ``space``, warmed up in a background thread."""
    del version
    from explain import ExplainError, ShapExplainer

    setup = explain_setup(runtime, service=service)
    rows = runtime.config.service(service).explain.background_rows  # as configured: the budget bounds the cost
    background = setup.reference
    if background is None and setup.has_log:  # no training data: recent predictions stand in
        background = explain_window(runtime, service=service, window=BACKGROUND_WINDOW, n_rows=rows,
                                    tick=lifecycle.tick(3600))
    if background is None or len(background) == 0:
        raise ExplainError(f"no background data for the explainer: {setup.reference_problem}")
    shap_explainer = ShapExplainer(setup.selected.model, background, space=space, background_rows=rows)
    threading.Thread(target=_explain_warm_up, args=(shap_explainer,), daemon=True,
                     name=f"vantage-explain-warm-{service}").start()
    return shap_explainer


@cache_data(ttl=600, max_entries=64)
def explain_window(runtime: Runtime, *, service: str, window: str, n_rows: int, tick: int):
    """Up to ``n_rows`` rows of ``window`` (``explain.windows.window_rows``)."""
    del tick
    from explain.windows import window_rows

    setup = explain_setup(runtime, service=service)
    return window_rows(window, reference=setup.reference, reference_problem=setup.reference_problem,
                       logged=runtime.mirror(service), service=service, now=runtime.now(), n_rows=n_rows)


@cache_data(ttl=600, max_entries=256)
def explain_model_rows(runtime: Runtime, *, service: str, version: str | None, space: str, rows) -> int:
    """Model rows explaining ``rows`` would send the service (0 for the Tree and Linear explainers), for the
    estimate shown before a black-box explanation starts; nothing is sent."""
    return explainer(runtime, service=service, version=version, space=space).model_rows_needed(rows)


@cache_data(ttl=3600, max_entries=64)
def explain_global(runtime: Runtime, *, service: str, version: str | None, space: str, window: str, n_rows: int,
                   tick: int, _progress=None):
    """Shapley values of up to ``n_rows`` rows of ``window`` (global importance, beeswarm, dependence)."""
    rows = explain_window(runtime, service=service, window=window, n_rows=n_rows, tick=tick)
    shap_explainer = explainer(runtime, service=service, version=version, space=space)
    ids = tuple(rows["id"]) if "id" in rows.columns else ()
    return shap_explainer.explain(rows, row_ids=ids, progress=_progress)


@cache_data(ttl=3600, max_entries=256)
def explain_row(runtime: Runtime, *, service: str, version: str | None, space: str, row, row_id: str | None,
                _progress=None):
    """Shapley values of one row (a one-row DataFrame), for the waterfall."""
    shap_explainer = explainer(runtime, service=service, version=version, space=space)
    return shap_explainer.explain(row, row_ids=(row_id,) if row_id else (), progress=_progress)


@cache_data(ttl=3600, max_entries=64)
def explain_dependence(runtime: Runtime, *, service: str, version: str | None, features: tuple, window: str,
                       n_rows: int, grid_resolution: int, highlight, tick: int, _progress=None):
    """Partial dependence and ICE of one or two features over ``window``."""
    del version
    from explain import partial_dependence

    rows = explain_window(runtime, service=service, window=window, n_rows=n_rows, tick=tick)
    model = explain_setup(runtime, service=service).selected.model
    return partial_dependence(model, rows, features, grid_resolution=grid_resolution, highlight=highlight,
                              progress=_progress)


@cache_data(ttl=30, max_entries=64)
def find_logged_predictions(runtime: Runtime, *, service: str, prediction_id: str | None, since: float | None,
                            until: float | None, filters: tuple, limit: int, tick: int):
    """Logged predictions matching an id, a time range and feature conditions (index-backed, newest first)."""
    del tick
    return runtime.mirror(service).find(prediction_id=prediction_id, since=since, until=until,
                                        filters=dict(filters) if filters else None, limit=limit)
