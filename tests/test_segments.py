"""Segments and fairness: per-segment metrics equal scikit-learn's, fairness metrics equal fairlearn's."""

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
)
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, root_mean_squared_error

from explain.segments import assign_segments, fairness_metrics, segment_importance, segment_metrics


def rows(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    group = rng.choice(["a", "b", "c"], n, p=[0.5, 0.4, 0.1])
    income = rng.normal(3000, 800, n)
    y_true = rng.integers(0, 2, n).astype(float)
    bias = np.select([group == "a", group == "b"], [0.6, 0.4], 0.3)
    y_pred = (rng.random(n) < bias).astype(float)
    y_true[rng.random(n) < 0.3] = np.nan  # not every label has arrived
    return pd.DataFrame({"group": group, "income": income, "prediction": y_pred, "label": y_true})


def test_fairness_metrics_equal_fairlearns_functions_on_the_same_rows():
    frame = rows()
    report = fairness_metrics(frame["prediction"], frame["group"], y_true=frame["label"], min_rows=1,
                              sensitive_feature="group")
    assert report.demographic_parity_difference == pytest.approx(
        demographic_parity_difference(frame["label"], frame["prediction"], sensitive_features=frame["group"]))
    assert report.demographic_parity_ratio == pytest.approx(
        demographic_parity_ratio(frame["label"], frame["prediction"], sensitive_features=frame["group"]))
    known = frame.dropna(subset=["label"])
    assert report.equalized_odds_difference == pytest.approx(
        equalized_odds_difference(known["label"], known["prediction"], sensitive_features=known["group"]))
    assert report.four_fifths_ok is False  # 0.3 / 0.6 is well under 0.8
    assert "fails the four-fifths rule" in " ".join(report.sentences())
    by_group = report.by_group.set_index("group")
    assert by_group.loc["a", "n"] == (frame["group"] == "a").sum()
    assert by_group.loc["b", "selection_rate"] == pytest.approx(frame.loc[frame["group"] == "b", "prediction"].mean())


def test_small_groups_are_marked_and_left_out_of_the_differences():
    frame = rows(n=600, seed=1)
    frame.loc[:5, "group"] = "tiny"
    report = fairness_metrics(frame["prediction"], frame["group"], y_true=frame["label"], min_rows=30)
    assert report.by_group.set_index("group").loc["tiny", "too_small"]
    judged = frame[frame["group"] != "tiny"]
    assert report.demographic_parity_difference == pytest.approx(
        demographic_parity_difference(judged["label"], judged["prediction"], sensitive_features=judged["group"]))
    assert "tiny" in report.sentences()[-1]
    no_labels = fairness_metrics(frame["prediction"], frame["group"])
    assert math.isnan(no_labels.equalized_odds_difference)
    assert no_labels.by_group["n_labelled"].eq(0).all()


def test_segment_metrics_equal_scikit_learns_per_segment():
    frame = rows()
    result = segment_metrics(frame, ["group"], task="classification", classes=(0.0, 1.0), min_rows=300)
    table = result.table.set_index("segment")
    for name in ("a", "b", "c"):
        part = frame[(frame["group"] == name) & frame["label"].notna()]
        row = table.loc[f"group = {name}"]
        assert row["accuracy"] == pytest.approx(accuracy_score(part["label"], part["prediction"]))
        assert row["f1"] == pytest.approx(f1_score(part["label"], part["prediction"]))
        assert row["n"] == (frame["group"] == name).sum()
        assert row["n_labelled"] == len(part)
        assert row["prediction_rate"] == pytest.approx(frame.loc[frame["group"] == name, "prediction"].mean())
    assert bool(table.loc["group = c", "too_small"]) and not table.loc["group = a", "too_small"]
    assert list(result.table["n"]) == sorted(result.table["n"], reverse=True)


def test_segment_metrics_carry_the_performance_pages_intervals():
    from monitoring.statistics import group_metrics

    frame = rows()
    table = segment_metrics(frame, ["group"], task="classification", classes=(0.0, 1.0)).table.set_index("segment")
    part = frame[(frame["group"] == "a") & frame["label"].notna()]
    same = group_metrics(part["label"].to_numpy(), part["prediction"].to_numpy(), np.full(len(part), np.nan),
                         task="classification", classes=(0.0, 1.0), metrics=("accuracy", "f1"),
                         rng=np.random.default_rng(0))
    row = table.loc["group = a"]
    assert row["accuracy_low"] == pytest.approx(same["accuracy_low"])  # Wilson: the same interval, exactly
    assert row["accuracy_low"] < row["accuracy"] < row["accuracy_high"]
    assert row["f1_low"] < row["f1"] < row["f1_high"]


def test_the_period_takes_labels_of_its_rows_and_fairness_groups_carry_no_feature_name():
    from explain.segments import segments_fairness, segments_from_counts
    from monitoring.production import ProductionData
    from monitoring.segment_queries import segment_counts

    frame = rows(n=1000).drop(columns="label")
    frame = frame.assign(id=[f"p{i}" for i in range(len(frame))], ts=np.linspace(0.0, 10 * 86400.0, len(frame)))
    labeled = SimpleNamespace(frame=pd.DataFrame({"id": ["p998", "p0"], "label": [1.0, 0.0]}), task="classification",
                              classes=(0.0, 1.0))
    source = SimpleNamespace(read=lambda: ProductionData(frame, "rows"), join_labels=lambda *a, **k: labeled)
    now = frame["ts"].iloc[-1]  # the newest row is at now: after the period, which ends before now
    period = segment_counts(source, object(), ["group"], now=now, days=1.0)
    assert period.n_rows == 99  # [now - 1 day, now)
    assert int(period.cells.loc[period.cells["label"].notna(), "n"].sum()) == 1  # p0 is older than the period
    unlabeled = segment_counts(source, None, ["group"], now=now + 1, days=30.0)
    assert unlabeled.task == "classification" and unlabeled.classes == (0.0, 1.0) and unlabeled.n_rows == 1000
    assert segments_from_counts(unlabeled, min_rows=10).table["n_labelled"].eq(0).all()
    report = segments_fairness(unlabeled, min_rows=10)
    assert set(report.by_group["group"]) == {"a", "b", "c"}
    regression = segment_counts(source, None, ["group"], now=now + 1, days=30.0, task="regression")
    assert segments_fairness(regression) is None
    bins = set(assign_segments(frame, ["income"], with_names=False))
    assert len(bins) == 4 and not any(label.startswith("income") for label in bins), bins


def test_numeric_bins_from_the_reference_and_two_features_and_regression():
    frame = rows()
    reference = frame.sample(1000, random_state=0)
    result = segment_metrics(frame.assign(prediction=frame["income"] / 1000, label=frame["income"] / 1000 + 0.5),
                             ["income", "group"], task="regression", n_bins=2, reference=reference)
    assert result.metrics == ("mae", "rmse")
    assert result.table["mae"].to_numpy() == pytest.approx(0.5)
    median = np.median(reference["income"])
    low = frame[(frame["income"] < median) & (frame["group"] == "a")]
    row = result.table[result.table["segment"].str.startswith("income <") & result.table["segment"].str.endswith("a")]
    assert row["n"].item() == len(low)
    assert row["rmse"].item() == pytest.approx(root_mean_squared_error(low["income"] / 1000 + 0.5,
                                                                       low["income"] / 1000))
    assert mean_absolute_error([1], [1.5]) == pytest.approx(0.5)
    assert result.table["reference_share"].sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="one or two"):
        assign_segments(frame, ["group", "income", "label"])


def test_segment_importance_explains_a_bounded_sample_per_segment():
    frame = rows(n=500)
    X = frame[["income", "label"]].fillna(0.0)

    class Fake:
        def __init__(self):
            self.calls = []

        def explain(self, rows):
            self.calls.append(len(rows))
            values = np.stack([rows["income"].to_numpy(), np.ones(len(rows))], axis=1)[:, :, None]
            return SimpleNamespace(values=values, features=("income", "label"), output_index=lambda k: 0)

    fake = Fake()
    segments = assign_segments(frame, ["group"])
    out = segment_importance(fake, X, segments, n_rows=20, top=1)
    assert fake.calls == [60]
    assert set(out["segment"]) == {"group = a", "group = b", "group = c"}
    assert (out["feature"] == "income").all() and (out["n_explained"] == 20).all()


# -- the page ---------------------------------------------------------------------------------

from tests.helpers import page_text  # noqa: E402


def test_segments_view_shows_segments_importance_and_fairness(app):
    at = app.run()
    at.switch_page("views/segments.py").run()
    assert not at.exception, at.exception
    text = page_text(at)
    assert "segments" in text and "over the last 30 days" in text
    table = at.dataframe[0].value
    assert len(table) >= 2 and table["n"].sum() > 1000
    judged = table[table["judged"] == "yes"].iloc[0]
    low, high = (float(x) for x in judged["accuracy_interval"].split("–"))
    assert low < judged["accuracy"] < high  # each metric with its interval, as on the Performance page
    tables = [d.value.data if hasattr(d.value, "data") else d.value for d in at.dataframe]
    importance = next(t for t in tables if "top_features" in t.columns)  # from the local model file, at once
    assert "group" in tables[1].columns  # fairness comes first: it never waits for the explanations
    assert list(importance["segment"]) == list(table["segment"].sort_values())
    assert importance["top_features"].str.count(",").eq(2).all()  # three features each
    assert "Demographic parity ratio" in [m.label for m in at.metric]
    assert "four-fifths rule" in text
    at.multiselect(key="segments_features_credit").set_value(["income", "channel"]).run()
    assert not at.exception, at.exception
    at.selectbox(key="segments_sensitive_credit").select("age").run()
    assert not at.exception, at.exception
    at.selectbox(key="segments_service").select("unlogged").run()
    assert not at.exception, at.exception
    assert "Segments need logged predictions" in page_text(at)


def test_segment_drift_compares_each_segment_with_its_own_training_rows():
    from demo.data import DRIFTED_FEATURES, FEATURES, generate, generate_reference
    from explain.segments import segment_drift

    reference = generate_reference(20_000, random_state=0)
    after = generate(20_000, start_day=20, end_day=28, random_state=1)  # scripted drift in full force
    before = generate(20_000, start_day=0, end_day=10, random_state=2)
    kinds = dict(FEATURES)
    drifted = segment_drift(after, reference, ["region"], kinds)
    numeric_drift = {"income", "credit_utilization"} & set(DRIFTED_FEATURES)
    for names in drifted["drifted_features"]:
        assert numeric_drift <= set(names.split(", "))
        assert "signup_weekday" not in names
    stable = segment_drift(before, reference, ["region"], kinds)
    assert (stable["n_drifted"] == 0).all()
    tiny = segment_drift(after.head(40), reference, ["region"], kinds, min_rows=30)
    assert tiny["n_drifted"].isna().all()  # too few rows per segment: not checked, not hidden


def test_black_box_importance_waits_to_be_asked_and_the_rest_of_the_page_does_not(app, overview_config):
    overview_config.write_text(overview_config.read_text().replace('source = "local"', 'source = "remote"'))
    at = app.run()
    at.switch_page("views/segments.py").run()
    assert not at.exception, at.exception
    assert "Demographic parity ratio" in [m.label for m in at.metric]  # fairness is there at once
    assert not any("top_features" in d.value.columns for d in at.dataframe)  # nothing sent to the service yet
    assert "runs only when asked" in page_text(at)
    at.button(key="segments_explain_credit").click().run()
    assert not at.exception, at.exception  # the service is down here: a message, not a traceback
    assert "Feature importance per segment is not available" in "\n".join(i.value for i in at.info)


def test_rows_per_segment_fit_the_services_budget():
    from explain.segments import rows_per_segment

    assert rows_per_segment(4, at_most=400, model_rows_per_row=0, model_rows_budget=200_000) == 100  # local
    assert rows_per_segment(4, at_most=400, model_rows_per_row=1000, model_rows_budget=200_000) == 50  # 200k / 4k
    assert rows_per_segment(40, at_most=400, model_rows_per_row=10_000, model_rows_budget=200_000) == 1
    assert rows_per_segment(2, at_most=400, model_rows_per_row=10, model_rows_budget=None) == 200
