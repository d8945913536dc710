"""Capture for servers that do not log through Vantage: a capturing proxy and KServe's payload logger.

Both end in the prediction log the template service writes (``predictions__<service>`` in the
store), so every data page works for a captured service as for one that logs itself:

- :class:`CaptureProxy` (``python -m monitoring.capture --config my.toml --service NAME
  --upstream URL --listen HOST:PORT``): a reverse proxy in front of any v2, MLflow or REST
  server that forwards everything unchanged and copies the prediction calls;
- :class:`KServeLoggerEndpoint` (``python -m monitoring.collector --config my.toml
  --capture-port N``): takes the CloudEvents KServe's payload logger posts and joins each
  request to its response.

Both hand what they capture to a :class:`CaptureWriter`, which parses it per protocol
(:func:`parse_exchange`) and writes it to the store from its own thread (in the proxy, from a
process of its own: :class:`WriterProcess`), so neither a slow store nor a large body ever
slows the traffic. What could not be kept is counted
(:class:`CaptureStats`, stored for the Service-health page and answered at
``GET /capture/stats``).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from monitoring.capture._kserve import REQUEST_TYPE, RESPONSE_TYPE, KServeLoggerEndpoint
from monitoring.capture._parsing import (
    PROTOCOLS,
    CaptureParseError,
    ParseContext,
    decode_json,
    parse_exchange,
    row_ids,
)
from monitoring.capture._proxy import ID_HEADER, STATS_PATH, CaptureProxy, prediction_path
from monitoring.capture._writer import COUNTERS, CaptureStats, CaptureWriter, Exchange, ServiceCapture, WriterProcess
from monitoring.config import ServiceConfig, VantageConfig
from monitoring.schema import load_schema
from monitoring.store import Store

__all__ = [
    "COUNTERS",
    "ID_HEADER",
    "PROTOCOLS",
    "REQUEST_TYPE",
    "RESPONSE_TYPE",
    "STATS_PATH",
    "CaptureParseError",
    "CaptureProxy",
    "CaptureServer",
    "CaptureSetupError",
    "CaptureStats",
    "CaptureWriter",
    "Exchange",
    "KServeLoggerEndpoint",
    "ParseContext",
    "ServiceCapture",
    "WriterProcess",
    "capture_summary",
    "decode_json",
    "parse_exchange",
    "prediction_path",
    "row_ids",
    "serve_in_thread",
    "service_capture",
    "start_logger_endpoint",
]

log = logging.getLogger(__name__)


class CaptureSetupError(ValueError):
    """A service whose traffic cannot be captured as configured; the message says what is missing."""


def service_capture(service: ServiceConfig, store: Store) -> ServiceCapture:
    """How the traffic of ``service`` is logged: its prediction log's name, features and body keys.

    The features are the service's schema's (``monitoring.schema``: the configured ``features``,
    else the reference's columns but the target and the model's outputs), else those of the
    prediction log the store already has.

    Raises
    ------
    CaptureSetupError
        When neither the store, the configuration nor the reference names the features.
    """
    schema = load_schema(service)  # the one decision of which columns are features, in model order
    features = schema.feature_kinds
    if not features:  # no configuration or reference: the columns of the prediction log the store already has
        try:
            features = store.prediction_features(service.log_name)
        except KeyError:
            features = {}
        except Exception as exc:  # an unreachable store: nothing more to learn the features from
            log.warning("capture: could not read the prediction log of %s (%s)", service.log_name, exc)
            features = {}
    if not features:
        why = "; ".join(schema.problems)
        raise CaptureSetupError(f"service {service.name!r} names no features: set `features` (in model order) or "
                                "`reference` in its [[services]] table, so captured rows have their columns"
                                + (f" ({why})" if why else ""))
    context = ParseContext(
        protocol=service.protocol, features=tuple(features),
        categorical=frozenset(f for f, kind in features.items() if kind == "categorical"),
        records_key=service.rest.records_key, predictions_key=service.rest.predictions_key,
        probabilities_key=service.rest.probabilities_key, model_version=service.model_version)
    return ServiceCapture(service=service.name, log_name=service.log_name, features=dict(features), context=context,
                          personal=tuple(service.personal))


def capture_summary(store: Store, service: str) -> dict | None:
    """What every capture process counted for ``service``, summed: ``{"counts", "problems", "sources", "updated"}``.

    None when nothing captures the service (or the store cannot be read).
    """
    try:
        stored = store.read_capture_stats(service)
    except Exception:
        return None
    if not stored:
        return None
    totals = dict.fromkeys((*COUNTERS, "rows_pending"), 0)
    for stats in stored:
        for name, value in stats.get("counts", {}).items():
            if name in totals and isinstance(value, int):
                totals[name] += value
    problems = [str(s["last_problem"].get(service)) for s in stored
                if isinstance(s.get("last_problem"), dict) and s["last_problem"].get(service)]
    return {"counts": totals, "problems": problems, "sources": [str(s.get("source")) for s in stored],
            "updated": max(float(s.get("updated") or 0.0) for s in stored),
            "store_problems": [str(s.get("store_cause")) for s in stored if s.get("store_state", "ok") != "ok"]}


@dataclass
class CaptureServer:
    """A capture app served by uvicorn in a background thread (see :func:`start_logger_endpoint`)."""

    url: str
    app: object
    server: object
    thread: threading.Thread

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving; the writer writes what it holds first."""
        self.server.should_exit = True
        self.thread.join(timeout)


def serve_in_thread(app, host: str, port: int, *, name: str, startup_timeout: float = 15.0) -> CaptureServer:
    """Serve the ASGI ``app`` on ``host:port`` with uvicorn in a daemon thread; return once it listens."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True, name=name)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise OSError(f"the capture endpoint could not listen on {host}:{port} (see the log above)")
        time.sleep(0.05)
    return CaptureServer(url=f"http://{host}:{port}", app=app, server=server, thread=thread)


def start_logger_endpoint(config: VantageConfig, store: Store, *, host: str = "127.0.0.1", port: int,
                          clock) -> CaptureServer:
    """Start the KServe payload-logger endpoint for every capturable service of ``config``.

    A service whose features cannot be found is left out, with a warning naming what to set.
    """
    services, aliases = {}, {}
    for service in config.services:
        try:
            services[service.name] = service_capture(service, store)
        except CaptureSetupError as exc:
            log.warning("KServe logger endpoint: %s; its events are refused", exc)
            continue
        if service.model and service.model not in aliases:
            aliases[service.model] = service.name
    writer = CaptureWriter(store, services, source=f"kserve-logger {host}:{port}", clock=clock)
    app = KServeLoggerEndpoint(services, writer, clock=clock, aliases=aliases)
    server = serve_in_thread(app, host, port, name="vantage-kserve-logger")
    log.info("KServe payload-logger endpoint on %s for %s", server.url, ", ".join(services) or "no service")
    return server
