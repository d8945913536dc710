"""Drift engine: known answers, equality with scipy, windows, missing/unseen values, the demo's scripted drift."""

from __future__ import annotations

import math
import os
import time
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import euclidean, jensenshannon

from demo.data import (
    DEFAULT_HISTORY_START,
    DRIFT_RAMP_DAYS,
    DRIFT_START_DAY,
    DRIFTED_FEATURES,
    FEATURES,
    SECONDS_PER_DAY,
    generate,
    generate_reference,
)
from monitoring.drift import (
    DATASET_COLUMNS,
    DISTRIBUTION_COLUMNS,
    METHODS,
    RESULT_COLUMNS,
    DriftWarning,
    build_edge_index,
    build_profile,
    check_drift_settings,
    choose_method,
    compute_drift,
    feature_distribution,
    get_method,
    ks_p_value,
    load_or_build_profile,
    summary,
)
from monitoring.drift import _profile as profile_module
from monitoring.plots.drift import (
    distribution_figure,
    drift_heatmap_figure,
    drifted_share_figure,
    prediction_drift_figure,
)
from monitoring.reference import ReferenceDataError

P_VALUE_METHODS = ("ks", "chi_square", "z_test")
NUMERIC_METHODS = ("ks", "wasserstein", "jensen_shannon", "psi", "hellinger")
CATEGORICAL_METHODS = ("chi_square", "jensen_shannon", "psi", "hellinger")
WASSERSTEIN_TOLERANCE = 1e-3
"""Normalised units (1 % of the default threshold); the error only comes from fine bins where the CDFs cross."""


def one_window(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with timestamps that put every row in one day."""
    return frame.assign(ts=DEFAULT_HISTORY_START + np.linspace(0, 3600, len(frame)))


def scores(report, column: str) -> np.ndarray:
    rows = pd.concat([report.features, report.prediction])
    return rows.loc[rows["feature"] == column].sort_values("window")["score"].to_numpy()


def binned(profile, column: str, values: np.ndarray) -> np.ndarray:
    """Counts per bin computed independently of the engine: searchsorted on the profile's edges."""
    edges = profile.columns[column].edges
    values = values[np.isfinite(values)]
    return np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)


# -- registry --------------------------------------------------------------------------------------


def test_registry_holds_the_seven_methods_with_their_kinds_thresholds_and_score_kinds():
    expected = {
        "ks": ({"numeric"}, 0.05, "p_value"),
        "chi_square": ({"categorical"}, 0.05, "p_value"),
        "z_test": ({"categorical", "numeric"}, 0.05, "p_value"),
        "wasserstein": ({"numeric"}, 0.1, "distance"),
        "jensen_shannon": ({"numeric", "categorical"}, 0.1, "distance"),
        "psi": ({"numeric", "categorical"}, 0.2, "distance"),
        "hellinger": ({"numeric", "categorical"}, 0.1, "distance"),
    }
    assert set(METHODS) == set(expected)
    for name, (kinds, threshold, score_kind) in expected.items():
        method = get_method(name)
        assert (set(method.kinds), method.default_threshold, method.score_kind) == (kinds, threshold, score_kind)
        assert method.description and "\n" not in method.description


def test_unknown_method_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown drift method 'kolmogorov'") as error:
        get_method("kolmogorov")
    for name in METHODS:
        assert name in str(error.value)
    profile = build_profile(pd.DataFrame({"x": [1.0, 2.0, 3.0]}), {"x": "numeric"})
    with pytest.raises(ValueError, match=r"'wasserstien'.*valid methods: auto, ks"):
        compute_drift(profile, one_window(pd.DataFrame({"x": [1.0]})), methods={"x": "wasserstien"})


@pytest.mark.parametrize(("method", "column"), [("chi_square", "x"), ("ks", "c"), ("wasserstein", "c"),
                                                 ("z_test", "c")])
def test_a_method_that_does_not_fit_the_column_raises(method, column):
    reference = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "c": ["a", "b", "c", "a"]})
    profile = build_profile(reference, {"x": "numeric", "c": "categorical"})
    with pytest.raises(ValueError, match=f"'{method}'.*column '{column}'"):
        compute_drift(profile, one_window(reference), methods={column: method})


def test_config_settings_are_checked_before_data_is_read():
    kinds = {"income": "numeric", "channel": "categorical"}
    check_drift_settings(methods={"income": "psi", "channel": "auto"}, thresholds={"psi": 0.25}, kinds=kinds,
                         window="10000", drift_share=0.3)
    with pytest.raises(ValueError, match="unknown drift method 'psy'"):
        check_drift_settings(methods={"income": "psy"}, kinds=kinds)
    with pytest.raises(ValueError, match="'ks' accepts numeric columns; column 'channel' is categorical"):
        check_drift_settings(methods={"channel": "ks"}, kinds=kinds)
    with pytest.raises(ValueError, match="column 'age' is not a feature"):
        check_drift_settings(methods={"age": "ks"}, kinds=kinds)
    with pytest.raises(ValueError, match="'ks' is a p-value and must be in \\(0, 1\\); got 5"):
        check_drift_settings(thresholds={"ks": 5})
    with pytest.raises(ValueError, match="distance and must be > 0; got -1"):
        check_drift_settings(thresholds={"psi": -1})
    with pytest.raises(ValueError, match=r"window must be 'hour', 'day', 'week' or a positive number.*'month'"):
        check_drift_settings(window="month")
    with pytest.raises(ValueError, match="drift_share must be a number in \\(0, 1\\]; got 0"):
        check_drift_settings(drift_share=0)


# -- auto ------------------------------------------------------------------------------------------


def test_auto_uses_p_values_up_to_1000_reference_rows_and_distances_above():
    assert choose_method("numeric", n_reference_rows=1000) == "ks"
    assert choose_method("categorical", n_reference_rows=1000, n_categories=5) == "chi_square"
    assert choose_method("categorical", n_reference_rows=1000, n_categories=2) == "z_test"
    assert choose_method("numeric", n_reference_rows=1001) == "wasserstein"
    assert choose_method("categorical", n_reference_rows=1001, n_categories=2) == "jensen_shannon"
    rng = np.random.default_rng(0)
    for n, expected in ((1000, ("ks", "chi_square", "z_test")), (1001, ("wasserstein", "jensen_shannon",
                                                                          "jensen_shannon"))):
        reference = pd.DataFrame({"x": rng.normal(size=n), "c": rng.choice(list("abc"), n),
                                  "b": rng.choice(["yes", "no"], n)})
        profile = build_profile(reference, {"x": "numeric", "c": "categorical", "b": "categorical"})
        report = compute_drift(profile, one_window(reference))
        assert tuple(report.features["method"]) == expected
        overridden = compute_drift(profile, one_window(reference), methods={"x": "psi", "c": "hellinger"})
        assert tuple(overridden.features["method"])[:2] == ("psi", "hellinger")


# -- known answers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("n_reference", [300, 5000])
def test_identical_samples_show_no_drift_with_every_method(n_reference):
    rng = np.random.default_rng(1)
    reference = pd.DataFrame({"x": rng.normal(size=n_reference).round(2), "c": rng.choice(list("abcd"), n_reference),
                              "b": rng.choice(["yes", "no"], n_reference)})
    profile = build_profile(reference, {"x": "numeric", "c": "categorical", "b": "categorical"})
    current = one_window(reference)
    for method in NUMERIC_METHODS:
        assert scores(compute_drift(profile, current, methods={"x": method}), "x")[0] == pytest.approx(
            1.0 if method == "ks" else 0.0, abs=1e-12)
    for method in CATEGORICAL_METHODS:
        assert scores(compute_drift(profile, current, methods={"c": method}), "c")[0] == pytest.approx(
            1.0 if method == "chi_square" else 0.0, abs=1e-12)
    assert scores(compute_drift(profile, current, methods={"b": "z_test"}), "b")[0] == pytest.approx(1.0)
    for method in (*NUMERIC_METHODS, *CATEGORICAL_METHODS):
        report = compute_drift(profile, current, methods={"x": "ks" if method in CATEGORICAL_METHODS else method})
        assert not report.features["drifted"].any()
        # 300 rows against 300: Jensen–Shannon, PSI and Hellinger reach their thresholds from noise alone there
        assert set(report.features["status"]) <= {"stable", "too small"}
        assert set(report.features["severity"]) <= {"green", "grey"}
        if n_reference == 5000:
            assert set(report.features["status"]) == {"stable"}


@pytest.mark.parametrize(("n_reference", "window_rows"), [(400, 300), (400, 9000), (900, 20_000), (1000, 1000)])
@pytest.mark.parametrize("rounding", [None, 1])
def test_ks_equals_scipy_exact_and_asymptotic(n_reference, window_rows, rounding):
    rng = np.random.default_rng(n_reference + window_rows)
    reference = rng.normal(size=n_reference)
    current = rng.normal(0.1, 1.1, size=3 * window_rows)
    if rounding is not None:  # ties inside and across the samples
        reference, current = reference.round(rounding), current.round(rounding)
    profile = build_profile(pd.DataFrame({"x": reference}), {"x": "numeric"})
    assert profile.columns["x"].fine_exact
    ours = scores(compute_drift(profile, pd.DataFrame({"x": current}), window=window_rows, methods={"x": "ks"}), "x")
    expected = [stats.ks_2samp(reference, part).pvalue for part in np.split(current, 3)]
    np.testing.assert_allclose(ours, expected, rtol=1e-9, atol=1e-300)


def test_ks_over_many_windows_uses_a_fast_approximation_close_to_scipy():
    rng = np.random.default_rng(13)
    reference = rng.normal(size=500)
    shifts = np.repeat(np.linspace(0.0, 0.3, 40), 600)  # 40 windows: more than scipy's exact routine is run for
    current = rng.normal(shifts, 1.0)
    profile = build_profile(pd.DataFrame({"x": reference}), {"x": "numeric"})
    ours = scores(compute_drift(profile, pd.DataFrame({"x": current}), window=600, methods={"x": "ks"}), "x")
    expected = [stats.ks_2samp(reference, part).pvalue for part in np.split(current, 40)]
    np.testing.assert_allclose(ours, expected, rtol=0.1, atol=2e-3)


def test_ks_with_a_reference_of_many_distinct_values_is_within_one_fine_bin_of_scipy():
    rng = np.random.default_rng(5)
    reference, current = rng.normal(size=20_000), rng.normal(0.01, 1, size=20_000)
    profile = build_profile(pd.DataFrame({"x": reference}), {"x": "numeric"})
    assert not profile.columns["x"].fine_exact
    ours = scores(compute_drift(profile, pd.DataFrame({"x": current}), window=20_000, methods={"x": "ks"}), "x")[0]
    exact = stats.ks_2samp(reference, current)
    # the statistic can only be low, by at most the largest share of one fine bin in either sample
    slack = 2.0 / profile_module.MAX_FINE_EDGES
    assert ks_p_value(exact.statistic, 20_000, 20_000) - 1e-12 <= ours
    assert ours <= ks_p_value(max(exact.statistic - slack, 0.0), 20_000, 20_000) + 1e-12


@pytest.mark.parametrize("distribution", ["normal", "lognormal", "exponential", "bimodal", "integers"])
@pytest.mark.parametrize("shift", [0.0, 0.05, 0.5])
@pytest.mark.parametrize("n_reference", [500, 30_000])
def test_wasserstein_equals_scipy_normalised_by_the_reference_std(distribution, shift, n_reference):
    rng = np.random.default_rng(7)

    def draw(n, s):
        if distribution == "normal":
            return rng.normal(s, 1, n)
        if distribution == "lognormal":
            return np.exp(rng.normal(10 + s, 0.55, n)).round(-1)
        if distribution == "exponential":
            return rng.exponential(1 + s, n)
        if distribution == "bimodal":
            return np.where(rng.random(n) < 0.4, rng.normal(-2, 0.3, n), rng.normal(2 + s, 1, n))
        return rng.poisson(3 + 3 * s, n).astype(float)

    reference, current = draw(n_reference, 0.0), draw(40_000, shift)
    profile = build_profile(pd.DataFrame({"x": reference}), {"x": "numeric"})
    ours = scores(compute_drift(profile, pd.DataFrame({"x": current}), window=20_000, methods={"x": "wasserstein"}),
                  "x")
    expected = [stats.wasserstein_distance(reference, part) / reference.std() for part in np.split(current, 2)]
    np.testing.assert_allclose(ours, expected, atol=WASSERSTEIN_TOLERANCE, rtol=0)


def test_binned_distances_equal_scipy_and_their_formulas_on_numeric_and_categorical_columns():
    rng = np.random.default_rng(11)
    reference = pd.DataFrame({"x": rng.gamma(2.0, 2.0, 8000), "c": rng.choice(list("abcde"), 8000,
                                                                             p=[0.4, 0.3, 0.15, 0.1, 0.05])})
    current = pd.DataFrame({"x": np.concatenate([rng.gamma(2.2, 2.0, 3000), [-1.0, 100.0]]),
                            "c": np.concatenate([rng.choice(list("abcdz"), 3000, p=[0.3, 0.3, 0.2, 0.1, 0.1]),
                                                 ["a", "b"]])})
    profile = build_profile(reference, {"x": "numeric", "c": "categorical"})
    categories = list(profile.columns["c"].categories)
    p_categorical = np.append(pd.Series(reference["c"]).value_counts()[categories].to_numpy(), 0)
    q_categorical = np.append(pd.Series(current["c"]).value_counts().reindex(categories, fill_value=0).to_numpy(),
                              (~current["c"].isin(categories)).sum())
    for column, p, q in (("x", binned(profile, "x", reference["x"].to_numpy()),
                          binned(profile, "x", current["x"].to_numpy())),
                         ("c", p_categorical, q_categorical)):
        p_share, q_share = p / p.sum(), q / q.sum()
        expected = {
            "jensen_shannon": jensenshannon(p, q, base=2),
            "hellinger": euclidean(np.sqrt(p_share), np.sqrt(q_share)) / np.sqrt(2),
            "psi": float(np.sum((np.where(q_share > 0, q_share, 1e-4) - np.where(p_share > 0, p_share, 1e-4))
                                * np.log(np.where(q_share > 0, q_share, 1e-4) / np.where(p_share > 0, p_share, 1e-4)))),
        }
        for method, value in expected.items():
            report = compute_drift(profile, current, window=len(current), methods={column: method})
            assert scores(report, column)[0] == pytest.approx(value, rel=1e-9, abs=1e-12), method
    # chi-square: the 2 × k contingency table, categories empty in both samples left out, no correction
    table = np.array([p_categorical, q_categorical])
    expected = stats.chi2_contingency(table[:, table.sum(axis=0) > 0], correction=False).pvalue
    report = compute_drift(profile, current, window=len(current), methods={"c": "chi_square"})
    assert scores(report, "c")[0] == pytest.approx(expected, rel=1e-9)


def test_z_test_is_the_pooled_two_proportion_test_and_equals_chi_square_on_two_values():
    rng = np.random.default_rng(3)
    reference = pd.DataFrame({"b": rng.choice(["yes", "no"], 900, p=[0.3, 0.7])})
    current = pd.DataFrame({"b": rng.choice(["yes", "no"], 700, p=[0.36, 0.64])})
    profile = build_profile(reference, {"b": "categorical"})
    first = profile.columns["b"].categories[0]
    x1, n1 = (reference["b"] == first).sum(), len(reference)
    x2, n2 = (current["b"] == first).sum(), len(current)
    pooled = (x1 + x2) / (n1 + n2)
    z = (x2 / n2 - x1 / n1) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    z_test = scores(compute_drift(profile, current, window=700, methods={"b": "z_test"}), "b")[0]
    chi_square = scores(compute_drift(profile, current, window=700, methods={"b": "chi_square"}), "b")[0]
    assert z_test == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-12)
    assert z_test == pytest.approx(chi_square, rel=1e-9)
    numeric = build_profile(pd.DataFrame({"b": (reference["b"] == "yes").astype(float)}), {"b": "numeric"})
    as_numbers = compute_drift(numeric, pd.DataFrame({"b": (current["b"] == "yes").astype(float)}), window=700,
                               methods={"b": "z_test"})
    assert scores(as_numbers, "b")[0] == pytest.approx(z_test, rel=1e-12)


def test_a_shifted_sample_is_flagged_by_every_method():
    rng = np.random.default_rng(2)
    reference = pd.DataFrame({"x": rng.normal(size=800), "c": rng.choice(list("abc"), 800, p=[0.5, 0.3, 0.2]),
                              "b": rng.choice(["yes", "no"], 800, p=[0.5, 0.5])})
    current = pd.DataFrame({"x": rng.normal(0.6, 1, size=800), "c": rng.choice(list("abc"), 800, p=[0.2, 0.3, 0.5]),
                            "b": rng.choice(["yes", "no"], 800, p=[0.2, 0.8])})
    profile = build_profile(reference, {"x": "numeric", "c": "categorical", "b": "categorical"})
    for method in NUMERIC_METHODS:
        report = compute_drift(profile, current, window=800, methods={"x": method})
        assert report.features.set_index("feature").loc["x", "drifted"], method
    for method in CATEGORICAL_METHODS:
        report = compute_drift(profile, current, window=800, methods={"c": method})
        assert report.features.set_index("feature").loc["c", "drifted"], method
    report = compute_drift(profile, current, window=800, methods={"b": "z_test"})
    assert report.features.set_index("feature").loc["b", ["drifted", "severity"]].tolist() == [True, "red"]


def test_thresholds_override_the_defaults_and_set_the_amber_band():
    rng = np.random.default_rng(4)
    reference = pd.DataFrame({"x": rng.normal(size=5000)})
    current = pd.DataFrame({"x": rng.normal(0.07, 1, size=5000)})
    profile = build_profile(reference, {"x": "numeric"})
    score = scores(compute_drift(profile, current, window=5000), "x")[0]
    assert 0.04 < score < 0.1
    for threshold, drifted, severity in ((score * 0.9, True, "red"), (score * 1.5, False, "amber"),
                                         (score * 2.5, False, "green")):
        row = compute_drift(profile, current, window=5000, thresholds={"wasserstein": threshold}).features.iloc[0]
        assert (row["threshold"], row["drifted"], row["severity"]) == (pytest.approx(threshold), drifted, severity)


# -- missing and unseen values ---------------------------------------------------------------------


def test_missing_and_unseen_values_are_counted_per_window_and_unseen_ones_take_part():
    reference = pd.DataFrame({"x": np.arange(100, dtype=float), "c": ["a", "b"] * 50})
    current = pd.DataFrame({
        "x": [np.nan, np.inf, -5.0, 500.0, 10.0, 20.0, np.nan, 30.0, 40.0, 50.0],
        "c": [None, "a", "zz", "b", "a", "yy", "b", None, np.nan, "a"],
    })
    profile = build_profile(reference, {"x": "numeric", "c": "categorical"})
    report = compute_drift(profile, current, window=5, methods={"c": "jensen_shannon"})
    rows = report.features.set_index(["feature", "window"])
    assert rows.loc[("x", 0), ["n", "n_missing", "n_unseen"]].tolist() == [5, 2, 2]
    assert rows.loc[("x", 1), ["n", "n_missing", "n_unseen"]].tolist() == [5, 1, 0]
    assert rows.loc[("c", 0), ["n", "n_missing", "n_unseen"]].tolist() == [5, 1, 1]
    assert rows.loc[("c", 1), ["n", "n_missing", "n_unseen"]].tolist() == [5, 2, 1]
    # the unseen category is its own bin: window 1 has a, b and yy in the shares 1/3 each
    expected = jensenshannon([50, 50, 0], [1, 1, 1], base=2)
    assert rows.loc[("c", 1), "score"] == pytest.approx(expected)
    distribution = feature_distribution(report, "c", windows=[1]).set_index("bin")
    assert list(distribution.columns) == list(DISTRIBUTION_COLUMNS[1:])
    assert distribution.loc["(unseen)", "current_count"] == 1
    assert distribution.loc["(missing)", "current_count"] == 2
    assert distribution["current_share"].sum() == pytest.approx(1.0)
    numeric = feature_distribution(report, "x").set_index("bin_kind")
    assert numeric.loc["below", "current_count"] == 1 and numeric.loc["above", "current_count"] == 1
    assert numeric.loc["missing", "current_count"] == 3
    assert numeric["reference_share"].sum() == pytest.approx(1.0)


def test_an_all_missing_column_scores_nan_with_a_warning():
    reference = pd.DataFrame({"x": np.arange(50, dtype=float), "c": ["a", "b"] * 25})
    current = pd.DataFrame({"x": [np.nan] * 10, "c": [None] * 5 + ["a"] * 5})
    profile = build_profile(reference, {"x": "numeric", "c": "categorical"})
    with pytest.warns(DriftWarning) as caught:
        report = compute_drift(profile, current, window=5, min_rows=1)
    assert [str(w.message) for w in caught] == list(report.warnings) == [
        "feature 'x' has no values in 2 of 2 window(s): its score is NaN there",
        "feature 'c' has no values in 1 of 2 window(s): its score is NaN there"]
    rows = report.features.set_index(["feature", "window"])
    assert np.isnan(rows.loc[("x", 0), "score"]) and rows.loc[("x", 0), "severity"] == "grey"
    assert not rows.loc[("x", 0), "drifted"]
    assert np.isnan(rows.loc[("c", 0), "score"]) and not np.isnan(rows.loc[("c", 1), "score"])
    assert report.dataset["n_features"].tolist() == [0, 1]  # NaN scores are not counted
    assert rows.loc[("x", 0), "status"] == "cannot judge" and rows.loc[("x", 0), "reason"] == "no values in this window"
    with pytest.warns(DriftWarning):
        default = compute_drift(profile, current, window=5).features.set_index(["feature", "window"])
    assert default.loc[("c", 1), "status"] == "cannot judge"
    assert default.loc[("c", 1), "reason"] == "only 5 values in this window; at least 30 are needed"

    with pytest.warns(DriftWarning, match="reference column 'x' has no values"):
        empty = build_profile(pd.DataFrame({"x": [np.nan] * 5, "c": list("abcab")}), {"x": "numeric",
                                                                                     "c": "categorical"})
    with pytest.warns(DriftWarning, match="no values in the reference"):
        report = compute_drift(empty, pd.DataFrame({"x": [1.0, 2.0], "c": ["a", "b"]}), window=2)
    assert np.isnan(scores(report, "x")).all() and report.features.set_index("feature").loc["x", "n_unseen"] == 2


def test_text_in_a_numeric_column_names_the_column():
    with pytest.raises(ValueError, match=r"reference column 'x' is numeric but holds text: 1 value.*'abc'"):
        build_profile(pd.DataFrame({"x": ["1", "2", "abc"]}), {"x": "numeric"})
    profile = build_profile(pd.DataFrame({"x": [1.0, 2.0]}), {"x": "numeric"})
    with pytest.raises(ValueError, match="current column 'x' is numeric but holds text"):
        compute_drift(profile, pd.DataFrame({"x": ["1", "oops"]}), window=2)
    with pytest.raises(ValueError, match=r"current data lacks feature column\(s\) \['x'\]"):
        compute_drift(profile, pd.DataFrame({"y": [1.0]}), window=2)


def test_categorical_dtype_and_strings_give_the_same_report():
    rng = np.random.default_rng(8)
    reference = pd.DataFrame({"c": rng.choice(list("abcd"), 3000)})
    current = pd.DataFrame({"c": rng.choice(list("abcde"), 3000)})
    current.loc[::50, "c"] = None
    as_text = compute_drift(build_profile(reference, {"c": "categorical"}), current, window=1000)
    as_categories = compute_drift(build_profile(reference.astype("category"), {"c": "categorical"}),
                                  current.astype("category"), window=1000)
    columns = ["score", "n", "n_missing", "n_unseen"]
    pd.testing.assert_frame_equal(as_text.features[columns], as_categories.features[columns])


# -- windows ---------------------------------------------------------------------------------------


def test_time_windows_are_aligned_on_utc_hours_days_and_monday_weeks():
    monday = pd.Timestamp("2025-01-06T00:00:00Z").timestamp()  # a Monday
    ts = monday + np.array([-1.0, 0.0, 3599.0, 3600.0, 86_399.0, 86_400.0, 6 * 86_400 + 86_399, 7 * 86_400])
    reference = pd.DataFrame({"x": np.arange(20.0)})
    current = pd.DataFrame({"x": np.arange(len(ts), dtype=float), "ts": ts})
    profile = build_profile(reference, {"x": "numeric"})
    expected = {"hour": [1, 2, 1, 1, 1, 1, 1], "day": [1, 4, 1, 1, 1], "week": [1, 6, 1]}
    for window, counts in expected.items():
        dataset = compute_drift(profile, current, window=window).dataset
        assert dataset["n"].tolist() == counts, window
        assert list(dataset.columns) == list(DATASET_COLUMNS)
    days = compute_drift(profile, current, window="day").dataset
    assert days["window_start"].iloc[1] == pd.Timestamp("2025-01-06T00:00:00Z")
    assert days["window_end"].iloc[1] == pd.Timestamp("2025-01-07T00:00:00Z")
    weeks = compute_drift(profile, current, window="week").dataset
    assert weeks["window_start"].dt.day_of_week.tolist() == [0, 0, 0]
    # datetimes work as well as Unix seconds
    as_datetimes = current.assign(ts=pd.to_datetime(ts, unit="s", utc=True))
    assert compute_drift(profile, as_datetimes, window="hour").dataset["n"].tolist() == expected["hour"]


def test_row_windows_follow_the_row_order_and_the_last_may_be_shorter():
    reference = pd.DataFrame({"x": np.arange(20.0)})
    current = pd.DataFrame({"x": np.arange(25.0), "ts": 1000.0 + np.arange(25.0)})
    report = compute_drift(build_profile(reference, {"x": "numeric"}), current, window="10")
    assert report.window == 10
    assert report.dataset["n"].tolist() == [10, 10, 5]
    assert report.dataset["window_start"].tolist() == list(pd.to_datetime([1000.0, 1010.0, 1020.0], unit="s",
                                                                          utc=True))
    assert report.dataset["window_end"].iloc[-1] == pd.Timestamp(1024.0, unit="s", tz="UTC")
    out_of_range = report.features["n_unseen"].tolist()  # values 20..24 are above the reference maximum 19
    assert out_of_range == [0, 0, 5]
    no_time = compute_drift(build_profile(reference, {"x": "numeric"}), current.drop(columns="ts"), window=10)
    assert no_time.dataset["window_start"].isna().all()
    with pytest.raises(ValueError, match="window 'day' needs a timestamp column"):
        compute_drift(build_profile(reference, {"x": "numeric"}), current.drop(columns="ts"), window="day")


def test_rows_without_a_timestamp_are_left_out_with_a_warning():
    reference = pd.DataFrame({"x": np.arange(20.0)})
    current = pd.DataFrame({"x": [1.0, 2.0, 3.0], "ts": [0.0, np.nan, 10.0]})
    with pytest.warns(DriftWarning, match="1 row\\(s\\) have no 'ts' timestamp"):
        report = compute_drift(build_profile(reference, {"x": "numeric"}), current, window="day")
    assert report.dataset["n"].tolist() == [2]


@pytest.mark.parametrize("window", [0, -3, "month", 2.5, True, "10k"])
def test_bad_windows_are_rejected_with_the_accepted_forms(window):
    profile = build_profile(pd.DataFrame({"x": [1.0]}), {"x": "numeric"})
    with pytest.raises(ValueError, match="window must be 'hour', 'day', 'week' or a positive number of rows"):
        compute_drift(profile, one_window(pd.DataFrame({"x": [1.0]})), window=window)


# -- the demo's scripted drift ---------------------------------------------------------------------


def assert_scripted_drift_is_found(report) -> None:
    rows = report.features
    day = ((rows["window_start"] - pd.Timestamp(DEFAULT_HISTORY_START, unit="s", tz="UTC")).dt.total_seconds()
           / SECONDS_PER_DAY).round().astype(int)
    before = rows[day < DRIFT_START_DAY]
    after = rows[day >= DRIFT_START_DAY + DRIFT_RAMP_DAYS]
    untouched = rows[~rows["feature"].isin(DRIFTED_FEATURES)]
    assert not before["drifted"].any(), before[before["drifted"]]
    assert after[after["feature"].isin(DRIFTED_FEATURES)]["drifted"].all()
    assert not untouched["drifted"].any(), untouched[untouched["drifted"]]
    assert set(rows["method"]) == {"wasserstein", "jensen_shannon"}


def test_the_demo_drift_is_flagged_after_it_starts_and_only_in_the_drifted_features():
    profile = build_profile(generate_reference(20_000, random_state=0), FEATURES)
    report = compute_drift(profile, generate(200_000, random_state=1), window="day", service="demo")
    assert report.n_windows == 28
    assert_scripted_drift_is_found(report)
    assert summary(report) == "3 of 12 features drifted in the last 28 days: credit_utilization, income, channel"
    assert summary(report, since_label="1 Jan") .startswith("3 of 12 features drifted since 1 Jan: ")
    first_week = compute_drift(profile, generate(20_000, end_day=7.0, random_state=2), window="day")
    assert summary(first_week) == "No feature drifted in the last 7 days"


def test_the_demo_drift_is_found_the_same_way_in_a_million_rows():
    current = generate(1_000_000, random_state=3)
    profile = build_profile(generate_reference(100_000, random_state=4), FEATURES)
    started = time.perf_counter()
    report = compute_drift(profile, current, window="day")
    elapsed = time.perf_counter() - started
    assert_scripted_drift_is_found(report)
    assert report.dataset["n"].sum() == 1_000_000
    assert elapsed < 10  # a sanity bound only; the timing itself is in benchmarks/drift.py


# -- prediction drift, report, summary, export -----------------------------------------------------


def test_prediction_columns_are_profiled_when_present_and_reported_apart():
    rng = np.random.default_rng(6)
    reference = pd.DataFrame({"x": rng.normal(size=20_000), "score": rng.beta(2, 5, 20_000),
                              "prediction": rng.integers(0, 2, 20_000)})
    profile = build_profile(reference, {"x": "numeric"})
    assert profile.prediction_columns == ("prediction", "score")
    assert profile.kinds == {"x": "numeric", "prediction": "categorical", "score": "numeric"}
    current = one_window(pd.DataFrame({"x": rng.normal(size=5000), "score": rng.beta(4, 5, 5000),
                                       "prediction": rng.integers(0, 2, 5000)}))
    report = compute_drift(profile, current)
    assert list(report.features["feature"]) == ["x"]
    assert list(report.prediction.columns) == list(RESULT_COLUMNS)
    assert report.prediction.set_index("feature")["drifted"].to_dict() == {"prediction": False, "score": True}
    assert summary(report).endswith("; the model's predictions moved too")
    without = compute_drift(profile, current.drop(columns=["score", "prediction"]))
    assert without.prediction.empty


def test_report_tables_have_the_documented_columns_and_export_to_csv(tmp_path):
    rng = np.random.default_rng(9)
    reference = pd.DataFrame({"x": rng.normal(size=3000), "c": rng.choice(list("ab"), 3000)})
    current = pd.DataFrame({"x": rng.normal(1, 1, size=3000), "c": rng.choice(list("ab"), 3000),
                            "ts": DEFAULT_HISTORY_START + np.arange(3000) * 60.0})
    report = compute_drift(build_profile(reference, {"x": "numeric", "c": "categorical"}), current, window="day",
                           service="svc", drift_share=0.5)
    assert list(report.features.columns) == list(RESULT_COLUMNS)
    assert report.features["service"].eq("svc").all()
    assert report.dataset["drifted_features"].tolist() == [["x"], ["x"], ["x"]]
    assert report.dataset["drifted"].tolist() == [True, True, True]
    text = report.to_csv()
    assert text.splitlines()[0] == ",".join(RESULT_COLUMNS)
    assert len(text.splitlines()) == 1 + len(report.features)
    report.to_csv(tmp_path / "dataset.csv", table="dataset")
    assert pd.read_csv(tmp_path / "dataset.csv")["drifted_features"].tolist() == ["x", "x", "x"]
    with pytest.raises(ValueError, match="table must be one of"):
        report.to_csv(table="nope")


def test_summary_of_row_windows_counts_predictions():
    reference = pd.DataFrame({"x": np.arange(100.0)})
    report = compute_drift(build_profile(reference, {"x": "numeric"}), pd.DataFrame({"x": np.arange(200.0) % 100}),
                           window=100)
    assert report.n_windows == 2
    assert summary(report) == "No feature drifted in the last 200 predictions"


# -- figures ---------------------------------------------------------------------------------------


def test_figures_draw_a_report_without_recomputing():
    rng = np.random.default_rng(10)
    reference = pd.DataFrame({"x": rng.normal(size=3000), "c": rng.choice(list("abc"), 3000),
                              "score": rng.random(3000)})
    current = pd.DataFrame({"x": rng.normal(0.5, 1, size=3000), "c": rng.choice(list("abcd"), 3000),
                            "score": rng.random(3000), "ts": DEFAULT_HISTORY_START + np.arange(3000) * 60.0})
    current.loc[::10, "x"] = np.nan
    report = compute_drift(build_profile(reference, {"x": "numeric", "c": "categorical"}), current, window="day")
    numeric = distribution_figure(feature_distribution(report, "x"), feature="x")
    assert {trace.name for trace in numeric.data} == {"reference", "current"}
    assert "missing" in numeric.layout.xaxis2.ticktext
    categorical = distribution_figure(feature_distribution(report, "c", windows=slice(-1, None)), feature="c")
    assert "(unseen)" in list(categorical.data[1].x)
    heatmap = drift_heatmap_figure(report)
    assert np.asarray(heatmap.data[0].z).shape == (2, report.n_windows)
    assert "threshold" in heatmap.data[0].customdata[0][0]
    assert len(prediction_drift_figure(report).data) == 1
    assert list(drifted_share_figure(report).data[0].y) == report.dataset["share"].tolist()
    with pytest.warns(DriftWarning, match="current data has no rows"):
        empty = compute_drift(build_profile(reference, {"x": "numeric"}), current.iloc[:0], window="day")
    for figure in (drift_heatmap_figure(empty), prediction_drift_figure(empty), drifted_share_figure(empty)):
        assert figure.layout.annotations  # a message instead of a chart


# -- binning and the profile cache -----------------------------------------------------------------


def test_the_lookup_table_bins_exactly_like_searchsorted():
    rng = np.random.default_rng(12)
    for trial in range(200):
        scale = 10.0 ** rng.integers(-200, 200)
        edges = np.unique(rng.normal(size=rng.integers(1, 80)) * scale + rng.choice([0.0, 1e6 * scale]))
        if trial % 3 == 0:  # neighbours one float apart
            edges = np.unique(np.concatenate([edges, np.nextafter(edges, np.inf)]))
        if trial % 4 == 0:  # a heavy tail
            edges = np.unique(np.concatenate([edges, rng.pareto(1.0, 300) * scale]))
        edges = edges[np.isfinite(edges)]
        values = np.concatenate([edges, np.nextafter(edges, np.inf), np.nextafter(edges, -np.inf),
                                 rng.choice(edges, 200) + rng.normal(size=200) * scale * 1e-3, [np.inf, -np.inf]])
        index = build_edge_index(edges)
        np.testing.assert_array_equal(index.bin(values), np.searchsorted(edges, values, side="right"))


def test_the_profile_is_cached_on_disk_and_rebuilt_when_the_file_changes(tmp_path):
    features = {"x": "numeric", "c": "categorical"}
    path = tmp_path / "reference.parquet"
    pd.DataFrame({"x": np.arange(2000.0), "c": ["a", "b"] * 1000}).to_parquet(path)
    cache = tmp_path / "var" / "drift-profiles"
    first = load_or_build_profile(path, features, cache_dir=cache)
    files = list(cache.glob("profile-*.pkl"))
    assert len(files) == 1 and first.source == str(path)
    stamp = files[0].stat().st_mtime_ns
    assert load_or_build_profile(path, features, cache_dir=cache) is first  # remembered in this process
    profile_module._MEMORY.clear()
    again = load_or_build_profile(path, features, cache_dir=cache)  # read back from disk, not rebuilt
    assert again.built_at == first.built_at and again.fingerprint == first.fingerprint
    assert files[0].stat().st_mtime_ns == stamp
    assert list(cache.glob(".*")) == []  # no temporary file left behind
    np.testing.assert_array_equal(again.columns["x"].edges, first.columns["x"].edges)

    time.sleep(0.01)
    pd.DataFrame({"x": np.arange(3000.0), "c": ["a", "b", "c"] * 1000}).to_parquet(path)
    os.utime(path, ns=(time.time_ns(), time.time_ns()))
    changed = load_or_build_profile(path, features, cache_dir=cache)
    assert changed.fingerprint != first.fingerprint and changed.n_rows == 3000
    assert len(list(cache.glob("profile-*.pkl"))) == 2
    other_features = load_or_build_profile(path, {"x": "numeric"}, cache_dir=cache)
    assert other_features.fingerprint != changed.fingerprint


def test_a_bad_reference_file_names_the_file_and_the_columns(tmp_path):
    with pytest.raises(ReferenceDataError, match="does not exist"):
        load_or_build_profile(tmp_path / "missing.csv", {"x": "numeric"}, cache_dir=tmp_path / "cache")
    path = tmp_path / "reference.csv"
    pd.DataFrame({"x": [1, 2], "y": ["a", "b"]}).to_csv(path, index=False)
    with pytest.raises(ReferenceDataError, match=r"reference.csv lacks columns \['income'\]"):
        load_or_build_profile(path, {"x": "numeric", "income": "numeric"}, cache_dir=tmp_path / "cache")
    with pytest.raises(ReferenceDataError, match=r"reference\.csv.*'y'"):
        load_or_build_profile(path, {"y": "numeric"}, cache_dir=tmp_path / "cache")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        profile = load_or_build_profile(path, {"x": "numeric", "y": "categorical"}, cache_dir=tmp_path / "cache")
    assert profile.columns["y"].categories == ("a", "b")
