"""The judged-period verdict: pooled intervals with known answers, the change point at every hour, bad input."""

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, mean_absolute_error

from demo.data import CONCEPT_DRIFT_START_DAY, DEFAULT_HISTORY_START, SECONDS_PER_DAY, TARGET, generate
from demo.model import predict_frame
from monitoring.labels import join_labels
from monitoring.performance import (
    Baseline,
    BaselineVerdict,
    baseline_verdict,
    change_point,
    judged_verdict,
    performance_over_time,
    wilson_interval,
)
from monitoring.verdict import VERDICT_STATES, tolerance_for
from monitoring.windows import range_start

DAY = SECONDS_PER_DAY
START = DEFAULT_HISTORY_START  # 1 Jan 2025, 00:00 UTC
HOUR = 3600.0


def labeled_log(correct, ts, *, now, label_delay=0.0, seed=0, score=None):
    """Two-class predictions at ``ts``, right where ``correct``, each label arriving ``label_delay`` later."""
    rng = np.random.default_rng(seed)
    n = len(ts)
    label = rng.integers(0, 2, n).astype(float)
    prediction = np.where(correct, label, 1 - label)
    ids = [f"p{i}" for i in range(n)]
    predictions = pd.DataFrame({"id": ids, "ts": ts, "prediction": prediction})
    if score is not None:
        predictions["score"] = score
    labels = pd.DataFrame({"prediction_id": ids, "ts": np.asarray(ts) + label_delay, "label": label})
    return join_labels(predictions, labels, now=now)


def judge(labeled, *, baseline, metric="accuracy", window="day", range_days=30.0, min_labels=30, **options):
    performance = performance_over_time(labeled, window=window, min_labels=min_labels, n_bootstrap=50,
                                        baseline=baseline, since=range_start(labeled.now, range_days, window=window))
    return judged_verdict(labeled, performance, metric=metric, baseline=baseline, **options), performance


# -- the pooled value and its interval -------------------------------------------------------


def test_pooled_accuracy_has_the_wilson_interval_of_the_period_only():
    now = START + 20 * DAY + 8 * HOUR
    inside = np.linspace(now - 7 * DAY + 60, now - 60, 263)  # Newcombe (1998), Table I: 81 of 263
    before = np.linspace(START, now - 7 * DAY - 60, 500)  # all wrong, outside the period
    ts = np.r_[before, inside]
    spread = np.diff(np.arange(264) * 81 // 263) > 0  # 81 of 263 right, spread over the period
    correct = np.r_[np.zeros(500, dtype=bool), spread]
    labeled = labeled_log(correct, ts, now=now)
    verdict, _ = judge(labeled, baseline=Baseline({"accuracy": 0.87}))
    assert verdict.n_labelled == 263 and verdict.value == pytest.approx(81 / 263)
    assert (round(verdict.low, 4), round(verdict.high, 4)) == (0.2553, 0.3662)
    assert (verdict.period_start, verdict.period_end) == (now - 7 * DAY, now)
    assert verdict.state == "worse"
    assert verdict.message.startswith("Accuracy over the last 7 days: 0.308 (95% interval 0.255–0.366, 263 labels), "
                                      "0.562 below the baseline of 0.870; worse")
    # a shorter period and another confidence: the same rule
    short, _ = judge(labeled, baseline=Baseline({"accuracy": 0.87}), days=2.0, confidence=0.9)
    recent = inside >= now - 2 * DAY
    low, high = wilson_interval(int((recent & spread).sum()), int(recent.sum()), confidence=0.9)
    assert short.n_labelled == recent.sum() and (short.low, short.high) == (pytest.approx(low), pytest.approx(high))
    assert "over the last 2 days" in short.message and short.confidence == 0.9


def test_pooled_bootstrap_metric_equals_scikit_learn_and_is_reproducible():
    now = START + 10 * DAY
    rng = np.random.default_rng(3)
    ts = np.sort(rng.uniform(START, now, 3000))
    labeled = labeled_log(rng.random(3000) < 0.8, ts, now=now)
    first, _ = judge(labeled, baseline=Baseline({"f1": 0.8}), metric="f1", random_state=5)
    again, _ = judge(labeled, baseline=Baseline({"f1": 0.8}), metric="f1", random_state=5)
    pooled = labeled.frame[labeled.frame["ts"] >= now - 7 * DAY]
    assert first.value == pytest.approx(f1_score(pooled["label"], pooled["prediction"]))
    assert first.low < first.value < first.high and (first.low, first.high) == (again.low, again.high)
    assert first.n_labelled == len(pooled)


def test_in_line_better_and_uncertain():
    now = START + 8 * DAY
    rng = np.random.default_rng(4)
    many = np.sort(rng.uniform(START + DAY, now, 6000))
    in_line, _ = judge(labeled_log(rng.random(6000) < 0.87, many, now=now), baseline=Baseline({"accuracy": 0.87}))
    assert in_line.state == "in line" and abs(in_line.value - 0.87) < 0.02
    assert in_line.high - in_line.low < 2 * tolerance_for("accuracy", 0.87)
    assert "in line with the baseline of 0.870" in in_line.message and not in_line.reason
    better, _ = judge(labeled_log(rng.random(6000) < 0.95, many, now=now), baseline=Baseline({"accuracy": 0.87}))
    assert better.state == "better" and better.message.endswith(": better.")

    # 60 labels: the interval (about ±0.09) holds the baseline but cannot tell a 5-point drop from none
    few = np.sort(rng.uniform(START + 2 * DAY, now - DAY, 60))
    uncertain, _ = judge(labeled_log(np.arange(60) < 50, few, now=now), baseline=Baseline({"accuracy": 0.87}))
    assert uncertain.state == "uncertain" and uncertain.n_labelled == 60
    assert uncertain.low < 0.87 < uncertain.high and (uncertain.high - uncertain.low) / 2 > 0.05
    assert "too few labels to tell" in uncertain.message and "wider than ±0.05" in uncertain.reason
    assert "in line" not in uncertain.message
    assert set(VERDICT_STATES) == {"worse", "better", "in line", "uncertain", "unknown"}
    # the tolerance is an option
    loose, _ = judge(labeled_log(np.arange(60) < 50, few, now=now), baseline=Baseline({"accuracy": 0.87}),
                     tolerance=0.2)
    assert loose.state == "in line"


def test_lower_is_better_regression_pools_mae():
    now = START + 30 * DAY + 5 * HOUR
    rng = np.random.default_rng(6)
    n = 30 * 200
    ts = np.sort(rng.uniform(START, now, n))
    value = rng.normal(100, 20, n)
    noise = np.where(ts >= START + 20 * DAY, 6.0, 3.0)
    predicted = value + rng.normal(0, 1, n) * noise * math.sqrt(math.pi / 2)  # MAE 3, then 6
    ids = [f"r{i}" for i in range(n)]
    labeled = join_labels(pd.DataFrame({"id": ids, "ts": ts, "prediction": predicted}),
                          pd.DataFrame({"prediction_id": ids, "ts": ts, "label": value}), now=now)
    verdict, _ = judge(labeled, baseline=Baseline({"mae": 3.0}), metric="mae")
    pooled = labeled.frame[labeled.frame["ts"] >= now - 7 * DAY]
    assert verdict.value == pytest.approx(mean_absolute_error(pooled["label"], pooled["prediction"]))
    assert verdict.state == "worse" and verdict.worse_since == START + 20 * DAY
    assert "above the baseline of 3.000 (lower is better); worse in every day since 21 Jan." in verdict.message
    assert tolerance_for("mae", 3.0) == pytest.approx(0.15)


# -- worse since: the change point -----------------------------------------------------------


def test_the_verdict_and_worse_since_are_the_same_at_every_hour_of_a_day():
    """Accuracy falls from 0.87 to 0.78 on day 18; labels arrive up to six hours late; now steps hourly."""
    rng = np.random.default_rng(11)
    days, per_day, change = 30, 400, 18
    ts = np.sort(rng.uniform(START, START + days * DAY, days * per_day))
    correct = rng.random(len(ts)) < np.where(ts >= START + change * DAY, 0.78, 0.87)
    delay = rng.uniform(0, 6 * HOUR, len(ts))
    rng_labels = np.random.default_rng(0)
    label = rng_labels.integers(0, 2, len(ts)).astype(float)
    ids = [f"p{i}" for i in range(len(ts))]
    predictions = pd.DataFrame({"id": ids, "ts": ts, "prediction": np.where(correct, label, 1 - label)})
    labels = pd.DataFrame({"prediction_id": ids, "ts": ts + delay, "label": label})
    baseline = Baseline({"accuracy": 0.87})
    seen = []
    for hour in range(24):
        now = START + 28 * DAY + hour * HOUR + 3 * 60  # 00:03, 01:03, … 23:03 UTC of day 28
        labeled = join_labels(predictions[predictions["ts"] < now], labels, now=now)
        verdict, performance = judge(labeled, baseline=baseline)
        partial = performance.windows["partial"]
        assert not partial.iloc[:-1].any() and partial.iloc[-1] == (hour > 0)  # today's window, once it has rows
        seen.append((verdict.state, verdict.worse_since, verdict.message.split("; ")[-1]))
        if hour == 0:  # the newest window alone is tiny and says nothing, which is what misled the Overview
            today = performance.windows.iloc[-1]
            assert today["n_labelled"] < 30 or today["accuracy_low"] < 0.87
    assert set(seen) == {("worse", START + change * DAY, "worse in every day since 19 Jan.")}


def test_change_point_on_a_series_and_what_it_ignores():
    def windows(values, *, enough=None, partial=None):
        n = len(values)
        return pd.DataFrame({"window_start": START + DAY * np.arange(n),
                             "window_end": START + DAY * np.arange(1, n + 1), "accuracy": values,
                             "enough_labels": enough if enough is not None else [True] * n,
                             "partial": partial if partial is not None else [False] * n})

    series = [0.87, 0.88, 0.86, 0.87, 0.79, 0.78, 0.80, 0.79]
    assert change_point(windows(series), "accuracy", baseline=0.87, slack=0.04) == (START + 4 * DAY, True)
    # a window above the baseline inside the run: still the change, but not "every day"
    bumpy = [0.87, 0.88, 0.86, 0.87, 0.78, 0.875, 0.78, 0.79]
    assert change_point(windows(bumpy), "accuracy", baseline=0.87, slack=0.04) == (START + 4 * DAY, False)
    # an old dip does not reach across good windows
    dip = [0.70, 0.87, 0.88, 0.87, 0.87, 0.86, 0.79, 0.78]
    assert change_point(windows(dip), "accuracy", baseline=0.87, slack=0.04)[0] == START + 6 * DAY
    # a partial window never decides, nor does one with too few labels
    good = [0.87, 0.88, 0.86, 0.87, 0.87, 0.86, 0.87, 0.20]
    assert change_point(windows(good, partial=[False] * 7 + [True]), "accuracy", baseline=0.87, slack=0.04) == (
        None, False)
    assert change_point(windows(good, enough=[True] * 7 + [False]), "accuracy", baseline=0.87, slack=0.04) == (
        None, False)
    # a window too small to judge inside the run: the change stays, "every day" does not
    gap = windows(series, enough=[True] * 5 + [False] + [True] * 2)
    assert change_point(gap, "accuracy", baseline=0.87, slack=0.04) == (START + 4 * DAY, False)
    # lower is better: the sign flips
    losses = windows([0.30, 0.31, 0.29, 0.45, 0.47]).rename(columns={"accuracy": "log_loss"})
    assert change_point(losses, "log_loss", baseline=0.30, slack=0.07, lower_is_better=True)[0] == START + 3 * DAY
    assert change_point(windows(series), "roc_auc", baseline=0.8, slack=0.0) == (None, False)
    with pytest.raises(ValueError, match="slack must be a number >= 0"):
        change_point(windows(series), "accuracy", baseline=0.87, slack=-1)


def test_a_partial_window_does_not_decide_the_verdict_alone():
    now = START + 10 * DAY + 9 * HOUR
    ts = np.r_[np.linspace(START, now - 7 * DAY - 60, 300), np.linspace(now - 8 * HOUR, now - 60, 200)]
    labeled = labeled_log(np.r_[np.ones(300, dtype=bool), np.zeros(200, dtype=bool)], ts, now=now)
    verdict, performance = judge(labeled, baseline=Baseline({"accuracy": 0.87}))
    assert performance.windows["partial"].iloc[-1] and verdict.state == "unknown"
    assert "still open" in verdict.reason and verdict.n_labelled == 200
    assert performance.latest()["window_start"] < performance.windows["window_start"].iloc[-1]
    assert baseline_verdict(performance, "accuracy").state in ("in line", "better")  # the closed windows are right


# -- bad input -------------------------------------------------------------------------------


def test_bad_input_gives_unknown_with_a_reason_never_an_exception():
    now = START + 3 * DAY
    baseline = Baseline({"accuracy": 0.87, "roc_auc": 0.8, "r2": 0.5})
    one, _ = judge(labeled_log([True], [now - DAY], now=now), baseline=baseline)
    assert one.state == "unknown" and "Only 1 labelled prediction in the last 7 days" in one.reason
    assert one.message == one.reason and one.n_labelled == 1

    ts = np.linspace(now - 5 * DAY, now - DAY, 200)
    unscored = labeled_log(np.ones(200, dtype=bool), ts, now=now, score=np.full(200, np.nan))
    auc, _ = judge(unscored, baseline=baseline, metric="roc_auc")
    assert auc.state == "unknown" and "needs the model's logged score" in auc.reason

    nothing = labeled_log(np.ones(200, dtype=bool), ts, now=now, label_delay=10 * DAY)  # no label arrived
    none, _ = judge(nothing, baseline=baseline)
    assert none.state == "unknown" and "has a label yet" in none.reason and math.isnan(none.value)

    empty = join_labels(pd.DataFrame({"id": [], "ts": [], "prediction": []}),
                        pd.DataFrame({"prediction_id": [], "ts": [], "label": []}), now=now)
    assert judge(empty, baseline=baseline)[0].state == "unknown"

    labeled = labeled_log(np.ones(200, dtype=bool), ts, now=now)
    no_baseline, _ = judge(labeled, baseline=Baseline(reason="No baseline: set [services.performance] baseline."))
    assert no_baseline.state == "unknown" and no_baseline.value == 1.0
    assert no_baseline.message.startswith("Accuracy over the last 7 days: 1.000")
    assert no_baseline.reason == "No baseline: set [services.performance] baseline."
    assert judge(labeled, baseline=baseline, metric="r2")[0].reason.startswith("R² does not apply")

    with pytest.raises(ValueError, match="metric must be one of"):
        judge(labeled, baseline=baseline, metric="kappa")
    with pytest.raises(ValueError, match="days must be a number of days > 0; got 0"):
        judge(labeled, baseline=baseline, days=0)
    with pytest.raises(ValueError, match="confidence must be between 0 and 1"):
        judge(labeled, baseline=baseline, confidence=95)


def test_the_demos_drop_is_worse_since_the_drift_at_any_hour(demo_model):
    """The demo's history, scored by its model, labels arriving with the demo's delays."""
    history = generate(28 * 500, history_start=START, random_state=12)
    decided, proba = predict_frame(demo_model, history)
    ids = [f"d{i}" for i in range(len(history))]
    predictions = pd.DataFrame({"id": ids, "ts": history["ts"], "prediction": decided.astype(float),
                                "score": proba[:, 1]})
    labels = pd.DataFrame({"prediction_id": ids, "ts": history["ts"] + history["label_delay_days"] * DAY,
                           "label": history[TARGET].astype(float)})
    baseline = Baseline({"accuracy": demo_model.metrics["accuracy"]}, source="hold-out")
    found = set()
    for hour in (0, 8, 16, 23):
        now = START + 27 * DAY + hour * HOUR + 180
        labeled = join_labels(predictions[predictions["ts"] < now], labels, now=now)
        verdict, _ = judge(labeled, baseline=baseline)
        assert verdict.state == "worse", verdict.message
        found.add(verdict.worse_since)
    assert len(found) == 1
    assert 14 <= (found.pop() - START) / DAY <= CONCEPT_DRIFT_START_DAY  # the ramp, then the concept drift


def test_a_verdict_made_by_hand_has_defaults_for_the_new_fields():
    verdict = BaselineVerdict("worse", "accuracy", value=0.8, baseline=0.87)
    assert verdict.n_labelled == 0 and math.isnan(verdict.period_start) and verdict.reason == ""
