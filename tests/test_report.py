"""The shareable report: one self-contained HTML file that opens offline in headless Chromium with its charts."""

import time

import numpy as np
import pandas as pd
import pytest

from explain.segments import fairness_metrics, segment_metrics
from monitoring.drift import build_profile, compute_drift
from monitoring.labels import join_labels
from monitoring.overview import prediction_mix, prediction_volume, service_alerts
from monitoring.performance import (
    Baseline,
    BusinessValues,
    baseline_verdict,
    decisions_over_time,
    performance_over_time,
)
from monitoring.report import render_report, service_report

DAY = 86400.0


@pytest.fixture(scope="module")
def report_html():
    """A report of one service with every section, from results computed on known data."""
    rng = np.random.default_rng(0)
    now = time.time()
    n = 3000
    ts = np.sort(now - rng.uniform(0, 20 * DAY, n))
    channel = rng.choice(["web", "branch", "phone"], n)
    income = rng.normal(3000, 500, n) + np.where(ts > now - 7 * DAY, 800, 0)  # drifts in the last week
    score = rng.random(n)
    label = (rng.random(n) < score).astype(float)
    ids = [f"p{i}" for i in range(n)]
    predictions = pd.DataFrame({"id": ids, "ts": ts, "prediction": (score > 0.5).astype(float), "score": score})
    labels = pd.DataFrame({"prediction_id": ids, "ts": ts + 2 * DAY, "label": label})
    labeled = join_labels(predictions, labels, now=now)
    performance = performance_over_time(labeled, window="day", baseline=Baseline({"accuracy": 0.95}, "config"))
    decisions = decisions_over_time(labeled, window="day", threshold=0.5,
                                    business=BusinessValues(5.0, 50.0, 1.0, "EUR"))
    reference = pd.DataFrame({"income": rng.normal(3000, 500, 2000), "channel": rng.choice(["web", "branch", "phone"],
                                                                                           2000)})
    profile = build_profile(reference, {"income": "numeric", "channel": "categorical"})
    production = predictions.assign(income=income, channel=channel)
    drift = compute_drift(profile, production[production["ts"] >= now - 10 * DAY], window="day")
    frame = production.assign(label=labeled.frame["label"].to_numpy())
    alerts = service_alerts(state="up", drift=drift, verdict=baseline_verdict(performance, "accuracy"),
                            quality=labeled.quality)
    report = service_report(
        "credit <&> scoring", state="up", status_line="Status: all checks passed.", model_line="Model: credit, v7.",
        alerts=alerts, volume=prediction_volume(ts, now=now), sentences=["Results: fine."],
        mix=prediction_mix(predictions, task="classification", classes=(0.0, 1.0)), performance=performance,
        decisions=decisions, drift=drift,
        segments=segment_metrics(frame, ["channel"], task="classification", classes=(0.0, 1.0)),
        fairness=fairness_metrics(frame["prediction"], frame["channel"], y_true=frame["label"],
                                  sensitive_feature="channel"))
    empty = service_report("quiet", state="down", status_line="Status: connection refused.", model_line="Model: ?")
    return render_report([report, empty], generated_at=now), alerts


def test_report_is_one_self_contained_page(report_html):
    page, alerts = report_html
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert page.count("Plotly.newPlot") == 4  # prediction mix, accuracy, money, drifted share
    assert page.count("plotly.js v") == 1  # one inline copy
    assert "<script src=" not in page and "<link " not in page and 'src="http' not in page  # nothing fetched
    assert "credit &lt;&amp;&gt; scoring" in page  # text is escaped
    assert alerts.recommendation.replace("'", "&#x27;") in page
    assert "retraining recommended" in alerts.recommendation  # accuracy ~0.75 against 0.95, income drifted
    for title in ("Accuracy per day", "Incoming data against the training data", "Segments by channel",
                  "Fairness across channel", "predictions today (UTC)"):
        assert title in page


@pytest.mark.browser
def test_report_opens_offline_in_headless_chromium_and_shows_its_charts(report_html, tmp_path, open_page):
    page_text, _ = report_html
    path = tmp_path / "report.html"
    path.write_text(page_text, encoding="utf-8")
    page = open_page(offline=True)
    requested = []
    page.context.route("**/*", lambda route: (requested.append(route.request.url), route.abort())
                       if not route.request.url.startswith("file:") else route.continue_())
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(path.as_uri(), wait_until="load")
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 4", timeout=30_000)
    assert page.locator(".js-plotly-plot").count() == 4
    assert page.locator("table").count() == 4  # performance, drift, segments, fairness
    assert not errors, errors
    assert not requested, requested


@pytest.mark.browser
@pytest.mark.integration
def test_the_overview_download_button_gives_the_report(dashboard_url, tmp_path, open_page):
    from playwright.sync_api import expect

    page = open_page(accept_downloads=True)
    page.goto(dashboard_url, wait_until="domcontentloaded")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible(timeout=90_000)
    button = page.get_by_role("button", name="Download this overview as one HTML file")
    expect(button).to_be_visible(timeout=60_000)
    with page.expect_download(timeout=120_000) as download:
        button.click()
    saved = tmp_path / "vantage-report.html"
    download.value.save_as(saved)
    report = open_page(offline=True)
    report.goto(saved.as_uri(), wait_until="load")
    expect(report.locator("h2", has_text="credit-risk").first).to_be_visible()
    expect(report.get_by_text("Fairness across").first).to_be_visible()
    report.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 1",
                             timeout=30_000)
    assert report.locator(".js-plotly-plot").count() >= 1
