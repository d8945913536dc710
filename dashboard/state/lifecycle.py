"""The runtime's lifecycle: settings, the background runtime of this server process, and the tick.

* :func:`settings` reads the configuration on every rerun (a TOML parse takes well under a
  millisecond), so an edited file is picked up by the next click, and an invalid one is
  shown as a message.
* :func:`runtime` starts, once per Streamlit server process however many tabs are open, the
  embedded demo (when no configuration is given) and the collector, with
  ``st.cache_resource``; a changed configuration releases the old one (its collector stops)
  and starts a new one.
* :func:`tick` is the number cached functions take as ``tick=`` to refresh once per period.
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

from monitoring.clock import FrozenClock, SystemClock, clock_from_environment
from monitoring.collector import Collector
from monitoring.config import ConfigError, VantageConfig, config_path_from, load_config
from monitoring.engine_mirror import EngineMirror
from monitoring.parquet_log import ParquetPredictionLog
from monitoring.privacy import PersonalData, install_log_masking
from monitoring.production import FileMirror, production_source
from monitoring.redact import Redactor, install_log_redaction, redactor_for
from monitoring.reference import ReferenceDataError, read_reference
from monitoring.schema import ServiceSchema
from monitoring.staged_log import staging_log
from monitoring.store import Store

if TYPE_CHECKING:
    from demo.runtime import DemoRuntime

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]


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
    fingerprint: str = "demo"
    clock: SystemClock | FrozenClock = field(default_factory=SystemClock)
    redact: Redactor = field(default_factory=Redactor)
    privacy: PersonalData = field(default_factory=lambda: PersonalData({}, b""))
    mirrors: dict[str, FileMirror | EngineMirror] = field(default_factory=dict)
    _mirrors_lock: threading.Lock = field(default_factory=threading.Lock)
    _staging: ParquetPredictionLog | None = None

    def cache_key(self) -> str:
        """What every cache holds this runtime's results under (see :mod:`dashboard.state.caching`).

        Two demo runs share the fingerprint ``demo`` but not a start time, and a service's
        schema may change once its server's metadata is known; all three are in the key.
        """
        return f"{self.fingerprint}@{self.started_at!r}#{self.schemas_digest()}"

    def mirror(self, service: str) -> FileMirror | EngineMirror:
        """The production-data mirror of ``service``, made on first use."""
        with self._mirrors_lock:
            if service not in self.mirrors:
                self.mirrors[service] = production_source(self.store, self.config.service(service),
                                                          features=self.schema(service).features,
                                                          staging=self._file_staging())
            return self.mirrors[service]

    def _file_staging(self) -> ParquetPredictionLog | None:
        """Where prediction-log files are staged when the store keeps its log in its tables (``var/staged-files``);
        beside a Parquet log they are staged under it, and None is returned."""
        if isinstance(self.store.predictions, ParquetPredictionLog):
            return None
        if self._staging is None:
            self._staging = staging_log(self.store, var_dir() / "staged-files")
        return self._staging

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
        """Warm every service's production source up once (its ``warm_up``), so the first page view finds what
        it needs, and learn its personal values."""
        for service in self.config.services:
            try:
                personal = tuple(self.privacy.columns.get(service.name, ()))
                self.privacy.learn(service.name, self.mirror(service.name).warm_up(personal))
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
                      fingerprint=fingerprint, clock=clock, redact=redact, privacy=privacy)
    threading.Thread(target=runtime.preload, daemon=True, name="vantage-preload").start()
    return runtime


def runtime(current: Settings) -> Runtime:
    """Start (once) or return the background runtime for the current settings.

    Parameters
    ----------
    current : Settings
        This rerun's :func:`settings`; a changed configuration (or clock) stops the old
        runtime and starts a new one.

    Returns
    -------
    Runtime
        Shared by every session of this server process.
    """
    message = ("Starting the embedded demo: training its model on first start, then serving it…"
               if current.is_demo else "Connecting to the store and starting the collector…")
    with st.spinner(message):
        return _start_runtime(current.path, current.fingerprint, current.clock)


def stop_runtime() -> None:
    """Stop the runtime this process started (its collector, and the demo), if any; tests call it."""
    _start_runtime.clear()


def tick(seconds: float) -> int:
    """A number that changes every ``seconds`` of wall time; pass it as ``tick=`` to refresh a cache.

    It only decides when caches refresh, never what they compute (that takes the runtime's clock).

    Parameters
    ----------
    seconds : float
        The refresh period (at least one second).

    Returns
    -------
    int
        The number of whole periods since the epoch.
    """
    return int(time.time() // max(seconds, 1.0))


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
    Explain page's first visit does not wait for them.

    Called once the first page has been drawn (``dashboard/app.py``), not when the runtime
    starts: the import holds Python's interpreter lock for about a second, and a first Drift
    view over 10,000,000 predictions took 2.4 to 3.4 s beside it, 1.6 to 1.7 s without (the
    Explain page's first chart, opened from another page, was the same either way)."""
    if "explain" not in sys.modules and not any(t.name == "vantage-explain-import" for t in threading.enumerate()):
        threading.Thread(target=_import_explain, daemon=True, name="vantage-explain-import").start()
