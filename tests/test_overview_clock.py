"""The Overview's recommendation for the demo holds at every hour of the day (time is an input).

Four weeks of demo traffic with its scripted data drift (day 14) and concept drift (day 18)
and labels arriving two to five days after each prediction; the overview is computed at 24
hourly "now"s of one day after the concept drift, and of one day before any drift.
"""

import re

import pandas as pd
import pytest

from demo.data import CONCEPT_DRIFT_START_DAY, DRIFT_START_DAY, FEATURES, TARGET
from monitoring.baseline import Baseline
from monitoring.drift import build_profile
from monitoring.labels import join_labels
from monitoring.overview import service_overview
from monitoring.reference import read_reference

DAY = 86400.0
HISTORY_START = 1_790_000_000.0 - (1_790_000_000.0 % DAY)  # a midnight UTC in 2026


@pytest.fixture(scope="module")
def demo_history(demo_model):
    from demo.replayer import scored_history

    frame = scored_history(demo_model, 28 * 700, history_start=HISTORY_START, random_state=11)
    labels = pd.DataFrame({"prediction_id": frame["id"], "ts": frame["ts"] + frame["label_delay_days"] * DAY,
                           "label": frame[TARGET].astype(float)})
    reference = read_reference(demo_model.reference_path, features=tuple(FEATURES))
    profile = build_profile(reference, dict(FEATURES))
    baseline = Baseline(values={m: float(demo_model.metrics[m]) for m in ("accuracy", "roc_auc", "log_loss")},
                        source="configuration")
    logged = frame.drop(columns=[TARGET, "label_delay_days"])
    return logged, labels, profile, baseline


@pytest.fixture(autouse=True)
def _quiet_partial_days():
    import warnings

    from monitoring.drift import DriftWarning

    with warnings.catch_warnings():  # today's window may hold no value of a column yet: said in the report
        warnings.simplefilter("ignore", DriftWarning)
        yield


def overview_at(demo_history, now: float):
    logged, labels, profile, baseline = demo_history
    served = logged[logged["ts"] <= now]
    labeled = join_labels(served, labels, now=now)
    return service_overview("credit", frame=served, now=now, profile=profile, labeled=labeled, baseline=baseline)


def hours_of_day(day: float) -> list[float]:
    return [HISTORY_START + day * DAY + hour * 3600.0 + 180.0 for hour in range(24)]  # hh:03 of that day


def test_after_the_concept_drift_retraining_is_recommended_at_every_hour(demo_history):
    day = CONCEPT_DRIFT_START_DAY + 7  # the judged week holds labelled predictions after the change
    headlines, since_days = set(), set()
    for now in hours_of_day(day):
        overview = overview_at(demo_history, now)
        found = overview.alerts(state="up")
        assert found.action == "retrain", (now, found.recommendation, overview.verdict.message)
        assert overview.verdict.state == "worse"
        gap = overview.verdict.baseline - overview.verdict.value
        assert gap > 0.04  # the sentence agrees with the chart: several points below
        # worse since the data drift made the inputs harder, or since the concept changed: a day of the chart
        since_day = (overview.verdict.worse_since - HISTORY_START) / DAY
        assert DRIFT_START_DAY <= since_day <= CONCEPT_DRIFT_START_DAY + 1, since_day
        assert since_day == int(since_day)
        since_days.add(since_day)
        headlines.add(re.sub(r"\d+ points", "N points", found.recommendation))
        # today's window is partial: shown, never deciding
        assert overview.drift.dataset["partial"].iloc[-1]
        assert overview.counts.mix["partial"].tolist()[-2:] == [False, True]
    # the same sentence whenever it is opened that day (the gap may move by a point as labels arrive)
    assert len(headlines) == 1 and len(since_days) == 1, (headlines, since_days)


def test_before_any_drift_retraining_is_never_recommended(demo_history):
    day = DRIFT_START_DAY - 2
    for now in hours_of_day(day):
        overview = overview_at(demo_history, now)
        found = overview.alerts(state="up")
        assert found.action != "retrain", (now, found.recommendation)
        assert found.n_drifted == 0, (now, found.recommendation)
        assert overview.verdict.state != "worse", overview.verdict.message


def test_the_results_sentence_names_value_interval_and_labels(demo_history):
    overview = overview_at(demo_history, hours_of_day(CONCEPT_DRIFT_START_DAY + 7)[8])
    sentence = overview.sentences()[0]
    assert sentence.startswith("Results: Accuracy over the last 7 days: ")
    assert "95% interval" in sentence and "predictions with a known outcome" in sentence
    assert "below the expected" in sentence and "since" in sentence
