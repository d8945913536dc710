"""Prometheus metrics: parse a scrape, turn counters into increases, histograms into quantiles.

The collector scrapes a service's Prometheus text endpoint and stores a handful of
cumulative values per scrape (:func:`parse_scrape`); the Service-health page turns the
stored values back into request and error rates and latency quantiles per time bucket
(:func:`traffic_over_time`), with counter resets handled as Prometheus's ``increase()``
does (:func:`counter_increases`) and quantiles derived from histogram buckets as
Prometheus's ``histogram_quantile()`` does (:func:`histogram_quantile`).

Stored series (``series, le, value``)
-------------------------------------
``requests``
    Sum of the request counter over every label set whose path matches the filter.
``errors``
    The same, only label sets whose status is 5xx.
``latency_bucket``
    Cumulative count of the latency histogram per upper bound ``le`` (seconds).
``latency_count`` / ``latency_sum``
    Number and sum (seconds) of observed latencies.

Non-bucket series carry ``le = -1``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from prometheus_client.parser import text_string_to_metric_families

if TYPE_CHECKING:
    from monitoring.config import MetricsConfig

SERIES = ("requests", "errors", "latency_bucket", "latency_count", "latency_sum")
"""Series names stored per scrape, in the order :func:`parse_scrape` returns them."""

NO_LE = -1.0
"""``le`` stored with series that are not histogram buckets."""

_STATUS_5XX = re.compile(r"5(\d\d|xx|XX)")

DEFAULT_QUANTILES = (0.5, 0.95, 0.99)
"""Latency quantiles shown by default: p50, p95, p99."""

TRAFFIC_COLUMNS = ("bucket_ts", "requests", "errors", "request_rate", "error_rate")
"""Leading columns of :func:`traffic_over_time`; quantile columns follow."""


def counter_increases(ts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Increase of a cumulative counter between consecutive samples, resets handled.

    A value lower than the one before means the process restarted and the counter began
    again from zero, so the increase over that interval is the new value itself (as
    Prometheus's ``increase()`` assumes).

    Parameters
    ----------
    ts : ndarray of shape (n_samples,)
        Sample times, ascending.
    values : ndarray of shape (n_samples,)
        Cumulative counter values.

    Returns
    -------
    ndarray of shape (n_samples - 1,)
        Increase from sample ``i`` to sample ``i + 1``.
    """
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return np.zeros(0)
    diff = np.diff(values)
    return np.where(diff < 0, values[1:], diff)


# -- parsing a scrape -------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricNames:
    """The Prometheus series one kind of server exposes for its requests.

    Attributes
    ----------
    server : str
        Who exposes them, in words.
    requests : str or None
        Counter of handled requests (with or without ``_total``); None when the server has
        none, and the latency histogram's ``_count`` counts the requests.
    latency : str or None
        Histogram of request durations in seconds (its base name).
    status_label, path_label : str or None
        Labels with the HTTP status (5xx count as errors) and the request path.
    errors : str or None
        A counter of failed requests, for servers that count them apart from the successful
        ones (Triton): the requests are then ``requests`` + ``errors``.
    """

    server: str
    requests: str | None
    latency: str | None
    status_label: str | None = None
    path_label: str | None = None
    errors: str | None = None


KNOWN_SERVERS = (
    MetricNames("a prometheus_client / FastAPI service (like demo/service.py)", "http_requests_total",
                "http_request_duration_seconds", "status", "path"),
    MetricNames("Seldon MLServer", "rest_server_requests", "rest_server_request_duration_seconds", "status_code",
                "path"),
    MetricNames("KServe's Python ModelServer", None, "request_predict_seconds"),
    MetricNames("NVIDIA Triton", "nv_inference_request_success", None, errors="nv_inference_request_failure"),
)
"""Servers whose metric names are recognised without configuration, tried in this order."""


def resolve_metric_names(metrics: MetricsConfig, exposed: set[str], *, found_in: str = "the scrape") -> MetricNames:
    """The names to read: those configured, the rest recognised from the series the server ``exposed``.

    Parameters
    ----------
    metrics : MetricsConfig
        ``requests``, ``latency``, ``status_label`` and ``path_label`` left unset mean "recognise".
    exposed : set of str
        Sample names of one scrape, or the metric names a Prometheus server holds for the
        service's selector.
    found_in : str, default="the scrape"
        Where the names were looked for, in the messages.

    Returns
    -------
    MetricNames

    Raises
    ------
    ValueError
        When a configured series is not exposed, or nothing known is: the message names what
        was looked for and lists what the server exposes.
    """
    def present(name: str | None, *suffixes: str) -> bool:
        if name is None:
            return False
        candidates = {name + x for x in suffixes} if suffixes else counter_sample_names(name)
        return bool(candidates & exposed)

    missing = [f"{key} = {name!r}" for key, name, suffixes in (("requests", metrics.requests, ()),
                                                                 ("latency", metrics.latency, ("_count",)))
               if name and not present(name, *suffixes)]
    if missing:
        raise ValueError(f"metrics from {metrics.source}: {' and '.join(missing)} not found in {found_in}; it "
                         f"exposes {_listed(exposed)}")
    for known in KNOWN_SERVERS:
        requests = metrics.requests or (known.requests if present(known.requests) else None)
        latency = metrics.latency or (known.latency if present(known.latency, "_count") else None)
        if not (present(known.requests) or present(known.latency, "_count")) and not (
                metrics.requests or metrics.latency):
            continue
        configured = bool(metrics.requests or metrics.latency)
        return MetricNames("the configuration" if configured else known.server, requests, latency,
                           metrics.status_label or known.status_label or "status",
                           metrics.path_label or known.path_label or "path",
                           known.errors if present(known.errors) else None)
    raise ValueError(f"metrics from {metrics.source}: no request counter or latency histogram Vantage knows "
                     f"(prometheus_client, MLServer, KServe, Triton) is in {found_in}; set [services.metrics] "
                     f"requests and latency to its names. It exposes {_listed(exposed)}")


def _listed(names: set[str], most: int = 8) -> str:
    shown = sorted(names)[:most]
    return (", ".join(shown) + (f" and {len(names) - most} more" if len(names) > most else "")) if shown else "nothing"


def counter_sample_names(name: str) -> set[str]:
    """Sample names a counter configured as ``name`` can have (with or without ``_total``).

    Parameters
    ----------
    name : str
        The counter's name as configured or known, e.g. ``rest_server_requests``.

    Returns
    -------
    set of str
        ``{name, base + "_total"}`` where ``base`` is ``name`` without a ``_total`` suffix.
    """
    base = name.removesuffix("_total")
    return {name, base + "_total"}


def parse_scrape(text: str, metrics: MetricsConfig) -> list[tuple[str, float, float]]:
    """Read one Prometheus text exposition into the values the store keeps.

    Samples are matched by sample name, so a counter is found whether the exposition
    declares its ``# TYPE`` (the parser then names the family without ``_total``) or not.
    Only label sets whose path label (``metrics.path_label``) fully matches
    ``metrics.path_regex`` are counted, as a PromQL ``=~`` matcher does; a label set without
    the path label is counted. Label sets are summed, as ``sum by (le)`` would.

    Parameters
    ----------
    text : str
        The body of the metrics endpoint (Prometheus text format 0.0.4).
    metrics : MetricsConfig
        Names of the request counter (``requests``, with or without ``_total``), the latency
        histogram (``latency``, its base name), the status and path labels and the path
        filter.

    Returns
    -------
    list of (series, le, value)
        Ready for :meth:`monitoring.store.Store.write_metric_samples`:
        ``("requests", -1.0, total)`` and ``("errors", -1.0, total_5xx)`` when the request
        counter is exposed (0 when no label set matches the filter or is 5xx yet);
        ``("latency_bucket", le, cumulative_count)`` per bucket bound (``+Inf`` as
        ``float("inf")``), ``("latency_count", -1.0, count)`` and
        ``("latency_sum", -1.0, sum)`` when the histogram is exposed (zeros when no label set
        matches the filter yet). Series the service
        does not expose are left out, so an empty list means neither was found.

    Raises
    ------
    ValueError
        When ``metrics.path_regex`` is not a regular expression, or the text is not
        Prometheus text exposition (an HTML error page, JSON...).
    """
    try:
        path_filter = re.compile(metrics.path_regex)
    except re.error as exc:
        raise ValueError(
            f"metrics.path_regex must be a regular expression; got {metrics.path_regex!r} ({exc})"
        ) from None

    try:
        families = list(text_string_to_metric_families(text))
    except ValueError as exc:
        raise ValueError(
            f"metrics from {metrics.url}: not Prometheus text exposition, so neither the request counter nor the "
            f"latency histogram can be read ({exc})"
        ) from None
    names = resolve_metric_names(metrics, {sample.name for family in families for sample in family.samples})
    kinds: dict[str, str] = {}
    if names.requests:
        kinds |= dict.fromkeys(counter_sample_names(names.requests), "requests")
    if names.errors:
        kinds |= dict.fromkeys(counter_sample_names(names.errors), "errors")
    if names.latency:
        kinds |= {names.latency + "_bucket": "latency_bucket", names.latency + "_count": "latency_count",
                  names.latency + "_sum": "latency_sum"}
    counts_requests = names.requests is None  # a histogram without a counter: its _count counts the requests
    status_label, path_label = names.status_label, names.path_label

    # A series the service exposes is stored even when no label set matches the path filter
    # yet (client libraries create a label set on its first request): as 0, so the first
    # matching requests count as an increase.
    totals: dict[tuple[str, float], float] = {}
    for family in families:
        for sample in family.samples:
            kind = kinds.get(sample.name)
            if kind is None:
                continue
            le = float(sample.labels.get("le", "+Inf")) if kind == "latency_bucket" else NO_LE
            totals.setdefault((kind, le), 0.0)
            if kind == "requests" and not names.errors:
                totals.setdefault(("errors", NO_LE), 0.0)
            if kind == "latency_count" and counts_requests:
                totals.setdefault(("requests", NO_LE), 0.0)
            path = sample.labels.get(path_label)
            if path is not None and not path_filter.fullmatch(path):
                continue
            totals[(kind, le)] += float(sample.value)
            if kind == "errors":  # failures counted apart (Triton): the requests are successes + failures
                totals[("requests", NO_LE)] = totals.get(("requests", NO_LE), 0.0) + float(sample.value)
            if kind == "latency_count" and counts_requests:
                totals[("requests", NO_LE)] += float(sample.value)
            if kind == "requests" and _STATUS_5XX.fullmatch(sample.labels.get(status_label, "")):
                totals[("errors", NO_LE)] += float(sample.value)

    return [(series, le, totals[(series, le)])
            for series, le in sorted(totals, key=lambda key: (SERIES.index(key[0]), key[1]))]


# -- histogram quantiles ----------------------------------------------------------------------


def histogram_quantile(q: float, les: Sequence[float], counts: Sequence[float]) -> float:
    """The ``q``-quantile of a histogram, as Prometheus's ``histogram_quantile()`` computes it.

    Observations are assumed spread evenly inside a bucket: the answer interpolates linearly
    between the bucket's lower bound (the previous bound, or 0 for the first bucket) and its
    upper bound.

    Edge cases, as in Prometheus:

    - ``q`` below 0 gives ``-inf``, above 1 gives ``inf``, NaN gives NaN;
    - no ``+Inf`` bucket, fewer than two buckets, or no observations give NaN;
    - a quantile that falls in the ``+Inf`` bucket gives the highest finite bound;
    - a quantile in a first bucket whose bound is ≤ 0 gives that bound;
    - buckets with the same bound are added; counts that decrease with ``le`` (a scrape
      taken while the buckets were being updated) are raised to the running maximum.

    One difference: a rank of 0 (``q = 0``) in an empty first bucket gives the bucket's lower
    bound, where Prometheus divides 0 by 0.

    Parameters
    ----------
    q : float
        Quantile, in [0, 1].
    les : sequence of float
        Upper bounds of the buckets, in any order; ``float("inf")`` for ``+Inf``.
    counts : sequence of float
        Cumulative counts (observations ≤ ``le``), one per bound.

    Returns
    -------
    float
        In the unit of ``les``.

    Raises
    ------
    ValueError
        When ``les`` and ``counts`` differ in length.
    """
    les = np.asarray(les, dtype=float).ravel()
    counts = np.asarray(counts, dtype=float).ravel()
    if les.shape != counts.shape:
        raise ValueError(
            f"les and counts must have the same length; got {len(les)} bounds and {len(counts)} counts"
        )
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    if len(les) == 0:
        return math.nan
    order = np.argsort(les, kind="stable")
    les, counts = les[order], counts[order]
    if not np.isposinf(les[-1]):
        return math.nan
    bounds, first = np.unique(les, return_index=True)
    counts = np.add.reduceat(counts, first)
    counts = np.maximum.accumulate(counts)
    if len(bounds) < 2:
        return math.nan
    observations = counts[-1]
    if not observations > 0:
        return math.nan
    rank = q * observations
    # First finite bucket whose cumulative count reaches the rank (len - 1 if none does).
    b = int(np.searchsorted(counts[:-1], rank, side="left"))
    if b == len(bounds) - 1:
        return float(bounds[-2])
    if b == 0 and bounds[0] <= 0:
        return float(bounds[0])
    start, end, count = 0.0, bounds[b], counts[b]
    if b > 0:
        start = bounds[b - 1]
        count -= counts[b - 1]
        rank -= counts[b - 1]
    if count == 0:
        return float(start)
    return float(start + (end - start) * (rank / count))


def quantile_column(q: float) -> str:
    """Name of the column holding the ``q`` quantile in milliseconds: 0.95 → ``p95_ms``."""
    return f"p{q * 100:g}_ms"


def _check_quantiles(quantiles: Sequence[float]) -> tuple[float, ...]:
    values = tuple(float(q) for q in quantiles)
    bad = [q for q in values if not 0 <= q <= 1]
    if not values or bad:
        raise ValueError(f"quantiles must be one or more numbers in [0, 1]; got {tuple(quantiles)!r}")
    return values


def _check_frame(frame: pd.DataFrame, name: str, columns: Sequence[str]) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{name} must be a DataFrame with columns {list(columns)}; got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{name} must have columns {list(columns)}; missing {missing} in {list(frame.columns)}"
        )


def _check_bucket_seconds(bucket_seconds: float) -> float:
    if not (isinstance(bucket_seconds, int | float) and bucket_seconds > 0 and math.isfinite(bucket_seconds)):
        raise ValueError(f"bucket_seconds must be a positive number of seconds; got {bucket_seconds!r}")
    return float(bucket_seconds)


# -- rates and quantiles over time ------------------------------------------------------------


def _sample_increases(samples: pd.DataFrame, bucket_seconds: float) -> pd.DataFrame:
    """Increases between consecutive raw samples, each in the bucket of its later sample."""
    parts = []
    for (series, le), group in samples.sort_values("ts", kind="stable").groupby(["series", "le"], sort=False):
        ts = group["ts"].to_numpy(dtype=float)
        increases = counter_increases(ts, group["value"].to_numpy(dtype=float))
        if len(increases):
            parts.append(pd.DataFrame({
                "bucket_ts": np.floor(ts[1:] / bucket_seconds) * bucket_seconds,
                "series": series, "le": float(le), "increase": increases,
            }))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def traffic_over_time(samples: pd.DataFrame, rollups: pd.DataFrame, *, bucket_seconds: float,
                      quantiles: Sequence[float] = DEFAULT_QUANTILES) -> pd.DataFrame:
    """Requests, errors and latency quantiles per time bucket from stored Prometheus values.

    Raw cumulative samples become increases between consecutive scrapes of each series
    (counter resets handled by :func:`counter_increases`); each increase is attributed to
    the bucket of its later scrape. Downsampled increases (already per rollup bucket) are
    added to the bucket their rollup bucket starts in. Buckets are aligned on the Unix
    epoch, like the store's rollups; a bucket finer than the rollup width puts a whole
    rollup bucket into one bucket.

    Parameters
    ----------
    samples : DataFrame
        Raw values as :meth:`~monitoring.store.Store.read_metric_samples` returns them:
        ``ts, series, le, value``. The first sample of each series only serves as the
        starting point of the next one's increase.
    rollups : DataFrame
        Downsampled increases as :meth:`~monitoring.store.Store.read_metric_rollups`
        returns them: ``bucket_ts, series, le, increase``.
    bucket_seconds : float
        Width of the time buckets.
    quantiles : sequence of float, default=(0.5, 0.95, 0.99)
        Latency quantiles to compute, each in [0, 1].

    Returns
    -------
    DataFrame
        One row per bucket that has data, ascending, with columns

        - ``bucket_ts`` : float, start of the bucket (Unix seconds);
        - ``requests``, ``errors`` : float, increases of the two counters (NaN in a bucket
          without request-counter data, e.g. a service that only exposes the histogram);
        - ``request_rate`` : float, requests per second over the bucket (the current,
          partial bucket is divided by the full width too);
        - ``error_rate`` : float, errors / requests, NaN when there were no requests;
        - one column per quantile named by :func:`quantile_column` (``p50_ms``,
          ``p95_ms``, ``p99_ms`` by default): latency in milliseconds from the
          histogram of the bucket's increases (the histogram is in seconds), NaN when
          there were no observations.
    """
    bucket_seconds = _check_bucket_seconds(bucket_seconds)
    quantiles = _check_quantiles(quantiles)
    _check_frame(samples, "samples", ("ts", "series", "le", "value"))
    _check_frame(rollups, "rollups", ("bucket_ts", "series", "le", "increase"))
    columns = [*TRAFFIC_COLUMNS, *(quantile_column(q) for q in quantiles)]

    folded = rollups[["bucket_ts", "series", "le", "increase"]].astype(
        {"bucket_ts": float, "le": float, "increase": float})
    folded = folded.assign(bucket_ts=np.floor(folded["bucket_ts"] / bucket_seconds) * bucket_seconds)
    parts = [frame for frame in (_sample_increases(samples, bucket_seconds), folded) if not frame.empty]
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in columns})

    totals = pd.concat(parts, ignore_index=True).groupby(["bucket_ts", "series", "le"], as_index=False)
    totals = totals["increase"].sum()
    result = (
        totals[totals["series"].isin(["requests", "errors"])]
        .pivot_table(index="bucket_ts", columns="series", values="increase", aggfunc="sum")
        .reindex(index=pd.Index(np.sort(totals["bucket_ts"].unique()), name="bucket_ts"),
                 columns=["requests", "errors"])
        .rename_axis(columns=None)
    )
    result["errors"] = result["errors"].fillna(0.0).where(result["requests"].notna())
    result["request_rate"] = result["requests"] / bucket_seconds
    result["error_rate"] = (result["errors"] / result["requests"]).where(result["requests"] > 0)

    histograms = totals[totals["series"] == "latency_bucket"]
    per_bucket = {ts: (group["le"].to_numpy(), group["increase"].to_numpy())
                  for ts, group in histograms.groupby("bucket_ts")}
    for q in quantiles:
        result[quantile_column(q)] = [
            histogram_quantile(q, *per_bucket[ts]) * 1000.0 if ts in per_bucket else math.nan
            for ts in result.index
        ]
    return result.reset_index()[columns]
