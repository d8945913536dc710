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

from monitoring.clients import ServiceError
from monitoring.collector import Collector
from monitoring.config import ConfigError, SloConfig, VantageConfig, config_path_from, load_config
from monitoring.production import FileMirror, PredictionLogMirror, production_source
from monitoring.service_health import FleetRow, ServiceHealth, TimeSeries, fleet_overview, service_health, time_series
from monitoring.store import Store

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
    mirrors: dict[str, PredictionLogMirror | FileMirror] = field(default_factory=dict)
    _mirrors_lock: threading.Lock = field(default_factory=threading.Lock)

    def mirror(self, service: str) -> PredictionLogMirror | FileMirror:
        """The production-data mirror of ``service``, made on first use."""
        with self._mirrors_lock:
            if service not in self.mirrors:
                self.mirrors[service] = production_source(self.store, self.config.service(service))
            return self.mirrors[service]

    def preload(self) -> None:
        """Read every service's production data once, so the first page view finds it in memory."""
        for service in self.config.services:
            try:
                self.mirror(service.name).read()
            except Exception:  # a page shows the problem when it asks; nothing to do here
                log.info("no production data to preload for %s", service.name, exc_info=True)

    def stop(self) -> None:
        """Stop the collector and, in demo mode, the demo service and replayer."""
        self.collector.stop()
        if self.demo is not None:
            self.demo.stop()
        self.store.dispose()


def settings() -> Settings:
    """Read the configuration named by ``--config`` or ``VANTAGE_CONFIG``, if any."""
    path = config_path_from(sys.argv[1:])
    if path is None:
        return Settings(None, None, None)
    try:
        return Settings(path, load_config(path), None)
    except ConfigError as exc:
        return Settings(path, None, exc)


def _release(runtime: Runtime) -> None:
    runtime.stop()


@st.cache_resource(max_entries=1, on_release=_release, show_spinner=False)
def _start_runtime(path: str | None, fingerprint: str) -> Runtime:
    del fingerprint  # part of the cache key only: a changed file starts a new runtime
    demo = None
    if path is None:
        from demo.runtime import start_demo

        demo = start_demo(var_dir(), faults=os.environ.get("VANTAGE_DEMO_FAULTS", "1") != "0")
        config = demo.config
    else:
        config = load_config(path)
    store = Store(config.store.url)
    collector = Collector(config, store).start()
    runtime = Runtime(config=config, store=store, collector=collector, demo=demo, started_at=time.time())
    threading.Thread(target=runtime.preload, daemon=True, name="vantage-preload").start()
    return runtime


def runtime(current: Settings) -> Runtime:
    """Start (once) or return the background runtime for the current settings."""
    message = ("Starting the embedded demo: training its model on first start, then serving it…"
               if current.is_demo else "Connecting to the store and starting the collector…")
    with st.spinner(message):
        return _start_runtime(current.path, current.fingerprint)


def tick(seconds: float) -> int:
    """A number that changes every ``seconds``; pass it to cached functions to refresh them."""
    return int(time.time() // max(seconds, 1.0))


@st.cache_data(ttl=60, max_entries=64, show_spinner=False)
def cached_fleet(_runtime: Runtime, fingerprint: str, tick_value: int) -> list[FleetRow]:
    """Fleet table rows for every configured service."""
    del fingerprint, tick_value
    return fleet_overview(_runtime.store, _runtime.config.services, now=time.time())


@st.cache_data(ttl=60, max_entries=128, show_spinner=False)
def cached_service_health(_runtime: Runtime, fingerprint: str, service: str, slo: SloConfig,
                          tick_value: int) -> ServiceHealth:
    """Status, heartbeat, uptime, incidents and, under the objectives ``slo``, budgets and burn rates."""
    del fingerprint, tick_value
    config = _runtime.config.service(service).model_copy(update={"slo": slo})
    return service_health(_runtime.store, config, now=time.time())


@st.cache_data(ttl=300, max_entries=128, show_spinner=False)
def cached_time_series(_runtime: Runtime, fingerprint: str, service: str, window: str,
                       tick_value: int) -> TimeSeries:
    """Latency percentiles and traffic of one service over ``window``."""
    del fingerprint, tick_value
    return time_series(_runtime.store, _runtime.config.service(service), window=window, now=time.time())


@st.cache_data(ttl=60, max_entries=64, show_spinner=False)
def cached_metadata(_runtime: Runtime, fingerprint: str, service: str, tick_value: int) -> dict:
    """What the service says about its model, or the reason it could not be asked."""
    del fingerprint, tick_value
    poller = _runtime.collector.pollers[service]
    try:
        meta = poller.client.metadata()
    except ServiceError as exc:
        return {"error": str(exc)}
    return {"name": meta.name, "version": meta.version, "platform": meta.platform,
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
