"""Prometheus as a metrics source: a service's real traffic read from a Prometheus server's HTTP API.

Where a team already runs Prometheus, Vantage does not scrape the service itself: it asks
Prometheus (``[services.metrics] prometheus`` and ``selector``) for

- the request rate, ``sum(rate(<counter>[w]))`` (a histogram's ``_count`` when the server has no
  counter, as KServe's ``ModelServer``; successes and failures together for Triton);
- the error rate, from the counter's label sets whose status is 5xx, or Triton's failure counter;
- latency quantiles, ``histogram_quantile(q, sum by (le) (rate(<histogram>_bucket[w])))``;

over the page's time range, with a step of the page's bucket width (at most :data:`MAX_POINTS`
points) and ``w`` the larger of the step and ``rate_window``. The names are recognised as on
the scrape path (:func:`monitoring.metrics.resolve_metric_names`), from the metric names the
server holds for the selector (``/api/v1/label/__name__/values``). The answer is the frame the
scrape path gives the Service-health page (:func:`monitoring.metrics.traffic_over_time`), so
the page draws both the same way.

Every call goes through :class:`monitoring.clients.BoundedSession` (a deadline for the whole
call, a cap on the answer's size). A Prometheus that is down, refuses a query or has nothing
for the selector is a message (:attr:`PrometheusTraffic.problem`), never an exception.

API answers, as Prometheus documents them: ``{"status": "success", "data": ...}`` or
``{"status": "error", "errorType": ..., "error": ...}`` (HTTP 400, 422 or 503). ``data`` of a
range query is ``{"resultType": "matrix", "result": [{"metric": {...}, "values": [[t, "v"],
...]}]}``, of an instant query ``"vector"`` with one ``"value": [t, "v"]`` per series; sample
values are strings (``"NaN"``, ``"+Inf"`` included).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import requests

from monitoring.clients import MB, BoundedSession, DeadlineExceeded, ResponseTooLarge, call_budget
from monitoring.config import MetricsConfig, duration_seconds
from monitoring.metrics import (
    DEFAULT_QUANTILES,
    TRAFFIC_COLUMNS,
    MetricNames,
    counter_sample_names,
    quantile_column,
    resolve_metric_names,
)

MAX_POINTS = 500
"""Most points a range query asks for: a longer range gets a coarser step."""

STATUS_5XX = "5[0-9][0-9]|5xx|5XX"
"""RE2 pattern of the status label values counted as errors (as the scrape path's)."""

_EXCERPT = 300


class PrometheusError(Exception):
    """A Prometheus call that gave no usable answer; the message says which call and why."""


@dataclass(frozen=True)
class Series:
    """One series of a range query's answer.

    Attributes
    ----------
    labels : tuple of (str, str)
        Its label set, sorted by name.
    ts : ndarray of shape (n_points,)
        Evaluation times (Unix seconds), ascending.
    values : ndarray of shape (n_points,)
        The values (NaN and infinities kept).
    """

    labels: tuple[tuple[str, str], ...]
    ts: np.ndarray
    values: np.ndarray


# -- reading the API's answers (pure) -----------------------------------------------------------


def _excerpt(text: str, limit: int = _EXCERPT) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + " …"


def parse_api_answer(body: Any, *, call: str) -> Any:
    """The ``data`` of a Prometheus API answer.

    Parameters
    ----------
    body : object
        The decoded JSON answer.
    call : str
        The call, named in messages.

    Returns
    -------
    object
        ``body["data"]``.

    Raises
    ------
    PrometheusError
        When the answer is an error (its ``errorType`` and ``error``) or not the API's envelope.
    """
    if not isinstance(body, dict) or body.get("status") not in ("success", "error"):
        raise PrometheusError(f"{call}: not a Prometheus API answer (no status 'success' or 'error')")
    if body["status"] == "error":
        kind = body.get("errorType") or "error"
        raise PrometheusError(f"{call}: Prometheus answered {_excerpt(kind, 40)}: "
                              f"{_excerpt(body.get('error') or 'no reason given')}")
    if "data" not in body:
        raise PrometheusError(f"{call}: the answer has no 'data'")
    return body["data"]


def _sample(pair: Any, call: str) -> tuple[float, float]:
    if not (isinstance(pair, list | tuple) and len(pair) == 2):
        raise PrometheusError(f"{call}: a sample must be [time, \"value\"]; got {_excerpt(repr(pair), 60)}")
    try:
        return float(pair[0]), float(pair[1])  # float() reads "NaN", "+Inf" and "-Inf"
    except (TypeError, ValueError):
        raise PrometheusError(f"{call}: a sample that is not numbers: {_excerpt(repr(pair), 60)}") from None


def _labels(metric: Any, call: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(metric, dict):
        raise PrometheusError(f"{call}: a series' 'metric' must be an object of labels")
    return tuple(sorted((str(k), str(v)) for k, v in metric.items()))


def _result(data: Any, kind: str, call: str) -> list:
    if not isinstance(data, dict) or data.get("resultType") != kind or not isinstance(data.get("result"), list):
        got = data.get("resultType") if isinstance(data, dict) else type(data).__name__
        raise PrometheusError(f"{call}: expected a {kind} result; got {_excerpt(repr(got), 60)}")
    return data["result"]


def parse_matrix(data: Any, *, call: str) -> list[Series]:
    """Read the ``data`` of a range query (``resultType`` ``matrix``).

    Raises
    ------
    PrometheusError
        For any other shape.
    """
    found = []
    for item in _result(data, "matrix", call):
        if not isinstance(item, dict) or not isinstance(item.get("values"), list):
            raise PrometheusError(f"{call}: each series must have 'metric' and 'values'")
        samples = [_sample(pair, call) for pair in item["values"]]
        ts = np.array([t for t, _ in samples], dtype=float)
        values = np.array([v for _, v in samples], dtype=float)
        order = np.argsort(ts, kind="stable")
        found.append(Series(_labels(item.get("metric", {}), call), ts[order], values[order]))
    return found


def parse_vector(data: Any, *, call: str) -> list[tuple[tuple[tuple[str, str], ...], float]]:
    """Read the ``data`` of an instant query (``resultType`` ``vector``): (labels, value) per series.

    Raises
    ------
    PrometheusError
        For any other shape.
    """
    found = []
    for item in _result(data, "vector", call):
        if not isinstance(item, dict) or "value" not in item:
            raise PrometheusError(f"{call}: each series must have 'metric' and 'value'")
        found.append((_labels(item.get("metric", {}), call), _sample(item["value"], call)[1]))
    return found


def parse_label_values(data: Any, *, call: str) -> set[str]:
    """Read the ``data`` of ``/api/v1/label/<name>/values``: a list of strings.

    Raises
    ------
    PrometheusError
        When it is not a list of strings.
    """
    if not isinstance(data, list) or not all(isinstance(v, str) for v in data):
        raise PrometheusError(f"{call}: expected a list of label values")
    return set(data)


# -- building PromQL (pure) -------------------------------------------------------------------


def promql_string(value: str) -> str:
    """``value`` as a double-quoted PromQL string literal."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def series_selector(name: str, selector: str, extra: Sequence[str] = ()) -> str:
    """``name{<selector's matchers>, <extra>}``: the series of one metric of the service.

    Parameters
    ----------
    name : str
        Metric name.
    selector : str
        Label matchers in braces, as :func:`monitoring.config.check_selector` gives them.
    extra : sequence of str
        More matchers, e.g. ``status=~"5.."``.
    """
    inner = selector.strip().removeprefix("{").removesuffix("}").strip()
    matchers = ", ".join(part for part in (inner, *extra) if part)
    return f"{name}{{{matchers}}}"


def query_step(since: float, until: float, preferred: float) -> float:
    """The step of a range query: ``preferred`` (the page's bucket width), coarser beyond :data:`MAX_POINTS` points."""
    return float(max(preferred, math.ceil(max(until - since, 0.0) / MAX_POINTS), 1.0))


def rate_range(step: float, rate_window: str) -> str:
    """The range of ``rate()``: the larger of the step and ``rate_window``, in whole seconds (``"60s"``)."""
    return f"{math.ceil(max(step, duration_seconds(rate_window)))}s"


@dataclass(frozen=True)
class TrafficQueries:
    """The PromQL the health page's traffic needs.

    Attributes
    ----------
    request_rate : str or None
        Requests per second; None when neither a counter nor a histogram is known.
    error_rate : str or None
        Failed requests per second; None when the server counts no failures (KServe).
    quantiles : tuple of (float, str)
        ``(q, query)`` per latency quantile (seconds); empty without a histogram.
    """

    request_rate: str | None
    error_rate: str | None
    quantiles: tuple[tuple[float, str], ...]

    def all(self) -> tuple[str, ...]:
        """Every query, in the order they are sent."""
        return tuple(q for q in (self.request_rate, self.error_rate, *(q for _, q in self.quantiles)) if q)


def _stored_name(name: str, exposed: set[str]) -> str:
    """The name a counter has in Prometheus (``_total`` or not), as the server holds it."""
    candidates = sorted(counter_sample_names(name) & exposed, key=lambda n: not n.endswith("_total"))
    return candidates[0] if candidates else name


def traffic_queries(names: MetricNames, metrics: MetricsConfig, *, exposed: set[str], window: str,
                    quantiles: Sequence[float] = DEFAULT_QUANTILES) -> TrafficQueries:
    """PromQL for request rate, error rate and latency quantiles of the service's series.

    Parameters
    ----------
    names : MetricNames
        Resolved by :func:`monitoring.metrics.resolve_metric_names`.
    metrics : MetricsConfig
        ``selector`` and the path filter (``path_regex`` over the path label: a series without
        the label counts, as on the scrape path).
    exposed : set of str
        Metric names Prometheus holds for the selector (picks ``_total`` or not).
    window : str
        Range of ``rate()``, e.g. ``"60s"``.
    quantiles : sequence of float

    Returns
    -------
    TrafficQueries
    """
    selector = metrics.selector or "{}"
    path = ()
    if metrics.path_regex not in (".*", "") and names.path_label:
        path = (f"{names.path_label}=~{promql_string(f'(?:{metrics.path_regex})|')}",)

    def rate(name: str, *extra: str) -> str:
        return f"sum(rate({series_selector(name, selector, (*path, *extra))}[{window}]))"

    counter = _stored_name(names.requests, exposed) if names.requests else None
    failures = _stored_name(names.errors, exposed) if names.errors else None
    if counter and failures:  # Triton counts successes and failures apart: requests are both
        both = f"__name__=~{promql_string(f'{counter}|{failures}')}"
        request_rate = f"sum(rate({series_selector('', selector, (both, *path))}[{window}]))"
    elif counter:
        request_rate = rate(counter)
    elif names.latency:
        request_rate = rate(f"{names.latency}_count")
    else:
        request_rate = None
    if failures:
        error_rate = rate(failures)
    elif counter and names.status_label:
        error_rate = rate(counter, f"{names.status_label}=~{promql_string(STATUS_5XX)}")
    else:
        error_rate = None
    latency = ()
    if names.latency:
        bucket = series_selector(f"{names.latency}_bucket", selector, path)
        latency = tuple((q, f"histogram_quantile({q:g}, sum by (le) (rate({bucket}[{window}])))") for q in quantiles)
    return TrafficQueries(request_rate, error_rate, latency)


def traffic_frame(step: float, request_rate: Sequence[Series], error_rate: Sequence[Series] | None,
                  quantiles: Sequence[tuple[float, Sequence[Series]]]) -> pd.DataFrame:
    """The traffic frame of :func:`monitoring.metrics.traffic_over_time` from range-query answers.

    A point evaluated at ``t`` (a rate over the range ending at ``t``) is the bucket
    ``[t - step, t)``: ``bucket_ts = t - step``, ``requests = request_rate * step``.

    Parameters
    ----------
    step : float
        The range queries' step (seconds).
    request_rate, error_rate : sequence of Series
        Answers of the rate queries (summed: one series, or none); ``error_rate`` None when the
        server counts no failures (errors are then NaN).
    quantiles : sequence of (float, sequence of Series)
        Latency quantile answers (seconds).

    Returns
    -------
    DataFrame
        ``bucket_ts, requests, errors, request_rate, error_rate`` and one ``p.._ms`` column per
        quantile; one row per evaluation time any answer has, ascending. Errors are 0 where
        requests were counted and no failure series existed yet.
    """
    def points(found: Sequence[Series]) -> pd.Series:
        parts = [pd.Series(s.values, index=s.ts) for s in found if len(s.ts)]
        if not parts:
            return pd.Series(dtype=float)
        return pd.concat(parts, axis=1).sum(axis=1, min_count=1) if len(parts) > 1 else parts[0]

    rate = points(request_rate)
    errors = points(error_rate) if error_rate is not None else None
    latency = [(q, points(found)) for q, found in quantiles]
    index = rate.index
    for series in ([errors] if errors is not None else []) + [s for _, s in latency]:
        index = index.union(series.index)
    index = pd.Index(np.sort(np.asarray(index, dtype=float)))
    rate = rate.reindex(index)
    frame = pd.DataFrame({"bucket_ts": index.to_numpy() - step, "request_rate": rate.to_numpy()})
    frame["requests"] = frame["request_rate"] * step
    if errors is None:
        frame["errors"] = math.nan
    else:
        frame["errors"] = (errors.reindex(index).fillna(0.0).to_numpy() * step)
        frame["errors"] = frame["errors"].where(frame["requests"].notna())
    frame["error_rate"] = (frame["errors"] / frame["requests"]).where(frame["requests"] > 0)
    for q, series in latency:
        frame[quantile_column(q)] = series.reindex(index).to_numpy() * 1000.0
    columns = [*TRAFFIC_COLUMNS, *(quantile_column(q) for q, _ in quantiles)]
    return frame.reindex(columns=columns).reset_index(drop=True)


# -- the client -------------------------------------------------------------------------------


class PrometheusClient:
    """A small client of Prometheus's HTTP API over a :class:`~monitoring.clients.BoundedSession`.

    Parameters
    ----------
    base_url : str
        E.g. ``http://prometheus:9090`` (a path prefix such as ``/prometheus`` is kept).
    timeout : float
        Budget of each call in all (connecting, waiting, reading, retries), or of every call
        made inside :meth:`budget` together; also sent as the query's own ``timeout`` so
        Prometheus gives up as well.
    max_bytes : int
        Largest answer read.
    retries : int, default=1
        Retries of a GET after a connection or read error, within ``timeout``.
    session : requests.Session, optional
        Made when omitted.
    """

    def __init__(self, base_url: str, *, timeout: float, max_bytes: int, retries: int = 1,
                 session: requests.Session | None = None):
        self.base_url = base_url.rstrip("/")
        self.timeout = float(timeout)
        self.max_bytes = int(max_bytes)
        self.session = session or BoundedSession(retries=retries, timeout=timeout, max_bytes=max_bytes)

    @classmethod
    def for_metrics(cls, metrics: MetricsConfig, *, max_response_mb: float = 16.0) -> PrometheusClient:
        """The client of ``metrics.prometheus`` with its ``query_timeout`` and the service's ``max_response_mb``."""
        if metrics.prometheus is None:
            raise ValueError("metrics.prometheus is not set: the metrics of this service are scraped, not queried")
        return cls(metrics.prometheus, timeout=metrics.query_timeout, max_bytes=int(max_response_mb * MB))

    def close(self) -> None:
        """Close pooled connections."""
        self.session.close()

    @contextlib.contextmanager
    def budget(self) -> Iterator[None]:
        """Give every call inside the block one deadline together, ``timeout`` (a chart's queries)."""
        with call_budget(self.timeout, max_bytes=self.max_bytes):
            yield

    def __enter__(self) -> PrometheusClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _get(self, path: str, params: dict[str, Any] | list[tuple[str, Any]], *, what: str) -> Any:
        call = f"{what} at {self.base_url}"
        try:
            response = self.session.get(self.base_url + path, params=params, timeout=self.timeout,
                                        headers={"Accept": "application/json"})
        except ResponseTooLarge as exc:
            raise PrometheusError(f"{call}: answer larger than {exc.limit / MB:g} MB, not read (raise "
                                  "max_response_mb or choose a shorter time range)") from None
        except (DeadlineExceeded, requests.exceptions.Timeout):
            raise PrometheusError(f"{call}: no complete answer within query_timeout = {self.timeout:g} s (for "
                                  "all the queries of one chart together)") from None
        except requests.exceptions.ConnectionError as exc:
            text = str(exc.args[0] if exc.args else exc)
            reason = ("connection refused (is Prometheus running at this address?)" if "refused" in text.lower()
                      else _excerpt(text, 160))
            raise PrometheusError(f"{call}: {reason}") from None
        except requests.exceptions.RequestException as exc:
            raise PrometheusError(f"{call}: {_excerpt(str(exc), 160)}") from None
        try:
            body = response.json()
        except (ValueError, RecursionError):
            kind = response.headers.get("content-type", "no content type")
            raise PrometheusError(f"{call}: HTTP {response.status_code}, {kind}, not the Prometheus API's JSON: "
                                  f"{_excerpt(response.text, 120)!r}") from None
        if not 200 <= response.status_code < 300 and not (isinstance(body, dict) and body.get("status") == "error"):
            raise PrometheusError(f"{call}: HTTP {response.status_code}")
        return parse_api_answer(body, call=call)

    def query_range(self, query: str, *, start: float, end: float, step: float) -> list[Series]:
        """Evaluate ``query`` from ``start`` to ``end`` every ``step`` seconds (``/api/v1/query_range``).

        Raises
        ------
        PrometheusError
        """
        data = self._get("/api/v1/query_range", {"query": query, "start": f"{start:.3f}", "end": f"{end:.3f}",
                                                 "step": f"{step:g}", "timeout": f"{self.timeout:g}s"},
                         what=f"query {query}")
        return parse_matrix(data, call=f"query {query}")

    def query(self, query: str, *, at: float) -> list[tuple[tuple[tuple[str, str], ...], float]]:
        """Evaluate ``query`` at ``at`` (``/api/v1/query``): (labels, value) per series.

        Raises
        ------
        PrometheusError
        """
        data = self._get("/api/v1/query", {"query": query, "time": f"{at:.3f}", "timeout": f"{self.timeout:g}s"},
                         what=f"query {query}")
        return parse_vector(data, call=f"query {query}")

    def metric_names(self, selector: str, *, start: float, end: float) -> set[str]:
        """Names of the metrics with series matching ``selector`` between ``start`` and ``end``.

        Raises
        ------
        PrometheusError
        """
        data = self._get("/api/v1/label/__name__/values",
                         [("match[]", selector), ("start", f"{start:.3f}"), ("end", f"{end:.3f}")],
                         what=f"metric names for {selector}")
        return parse_label_values(data, call=f"metric names for {selector}")


# -- what the health page asks ----------------------------------------------------------------


@dataclass(frozen=True)
class PrometheusTraffic:
    """The traffic of one service over a time range, read from Prometheus.

    Attributes
    ----------
    traffic : DataFrame or None
        As :func:`monitoring.metrics.traffic_over_time` gives it; None when Prometheus could
        not be read (``problem`` says why).
    problem : str or None
        Why there is nothing to chart: Prometheus down, a query refused, no series for the
        selector, the configured names not there, no samples in the range.
    names : MetricNames or None
        The names read (recognised or configured).
    queries : tuple of str
        The PromQL sent.
    step : float
        Seconds between points.
    """

    traffic: pd.DataFrame | None
    problem: str | None
    names: MetricNames | None = None
    queries: tuple[str, ...] = ()
    step: float = 0.0


def _names(client: PrometheusClient, metrics: MetricsConfig, *, since: float,
           until: float) -> tuple[MetricNames, set[str]]:
    """Recognise the service's names from what Prometheus holds for the selector; raise PrometheusError."""
    exposed = client.metric_names(metrics.selector or "{}", start=since, end=until)
    if not exposed:
        raise PrometheusError(f"Prometheus at {client.base_url} has no series matching {metrics.selector} in this "
                              "time range: check the selector against the job and instance labels of the scrape "
                              "job (Prometheus's Targets page), and that the job is scraped")
    try:
        return resolve_metric_names(metrics, exposed, found_in="Prometheus"), exposed
    except ValueError as exc:
        raise PrometheusError(str(exc)) from None


def traffic_from_prometheus(client: PrometheusClient, metrics: MetricsConfig, *, since: float, until: float,
                            bucket_seconds: float,
                            quantiles: Sequence[float] = DEFAULT_QUANTILES) -> PrometheusTraffic:
    """Request rate, error rate and latency quantiles of a service between ``since`` and ``until``.

    Points are evaluated at the ends of buckets aligned on the Unix epoch (as the scrape
    path's), from the first bucket after ``since`` to the one holding ``until``.

    Parameters
    ----------
    client : PrometheusClient
    metrics : MetricsConfig
        With ``prometheus`` and ``selector``.
    since, until : float
        The time range (Unix seconds).
    bucket_seconds : float
        Preferred step (the page's bucket width).
    quantiles : sequence of float, default=(0.5, 0.95, 0.99)

    Returns
    -------
    PrometheusTraffic
        Never raises for what Prometheus answers or fails to answer.
    """
    step = query_step(since, until, bucket_seconds)
    start = math.floor(since / step) * step + step
    end = math.floor(until / step) * step + step
    with client.budget():  # one deadline for the chart's calls together: a slow Prometheus is one wait, not six
        try:
            names, exposed = _names(client, metrics, since=since, until=until)
        except PrometheusError as exc:
            return PrometheusTraffic(None, str(exc), step=step)
        queries = traffic_queries(names, metrics, exposed=exposed, window=rate_range(step, metrics.rate_window),
                                  quantiles=quantiles)
        try:
            def ask(query: str | None) -> list[Series] | None:
                return None if query is None else client.query_range(query, start=start, end=end, step=step)

            requests_ = ask(queries.request_rate) or []
            errors = ask(queries.error_rate)
            latency = [(q, ask(query) or []) for q, query in queries.quantiles]
        except PrometheusError as exc:
            return PrometheusTraffic(None, str(exc), names, queries.all(), step)
    frame = traffic_frame(step, requests_, errors, latency)
    problem = None
    if frame.empty:
        held = ", ".join(n for n in (names.requests, names.latency) if n)
        problem = (f"Prometheus at {client.base_url} holds {held} "
                   f"for {metrics.selector} but gave no rate in this time range: a rate needs two scrapes within "
                   f"each {rate_range(step, metrics.rate_window)} range (raise rate_window to at least 4 scrape "
                   "intervals), or the path filter matches no series")
    return PrometheusTraffic(frame, problem, names, queries.all(), step)


def error_rate_from_prometheus(client: PrometheusClient, metrics: MetricsConfig, *, now: float,
                               window_s: float = 3600.0) -> tuple[float, str | None]:
    """Share of failed requests over the ``window_s`` seconds before ``now`` (the fleet table's "1 h").

    Returns
    -------
    error_rate : float
        NaN when there were no requests, the server counts no failures, or Prometheus could not
        be read.
    problem : str or None
        Why it could not be read.
    """
    try:
        with client.budget():
            names, exposed = _names(client, metrics, since=now - window_s, until=now)
            queries = traffic_queries(names, metrics, exposed=exposed, window=f"{math.ceil(window_s)}s",
                                      quantiles=())
            if queries.request_rate is None or queries.error_rate is None:
                return math.nan, None
            requests_ = sum(v for _, v in client.query(queries.request_rate, at=now))
            errors = sum(v for _, v in client.query(queries.error_rate, at=now))
    except PrometheusError as exc:
        return math.nan, str(exc)
    return (errors / requests_ if requests_ > 0 else math.nan), None

