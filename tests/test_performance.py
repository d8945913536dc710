"""Performance over time: known answers, scikit-learn equivalence, the demo's scripted drop, the page."""

import dataclasses
import math
import time

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    mean_absolute_error,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
    root_mean_squared_error,
)

from demo.data import CONCEPT_DRIFT_START_DAY, DEFAULT_HISTORY_START, SECONDS_PER_DAY, TARGET, generate
from demo.model import predict_frame
from monitoring.config import parse_config
from monitoring.labels import join_labels
from monitoring.performance import (
    Baseline,
    BusinessValues,
    baseline_for,
    baseline_verdict,
    bootstrap_weights,
    calibration_table,
    decisions_over_time,
    performance_detail,
    performance_over_time,
    wilson_interval,
)
from monitoring.plots import performance as plots
from monitoring.statistics import _weighted_auc, _weighted_f1_binary, _weighted_macro
from monitoring.windows import range_start
from tests.helpers import APP, page_text

DAY = SECONDS_PER_DAY
START = DEFAULT_HISTORY_START  # a Wednesday, 00:00 UTC
NOW = START + 100 * DAY


def binary_log(n=3000, days=6, *, seed=0):
    """A scored binary prediction log over ``days`` days and labels that all arrived by NOW."""
    rng = np.random.default_rng(seed)
    ts = np.sort(START + rng.uniform(0, days * DAY, n))
    score = rng.beta(2, 3, n).round(3)  # rounded: ties, as real scores have
    label = (rng.random(n) < score).astype(float)
    predictions = pd.DataFrame({"id": [f"p{i}" for i in range(n)], "ts": ts,
                                "prediction": (score >= 0.5).astype(float), "score": score})
    labels = pd.DataFrame({"prediction_id": predictions["id"], "ts": ts + DAY, "label": label})
    return predictions, labels


def windows_of(frame, days):
    """Rows of each whole day, computed independently of the code under test."""
    day = ((frame["ts"] - START) // DAY).astype(int)
    return [frame[day == d] for d in range(days)]


def test_window_metrics_equal_scikit_learn_on_the_same_rows():
    predictions, labels = binary_log()
    labeled = join_labels(predictions, labels, now=NOW)
    result = performance_over_time(labeled, window="day", n_bootstrap=50)
    assert result.metrics == ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
    assert len(result.windows) == 6
    for (_, row), rows in zip(result.windows.iterrows(), windows_of(labeled.frame, 6), strict=True):
        y, decided, score = rows["label"], rows["prediction"], rows["score"]
        assert row["n_labelled"] == len(rows) == row["n_predictions"]
        assert row["accuracy"] == pytest.approx(accuracy_score(y, decided))
        assert row["precision"] == pytest.approx(precision_score(y, decided))
        assert row["recall"] == pytest.approx(recall_score(y, decided))
        assert row["f1"] == pytest.approx(f1_score(y, decided))
        assert row["roc_auc"] == pytest.approx(roc_auc_score(y, score))
        assert row["log_loss"] == pytest.approx(log_loss(y, score))
        assert row["label_rate"] == pytest.approx(y.mean()) and row["mean_score"] == pytest.approx(score.mean())
        for metric in result.metrics:
            assert row[f"{metric}_low"] <= row[metric] <= row[f"{metric}_high"]
    assert result.overall["accuracy"] == pytest.approx(accuracy_score(labeled.frame["label"],
                                                                      labeled.frame["prediction"]))


def test_multiclass_and_regression_metrics_equal_scikit_learn():
    rng = np.random.default_rng(1)
    n = 900
    ts = np.sort(START + rng.uniform(0, 3 * DAY, n))
    truth = rng.integers(0, 3, n).astype(float)
    decided = np.where(rng.random(n) < 0.7, truth, rng.integers(0, 3, n)).astype(float)
    ids = [f"m{i}" for i in range(n)]
    labeled = join_labels(pd.DataFrame({"id": ids, "ts": ts, "prediction": decided}),
                          pd.DataFrame({"prediction_id": ids, "ts": ts, "label": truth}), now=NOW)
    result = performance_over_time(labeled, window="day", n_bootstrap=50)
    assert labeled.classes == (0.0, 1.0, 2.0) and result.metrics == ("accuracy", "precision", "recall", "f1")
    for (_, row), rows in zip(result.windows.iterrows(), windows_of(labeled.frame, 3), strict=True):
        y, p = rows["label"], rows["prediction"]
        assert row["accuracy"] == pytest.approx(accuracy_score(y, p))
        assert row["precision"] == pytest.approx(precision_score(y, p, average="macro"))
        assert row["recall"] == pytest.approx(recall_score(y, p, average="macro"))
        assert row["f1"] == pytest.approx(f1_score(y, p, average="macro"))
        assert row["precision_low"] < row["precision"] < row["precision_high"]

    value = rng.normal(100, 20, n)
    predicted = value + rng.normal(0, 5, n)
    labeled = join_labels(pd.DataFrame({"id": ids, "ts": ts, "prediction": predicted}),
                          pd.DataFrame({"prediction_id": ids, "ts": ts, "label": value}), now=NOW)
    result = performance_over_time(labeled, window="day", n_bootstrap=50)
    assert labeled.task == "regression" and result.metrics == ("mae", "rmse", "r2")
    for (_, row), rows in zip(result.windows.iterrows(), windows_of(labeled.frame, 3), strict=True):
        y, p = rows["label"], rows["prediction"]
        assert row["mae"] == pytest.approx(mean_absolute_error(y, p))
        assert row["rmse"] == pytest.approx(root_mean_squared_error(y, p))
        assert row["r2"] == pytest.approx(r2_score(y, p))
        assert row["mean_residual"] == pytest.approx((y - p).mean())
        assert row["rmse_low"] < row["rmse"] < row["rmse_high"]
    detail = performance_detail(labeled, max_residuals=100)
    assert len(detail.residuals) == 100 and detail.confusion is None and detail.calibration is None
    np.testing.assert_allclose(detail.residuals["residual"], detail.residuals["label"] - detail.residuals["prediction"])


@pytest.mark.parametrize(("successes", "n", "low", "high"), [
    # Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table I, method 3
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0000, 0.1611),
    (1, 29, 0.0061, 0.1718),
])
def test_wilson_interval_known_values(successes, n, low, high):
    lower, upper = wilson_interval(successes, n)
    assert (round(float(lower), 4), round(float(upper), 4)) == (low, high)


def test_wilson_interval_shapes_and_bad_input():
    low, high = wilson_interval([5, 0], [10, 0])
    assert low[0] < 0.5 < high[0] and np.isnan(low[1]) and np.isnan(high[1])
    wide, narrow = wilson_interval(8, 10, confidence=0.99), wilson_interval(8, 10, confidence=0.8)
    assert wide[0] < narrow[0] and wide[1] > narrow[1]
    with pytest.raises(ValueError, match="confidence must be between 0 and 1"):
        wilson_interval(1, 2, confidence=95)
    with pytest.raises(ValueError, match="successes must be between 0 and n"):
        wilson_interval(3, 2)


def test_bootstrap_statistics_equal_scikit_learn_with_counts_as_sample_weight():
    rng = np.random.default_rng(7)
    n = 400
    score = np.sort(rng.random(n).round(2))  # sorted with ties, as the AUC statistic expects
    y = rng.random(n) < score
    decided = score >= 0.5
    W = bootstrap_weights(n, 5, rng)
    assert W.shape == (5, n) and (W.sum(axis=1) == n).all()
    for weights, auc, f1 in zip(W, _weighted_auc(W, y, score), _weighted_f1_binary(W, y, decided), strict=True):
        assert auc == pytest.approx(roc_auc_score(y, score, sample_weight=weights))
        assert f1 == pytest.approx(f1_score(y, decided, sample_weight=weights))
    truth, guess = rng.integers(0, 3, n), rng.integers(0, 3, n)
    classes = np.array([0, 1, 2])
    for kind, metric in (("precision", precision_score), ("recall", recall_score), ("f1", f1_score)):
        for weights, value in zip(W, _weighted_macro(W, truth, guess, classes, kind), strict=True):
            assert value == pytest.approx(metric(truth, guess, average="macro", sample_weight=weights))


def test_intervals_are_reproducible_and_narrow_with_more_labels():
    predictions, labels = binary_log(n=6000, days=2)
    labeled = join_labels(predictions, labels, now=NOW)
    first = performance_over_time(labeled, n_bootstrap=100, random_state=3)
    again = performance_over_time(labeled, n_bootstrap=100, random_state=3)
    pd.testing.assert_frame_equal(first.windows, again.windows)
    few = join_labels(predictions.head(300), labels, now=NOW)
    small = performance_over_time(few, n_bootstrap=100, random_state=3).windows.iloc[0]
    large = first.windows.iloc[0]
    for metric in ("accuracy", "roc_auc", "f1"):
        assert small[f"{metric}_high"] - small[f"{metric}_low"] > large[f"{metric}_high"] - large[f"{metric}_low"]


def test_windows_by_hour_week_and_number_of_predictions():
    predictions, labels = binary_log(n=500, days=14)
    labeled = join_labels(predictions, labels, now=NOW)
    weeks = performance_over_time(labeled, window="week", n_bootstrap=0).windows
    starts = pd.to_datetime(weeks["window_start"], unit="s", utc=True)
    assert (starts.dt.day_of_week == 0).all() and (starts.dt.hour == 0).all()  # Mondays, 00:00 UTC
    assert weeks["n_predictions"].sum() == 500
    hours = performance_over_time(labeled, window="hour", n_bootstrap=0).windows
    assert (np.diff(hours["window_start"]) % 3600 == 0).all() and hours["n_predictions"].sum() == 500
    rows = performance_over_time(labeled, window=200, n_bootstrap=0).windows
    assert rows["n_predictions"].tolist() == [200, 200, 100]
    assert rows["window_start"].tolist() == predictions["ts"].iloc[[0, 200, 400]].tolist()
    with pytest.raises(ValueError, match="window must be 'hour', 'day', 'week' or a positive number"):
        performance_over_time(labeled, window="month")
    with pytest.raises(ValueError, match="max_bootstrap_rows must be an integer >= 2"):
        performance_over_time(labeled, max_bootstrap_rows=1)
    assert range_start(START + 10.5 * DAY, 3, window="day") == START + 7 * DAY
    assert range_start(START, None) is None


def test_labels_arriving_later_fill_the_windows_of_their_predictions():
    predictions, labels = binary_log(n=2000, days=4)
    labels["ts"] = predictions["ts"] + np.random.default_rng(2).uniform(1, 4, len(predictions)) * DAY
    early = performance_over_time(join_labels(predictions, labels, now=START + 3 * DAY), n_bootstrap=0).windows
    late_labeled = join_labels(predictions, labels, now=START + 6 * DAY)
    late = performance_over_time(late_labeled, n_bootstrap=0).windows
    assert early["window_start"].tolist() == late["window_start"].tolist()  # windows are of prediction time
    assert early["n_predictions"].tolist() == late["n_predictions"].tolist()
    assert (late["n_labelled"] >= early["n_labelled"]).all()
    assert late["n_labelled"].iloc[1] > early["n_labelled"].iloc[1] > 0
    assert early["n_labelled"].iloc[3] == 0 and late["n_labelled"].iloc[3] > 0
    first_day = windows_of(late_labeled.frame, 4)[0].dropna(subset=["label"])
    assert late["accuracy"].iloc[0] == pytest.approx(accuracy_score(first_day["label"], first_day["prediction"]))


def test_decisions_and_money_at_a_threshold():
    predictions, labels = binary_log(n=1000, days=2)
    labeled = join_labels(predictions, labels, now=NOW)
    business = BusinessValues(cost_false_positive=10, cost_false_negative=100, value_correct=1, currency="EUR")
    decisions = decisions_over_time(labeled, threshold=0.3, business=business)
    for (_, row), rows in zip(decisions.windows.iterrows(), windows_of(labeled.frame, 2), strict=True):
        tn, fp, fn, tp = confusion_matrix(rows["label"], rows["score"] >= 0.3).ravel()
        assert (row["tn"], row["fp"], row["fn"], row["tp"]) == (tn, fp, fn, tp)
        assert row["money"] == (tn + tp) * 1 - fp * 10 - fn * 100
    assert decisions.total_money == decisions.windows["money"].sum() and decisions.threshold == 0.3
    logged = decisions_over_time(labeled, threshold=None)
    assert "money" not in logged.windows and math.isnan(logged.total_money)
    tn, fp, fn, tp = confusion_matrix(labeled.frame["label"], labeled.frame["prediction"]).ravel()
    assert logged.windows[["tn", "fp", "fn", "tp"]].sum().tolist() == [tn, fp, fn, tp]
    detail = performance_detail(labeled, threshold=0.3, business=business)
    assert detail.confusion.matrix.ravel().tolist() == decisions.windows[["tn", "fp", "fn", "tp"]].sum().tolist()
    assert detail.money == decisions.total_money
    assert detail.confusion.to_frame().loc["true 1", "predicted 0"] == detail.confusion.matrix[1, 0]
    with pytest.raises(ValueError, match=r"threshold must be a number in \[0, 1\] or None; got 1.5"):
        decisions_over_time(labeled, threshold=1.5)
    config = parse_config('[[services]]\nname = "s"\nurl = "http://x"\nprotocol = "rest"\n'
                          '[services.performance]\ncost_false_negative = 100\n').service("s")
    assert BusinessValues.from_config(config.performance) == BusinessValues(cost_false_negative=100.0)


def test_calibration_is_scikit_learns_with_bin_counts():
    predictions, labels = binary_log(n=2000, days=1)
    labeled = join_labels(predictions, labels, now=NOW)
    detail = performance_detail(labeled, n_bins=8)
    expected_true, expected_predicted = calibration_curve(labeled.frame["label"], labeled.frame["score"], n_bins=8)
    np.testing.assert_allclose(detail.calibration["fraction_positive"], expected_true)
    np.testing.assert_allclose(detail.calibration["mean_predicted"], expected_predicted)
    assert detail.calibration["n"].sum() == 2000
    empty = calibration_table(np.array([]), np.array([]))
    assert empty.empty and list(empty.columns) == ["mean_predicted", "fraction_positive", "n"]


def test_baseline_from_configuration_from_reference_or_explained(tmp_path):
    def service(extra=""):
        return parse_config(f'[[services]]\nname = "s"\nurl = "http://x"\nprotocol = "rest"\n{extra}',
                            base_dir=tmp_path).service("s")

    configured = baseline_for(service("[services.performance]\nbaseline = {accuracy = 0.9}\n"), task="classification")
    assert configured.values == {"accuracy": 0.9} and "configuration" in configured.source
    missing = baseline_for(service(), task="classification")
    assert missing.values == {} and "set [services.performance] baseline" in missing.reason

    rng = np.random.default_rng(4)
    score = rng.random(500)
    reference = pd.DataFrame({"age": rng.integers(18, 80, 500), "default": (rng.random(500) < score).astype(int),
                              "prediction": (score >= 0.5).astype(int), "score": score})
    reference.to_csv(tmp_path / "ref.csv", index=False)
    computed = baseline_for(service('reference = "ref.csv"\ntarget = "default"\n'), task="classification")
    assert computed.values["accuracy"] == pytest.approx(accuracy_score(reference["default"], reference["prediction"]))
    assert computed.values["roc_auc"] == pytest.approx(roc_auc_score(reference["default"], score))
    assert computed.values["log_loss"] == pytest.approx(log_loss(reference["default"], score))
    assert "500 rows" in computed.source
    reference.drop(columns=["prediction", "score"]).to_csv(tmp_path / "bare.csv", index=False)
    bare = baseline_for(service('reference = "bare.csv"\ntarget = "default"\n'), task="classification")
    assert bare.values == {} and "has no 'prediction' column" in bare.reason


@pytest.fixture(scope="module")
def demo_history(demo_model):
    """28 days of the demo's traffic, predicted by the demo model, each label arriving with its delay."""
    history = generate(28 * 700, history_start=START, random_state=11)
    decided, proba = predict_frame(demo_model, history)
    ids = [f"d{i}" for i in range(len(history))]
    predictions = pd.DataFrame({"id": ids, "ts": history["ts"], "prediction": decided.astype(float),
                                "score": proba[:, 1]})
    labels = pd.DataFrame({"prediction_id": ids, "ts": history["ts"] + history["label_delay_days"] * DAY,
                           "label": history[TARGET].astype(float)})
    return predictions, labels


def test_the_demos_scripted_performance_drop_is_found_in_the_right_window(demo_history, demo_model):
    predictions, labels = demo_history
    labeled = join_labels(predictions, labels, now=START + 34 * DAY)  # every label has arrived
    baseline = Baseline({"accuracy": demo_model.metrics["accuracy"]}, source="demo model's hold-out")
    result = performance_over_time(labeled, window="day", baseline=baseline, n_bootstrap=100)
    windows = result.windows.assign(day=(result.windows["window_start"] - START) / DAY)
    before = windows[windows["day"] < 14]
    after = windows[windows["day"] >= CONCEPT_DRIFT_START_DAY]
    assert len(before) == 14 and len(after) == 10 and windows["enough_labels"].all()
    # Before the drift the model scores its baseline (0.87); after the concept drift about 0.75.
    assert abs(before["accuracy"].mean() - baseline.get("accuracy")) < 0.02
    assert before["accuracy"].mean() - after["accuracy"].mean() > 0.08
    assert (after["accuracy_high"] < baseline.get("accuracy")).all()  # every post-drift window, interval and all
    assert (after["accuracy_high"] < before["accuracy_low"].min()).all()
    assert (before["accuracy_high"] > baseline.get("accuracy")).all()  # no false alarm before the drift
    verdict = baseline_verdict(result, "accuracy")
    assert verdict.state == "worse"
    drift_began = (verdict.worse_since - START) / DAY
    assert 14 <= drift_began <= CONCEPT_DRIFT_START_DAY  # the drop starts with the data drift's ramp
    assert "worse in every window since" in verdict.message


def test_recent_windows_of_the_demo_are_still_filling_up(demo_history):
    predictions, labels = demo_history
    labeled = join_labels(predictions, labels, now=START + 28 * DAY)
    windows = performance_over_time(labeled, window="day", n_bootstrap=0).windows
    assert (windows["coverage"].iloc[:23] == 1).all()  # labels arrive within 5 days
    assert windows["coverage"].iloc[-1] < 0.05 and windows["coverage"].is_monotonic_decreasing
    assert 2 * DAY < labeled.median_delay_seconds < 5 * DAY
    assert labeled.quality.pending == len(predictions) - labeled.n_labelled


def test_verdicts_and_figures_without_labels_or_baseline():
    predictions, labels = binary_log(n=200, days=2)
    nothing = join_labels(predictions, labels, now=START)  # no label has arrived
    result = performance_over_time(nothing, n_bootstrap=10)
    assert result.windows["n_labelled"].sum() == 0 and result.latest() is None
    assert baseline_verdict(result, "accuracy").state == "unknown"
    for figure in (plots.metric_figure(result, "roc_auc"), plots.labelled_count_figure(result),
                   plots.calibration_figure(performance_detail(nothing)),
                   plots.confusion_matrix_figure(performance_detail(nothing)),
                   plots.money_figure(decisions_over_time(nothing))):
        assert figure.layout.title.text
    labeled = join_labels(predictions, labels, now=NOW)
    result = performance_over_time(labeled, baseline=Baseline({"log_loss": 5.0}), n_bootstrap=20)
    assert baseline_verdict(result, "log_loss").state == "better"  # lower is better
    assert baseline_verdict(result, "roc_auc").state == "unknown"
    with pytest.raises(ValueError, match="metric must be one of"):
        baseline_verdict(result, "mae")
    figure = plots.metric_figure(result, "log_loss")
    assert any("baseline 5" in (a.text or "") for a in figure.layout.annotations)
    exported = result.to_frame(decisions_over_time(labeled, business=BusinessValues(value_correct=1)))
    assert {"log_loss_baseline", "tn", "money"} <= set(exported.columns)
    assert str(exported["window_start"].dt.tz) == "UTC"


# -- the page --------------------------------------------------------------------------------



@pytest.mark.integration
def test_performance_view_on_the_embedded_demo_after_back_fill(demo_var, monkeypatch, fresh_runtime):
    from streamlit.testing.v1 import AppTest

    from monitoring.store import Store

    monkeypatch.delenv("VANTAGE_CONFIG", raising=False)
    monkeypatch.setenv("VANTAGE_VAR", str(demo_var))
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception, at.exception
    # the demo's own store: its prediction log is in Parquet beside the SQL file (the SQL tables alone count 0,
    # and the wait below used to run to its deadline)
    store = Store(f"sqlite:///{demo_var / 'vantage.db'}", log=f"duckdb:{demo_var / 'log'}")
    deadline, previous = time.monotonic() + 240, -1
    while time.monotonic() < deadline:  # the replayer back-fills 28 days, then sends a trickle
        count = store.count_predictions("credit-risk")
        if count > 28 * 1400 and count - previous < 100:
            break
        previous = count
        time.sleep(3)
    store.dispose()
    assert count > 28 * 1400, f"the demo back-filled only {count:,} predictions in 240 s"
    at.switch_page("views/performance.py").run()
    assert not at.exception, at.exception
    text = page_text(at)
    assert "Ground truth" in text and "have a label" in text and "more will arrive later" in text
    assert at.selectbox(key="performance_service").options == ["credit-risk", "credit-risk-rest"]
    assert at.selectbox(key="performance_metric").options[0] == "Accuracy"
    assert len(at.metric) == 4 and at.metric[2].value != "0"
    at.selectbox(key="performance_metric").select("roc_auc").run()
    assert not at.exception, at.exception
    at.slider(key="performance_threshold").set_value(0.3).run()
    assert not at.exception, at.exception
    at.segmented_control(key="performance_window").set_value("Week").run()
    assert not at.exception, at.exception
    at.selectbox(key="performance_period").select_index(1).run()
    assert not at.exception, at.exception
    at.selectbox(key="performance_service").select("credit-risk-rest").run()
    assert not at.exception, at.exception
    # the REST twin is the same model's second endpoint (logged_as): the same predictions and labels
    twin = page_text(at)
    assert "Ground truth" in twin and "have a label" in twin and "no prediction log" not in twin


def test_performance_view_with_a_configured_regression_and_a_classifier_with_costs(tmp_path, monkeypatch,
                                                                                  fresh_runtime):
    from streamlit.testing.v1 import AppTest

    from monitoring.store import Store

    rng = np.random.default_rng(5)
    now = time.time()
    n = 600
    ts = np.sort(now - rng.uniform(0, 10 * DAY, n))
    ids = [f"r{i}" for i in range(n)]
    price = rng.normal(200, 40, n)
    store = Store(f"sqlite:///{tmp_path / 'app.db'}")
    store.prediction_table("pricing", {"size": "numeric"})
    store.log_predictions("pricing", pd.DataFrame({"id": ids, "ts": ts, "prediction": price + rng.normal(0, 9, n),
                                                   "size": rng.random(n)}))
    labels = pd.DataFrame({"prediction_id": [*ids, "nobody", "r1"], "label": [*price.round(2), 1.0, "n/a"],
                           "arrived": [*(ts + DAY), now, now]})
    labels.to_csv(tmp_path / "prices.csv", index=False)
    predictions, scored_labels = binary_log(n=n)
    predictions["ts"] = labels["arrived"].iloc[:n].to_numpy() - DAY
    store.prediction_table("scoring", {"size": "numeric"})
    store.log_predictions("scoring", predictions.assign(size=1.0))
    store.write_labels("scoring", scored_labels.assign(ts=predictions["ts"] + DAY))
    store.dispose()
    config = tmp_path / "vantage.toml"
    config.write_text(f"""
[store]
url = "sqlite:///{tmp_path / 'app.db'}"

[[services]]
name = "pricing"
url = "http://127.0.0.1:9"
protocol = "rest"
poll_interval = 60

[services.labels]
path = "prices.csv"
ts = "arrived"

[services.performance]
baseline = {{mae = 3.0}}

[[services]]
name = "scoring"
url = "http://127.0.0.1:9"
protocol = "rest"
poll_interval = 60

[services.performance]
threshold = 0.4
cost_false_positive = 5
cost_false_negative = 50
value_correct = 1
currency = "EUR"
""")
    monkeypatch.setenv("VANTAGE_CONFIG", str(config))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, at.exception
    at.switch_page("views/performance.py").run()
    assert not at.exception, at.exception
    text = page_text(at)
    assert "1 label matched no prediction (such as 'nobody')" in text
    assert "1 label could not be read" in text and "label file" in text
    assert at.selectbox(key="performance_metric").options == ["MAE", "RMSE", "R²"]
    assert "MAE over the last 7 days" in text and "above the baseline of 3.000 (lower is better); worse" in text
    assert "Baseline from configuration" in text
    table = at.dataframe[0].value
    assert "status" in table.columns and table["status"].iloc[-1].startswith("so far")  # today's window is open
    assert at.subheader[0].value == "Residuals"
    at.segmented_control(key="performance_window").set_value("N predictions").run()
    assert not at.exception, at.exception

    at.selectbox(key="performance_service").select("scoring").run()
    assert not at.exception, at.exception
    assert at.slider(key="performance_threshold").value == 0.4
    assert "Each correct decision is worth 1, a false positive costs 5 and a false negative 50 EUR" in page_text(at)
    at.slider(key="performance_threshold").set_value(0.7).run()
    assert not at.exception, at.exception
    assert at.query_params["service"] in ("scoring", ["scoring"])


def test_large_windows_bootstrap_a_subsample_with_a_rescaled_interval():
    predictions, labels = binary_log(n=20_000, days=1, seed=9)
    labeled = join_labels(predictions, labels, now=NOW)
    exact = performance_over_time(labeled, n_bootstrap=200, max_bootstrap_rows=20_000).windows.iloc[0]
    fast = performance_over_time(labeled, n_bootstrap=200, max_bootstrap_rows=2_000).windows.iloc[0]
    for metric in ("f1", "roc_auc", "log_loss"):
        assert fast[metric] == exact[metric]  # the estimate itself uses every row
        assert fast[f"{metric}_low"] < fast[metric] < fast[f"{metric}_high"]
        width = fast[f"{metric}_high"] - fast[f"{metric}_low"]
        assert 0.75 < width / (exact[f"{metric}_high"] - exact[f"{metric}_low"]) < 1.33


def test_windows_still_open_at_now_are_partial_and_never_the_latest():
    predictions, labels = binary_log(n=3000, days=3)
    now = START + 2 * DAY + 6 * 3600  # 06:00 of the third day
    labeled = join_labels(predictions[predictions["ts"] < now], labels.assign(ts=predictions["ts"]), now=now)
    result = performance_over_time(labeled, n_bootstrap=0, min_labels=10)
    assert result.windows["partial"].tolist() == [False, False, True]
    assert result.windows["enough_labels"].all() and bool(result.overall["partial"])
    assert result.latest()["window_start"] == START + DAY  # the newest closed window
    hours = performance_over_time(labeled, window="hour", n_bootstrap=0, since=now - 3 * 3600).windows
    assert hours["partial"].tolist() == [False, False, False]  # 05:00–06:00 closes at 06:00 itself
    assert not performance_over_time(join_labels(predictions, labels, now=NOW), n_bootstrap=0).windows[
        "partial"].any()
    rows = performance_over_time(labeled, window=1000, n_bootstrap=0).windows
    assert rows["partial"].tolist() == [False, False, True]  # the last block has fewer than 1,000 predictions
    exported = result.to_frame()
    assert exported["partial"].tolist() == [False, False, True]
    figure = plots.metric_figure(result, "accuracy")
    assert list(figure.data[-1].marker.symbol) == ["circle", "circle", "diamond-open"]
    assert figure.data[-1].hovertext[-1].startswith("so far (window still open)")
    bars = plots.labelled_count_figure(result)
    assert list(bars.data[1].marker.opacity) == [1.0, 1.0, 0.5]


def test_rows_out_of_time_order_are_put_in_order():
    predictions, labels = binary_log(n=3000, days=3)
    labeled = join_labels(predictions, labels, now=NOW)
    shuffled = dataclasses.replace(labeled, frame=labeled.frame.sample(frac=1, random_state=0))
    expected = performance_over_time(labeled, n_bootstrap=20).windows
    pd.testing.assert_frame_equal(performance_over_time(shuffled, n_bootstrap=20).windows, expected)
    assert performance_over_time(shuffled, window=1000, n_bootstrap=0).windows["window_start"].is_monotonic_increasing


def test_a_chart_of_one_window_spans_that_window_not_milliseconds_around_its_point():
    predictions, labels = binary_log(n=200, days=1)
    labeled = join_labels(predictions, labels, now=NOW)
    result = performance_over_time(labeled, window="day", n_bootstrap=10, since=START)
    assert len(result.windows) == 1
    start = pd.Timestamp(result.windows["window_start"].iloc[0], unit="s", tz="UTC")
    for figure in (plots.metric_figure(result, "accuracy"), plots.labelled_count_figure(result),
                   plots.money_figure(decisions_over_time(labeled, business=BusinessValues(value_correct=1),
                                                          since=START))):
        low, high = (pd.Timestamp(t) for t in figure.layout.xaxis.range)
        assert low == start and high == start + pd.Timedelta(days=1)
        for trace in figure.data:
            if trace.type == "bar":  # as wide as most of its day, not a hairline
                assert list(trace.width) == [0.9 * 86_400_000]
    # a band cannot be drawn around one point: its interval is an error bar
    window = result.windows.iloc[0]
    line = next(trace for trace in plots.metric_figure(result, "accuracy").data if trace.name == "Accuracy")
    assert line.error_y.visible
    assert line.error_y.array[0] == pytest.approx(window["accuracy_high"] - window["accuracy"])
    assert line.error_y.arrayminus[0] == pytest.approx(window["accuracy"] - window["accuracy_low"])
    many = performance_over_time(join_labels(*binary_log(n=600, days=5), now=NOW), window="day", n_bootstrap=10)
    assert not next(trace for trace in plots.metric_figure(many, "accuracy").data
                    if trace.name == "Accuracy").error_y.visible  # neighbours: the band alone
