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

Malformed requests are answered 400 with a message that names the field, what it accepts and
what came (never 500): bodies are validated by pydantic models (:class:`PredictRequest`,
:class:`InferRequest`, :class:`LabelsRequest`), NaN and Infinity are not JSON, feature values
are finite numbers, text, true/false or null, ids are 1-64 printable ASCII characters and
timestamps plausible Unix times; rows the model still cannot take are 422. A request larger than
its :class:`RequestLimits` (body size, rows, labels) is 413. Bodies are parsed, checked,
predicted and written in worker threads, an item at a time, so ``/health`` keeps answering while
a million labels are stored.

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
import gc
import json
import logging
import math
import queue
import re
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any

import numpy as np
import pandas as pd
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field, PlainValidator, Strict, ValidationError
from starlette.concurrency import run_in_threadpool

from monitoring.clients import PROBE_HEADER as CLIENT_PROBE_HEADER
from monitoring.labels import ID_PATTERN, MAX_ID_LENGTH, label_records
from monitoring.store import Store

log = logging.getLogger(__name__)

PROBE_HEADER = CLIENT_PROBE_HEADER.lower()  # request headers are read lower-case
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


# -- request limits and bodies -----------------------------------------------------------------

DAY_2000 = 946_684_800.0
"""2000-01-01T00:00:00Z: the earliest timestamp the service takes by default."""
DAY_2100 = 4_102_444_800.0
"""2100-01-01T00:00:00Z: timestamps from here on are not plausible."""
LABEL_BATCH = 5_000
"""Labels checked and written per step, so one request never holds the interpreter for long."""
LARGE_BODY_BYTES = 1024 * 1024
"""Bodies from this size on are handled with the cyclic garbage collector paused (see :func:`_gc_paused`)."""

_GC_LOCK = threading.Lock()
_GC_PAUSES = [0, False]  # requests pausing the collector now; whether it was enabled before the first


@contextlib.contextmanager
def _gc_paused(size: int) -> Iterator[None]:
    """Pause the cyclic garbage collector while a large body is handled (``size`` bytes or more).

    A full collection walks every object a million parsed labels hold, ~40 ms with the
    interpreter held, during which ``/health`` cannot answer. Reference counting still frees
    everything a request drops; the collector runs again when the last large body is done.
    """
    if size < LARGE_BODY_BYTES:
        yield
        return
    with _GC_LOCK:
        if _GC_PAUSES[0] == 0:
            _GC_PAUSES[1] = gc.isenabled()
            gc.disable()
        _GC_PAUSES[0] += 1
    try:
        yield
    finally:
        with _GC_LOCK:
            _GC_PAUSES[0] -= 1
            if _GC_PAUSES[0] == 0 and _GC_PAUSES[1]:
                gc.enable()


@dataclass(frozen=True)
class RequestLimits:
    """What one request may carry; more is answered 413 with a message.

    Parameters
    ----------
    max_body_mb : float, default=128
        Largest request body (MB of 1,048,576 bytes); enough for 1,000,000 labels.
    max_rows : int, default=100,000
        Rows per prediction request (``/predict`` and v2 ``infer``).
    max_labels : int, default=1,000,000
        Labels per ``POST /labels``.
    min_timestamp, max_timestamp : float, default=2000-01-01 and 2100-01-01
        Range of the Unix times a replayer may send with predictions (``timestamps``,
        ``parameters.vantage_timestamps``); set ``min_timestamp=0`` to take the epoch.
    """

    max_body_mb: float = 128.0
    max_rows: int = 100_000
    max_labels: int = 1_000_000
    min_timestamp: float = DAY_2000
    max_timestamp: float = DAY_2100

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)


def _cell(value: Any) -> Any:
    """One feature value: a finite number, text (at most 10,000 characters), true/false or null."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        if len(value) > 10_000:
            raise ValueError(f"text of at most 10,000 characters; got {len(value):,}")
        return value
    if isinstance(value, int):
        if abs(value) > 2**63:
            raise ValueError("a number between -2**63 and 2**63")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"must be a finite number (send null for a missing value); got {value}")
        return value
    raise ValueError(f"must be a number, text, true/false or null; got {_json_kind(value)}")


def _data(value: Any) -> list:
    """A v2 tensor's data: a flat list of feature values, or a list of rows (flattened, row-major)."""
    if not isinstance(value, list):
        raise ValueError(f"must be a list of values; got {_json_kind(value)}")
    if value and all(isinstance(v, list) for v in value):
        value = [cell for row in value for cell in row]
    for i, cell in enumerate(value):
        try:
            _cell(cell)
        except ValueError as exc:
            raise ValueError(f"value {i}: {exc}") from None
    return value


def _prediction_id(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**MAX_ID_LENGTH:
        value = str(value)
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        shown = f"{len(value):,} characters" if isinstance(value, str) and len(value) > 70 else (
            repr(value) if isinstance(value, str) else _json_kind(value))
        raise ValueError(f"must be 1 to {MAX_ID_LENGTH} printable ASCII characters without spaces; got {shown}")
    return value


def _json_kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "text", bool: "true/false", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, int | float) else type(value).__name__)


def _a_list(value: Any) -> list:
    if not isinstance(value, list):
        raise ValueError(f"must be a list of objects such as {{\"prediction_id\": \"abc\", \"label\": 1}}; "
                         f"got {type(value).__name__}")
    return value


Cell = Annotated[Any, PlainValidator(_cell)]
PredictionId = Annotated[Any, PlainValidator(_prediction_id)]
Timestamp = Annotated[float, Strict(), Field(allow_inf_nan=False)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class PredictRequest(_Body):
    """``POST /predict``: records in feature order, optionally with the replayer's ids and times."""

    instances: list[dict[str, Cell]] = Field(min_length=1)
    ids: list[PredictionId] | None = None
    timestamps: list[Timestamp] | None = None


class V2Tensor(_Body):
    """One v2 input: a column (``shape [rows]``) or the whole table (``shape [rows, columns]``)."""

    name: str = Field(min_length=1, max_length=256)
    shape: list[Annotated[int, Strict(), Field(ge=0, le=2**31)]] = Field(min_length=1, max_length=2)
    datatype: str = Field("BYTES", max_length=16)
    data: Annotated[list, PlainValidator(_data)]


class V2RequestedOutput(_Body):
    name: str = Field(max_length=256)


class V2Parameters(_Body):
    """Request parameters the service reads; others (``content_type`` ...) are ignored."""

    vantage_ids: list[PredictionId] | None = None
    vantage_timestamps: list[Timestamp] | None = None


class InferRequest(_Body):
    """``POST /v2/models/{m}/infer`` as the Open Inference Protocol defines it."""

    id: str | None = Field(None, max_length=256)
    inputs: list[V2Tensor] = Field(min_length=1)
    outputs: list[V2RequestedOutput] | None = None
    parameters: V2Parameters | None = None


class LabelsRequest(_Body):
    """``POST /labels``: the labels; each one is checked on its own by :func:`monitoring.labels.label_records`."""

    labels: Annotated[list, PlainValidator(_a_list)]


_FRIENDLY = {
    "missing": "required",
    "list_type": "must be a list",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "string_type": "must be text",
    "int_type": "must be a whole number",
    "float_type": "must be a number",
    "finite_number": "must be a finite number",
}
_TOP_LEVEL_HINTS = {
    "instances": "'instances' must be a non-empty list of objects, one per row",
    "inputs": "'inputs' must be a non-empty list of tensors {name, shape, datatype, data}",
}


def _location(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _validation_message(exc: ValidationError, *, shown: int = 5) -> str:
    """The first problems of a request body, each naming where it is, what is accepted and what came."""
    lines = []
    for error in exc.errors(include_url=False):  # inputs are only named by their kind, never shown
        loc = error["loc"]
        if len(loc) <= 1 and loc and loc[0] in _TOP_LEVEL_HINTS and error["type"] in (
                "missing", "list_type", "too_short"):
            line = _TOP_LEVEL_HINTS[loc[0]]
        elif loc and loc[0] == "instances" and len(loc) == 2 and error["type"] == "dict_type":
            line = "every item of 'instances' must be an object {feature: value}"
        else:
            message = _FRIENDLY.get(error["type"], error["msg"].removeprefix("Value error, "))
            if error["type"] in _FRIENDLY and error["type"] != "missing":
                message += f"; got {_json_kind(error.get('input'))}"
            line = f"{_location(loc)}: {message}" if loc else message
        if line not in lines:
            lines.append(line)
    more = len(lines) - shown
    return "; ".join(lines[:shown]) + (f"; and {more} more" if more > 0 else "")


def _validate(model: type[_Body], raw: Any) -> Any:
    if not isinstance(raw, dict):
        raise HTTPException(400, "the request body must be a JSON object")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise HTTPException(400, _validation_message(exc)) from None


def _check_replay_fields(ids: list | None, timestamps: list | None, n_rows: int, limits: RequestLimits, *,
                         names: tuple[str, str]) -> None:
    if ids is not None and len(ids) != n_rows:
        raise HTTPException(400, f"{names[0]} must be a list of {n_rows} ids, one per row; got {len(ids)}")
    if timestamps is None:
        return
    if len(timestamps) != n_rows:
        raise HTTPException(400, f"{names[1]} must be a list of {n_rows} Unix times, one per row; "
                                 f"got {len(timestamps)}")
    for i, ts in enumerate(timestamps):
        if not limits.min_timestamp <= ts < limits.max_timestamp:
            raise HTTPException(400, f"{names[1]}[{i}]: must be a Unix time from {limits.min_timestamp:.0f} to "
                                     f"{limits.max_timestamp:.0f} (2000-01-01 to 2100-01-01 by default); got {ts:g}")


def _too_many(what: str, count: int, limit: int) -> HTTPException:
    return HTTPException(413, f"at most {limit:,} {what} per request; got {count:,}: send them in several requests")


async def _read_body(request: Request, limits: RequestLimits) -> list[bytes]:
    """The request body, refused with 413 as soon as it is known to be larger than ``limits.max_body_mb``."""
    limit = limits.max_body_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"the request body has {int(declared):,} bytes; at most {limit:,} "
                                 f"({limits.max_body_mb:g} MB) are taken")
    chunks, size = [], 0
    async for chunk in request.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"the request body is larger than {limit:,} bytes ({limits.max_body_mb:g} MB)")
    return chunks  # joined by the worker thread: copying a large body would hold the event loop


# -- JSON, parsed a piece at a time ------------------------------------------------------------

_WHITESPACE = re.compile(r"[ \t\n\r]*")


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON; send null for a missing value")


_DECODER = json.JSONDecoder(parse_constant=_no_constant)


class _TooManyItemsError(Exception):
    pass


def _parse_value(text: str, i: int, depth: int, budget: list[int]) -> tuple[Any, int]:
    """Parse the JSON value at ``i``: containers down to ``depth`` item by item, anything deeper at once.

    Each item is one call of the C decoder, so a thread parsing a large body lets the event loop
    run between items instead of holding the interpreter for the whole body.
    """
    i = _WHITESPACE.match(text, i).end()
    if depth <= 0 or i >= len(text) or text[i] not in "[{":
        return _DECODER.raw_decode(text, i)
    opening = text[i]
    closing = "]" if opening == "[" else "}"
    container: Any = [] if opening == "[" else {}
    i = _WHITESPACE.match(text, i + 1).end()
    if i < len(text) and text[i] == closing:
        return container, i + 1
    while i < len(text):  # every round consumes at least one character
        if opening == "{":
            if text[i] != '"':
                raise json.JSONDecodeError("Expecting property name enclosed in double quotes", text, i)
            key, i = _DECODER.raw_decode(text, i)
            i = _WHITESPACE.match(text, i).end()
            if i >= len(text) or text[i] != ":":
                raise json.JSONDecodeError("Expecting ':' delimiter", text, i)
            container[key], i = _parse_value(text, i + 1, depth - 1, budget)
        else:
            value, i = _parse_value(text, i, depth - 1, budget)
            container.append(value)
        budget[0] -= 1
        if budget[0] < 0:
            raise _TooManyItemsError
        i = _WHITESPACE.match(text, i).end()
        if i < len(text) and text[i] == ",":
            i = _WHITESPACE.match(text, i + 1).end()
        elif i < len(text) and text[i] == closing:
            return container, i + 1
        else:
            break
    raise json.JSONDecodeError(f"Expecting ',' or '{closing}'", text, min(i, len(text)))


def loads_request(body: bytes | list[bytes], *, depth: int, max_items: int, what: str = "values") -> Any:
    """Decode a request body, refusing NaN/Infinity, bodies nested too deeply and more than ``max_items`` items.

    Raises
    ------
    HTTPException
        400 for text that is not JSON, 413 for too many items.
    """
    try:
        text = (body if isinstance(body, bytes) else b"".join(body)).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HTTPException(400, f"the request body is not UTF-8 text: {exc}") from None
    budget = [max_items]
    try:
        value, end = _parse_value(text, 0, depth, budget)
        if _WHITESPACE.match(text, end).end() != len(text):
            raise json.JSONDecodeError("Extra data", text, end)
    except _TooManyItemsError:
        raise HTTPException(413, f"the request holds more than {max_items:,} {what}; "
                                 "send them in several requests") from None
    except RecursionError:
        raise HTTPException(400, "the request body is nested too deeply to be read (JSON nested about "
                                 f"{sys.getrecursionlimit():,} levels)") from None
    except ValueError as exc:  # JSONDecodeError, NaN/Infinity, integers of more than 4,300 digits
        raise HTTPException(400, f"the request body is not valid JSON: {exc}") from None
    return value


def _frame_from_records(records: list[dict], features: dict[str, str]) -> pd.DataFrame:
    missing = [f for f in features if not any(f in r for r in records)]
    if missing:
        raise HTTPException(400, f"missing features {missing}; expected {list(features)}")
    frame = pd.DataFrame({f: [r.get(f) for r in records] for f in features})  # other keys are not read
    return _conform(frame, features)


def _conform(frame: pd.DataFrame, features: dict[str, str]) -> pd.DataFrame:
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise HTTPException(400, f"missing features {missing}; expected {list(features)}")
    frame = frame[list(features)].copy()
    for name, kind in features.items():
        if kind == "numeric":
            values = frame[name].astype(object)
            converted = pd.to_numeric(values, errors="coerce")  # numbers, numeric text, true/false as 1/0
            bad = (values.notna() & converted.isna()).to_numpy()
            if bad.any():
                raise HTTPException(400, f"feature {name!r} must be numeric; got {values[bad].iloc[0]!r}")
            infinite = ~np.isfinite(converted.to_numpy(dtype=float)) & converted.notna().to_numpy()
            if infinite.any():
                raise HTTPException(400, f"feature {name!r} must be a finite number; got {values[infinite].iloc[0]!r}")
            frame[name] = converted.astype(float)
        else:
            frame[name] = frame[name].astype(object).where(frame[name].notna(), None)
    return frame


def _frame_from_v2(inputs: list[V2Tensor], features: dict[str, str], limits: RequestLimits) -> pd.DataFrame:
    if len(inputs) == 1 and len(inputs[0].shape) == 2:
        tensor = inputs[0]
        n_rows, n_columns = tensor.shape
        if n_rows > limits.max_rows:
            raise _too_many("rows", n_rows, limits.max_rows)
        if n_columns != len(features):
            raise HTTPException(400, f"tensor has {n_columns} columns; the model takes {len(features)}: "
                                     f"{list(features)}")
        if len(tensor.data) != n_rows * n_columns:
            raise HTTPException(400, f"input {tensor.name!r}: {len(tensor.data)} values do not fill shape "
                                     f"{tensor.shape}")
        data = np.asarray(tensor.data, dtype=object).reshape(n_rows, n_columns)
        return _conform(pd.DataFrame(data, columns=list(features)), features)
    columns = {}
    for tensor in inputs:
        if tensor.name not in features:
            continue  # an input the model does not take
        if tensor.name in columns:
            raise HTTPException(400, f"input {tensor.name!r} is given twice")
        if len(tensor.data) != math.prod(tensor.shape) or (len(tensor.shape) == 2 and tensor.shape[1] != 1):
            raise HTTPException(400, f"input {tensor.name!r}: {len(tensor.data)} values do not fill shape "
                                     f"{tensor.shape} (one column per input: shape [rows] or [rows, 1])")
        columns[tensor.name] = tensor.data
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise HTTPException(400, "all inputs must have the same number of rows")
    if lengths and max(lengths) > limits.max_rows:
        raise _too_many("rows", max(lengths), limits.max_rows)
    return _conform(pd.DataFrame(columns), features)


def create_app(model: ServedModel, *, store: Store | None = None, service_name: str = "credit-risk",
               faults: FaultSchedule | None = None, limits: RequestLimits | None = None) -> FastAPI:
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
    limits : RequestLimits, optional
        Largest body, rows and labels per request and the accepted timestamps; the defaults
        of :class:`RequestLimits` when omitted.

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
    limits = limits or RequestLimits()
    n_features = len(model.features)

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

    def predict_rows(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        try:
            return model.predict(frame)
        except (ValueError, TypeError) as exc:  # values of the right types the model still cannot take
            raise HTTPException(422, f"the model cannot predict these rows: {exc}") from None

    async def predict_and_log(frame: pd.DataFrame, request: Request, ids: list[str] | None,
                              timestamps: list[float] | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
        if faults is not None and timestamps is None:
            await asyncio.sleep(faults.extra_latency_s(time.time()))
        labels, proba = await run_in_threadpool(predict_rows, frame)
        n_rows = len(frame)
        row_ids = list(ids) if ids is not None else [uuid.uuid4().hex for _ in range(n_rows)]
        if prediction_logger is not None and PROBE_HEADER not in request.headers:
            logged = frame.copy()
            logged.insert(0, "id", row_ids)
            logged.insert(1, "ts", list(timestamps) if timestamps is not None else time.time())
            logged["model_version"] = model.version
            logged["prediction"] = labels.astype(float)
            logged["score"] = proba[:, 1] if proba.shape[1] == 2 else np.nan
            prediction_logger.submit(logged)
        return labels, proba, row_ids

    def read_predict_request(body: list[bytes]) -> tuple[pd.DataFrame, list[str] | None, list[float] | None]:
        raw = loads_request(body, depth=2, max_items=3 * limits.max_rows + 64, what="rows and values")
        instances = raw.get("instances") if isinstance(raw, dict) else None
        if isinstance(instances, list) and len(instances) > limits.max_rows:
            raise _too_many("rows", len(instances), limits.max_rows)
        checked: PredictRequest = _validate(PredictRequest, raw)
        frame = _frame_from_records(checked.instances, model.features)
        _check_replay_fields(checked.ids, checked.timestamps, len(frame), limits, names=("ids", "timestamps"))
        return frame, checked.ids, checked.timestamps

    def read_infer_request(body: list[bytes]) -> tuple[InferRequest, pd.DataFrame, list[str]]:
        raw = loads_request(body, depth=3, max_items=limits.max_rows * (n_features + 3) + 1024,
                            what="rows and values")
        checked: InferRequest = _validate(InferRequest, raw)
        frame = _frame_from_v2(checked.inputs, model.features, limits)
        wanted = [o.name for o in checked.outputs or []] or ["predict", "predict_proba"]
        unknown = [w for w in wanted if w not in ("predict", "predict_proba")]
        if unknown:
            raise HTTPException(400, f"unknown outputs {unknown}; available: predict, predict_proba")
        parameters = checked.parameters or V2Parameters()
        _check_replay_fields(parameters.vantage_ids, parameters.vantage_timestamps, len(frame), limits,
                             names=("parameters.vantage_ids", "parameters.vantage_timestamps"))
        return checked, frame, wanted

    def store_labels(body: list[bytes]) -> dict:
        raw = loads_request(body, depth=2, max_items=limits.max_labels + 64, what="labels")
        if not isinstance(raw, dict) or "labels" not in raw:
            found = f"got keys {sorted(raw)[:20]}" if isinstance(raw, dict) else f"got {_json_kind(raw)}"
            raise HTTPException(400, 'the body must be {"labels": [{"prediction_id": "...", "label": 1}, ...]}; '
                                     + found)
        if isinstance(raw["labels"], list) and len(raw["labels"]) > limits.max_labels:
            raise _too_many("labels", len(raw["labels"]), limits.max_labels)
        records = _validate(LabelsRequest, raw).labels
        now, written, rejected = time.time(), 0, []
        for start in range(0, len(records), LABEL_BATCH):  # a batch at a time: the interpreter is shared
            batch = records[start:start + LABEL_BATCH]
            checked = label_records(batch, now=now)
            rejected += [{"index": r["index"] + start, "reason": r["reason"]} for r in checked.rejected]
            if len(checked.frame):
                written += store.write_labels(service_name, checked.frame)
            records[start:start + LABEL_BATCH] = [None] * len(batch)  # freed now, not all at once at the end
        return {"received": len(records), "written": written, "rejected": len(rejected), "problems": rejected[:100]}

    def in_worker(function, body: list[bytes]):
        """Run ``function(body)`` in a worker thread, the collector paused for a large body."""
        def run():
            with _gc_paused(sum(len(chunk) for chunk in body)):
                return function(body)
        return run_in_threadpool(run)

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
        body = await _read_body(request, limits)
        frame, ids, timestamps = await in_worker(read_predict_request, body)
        labels, proba, ids = await predict_and_log(frame, request, ids, timestamps)
        return {"predictions": labels.tolist(), "probabilities": proba.tolist(), "ids": ids,
                "model_version": model.version}

    # -- ground truth ------------------------------------------------------------------------

    @app.post("/labels")
    async def post_labels(request: Request) -> dict:
        """Store ground-truth labels: ``{"labels": [{"prediction_id", "label", "ts"?}]}``; answer the counts."""
        if store is None:
            raise HTTPException(503, "this service has no store to write labels to (create_app(store=...))")
        body = await _read_body(request, limits)
        return await in_worker(store_labels, body)

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
            shown = model_name if len(model_name) <= 100 else model_name[:100] + "…"
            raise HTTPException(404, f"model {shown!r} not found; this server has {model.name!r}")

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
        body = await _read_body(request, limits)
        checked, frame, wanted = await in_worker(read_infer_request, body)
        parameters = checked.parameters or V2Parameters()
        labels, proba, ids = await predict_and_log(frame, request, parameters.vantage_ids,
                                                   parameters.vantage_timestamps)
        outputs = []
        if "predict" in wanted:
            outputs.append({"name": "predict", "datatype": "INT64", "shape": [len(labels)],
                            "data": labels.tolist()})
        if "predict_proba" in wanted:
            outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": list(proba.shape),
                            "data": proba.ravel().tolist()})
        return {"model_name": model.name, "model_version": model.version, "id": checked.id or "",
                "parameters": {"prediction_ids": ids}, "outputs": outputs}

    # -- metrics -----------------------------------------------------------------------------

    @app.get("/metrics")
    def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app
