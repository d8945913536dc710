"""What-if analysis and counterfactuals (explain.whatif): against the real demo service, and unit tests."""

import numpy as np
import pandas as pd
import pytest

from demo.data import FEATURES, IGNORED_FEATURES, STRONGEST_FEATURE, STRONGEST_FEATURE_DIRECTION
from explain import RemoteModel, load_artifact
from explain.scenarios import Scenario, decode_scenario, encode_scenario
from explain.whatif import (
    WhatIfInputError,
    compare,
    counterfactuals,
    feature_ranges,
    sensitivity,
)


@pytest.fixture(scope="module")
def reference(demo_model):
    return pd.read_parquet(demo_model.reference_path)[list(FEATURES)]


@pytest.fixture(scope="module")
def service_model(demo_runtime, reference):
    """The real demo service as a black box (OIP v2)."""
    config = demo_runtime.config.service("credit-risk")
    features = list(config.features)
    kinds = {f: ("numeric" if pd.api.types.is_numeric_dtype(reference[f]) else "categorical") for f in features}
    model = RemoteModel(config, features=features, feature_kinds=kinds, X_sample=reference[features].head(5))
    yield model
    model.client.close()


@pytest.fixture(scope="module")
def local_model(demo_model, reference):
    features = list(reference.columns)
    return load_artifact(str(demo_model.artifact_path), features=features, trust_pickle=True)


@pytest.fixture(scope="module")
def ranges(reference, local_model):
    return feature_ranges(reference, features=local_model.features, feature_kinds=local_model.feature_kinds)


def typical_row(reference, model) -> pd.DataFrame:
    """A complete reference row with a low predicted risk."""
    complete = reference[list(model.features)].dropna().head(200)
    proba = model.predict_proba(complete)[:, 1]
    return complete.iloc[[int(np.argmin(np.abs(proba - 0.15)))]]


@pytest.mark.integration
def test_changing_an_ignored_feature_leaves_the_prediction_nearly_unchanged(service_model, reference, ranges):
    row = typical_row(reference, service_model)
    for feature in IGNORED_FEATURES:
        for category in ranges.categories[feature]:
            result = compare(service_model, row, {feature: category}, ranges=ranges)
            assert abs(result.score_change) < 0.03, (feature, category, result.score_change)
            assert result.requests == 1


@pytest.mark.integration
def test_changing_the_strongest_feature_moves_the_prediction_the_documented_way(service_model, reference, ranges):
    row = typical_row(reference, service_model)
    high = compare(service_model, row, {STRONGEST_FEATURE: ranges.high[STRONGEST_FEATURE]}, ranges=ranges)
    low = compare(service_model, row, {STRONGEST_FEATURE: ranges.low[STRONGEST_FEATURE]}, ranges=ranges)
    assert STRONGEST_FEATURE_DIRECTION * (high.edited_prediction.score - low.edited_prediction.score) > 0.2
    assert list(high.differences["feature"]) == [STRONGEST_FEATURE]


@pytest.mark.integration
def test_sensitivity_for_every_feature_in_one_request(service_model, reference, ranges):
    row = typical_row(reference, service_model)
    result = sensitivity(service_model, row, ranges)
    assert result.requests == 1
    assert set(result.curves) == set(service_model.features)
    ranking = result.ranking.set_index("feature")
    assert ranking.loc[IGNORED_FEATURES[0], "swing"] < 0.03
    assert STRONGEST_FEATURE in list(ranking.index[:5])
    assert ranking.index[-1] in IGNORED_FEATURES or ranking.loc[ranking.index[-1], "swing"] < 0.03
    curve = result.curves[STRONGEST_FEATURE]
    assert curve["value"].min() == ranges.low[STRONGEST_FEATURE]
    assert curve["value"].max() == ranges.high[STRONGEST_FEATURE]
    assert STRONGEST_FEATURE_DIRECTION * (curve["score"].iloc[-1] - curve["score"].iloc[0]) > 0


@pytest.mark.integration
def test_every_counterfactual_flips_the_prediction_of_the_real_service(service_model, reference, ranges):
    row = typical_row(reference, service_model)
    result = counterfactuals(service_model, row, reference, ranges=ranges, n_counterfactuals=3, random_state=1)
    assert len(result.counterfactuals) == 3
    assert result.requests <= 4 + result.candidates // service_model.max_rows  # four rounds, in budget-sized requests
    original = service_model.predict_proba(row)[0, 1] >= 0.5
    rows = pd.DataFrame([c.row for c in result.counterfactuals])
    for name, kind in service_model.feature_kinds.items():
        if kind == "categorical":
            rows[name] = rows[name].astype(object)
    flipped = service_model.predict_proba(rows)[:, 1] >= 0.5  # sent again, on its own request
    assert (flipped != original).all()
    for answer in result.counterfactuals:
        assert len(answer.changes) >= 1
        assert not ranges.problems(answer.row)
    change_sets = {tuple(sorted(c.changes["feature"])) for c in result.counterfactuals}
    assert len(change_sets) >= 2  # diverse


def test_counterfactuals_respect_allowed_features_and_bounds(local_model, reference, ranges):
    row = typical_row(reference, local_model)
    allowed = ("credit_utilization", "late_payments_12m", "channel")
    bounds = {"credit_utilization": (0.0, 0.8), "late_payments_12m": (0, 4), "channel": ("web", "partner")}
    result = counterfactuals(local_model, row, reference, ranges=ranges, allowed=allowed, bounds=bounds,
                             n_counterfactuals=3, random_state=0)
    assert result.counterfactuals
    for answer in result.counterfactuals:
        assert set(answer.changes["feature"]) <= set(allowed)
        assert 0.0 <= answer.row["credit_utilization"] <= 0.8
        assert 0 <= answer.row["late_payments_12m"] <= 4
        assert answer.row["channel"] in ("web", "partner") or answer.row["channel"] == row["channel"].iloc[0]
        assert answer.prediction.label == 1


def test_bad_bounds_and_values_name_the_feature_the_range_and_the_value(local_model, reference, ranges):
    row = typical_row(reference, local_model)
    with pytest.raises(WhatIfInputError, match=r"bounds of age .*19.*85.*\(10, 50\)"):
        counterfactuals(local_model, row, reference, ranges=ranges, allowed=["age"], bounds={"age": (10, 50)})
    with pytest.raises(WhatIfInputError, match=r"region must be one of .*got 'mars'"):
        compare(local_model, row, {"region": "mars"}, ranges=ranges)
    with pytest.raises(WhatIfInputError) as info:
        compare(local_model, row, {"age": 500, "debt_ratio": None}, ranges=ranges)
    assert "age must be a number between 19 and 85" in info.value.message and "got 500" in info.value.message
    assert "debt_ratio is empty" in info.value.message
    with pytest.raises(WhatIfInputError, match="not a feature"):
        compare(local_model, row, {"colour": "red"}, ranges=ranges)


def test_compare_with_shap_values_is_additive(local_model, reference, ranges):
    from explain import ShapExplainer

    row = typical_row(reference, local_model)
    explainer = ShapExplainer(local_model, reference.head(100), space="probability")
    result = compare(local_model, row, {STRONGEST_FEATURE: 0.9}, ranges=ranges, explainer=explainer)
    assert result.shap.n_rows == 2
    assert result.shap.outputs()[1] == pytest.approx(result.edited_prediction.score, abs=1e-6)
    assert result.differences.loc[0, "shap_change"] > 0


def test_regression_counterfactuals_reach_the_target_range():
    from sklearn.linear_model import LinearRegression

    from explain import LocalModel

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.uniform(0, 10, 500), "b": rng.uniform(0, 10, 500)})
    model = LocalModel(LinearRegression().fit(X, 2 * X["a"] + X["b"]), features=["a", "b"])
    result = counterfactuals(model, {"a": 1.0, "b": 1.0}, X, target_range=(20.0, 25.0), n_counterfactuals=2)
    assert result.counterfactuals
    for answer in result.counterfactuals:
        assert 20.0 <= answer.prediction.score <= 25.0


def test_scenario_survives_the_url_round_trip():
    scenario = Scenario("higher usage", "prediction", "a1b2", {"credit_utilization": 0.9, "channel": "web",
                                                                "late_payments_12m": np.int64(2)})
    text = encode_scenario(scenario)
    back = decode_scenario(text, features=["credit_utilization", "channel", "late_payments_12m"])
    assert back == Scenario("higher usage", "prediction", "a1b2",
                            {"credit_utilization": 0.9, "channel": "web", "late_payments_12m": 2})
    with pytest.raises(ValueError, match="source must be one of"):
        decode_scenario('{"s":"elsewhere"}')
    with pytest.raises(ValueError, match="JSON"):
        decode_scenario("not json")
    with pytest.raises(ValueError, match=r"features \['colour'\]"):
        decode_scenario(encode_scenario(Scenario("x", "reference", "3", {"colour": 1})), features=["a"])


def test_an_edit_is_a_change_only_beyond_float_noise_and_missing_equals_only_missing():
    from explain.whatif import value_changed

    assert not value_changed(0.1 + 0.2, 0.3)  # read back from a widget or a link: not an edit
    assert value_changed(1.0, 1.001) and value_changed("web", "shop") and not value_changed("web", "web")
    assert not value_changed(None, float("nan")) and value_changed(None, 0.0) and value_changed(float("nan"), "x")
    assert not value_changed(3, 3.0)
