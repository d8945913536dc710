"""The Overview: plain-language findings from known results, and the page through AppTest."""

import math
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from monitoring.labels import LabelQuality
from monitoring.overview import (
    performance_sentence,
    prediction_counts,
    prediction_mix,
    prediction_volume,
    service_alerts,
)
from monitoring.performance import BaselineVerdict
from tests.helpers import page_text

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
DAY = 86400.0
NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC).timestamp()
NOV_12 = datetime(2026, 11, 12, tzinfo=UTC).timestamp()


def drift_report(drifted: dict[str, bool]):
    """A stand-in for a DriftReport: only ``features`` is read."""
    rows = [{"window": w, "feature": f, "drifted": d and w == 1, "partial": False}
            for w in (0, 1) for f, d in drifted.items()]
    features = pd.DataFrame(rows)
    return SimpleNamespace(features=features, closed=features)


def test_volume_counts_today_seven_days_and_the_trend():
    midnight = datetime(2026, 11, 20, tzinfo=UTC).timestamp()
    ts = np.concatenate([np.full(5, midnight + 60), np.full(3, midnight - 60),  # today, yesterday
                         np.full(4, NOW - 10 * DAY), [NOW + 60]])  # the week before; in the future
    volume = prediction_volume(ts, now=NOW)
    assert (volume.today, volume.last_7_days, volume.previous_7_days) == (5, 8, 4)
    # a handful of predictions the week before gives no percentage ("+99800%"), but "new this week"
    assert math.isnan(volume.trend)
    assert volume.trend_text() == "new this week: only 4 predictions in the 7 days before"
    busy = prediction_volume(np.concatenate([np.repeat(ts[:8], 50), np.repeat(ts[8:12], 50)]), now=NOW)
    assert (busy.last_7_days, busy.previous_7_days) == (400, 200)
    assert busy.trend == pytest.approx(1.0)
    assert busy.trend_text() == "100% more than the 7 days before"
    dropped = prediction_volume(np.concatenate([ts[:3], np.repeat(ts[8:12], 50)]), now=NOW)
    assert math.isnan(dropped.trend) and dropped.trend_text() == (
        "only 3 predictions in these 7 days, against 200 in the 7 days before")
    empty = prediction_volume(np.array([]), now=NOW)
    assert math.isnan(empty.trend) and "no predictions" in empty.trend_text()


def test_prediction_mix_is_the_positive_share_or_the_mean_per_day():
    frame = pd.DataFrame({"ts": [0.0, 10.0, 20.0, 2 * DAY + 5], "prediction": [1.0, 0.0, 1.0, 0.0]})
    mix = prediction_mix(frame, task="classification", classes=(0.0, 1.0))
    assert mix["bucket_ts"].tolist() == [0.0, 2 * DAY]
    assert mix["n"].tolist() == [3, 1]
    assert mix["value"].tolist() == pytest.approx([2 / 3, 0.0])
    assert mix.attrs["measure"] == "positive rate"
    assert mix["partial"].tolist() == [False, False]
    assert prediction_mix(frame, task="classification", classes=(0.0, 1.0), now=2 * DAY + 60)["partial"].tolist() == [
        False, True]
    regression = prediction_mix(frame.assign(prediction=[2.0, 4.0, 6.0, 1.0]), task="regression")
    assert regression["value"].tolist() == pytest.approx([4.0, 1.0])
    assert regression.attrs["measure"] == "mean predicted value"
    assert prediction_mix(frame, task="regression", since=10 * DAY).empty


def test_model_age_is_time_since_the_newest_versions_first_prediction():
    frame = pd.DataFrame({"ts": [0.0, 100.0, 200.0, 300.0], "prediction": [0.0, 1.0, 1.0, 2.0],
                          "model_version": ["1", "2", "1", "2"]})
    counts = prediction_counts(frame, now=1000.0)
    assert (counts.model_version, counts.model_age_seconds) == ("2", 900.0)
    assert (counts.task, counts.classes, counts.n_rows) == ("classification", (0.0, 1.0, 2.0), 4)
    unversioned = prediction_counts(frame.drop(columns="model_version"), now=1000.0)
    assert unversioned.model_version is None and math.isnan(unversioned.model_age_seconds)
    numbers = prediction_counts(frame.assign(prediction=[0.5, 1.25, 3.0, 7.5]), now=250.0)  # one row after now
    assert (numbers.task, numbers.classes, numbers.n_rows) == ("regression", (), 3)
    assert numbers.mix["value"].tolist() == pytest.approx([(0.5 + 1.25 + 3.0) / 3])


def test_worse_results_and_drift_recommend_retraining_in_one_sentence():
    verdict = BaselineVerdict("worse", "accuracy", value=0.80, low=0.78, high=0.82, baseline=0.86,
                              window_start=NOV_12 + 5 * DAY, worse_since=NOV_12)
    drift = drift_report({"income": True, "channel": True, "age": False, "debt_ratio": True})
    found = service_alerts(state="up", drift=drift, verdict=verdict)
    assert found.recommendation == "Accuracy is 6 points below baseline since 12 Nov and 3 features drifted: " \
                                   "retraining recommended."
    assert found.action == "retrain" and found.n_drifted == 3
    assert [a.level for a in found.alerts] == ["error", "warning"]
    assert "income, channel, debt_ratio" in found.alerts[1].message


@pytest.mark.parametrize(("state", "worse", "drifted", "action", "headline"), [
    ("up", False, False, "none", "No action needed."),
    ("up", False, True, "watch", "1 feature drifted: keep watching, no retraining needed yet."),
    ("up", True, False, "investigate", "Accuracy is 6 points below baseline since 12 Nov: worth investigating"),
    ("down", True, True, "fix_service", "Fix the service first: it is not answering properly. Then: Accuracy is "
                                        "6 points below baseline since 12 Nov and 1 feature drifted: retraining"),
    ("down", False, False, "fix_service", "Fix the service first: it is not answering properly."),
])
def test_each_combination_gives_one_action(state, worse, drifted, action, headline):
    verdict = BaselineVerdict("worse" if worse else "in line", "accuracy", value=0.80 if worse else 0.86,
                              baseline=0.86, window_start=NOV_12, worse_since=NOV_12 if worse else None)
    found = service_alerts(state=state, reason="connection refused", verdict=verdict,
                           drift=drift_report({"income": drifted, "age": False}))
    assert service_alerts(state="up", performance_problem="no log").action == "unknown"
    assert found.action == action
    assert found.recommendation.startswith(headline)
    if state == "down":
        assert found.alerts[0].level == "error" and "connection refused" in found.alerts[0].message


def test_regression_gap_label_problems_and_missing_inputs_are_plain_sentences():
    verdict = BaselineVerdict("worse", "mae", value=7.2, baseline=3.0, window_start=NOV_12, worse_since=NOV_12)
    quality = LabelQuality(received=500, used=88, unmatched=412)
    found = service_alerts(state="degraded", reason="slow", verdict=verdict, quality=quality,
                           drift_problem="no reference data", volume=prediction_volume(np.array([]), now=NOW))
    assert found.recommendation == "The average error is 4.2 above baseline since 12 Nov: worth investigating " \
                                   "before retraining."
    messages = [a.message for a in found.alerts]
    assert "The service is degraded: slow." in messages
    assert any(m.startswith("412 labels matched no prediction") for m in messages)
    assert "Changes in the incoming data cannot be checked: no reference data" in messages
    assert "The service made no predictions in the last 7 days." in messages
    unknown = BaselineVerdict("unknown", "accuracy", message="No window has 30 labels yet, so Accuracy cannot be "
                                                             "judged.")
    assert performance_sentence(unknown) == unknown.message
    assert performance_sentence(BaselineVerdict("in line", "accuracy", value=0.851, baseline=0.86)) == (
        "Accuracy: 85%, in line with the expected 86%.")
    judged = BaselineVerdict("worse", "accuracy", value=0.79, low=0.776, high=0.804, baseline=0.87,
                             worse_since=NOV_12, n_labelled=3412, period_start=NOW - 7 * DAY, period_end=NOW)
    assert performance_sentence(judged) == (
        "Accuracy over the last 7 days: 79% (95% interval 78%–80%, 3,412 predictions with a known outcome), "
        "8 points below the expected 87% since 12 Nov.")
    few = BaselineVerdict("uncertain", "accuracy", value=0.79, low=0.62, high=0.9, baseline=0.87, n_labelled=31,
                          period_start=NOW - 7 * DAY, period_end=NOW)
    assert "too few known outcomes to tell" in performance_sentence(few)
    assert "in line" not in performance_sentence(few)


# -- the page ---------------------------------------------------------------------------------


def test_overview_is_the_landing_page_and_says_what_to_do(app):
    from demo.data import DRIFTED_FEATURES

    at = app.run()
    assert not at.exception, at.exception
    text = page_text(at)
    assert at.title[0].value == "Overview"
    assert "credit" in text and "unlogged" in text
    assert "features drifted" in text and all(f in text for f in DRIFTED_FEATURES)
    assert "2 labels matched no prediction (such as 'ghost-1', 'ghost-2')" in text
    assert "version 7" in text
    assert "Predictions today (UTC)" in [m.label for m in at.metric]
    last_week = next(m for m in at.metric if m.label.startswith("Predictions, last 7 days"))
    assert int(last_week.value.replace(",", "")) > 2000
    assert "no prediction log in the store" in text  # the second service: a state, not an exception
    assert "Accuracy is" in text  # after "Fix the service first ... Then:" once the collector found port 9 closed
    assert "points below baseline since" in text and "features drifted: retraining recommended." in text
    assert "Results cannot be measured: service 'unlogged' has no prediction log" in text
    assert "Nothing can be judged yet" in text or "Fix the service first" in text  # unpolled, or found down
    charts = sorted(c.proto.id.split("overview_")[-1] for c in at.get("plotly_chart"))
    assert charts == ["mix_credit", "money_credit"], charts  # the credit service's prediction mix and money
    assert at.download_button(key="overview_report").label == "Download this overview as one HTML file"
    at.run()  # warm rerun
    assert not at.exception, at.exception
