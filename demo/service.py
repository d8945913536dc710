"""The reference prediction service: a FastAPI app, and a template for your own.

It serves one scikit-learn model over two protocols at once and exposes what Vantage reads:

=====================================  ===================================================
``GET /health``, ``GET /ready``        plain REST liveness and readiness (2xx = yes)
``POST /predict``                      plain REST: ``{"instances": [{feature: value}]}`` in,
                                       ``{"predictions", "probabilities", "ids",
                                       "model_version"}`` out
``POST /labels``                       ground truth: ``{"labels": [{"prediction_id",
                                       "label", "ts"?}]}`` in (``ts`` = arrival time,
                                       default now), ``{"received", "written",
                                       "rejected", "problems"}`` out
``GET /v2/health/live|ready``          Open Inference Protocol v2 health
``GET /v2``, ``GET /v2/models/{m}``    v2 server and model metadata
``GET /v2/models/{m}/ready``           v2 model readiness
``POST /v2/models/{m}/infer``          v2 inference: one input per feature column (or one
                                       tensor in feature order); outputs ``predict`` and
                                       ``predict_proba``
``GET /metrics``                       Prometheus: ``http_requests_total{method,path,status}``
                                       and ``http_request_duration_seconds{method,path}``
=====================================  ===================================================

Every prediction is appended to Vantage's prediction log (the store) by a background writer,
so a slow database never slows an answer and nothing is lost at shutdown (the writer drains
its queue when the app stops). Calls that carry the ``X-Vantage-Probe`` header (the
collector's canaries) are answered but not logged.

To serve your own model with it: load your estimator instead of the demo's in
:func:`create_app`'s caller (``ServedModel(pipeline, version, features)``), keep the routes,
and point Vantage at it with ``protocol = "v2"`` (or ``"rest"``) and ``metrics.url``.

Demo-only extras: a request may carry ``parameters.vantage_ids`` and
``parameters.vantage_timestamps`` (v2) or ``ids`` / ``timestamps`` (REST) so the traffic
replayer can back-fill history; and a :class:`FaultSchedule` that makes the service briefly
not ready or slow, so the health page has something to show.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from monitoring.labels import label_records
from monitoring.store import Store

log = logging.getLogger(__name__)

PROBE_HEADER = "x-vantage-probe"
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class ServedModel:
    """The model behind the service.

    Parameters
    ----------
    estimator : object
        Anything with ``predict_proba(DataFrame)`` (a scikit-learn Pipeline, say).
    version : str
        Version reported in metadata and logged with every prediction.
    features : dict of str to {"numeric", "categorical"}
        Input columns in the order the estimator expects.
    name : str, default="credit-risk"
        Model name in v2 paths.
    """

    estimator: Any
    version: str
    features: dict[str, str]
    name: str = "credit-risk"

    def predict(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Return predicted classes and class probabilities for ``X``."""
        proba = np.asarray(self.estimator.predict_proba(X), dtype=float)
        return proba.argmax(axis=1), proba


@dataclass
class FaultSchedule:
    """Scripted, repeating faults for the demo (all times in seconds).

    Every ``period`` seconds the service reports not ready for ``not_ready_for`` seconds
    (as during a model reload); every ``slow_period`` seconds predictions take
    ``slow_ms`` longer for ``slow_for`` seconds.
    """

    period: float = 900.0
    not_ready_for: float = 30.0
    slow_period: float = 600.0
    slow_for: float = 45.0
    slow_ms: float = 650.0
    offset: float = field(default_factory=lambda: time.time() - 435.0)  # first slow spell 2 min after start

    def not_ready(self, now: float) -> bool:
        """Whether the service pretends to be reloading its model at ``now``."""
        return (now - self.offset) % self.period >= self.period - self.not_ready_for

    def extra_latency_s(self, now: float) -> float:
        """Added prediction latency at ``now``."""
        in_slow = (now - self.offset) % self.slow_period >= self.slow_period - self.slow_for
        return self.slow_ms / 1000.0 if in_slow else 0.0


class PredictionLogger:
    """Writes predictions to the store from a background thread, in batches.

    Parameters
    ----------
    store : Store
        Destination.
    service : str
        Service name the predictions are logged under.
    features : dict
        Feature columns (creates the log table on first use).
    flush_every : float, default=0.5
        Seconds between writes.
    """

    def __init__(self, store: Store, service: str, features: dict[str, str], *, flush_every: float = 0.5):
        self.store = store
        self.service = service
        self.flush_every = flush_every
        store.prediction_table(service, features)
        self._queue: queue.Queue[pd.DataFrame] = queue.Queue()
        self._writing = threading.Lock()  # flush() must not return while the thread is mid-write
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="vantage-prediction-log")
        self._thread.start()

    def submit(self, frame: pd.DataFrame) -> None:
        """Queue rows (``id, ts, model_version, prediction, score`` and features) for writing."""
        self._queue.put(frame)

    def _drain(self) -> None:
        with self._writing:
            self._write_queued()

    def _write_queued(self) -> None:
        frames = []
        with contextlib.suppress(queue.Empty):
            while True:
                frames.append(self._queue.get_nowait())
        if not frames:
            return
        batch = pd.concat(frames, ignore_index=True)
        for attempt in range(5):
            try:
                self.store.log_predictions(self.service, batch)
                return
            except Exception:
                log.exception("prediction log write failed (attempt %d)", attempt + 1)
                time.sleep(0.5 * (attempt + 1))
        log.error("dropping %d predictions after 5 failed writes", len(batch))

    def _run(self) -> None:
        while not self._stop.wait(self.flush_every):
            self._drain()
        self._drain()

    def flush(self) -> None:
        """Write everything queued so far, now."""
        self._drain()

    def close(self) -> None:
        """Stop the thread after writing everything queued."""
        self._stop.set()
        self._thread.join(timeout=30)


def _frame_from_records(records: Any, features: dict[str, str]) -> pd.DataFrame:
    if not isinstance(records, list) or not records:
        raise HTTPException(400, "'instances' must be a non-empty list of objects, one per row")
    if not all(isinstance(r, dict) for r in records):
        raise HTTPException(400, "every item of 'instances' must be an object {feature: value}")
    frame = pd.DataFrame.from_records(records)
    return _conform(frame, features)


def _conform(frame: pd.DataFrame, features: dict[str, str]) -> pd.DataFrame:
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise HTTPException(400, f"missing features {missing}; expected {list(features)}")
    frame = frame[list(features)].copy()
    for name, kind in features.items():
        if kind == "numeric":
            converted = pd.to_numeric(frame[name], errors="coerce")
            bad = frame[name].notna() & converted.isna()
            if bad.any():
                raise HTTPException(400, f"feature {name!r} must be numeric; got {frame[name][bad].iloc[0]!r}")
            frame[name] = converted.astype(float)
        else:
            frame[name] = frame[name].astype(object).where(frame[name].notna(), None)
    return frame


def _frame_from_v2(inputs: Any, features: dict[str, str]) -> pd.DataFrame:
    if not isinstance(inputs, list) or not inputs:
        raise HTTPException(400, "'inputs' must be a non-empty list of tensors")
    try:
        if len(inputs) == 1 and len(inputs[0].get("shape", [])) == 2:
            tensor = inputs[0]
            n_rows, n_columns = tensor["shape"]
            if n_columns != len(features):
                raise HTTPException(400, f"tensor has {n_columns} columns; the model takes {len(features)}: "
                                         f"{list(features)}")
            data = np.asarray(tensor["data"], dtype=object).reshape(n_rows, n_columns)
            frame = pd.DataFrame(data, columns=list(features))
        else:
            columns = {}
            for tensor in inputs:
                data = tensor["data"]
                if len(data) != int(np.prod(tensor["shape"])):
                    raise HTTPException(400, f"input {tensor['name']!r}: {len(data)} values do not fill "
                                             f"shape {tensor['shape']}")
                columns[tensor["name"]] = data
            lengths = {len(v) for v in columns.values()}
            if len(lengths) != 1:
                raise HTTPException(400, "all inputs must have the same number of rows")
            frame = pd.DataFrame(columns)
    except (KeyError, TypeError, ValueError) as exc:
        raise HTTPException(400, f"malformed v2 inputs: {exc}") from None
    return _conform(frame, features)


def create_app(model: ServedModel, *, store: Store | None = None, service_name: str = "credit-risk",
               faults: FaultSchedule | None = None) -> FastAPI:
    """Build the prediction service.

    Parameters
    ----------
    model : ServedModel
        The model to serve.
    store : Store, optional
        Where predictions are logged; nothing is logged when omitted.
    service_name : str, default="credit-risk"
        Service name in the prediction log (the name Vantage's config gives the service).
    faults : FaultSchedule, optional
        Scripted faults (demo only).

    Returns
    -------
    FastAPI
    """
    registry = CollectorRegistry()
    requests_total = Counter("http_requests", "HTTP requests handled", ["method", "path", "status"],
                             registry=registry)
    duration = Histogram("http_request_duration_seconds", "Time to answer HTTP requests", ["method", "path"],
                         buckets=LATENCY_BUCKETS_S, registry=registry)
    prediction_logger: PredictionLogger | None = None

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> Iterator[None]:
        nonlocal prediction_logger
        if store is not None:
            prediction_logger = PredictionLogger(store, service_name, model.features)
        app.state.prediction_logger = prediction_logger
        yield
        if prediction_logger is not None:
            prediction_logger.close()

    app = FastAPI(title="Vantage reference prediction service", version=model.version, lifespan=lifespan)

    @app.middleware("http")
    async def record_metrics(request: Request, call_next):
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = request.scope.get("route")
            path = getattr(route, "path", "unmatched")
            if path != "/metrics":
                requests_total.labels(request.method, path, str(status)).inc()
                duration.labels(request.method, path).observe(time.perf_counter() - started)

    def is_ready() -> bool:
        return faults is None or not faults.not_ready(time.time())

    def not_ready_response() -> JSONResponse:
        return JSONResponse({"error": "model is reloading (scripted demo fault)"}, status_code=503)

    async def predict_and_log(frame: pd.DataFrame, request: Request, ids: Any, timestamps: Any
                              ) -> tuple[np.ndarray, np.ndarray, list[str]]:
        if faults is not None and timestamps is None:
            await asyncio.sleep(faults.extra_latency_s(time.time()))
        labels, proba = model.predict(frame)
        n_rows = len(frame)
        if ids is not None and (not isinstance(ids, list) or len(ids) != n_rows):
            raise HTTPException(400, f"ids must be a list of {n_rows} strings")
        if timestamps is not None and (not isinstance(timestamps, list) or len(timestamps) != n_rows):
            raise HTTPException(400, f"timestamps must be a list of {n_rows} Unix times")
        row_ids = [str(i) for i in ids] if ids is not None else [uuid.uuid4().hex for _ in range(n_rows)]
        if prediction_logger is not None and PROBE_HEADER not in request.headers:
            logged = frame.copy()
            logged.insert(0, "id", row_ids)
            logged.insert(1, "ts", [float(t) for t in timestamps] if timestamps is not None else time.time())
            logged["model_version"] = model.version
            logged["prediction"] = labels.astype(float)
            logged["score"] = proba[:, 1] if proba.shape[1] == 2 else np.nan
            prediction_logger.submit(logged)
        return labels, proba, row_ids

    # -- plain REST --------------------------------------------------------------------------

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.get("/ready")
    def ready():
        return {"status": "ready"} if is_ready() else not_ready_response()

    @app.get("/model")
    def model_metadata() -> dict:
        return {"name": model.name, "version": model.version, "platform": "sklearn",
                "inputs": [{"name": n, "kind": k} for n, k in model.features.items()]}

    @app.post("/predict")
    async def predict(request: Request) -> dict:
        body = await _json_body(request)
        frame = _frame_from_records(body.get("instances"), model.features)
        labels, proba, ids = await predict_and_log(frame, request, body.get("ids"), body.get("timestamps"))
        return {"predictions": labels.tolist(), "probabilities": proba.tolist(), "ids": ids,
                "model_version": model.version}

    # -- ground truth ------------------------------------------------------------------------

    @app.post("/labels")
    async def post_labels(request: Request) -> dict:
        """Store ground-truth labels: ``{"labels": [{"prediction_id", "label", "ts"?}]}``; answer the counts."""
        if store is None:
            raise HTTPException(503, "this service has no store to write labels to (create_app(store=...))")
        body = await _json_body(request)
        if "labels" not in body:
            raise HTTPException(400, 'the body must be {"labels": [{"prediction_id": "...", "label": 1}, ...]}; '
                                     f"got keys {sorted(body)}")
        try:
            checked = label_records(body["labels"])
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        written = store.write_labels(service_name, checked.frame) if len(checked.frame) else 0
        return {"received": len(body["labels"]), "written": written, "rejected": len(checked.rejected),
                "problems": checked.rejected[:100]}

    # -- Open Inference Protocol v2 ----------------------------------------------------------

    @app.get("/v2")
    def v2_server() -> dict:
        return {"name": "vantage-demo", "version": "1.0", "extensions": []}

    @app.get("/v2/health/live")
    def v2_live() -> dict:
        return {"live": True}

    @app.get("/v2/health/ready")
    def v2_ready():
        return {"ready": True} if is_ready() else not_ready_response()

    def check_model_name(model_name: str) -> None:
        if model_name != model.name:
            raise HTTPException(404, f"model {model_name!r} not found; this server has {model.name!r}")

    @app.get("/v2/models/{model_name}")
    def v2_model(model_name: str) -> dict:
        check_model_name(model_name)
        return {
            "name": model.name, "versions": [model.version], "platform": "sklearn",
            "inputs": [{"name": n, "datatype": "FP64" if k == "numeric" else "BYTES", "shape": [-1]}
                       for n, k in model.features.items()],
            "outputs": [{"name": "predict", "datatype": "INT64", "shape": [-1]},
                        {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 2]}],
        }

    @app.get("/v2/models/{model_name}/ready")
    def v2_model_ready(model_name: str):
        check_model_name(model_name)
        return {"name": model.name, "ready": True} if is_ready() else not_ready_response()

    @app.post("/v2/models/{model_name}/infer")
    async def v2_infer(model_name: str, request: Request) -> dict:
        check_model_name(model_name)
        body = await _json_body(request)
        frame = _frame_from_v2(body.get("inputs"), model.features)
        parameters = body.get("parameters") or {}
        wanted = [o.get("name") for o in body.get("outputs") or []] or ["predict", "predict_proba"]
        unknown = [w for w in wanted if w not in ("predict", "predict_proba")]
        if unknown:
            raise HTTPException(400, f"unknown outputs {unknown}; available: predict, predict_proba")
        labels, proba, ids = await predict_and_log(frame, request, parameters.get("vantage_ids"),
                                                   parameters.get("vantage_timestamps"))
        outputs = []
        if "predict" in wanted:
            outputs.append({"name": "predict", "datatype": "INT64", "shape": [len(labels)],
                            "data": labels.tolist()})
        if "predict_proba" in wanted:
            outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": list(proba.shape),
                            "data": proba.ravel().tolist()})
        return {"model_name": model.name, "model_version": model.version, "id": body.get("id", ""),
                "parameters": {"prediction_ids": ids}, "outputs": outputs}

    # -- metrics -----------------------------------------------------------------------------

    @app.get("/metrics")
    def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


async def _json_body(request: Request) -> dict:
    try:
        body = await request.json()
    except ValueError:
        raise HTTPException(400, "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise HTTPException(400, "the request body must be a JSON object")
    return body
