"""Clients for the three serving protocols, behind one interface.

=========  ====================================  ===============================  ==========================
protocol   health                                metadata                         predict
=========  ====================================  ===============================  ==========================
``v2``     ``/v2/health/live``, ``/v2/health/    ``/v2``, ``/v2/models/{m}``      ``POST /v2/models/{m}/infer``
           ready``, ``/v2/models/{m}/ready``
``mlflow`` ``/ping``, ``/health``                ``/version``                     ``POST /invocations``
``rest``   configurable, default ``/health``     optional path                    configurable, default
                                                                                  ``POST /predict``
=========  ====================================  ===============================  ==========================

Every call has a total deadline and a size limit (:class:`BoundedSession`): ``timeout`` (health,
metadata, metrics) or ``predict_timeout`` (predictions) is the budget of the whole call --
connecting, waiting, reading every byte of the answer and any retry -- not of one socket read,
so a service that drips its answer a byte at a time is a timeout after ``timeout`` seconds. The
answer is streamed and reading stops at ``max_response_mb`` (health checks read at most
:data:`HEALTH_BODY_BYTES` and judge the status alone). GETs are retried a bounded number of times
on connection and read errors, within the same budget (never POSTs: a prediction is not known to
be idempotent). One session per client reuses connections. Health checks never raise: they
return a :class:`CallResult` whose ``ok`` is False with the reason. ``metadata`` and ``predict``
raise :class:`ServiceError`, which names the call, the HTTP status and what was wrong; the
protocol answers are read by pure functions (:func:`parse_v2_answer`, :func:`parse_mlflow_answer`,
:func:`parse_rest_answer`, :func:`parse_v2_metadata`, :func:`parse_rest_metadata`,
:func:`parse_mlflow_version`) that return a result or raise :class:`ServiceError` for any input.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import math
import re
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import requests
from requests.adapters import HTTPAdapter
from urllib3 import poolmanager as _poolmanager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util.retry import Retry

from monitoring.config import ServiceConfig

_BODY_EXCERPT = 160
_MESSAGE_EXCERPT = 400
_VERSION_TEXT = re.compile(r"^[0-9][0-9A-Za-z.+!_-]{0,63}$")
_TEXT_FIELD = 200  # longest name, version or platform kept from a server's metadata

MB = 1024 * 1024
PROBE_HEADER = "X-Vantage-Probe"
"""Sent with every call Vantage itself makes (health checks, canaries, explanations, baseline scoring), so a
service and the capture proxy can leave that traffic out of the prediction log."""
"""Bytes in one MB of ``max_response_mb``."""
HEALTH_BODY_BYTES = 64 * 1024
"""Health checks read at most this much of an answer; the status decides, the rest is not read."""
_CHUNK_BYTES = 64 * 1024


class ServiceError(Exception):
    """A call to a prediction service that did not give a usable answer.

    Parameters
    ----------
    call : str
        What was attempted, e.g. ``"POST /invocations"``.
    kind : {"connection", "timeout", "http", "garbled", "input"}
        ``connection``: refused or dropped; ``timeout``: no answer in time; ``http``: a
        non-2xx status; ``garbled``: a 2xx answer that is not what the protocol promises;
        ``input``: the rows given cannot be sent.
    message : str
        Human-readable detail, including the server's own message where it gave one.
    status : int, optional
        HTTP status code when there was an answer.
    """

    def __init__(self, call: str, kind: str, message: str, status: int | None = None):
        self.call = call
        self.kind = kind
        self.message = message
        self.status = status
        super().__init__(f"{call}: {message}")


@dataclass(frozen=True)
class CallResult:
    """Outcome of one health or metadata call; never an exception."""

    check: str
    ok: bool
    latency_ms: float
    status: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class HealthReport:
    """Liveness, readiness and (v2) model readiness of one service."""

    live: CallResult
    ready: CallResult
    model_ready: CallResult | None = None

    @property
    def checks(self) -> list[CallResult]:
        """The calls made, in order."""
        return [c for c in (self.live, self.ready, self.model_ready) if c is not None]


@dataclass(frozen=True)
class ModelMetadata:
    """What the server says about its model; fields it does not tell are None or empty."""

    name: str | None
    version: str | None
    platform: str | None = None
    inputs: tuple[dict, ...] = ()
    outputs: tuple[dict, ...] = ()
    server: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Predictions:
    """Predictions for a batch of rows.

    Attributes
    ----------
    predictions : ndarray of shape (n_rows,)
        Predicted class or value per row.
    probabilities : ndarray of shape (n_rows, n_classes) or None
        Class probabilities when the server gives them.
    latency_ms : float
        Wall time of all requests together.
    requests : int
        Number of HTTP requests made.
    model_version : str or None
        Version reported with the answer, when the protocol carries it.
    """

    predictions: np.ndarray
    probabilities: np.ndarray | None
    latency_ms: float
    requests: int
    model_version: str | None = None

    @property
    def score(self) -> np.ndarray | None:
        """Probability of the positive class for binary models, else None."""
        if self.probabilities is None or self.probabilities.ndim != 2 or self.probabilities.shape[1] != 2:
            return None
        return self.probabilities[:, 1]


def _excerpt(text: str, limit: int = _BODY_EXCERPT) -> str:
    """One line of at most about ``limit`` characters; a long text keeps its start and its end."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    head = limit // 3  # servers tend to put the reason last (MLflow: "... Error: Model is missing inputs")
    return text[:head] + " … " + text[-(limit - head):]


def _server_message(response: requests.Response) -> str:
    """The server's own error message: JSON ``detail``/``error``/``message`` or the body."""
    try:
        body = response.json()
        if isinstance(body, dict):
            for key in ("detail", "error", "message"):
                if key in body:
                    value = body[key]
                    return _excerpt(value if isinstance(value, str) else json.dumps(value), _MESSAGE_EXCERPT)
        return _excerpt(json.dumps(body), _MESSAGE_EXCERPT)
    except (ValueError, TypeError, RecursionError):
        return _excerpt(response.text, _MESSAGE_EXCERPT) or response.reason or ""


# -- bounded HTTP: one deadline for the whole call, a cap on the answer's size -------------------


class DeadlineExceeded(requests.exceptions.Timeout):
    """The whole call (connecting, waiting, reading the answer, retries) outlasted its budget."""


class ResponseTooLarge(requests.exceptions.RequestException):
    """An answer larger than the call's size limit; it was not read further.

    Parameters
    ----------
    limit : int
        The limit, in bytes.
    status : int or None
        HTTP status of the answer.
    """

    def __init__(self, limit: int, status: int | None):
        self.limit = limit
        self.status = status
        super().__init__(f"answer larger than {limit / MB:g} MB")


class _Budget:
    """One call's deadline and size limit, and the connection it is using now.

    A watchdog thread calls :meth:`expire` at the deadline, which shuts the connection's socket
    down, so a read that is waiting (or receiving a byte at a time) ends at once.
    """

    def __init__(self, seconds: float, max_bytes: int, oversize: str):
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.max_bytes = max_bytes
        self.oversize = oversize  # "raise" or "truncate"
        self.expired = False
        self.done = False
        self._connection: Any = None
        self._lock = threading.Lock()

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def attach(self, connection: Any) -> None:
        """Record the connection in use; a spent budget refuses to start another exchange."""
        with self._lock:
            if self.expired or self.remaining() <= 0:
                raise TimeoutError(f"the call's {self.seconds:g} s are spent")
            self._connection = connection

    def expire(self) -> None:
        with self._lock:
            if self.done:
                return
            self.expired = True
            connection = self._connection
        sock = getattr(connection, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the plain socket's: leaves TLS state alone

    def detach(self) -> bool:
        """Forget the connection (its answer is read; it may serve another call); return whether time ran out."""
        with self._lock:
            self._connection = None
            return self.expired

    def finish(self) -> None:
        with self._lock:
            self.done = True
            self._connection = None


class _Watchdog:
    """One daemon thread that expires budgets at their deadlines; it stops after a minute idle."""

    _IDLE_S = 60.0

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _Budget]] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def arm(self, budget: _Budget) -> None:
        with self._cond:
            heapq.heappush(self._heap, (budget.at, next(self._order), budget))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True, name="vantage-http-deadlines")
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                while self._heap and (self._heap[0][2].done or self._heap[0][0] <= now):
                    budget = heapq.heappop(self._heap)[2]
                    if not budget.done:
                        budget.expire()
                if not self._heap:
                    self._cond.wait(self._IDLE_S)
                    if not self._heap:
                        self._thread = None
                        return
                else:
                    self._cond.wait(self._heap[0][0] - now)


_WATCHDOG = _Watchdog()
_CURRENT = threading.local()


def _current_budget() -> _Budget | None:
    return getattr(_CURRENT, "budget", None)


def _total_seconds(timeout: Any, default: float) -> float:
    """The whole-call budget a requests ``timeout`` stands for: a number, or connect + read of a pair."""
    if isinstance(timeout, tuple | list):
        parts = [default if t is None else float(t) for t in timeout]
        return sum(parts) if parts else default
    return default if timeout is None else float(timeout)


@contextlib.contextmanager
def call_budget(seconds: float, *, max_bytes: int, oversize: str = "raise") -> Iterator[_Budget]:
    """Bound every HTTP exchange a :class:`BoundedSession` makes in this thread inside the block.

    Parameters
    ----------
    seconds : float
        Total deadline of the block's calls, retries and redirects included.
    max_bytes : int
        Largest answer read.
    oversize : {"raise", "truncate"}, default="raise"
        ``raise``: a larger answer raises :class:`ResponseTooLarge`; ``truncate``: the first
        ``max_bytes`` are kept and the connection is closed (for health checks, judged by status).
    """
    outer = _current_budget()
    if outer is not None:  # a call inside a call keeps the outer budget
        yield outer
        return
    budget = _Budget(float(seconds), int(max_bytes), oversize)
    _CURRENT.budget = budget
    _WATCHDOG.arm(budget)
    try:
        yield budget
    finally:
        budget.finish()
        _CURRENT.budget = None


class _BudgetedConnection:
    """A urllib3 connection that registers with the thread's budget and never waits past it."""

    def _enter_budget(self) -> None:
        budget = _current_budget()
        if budget is None:
            return
        budget.attach(self)
        remaining = max(budget.remaining(), 0.001)
        if not isinstance(self.timeout, int | float) or self.timeout > remaining:
            self.timeout = remaining

    def connect(self) -> None:
        self._enter_budget()
        super().connect()

    def request(self, *args: Any, **kwargs: Any) -> None:
        self._enter_budget()
        super().request(*args, **kwargs)

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        self._enter_budget()
        return super().getresponse(*args, **kwargs)


class _HTTPConnection(_BudgetedConnection, HTTPConnection):
    pass


class _HTTPSConnection(_BudgetedConnection, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOL_CLASSES = {"http": _HTTPPool, "https": _HTTPSPool}


def _read_body(response: requests.Response, budget: _Budget) -> None:
    """Read the answer in chunks into ``response``, stopping at the budget's size limit."""
    limit = budget.max_bytes
    declared = response.headers.get("Content-Length", "")
    if budget.oversize == "raise" and declared.isdigit() and int(declared) > limit:
        response.close()
        raise ResponseTooLarge(limit, response.status_code)
    chunks, size = [], 0
    for chunk in response.iter_content(_CHUNK_BYTES):
        if size + len(chunk) > limit:
            response.close()
            if budget.oversize == "raise":
                raise ResponseTooLarge(limit, response.status_code)
            chunks.append(chunk[:limit - size])
            break
        chunks.append(chunk)
        size += len(chunk)
    response._content = b"".join(chunks)
    response._content_consumed = True


class _BoundedAdapter(HTTPAdapter):
    """An adapter whose exchanges keep to the thread's :func:`call_budget`."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOL_CLASSES

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if manager.pool_classes_by_scheme is _poolmanager.pool_classes_by_scheme:  # not SOCKS, which has its own pools
            manager.pool_classes_by_scheme = _POOL_CLASSES
        return manager

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None,
             **kwargs: Any) -> requests.Response:
        budget = _current_budget()
        if budget is None:  # sent without BoundedSession.request: no bounds to keep
            return super().send(request, stream=stream, timeout=timeout, **kwargs)
        remaining = budget.remaining()
        if budget.expired or remaining <= 0:
            raise DeadlineExceeded(f"the call's {budget.seconds:g} s are spent", request=request)
        try:
            response = super().send(request, stream=True, timeout=(remaining, remaining), **kwargs)
            if not stream:
                _read_body(response, budget)
            if budget.detach():  # the socket was shut down: what was read may look whole but is cut short
                response.close()
                raise DeadlineExceeded(f"no complete answer within {budget.seconds:g} s", request=request)
        except (ResponseTooLarge, DeadlineExceeded):
            raise
        except (requests.exceptions.RequestException, OSError) as exc:
            if budget.expired or budget.remaining() <= 0:
                raise DeadlineExceeded(f"no complete answer within {budget.seconds:g} s",
                                       request=request) from None
            if not isinstance(exc, requests.exceptions.RequestException):  # a socket error while reading
                raise requests.exceptions.ConnectionError(exc, request=request) from None
            raise
        return response


class BoundedSession(requests.Session):
    """A ``requests.Session`` whose every call has a total deadline and a cap on the answer's size.

    A call's ``timeout`` (a number, or a (connect, read) pair, added) is the budget of the whole
    call: connecting, waiting, reading every byte, retries and redirects. The answer is read in
    chunks and a larger one than ``max_bytes`` raises :class:`ResponseTooLarge`; running out of
    time raises :class:`DeadlineExceeded` (a ``requests.exceptions.Timeout``). ``stream=True``
    calls get the deadline for their headers only and read the body themselves.

    Parameters
    ----------
    retries : int
        Retries of GETs after a connection or read error (never of other methods).
    timeout : float
        Budget of calls made without a ``timeout``.
    max_bytes : int
        Largest answer read by calls made outside :func:`call_budget`.
    """

    def __init__(self, *, retries: int, timeout: float, max_bytes: int):
        super().__init__()
        self.default_timeout = float(timeout)
        self.max_bytes = int(max_bytes)
        self.max_redirects = 5
        retry = Retry(
            total=retries, connect=retries, read=retries, status=0, other=0,
            allowed_methods=frozenset({"GET"}), backoff_factor=0.05, raise_on_status=False,
            respect_retry_after_header=False,
        )
        adapter = _BoundedAdapter(max_retries=retry, pool_connections=4, pool_maxsize=8)
        self.mount("http://", adapter)
        self.mount("https://", adapter)

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        seconds = _total_seconds(kwargs.get("timeout"), self.default_timeout)
        kwargs["timeout"] = seconds
        with call_budget(seconds, max_bytes=self.max_bytes):
            return super().request(method, url, *args, **kwargs)


class ServiceClient(ABC):
    """Base client: HTTP plumbing shared by the protocols.

    Parameters
    ----------
    config : ServiceConfig
        The service to talk to.
    session : requests.Session, optional
        Session to use; a :class:`BoundedSession` with retries for GETs is made when omitted
        (a plain ``requests.Session`` keeps per-read timeouts only, and no size limit).
    """

    protocol = "base"

    def __init__(self, config: ServiceConfig, session: requests.Session | None = None):
        self.config = config
        self.base_url = config.url
        self.session = session or self._make_session(config)

    @staticmethod
    def _make_session(config: ServiceConfig) -> BoundedSession:
        return BoundedSession(retries=config.retries, timeout=config.timeout,
                              max_bytes=int(config.max_response_mb * MB))

    @property
    def max_response_bytes(self) -> int:
        """Largest answer read from a metadata, prediction or metrics call (``max_response_mb``)."""
        return int(self.config.max_response_mb * MB)

    def close(self) -> None:
        """Close pooled connections."""
        self.session.close()

    def request_headers(self) -> dict[str, str]:
        """Headers sent with every call: JSON accept and the configured auth header."""
        headers = {"Accept": "application/json"}
        if self.config.auth is not None:
            value = self.config.auth.header_value()
            if value is not None:
                headers[self.config.auth.header] = value
        return headers

    def _request(self, method: str, path: str, *, timeout: float, body: Any = None,
                 extra_headers: dict[str, str] | None = None, max_bytes: int | None = None,
                 oversize: str = "raise") -> tuple[requests.Response, float]:
        """Send one request within ``timeout`` seconds in all; raise ServiceError for no answer or a non-2xx one."""
        call = f"{method} {path}"
        headers = self.request_headers() | (extra_headers or {})
        limit = self.max_response_bytes if max_bytes is None else max_bytes
        started = time.perf_counter()
        try:
            with call_budget(timeout, max_bytes=limit, oversize=oversize):
                response = self.session.request(
                    method, self.base_url + path, json=body, headers=headers, timeout=timeout,
                )
        except requests.exceptions.InvalidJSONError as exc:
            raise ServiceError(call, "input", f"the rows cannot be sent as JSON: {exc} (inf or -inf in X?)") from None
        except ResponseTooLarge as exc:
            size = f"larger than {exc.limit / MB:g} MB"
            if exc.status is not None and not 200 <= exc.status < 300:
                raise ServiceError(call, "http", f"HTTP {exc.status}: (an answer {size}, not read)",
                                   status=exc.status) from None
            raise ServiceError(call, "garbled", f"answer {size} (max_response_mb = {exc.limit / MB:g}); "
                               "not read further: raise max_response_mb or send fewer rows per request "
                               "(max_batch_rows)", status=exc.status) from None
        except requests.exceptions.Timeout as exc:
            whole = " (the whole call: connecting, waiting and reading the answer)" \
                if isinstance(exc, DeadlineExceeded) else ""
            raise ServiceError(call, "timeout", f"no answer within {timeout:g} s{whole}") from None
        except requests.exceptions.RetryError as exc:
            raise ServiceError(call, "connection", f"gave up after retries: {exc}") from None
        except requests.exceptions.ConnectionError as exc:
            reason = exc.args[0] if exc.args else exc
            text = str(getattr(reason, "reason", reason))
            if "Read timed out" in text or "timed out" in text:
                raise ServiceError(call, "timeout", f"no answer within {timeout:g} s") from None
            if "refused" in text.lower():
                text = "connection refused (is the service running on this host and port?)"
            elif "RemoteDisconnected" in text or "without response" in text:
                text = "the service closed the connection without answering"
            raise ServiceError(call, "connection", _excerpt(text)) from None
        except requests.exceptions.ChunkedEncodingError as exc:
            detail = exc.args[0].args[-1] if exc.args and getattr(exc.args[0], "args", None) else exc
            raise ServiceError(call, "connection",
                               _excerpt(f"the connection was cut in the middle of the answer ({detail!r})")) from None
        except requests.exceptions.RequestException as exc:
            raise ServiceError(call, "connection", _excerpt(str(exc))) from None
        latency_ms = (time.perf_counter() - started) * 1000.0
        if not 200 <= response.status_code < 300:
            raise ServiceError(call, "http", f"HTTP {response.status_code}: {_server_message(response)}",
                               status=response.status_code)
        return response, latency_ms

    @staticmethod
    def _json(response: requests.Response, call: str) -> Any:
        try:
            return response.json()
        except RecursionError:
            raise ServiceError(call, "garbled", "answered JSON nested too deeply to read",
                               status=response.status_code) from None
        except ValueError:
            kind = response.headers.get("content-type", "no content type")
            raise ServiceError(call, "garbled", f"answered {kind}, not JSON: {_excerpt(response.text)!r}",
                               status=response.status_code) from None

    def _check(self, check: str, path: str) -> CallResult:
        """GET ``path`` and report whether it answered 2xx, never raising."""
        started = time.perf_counter()
        try:
            response, latency_ms = self._request("GET", path, timeout=self.config.timeout,
                                                 max_bytes=HEALTH_BODY_BYTES, oversize="truncate")
        except ServiceError as exc:
            return CallResult(check, False, (time.perf_counter() - started) * 1000.0, exc.status, exc.message)
        return CallResult(check, True, latency_ms, response.status_code)

    def _get_json(self, path: str) -> Any:
        response, _ = self._request("GET", path, timeout=self.config.timeout)
        return self._json(response, f"GET {path}")

    # -- the interface -----------------------------------------------------------------------

    @abstractmethod
    def health(self) -> HealthReport:
        """Check liveness, readiness and, where the protocol has it, model readiness."""

    @abstractmethod
    def metadata(self) -> ModelMetadata:
        """Ask the server about its model.

        Raises
        ------
        ServiceError
        """

    def predict(self, X: pd.DataFrame) -> Predictions:
        """Predict ``X``, split into requests of at most ``max_batch_rows`` rows.

        Parameters
        ----------
        X : DataFrame of shape (n_rows, n_features)
            Rows in the original feature space; columns in the order the model expects.

        Returns
        -------
        Predictions

        Raises
        ------
        ServiceError
            On the first request that fails; nothing partial is returned.
        """
        if not isinstance(X, pd.DataFrame):
            raise ServiceError("predict", "input", f"X must be a pandas DataFrame, got {type(X).__name__}")
        if X.empty:
            raise ServiceError("predict", "input", "X has no rows")
        predictions, probabilities, versions = [], [], []
        latency_ms = 0.0
        size = self.config.max_batch_rows
        for start in range(0, len(X), size):
            batch = X.iloc[start:start + size]
            started = time.perf_counter()
            labels, proba, version = self._predict_batch(batch)
            latency_ms += (time.perf_counter() - started) * 1000.0
            if len(labels) != len(batch):
                raise ServiceError(self._predict_call, "garbled",
                                   f"sent {len(batch)} rows but got {len(labels)} predictions")
            predictions.append(labels)
            probabilities.append(proba)
            versions.append(version)
        has_proba = all(p is not None for p in probabilities)
        try:
            labels = np.concatenate(predictions)
            proba = np.vstack(probabilities) if has_proba else None
        except (TypeError, ValueError):
            raise ServiceError(self._predict_call, "garbled", "the batches answered predictions of different kinds "
                               "or numbers of classes") from None
        return Predictions(
            predictions=labels,
            probabilities=proba,
            latency_ms=latency_ms,
            requests=len(predictions),
            model_version=next((v for v in versions if v), None) or self.config.model_version,
        )

    _predict_call = "predict"

    @abstractmethod
    def _predict_batch(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None, str | None]:
        """Send one batch; return labels, probabilities (or None) and the model version."""


def _json_rows(X: pd.DataFrame) -> list[list]:
    """Rows of ``X`` as JSON-ready Python values: floats exact, missing as None, datetimes as ISO text.

    ``DataFrame.to_json`` would round floats to 10 decimals (3e-12 becomes 0), so it is not used.
    """
    columns = [_json_column(X[name]) for name in X.columns]
    return [list(row) for row in zip(*columns, strict=True)]


def _json_column(values: pd.Series, *, as_text: bool = False) -> list:
    """One column as JSON-ready Python values (None where missing); cheap for a few rows."""
    if as_text or pd.api.types.is_datetime64_any_dtype(values) or isinstance(values.dtype, pd.PeriodDtype):
        array = values.to_numpy(dtype=object)
        return [None if missing else str(v) for v, missing in zip(array, pd.isna(array), strict=True)]
    array = values.to_numpy(dtype=object)
    return [None if missing else v for v, missing in zip(array, pd.isna(array), strict=True)]


# -- reading protocol answers: pure functions, a result or ServiceError for any input ------------

_SCALARS = (str, int, float, bool, type(None))
_MAX_DIMS = 8


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "text", bool: "true/false", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, int | float) else type(value).__name__)


def _text(value: Any) -> str | None:
    """A name, version or platform as text (at most 200 characters); None for anything that is not one."""
    if isinstance(value, bool) or not isinstance(value, str | int | float) or value == "":
        return None
    return str(value)[:_TEXT_FIELD]


def _objects(value: Any) -> tuple[dict, ...]:
    """The JSON objects of a list (others dropped); () for anything that is not a list."""
    return tuple(v for v in value if isinstance(v, dict)) if isinstance(value, list) else ()


def _array(values: Any, call: str, what: str) -> np.ndarray:
    """A JSON list (nested for more dimensions) of numbers, text, true/false or null as an object array."""
    if not isinstance(values, list):
        raise ServiceError(call, "garbled", f"{what} must be a list; got {_kind(values)}")
    try:
        array = np.asarray(values, dtype=object)
    except (ValueError, TypeError, RecursionError) as exc:
        raise ServiceError(call, "garbled", f"{what} is not a regular array: {_excerpt(str(exc))}") from None
    if array.ndim > _MAX_DIMS or not all(isinstance(v, _SCALARS) for v in array.flat):
        raise ServiceError(call, "garbled", f"{what} must hold numbers, text, true/false or null in rows of "
                                            "equal length; it holds other lists or objects")
    return array


def _numeric_if_possible(array: np.ndarray) -> np.ndarray:
    try:
        return array.astype(float)
    except (TypeError, ValueError, OverflowError):
        return array.astype(str)


def _probabilities(array: np.ndarray, call: str, what: str) -> np.ndarray:
    if array.ndim != 2 or array.shape[1] == 0:
        raise ServiceError(call, "garbled", f"{what} must be rows of class probabilities, shape [rows, classes]; "
                                            f"got shape {list(array.shape)}")
    try:
        return array.astype(float)
    except (TypeError, ValueError, OverflowError):
        raise ServiceError(call, "garbled", f"{what}: probabilities that are not numbers") from None


def _split_outputs(values: Any, call: str, what: str = "predictions") -> tuple[np.ndarray, np.ndarray | None]:
    """Turn a list of predictions or of probability rows into (labels, probabilities)."""
    array = _array(values, call, what)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim == 1:
        return _numeric_if_possible(array), None
    if array.ndim == 2:
        proba = _probabilities(array, call, what)
        return proba.argmax(axis=1), proba
    raise ServiceError(call, "garbled", f"{what} of unexpected shape {list(array.shape)}")


def parse_v2_answer(body: Any, *, call: str) -> tuple[np.ndarray, np.ndarray | None, str | None]:
    """Read an Open Inference Protocol v2 inference answer.

    Parameters
    ----------
    body : object
        The decoded JSON answer.
    call : str
        The call, named in errors.

    Returns
    -------
    labels : ndarray of shape (n_rows,)
        From the first output that is not probabilities, else the most probable class.
    probabilities : ndarray of shape (n_rows, n_classes) or None
        From an output whose name holds ``proba``, or the first 2-D output of several columns.
    model_version : str or None

    Raises
    ------
    ServiceError
        Of kind ``garbled``, for any answer that does not carry predictions as the protocol says.
    """
    outputs = body.get("outputs") if isinstance(body, dict) else None
    if not isinstance(outputs, list) or not outputs:
        raise ServiceError(call, "garbled", "the answer has no 'outputs'")
    labels = proba = None
    for i, output in enumerate(outputs):
        if not isinstance(output, dict):
            raise ServiceError(call, "garbled", f"output {i} must be an object with name, shape and data; "
                                                f"got {_kind(output)}")
        name = _text(output.get("name")) or f"#{i}"
        shape = output.get("shape")
        if (not isinstance(shape, list) or len(shape) > _MAX_DIMS
                or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
            raise ServiceError(call, "garbled", f"output {name!r} is malformed: shape must be a list of at most "
                                                f"{_MAX_DIMS} whole numbers >= 0; got {_excerpt(repr(shape))}")
        data = _array(output.get("data"), call, f"output {name!r} data").ravel()
        if data.size != math.prod(shape):
            raise ServiceError(call, "garbled", f"output {name!r} is malformed: {data.size} values do not fill "
                                                f"shape {shape}")
        array = data.reshape(shape)
        if "proba" in name.lower() or (array.ndim == 2 and array.shape[1] > 1 and proba is None):
            proba = _probabilities(array, call, f"output {name!r}")
        elif labels is None:
            if array.ndim == 2 and array.shape[1] == 1:
                array = array[:, 0]
            if array.ndim != 1:
                raise ServiceError(call, "garbled", f"output {name!r} must have shape [rows]; got {shape}")
            labels = _numeric_if_possible(array)
    if labels is None and proba is None:
        raise ServiceError(call, "garbled", "the answer has no output with predictions")
    if labels is None:
        labels = proba.argmax(axis=1)
    elif proba is not None and len(proba) != len(labels):
        raise ServiceError(call, "garbled", f"{len(labels)} predictions but {len(proba)} rows of probabilities")
    return labels, proba, _text(body.get("model_version"))


def parse_mlflow_answer(answer: Any, *, call: str) -> tuple[np.ndarray, np.ndarray | None, None]:
    """Read an MLflow scoring server's answer ``{"predictions": [...]}`` (values, rows or records).

    Returns
    -------
    labels, probabilities, None
        As :func:`parse_v2_answer`; MLflow reports no model version.

    Raises
    ------
    ServiceError
        Of kind ``garbled``.
    """
    if not isinstance(answer, dict) or "predictions" not in answer:
        raise ServiceError(call, "garbled", "the answer has no 'predictions'")
    values = answer["predictions"]
    if isinstance(values, list) and values and all(isinstance(v, dict) for v in values):
        columns = list(values[0])  # records of a DataFrame output: one column per key
        values = [[record.get(c) for c in columns] for record in values]
    labels, proba = _split_outputs(values, call)
    return labels, proba, None


def parse_rest_answer(answer: Any, *, call: str, predictions_key: str = "predictions",
                      probabilities_key: str = "probabilities") -> tuple[np.ndarray, np.ndarray | None, str | None]:
    """Read a plain REST service's answer ``{predictions_key: [...], probabilities_key: [[...]]?}``.

    Returns
    -------
    labels, probabilities, model_version
        As :func:`parse_v2_answer`.

    Raises
    ------
    ServiceError
        Of kind ``garbled``.
    """
    if not isinstance(answer, dict) or predictions_key not in answer:
        raise ServiceError(call, "garbled", f"the answer has no {predictions_key!r}")
    labels, proba = _split_outputs(answer[predictions_key], call, repr(predictions_key))
    if answer.get(probabilities_key) is not None:
        array = _array(answer[probabilities_key], call, repr(probabilities_key))
        proba = _probabilities(array, call, repr(probabilities_key))
        if len(proba) != len(labels):
            raise ServiceError(call, "garbled", f"{len(labels)} predictions but {len(proba)} rows of probabilities")
    return labels, proba, _text(answer.get("model_version"))


def parse_v2_metadata(model: Any, server: Any = None, *, call: str, config: ServiceConfig) -> ModelMetadata:
    """Read v2 model metadata (``GET /v2/models/{m}``) and, optionally, server metadata (``GET /v2``).

    Fields that are missing or of the wrong type are left out (the config's ``model`` and
    ``model_version`` stand in); only an answer that is not an object is an error.

    Raises
    ------
    ServiceError
        Of kind ``garbled`` when ``model`` is not a JSON object.
    """
    if not isinstance(model, dict):
        raise ServiceError(call, "garbled", "model metadata is not a JSON object")
    versions = model.get("versions")
    version = _text(versions[-1]) if isinstance(versions, list) and versions else None
    return ModelMetadata(
        name=_text(model.get("name")) or config.model,
        version=version or config.model_version,
        platform=_text(model.get("platform")),
        inputs=_objects(model.get("inputs")),
        outputs=_objects(model.get("outputs")),
        server=server if isinstance(server, dict) else {},
    )


def parse_rest_metadata(body: Any, *, call: str, config: ServiceConfig) -> ModelMetadata:
    """Read a REST service's metadata: a JSON object with ``name``, ``version``, ``platform``, ``inputs``.

    Raises
    ------
    ServiceError
        Of kind ``garbled`` when ``body`` is not a JSON object.
    """
    if not isinstance(body, dict):
        raise ServiceError(call, "garbled", "metadata is not a JSON object")
    return ModelMetadata(
        name=_text(body.get("name")) or config.model or config.name,
        version=_text(body.get("version")) or config.model_version,
        platform=_text(body.get("platform")),
        inputs=_objects(body.get("inputs")),
        outputs=_objects(body.get("outputs")),
    )


def parse_mlflow_version(text: str, *, call: str = "GET /version", content_type: str = "no content type",
                         status: int | None = 200) -> str:
    """Read MLflow's ``/version`` answer: the bare version text (e.g. ``3.17.2``), maybe JSON-quoted.

    Raises
    ------
    ServiceError
        Of kind ``garbled`` when the text is not a version.
    """
    version = text.strip().strip('"')
    if not _VERSION_TEXT.match(version):
        raise ServiceError(call, "garbled", f"answered {content_type}, not an MLflow version: {_excerpt(text)!r}",
                           status=status)
    return version


_V2_DATATYPES = {"f": "FP64", "i": "INT64", "u": "UINT64", "b": "BOOL"}


class V2Client(ServiceClient):
    """Open Inference Protocol v2 (KServe, Seldon MLServer, Triton)."""

    protocol = "v2"

    @property
    def _model_path(self) -> str:
        return f"/v2/models/{self.config.model}"

    @property
    def _predict_call(self) -> str:
        return f"POST {self._model_path}/infer"

    def health(self) -> HealthReport:
        """Check ``/v2/health/live``, ``/v2/health/ready`` and ``/v2/models/{m}/ready``."""
        return HealthReport(
            live=self._check("live", "/v2/health/live"),
            ready=self._check("ready", "/v2/health/ready"),
            model_ready=self._check("model_ready", f"{self._model_path}/ready"),
        )

    def metadata(self) -> ModelMetadata:
        """Read ``/v2`` (server) and ``/v2/models/{m}`` (model)."""
        try:
            server = self._get_json("/v2")
        except ServiceError:
            server = {}
        model = self._get_json(self._model_path)
        return parse_v2_metadata(model, server, call=f"GET {self._model_path}", config=self.config)

    def build_request(self, X: pd.DataFrame) -> dict:
        """Encode rows as a v2 inference request (one input per column, or one tensor)."""
        if self.config.v2_inputs == "tensor":
            try:
                data = X.to_numpy(dtype=float)
            except (TypeError, ValueError):
                text = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
                raise ServiceError(self._predict_call, "input",
                                   f"v2_inputs = 'tensor' needs numeric columns; not numeric: {text}") from None
            flat = [None if np.isnan(v) else v for v in data.ravel().tolist()]
            inputs = [{"name": "input-0", "shape": list(data.shape), "datatype": "FP64", "data": flat}]
            request: dict = {"inputs": inputs}
        else:
            inputs = []
            for column in X.columns:
                values = X[column]
                datatype = _V2_DATATYPES.get(values.dtype.kind, "BYTES")
                # JSON has no NaN: a missing value travels as null
                data = _json_column(values, as_text=datatype == "BYTES")
                inputs.append({"name": str(column), "shape": [len(X)], "datatype": datatype, "data": data})
            request = {"inputs": inputs, "parameters": {"content_type": "pd"}}
        if self.config.v2_outputs:
            request["outputs"] = [{"name": name} for name in self.config.v2_outputs]
        return request

    def _predict_batch(self, X):
        call = self._predict_call
        response, _ = self._request("POST", f"{self._model_path}/infer", body=self.build_request(X),
                                    timeout=self.config.predict_timeout)
        return parse_v2_answer(self._json(response, call), call=call)


class MlflowClient(ServiceClient):
    """MLflow's scoring server (``mlflow models serve``)."""

    protocol = "mlflow"
    _predict_call = "POST /invocations"

    def health(self) -> HealthReport:
        """Check ``/ping`` (live) and ``/health`` (ready)."""
        return HealthReport(live=self._check("live", "/ping"), ready=self._check("ready", "/health"))

    def metadata(self) -> ModelMetadata:
        """Read ``/version`` (the MLflow version); the model version comes from the config."""
        response, _ = self._request("GET", "/version", timeout=self.config.timeout)
        # MLflow answers the bare version text (e.g. 3.17.2), labelled application/json.
        text = parse_mlflow_version(response.text, content_type=response.headers.get("content-type", "no content type"),
                                    status=response.status_code)
        return ModelMetadata(
            name=self.config.model or self.config.name,
            version=self.config.model_version,
            platform="mlflow",
            server={"mlflow_version": text},
        )

    def _predict_batch(self, X):
        body = {"dataframe_split": {"columns": [str(c) for c in X.columns], "data": _json_rows(X)}}
        response, _ = self._request("POST", "/invocations", body=body, timeout=self.config.predict_timeout)
        return parse_mlflow_answer(self._json(response, self._predict_call), call=self._predict_call)


class RestClient(ServiceClient):
    """A plain JSON REST service: records in, predictions (and probabilities) out."""

    protocol = "rest"

    @property
    def _predict_call(self) -> str:
        return f"POST {self.config.rest.predict}"

    def health(self) -> HealthReport:
        """GET the configured health path (live) and ready path (ready, defaults to health)."""
        paths = self.config.rest
        live = self._check("live", paths.health)
        ready = self._check("ready", paths.ready) if paths.ready else CallResult(
            "ready", live.ok, 0.0, live.status, live.error)
        return HealthReport(live=live, ready=ready)

    def metadata(self) -> ModelMetadata:
        """GET the configured metadata path, if any."""
        path = self.config.rest.metadata
        if not path:
            return ModelMetadata(name=self.config.model or self.config.name, version=self.config.model_version)
        return parse_rest_metadata(self._get_json(path), call=f"GET {path}", config=self.config)

    def _predict_batch(self, X):
        paths = self.config.rest
        columns = [str(c) for c in X.columns]
        records = [dict(zip(columns, row, strict=True)) for row in _json_rows(X)]
        response, _ = self._request("POST", paths.predict, body={paths.records_key: records},
                                    timeout=self.config.predict_timeout)
        return parse_rest_answer(self._json(response, self._predict_call), call=self._predict_call,
                                 predictions_key=paths.predictions_key, probabilities_key=paths.probabilities_key)


CLIENTS: dict[str, type[ServiceClient]] = {"v2": V2Client, "mlflow": MlflowClient, "rest": RestClient}


def make_client(config: ServiceConfig, session: requests.Session | None = None) -> ServiceClient:
    """Return the client for ``config.protocol``."""
    return CLIENTS[config.protocol](config, session=session)
