"""Known-answer tests of monitoring.metrics: scrape parsing, counter increases, quantiles, rates."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from monitoring.config import MetricsConfig
from monitoring.metrics import (
    counter_increases,
    histogram_quantile,
    parse_scrape,
    quantile_column,
    traffic_over_time,
)
from monitoring.store import Store

INF = float("inf")

EXPOSITION = """\
# HELP python_gc_objects_collected_total Objects collected during gc
# TYPE python_gc_objects_collected_total counter
python_gc_objects_collected_total{generation="0"} 1234.0
# HELP http_requests_total Total number of requests by method, status and handler.
# TYPE http_requests_total counter
http_requests_total{method="POST",path="/predict",status="200"} 1000.0
http_requests_total{method="POST",path="/predict",status="500"} 7.0
http_requests_total{method="POST",path="/predict",status="503"} 3.0
http_requests_total{method="GET",path="/metrics",status="200"} 50.0
http_requests_total{method="GET",path="/health",status="500"} 2.0
# HELP http_requests_created Total number of requests by method, status and handler.
# TYPE http_requests_created gauge
http_requests_created{method="POST",path="/predict",status="200"} 1.7e+09
# HELP http_request_duration_seconds Latency of requests.
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le="0.1",path="/predict"} 600.0
http_request_duration_seconds_bucket{le="0.5",path="/predict"} 950.0
http_request_duration_seconds_bucket{le="1.0",path="/predict"} 1005.0
http_request_duration_seconds_bucket{le="+Inf",path="/predict"} 1010.0
http_request_duration_seconds_count{path="/predict"} 1010.0
http_request_duration_seconds_sum{path="/predict"} 150.5
http_request_duration_seconds_bucket{le="0.1",path="/metrics"} 50.0
http_request_duration_seconds_bucket{le="0.5",path="/metrics"} 50.0
http_request_duration_seconds_bucket{le="1.0",path="/metrics"} 50.0
http_request_duration_seconds_bucket{le="+Inf",path="/metrics"} 50.0
http_request_duration_seconds_count{path="/metrics"} 50.0
http_request_duration_seconds_sum{path="/metrics"} 0.5
# HELP http_request_duration_seconds_created Latency of requests.
# TYPE http_request_duration_seconds_created gauge
http_request_duration_seconds_created{path="/predict"} 1.7e+09
"""


def config(**kwargs) -> MetricsConfig:
    return MetricsConfig(url="http://127.0.0.1:8080/metrics", **kwargs)


# -- counter_increases ------------------------------------------------------------------------


def test_counter_increases_across_a_reset():
    increases = counter_increases(np.array([0.0, 10, 20, 30]), np.array([10.0, 20, 5, 15]))
    np.testing.assert_array_equal(increases, [10.0, 5.0, 10.0])


def test_counter_increases_needs_two_samples():
    assert counter_increases(np.array([1.0]), np.array([5.0])).shape == (0,)


# -- histogram_quantile -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        (0.05, 0.0 + (0.1 - 0.0) * 5 / 10),  # first bucket: lower bound 0
        (0.25, 0.1 + (0.5 - 0.1) * (25 - 10) / (50 - 10)),
        (0.50, 0.1 + (0.5 - 0.1) * (50 - 10) / (50 - 10)),
        (0.80, 0.5 + (1.0 - 0.5) * (80 - 50) / (90 - 50)),
        (0.90, 1.0),
        (0.95, 1.0),  # falls in +Inf: the highest finite bound
        (1.00, 1.0),
    ],
)
def test_histogram_quantile_interpolates_like_prometheus(q, expected):
    assert histogram_quantile(q, [0.1, 0.5, 1.0, INF], [10, 50, 90, 100]) == pytest.approx(expected)


def test_histogram_quantile_ignores_order_and_adds_equal_bounds():
    shuffled = histogram_quantile(0.8, [1.0, INF, 0.1, 0.5], [90, 100, 10, 50])
    assert shuffled == pytest.approx(0.875)
    # Two label sets with the same bound are added, as sum by (le) would.
    doubled = histogram_quantile(0.8, [0.1, 0.1, 0.5, 0.5, 1.0, 1.0, INF, INF], [5, 5, 25, 25, 45, 45, 50, 50])
    assert doubled == pytest.approx(0.875)


@pytest.mark.parametrize(
    ("q", "les", "counts", "expected"),
    [
        (-0.1, [0.1, INF], [1, 2], -INF),
        (1.1, [0.1, INF], [1, 2], INF),
        (0.5, [0.1, 0.5, INF], [0, 0, 0], math.nan),  # no observations
        (0.5, [0.1, 0.5, 1.0], [1, 2, 3], math.nan),  # no +Inf bucket
        (0.5, [INF], [10], math.nan),  # fewer than two buckets
        (0.5, [], [], math.nan),
        (0.2, [0.0, 1.0, INF], [5, 10, 10], 0.0),  # first bound <= 0 gives that bound
        # Counts that drop with le (a scrape taken mid-update) are raised to the running maximum:
        # [10, 30, 25, 40] is read as [10, 30, 30, 40], rank 28 falls in (0.1, 0.5].
        (0.7, [0.1, 0.5, 1.0, INF], [10, 30, 25, 40], 0.1 + 0.4 * (28 - 10) / (30 - 10)),
    ],
)
def test_histogram_quantile_edge_cases(q, les, counts, expected):
    result = histogram_quantile(q, les, counts)
    if math.isnan(expected):
        assert math.isnan(result)
    else:
        assert result == pytest.approx(expected)


def test_histogram_quantile_nan_q_is_nan():
    assert math.isnan(histogram_quantile(math.nan, [0.1, INF], [1, 2]))


def test_histogram_quantile_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="les and counts must have the same length; got 2 bounds and 3 counts"):
        histogram_quantile(0.5, [0.1, INF], [1, 2, 3])


# -- parse_scrape -----------------------------------------------------------------------------


def test_parse_scrape_with_a_path_filter():
    triples = parse_scrape(EXPOSITION, config(path_regex=".*predict"))
    assert triples == [
        ("requests", -1.0, 1010.0),
        ("errors", -1.0, 10.0),
        ("latency_bucket", 0.1, 600.0),
        ("latency_bucket", 0.5, 950.0),
        ("latency_bucket", 1.0, 1005.0),
        ("latency_bucket", INF, 1010.0),
        ("latency_count", -1.0, 1010.0),
        ("latency_sum", -1.0, 150.5),
    ]


def test_parse_scrape_without_a_filter_sums_every_label_set():
    values = {(s, le): v for s, le, v in parse_scrape(EXPOSITION, config())}
    assert values[("requests", -1.0)] == 1000 + 7 + 3 + 50 + 2
    assert values[("errors", -1.0)] == 7 + 3 + 2
    assert values[("latency_bucket", 0.1)] == 650.0
    assert values[("latency_bucket", INF)] == 1060.0
    assert values[("latency_sum", -1.0)] == pytest.approx(151.0)


def test_parse_scrape_is_anchored_like_promql():
    # "predict" alone does not match "/predict" (PromQL's =~ is fully anchored).
    # The series are exposed, so they are stored as 0: the first matching requests then
    # count as an increase instead of as the starting point.
    triples = parse_scrape(EXPOSITION, config(path_regex="predict"))
    assert triples == [
        ("requests", -1.0, 0.0), ("errors", -1.0, 0.0),
        ("latency_bucket", 0.1, 0.0), ("latency_bucket", 0.5, 0.0), ("latency_bucket", 1.0, 0.0),
        ("latency_bucket", INF, 0.0), ("latency_count", -1.0, 0.0), ("latency_sum", -1.0, 0.0),
    ]


def test_parse_scrape_finds_an_untyped_counter_and_the_name_without_total():
    untyped = "\n".join(line for line in EXPOSITION.splitlines() if not line.startswith("#")) + "\n"
    expected = parse_scrape(EXPOSITION, config(path_regex=".*predict"))
    assert parse_scrape(untyped, config(path_regex=".*predict")) == expected
    assert parse_scrape(EXPOSITION, config(path_regex=".*predict", requests="http_requests")) == expected


def test_parse_scrape_counts_series_without_the_path_label_and_grouped_statuses():
    text = (
        "# TYPE requests_total counter\n"
        'requests_total{code="2xx"} 40\n'
        'requests_total{code="5xx"} 2\n'
        "requests_total 3\n"
    )
    triples = parse_scrape(text, config(requests="requests_total", status_label="code", path_regex="/never"))
    assert triples == [("requests", -1.0, 45.0), ("errors", -1.0, 2.0)]


def test_parse_scrape_without_a_histogram_still_gives_request_counts():
    text = '# TYPE http_requests_total counter\nhttp_requests_total{path="/predict",status="200"} 5\n'
    assert parse_scrape(text, config()) == [("requests", -1.0, 5.0), ("errors", -1.0, 0.0)]


def test_a_scrape_without_the_series_is_a_message_naming_what_it_has():
    with pytest.raises(ValueError, match=r"no request counter or latency histogram Vantage knows .* It exposes "
                                         r"other_total"):
        parse_scrape("# TYPE other_total counter\nother_total 5\n", config(requests=None, latency=None))
    with pytest.raises(ValueError, match=r"requests = 'http_requests_total' not found in the scrape; it exposes "
                                         r"other_total"):
        parse_scrape("# TYPE other_total counter\nother_total 5\n", config(requests="http_requests_total"))
    with pytest.raises(ValueError, match=r"(?i)it exposes nothing"):
        parse_scrape("", config(requests=None, latency=None))


MLSERVER_TEXT = """\
# TYPE rest_server_requests counter
rest_server_requests_total{app_name="mlserver",method="POST",path="/v2/models/{model_name}/infer",status_code="200"} 7
rest_server_requests_total{app_name="mlserver",method="POST",path="/v2/models/{model_name}/infer",status_code="500"} 1
rest_server_requests_total{app_name="mlserver",method="GET",path="/v2/health/live",status_code="200"} 30
# TYPE rest_server_request_duration_seconds histogram
rest_server_request_duration_seconds_bucket{path="/v2/models/{model_name}/infer",le="0.1"} 6
rest_server_request_duration_seconds_bucket{path="/v2/models/{model_name}/infer",le="+Inf"} 8
rest_server_request_duration_seconds_count{path="/v2/models/{model_name}/infer"} 8
rest_server_request_duration_seconds_sum{path="/v2/models/{model_name}/infer"} 0.5
"""

KSERVE_TEXT = """\
# TYPE request_predict_seconds histogram
request_predict_seconds_bucket{model_name="iris",le="0.005"} 40
request_predict_seconds_bucket{model_name="iris",le="+Inf"} 42
request_predict_seconds_count{model_name="iris"} 42
request_predict_seconds_sum{model_name="iris"} 0.12
"""

TRITON_TEXT = """\
# TYPE nv_inference_request_success counter
nv_inference_request_success{model="densenet",version="1"} 90
# TYPE nv_inference_request_failure counter
nv_inference_request_failure{model="densenet",version="1"} 3
"""


def test_mlserver_kserve_and_triton_names_are_recognised_without_configuration():
    auto = config(requests=None, latency=None, status_label=None, path_label=None, path_regex=".*infer")
    mlserver = {(series, le): value for series, le, value in parse_scrape(MLSERVER_TEXT, auto)}
    assert (mlserver[("requests", -1.0)], mlserver[("errors", -1.0)]) == (8.0, 1.0)  # infer only, 5xx its errors
    assert mlserver[("latency_count", -1.0)] == 8.0 and mlserver[("latency_bucket", 0.1)] == 6.0
    # KServe exposes only the histogram: its _count gives the request rate
    kserve = {(series, le): value for series, le, value in parse_scrape(KSERVE_TEXT, config(
        requests=None, latency=None, path_regex=".*"))}
    assert kserve[("requests", -1.0)] == 42.0 and kserve[("latency_sum", -1.0)] == pytest.approx(0.12)
    assert ("errors", -1.0) not in kserve  # not counted, not guessed
    triton = {(series, le): value for series, le, value in parse_scrape(TRITON_TEXT, config(
        requests=None, latency=None))}
    assert (triton[("requests", -1.0)], triton[("errors", -1.0)]) == (93.0, 3.0)  # successes + failures


@pytest.mark.parametrize("text", ["<html><body>Not Found</body></html>", '{"detail": "Not Found"}'])
def test_parse_scrape_rejects_text_that_is_not_an_exposition(text):
    with pytest.raises(ValueError, match=r"not Prometheus text exposition, so neither the request counter nor the "
                                         r"latency histogram can be read"):
        parse_scrape(text, config())


def test_parse_scrape_rejects_a_bad_regex():
    with pytest.raises(ValueError, match=r"metrics.path_regex must be a regular expression; got '\('"):
        parse_scrape(EXPOSITION, config(path_regex="("))


# -- traffic_over_time ------------------------------------------------------------------------


def samples_frame(rows: list[tuple[float, str, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["ts", "series", "le", "value"])


NO_ROLLUPS = pd.DataFrame(columns=["bucket_ts", "series", "le", "increase"])


def test_traffic_over_time_rates_across_a_reset():
    requests = [0, 30, 60, 10, 40, 70]  # the process restarts between 60 s and 90 s
    errors = [0, 0, 3, 0, 1, 1]
    ts = [0, 30, 60, 90, 120, 150]
    samples = samples_frame(
        [(t, "requests", -1.0, v) for t, v in zip(ts, requests, strict=True)]
        + [(t, "errors", -1.0, v) for t, v in zip(ts, errors, strict=True)]
    )
    result = traffic_over_time(samples, NO_ROLLUPS, bucket_seconds=60)
    assert list(result.columns) == ["bucket_ts", "requests", "errors", "request_rate", "error_rate",
                                    "p50_ms", "p95_ms", "p99_ms"]
    # Increases 30 | 30, 10 (the reset) | 30, 30, each in the bucket of its later sample.
    np.testing.assert_array_equal(result["bucket_ts"], [0.0, 60.0, 120.0])
    np.testing.assert_array_equal(result["requests"], [30.0, 40.0, 60.0])
    np.testing.assert_allclose(result["request_rate"], [0.5, 40 / 60, 1.0])
    np.testing.assert_array_equal(result["errors"], [0.0, 3.0, 1.0])
    np.testing.assert_allclose(result["error_rate"], [0.0, 3 / 40, 1 / 60])
    assert result[["p50_ms", "p95_ms", "p99_ms"]].isna().all().all()


def test_traffic_over_time_error_rate_is_nan_without_requests():
    samples = samples_frame([(0, "requests", -1.0, 5), (10, "requests", -1.0, 5),
                             (0, "errors", -1.0, 0), (10, "errors", -1.0, 0)])
    result = traffic_over_time(samples, NO_ROLLUPS, bucket_seconds=60)
    assert result["requests"].tolist() == [0.0]
    assert math.isnan(result["error_rate"].iloc[0])


def test_traffic_over_time_quantiles_from_bucket_increases():
    les = [0.1, 0.5, 1.0, INF]
    first = [100, 200, 300, 300]
    second = [110, 250, 390, 400]  # increases 10, 50, 90, 100: p50 = 0.5 s, p95 = 1 s
    samples = samples_frame([(0, "latency_bucket", le, v) for le, v in zip(les, first, strict=True)]
                            + [(30, "latency_bucket", le, v) for le, v in zip(les, second, strict=True)])
    result = traffic_over_time(samples, NO_ROLLUPS, bucket_seconds=60, quantiles=(0.25, 0.5, 0.95))
    assert result["p25_ms"].iloc[0] == pytest.approx(250.0)
    assert result["p50_ms"].iloc[0] == pytest.approx(500.0)
    assert result["p95_ms"].iloc[0] == pytest.approx(1000.0)
    assert math.isnan(result["requests"].iloc[0])  # no request counter: unknown, not 0
    assert math.isnan(result["error_rate"].iloc[0])


def test_traffic_over_time_adds_rollups_rebucketed():
    rollups = pd.DataFrame(
        [(0, "requests", -1.0, 100), (300, "requests", -1.0, 20), (300, "errors", -1.0, 4),
         (600, "requests", -1.0, 60)],
        columns=["bucket_ts", "series", "le", "increase"],
    )
    samples = samples_frame([(600, "requests", -1.0, 1000), (700, "requests", -1.0, 1030)])
    result = traffic_over_time(samples, rollups, bucket_seconds=600)
    np.testing.assert_array_equal(result["bucket_ts"], [0.0, 600.0])
    np.testing.assert_array_equal(result["requests"], [120.0, 90.0])
    np.testing.assert_array_equal(result["errors"], [4.0, 0.0])
    np.testing.assert_allclose(result["error_rate"], [4 / 120, 0.0])


def test_traffic_over_time_empty_and_bad_arguments():
    result = traffic_over_time(samples_frame([]), NO_ROLLUPS, bucket_seconds=60)
    assert result.empty
    assert "p95_ms" in result.columns
    with pytest.raises(ValueError, match="bucket_seconds must be a positive number of seconds; got 0"):
        traffic_over_time(samples_frame([]), NO_ROLLUPS, bucket_seconds=0)
    with pytest.raises(ValueError, match=r"quantiles must be one or more numbers in \[0, 1\]; got \(95,\)"):
        traffic_over_time(samples_frame([]), NO_ROLLUPS, bucket_seconds=60, quantiles=(95,))
    with pytest.raises(ValueError, match=r"samples must have columns .*missing \['le'\]"):
        traffic_over_time(pd.DataFrame(columns=["ts", "series", "value"]), NO_ROLLUPS, bucket_seconds=60)


def test_quantile_column_names():
    assert [quantile_column(q) for q in (0.5, 0.95, 0.99, 0.999)] == ["p50_ms", "p95_ms", "p99_ms", "p99.9_ms"]


def test_traffic_from_raw_and_rollups_matches_raw_only(tmp_path):
    """Downsampling a real store keeps every increase: the same totals per bucket."""
    store = Store("sqlite:///" + str(tmp_path / "metrics.db"))
    rng = np.random.default_rng(0)
    start, step, n = 1_700_000_000.0 - 1_700_000_000.0 % 3600, 15.0, 4 * 240  # 4 h of scrapes
    requests = errors = 0.0
    buckets = np.zeros(4)
    les = [0.1, 0.5, 1.0, INF]
    for i in range(n):
        if i == n // 3:  # a restart: every counter starts again
            requests = errors = 0.0
            buckets[:] = 0
        new = rng.poisson(20)
        requests += new
        errors += rng.binomial(new, 0.05)
        latencies = rng.lognormal(-1.5, 0.8, size=new)
        buckets += [np.sum(latencies <= le) for le in les]
        store.write_metric_samples("svc", start + i * step, [
            ("requests", -1.0, requests), ("errors", -1.0, errors),
            *[("latency_bucket", le, float(c)) for le, c in zip(les, buckets, strict=True)],
        ])
    end = start + n * step
    before = traffic_over_time(store.read_metric_samples("svc", since=0), store.read_metric_rollups("svc", since=0),
                               bucket_seconds=1800)
    folded = store.downsample(raw_retention_hours=1, retention_days=30, rollup_minutes=5, now=end)
    assert folded > 0
    assert not store.read_metric_rollups("svc", since=0).empty
    after = traffic_over_time(store.read_metric_samples("svc", since=0), store.read_metric_rollups("svc", since=0),
                              bucket_seconds=1800)
    pd.testing.assert_frame_equal(before, after)
