"""The Service health and Services pages' caches: fleet rows, one service's health and traffic, its metadata."""

from __future__ import annotations

from dashboard.state.caching import cache_data
from dashboard.state.lifecycle import Runtime
from monitoring.clients import ServiceError
from monitoring.config import SloConfig
from monitoring.service_health import FleetRow, ServiceHealth, TimeSeries, fleet_overview, service_health, time_series


@cache_data(ttl=60, max_entries=64)
def cached_fleet(runtime: Runtime, *, tick: int) -> list[FleetRow]:
    """Fleet table rows for every configured service (``monitoring.service_health.fleet_overview``)."""
    del tick
    return fleet_overview(runtime.store, runtime.config.services, now=runtime.now())


@cache_data(ttl=60, max_entries=128)
def cached_service_health(runtime: Runtime, *, service: str, slo: SloConfig, tick: int) -> ServiceHealth:
    """Status, heartbeat, uptime, incidents and, under the objectives ``slo``, budgets and burn rates."""
    del tick
    config = runtime.config.service(service).model_copy(update={"slo": slo})
    return service_health(runtime.store, config, now=runtime.now())


@cache_data(ttl=300, max_entries=128)
def cached_time_series(runtime: Runtime, *, service: str, window: str, tick: int) -> TimeSeries:
    """Latency percentiles and traffic of one service over ``window``."""
    del tick
    return time_series(runtime.store, runtime.config.service(service), window=window, now=runtime.now())


@cache_data(ttl=60, max_entries=64)
def cached_metadata(runtime: Runtime, *, service: str, tick: int) -> dict:
    """What the service says about its model (name, version, platform, inputs, server), or ``{"error": reason}``."""
    del tick
    poller = runtime.collector.pollers[service]
    try:
        meta = poller.client.metadata()
    except ServiceError as exc:
        return {"error": runtime.redact(str(exc))}
    return {"name": meta.name, "version": meta.version or poller.model_version, "platform": meta.platform,
            "inputs": len(meta.inputs), "server": meta.server}
