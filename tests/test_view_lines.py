"""Known answers for the sentences, captions and tables the pages show, moved out of dashboard/views/ (issue 13)."""

import math
from datetime import UTC, date, datetime, time
from types import SimpleNamespace

import pandas as pd
import pytest

from explain.explanation_lines import (
    artifact_check_caption,
    consistency_alert,
    day_span,
    dependence_caption,
    dependence_colour,
    global_footer,
    model_source_line,
    picked_caption,
    row_choices,
    row_explanation_caption,
    scale_name,
)
from explain.ranges import feature_ranges
from explain.scenarios import Scenario, encode_scenario, linked_scenario
from explain.segment_tables import four_fifths_verdict, segment_columns, segments_headline
from explain.whatif import Counterfactual, CounterfactualResult, PointPrediction, WhatIfComparison
from explain.whatif_lines import (
    answer_heading,
    compared_class_index,
    counterfactual_summary,
    decision_caption,
    default_target_range,
    edit_caption,
    finder_message,
    ignored_personal_note,
    ignored_values_warning,
    is_missing,
    logged_predictions_table,
    point_key,
    prediction_metric,
    repredicted_caption,
    scenario_row,
    sensitivity_caption,
    value_text,
)
from monitoring.baseline import Baseline
from monitoring.config import AccessConfig, ExplainConfig, MetricsConfig, SloConfig
from monitoring.health import UptimeResult
from monitoring.health_lines import (
    buckets_caption,
    budget_display,
    burn_table,
    fleet_table,
    history_is_short,
    incidents_frame,
    latency_help,
    millis_text,
    percent_text,
    poll_caption,
    slo_caption,
    traffic_origin,
    uptime_help,
)
from monitoring.performance import BusinessValues
from monitoring.performance_tables import (
    baseline_caption,
    business_caption,
    coverage_text,
    ground_truth_heading,
    has_open_window_value,
    label_delay_sentence,
    number_text,
    overall_help,
    range_for_window,
    verdict_numbers,
    window_columns,
)
from monitoring.service_health import FleetRow
from monitoring.service_lines import (
    connection_lines,
    metadata_lines,
    metrics_caption,
    poll_lines,
    poller_text,
    sign_in_caption,
    unknown_personal_warning,
)
from monitoring.slo import BurnRateAlerts, BurnRateWindow, error_budget
from monitoring.verdict import BaselineVerdict

MARCH_3 = datetime(2025, 3, 3, tzinfo=UTC).timestamp()


# -- What-if ---------------------------------------------------------------------------------------


def _comparison(original_label=0, edited_label=1, *, threshold=0.5, classes=(0, 1), output=1,
                probabilities=(0.3, 0.7), requests=0) -> WhatIfComparison:
    return WhatIfComparison(
        {"a": 1.0}, {"a": 2.0}, PointPrediction(original_label, probabilities, 0.3, threshold),
        PointPrediction(edited_label, probabilities, 0.7, threshold), pd.DataFrame(), requests=requests,
        seconds=0.0123, output=output, score_name="probability of class 1", classes=classes)


def test_missing_values_and_their_text():
    assert is_missing(None) and is_missing(math.nan) and not is_missing(0.0) and not is_missing("x")
    assert value_text(None) == value_text(math.nan) == "missing"
    assert value_text(0.123456789) == "0.123457" and value_text(3) == "3" and value_text("north") == "north"
    assert edit_caption(changed=False, original="0.5") == "original: 0.5"
    assert edit_caption(changed=True, original="missing") == "**changed** · original: missing"


def test_point_keys_name_the_source():
    assert point_key("prediction", "abc") == "pred-abc"
    assert point_key("reference", 7) == "ref-7"


def test_logged_predictions_table_puts_the_time_second():
    found = pd.DataFrame({"id": ["p1"], "ts": [MARCH_3 + 14 * 3600 + 2 * 60 + 10], "prediction": [1],
                          "score": [0.9], "b": ["x"], "a": [1.0], "extra": [0]})
    table = logged_predictions_table(found, ["a", "b"])
    assert list(table.columns) == ["id", "time (UTC)", "prediction", "score", "a", "b"]
    assert table["time (UTC)"].tolist() == ["03 Mar 14:02"]
    assert logged_predictions_table(found, ["a"], seconds=True)["time (UTC)"].tolist() == ["03 Mar 14:02:10"]
    assert "ts" in found  # the input is left as it is


def test_link_notes():
    assert ignored_personal_note(["name", "email"]) == (
        "The link changes name, email, which is personal data and cannot be edited here; those changes are ignored.")
    warning = ignored_values_warning(["a 5 is above 3", "b [x](http://e) is not a category"])
    assert warning.endswith(r"a 5 is above 3; b \[x\]\(http://e\) is not a category")


def test_prediction_metric_with_and_without_classes():
    result = _comparison()
    original = prediction_metric(result.original_prediction, "Original", score_name=result.score_name)
    assert (original.label, original.value, original.delta) == ("Original: decided class 0", "0.3", None)
    assert original.help == "Probability of class 1 of the original row."
    edited = prediction_metric(result.edited_prediction, "Edited", score_name="predicted value",
                               reference=result.original_prediction)
    assert edited.label == "Edited: decided class 1" and edited.delta == "+0.4"
    value = prediction_metric(PointPrediction(12.5, None, 12.5), "Edited", score_name="predicted value")
    assert value.label == "Edited: predicted value" and value.help == "Predicted value of the edited row."


def test_decision_caption_threshold_flip_or_nothing():
    assert decision_caption(_comparison()) == ("Decision threshold 0.5 on the probability of class 1 · "
                                               "**the decision flips**")
    assert decision_caption(_comparison(1, 1)) == "Decision threshold 0.5 on the probability of class 1"
    multiclass = _comparison(0.0, 2.0, threshold=None, classes=(0, 1, 2), output=2)
    assert decision_caption(multiclass) == "**The decision changes** from class 0 to class 2."
    assert decision_caption(_comparison(2, 2, threshold=None, classes=(0, 1, 2))) is None
    assert decision_caption(_comparison(1.0, 2.0, threshold=None, classes=())) is None  # regression


def test_compared_class_index():
    assert compared_class_index(_comparison()) == 0
    assert compared_class_index(_comparison(threshold=None, classes=("a", "b", "c"), output="c")) == 2
    assert compared_class_index(_comparison(threshold=None, classes=(), output=None)) == 0


def test_repredicted_caption_counts_requests():
    assert repredicted_caption(seconds=0.0123, requests=0) == "Re-predicted in 12 ms (local model)"
    assert repredicted_caption(seconds=0.2, requests=1) == "Re-predicted in 200 ms, 1 request"
    assert repredicted_caption(seconds=0.2, requests=2) == "Re-predicted in 200 ms, 2 requests"


def test_sensitivity_caption():
    local = SimpleNamespace(model_rows=1200, requests=0, seconds=0.5, score_name="predicted value")
    assert sensitivity_caption(local) == ("1,200 rows in no request(s), 0.50 s. swing = how far the feature alone "
                                          "moves the predicted value over its reference range.")
    assert sensitivity_caption(SimpleNamespace(model_rows=40, requests=3, seconds=1.234, score_name="x")).startswith(
        "40 rows in 3 request(s), 1.23 s.")


def test_default_target_range_is_ten_percent_or_one_above():
    assert default_target_range(100.0) == (100.0, 110.0)
    assert default_target_range(0.0) == (0.0, 1.0)
    assert default_target_range(-50.0) == (-50.0, -45.0)


def _search(answers=()) -> CounterfactualResult:
    return CounterfactualResult({"a": 1}, PointPrediction(0, (0.8, 0.2), 0.2, 0.5), "flip to class 1",
                                tuple(answers), ("a",), 12345, requests=0, seconds=1.5,
                                score_name="probability of class 1")


def test_counterfactual_lines():
    assert counterfactual_summary(_search()) == (
        "Goal: **flip to class 1** — 0 answer(s) from 12,345 candidates, no request(s), 1.50 s. "
        "Every answer was predicted again by the model.")
    answer = Counterfactual(pd.DataFrame(), {"a": 2}, PointPrediction(1.0, (0.4, 0.6), 0.6, 0.5), 1.234, "random")
    assert answer_heading(1, answer, found=_search([answer]), regression=False) == (
        "**Answer 1** → class 1, probability of class 1 0.6 (was 0.2; distance 1.23, random)")
    assert answer_heading(2, answer, found=_search([answer]), regression=True) == (
        "**Answer 2** → probability of class 1 0.6 (was 0.2; distance 1.23, random)")


def test_scenario_rows():
    kept = Scenario("raise a", "prediction", "p1", {"a": 2.0, "b": "x"})
    row = scenario_row("raise a", kept, compared=_comparison())
    assert row == {"scenario": "raise a", "from": "prediction p1", "changes": "a = 2.0, b = x",
                   "compared": "probability of class 1", "original": 0.3, "edited": 0.7, "class": "class 1",
                   "flips": True}
    regression = _comparison(1.0, 1.0, threshold=None, classes=())
    assert "class" not in scenario_row("r", kept, compared=regression)
    failed = scenario_row("none", Scenario("none", "reference", "3", {}), problem="the service is down")
    assert failed == {"scenario": "none", "from": "reference 3", "changes": "none", "problem": "the service is down"}


# -- Explain ---------------------------------------------------------------------------------------


def _model(**changes):
    values = {"kind": "local", "description": "model.joblib", "version": "3", "classes": (0, 1),
                  "task_text": lambda: "binary classification"}
    return SimpleNamespace(**(values | changes))


def test_model_source_line():
    assert model_source_line(_model()) == ("**Model source:** Local artifact · model.joblib  \n"
                                           "**Version:** `3` · **task:** binary classification · **classes:** 0, 1")
    remote = model_source_line(_model(kind="remote", version=None, classes=None, task_text=lambda: "regression"))
    assert remote.startswith("**Model source:** The service as a black box")
    assert remote.endswith("**Version:** `not reported` · **task:** regression")


def test_artifact_check_caption():
    settings = ExplainConfig(max_rows_per_request=500, max_rows_per_second=2500)
    assert "requests of at most 500 rows paced at 2,500 model rows/s" in artifact_check_caption(
        _model(kind="remote"), settings)
    assert artifact_check_caption(_model(), ExplainConfig(source="local")) == (
        "The artifact is not checked against the service (source = 'local').")
    assert artifact_check_caption(_model(), ExplainConfig()) == "Checking the artifact against the service…"


def test_row_choices_by_explainer_and_budget():
    assert row_choices(method="tree", remote=False) == row_choices(method="linear", remote=False)
    fast = row_choices(method="tree", remote=False)
    assert (fast.default, fast.most, fast.fewest, fast.per_row) == (1000, 5000, 10, 0)
    slow = row_choices(method="kernel", remote=False)
    assert (slow.default, slow.most, slow.fewest) == (100, 1000, 10)
    assert slow.help.endswith("so it explains fewer.")
    unknown = row_choices(method="kernel", remote=True)  # the cost of a row cannot be told
    assert (unknown.default, unknown.most, unknown.fewest) == (20, 200, 1)
    budget = row_choices(method="kernel", remote=True, per_row=4000, max_rows_per_computation=50_000)
    assert budget.default == 10 and budget.fewest == 1  # 0.8 * 50,000 // 4,000
    assert budget.help.endswith("through this service about 4,000 model rows per row, within its budget "
                                "([services.explain]).")
    assert row_choices(method="kernel", remote=True, per_row=10, max_rows_per_computation=50_000).default == 20
    assert row_choices(method="kernel", remote=True, per_row=90_000, max_rows_per_computation=50_000).default == 1


def test_explanation_captions():
    values = SimpleNamespace(n_rows=1000, seconds=1.234, requests=0, model_rows=0, note="Exact tree SHAP")
    assert global_footer(values, window_name="Reference (training) data") == (
        "1,000 rows of the reference (training) data · 1.23 s")
    remote = SimpleNamespace(n_rows=20, seconds=3.0, requests=4, model_rows=12_000, note="Kernel SHAP")
    assert global_footer(remote, window_name="Last 24 hours of predictions") == (
        "20 rows of the last 24 hours of predictions · 3.00 s · 4 request(s), 12,000 model rows")
    assert row_explanation_caption(values) == "Exact tree SHAP. 1.23 s."
    assert row_explanation_caption(remote) == "Kernel SHAP. 4 request(s), 12,000 model rows, 3.00 s."
    assert scale_name("log_odds") == "log-odds" and scale_name("probability") == "probability"


def test_dependence_colour():
    ranked = ["a", "b", "c"]
    assert dependence_colour("auto", ranked, "a") == "b"
    assert dependence_colour("auto", ranked, "b") == "a"
    assert dependence_colour("auto", ["a"], "a") is None
    assert dependence_colour("none", ranked, "a") is None
    assert dependence_colour("c", ranked, "a") == "c"


def test_day_span_ends_with_the_day():
    since, until = day_span(date(2025, 3, 3), time(0, 0))
    assert (since, until) == (MARCH_3, MARCH_3 + 86400)
    since, until = day_span(date(2025, 3, 3), time(14, 30))
    assert since == MARCH_3 + 14.5 * 3600 and until == MARCH_3 + 86400


def test_picked_caption_one_or_many():
    assert picked_caption("p1", made="14:02:10 UTC (3 min ago)", listed=50) == (
        "Selected prediction `p1` made 14:02:10 UTC (3 min ago); click a row to pick another "
        "(the 50 newest matches are listed).")
    assert picked_caption("p1", made="now", listed=1).endswith("(the only match is listed).")


def test_dependence_caption_counts_grid_points():
    one = SimpleNamespace(grid=([1, 2, 3],), method="brute", n_rows=500, seconds=0.5, requests=0)
    assert dependence_caption(one) == "brute: 500 rows × 3 grid points, 0.50 s"
    two = SimpleNamespace(grid=([1, 2, 3], [1, 2]), method="batched grid request", n_rows=200, seconds=2.0,
                          requests=2)
    assert dependence_caption(two) == "batched grid request: 200 rows × 6 grid points, 2.00 s, 2 request(s)"


# -- Service health --------------------------------------------------------------------------------


def test_percent_and_millis_unknown_is_a_dash():
    assert percent_text(0.99512) == "99.51 %" and percent_text(0.5, digits=0) == "50 %"
    assert percent_text(None) == percent_text(math.nan) == "–"
    assert millis_text(123.4) == "123 ms" and millis_text(None) == millis_text(math.nan) == "–"


def test_fleet_table():
    rows = [FleetRow("a", "rest", "up", "ok", 100.0, 0.995, 120.0, 0.01, True),
            FleetRow("b", "v2", "down", "secret 42", None, math.nan, math.nan, math.nan, False)]
    table = fleet_table(rows, reason_text=lambda r: r.replace("42", "***"), poll_text=lambda ts: f"at {ts}")
    assert table["Status"].tolist() == ["Up", "Down"]
    assert table["Why"].tolist() == ["ok", "secret ***"]
    assert table["Uptime 24 h"].iloc[0] == pytest.approx(99.5) and pd.isna(table["Uptime 24 h"].iloc[1])
    assert table["Error rate (1 h)"].tolist() == ["1.00 %", "no metrics URL"]
    assert table["Last poll"].tolist() == ["at 100.0", "at None"]


def test_poll_caption_and_history():
    service = SimpleNamespace(protocol="rest", url="http://m", poll_interval=15.0)
    assert poll_caption(service, last_poll="now") == "rest · http://m · polled every 15 s · last poll now"
    assert poll_caption(service, last_poll="now", since="1 h ago").endswith(" · in this state since 1 h ago")
    now = 100 * 86400.0
    assert history_is_short(now - 86400, now=now) and not history_is_short(now - 31 * 86400, now=now)
    assert not history_is_short(None, now=now)


def test_uptime_latency_and_slo_texts():
    assert uptime_help(UptimeResult(0.9, 10, 8, 1, 1)) == (
        "Share of polls in which the service was not down, over 10 polls (1 down, 1 degraded).")
    assert latency_help({"p50_ms": 10.0, "p99_ms": 250.4}) == (
        "p50 10 ms, p99 250 ms over the polls shown in the heartbeat.")
    assert latency_help({}).startswith("p50 –, p99 –")
    caption = slo_caption(SloConfig(availability=0.995, latency_ms=500, latency_target=0.99, window_days=30))
    assert caption.startswith("Availability target 99.5 % of polls not down; latency target 99 % of canary "
                              "predictions within 500 ms; over 30 days.")


def test_budget_display_left_exhausted_or_unknown():
    left = budget_display(error_budget(995, 1000, objective=0.99))  # 5 bad of 10 allowed
    assert (left.value, left.delta, left.progress) == ("50.0 %", None, pytest.approx(0.5))
    assert left.events == "5 bad of 1000 events; the objective allows 10.0 bad events in this period."
    spent = budget_display(error_budget(970, 1000, objective=0.99))  # 30 bad of 10 allowed
    assert (spent.value, spent.delta, spent.progress) == ("exhausted", "300 % of the budget spent", 0.0)
    unknown = budget_display(error_budget(0, 0, objective=0.99))
    assert unknown.value == "–" and unknown.delta is None and unknown.progress is None


def test_burn_table():
    alerts = BurnRateAlerts("availability", 0.99, (
        BurnRateWindow(3600, 300, 14.4, 20.0, 15.55, True, "page"),
        BurnRateWindow(6 * 3600, 1800, 6.0, math.nan, math.nan, False, "ticket")), "page", "burning")
    table = burn_table(alerts)
    assert table.to_dict("records") == [
        {"Windows": "1 h / 5 min", "Alert at": "14.4×", "Long": "20.0×", "Short": "15.6×", "Firing": "yes"},
        {"Windows": "6 h / 30 min", "Alert at": "6×", "Long": "–", "Short": "–", "Firing": "no"}]
    assert list(burn_table(BurnRateAlerts("latency", 0.99, (), "no_data", "")).columns) == list(table.columns)


def test_incidents_frame():
    incidents = pd.DataFrame({"start": [MARCH_3], "state": ["strange"], "duration_s": [300.0], "ongoing": [True],
                              "reason": ["timeout"]})
    table = incidents_frame(incidents, reason_text=str.upper)
    assert table["State"].tolist() == ["Unknown"] and table["Lasted"].tolist() == ["5 min (ongoing)"]
    assert table["Reason"].tolist() == ["TIMEOUT"] and table["Started"].iloc[0] == pd.Timestamp(MARCH_3, unit="s",
                                                                                                  tz="UTC")


def test_traffic_origin_and_buckets():
    assert traffic_origin(SimpleNamespace(traffic_queries=("rate(x[5m])",))) == "from Prometheus"
    assert traffic_origin(SimpleNamespace(traffic_queries=())) == "from the service's metrics"
    assert buckets_caption(bucket_seconds=300, window_seconds=7200).startswith(
        "Buckets of 5 min; the window covers 2 h. ")


# -- Performance -----------------------------------------------------------------------------------


def test_number_coverage_and_range():
    assert number_text(0.91234) == "0.912" and number_text(2.5, digits=1) == "2.5"
    assert number_text(None) == number_text(math.nan) == number_text(math.inf) == "–"
    assert coverage_text(0.834) == "83%" and coverage_text(math.nan) == "–"
    assert range_for_window("hour", None) == range_for_window("hour", 30.0) == 7.0
    assert range_for_window("hour", 7.0) == 7.0 and range_for_window("day", None) is None
    assert range_for_window("1000", 90.0) == 90.0


def test_ground_truth_lines():
    labeled = SimpleNamespace(source="labels.csv", task="classification", classes=(0.0, 1.0))
    assert ground_truth_heading(labeled) == (
        "**Ground truth** (labels.csv; the model is treated as **classification** of classes 0, 1)")
    assert ground_truth_heading(SimpleNamespace(source="s", task="regression", classes=())) == (
        "**Ground truth** (s; the model is treated as **regression**)")
    assert label_delay_sentence(7200) == (" Labels arrive a median of 2 h after their prediction, so the newest "
                                          "windows are still filling up.")
    assert label_delay_sentence(math.nan) == ""


def test_verdict_numbers_judged_or_why_not():
    verdict = BaselineVerdict("worse", "accuracy", value=0.81, low=0.78, high=0.84, baseline=0.85,
                              n_labelled=1234, period_start=MARCH_3, confidence=0.95)
    shown = verdict_numbers(verdict)
    assert (shown.value, shown.delta) == ("0.810", "-0.040 against the baseline")
    assert shown.help == ("Every labelled prediction made since 03 Mar 2025, today's included: 1,234 labels, "
                          "95% interval 0.780–0.840.")
    no_baseline = verdict_numbers(BaselineVerdict("unknown", "accuracy", value=0.81, period_start=MARCH_3))
    assert no_baseline.delta is None and "interval –––" in no_baseline.help
    unjudged = verdict_numbers(BaselineVerdict("unknown", "accuracy", reason="too few labels"))
    assert (unjudged.value, unjudged.delta, unjudged.help) == ("–", None, "too few labels")
    overall = {"accuracy_low": 0.8, "accuracy_high": math.nan}
    assert overall_help(overall, "accuracy", confidence=0.9) == (
        "90% interval 0.800––, over every labelled prediction in the range.")


def test_baseline_caption():
    verdict = BaselineVerdict("unknown", "accuracy", reason="no baseline")
    caption = baseline_caption(Baseline({"accuracy": 0.9}, "the configuration"), verdict, judged_days=7)
    assert caption.startswith("Baseline from the configuration. The verdict pools the last 7 days")
    assert baseline_caption(Baseline(reason="no reference"), verdict, judged_days=7) == "no reference"
    assert baseline_caption(Baseline(reason="no baseline"), verdict, judged_days=7) is None  # said already


def test_open_window_value_and_columns():
    windows = pd.DataFrame({"partial": [False, True], "accuracy": [0.9, math.nan]})
    assert not has_open_window_value(windows, "accuracy")
    assert has_open_window_value(windows.assign(accuracy=[0.9, 0.8]), "accuracy")
    table = pd.DataFrame(columns=["window_start", "tp", "fp", "money"])
    assert window_columns(table, ["accuracy", "f1"]) == [
        "window_start", "status", "n_predictions", "n_labelled", "coverage", "accuracy", "f1", "fp", "tp", "money"]


def test_business_caption():
    business = BusinessValues(cost_false_positive=10, cost_false_negative=2500.5, value_correct=1, currency="EUR")
    assert business_caption(business) == ("Each correct decision is worth 1, a false positive costs 10 and a false "
                                          "negative 2,500.5 EUR (`[services.performance]`).")
    assert business_caption(BusinessValues(value_correct=5)).endswith("a false negative 0 (`[services.performance]`).")


# -- Segments --------------------------------------------------------------------------------------


def test_segments_headline_counts():
    assert segments_headline(12, days=30, too_small=0) == "**12 segments** over the last 30 days."
    assert segments_headline(1, days=7, too_small=0) == "**1 segment** over the last 7 days."
    assert segments_headline(4, days=30, too_small=2) == (
        "**4 segments** over the last 30 days; 2 too small to judge (marked, their numbers are shown but should "
        "not be read into).")


def test_segment_columns_keep_what_the_table_has():
    table = pd.DataFrame(columns=["accuracy", "accuracy_interval", "f1", "n_drifted"])
    assert segment_columns(table, decision_columns=("prediction_rate",), metrics=("accuracy", "f1", "mae")) == [
        "segment", "judged", "n", "share", "reference_share", "share_change", "prediction_rate", "n_labelled",
        "accuracy", "accuracy_interval", "f1", "n_drifted", "drifted_features"]
    assert segment_columns(pd.DataFrame(), decision_columns=(), metrics=("accuracy",))[-1] == "n_labelled"


def test_four_fifths_verdict():
    assert four_fifths_verdict(True, sensitive="region") == ("success", "Four-fifths rule met for region.")
    assert four_fifths_verdict(False, sensitive="region") == (
        "error", "Four-fifths rule failed for region: the ratio is under 0.8.")
    assert four_fifths_verdict(None, sensitive="region") is None


# -- Services --------------------------------------------------------------------------------------


def test_sign_in_caption():
    access = AccessConfig(admins=("ann@x",), analysts=(), viewers=("*",))
    assert sign_in_caption("oidc", access) == ('Sign-in: OpenID Connect. Roles from `[access]`: admins ann@x; '
                                               'analysts none; viewers * ("*" is anyone signed in).')
    assert sign_in_caption("password", access).startswith("Sign-in: user name and password.")


def test_service_lines():
    service = SimpleNamespace(protocol="v2", url="http://m", poll_interval=15.0, timeout=2.0, predict_timeout=10.0,
                              retries=2)
    assert connection_lines(service) == ("**Protocol** `v2`  \n**URL** http://m  \n**Poll interval** 15 s · "
                                         "**timeouts** 2 s (health), 10 s (predict) · **retries** 2 (GET)")
    assert poller_text("me", mine=True) == "this dashboard"
    assert poller_text("host:12", mine=False) == "another collector (host:12)"
    assert poller_text(None, mine=False) == "nobody yet"
    assert metadata_lines({"name": "m", "version": None, "platform": "", "inputs": None}) == (
        "**Model** m  \n**Version** not reported  \n**Platform** –  \n**Inputs declared by the server** none")
    assert unknown_personal_warning(["emial"], features=[]).endswith("check the spelling (features: none).")
    assert "(features: a, b)" in unknown_personal_warning(["emial"], features=["a", "b"])


def test_metrics_caption():
    named = MetricsConfig(url="http://m/metrics", requests="reqs_total")
    assert metrics_caption(named) == "Metrics scraped from http://m/metrics (requests `reqs_total`)"
    prometheus = MetricsConfig(prometheus="http://p:9090", selector='job="a"')
    assert metrics_caption(prometheus) == ('Metrics read from Prometheus at http://p:9090 for {job="a"} (names '
                                           'recognised: prometheus_client, MLServer, KServe or Triton)')


# -- What-if: a scenario link, the finder's messages ------------------------------------------------


def _link_ranges():
    reference = pd.DataFrame({"income": [10.0, 20.0, 30.0, 40.0], "region": ["north", "south", "north", "east"],
                              "email": ["a@x", "b@x", "c@x", "d@x"]})
    return feature_ranges(reference)


def test_a_scenario_link_applies_its_edits_within_the_reference_ranges_as_floats():
    link = encode_scenario(Scenario("richer", "reference", "2", {"income": 35, "region": "east"}))
    linked = linked_scenario(link, features=["income", "region", "email"], is_personal=lambda name: False,
                             reference_rows=4, ranges=_link_ranges())
    assert linked.problem is None and linked.scenario.name == "richer"
    assert linked.edits == {"income": 35.0, "region": "east"} and isinstance(linked.edits["income"], float)
    assert linked.value_problems == () and linked.ignored_personal == ()


def test_a_scenario_link_never_sets_a_personal_value_and_drops_values_outside_the_ranges():
    link = encode_scenario(Scenario("", "prediction", "p-1", {"income": 99.0, "region": "south", "email": "z@x"}))
    linked = linked_scenario(link, features=["income", "region", "email"], is_personal=lambda name: name == "email",
                             reference_rows=4, ranges=_link_ranges())
    assert linked.ignored_personal == ("email",)
    assert "email" not in linked.scenario.changes
    assert linked.edits == {"region": "south"}  # 99 is outside 10 - 40: reported, not applied
    assert len(linked.value_problems) == 1 and linked.value_problems[0].startswith("income ")


@pytest.mark.parametrize(("link", "expected"), [
    ('{"s": "reference", "i": "9"}', "scenario reference row 9 does not exist; the reference data has 4 rows"),
    ("not json", "scenario must be JSON text"),
    ('{"s": "reference", "i": "1", "c": {"height": 1}}', "scenario changes features ['height']"),
])
def test_a_scenario_link_that_cannot_be_used_says_why(link, expected):
    linked = linked_scenario(link, features=["income", "region", "email"], is_personal=lambda name: False,
                             reference_rows=4, ranges=_link_ranges())
    assert linked.scenario is None and linked.edits == {}
    assert linked.problem.startswith(expected)


@pytest.mark.parametrize(("finder", "searched", "expected"), [
    ("By id", False, ("caption", "Type the id of a logged prediction")),
    ("By feature", False, ("caption", "Pick a feature and a condition")),
    ("By id", True, ("info", "No logged prediction matches.")),
    ("Most uncertain", False, ("info", "No logged prediction matches.")),
    ("Largest error", False, ("info", "No labelled prediction yet")),
])
def test_the_finder_hints_before_a_search_and_says_when_nothing_matched(finder, searched, expected):
    level, text = finder_message(finder, searched=searched)
    assert level == expected[0] and text.startswith(expected[1])


def test_no_finder_picked_says_nothing():
    assert finder_message(None, searched=False) is None


# -- Explain: the artifact's consistency check; Services: the last poll -------------------------------


@pytest.mark.parametrize(("agrees", "level", "start"), [
    (True, "success", "Consistency check: same predictions."),
    (None, "info", "Consistency check: same predictions."),
    (False, "warning", "**The artifact is not the model being served.** same predictions."),
])
def test_the_consistency_check_alert_follows_its_outcome(agrees, level, start):
    assert consistency_alert(SimpleNamespace(agrees=agrees, message="same predictions")) == (level, start)


def test_the_poll_lines_say_who_polls_and_how_the_last_poll_went():
    assert poll_lines(poller="this dashboard", last_poll=None) == "**Polled by** this dashboard  \n**Last poll** –"
    assert poll_lines(poller="nobody yet", last_poll="14:02:10 UTC (3 min ago)", state="down",
                      reason="timed out") == ("**Polled by** nobody yet  \n**Last poll** 14:02:10 UTC (3 min ago): "
                                              "down \\(timed out\\)")
