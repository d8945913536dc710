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

Every call has a timeout. GETs are retried a bounded number of times on connection and read
errors (never POSTs: a prediction is not known to be idempotent). One ``requests.Session``
per client reuses connections. Health checks never raise: they return a :class:`CallResult`
whose ``ok`` is False with the reason. ``metadata`` and ``predict`` raise
:class:`ServiceError`, which names the call, the HTTP status and what was wrong.
"""

from __future__ import annotations

import json
import re
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from monitoring.config import ServiceConfig

_BODY_EXCERPT = 160
_MESSAGE_EXCERPT = 400
_VERSION_TEXT = re.compile(r"^[0-9][0-9A-Za-z.+!_-]{0,63}$")


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
    except ValueError:
        return _excerpt(response.text, _MESSAGE_EXCERPT) or response.reason or ""
    if isinstance(body, dict):
        for key in ("detail", "error", "message"):
            if key in body:
                value = body[key]
                return _excerpt(value if isinstance(value, str) else json.dumps(value), _MESSAGE_EXCERPT)
    return _excerpt(json.dumps(body), _MESSAGE_EXCERPT)


class ServiceClient(ABC):
    """Base client: HTTP plumbing shared by the protocols.

    Parameters
    ----------
    config : ServiceConfig
        The service to talk to.
    session : requests.Session, optional
        Session to use; one with retries for GETs is made when omitted.
    """

    protocol = "base"

    def __init__(self, config: ServiceConfig, session: requests.Session | None = None):
        self.config = config
        self.base_url = config.url
        self.session = session or self._make_session(config.retries)

    @staticmethod
    def _make_session(retries: int) -> requests.Session:
        session = requests.Session()
        retry = Retry(
            total=retries, connect=retries, read=retries, status=0, other=0,
            allowed_methods=frozenset({"GET"}), backoff_factor=0.05, raise_on_status=False,
            respect_retry_after_header=False,
        )
        adapter = HTTPAdapter(max_retries=retry, pool_connections=4, pool_maxsize=8)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session

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
                 extra_headers: dict[str, str] | None = None) -> tuple[requests.Response, float]:
        """Send one request; raise ServiceError for no answer or a non-2xx answer."""
        call = f"{method} {path}"
        headers = self.request_headers() | (extra_headers or {})
        started = time.perf_counter()
        try:
            response = self.session.request(
                method, self.base_url + path, json=body, headers=headers, timeout=timeout,
            )
        except requests.exceptions.InvalidJSONError as exc:
            raise ServiceError(call, "input", f"the rows cannot be sent as JSON: {exc} (inf or -inf in X?)") from None
        except requests.exceptions.Timeout:
            raise ServiceError(call, "timeout", f"no answer within {timeout:g} s") from None
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
        except ValueError:
            kind = response.headers.get("content-type", "no content type")
            raise ServiceError(call, "garbled", f"answered {kind}, not JSON: {_excerpt(response.text)!r}",
                               status=response.status_code) from None

    def _check(self, check: str, path: str) -> CallResult:
        """GET ``path`` and report whether it answered 2xx, never raising."""
        started = time.perf_counter()
        try:
            response, latency_ms = self._request("GET", path, timeout=self.config.timeout)
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
        return Predictions(
            predictions=np.concatenate(predictions),
            probabilities=np.vstack(probabilities) if has_proba else None,
            latency_ms=latency_ms,
            requests=len(predictions),
            model_version=next((v for v in versions if v), None) or self.config.model_version,
        )

    _predict_call = "predict"

    @abstractmethod
    def _predict_batch(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None, str | None]:
        """Send one batch; return labels, probabilities (or None) and the model version."""


def _split_outputs(values: Any, call: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Turn a list of predictions or of probability rows into (labels, probabilities)."""
    array = np.asarray(values, dtype=object)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim == 1:
        return _numeric_if_possible(array), None
    if array.ndim == 2:
        try:
            proba = array.astype(float)
        except (TypeError, ValueError):
            raise ServiceError(call, "garbled", "2-D predictions that are not numbers") from None
        return proba.argmax(axis=1), proba
    raise ServiceError(call, "garbled", f"predictions of unexpected shape {array.shape}")


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


def _numeric_if_possible(array: np.ndarray) -> np.ndarray:
    try:
        return array.astype(float)
    except (TypeError, ValueError):
        return array.astype(str)


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
        if not isinstance(model, dict):
            raise ServiceError(f"GET {self._model_path}", "garbled", "model metadata is not a JSON object")
        versions = model.get("versions") or []
        return ModelMetadata(
            name=model.get("name", self.config.model),
            version=str(versions[-1]) if versions else self.config.model_version,
            platform=model.get("platform") or None,
            inputs=tuple(model.get("inputs") or ()),
            outputs=tuple(model.get("outputs") or ()),
            server=server if isinstance(server, dict) else {},
        )

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
        body = self._json(response, call)
        outputs = body.get("outputs") if isinstance(body, dict) else None
        if not outputs:
            raise ServiceError(call, "garbled", "the answer has no 'outputs'")
        labels = proba = None
        for output in outputs:
            try:
                array = np.asarray(output["data"], dtype=object).reshape(output["shape"])
            except (KeyError, ValueError, TypeError) as exc:
                raise ServiceError(call, "garbled", f"output {output.get('name')!r} is malformed: {exc}") from None
            name = str(output.get("name", "")).lower()
            if "proba" in name or (array.ndim == 2 and array.shape[1] > 1 and proba is None):
                proba = array.astype(float)
            elif labels is None:
                labels = _numeric_if_possible(array.reshape(len(array)))
        if labels is None and proba is not None:
            labels = proba.argmax(axis=1)
        version = body.get("model_version")
        return labels, proba, str(version) if version else None


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
        text = response.text.strip().strip('"')
        if not _VERSION_TEXT.match(text):
            kind = response.headers.get("content-type", "no content type")
            raise ServiceError("GET /version", "garbled",
                               f"answered {kind}, not an MLflow version: {_excerpt(response.text)!r}",
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
        answer = self._json(response, self._predict_call)
        if not isinstance(answer, dict) or "predictions" not in answer:
            raise ServiceError(self._predict_call, "garbled", "the answer has no 'predictions'")
        values = answer["predictions"]
        if values and isinstance(values[0], dict):
            values = pd.DataFrame(values).to_numpy()
        labels, proba = _split_outputs(values, self._predict_call)
        return labels, proba, None


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
        body = self._get_json(path)
        if not isinstance(body, dict):
            raise ServiceError(f"GET {path}", "garbled", "metadata is not a JSON object")
        return ModelMetadata(
            name=body.get("name") or self.config.model or self.config.name,
            version=str(body["version"]) if body.get("version") else self.config.model_version,
            platform=body.get("platform"),
            inputs=tuple(body.get("inputs") or ()),
            outputs=tuple(body.get("outputs") or ()),
        )

    def _predict_batch(self, X):
        paths = self.config.rest
        columns = [str(c) for c in X.columns]
        records = [dict(zip(columns, row, strict=True)) for row in _json_rows(X)]
        response, _ = self._request("POST", paths.predict, body={paths.records_key: records},
                                    timeout=self.config.predict_timeout)
        answer = self._json(response, self._predict_call)
        if not isinstance(answer, dict) or paths.predictions_key not in answer:
            raise ServiceError(self._predict_call, "garbled", f"the answer has no {paths.predictions_key!r}")
        labels, proba = _split_outputs(answer[paths.predictions_key], self._predict_call)
        if answer.get(paths.probabilities_key) is not None:
            proba = np.asarray(answer[paths.probabilities_key], dtype=float)
        version = answer.get("model_version")
        return labels, proba, str(version) if version else None


CLIENTS: dict[str, type[ServiceClient]] = {"v2": V2Client, "mlflow": MlflowClient, "rest": RestClient}


def make_client(config: ServiceConfig, session: requests.Session | None = None) -> ServiceClient:
    """Return the client for ``config.protocol``."""
    return CLIENTS[config.protocol](config, session=session)
