"""The one module that owns Streamlit caching and the app's background work.

* :func:`settings` reads the configuration on every rerun (a TOML parse takes well under a
  millisecond), so an edited file is picked up by the next click, and an invalid one is
  shown as a message.
* :func:`runtime` starts, once per Streamlit server process however many tabs are open, the
  embedded demo (when no configuration is given) and the collector, with
  ``st.cache_resource``; a changed configuration releases the old one (its collector stops)
  and starts a new one.
* The ``cached_*`` functions wrap the read-only computations of ``monitoring`` with
  ``st.cache_data``; each takes a ``tick`` argument that changes once per poll interval, so a
  page rerun within the same tick costs nothing and a new poll shows at the next tick.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st

from monitoring.clients import PROBE_HEADER, ServiceError, make_client
from monitoring.clock import FrozenClock, SystemClock, clock_from_environment
from monitoring.collector import Collector
from monitoring.config import ConfigError, SloConfig, VantageConfig, config_path_from, load_config
from monitoring.drift import DriftReport, ReferenceProfile, compute_drift, load_or_build_profile
from monitoring.labels import LabeledPredictions, LabelFileMirror, StoreLabelMirror, join_labels, label_source
from monitoring.overview import ServiceOverview, service_overview
from monitoring.performance import (
    Baseline,
    BusinessValues,
    DecisionsOverTime,
    PerformanceDetail,
    PerformanceOverTime,
    baseline_for,
    decisions_over_time,
    performance_detail,
    performance_over_time,
)
from monitoring.privacy import PersonalData, install_log_masking
from monitoring.production import (
    FileMirror,
    PredictionLogMirror,
    ProductionDataError,
    production_source,
    rows_between,
)
from monitoring.redact import Redactor, install_log_redaction, redactor_for
from monitoring.reference import MODEL_OUTPUTS, ReferenceDataError, infer_kinds, read_reference
from monitoring.schema import ServiceSchema
from monitoring.service_health import FleetRow, ServiceHealth, TimeSeries, fleet_overview, service_health, time_series
from monitoring.store import Store
from monitoring.windows import range_start

if TYPE_CHECKING:
    from demo.runtime import DemoRuntime

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def var_dir() -> Path:
    """The demo's working folder: ``$VANTAGE_VAR``, or ``var/`` in the project (git-ignored)."""
    return Path(os.environ.get("VANTAGE_VAR", PROJECT_ROOT / "var"))


@dataclass(frozen=True)
class Settings:
    """Where the configuration comes from and whether it is usable."""

    path: str | None
    config: VantageConfig | None
    error: ConfigError | None
    clock: SystemClock | FrozenClock = field(default_factory=SystemClock)

    @property
    def is_demo(self) -> bool:
        """True when no configuration was given: the embedded demo runs."""
        return self.path is None

    @property
    def fingerprint(self) -> str:
        """Changes whenever the configuration's content changes."""
        if self.config is None:
            return "demo"
        return hashlib.sha256(self.config.model_dump_json().encode()).hexdigest()[:16]


@dataclass
class Runtime:
    """What runs in the background of this Streamlit server process."""

    config: VantageConfig
    store: Store
    collector: Collector
    demo: DemoRuntime | None
    started_at: float
    clock: SystemClock | FrozenClock = field(default_factory=SystemClock)
    redact: Redactor = field(default_factory=Redactor)
    privacy: PersonalData = field(default_factory=lambda: PersonalData({}, b""))
    mirrors: dict[str, PredictionLogMirror | FileMirror] = field(default_factory=dict)
    _mirrors_lock: threading.Lock = field(default_factory=threading.Lock)

    def mirror(self, service: str) -> PredictionLogMirror | FileMirror:
        """The production-data mirror of ``service``, made on first use."""
        with self._mirrors_lock:
            if service not in self.mirrors:
                self.mirrors[service] = production_source(self.store, self.config.service(service),
                                                          features=self.schema(service).features)
            return self.mirrors[service]

    def now(self) -> float:
        """The time every computation of this runtime is made for (frozen by ``VANTAGE_NOW``)."""
        return self.clock.now()

    def schema(self, service: str) -> ServiceSchema:
        """``service``'s columns (``monitoring.schema``), as its poller resolved them."""
        return self.collector.pollers[service].schema

    def schemas_digest(self) -> str:
        """Changes when any service's schema does (the server's metadata arrived), so that caches refresh."""
        return "".join(self.schema(s.name).digest[:4] for s in self.config.services)

    def preload(self) -> None:
        """Read every service's production data once, so the first page view finds it in memory."""
        for service in self.config.services:
            try:
                self.privacy.learn(service.name, self.mirror(service.name).read().frame)
            except Exception:  # a page shows the problem when it asks; nothing to do here
                log.info("no production data to preload for %s", service.name, exc_info=True)
            if service.personal and service.reference:  # so that log lines quoting a reference value are masked too
                try:
                    self.privacy.learn(service.name, read_reference(service.reference), source="reference")
                except ReferenceDataError:
                    log.info("no reference data to learn personal values from for %s", service.name)

    def stop(self) -> None:
        """Stop the collector and, in demo mode, the demo service and replayer."""
        self.collector.stop()
        if self.demo is not None:
            self.demo.stop()
        self.store.dispose()


def settings() -> Settings:
    """Read the configuration named by ``--config`` or ``VANTAGE_CONFIG``, if any."""
    path = config_path_from(sys.argv[1:])
    try:
        clock = clock_from_environment()
    except ValueError as exc:
        return Settings(path, None, ConfigError(str(exc)))
    if path is None:
        return Settings(None, None, None, clock)
    try:
        return Settings(path, load_config(path), None, clock)
    except ConfigError as exc:
        return Settings(path, None, exc, clock)


def _release(runtime: Runtime) -> None:
    runtime.stop()


@st.cache_resource(max_entries=1, on_release=_release, show_spinner=False)
def _start_runtime(path: str | None, fingerprint: str, clock: SystemClock | FrozenClock) -> Runtime:
    del fingerprint  # part of the cache key only: a changed file (or clock) starts a new runtime
    demo = None
    if path is None:
        from demo.runtime import start_demo

        demo = start_demo(var_dir(), faults=os.environ.get("VANTAGE_DEMO_FAULTS", "1") != "0", clock=clock)
        config = demo.config
    else:
        config = load_config(path)
    redact = redactor_for(config)
    install_log_redaction(redact)  # the process's log lines never carry a configured secret
    privacy = PersonalData.from_config(config, var_dir())
    install_log_masking(privacy, (logging.getLogger(), logging.getLogger("streamlit")))  # nor a personal value
    # in clear, Streamlit's own lines (a page's uncaught exception) included
    store = Store.from_config(config)
    collector = Collector(config, store).start()
    runtime = Runtime(config=config, store=store, collector=collector, demo=demo, started_at=time.time(),
                      clock=clock, redact=redact, privacy=privacy)
    threading.Thread(target=runtime.preload, daemon=True, name="vantage-preload").start()
    preload_explain()
    return runtime


def runtime(current: Settings) -> Runtime:
    """Start (once) or return the background runtime for the current settings."""
    message = ("Starting the embedded demo: training its model on first start, then serving it…"
               if current.is_demo else "Connecting to the store and starting the collector…")
    with st.spinner(message):
        return _start_runtime(current.path, current.fingerprint, current.clock)


def tick(seconds: float) -> int:
    """A number that changes every ``seconds`` of wall time; pass it to cached functions to refresh them.

    It only decides when caches refresh, never what they compute (that takes the runtime's clock).
    """
    return int(time.time() // max(seconds, 1.0))


@st.cache_data(ttl=60, max_entries=64, show_spinner=False)
def cached_fleet(_runtime: Runtime, fingerprint: str, tick_value: int) -> list[FleetRow]:
    """Fleet table rows for every configured service."""
    del fingerprint, tick_value
    return fleet_overview(_runtime.store, _runtime.config.services, now=_runtime.now())


@st.cache_data(ttl=60, max_entries=128, show_spinner=False)
def cached_service_health(_runtime: Runtime, fingerprint: str, service: str, slo: SloConfig,
                          tick_value: int) -> ServiceHealth:
    """Status, heartbeat, uptime, incidents and, under the objectives ``slo``, budgets and burn rates."""
    del fingerprint, tick_value
    config = _runtime.config.service(service).model_copy(update={"slo": slo})
    return service_health(_runtime.store, config, now=_runtime.now())


@st.cache_data(ttl=300, max_entries=128, show_spinner=False)
def cached_time_series(_runtime: Runtime, fingerprint: str, service: str, window: str,
                       tick_value: int) -> TimeSeries:
    """Latency percentiles and traffic of one service over ``window``."""
    del fingerprint, tick_value
    return time_series(_runtime.store, _runtime.config.service(service), window=window, now=_runtime.now())


@st.cache_data(ttl=60, max_entries=64, show_spinner=False)
def cached_metadata(_runtime: Runtime, fingerprint: str, service: str, tick_value: int) -> dict:
    """What the service says about its model, or the reason it could not be asked."""
    del fingerprint, tick_value
    poller = _runtime.collector.pollers[service]
    try:
        meta = poller.client.metadata()
    except ServiceError as exc:
        return {"error": _runtime.redact(str(exc))}
    return {"name": meta.name, "version": meta.version or poller.model_version, "platform": meta.platform,
            "inputs": len(meta.inputs), "server": meta.server}


# -- production data (shared by the Drift, Performance and Explain pages)


def prediction_log_mirror(_runtime: Runtime, fingerprint: str, service: str) -> PredictionLogMirror | FileMirror:
    """The in-memory, incrementally refreshed production data of ``service`` (store log or file).

    Call ``.read()`` on it for a :class:`~monitoring.production.ProductionData`; it fetches only
    the rows appended since the previous call. The runtime owns one per service and loads them
    in the background when it starts.
    """
    del fingerprint
    return _runtime.mirror(service)


# -- performance

PERFORMANCE_TICK_SECONDS = 120.0
"""Labels arrive slowly: the Performance page recomputes at most every two minutes."""


def cache_key(runtime: Runtime, fingerprint: str) -> str:
    """The one cache key of everything a running runtime computes.

    Two demo runs share the fingerprint ``demo`` but not a start time, and a service's
    schema may change once its server's metadata is known; both are in the key.
    """
    return f"{fingerprint}@{runtime.started_at!r}#{runtime.schemas_digest()}"


@st.cache_resource(max_entries=32, show_spinner=False)
def _label_mirror(_runtime: Runtime, runtime_key: str, service: str) -> StoreLabelMirror | LabelFileMirror:
    del runtime_key
    return label_source(_runtime.store, _runtime.config.service(service))


def label_mirror(_runtime: Runtime, fingerprint: str, service: str) -> StoreLabelMirror | LabelFileMirror:
    """The in-memory, incrementally refreshed ground-truth labels of ``service`` (store table or label file)."""
    return _label_mirror(_runtime, cache_key(_runtime, fingerprint), service)


@st.cache_resource(ttl=120, max_entries=8, show_spinner=False)
def _labeled_predictions(_runtime: Runtime, runtime_key: str, service: str, tick_value: int) -> LabeledPredictions:
    del tick_value
    production = _runtime.mirror(service).read()
    labels = _label_mirror(_runtime, runtime_key, service)
    return join_labels(production.frame, labels.read(), now=_runtime.now(),
                       task=_runtime.schema(service).task or "auto", source=labels.source)


def labeled_predictions(_runtime: Runtime, fingerprint: str, service: str) -> LabeledPredictions:
    """Predictions of ``service`` joined to the labels that have arrived, refreshed every two minutes.

    Shared between sessions without copying: read it, never change it.

    Raises
    ------
    ProductionDataError, LabelDataError
        When the service has no prediction log or its labels cannot be read at all.
    """
    return _labeled_predictions(_runtime, cache_key(_runtime, fingerprint), service,
                                tick(PERFORMANCE_TICK_SECONDS))


@st.cache_data(ttl=600, max_entries=32, show_spinner=False)
def _baseline_of(_runtime: Runtime, runtime_key: str, service: str, task: str, classes: tuple[float, ...],
                 model_version: str | None) -> Baseline:
    del runtime_key
    from explain._budget import paced_predict

    config = _runtime.config.service(service)
    client = make_client(config)
    client.session.headers[PROBE_HEADER] = "1"  # scoring the reference is not production traffic
    try:
        return baseline_for(config, task=task, classes=classes, features=_runtime.schema(service).features,
                            predict=paced_predict(config, client.predict), model_version=model_version,
                            cache_dir=var_dir() / "baselines")
    finally:
        client.close()


def _baseline(_runtime: Runtime, runtime_key: str, service: str, task: str, classes: tuple[float, ...]) -> Baseline:
    """The baseline of ``service`` (``monitoring.baseline.baseline_for``): configured, from the reference's own
    predictions, or the service's predictions on a bounded reference sample, cached per model version."""
    version = cached_metadata(_runtime, runtime_key, service, tick(60)).get("version")
    return _baseline_of(_runtime, runtime_key, service, task, classes,
                        version or _runtime.config.service(service).model_version)


@st.cache_data(ttl=300, max_entries=64, show_spinner=False)
def _performance(_runtime: Runtime, runtime_key: str, service: str, window: str, range_days: float | None,
                 tick_value: int) -> PerformanceOverTime:
    labeled = _labeled_predictions(_runtime, runtime_key, service, tick_value)
    settings = _runtime.config.service(service).performance
    return performance_over_time(
        labeled, window=window, min_labels=settings.min_labels,
        baseline=_baseline(_runtime, runtime_key, service, labeled.task, labeled.classes),
        since=range_start(labeled.now, range_days, window=window))


def cached_performance(_runtime: Runtime, fingerprint: str, service: str, window: str,
                       range_days: float | None) -> PerformanceOverTime:
    """Metrics per ``window`` over the last ``range_days`` days (None = all), against the baseline."""
    return _performance(_runtime, cache_key(_runtime, fingerprint), service, window, range_days,
                        tick(PERFORMANCE_TICK_SECONDS))


@st.cache_data(ttl=300, max_entries=64, show_spinner=False)
def _decisions(_runtime: Runtime, runtime_key: str, service: str, window: str, range_days: float | None,
               threshold: float | None, tick_value: int) -> DecisionsOverTime:
    labeled = _labeled_predictions(_runtime, runtime_key, service, tick_value)
    settings = _runtime.config.service(service).performance
    return decisions_over_time(labeled, window=window, threshold=threshold,
                               business=BusinessValues.from_config(settings),
                               since=range_start(labeled.now, range_days, window=window))


def cached_decisions(_runtime: Runtime, fingerprint: str, service: str, window: str, range_days: float | None,
                     threshold: float | None) -> DecisionsOverTime:
    """Confusion counts (and money) per ``window`` at ``threshold``; two-class models only."""
    return _decisions(_runtime, cache_key(_runtime, fingerprint), service, window, range_days, threshold,
                      tick(PERFORMANCE_TICK_SECONDS))


@st.cache_data(ttl=300, max_entries=64, show_spinner=False)
def _performance_detail(_runtime: Runtime, runtime_key: str, service: str, since: float | None,
                        until: float | None, threshold: float | None, tick_value: int) -> PerformanceDetail:
    labeled = _labeled_predictions(_runtime, runtime_key, service, tick_value)
    settings = _runtime.config.service(service).performance
    return performance_detail(labeled, since=since, until=until, threshold=threshold,
                              business=BusinessValues.from_config(settings))


def cached_performance_detail(_runtime: Runtime, fingerprint: str, service: str, since: float | None,
                              until: float | None, threshold: float | None) -> PerformanceDetail:
    """Calibration, confusion matrix at ``threshold`` and residuals of predictions made in ``[since, until)``."""
    return _performance_detail(_runtime, cache_key(_runtime, fingerprint), service, since, until, threshold,
                               tick(PERFORMANCE_TICK_SECONDS))


# -- explanations
# The Explain page's caches: one model source and explainer per service and model version
# (resources), results per service, model version, output space and data window (data).
# Long computations run in a worker thread so the page can draw a progress bar meanwhile;
# nothing is computed before the page asks for it.

def _import_explain() -> None:
    try:  # ~2 s of imports, paid here once instead of on the Explain page's first visit
        import shap  # noqa: F401
        import sklearn.inspection  # noqa: F401
        import skops.io  # noqa: F401

        import explain  # noqa: F401
    except Exception:  # the page reports import problems itself
        log.info("preloading explain failed", exc_info=True)


def preload_explain() -> None:
    """Import the explanation libraries in a background thread, once per process, so the
    Explain page's first visit does not wait for them."""
    import threading

    if not any(t.name == "vantage-explain-import" for t in threading.enumerate()) and "explain" not in sys.modules:
        threading.Thread(target=_import_explain, daemon=True, name="vantage-explain-import").start()


EXPLAIN_WINDOWS = {"reference": "Reference (training) data", "24h": "Last 24 hours of predictions",
                   "7d": "Last 7 days of predictions", "30d": "Last 30 days of predictions"}
_EXPLAIN_WINDOW_SECONDS = {"24h": 86400.0, "7d": 7 * 86400.0, "30d": 30 * 86400.0}


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


@st.cache_resource(ttl=900, max_entries=16, show_spinner=False)
def explain_setup(_runtime: Runtime, fingerprint: str, service: str) -> ExplainSetup:
    """Open the model source of ``service`` (see ``[services.explain]``) and read its reference data.

    ``fingerprint`` is :func:`cache_key`'s value, as for every function below. Raises
    ``explain.ExplainError`` (not cached) when the artifact or the service cannot be used.
    """
    del fingerprint
    from explain import open_model_source
    from monitoring.reference import ReferenceDataError, read_reference

    config = _runtime.config.service(service)
    reference, problem = None, None
    if config.reference:
        try:
            reference = read_reference(config.reference, features=_features(_runtime, service))
            reference = reference[[c for c in reference.columns if c != config.target]]
        except ReferenceDataError as exc:
            problem = str(exc)
    else:
        problem = f"service {service} has no reference data configured ([[services]] reference)"
    selected = open_model_source(config, reference, check=False)  # the page checks after its first chart
    return ExplainSetup(selected, reference, problem, _runtime.mirror(service).has_rows())


@st.cache_data(ttl=600, max_entries=32, show_spinner=False)
def explain_consistency(_runtime: Runtime, fingerprint: str, service: str, version: str | None):
    """Whether the local artifact predicts what the service predicts, on 200 reference rows (one request)."""
    del version
    from explain import check_against_service

    setup = explain_setup(_runtime, fingerprint, service)
    sample = None if setup.reference is None else setup.reference.sample(
        min(200, len(setup.reference)), random_state=0)
    return check_against_service(setup.selected.model, _runtime.config.service(service), sample)


def _explain_warm_up(explainer) -> None:
    try:
        explainer.warm_up()
    except Exception:  # a failing service is shown when the page asks; here it only stays cold
        log.info("explainer warm-up failed", exc_info=True)


@st.cache_resource(ttl=3600, max_entries=16, show_spinner=False)
def explainer(_runtime: Runtime, fingerprint: str, service: str, version: str | None, space: str):
    """The Shapley explainer of ``service``'s model in ``space``, warmed up in a background thread."""
    del version
    import threading

    from explain import ExplainError, ShapExplainer

    setup = explain_setup(_runtime, fingerprint, service)
    rows = _runtime.config.service(service).explain.background_rows  # as configured: the budget bounds the cost
    background = setup.reference
    if background is None and setup.has_log:  # no training data: the last 30 days' predictions stand in
        background = explain_window(_runtime, fingerprint, service, "30d", rows, tick(3600))
    if background is None or len(background) == 0:
        raise ExplainError(f"no background data for the explainer: {setup.reference_problem}")
    shap_explainer = ShapExplainer(setup.selected.model, background, space=space, background_rows=rows)
    threading.Thread(target=_explain_warm_up, args=(shap_explainer,), daemon=True,
                     name=f"vantage-explain-warm-{service}").start()
    return shap_explainer


@st.cache_data(ttl=600, max_entries=64, show_spinner=False)
def explain_window(_runtime: Runtime, fingerprint: str, service: str, window: str, n_rows: int,
                   tick_value: int):
    """Up to ``n_rows`` rows of ``window`` (reference sample, or logged predictions spread over the window)."""
    del tick_value
    from explain import ExplainError
    from explain._data import sample_prediction_log

    if window == "reference":
        setup = explain_setup(_runtime, fingerprint, service)
        if setup.reference is None:
            raise ExplainError(f"no reference data: {setup.reference_problem}")
        reference = setup.reference
        return reference.sample(min(n_rows, len(reference)), random_state=0).reset_index(drop=True)
    if window not in _EXPLAIN_WINDOW_SECONDS:
        raise ValueError(f"window must be one of {list(EXPLAIN_WINDOWS)}; got {window!r}")
    now = _runtime.now()
    frame = sample_prediction_log(_runtime.mirror(service), service, since=now - _EXPLAIN_WINDOW_SECONDS[window],
                                  until=now, n_rows=n_rows)
    if frame.empty:
        raise ExplainError(f"no predictions of {service} were logged in the {EXPLAIN_WINDOWS[window].lower()}")
    return frame


@st.cache_data(ttl=600, max_entries=256, show_spinner=False)
def explain_model_rows(_runtime: Runtime, fingerprint: str, service: str, version: str | None, space: str,
                       rows) -> int:
    """Model rows explaining ``rows`` would send the service (0 for the Tree and Linear explainers), for the
    estimate shown before a black-box explanation starts; nothing is sent."""
    return explainer(_runtime, fingerprint, service, version, space).model_rows_needed(rows)


@st.cache_data(ttl=3600, max_entries=64, show_spinner=False)
def explain_global(_runtime: Runtime, fingerprint: str, service: str, version: str | None, space: str, window: str,
                   n_rows: int, tick_value: int, _progress=None):
    """Shapley values of up to ``n_rows`` rows of ``window`` (global importance, beeswarm, dependence)."""
    rows = explain_window(_runtime, fingerprint, service, window, n_rows, tick_value)
    shap_explainer = explainer(_runtime, fingerprint, service, version, space)
    ids = tuple(rows["id"]) if "id" in rows.columns else ()
    return shap_explainer.explain(rows, row_ids=ids, progress=_progress)


@st.cache_data(ttl=3600, max_entries=256, show_spinner=False)
def explain_row(_runtime: Runtime, fingerprint: str, service: str, version: str | None, space: str, row,
                row_id: str | None, _progress=None):
    """Shapley values of one row (a one-row DataFrame), for the waterfall."""
    shap_explainer = explainer(_runtime, fingerprint, service, version, space)
    return shap_explainer.explain(row, row_ids=(row_id,) if row_id else (), progress=_progress)


@st.cache_data(ttl=3600, max_entries=64, show_spinner=False)
def explain_dependence(_runtime: Runtime, fingerprint: str, service: str, version: str | None, features: tuple,
                       window: str, n_rows: int, grid_resolution: int, highlight, tick_value: int, _progress=None):
    """Partial dependence and ICE of one or two features over ``window``."""
    del version
    from explain import partial_dependence

    rows = explain_window(_runtime, fingerprint, service, window, n_rows, tick_value)
    model = explain_setup(_runtime, fingerprint, service).selected.model
    return partial_dependence(model, rows, features, grid_resolution=grid_resolution, highlight=highlight,
                              progress=_progress)


@st.cache_data(ttl=30, max_entries=64, show_spinner=False)
def find_logged_predictions(_runtime: Runtime, fingerprint: str, service: str, prediction_id: str | None,
                            since: float | None, until: float | None, filters: tuple, limit: int, tick_value: int):
    """Logged predictions matching an id, a time range and feature conditions (index-backed, newest first)."""
    del fingerprint, tick_value
    return _runtime.mirror(service).find(prediction_id=prediction_id, since=since, until=until,
                                         filters=dict(filters) if filters else None, limit=limit)


def run_with_progress(label: str, function, *args, **kwargs):
    """Call ``function(*args, _progress=..., **kwargs)`` showing a progress bar if it takes over half a second.

    The call runs in a worker thread (with this session's script context) while this thread
    draws the bar from the progress the function reports; its result or exception is passed on.
    """
    import threading

    from streamlit.runtime.scriptrunner import add_script_run_ctx, get_script_run_ctx

    state_ = {"fraction": 0.0, "text": "starting", "done": False, "result": None, "error": None}

    def report(fraction: float, text: str) -> None:
        state_["fraction"], state_["text"] = fraction, text

    def work() -> None:
        try:
            state_["result"] = function(*args, _progress=report, **kwargs)
        except BaseException as exc:  # handed to the page thread below
            state_["error"] = exc
        finally:
            state_["done"] = True

    worker = threading.Thread(target=work, daemon=True, name="vantage-explain-work")
    add_script_run_ctx(worker, get_script_run_ctx(suppress_warning=True))
    worker.start()
    worker.join(0.5)
    if not state_["done"]:
        bar = st.progress(0.0, text=f"{label}…")
        while not state_["done"]:
            worker.join(0.2)
            bar.progress(min(max(float(state_["fraction"]), 0.0), 1.0), text=f"{label}: {state_['text']}")
        bar.empty()
    if state_["error"] is not None:
        raise state_["error"]
    return state_["result"]


# -- drift


def drift_profile(_runtime: Runtime, fingerprint: str, service: str) -> ReferenceProfile:
    """Reference statistics of ``service``'s features, built once per reference file and kept on disk.

    Raises
    ------
    ReferenceDataError
        No reference configured, or a file that is missing, unreadable, empty, lacks the
        service's columns or has text in a numeric column (not cached: fixed files are
        picked up at the next rerun).
    """
    return _drift_profile(_runtime, cache_key(_runtime, fingerprint), service)


@st.cache_resource(max_entries=32, show_spinner="Reading the reference data…")
def _drift_profile(_runtime: Runtime, runtime_key: str, service: str) -> ReferenceProfile:
    del runtime_key
    config = _runtime.config.service(service)
    if not config.reference:
        raise ReferenceDataError(f"service {service!r} has no reference data: set `reference` (a CSV or Parquet "
                                 "file of the training data) in its [[services]] table")
    try:
        known = _runtime.store.prediction_features(config.log_name)
    except KeyError:
        known = {}
    frame = read_reference(config.reference, features=_features(_runtime, service), kinds=known)
    kinds = infer_kinds(frame.drop(columns=[c for c in frame.columns if c in MODEL_OUTPUTS]), known=known)
    # A profile lists a categorical column's values: one with personal columns stays in memory, never on disk.
    cache_dir = None if config.personal else var_dir() / "drift-profiles"
    return load_or_build_profile(config.reference, kinds, cache_dir=cache_dir)


def _features(_runtime: Runtime, service: str) -> tuple[str, ...]:
    """The service's features from its schema; a reference that offers none is an error naming the columns."""
    schema = _runtime.schema(service)
    if not schema.features:
        raise ReferenceDataError(f"service {service!r} has no features: " + (
            "; ".join(schema.problems) or "set `features`, or a reference with feature columns besides the target"))
    return schema.features


@st.cache_data(ttl=900, max_entries=64, show_spinner=False)
def cached_drift(_runtime: Runtime, fingerprint: str, service: str, window: str | int,
                 since: float | None, until: float | None, rows_seen: int) -> DriftReport:
    """Drift of every feature and window of ``service`` between ``since`` and ``until``.

    ``rows_seen`` (the number of production rows) is part of the key only: new rows give a
    new report.
    """
    del rows_seen
    config = _runtime.config.service(service)
    profile = drift_profile(_runtime, fingerprint, service)
    frame = rows_between(_runtime.mirror(service).read().frame, since, until)
    return compute_drift(profile, frame, window=window, methods=config.drift.methods,
                         thresholds=config.drift.thresholds, drift_share=config.drift.drift_share, service=service,
                         now=_runtime.now())


# -- overview and segments

@st.cache_data(ttl=300, max_entries=32, show_spinner=False)
def _overview(_runtime: Runtime, runtime_key: str, service: str, rows_seen: int, tick_value: int) -> ServiceOverview:
    del rows_seen, tick_value
    now = _runtime.now()  # not a key: the tick decides when it is read again
    from monitoring.labels import LabelDataError

    config = _runtime.config.service(service)
    frame = _runtime.mirror(service).read().frame
    profile, profile_problem = None, None
    try:
        profile = drift_profile(_runtime, runtime_key, service)
    except (ReferenceDataError, ValueError) as exc:
        profile_problem = str(exc)
    labeled, label_problem, baseline = None, None, None
    try:
        labeled = _labeled_predictions(_runtime, runtime_key, service, tick(PERFORMANCE_TICK_SECONDS))
        baseline = _baseline(_runtime, runtime_key, service, labeled.task, labeled.classes)
    except (ProductionDataError, LabelDataError) as exc:
        label_problem = str(exc)
    return service_overview(service, frame=frame, now=now, task=config.performance.task, profile=profile,
                            profile_problem=profile_problem, drift_methods=config.drift.methods,
                            drift_thresholds=config.drift.thresholds, drift_share=config.drift.drift_share,
                            labeled=labeled, label_problem=label_problem, baseline=baseline,
                            judged_days=config.performance.judged_days, min_labels=config.performance.min_labels)


def overview(_runtime: Runtime, fingerprint: str, service: str) -> ServiceOverview:
    """What the Overview says about ``service``'s data (``monitoring.overview.service_overview``), at the
    runtime's clock; recomputed when rows arrive, at most once a minute.

    Raises
    ------
    ProductionDataError
        When the service has no prediction log.
    """
    rows = len(_runtime.mirror(service).read().frame)
    return _overview(_runtime, cache_key(_runtime, fingerprint), service, rows, tick(60))


SEGMENT_DAYS = (7, 30, 90)
"""Periods of logged predictions the Segments page can look at."""


@st.cache_resource(ttl=900, max_entries=16, show_spinner=False)
def _segment_reference(_runtime: Runtime, runtime_key: str, service: str):
    del runtime_key
    config = _runtime.config.service(service)
    if not config.reference:
        return None
    try:
        return read_reference(config.reference, features=_features(_runtime, service))
    except ReferenceDataError:
        return None


def _segment_rows(_runtime: Runtime, runtime_key: str, service: str, days: float, tick_value: int):
    """``explain.segments.segment_rows`` of the last ``days`` days (labels when the service has them)."""
    from explain.segments import segment_rows
    from monitoring.labels import LabelDataError

    frame = _runtime.mirror(service).read().frame
    try:
        labeled = _labeled_predictions(_runtime, runtime_key, service, tick_value)
    except LabelDataError:
        labeled = None
    return segment_rows(frame, now=_runtime.now(), days=days, labeled=labeled,
                        task=_runtime.schema(service).task or "auto")


@st.cache_data(ttl=300, max_entries=64, show_spinner=False)
def _segments_table(_runtime: Runtime, runtime_key: str, service: str, features: tuple, n_bins: int, days: float,
                    min_rows: int, tick_value: int):
    from explain.segments import segments_report

    rows = _segment_rows(_runtime, runtime_key, service, days, tick_value)
    return segments_report(rows, features, reference=_segment_reference(_runtime, runtime_key, service),
                           kinds=_runtime.schema(service).feature_kinds, n_bins=n_bins, min_rows=min_rows)


def segments_table(_runtime: Runtime, fingerprint: str, service: str, features: tuple, n_bins: int, days: float,
                   min_rows: int):
    """Volume, prediction rate, performance and share drift per segment of the last ``days`` days."""
    return _segments_table(_runtime, cache_key(_runtime, fingerprint), service, features, n_bins, days, min_rows,
                           tick(PERFORMANCE_TICK_SECONDS))


@st.cache_data(ttl=300, max_entries=64, show_spinner=False)
def _segments_fairness(_runtime: Runtime, runtime_key: str, service: str, sensitive: str, n_bins: int, days: float,
                       min_rows: int, positive: float | None, tick_value: int):
    from explain.segments import segments_fairness as fairness

    rows = _segment_rows(_runtime, runtime_key, service, days, tick_value)
    return fairness(rows, sensitive, n_bins=n_bins, min_rows=min_rows, positive=positive)


def segments_fairness(_runtime: Runtime, fingerprint: str, service: str, sensitive: str, n_bins: int, days: float,
                      min_rows: int, positive: float | None = None):
    """Fairness across the groups of ``sensitive`` (fairlearn), one class against the rest when there are more
    than two: ``positive`` is the class counted as the positive decision (default, and when it is not one of the
    classes, the last class). None for a regression model."""
    return _segments_fairness(_runtime, cache_key(_runtime, fingerprint), service, sensitive, n_bins, days,
                              min_rows, None if positive is None else float(positive),
                              tick(PERFORMANCE_TICK_SECONDS))


SEGMENT_EXPLAIN_ROWS = 400
"""At most this many rows are explained for the per-segment importance, spread over the segments."""


@st.cache_data(ttl=3600, max_entries=32, show_spinner=False)
def _segments_importance(_runtime: Runtime, runtime_key: str, service: str, version: str | None, features: tuple,
                         n_bins: int, days: float, tick_value: int, _progress=None):
    from explain.segments import assign_segments, rows_per_segment, segment_edges, segment_importance

    frame = _segment_rows(_runtime, runtime_key, service, days, tick_value).frame
    setup = explain_setup(_runtime, runtime_key, service)
    model_features = list(setup.selected.model.features)
    reference = _segment_reference(_runtime, runtime_key, service)
    edges = segment_edges(reference, features, n_bins=n_bins) if reference is not None else None
    segments = assign_segments(frame, features, n_bins=n_bins, edges=edges)
    shap_explainer = explainer(_runtime, runtime_key, service, version, "auto")
    per_segment = rows_per_segment(  # sized to the service's budget when explained through it
        segments.nunique(), at_most=SEGMENT_EXPLAIN_ROWS,
        model_rows_per_row=shap_explainer.model_rows_needed(frame[model_features].head(1)) if len(frame) else 0,
        model_rows_budget=_runtime.config.service(service).explain.max_rows_per_computation)
    return segment_importance(shap_explainer, frame[model_features], segments, n_rows=per_segment, top=3,
                              progress=_progress)


def segments_importance(_runtime: Runtime, fingerprint: str, service: str, features: tuple, n_bins: int,
                        days: float, _progress=None):
    """Top three features by mean |SHAP| per segment, on a bounded sample (raises ``ExplainError``)."""
    key = cache_key(_runtime, fingerprint)
    version = explain_setup(_runtime, key, service).selected.model.version
    return _segments_importance(_runtime, key, service, version, features, n_bins, days, tick(3600),
                                _progress=_progress)





def report_segments(_runtime: Runtime, fingerprint: str, service: str) -> tuple:
    """Segments and fairness by the first categorical feature over 30 days, for the report; (None, None) if none.

    Safe to call from the download button's worker thread; problems leave the sections out.
    """
    try:
        frame = _runtime.mirror(service).read().frame
        config = _runtime.config.service(service)
        from explain.segments import first_categorical

        names = [c for c in _runtime.schema(service).present_in(frame.columns)
                 if c not in config.personal]  # one segment per person says nothing
        feature = first_categorical(frame, names)
        if feature is None:
            return None, None
        min_rows = config.performance.min_labels
        return (segments_table(_runtime, fingerprint, service, (feature,), 4, 30.0, min_rows),
                segments_fairness(_runtime, fingerprint, service, feature, 4, 30.0, min_rows))
    except Exception:  # the report is still useful without its segments
        log.info("no segments for the report of %s", service, exc_info=True)
        return None, None


# -- what-if
# The What-if page's caches: the model that re-predicts edited rows (the service, or the local
# artifact when source = 'local'), the reference ranges, and the results per point and options.
# Rows go in as tuples of (feature, value) pairs so that they hash cheaply and exactly.

@st.cache_resource(ttl=900, max_entries=16, show_spinner=False)
def whatif_model(_runtime: Runtime, fingerprint: str, service: str):
    """The model the What-if page re-predicts with: the live service as a black box, or the local
    artifact when ``[services.explain] source = 'local'``."""
    from explain import RemoteModel

    setup = explain_setup(_runtime, fingerprint, service)
    model = setup.selected.model
    config = _runtime.config.service(service)
    if model.kind == "remote" or config.explain.source == "local":
        return model
    sample = None if setup.reference is None else setup.reference.head(5)
    return RemoteModel(config, features=model.features, feature_kinds=model.feature_kinds, X_sample=sample)


@st.cache_data(ttl=900, max_entries=16, show_spinner=False)
def whatif_ranges(_runtime: Runtime, fingerprint: str, service: str):
    """The reference's observed range and seen categories of every feature (``explain.whatif.FeatureRanges``)."""
    from explain import ExplainError
    from explain.ranges import feature_ranges

    setup = explain_setup(_runtime, fingerprint, service)
    if setup.reference is None:
        raise ExplainError(f"the What-if page needs reference data for the accepted ranges: {setup.reference_problem}")
    model = setup.selected.model
    return feature_ranges(setup.reference, features=model.features, feature_kinds=model.feature_kinds)


@st.cache_data(ttl=600, max_entries=256, show_spinner=False)
def whatif_compare(_runtime: Runtime, fingerprint: str, service: str, original: tuple, edited: tuple,
                   threshold: float):
    """The original and the edited row predicted side by side (one request); raises on bad input (not cached).

    Multiclass scores are the probability of the original row's predicted class; the page switches class with
    ``WhatIfComparison.for_output``, which needs no new request."""
    from explain.whatif import compare

    model = whatif_model(_runtime, fingerprint, service)
    return compare(model, dict(original), dict(edited), ranges=whatif_ranges(_runtime, fingerprint, service),
                   threshold=threshold)


@st.cache_data(ttl=600, max_entries=64, show_spinner=False)
def whatif_sensitivity(_runtime: Runtime, fingerprint: str, service: str, point: tuple, grid_resolution: int,
                       output=None, _progress=None):
    """ICE curves of every feature for ``point`` from one batched request, and their ranking; multiclass curves
    show the probability of ``output`` (default the point's predicted class)."""
    from explain.whatif import sensitivity

    model = whatif_model(_runtime, fingerprint, service)
    return sensitivity(model, dict(point), whatif_ranges(_runtime, fingerprint, service),
                       grid_resolution=grid_resolution, output=output, progress=_progress)


@st.cache_data(ttl=600, max_entries=64, show_spinner=False)
def whatif_counterfactuals(_runtime: Runtime, fingerprint: str, service: str, point: tuple, allowed: tuple,
                           bounds: tuple, n_counterfactuals: int, target_range: tuple | None, threshold: float,
                           desired_class=None, output=None, _progress=None):
    """Counterfactuals of ``point`` (see ``explain.whatif.counterfactuals``), a few batched requests; multiclass
    scores are the probability of ``output`` for the original and every answer."""
    from explain.whatif import counterfactuals

    setup = explain_setup(_runtime, fingerprint, service)
    model = whatif_model(_runtime, fingerprint, service)
    return counterfactuals(model, dict(point), setup.reference, ranges=whatif_ranges(_runtime, fingerprint, service),
                           n_counterfactuals=n_counterfactuals, allowed=allowed, bounds=dict(bounds),
                           target_range=target_range, threshold=threshold, random_state=0,
                           desired_class=desired_class, output=output, progress=_progress)


@st.cache_data(ttl=60, max_entries=32, show_spinner=False)
def whatif_listed(_runtime: Runtime, fingerprint: str, service: str, kind: str, limit: int, tick_value: int):
    """Logged predictions to start from (``explain.starting_points.starting_points``), refreshed with ``tick_value``."""
    del tick_value
    from explain.starting_points import starting_points

    labeled = labeled_predictions(_runtime, fingerprint, service) if kind == "error" else None
    task = labeled.task if labeled is not None else (_runtime.schema(service).task or "classification")
    return starting_points(kind, logged=_runtime.mirror(service), now=_runtime.now(), limit=limit,
                           labeled=labeled.frame if labeled is not None else None, task=task)
