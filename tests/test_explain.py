"""Explanations with known answers: SHAP and partial dependence of local models (fast tests)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.inspection import partial_dependence as sklearn_partial_dependence
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from explain import (
    ExplainError,
    LocalModel,
    ShapExplainer,
    feature_grid,
    partial_dependence,
    permutation_shap,
)
from explain import plots as explain_plots


def numeric_data(n=400, *, random_state=0):
    rng = np.random.default_rng(random_state)
    X = pd.DataFrame({"a": rng.normal(0, 1, n), "b": rng.normal(5, 2, n), "c": rng.uniform(-1, 1, n)})
    return X, rng


def mixed_data(n=600, *, random_state=0, classes=2):
    rng = np.random.default_rng(random_state)
    X = pd.DataFrame({
        "size": rng.normal(10, 3, n),
        "age": rng.uniform(0, 50, n),
        "color": rng.choice(["red", "green", "blue"], n),
        "noise": rng.normal(0, 1, n),
    })
    X.loc[rng.random(n) < 0.05, "age"] = np.nan
    score = 0.4 * (X["size"] - 10) + 1.5 * (X["color"] == "red") - 0.03 * X["age"].fillna(25)
    if classes == 2:
        y = (score + rng.normal(0, 0.5, n) > 0).astype(int)
    else:
        y = np.digitize(score + rng.normal(0, 0.3, n), np.quantile(score, np.linspace(0, 1, classes + 1)[1:-1]))
    return X, y


def pipeline(estimator):
    preprocess = ColumnTransformer([
        ("numeric", SimpleImputer(strategy="median"), ["size", "age", "noise"]),
        ("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["color"]),
    ])
    return Pipeline([("preprocess", preprocess), ("model", estimator)])


FEATURES = ["size", "age", "color", "noise"]


# -- additivity and the demo model's ground truth --------------------------------------------


def test_tree_shap_of_the_demo_model_sums_to_the_log_odds(demo_model):
    from demo.model import load_reference

    X = load_reference(demo_model)[list(demo_model.features)]
    model = LocalModel(demo_model.pipeline, features=list(demo_model.features))
    explainer = ShapExplainer(model, X)
    assert (explainer.method, explainer.space) == ("tree", "log_odds")
    values = explainer.explain(X.iloc[:300])
    p = demo_model.pipeline.predict_proba(X.iloc[:300])[:, 1]
    np.testing.assert_allclose(values.base_values[0] + values.values[:, :, 0].sum(axis=1), np.log(p / (1 - p)),
                               atol=1e-8)
    assert values.values.shape == (300, len(demo_model.features), 1)  # raw features, not one-hot columns


def test_demo_model_top_feature_is_the_ground_truths_strongest_and_ignored_ones_are_near_zero(demo_model):
    from demo.data import IGNORED_FEATURES, STRONGEST_FEATURE
    from demo.model import load_reference

    X = load_reference(demo_model)[list(demo_model.features)]
    model = LocalModel(demo_model.pipeline, features=list(demo_model.features))
    importance = ShapExplainer(model, X).explain(X.sample(1000, random_state=1)).importance()
    assert importance["feature"].iloc[0] == STRONGEST_FEATURE
    top = importance["mean_abs_shap"].iloc[0]
    for feature in IGNORED_FEATURES:
        ignored = importance.set_index("feature").loc[feature, "mean_abs_shap"]
        assert ignored < 0.03 * top, (feature, ignored, top)


def test_probability_space_values_sum_to_the_probability(demo_model):
    from demo.model import load_reference

    X = load_reference(demo_model)[list(demo_model.features)]
    model = LocalModel(demo_model.pipeline, features=list(demo_model.features))
    for method in ("auto", "permutation"):
        explainer = ShapExplainer(model, X, space="probability", method=method, background_rows=30)
        assert explainer.space == "probability"
        values = explainer.explain(X.iloc[:3])
        np.testing.assert_allclose(values.outputs(), demo_model.pipeline.predict_proba(X.iloc[:3])[:, 1], atol=1e-9)


# -- linear models: SHAP = coef × (x − mean) -------------------------------------------------


def test_linear_regression_shap_is_coef_times_distance_from_the_mean():
    X, rng = numeric_data()
    y = 2.0 * X["a"] - 0.5 * X["b"] + 3.0 * X["c"] + rng.normal(0, 0.1, len(X))
    estimator = LinearRegression().fit(X, y)
    model = LocalModel(estimator, features=list(X.columns))
    explainer = ShapExplainer(model, X, background_rows=100, random_state=3)
    assert (explainer.method, explainer.space) == ("linear", "value")
    values = explainer.explain(X.iloc[:50])
    expected = estimator.coef_ * (X.iloc[:50].to_numpy() - explainer.background.to_numpy().mean(axis=0))
    np.testing.assert_allclose(values.values[:, :, 0], expected, atol=1e-9)
    np.testing.assert_allclose(values.outputs(), estimator.predict(X.iloc[:50]), atol=1e-9)


def test_logistic_regression_shap_is_coef_times_distance_from_the_mean_in_log_odds():
    X, rng = numeric_data()
    y = (X["a"] - 0.3 * X["b"] + rng.normal(0, 0.5, len(X)) > -1.5).astype(int)
    estimator = LogisticRegression().fit(X, y)
    model = LocalModel(estimator, features=list(X.columns))
    explainer = ShapExplainer(model, X)
    assert (explainer.method, explainer.space) == ("linear", "log_odds")
    values = explainer.explain(X.iloc[:20])
    expected = estimator.coef_[0] * (X.iloc[:20].to_numpy() - explainer.background.to_numpy().mean(axis=0))
    np.testing.assert_allclose(values.values[:, :, 0], expected, atol=1e-9)
    np.testing.assert_allclose(values.outputs(), estimator.decision_function(X.iloc[:20]), atol=1e-9)


def test_pipeline_with_one_hot_is_explained_in_raw_features_and_stays_additive():
    X, y = mixed_data()
    estimator = pipeline(LogisticRegression(max_iter=1000)).fit(X[FEATURES], y)
    model = LocalModel(estimator, features=FEATURES)
    assert model.feature_kinds == {"size": "numeric", "age": "numeric", "color": "categorical", "noise": "numeric"}
    values = ShapExplainer(model, X).explain(X.iloc[:40])
    assert values.features == tuple(FEATURES)
    np.testing.assert_allclose(values.outputs(), estimator.decision_function(X[FEATURES].iloc[:40]), atol=1e-9)
    # the three one-hot columns of "color" are summed into one value
    coef = estimator[-1].coef_[0]
    onehot = estimator[0].transform(X[FEATURES].iloc[:40])[:, 3:]
    # LinearExplainer centres on the background sample's mean
    background = estimator[0].transform(ShapExplainer(model, X).background)[:, 3:].mean(axis=0)
    np.testing.assert_allclose(values.values[:, FEATURES.index("color"), 0], (onehot - background) @ coef[3:],
                               atol=1e-9)


def test_sparse_one_hot_and_a_nested_pipeline_are_mapped_back_to_raw_features():
    X, y = mixed_data()
    preprocess = ColumnTransformer([
        ("numeric", Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())]), ["size", "age", "noise"]),
        ("categorical", Pipeline([("onehot", OneHotEncoder(handle_unknown="ignore"))]), ["color"]),
    ])
    estimator = Pipeline([("preprocess", preprocess), ("model", GradientBoostingClassifier(n_estimators=20))])
    estimator.fit(X[FEATURES], y)
    model = LocalModel(estimator, features=FEATURES)
    assert model.column_map.groups.tolist() == [0, 1, 3, 2, 2, 2]
    values = ShapExplainer(model, X).explain(X.iloc[:10])
    p = estimator.predict_proba(X[FEATURES].iloc[:10])[:, 1]
    np.testing.assert_allclose(values.outputs(), np.log(p / (1 - p)), atol=1e-8)


# -- the permutation estimator -------------------------------------------------------------


def test_permutation_shap_is_exact_for_pairwise_interactions_and_matches_shaps_exact_explainer():
    import shap

    X, _ = numeric_data(50)
    X["d"] = np.random.default_rng(5).normal(size=len(X))

    def f(frame):
        a, b, c, d = (frame[k].to_numpy() for k in "abcd")
        return (a * b + np.sin(c) + 0.5 * d * a).reshape(-1, 1)

    background = X.iloc[:20]
    calls = []

    def predict(frames, progress):
        calls.append(len(frames))
        return [f(frames[i]) for i in range(len(frames))]

    values, base, _, _, _ = permutation_shap(predict, X.iloc[20:23], background, n_permutations=1)
    exact = shap.ExactExplainer(lambda a: f(pd.DataFrame(a, columns=list("abcd")))[:, 0],
                                shap.maskers.Independent(background.to_numpy(), max_samples=20))
    expected = exact(X.iloc[20:23].to_numpy()).values
    np.testing.assert_allclose(values[:, :, 0], expected, atol=1e-10)
    np.testing.assert_allclose(base[0] + values[:, :, 0].sum(axis=1), f(X.iloc[20:23])[:, 0], atol=1e-12)
    assert calls == [1]  # every masked row of the three explained rows in one model call


def test_permutation_explainer_for_a_model_without_tree_or_linear_explainer():
    X, y = mixed_data(300)
    estimator = pipeline(KNeighborsClassifier()).fit(X[FEATURES], y)
    model = LocalModel(estimator, features=FEATURES)
    explainer = ShapExplainer(model, X, background_rows=25)
    assert (explainer.method, explainer.space) == ("permutation", "probability")
    values = explainer.explain(X.iloc[:2])
    np.testing.assert_allclose(values.outputs(), estimator.predict_proba(X[FEATURES].iloc[:2])[:, 1], atol=1e-12)
    assert values.model_rows > 0 and values.requests == 0


# -- multiclass and regression --------------------------------------------------------------


@pytest.mark.parametrize("estimator", [GradientBoostingClassifier(n_estimators=30, random_state=0),
                                       RandomForestClassifier(n_estimators=20, random_state=0)])
def test_multiclass_shap_has_one_output_per_class_and_each_is_additive(estimator):
    X, y = mixed_data(classes=3)
    fitted = pipeline(estimator).fit(X[FEATURES], y)
    model = LocalModel(fitted, features=FEATURES)
    assert model.task == "classification" and not model.binary
    assert model.output_names() == ("class 0", "class 1", "class 2")
    explainer = ShapExplainer(model, X)
    values = explainer.explain(X.iloc[:25])
    assert values.values.shape == (25, 4, 3)
    if explainer.space == "probability":  # forests
        expected = fitted.predict_proba(X[FEATURES].iloc[:25])
    else:  # gradient boosting: per-class raw scores
        expected = fitted.decision_function(X[FEATURES].iloc[:25])
    for k in range(3):
        np.testing.assert_allclose(values.outputs(k), expected[:, k], atol=1e-8)
    assert values.importance("class 2")["feature"].iloc[0] in ("size", "color")
    permuted = ShapExplainer(model, X, method="permutation", background_rows=20).explain(X.iloc[:2])
    np.testing.assert_allclose(np.stack([permuted.outputs(k) for k in range(3)], axis=1),
                               fitted.predict_proba(X[FEATURES].iloc[:2]), atol=1e-12)


def test_regression_shap_sums_to_the_prediction():
    X, rng = numeric_data()
    y = X["a"] ** 2 + X["b"] + rng.normal(0, 0.1, len(X))
    estimator = GradientBoostingRegressor(n_estimators=50).fit(X, y)
    model = LocalModel(estimator, features=list(X.columns))
    assert model.task == "regression" and model.output_names() == ("predicted value",)
    explainer = ShapExplainer(model, X, space="probability")  # ignored: a regression has one space
    assert (explainer.method, explainer.space) == ("tree", "value")
    values = explainer.explain(X.iloc[:30])
    np.testing.assert_allclose(values.outputs(), estimator.predict(X.iloc[:30]), atol=1e-8)
    result = partial_dependence(model, X, "a", grid_resolution=10)
    assert result.space == "value" and result.average.shape == (1, 10)


# -- partial dependence ---------------------------------------------------------------------


def test_partial_dependence_of_a_linear_model_is_a_straight_line_with_the_coefficient_as_slope():
    X, rng = numeric_data()
    y = 2.0 * X["a"] - 0.5 * X["b"] + rng.normal(0, 0.1, len(X))
    estimator = LinearRegression().fit(X, y)
    model = LocalModel(estimator, features=list(X.columns))
    result = partial_dependence(model, X, "b", grid_resolution=15, ice_lines=30)
    grid = result.grid[0]
    slopes = np.diff(result.average[0]) / np.diff(grid)
    np.testing.assert_allclose(slopes, estimator.coef_[1], rtol=1e-9)
    assert np.quantile(X["b"], 0.05) == pytest.approx(grid[0], abs=0.05)
    assert result.individual.shape == (1, 30, 15)
    centred = result.curves(centered=True)
    np.testing.assert_allclose(centred["individual"], np.tile(centred["individual"][0], (30, 1)), atol=1e-9)


def test_local_partial_dependence_equals_sklearns_brute_force_on_the_same_grid():
    X, y = mixed_data()
    fitted = pipeline(GradientBoostingClassifier(n_estimators=30, random_state=0)).fit(X[FEATURES], y)
    model = LocalModel(fitted, features=FEATURES)
    result = partial_dependence(model, X.iloc[:200], "size", grid_resolution=12, ice_lines=0,
                                highlight=X.iloc[[5]])
    grid = feature_grid(X.iloc[:200], "size", grid_resolution=12)
    expected = sklearn_partial_dependence(fitted, X[FEATURES].iloc[:200], ["size"], method="brute",
                                          custom_values={"size": grid}, kind="average")
    np.testing.assert_allclose(result.average, expected["average"], atol=1e-12)
    own = X.iloc[[5]].loc[np.repeat(X.index[5], 12)].assign(size=grid)
    np.testing.assert_allclose(result.highlight[0], fitted.predict_proba(own[FEATURES])[:, 1], atol=1e-12)
    categorical = partial_dependence(model, X.iloc[:200], "color")
    assert list(categorical.grid[0]) == ["blue", "green", "red"]
    assert categorical.average[0][2] > categorical.average[0][0]  # red raises the score
    heatmap = partial_dependence(model, X.iloc[:100], ["size", "color"], grid_resolution=5)
    assert heatmap.average.shape == (1, 5, 3) and heatmap.individual is None


def test_numeric_grid_spans_the_5th_to_95th_percentile_of_non_missing_values():
    X, _ = mixed_data()
    grid = feature_grid(X, "age", grid_resolution=20)
    present = X["age"].dropna()
    assert len(grid) == 20 and not np.isnan(grid).any()
    assert grid[0] == pytest.approx(np.quantile(present, 0.05), abs=0.3)  # mquantiles, as scikit-learn
    assert grid[-1] == pytest.approx(np.quantile(present, 0.95), abs=0.3)
    with pytest.raises(ValueError, match="grid_resolution must be >= 2; got 1"):
        feature_grid(X, "age", grid_resolution=1)


def test_multiclass_partial_dependence_has_one_curve_per_class():
    X, y = mixed_data(classes=3)
    fitted = pipeline(RandomForestClassifier(n_estimators=10, random_state=0)).fit(X[FEATURES], y)
    result = partial_dependence(LocalModel(fitted, features=FEATURES), X.iloc[:100], "size", grid_resolution=8)
    assert result.average.shape == (3, 8)
    np.testing.assert_allclose(result.average.sum(axis=0), 1.0, atol=1e-9)


# -- validation and plots ---------------------------------------------------------------------


def test_validation_messages_name_the_parameter_the_accepted_values_and_the_value():
    X, _ = numeric_data(50)
    model = LocalModel(LinearRegression().fit(X, X["a"]), features=list(X.columns))
    with pytest.raises(ValueError, match=r"method must be one of .*'permutation'.*; got 'kernel'"):
        ShapExplainer(model, X, method="kernel")
    with pytest.raises(ValueError, match="background_rows must be between 1 and 1000; got 0"):
        ShapExplainer(model, X, background_rows=0)
    with pytest.raises(ValueError, match=r"features must be among the model's features .*; got \['z'\]"):
        partial_dependence(model, X, "z")
    with pytest.raises(ExplainError, match=r"X lacks the model's features \['c'\]"):
        ShapExplainer(model, X).explain(X[["a", "b"]])
    values = ShapExplainer(model, X).explain(X.iloc[:5])
    with pytest.raises(ValueError, match=r"output must be one of \['predicted value'\]; got 'class 1'"):
        values.importance("class 1")


def test_plots_draw_every_result():
    X, y = mixed_data(200)
    fitted = pipeline(GradientBoostingClassifier(n_estimators=20)).fit(X[FEATURES], y)
    model = LocalModel(fitted, features=FEATURES)
    values = ShapExplainer(model, X).explain(X.iloc[:50], row_ids=tuple(f"id{i}" for i in range(50)))
    one = partial_dependence(model, X.iloc[:50], "size", grid_resolution=6, highlight=X.iloc[[3]])
    two = partial_dependence(model, X.iloc[:50], ["size", "color"], grid_resolution=4)
    figures = [explain_plots.importance_figure(values), explain_plots.beeswarm_figure(values),
               explain_plots.dependence_figure(values.dependence("size")),
               explain_plots.dependence_figure(values.dependence("color", color_by="size")),
               explain_plots.waterfall_figure(values.explanation(3)),
               explain_plots.partial_dependence_figure(one, centered=True),
               explain_plots.partial_dependence_heatmap_figure(two)]
    assert all(f.data for f in figures)
    assert "id3" in figures[4].layout.title.text
    assert values.explanation(3).prediction == pytest.approx(values.outputs()[3])


def test_fast_preprocessing_gives_scikit_learns_matrix_including_unseen_and_missing_values():
    X, y = mixed_data()
    fitted = pipeline(GradientBoostingClassifier(n_estimators=10)).fit(X[FEATURES], y)
    model = LocalModel(fitted, features=FEATURES)
    assert model.prepare_fast_transform(X.iloc[:100])
    odd = X.iloc[:4].copy()
    odd.loc[odd.index[0], "color"] = "purple"  # unseen: all one-hot columns 0
    odd.loc[odd.index[1], "size"] = np.nan  # imputed
    np.testing.assert_array_equal(model.transform(odd), fitted[0].transform(odd[FEATURES]))
    unsupported = Pipeline([("scale", StandardScaler()), ("model", LinearRegression())]).fit(X[["size", "noise"]],
                                                                                           X["noise"])
    assert not LocalModel(unsupported, features=["size", "noise"]).prepare_fast_transform(X)
